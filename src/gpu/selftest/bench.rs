//! The selftest's benchmark: batched evaluations at several batch sizes,
//! the evaluation kernel alone, and a toy run, with the evaluation rate
//! turned into device-memory traffic and f64 throughput.

use super::{BenchRow, Report, SelftestOptions, qtilde_toys};
use crate::error::Result;
use crate::fit::FitOptions;
use crate::gpu::exec::{Backend, EvalMode, Gpu, run_toys};
use crate::infer::Problem;
use crate::model::{HistFactoryModel, Likelihood};
use std::time::Instant;

/// Time evaluations and a toy run.
pub(super) fn bench<B: Backend>(
    gpu: &Gpu<B>,
    m: &HistFactoryModel,
    name: &str,
    opts: &SelftestOptions,
    rep: &mut Report,
) -> Result<()> {
    let data = m.observed();
    let cost = gpu.dm.eval_cost(false, m);
    for &t in &opts.bench_sizes {
        let th: Vec<f64> = (0..t).flat_map(|_| m.init().iter().copied()).collect();
        gpu.eval_batch(&th, &[data], EvalMode::Grad)?; // warm-up (allocations, caches)
        let reps = (100_000 / t.max(1)).clamp(1, 50);
        let t0 = Instant::now();
        for _ in 0..reps {
            gpu.eval_batch(&th, &[data], EvalMode::Grad)?;
        }
        let dt = t0.elapsed().as_secs_f64();
        eprintln!("selftest: {name}: {t} evaluations x {reps} in {dt:.2} s");
        let what = "twice_nll + gradient evaluations";
        rep.bench.push(eval_row(name, what, t, t * reps, dt, cost));
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
            let kcost = gpu.dm.eval_cost(hess, m);
            let (n, dt, reps) = gpu.time_eval_kernel(m.init(), data, mode, t)?;
            eprintln!("selftest: {name}: {what}, {n} members x {reps} in {dt:.2} s");
            rep.bench.push(eval_row(name, what, n, n * reps, dt, kcost));
        }
    }
    if opts.bench_toys > 0 && m.poi().is_some() {
        let pr = Problem::new(m, data)?;
        let settings = qtilde_toys(opts.bench_toys, opts.seed + 1);
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
    Ok(())
}

/// A row of the evaluation benchmark: `evals` evaluations of `batch` members
/// in `dt` seconds, at `cost` (f64 operations, bytes) per evaluation.
fn eval_row(
    name: &str,
    what: &str,
    batch: usize,
    evals: usize,
    dt: f64,
    cost: (f64, f64),
) -> BenchRow {
    let rate = evals as f64 / dt;
    BenchRow {
        model: name.to_string(),
        what: what.into(),
        batch,
        per_second: rate,
        seconds: dt,
        gbytes_per_s: Some(rate * cost.1 / 1e9),
        gflops: Some(rate * cost.0 / 1e9),
    }
}
