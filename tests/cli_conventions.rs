//! pyhf's conventions on the command line: q0 tests mu = 0, conflicting or
//! out-of-bound values refused, --bounds, pyhf's option names and output
//! keys, hints between patch kinds, standard input.

mod common;
use common::repo;
use serde_json::Value;
use std::io::Write;
use std::process::{Command, Stdio};

fn ws() -> String {
    repo("examples/workspaces/two-channel.json")
        .display()
        .to_string()
}

fn run(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_gradfit"))
        .args(args)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!err.contains("panicked"), "{args:?}: {err}");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        err,
    )
}

fn json(out: &str) -> Value {
    serde_json::from_str(out).unwrap_or_else(|e| panic!("{e}: {out}"))
}

#[test]
fn q0_tests_mu_zero_as_pyhf() {
    let w = ws();
    let (code, out, _) = run(&["cls", &w, "--test-stat", "q0", "--json"]);
    assert_eq!(code, 0);
    let v = json(&out);
    // pyhf 0.7.6: hypotest(0.0, data, model, test_stat="q0") on this workspace
    assert!(
        (v["cls_obs"].as_f64().unwrap() - 0.02814).abs() < 2e-5,
        "{v}"
    );
    assert_eq!(v["mu"].as_f64(), Some(0.0));
    let (_, d, _) = run(&["discovery", &w, "--json"]);
    assert_eq!(json(&d)["p0_obs"], v["cls_obs"]);
    let (code, _, err) = run(&["cls", &w, "--test-stat", "q0", "--mu", "2", "--json"]);
    assert_eq!(code, 0);
    assert!(err.contains("q0 tests mu = 0"), "{err}");
}

#[test]
fn conflicts_and_values_outside_bounds_are_refused() {
    let w = ws();
    let (code, _, err) = run(&["fit", &w, "--fix", "mu=1", "--poi-value", "2"]);
    assert_eq!(code, 1);
    assert!(err.contains("conflicts with --poi-value 2"), "{err}");
    let (code, _, err) = run(&["fit", &w, "--fix", "jes=20"]);
    assert_eq!(code, 1);
    assert!(
        err.contains("[-5, 5]") && err.contains("--bounds jes=LO:HI"),
        "{err}"
    );
    let (code, _, err) = run(&["cls", &w, "--mu", "-1"]);
    assert_eq!(code, 1);
    assert!(err.contains("--mu -1") && err.contains("[0, 10]"), "{err}");
    let (code, _, err) = run(&["limit", &w, "--toys", "10", "--scan", "1:15:15"]);
    assert_eq!(code, 1);
    assert!(err.contains("--scan 11"), "{err}");
    // --bounds widens them
    let (code, out, err) = run(&["cls", &w, "--mu", "15", "--bounds", "mu=0:20", "--json"]);
    assert_eq!(code, 0, "{err}");
    assert!(json(&out)["cls_obs"].as_f64().unwrap() < 1e-6);
    let (code, out, _) = run(&["inspect", &w, "--bounds", "staterror_SR=0.5:1.5", "--json"]);
    assert_eq!(code, 0);
    let pars = json(&out)["parameters"].as_array().unwrap().clone();
    let sr: Vec<&Value> = pars
        .iter()
        .filter(|p| p["name"].as_str().unwrap().starts_with("staterror_SR["))
        .collect();
    assert_eq!(sr.len(), 3);
    assert!(
        sr.iter()
            .all(|p| p["bounds"] == serde_json::json!([0.5, 1.5]))
    );
    let (code, _, err) = run(&["fit", &w, "--bounds", "nope=0:1"]);
    assert_eq!(code, 1);
    assert!(err.contains("'nope'"), "{err}");
    let (code, _, err) = run(&["fit", &w, "--bounds", "mu=3:1"]);
    assert_eq!(code, 2);
    assert!(err.contains("not below"), "{err}");
}

#[test]
fn pyhf_option_names_and_output_keys() {
    let w = ws();
    let dir = std::env::temp_dir().join(format!("gradfit-conv-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let out = dir.join("fit.json");
    let (code, _, err) = run(&[
        "fit",
        &w,
        "--output-file",
        out.to_str().unwrap(),
        "--backend",
        "jax",
        "--optimizer",
        "minuit",
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("--backend jax ignored"), "{err}");
    let v: Value = serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    let mle = &v["mle_parameters"];
    assert_eq!(mle["staterror_SR"].as_array().unwrap().len(), 3);
    assert_eq!(
        mle["mu"][0],
        v["values"][v["par_names"]
            .as_array()
            .unwrap()
            .iter()
            .position(|n| n == "mu")
            .unwrap()]
    );
    let (code, o, _) = run(&["cls", &w, "--test-poi", "1.5", "--json"]);
    assert_eq!(code, 0);
    let c = json(&o);
    assert_eq!(c["CLs_obs"], c["cls_obs"]);
    assert_eq!(c["CLs_exp"], c["cls_exp"]);
    assert_eq!(c["mu"].as_f64(), Some(1.5));
    let (code, _, err) = run(&["cls", &w, "--calctype", "asymptotics", "--toys", "5"]);
    assert_eq!(code, 1);
    assert!(err.contains("contradict"), "{err}");
    let (code, o, err) = run(&[
        "cls",
        &w,
        "--calctype",
        "toybased",
        "--toys",
        "40",
        "--json",
    ]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(json(&o)["calculator"], "toys");
    let t = dir.join("toys.json");
    let (code, _, err) = run(&[
        "toys",
        &w,
        "--test-poi",
        "1",
        "--toys",
        "8",
        "-o",
        t.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = run(&[
        "toys",
        &w,
        "--mu",
        "1",
        "--n",
        "8",
        "--out",
        t.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
}

#[test]
fn the_other_kind_of_patch_file_gets_a_hint() {
    let w = ws();
    let ps = repo("examples/workspaces/two-channel.patchset.json");
    let p = repo("examples/workspaces/two-channel.signal-x2.patch.json");
    let (code, _, err) = run(&["fit", &w, "-p", ps.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(err.contains("--patchset FILE --patch-name NAME"), "{err}");
    let (code, _, err) = run(&[
        "fit",
        &w,
        "--patchset",
        p.to_str().unwrap(),
        "--patch-name",
        "x",
    ]);
    assert_eq!(code, 1);
    assert!(err.contains("give it with -p FILE"), "{err}");
}

#[test]
fn the_workspace_can_come_from_standard_input() {
    let text = std::fs::read(ws()).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_gradfit"))
        .args(["fit", "-", "--json"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(&text).unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let (_, file, _) = run(&["fit", &ws(), "--json"]);
    assert_eq!(v["twice_nll"], json(&file)["twice_nll"]);
}

#[test]
fn fit_minos_gives_asymmetric_errors() {
    let w = ws();
    let (code, out, err) = run(&["fit", &w, "--minos", "mu", "jes", "--json"]);
    assert_eq!(code, 0, "{err}");
    let v = json(&out);
    let m = v["minos"].as_object().unwrap();
    assert_eq!(m.len(), 2);
    let mu = &m["mu"];
    let (lo, hi) = (mu["lower"].as_f64().unwrap(), mu["upper"].as_f64().unwrap());
    assert!(lo < 0.0 && hi > 0.0 && hi > -lo, "{mu}");
    let (code, out, _) = run(&["fit", &w, "--minos"]);
    assert_eq!(code, 0);
    assert!(out.contains("minos -/+"), "{out}");
    let (code, _, err) = run(&["fit", &w, "--minos", "nope"]);
    assert_eq!(code, 1);
    assert!(err.contains("'nope'"), "{err}");
}

#[test]
fn pulls_filter_by_pattern_and_ranking_is_impacts() {
    let w = ws();
    let names = |out: &str| -> Vec<String> {
        json(out)["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["name"].as_str().unwrap().to_string())
            .collect()
    };
    let (code, out, _) = run(&["pulls", &w, "--json", "--include", "staterror_*"]);
    assert_eq!(code, 0);
    let n = names(&out);
    assert_eq!(n.len(), 5, "{n:?}");
    assert!(n.iter().all(|x| x.starts_with("staterror_")));
    let (code, out, _) = run(&[
        "pulls",
        &w,
        "--json",
        "--exclude",
        "*stat*",
        "--exclude",
        "m?",
    ]);
    assert_eq!(code, 0);
    let n = names(&out);
    assert!(n.contains(&"jes".to_string()) && n.contains(&"mj_shape[0]".to_string()));
    assert!(!n.iter().any(|x| x.contains("stat") || x == "mu"), "{n:?}");
    let (_, _, err) = run(&["pulls", &w, "--json", "--include", "nothing_like_this*"]);
    assert!(err.contains("matches no parameter"), "{err}");
    // the table prints the minimiser's noise around 0 as 0
    let (_, table, _) = run(&["pulls", &w]);
    assert!(!table.contains("e-7") && !table.contains("e-10"), "{table}");
    let (c1, a, _) = run(&["ranking", &w, "--json", "--method", "hessian"]);
    let (c2, b, _) = run(&["impacts", &w, "--json", "--method", "hessian"]);
    assert_eq!((c1, c2), (0, 0));
    assert_eq!(json(&a)["impacts"], json(&b)["impacts"]);
}
