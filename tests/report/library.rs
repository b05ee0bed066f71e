//! Impacts, pulls, ranking and yield uncertainties through the library API.

use super::*;

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
