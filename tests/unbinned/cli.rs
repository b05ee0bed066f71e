//! The command line on HS3 files: every command runs on the committed
//! Gaussian + exponential example (tests/refs/unbinned/gauss_expo.json, 5122
//! events, references from iminuit in refs.json), weighted fits report the
//! asymptotic covariance by default, `yields --plot` draws the unbinned plots
//! and `inspect` lists observables, distributions and parameters.

use super::common::{self, rel, run_gradfit};
use serde_json::{Value, json};
use std::path::PathBuf;

fn tempdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("gradfit-ub-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn model_path(name: &str) -> String {
    super::refs_dir()
        .join(format!("{name}.json"))
        .display()
        .to_string()
}

fn ok(args: &[&str]) -> Value {
    let (code, v, err) = run_gradfit(args);
    assert_eq!(code, 0, "{args:?}: exit {code}: {err}");
    v
}

fn idx(v: &Value, name: &str) -> usize {
    v["par_names"]
        .as_array()
        .unwrap()
        .iter()
        .position(|n| n == name)
        .unwrap_or_else(|| panic!("no parameter {name} in {v}"))
}

fn at(v: &Value, key: &str, name: &str) -> f64 {
    v[key][idx(v, name)].as_f64().unwrap()
}

#[test]
fn every_command_runs_on_an_hs3_file() {
    let w = model_path("gauss_expo");
    let want = &super::refs()["fits"]["gauss_expo"];
    let dir = tempdir("all");
    let f = |n: &str| dir.join(n).display().to_string();

    // fit: iminuit's minimum and errors, the Hessian covariance (unit weights)
    let fit = ok(&["fit", &w, "--json"]);
    assert_eq!(fit["covariance"], "hessian");
    let tw = want["twice_nll"].as_f64().unwrap();
    assert!(
        (fit["twice_nll"].as_f64().unwrap() - tw).abs() < 1e-6,
        "{fit}"
    );
    let wn = want["par_names"].as_array().unwrap();
    for (k, n) in wn.iter().enumerate() {
        let n = n.as_str().unwrap();
        let (v, e) = (at(&fit, "values", n), at(&fit, "errors", n));
        assert!(
            rel(v, want["values"][k].as_f64().unwrap()) < 1e-4,
            "{n} = {v}"
        );
        assert!(
            rel(e, want["errors"][k].as_f64().unwrap()) < 1e-3,
            "error of {n} = {e}"
        );
    }
    let (nsig, nsig_err) = (at(&fit, "values", "nsig"), at(&fit, "errors", "nsig"));

    // eval at iminuit's minimum, in the model's parameter order
    let pars: Vec<f64> = fit["par_names"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| {
            let k = wn.iter().position(|x| x == n).unwrap();
            want["values"][k].as_f64().unwrap()
        })
        .collect();
    std::fs::write(f("pars.json"), json!(pars).to_string()).unwrap();
    let ev = ok(&["eval", &w, "--pars", &f("pars.json"), "--hessian", "--json"]);
    assert!(
        (ev["twice_nll"].as_f64().unwrap() - tw).abs() < 1e-6,
        "{ev}"
    );

    // scan of the POI (the signal yield): the minimum of the scan is the fit's
    let sc = ok(&["scan", &w, "--range", "1000:1150:7", "--json"]);
    let pts = sc["points"].as_array().unwrap();
    assert_eq!(pts.len(), 7, "{sc}");

    // reports: pulls, impacts, correlations, yields
    let pulls = ok(&["pulls", &w, "--json"]);
    assert!(pulls["parameters"].as_array().is_some(), "{pulls}");
    let imp = ok(&["impacts", &w, "--json"]);
    let pe = imp["poi_error"].as_f64().unwrap();
    assert!(rel(pe, nsig_err) < 1e-3, "{imp} vs {nsig_err}");
    let corr = ok(&["corr", &w, "--json"]);
    let cm = corr["correlation"].as_array().unwrap();
    let i = idx(&corr, "nsig");
    assert!((cm[i][i].as_f64().unwrap() - 1.0).abs() < 1e-12, "{corr}");
    let j = idx(&corr, "nbkg");
    let rho = cm[i][j].as_f64().unwrap();
    assert!(
        rho < 0.0 && rho > -1.0,
        "signal and background yields anticorrelate: {rho}"
    );

    // hypothesis tests on a copy of the model with the peak's position and
    // width const at the best fit (the free shape: the test below)
    let mut doc = common::read(&super::refs_dir().join("gauss_expo.json"));
    for p in doc["parameter_points"][0]["parameters"]
        .as_array_mut()
        .unwrap()
    {
        let n = p["name"].as_str().unwrap().to_string();
        if n == "mu" || n == "sigma" {
            p["value"] = json!(at(&fit, "values", &n));
            p["const"] = json!(true);
        }
    }
    std::fs::write(f("fixed_shape.json"), doc.to_string()).unwrap();
    let w = f("fixed_shape.json");
    let fit2 = ok(&["fit", &w, "--json"]);
    assert!(rel(at(&fit2, "values", "nsig"), nsig) < 1e-6, "{fit2}");
    let nsig_err = at(&fit2, "errors", "nsig");

    // hypothesis tests: far above the fitted yield is excluded, the signal is significant
    let cls = ok(&[
        "cls",
        &w,
        "--mu",
        &format!("{}", nsig + 4.0 * nsig_err),
        "--json",
    ]);
    let c = cls["cls_obs"].as_f64().unwrap();
    assert!(c > 0.0 && c < 0.01, "{cls}");
    let lim = ok(&["limit", &w, "--json"]);
    let obs = lim["obs"].as_f64().unwrap();
    // asymptotically the 95% CLs limit on a well-measured yield is about mu_hat + 1.96 sigma
    assert!(
        obs > nsig + 1.5 * nsig_err && obs < nsig + 2.5 * nsig_err,
        "{lim}"
    );
    let disc = ok(&["discovery", &w, "--json"]);
    let z = disc["z_obs"].as_f64().unwrap();
    assert!(z > 15.0, "{disc}");

    // toys (shape fixed) in one run and in two shards merged: the same records
    let toy = |extra: &[&str], out: &str| {
        let mut a = vec![
            "toys", &w, "--mu", "1076", "--n", "6", "--seed", "3", "--out", out,
        ];
        a.extend_from_slice(extra);
        a.push("--json");
        ok(&a)
    };
    let t = toy(&[], &f("all.json"));
    assert_eq!(t["n_toys"], 6, "{t}");
    toy(&["--shard", "0/2"], &f("s0.json"));
    toy(&["--shard", "1/2"], &f("s1.json"));
    ok(&[
        "merge",
        &f("s0.json"),
        &f("s1.json"),
        "--out",
        &f("merged.json"),
        "--json",
    ]);
    let recs = |n: &str| {
        let v = common::read(&dir.join(n));
        (v["sig_bkg"].clone(), v["bkg"].clone())
    };
    let all = recs("all.json");
    assert_eq!(all.0.as_array().map(Vec::len), Some(6));
    assert_eq!(all, recs("merged.json"));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn weighted_fit_reports_the_asymptotic_covariance_by_default() {
    let w = model_path("weighted");
    let want = &super::refs()["fits"]["weighted"];
    let wn = want["par_names"].as_array().unwrap();
    let def = ok(&["fit", &w, "--json"]);
    let hes = ok(&["fit", &w, "--covariance", "hessian", "--json"]);
    assert_eq!(def["covariance"], "asymptotic");
    assert_eq!(hes["covariance"], "hessian");
    for (k, n) in wn.iter().enumerate() {
        let n = n.as_str().unwrap();
        let ea = want["errors_asymptotic"][k].as_f64().unwrap();
        let eh = want["errors"][k].as_f64().unwrap();
        let (gd, gh) = (at(&def, "errors", n), at(&hes, "errors", n));
        assert!(rel(gd, ea) < 1e-3, "asymptotic error of {n}: {gd} vs {ea}");
        assert!(rel(gh, eh) < 1e-3, "Hessian error of {n}: {gh} vs {eh}");
        // the two must differ for the test to tell them apart (0.5% to 5% here)
        assert!(rel(ea, eh) > 4e-3, "{n}: {ea} vs {eh}");
    }
    // the correlation matrix comes from the same covariance
    let c = def["correlation"].as_array().unwrap();
    let i = idx(&def, "nsig");
    assert!((c[i][i].as_f64().unwrap() - 1.0).abs() < 1e-12);
    // unit-weight models: asymptotic on request, and a pyhf workspace refuses it
    let g = ok(&[
        "fit",
        &model_path("gauss_expo"),
        "--covariance",
        "asymptotic",
        "--json",
    ]);
    assert_eq!(g["covariance"], "asymptotic");
    let ws = common::repo("examples/workspaces/two-channel.json");
    let (code, _, err) = run_gradfit(&["fit", ws.to_str().unwrap(), "--covariance", "asymptotic"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("--covariance asymptotic"), "{err}");
}

#[test]
fn yields_plot_and_inspect_of_an_hs3_file() {
    let w = model_path("product_2d");
    let dir = tempdir("yields");
    let plots = dir.join("plots");
    let v = ok(&[
        "yields",
        &w,
        "--plot",
        plots.to_str().unwrap(),
        "--png",
        "--json",
    ]);
    let ch = &v["postfit"]["channels"][0];
    let (total, observed) = (
        ch["total"].as_f64().unwrap(),
        ch["observed"].as_f64().unwrap(),
    );
    // an extended fit's expected total is the observed count
    assert!(rel(total, observed) < 1e-6, "{ch}");
    assert_eq!(ch["components"].as_array().unwrap().len(), 2, "{ch}");
    let pre = &v["prefit"]["channels"][0];
    assert!(
        rel(pre["total"].as_f64().unwrap(), total) > 1e-6,
        "pre-fit differs: {pre}"
    );
    let files = v["plots"].as_array().unwrap();
    // two observables x two stages x (svg, png)
    assert_eq!(files.len(), 8, "{v}");
    for f in files {
        let p = PathBuf::from(f.as_str().unwrap());
        let bytes = std::fs::read(&p).unwrap();
        if p.extension().unwrap() == "svg" {
            let s = String::from_utf8(bytes).unwrap();
            assert!(s.contains("<svg") && s.contains("pull"), "{}", p.display());
        } else {
            assert!(bytes.starts_with(b"\x89PNG"), "{}", p.display());
        }
    }
    let ins = ok(&["inspect", &w, "--json"]);
    let part = &ins["parts"][0];
    let mut obs: Vec<&str> = part["observables"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["name"].as_str().unwrap())
        .collect();
    obs.sort();
    assert_eq!(obs, ["x", "y"], "{part}");
    let types: Vec<&str> = part["components"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|c| c["distributions"].as_array().unwrap().iter())
        .map(|d| d["type"].as_str().unwrap())
        .collect();
    assert!(
        types.contains(&"gaussian_dist") && types.contains(&"exponential_dist"),
        "{types:?}"
    );
    assert!(
        ins["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["name"] == "theta")
    );
    // the text form names them too
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_gradfit"))
        .args(["inspect", &w])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("observables:") && text.contains(" x [0.0, 10.0]") && text.contains("theta"),
        "{text}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn hypothesis_tests_with_a_free_signal_shape() {
    // At zero signal yield the peak's position and width do not affect the
    // likelihood: the fits hold them (flat) and every hypothesis test runs.
    let w = model_path("gauss_expo");
    let dir = tempdir("flat");
    let f0 = ok(&["fit", &w, "--fix", "nsig=0", "--json"]);
    assert_eq!(f0["converged"], true, "{f0}");
    assert_eq!(f0["flat_parameters"], json!(["mu", "sigma"]), "{f0}");
    let doc = common::read(&super::refs_dir().join("gauss_expo.json"));
    let init = |n: &str| {
        doc["parameter_points"][0]["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == n)
            .unwrap()["value"]
            .as_f64()
            .unwrap()
    };
    for n in ["mu", "sigma"] {
        assert_eq!(at(&f0, "values", n), init(n), "{n} moved: {f0}");
        assert_eq!(at(&f0, "errors", n), 0.0, "{f0}");
    }
    // the same fit with the shape const: the same minimum and errors
    let mut fixed = doc.clone();
    for p in fixed["parameter_points"][0]["parameters"]
        .as_array_mut()
        .unwrap()
    {
        if p["name"] == "mu" || p["name"] == "sigma" {
            p["const"] = json!(true);
        }
    }
    let wf = dir.join("fixed.json").display().to_string();
    std::fs::write(&wf, fixed.to_string()).unwrap();
    let g0 = ok(&["fit", &wf, "--fix", "nsig=0", "--json"]);
    assert_eq!(g0["flat_parameters"], json!([]), "{g0}");
    let t0 = f0["twice_nll"].as_f64().unwrap();
    assert!(
        (t0 - g0["twice_nll"].as_f64().unwrap()).abs() < 1e-9,
        "{f0} {g0}"
    );
    for n in ["nbkg", "c"] {
        assert!(rel(at(&f0, "values", n), at(&g0, "values", n)) < 1e-9);
        assert!(rel(at(&f0, "errors", n), at(&g0, "errors", n)) < 1e-6);
    }
    // discovery: q0 is the difference of the zero-signal and the free fit
    let free = ok(&["fit", &w, "--json"]);
    assert_eq!(free["flat_parameters"], json!([]), "{free}");
    let disc = ok(&["discovery", &w, "--json"]);
    let q0 = t0 - free["twice_nll"].as_f64().unwrap();
    let z = disc["z_obs"].as_f64().unwrap();
    assert!(rel(z, q0.sqrt()) < 1e-6, "{disc} vs q0 = {q0}");
    // cls far above the fitted yield (both tail probabilities underflow;
    // CLs is their ratio, still a number), the limit and toys
    let cls = ok(&["cls", &w, "--mu", "2968.75", "--json"]);
    let c = cls["cls_obs"].as_f64().unwrap();
    assert!((0.0..1e-30).contains(&c), "{cls}");
    let lim = ok(&["limit", &w, "--json"]);
    let (obs, nsig) = (lim["obs"].as_f64().unwrap(), at(&free, "values", "nsig"));
    assert!(
        obs > nsig && obs < nsig + 4.0 * at(&free, "errors", "nsig"),
        "{lim}"
    );
    let out = dir.join("toys.json").display().to_string();
    let t = ok(&[
        "toys", &w, "--mu", "1100", "--n", "12", "--out", &out, "--json",
    ]);
    assert_eq!(t["n_toys"], 12, "{t}");
    assert_eq!(t["cls"]["n_failed"], 0, "{t}");
    assert!(t["cls"]["cls_obs"].as_f64().is_some(), "{t}");
    // far above the fitted yield no background toy reaches the observed
    // statistic: CLs is undefined, said so with exit 3, the toys still written
    let out = dir.join("far.json").display().to_string();
    let (code, v, err) = run_gradfit(&[
        "toys", &w, "--mu", "1300", "--n", "8", "--out", &out, "--json",
    ]);
    assert_eq!(code, 3, "{err}");
    assert!(
        err.contains("CLs observed undefined") && err.contains("CLb = 0"),
        "{err}"
    );
    assert!(v["cls"]["cls_obs"].is_null(), "{v}");
    assert_eq!(
        common::read(std::path::Path::new(&out))["bkg"]
            .as_array()
            .map(Vec::len),
        Some(8)
    );
    let (code, _, err) = run_gradfit(&["cls", &w, "--mu", "1300", "--toys", "8"]);
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("undefined"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn toy_qtilde_below_zero_compares_with_the_fit_at_zero() {
    // with the POI's lower bound below 0, q~ of a toy whose free fit is
    // below 0 is taken against the fit at 0, as for the observed data
    let mut doc = common::read(&super::refs_dir().join("gauss_expo.json"));
    for ax in doc["domains"][0]["axes"].as_array_mut().unwrap() {
        if ax["name"] == "nsig" {
            ax["min"] = json!(-2000.0);
        }
    }
    let dir = tempdir("qtilde0");
    let w = dir.join("neg.json").display().to_string();
    std::fs::write(&w, doc.to_string()).unwrap();
    let out = dir.join("toys.json").display().to_string();
    ok(&[
        "toys", &w, "--mu", "1200", "--n", "40", "--out", &out, "--json",
    ]);
    let v = common::read(std::path::Path::new(&out));
    let (mut below, mut above) = (0, 0);
    for r in v["bkg"]
        .as_array()
        .unwrap()
        .iter()
        .chain(v["sig_bkg"].as_array().unwrap())
    {
        let (Some(stat), Some(mu_hat)) = (r["stat"].as_f64(), r["mu_hat"].as_f64()) else {
            panic!("a toy without a statistic: {r}");
        };
        let t = r["twice_nll_fixed"].as_f64().unwrap() - r["twice_nll_free"].as_f64().unwrap();
        if mu_hat < 0.0 {
            below += 1;
            assert!(stat >= 0.0 && stat < t - 1e-6, "{r}");
        } else if mu_hat <= 1200.0 {
            above += 1;
            assert!((stat - t.max(0.0)).abs() <= 1e-9 * t.abs().max(1.0), "{r}");
        }
    }
    assert!(
        below >= 5 && above >= 5,
        "{below} below 0, {above} in [0, mu]"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
