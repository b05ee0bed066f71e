//! Host side of the GPU pipeline: buffers, kernel sequences and results,
//! written once for any [`Backend`] (the CUDA device, or the host emulation
//! of the same kernels that the tests use).
//!
//! Every batch member is one GPU thread; its arrays are interleaved with the
//! other members' (element `i` of member `t` at `[i * ms + t]`, `ms` the
//! member capacity), so that a warp reads and writes contiguous memory. The
//! minimiser's state stays on the device between iterations: the host
//! launches `CHECK_EVERY` iterations, then reads back one count of unfinished
//! members, and downloads only the results at the end.
//!
//! Files: this one (the [`Backend`] trait, [`Gpu`] and its settings), `work`
//! (device buffers of a batch and the minimiser's launch loop), `eval`
//! (batched evaluations), `fit` (batched fits, covariances, host refits of
//! stalled members) and `toys` (toy sampling, toy fits, [`run_toys`]).

mod eval;
mod fit;
mod toys;
mod work;

pub use eval::{EvalMode, EvalOut};
pub use fit::covariance;
pub use toys::run_toys;
pub use work::{Pod, member_bytes};

use super::params::{GfParams, Kernel};
use super::plan::DeviceModel;
use crate::error::Result;
use crate::model::HistFactoryModel;
use std::collections::HashMap;
use work::{bytes_of, set_addr};

/// Threads per block for a launch of `n` threads on `sms` multiprocessors:
/// `max` when there are enough threads to give every multiprocessor four
/// such blocks, else smaller blocks (down to one warp), so that a batch of a
/// few thousand members spreads over all multiprocessors instead of filling a
/// few (each thread owns one member, so this changes no result).
pub fn block_size(n: u64, sms: u64, max: u32) -> u32 {
    let mut b = max;
    while b > 32 && n < 4 * sms * b as u64 {
        b /= 2;
    }
    b
}

/// Iteration cap of toy fits on the device: a member still running after
/// it (a small fraction; docs/gpu.md) is finished on the host, so that a few
/// slow fits do not hold a whole batch. Per member, so the same toys are
/// handed over whatever the batch size.
pub const TOY_ITER_CAP: usize = 50;

/// Trial steps of one minimiser iteration (`GF_MAX_ATTEMPTS` of kernels/fit.cuh).
pub const MAX_ATTEMPTS: usize = 60;

/// Trial steps a member runs per launch of the fit kernel: a member whose
/// step search needs more parks it and resumes in the next launch, so that
/// each launch costs about one iteration of a typical member instead of the
/// sixty refactorisations of the slowest (docs/gpu.md, Results).
pub const ATTEMPTS_PER_LAUNCH: u64 = 2;

/// Iterations launched between two reads of the unfinished-member count.
pub const CHECK_EVERY: usize = 4;

/// A device that runs the kernels: memory, copies and launches.
pub trait Backend {
    /// A device allocation.
    type Buf;
    /// Device name and details for reports.
    fn describe(&self) -> String;
    /// A zeroed allocation of `bytes` bytes (at least 8-byte aligned).
    fn alloc_zeroed(&self, bytes: usize) -> Result<Self::Buf>;
    /// Copy `bytes` to the start of `buf`.
    fn write(&self, buf: &mut Self::Buf, bytes: &[u8]) -> Result<()>;
    /// Copy the start of `buf` into `out` (waits for the device).
    fn read(&self, buf: &Self::Buf, out: &mut [u8]) -> Result<()>;
    /// Device address of `buf`.
    fn addr(&self, buf: &Self::Buf) -> u64;
    /// Run `kernel` on `n_threads` threads with `p` (whose `n_threads` field is set here).
    fn launch(&self, kernel: Kernel, n_threads: u64, p: &GfParams) -> Result<()>;
    /// Wait until every launch has finished.
    fn synchronize(&self) -> Result<()>;
    /// Free device memory in bytes, if known.
    fn free_memory(&self) -> Option<usize>;
}

/// A model uploaded to a device, ready for batched evaluations, fits and toys.
pub struct Gpu<B: Backend> {
    backend: B,
    /// The model's tables.
    pub dm: DeviceModel,
    _tables: Vec<B::Buf>,
    base: GfParams,
    max_members: usize,
    /// Iteration cap of toy fits on the device ([`TOY_ITER_CAP`]).
    toy_iter_cap: usize,
    /// Trial steps per member and launch ([`ATTEMPTS_PER_LAUNCH`]; 0: all).
    attempts_per_launch: u64,
    /// Launches of the fit kernel so far (a statistic for tests and benchmarks).
    fit_launches: std::sync::atomic::AtomicU64,
    /// The model on the host: members whose fit stalls on the device are
    /// finished there by the CPU minimiser's trust-region escalation.
    model: HistFactoryModel,
    /// Batch buffers of earlier calls, by field, reused by later ones (a
    /// device allocation per buffer and call would dominate small batches).
    cache: std::sync::Mutex<Cache<B>>,
}

/// Buffer cache of a [`Gpu`]: field -> (buffer, bytes).
type Cache<B> = HashMap<&'static str, (<B as Backend>::Buf, usize)>;

/// The fewest members a batch may be capped to.
const MIN_MEMBERS: usize = 1;

impl<B: Backend> Gpu<B> {
    /// Upload `m`'s tables to `backend`.
    pub fn new(backend: B, m: &HistFactoryModel) -> Result<Self> {
        let dm = DeviceModel::new(m)?;
        let mut base = GfParams {
            n_pars: dm.n_pars as u64,
            n_main: dm.n_main as u64,
            n_aux: dm.n_aux as u64,
            n_sb: dm.n_sb as u64,
            n_global: dm.n_global as u64,
            n_hess: dm.n_hess as u64,
            n_blocks: dm.n_blocks as u64,
            n_con: dm.n_con as u64,
            n_jac: dm.n_jac as u64,
            max_mult: dm.max_mult as u64,
            max_add: dm.max_add as u64,
            strict_domain: dm.strict_domain as u64,
            ..Default::default()
        };
        let mut tables = Vec::new();
        let mut upload = |name: &str, bytes: &[u8], base: &mut GfParams| -> Result<()> {
            let mut buf = backend.alloc_zeroed(bytes.len().max(8))?;
            backend.write(&mut buf, bytes)?;
            set_addr(base, name, backend.addr(&buf))?;
            tables.push(buf);
            Ok(())
        };
        for (name, v) in &dm.u32_tables {
            upload(name, bytes_of(v), &mut base)?;
        }
        for (name, v) in &dm.f64_tables {
            upload(name, bytes_of(v), &mut base)?;
        }
        let max_members = std::env::var("GRADFIT_GPU_MAX_MEMBERS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(1 << 18);
        Ok(Gpu {
            backend,
            dm,
            _tables: tables,
            base,
            max_members,
            toy_iter_cap: TOY_ITER_CAP,
            attempts_per_launch: ATTEMPTS_PER_LAUNCH,
            fit_launches: std::sync::atomic::AtomicU64::new(0),
            model: m.clone(),
            cache: std::sync::Mutex::new(HashMap::new()),
        })
    }

    /// The backend.
    pub fn backend(&self) -> &B {
        &self.backend
    }

    /// Cap the members that run at once (default 262,144, or `GRADFIT_GPU_MAX_MEMBERS`).
    pub fn set_max_members(&mut self, n: usize) {
        self.max_members = n.max(MIN_MEMBERS);
    }

    /// Set the iteration cap of toy fits on the device (default
    /// [`TOY_ITER_CAP`]; at least 1): toys with a fit still running then are
    /// fitted again on the host.
    pub fn set_toy_iter_cap(&mut self, n: usize) {
        self.toy_iter_cap = n.max(1);
    }

    /// Set the trial steps a member runs per launch of the fit kernel
    /// (default [`ATTEMPTS_PER_LAUNCH`]; 0: a whole step search per launch).
    /// Results do not depend on it.
    pub fn set_attempts_per_launch(&mut self, n: u64) {
        self.attempts_per_launch = n;
    }

    /// Launches of the fit kernel since the device was opened.
    pub fn fit_launches(&self) -> u64 {
        self.fit_launches.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The buffer cache (still usable after a panic while it was held).
    fn cache(&self) -> std::sync::MutexGuard<'_, Cache<B>> {
        self.cache.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Members that fit in device memory at once (half the free memory), at most `want`.
    fn capacity(&self, want: usize, fit: bool, hess: bool) -> usize {
        let per = member_bytes(&self.dm, fit, hess).max(1);
        let cached: usize = self.cache().values().map(|(_, b)| *b).sum();
        let free = self.backend.free_memory().unwrap_or(8 << 30) + cached;
        let by_mem = (free / 2) / per;
        want.min(by_mem).min(self.max_members).max(MIN_MEMBERS)
    }
}

#[cfg(test)]
mod tests {
    use super::block_size;

    #[test]
    fn small_launches_spread_over_every_multiprocessor() {
        assert_eq!(block_size(1_000_000, 132, 128), 128);
        assert_eq!(block_size(4 * 132 * 128, 132, 128), 128);
        assert_eq!(block_size(4 * 132 * 128 - 1, 132, 128), 64);
        assert_eq!(block_size(4000, 132, 128), 32);
        assert_eq!(block_size(1, 132, 128), 32);
    }
}
