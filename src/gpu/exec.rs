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

use super::params::{GfParams, Kernel};
use super::plan::DeviceModel;
use crate::error::{Error, Result};
use crate::fit::linalg::Chol;
use crate::fit::{FitOptions, FitResult, FitSpec, FitStatus};
use crate::infer::toys::{Chunk, ToyFitter, ToyRecord, ToyRun, ToySettings, drive_toys};
use crate::infer::{Problem, TestStat};
use crate::model::{Dataset, HistFactoryModel, Likelihood};
use std::collections::HashMap;

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

/// Plain-old-data element types of device arrays.
pub trait Pod: Copy + Default + 'static {}
impl Pod for f64 {}
impl Pod for u32 {}

fn bytes_of<T: Pod>(v: &[T]) -> &[u8] {
    // SAFETY: f64 and u32 have no padding and every bit pattern is valid.
    unsafe { std::slice::from_raw_parts(v.as_ptr() as *const u8, std::mem::size_of_val(v)) }
}

fn bytes_of_mut<T: Pod>(v: &mut [T]) -> &mut [u8] {
    // SAFETY: as above; the slice is exclusively borrowed.
    unsafe { std::slice::from_raw_parts_mut(v.as_mut_ptr() as *mut u8, std::mem::size_of_val(v)) }
}

/// What an evaluation computes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EvalMode {
    /// twice_nll only.
    Value,
    /// twice_nll and gradient.
    Grad,
    /// twice_nll, gradient and exact Hessian.
    Hessian,
    /// twice_nll, gradient and the expected (Fisher) information.
    Fisher,
}

impl EvalMode {
    fn code(self) -> u64 {
        match self {
            EvalMode::Value => 0,
            EvalMode::Grad => 1,
            EvalMode::Hessian => 2,
            EvalMode::Fisher => 3,
        }
    }
    fn hess(self) -> bool {
        matches!(self, EvalMode::Hessian | EvalMode::Fisher)
    }
}

/// Results of a batched evaluation.
#[derive(Debug, Clone)]
pub struct EvalOut {
    /// twice_nll per member (`+inf` outside the domain).
    pub f: Vec<f64>,
    /// Gradients, row-major `T x P` (modes with a gradient).
    pub grad: Option<Vec<f64>>,
    /// Packed block Hessians, `T x n_hess` (Hessian and Fisher modes); see [`DeviceModel::unpack`].
    pub hess: Option<Vec<f64>>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Ty {
    F64,
    U32,
}

impl Ty {
    fn size(self) -> usize {
        match self {
            Ty::F64 => 8,
            Ty::U32 => 4,
        }
    }
}

/// Per-member arrays: (field, elements per member, type).
fn member_arrays(dm: &DeviceModel, fit: bool, hess: bool) -> Vec<(&'static str, usize, Ty)> {
    let p = dm.n_pars;
    let g = dm.n_global;
    let nl = p - g;
    let (mm, ma) = (dm.max_mult, dm.max_add);
    let mut v = vec![
        ("sc_sbf", dm.n_sb, Ty::F64),
        ("sc_sba", dm.n_sb, Ty::F64),
        ("sc_nu", dm.n_main, Ty::F64),
        ("sc_w1", dm.n_main, Ty::F64),
        ("sc_w2", dm.n_main, Ty::F64),
        ("sc_mval", mm, Ty::F64),
        ("sc_md1", mm, Ty::F64),
        ("sc_md2", mm, Ty::F64),
        ("sc_ad1", ma, Ty::F64),
        ("sc_ad2", ma, Ty::F64),
        ("sc_pre", mm + 1, Ty::F64),
        ("sc_suf", mm + 1, Ty::F64),
        ("sc_tv", mm + ma, Ty::F64),
        ("st_g", p, Ty::F64),
        ("mb_data", 1, Ty::U32),
        ("mb_spec", 1, Ty::U32),
    ];
    if hess || fit {
        v.push(("st_h", dm.n_hess, Ty::F64));
        v.push(("sc_jac", dm.n_jac, Ty::F64));
    }
    if fit {
        for name in ["st_x", "st_xt", "st_xp", "st_d", "st_step", "st_y"] {
            v.push((name, p, Ty::F64));
        }
        v.extend([
            ("st_rg", g, Ty::F64),
            ("st_dfac", dm.n_dfac, Ty::F64),
            ("st_w", nl * g, Ty::F64),
            ("st_s", g * (g + 1) / 2, Ty::F64),
            ("st_free_new", p, Ty::U32),
            ("st_free_list", p, Ty::U32),
            ("st_gfree", g, Ty::U32),
            ("st_lfree", nl, Ty::U32),
            ("st_blk_s", dm.n_blocks, Ty::U32),
            ("st_blk_e", dm.n_blocks, Ty::U32),
            ("st_doff", dm.n_blocks, Ty::U32),
            ("st_woff", dm.n_blocks, Ty::U32),
            ("mb_f", 1, Ty::F64),
            ("mb_lambda", 1, Ty::F64),
            ("mb_edm", 1, Ty::F64),
            ("mb_fprev", 1, Ty::F64),
            ("mb_iter", 1, Ty::U32),
            ("mb_evals", 1, Ty::U32),
            ("mb_status", 1, Ty::U32),
            ("mb_flags", 1, Ty::U32),
            ("mb_counts", 4, Ty::U32),
            ("mb_npd", 1, Ty::U32),
            ("mb_win_iter", 1, Ty::U32),
            ("mb_win_f", 1, Ty::F64),
            ("mb_tstep", 1, Ty::F64),
            ("mb_attempt", 1, Ty::U32),
            ("mb_nf", 1, Ty::U32),
        ]);
    } else {
        v.push(("ev_theta", p, Ty::F64));
        v.push(("ev_f", 1, Ty::F64));
    }
    v
}

/// Device memory one batch member needs (`fit`: minimiser state; else an
/// evaluation, `hess` with a Hessian), plus its dataset.
pub fn member_bytes(dm: &DeviceModel, fit: bool, hess: bool) -> usize {
    member_arrays(dm, fit, hess)
        .iter()
        .map(|(_, n, ty)| n.max(&1) * ty.size())
        .sum::<usize>()
        + 8 * (dm.n_main + dm.n_aux + 1)
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
    cache: std::sync::Mutex<HashMap<&'static str, (B::Buf, usize)>>,
}

/// Buffers of one batch (named by their `GfParams` field).
struct Work<'a, B: Backend> {
    gpu: &'a Gpu<B>,
    p: GfParams,
    bufs: HashMap<&'static str, (B::Buf, usize)>,
}

impl<B: Backend> Drop for Work<'_, B> {
    fn drop(&mut self) {
        let mut c = self.gpu.cache.lock().unwrap_or_else(|e| e.into_inner());
        for (name, v) in self.bufs.drain() {
            c.insert(name, v);
        }
    }
}

impl<'a, B: Backend> Work<'a, B> {
    fn new(gpu: &'a Gpu<B>) -> Self {
        Work {
            gpu,
            p: gpu.base,
            bufs: HashMap::new(),
        }
    }

    /// Room for `n` elements for field `name`: a buffer of an earlier call
    /// when one is large enough (contents left over), else a new zeroed one.
    /// No kernel reads an entry that the same call did not write first.
    fn alloc(&mut self, name: &'static str, n: usize, ty: Ty) -> Result<()> {
        let bytes = n.max(1) * ty.size();
        let cached = {
            let mut c = self.gpu.cache.lock().unwrap_or_else(|e| e.into_inner());
            match c.get(name) {
                Some((_, b)) if *b >= bytes => c.remove(name),
                _ => None,
            }
        };
        let (buf, bytes) = match cached {
            Some(x) => x,
            None => {
                // drop a smaller cached buffer of this field before allocating
                self.gpu
                    .cache
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .remove(name);
                (self.gpu.backend.alloc_zeroed(bytes)?, bytes)
            }
        };
        let a = self.gpu.backend.addr(&buf);
        if !self.p.set_u64(name, a) {
            return Err(Error::Numerical(format!(
                "internal: no address field {name}"
            )));
        }
        self.bufs.insert(name, (buf, bytes));
        Ok(())
    }

    /// Make sure field `name` has room for `n` elements (contents undefined).
    fn ensure(&mut self, name: &'static str, n: usize, ty: Ty) -> Result<()> {
        match self.bufs.get(name) {
            Some((_, bytes)) if *bytes >= n.max(1) * ty.size() => Ok(()),
            _ => self.alloc(name, n, ty),
        }
    }

    fn put<T: Pod>(&mut self, name: &'static str, v: &[T]) -> Result<()> {
        let ty = if std::mem::size_of::<T>() == 8 {
            Ty::F64
        } else {
            Ty::U32
        };
        let needs = match self.bufs.get(name) {
            Some((_, bytes)) => *bytes < std::mem::size_of_val(v),
            None => true,
        };
        if needs {
            self.alloc(name, v.len(), ty)?;
        }
        let (buf, _) = self.bufs.get_mut(name).expect("allocated");
        self.gpu.backend.write(buf, bytes_of(v))
    }

    fn get<T: Pod>(&self, name: &'static str, n: usize) -> Result<Vec<T>> {
        let (buf, bytes) = self
            .bufs
            .get(name)
            .ok_or_else(|| Error::Numerical(format!("internal: no buffer {name}")))?;
        if n * std::mem::size_of::<T>() > *bytes {
            return Err(Error::Numerical(format!(
                "internal: buffer {name} is too small"
            )));
        }
        let mut out = vec![T::default(); n];
        self.gpu.backend.read(buf, bytes_of_mut(&mut out))?;
        Ok(out)
    }

    fn launch(&mut self, k: Kernel, n: usize) -> Result<()> {
        if n == 0 {
            return Ok(());
        }
        self.p.n_threads = n as u64;
        self.gpu.backend.launch(k, n as u64, &self.p)
    }

    fn members(&mut self, ms: usize, fit: bool, hess: bool) -> Result<()> {
        self.p.ms = ms as u64;
        for (name, n, ty) in member_arrays(&self.gpu.dm, fit, hess) {
            self.alloc(name, n * ms, ty)?;
        }
        self.alloc("counter", 1, Ty::U32)
    }

    /// Upload datasets (main, aux, constant), interleaved by dataset.
    fn datasets(&mut self, data: &[&Dataset]) -> Result<()> {
        let nd = data.len();
        let dm = &self.gpu.dm;
        let mut main = vec![0.0; dm.n_main * nd];
        let mut aux = vec![0.0; dm.n_aux * nd];
        for (k, d) in data.iter().enumerate() {
            if d.main.len() != dm.n_main || d.aux.len() != dm.n_aux {
                return Err(Error::input(format!(
                    "dataset {k} has {} main and {} aux entries, the model {} and {}",
                    d.main.len(),
                    d.aux.len(),
                    dm.n_main,
                    dm.n_aux
                )));
            }
            for b in 0..dm.n_main {
                main[b * nd + k] = d.main[b];
            }
            for a in 0..dm.n_aux {
                aux[a * nd + k] = d.aux[a];
            }
        }
        let cst: Vec<f64> = data.iter().map(|d| d.constant).collect();
        self.p.nd = nd as u64;
        self.put("data_main", &main)?;
        self.put("data_aux", &aux)?;
        self.put("data_const", &cst)
    }

    /// Upload fit specifications.
    fn specs(&mut self, specs: &[&FitSpec]) -> Result<()> {
        let p = self.gpu.dm.n_pars;
        let mut fixed = Vec::with_capacity(specs.len() * p);
        let mut lo = Vec::with_capacity(specs.len() * p);
        let mut hi = Vec::with_capacity(specs.len() * p);
        let mut init = Vec::with_capacity(specs.len() * p);
        let mut all = Vec::with_capacity(specs.len());
        for (k, s) in specs.iter().enumerate() {
            if s.init.len() != p || s.fixed.len() != p || s.bounds.len() != p {
                return Err(Error::input(format!(
                    "fit specification {k} does not have {p} parameters"
                )));
            }
            fixed.extend(s.fixed.iter().map(|&f| f as u32));
            lo.extend(s.bounds.iter().map(|b| b.0));
            hi.extend(s.bounds.iter().map(|b| b.1));
            init.extend_from_slice(&s.init);
            all.push(s.fixed.iter().all(|&f| f) as u32);
        }
        self.put("spec_fixed", &fixed)?;
        self.put("spec_lo", &lo)?;
        self.put("spec_hi", &hi)?;
        self.put("spec_init", &init)?;
        self.put("spec_allfixed", &all)
    }

    /// Run minimiser iterations on members `0..n` until all have finished.
    fn run_fits(&mut self, n: usize, max_iter: usize) -> Result<()> {
        // an iteration's step search may span several launches
        let per_iter = MAX_ATTEMPTS.div_ceil(self.p.attempts_per_launch.max(1) as usize);
        let limit = (2 * max_iter + 16) * per_iter + 8 * CHECK_EVERY;
        let mut launches = 0;
        loop {
            for _ in 0..CHECK_EVERY {
                self.launch(Kernel::FitIterate, n)?;
            }
            self.gpu
                .fit_launches
                .fetch_add(CHECK_EVERY as u64, std::sync::atomic::Ordering::Relaxed);
            launches += CHECK_EVERY;
            if self.active(n)? == 0 {
                return Ok(());
            }
            if launches > limit {
                return Err(Error::Numerical(format!(
                    "GPU fits still running after {launches} iterations (limit {max_iter})"
                )));
            }
        }
    }

    /// Unfinished members among `0..n`.
    fn active(&mut self, n: usize) -> Result<u32> {
        self.put("counter", &[0u32])?;
        self.launch(Kernel::CountActive, n)?;
        Ok(self.get::<u32>("counter", 1)?[0])
    }
}

fn status_of(code: u32) -> Result<FitStatus> {
    Ok(match code {
        0 => FitStatus::Converged,
        1 => FitStatus::NothingToFit,
        2 => FitStatus::MaxIterations,
        3 => FitStatus::NonFiniteStart,
        4 => FitStatus::Stalled,
        5 => FitStatus::OutsideDomain,
        other => {
            return Err(Error::Numerical(format!(
                "GPU returned an unknown fit status {other}"
            )));
        }
    })
}

/// Fixed bytes per toy batch besides the members (datasets, generator, records).
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
            if !base.set_u64(name, backend.addr(&buf)) {
                return Err(Error::Numerical(format!(
                    "internal: no address field {name}"
                )));
            }
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

    /// Members that fit in device memory at once (half the free memory), at most `want`.
    fn capacity(&self, want: usize, fit: bool, hess: bool) -> usize {
        let per = member_bytes(&self.dm, fit, hess).max(1);
        let cached: usize = self
            .cache
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .map(|(_, b)| *b)
            .sum();
        let free = self.backend.free_memory().unwrap_or(8 << 30) + cached;
        let by_mem = (free / 2) / per;
        want.min(by_mem).min(self.max_members).max(MIN_MEMBERS)
    }

    /// Time the evaluation kernel alone on up to `t` members (as many as fit
    /// in memory) at `theta`, without transfers: members, wall seconds of
    /// the timed launches (after a warm-up), and their number.
    pub fn time_eval_kernel(
        &self,
        theta: &[f64],
        data: &Dataset,
        mode: EvalMode,
        t: usize,
    ) -> Result<(usize, f64, usize)> {
        let p = self.dm.n_pars;
        let n = self.capacity(t.max(1), false, mode.hess());
        let mut w = Work::new(self);
        w.members(n, false, mode.hess())?;
        w.p.eval_mode = mode.code();
        w.datasets(&[data])?;
        let th: Vec<f64> = (0..p)
            .flat_map(|i| std::iter::repeat_n(theta[i], n))
            .collect();
        w.put("ev_theta", &th)?;
        w.put("mb_data", &vec![0u32; n])?;
        w.launch(Kernel::Eval, n)?;
        self.backend.synchronize()?;
        let reps = (1_000_000 / n).clamp(3, 20);
        let t0 = std::time::Instant::now();
        for _ in 0..reps {
            w.launch(Kernel::Eval, n)?;
        }
        self.backend.synchronize()?;
        Ok((n, t0.elapsed().as_secs_f64(), reps))
    }

    /// twice_nll (and gradient, Hessian) at `thetas` (row-major `T x P`), one
    /// dataset for all members or one per member.
    pub fn eval_batch(&self, thetas: &[f64], data: &[&Dataset], mode: EvalMode) -> Result<EvalOut> {
        let p = self.dm.n_pars;
        let t = crate::device::batch_members(p, thetas.len(), data.len())?;
        let mut out = EvalOut {
            f: Vec::with_capacity(t),
            grad: (mode != EvalMode::Value).then(|| Vec::with_capacity(t * p)),
            hess: mode.hess().then(|| Vec::with_capacity(t * self.dm.n_hess)),
        };
        if t == 0 {
            return Ok(out);
        }
        let ms = self.capacity(t, false, mode.hess());
        let mut w = Work::new(self);
        w.members(ms, false, mode.hess())?;
        w.p.eval_mode = mode.code();
        if data.len() == 1 {
            w.datasets(data)?;
        }
        let mut start = 0;
        while start < t {
            let n = (t - start).min(ms);
            let mut th = vec![0.0; p * ms];
            for k in 0..n {
                for i in 0..p {
                    th[i * ms + k] = thetas[(start + k) * p + i];
                }
            }
            w.put("ev_theta", &th)?;
            let idx: Vec<u32> = if data.len() == 1 {
                vec![0; n]
            } else {
                w.datasets(&data[start..start + n])?;
                (0..n as u32).collect()
            };
            w.put("mb_data", &idx)?;
            w.launch(Kernel::Eval, n)?;
            out.f.extend_from_slice(&w.get::<f64>("ev_f", n)?);
            if let Some(g) = out.grad.as_mut() {
                let gd = w.get::<f64>("st_g", p * ms)?;
                for k in 0..n {
                    g.extend((0..p).map(|i| gd[i * ms + k]));
                }
            }
            if let Some(h) = out.hess.as_mut() {
                let nh = self.dm.n_hess;
                let hd = w.get::<f64>("st_h", nh * ms)?;
                for k in 0..n {
                    h.extend((0..nh).map(|e| hd[e * ms + k]));
                }
            }
            start += n;
        }
        Ok(out)
    }

    /// Fit a batch of problems as [`crate::fit::fit_batch`] does: `data` holds
    /// one dataset for all members or one per member. Covariances (when
    /// `opts.covariance`) are computed on the host from the exact Hessian the
    /// device leaves at each minimum.
    pub fn fit_batch(
        &self,
        data: &[&Dataset],
        specs: &[FitSpec],
        opts: &FitOptions,
    ) -> Result<Vec<FitResult>> {
        let p = self.dm.n_pars;
        let t = specs.len();
        crate::fit::check_batch_data(data.len(), t)?;
        let mut results = Vec::with_capacity(t);
        if t == 0 {
            return Ok(results);
        }
        let ms = self.capacity(t, true, true);
        let mut w = Work::new(self);
        w.members(ms, true, true)?;
        w.p.max_iter = opts.max_iter as u64;
        w.p.attempts_per_launch = self.attempts_per_launch;
        w.p.edm_tol = opts.edm_tol;
        w.p.want_hess = opts.covariance as u64;
        w.p.robust = opts.robust as u64;
        if data.len() == 1 {
            w.datasets(data)?;
        }
        let mut start = 0;
        while start < t {
            let n = (t - start).min(ms);
            let chunk: Vec<&FitSpec> = specs[start..start + n].iter().collect();
            w.specs(&chunk)?;
            let idx: Vec<u32> = (0..n as u32).collect();
            w.put("mb_spec", &idx)?;
            if data.len() == 1 {
                w.put("mb_data", &vec![0u32; n])?;
            } else {
                w.datasets(&data[start..start + n])?;
                w.put("mb_data", &idx)?;
            }
            w.launch(Kernel::FitInit, n)?;
            w.run_fits(n, opts.max_iter)?;
            let x = w.get::<f64>("st_x", p * ms)?;
            let f = w.get::<f64>("mb_f", n)?;
            let edm = w.get::<f64>("mb_edm", n)?;
            let iter = w.get::<u32>("mb_iter", n)?;
            let evals = w.get::<u32>("mb_evals", n)?;
            let status = w.get::<u32>("mb_status", n)?;
            let hess = if opts.covariance {
                Some(w.get::<f64>("st_h", self.dm.n_hess * ms)?)
            } else {
                None
            };
            for k in 0..n {
                let spec = chunk[k];
                let xk: Vec<f64> = (0..p).map(|i| x[i * ms + k]).collect();
                let st = status_of(status[k])?;
                let mut cov = None;
                let mut not_pd = false;
                if let Some(h) = &hess
                    && f[k].is_finite()
                    && st != FitStatus::NonFiniteStart
                {
                    let hp: Vec<f64> = (0..self.dm.n_hess).map(|e| h[e * ms + k]).collect();
                    match covariance(&self.dm, &hp, &spec.fixed) {
                        Some(c) => cov = Some(c),
                        None => not_pd = true,
                    }
                }
                results.push(FitResult::assemble(
                    f[k],
                    xk,
                    cov,
                    &spec.fixed,
                    iter[k] as usize,
                    evals[k] as usize,
                    st,
                    edm[k],
                    not_pd,
                ));
            }
            start += n;
        }
        self.finish_stalled_on_host(data, specs, opts, &mut results);
        Ok(results)
    }

    /// The device runs the minimiser's Newton iteration and scoring runs; where
    /// that stalls the CPU minimiser escalates to its trust region
    /// (src/fit/trust.rs), which has no device version. Such members (rare)
    /// are refitted on the host, which gives exactly the CPU minimiser's result.
    fn finish_stalled_on_host(
        &self,
        data: &[&Dataset],
        specs: &[FitSpec],
        opts: &FitOptions,
        results: &mut [FitResult],
    ) {
        if !opts.robust {
            return;
        }
        let idx: Vec<usize> = (0..results.len())
            .filter(|&k| results[k].status == FitStatus::Stalled)
            .collect();
        if idx.is_empty() {
            return;
        }
        let d: Vec<&Dataset> = idx
            .iter()
            .map(|&k| if data.len() == 1 { data[0] } else { data[k] })
            .collect();
        let sp: Vec<FitSpec> = idx.iter().map(|&k| specs[k].clone()).collect();
        let again = crate::fit::fit_batch(&self.model, &d, &sp, opts);
        for (k, r) in idx.into_iter().zip(again) {
            results[k] = r;
        }
    }

    /// Toy datasets `toys` of stream `purp` drawn on the device at `pars`
    /// (downloaded; the toy runs keep them on the device).
    pub fn sample_toys(
        &self,
        m: &HistFactoryModel,
        pars: &[f64],
        seed: u64,
        purp: u32,
        toys: std::ops::Range<u32>,
    ) -> Result<Vec<Dataset>> {
        let n = toys.len();
        let mut w = Work::new(self);
        self.toy_data(&mut w, m, pars, seed, purp, toys.start, n)?;
        let all: Vec<usize> = (0..n).collect();
        self.download_toys(&w, &all, n)
    }

    /// Datasets `ks` of the `n` toys on the device (drawn by `toy_data`).
    fn download_toys(&self, w: &Work<'_, B>, ks: &[usize], n: usize) -> Result<Vec<Dataset>> {
        let (b, a) = (self.dm.n_main, self.dm.n_aux);
        let main = w.get::<f64>("data_main", b * n)?;
        let aux = w.get::<f64>("data_aux", a * n)?;
        let cst = w.get::<f64>("data_const", n)?;
        Ok(ks
            .iter()
            .map(|&k| Dataset {
                main: (0..b).map(|i| main[i * n + k]).collect(),
                aux: (0..a).map(|i| aux[i * n + k]).collect(),
                constant: cst[k],
            })
            .collect())
    }

    /// Upload the generator at `pars` and draw `n` toys starting at `toy0` on the device.
    #[allow(clippy::too_many_arguments)]
    fn toy_data(
        &self,
        w: &mut Work<'_, B>,
        m: &HistFactoryModel,
        pars: &[f64],
        seed: u64,
        purp: u32,
        toy0: u32,
        n: usize,
    ) -> Result<()> {
        if n == 0 {
            return Ok(());
        }
        let g = m.generator(pars);
        let mean: Vec<f64> = g.aux.iter().map(|a| a.0).collect();
        let sigma: Vec<f64> = g.aux.iter().map(|a| a.1.unwrap_or(0.0)).collect();
        let kind: Vec<u32> = g
            .aux
            .iter()
            .map(|a| if a.1.is_some() { 1 } else { 2 })
            .collect();
        w.put("gen_nu", &g.nu)?;
        w.put("gen_mean", &mean)?;
        w.put("gen_sigma", &sigma)?;
        w.put("gen_kind", &kind)?;
        let (b, a) = (self.dm.n_main, self.dm.n_aux);
        w.ensure("data_main", b * n, Ty::F64)?;
        w.ensure("data_aux", a * n, Ty::F64)?;
        w.ensure("data_const", n, Ty::F64)?;
        w.p.nd = n as u64;
        w.p.seed = seed;
        w.p.purpose = purp as u64;
        w.p.toy0 = toy0 as u64;
        w.p.n_toys = n as u64;
        w.launch(Kernel::ToySample, (b + a) * n)?;
        w.launch(Kernel::DataConst, n)
    }

    /// Draw toys `range` of stream `purp` at `pars` and fit each twice
    /// (free, POI fixed at `mu`) on the device; only the records come back.
    fn toy_records(
        &self,
        w: &mut Work<'_, B>,
        p: &Problem<HistFactoryModel>,
        pars: &[f64],
        c: &Chunk<'_>,
    ) -> Result<Vec<ToyRecord>> {
        let (kind, mu, opts, range) = (c.kind, c.mu, c.opts, c.range.clone());
        let n = range.len();
        self.toy_data(w, p.model, pars, c.seed, c.purp, range.start, n)?;
        w.p.kind = match kind {
            TestStat::Q0 => 0,
            TestStat::Q => 1,
            TestStat::QTilde => 2,
            TestStat::T => 3,
            TestStat::TTilde => 4,
        };
        w.p.mu = mu;
        w.p.poi = p.poi as u64;
        w.p.max_iter = opts.max_iter.min(self.toy_iter_cap) as u64;
        w.p.attempts_per_launch = self.attempts_per_launch;
        w.p.edm_tol = opts.edm_tol;
        w.p.want_hess = 0;
        w.p.robust = opts.robust as u64;
        w.launch(Kernel::ToySetup, 2 * n)?;
        let cap = opts.max_iter.min(self.toy_iter_cap);
        w.run_fits(2 * n, cap)?;
        w.launch(Kernel::ToyRestart, n)?;
        if w.active(2 * n)? > 0 {
            w.run_fits(2 * n, cap)?;
        }
        w.launch(Kernel::ToyFinalize, n)?;
        let stat = w.get::<f64>("tr_stat", n)?;
        let muhat = w.get::<f64>("tr_muhat", n)?;
        let ffree = w.get::<f64>("tr_ffree", n)?;
        let ffixed = w.get::<f64>("tr_ffixed", n)?;
        let sfree = w.get::<u32>("tr_sfree", n)?;
        let sfixed = w.get::<u32>("tr_sfixed", n)?;
        (0..n)
            .map(|k| {
                Ok(ToyRecord {
                    toy: range.start + k as u32,
                    stat: stat[k].is_finite().then_some(stat[k]),
                    mu_hat: muhat[k],
                    twice_nll_free: ffree[k],
                    twice_nll_fixed: ffixed[k],
                    status_free: status_of(sfree[k])?,
                    status_fixed: status_of(sfixed[k])?,
                })
            })
            .collect()
    }

    /// Toys fitted per batch on this device (two fits each).
    pub fn toy_batch(&self, want: usize) -> usize {
        (self.capacity(2 * want.max(1), true, true) / 2).max(1)
    }
}

/// Covariance `2 H^-1` over the non-fixed parameters from a packed Hessian
/// (as `fit::finish` computes it); `None` when it is not positive definite.
pub fn covariance(dm: &DeviceModel, hp: &[f64], fixed: &[bool]) -> Option<Vec<f64>> {
    let p = dm.n_pars;
    let nfix: Vec<usize> = (0..p).filter(|&i| !fixed[i]).collect();
    let n = nfix.len();
    if n == 0 {
        return Some(vec![0.0; p * p]);
    }
    let full = dm.unpack(hp);
    let mut chol = Chol::new(n);
    if !chol.factor(n, |a, b| full[nfix[a] * p + nfix[b]]) {
        return None;
    }
    let mut inv = vec![0.0; n * n];
    chol.inverse(&mut inv);
    let mut cov = vec![0.0; p * p];
    for a in 0..n {
        for b in 0..n {
            cov[nfix[a] * p + nfix[b]] = 2.0 * inv[a * n + b];
        }
    }
    Some(cov)
}

/// Generate and fit the toys of `settings` on the device, with the outputs
/// of [`crate::infer::toys::run_toys`]. The three fits on the observed data
/// that fix the generation points run on the CPU (single fits are faster
/// there); sampling, the toy fits, restarts and test statistics run on the
/// device, and only the per-toy records come back.
pub fn run_toys<B: Backend>(
    gpu: &Gpu<B>,
    p: &Problem<HistFactoryModel>,
    settings: &ToySettings,
    opts: &FitOptions,
    progress: &(dyn Fn(u64, u64) + Sync),
) -> Result<ToyRun> {
    let mut dev = GpuToys {
        gpu,
        p,
        w: Work::new(gpu),
        pars: Vec::new(),
        on_host: 0,
    };
    let run = drive_toys(p, settings, opts, progress, &mut dev)?;
    if dev.on_host > 0 {
        eprintln!(
            "note: {} toys had a fit that stalled or passed {} iterations on the GPU; \
             they were fitted again on the CPU, on the same toy data",
            dev.on_host, gpu.toy_iter_cap
        );
    }
    Ok(run)
}

/// Toys on the device: one set of work buffers for the whole run.
struct GpuToys<'a, 'm, B: Backend> {
    gpu: &'a Gpu<B>,
    p: &'a Problem<'m, HistFactoryModel>,
    w: Work<'a, B>,
    /// Parameters the toys of the current hypothesis are drawn at.
    pars: Vec<f64>,
    /// Toys whose fits were finished on the host.
    on_host: usize,
}

impl<B: Backend> ToyFitter for GpuToys<'_, '_, B> {
    fn start(&mut self, n: usize) -> Result<usize> {
        let batch = self.gpu.toy_batch(n);
        let w = &mut self.w;
        w.members(2 * batch, true, true)?;
        for name in [
            "tr_stat",
            "tr_muhat",
            "tr_ffree",
            "tr_ffixed",
            "sv_f",
            "sv_muhat",
        ] {
            w.alloc(name, batch, Ty::F64)?;
        }
        for name in ["tr_sfree", "tr_sfixed", "tr_restart", "sv_status"] {
            w.alloc(name, batch, Ty::U32)?;
        }
        Ok(batch)
    }

    fn hypothesis(&mut self, pars: &[f64], free: &FitSpec, fixed: &FitSpec) -> Result<()> {
        self.pars = pars.to_vec();
        self.w.specs(&[free, fixed])
    }

    fn fit(&mut self, c: &Chunk<'_>) -> Result<Vec<ToyRecord>> {
        let mut recs = self.gpu.toy_records(&mut self.w, self.p, &self.pars, c)?;
        // Toys with a fit that stalled on the device (the CPU minimiser
        // escalates to its trust region, which has no device version; see
        // `finish_stalled_on_host`) or that ran into the device's iteration
        // cap: the whole record again on the host, on the device's dataset.
        let capped = c.opts.max_iter > self.gpu.toy_iter_cap;
        let redo = |s: FitStatus| {
            (c.opts.robust && s == FitStatus::Stalled) || (capped && s == FitStatus::MaxIterations)
        };
        // q~ / t~ toys whose free fit is below mu = 0 need the fit at 0,
        // which the device does not run
        let idx: Vec<usize> = (0..recs.len())
            .filter(|&k| {
                redo(recs[k].status_free)
                    || redo(recs[k].status_fixed)
                    || c.kind.needs_fit_at_zero(recs[k].mu_hat)
            })
            .collect();
        if !idx.is_empty() {
            let data = self.gpu.download_toys(&self.w, &idx, recs.len())?;
            let toys: Vec<u32> = idx.iter().map(|&k| recs[k].toy).collect();
            let cpu = self.p.clone().with_fitter(&crate::fit::Cpu);
            let again = crate::infer::toys::records_for(&cpu, &toys, &data, c)?;
            for (k, r) in idx.into_iter().zip(again) {
                recs[k] = r;
                self.on_host += 1;
            }
        }
        Ok(recs)
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
