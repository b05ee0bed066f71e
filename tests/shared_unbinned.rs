//! The HS3 files in ../shared/hs3 (real ROOT exports): each loads, evaluates and
//! fits, or is refused with a message naming the construct; log-likelihoods
//! agree with pyhs3 (and the histfactory channel with pyhf) once the constant
//! conventions are accounted for (docs/unbinned.md):
//! gradfit's extended terms carry `2 ln Gamma(N + 1)`, pyhs3's do not.

mod common;

use gradfit::fit::{FitOptions, FitSpec, fit};
use gradfit::model::unbinned::{Events, load_hs3};
use gradfit::model::{CombinedModel, Likelihood};
use serde_json::Value;
use std::path::{Path, PathBuf};

const IGNORE: &str =
    "needs ../shared: GRADFIT_SHARED=../shared cargo test --test shared_unbinned -- --ignored";

fn hs3_dir() -> PathBuf {
    let d = common::shared_dir().join("hs3");
    assert!(d.is_dir(), "{} missing", d.display());
    d
}

fn load(name: &str, analysis: Option<&str>) -> gradfit::Result<CombinedModel> {
    let dir = hs3_dir();
    let v = common::read(&dir.join(name));
    load_hs3(&v, name, &dir, analysis)
}

fn refs() -> Value {
    common::read(&Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/refs/unbinned/refs.json"))
}

/// twice_nll at the named parameter values (the others at their start).
fn eval_at(m: &CombinedModel, params: &serde_json::Map<String, Value>) -> f64 {
    let mut theta = m.init().to_vec();
    for (k, v) in params {
        if let Some(i) = m.par_index(k) {
            theta[i] = v.as_f64().unwrap();
        }
    }
    let mut s = m.scratch();
    m.eval(&theta, m.observed(), &mut s, None, None)
}

/// 2 ln Gamma(N + 1) summed over the model's extended unbinned channels.
fn factorial_terms(m: &CombinedModel) -> f64 {
    m.observed()
        .parts
        .iter()
        .filter_map(|d| d.downcast_ref::<Events>())
        .map(|e| e.constant)
        .sum()
}

#[test]
#[ignore = "needs ../shared: GRADFIT_SHARED=../shared cargo test --test shared_unbinned -- --ignored"]
fn every_file_loads_and_fits_or_is_refused_by_name() {
    let _ = IGNORE;
    let mut names: Vec<String> = std::fs::read_dir(hs3_dir())
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.ends_with(".json"))
        .collect();
    names.sort();
    assert_eq!(names.len(), 9, "{names:?}");
    // files outside what gradfit reads, and the construct their message must name
    let refused = [
        ("hs3testsuite-time_per_toy_morefit.json", "no data"),
        ("pyhs3-rf501_simultaneouspdf.json", "no data"),
    ];
    for name in &names {
        match load(name, None) {
            Ok(m) => {
                assert!(
                    !refused.iter().any(|(n, _)| n == name),
                    "{name} was expected to be refused"
                );
                let mut s = m.scratch();
                let f = m.eval(m.init(), m.observed(), &mut s, None, None);
                assert!(f.is_finite(), "{name}: twice_nll {f} at the start");
                let r = fit(
                    &m,
                    m.observed(),
                    &FitSpec::from_model(&m),
                    &FitOptions::default(),
                );
                assert!(r.status.ok(), "{name}: fit {:?}", r.status);
                assert!(r.twice_nll <= f + 1e-9, "{name}: the fit went up");
                for (i, e) in r.errors.iter().enumerate() {
                    assert!(
                        e.is_finite() && *e >= 0.0,
                        "{name}: error of {}",
                        m.par_names()[i]
                    );
                }
            }
            Err(e) => {
                let want = refused
                    .iter()
                    .find(|(n, _)| n == name)
                    .unwrap_or_else(|| panic!("{name} refused: {e}"))
                    .1;
                let msg = e.to_string();
                assert!(
                    msg.contains(want) && msg.contains(name.as_str()),
                    "{name}: {msg}"
                );
            }
        }
    }
    // the CMS file: its signal model is skipped by name (CMS::process_normalization)
    let m = load("pyhs3-combine_long_exercise_part1_nosys.json", None).unwrap();
    assert!(
        m.warnings
            .iter()
            .any(|w| w.contains("CMS::process_normalization") && w.contains("model_s")),
        "{:?}",
        m.warnings
    );
}

#[test]
#[ignore = "needs ../shared: GRADFIT_SHARED=../shared cargo test --test shared_unbinned -- --ignored"]
fn log_likelihoods_match_pyhs3() {
    let r = refs();
    let cases = r["pyhs3"].as_array().unwrap();
    assert!(cases.len() >= 10, "{} pyhs3 references", cases.len());
    for c in cases {
        let file = c["file"].as_str().unwrap();
        let m = load(file, c["analysis"].as_str()).unwrap();
        let ours = eval_at(&m, c["params"].as_object().unwrap());
        let theirs = c["minus2logL_pyhs3"].as_f64().unwrap();
        // pyhs3 leaves out ln N! of the extended terms
        let adjusted = ours - factorial_terms(&m);
        let scale = theirs.abs().max(ours.abs());
        assert!(
            (adjusted - theirs).abs() <= 1e-9 * scale,
            "{file} {:?} at {}: gradfit {ours} (-2 ln N! terms: {adjusted}) vs pyhs3 {theirs}",
            c["analysis"],
            c["params"]
        );
    }
}

#[test]
#[ignore = "needs ../shared: GRADFIT_SHARED=../shared cargo test --test shared_unbinned -- --ignored"]
fn histfactory_channel_matches_pyhf() {
    let r = refs();
    let cases = r["pyhf_histfactory"].as_array().unwrap();
    assert_eq!(cases.len(), 2);
    for c in cases {
        let m = load(c["file"].as_str().unwrap(), c["analysis"].as_str()).unwrap();
        let ours = eval_at(&m, c["params"].as_object().unwrap());
        let theirs = c["twice_nll_pyhf"].as_f64().unwrap();
        assert!(
            (ours - theirs).abs() <= 1e-10 * theirs.abs(),
            "gradfit {ours} vs pyhf {theirs}"
        );
    }
    // the analysis picks the data: Asimov by default (the first analysis), observed by name
    let asimov = load("pyhs3-simplemodel_uncorrelated-background_hs3.json", None).unwrap();
    let res = fit(
        &asimov,
        asimov.observed(),
        &FitSpec::from_model(&asimov),
        &FitOptions::default(),
    );
    let mu = asimov.par_index("mu").unwrap();
    assert!(
        (res.x[mu] - 1.0).abs() < 1e-6,
        "Asimov fit gives mu = {}",
        res.x[mu]
    );
}

#[test]
#[ignore = "needs ../shared: GRADFIT_SHARED=../shared cargo test --test shared_unbinned -- --ignored"]
fn root_conventions_are_read() {
    // exponential written by ROOT as exp(+alpha x): c = "-alpha" through a generic_function
    let m = load("hs3testsuite-rf207_comptools.json", None).unwrap();
    assert!(m.par_index("alpha").is_some() && m.par_index("alpha_exponential_inverted").is_none());
    assert!(
        m.warnings.iter().any(|w| w.contains("model_cust")),
        "{:?}",
        m.warnings
    );
    // axes in the order [y, x]; product of two Gaussians
    let m = load("hs3testsuite-rf304_uncorrprod.json", None).unwrap();
    let ev = m.observed().parts[0].downcast_ref::<Events>().unwrap();
    assert_eq!(ev.data.names, vec!["y", "x"]);
    // a literal 1.0 coefficient and a numeric sigma are constants, not parameters
    let m = load("hs3testsuite-rf203_ranges.json", None).unwrap();
    assert_eq!(m.par_names(), &["f", "mx", "a"]);
    // analyses: the constraint's global observable is data, its width a fixed parameter
    let m = load("pyhs3-benchmarks-1ch.json", None).unwrap();
    assert!(m.par_index("nom_alpha_sigma").is_none());
    let i = m.par_index("alpha_sigma").unwrap();
    let c = m.constraint(i).unwrap();
    assert_eq!((c.kind, c.sigma, c.center), ("normal", 1.0, 0.0));
    assert_eq!(m.poi(), m.par_index("mu_sig"));
}
