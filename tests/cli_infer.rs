//! The inference commands: JSON shapes, toys and merge, exit codes.

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

fn tmp(name: &str) -> String {
    let d = std::env::temp_dir().join(format!("gradfit-cli-infer-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d.join(name).to_string_lossy().into_owned()
}

#[test]
fn cls_asymptotic_and_toys() {
    let (code, v, err) = gradfit(&["cls", &ws(), "--mu", "2", "--json"]);
    assert_eq!(code, 0, "{err}");
    for k in ["cls_obs", "clsb_obs", "clb_obs", "test_stat_obs"] {
        assert!(v[k].as_f64().is_some(), "{k}");
    }
    let exp = v["cls_exp"].as_array().unwrap();
    assert_eq!(exp.len(), 5);
    assert!(
        (v["cls_obs"].as_f64().unwrap()
            - v["clsb_obs"].as_f64().unwrap() / v["clb_obs"].as_f64().unwrap())
        .abs()
            < 1e-12
    );
    let (code, t, err) = gradfit(&[
        "cls",
        &ws(),
        "--mu",
        "2",
        "--toys",
        "300",
        "--seed",
        "4",
        "--json",
    ]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(t["n_toys"], 300);
    assert_eq!(t["n_failed"], 0);
    assert_eq!(t["cls_exp"].as_array().unwrap().len(), 5);
    assert_eq!(t["test_stat_obs"], v["test_stat_obs"]);
    let (code, q0, _) = gradfit(&["cls", &ws(), "--mu", "0", "--test-stat", "q0", "--json"]);
    assert_eq!(code, 0);
    assert_eq!(q0["cls_obs"], q0["clsb_obs"], "q0 reports p0 = CLs+b");
    let (code, _, err) = gradfit(&["cls", &ws(), "--test-stat", "tmu"]);
    assert_eq!(code, 2, "{err}");
}

#[test]
fn limit_and_discovery() {
    let (code, v, err) = gradfit(&["limit", &ws(), "--json"]);
    assert_eq!(code, 0, "{err}");
    let obs = v["obs"].as_f64().unwrap();
    let exp: Vec<f64> = v["exp"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect();
    assert_eq!(exp.len(), 5);
    assert!(exp.windows(2).all(|w| w[0] < w[1]));
    assert!(obs > 0.0);
    let (code, s, _) = gradfit(&["limit", &ws(), "--scan", "0:6:31", "--json"]);
    assert_eq!(code, 0);
    assert!((s["obs"].as_f64().unwrap() - obs).abs() < 0.02);
    let (code, m, err) = gradfit(&["limit", &ws(), "--bracket", "5:10", "--json"]);
    assert_eq!(
        code, 3,
        "a limit outside the bracket is reported, not invented: {err}"
    );
    assert!(m["obs"].is_null());
    let (code, d, err) = gradfit(&["discovery", &ws(), "--json"]);
    assert_eq!(code, 0, "{err}");
    for k in ["p0_obs", "p0_exp", "z_obs", "z_exp"] {
        assert!(d[k].as_f64().is_some(), "{k}");
    }
    let z = d["z_obs"].as_f64().unwrap();
    let p0 = d["p0_obs"].as_f64().unwrap();
    assert!((gradfit::util::special::normal_cdf(-z) - p0).abs() < 1e-12);
}

#[test]
fn scan_prints_profile() {
    let (code, v, err) = gradfit(&["scan", &ws(), "--range", "0:3:7", "--json"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(v["parameter"], "mu");
    let pts = v["points"].as_array().unwrap();
    assert_eq!(pts.len(), 7);
    for p in pts {
        assert!(p["delta_twice_nll"].as_f64().unwrap() >= 0.0);
        assert_eq!(p["pars"].as_array().unwrap().len(), 15);
    }
    let (code, v, _) = gradfit(&["scan", &ws(), "--par", "jes", "--range", "-1:1:3", "--json"]);
    assert_eq!(code, 0);
    assert_eq!(v["parameter"], "jes");
    let (code, _, err) = gradfit(&["scan", &ws(), "--range", "3:1:4"]);
    assert_eq!(code, 1, "{err}");
}

#[test]
fn toys_shards_merge_byte_identical() {
    let whole = tmp("whole.json");
    let (code, _, err) = gradfit(&[
        "toys",
        &ws(),
        "--mu",
        "1",
        "--n",
        "60",
        "--seed",
        "9",
        "--out",
        &whole,
    ]);
    assert_eq!(code, 0, "{err}");
    let mut shards = Vec::new();
    for i in 0..4 {
        let f = tmp(&format!("shard{i}.json"));
        let (code, _, err) = gradfit(&[
            "toys",
            &ws(),
            "--mu",
            "1",
            "--n",
            "60",
            "--seed",
            "9",
            "--shard",
            &format!("{i}/4"),
            "--batch",
            "5",
            "--out",
            &f,
        ]);
        assert_eq!(code, 0, "{err}");
        shards.push(f);
    }
    let merged = tmp("merged.json");
    let mut args = vec!["merge"];
    args.extend(shards.iter().map(|s| s.as_str()));
    args.extend(["--out", merged.as_str(), "--json"]);
    let (code, v, err) = gradfit(&args);
    assert_eq!(code, 0, "{err}");
    assert_eq!(v["cls"]["n_toys"], 60);
    assert_eq!(
        std::fs::read(&whole).unwrap(),
        std::fs::read(&merged).unwrap()
    );
    // incomplete shards are refused
    let (code, _, err) = gradfit(&["merge", &shards[0], &shards[1], "--out", &tmp("bad.json")]);
    assert_eq!(code, 1);
    assert!(err.contains("missing"), "{err}");
    let (code, _, err) = gradfit(&[
        "toys",
        &ws(),
        "--mu",
        "1",
        "--n",
        "10",
        "--shard",
        "4/4",
        "--out",
        &tmp("x.json"),
    ]);
    assert_eq!(code, 2, "{err}");
}

#[test]
fn commands_need_a_poi() {
    let mut v: Value = serde_json::from_str(
        &std::fs::read_to_string(repo("examples/workspaces/two-channel.json")).unwrap(),
    )
    .unwrap();
    v["measurements"][0]["config"]["poi"] = Value::from("not_there");
    let f = tmp("nopoi.json");
    std::fs::write(&f, serde_json::to_string(&v).unwrap()).unwrap();
    let (code, _, err) = gradfit(&["cls", &f]);
    assert_eq!(code, 1);
    assert!(err.contains("no parameter of interest"), "{err}");
    assert!(
        err.contains("not_there"),
        "the warning names the missing POI: {err}"
    );
    let (code, _, err) = gradfit(&["fit", &f]);
    assert_eq!(code, 0, "a free fit works without a POI: {err}");
}
