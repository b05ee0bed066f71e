//! Host emulation of the CUDA kernels (feature `cuda-emu`): kernels/emu.cpp
//! compiles the very kernel bodies of kernels/*.cuh with the host C++
//! compiler, and a launch calls the body for every thread index (in parallel
//! chunks with rayon; the counting kernel in one piece). It exists to test
//! the GPU code and its host side without a GPU; it is not fast.

use super::exec::Backend;
use super::params::{GfParams, Kernel};
use crate::error::{Error, Result};
use rayon::prelude::*;
use std::ffi::{CStr, c_char};

unsafe extern "C" {
    fn gf_emu_launch(id: u32, begin: u64, end: u64, p: *const GfParams) -> i32;
    fn gf_emu_kernel_name(id: u32) -> *const c_char;
    fn gf_emu_params_size() -> u64;
    fn gf_emu_field_name(i: u32) -> *const c_char;
    fn gf_emu_field_offset(i: u32) -> u64;
    fn gf_emu_philox(ctr: *const u32, key: *const u32, out: *mut u32);
    fn gf_emu_stream(
        seed: u64,
        toy: u32,
        purpose: u32,
        variable: u32,
        kind: u32,
        lam: f64,
        n: u64,
        out: *mut f64,
    );
}

/// The C++ side's `GfParams` fields (name, byte offset) and size.
pub fn cpp_params_layout() -> (Vec<(String, u64)>, u64) {
    let mut v = Vec::new();
    // SAFETY: the functions return static strings or NULL past the end.
    unsafe {
        let mut i = 0;
        loop {
            let n = gf_emu_field_name(i);
            if n.is_null() {
                break;
            }
            v.push((
                CStr::from_ptr(n).to_string_lossy().into_owned(),
                gf_emu_field_offset(i),
            ));
            i += 1;
        }
        (v, gf_emu_params_size())
    }
}

/// The C++ side's kernel names in launch-table order.
pub fn cpp_kernel_names() -> Vec<String> {
    let mut v = Vec::new();
    // SAFETY: static strings or NULL past the end.
    unsafe {
        let mut i = 0;
        loop {
            let n = gf_emu_kernel_name(i);
            if n.is_null() {
                break;
            }
            v.push(CStr::from_ptr(n).to_string_lossy().into_owned());
            i += 1;
        }
    }
    v
}

/// One Philox4x32-10 block computed by the kernels' code.
pub fn philox(ctr: [u32; 4], key: [u32; 2]) -> [u32; 4] {
    let mut out = [0u32; 4];
    // SAFETY: fixed-size arrays of the sizes the C++ function reads and writes.
    unsafe { gf_emu_philox(ctr.as_ptr(), key.as_ptr(), out.as_mut_ptr()) };
    out
}

/// What [`stream`] draws.
#[derive(Debug, Clone, Copy)]
pub enum Draw {
    /// Uniform in (0, 1).
    Uniform,
    /// Standard normal.
    Normal,
    /// Poisson with this mean.
    Poisson(f64),
}

/// `n` draws of the stream `(seed, toy, purpose, variable)` computed by the kernels' code.
pub fn stream(seed: u64, toy: u32, purpose: u32, variable: u32, draw: Draw, n: usize) -> Vec<f64> {
    let mut out = vec![0.0; n];
    let (kind, lam) = match draw {
        Draw::Uniform => (0, 0.0),
        Draw::Normal => (1, 0.0),
        Draw::Poisson(l) => (2, l),
    };
    // SAFETY: `out` has room for n doubles.
    unsafe {
        gf_emu_stream(
            seed,
            toy,
            purpose,
            variable,
            kind,
            lam,
            n as u64,
            out.as_mut_ptr(),
        )
    };
    out
}

/// A host allocation standing in for device memory.
pub struct EmuBuf {
    ptr: *mut u8,
    len: usize,
}

// SAFETY: the buffer is plain memory owned by this value; kernels write to it
// only inside a launch, which the backend runs to completion before returning.
unsafe impl Send for EmuBuf {}

impl Drop for EmuBuf {
    fn drop(&mut self) {
        let layout = std::alloc::Layout::from_size_align(self.len, 64).expect("valid layout");
        // SAFETY: allocated in `alloc_zeroed` with this layout.
        unsafe { std::alloc::dealloc(self.ptr, layout) };
    }
}

/// The host emulation backend.
#[derive(Debug, Default, Clone)]
pub struct EmuBackend;

/// Thread indices per parallel piece of an emulated launch.
const PIECE: u64 = 64;

impl Backend for EmuBackend {
    type Buf = EmuBuf;

    fn describe(&self) -> String {
        "host emulation of the CUDA kernels (cuda-emu)".to_string()
    }

    fn alloc_zeroed(&self, bytes: usize) -> Result<EmuBuf> {
        let len = bytes.max(8);
        let layout = std::alloc::Layout::from_size_align(len, 64)
            .map_err(|e| Error::input(format!("allocation of {bytes} bytes: {e}")))?;
        // SAFETY: non-zero size.
        let ptr = unsafe { std::alloc::alloc_zeroed(layout) };
        if ptr.is_null() {
            return Err(Error::input(format!("out of host memory ({bytes} bytes)")));
        }
        Ok(EmuBuf { ptr, len })
    }

    fn write(&self, buf: &mut EmuBuf, bytes: &[u8]) -> Result<()> {
        if bytes.len() > buf.len {
            return Err(Error::input("write past the end of a buffer"));
        }
        // SAFETY: bounds checked above; distinct allocations.
        unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), buf.ptr, bytes.len()) };
        Ok(())
    }

    fn read(&self, buf: &EmuBuf, out: &mut [u8]) -> Result<()> {
        if out.len() > buf.len {
            return Err(Error::input("read past the end of a buffer"));
        }
        // SAFETY: bounds checked above; distinct allocations.
        unsafe { std::ptr::copy_nonoverlapping(buf.ptr, out.as_mut_ptr(), out.len()) };
        Ok(())
    }

    fn addr(&self, buf: &EmuBuf) -> u64 {
        buf.ptr as u64
    }

    fn launch(&self, kernel: Kernel, n_threads: u64, p: &GfParams) -> Result<()> {
        let mut pp = *p;
        pp.n_threads = n_threads;
        let id = kernel.id();
        let run = |a: u64, b: u64| -> i32 {
            // SAFETY: every address in `pp` points into a live buffer of the
            // sizes the host side allocated; each thread index writes only its
            // own members' entries (the counting kernel runs in one piece).
            unsafe { gf_emu_launch(id, a, b, &pp) }
        };
        let rc = if kernel == Kernel::CountActive || n_threads <= PIECE {
            run(0, n_threads)
        } else {
            let pieces = n_threads.div_ceil(PIECE);
            (0..pieces)
                .into_par_iter()
                .map(|k| run(k * PIECE, ((k + 1) * PIECE).min(n_threads)))
                .min()
                .unwrap_or(0)
        };
        if rc != 0 {
            return Err(Error::input(format!(
                "emulated kernel {} failed",
                kernel.name()
            )));
        }
        Ok(())
    }

    fn synchronize(&self) -> Result<()> {
        Ok(())
    }

    fn free_memory(&self) -> Option<usize> {
        Some(2 << 30)
    }
}
