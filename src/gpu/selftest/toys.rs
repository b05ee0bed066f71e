//! The selftest's toy comparisons: toy datasets drawn on the device against
//! the CPU's, and toy CLs from a CPU and a GPU toy run with the same seed.

use super::{Report, SelftestOptions, qtilde_toys, rel_dev};
use crate::error::Result;
use crate::fit::FitOptions;
use crate::gpu::exec::{Backend, Gpu, run_toys};
use crate::infer::Problem;
use crate::infer::toys::{self, ToyCls};
use crate::model::{Dataset, HistFactoryModel, Likelihood};

/// Compare toy datasets and toy CLs with the CPU.
pub(super) fn check_toys<B: Backend>(
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
    let settings = qtilde_toys(opts.toys, opts.seed);
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
