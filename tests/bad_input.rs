//! Bad input gets a clear error naming the JSON location, a non-zero exit and never a panic.

mod common;
use common::repo;
use serde_json::{Value, json};
use std::path::PathBuf;
use std::process::Command;

fn example() -> Value {
    serde_json::from_str(
        &std::fs::read_to_string(repo("examples/workspaces/two-channel.json")).unwrap(),
    )
    .unwrap()
}

fn tmpdir() -> PathBuf {
    let d = std::env::temp_dir().join(format!("gradfit-bad-input-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn write(name: &str, text: &str) -> PathBuf {
    let p = tmpdir().join(name);
    std::fs::write(&p, text).unwrap();
    p
}

/// Run gradfit; return (exit code, stderr).
fn run(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_gradfit"))
        .args(args)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(!stderr.contains("panicked"), "panic on {args:?}: {stderr}");
    (out.status.code().unwrap_or(-1), stdout, stderr)
}

/// `fit` on a mutated workspace must fail with code 1 and mention every `needles`.
fn expect_error(name: &str, ws_text: &str, needles: &[&str]) {
    let p = write(name, ws_text);
    let (code, _, err) = run(&["fit", p.to_str().unwrap()]);
    assert_eq!(code, 1, "{name}: exit code {code}, stderr: {err}");
    for n in needles {
        assert!(err.contains(n), "{name}: stderr lacks '{n}':\n{err}");
    }
}

fn mutated(f: impl FnOnce(&mut Value)) -> String {
    let mut v = example();
    f(&mut v);
    serde_json::to_string(&v).unwrap()
}

#[test]
fn invalid_json_names_line_and_column() {
    expect_error(
        "broken.json",
        "{\"channels\": [ {\"name\": \"SR\",, } ]",
        &["invalid JSON", "line 1", "column"],
    );
}

#[test]
fn nan_and_infinite_yields_are_refused() {
    let text = std::fs::read_to_string(repo("examples/workspaces/two-channel.json")).unwrap();
    let nan = text.replacen("[5.0, 10.0, 4.0]", "[5.0, NaN, 4.0]", 1);
    expect_error("nan.json", &nan, &["invalid JSON", "line"]);
    let inf = text.replacen("[5.0, 10.0, 4.0]", "[5.0, 1e999, 4.0]", 1);
    expect_error("inf.json", &inf, &["invalid JSON", "number out of range"]);
}

#[test]
fn missing_required_key() {
    let t = mutated(|v| {
        v["channels"][1]["samples"][0]
            .as_object_mut()
            .unwrap()
            .remove("data");
    });
    expect_error(
        "missing.json",
        &t,
        &["/channels/1/samples/0", "missing field `data`"],
    );
    let t = mutated(|v| {
        v.as_object_mut().unwrap().remove("observations");
    });
    expect_error("missing-obs.json", &t, &["missing field `observations`"]);
}

#[test]
fn unknown_top_level_key_is_a_schema_error() {
    let t = mutated(|v| {
        v["chanels"] = json!([]);
    });
    expect_error("typo.json", &t, &["unknown field `chanels`"]);
}

#[test]
fn wrong_version() {
    let t = mutated(|v| v["version"] = json!("2.0.0"));
    expect_error("version.json", &t, &["/version", "2.0.0"]);
}

#[test]
fn sample_and_observation_length_mismatch() {
    let t = mutated(|v| v["channels"][0]["samples"][1]["data"] = json!([50.0, 40.0]));
    expect_error(
        "len-sample.json",
        &t,
        &["/channels/0/samples/1/data", "2 bins", "3"],
    );
    let t = mutated(|v| v["observations"][1]["data"] = json!([231.0, 160.0, 5.0]));
    expect_error("len-obs.json", &t, &["/observations/1/data", "3 bins"]);
    let t = mutated(|v| {
        v["channels"][0]["samples"][1]["modifiers"][0]["data"]["hi_data"] = json!([1.0, 2.0])
    });
    expect_error(
        "len-histo.json",
        &t,
        &[
            "/channels/0/samples/1/modifiers/0/data/hi_data",
            "2 entries",
        ],
    );
}

#[test]
fn negative_nominal_yield_is_refused_with_strict() {
    // accepted by default (as pyhf does, with a warning; tests/stress.rs), refused by --strict
    let t = mutated(|v| v["channels"][1]["samples"][1]["data"] = json!([20.0, -1.5]));
    let p = write("neg.json", &t);
    let (code, _, err) = run(&["fit", p.to_str().unwrap(), "--strict"]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("/channels/1/samples/1/data/1")
            && err.contains("negative nominal yield")
            && err.contains("--strict"),
        "{err}"
    );
    let (code, out, err) = run(&["fit", p.to_str().unwrap(), "--json"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("\"converged\": true"));
    assert!(err.contains("/channels/1/samples/1/data/1"), "{err}");
}

#[test]
fn unknown_modifier_type() {
    let t = mutated(|v| v["channels"][0]["samples"][0]["modifiers"][1]["type"] = json!("normsyst"));
    expect_error(
        "unknown-type.json",
        &t,
        &[
            "/channels/0/samples/0/modifiers/1/type",
            "unknown modifier type 'normsyst'",
        ],
    );
}

#[test]
fn incompatible_parameter_types() {
    // 'bkg_norm' is a normsys; declare it as a normfactor elsewhere
    let t = mutated(|v| {
        v["channels"][1]["samples"][1]["modifiers"]
            .as_array_mut()
            .unwrap()
            .push(json!({"name": "bkg_norm", "type": "normfactor", "data": null}))
    });
    expect_error(
        "incompatible.json",
        &t,
        &["bkg_norm", "normfactor", "normsys", "/channels/"],
    );
}

#[test]
fn lumi_without_measurement_config() {
    let t = mutated(|v| {
        v["measurements"][0]["config"]["parameters"]
            .as_array_mut()
            .unwrap()
            .remove(0);
    });
    expect_error(
        "lumi.json",
        &t,
        &[
            "/measurements/0/config/parameters",
            "lumi",
            "auxdata",
            "sigmas",
        ],
    );
    let t = mutated(|v| {
        v["measurements"][0]["config"]["parameters"][0]
            .as_object_mut()
            .unwrap()
            .remove("sigmas");
    });
    expect_error(
        "lumi2.json",
        &t,
        &["/measurements/0/config/parameters/0", "sigmas"],
    );
}

#[test]
fn modifier_data_of_wrong_shape() {
    let t =
        mutated(|v| v["channels"][0]["samples"][0]["modifiers"][1]["data"] = json!({"hi": 1.1}));
    expect_error(
        "normsys.json",
        &t,
        &[
            "/channels/0/samples/0/modifiers/1/data",
            "missing field 'lo'",
        ],
    );
    let t = mutated(|v| v["channels"][0]["samples"][0]["modifiers"][0]["data"] = json!([1.0]));
    expect_error(
        "normfactor.json",
        &t,
        &["/channels/0/samples/0/modifiers/0/data", "null"],
    );
}

#[test]
fn normsys_factor_not_positive_with_exponential_code() {
    let t = mutated(|v| {
        v["channels"][0]["samples"][0]["modifiers"][1]["data"] = json!({"hi": 1.1, "lo": -0.2})
    });
    expect_error(
        "normsys-neg.json",
        &t,
        &["/channels/0/samples/0/modifiers/1/data", "positive"],
    );
}

#[test]
fn patch_with_missing_path() {
    let patch = write(
        "bad-patch.json",
        r#"[{"op": "add", "path": "/channels/7/samples/0", "value": {}}]"#,
    );
    let ws = repo("examples/workspaces/two-channel.json");
    let (code, _, err) = run(&["fit", ws.to_str().unwrap(), "-p", patch.to_str().unwrap()]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("bad-patch.json")
            && err.contains("/channels/7/samples/0")
            && err.contains("operation 0"),
        "{err}"
    );
    let malformed = write(
        "malformed-patch.json",
        r#"[{"op": "frobnicate", "path": "/x"}]"#,
    );
    let (code, _, err) = run(&[
        "fit",
        ws.to_str().unwrap(),
        "-p",
        malformed.to_str().unwrap(),
    ]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("malformed-patch.json") && err.contains("/0"),
        "{err}"
    );
}

#[test]
fn patchset_with_unknown_patch_name() {
    let ws = repo("examples/workspaces/two-channel.json");
    let ps = repo("examples/workspaces/two-channel.patchset.json");
    let (code, _, err) = run(&[
        "fit",
        ws.to_str().unwrap(),
        "--patchset",
        ps.to_str().unwrap(),
        "--patch-name",
        "mass_999",
    ]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("mass_999") && err.contains("mass_500"),
        "{err}"
    );
}

#[test]
fn fix_of_unknown_parameter() {
    let ws = repo("examples/workspaces/two-channel.json");
    let (code, _, err) = run(&["fit", ws.to_str().unwrap(), "--fix", "not_a_par=1.0"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("no parameter named 'not_a_par'"), "{err}");
    let (code, _, err) = run(&["fit", ws.to_str().unwrap(), "--fix", "lumi"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("NAME=VALUE"), "{err}");
}

#[test]
fn eval_with_wrong_parameter_vector() {
    let ws = repo("examples/workspaces/two-channel.json");
    let pars = write("pars.json", "[1.0, 2.0]");
    let (code, _, err) = run(&[
        "eval",
        ws.to_str().unwrap(),
        "--pars",
        pars.to_str().unwrap(),
    ]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("2 entries") && err.contains("15 parameters"),
        "{err}"
    );
    // a point where an expected rate is negative: with --strict (pyhf's domain) a
    // clear numerical error naming the bin (by default gradfit's extension applies)
    let pars = write(
        "pars-neg.json",
        "[0, 1, 1, 0, 0, 1, 1, 1, 1, 1, 1, 1, -3, 1, 1]",
    );
    let (code, _, err) = run(&[
        "eval",
        ws.to_str().unwrap(),
        "--pars",
        pars.to_str().unwrap(),
        "--strict",
    ]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("channel 'SR' bin 0"), "{err}");
}

#[test]
fn missing_file() {
    let (code, _, err) = run(&["inspect", "/nonexistent/ws.json"]);
    assert_eq!(code, 1);
    assert!(err.contains("/nonexistent/ws.json"), "{err}");
}
