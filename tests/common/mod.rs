//! Helpers shared by the integration tests.
#![allow(dead_code)]

use gradfit::model::{HistFactoryModel, ModelOptions};
use gradfit::workspace::{self, ReadOptions};
use serde_json::Value;
use std::path::{Path, PathBuf};

/// The shared data folder: `GRADFIT_SHARED`, which the suites that need it require.
/// Panics with a clear message when it is missing: these suites never pass silently.
pub fn shared_dir() -> PathBuf {
    let dir = std::env::var_os("GRADFIT_SHARED").map(PathBuf::from).unwrap_or_else(|| {
        panic!("GRADFIT_SHARED is not set: this suite reads ../shared (run it through .ci/run or set GRADFIT_SHARED=../shared)")
    });
    assert!(dir.join("workspaces").is_dir(), "GRADFIT_SHARED={} has no workspaces/ folder", dir.display());
    dir
}

/// Names of the shared workspaces (without .json), sorted.
pub fn workspace_names(shared: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(shared.join("workspaces"))
        .expect("read workspaces")
        .filter_map(|e| {
            let n = e.ok()?.file_name().to_string_lossy().into_owned();
            (n.ends_with(".json") && !n.ends_with(".signal-patch.json")).then(|| n.trim_end_matches(".json").to_string())
        })
        .collect();
    v.sort();
    assert!(!v.is_empty(), "no workspaces found");
    v
}

pub fn read(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())))
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The reference file of a workspace.
pub fn reference(shared: &Path, name: &str) -> Value {
    read(&shared.join("references").join(format!("{name}.json")))
}

/// Load a shared workspace with its signal patch (where one exists).
pub fn load_model(shared: &Path, name: &str, opts: &ModelOptions) -> HistFactoryModel {
    let ws = shared.join("workspaces").join(format!("{name}.json"));
    let patch = shared.join("workspaces").join(format!("{name}.signal-patch.json"));
    let patches = if patch.exists() { vec![workspace::load_patch(&patch).unwrap()] } else { vec![] };
    HistFactoryModel::load(&ws, &patches, &ReadOptions::default(), opts).unwrap_or_else(|e| panic!("{name}: {e}"))
}

pub fn f64s(v: &Value) -> Vec<f64> {
    v.as_array().expect("array").iter().map(|x| x.as_f64().expect("number")).collect()
}

pub fn rel(a: f64, b: f64) -> f64 {
    (a - b).abs() / b.abs().max(1e-300)
}

/// Repository-relative path.
pub fn repo(p: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(p)
}
