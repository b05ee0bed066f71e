//! INFERNO's synthetic three-dimensional problem (arXiv:1806.04743, section 5).
//!
//! Background: (x0, x1) ~ N((r, 0), diag(5, 9)), x2 ~ Exp(rate lambda); signal:
//! (x0, x1) ~ N(0, 1), x2 ~ Exp(rate 2); nominal r = 2, lambda = 3, s = 50,
//! b = 1000. The nuisances act on the background events: x0 -> x0 + (r - 2),
//! x2 -> x2 * 3 / lambda. The network's softmax output (temperature T) is the
//! summary; its expected counts depend on r and lambda *through the network*,
//! and the derivatives `d nu / d r`, `d nu / d lambda` at the nominal point come
//! from forward-mode tangents ([`super::nn::Mlp::forward_tangents`]). They enter
//! the analysis as histosys modifiers whose up/down templates are
//! `nu +- sigma * d nu / d nuisance`, so the Asimov Fisher information (the
//! INFERNO loss, `[I^-1]_ss`) is exact at the nominal point.

use crate::train::hist::{softmax, softmax_hist};
mod analytic;
mod eval;

pub use analytic::{analytic_profile_sigma_s, analytic_sigma_s};
pub use eval::{BenchmarkResult, run_benchmark};

use crate::error::{Error, Result};
use crate::model::InterpCode;
use crate::rng::Stream;
use crate::train::loss::{Analysis, LossKind, reattach};
use crate::train::nn::Mlp;
use crate::train::run::{Curve, Optim, OptimConfig, permutation};
use crate::train::spec::{
    AnalysisSpec, ChannelSpec, ModifierSpec, SampleSpec, SampleTemplates, Templates,
};
use candle_core::{D, DType, Device, Tensor};
use serde::{Deserialize, Serialize};
use std::time::Instant;

/// How a nuisance parameter enters a benchmark.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Nuisance {
    /// Fixed at its nominal value.
    Fixed,
    /// Free (no constraint).
    Free,
    /// Gaussian-constrained with this width.
    Constrained(f64),
}

/// One of INFERNO's benchmarks 0-4.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Benchmark {
    /// The benchmark number.
    pub id: u8,
    /// The x0 shift r.
    pub r: Nuisance,
    /// The x2 rate lambda.
    pub lambda: Nuisance,
    /// Relative width of the background normalisation constraint, if floated.
    pub b_sigma: Option<f64>,
}

impl Benchmark {
    /// Benchmark `id` (0: r, lambda fixed; 1: r free; 2: r, lambda free;
    /// 3: r ~ N(2, 0.4), lambda ~ N(3, 1); 4: as 3 with b ~ N(1000, 100)).
    pub fn new(id: u8) -> Result<Self> {
        use Nuisance::*;
        let (r, lambda, b_sigma) = match id {
            0 => (Fixed, Fixed, None),
            1 => (Free, Fixed, None),
            2 => (Free, Free, None),
            3 => (Constrained(0.4), Constrained(1.0), None),
            4 => (Constrained(0.4), Constrained(1.0), Some(0.1)),
            _ => {
                return Err(Error::input(format!(
                    "INFERNO benchmark {id} does not exist (0 to 4)"
                )));
            }
        };
        Ok(Benchmark {
            id,
            r,
            lambda,
            b_sigma,
        })
    }
}

/// Settings (defaults: the full benchmark within 10 minutes on 2 cores).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct InfernoConfig {
    /// Benchmark 0-4.
    pub benchmark: u8,
    /// Training events per class.
    pub n_train: usize,
    /// Test events per class (the Asimov templates of the figure of merit).
    pub n_test: usize,
    /// Hidden layer sizes.
    pub hidden: Vec<usize>,
    /// Number of summary bins (softmax outputs).
    pub bins: usize,
    /// Softmax temperature in training.
    pub temperature: f64,
    /// Events per class and batch.
    pub batch: usize,
    /// Epochs of INFERNO training.
    pub epochs: usize,
    /// Epochs of BCE training.
    pub bce_epochs: usize,
    /// Optimiser.
    pub optimiser: OptimConfig,
    /// Network initialisations (the figure of merit is the median over them).
    pub seeds: usize,
    /// First seed.
    pub seed: u64,
    /// Expected signal events.
    pub s: f64,
    /// Expected background events.
    pub b: f64,
    /// Monte Carlo events of the analytic figure.
    pub n_analytic: usize,
}

impl Default for InfernoConfig {
    fn default() -> Self {
        InfernoConfig {
            benchmark: 2,
            n_train: 10_000,
            n_test: 50_000,
            hidden: vec![100, 100],
            bins: 10,
            temperature: 0.1,
            batch: 1000,
            epochs: 30,
            bce_epochs: 15,
            optimiser: OptimConfig::adam(1e-3),
            seeds: 10,
            seed: 0,
            s: 50.0,
            b: 1000.0,
            n_analytic: 400_000,
        }
    }
}

/// Nominal r and lambda.
pub const R0: f64 = 2.0;
/// Nominal lambda.
pub const LAMBDA0: f64 = 3.0;
/// Shift of r of the evaluation templates (the width of its constraint in benchmarks 3 and 4).
pub const R_SHIFT: f64 = 0.4;
/// Shift of lambda of the evaluation templates (the width of its constraint).
pub const LAMBDA_SHIFT: f64 = 1.0;

/// Signal and nominal background events ([n, 3] f32 each) from a seeded stream.
pub fn generate(n: usize, seed: u64, purpose: u32) -> Result<(Tensor, Tensor)> {
    let dev = Device::Cpu;
    let mut s = Stream::new(seed, 0, purpose, 0);
    let mut sig = Vec::with_capacity(3 * n);
    for _ in 0..n {
        sig.push(s.normal() as f32);
        sig.push(s.normal() as f32);
        sig.push((-(1.0 - s.uniform()).ln() / 2.0) as f32);
    }
    let mut s = Stream::new(seed, 1, purpose, 0);
    let mut bkg = Vec::with_capacity(3 * n);
    for _ in 0..n {
        bkg.push((R0 + 5f64.sqrt() * s.normal()) as f32);
        bkg.push((3.0 * s.normal()) as f32);
        bkg.push((-(1.0 - s.uniform()).ln() / LAMBDA0) as f32);
    }
    Ok((
        Tensor::from_vec(sig, (n, 3), &dev)?,
        Tensor::from_vec(bkg, (n, 3), &dev)?,
    ))
}

/// Background events with the nuisances applied: x0 + (r - 2), x2 * 3 / lambda.
pub fn shifted(bkg: &Tensor, r: f64, lambda: f64) -> Result<Tensor> {
    let dev = bkg.device();
    let dt = bkg.dtype();
    let shift = Tensor::from_vec(vec![r - R0, 0.0, 0.0], (1, 3), dev)?.to_dtype(dt)?;
    let scale = Tensor::from_vec(vec![1.0, 1.0, LAMBDA0 / lambda], (1, 3), dev)?.to_dtype(dt)?;
    Ok(bkg.broadcast_mul(&scale)?.broadcast_add(&shift)?)
}

/// The analysis of a benchmark: signal with normfactor `mu` (s = s0 mu);
/// background with histosys `r` and `lambda` and a lumi-type `b_norm` as the
/// benchmark floats them. `code` is the histosys interpolation.
pub fn spec(bm: &Benchmark, bins: usize, code: InterpCode) -> AnalysisSpec {
    let mut bmods = Vec::new();
    for (name, n) in [("r", bm.r), ("lambda", bm.lambda)] {
        match n {
            Nuisance::Fixed => {}
            Nuisance::Free => bmods.push(ModifierSpec::HistoSys {
                name: name.into(),
                constrained: false,
            }),
            Nuisance::Constrained(_) => bmods.push(ModifierSpec::HistoSys {
                name: name.into(),
                constrained: true,
            }),
        }
    }
    if let Some(sig) = bm.b_sigma {
        bmods.push(ModifierSpec::Lumi {
            name: "b_norm".into(),
            sigma: sig,
        });
    }
    AnalysisSpec {
        channels: vec![ChannelSpec {
            name: "summary".into(),
            nbins: bins,
            samples: vec![
                SampleSpec {
                    name: "signal".into(),
                    modifiers: vec![ModifierSpec::NormFactor {
                        name: "mu".into(),
                        bounds: Some([0.0, 10.0]),
                    }],
                },
                SampleSpec {
                    name: "background".into(),
                    modifiers: bmods,
                },
            ],
        }],
        poi: "mu".into(),
        normsys_code: InterpCode::Code4,
        histosys_code: code,
    }
}

/// The histosys unit of a nuisance in training: its constraint width, or 1 when free.
fn unit(n: Nuisance) -> f64 {
    match n {
        Nuisance::Constrained(s) => s,
        _ => 1.0,
    }
}

/// Binary cross-entropy with logits, signal label 1, background 0 (mean over both).
pub fn bce_logits(zs: &Tensor, zb: &Tensor) -> Result<Tensor> {
    let sp = |z: &Tensor| -> Result<Tensor> {
        // softplus(z) = max(z, 0) + ln(1 + exp(-|z|))
        Ok((z.relu()? + ((z.abs()?.neg()?.exp()? + 1.0)?.log()?))?)
    };
    let ls = sp(&zs.neg()?)?.sum_all()?;
    let lb = sp(zb)?.sum_all()?;
    let n = (zs.dims1()? + zb.dims1()?) as f64;
    Ok(((ls + lb)? / n)?)
}

/// The INFERNO trainer of one network.
pub struct Inferno {
    /// Settings.
    pub cfg: InfernoConfig,
    /// The benchmark.
    pub bm: Benchmark,
    /// The training analysis (histosys templates from tangents).
    pub analysis: Analysis,
}

impl Inferno {
    /// The trainer of `cfg`.
    pub fn new(cfg: InfernoConfig) -> Result<Self> {
        let bm = Benchmark::new(cfg.benchmark)?;
        if cfg.bins < 2 || cfg.batch == 0 || cfg.n_train == 0 || cfg.n_test == 0 {
            return Err(Error::input(
                "inferno: bins >= 2 and positive batch, n_train and n_test are needed",
            ));
        }
        let analysis = Analysis::new(&spec(&bm, cfg.bins, InterpCode::Code4p))?;
        Ok(Inferno { cfg, bm, analysis })
    }

    /// Template tensors of a batch: soft histograms and their nuisance tangents.
    pub fn templates(&self, net: &Mlp, xs: &Tensor, xb: &Tensor) -> Result<Templates> {
        let c = &self.cfg;
        let t = c.temperature;
        let ns = xs.dims2()?.0 as f64;
        let nb = xb.dims2()?.0 as f64;
        let sig = (softmax_hist(&net.forward(xs)?, None, t)?.to_dtype(DType::F64)? * (c.s / ns))?;
        let (n, _) = xb.dims2()?;
        let dev = xb.device();
        let mut tangents = Vec::new();
        let mut which = Vec::new();
        if self.bm.r != Nuisance::Fixed {
            let e = Tensor::from_vec(vec![1.0, 0.0, 0.0], (1, 3), dev)?
                .to_dtype(xb.dtype())?
                .broadcast_as((n, 3))?;
            tangents.push(e.contiguous()?);
            which.push(self.bm.r);
        }
        if self.bm.lambda != Nuisance::Fixed {
            // d/d lambda of x2 * 3 / lambda at lambda = 3: -x2 / 3
            let m = Tensor::from_vec(vec![0.0, 0.0, -1.0 / LAMBDA0], (1, 3), dev)?
                .to_dtype(xb.dtype())?;
            tangents.push(xb.broadcast_mul(&m)?);
            which.push(self.bm.lambda);
        }
        let (zb, dzs) = net.forward_tangents(xb, &tangents)?;
        let pb = softmax(&zb, t)?;
        let bk = (pb.sum(0)?.to_dtype(DType::F64)? * (c.b / nb))?;
        let mut mods = Vec::new();
        for (dz, nz) in dzs.iter().zip(&which) {
            // d softmax(z/T) = p (dz/T - sum_k p_k dz_k / T)
            let dzt = (dz / t)?;
            let mean = (&pb * &dzt)?.sum_keepdim(D::Minus1)?;
            let dp = (&pb * dzt.broadcast_sub(&mean)?)?;
            let dnu = (dp.sum(0)?.to_dtype(DType::F64)? * (c.b / nb * unit(*nz)))?;
            mods.push(Some(((&bk + &dnu)?, (&bk - &dnu)?)));
        }
        if self.bm.b_sigma.is_some() {
            mods.push(None);
        }
        Ok(Templates {
            samples: vec![
                SampleTemplates {
                    nominal: sig,
                    sumw2: None,
                    modifiers: vec![None],
                },
                SampleTemplates {
                    nominal: bk,
                    sumw2: None,
                    modifiers: mods,
                },
            ],
        })
    }

    /// Train an INFERNO network from `seed`; the curve records the loss
    /// (the POI variance) per epoch.
    pub fn train(&self, seed: u64, data: &(Tensor, Tensor)) -> Result<(Mlp, Curve)> {
        self.train_with(seed, data, &mut |_, _| {})
    }

    /// [`Inferno::train`] calling `on_epoch(epoch, mean loss)` after each epoch.
    pub fn train_with(
        &self,
        seed: u64,
        data: &(Tensor, Tensor),
        on_epoch: &mut dyn FnMut(usize, f64),
    ) -> Result<(Mlp, Curve)> {
        let c = &self.cfg;
        let mut sizes = vec![3];
        sizes.extend(&c.hidden);
        sizes.push(c.bins);
        let net = Mlp::new(&sizes, DType::F32, seed)?;
        let mut opt = Optim::new(&c.optimiser, net.vars())?;
        let kind = LossKind::PoiVariance { mu_asimov: 1.0 };
        let mut curve = Curve::default();
        let n = data.0.dims2()?.0;
        let b = c.batch.min(n);
        for epoch in 0..c.epochs {
            let t0 = Instant::now();
            let perm = permutation(n, seed, epoch as u32, 0x696e_6601);
            let mut sum = 0.0;
            let mut nb = 0;
            for chunk in perm.chunks(b) {
                if chunk.len() < b {
                    break;
                }
                let idx = Tensor::from_vec(
                    chunk.iter().map(|&i| i as u32).collect::<Vec<_>>(),
                    b,
                    &Device::Cpu,
                )?;
                let xs = data.0.index_select(&idx, 0)?;
                let xb = data.1.index_select(&idx, 0)?;
                let tp = self.templates(&net, &xs, &xb)?;
                let (lv, g) = self.analysis.loss_detached(&kind, &tp)?;
                let grads = reattach(&tp, &g)?.backward()?;
                opt.step(&grads)?;
                sum += lv.value;
                nb += 1;
            }
            let mean = sum / nb.max(1) as f64;
            curve.push(
                epoch,
                mean,
                t0.elapsed().as_secs_f64(),
                &[("sigma_s".into(), c.s * mean.sqrt())],
            );
            on_epoch(epoch, mean);
        }
        Ok((net, curve))
    }

    /// Train the BCE baseline classifier from `seed`.
    pub fn train_bce(&self, seed: u64, data: &(Tensor, Tensor)) -> Result<(Mlp, Curve)> {
        let c = &self.cfg;
        let mut sizes = vec![3];
        sizes.extend(&c.hidden);
        sizes.push(1);
        let net = Mlp::new(&sizes, DType::F32, seed)?;
        let mut opt = Optim::new(&c.optimiser, net.vars())?;
        let mut curve = Curve::default();
        let n = data.0.dims2()?.0;
        let b = c.batch.min(n);
        for epoch in 0..c.bce_epochs {
            let t0 = Instant::now();
            let perm = permutation(n, seed, epoch as u32, 0x6263_6501);
            let (mut sum, mut nb) = (0.0, 0);
            for chunk in perm.chunks(b) {
                if chunk.len() < b {
                    break;
                }
                let idx = Tensor::from_vec(
                    chunk.iter().map(|&i| i as u32).collect::<Vec<_>>(),
                    b,
                    &Device::Cpu,
                )?;
                let zs = net.forward(&data.0.index_select(&idx, 0)?)?.flatten_all()?;
                let zb = net.forward(&data.1.index_select(&idx, 0)?)?.flatten_all()?;
                let l = bce_logits(&zs, &zb)?;
                sum += l.to_dtype(DType::F64)?.to_scalar::<f64>()?;
                nb += 1;
                opt.step(&l.backward()?)?;
            }
            curve.push(
                epoch,
                sum / nb.max(1) as f64,
                t0.elapsed().as_secs_f64(),
                &[],
            );
        }
        Ok((net, curve))
    }
}
