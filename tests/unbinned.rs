//! Unbinned likelihoods: densities against scipy, fits against iminuit (the
//! references in tests/refs/unbinned come from scripts/unbinned_refs.py), exact
//! derivatives of whole models, toys, weighted fits and bad input.

#[path = "unbinned/cli.rs"]
mod cli;
mod common;
#[path = "unbinned/input.rs"]
mod input;
#[path = "unbinned/toys.rs"]
mod toys;

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
