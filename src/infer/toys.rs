//! Toy-based (pseudo-experiment) hypothesis tests, as pyhf's `ToyCalculator`.
//!
//! Signal-plus-background toys are drawn at the parameters profiled at the
//! tested POI value on the observed data, background-only toys at the
//! parameters profiled at 0 (for q0: "signal" toys at 0 and "background" toys
//! at 1). Every toy is fitted twice (free and POI fixed), the fits of a chunk
//! of toys as one batch. Toy `i` of a stream depends only on `(seed, i)`, so
//! results are identical whatever the thread count, batch size or sharding.
//! A toy whose fits fail is recorded with its fit status and left out of the
//! p-values (counted in `n_failed`).

use super::Problem;
use super::teststat::{TestStat, evaluate, fixed_poi_fit};
use crate::error::{Error, Result};
use crate::fit::{FitOptions, FitResult, FitSpec, FitStatus};
use crate::model::Likelihood;
use crate::rng::purpose;
use serde::{Deserialize, Serialize};

/// File format tag of saved toy runs.
pub const TOY_FORMAT: &str = "gradfit-toys-1";

/// One toy's outcome.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToyRecord {
    /// Global toy index.
    pub toy: u32,
    /// Test statistic (None when a fit failed).
    pub stat: Option<f64>,
    /// Fitted POI of the free fit.
    pub mu_hat: f64,
    /// twice_nll of the free fit.
    pub twice_nll_free: f64,
    /// twice_nll of the fixed-POI fit.
    pub twice_nll_fixed: f64,
    /// Status of the free fit.
    pub status_free: FitStatus,
    /// Status of the fixed-POI fit.
    pub status_fixed: FitStatus,
}

/// A run of toys for one tested POI value (possibly one shard of it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToyRun {
    /// Always [`TOY_FORMAT`].
    pub format: String,
    /// Digest of the model (workspace, patches, options): shards merge only with equal digests.
    pub model_digest: String,
    /// Test statistic.
    pub test_stat: TestStat,
    /// Tested POI value.
    pub mu: f64,
    /// Seed of the random streams.
    pub seed: u64,
    /// Toys per hypothesis in the whole run.
    pub n_toys: u32,
    /// `[i, N]` for shard i of N, absent for a whole (or merged) run.
    pub shard: Option<[u32; 2]>,
    /// Toy indices covered, `[start, end)`.
    pub range: [u32; 2],
    /// Observed test statistic.
    pub test_stat_obs: f64,
    /// Parameters the signal-plus-background toys are drawn at.
    pub pars_sig_bkg: Vec<f64>,
    /// Parameters the background-only toys are drawn at.
    pub pars_bkg: Vec<f64>,
    /// Signal-plus-background toys.
    pub sig_bkg: Vec<ToyRecord>,
    /// Background-only toys.
    pub bkg: Vec<ToyRecord>,
    /// SHA-256 of the range and records ([`ToyRun::seal`]): catches edited,
    /// deleted or duplicated records before a merge.
    #[serde(default)]
    pub records_digest: String,
}

/// Toy-based CLs.
#[derive(Debug, Clone, Serialize)]
pub struct ToyCls {
    /// Observed CLs (for q0: p0 = CLs+b).
    pub cls_obs: Option<f64>,
    /// Expected CLs band from toy percentiles, -2 sigma first (for q0: CLs+b).
    pub cls_exp: [Option<f64>; 5],
    /// Observed CLs+b.
    pub clsb_obs: f64,
    /// Observed CLb.
    pub clb_obs: f64,
    /// Observed test statistic.
    pub test_stat_obs: f64,
    /// Toys per hypothesis.
    pub n_toys: u32,
    /// Toys whose fits failed (both hypotheses), excluded from the p-values.
    pub n_failed: u32,
    /// Failed signal-plus-background toys.
    pub n_failed_sig_bkg: u32,
    /// Failed background-only toys.
    pub n_failed_bkg: u32,
}

/// Settings of a toy run.
#[derive(Debug, Clone)]
pub struct ToySettings {
    /// Tested POI value.
    pub mu: f64,
    /// Test statistic.
    pub test_stat: TestStat,
    /// Toys per hypothesis.
    pub n_toys: u32,
    /// Seed.
    pub seed: u64,
    /// Shard `(i, N)`, if any.
    pub shard: Option<(u32, u32)>,
    /// Toys fitted per batch (2 fits each).
    pub batch: usize,
    /// Model digest recorded in the output.
    pub model_digest: String,
    /// Iteration limit of the toy fits (None: the fit options' limit). A toy
    /// whose fit hits it is recorded as failed.
    pub toy_max_iter: Option<usize>,
}

/// Most toys per hypothesis in one run or shard (their records are kept in
/// memory and written as one file of about 250 bytes per toy and hypothesis).
pub const MAX_TOYS_PER_SHARD: u32 = 5_000_000;

/// Toy index range of shard `i` of `n` for `n_toys` toys; refuses a range
/// above [`MAX_TOYS_PER_SHARD`].
pub fn shard_range(n_toys: u32, shard: Option<(u32, u32)>) -> Result<(u32, u32)> {
    let (lo, hi) = shard_bounds(n_toys, shard)?;
    if hi - lo > MAX_TOYS_PER_SHARD {
        let need = n_toys.div_ceil(MAX_TOYS_PER_SHARD);
        return Err(Error::input(format!(
            "{} toys per hypothesis in one run: at most {MAX_TOYS_PER_SHARD} fit in memory and one file; \
             split it with `gradfit toys --shard i/N` (N >= {need}) and join the shards with `gradfit merge`",
            hi - lo
        )));
    }
    Ok((lo, hi))
}

fn shard_bounds(n_toys: u32, shard: Option<(u32, u32)>) -> Result<(u32, u32)> {
    match shard {
        None => Ok((0, n_toys)),
        Some((i, n)) => {
            if n == 0 || i >= n {
                return Err(Error::input(format!("shard {i}/{n}: need 0 <= i < N")));
            }
            let lo = (n_toys as u64 * i as u64 / n as u64) as u32;
            let hi = (n_toys as u64 * (i as u64 + 1) / n as u64) as u32;
            Ok((lo, hi))
        }
    }
}

/// One chunk of toys of one hypothesis for a [`ToyFitter`] to draw and fit.
pub(crate) struct Chunk<'a> {
    /// Test statistic.
    pub kind: TestStat,
    /// Tested POI value.
    pub mu: f64,
    /// Free fit (starting at the parameters the toys are drawn at).
    pub free: &'a FitSpec,
    /// Fit with the POI fixed at `mu` (its local parameters start at the
    /// free fit's values: `records_for`).
    pub fixed: &'a FitSpec,
    /// Seed of the toys.
    pub seed: u64,
    /// Stream (hypothesis) of the toys.
    pub purp: u32,
    /// Global toy indices.
    pub range: std::ops::Range<u32>,
    /// Options of the toy fits.
    pub opts: &'a FitOptions,
}

/// What draws and fits the toys of a run chunk by chunk: the CPU here, or a
/// GPU (`gpu::run_toys`); [`drive_toys`] does the rest.
pub(crate) trait ToyFitter {
    /// Prepare for `n` toys per hypothesis; returns the chunk size.
    fn start(&mut self, n: usize) -> Result<usize>;
    /// Toys of a new hypothesis follow, drawn at `pars`.
    fn hypothesis(&mut self, pars: &[f64], free: &FitSpec, fixed: &FitSpec) -> Result<()>;
    /// Draw the toys of `c` and fit each twice.
    fn fit(&mut self, c: &Chunk<'_>) -> Result<Vec<ToyRecord>>;
}

/// Generate and fit the toys of `settings` (progress reported after each batch as (done, total)).
pub fn run_toys<L: Likelihood>(
    p: &Problem<L>,
    settings: &ToySettings,
    opts: &FitOptions,
    progress: &(dyn Fn(u64, u64) + Sync),
) -> Result<ToyRun> {
    let mut cpu = CpuToys {
        p,
        batch: settings.batch.max(1),
        generator: None,
    };
    drive_toys(p, settings, opts, progress, &mut cpu)
}

/// The fits on the observed data that fix the generation points, then both
/// hypotheses' toys chunk by chunk through `fitter`.
pub(crate) fn drive_toys<L: Likelihood>(
    p: &Problem<L>,
    settings: &ToySettings,
    opts: &FitOptions,
    progress: &(dyn Fn(u64, u64) + Sync),
    fitter: &mut dyn ToyFitter,
) -> Result<ToyRun> {
    let opts = FitOptions {
        covariance: false,
        ..opts.clone()
    };
    let kind = settings.test_stat;
    let mu = settings.mu;
    let obs = evaluate(p, kind, mu, None, &opts)?;
    let pars_sb = obs.fixed.x.clone();
    let mu_b = if kind == TestStat::Q0 { 1.0 } else { 0.0 };
    let fb = fixed_poi_fit(p, mu_b, Some(&obs.free.x), &opts)?;
    super::require_converged(
        &fb,
        &format!("the fit with the POI fixed at {mu_b} (background toys)"),
    )?;
    let pars_b = fb.x.clone();
    let (lo, hi) = shard_range(settings.n_toys, settings.shard)?;
    let toy_opts = FitOptions {
        max_iter: settings.toy_max_iter.unwrap_or(opts.max_iter),
        ..opts.clone()
    };
    let total = 2 * (hi - lo) as u64;
    let batch = fitter.start((hi - lo) as usize)?.max(1) as u32;
    let mut done = 0u64;
    let mut hyps: Vec<Vec<ToyRecord>> = Vec::new();
    for (pars, purp) in [(&pars_sb, purpose::SIG_BKG), (&pars_b, purpose::BKG)] {
        let mut free = p.spec.clone();
        free.init.copy_from_slice(pars);
        let fixed = free.clone().fix(p.poi, mu);
        fitter.hypothesis(pars, &free, &fixed)?;
        let mut recs = Vec::with_capacity((hi - lo) as usize);
        let mut start = lo;
        while start < hi {
            let end = (start + batch).min(hi);
            recs.extend(fitter.fit(&Chunk {
                kind,
                mu,
                free: &free,
                fixed: &fixed,
                seed: settings.seed,
                purp,
                range: start..end,
                opts: &toy_opts,
            })?);
            done += (end - start) as u64;
            progress(done, total);
            start = end;
        }
        hyps.push(recs);
    }
    let bkg = hyps.pop().expect("two hypotheses");
    let sig_bkg = hyps.pop().expect("two hypotheses");
    let mut run = ToyRun {
        format: TOY_FORMAT.to_string(),
        model_digest: settings.model_digest.clone(),
        test_stat: kind,
        mu,
        seed: settings.seed,
        n_toys: settings.n_toys,
        shard: settings.shard.map(|(i, n)| [i, n]),
        range: [lo, hi],
        test_stat_obs: obs.value,
        pars_sig_bkg: pars_sb,
        pars_bkg: pars_b,
        sig_bkg,
        bkg,
        records_digest: String::new(),
    };
    run.seal();
    Ok(run)
}

/// Toys on the CPU: sampled in parallel, fitted as one batch per chunk.
struct CpuToys<'a, 'm, L: Likelihood> {
    p: &'a Problem<'m, L>,
    batch: usize,
    generator: Option<L::Generator>,
}

impl<L: Likelihood> ToyFitter for CpuToys<'_, '_, L> {
    fn start(&mut self, _n: usize) -> Result<usize> {
        Ok(self.batch)
    }

    fn hypothesis(&mut self, pars: &[f64], _free: &FitSpec, _fixed: &FitSpec) -> Result<()> {
        self.generator = Some(self.p.model.generator(pars));
        Ok(())
    }

    fn fit(&mut self, c: &Chunk<'_>) -> Result<Vec<ToyRecord>> {
        let generator = self.generator.as_ref().expect("hypothesis set before fit");
        fit_toys(self.p, generator, c)
    }
}

/// Sample toys `range` of one hypothesis and fit each twice, all as one batch.
pub(crate) fn fit_toys<L: Likelihood>(
    p: &Problem<L>,
    generator: &L::Generator,
    c: &Chunk<'_>,
) -> Result<Vec<ToyRecord>> {
    use rayon::prelude::*;
    let toys: Vec<u32> = c.range.clone().collect();
    let data: Vec<L::Data> = toys
        .par_iter()
        .map(|&t| p.model.sample(generator, c.seed, t, c.purp))
        .collect();
    records_for(p, &toys, &data, c)
}

/// The records of toys `toys` whose datasets are `data` (the free fit of
/// each, then the POI-fixed fit with the local parameters started at the free
/// fit's values, and the restart of a free fit caught in a local minimum);
/// the GPU path uses it for toys it hands back to the CPU.
pub(crate) fn records_for<L: Likelihood>(
    p: &Problem<L>,
    toys: &[u32],
    data: &[L::Data],
    c: &Chunk<'_>,
) -> Result<Vec<ToyRecord>> {
    let (kind, mu, free, fixed, opts) = (c.kind, c.mu, c.free, c.fixed, c.opts);
    use rayon::prelude::*;
    let dref: Vec<&L::Data> = data.iter().collect();
    let free_specs: Vec<FitSpec> = (0..toys.len())
        .into_par_iter()
        .map(|_| free.clone())
        .collect();
    let first = p.fit_batch(&dref, &free_specs, opts)?;
    // the POI-fixed fits start with the local parameters (those of one bin's
    // block: staterror, shapesys) at the free fit's values, which already
    // follow the toy's own fluctuations (fewer iterations); the global ones
    // start at the generation point, as the free fit did (a global start
    // from the free fit can lead a multimodal fit into another basin)
    let lay = p.model.layout();
    let local: Vec<usize> = (0..lay.n)
        .filter(|&i| lay.inv[i] >= lay.n_global && !fixed.fixed[i])
        .collect();
    let fixed_specs: Vec<FitSpec> = first
        .par_iter()
        .map(|f| {
            let mut s = fixed.clone();
            if f.converged {
                for &i in &local {
                    s.init[i] = f.x[i];
                }
            }
            s
        })
        .collect();
    let fixeds = p.fit_batch(&dref, &fixed_specs, opts)?;
    // free fits, with the restart of one caught in a local minimum
    let mut frees = first;
    for k in 0..toys.len() {
        let (f, x) = (&frees[k], &fixeds[k]);
        let tol = 1e-9 * f.twice_nll.abs().max(1.0);
        if f.converged && x.converged && x.twice_nll < f.twice_nll - tol {
            // the free fit stopped in a local minimum: restart it from the fixed fit
            let mut s = free.clone();
            s.init.copy_from_slice(&x.x);
            let again = p.fitter.fit(p.model, &data[k], &s, opts)?;
            if again.converged && again.twice_nll < frees[k].twice_nll {
                frees[k] = again;
            }
        }
    }
    // q~ and t~ compare with the best fit at mu >= 0: where the free fit is
    // below 0 (a POI lower bound below 0), with the fit at 0, as for the
    // observed data (`teststat::finish_pair`)
    let below: Vec<usize> = (0..toys.len())
        .filter(|&k| frees[k].converged && kind.needs_fit_at_zero(frees[k].x[p.poi]))
        .collect();
    let mut ref_fit: Vec<Option<FitResult>> = vec![None; toys.len()];
    if !below.is_empty() {
        let specs0: Vec<FitSpec> = below
            .iter()
            .map(|&k| {
                let mut s = fixed.clone().fix(p.poi, 0.0);
                s.init.copy_from_slice(&frees[k].x);
                s.init[p.poi] = 0.0;
                s
            })
            .collect();
        let d0: Vec<&L::Data> = below.iter().map(|&k| &data[k]).collect();
        for (k, r) in below.iter().zip(p.fit_batch(&d0, &specs0, opts)?) {
            ref_fit[*k] = Some(r);
        }
    }
    toys.iter()
        .enumerate()
        .map(|(k, &t)| {
            let (free_fit, x) = (&frees[k], &fixeds[k]);
            let tol = 1e-9 * free_fit.twice_nll.abs().max(1.0);
            let ok = free_fit.converged && x.converged && x.twice_nll >= free_fit.twice_nll - tol;
            let mu_hat = free_fit.x[p.poi];
            let (ok, base) = match &ref_fit[k] {
                Some(r) => (ok && r.converged, r.twice_nll),
                None => (ok, free_fit.twice_nll),
            };
            let t_val = (x.twice_nll - base).max(0.0);
            Ok(ToyRecord {
                toy: t,
                stat: ok.then(|| kind.from_fits(mu, mu_hat, t_val)),
                mu_hat,
                twice_nll_free: free_fit.twice_nll,
                twice_nll_fixed: x.twice_nll,
                status_free: free_fit.status,
                status_fixed: x.status,
            })
        })
        .collect()
}

/// numpy's linear-interpolation percentile of sorted values (`q` in percent).
pub fn percentile(sorted: &[f64], q: f64) -> f64 {
    let n = sorted.len();
    if n == 0 {
        return f64::NAN;
    }
    let pos = (n - 1) as f64 * q / 100.0;
    let lo = pos.floor() as usize;
    let hi = (lo + 1).min(n - 1);
    let frac = pos - lo as f64;
    sorted[lo] + (sorted[hi] - sorted[lo]) * frac
}

/// Fraction of `sorted` values `>= x`.
fn tail(sorted: &[f64], x: f64) -> f64 {
    let idx = sorted.partition_point(|v| *v < x);
    (sorted.len() - idx) as f64 / sorted.len() as f64
}

/// Toy-based p-values and expected band from a (whole or merged) run.
pub fn toy_cls(run: &ToyRun) -> Result<ToyCls> {
    let valid = |rs: &[ToyRecord]| {
        let mut v: Vec<f64> = rs.iter().filter_map(|r| r.stat).collect();
        v.sort_by(f64::total_cmp);
        v
    };
    let sb = valid(&run.sig_bkg);
    let b = valid(&run.bkg);
    let failed_sb = (run.sig_bkg.len() - sb.len()) as u32;
    let failed_b = (run.bkg.len() - b.len()) as u32;
    if sb.is_empty() || b.is_empty() {
        return Err(Error::Numerical(format!(
            "no usable toys: {failed_sb} signal-plus-background and {failed_b} background toys failed"
        )));
    }
    let q0 = run.test_stat == TestStat::Q0;
    let obs = run.test_stat_obs;
    let clsb = tail(&sb, obs);
    let clb = tail(&b, obs);
    let ratio = |a: f64, c: f64| if c > 0.0 { Some(a / c) } else { None };
    let cls_obs = if q0 { Some(clsb) } else { ratio(clsb, clb) };
    // expected band: p-values at each background toy's statistic, then percentiles
    let mut per_toy: Vec<f64> = b
        .iter()
        .map(|&s| {
            let a = tail(&sb, s);
            if q0 { a } else { a / tail(&b, s) }
        })
        .collect();
    per_toy.sort_by(f64::total_cmp);
    let pct = [2.27501319, 15.86552539, 50.0, 84.13447461, 97.72498681];
    let mut cls_exp = [None; 5];
    for (k, q) in pct.iter().enumerate() {
        let v = percentile(&per_toy, *q);
        cls_exp[k] = v.is_finite().then_some(v);
    }
    Ok(ToyCls {
        cls_obs,
        cls_exp,
        clsb_obs: clsb,
        clb_obs: clb,
        test_stat_obs: obs,
        n_toys: run.n_toys,
        n_failed: failed_sb + failed_b,
        n_failed_sig_bkg: failed_sb,
        n_failed_bkg: failed_b,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_match_numpy() {
        let v = [1.0, 2.0, 3.0, 4.0];
        assert_eq!(percentile(&v, 50.0), 2.5);
        assert_eq!(percentile(&v, 0.0), 1.0);
        assert_eq!(percentile(&v, 100.0), 4.0);
        assert!((percentile(&v, 2.27501319) - 1.0682503957).abs() < 1e-9);
    }

    #[test]
    fn shard_ranges_tile_the_run() {
        let mut next = 0;
        for i in 0..7 {
            let (a, b) = shard_range(1000, Some((i, 7))).unwrap();
            assert_eq!(a, next);
            next = b;
        }
        assert_eq!(next, 1000);
        assert!(shard_range(10, Some((3, 3))).is_err());
    }
}
