//! Pulls, impacts, ranking, yields and plots on self-contained models: the
//! shipped example workspace and an exactly quadratic likelihood built here.

mod common;
mod report_util;
use common::*;
use gradfit::fit::{self, FitOptions, FitSpec};
use gradfit::model::{HistFactoryModel, Likelihood, ModelOptions};
use gradfit::report::{self, PostFit, RefitOptions, ShiftKind};
use gradfit::workspace::ReadOptions;
use report_util::*;
use serde_json::Value;
use std::path::{Path, PathBuf};

fn example() -> HistFactoryModel {
    HistFactoryModel::load(
        &repo("examples/workspaces/two-channel.json"),
        &[],
        &ReadOptions::default(),
        &ModelOptions::default(),
    )
    .unwrap()
}

fn example_fit(m: &HistFactoryModel) -> PostFit {
    let post = PostFit::fit(
        m,
        m.observed(),
        &FitSpec::from_model(m),
        &report::best_fit_options(),
    )
    .unwrap();
    assert!(post.converged, "{:?}", post.status);
    post
}

// ------------------------------------------------------------ a quadratic likelihood

/// twice_nll = (theta - m)^T A (theta - m): exactly quadratic in every parameter,
/// so refits are exactly the linear response the Hessian predicts.
struct Quadratic {
    names: Vec<String>,
    a: Vec<f64>,
    m: Vec<f64>,
    init: Vec<f64>,
    bounds: Vec<(f64, f64)>,
    fixed: Vec<bool>,
    layout: gradfit::model::HessianLayout,
}

impl Quadratic {
    fn new(p: usize, seed: u64) -> Self {
        let mut rng = TestRng::new(seed);
        // A = L L^T + p I with a random L: symmetric positive definite, correlated
        let l: Vec<f64> = (0..p * p).map(|_| rng.uniform() * 2.0 - 1.0).collect();
        let mut a = vec![0.0; p * p];
        for i in 0..p {
            for j in 0..p {
                a[i * p + j] = (0..p).map(|k| l[i * p + k] * l[j * p + k]).sum::<f64>()
                    + if i == j { 0.5 } else { 0.0 };
            }
        }
        let m: Vec<f64> = (0..p).map(|_| rng.uniform() * 2.0 - 1.0).collect();
        Quadratic {
            names: (0..p).map(|i| format!("q{i}")).collect(),
            a,
            m,
            init: vec![0.0; p],
            bounds: vec![(-50.0, 50.0); p],
            fixed: vec![false; p],
            layout: gradfit::model::HessianLayout::dense(p),
        }
    }
}

impl Likelihood for Quadratic {
    type Data = ();
    type Scratch = Vec<f64>;
    type Generator = ();
    fn asimov(&self, _theta: &[f64]) {}
    fn generator(&self, _theta: &[f64]) {}
    fn sample(&self, _g: &(), _seed: u64, _toy: u32, _purpose: u32) {}
    fn layout(&self) -> &gradfit::model::HessianLayout {
        &self.layout
    }
    fn par_names(&self) -> &[String] {
        &self.names
    }
    fn init(&self) -> &[f64] {
        &self.init
    }
    fn bounds(&self) -> &[(f64, f64)] {
        &self.bounds
    }
    fn fixed(&self) -> &[bool] {
        &self.fixed
    }
    fn poi(&self) -> Option<usize> {
        Some(0)
    }
    fn observed(&self) -> &() {
        &()
    }
    fn scratch(&self) -> Vec<f64> {
        vec![0.0; self.names.len()]
    }
    fn eval(
        &self,
        theta: &[f64],
        _data: &(),
        r: &mut Vec<f64>,
        grad: Option<&mut [f64]>,
        hess: Option<&mut [f64]>,
    ) -> f64 {
        let p = self.names.len();
        for i in 0..p {
            r[i] = theta[i] - self.m[i];
        }
        let mut f = 0.0;
        let mut ar = vec![0.0; p];
        for i in 0..p {
            ar[i] = (0..p).map(|j| self.a[i * p + j] * r[j]).sum();
            f += r[i] * ar[i];
        }
        if let Some(g) = grad {
            for i in 0..p {
                g[i] = 2.0 * ar[i];
            }
        }
        if let Some(h) = hess {
            for k in 0..p * p {
                h[k] = 2.0 * self.a[k];
            }
        }
        f
    }
}

/// Inverse of a small dense matrix by Gauss-Jordan with partial pivoting (independent of faer).
fn invert(a: &[f64], n: usize) -> Vec<f64> {
    let mut m = a.to_vec();
    let mut inv: Vec<f64> = (0..n * n)
        .map(|k| if k / n == k % n { 1.0 } else { 0.0 })
        .collect();
    for c in 0..n {
        let piv = (c..n)
            .max_by(|&x, &y| m[x * n + c].abs().total_cmp(&m[y * n + c].abs()))
            .unwrap();
        for k in 0..n {
            m.swap(c * n + k, piv * n + k);
            inv.swap(c * n + k, piv * n + k);
        }
        let d = m[c * n + c];
        for k in 0..n {
            m[c * n + k] /= d;
            inv[c * n + k] /= d;
        }
        for r in 0..n {
            if r != c {
                let f = m[r * n + c];
                for k in 0..n {
                    m[r * n + k] -= f * m[c * n + k];
                    inv[r * n + k] -= f * inv[c * n + k];
                }
            }
        }
    }
    inv
}

#[test]
fn quadratic_model_refit_impacts_equal_hessian_impacts() {
    let p = 8;
    let q = Quadratic::new(p, 11);
    let spec = FitSpec::from_model(&q);
    let post = PostFit::fit(&q, &(), &spec, &report::best_fit_options()).unwrap();
    assert!(post.converged);
    for i in 0..p {
        assert!((post.x[i] - q.m[i]).abs() < 1e-9, "best fit {i}");
    }
    // independent covariance: C = 2 (2A)^-1 = A^-1
    let c = invert(&q.a, p);
    // pre-fit widths: arbitrary, one parameter "unconstrained"
    let sig: Vec<f64> = (0..p)
        .map(|i| if i == 3 { 0.0 } else { 0.4 + 0.15 * i as f64 })
        .collect();
    let hess = report::hessian_impacts(&post, 0, &sig);
    assert_eq!(hess.len(), p - 1);
    for h in &hess {
        let k = h.par;
        let sk = c[k * p + k].sqrt();
        let want = c[k] / sk;
        assert!(
            (h.hessian - want).abs() < 1e-10,
            "q{k}: {} vs {want}",
            h.hessian
        );
        assert!((h.hessian_prefit - want * sig[k] / sk).abs() < 1e-10);
        let nsbi = -q.a[k] / q.a[0] * sk;
        assert!((h.nsbi_gamma - nsbi).abs() < 1e-10, "nsbi q{k}");
    }
    let pars: Vec<usize> = hess.iter().map(|h| h.par).collect();
    let refit = report::refit_impacts(
        &q,
        &(),
        &post,
        &report::RefitPlan {
            poi: 0,
            pars: &pars,
            prefit_sigma: &sig,
        },
        &RefitOptions::default(),
        &mut |_, _| {},
    );
    for (h, r) in hess.iter().zip(&refit) {
        let k = h.par;
        assert_eq!(r.par, k);
        let up = r.get(ShiftKind::PostfitUp);
        let down = r.get(ShiftKind::PostfitDown);
        assert!(up.fitted && up.converged && !up.clipped);
        assert!(
            (up.impact - h.hessian).abs() < 1e-6,
            "q{k} post-fit up: refit {} vs hessian {}",
            up.impact,
            h.hessian
        );
        assert!((down.impact + h.hessian).abs() < 1e-6, "q{k} post-fit down");
        let pu = r.get(ShiftKind::PrefitUp);
        let pd = r.get(ShiftKind::PrefitDown);
        if sig[k] == 0.0 {
            assert!(!pu.fitted && !pd.fitted);
            assert_eq!(pu.impact, 0.0);
            assert_eq!(h.hessian_prefit, 0.0);
        } else {
            assert!(pu.fitted && pd.fitted);
            assert!((pu.value - (post.x[k] + sig[k])).abs() < 1e-15);
            assert!(
                (pu.impact - h.hessian_prefit).abs() < 1e-6,
                "q{k} pre-fit up"
            );
            assert!(
                (pd.impact + h.hessian_prefit).abs() < 1e-6,
                "q{k} pre-fit down"
            );
        }
    }
    // the ranking is sorted by the largest post-fit impact
    let rows = report::rank(hess, Some(refit));
    for w in rows.windows(2) {
        assert!(w[0].postfit_size() >= w[1].postfit_size());
    }
}

#[test]
fn ranking_ties_follow_the_hessian_impacts() {
    use report::{HessianImpact, RefitImpact, RefitShift};
    let h = |par: usize, x: f64| HessianImpact {
        par,
        hessian: x,
        hessian_prefit: x,
        nsbi_gamma: x,
    };
    let shift = |impact: f64| RefitShift {
        target: 0.0,
        value: 0.0,
        clipped: false,
        fitted: true,
        converged: true,
        poi: impact,
        impact,
        twice_nll: 0.0,
    };
    let r = |par: usize, up: f64, down: f64| RefitImpact {
        par,
        shifts: [shift(0.0), shift(0.0), shift(up), shift(down)],
    };
    // refit impacts: par 3 largest (by its down shift), then 0, 1, 2 tied at 0
    let rows = report::rank(
        vec![h(0, 0.1), h(1, -0.3), h(2, 0.2), h(3, 0.01)],
        Some(vec![
            r(0, 0.0, 0.0),
            r(1, 0.0, 0.0),
            r(2, 0.0, 0.0),
            r(3, 0.01, -0.5),
        ]),
    );
    let order: Vec<usize> = rows.iter().map(|x| x.par()).collect();
    assert_eq!(order, vec![3, 1, 2, 0]);
    let rows = report::rank(vec![h(0, 0.1), h(1, -0.3), h(2, 0.2)], None);
    let order: Vec<usize> = rows.iter().map(|x| x.par()).collect();
    assert_eq!(order, vec![1, 2, 0]);
}

#[test]
fn shifts_across_a_bound_are_clipped_and_marked() {
    let p = 5;
    let mut q = Quadratic::new(p, 5);
    let c = invert(&q.a, p);
    let k = 2;
    let sk = c[k * p + k].sqrt();
    // an upper bound a third of a post-fit sigma above the minimum
    let hi = q.m[k] + sk / 3.0;
    q.bounds[k] = (-50.0, hi);
    let post = PostFit::fit(
        &q,
        &(),
        &FitSpec::from_model(&q),
        &report::best_fit_options(),
    )
    .unwrap();
    let sig = vec![1.0; p];
    let r = &report::refit_impacts(
        &q,
        &(),
        &post,
        &report::RefitPlan {
            poi: 0,
            pars: &[k],
            prefit_sigma: &sig,
        },
        &RefitOptions::default(),
        &mut |_, _| {},
    )[0];
    let up = r.get(ShiftKind::PostfitUp);
    assert!(up.clipped, "the +sigma shift crosses the bound");
    assert_eq!(up.value, hi);
    assert!((up.target - (q.m[k] + sk)).abs() < 1e-9);
    // exact linear response to the clipped shift
    let want = c[k] / c[k * p + k] * (hi - post.x[k]);
    assert!((up.impact - want).abs() < 1e-6, "{} vs {want}", up.impact);
    let down = r.get(ShiftKind::PostfitDown);
    assert!(!down.clipped);
    assert!((down.impact + c[k] / sk).abs() < 1e-6);
    assert!(r.get(ShiftKind::PrefitUp).clipped);
}

#[test]
fn singular_hessian_is_an_error_not_a_panic() {
    let p = 3;
    let mut q = Quadratic::new(p, 2);
    // a flat direction: parameter 2 does not enter
    for i in 0..p {
        q.a[i * p + 2] = 0.0;
        q.a[2 * p + i] = 0.0;
    }
    let e = PostFit::fit(
        &q,
        &(),
        &FitSpec::from_model(&q),
        &report::best_fit_options(),
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("not positive definite"), "{e}");
    assert!(e.contains("q2"), "names the flat parameter: {e}");
}

// ------------------------------------------------------------ the example workspace

#[test]
fn batched_refits_equal_one_at_a_time_refits() {
    let m = example();
    let poi = m.poi.unwrap();
    let post = example_fit(&m);
    let sig = report::prefit_sigmas(&m, &post.fixed);
    let pars: Vec<usize> = (0..m.n_pars()).filter(|&k| k != poi).collect();
    let mut calls = Vec::new();
    let batch = report::refit_impacts(
        &m,
        m.observed(),
        &post,
        &report::RefitPlan {
            poi,
            pars: &pars,
            prefit_sigma: &sig,
        },
        &RefitOptions {
            batch: 7,
            ..RefitOptions::default()
        },
        &mut |d, t| calls.push((d, t)),
    );
    // progress: starts at 0, ends at the total, one call per batch
    let total = calls[0].1;
    assert_eq!(calls.first(), Some(&(0, total)));
    assert_eq!(calls.last(), Some(&(total, total)));
    assert_eq!(calls.len(), 1 + total.div_ceil(7));
    let mut fitted = 0;
    for r in &batch {
        let k = r.par;
        for kind in ShiftKind::ALL {
            let s = r.get(kind);
            let sigma = match kind {
                ShiftKind::PrefitUp | ShiftKind::PrefitDown => sig[k],
                _ => post.error(k),
            };
            let sign = match kind {
                ShiftKind::PrefitUp | ShiftKind::PostfitUp => 1.0,
                _ => -1.0,
            };
            let (lo, hi) = m.bounds[k];
            let v = (post.x[k] + sign * sigma).clamp(lo, hi);
            if sigma == 0.0 {
                assert!(!s.fitted && s.impact == 0.0, "{} {kind:?}", m.par_names[k]);
                continue;
            }
            fitted += 1;
            // the one-at-a-time refit, built here from the model
            let mut spec = FitSpec::from_model(&m);
            spec.init = post.x.clone();
            spec.fixed[k] = true;
            spec.init[k] = v;
            let one = fit::fit(
                &m,
                m.observed(),
                &spec,
                &FitOptions {
                    covariance: false,
                    ..FitOptions::default()
                },
            );
            assert!(one.converged && s.converged);
            assert_eq!(s.value, v);
            let want = one.x[poi] - post.x[poi];
            assert!(
                (s.impact - want).abs() < 1e-6,
                "{} {kind:?}: batch {} vs one {want}",
                m.par_names[k],
                s.impact
            );
            // a cold start (the model's inits) reaches the same minimum
            spec.init = m.init.clone();
            spec.init[k] = v;
            let cold = fit::fit(&m, m.observed(), &spec, &FitOptions::default());
            assert!(cold.converged);
            assert!(
                (cold.x[poi] - one.x[poi]).abs() < 1e-5,
                "{} {kind:?}: cold {} vs warm {}",
                m.par_names[k],
                cold.x[poi],
                one.x[poi]
            );
        }
    }
    assert!(fitted > 40, "refits ran: {fitted}");
    // clipped exactly when the intended value lies outside the bounds
    let clipped: Vec<&str> = batch
        .iter()
        .filter(|r| r.shifts.iter().any(|s| s.clipped))
        .map(|r| m.par_names[r.par].as_str())
        .collect();
    for r in &batch {
        for s in &r.shifts {
            let (lo, hi) = m.bounds[r.par];
            assert_eq!(s.clipped, s.target < lo || s.target > hi, "{clipped:?}");
        }
    }
}

#[test]
fn hessian_impacts_are_linearised_refits_on_the_example() {
    // Hessian impacts follow the refit impacts to first order: they agree to the
    // size of the non-linearity, far better for small shifts.
    let m = example();
    let poi = m.poi.unwrap();
    let post = example_fit(&m);
    let sig = report::prefit_sigmas(&m, &post.fixed);
    let hess = report::hessian_impacts(&post, poi, &sig);
    // small shifts: refit with theta_k = theta_hat + eps * sigma_k gives eps * impact
    let eps = 1e-3;
    let tiny: Vec<f64> = (0..m.n_pars()).map(|i| eps * post.error(i)).collect();
    let pars: Vec<usize> = hess.iter().map(|h| h.par).collect();
    let r = report::refit_impacts(
        &m,
        m.observed(),
        &post,
        &report::RefitPlan {
            poi,
            pars: &pars,
            prefit_sigma: &tiny,
        },
        &RefitOptions::default(),
        &mut |_, _| {},
    );
    for (h, r) in hess.iter().zip(&r) {
        let up = r.get(ShiftKind::PrefitUp).impact / eps;
        let down = r.get(ShiftKind::PrefitDown).impact / eps;
        let lin = 0.5 * (up - down);
        assert!(
            (lin - h.hessian).abs() < 1e-4 * h.hessian.abs().max(1e-2),
            "{}: refit slope {lin} vs hessian {}",
            m.par_names[h.par],
            h.hessian
        );
    }
}

#[test]
fn prefit_sigmas_and_pulls_follow_the_conventions() {
    let m = example();
    let ws = read(&repo("examples/workspaces/two-channel.json"));
    let mut spec = FitSpec::from_model(&m);
    let lumi = m.par_index("lumi").unwrap();
    spec = spec.fix(lumi, 1.0);
    let post = PostFit::fit(&m, m.observed(), &spec, &report::best_fit_options()).unwrap();
    let sig = report::prefit_sigmas(&m, &post.fixed);
    let sample = |ch: usize, s: usize| &ws["channels"][ch]["samples"][s];
    let mod_data = |ch: usize, s: usize, name: &str| -> Vec<f64> {
        let mods = sample(ch, s)["modifiers"].as_array().unwrap();
        let md = mods.iter().find(|x| x["name"] == name).unwrap();
        f64s(&md["data"])
    };
    // channels in the file: SR (0), CR (1); samples: SR signal 0, background 1, fakes 2
    let nom_bkg_sr = f64s(&sample(0, 1)["data"]);
    let d_stat_sr = mod_data(0, 1, "staterror_SR");
    let nom_fakes = f64s(&sample(0, 2)["data"]);
    let d_fake = mod_data(0, 2, "fake_stat");
    for (i, name) in m.par_names.iter().enumerate() {
        let want = match name.as_str() {
            "jes" | "bkg_norm" | "sig_xsec" => 1.0,
            "lumi" => 0.0, // fixed in this fit
            "mu" | "mj_shape[0]" | "mj_shape[1]" => 0.0,
            n if n.starts_with("staterror_SR[") => {
                let b: usize = n[13..14].parse().unwrap();
                d_stat_sr[b] / nom_bkg_sr[b]
            }
            n if n.starts_with("fake_stat[") => {
                let b: usize = n[10..11].parse().unwrap();
                // shapesys: sqrt(1 / tau), tau = (nominal / delta)^2
                (1.0 / (nom_fakes[b] / d_fake[b]).powi(2)).sqrt()
            }
            n if n.starts_with("staterror_CR[") => {
                let b: usize = n[13..14].parse().unwrap();
                let nom = f64s(&sample(1, 0)["data"]);
                let d = mod_data(1, 0, "staterror_CR");
                d[b] / nom[b]
            }
            other => panic!("unexpected parameter {other}"),
        };
        assert!(
            (sig[i] - want).abs() < 1e-12,
            "{name}: pre-fit sigma {} vs {want}",
            sig[i]
        );
    }
    // unfixed, lumi's width is its measurement sigma
    assert_eq!(report::prefit_sigmas(&m, &m.fixed)[lumi], 0.017);
    let pulls = report::pulls(&m, &post);
    for p in &pulls {
        let name = &m.par_names[p.par];
        assert_eq!(p.value, post.x[p.par]);
        assert_eq!(p.error, post.error(p.par));
        if p.par == lumi {
            assert!(p.fixed && p.pull.is_none() && p.error == 0.0);
            continue;
        }
        match p.constraint {
            "none" => assert!(p.pull.is_none(), "{name}"),
            _ => {
                let center = if name.starts_with("staterror") || name.starts_with("fake_stat") {
                    1.0
                } else {
                    0.0
                };
                assert_eq!(p.center, Some(center), "{name}");
                let want = (post.x[p.par] - center) / sig[p.par];
                assert!((p.pull.unwrap() - want).abs() < 1e-12, "{name}");
                assert!((p.pull_error.unwrap() - post.error(p.par) / sig[p.par]).abs() < 1e-12);
            }
        }
    }
    assert_eq!(
        pulls.iter().filter(|p| p.constraint == "poisson").count(),
        3
    );
}

#[test]
fn analytic_yield_jacobian_equals_the_graph() {
    let m = example();
    let mut rng = TestRng::new(3);
    let post = example_fit(&m);
    let mut points = vec![post.x.clone(), m.init.clone()];
    for _ in 0..3 {
        points.push(finite_random_point(&m, &mut rng));
    }
    // a normfactor at exactly zero (prefix/suffix products, no division)
    let mut zero = post.x.clone();
    zero[m.poi.unwrap()] = 0.0;
    points.push(zero);
    for (k, x) in points.iter().enumerate() {
        let jac = m.sample_bin_jacobian(x);
        let jg = graph_jacobian(&m, x);
        let vals = m.expected_sample_bins(x);
        for j in 0..m.sb.len() {
            assert!(rel(jac.values[j], vals[j]) < 1e-14 || vals[j] == 0.0);
            let row = jac.dense_row(j, m.n_pars());
            let (pars, _) = jac.row(j);
            assert!(pars.windows(2).all(|w| w[0] < w[1]), "unique, sorted");
            for i in 0..m.n_pars() {
                let (a, b) = (row[i], jg[j][i]);
                assert!(
                    (a - b).abs() <= 1e-12 * b.abs().max(1.0),
                    "point {k} sb {j} par {}: {a} vs graph {b}",
                    m.par_names[i]
                );
            }
        }
    }
}

#[test]
fn postfit_and_prefit_yield_uncertainties_equal_jacobian_times_covariance() {
    let m = example();
    let post = example_fit(&m);
    let y = report::postfit_yields(&m, &post);
    check_yields_against_graph(&m, &post.x, &post.covariance, &y, 1e-8, "post-fit");
    // post-fit totals: the fit pins the CR total to the data; its error is smaller
    // than the quadrature sum of the samples' errors (anti-correlations)
    let cr = y.channels.iter().find(|c| c.name == "CR").unwrap();
    let quad: f64 = cr
        .samples
        .iter()
        .map(|s| s.sum_error.powi(2))
        .sum::<f64>()
        .sqrt();
    assert!(cr.sum_error < quad);
    let pre = report::prefit_yields(&m);
    let p = m.n_pars();
    let sig = report::prefit_sigmas(&m, &m.fixed);
    let mut cov = vec![0.0; p * p];
    for i in 0..p {
        cov[i * p + i] = sig[i] * sig[i];
    }
    check_yields_against_graph(&m, &m.init, &cov, &pre, 1e-8, "pre-fit");
    // pre-fit: the unconstrained multijet normalisation contributes nothing
    let mj = &pre
        .channels
        .iter()
        .find(|c| c.name == "CR")
        .unwrap()
        .samples;
    let mj = mj.iter().find(|s| s.name == "multijet").unwrap();
    assert!(mj.errors.iter().all(|e| *e == 0.0));
}

// ------------------------------------------------------------ command line and plots

fn gradfit(args: &[&str]) -> (i32, Value, String) {
    common::run_gradfit(args)
}

fn ws() -> String {
    repo("examples/workspaces/two-channel.json")
        .to_string_lossy()
        .into_owned()
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("gradfit-report-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Texts of all `<text>` elements of an SVG file (which must parse as XML with an `svg` root).
fn svg_texts(path: &Path) -> Vec<String> {
    let s = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let doc = roxmltree::Document::parse(&s)
        .unwrap_or_else(|e| panic!("{} is not valid XML: {e}", path.display()));
    assert_eq!(doc.root_element().tag_name().name(), "svg");
    doc.descendants()
        .filter(|n| n.has_tag_name("text"))
        .map(|n| n.text().unwrap_or("").trim().to_string())
        .collect()
}

fn count_labels(texts: &[String], names: &[String]) -> usize {
    texts.iter().filter(|t| names.contains(t)).count()
}

fn names_of(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn pulls_command_json_and_plot() {
    let d = tmp("pulls");
    let svg = d.join("pulls.svg");
    let (code, v, err) = gradfit(&["pulls", &ws(), "--json", "--plot", svg.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(v["converged"], true);
    let pars = v["parameters"].as_array().unwrap();
    assert_eq!(pars.len(), 15);
    for p in pars {
        for key in [
            "name",
            "value",
            "error",
            "prefit_sigma",
            "pull",
            "constraint",
        ] {
            assert!(p.get(key).is_some(), "{key} in {p}");
        }
    }
    let mu = pars.iter().find(|p| p["name"] == "mu").unwrap();
    assert_eq!(mu["constraint"], "none");
    assert!(mu["pull"].is_null());
    let jes = pars.iter().find(|p| p["name"] == "jes").unwrap();
    assert_eq!(jes["constraint"], "normal");
    assert_eq!(jes["pull"], jes["value"]); // centre 0, width 1
    // the plot: one label per parameter with a pull (the 12 constrained ones)
    let with_pull: Vec<String> = pars
        .iter()
        .filter(|p| !p["pull"].is_null())
        .map(|p| p["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(with_pull.len(), 12);
    let texts = svg_texts(&svg);
    assert_eq!(count_labels(&texts, &with_pull), 12, "{texts:?}");
    assert_eq!(count_labels(&texts, &["mu".to_string()]), 0);
    // PNG when asked
    let png = d.join("pulls.png");
    let (code, _, err) = gradfit(&["pulls", &ws(), "--plot", png.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    let bytes = std::fs::read(&png).unwrap();
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
    assert!(bytes.len() > 5000);
}

#[test]
fn impacts_command_ranks_and_plots_the_top_parameters() {
    let d = tmp("impacts");
    let svg = d.join("ranking.svg");
    let (code, v, err) = gradfit(&[
        "impacts",
        &ws(),
        "--json",
        "--top",
        "5",
        "--plot",
        svg.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(v["poi"], "mu");
    let pars = v["parameters"].as_array().unwrap();
    assert_eq!(pars.len(), 5);
    assert_eq!(v["n_parameters_ranked"], 14);
    let key = |p: &Value| {
        p["refit_postfit_up"]
            .as_f64()
            .unwrap()
            .abs()
            .max(p["refit_postfit_down"].as_f64().unwrap().abs())
    };
    for p in pars {
        for k in [
            "name",
            "hessian",
            "hessian_prefit",
            "nsbi_gamma",
            "refit_prefit_up",
            "refit_prefit_down",
            "refit_postfit_up",
            "refit_postfit_down",
        ] {
            assert!(p[k].is_string() || p[k].is_number(), "{k} in {p}");
        }
    }
    for w in pars.windows(2) {
        assert!(
            key(&w[0]) >= key(&w[1]),
            "sorted by the largest post-fit impact"
        );
    }
    let names = names_of(&v["parameters"]);
    let texts = svg_texts(&svg);
    assert_eq!(count_labels(&texts, &names), 5, "{texts:?}");
    // labels appear in ranking order
    let order: Vec<&String> = texts.iter().filter(|t| names.contains(t)).collect();
    assert_eq!(order, names.iter().collect::<Vec<_>>());
    // Hessian only: no refit fields; the plot shows 20 rows at most (14 here)
    let svg2 = d.join("hessian.svg");
    let (code, v, err) = gradfit(&[
        "impacts",
        &ws(),
        "--json",
        "--method",
        "hessian",
        "--plot",
        svg2.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    let pars = v["parameters"].as_array().unwrap();
    assert_eq!(pars.len(), 14);
    assert!(pars.iter().all(|p| p.get("refit_postfit_up").is_none()));
    assert!(v.get("refits").is_none());
    let hs: Vec<f64> = pars
        .iter()
        .map(|p| p["hessian"].as_f64().unwrap().abs())
        .collect();
    assert!(hs.windows(2).all(|w| w[0] >= w[1]));
    let all = names_of(&v["parameters"]);
    assert_eq!(count_labels(&svg_texts(&svg2), &all), 14);
}

#[test]
fn corr_command_prunes_and_plots() {
    let d = tmp("corr");
    let svg = d.join("corr.svg");
    let (code, v, err) = gradfit(&[
        "corr",
        &ws(),
        "--json",
        "--threshold",
        "0.3",
        "--plot",
        svg.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    let names: Vec<String> = v["par_names"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_str().unwrap().to_string())
        .collect();
    let c = v["correlation"].as_array().unwrap();
    let n = names.len();
    assert!((2..15).contains(&n), "pruned: {names:?}");
    for i in 0..n {
        let row = f64s(&c[i]);
        assert!((row[i] - 1.0).abs() < 1e-12);
        let best = (0..n)
            .filter(|&j| j != i)
            .map(|j| row[j].abs())
            .fold(0.0, f64::max);
        assert!(
            best >= 0.3,
            "{} kept without a correlation >= 0.3",
            names[i]
        );
    }
    // every pruned parameter really has no correlation >= 0.3 (full matrix from `fit`)
    let (_, fitv, _) = gradfit(&["fit", &ws(), "--json"]);
    let all: Vec<String> = fitv["par_names"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_str().unwrap().to_string())
        .collect();
    let full = fitv["correlation"].as_array().unwrap();
    for pr in v["pruned"].as_array().unwrap() {
        let i = all.iter().position(|x| x == pr.as_str().unwrap()).unwrap();
        let row = f64s(&full[i]);
        assert!(
            (0..all.len())
                .filter(|&j| j != i)
                .all(|j| row[j].abs() < 0.3 + 1e-9)
        );
    }
    assert_eq!(v["pruned"].as_array().unwrap().len() + n, 15);
    // each kept parameter labels a row and a column
    let texts = svg_texts(&svg);
    assert_eq!(count_labels(&texts, &names), 2 * n);
}

#[test]
fn yields_command_tables_json_and_stacked_plots() {
    let d = tmp("yields");
    let (code, v, err) = gradfit(&[
        "yields",
        &ws(),
        "--json",
        "--plot",
        d.to_str().unwrap(),
        "--png",
    ]);
    assert_eq!(code, 0, "{err}");
    for stage in ["prefit", "postfit"] {
        let chans = v[stage].as_array().unwrap();
        assert_eq!(chans.len(), 2);
        for c in chans {
            let name = c["name"].as_str().unwrap();
            let samples = names_of(&c["samples"]);
            let svg = d.join(format!("{name}_{stage}.svg"));
            let texts = svg_texts(&svg);
            // legend: every sample once, plus data and uncertainty
            assert_eq!(count_labels(&texts, &samples), samples.len(), "{texts:?}");
            assert!(texts.iter().any(|t| t == "data"));
            assert!(texts.iter().any(|t| t == "uncertainty"));
            let png = std::fs::read(d.join(format!("{name}_{stage}.png"))).unwrap();
            assert_eq!(&png[..4], b"\x89PNG");
            // totals are the sums of the samples
            let total = f64s(&c["total"]);
            for (b, t) in total.iter().enumerate() {
                let s: f64 = c["samples"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|s| s["yields"][b].as_f64().unwrap())
                    .sum();
                assert!(rel(*t, s) < 1e-12);
            }
        }
    }
    // pre-fit only: no fit, no post-fit section
    let (code, v, err) = gradfit(&["yields", &ws(), "--json", "--prefit"]);
    assert_eq!(code, 0, "{err}");
    assert!(v.get("postfit").is_none() && v.get("prefit").is_some());
    let (code, _, _) = gradfit(&["yields", &ws(), "--prefit", "--postfit"]);
    assert_eq!(code, 2);
}

#[test]
fn report_commands_refuse_bad_input_clearly() {
    let d = tmp("bad");
    // a workspace whose measurement names a POI the model does not have
    let mut w = read(&repo("examples/workspaces/two-channel.json"));
    w["measurements"][0]["config"]["poi"] = Value::from("not_there");
    w["measurements"][0]["config"]["parameters"]
        .as_array_mut()
        .unwrap()
        .retain(|p| p["name"] != "mu");
    let nopoi = d.join("nopoi.json");
    std::fs::write(&nopoi, w.to_string()).unwrap();
    let (code, _, err) = gradfit(&["impacts", nopoi.to_str().unwrap()]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("no parameter of interest"), "{err}");
    // pulls need no POI
    let (code, _, err) = gradfit(&["pulls", nopoi.to_str().unwrap(), "--json"]);
    assert_eq!(code, 0, "{err}");
    // plot files: extension and folder checked before any work
    let (code, _, err) = gradfit(&["pulls", &ws(), "--plot", "pulls.pdf"]);
    assert_eq!(code, 1);
    assert!(err.contains("must end in .svg or .png"), "{err}");
    let missing = d.join("no/such/dir/rank.svg");
    let (code, _, err) = gradfit(&["impacts", &ws(), "--plot", missing.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(err.contains("does not exist"), "{err}");
    // usage errors
    let (code, _, _) = gradfit(&["corr", &ws(), "--threshold", "1.5"]);
    assert_eq!(code, 2);
    let (code, _, _) = gradfit(&["impacts", &ws(), "--top", "0"]);
    assert_eq!(code, 2);
    let (code, _, _) = gradfit(&["impacts", &ws(), "--method", "magic"]);
    assert_eq!(code, 2);
    // a best fit that did not converge: results printed, exit status 3
    let (code, v, err) = gradfit(&["pulls", &ws(), "--json", "--max-iter", "1"]);
    assert_eq!(code, 3, "{err}");
    assert_eq!(v["converged"], false);
    assert_eq!(v["parameters"].as_array().unwrap().len(), 15);
    assert!(err.contains("did not converge"), "{err}");
    let (code, v, _) = gradfit(&["impacts", &ws(), "--json", "--max-iter", "1"]);
    assert_eq!(code, 3);
    assert_eq!(v["converged"], false);
}

// ------------------------------------------------------------ inference plots, yields plot files, PNG text

fn svg_has(texts: &[String], want: &str) -> bool {
    texts.iter().any(|t| t == want)
}

fn png_size(path: &Path) -> (u32, u32) {
    let f = std::fs::File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let r = png::Decoder::new(std::io::BufReader::new(f))
        .read_info()
        .unwrap_or_else(|e| panic!("{} is not a PNG: {e}", path.display()));
    (r.info().width, r.info().height)
}

/// Four significant digits, as the plot legends write numbers.
fn short(v: f64) -> String {
    gradfit::report::plot_infer::short(v)
}

#[test]
fn scan_plots_and_defaults_to_three_sigma_around_the_best_fit() {
    let d = tmp("scanplot");
    let (code, fitv, err) = gradfit(&["fit", &ws(), "--json"]);
    assert_eq!(code, 0, "{err}");
    let i = fitv["par_names"]
        .as_array()
        .unwrap()
        .iter()
        .position(|n| n == "mu")
        .unwrap();
    let (mu, sigma) = (
        fitv["values"][i].as_f64().unwrap(),
        fitv["errors"][i].as_f64().unwrap(),
    );
    for ext in ["svg", "png"] {
        let f = d.join(format!("scan.{ext}"));
        let (code, v, err) = gradfit(&["scan", &ws(), "--json", "--plot", f.to_str().unwrap()]);
        assert_eq!(code, 0, "{err}");
        let pts = v["points"].as_array().unwrap();
        assert_eq!(pts.len(), 11);
        // cabinetry's range, clipped to mu's bounds [0, 10] (and said so)
        let lo = pts[0]["value"].as_f64().unwrap();
        let hi = pts[10]["value"].as_f64().unwrap();
        assert!(
            (lo - (mu - 3.0 * sigma).max(0.0)).abs() < 1e-6 * sigma,
            "{lo}"
        );
        assert!(
            (hi - (mu + 3.0 * sigma).min(10.0)).abs() < 1e-6 * sigma,
            "{hi}"
        );
        assert_eq!(mu - 3.0 * sigma < 0.0, err.contains("clipped"), "{err}");
        assert!(err.contains(&format!("wrote {}", f.display())), "{err}");
        if ext == "svg" {
            let t = svg_texts(&f);
            for want in [
                "68.3% CL",
                "95.4% CL",
                "mu",
                "\u{2212}2 \u{0394} ln L",
                "profile likelihood scan",
            ] {
                assert!(svg_has(&t, want), "{want} missing in {t:?}");
            }
            let best = v["best_value"].as_f64().unwrap();
            assert!(
                svg_has(&t, &format!("best fit: mu = {}", short(best))),
                "{t:?}"
            );
        } else {
            assert_eq!(png_size(&f), (760, 560));
        }
    }
    // --range still sets the grid
    let (code, v, _) = gradfit(&["scan", &ws(), "--json", "--range", "0:2:3"]);
    assert_eq!(code, 0);
    assert_eq!(v["points"].as_array().unwrap().len(), 3);
}

#[test]
fn limit_plot_shows_observed_expected_band_and_the_cl_line() {
    let d = tmp("limitplot");
    for ext in ["svg", "png"] {
        let f = d.join(format!("cls.{ext}"));
        let (code, v, err) = gradfit(&["limit", &ws(), "--json", "--plot", f.to_str().unwrap()]);
        assert_eq!(code, 0, "{err}");
        if ext == "png" {
            assert_eq!(png_size(&f), (800, 580));
            continue;
        }
        let t = svg_texts(&f);
        let obs = short(v["obs"].as_f64().unwrap());
        let exp = short(v["exp"][2].as_f64().unwrap());
        for want in [
            format!("observed CLs (95% CL limit {obs})"),
            format!("expected CLs, median (limit {exp})"),
            "expected \u{00b1}1\u{03c3}".into(),
            "expected \u{00b1}2\u{03c3}".into(),
            "CLs = 0.05".into(),
            "CLs".into(),
            "mu".into(),
            "CLs against mu (asymptotics)".into(),
        ] {
            assert!(svg_has(&t, &want), "{want} missing in {t:?}");
        }
    }
    // with a scan grid, toys: the toy points are drawn
    let f = d.join("toys.svg");
    let (code, v, err) = gradfit(&[
        "limit",
        &ws(),
        "--json",
        "--toys",
        "60",
        "--scan",
        "0.5:4:4",
        "--plot",
        f.to_str().unwrap(),
    ]);
    assert!(code == 0 || code == 3, "{err}");
    assert_eq!(v["points"].as_array().unwrap().len(), 4);
    assert!(svg_has(&svg_texts(&f), "CLs against mu (toys)"));
    // a folder or another format is refused before any work
    let (code, _, err) = gradfit(&["limit", &ws(), "--plot", d.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(err.contains(".svg or .png"), "{err}");
}

#[test]
fn toys_plot_histograms_both_ensembles_against_the_asymptotic_form() {
    let d = tmp("toysplot");
    let f = d.join("q.svg");
    let out = d.join("toys.json");
    let (code, _, err) = gradfit(&[
        "toys",
        &ws(),
        "--mu",
        "1",
        "--n",
        "150",
        "--seed",
        "3",
        "--out",
        out.to_str().unwrap(),
        "--plot",
        f.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    let t = svg_texts(&f);
    for want in [
        "signal + background toys (\u{03bc} = 1): 150 toys",
        "background-only toys (\u{03bc} = 0): 150 toys",
        "test statistic qtilde",
        "toys per bin",
    ] {
        assert!(svg_has(&t, want), "{want} missing in {t:?}");
    }
    assert_eq!(
        t.iter().filter(|x| *x == "asymptotic expectation").count(),
        2
    );
    let run = read(&out);
    let obs = run["test_stat_obs"].as_f64().unwrap();
    assert!(svg_has(&t, &format!("observed: {}", short(obs))), "{t:?}");
    let png = d.join("q0.png");
    let (code, _, err) = gradfit(&[
        "toys",
        &ws(),
        "--mu",
        "0",
        "--test-stat",
        "q0",
        "--n",
        "50",
        "--out",
        out.to_str().unwrap(),
        "--plot",
        png.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(png_size(&png), (820, 600));
}

#[test]
fn toy_histograms_and_asymptotic_counts_add_up() {
    use gradfit::report::plot_infer::ToysPlot;
    // half chi-square: q = max(z, 0)^2, F(q) = Phi(sqrt q)
    let z: Vec<f64> = (0..2000)
        .map(|k| gradfit::infer::normal_quantile((k as f64 + 0.5) / 2000.0))
        .collect();
    let q: Vec<f64> = z.iter().map(|z| z.max(0.0).powi(2)).collect();
    let cdf = |x: f64| gradfit::util::special::normal_cdf(x.max(0.0).sqrt());
    let p = ToysPlot::new("t", "q", 1.0, vec![("a".into(), q, Some(&cdf))], 20);
    let (_, counts, asym) = &p.ensembles[0];
    let asym = asym.as_ref().unwrap();
    assert_eq!(counts.iter().sum::<f64>(), 2000.0);
    assert!((asym.iter().sum::<f64>() - 2000.0).abs() < 1e-9);
    // quantile-spaced samples follow the distribution closely in every bin
    for (c, a) in counts.iter().zip(asym) {
        assert!((c - a).abs() <= 1.0 + 1e-9, "{c} vs {a}");
    }
    assert!(
        counts[0] > 1000.0,
        "the point mass at 0 is in the first bin"
    );
}

#[test]
fn yields_plot_file_names_follow_the_extension() {
    let d = tmp("yieldsfiles");
    // several plots for one file name: FILE_CHANNEL_STAGE.EXT beside it, said so
    let f = d.join("y.png");
    let (code, _, err) = gradfit(&["yields", &ws(), "--plot", f.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert!(!f.exists(), "no folder or file named y.png");
    for c in ["SR", "CR"] {
        for s in ["prefit", "postfit"] {
            let p = d.join(format!("y_{c}_{s}.png"));
            assert!(png_size(&p).0 > 0);
        }
    }
    assert!(
        err.contains("4 plots") && err.contains("y_CHANNEL_STAGE.png"),
        "{err}"
    );
    // one plot: exactly the file named
    let one = repo("examples/workspaces/one-bin-high-count.json");
    let f = d.join("one.svg");
    let (code, _, err) = gradfit(&[
        "yields",
        one.to_str().unwrap(),
        "--postfit",
        "--plot",
        f.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(svg_has(&svg_texts(&f), "SR: post-fit"));
    // bin edges and a log scale
    let f = d.join("edges.svg");
    let (code, _, err) = gradfit(&[
        "yields",
        &ws(),
        "--prefit",
        "--plot",
        f.to_str().unwrap(),
        "--log",
        "--bin-edges",
        "SR=0,100,200,400",
    ]);
    assert_eq!(code, 0, "{err}");
    let t = svg_texts(&d.join("edges_SR_prefit.svg"));
    for want in [
        "observable",
        "100",
        "200",
        "300",
        "400",
        "data / model",
        "10",
    ] {
        assert!(svg_has(&t, want), "{want} missing in {t:?}");
    }
    let t = svg_texts(&d.join("edges_CR_prefit.svg"));
    assert!(t.iter().any(|x| x.contains("carry no bin edges")), "{t:?}");
    // refused before any work
    for (args, msg) in [
        (vec!["--plot", "y.pdf"], "FILE.svg, FILE.png or a folder"),
        (
            vec!["--plot", "y.png", "--png"],
            "--png applies to a folder",
        ),
        (
            vec!["--plot", "y.png", "--bin-edges", "SR=0,1"],
            "need 4 increasing edges",
        ),
        (
            vec!["--plot", "y.png", "--bin-edges", "VR=0,1"],
            "no channel 'VR'",
        ),
    ] {
        let w = ws();
        let mut a = vec!["yields", w.as_str()];
        a.extend(args);
        let (code, _, err) = gradfit(&a);
        assert_eq!(code, 1, "{a:?}");
        assert!(err.contains(msg), "{a:?}: {err}");
    }
}

/// One line of text at (50, 100), left-aligned.
struct Label(String, f64);

impl gradfit::report::plot::Plot for Label {
    fn size(&self) -> (u32, u32) {
        (1800, 200)
    }
    fn draw<DB: plotters::prelude::DrawingBackend>(
        &self,
        root: &plotters::prelude::DrawingArea<DB, plotters::coord::Shift>,
    ) -> Result<(), String> {
        use plotters::prelude::*;
        use plotters::style::text_anchor::{HPos, Pos, VPos};
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        let style = ("sans-serif", self.1)
            .into_font()
            .color(&BLACK)
            .pos(Pos::new(HPos::Left, VPos::Center));
        root.draw(&Text::new(self.0.clone(), (50, 100), style))
            .map_err(|e| e.to_string())
    }
}

/// Columns of the PNG rendering of `text` that hold ink.
fn ink_columns(text: &str, size: f64) -> Vec<bool> {
    use gradfit::report::plot::{Format, render};
    let bytes = render(&Label(text.into(), size), Format::Png).unwrap();
    let mut r = png::Decoder::new(std::io::Cursor::new(bytes))
        .read_info()
        .unwrap();
    let mut buf = vec![0; r.output_buffer_size()];
    let info = r.next_frame(&mut buf).unwrap();
    let (w, h) = (info.width as usize, info.height as usize);
    (0..w)
        .map(|x| (0..h).any(|y| buf[3 * (y * w + x)] < 128))
        .collect()
}

/// Runs of inked columns: (first, last).
fn ink_runs(cols: &[bool]) -> Vec<(usize, usize)> {
    let mut runs = Vec::new();
    let mut start = None;
    for (x, &c) in cols.iter().enumerate() {
        match (c, start) {
            (true, None) => start = Some(x),
            (false, Some(s)) => {
                runs.push((s, x - 1));
                start = None;
            }
            _ => {}
        }
    }
    if let Some(s) = start {
        runs.push((s, cols.len() - 1));
    }
    runs
}

#[test]
fn png_text_keeps_the_fonts_letter_spacing() {
    use ab_glyph::{Font, FontRef, ScaleFont};
    use plotters::prelude::IntoFont;
    let size = 100.0;
    let font = FontRef::try_from_slice(include_bytes!("../assets/fonts/DejaVuSans.ttf")).unwrap();
    let scaled = font.as_scaled(size as f32);
    let lsb = |c: char| scaled.h_side_bearing(font.glyph_id(c)) as f64;
    let rsb = |c: char| {
        let id = font.glyph_id(c);
        let ink = font.outline_glyph(id.with_scale(size as f32)).unwrap();
        scaled.h_advance(id) as f64 - ink.px_bounds().max.x as f64
    };
    // the layout width plotters computes for the text (what the SVG and the chart layout use)
    let width = |s: &str| ("sans-serif", size).into_font().box_size(s).unwrap().0 as f64;
    // letters with wide side bearings, spaced: each starts at its pen position + bearing
    let text = "m i n u r T";
    let runs = ink_runs(&ink_columns(text, size));
    let letters: Vec<(usize, char)> = text.char_indices().filter(|(_, c)| *c != ' ').collect();
    assert_eq!(runs.len(), letters.len(), "{runs:?}");
    for ((at, c), (first, _)) in letters.iter().zip(&runs) {
        let want = 50.0 + width(&text[..*at]) + lsb(*c);
        assert!(
            (*first as f64 - want).abs() <= 2.0,
            "'{c}' starts at column {first}, the font puts it at {want:.1}"
        );
    }
    // whole words: the ink spans the layout width less the outer bearings
    for word in ["fitresult", "staterror_SR_AllBDT", "parameter moved to its"] {
        let runs = ink_runs(&ink_columns(word, size));
        let (first, last) = (runs[0].0 as f64, runs[runs.len() - 1].1 as f64);
        let c0 = word.chars().next().unwrap();
        let c1 = word.chars().last().unwrap();
        let want_first = 50.0 + lsb(c0);
        let want_last = 50.0 + width(word) - rsb(c1);
        assert!(
            (first - want_first).abs() <= 2.0,
            "{word}: ink from {first}, font {want_first:.1}"
        );
        assert!(
            (last - want_last).abs() <= 2.0,
            "{word}: ink to {last}, font {want_last:.1}"
        );
    }
}
