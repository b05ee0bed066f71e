//! The minimiser under stress, and bins whose expected rate is not positive
//! (docs/robustness.md).
//!
//! - The stress corpus (`examples/stress/corpus.rs`): every fit converges, and
//!   reaches the independent reference minimum of tests/refs/stress_refs.json
//!   (scripts/stress_refs.py: pyhf + SLSQP + Migrad) to 1e-4, or a lower one;
//!   at most 1 in 25 per workspace ends in another local minimum above it. The example
//!   workspaces run in every `cargo test`; the shared workspaces need
//!   `GRADFIT_SHARED` (CI runs them); the full-size corpus is `large_*`
//!   (run by hand: `cargo test --release --test stress -- --ignored large`).
//! - Negative nominal yields (accepted with a warning, `--strict` refuses
//!   them) and the extension of the Poisson terms outside pyhf's domain
//!   (consistent derivatives, fits and hypothesis tests that finish, nothing
//!   changed where the rates stay positive).

mod common;
#[path = "../examples/stress/corpus.rs"]
mod corpus;

use common::{repo, run_gradfit};
use gradfit::fit::{self, FitOptions, FitSpec, FitStatus};
use gradfit::model::{HistFactoryModel, Likelihood, ModelOptions};
use gradfit::workspace::{ReadOptions, Workspace};
use serde_json::Value;

const TOL: f64 = 1e-4;

fn refs() -> Value {
    common::read(&repo("tests/refs/stress_refs.json"))
}

fn example_json(name: &str) -> Value {
    common::read(&repo(&format!("examples/workspaces/{name}.json")))
}

fn model(ws: &Value, strict: bool) -> HistFactoryModel {
    let w = Workspace::from_value(ws.clone(), &[], "test", &ReadOptions::default()).unwrap();
    let opts = ModelOptions {
        strict_domain: strict,
        ..Default::default()
    };
    HistFactoryModel::from_workspace(&w, &opts, "test").unwrap()
}

/// Run a corpus and check every fit: converged, and within TOL of its
/// reference (`want_refs`: every workspace's fits have one), or else of the
/// lowest minimum found by the corpus's fits of the same problem. Returns
/// the number of references compared.
fn check_corpus(name: &str, ws: Value, size: corpus::Size, want_refs: bool) -> usize {
    let c = corpus::build(name, ws, size, &ModelOptions::default());
    let opts = FitOptions {
        covariance: false,
        ..Default::default()
    };
    let r = corpus::run(&c, &opts);
    let refs = refs();
    let best = corpus::best_by_key(&c, &r);
    let mut bad = Vec::new();
    let mut compared = 0;
    // fits that end in another local minimum than the reference's, above it
    // (multimodal likelihoods: the sbottom workspace's JET_JvtEfficiency, or
    // a POI held at its bound), and references that another fit undercuts
    let (mut other, mut lower) = (Vec::new(), 0);
    for (case, res) in c.cases.iter().zip(&r) {
        if !res.converged {
            bad.push(format!(
                "{}: {:?} after {} iterations (twice_nll {})",
                case.id, res.status, res.iterations, res.twice_nll
            ));
            continue;
        }
        if let Some(rf) = refs["cases"][&case.id]["twice_nll"].as_f64() {
            compared += 1;
            if res.twice_nll < rf - TOL {
                lower += 1;
            } else if res.twice_nll > rf + TOL {
                other.push(format!(
                    "{}: twice_nll {} vs reference {rf} ({})",
                    case.id, res.twice_nll, refs["cases"][&case.id]["method"]
                ));
            }
        } else if !want_refs {
            // no reference (most fits of the large workspaces): the lowest
            // minimum that the corpus's fits of the same problem found
            let b = best[case.key()];
            if res.twice_nll > b + TOL {
                other.push(format!(
                    "{}: twice_nll {} vs {b} of another start",
                    case.id, res.twice_nll
                ));
            }
        }
    }
    let compared_any = if want_refs { compared } else { r.len() };
    // a local minimiser may end in another local minimum now and then, not often
    if other.len() * 25 > compared_any.max(1) {
        bad.extend(other.iter().cloned());
    }
    assert!(
        bad.is_empty(),
        "{name}: {} of {} fits:\n{}",
        bad.len(),
        r.len(),
        bad.join("\n")
    );
    if want_refs {
        assert!(
            compared > 0,
            "{name}: no reference minima (run scripts/stress_refs.py)"
        );
    }
    for o in &other {
        eprintln!("  another local minimum: {o}");
    }
    eprintln!(
        "{name}: {} fits converged; {compared_any} compared with {}: {} within {TOL}, \
         {lower} below it, {} in another local minimum above it",
        r.len(),
        if want_refs {
            "their reference".to_string()
        } else {
            format!("their reference ({compared}) or the lowest minimum of their problem")
        },
        compared_any - lower - other.len(),
        other.len()
    );
    compared
}

#[test]
fn corpus_of_the_example_workspaces_reaches_the_reference_minima() {
    let n = check_corpus("two-channel", example_json("two-channel"), corpus::CI, true);
    let m = check_corpus(
        "negative-yields",
        example_json("negative-yields"),
        corpus::CI,
        true,
    );
    assert!(n >= 100 && m >= 100, "{n} and {m} references");
}

#[test]
#[ignore = "needs GRADFIT_SHARED"]
fn shared_corpus_reaches_the_reference_minima() {
    let dir = common::shared_dir();
    // references for every fit of the two smaller workspaces; the two large
    // ones (tens of seconds per reference fit in pyhf) have references for a
    // subset of 28 fits each (scripts/stress_refs.py `selected`), and their
    // other fits are checked against the lowest minimum of their problem
    for (name, want_refs, min_refs) in [
        ("atlas-susy-2018-31-sbottom-regionA", true, 120),
        ("atlas-susy-2018-04-staus", true, 120),
        ("atlas-susy-2019-09-3l-offshell", false, 28),
        ("atlas-tttt", false, 28),
    ] {
        let n = check_corpus(
            name,
            corpus::shared_workspace(&dir, name),
            corpus::CI,
            want_refs,
        );
        assert!(
            n >= min_refs,
            "{name}: {n} references compared, want {min_refs}"
        );
    }
}

#[test]
#[ignore = "the full-size corpus: minutes; run by hand"]
fn large_corpus_converges() {
    let dir = common::shared_dir();
    check_corpus(
        "two-channel",
        example_json("two-channel"),
        corpus::LARGE,
        false,
    );
    check_corpus(
        "negative-yields",
        example_json("negative-yields"),
        corpus::LARGE,
        false,
    );
    for name in [
        "atlas-susy-2018-31-sbottom-regionA",
        "atlas-susy-2018-04-staus",
        "atlas-susy-2019-09-3l-offshell",
        "atlas-tttt",
    ] {
        check_corpus(
            name,
            corpus::shared_workspace(&dir, name),
            corpus::LARGE,
            false,
        );
    }
}

#[test]
#[ignore = "needs GRADFIT_SHARED"]
fn offshell_fits_that_crawled_along_an_empty_bins_wall_converge() {
    // One toy of the large corpus whose fits crawl along the wall of an
    // empty bin's extension (docs/robustness.md): `mu=2` made 500 iterations
    // of about 1e-6 each (the damping restarted at 1e-4 every iteration, the
    // Newton step overshot into the wall); `free@away` crawled through a
    // region where the exact Hessian is indefinite, and now restarts from
    // the suggested start.
    let dir = common::shared_dir();
    let name = "atlas-susy-2019-09-3l-offshell";
    let ws = corpus::shared_workspace(&dir, name);
    let mut c = corpus::build(name, ws, corpus::LARGE, &ModelOptions::default());
    c.cases.retain(|k| k.id.contains("/v3/toy1-36/"));
    assert_eq!(c.cases.len(), 7);
    let opts = FitOptions {
        covariance: false,
        ..Default::default()
    };
    let r = corpus::run(&c, &opts);
    let best = corpus::best_by_key(&c, &r);
    let by_id = |s: &str| {
        let i = c.cases.iter().position(|k| k.id.ends_with(s)).unwrap();
        (&c.cases[i], &r[i])
    };
    for (case, res) in c.cases.iter().zip(&r) {
        assert!(res.converged, "{}: {:?}", case.id, res.status);
        assert!(
            res.twice_nll <= best[case.key()] + TOL,
            "{}: {} vs {}",
            case.id,
            res.twice_nll,
            best[case.key()]
        );
    }
    let (_, mu2) = by_id("/mu=2");
    assert!(!mu2.restarted && mu2.iterations < 500, "{mu2:?}");
    let (_, free) = by_id("/free");
    let (_, away) = by_id("/free@away");
    assert!(away.restarted, "{} iterations", away.iterations);
    assert!((away.twice_nll - free.twice_nll).abs() < TOL);
}

// ---- negative nominal yields (section 2 of issue 10)

fn neg_path() -> String {
    repo("examples/workspaces/negative-yields.json")
        .to_string_lossy()
        .into_owned()
}

#[test]
fn negative_yields_are_accepted_with_a_warning_naming_the_bins() {
    let (code, out, err) = run_gradfit(&["fit", &neg_path(), "--json"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out["converged"], true);
    // channel SR is the second in the file, ttV_nlo its third sample; bins 1 and 3 are negative
    for bin in [
        "/channels/1/samples/2/data/1 (sample 'ttV_nlo' in channel 'SR' bin 1) = -0.6",
        "/channels/1/samples/2/data/3 (sample 'ttV_nlo' in channel 'SR' bin 3) = -0.3",
    ] {
        assert!(err.contains(bin), "warning should name {bin}: {err}");
    }
    assert!(err.contains("2 negative nominal yield(s)"), "{err}");
    // the old flag is still accepted and changes nothing
    let (code2, out2, _) = run_gradfit(&["fit", &neg_path(), "--json", "--allow-negative-yields"]);
    assert_eq!(code2, 0);
    assert_eq!(out2["twice_nll"], out["twice_nll"]);
}

#[test]
fn strict_refuses_negative_yields() {
    let (code, _, err) = run_gradfit(&["fit", &neg_path(), "--strict"]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("/channels/1/samples/2/data/1") && err.contains("--strict"),
        "{err}"
    );
    // a workspace without negative yields fits the same with and without --strict
    let two = repo("examples/workspaces/two-channel.json");
    let two = two.to_str().unwrap();
    let (c1, a, _) = run_gradfit(&["fit", two, "--json"]);
    let (c2, b, _) = run_gradfit(&["fit", two, "--json", "--strict"]);
    assert_eq!((c1, c2), (0, 0));
    assert_eq!(a["twice_nll"], b["twice_nll"]);
    assert_eq!(a["values"], b["values"]);
}

#[test]
fn hypothesis_tests_finish_where_a_rate_starts_negative() {
    // at mu = 0 the expected rate of SR bin 1 (3 observed events) is -0.4: pyhf's
    // hypotest fails there, gradfit's fits start in the extension and finish
    let m = model(&example_json("negative-yields"), false);
    let mut x = m.init().to_vec();
    x[m.poi().unwrap()] = 0.0;
    assert!(m.expected_main(&x)[3] < 0.0);
    assert!(m.domain_issue(&x, m.observed()).is_some());
    let (code, out, err) = run_gradfit(&["cls", &neg_path(), "--mu", "1", "--json"]);
    assert_eq!(code, 0, "{err}");
    let cls = out["cls_obs"].as_f64().unwrap();
    assert!(cls > 0.0 && cls < 1.0, "{out}");
    assert!(
        out["cls_exp"]
            .as_array()
            .unwrap()
            .iter()
            .all(|v| v.as_f64().is_some())
    );
    let (code, out, err) = run_gradfit(&["limit", &neg_path(), "--json"]);
    assert_eq!(code, 0, "{err}");
    let obs = out["obs"].as_f64().unwrap();
    assert!(obs > 0.0 && obs < 10.0, "{out}");
}

#[test]
fn fits_from_outside_the_domain_reach_the_constrained_minimum() {
    let m = model(&example_json("negative-yields"), false);
    let poi = m.poi().unwrap();
    let spec = FitSpec::from_model(&m).fix(poi, 0.0);
    let r = fit::fit(&m, m.observed(), &spec, &FitOptions::default());
    assert_eq!(r.status, FitStatus::Converged);
    // the minimum is inside pyhf's domain (SR bin 1 pulled back to a positive rate)
    assert!(m.domain_issue(&r.x, m.observed()).is_none());
    let rf = refs()["cases"]["negative-yields/v0/obs/mu=0"]["twice_nll"]
        .as_f64()
        .expect("reference");
    assert!((r.twice_nll - rf).abs() < TOL, "{} vs {rf}", r.twice_nll);
    // the strict model cannot start there
    let s = model(&example_json("negative-yields"), true);
    let rs = fit::fit(&s, s.observed(), &spec, &FitOptions::default());
    assert_eq!(rs.status, FitStatus::NonFiniteStart);
}

#[test]
fn gradient_and_hessian_are_consistent_outside_the_domain() {
    let m = model(&example_json("negative-yields"), false);
    let d = m.observed();
    let p = m.n_pars();
    let poi = m.poi().unwrap();
    // SR bin 1 (3 events) has rate 5 mu - 0.4 and SR bin 3 (no events) 2 mu - 0.2
    // at the suggested start: mu = 0.0800001 puts bin 1 just below the floor
    // of its extension and bin 3 below 0; mu = 0.09 only bin 3
    for (k, mu, e) in [(0, 0.0800001, 1e-11), (1, 0.09, 1e-7)] {
        let mut x = m.init().to_vec();
        x[poi] = mu;
        let nu = m.expected_main(&x);
        assert!(nu[5] < 0.0, "point {k}: {nu:?}");
        if k == 0 {
            assert!(nu[3] > 0.0 && nu[3] < gradfit::model::histfactory::kernel::RATE_FLOOR);
        }
        assert!(m.domain_issue(&x, d).is_some() || k == 0);
        let (f, g, h) = m.twice_nll_hessian(&x, d);
        assert!(f.is_finite());
        let gmax = g.iter().fold(0.0f64, |a, v| a.max(v.abs()));
        let hmax = h.iter().fold(0.0f64, |a, v| a.max(v.abs()));
        for i in 0..p {
            let mut xp = x.clone();
            xp[i] += e;
            let mut xm = x.clone();
            xm[i] -= e;
            let (fp, gp) = m.twice_nll_grad(&xp, d);
            let (fm, gm) = m.twice_nll_grad(&xm, d);
            let fd = (fp - fm) / (2.0 * e);
            assert!(
                (fd - g[i]).abs() <= 1e-4 * g[i].abs() + 1e-7 * gmax,
                "point {k} grad {}: {} vs {fd}",
                m.par_names[i],
                g[i]
            );
            for j in 0..p {
                let fd2 = (gp[j] - gm[j]) / (2.0 * e);
                let hv = h[j * p + i];
                assert!(
                    (fd2 - hv).abs() <= 1e-4 * hv.abs() + 1e-7 * hmax,
                    "point {k} hessian {} {}: {hv} vs {fd2}",
                    m.par_names[j],
                    m.par_names[i]
                );
            }
        }
    }
}

#[test]
fn nothing_changes_where_the_rates_stay_positive() {
    // the example corpus with and without the extension: bit for bit the same
    // fits wherever the strict fit (pyhf's domain) converged
    for name in ["two-channel", "negative-yields"] {
        let ws = example_json(name);
        let opts = FitOptions {
            covariance: false,
            ..Default::default()
        };
        let a = corpus::build(name, ws.clone(), corpus::CI, &ModelOptions::default());
        let strict = ModelOptions {
            strict_domain: true,
            ..Default::default()
        };
        let b = corpus::build(name, ws, corpus::CI, &strict);
        let ra = corpus::run(&a, &opts);
        let rb = corpus::run(&b, &opts);
        let (mut same, mut crossed) = (0, 0);
        for ((case, x), y) in a.cases.iter().zip(&ra).zip(&rb) {
            let m = &a.variants[case.variant].model;
            let d = &a.datasets[case.data].2;
            if y.converged && m.domain_issue(&case.spec.init, d).is_none() {
                if x.twice_nll.to_bits() == y.twice_nll.to_bits()
                    && x.x == y.x
                    && x.iterations == y.iterations
                {
                    same += 1;
                    continue;
                }
                // a path that steps outside the domain on its way (the strict
                // fit backs off there, the extended one does not) reaches the
                // same minimum along other iterations
                crossed += 1;
                assert!(x.converged, "{}: {:?}", case.id, x.status);
                assert!(
                    (x.twice_nll - y.twice_nll).abs() < 1e-9,
                    "{}: {} vs {}",
                    case.id,
                    x.twice_nll,
                    y.twice_nll
                );
                for (u, v) in x.x.iter().zip(&y.x) {
                    assert!((u - v).abs() < 1e-5, "{}: {:?} vs {:?}", case.id, x.x, y.x);
                }
            }
        }
        eprintln!(
            "{name}: {same} fits bit for bit equal, {crossed} equal minima along other paths"
        );
        assert!(
            same >= 60 && crossed * 10 <= same,
            "{name}: {same} fits equal, {crossed} along other paths"
        );
    }
}

#[test]
fn asimov_data_of_a_negative_rate_are_zero() {
    let m = model(&example_json("negative-yields"), false);
    let mut x = m.init().to_vec();
    x[m.poi().unwrap()] = 0.0;
    let a = m.asimov(&x);
    assert_eq!(a.main[3], 0.0);
    assert!(a.main.iter().all(|v| *v >= 0.0));
}
