//! Results that are not numbers, closed and full outputs, oversized requests,
//! output files through links, tampered inputs: each a clear message and a
//! meaningful exit status, never a panic or a silent success.

mod common;
use common::repo;
use serde_json::{Value, json};
use std::path::PathBuf;
use std::process::{Command, Stdio};

fn tmpdir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("gradfit-io-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn example() -> Value {
    serde_json::from_str(
        &std::fs::read_to_string(repo("examples/workspaces/two-channel.json")).unwrap(),
    )
    .unwrap()
}

fn write_json(dir: &std::path::Path, name: &str, v: &Value) -> String {
    let p = dir.join(name);
    std::fs::write(&p, serde_json::to_string(v).unwrap()).unwrap();
    p.display().to_string()
}

/// (exit code, stdout, stderr); fails the test on a panic.
fn run(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_gradfit"))
        .args(args)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!stderr.contains("panicked"), "panic on {args:?}: {stderr}");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr,
    )
}

#[test]
fn results_that_are_not_numbers_are_flagged() {
    let d = tmpdir("nan");
    let mut w = example();
    for o in w["observations"].as_array_mut().unwrap() {
        let n = o["data"].as_array().unwrap().len();
        o["data"] = json!(vec![0.0; n]);
    }
    let ws = write_json(&d, "zero.json", &w);
    let (code, out, err) = run(&["fit", &ws, "--json"]);
    assert_eq!(code, 3, "{err}");
    assert!(
        err.contains("not a finite number") && err.contains("/errors/"),
        "{err}"
    );
    assert!(
        err.contains("(mu)") || err.contains("(lumi)"),
        "names the parameter: {err}"
    );
    let v: Value = serde_json::from_str(&out).unwrap();
    assert!(v["errors"][0].is_null());
}

#[test]
fn constraint_widths_that_overflow_are_refused_with_the_parameter() {
    let d = tmpdir("sigma");
    let mut w = example();
    w["measurements"][0]["config"]["parameters"][0]["sigmas"] = json!([1e-300]);
    let ws = write_json(&d, "lumi.json", &w);
    let (code, _, err) = run(&["fit", &ws]);
    assert_eq!(code, 1);
    assert!(
        err.contains("lumi.json") && err.contains("'lumi'") && err.contains("width"),
        "{err}"
    );
    let mut w = example();
    w["channels"][0]["samples"][2]["modifiers"][0]["data"] = json!([2.0, 1e300, 1.2]);
    let ws = write_json(&d, "shapesys.json", &w);
    let (code, _, err) = run(&["fit", &ws]);
    assert_eq!(code, 1);
    assert!(
        err.contains("'fake_stat[1]'") && err.contains("shapesys"),
        "{err}"
    );
}

#[test]
fn a_negative_poi_lower_bound_gives_the_limit_of_the_bounded_poi() {
    let d = tmpdir("negpoi");
    let ws = |lo: f64| {
        json!({"channels": [{"name": "c", "samples": [
            {"name": "s", "data": [5.0], "modifiers": [{"name": "mu", "type": "normfactor", "data": null}]},
            {"name": "b", "data": [50.0], "modifiers": []}]}],
          "observations": [{"name": "c", "data": [40.0]}], "version": "1.0.0",
          "measurements": [{"name": "m", "config": {"poi": "mu", "parameters": [
            {"name": "mu", "bounds": [[lo, 10.0]], "inits": [1.0]}]}}]})
    };
    let neg = write_json(&d, "neg.json", &ws(-10.0));
    let pos = write_json(&d, "pos.json", &ws(0.0));
    let (c1, o1, e1) = run(&["limit", &neg, "--json"]);
    let (c2, o2, _) = run(&["limit", &pos, "--json"]);
    assert_eq!((c1, c2), (0, 0), "{e1}");
    assert!(e1.contains("mu_hat < 0"), "{e1}");
    let (a, b): (Value, Value) = (
        serde_json::from_str(&o1).unwrap(),
        serde_json::from_str(&o2).unwrap(),
    );
    let (x, y) = (a["obs"].as_f64().unwrap(), b["obs"].as_f64().unwrap());
    assert!((x - y).abs() < 1e-6 && x > 1.5, "{x} vs {y}");
    assert!(
        a["points"]
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p["cls_obs"].is_number())
    );
}

#[test]
fn a_closed_pipe_ends_quietly_and_a_full_disk_is_an_error() {
    let ws = repo("examples/workspaces/two-channel.json");
    let mut child = Command::new(env!("CARGO_BIN_EXE_gradfit"))
        .args(["fit", ws.to_str().unwrap(), "--json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take()); // the reader goes away before anything is written
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(out.status.code(), Some(0), "{err}");
    if std::path::Path::new("/dev/full").exists() {
        let full = std::fs::File::create("/dev/full").unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_gradfit"))
            .args(["fit", ws.to_str().unwrap(), "--json"])
            .stdout(full)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!err.contains("panicked"), "{err}");
        assert_eq!(out.status.code(), Some(1));
        assert!(
            err.contains("standard output") && err.contains("space"),
            "{err}"
        );
    }
}

#[test]
fn sizes_that_cannot_fit_are_refused_before_any_work() {
    let ws = repo("examples/workspaces/two-channel.json");
    let ws = ws.to_str().unwrap();
    let (code, _, err) = run(&["scan", ws, "--range", "0:2:100000000"]);
    assert_eq!(code, 1);
    assert!(err.contains("at most 100000"), "{err}");
    let (code, _, err) = run(&["cls", ws, "--toys", "4294967295"]);
    assert_eq!(code, 1);
    assert!(err.contains("--shard"), "{err}");
    let out = tmpdir("big").join("t.json");
    let (code, _, err) = run(&[
        "toys",
        ws,
        "--mu",
        "1",
        "--n",
        "4294967295",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code, 1);
    assert!(err.contains("--shard"), "{err}");
    let (code, _, err) = run(&["inspect", "/dev/zero"]);
    assert_eq!(code, 1);
    assert!(err.contains("/dev/zero") && err.contains("device"), "{err}");
}

#[test]
fn outputs_go_through_links_refuse_special_files_and_are_checked_first() {
    let d = tmpdir("links");
    let ws = repo("examples/workspaces/two-channel.json");
    let ws = ws.to_str().unwrap();
    let target = d.join("real.json");
    std::fs::write(&target, "old").unwrap();
    let link = d.join("link.json");
    let _ = std::fs::remove_file(&link);
    #[cfg(unix)]
    {
        std::os::unix::fs::symlink(&target, &link).unwrap();
        let (code, _, err) = run(&["fit", ws, "-o", link.to_str().unwrap()]);
        assert_eq!(code, 0, "{err}");
        assert!(
            std::fs::symlink_metadata(&link)
                .unwrap()
                .file_type()
                .is_symlink()
        );
        let v: Value = serde_json::from_str(&std::fs::read_to_string(&target).unwrap()).unwrap();
        assert!(v["converged"].as_bool().unwrap());
        let (code, _, err) = run(&["fit", ws, "-o", "/dev/null"]);
        assert_eq!(code, 1);
        assert!(err.contains("not a regular file"), "{err}");
    }
    // a stale temporary file of a killed run (a pid that does not exist) is removed
    let stale = d.join(".real.json.tmp-4194304999");
    std::fs::write(&stale, "partial").unwrap();
    let (code, _, _) = run(&["fit", ws, "-o", target.to_str().unwrap()]);
    assert_eq!(code, 0);
    if std::path::Path::new("/proc/self").exists() {
        assert!(!stale.exists());
    }
    // a folder that does not exist is found before the toys run, and named
    let missing = d.join("no-such-folder").join("toys.json");
    let (code, _, err) = run(&[
        "toys",
        ws,
        "--mu",
        "1",
        "--n",
        "100000",
        "--out",
        missing.to_str().unwrap(),
    ]);
    assert_eq!(code, 1);
    assert!(
        err.contains("toys.json") && err.contains("cannot write"),
        "{err}"
    );
}

#[test]
fn duplicates_and_patch_tests_follow_the_rfcs() {
    let d = tmpdir("dups");
    let text = std::fs::read_to_string(repo("examples/workspaces/two-channel.json")).unwrap();
    let dup = text.replacen(
        "\"version\": \"1.0.0\"",
        "\"version\": \"1.0.0\", \"version\": \"1.0.0\"",
        1,
    );
    let p = d.join("dupkey.json");
    std::fs::write(&p, dup).unwrap();
    let (code, _, err) = run(&["fit", p.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(
        err.contains("duplicate key 'version'") && err.contains("line"),
        "{err}"
    );
    let mut w = example();
    let m = w["measurements"][0].clone();
    w["measurements"].as_array_mut().unwrap().push(m);
    let ws = write_json(&d, "dupmeas.json", &w);
    let (code, _, err) = run(&["fit", &ws]);
    assert_eq!(code, 1);
    assert!(
        err.contains("/measurements/1/name") && err.contains("/measurements/0"),
        "{err}"
    );
    let mut w = example();
    let par = json!({"name": "mu", "bounds": [[0.0, 5.0]], "inits": [2.0]});
    w["measurements"][0]["config"]["parameters"]
        .as_array_mut()
        .unwrap()
        .push(par);
    let ws = write_json(&d, "duppar.json", &w);
    let (code, _, err) = run(&["fit", &ws]);
    assert_eq!(code, 1);
    assert!(
        err.contains("configured twice") && err.contains("parameters/1"),
        "{err}"
    );
    // RFC 6902 `test` compares numbers by value: 5 equals 5.0
    let ws = repo("examples/workspaces/two-channel.json");
    let patch = json!([{"op": "test", "path": "/channels/0/samples/0/data/0", "value": 5},
                       {"op": "replace", "path": "/channels/0/samples/0/data/0", "value": 6.0}]);
    let pp = write_json(&d, "test.json", &patch);
    let (code, _, err) = run(&["fit", ws.to_str().unwrap(), "-p", &pp]);
    assert_eq!(code, 0, "{err}");
    let patch = json!([{"op": "test", "path": "/channels/0/samples/0/data/0", "value": 4}]);
    let pp = write_json(&d, "fail.json", &patch);
    let (code, _, err) = run(&["fit", ws.to_str().unwrap(), "-p", &pp]);
    assert_eq!(code, 1);
    assert!(
        err.contains("fail.json") && err.contains("operation 0 (test") && err.contains("5.0"),
        "{err}"
    );
}
