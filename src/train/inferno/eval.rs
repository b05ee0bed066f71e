//! The figure of merit of INFERNO's benchmark (the profile-likelihood width
//! of s on the test sample), the true likelihood's figure, and the benchmark
//! run over seeds.

use super::analytic::{analytic_profile_sigma_s, analytic_sigma_s};
use super::{
    Inferno, InfernoConfig, LAMBDA_SHIFT, LAMBDA0, Nuisance, R_SHIFT, R0, generate, shifted, spec,
};
use crate::error::{Error, Result};
use crate::fit::FitSpec;
use crate::model::InterpCode;
use crate::train::hist::{argmax_hist, hard_hist};
use crate::train::nn::Mlp;
use crate::train::spec::AnalysisSpec;
use candle_core::{DType, Tensor};
use serde::Serialize;
use std::time::Instant;

impl Inferno {
    /// Expected uncertainty of s: the half width of the profile likelihood
    /// interval (twice_nll rises by 1) on the Asimov data of the test sample,
    /// with hard histograms of `counts(events)` and histosys templates from
    /// the test background shifted by +- the evaluation shifts (code 2,
    /// quadratic interpolation).
    pub fn sigma_s(
        &self,
        counts: &dyn Fn(&Tensor) -> Result<Vec<f64>>,
        test: &(Tensor, Tensor),
    ) -> Result<f64> {
        let c = &self.cfg;
        let ns = test.0.dims2()?.0 as f64;
        let nb = test.1.dims2()?.0 as f64;
        let scale = |v: Vec<f64>, k: f64| -> Vec<f64> { v.into_iter().map(|x| x * k).collect() };
        let sig = scale(counts(&test.0)?, c.s / ns);
        let bkg = scale(counts(&test.1)?, c.b / nb);
        let mut mods: Vec<Option<(Vec<f64>, Vec<f64>)>> = Vec::new();
        if self.bm.r != Nuisance::Fixed {
            let d = R_SHIFT;
            let up = scale(counts(&shifted(&test.1, R0 + d, LAMBDA0)?)?, c.b / nb);
            let dn = scale(counts(&shifted(&test.1, R0 - d, LAMBDA0)?)?, c.b / nb);
            mods.push(Some((up, dn)));
        }
        if self.bm.lambda != Nuisance::Fixed {
            let d = LAMBDA_SHIFT;
            let up = scale(counts(&shifted(&test.1, R0, LAMBDA0 + d)?)?, c.b / nb);
            let dn = scale(counts(&shifted(&test.1, R0, LAMBDA0 - d)?)?, c.b / nb);
            mods.push(Some((up, dn)));
        }
        if self.bm.b_sigma.is_some() {
            mods.push(None);
        }
        // drop bins that are empty in every template
        let keep: Vec<usize> = (0..sig.len())
            .filter(|&k| {
                sig[k] > 0.0
                    || bkg[k] > 0.0
                    || mods.iter().flatten().any(|(u, d)| u[k] > 0.0 || d[k] > 0.0)
            })
            .collect();
        let pick = |v: &Vec<f64>| -> Vec<f64> { keep.iter().map(|&k| v[k]).collect() };
        // histosys units are the shifts, which equal the constraint widths: N(0, 1) constraints
        let ebm = self.bm;
        let espec = spec(&ebm, keep.len(), InterpCode::Code2);
        let values = crate::train::spec::TemplateValues {
            samples: vec![
                crate::train::spec::SampleValues {
                    nominal: pick(&sig),
                    sumw2: None,
                    modifiers: vec![None],
                },
                crate::train::spec::SampleValues {
                    nominal: pick(&bkg),
                    sumw2: None,
                    modifiers: mods
                        .iter()
                        .map(|m| m.as_ref().map(|(u, d)| (pick(u), pick(d))))
                        .collect(),
                },
            ],
        };
        profile_sigma(&espec, &values, c.s)
    }
}

impl Inferno {
    /// [`Inferno::sigma_s`] of a softmax-summary network (hard histograms:
    /// the argmax of its logits), e.g. one trained here or loaded with
    /// [`crate::train::nn::Mlp::load`] from another framework's weights.
    pub fn sigma_s_of_net(&self, net: &Mlp, test: &(Tensor, Tensor)) -> Result<f64> {
        let counts = |x: &Tensor| argmax_hist(&net.forward(x)?, None);
        self.sigma_s(&counts, test)
    }

    /// The test sample of a benchmark run with these settings (the events
    /// [`run_benchmark`] measures every network on).
    pub fn test_sample(&self) -> Result<(Tensor, Tensor)> {
        generate(self.cfg.n_test, self.cfg.seed, TEST_PURPOSE)
    }
}

/// Philox purpose tag of the test sample.
const TEST_PURPOSE: u32 = 0x7473_7401;

/// Half width (in signal events) of the profile interval of `mu` on the
/// Asimov data at mu = 1, nuisances nominal.
fn profile_sigma(
    espec: &AnalysisSpec,
    values: &crate::train::spec::TemplateValues,
    s0: f64,
) -> Result<f64> {
    let graph = crate::train::graph::TemplateGraph::new(espec)?;
    let mut theta = graph.init.clone();
    theta[graph.poi] = 1.0;
    let tp = values.to_tensors()?;
    let (nu, _) = graph.expected(&theta, &tp)?;
    let main = nu.to_vec1::<f64>()?;
    let m = espec.build_model(values, &graph.channels_from_main(&main))?;
    let data = m.asimov_dataset(&theta);
    let mut spec = FitSpec::from_model(&m);
    spec.init.copy_from_slice(&theta);
    let free = crate::train::implicit::fit(&m, &data, &spec, "the free fit (INFERNO evaluation)")?;
    let poi = graph.poi;
    let prof = |mu: f64| -> Result<f64> {
        let s = spec.clone().fix(poi, mu);
        let r = crate::train::implicit::fit(&m, &data, &s, "a profile fit (INFERNO evaluation)")?;
        Ok(r.twice_nll - free.twice_nll - 1.0)
    };
    let mv: Vec<usize> = (0..m.n_pars()).filter(|&i| !spec.fixed[i]).collect();
    let inv = crate::train::implicit::inverse_hessian_block(&m, &data, &free.x, &mv)?;
    let k = mv.iter().position(|&i| i == poi).expect("POI free");
    let s_guess = (2.0 * inv[k * mv.len() + k]).sqrt();
    let mu_hat = free.x[poi];
    let mut ends = [0.0; 2];
    for (j, dir) in [-1.0f64, 1.0].iter().enumerate() {
        let mut step = s_guess;
        let mut a = mu_hat;
        let mut fa = -1.0;
        let mut b = mu_hat + dir * step;
        if b < 0.0 {
            b = 0.0;
        }
        let mut fb = prof(b)?;
        let mut tries = 0;
        while fb < 0.0 {
            tries += 1;
            if tries > 40 || (b == 0.0 && *dir < 0.0) {
                return Err(Error::Numerical(
                    "the profile likelihood does not rise by 1 within the POI bounds".into(),
                ));
            }
            a = b;
            fa = fb;
            step *= 1.6;
            b = (mu_hat + dir * step).max(0.0);
            fb = prof(b)?;
        }
        ends[j] = crate::infer::limits::brent(prof, a, b, fa, fb, 1e-8)?;
    }
    Ok(s0 * (ends[1] - ends[0]) / 2.0)
}

/// The result of one benchmark run.
#[derive(Debug, Clone, Serialize)]
pub struct BenchmarkResult {
    /// Benchmark number.
    pub benchmark: u8,
    /// Median sigma_s of the INFERNO networks.
    pub sigma_s_inferno: f64,
    /// Median sigma_s of the BCE classifiers.
    pub sigma_s_bce: f64,
    /// sigma_s of the true likelihood.
    pub sigma_s_analytic: f64,
    /// The true likelihood's first-order figure, `sqrt([I^-1]_ss)` of its Fisher information.
    pub sigma_s_analytic_fisher: f64,
    /// Network initialisations.
    pub seeds: usize,
    /// Wall time in seconds.
    pub seconds: f64,
    /// sigma_s of each INFERNO network.
    pub inferno_all: Vec<f64>,
    /// sigma_s of each BCE network.
    pub bce_all: Vec<f64>,
    /// Mean seconds per INFERNO training epoch.
    pub inferno_epoch_seconds: f64,
}

fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.total_cmp(b));
    let n = s.len();
    if n == 0 {
        f64::NAN
    } else if n % 2 == 1 {
        s[n / 2]
    } else {
        0.5 * (s[n / 2 - 1] + s[n / 2])
    }
}

/// Train INFERNO and BCE networks for `cfg.seeds` initialisations and compare.
///
/// Seeds run in parallel, one per worker of a pool as wide as the machine;
/// each seed's result depends on its seed alone (results are collected in
/// seed order). For small networks, matrix products on one thread each
/// (`RAYON_NUM_THREADS=1`, as the `inferno` example sets) use the cores best.
pub fn run_benchmark(cfg: &InfernoConfig, log: impl Fn(&str) + Sync) -> Result<BenchmarkResult> {
    use rayon::prelude::*;
    let t0 = Instant::now();
    let inf = Inferno::new(cfg.clone())?;
    let train = generate(cfg.n_train, cfg.seed, 0x7472_6e01)?;
    let test = inf.test_sample()?;
    let width = std::thread::available_parallelism().map_or(1, |n| n.get());
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(width)
        .build()
        .map_err(|e| Error::input(format!("thread pool: {e}")))?;
    let one = |k: usize| -> Result<(f64, f64, Vec<f64>)> {
        let seed = cfg.seed + k as u64;
        let (net, curve) = inf.train(seed, &train)?;
        let si = inf.sigma_s_of_net(&net, &test)?;
        let (bnet, _) = inf.train_bce(seed, &train)?;
        let edges: Vec<f64> = (0..=cfg.bins).map(|i| i as f64 / cfg.bins as f64).collect();
        let bcounts = |x: &Tensor| -> Result<Vec<f64>> {
            let o = candle_nn::ops::sigmoid(&bnet.forward(x)?)?
                .flatten_all()?
                .to_dtype(DType::F64)?
                .to_vec1::<f64>()?;
            hard_hist(&o, None, &edges)
        };
        let sb = inf.sigma_s(&bcounts, &test)?;
        log(&format!(
            "seed {seed}: sigma_s inferno {si:.3}, bce {sb:.3}"
        ));
        Ok((si, sb, curve.seconds))
    };
    let results: Vec<Result<(f64, f64, Vec<f64>)>> =
        pool.install(|| (0..cfg.seeds).into_par_iter().map(one).collect());
    let mut a = Vec::new();
    let mut bce = Vec::new();
    let mut epoch_secs = Vec::new();
    for r in results {
        let (si, sb, secs) = r?;
        a.push(si);
        bce.push(sb);
        epoch_secs.extend(secs);
    }
    let analytic = analytic_profile_sigma_s(&inf.bm, cfg.s, cfg.b, cfg.n_analytic, cfg.seed)?;
    let fisher = analytic_sigma_s(&inf.bm, cfg.s, cfg.b, cfg.n_analytic, cfg.seed)?;
    Ok(BenchmarkResult {
        benchmark: cfg.benchmark,
        sigma_s_inferno: median(&a),
        sigma_s_bce: median(&bce),
        sigma_s_analytic: analytic,
        sigma_s_analytic_fisher: fisher,
        seeds: cfg.seeds,
        seconds: t0.elapsed().as_secs_f64(),
        inferno_all: a,
        bce_all: bce,
        inferno_epoch_seconds: epoch_secs.iter().sum::<f64>() / epoch_secs.len().max(1) as f64,
    })
}
