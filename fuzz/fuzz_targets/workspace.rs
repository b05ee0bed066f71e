#![no_main]
//! cargo-fuzz target: gradfit::fuzz::workspace (see fuzz/Cargo.toml).
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| gradfit::fuzz::workspace(data));
