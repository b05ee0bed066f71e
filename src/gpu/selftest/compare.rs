//! The selftest's comparisons of batched evaluations (value, gradient,
//! Hessian, Fisher information) and fits with the CPU kernel and minimiser.

use super::{Report, SelftestOptions, rel_dev};
use crate::error::Result;
use crate::fit::{self, FitOptions, FitSpec};
use crate::gpu::exec::{Backend, EvalMode, Gpu};
use crate::model::{Dataset, HistFactoryModel, Likelihood};
use crate::rng::Stream;

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
pub(super) fn check_eval<B: Backend>(
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
        for (dev, what) in
            devs.into_iter()
                .zip(["twice_nll", "gradient", "Hessian", "Fisher information"])
        {
            rep.check(
                name,
                &format!("{what} ({label})"),
                dev,
                1e-10,
                detail.clone(),
            );
        }
    }
    Ok(())
}

/// Compare fits with the CPU minimiser.
pub(super) fn check_fits<B: Backend>(
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
