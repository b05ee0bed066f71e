//! Model loading shared by the benchmarks.

use gradfit::model::{HistFactoryModel, ModelOptions};
use gradfit::workspace::{ReadOptions, load_patch};
use std::path::{Path, PathBuf};

/// The shared data folder: GRADFIT_SHARED, default ../shared.
pub fn shared_dir() -> PathBuf {
    std::env::var_os("GRADFIT_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared"))
}

/// Load a workspace with default options and the given patches.
pub fn load(path: &Path, patches: &[PathBuf]) -> HistFactoryModel {
    let patches: Vec<_> = patches.iter().map(|p| load_patch(p).unwrap()).collect();
    HistFactoryModel::load(
        path,
        &patches,
        &ReadOptions::default(),
        &ModelOptions::default(),
    )
    .unwrap()
}

/// Shared workspace `stem` with its signal patch where one exists; `None`
/// (with a note) when the workspace is not there.
pub fn load_shared(stem: &str) -> Option<HistFactoryModel> {
    let dir = shared_dir().join("workspaces");
    let ws = dir.join(format!("{stem}.json"));
    if !ws.exists() {
        eprintln!("note: {} not found; skipping {stem}", ws.display());
        return None;
    }
    let patch = dir.join(format!("{stem}.signal-patch.json"));
    let patches = if patch.exists() { vec![patch] } else { vec![] };
    Some(load(&ws, &patches))
}
