//! `--device` reaches every command: the GPU code path (here its host emulation,
//! feature `cuda-emu`) gives the CPU's results through the command line.
//! Run with `cargo test --features cuda-emu --test gpu_wiring` (part of .ci/run).
#![cfg(feature = "cuda-emu")]

mod common;
use common::{repo, run_gradfit};
use serde_json::Value;

fn ws() -> String {
    repo("examples/workspaces/two-channel.json")
        .to_string_lossy()
        .into_owned()
}

fn both(args: &[&str]) -> (Value, Value) {
    let mut cpu = args.to_vec();
    cpu.extend(["--device", "cpu", "--json"]);
    let mut gpu = args.to_vec();
    gpu.extend(["--device", "cuda-emu", "--json"]);
    let (c1, a, e1) = run_gradfit(&cpu);
    let (c2, b, e2) = run_gradfit(&gpu);
    assert_eq!(c1, 0, "{e1}");
    assert_eq!(c2, 0, "{e2}");
    (a, b)
}

fn close(a: &Value, b: &Value, rtol: f64, what: &str) {
    let (x, y) = (a.as_f64().unwrap(), b.as_f64().unwrap());
    assert!(
        (x - y).abs() <= rtol * y.abs().max(1.0),
        "{what}: cpu {x} vs gpu {y}"
    );
}

#[test]
fn fit_runs_on_the_device() {
    let (a, b) = both(&["fit", &ws()]);
    close(&a["twice_nll"], &b["twice_nll"], 1e-10, "twice_nll");
    for (x, y) in a["values"]
        .as_array()
        .unwrap()
        .iter()
        .zip(b["values"].as_array().unwrap())
    {
        close(x, y, 1e-6, "value");
    }
    for (x, y) in a["errors"]
        .as_array()
        .unwrap()
        .iter()
        .zip(b["errors"].as_array().unwrap())
    {
        close(x, y, 1e-6, "error");
    }
}

#[test]
fn eval_runs_on_the_device() {
    let pars =
        std::env::temp_dir().join(format!("gradfit-wiring-pars-{}.json", std::process::id()));
    std::fs::write(
        &pars,
        "[0.3, 1.01, 1.2, -0.5, 0.2, 1.1, 0.9, 1.05, 0.95, 1.1, 1.02, 0.98, 1.03, 0.97, 1.01]",
    )
    .unwrap();
    let (a, b) = both(&["eval", &ws(), "--pars", pars.to_str().unwrap()]);
    close(&a["twice_nll"], &b["twice_nll"], 1e-12, "twice_nll");
    for (x, y) in a["grad"]
        .as_array()
        .unwrap()
        .iter()
        .zip(b["grad"].as_array().unwrap())
    {
        close(x, y, 1e-10, "gradient");
    }
}

#[test]
fn cls_limit_scan_and_discovery_run_on_the_device() {
    let (a, b) = both(&["cls", &ws(), "--mu", "2"]);
    close(&a["cls_obs"], &b["cls_obs"], 1e-6, "cls_obs");
    for k in 0..5 {
        close(&a["cls_exp"][k], &b["cls_exp"][k], 1e-6, "cls_exp");
    }
    let (a, b) = both(&["limit", &ws()]);
    close(&a["obs"], &b["obs"], 1e-6, "limit");
    let (a, b) = both(&["discovery", &ws()]);
    close(&a["p0_obs"], &b["p0_obs"], 1e-6, "p0");
    let (a, b) = both(&["scan", &ws(), "--range", "0:3:4"]);
    for (x, y) in a["points"]
        .as_array()
        .unwrap()
        .iter()
        .zip(b["points"].as_array().unwrap())
    {
        close(&x["twice_nll"], &y["twice_nll"], 1e-10, "scan twice_nll");
    }
}

#[test]
fn toys_run_on_the_device() {
    let (a, b) = both(&["cls", &ws(), "--mu", "2", "--toys", "40", "--seed", "3"]);
    assert_eq!(a["n_failed"], b["n_failed"]);
    close(&a["cls_obs"], &b["cls_obs"], 1e-12, "toy cls_obs");
    close(
        &a["test_stat_obs"],
        &b["test_stat_obs"],
        1e-6,
        "observed statistic",
    );
}

#[test]
fn impacts_run_on_the_device() {
    let (a, b) = both(&["impacts", &ws(), "--method", "both"]);
    let rows = |v: &Value| -> Vec<Value> {
        v.get("parameters")
            .or_else(|| v.get("impacts"))
            .and_then(|x| x.as_array())
            .cloned()
            .unwrap_or_else(|| v.as_array().cloned().unwrap_or_default())
    };
    let (ra, rb) = (rows(&a), rows(&b));
    assert!(!ra.is_empty(), "impacts rows: {a}");
    assert_eq!(ra.len(), rb.len());
    // parameters with equal impacts (e.g. zero) may be ranked in either order
    for x in &ra {
        let y = rb
            .iter()
            .find(|y| y["name"] == x["name"])
            .expect("same parameters");
        for k in ["hessian", "refit_postfit_up", "refit_postfit_down"] {
            close(&x[k], &y[k], 1e-5, k);
        }
    }
}
