//! `gradfit selftest` and `--device` from the command line: a clear error
//! without GPU support, and (with the `cuda-emu` feature) a full selftest
//! against the host emulation of the kernels.

mod common;
use serde_json::Value;

fn gradfit(args: &[&str]) -> (i32, Value, String) {
    common::run_gradfit(args)
}

#[test]
#[cfg(not(feature = "cuda"))]
fn selftest_without_cuda_support_fails_clearly() {
    let (code, v, err) = gradfit(&["selftest"]);
    assert_eq!(code, 1, "{err}");
    assert_eq!(v, Value::Null);
    assert!(
        err.contains("built without the cuda feature; see scripts/build-cuda.sh"),
        "{err}"
    );
    let (code, _, err) = gradfit(&["selftest", "--device", "cuda:1"]);
    assert_eq!(code, 1);
    assert!(err.contains("built without the cuda feature"), "{err}");
}

#[test]
#[cfg(feature = "cuda")]
fn selftest_without_a_gpu_fails_clearly() {
    // only meaningful on machines without an NVIDIA driver; on a GPU machine
    // the real selftest runs instead (see docs/gpu.md)
    if gradfit::gpu::cuda::driver_present() {
        return;
    }
    let (code, _, err) = gradfit(&["selftest", "--no-bench"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("no CUDA driver found"), "{err}");
}

#[test]
fn selftest_rejects_the_cpu_and_unknown_devices() {
    let (code, _, err) = gradfit(&["selftest", "--device", "cpu"]);
    assert_eq!(code, 1);
    assert!(err.contains("compares a GPU with the CPU"), "{err}");
    let (code, _, err) = gradfit(&["selftest", "--device", "tpu"]);
    assert_eq!(code, 2);
    assert!(err.contains("unknown device 'tpu'"), "{err}");
}

#[test]
#[cfg(feature = "cuda-emu")]
fn selftest_passes_against_the_emulated_kernels() {
    let ws = common::repo("examples/workspaces/two-channel.json");
    let patch = common::repo("examples/workspaces/two-channel.signal-x2.patch.json");
    let arg = format!("{},{}", ws.display(), patch.display());
    let (code, v, err) = gradfit(&[
        "selftest",
        "--device",
        "cuda-emu",
        &arg,
        "--points",
        "3",
        "--toys",
        "20",
        "--sample-toys",
        "100",
        "--bench-sizes",
        "1,16",
        "--bench-toys",
        "5",
        "--json",
    ]);
    assert_eq!(code, 0, "{err}\n{v:#}");
    assert_eq!(v["passed"], Value::Bool(true));
    let checks = v["checks"].as_array().unwrap();
    // three built-in models and the patched workspace
    for m in ["two-channel", "one-bin-high-count", "synthetic-50x4"] {
        assert!(checks.iter().any(|c| c["model"] == m), "no checks for {m}");
    }
    assert!(checks.iter().all(|c| c["pass"] == Value::Bool(true)));
    assert!(checks.len() >= 4 * 10);
    // benchmark rows for the synthetic model and the given workspace: 2 sizes,
    // the evaluation kernel alone with the gradient and with the Hessian, toys
    let bench = v["benchmark"].as_array().unwrap();
    assert_eq!(bench.len(), 10, "{bench:#?}");
    for what in [
        "evaluation kernel alone: twice_nll + gradient",
        "evaluation kernel alone: + exact Hessian",
    ] {
        let rows: Vec<_> = bench.iter().filter(|b| b["what"] == what).collect();
        assert_eq!(rows.len(), 2, "{what}");
        assert!(
            rows.iter()
                .all(|b| b["per_second"].as_f64().unwrap() > 0.0 && b["batch"] == 16)
        );
    }
    assert!(v["device"].as_str().unwrap().contains("emulation"));
    // bad workspaces are errors, not panics
    let (code, _, err) = gradfit(&[
        "selftest",
        "--device",
        "cuda-emu",
        "/no/such/ws.json",
        "--no-examples",
    ]);
    assert_eq!(code, 1);
    assert!(err.contains("/no/such/ws.json"), "{err}");
}
