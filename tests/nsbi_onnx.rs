//! ONNX members of NSBI network ensembles (feature `onnx`, tract): run with
//! `cargo test --features onnx --test nsbi_onnx` (part of .ci/run). Its own
//! small binary, so that the feature does not rebuild the whole suite.
#![cfg(feature = "onnx")]

mod common;
#[path = "nsbi/onnx.rs"]
mod onnx;

use std::path::PathBuf;

fn tempdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("gradfit-nsbi-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}
