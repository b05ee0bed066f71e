//! The command line: JSON shapes, patches, fixed parameters, output files, exit codes.

mod common;
use common::repo;
use serde_json::Value;

fn gradfit(args: &[&str]) -> (i32, Value, String) {
    common::run_gradfit(args)
}

fn ws() -> String {
    repo("examples/workspaces/two-channel.json")
        .to_string_lossy()
        .into_owned()
}

#[test]
fn eval_prints_value_gradient_and_hessian() {
    let dir = std::env::temp_dir().join(format!("gradfit-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let pars = dir.join("pars.json");
    std::fs::write(
        &pars,
        "[0.3, 1.01, 1.2, -0.5, 0.2, 1.1, 0.9, 1.05, 0.95, 1.1, 1.02, 0.98, 1.03, 0.97, 1.01]",
    )
    .unwrap();
    let (code, v, err) = gradfit(&[
        "eval",
        &ws(),
        "--pars",
        pars.to_str().unwrap(),
        "--hessian",
        "--json",
    ]);
    assert_eq!(code, 0, "{err}");
    let names = v["par_names"].as_array().unwrap();
    assert_eq!(names.len(), 15);
    assert_eq!(names[0], "jes");
    assert!(v["twice_nll"].as_f64().unwrap() > 0.0);
    assert_eq!(v["grad"].as_array().unwrap().len(), 15);
    let h = v["hessian"].as_array().unwrap();
    assert_eq!(h.len(), 15);
    assert!(h.iter().all(|r| r.as_array().unwrap().len() == 15));
    let (_, v2, _) = gradfit(&["eval", &ws(), "--pars", pars.to_str().unwrap(), "--json"]);
    assert!(v2.get("hessian").is_none());
    assert_eq!(v2["twice_nll"], v["twice_nll"]);
}

#[test]
fn fit_json_and_output_file() {
    let out = std::env::temp_dir().join(format!("gradfit-cli-fit-{}.json", std::process::id()));
    let (code, v, err) = gradfit(&["fit", &ws(), "--json", "-o", out.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(v["converged"], true);
    let p = v["par_names"].as_array().unwrap().len();
    assert_eq!(v["values"].as_array().unwrap().len(), p);
    assert_eq!(v["errors"].as_array().unwrap().len(), p);
    let corr = v["correlation"].as_array().unwrap();
    assert_eq!(corr.len(), p);
    for (i, row) in corr.iter().enumerate() {
        let d = row[i].as_f64().unwrap();
        assert!((d - 1.0).abs() < 1e-12, "diagonal {d}");
    }
    let file: Value = serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    assert_eq!(file, v);
}

#[test]
fn poi_value_and_fix_hold_parameters() {
    let (code, free, _) = gradfit(&["fit", &ws(), "--json"]);
    assert_eq!(code, 0);
    let (code, mu0, _) = gradfit(&["fit", &ws(), "--poi-value", "0", "--json"]);
    assert_eq!(code, 0);
    let names: Vec<&str> = mu0["par_names"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_str().unwrap())
        .collect();
    let imu = names.iter().position(|n| *n == "mu").unwrap();
    assert_eq!(mu0["values"][imu].as_f64().unwrap(), 0.0);
    assert_eq!(mu0["errors"][imu].as_f64().unwrap(), 0.0);
    assert!(mu0["twice_nll"].as_f64().unwrap() >= free["twice_nll"].as_f64().unwrap());
    let (code, fx, _) = gradfit(&[
        "fit",
        &ws(),
        "--fix",
        "jes=0.5",
        "--fix",
        "bkg_norm=-0.25",
        "--json",
    ]);
    assert_eq!(code, 0);
    assert_eq!(fx["values"][0].as_f64().unwrap(), 0.5);
    let ib = names.iter().position(|n| *n == "bkg_norm").unwrap();
    assert_eq!(fx["values"][ib].as_f64().unwrap(), -0.25);
}

#[test]
fn patches_and_patchsets_change_the_model() {
    let patch = repo("examples/workspaces/two-channel.signal-x2.patch.json");
    let (_, base, _) = gradfit(&["fit", &ws(), "--json"]);
    let (code, patched, err) = gradfit(&["fit", &ws(), "-p", patch.to_str().unwrap(), "--json"]);
    assert_eq!(code, 0, "{err}");
    let names: Vec<&str> = base["par_names"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_str().unwrap())
        .collect();
    let imu = names.iter().position(|n| *n == "mu").unwrap();
    let (m0, m1) = (
        base["values"][imu].as_f64().unwrap(),
        patched["values"][imu].as_f64().unwrap(),
    );
    assert!(
        (m0 / m1 - 2.0).abs() < 1e-3,
        "doubling the signal halves mu: {m0} vs {m1}"
    );
    let ps = repo("examples/workspaces/two-channel.patchset.json");
    let (code, a, err) = gradfit(&[
        "fit",
        &ws(),
        "--patchset",
        ps.to_str().unwrap(),
        "--patch-name",
        "mass_800",
        "--json",
    ]);
    assert_eq!(code, 0, "{err}");
    assert_ne!(a["values"][imu], base["values"][imu]);
}

#[test]
fn interpolation_codes_can_be_chosen() {
    let (_, a, _) = gradfit(&["inspect", &ws(), "--json"]);
    assert_eq!(a["interpolation"]["normsys"], "code4");
    assert_eq!(a["interpolation"]["histosys"], "code4p");
    let (code, b, err) = gradfit(&[
        "inspect",
        &ws(),
        "--interp",
        "normsys=code1",
        "--interp",
        "histosys=code0",
        "--json",
    ]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(b["interpolation"]["normsys"], "code1");
    assert_eq!(b["interpolation"]["histosys"], "code0");
    let (f1, f2) = (
        gradfit(&["fit", &ws(), "--json"]).1,
        gradfit(&["fit", &ws(), "--interp", "normsys=code1", "--json"]).1,
    );
    assert_ne!(f1["twice_nll"], f2["twice_nll"]);
    let (code, _, err) = gradfit(&["fit", &ws(), "--interp", "normsys=code9"]);
    assert_eq!(code, 2);
    assert!(err.contains("code9"), "{err}");
}

#[test]
fn inspect_lists_parameters_and_channels() {
    let (code, v, err) = gradfit(&["inspect", &ws(), "--json"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(v["poi"], "mu");
    assert_eq!(v["n_parameters"], 15);
    assert_eq!(v["channels"].as_array().unwrap().len(), 2);
    assert_eq!(
        v["channels"][0]["name"], "CR",
        "channels in pyhf (sorted) order"
    );
    let pars = v["parameters"].as_array().unwrap();
    let lumi = pars.iter().find(|p| p["name"] == "lumi").unwrap();
    assert_eq!(lumi["constraint"]["type"], "normal");
    assert_eq!(lumi["constraint"]["sigma"], 0.017);
    let fs = pars.iter().find(|p| p["name"] == "fake_stat[2]").unwrap();
    assert_eq!(fs["constraint"]["type"], "poisson");
    assert!((fs["constraint"]["tau"].as_f64().unwrap() - 6.25).abs() < 1e-12);
}

#[test]
fn non_converged_fit_still_prints_and_exits_nonzero() {
    let (code, v, err) = gradfit(&["fit", &ws(), "--max-iter", "1", "--json"]);
    assert_eq!(code, 3, "{err}");
    assert_eq!(v["converged"], false);
    assert_eq!(v["status"], "max_iterations");
    assert!(err.contains("did not converge"));
}
