#![no_main]
//! cargo-fuzz target: gradfit::fuzz::patchset (see fuzz/Cargo.toml).
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| gradfit::fuzz::patchset(data));
