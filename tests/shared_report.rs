//! Pulls, impacts, ranking, yields and plots on the shared published workspaces,
//! against pyhf's reference numbers. Needs ../shared (GRADFIT_SHARED); run by
//! .ci/run with `-- --ignored`.

mod common;
mod report_util;
use common::*;
use gradfit::fit::{self, FitOptions, FitSpec};
use gradfit::model::{HistFactoryModel, ModelOptions};
use gradfit::report::{self, PostFit, RefitOptions, ShiftKind, plot};
use report_util::*;
use serde_json::Value;

fn own_fit(m: &HistFactoryModel, name: &str, r: &Value) -> PostFit {
    let post = PostFit::fit(
        m,
        m.observed(),
        &FitSpec::from_model(m),
        &report::best_fit_options(),
    )
    .unwrap_or_else(|e| panic!("{name}: {e}"));
    assert!(post.converged, "{name}: {:?}", post.status);
    let want = r["fit_free"]["twice_nll"].as_f64().unwrap();
    assert!(
        post.twice_nll <= want + 1e-6,
        "{name}: our minimum {} is above pyhf's {want}",
        post.twice_nll
    );
    post
}

/// Compare Hessian impacts with the references; returns (max rel error cov, seed, compared count).
fn compare_impacts(
    m: &HistFactoryModel,
    post: &PostFit,
    r: &Value,
    label: &str,
) -> (f64, f64, usize) {
    let poi = m.poi.expect("POI");
    let sig = report::prefit_sigmas(m, &post.fixed);
    let hess = report::hessian_impacts(post, poi, &sig);
    let ic = r["impacts_covariance"].as_object().unwrap();
    let isf = r["impacts_seed_formula"].as_object().unwrap();
    let mut ours: Vec<&str> = hess.iter().map(|h| m.par_names[h.par].as_str()).collect();
    let mut theirs: Vec<&str> = ic.keys().map(|k| k.as_str()).collect();
    ours.sort();
    theirs.sort();
    assert_eq!(ours, theirs, "{label}: the parameters with impacts");
    let (mut e1, mut e2, mut n) = (0.0f64, 0.0f64, 0);
    for h in &hess {
        let name = &m.par_names[h.par];
        let want_c = ic[name].as_f64().unwrap();
        let want_s = isf[name].as_f64().unwrap();
        if want_c.abs() > 1e-4 {
            let e = rel(h.hessian, want_c);
            assert!(
                e < 1e-3,
                "{label} {name}: hessian impact {} vs pyhf {want_c} (rel {e:e})",
                h.hessian
            );
            e1 = e1.max(e);
            n += 1;
        }
        if want_s.abs() > 1e-4 {
            let e = rel(h.nsbi_gamma, want_s);
            assert!(
                e < 1e-3,
                "{label} {name}: NSBI gamma {} vs pyhf {want_s} (rel {e:e})",
                h.nsbi_gamma
            );
            e2 = e2.max(e);
            n += 1;
        }
    }
    // post-fit widths too
    let want = f64s(&r["postfit_sigma_from_hessian"]);
    for i in 0..m.n_pars() {
        let got = post.error(i);
        assert!(
            rel(got, want[i]) < 1e-3 || (got == 0.0 && want[i] == 0.0),
            "{label} {}: post-fit sigma {got} vs pyhf {}",
            m.par_names[i],
            want[i]
        );
    }
    (e1, e2, n)
}

#[test]
#[ignore = "needs ../shared: GRADFIT_SHARED=../shared cargo test --test shared_report -- --ignored"]
fn hessian_impacts_match_pyhf_covariance_and_seed_formula() {
    let shared = shared_dir();
    for name in workspace_names(&shared) {
        let r = reference(&shared, &name);
        let m = load_model(&shared, &name, &ModelOptions::default());
        // at pyhf's own best fit, then at ours
        let at_ref = PostFit::at(
            &m,
            m.observed(),
            &FitSpec::from_model(&m),
            f64s(&r["fit_free"]["pars"]),
        )
        .unwrap_or_else(|e| panic!("{name}: {e}"));
        let (a1, a2, n) = compare_impacts(&m, &at_ref, &r, &format!("{name} (pyhf best fit)"));
        assert!(n > 20, "{name}: only {n} impacts above 1e-4 compared");
        let own = own_fit(&m, &name, &r);
        let (b1, b2, _) = compare_impacts(&m, &own, &r, &format!("{name} (our best fit)"));
        eprintln!(
            "{name}: {n} impacts compared; max rel error at pyhf's best fit {a1:.1e} (covariance) {a2:.1e} (NSBI); at ours {b1:.1e} {b2:.1e}"
        );
    }
}

#[test]
#[ignore = "needs ../shared: GRADFIT_SHARED=../shared cargo test --test shared_report -- --ignored"]
fn batched_refits_equal_one_at_a_time_refits() {
    let shared = shared_dir();
    for name in workspace_names(&shared) {
        let r = reference(&shared, &name);
        let m = load_model(&shared, &name, &ModelOptions::default());
        let poi = m.poi.unwrap();
        let post = own_fit(&m, &name, &r);
        let sig = report::prefit_sigmas(&m, &post.fixed);
        // every parameter of the smaller models, every 6th of the larger ones
        let all: Vec<usize> = (0..m.n_pars())
            .filter(|&k| k != poi && !post.fixed[k])
            .collect();
        let step = if all.len() > 150 { 6 } else { 1 };
        let pars: Vec<usize> = all.iter().copied().step_by(step).collect();
        let batch = report::refit_impacts(
            &m,
            m.observed(),
            &post,
            &report::RefitPlan {
                poi,
                pars: &pars,
                prefit_sigma: &sig,
            },
            &RefitOptions::default(),
            &mut |_, _| {},
        );
        let opts = FitOptions {
            covariance: false,
            ..FitOptions::default()
        };
        let mut n = 0;
        let mut worst = 0.0f64;
        for b in &batch {
            let k = b.par;
            for kind in ShiftKind::ALL {
                let s = b.get(kind);
                if !s.fitted {
                    continue;
                }
                let mut spec = FitSpec::from_model(&m);
                spec.init = post.x.clone();
                spec.fixed[k] = true;
                spec.init[k] = s.value;
                let one = fit::fit(&m, m.observed(), &spec, &opts);
                assert!(
                    one.converged && s.converged,
                    "{name} {} {kind:?}",
                    m.par_names[k]
                );
                let d = (s.impact - (one.x[poi] - post.x[poi])).abs();
                assert!(
                    d < 1e-6,
                    "{name} {} {kind:?}: batch {} vs one-at-a-time {}",
                    m.par_names[k],
                    s.impact,
                    one.x[poi] - post.x[poi]
                );
                worst = worst.max(d);
                n += 1;
            }
        }
        assert!(n >= 4 * pars.len() / 2, "{name}: only {n} refits compared");
        eprintln!("{name}: {n} refits, batch vs one at a time: max |diff| {worst:.1e}");
    }
}

#[test]
#[ignore = "needs ../shared: GRADFIT_SHARED=../shared cargo test --test shared_report -- --ignored"]
fn yield_uncertainties_equal_jacobian_times_covariance() {
    let shared = shared_dir();
    for name in workspace_names(&shared) {
        let r = reference(&shared, &name);
        let m = load_model(&shared, &name, &ModelOptions::default());
        let post = own_fit(&m, &name, &r);
        let y = report::postfit_yields(&m, &post);
        check_yields_against_graph(&m, &post.x, &post.covariance, &y, 1e-8, &name);
        // the post-fit yields at pyhf's best fit are pyhf's expected data
        let at_ref = PostFit::at(
            &m,
            m.observed(),
            &FitSpec::from_model(&m),
            f64s(&r["fit_free"]["pars"]),
        )
        .unwrap();
        let yr = report::postfit_yields(&m, &at_ref);
        let exp = m.expected_main(&at_ref.x);
        for (ci, ch) in yr.channels.iter().enumerate() {
            let c = &m.channels[ci];
            for b in 0..c.nbins {
                let want = exp[c.bin_offset + b];
                assert!(rel(ch.total[b], want) < 1e-12, "{name} {} bin {b}", c.name);
            }
        }
        let pre = report::prefit_yields(&m);
        let p = m.n_pars();
        let sig = report::prefit_sigmas(&m, &m.fixed);
        let mut cov = vec![0.0; p * p];
        for i in 0..p {
            cov[i * p + i] = sig[i] * sig[i];
        }
        check_yields_against_graph(&m, &m.init, &cov, &pre, 1e-8, &format!("{name} pre-fit"));
    }
}

fn svg_texts(path: &std::path::Path) -> Vec<String> {
    let s = std::fs::read_to_string(path).unwrap();
    let doc = roxmltree::Document::parse(&s)
        .unwrap_or_else(|e| panic!("{} is not valid XML: {e}", path.display()));
    assert_eq!(doc.root_element().tag_name().name(), "svg");
    doc.descendants()
        .filter(|n| n.has_tag_name("text"))
        .map(|n| n.text().unwrap_or("").trim().to_string())
        .collect()
}

#[test]
#[ignore = "needs ../shared: GRADFIT_SHARED=../shared cargo test --test shared_report -- --ignored"]
fn plots_of_published_workspaces_carry_every_label() {
    let shared = shared_dir();
    let dir = std::env::temp_dir().join(format!("gradfit-shared-plots-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for name in workspace_names(&shared) {
        let r = reference(&shared, &name);
        let m = load_model(&shared, &name, &ModelOptions::default());
        let poi = m.poi.unwrap();
        let post = own_fit(&m, &name, &r);
        let pulls = report::pulls(&m, &post);
        // pulls: one label per constrained free parameter
        let path = dir.join(format!("{name}-pulls.svg"));
        let pl = plot::PullsPlot::new(&m.par_names, &pulls, &name);
        plot::write(&pl, &path).unwrap();
        let texts = svg_texts(&path);
        let want: Vec<String> = pulls
            .iter()
            .filter(|p| p.pull.is_some())
            .map(|p| m.par_names[p.par].clone())
            .collect();
        assert!(want.len() > 50);
        assert_eq!(
            texts.iter().filter(|t| want.contains(t)).count(),
            want.len(),
            "{name} pulls"
        );
        // ranking (Hessian impacts; the refit ranking has its own tests): the top 15 in order
        let sig = report::prefit_sigmas(&m, &post.fixed);
        let rows = report::rank(report::hessian_impacts(&post, poi, &sig), None);
        let path = dir.join(format!("{name}-ranking.svg"));
        let pl = plot::RankingPlot::new(&m.par_names, &m.par_names[poi], &rows, &pulls, 15, &name);
        plot::write(&pl, &path).unwrap();
        let top: Vec<String> = rows[..15]
            .iter()
            .map(|r| m.par_names[r.par()].clone())
            .collect();
        let got: Vec<String> = svg_texts(&path)
            .into_iter()
            .filter(|t| m.par_names.contains(t))
            .collect();
        assert_eq!(got, top, "{name} ranking labels");
        // correlation matrix pruned at 0.2: two labels per kept parameter
        let corr = post.correlation();
        let keep = report::correlated_parameters(&post, &corr, 0.2);
        let p = m.n_pars();
        let names: Vec<String> = keep.iter().map(|&i| m.par_names[i].clone()).collect();
        let sub: Vec<f64> = keep
            .iter()
            .flat_map(|&i| keep.iter().map(move |&j| (i, j)))
            .map(|(i, j)| corr[i * p + j])
            .collect();
        let path = dir.join(format!("{name}-corr.svg"));
        let pl = plot::CorrelationPlot {
            names: names.clone(),
            corr: sub,
            threshold: 0.2,
            title: name.clone(),
        };
        plot::write(&pl, &path).unwrap();
        let texts = svg_texts(&path);
        assert_eq!(
            texts.iter().filter(|t| names.contains(t)).count(),
            2 * names.len(),
            "{name} corr"
        );
        // stacked distributions: every channel, every sample in the legend
        let y = report::postfit_yields(&m, &post);
        for ch in &y.channels {
            let path = dir.join(format!("{name}-{}-postfit.svg", ch.name));
            plot::write(&plot::StackPlot::new(ch, "post-fit"), &path).unwrap();
            let texts = svg_texts(&path);
            for s in &ch.samples {
                assert!(
                    texts.contains(&s.name),
                    "{name} {}: legend lacks {}",
                    ch.name,
                    s.name
                );
            }
        }
        eprintln!(
            "{name}: pulls {} labels, ranking 15, correlations {} kept at 0.2, {} channel plots",
            want.len(),
            names.len(),
            y.channels.len()
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}
