//! Unbinned likelihoods: densities against scipy, fits against iminuit (the
//! references in tests/refs/unbinned come from scripts/unbinned_refs.py), exact
//! derivatives of whole models, toys, weighted fits and bad input.

#[path = "unbinned/cli.rs"]
mod cli;
mod common;

use gradfit::fit::{FitOptions, FitSpec, fit};
use gradfit::model::unbinned::atoms::{Atom, Mode};
use gradfit::model::unbinned::weighted::fit_covariance_asymptotic;
use gradfit::model::unbinned::{Shape, load_hs3};
use gradfit::model::{CombinedModel, Likelihood};
use serde_json::{Value, json};
use std::path::Path;

fn refs_dir() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/refs/unbinned")
}

fn refs() -> Value {
    common::read(&refs_dir().join("refs.json"))
}

fn load_ref_model(name: &str) -> CombinedModel {
    let path = refs_dir().join(format!("{name}.json"));
    load_hs3(&common::read(&path), name, &refs_dir(), None).unwrap()
}

fn shape_of(name: &str, n: usize) -> Shape {
    match name {
        "gaussian" => Shape::Gauss,
        "exponential" => Shape::Expo,
        "lognormal" => Shape::LogNormal,
        "crystalball" => Shape::CrystalBall,
        "crystalball_doublesided" => Shape::DoubleCB,
        "chebychev" => Shape::Chebychev(n),
        "bernstein" => Shape::Bernstein(n),
        "polynomial" => Shape::Polynomial(n),
        "poisson" => Shape::Poisson,
        other => panic!("unknown shape {other}"),
    }
}

fn f64s(v: &Value) -> Vec<f64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

#[test]
fn densities_match_scipy() {
    let r = refs();
    let cases = r["densities"].as_array().unwrap();
    assert!(cases.len() >= 11);
    for c in cases {
        let p = f64s(&c["params"]);
        let shape = shape_of(c["shape"].as_str().unwrap(), p.len());
        let a = Atom {
            shape,
            obs: 0,
            lo: c["lo"].as_f64().unwrap(),
            hi: c["hi"].as_f64().unwrap(),
            u0: 0,
            name: "t".into(),
        };
        let x = f64s(&c["x"]);
        let want = f64s(&c["logpdf"]);
        let norm = a.norm(&p).unwrap();
        let mut lnq = vec![0.0; x.len()];
        a.block(&p, &norm, &x, Mode::Value, x.len(), &mut lnq, &mut []);
        for k in 0..x.len() {
            let rel = (lnq[k].exp() - want[k].exp()).abs() / want[k].exp();
            assert!(
                rel < 1e-12,
                "{} at {}: density {} vs scipy {} (rel {rel:e})",
                c["shape"],
                x[k],
                lnq[k].exp(),
                want[k].exp()
            );
        }
    }
}

fn do_fit(m: &CombinedModel) -> gradfit::fit::FitResult {
    let spec = FitSpec::from_model(m);
    let r = fit(m, m.observed(), &spec, &FitOptions::default());
    assert!(r.status.ok(), "{:?}", r.status);
    r
}

fn check_fit(name: &str) -> (CombinedModel, gradfit::fit::FitResult, Value) {
    let r = refs();
    let want = r["fits"][name].clone();
    let m = load_ref_model(if name == "weighted" { "weighted" } else { name });
    let res = do_fit(&m);
    let names: Vec<&str> = want["par_names"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    let tw = want["twice_nll"].as_f64().unwrap();
    assert!(
        (res.twice_nll - tw).abs() < 1e-6,
        "{name}: twice_nll {} vs iminuit {tw}",
        res.twice_nll
    );
    for (k, n) in names.iter().enumerate() {
        let i = m
            .par_index(n)
            .unwrap_or_else(|| panic!("{name}: no parameter {n}"));
        let (v, e) = (res.x[i], res.errors[i]);
        let (wv, we) = (
            want["values"][k].as_f64().unwrap(),
            want["errors"][k].as_f64().unwrap(),
        );
        // relative to the value, or to the error for values near zero
        let scale = wv.abs().max(we);
        assert!(
            (v - wv).abs() < 1e-4 * scale,
            "{name}: {n} = {v} vs iminuit {wv}"
        );
        assert!(
            (e - we).abs() < 1e-3 * we,
            "{name}: error of {n} = {e} vs iminuit {we}"
        );
    }
    (m, res, want)
}

#[test]
fn fit_extended_gauss_plus_exponential() {
    check_fit("gauss_expo");
}

#[test]
fn fit_double_sided_crystal_ball_plus_chebychev() {
    check_fit("dscb_cheb");
}

#[test]
fn fit_two_dimensional_product_with_constraint() {
    let (m, _, _) = check_fit("product_2d");
    // the constraint is a separate part and constrains theta
    let i = m.par_index("theta").unwrap();
    let c = m.constraint(i).expect("theta is constrained");
    assert_eq!((c.kind, c.sigma, c.center), ("normal", 1.0, 0.0));
}

#[test]
fn fit_weighted_events_with_asymptotic_errors() {
    let (m, res, want) = check_fit("weighted");
    let spec = FitSpec::from_model(&m);
    let cov = fit_covariance_asymptotic(&m, &res.x, &spec.fixed).unwrap();
    let n = m.n_pars();
    for (k, name) in want["par_names"].as_array().unwrap().iter().enumerate() {
        let i = m.par_index(name.as_str().unwrap()).unwrap();
        let e = cov[i * n + i].sqrt();
        let we = want["errors_asymptotic"][k].as_f64().unwrap();
        assert!(
            (e - we).abs() < 1e-3 * we,
            "asymptotic error of {name}: {e} vs {we}"
        );
    }
}

/// Gradient and Hessian of the whole model against central differences.
fn check_derivatives(m: &CombinedModel, theta: &[f64]) {
    let n = m.n_pars();
    let mut s = m.scratch();
    let (mut g, mut h) = (vec![0.0; n], vec![0.0; n * n]);
    let f = m.eval(theta, m.observed(), &mut s, Some(&mut g), Some(&mut h));
    assert!(f.is_finite());
    for k in 0..n {
        let st = 1e-5 * theta[k].abs().max(1e-2);
        let (mut p, mut q) = (theta.to_vec(), theta.to_vec());
        p[k] += st;
        q[k] -= st;
        let (mut gp, mut gq) = (vec![0.0; n], vec![0.0; n]);
        let fp = m.eval(&p, m.observed(), &mut s, Some(&mut gp), None);
        let fq = m.eval(&q, m.observed(), &mut s, Some(&mut gq), None);
        let fd = (fp - fq) / (2.0 * st);
        assert!(
            (fd - g[k]).abs() < 1e-5 * g[k].abs().max(1.0) + 1e-9 * f.abs(),
            "{}: d/d{} = {} vs {fd}",
            m.label,
            m.par_names()[k],
            g[k]
        );
        for r in 0..n {
            let fd2 = (gp[r] - gq[r]) / (2.0 * st);
            let hv = h[r * n + k];
            assert!(
                (fd2 - hv).abs() < 1e-4 * hv.abs().max(1.0),
                "{}: d2/d{}d{} = {hv} vs {fd2}",
                m.label,
                m.par_names()[r],
                m.par_names()[k]
            );
        }
    }
}

#[test]
fn model_derivatives_match_differences() {
    for name in ["gauss_expo", "dscb_cheb", "product_2d", "weighted"] {
        let m = load_ref_model(name);
        // away from the start: every parameter moved a little
        let theta: Vec<f64> = m.init().iter().map(|v| v * 1.03 + 0.01).collect();
        check_derivatives(&m, &theta);
    }
    // nested fractions, shared parameters and an expression slot
    let m = load_hs3(&nested_model(), "nested", Path::new("."), None).unwrap();
    let theta: Vec<f64> = m.init().iter().map(|v| v * 0.97 + 0.02).collect();
    check_derivatives(&m, &theta);
}

/// A non-extended mixture of (mixture of two Gaussians sharing the mean with an
/// expression width) and a Bernstein polynomial, fractions N-1.
fn nested_model() -> Value {
    let entries: Vec<Value> = (0..300)
        .map(|i| json!([(i as f64 * 0.61803398875) % 1.0 * 10.0]))
        .collect();
    json!({
        "metadata": {"hs3_version": "0.2"},
        "distributions": [
            {"name": "model", "type": "mixture_dist", "summands": ["sig", "bkg"], "coefficients": ["fs"]},
            {"name": "sig", "type": "mixture_dist", "summands": ["g1", "g2"], "coefficients": ["f1"], "extended": false},
            {"name": "g1", "type": "gaussian_dist", "x": "x", "mean": "m", "sigma": "s"},
            {"name": "g2", "type": "gaussian_dist", "x": "x", "mean": "m", "sigma": "s2"},
            {"name": "bkg", "type": "bernstein_poly_dist", "x": "x", "coefficients": [1.0, "b1", "b2"]}
        ],
        "functions": [{"name": "s2", "type": "generic_function", "expression": "s * k2 + 0.1 * exp(-b1)"}],
        "data": [{"name": "d", "type": "unbinned", "axes": [{"name": "x", "min": 0.0, "max": 10.0}], "entries": entries}],
        "parameter_points": [{"name": "default_values", "parameters": [
            {"name": "fs", "value": 0.4}, {"name": "f1", "value": 0.6}, {"name": "m", "value": 5.0},
            {"name": "s", "value": 1.0}, {"name": "k2", "value": 2.5}, {"name": "b1", "value": 0.7}, {"name": "b2", "value": 1.3}]}]
    })
}

/// An extended Gaussian + exponential with `ns` + `nb` expected events and
/// one placeholder event (toys replace it).
fn toy_model(ns: f64, nb: f64) -> CombinedModel {
    toy_model_fixed(ns, nb, false)
}

/// As [`toy_model`]; `shape_fixed` fixes the Gaussian's mean and width (the
/// background-only fit leaves them undetermined otherwise).
fn toy_model_fixed(ns: f64, nb: f64, shape_fixed: bool) -> CombinedModel {
    let doc = json!({
        "distributions": [
            {"name": "model", "type": "mixture_dist", "summands": ["sig", "bkg"], "coefficients": ["nsig", "nbkg"], "extended": true},
            {"name": "sig", "type": "gaussian_dist", "x": "mass", "mean": "mu", "sigma": "sigma"},
            {"name": "bkg", "type": "exponential_dist", "x": "mass", "c": "c"}
        ],
        "data": [{"name": "d", "type": "unbinned", "axes": [{"name": "mass", "min": 60.0, "max": 120.0}], "entries": [[91.0]]}],
        "likelihoods": [{"name": "L", "distributions": ["model"], "data": ["d"]}],
        "domains": [{"name": "dom", "type": "product_domain", "axes": [
            {"name": "nsig", "min": -100.0, "max": 1e4}, {"name": "nbkg", "min": 0.0, "max": 1e5},
            {"name": "sigma", "min": 0.1, "max": 20.0}, {"name": "c", "min": -1.0, "max": 1.0}]}],
        "parameter_points": [{"name": "default_values", "parameters": [
            {"name": "nsig", "value": ns}, {"name": "nbkg", "value": nb}, {"name": "mu", "value": 91.0, "const": shape_fixed},
            {"name": "sigma", "value": 2.5, "const": shape_fixed}, {"name": "c", "value": 0.03}]}],
        "analyses": [{"name": "A", "likelihood": "L", "domains": ["dom"], "parameters_of_interest": ["nsig"]}]
    });
    load_hs3(&doc, "toy", Path::new("."), None).unwrap()
}

#[test]
fn toys_are_bit_identical_across_threads_and_shards() {
    use gradfit::infer::shards::merge;
    use gradfit::infer::toys::{ToySettings, run_toys};
    use gradfit::infer::{Problem, TestStat};
    let mut m = toy_model_fixed(60.0, 400.0, true);
    // observed data: a toy of the model itself
    let g = m.generator(m.init());
    let obs = m.sample(&g, 99, 0, 1);
    m.set_observed(obs).unwrap();
    let settings = |batch: usize, shard: Option<(u32, u32)>| ToySettings {
        mu: 60.0,
        test_stat: TestStat::QTilde,
        n_toys: 24,
        seed: 5,
        shard,
        batch,
        model_digest: "t".into(),
        toy_max_iter: None,
    };
    let run = |s: &ToySettings| {
        let p = Problem::new(&m, m.observed()).unwrap();
        run_toys(&p, s, &FitOptions::default(), &|_, _| {}).unwrap()
    };
    let one = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap();
    let two = rayon::ThreadPoolBuilder::new()
        .num_threads(2)
        .build()
        .unwrap();
    let a = one.install(|| run(&settings(1, None)));
    let b = two.install(|| run(&settings(64, None)));
    assert_eq!(a, b);
    let shards: Vec<_> = (0..3)
        .map(|i| two.install(|| run(&settings(5, Some((i, 3))))))
        .collect();
    assert_eq!(merge(shards, &[]).unwrap(), a);
    assert!(a.sig_bkg.iter().all(|r| r.stat.is_some()));
    // the events themselves: the same toy drawn alone, in either pool
    let g = m.generator(m.init());
    let t1 = one.install(|| m.sample(&g, 5, 17, 1));
    let t2 = two.install(|| m.sample(&g, 5, 17, 1));
    let e = |d: &gradfit::model::CombinedData| {
        d.parts[0]
            .downcast_ref::<gradfit::model::unbinned::Events>()
            .unwrap()
            .data
            .clone()
    };
    assert_eq!(e(&t1), e(&t2));
    assert_ne!(e(&t1), e(&m.sample(&g, 5, 18, 1)));
}

/// Evaluation over many events does not depend on the thread count (fixed
/// chunks, summed in order).
#[test]
fn evaluation_is_bit_identical_across_threads() {
    let pools: Vec<_> = [1, 2, 3]
        .iter()
        .map(|&k| {
            rayon::ThreadPoolBuilder::new()
                .num_threads(k)
                .build()
                .unwrap()
        })
        .collect();
    for (label, m) in [
        ("gauss_expo", toy_model(20_000.0, 80_000.0)),
        ("dscb_expo", dscb_model(20_000.0, 80_000.0)),
    ] {
        let g = m.generator(m.init());
        let data = m.sample(&g, 3, 0, 1);
        let n = m.n_pars();
        let theta: Vec<f64> = m.init().iter().map(|v| v * 1.01).collect();
        let eval = || {
            let mut s = m.scratch();
            let (mut gr, mut h) = (vec![0.0; n], vec![0.0; n * n]);
            let f = m.eval(&theta, &data, &mut s, Some(&mut gr), Some(&mut h));
            (f, gr, h)
        };
        let r: Vec<_> = pools.iter().map(|p| p.install(eval)).collect();
        assert!(r[0].0.is_finite(), "{label}");
        assert!(r[0].2.iter().any(|v| *v != 0.0), "{label}");
        assert_eq!(r[0], r[1], "{label}");
        assert_eq!(r[0], r[2], "{label}");
    }
}

/// An extended double-sided Crystal Ball + exponential on [60, 120] (the
/// model of the speed benchmark, `benches/unbinned.rs`), one placeholder event.
fn dscb_model(ns: f64, nb: f64) -> CombinedModel {
    let doc = json!({
        "distributions": [
            {"name": "model", "type": "mixture_dist", "summands": ["sig", "bkg"], "coefficients": ["nsig", "nbkg"], "extended": true},
            {"name": "sig", "type": "crystalball_doublesided_dist", "m": "mass", "m0": "m0", "sigma_L": "sl", "sigma_R": "sr",
             "alpha_L": "al", "n_L": "nl", "alpha_R": "ar", "n_R": "nr"},
            {"name": "bkg", "type": "exponential_dist", "x": "mass", "c": "c"}
        ],
        "data": [{"name": "d", "type": "unbinned", "axes": [{"name": "mass", "min": 60.0, "max": 120.0}], "entries": [[91.0]]}],
        "likelihoods": [{"name": "L", "distributions": ["model"], "data": ["d"]}],
        "parameter_points": [{"name": "default_values", "parameters": [
            {"name": "nsig", "value": ns}, {"name": "nbkg", "value": nb}, {"name": "m0", "value": 91.0},
            {"name": "sl", "value": 2.3}, {"name": "sr", "value": 2.8}, {"name": "al", "value": 1.3},
            {"name": "nl", "value": 3.0}, {"name": "ar", "value": 1.6}, {"name": "nr", "value": 5.0}, {"name": "c", "value": 0.03}]}],
        "analyses": [{"name": "A", "likelihood": "L", "parameters_of_interest": ["nsig"]}]
    });
    load_hs3(&doc, "dscb", Path::new("."), None).unwrap()
}

/// A Crystal Ball fit over many events (several chunks) gives the same
/// result bit for bit on one and on two threads, and its minimum is one:
/// the gradient there is zero to rounding and every step away rises.
#[test]
fn crystal_ball_fit_is_thread_independent_and_a_minimum() {
    let mut m = dscb_model(10_000.0, 30_000.0);
    let g = m.generator(m.init());
    let data = m.sample(&g, 11, 0, 1);
    m.set_observed(data).unwrap();
    let pool = |k: usize| {
        rayon::ThreadPoolBuilder::new()
            .num_threads(k)
            .build()
            .unwrap()
    };
    let a = pool(1).install(|| do_fit(&m));
    let b = pool(2).install(|| do_fit(&m));
    assert_eq!(a.twice_nll.to_bits(), b.twice_nll.to_bits());
    assert_eq!(a.x, b.x);
    assert_eq!(a.errors, b.errors);
    let n = m.n_pars();
    let mut s = m.scratch();
    let mut gr = vec![0.0; n];
    let f = m.eval(&a.x, m.observed(), &mut s, Some(&mut gr), None);
    assert_eq!(f.to_bits(), a.twice_nll.to_bits());
    for i in 0..n {
        // |g_i| sigma_i is the change of twice_nll over one error: tiny at a minimum
        assert!(
            (gr[i] * a.errors[i]).abs() < 1e-4,
            "{}: gradient {} (error {})",
            m.par_names()[i],
            gr[i],
            a.errors[i]
        );
        for sgn in [-1.0, 1.0] {
            let mut t = a.x.clone();
            t[i] += sgn * 0.1 * a.errors[i];
            let ft = m.eval(&t, m.observed(), &mut s, None, None);
            assert!(ft > f, "{}: {ft} <= {f}", m.par_names()[i]);
        }
    }
}

/// The fitted signal yield over 2000 toys: unbiased, and its spread is the
/// fitted error (pulls with mean 0 and width 1).
#[test]
fn fitted_yield_distribution_over_toys() {
    let (ns, nb) = (200.0, 800.0);
    let m = toy_model(ns, nb);
    let g = m.generator(m.init());
    let n_toys = 2000u32;
    let data: Vec<_> = (0..n_toys).map(|t| m.sample(&g, 11, t, 1)).collect();
    let refs: Vec<_> = data.iter().collect();
    let specs = vec![FitSpec::from_model(&m); n_toys as usize];
    let res = gradfit::fit::fit_batch(&m, &refs, &specs, &FitOptions::default());
    let i = m.par_index("nsig").unwrap();
    let (mut vals, mut pulls) = (Vec::new(), Vec::new());
    for (t, r) in res.iter().enumerate() {
        assert!(
            r.status.ok(),
            "toy {t}: {:?} {:?} f {} edm {} it {}",
            r.status,
            r.x,
            r.twice_nll,
            r.edm,
            r.iterations
        );
        vals.push(r.x[i]);
        pulls.push((r.x[i] - ns) / r.errors[i]);
    }
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    let sd = |v: &[f64]| {
        let m = mean(v);
        (v.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / (v.len() - 1) as f64).sqrt()
    };
    let (mv, sv) = (mean(&vals), sd(&vals));
    let nt = n_toys as f64;
    assert!(
        (mv - ns).abs() < 4.0 * sv / nt.sqrt(),
        "mean fitted yield {mv} (spread {sv})"
    );
    let (mp, sp) = (mean(&pulls), sd(&pulls));
    assert!(mp.abs() < 0.1, "pull mean {mp}");
    assert!((sp - 1.0).abs() < 0.06, "pull width {sp}");
}

/// A minimal valid document to break in the bad-input tests.
fn good_doc() -> Value {
    json!({
        "metadata": {"hs3_version": "0.2"},
        "distributions": [
            {"name": "model", "type": "mixture_dist", "summands": ["g", "e"], "coefficients": ["f"]},
            {"name": "g", "type": "gaussian_dist", "x": "x", "mean": "m", "sigma": "s"},
            {"name": "e", "type": "exponential_dist", "x": "x", "c": "c"}
        ],
        "functions": [{"name": "s", "type": "generic_function", "expression": "w * 2"}],
        "data": [{"name": "d", "type": "unbinned", "axes": [{"name": "x", "min": 0.0, "max": 10.0}],
                  "entries": [[1.0], [4.5], [5.2], [9.0]]}],
        "likelihoods": [{"name": "L", "distributions": ["model"], "data": ["d"]}],
        "parameter_points": [{"name": "default_values", "parameters": [
            {"name": "f", "value": 0.3}, {"name": "m", "value": 5.0}, {"name": "w", "value": 0.5}, {"name": "c", "value": 0.2}]}]
    })
}

fn load_err(doc: &Value) -> String {
    match load_hs3(doc, "bad.json", Path::new("."), None) {
        Ok(_) => panic!("accepted: {doc}"),
        Err(e) => e.to_string(),
    }
}

/// An edit of the good document, the JSON location and the words its error must contain.
type BadCase = (Box<dyn Fn(&mut Value)>, &'static str, &'static str);

#[test]
fn bad_input_names_the_json_location() {
    assert!(load_hs3(&good_doc(), "good.json", Path::new("."), None).is_ok());
    let cases: Vec<BadCase> = vec![
        (
            Box::new(|d| d["distributions"][2]["type"] = json!("argus_dist")),
            "/distributions/2/type",
            "argus_dist",
        ),
        (
            Box::new(|d| d["distributions"][1]["mean"] = json!("nowhere_fn")),
            "",
            "",
        ),
        (
            Box::new(|d| d["distributions"][0]["summands"][1] = json!("missing")),
            "/distributions/0/summands/1",
            "'missing'",
        ),
        (
            Box::new(|d| d["functions"][0]["expression"] = json!("w * s")),
            "/functions/0/expression",
            "cycle",
        ),
        (
            Box::new(|d| d["distributions"][0]["summands"][0] = json!("model")),
            "/distributions/0/summands/0",
            "cycle",
        ),
        (
            Box::new(|d| d["distributions"][2]["x"] = json!("y")),
            "/distributions/2",
            "'y'",
        ),
        (
            Box::new(|d| d["data"][0]["entries"][2] = json!([11.0])),
            "/data/0/entries/2",
            "outside the axis range",
        ),
        (
            Box::new(|d| d["data"][0]["entries"][1] = json!([1.0, 2.0])),
            "/data/0/entries/1",
            "1 numbers",
        ),
        (
            Box::new(|d| d["data"][0]["weights"] = json!([1.0, 2.0])),
            "/data/0/weights",
            "2 weights for 4",
        ),
        (
            Box::new(|d| d["parameter_points"][0]["parameters"][0]["value"] = json!(1.3)),
            "/distributions/0/coefficients",
            "more than one",
        ),
        (
            Box::new(
                |d| d["distributions"][2] = json!({"name": "e", "type": "polynomial_dist", "x": "x", "coefficients": [-1.0, 0.1]}),
            ),
            "/distributions/2",
            "not > 0",
        ),
        (
            Box::new(|d| d["functions"][0]["expression"] = json!("w * * 2")),
            "/functions/0/expression",
            "offset",
        ),
        (
            Box::new(|d| d["functions"][0]["type"] = json!("CMS::process_normalization")),
            "/functions/0/type",
            "CMS::process_normalization",
        ),
        (
            Box::new(|d| d["likelihoods"][0]["data"][0] = json!("nodata")),
            "/likelihoods/0/data/0",
            "'nodata'",
        ),
        (
            Box::new(|d| d["distributions"][1]["sigma"] = json!("x")),
            "/distributions/1",
            "observable 'x'",
        ),
        (
            Box::new(|d| d["distributions"][0]["coefficients"] = json!(["f", "f", "f"])),
            "/distributions/0/coefficients",
            "3 coefficients for 2",
        ),
        (
            Box::new(|d| d["data"][0]["axes"][0]["max"] = json!(-1.0)),
            "/data/0/axes/0",
            "not below",
        ),
        (
            Box::new(|d| d["distributions"][1]["name"] = json!("e")),
            "/distributions/2/name",
            "twice",
        ),
    ];
    for (k, (edit, loc, what)) in cases.iter().enumerate() {
        let mut d = good_doc();
        edit(&mut d);
        if loc.is_empty() {
            // an unknown name in a parameter slot is a parameter: it needs a value
            let e = load_err(&d);
            assert!(
                e.contains("nowhere_fn") && e.contains("no value"),
                "case {k}: {e}"
            );
            continue;
        }
        let e = load_err(&d);
        assert!(
            e.contains(&format!("at {loc}:")),
            "case {k}: '{e}' does not name {loc}"
        );
        assert!(e.contains(what), "case {k}: '{e}' does not say '{what}'");
    }
    // a density that is not positive at an event: a Chebychev that dips below zero
    let mut d = good_doc();
    d["distributions"][2] =
        json!({"name": "e", "type": "chebychev_dist", "x": "x", "coefficients": [1.5]});
    let e = load_err(&d);
    assert!(e.contains("not > 0") && e.contains("event 0"), "{e}");
}

#[test]
fn bad_file_exits_non_zero_with_the_location() {
    let dir = std::env::temp_dir().join(format!("gradfit-unbinned-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut d = good_doc();
    d["distributions"][2]["type"] = json!("argus_dist");
    let path = dir.join("bad.json");
    std::fs::write(&path, d.to_string()).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_gradfit"))
        .args(["fit", path.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("/distributions/2/type") && err.contains("argus_dist"),
        "{err}"
    );
    let good = dir.join("good.json");
    std::fs::write(&good, good_doc().to_string()).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_gradfit"))
        .args(["fit", good.to_str().unwrap(), "--json"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["par_names"], json!(["f", "m", "w", "c"]));
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn yields_plot_of_an_unbinned_channel() {
    use gradfit::report::plot::unbinned::{unbinned_plots, write_unbinned_plots};
    let m = load_ref_model("product_2d");
    let res = do_fit(&m);
    let plots = unbinned_plots(&m, &res.x, m.observed(), 40, "post-fit");
    assert_eq!(plots.len(), 2, "one plot per observable");
    let nsig = res.x[m.par_index("nsig").unwrap()];
    let nbkg = res.x[m.par_index("nbkg").unwrap()];
    for p in &plots {
        assert_eq!(p.edges.len(), 41);
        let n_data: f64 = p.data.iter().sum();
        let n_exp: f64 = p.expected.iter().sum();
        let ev = m.observed().parts[0]
            .downcast_ref::<gradfit::model::unbinned::Events>()
            .unwrap();
        assert_eq!(
            n_data,
            ev.data.len() as f64,
            "{}: every event in a bin",
            p.title
        );
        // the expected events over the range are the fitted yields (extended model)
        assert!(
            (n_exp - (nsig + nbkg)).abs() < 1e-9 * n_exp,
            "{}: {n_exp}",
            p.title
        );
        // at the best fit of an extended model the total equals the number of events
        assert!(
            (n_exp - n_data).abs() < 1e-6 * n_data,
            "{}: {n_exp} vs {n_data}",
            p.title
        );
        assert_eq!(p.curve_components.len(), 2);
        // the curves integrate to the yields (per bin width, 400 midpoints)
        let dx = (p.edges[40] - p.edges[0]) / 400.0;
        let bw = (p.edges[40] - p.edges[0]) / 40.0;
        let integral: f64 = p.curve_total.iter().map(|y| y * dx / bw).sum();
        assert!(
            (integral - n_exp).abs() < 1e-3 * n_exp,
            "{}: curve integral {integral}",
            p.title
        );
    }
    let dir = std::env::temp_dir().join(format!("gradfit-ub-plots-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let paths = write_unbinned_plots(
        &m,
        &res.x,
        m.observed(),
        40,
        "post-fit",
        &dir,
        "fit_",
        "svg",
    )
    .unwrap();
    assert_eq!(paths.len(), 2);
    for p in &paths {
        let text = std::fs::read_to_string(p).unwrap();
        let doc = roxmltree::Document::parse(&text).unwrap();
        let texts: Vec<String> = doc
            .descendants()
            .filter(|n| n.is_text())
            .filter_map(|n| n.text().map(str::to_string))
            .collect();
        assert!(
            texts.iter().any(|t| t.contains("post-fit")),
            "{}",
            p.display()
        );
        assert!(texts.iter().any(|t| t.trim() == "pull"), "{texts:?}");
        assert!(texts.iter().any(|t| t.trim() == "sig_x*sig_y"), "{texts:?}");
    }
    let png = write_unbinned_plots(
        &m,
        &res.x,
        m.observed(),
        40,
        "post-fit",
        &dir,
        "fit_",
        "png",
    )
    .unwrap();
    assert!(std::fs::read(&png[0]).unwrap().starts_with(b"\x89PNG"));
    std::fs::remove_dir_all(&dir).ok();
}
