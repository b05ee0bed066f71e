//! neos's four-blob demonstration (arXiv:2203.05570, gradhep/neos `demo.ipynb`).
//!
//! Two-dimensional unit-covariance Gaussians: signal at (-1, 1), background
//! at (1, -1), its up variation at (2.5, 2) and down variation at (-2.5, -1.5).
//! A network maps each point to (0, 1) (sigmoid); KDE histograms of its output
//! become a HistFactory model (a normfactor on the signal, a histosys on the
//! background from the up and down samples), each histogram scaled as neos
//! does: `hist / n_batch * scale * lumi + 1e-3`. The network is trained on an
//! inference loss (default: CLs at mu = 1 on the background-only Asimov data).

use super::hist::{hard_hist, kde_hist};
use super::loss::{Analysis, LossKind, reattach};
use super::nn::Mlp;
use super::run::{Curve, Optim, OptimConfig, permutation, progress};
use super::spec::{
    AnalysisSpec, ChannelSpec, ModifierSpec, SampleSpec, SampleTemplates, TemplateValues, Templates,
};
use crate::error::{Error, Result};
use crate::infer::TestStat;
use crate::rng::Stream;
use candle_core::{DType, Device, Tensor, Var};
use serde::{Deserialize, Serialize};
use std::time::Instant;

/// Settings of the four-blob problem (defaults: neos's demo).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NeosConfig {
    /// Points per sample (75% train, 25% test).
    pub n_points: usize,
    /// Hidden layer sizes.
    pub hidden: Vec<usize>,
    /// Number of bins in [0, 1].
    pub bins: usize,
    /// KDE bandwidth in training.
    pub bandwidth: f64,
    /// Bandwidth of the test metrics (0: hard histograms, as neos's 1e-8).
    pub eval_bandwidth: f64,
    /// Events per sample and batch.
    pub batch: usize,
    /// Signal scale factor.
    pub signal_scale: f64,
    /// Background scale factor (nominal, up and down).
    pub background_scale: f64,
    /// Overall scale (neos's `lumi`).
    pub lumi: f64,
    /// Floor added to every bin.
    pub floor: f64,
    /// The loss (or `"bce"` for the classifier baseline).
    pub loss: NeosLoss,
    /// Optimiser.
    pub optimiser: OptimConfig,
    /// Training steps.
    pub steps: usize,
    /// Seed of data, initialisation and batches.
    pub seed: u64,
    /// Compute the test metrics every this many steps (0: never).
    pub eval_every: usize,
}

/// The training loss of the four-blob problem.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum NeosLoss {
    /// An inference loss.
    Inference(LossKind),
    /// Binary cross-entropy of signal against nominal background.
    Bce(BceTag),
}

/// Tag of the BCE loss in configs (`"bce"`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BceTag {
    /// Binary cross-entropy.
    Bce,
}

impl Default for NeosConfig {
    fn default() -> Self {
        NeosConfig {
            n_points: 10_000,
            hidden: vec![1024, 1024],
            bins: 4,
            bandwidth: 0.1,
            eval_bandwidth: 0.0,
            batch: 2000,
            signal_scale: 2.0,
            background_scale: 10.0,
            lumi: 10.0,
            floor: 1e-3,
            loss: NeosLoss::Inference(LossKind::Cls {
                mu: 1.0,
                mu_asimov: 0.0,
                test_stat: TestStat::QTilde,
            }),
            optimiser: OptimConfig::adam(1e-3),
            steps: 10,
            seed: 0,
            eval_every: 1,
        }
    }
}

/// Blob centres: signal, background nominal, up, down.
pub const CENTRES: [(f64, f64); 4] = [(-1.0, 1.0), (1.0, -1.0), (2.5, 2.0), (-2.5, -1.5)];

/// The four samples, each split into (train, test) as [N, 2] f32 tensors.
pub fn generate(n: usize, seed: u64) -> Result<Vec<(Tensor, Tensor)>> {
    let dev = Device::Cpu;
    let n_train = n * 3 / 4;
    let mut out = Vec::new();
    for (k, (cx, cy)) in CENTRES.iter().enumerate() {
        let mut s = Stream::new(seed, k as u32, 0x6e65_6f73, 0);
        let pts: Vec<f32> = (0..n)
            .flat_map(|_| {
                let a = cx + s.normal();
                let b = cy + s.normal();
                [a as f32, b as f32]
            })
            .collect();
        let all = Tensor::from_vec(pts, (n, 2), &dev)?;
        out.push((
            all.narrow(0, 0, n_train)?,
            all.narrow(0, n_train, n - n_train)?,
        ));
    }
    Ok(out)
}

/// The model structure: signal with a normfactor `mu`, background with a histosys.
pub fn spec(bins: usize) -> AnalysisSpec {
    AnalysisSpec {
        channels: vec![ChannelSpec {
            name: "singlechannel".into(),
            nbins: bins,
            samples: vec![
                SampleSpec {
                    name: "signal".into(),
                    modifiers: vec![ModifierSpec::NormFactor {
                        name: "mu".into(),
                        bounds: None,
                    }],
                },
                SampleSpec {
                    name: "background".into(),
                    modifiers: vec![ModifierSpec::HistoSys {
                        name: "correlated_bkg_uncertainty".into(),
                        constrained: true,
                    }],
                },
            ],
        }],
        poi: "mu".into(),
        normsys_code: crate::model::InterpCode::Code4,
        histosys_code: crate::model::InterpCode::Code4p,
    }
}

/// The trainer of the four-blob problem.
pub struct Neos {
    /// Settings.
    pub cfg: NeosConfig,
    /// The network.
    pub net: Mlp,
    /// The analysis.
    pub analysis: Analysis,
    data: Vec<(Tensor, Tensor)>,
    edges: Vec<f64>,
    optim: Optim,
    perm: Vec<usize>,
    epoch: u32,
    pos: usize,
}

/// One step's record.
#[derive(Debug, Clone, Serialize)]
pub struct StepRecord {
    /// Step number (0 first).
    pub step: usize,
    /// Training loss on the batch.
    pub loss: f64,
    /// Test-set metrics (cls, sigma_mu, z).
    pub metrics: Vec<(String, f64)>,
    /// Seconds of the training step.
    pub seconds: f64,
    /// Seconds of the statistics part (histograms to gradients of the templates).
    pub stats_seconds: f64,
}

impl Neos {
    /// Data, network and optimiser from the settings.
    pub fn new(cfg: NeosConfig, dtype: DType) -> Result<Self> {
        if cfg.bins == 0 || cfg.batch == 0 || cfg.n_points < 8 {
            return Err(Error::input(
                "neos: bins, batch and n_points must be positive",
            ));
        }
        let data = generate(cfg.n_points, cfg.seed)?;
        let mut sizes = vec![2];
        sizes.extend(&cfg.hidden);
        sizes.push(1);
        let net = Mlp::new(&sizes, dtype, cfg.seed)?;
        let optim = Optim::new(&cfg.optimiser, net.vars())?;
        let edges: Vec<f64> = (0..=cfg.bins).map(|i| i as f64 / cfg.bins as f64).collect();
        let analysis = Analysis::new(&spec(cfg.bins))?;
        let n_train = data[0].0.dims2()?.0;
        let perm = permutation(n_train, cfg.seed, 0, 0x6261_7463);
        Ok(Neos {
            cfg,
            net,
            analysis,
            data,
            edges,
            optim,
            perm,
            epoch: 0,
            pos: 0,
        })
    }

    fn next_batch(&mut self) -> Result<Vec<Tensor>> {
        let n_train = self.perm.len();
        let b = self.cfg.batch.min(n_train);
        if self.pos + b > n_train {
            self.epoch += 1;
            self.perm = permutation(n_train, self.cfg.seed, self.epoch, 0x6261_7463);
            self.pos = 0;
        }
        let idx: Vec<u32> = self.perm[self.pos..self.pos + b]
            .iter()
            .map(|&i| i as u32)
            .collect();
        self.pos += b;
        let it = Tensor::from_vec(idx, b, &Device::Cpu)?;
        self.data
            .iter()
            .map(|(tr, _)| Ok(tr.index_select(&it, 0)?))
            .collect()
    }

    /// Template tensors of network outputs `outs` (one [N] per sample) with KDE `bandwidth`.
    pub fn templates(&self, outs: &[Tensor], bandwidth: f64) -> Result<Templates> {
        let c = &self.cfg;
        let mut h = Vec::new();
        for (k, o) in outs.iter().enumerate() {
            let n = o.dims1()? as f64;
            let scale = if k == 0 {
                c.signal_scale
            } else {
                c.background_scale
            } * c.lumi
                / n;
            let raw = kde_hist(o, None, &self.edges, bandwidth)?.to_dtype(DType::F64)?;
            h.push(((raw * scale)? + c.floor)?);
        }
        Ok(templates_of(h))
    }

    /// Numeric templates of `x` (one [N, 2] per sample): hard histograms, or
    /// KDE histograms when `bandwidth > 0`.
    pub fn eval_values(&self, xs: &[Tensor], bandwidth: f64) -> Result<TemplateValues> {
        let c = &self.cfg;
        let mut h = Vec::new();
        for (k, x) in xs.iter().enumerate() {
            let o = candle_nn::ops::sigmoid(&self.net.forward(x)?)?.flatten_all()?;
            let n = o.dims1()? as f64;
            let scale = if k == 0 {
                c.signal_scale
            } else {
                c.background_scale
            } * c.lumi
                / n;
            let counts = if bandwidth > 0.0 {
                kde_hist(&o, None, &self.edges, bandwidth)?
                    .to_dtype(DType::F64)?
                    .to_vec1::<f64>()?
            } else {
                let v = o.to_dtype(DType::F64)?.to_vec1::<f64>()?;
                hard_hist(&v, None, &self.edges)?
            };
            h.push(Tensor::from_vec(
                counts
                    .iter()
                    .map(|x| x * scale + c.floor)
                    .collect::<Vec<_>>(),
                counts.len(),
                &Device::Cpu,
            )?);
        }
        templates_of(h).values()
    }

    /// Test-set metrics: CLs (the neos loss), the POI uncertainty at mu = 1 and the discovery significance.
    pub fn test_metrics(&self) -> Result<Vec<(String, f64)>> {
        let xs: Vec<Tensor> = self.data.iter().map(|(_, t)| t.clone()).collect();
        let v = self.eval_values(&xs, self.cfg.eval_bandwidth)?;
        let tp = v.to_tensors()?;
        let cls = self.analysis.loss(
            &LossKind::Cls {
                mu: 1.0,
                mu_asimov: 0.0,
                test_stat: TestStat::QTilde,
            },
            &tp,
        )?;
        let disc = self
            .analysis
            .loss(&LossKind::Discovery { mu_asimov: 1.0 }, &tp)?;
        let sigma = self.analysis.sigma_poi(&tp, 1.0)?;
        Ok(vec![
            ("cls".into(), cls.value),
            ("sigma_mu".into(), sigma),
            ("z_discovery".into(), disc.metric("z").unwrap_or(f64::NAN)),
        ])
    }

    /// One training step on the next batch; returns (loss, seconds of the statistics part).
    pub fn step(&mut self) -> Result<(f64, f64)> {
        let batch = self.next_batch()?;
        match self.cfg.loss {
            NeosLoss::Inference(kind) => {
                // one forward pass over all samples' events: fewer, larger
                // matrix products; the network's reverse pass by hand (below)
                let all = Tensor::cat(&batch, 0)?;
                let (z, act) = self.net.forward_cached(&all)?;
                let zv = Var::from_tensor(&z)?;
                let o = candle_nn::ops::sigmoid(zv.as_tensor())?.flatten_all()?;
                let mut outs = Vec::with_capacity(batch.len());
                let mut at = 0;
                for x in &batch {
                    let n = x.dims2()?.0;
                    outs.push(o.narrow(0, at, n)?);
                    at += n;
                }
                let tp = self.templates(&outs, self.cfg.bandwidth)?;
                // the statistics part: templates -> fits -> loss and template gradients
                let t0 = Instant::now();
                let (lv, grads) = self.analysis.loss_detached(&kind, &tp)?;
                let stats = t0.elapsed().as_secs_f64();
                let surrogate = reattach(&tp, &grads)?;
                let dz = surrogate
                    .backward()?
                    .remove(zv.as_tensor())
                    .ok_or_else(|| {
                        Error::Numerical("the loss does not depend on the network output".into())
                    })?;
                let grads = self.net.backward(&act, &dz)?;
                self.optim.step(&grads)?;
                Ok((lv.value, stats))
            }
            NeosLoss::Bce(_) => {
                let zs = self.net.forward(&batch[0])?.flatten_all()?;
                let zb = self.net.forward(&batch[1])?.flatten_all()?;
                let l = super::inferno::bce_logits(&zs, &zb)?;
                self.optim.step(&l.backward()?)?;
                Ok((l.to_dtype(DType::F64)?.to_scalar::<f64>()?, 0.0))
            }
        }
    }

    /// Train for `cfg.steps` steps, calling `on_step` after each.
    pub fn train(&mut self, quiet: bool, mut on_step: impl FnMut(&StepRecord)) -> Result<Curve> {
        let mut curve = Curve::default();
        let pb = progress(self.cfg.steps as u64, "neos", quiet);
        for step in 0..self.cfg.steps {
            let t0 = Instant::now();
            let (loss, stats) = self.step()?;
            let secs = t0.elapsed().as_secs_f64();
            let metrics = if self.cfg.eval_every > 0 && (step + 1) % self.cfg.eval_every == 0 {
                self.test_metrics()?
            } else {
                Vec::new()
            };
            curve.push(step, loss, secs, &metrics);
            on_step(&StepRecord {
                step,
                loss,
                metrics,
                seconds: secs,
                stats_seconds: stats,
            });
            if let Some(pb) = &pb {
                pb.inc(1);
            }
        }
        if let Some(pb) = pb {
            pb.finish_and_clear();
        }
        Ok(curve)
    }

    /// The analysis as a pyhf workspace: test-set templates (hard histograms),
    /// observed data the background-only Asimov data.
    pub fn export(&self) -> Result<serde_json::Value> {
        let xs: Vec<Tensor> = self.data.iter().map(|(_, t)| t.clone()).collect();
        let v = self.eval_values(&xs, self.cfg.eval_bandwidth)?;
        let tp = v.to_tensors()?;
        let g = &self.analysis.graph;
        let theta = self.analysis.hypothesis(0.0);
        let (nu, _) = g.expected(&theta, &tp)?;
        let obs = g.channels_from_main(&nu.to_vec1::<f64>()?);
        g.spec().export_pyhf(&v, &obs)
    }
}

fn templates_of(h: Vec<Tensor>) -> Templates {
    let mut it = h.into_iter();
    let (s, b, up, dn) = (
        it.next().expect("signal"),
        it.next().expect("background"),
        it.next().expect("up"),
        it.next().expect("down"),
    );
    Templates {
        samples: vec![
            SampleTemplates {
                nominal: s,
                sumw2: None,
                modifiers: vec![None],
            },
            SampleTemplates {
                nominal: b,
                sumw2: None,
                modifiers: vec![Some((up, dn))],
            },
        ],
    }
}
