//! Ratios from an ensemble of networks (safetensors MLPs): networks built by
//! hand to compute `ln r = a.x + b` exactly (`relu(z) - relu(-z)`), so the
//! ensemble mean is known; the workspace with the ensemble equals the one
//! with the mean written as a ratio array; the spread summary; inspect; bad input.

use super::common::{rel, run_gradfit};
use super::tempdir;
use candle_core::{Device, Tensor};
use gradfit::model::Likelihood;
use gradfit::model::nsbi::arrays::write_npy;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::path::Path;

/// A two-layer ReLU network with `ln r = a . x + b`, saved under `names` ("layer0"/"layer1" or "0"/"2").
fn save_net(path: &Path, a: [f64; 2], b: f64, names: [&str; 2]) {
    let dev = Device::Cpu;
    let mut t = HashMap::new();
    let w0 = Tensor::from_vec(vec![a[0], a[1], -a[0], -a[1]], (2, 2), &dev).unwrap();
    t.insert(format!("{}.weight", names[0]), w0);
    t.insert(
        format!("{}.bias", names[0]),
        Tensor::from_vec(vec![b, -b], 2, &dev).unwrap(),
    );
    t.insert(
        format!("{}.weight", names[1]),
        Tensor::from_vec(vec![1.0, -1.0], (1, 2), &dev).unwrap(),
    );
    t.insert(
        format!("{}.bias", names[1]),
        Tensor::from_vec(vec![0.0], 1, &dev).unwrap(),
    );
    candle_core::safetensors::save(&t, path).unwrap();
}

const NETS: [([f64; 2], f64); 3] = [
    ([0.8, 0.1], -0.33),
    ([0.75, 0.12], -0.29),
    ([0.85, 0.05], -0.37),
];

/// Events, features and the background ratios written to `dir`; the
/// workspace with the signal ratio given by `s_ratio`.
fn setup(dir: &Path, s_ratio: Value) -> (Value, Vec<f64>) {
    let n = 2000;
    let mut rng = super::common::TestRng::new(7);
    let mut x1 = Vec::new();
    let mut x2 = Vec::new();
    for _ in 0..n {
        x1.push(2.0 * rng.uniform() - 1.0 + 0.3);
        x2.push(2.0 * rng.uniform() - 1.0);
    }
    write_npy(&dir.join("x1.npy"), &x1).unwrap();
    write_npy(&dir.join("x2.npy"), &x2).unwrap();
    let rb: Vec<f64> = x1.iter().map(|x| 1.0 - 0.2 * x).collect();
    write_npy(&dir.join("rb.npy"), &rb).unwrap();
    for (k, (a, b)) in NETS.iter().enumerate() {
        let names = if k == 1 {
            ["0", "2"]
        } else {
            ["layer0", "layer1"]
        };
        save_net(&dir.join(format!("net{k}.safetensors")), *a, *b, names);
    }
    let mean: Vec<f64> = (0..n)
        .map(|i| {
            NETS.iter()
                .map(|(a, b)| (a[0] * x1[i] + a[1] * x2[i] + b).exp())
                .sum::<f64>()
                / 3.0
        })
        .collect();
    let ws = json!({
        "channels": [{"name": "SR", "type": "unbinned", "samples": [
            {"name": "S", "data": [300.0], "ratios": s_ratio, "modifiers": [
                {"name": "mu", "type": "normfactor", "data": null}]},
            {"name": "B", "data": [1700.0], "ratios": "rb.npy", "modifiers": [
                {"name": "bnorm", "type": "normsys", "data": {"hi": 1.05, "lo": 0.95}}]}]}],
        "observations": [],
        "measurements": [{"name": "m", "config": {"poi": "mu", "parameters": []}}],
        "version": "1.0.0"
    });
    (ws, mean)
}

fn ensemble() -> Value {
    json!({"features": ["x1.npy", "x2.npy"],
           "ensemble": ["net0.safetensors", "net1.safetensors", "net2.safetensors"]})
}

fn load(dir: &Path, ws: &Value) -> gradfit::Result<gradfit::model::CombinedModel> {
    let p = dir.join("ws.json");
    std::fs::write(&p, ws.to_string()).unwrap();
    gradfit::model::load_other(
        gradfit::model::Format::Nsbi,
        ws,
        &p.display().to_string(),
        dir,
    )
}

#[test]
fn an_ensemble_of_networks_gives_its_mean_ratio_and_reports_its_spread() {
    let dir = tempdir("network");
    let (ws, mean) = setup(&dir, ensemble());
    write_npy(&dir.join("mean.npy"), &mean).unwrap();
    let m_net = load(&dir, &ws).unwrap();
    let (ws_arr, _) = setup(&dir, json!("mean.npy"));
    let m_arr = load(&dir, &ws_arr).unwrap();
    for x in [[1.0, 0.0], [1.3, -0.4], [0.6, 0.8]] {
        let (mut s1, mut s2) = (m_net.scratch(), m_arr.scratch());
        let a = m_net.eval(&x, m_net.observed(), &mut s1, None, None);
        let b = m_arr.eval(&x, m_arr.observed(), &mut s2, None, None);
        assert!(rel(a, b) < 1e-12, "{a} vs {b}");
    }
    // spread: relative std over members per event, averaged
    std::fs::write(dir.join("ws.json"), ws.to_string()).unwrap();
    let (_, v, err) = run_gradfit(&[
        "inspect",
        &dir.join("ws.json").display().to_string(),
        "--json",
    ]);
    let e = &v["parts"][0]["diagnostics"]["ensembles"][0];
    assert_eq!(e["members"], 3, "{v} {err}");
    assert_eq!(e["at"], "/channels/0/samples/0/ratios");
    let x1 = read_npy(&dir.join("x1.npy"));
    let x2 = read_npy(&dir.join("x2.npy"));
    let mut sum = 0.0;
    for i in 0..x1.len() {
        let r: Vec<f64> = NETS
            .iter()
            .map(|(a, b)| (a[0] * x1[i] + a[1] * x2[i] + b).exp())
            .collect();
        let mu = r.iter().sum::<f64>() / 3.0;
        let sd = (r.iter().map(|x| (x - mu).powi(2)).sum::<f64>() / 3.0).sqrt();
        sum += sd / mu;
    }
    let want = sum / x1.len() as f64;
    let got = e["mean_rel_spread"].as_f64().unwrap();
    assert!(rel(got, want) < 1e-10, "{got} vs {want}");
    assert!(want > 0.01);
    // bad input names the place
    let mut bad = ensemble();
    bad["ensemble"][1] = json!("missing.safetensors");
    let (ws_bad, _) = setup(&dir, bad);
    let msg = load(&dir, &ws_bad).err().unwrap().to_string();
    assert!(
        msg.contains("/channels/0/samples/0/ratios/ensemble/1")
            && msg.contains("missing.safetensors"),
        "{msg}"
    );
    let mut bad = ensemble();
    bad["features"] = json!(["x1.npy"]);
    let (ws_bad, _) = setup(&dir, bad);
    let msg = load(&dir, &ws_bad).err().unwrap().to_string();
    assert!(msg.contains("takes 2 inputs but 1 features"), "{msg}");
    let mut bad = ensemble();
    bad["output"] = json!("probability");
    let (ws_bad, _) = setup(&dir, bad);
    let msg = load(&dir, &ws_bad).err().unwrap().to_string();
    assert!(
        msg.contains("/ratios/output") && msg.contains("probability"),
        "{msg}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// Without the `onnx` feature an ONNX member is a clear error (with it,
/// tests/nsbi/onnx.rs evaluates them).
#[cfg(not(feature = "onnx"))]
#[test]
fn onnx_members_need_the_onnx_feature() {
    let dir = tempdir("network-onnx-off");
    let mut e = ensemble();
    e["ensemble"][2] = json!("net2.onnx");
    let (ws, _) = setup(&dir, e);
    let msg = load(&dir, &ws).err().unwrap().to_string();
    assert!(
        msg.contains("/channels/0/samples/0/ratios/ensemble/2")
            && msg.contains("net2.onnx")
            && msg.contains("--features onnx"),
        "{msg}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

fn read_npy(p: &Path) -> Vec<f64> {
    let r = gradfit::model::nsbi::arrays::ArrayRef {
        file: p.to_path_buf(),
        column: None,
    };
    gradfit::model::nsbi::arrays::read(&r, "", "test").unwrap()
}
