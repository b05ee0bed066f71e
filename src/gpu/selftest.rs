//! `gradfit selftest`: the GPU against the CPU on a model, and a short benchmark.
//!
//! Checks (each records its measured deviation and tolerance):
//! - batched evaluation at random points (observed and Asimov data): twice_nll,
//!   gradient, exact Hessian and Fisher information, relative deviation
//!   `max |gpu - cpu| / max |cpu|` at most 1e-10;
//! - fits (free, POI fixed at 0 and 1, on observed and Asimov data): twice_nll
//!   within 1e-6 and the same success/failure;
//! - toys: the datasets the device draws against the CPU's (the fraction
//!   bit-identical is reported; per-bin means must agree within 5 standard
//!   errors), and toy CLs (observed and expected band) from a CPU and a GPU
//!   toy run with the same seed, within 3 standard errors.
//!
//! The benchmark times twice_nll + gradient evaluations at several batch
//! sizes and a toy run (fits per second), and turns the evaluation rate into
//! device-memory traffic and f64 throughput from the kernel's operation counts.

use super::exec::{Backend, EvalMode, Gpu, run_toys};
use crate::error::Result;
use crate::fit::{self, FitOptions, FitSpec};
use crate::infer::Problem;
use crate::infer::TestStat;
use crate::infer::toys::{self, ToyCls, ToySettings};
use crate::model::{Dataset, HistFactoryModel, Likelihood};
use crate::rng::Stream;
use serde::Serialize;
use std::time::Instant;

/// What the selftest does.
#[derive(Debug, Clone)]
pub struct SelftestOptions {
    /// Random evaluation points per dataset.
    pub points: usize,
    /// Toys per hypothesis in the CPU/GPU toy comparison (0: skip it).
    pub toys: u32,
    /// Toys drawn for the dataset comparison.
    pub sample_toys: u32,
    /// Batch sizes of the evaluation benchmark (empty: no benchmark).
    pub bench_sizes: Vec<usize>,
    /// Toys per hypothesis of the toy benchmark (0: none).
    pub bench_toys: u32,
    /// Seed of every random choice.
    pub seed: u64,
}

impl Default for SelftestOptions {
    fn default() -> Self {
        SelftestOptions {
            points: 16,
            toys: 300,
            sample_toys: 2000,
            bench_sizes: vec![1, 1000, 100_000],
            bench_toys: 5000,
            seed: 20240917,
        }
    }
}

/// One comparison.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    /// Model name.
    pub model: String,
    /// What was compared.
    pub what: String,
    /// Measured deviation.
    pub value: f64,
    /// Largest deviation allowed.
    pub tolerance: f64,
    /// Whether it passed.
    pub pass: bool,
    /// Details (counts, fractions).
    pub detail: String,
}

/// One benchmark result.
#[derive(Debug, Clone, Serialize)]
pub struct BenchRow {
    /// Model name.
    pub model: String,
    /// What was timed.
    pub what: String,
    /// Batch size (members).
    pub batch: usize,
    /// Rate per second (evaluations or fits).
    pub per_second: f64,
    /// Wall time of the timed part.
    pub seconds: f64,
    /// Estimated device-memory traffic (GB/s), evaluations only.
    pub gbytes_per_s: Option<f64>,
    /// Estimated f64 throughput (GFLOP/s), evaluations only.
    pub gflops: Option<f64>,
}

/// Everything a selftest found.
#[derive(Debug, Clone, Serialize, Default)]
pub struct Report {
    /// The device.
    pub device: String,
    /// Comparisons.
    pub checks: Vec<Check>,
    /// Benchmark rows.
    pub bench: Vec<BenchRow>,
    /// Notes (skipped parts and why).
    pub notes: Vec<String>,
}

impl Report {
    /// True when every check passed.
    pub fn passed(&self) -> bool {
        self.checks.iter().all(|c| c.pass)
    }

    fn check(&mut self, model: &str, what: &str, value: f64, tolerance: f64, detail: String) {
        self.checks.push(Check {
            model: model.to_string(),
            what: what.to_string(),
            value,
            tolerance,
            pass: value <= tolerance,
            detail,
        });
    }
}

/// `max |a - b| / max |b|` (0 for two empty or all-zero vectors; infinite when
/// finiteness differs).
pub fn rel_dev(a: &[f64], b: &[f64]) -> f64 {
    if a.len() != b.len() {
        return f64::INFINITY;
    }
    let mut num: f64 = 0.0;
    let mut den: f64 = 0.0;
    for (x, y) in a.iter().zip(b) {
        if x.is_finite() != y.is_finite() {
            return f64::INFINITY;
        }
        if !y.is_finite() {
            continue;
        }
        num = num.max((x - y).abs());
        den = den.max(y.abs());
    }
    if num == 0.0 {
        0.0
    } else {
        num / den.max(f64::MIN_POSITIVE)
    }
}

/// Random points around the model's start, inside the bounds, where the CPU
/// likelihood is finite.
fn points(m: &HistFactoryModel, data: &Dataset, n: usize, seed: u64) -> Vec<f64> {
    let p = m.n_pars();
    let mut out = Vec::with_capacity(n * p);
    let mut k = 0u32;
    while out.len() < n * p && k < 100 * n as u32 + 100 {
        let mut s = Stream::new(seed, k, 7, 0);
        k += 1;
        let x: Vec<f64> = (0..p)
            .map(|i| {
                let (lo, hi) = m.bounds[i];
                let w = m.prefit_sigma(i).max(0.1 * m.init[i].abs()).max(0.05);
                let u = 2.0 * s.uniform() - 1.0;
                (m.init[i] + 0.8 * u * w).clamp(lo, hi)
            })
            .collect();
        if m.twice_nll(&x, data).is_finite() {
            out.extend(x);
        }
    }
    out
}

/// Compare batched evaluations (value, gradient, Hessian, Fisher) with the CPU kernel.
fn check_eval<B: Backend>(
    gpu: &Gpu<B>,
    m: &HistFactoryModel,
    name: &str,
    opts: &SelftestOptions,
    rep: &mut Report,
) -> Result<()> {
    let obs = m.observed().clone();
    let asimov = m.asimov(m.init());
    let p = m.n_pars();
    for (label, data) in [("observed", &obs), ("Asimov", &asimov)] {
        let th = points(m, data, opts.points, opts.seed);
        let t = th.len() / p;
        if t == 0 {
            rep.notes.push(format!(
                "{name}: no finite random point on the {label} data"
            ));
            continue;
        }
        // alternate the two datasets per member on the GPU (one dataset per member)
        let ds: Vec<&Dataset> = vec![data; t];
        let mut devs = [0.0f64; 5];
        for (mi, mode) in [
            EvalMode::Value,
            EvalMode::Grad,
            EvalMode::Hessian,
            EvalMode::Fisher,
        ]
        .into_iter()
        .enumerate()
        {
            let out = if mi % 2 == 0 {
                gpu.eval_batch(&th, &[data], mode)?
            } else {
                gpu.eval_batch(&th, &ds, mode)?
            };
            let mut s = m.scratch();
            for k in 0..t {
                let x = &th[k * p..(k + 1) * p];
                let mut g = vec![0.0; p];
                let mut hb = vec![0.0; p * p];
                let fisher = mode == EvalMode::Fisher;
                let f = match mode {
                    EvalMode::Value => m.eval(x, data, &mut s, None, None),
                    EvalMode::Grad => m.eval(x, data, &mut s, Some(&mut g), None),
                    _ => m.eval_block(x, data, &mut s, Some(&mut g), Some(&mut hb), fisher),
                };
                devs[0] = devs[0].max(rel_dev(&[out.f[k]], &[f]));
                if let Some(gg) = &out.grad {
                    devs[1] = devs[1].max(rel_dev(&gg[k * p..(k + 1) * p], &g));
                }
                if let Some(hh) = &out.hess {
                    let nh = gpu.dm.n_hess;
                    let d = rel_dev(&hh[k * nh..(k + 1) * nh], &gpu.dm.pack(&hb));
                    let slot = if fisher { 3 } else { 2 };
                    devs[slot] = devs[slot].max(d);
                }
            }
        }
        let detail = format!("{t} points, {label} data");
        rep.check(
            name,
            &format!("twice_nll ({label})"),
            devs[0],
            1e-10,
            detail.clone(),
        );
        rep.check(
            name,
            &format!("gradient ({label})"),
            devs[1],
            1e-10,
            detail.clone(),
        );
        rep.check(
            name,
            &format!("Hessian ({label})"),
            devs[2],
            1e-10,
            detail.clone(),
        );
        rep.check(
            name,
            &format!("Fisher information ({label})"),
            devs[3],
            1e-10,
            detail,
        );
    }
    Ok(())
}

/// Compare fits with the CPU minimiser.
fn check_fits<B: Backend>(
    gpu: &Gpu<B>,
    m: &HistFactoryModel,
    name: &str,
    rep: &mut Report,
) -> Result<()> {
    let obs = m.observed().clone();
    let free = FitSpec::from_model(m);
    let mut specs = vec![free.clone()];
    if let Some(poi) = m.poi() {
        specs.push(free.clone().fix(poi, 0.0));
        specs.push(free.clone().fix(poi, 1.0));
    }
    let mut asimov_pars = m.init().to_vec();
    if let Some(poi) = m.poi() {
        asimov_pars[poi] = 0.0;
    }
    let asimov = m.asimov(&asimov_pars);
    let opts = FitOptions::default();
    let mut worst: f64 = 0.0;
    let mut mismatched = Vec::new();
    let mut n = 0;
    let mut iters = (0, 0);
    for (label, data) in [("observed", &obs), ("Asimov", &asimov)] {
        let cpu = fit::fit_batch(m, &[data], &specs, &opts);
        let gpuf = gpu.fit_batch(&[data], &specs, &opts)?;
        for (k, (c, g)) in cpu.iter().zip(&gpuf).enumerate() {
            n += 1;
            iters.0 += c.iterations;
            iters.1 += g.iterations;
            if c.converged != g.converged {
                mismatched.push(format!(
                    "{label} fit {k}: cpu {:?}, gpu {:?}",
                    c.status, g.status
                ));
                continue;
            }
            if c.converged {
                worst = worst.max((c.twice_nll - g.twice_nll).abs());
                if let (Some(a), Some(b)) = (&c.covariance, &g.covariance) {
                    let d = rel_dev(b, a);
                    if d > 1e-5 {
                        mismatched.push(format!("{label} fit {k}: covariance differs by {d:.2e}"));
                    }
                }
            }
        }
    }
    if !mismatched.is_empty() {
        worst = f64::INFINITY;
    }
    rep.check(
        name,
        "fits: |twice_nll gpu - cpu|",
        worst,
        1e-6,
        format!(
            "{n} fits (free, POI fixed at 0 and 1; observed and Asimov data); iterations cpu {} gpu {}{}",
            iters.0,
            iters.1,
            if mismatched.is_empty() { String::new() } else { format!("; {}", mismatched.join("; ")) }
        ),
    );
    Ok(())
}

/// Compare toy datasets and toy CLs with the CPU.
fn check_toys<B: Backend>(
    gpu: &Gpu<B>,
    m: &HistFactoryModel,
    name: &str,
    opts: &SelftestOptions,
    rep: &mut Report,
) -> Result<()> {
    let Some(poi) = m.poi() else {
        rep.notes
            .push(format!("{name}: no POI, toy comparison skipped"));
        return Ok(());
    };
    let mut pars = m.init().to_vec();
    pars[poi] = 1.0;
    let n = opts.sample_toys;
    if n > 0 {
        let gd = gpu.sample_toys(m, &pars, opts.seed, crate::rng::purpose::SIG_BKG, 0..n)?;
        let gen_ = m.generator(&pars);
        let cd: Vec<Dataset> = (0..n)
            .map(|t| m.sample(&gen_, opts.seed, t, crate::rng::purpose::SIG_BKG))
            .collect();
        let nv = m.n_main + m.n_aux();
        let (mut same_sets, mut same_vals, mut total_vals) = (0usize, 0usize, 0usize);
        let mut worst_z: f64 = 0.0;
        let mut const_dev: f64 = 0.0;
        for (a, b) in gd.iter().zip(&cd) {
            let va = a.main.iter().chain(&a.aux);
            let vb = b.main.iter().chain(&b.aux);
            let eq = va
                .zip(vb)
                .filter(|(x, y)| x.to_bits() == y.to_bits())
                .count();
            same_vals += eq;
            total_vals += nv;
            if eq == nv {
                same_sets += 1;
            }
            const_dev = const_dev.max(rel_dev(&[a.constant], &[b.constant]));
        }
        // per-variable means: two-sample z statistic
        for v in 0..nv {
            let get = |d: &Dataset| {
                if v < m.n_main {
                    d.main[v]
                } else {
                    d.aux[v - m.n_main]
                }
            };
            let stats = |ds: &[Dataset]| {
                let k = ds.len() as f64;
                let mean = ds.iter().map(get).sum::<f64>() / k;
                let var =
                    ds.iter().map(|d| (get(d) - mean).powi(2)).sum::<f64>() / (k - 1.0).max(1.0);
                (mean, var / k)
            };
            let (ma, va) = stats(&gd);
            let (mb, vb) = stats(&cd);
            let se = (va + vb).sqrt();
            if se > 0.0 {
                worst_z = worst_z.max((ma - mb).abs() / se);
            } else if ma != mb {
                worst_z = f64::INFINITY;
            }
        }
        rep.check(
            name,
            "toy data: largest |z| of per-variable means",
            worst_z,
            5.0,
            format!(
                "{n} toys: {same_sets} datasets bit-identical to the CPU's, {same_vals} of {total_vals} values; \
                 dataset constants within {const_dev:.1e}"
            ),
        );
    }
    if opts.toys == 0 {
        return Ok(());
    }
    let p = Problem::new(m, m.observed())?;
    let settings = ToySettings {
        mu: 1.0,
        test_stat: TestStat::QTilde,
        n_toys: opts.toys,
        seed: opts.seed,
        shard: None,
        batch: 1024,
        model_digest: String::new(),
        toy_max_iter: None,
    };
    let fo = FitOptions::default();
    let cpu = toys::run_toys(&p, &settings, &fo, &|_, _| {})?;
    let gpur = run_toys(gpu, &p, &settings, &fo, &|_, _| {})?;
    let same = cpu
        .sig_bkg
        .iter()
        .chain(&cpu.bkg)
        .zip(gpur.sig_bkg.iter().chain(&gpur.bkg))
        .filter(|(a, b)| match (a.stat, b.stat) {
            (Some(x), Some(y)) => (x - y).abs() <= 1e-6 * x.abs().max(1.0),
            (None, None) => true,
            _ => false,
        })
        .count();
    let cc = toys::toy_cls(&cpu)?;
    let gc = toys::toy_cls(&gpur)?;
    let nt = opts.toys as f64;
    let (z, detail) = cls_deviation(&cc, &gc, nt);
    rep.check(
        name,
        "toy CLs (qtilde, mu = 1): largest |gpu - cpu| / stat. error",
        z,
        3.0,
        format!(
            "{} toys per hypothesis; {same} of {} toy statistics agree within 1e-6; {detail}",
            opts.toys,
            2 * opts.toys
        ),
    );
    Ok(())
}

/// Largest deviation of observed and expected CLs in units of their statistical error.
fn cls_deviation(c: &ToyCls, g: &ToyCls, n: f64) -> (f64, String) {
    let se = |p: f64| (p * (1.0 - p) / n).sqrt();
    let mut worst: f64 = 0.0;
    let mut parts = Vec::new();
    let mut cmp = |label: &str, a: Option<f64>, b: Option<f64>, err: f64| match (a, b) {
        (Some(x), Some(y)) => {
            // two independent estimates would differ by sqrt(2) times the error;
            // a floor of 1/n keeps identical discrete estimates finite
            let e = (2.0f64.sqrt() * err).max(1.0 / n);
            worst = worst.max((x - y).abs() / e);
            parts.push(format!("{label} cpu {x:.4} gpu {y:.4}"));
        }
        (None, None) => {}
        _ => {
            worst = f64::INFINITY;
            parts.push(format!("{label}: defined on one device only"));
        }
    };
    let err_obs = match c.cls_obs {
        Some(v) if c.clb_obs > 0.0 => {
            v * ((se(c.clsb_obs) / c.clsb_obs.max(1.0 / n)).powi(2)
                + (se(c.clb_obs) / c.clb_obs).powi(2))
            .sqrt()
        }
        _ => 0.0,
    };
    cmp("CLs obs", c.cls_obs, g.cls_obs, err_obs);
    for k in 0..5 {
        let e = c.cls_exp[k].map(se).unwrap_or(0.0);
        cmp(&format!("CLs exp[{k}]"), c.cls_exp[k], g.cls_exp[k], e);
    }
    (worst, parts.join(", "))
}

/// Time evaluations and a toy run.
fn bench<B: Backend>(
    gpu: &Gpu<B>,
    m: &HistFactoryModel,
    name: &str,
    opts: &SelftestOptions,
    rep: &mut Report,
) -> Result<()> {
    let p = m.n_pars();
    let data = m.observed();
    let (flops, bytes) = gpu.dm.eval_cost(false, m);
    for &t in &opts.bench_sizes {
        let th: Vec<f64> = (0..t).flat_map(|_| m.init().iter().copied()).collect();
        gpu.eval_batch(&th, &[data], EvalMode::Grad)?; // warm-up (allocations, caches)
        let reps = (100_000 / t.max(1)).clamp(1, 50);
        let t0 = Instant::now();
        for _ in 0..reps {
            gpu.eval_batch(&th, &[data], EvalMode::Grad)?;
        }
        let dt = t0.elapsed().as_secs_f64();
        let rate = (t * reps) as f64 / dt;
        eprintln!("selftest: {name}: {t} evaluations x {reps} in {dt:.2} s");
        rep.bench.push(BenchRow {
            model: name.to_string(),
            what: "twice_nll + gradient evaluations".into(),
            batch: t,
            per_second: rate,
            seconds: dt,
            gbytes_per_s: Some(rate * bytes / 1e9),
            gflops: Some(rate * flops / 1e9),
        });
    }
    // the evaluation kernel alone (no transfers), with the gradient and with
    // the exact Hessian (what each minimiser iteration evaluates)
    if let Some(&t) = opts.bench_sizes.iter().max().filter(|&&t| t > 1) {
        for (mode, what) in [
            (
                EvalMode::Grad,
                "evaluation kernel alone: twice_nll + gradient",
            ),
            (
                EvalMode::Hessian,
                "evaluation kernel alone: + exact Hessian",
            ),
        ] {
            let hess = mode == EvalMode::Hessian;
            let (kflops, kbytes) = gpu.dm.eval_cost(hess, m);
            let (n, dt, reps) = gpu.time_eval_kernel(m.init(), data, mode, t)?;
            let rate = (n * reps) as f64 / dt;
            eprintln!("selftest: {name}: {what}, {n} members x {reps} in {dt:.2} s");
            rep.bench.push(BenchRow {
                model: name.to_string(),
                what: what.into(),
                batch: n,
                per_second: rate,
                seconds: dt,
                gbytes_per_s: Some(rate * kbytes / 1e9),
                gflops: Some(rate * kflops / 1e9),
            });
        }
    }
    if opts.bench_toys > 0 && m.poi().is_some() {
        let pr = Problem::new(m, data)?;
        let settings = ToySettings {
            mu: 1.0,
            test_stat: TestStat::QTilde,
            n_toys: opts.bench_toys,
            seed: opts.seed + 1,
            shard: None,
            batch: 1024,
            model_digest: String::new(),
            toy_max_iter: None,
        };
        let t0 = Instant::now();
        let r = run_toys(gpu, &pr, &settings, &FitOptions::default(), &|_, _| {})?;
        let dt = t0.elapsed().as_secs_f64();
        let failed = r
            .sig_bkg
            .iter()
            .chain(&r.bkg)
            .filter(|t| t.stat.is_none())
            .count();
        let fits = 4.0 * opts.bench_toys as f64;
        rep.bench.push(BenchRow {
            model: name.to_string(),
            what: format!(
                "toy fits ({} toys x 2 hypotheses x 2 fits, {failed} toys failed)",
                opts.bench_toys
            ),
            batch: gpu.toy_batch(opts.bench_toys as usize),
            per_second: fits / dt,
            seconds: dt,
            gbytes_per_s: None,
            gflops: None,
        });
    }
    let _ = p;
    Ok(())
}

/// Run every check (and, when asked, the benchmark) for one model.
pub fn run_model<B: Backend>(
    gpu: &Gpu<B>,
    m: &HistFactoryModel,
    name: &str,
    opts: &SelftestOptions,
    rep: &mut Report,
) -> Result<()> {
    timed(name, "evaluations", || check_eval(gpu, m, name, opts, rep))?;
    timed(name, "fits", || check_fits(gpu, m, name, rep))?;
    timed(name, "toys", || check_toys(gpu, m, name, opts, rep))?;
    if !opts.bench_sizes.is_empty() || opts.bench_toys > 0 {
        timed(name, "benchmark", || bench(gpu, m, name, opts, rep))?;
    }
    Ok(())
}

/// Run one phase of a model's selftest and report its wall time on stderr
/// (long selftests show where they are).
fn timed(name: &str, phase: &str, f: impl FnOnce() -> Result<()>) -> Result<()> {
    let t0 = Instant::now();
    let r = f();
    eprintln!(
        "selftest: {name}: {phase} {:.1} s",
        t0.elapsed().as_secs_f64()
    );
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_deviation() {
        assert_eq!(rel_dev(&[1.0, 2.0], &[1.0, 2.0]), 0.0);
        assert!((rel_dev(&[1.0, 2.0 + 2e-10], &[1.0, 2.0]) - 1e-10).abs() < 1e-15);
        assert_eq!(rel_dev(&[f64::INFINITY], &[1.0]), f64::INFINITY);
        assert_eq!(rel_dev(&[1.0], &[1.0, 2.0]), f64::INFINITY);
    }
}
