//! ONNX members of a network ensemble, on the committed fixture
//! tests/data/nsbi/onnx (scripts/make_onnx_fixture.py): torch MLPs exported
//! to ONNX and the same weights as safetensors, with torch's own ratios on
//! 64 events. The ONNX members against torch and against the safetensors
//! members; chunked evaluation; a mixed ensemble in a workspace against the
//! same workspace with the mean ratio written out; bad models. A module of
//! tests/nsbi_onnx.rs.

use super::common::{read, rel, repo};
use super::tempdir;
use gradfit::model::Likelihood;
use gradfit::model::nsbi::arrays::write_npy;
use gradfit::model::nsbi::network;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};

fn fixture() -> PathBuf {
    repo("tests/data/nsbi/onnx")
}

fn torch_ref(key: &str) -> Vec<f64> {
    let v = read(&fixture().join("ref.json"));
    v[key]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

fn read_npy(p: &Path) -> Vec<f64> {
    let r = gradfit::model::nsbi::arrays::ArrayRef {
        file: p.to_path_buf(),
        column: None,
    };
    gradfit::model::nsbi::arrays::read(&r, "", "test").unwrap()
}

/// The ratio of a one-member ensemble on the events of `features` under `base`.
fn single(base: &Path, member: &str, features: [&str; 2]) -> Vec<f64> {
    let v = json!({"features": features, "ensemble": [member], "activation": "tanh"});
    network::evaluate(&v, "/r", "test", base).unwrap().0
}

#[test]
fn onnx_members_give_torchs_ratios_and_the_safetensors_members_ratios() {
    let dir = fixture();
    let f = ["x1.npy", "x2.npy"];
    for (net, key) in [("net_a", "r_a"), ("net_b", "r_b")] {
        let want = torch_ref(key);
        let onnx = single(&dir, &format!("{net}.onnx"), f);
        let st = single(&dir, &format!("{net}.safetensors"), f);
        assert_eq!(onnx.len(), 64);
        assert_eq!(st.len(), 64);
        let worst = (0..64).map(|i| rel(onnx[i], want[i])).fold(0.0, f64::max);
        eprintln!("{net}.onnx: largest relative difference to torch {worst:.2e}");
        for i in 0..64 {
            assert!(
                rel(onnx[i], want[i]) < 1e-12,
                "{net}.onnx event {i}: {} vs torch {}",
                onnx[i],
                want[i]
            );
            assert!(
                rel(onnx[i], st[i]) < 1e-12,
                "{net} event {i}: onnx {} vs safetensors {}",
                onnx[i],
                st[i]
            );
        }
        // the networks are not trivial: the ratio varies over the events
        let (lo, hi) = want
            .iter()
            .fold((f64::MAX, f64::MIN), |(l, h), &r| (l.min(r), h.max(r)));
        assert!(hi / lo > 1.2, "{net}: {lo} .. {hi}");
    }
    // f32 model: evaluated in f32, so within f32 rounding of torch's f32
    let want = torch_ref("r_c_f32");
    let got = single(&dir, "net_c_f32.onnx", f);
    let worst = (0..64).map(|i| rel(got[i], want[i])).fold(0.0, f64::max);
    eprintln!("net_c_f32.onnx: largest relative difference to torch (f32) {worst:.2e}");
    for i in 0..64 {
        assert!(
            rel(got[i], want[i]) < 1e-5,
            "f32 event {i}: {} vs {}",
            got[i],
            want[i]
        );
    }
}

#[test]
fn onnx_members_are_evaluated_in_chunks() {
    // more events than one chunk (65,536): the 64 events repeated
    let dir = tempdir("onnx-chunks");
    let x1 = read_npy(&fixture().join("x1.npy"));
    let x2 = read_npy(&fixture().join("x2.npy"));
    let reps = 1100;
    let t1: Vec<f64> = (0..reps).flat_map(|_| x1.iter().copied()).collect();
    let t2: Vec<f64> = (0..reps).flat_map(|_| x2.iter().copied()).collect();
    write_npy(&dir.join("x1.npy"), &t1).unwrap();
    write_npy(&dir.join("x2.npy"), &t2).unwrap();
    std::fs::copy(fixture().join("net_a.onnx"), dir.join("net_a.onnx")).unwrap();
    let got = single(&dir, "net_a.onnx", ["x1.npy", "x2.npy"]);
    assert_eq!(got.len(), 64 * reps);
    let want = torch_ref("r_a");
    for (i, r) in got.iter().enumerate() {
        assert!(rel(*r, want[i % 64]) < 1e-12, "event {i}: {r}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// Workspace of 64 events: S from `s_ratio`, B from an array.
fn workspace(s_ratio: Value) -> Value {
    json!({
        "channels": [{"name": "SR", "type": "unbinned", "samples": [
            {"name": "S", "data": [24.0], "ratios": s_ratio, "modifiers": [
                {"name": "mu", "type": "normfactor", "data": null}]},
            {"name": "B", "data": [40.0], "ratios": "rb.npy", "modifiers": [
                {"name": "bnorm", "type": "normsys", "data": {"hi": 1.05, "lo": 0.95}}]}]}],
        "observations": [],
        "measurements": [{"name": "m", "config": {"poi": "mu", "parameters": []}}],
        "version": "1.0.0"
    })
}

fn ensemble(members: &[&str]) -> Value {
    json!({"features": ["x1.npy", "x2.npy"], "ensemble": members, "activation": "tanh"})
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

/// A temporary directory with the fixture's files and the B ratios.
fn setup(name: &str) -> PathBuf {
    let dir = tempdir(name);
    for e in std::fs::read_dir(fixture()).unwrap() {
        let p = e.unwrap().path();
        std::fs::copy(&p, dir.join(p.file_name().unwrap())).unwrap();
    }
    let x1 = read_npy(&dir.join("x1.npy"));
    let rb: Vec<f64> = x1.iter().map(|x| 1.0 - 0.1 * x).collect();
    write_npy(&dir.join("rb.npy"), &rb).unwrap();
    dir
}

#[test]
fn a_mixed_onnx_and_safetensors_ensemble_equals_its_mean_ratio_array() {
    let dir = setup("onnx-ws");
    let (ra, rb) = (torch_ref("r_a"), torch_ref("r_b"));
    let mean: Vec<f64> = ra.iter().zip(&rb).map(|(a, b)| 0.5 * (a + b)).collect();
    write_npy(&dir.join("mean.npy"), &mean).unwrap();
    let m_net = load(
        &dir,
        &workspace(ensemble(&["net_a.onnx", "net_b.safetensors"])),
    )
    .unwrap();
    let m_arr = load(&dir, &workspace(json!("mean.npy"))).unwrap();
    for x in [[1.0, 0.0], [1.4, -0.5], [0.5, 0.9]] {
        let (mut s1, mut s2) = (m_net.scratch(), m_arr.scratch());
        let a = m_net.eval(&x, m_net.observed(), &mut s1, None, None);
        let b = m_arr.eval(&x, m_arr.observed(), &mut s2, None, None);
        assert!(a.is_finite() && rel(a, b) < 1e-12, "{a} vs {b}");
    }
    // and differs from the workspace with one member only
    let m_a = load(&dir, &workspace(ensemble(&["net_a.onnx"]))).unwrap();
    let (mut s1, mut s2) = (m_net.scratch(), m_a.scratch());
    let a = m_net.eval(&[1.0, 0.0], m_net.observed(), &mut s1, None, None);
    let b = m_a.eval(&[1.0, 0.0], m_a.observed(), &mut s2, None, None);
    assert!(rel(a, b) > 1e-6, "{a} vs {b}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bad_onnx_members_are_errors_naming_the_place_and_the_file() {
    let dir = setup("onnx-bad");
    std::fs::write(dir.join("garbage.onnx"), b"this is not an ONNX model").unwrap();
    let at = "/channels/0/samples/0/ratios/ensemble/1";
    for (file, output, want) in [
        ("garbage.onnx", "log_ratio", "cannot read the ONNX model"),
        ("missing.onnx", "log_ratio", "cannot read the ONNX model"),
        (
            "bad_width.onnx",
            "log_ratio",
            "takes 3 inputs but 2 features are given",
        ),
        ("bad_two_out.onnx", "log_ratio", "one value per event"),
        ("bad_nan.onnx", "ratio", "non-finite ratio at event"),
    ] {
        let mut e = ensemble(&["net_a.onnx", file]);
        e["output"] = json!(output);
        let msg = match load(&dir, &workspace(e)) {
            Ok(_) => panic!("{file} was accepted"),
            Err(err) => err.to_string(),
        };
        assert!(
            msg.contains(at) && msg.contains(file) && msg.contains(want) && msg.contains("ws.json"),
            "{file}: {msg}"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}
