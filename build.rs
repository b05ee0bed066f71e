//! Build script: does nothing for the default (CPU) build.
//!
//! - feature `cuda`: compiles kernels/gradfit.cu to PTX with nvcc (found as
//!   `$NVCC`, `$CUDA_HOME/bin/nvcc` or `nvcc` on the PATH) for compute
//!   capability `$CUDA_COMPUTE_CAP` (default 90: H100/H200): a fatbin with
//!   that GPU's machine code and the PTX, `$OUT_DIR/gradfit.fatbin`, which
//!   src/gpu/cuda.rs embeds (with ptxas's resource report, `ptxas.txt`).
//! - feature `cuda-emu`: compiles kernels/emu.cpp (the kernel bodies for the
//!   host) with the C++ compiler, for the tests that run the GPU code on the CPU.

use std::env;
use std::path::PathBuf;
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let cuda = env::var_os("CARGO_FEATURE_CUDA").is_some();
    let emu = env::var_os("CARGO_FEATURE_CUDA_EMU").is_some();
    if !cuda && !emu {
        return;
    }
    let kernels =
        PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("cargo sets it")).join("kernels");
    for e in std::fs::read_dir(&kernels)
        .expect("kernels/ exists")
        .flatten()
    {
        println!("cargo:rerun-if-changed={}", e.path().display());
    }
    if emu {
        build_emu(&kernels);
    }
    if cuda {
        build_ptx(&kernels);
    }
}

#[cfg(feature = "cuda-emu")]
fn build_emu(kernels: &std::path::Path) {
    cc::Build::new()
        .cpp(true)
        .file(kernels.join("emu.cpp"))
        .include(kernels)
        .std("c++17")
        .opt_level(2)
        // the kernels' random-number arithmetic must round as Rust's (no FMA contraction)
        .flag_if_supported("-ffp-contract=off")
        .warnings(true)
        .compile("gradfit_emu");
}

#[cfg(not(feature = "cuda-emu"))]
fn build_emu(_: &std::path::Path) {}

fn fail(msg: &str) -> ! {
    eprintln!("\nerror: {msg}\n");
    std::process::exit(1);
}

fn build_ptx(kernels: &std::path::Path) {
    println!("cargo:rerun-if-env-changed=NVCC");
    println!("cargo:rerun-if-env-changed=CUDA_HOME");
    println!("cargo:rerun-if-env-changed=CUDA_COMPUTE_CAP");
    let nvcc = env::var_os("NVCC")
        .map(PathBuf::from)
        .or_else(|| {
            env::var_os("CUDA_HOME")
                .map(|h| PathBuf::from(h).join("bin").join("nvcc"))
                .filter(|p| p.exists())
        })
        .unwrap_or_else(|| PathBuf::from("nvcc"));
    let cap = env::var("CUDA_COMPUTE_CAP").unwrap_or_else(|_| "90".to_string());
    let cap = cap.trim().replace('.', "");
    if cap.is_empty() || !cap.chars().all(|c| c.is_ascii_alphanumeric()) {
        fail(&format!(
            "CUDA_COMPUTE_CAP={cap} is not a compute capability like 90"
        ));
    }
    let version = Command::new(&nvcc).arg("--version").output();
    let version = match version {
        Ok(o) if o.status.success() => String::from_utf8_lossy(&o.stdout)
            .lines()
            .filter(|l| l.contains("release"))
            .collect::<Vec<_>>()
            .join(" "),
        _ => fail(&format!(
            "the cuda feature compiles kernels/*.cu with nvcc, but '{}' could not be run; \
             run scripts/build-cuda.sh (it installs CUDA 13.0's nvcc from PyPI), or set NVCC or CUDA_HOME",
            nvcc.display()
        )),
    };
    // A fatbin with machine code for the target (no JIT at start) and its PTX
    // (which the driver can JIT for newer GPUs).
    let out_dir = PathBuf::from(env::var("OUT_DIR").expect("cargo sets it"));
    let out = out_dir.join("gradfit.fatbin");
    let output = Command::new(&nvcc)
        .arg("-fatbin")
        .arg(format!("-gencode=arch=compute_{cap},code=sm_{cap}"))
        .arg(format!("-gencode=arch=compute_{cap},code=compute_{cap}"))
        .args(["-O3", "-std=c++17", "-lineinfo", "-Xptxas", "-v"])
        .arg("-I")
        .arg(kernels)
        .arg(kernels.join("gradfit.cu"))
        .arg("-o")
        .arg(&out)
        .output();
    let output = match output {
        Ok(o) => o,
        Err(e) => fail(&format!("could not run nvcc: {e}")),
    };
    let log = String::from_utf8_lossy(&output.stderr).into_owned();
    if !output.status.success() {
        eprintln!("{log}");
        fail(&format!(
            "nvcc failed on kernels/gradfit.cu ({})",
            output.status
        ));
    }
    // ptxas's register and spill report per kernel, for selftest and docs/gpu.md
    let report: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("Compiling entry") || l.contains("registers") || l.contains("spill"))
        .collect();
    std::fs::write(out_dir.join("ptxas.txt"), report.join("\n")).expect("write ptxas.txt");
    println!("cargo:rustc-env=GRADFIT_CUDA_BUILD={version}, sm_{cap}");
}
