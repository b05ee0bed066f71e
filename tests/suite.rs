//! The self-contained integration suites in one test binary: one link
//! instead of thirteen (the cold `cargo test` build was dominated by links).
//! Each suite is a module, so `cargo test --test suite -- nsbi::` runs one.
//! The suites that need ../shared, the fuzz campaign, the stress corpus and
//! the GPU-emulation suites stay separate binaries (see Cargo.toml).

// Each suite keeps its own `mod common;` (they also build on their own), so
// the helpers are loaded once per suite.
#![allow(clippy::duplicate_mod)]

#[path = "bad_input.rs"]
mod bad_input;
#[path = "cli.rs"]
mod cli;
#[path = "cli_conventions.rs"]
mod cli_conventions;
#[path = "cli_infer.rs"]
mod cli_infer;
#[path = "fit.rs"]
mod fit;
#[path = "graph_kernel.rs"]
mod graph_kernel;
#[path = "infer.rs"]
mod infer;
#[path = "io_hardening.rs"]
mod io_hardening;
#[path = "nsbi.rs"]
mod nsbi;
#[path = "pyhf_tools.rs"]
mod pyhf_tools;
#[path = "report.rs"]
mod report;
#[path = "train.rs"]
mod train;
#[path = "unbinned.rs"]
mod unbinned;

/// Every tests/*.rs file runs: as a module of this binary or as a test
/// target of its own in Cargo.toml (autotests is off, so a file that is
/// neither would silently never run).
#[test]
fn every_test_file_is_a_suite_module_or_a_test_target() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let suite = std::fs::read_to_string(root.join("tests/suite.rs")).unwrap();
    let cargo = std::fs::read_to_string(root.join("Cargo.toml")).unwrap();
    let mut missing = Vec::new();
    for e in std::fs::read_dir(root.join("tests")).unwrap() {
        let name = e.unwrap().file_name().to_string_lossy().into_owned();
        let Some(stem) = name.strip_suffix(".rs") else {
            continue;
        };
        let as_module = suite.contains(&format!("#[path = \"{name}\"]"));
        let as_target = cargo.contains(&format!("path = \"tests/{name}\""));
        if stem != "suite" && !as_module && !as_target {
            missing.push(name);
        }
    }
    assert!(
        missing.is_empty(),
        "tests not run by any target: {missing:?}"
    );
}
