//! Device buffers of one batch: the per-member array layout, the buffer
//! cache shared between calls, uploads of datasets and fit specifications,
//! and the launch loop of the minimiser.

use super::{Backend, CHECK_EVERY, Gpu, MAX_ATTEMPTS};
use crate::error::{Error, Result};
use crate::fit::{FitOptions, FitSpec};
use crate::gpu::params::{GfParams, Kernel};
use crate::gpu::plan::DeviceModel;
use crate::model::Dataset;
use std::collections::HashMap;

/// Plain-old-data element types of device arrays.
pub trait Pod: Copy + Default + 'static {}
impl Pod for f64 {}
impl Pod for u32 {}

pub(super) fn bytes_of<T: Pod>(v: &[T]) -> &[u8] {
    // SAFETY: f64 and u32 have no padding and every bit pattern is valid.
    unsafe { std::slice::from_raw_parts(v.as_ptr() as *const u8, std::mem::size_of_val(v)) }
}

fn bytes_of_mut<T: Pod>(v: &mut [T]) -> &mut [u8] {
    // SAFETY: as above; the slice is exclusively borrowed.
    unsafe { std::slice::from_raw_parts_mut(v.as_mut_ptr() as *mut u8, std::mem::size_of_val(v)) }
}

/// Point the address field `name` of `p` at `addr`.
pub(super) fn set_addr(p: &mut GfParams, name: &str, addr: u64) -> Result<()> {
    if !p.set_u64(name, addr) {
        return Err(Error::Numerical(format!(
            "internal: no address field {name}"
        )));
    }
    Ok(())
}

/// Elements `0..len` of member `k` in an array interleaved over `ms` members.
pub(super) fn member_of<T: Copy>(
    v: &[T],
    len: usize,
    ms: usize,
    k: usize,
) -> impl Iterator<Item = T> {
    (0..len).map(move |i| v[i * ms + k])
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Ty {
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

/// Buffers of one batch (named by their `GfParams` field).
pub(super) struct Work<'a, B: Backend> {
    gpu: &'a Gpu<B>,
    /// The parameter block of the next launch.
    pub(super) p: GfParams,
    bufs: HashMap<&'static str, (B::Buf, usize)>,
}

impl<B: Backend> Drop for Work<'_, B> {
    fn drop(&mut self) {
        let mut c = self.gpu.cache();
        for (name, v) in self.bufs.drain() {
            c.insert(name, v);
        }
    }
}

impl<'a, B: Backend> Work<'a, B> {
    pub(super) fn new(gpu: &'a Gpu<B>) -> Self {
        Work {
            gpu,
            p: gpu.base,
            bufs: HashMap::new(),
        }
    }

    /// Buffers for a batch of `t` members, run in chunks of as many as fit
    /// in memory (`fit`, `hess` as for [`member_bytes`]), with `data`
    /// uploaded when it is one dataset for all members (see `chunk_data`);
    /// the chunk size comes back too.
    pub(super) fn batch(
        gpu: &'a Gpu<B>,
        t: usize,
        fit: bool,
        hess: bool,
        data: &[&Dataset],
    ) -> Result<(Self, usize)> {
        let ms = gpu.capacity(t, fit, hess);
        let mut w = Work::new(gpu);
        w.members(ms, fit, hess)?;
        if data.len() == 1 {
            w.datasets(data)?;
        }
        Ok((w, ms))
    }

    /// Room for `n` elements for field `name`: a buffer of an earlier call
    /// when one is large enough (contents left over), else a new zeroed one.
    /// No kernel reads an entry that the same call did not write first.
    pub(super) fn alloc(&mut self, name: &'static str, n: usize, ty: Ty) -> Result<()> {
        let bytes = n.max(1) * ty.size();
        let cached = {
            let mut c = self.gpu.cache();
            match c.get(name) {
                Some((_, b)) if *b >= bytes => c.remove(name),
                _ => None,
            }
        };
        let (buf, bytes) = match cached {
            Some(x) => x,
            None => {
                // drop a smaller cached buffer of this field before allocating
                self.gpu.cache().remove(name);
                (self.gpu.backend.alloc_zeroed(bytes)?, bytes)
            }
        };
        set_addr(&mut self.p, name, self.gpu.backend.addr(&buf))?;
        self.bufs.insert(name, (buf, bytes));
        Ok(())
    }

    /// Make sure field `name` has room for `n` elements (contents undefined).
    pub(super) fn ensure(&mut self, name: &'static str, n: usize, ty: Ty) -> Result<()> {
        match self.bufs.get(name) {
            Some((_, bytes)) if *bytes >= n.max(1) * ty.size() => Ok(()),
            _ => self.alloc(name, n, ty),
        }
    }

    pub(super) fn put<T: Pod>(&mut self, name: &'static str, v: &[T]) -> Result<()> {
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

    pub(super) fn get<T: Pod>(&self, name: &'static str, n: usize) -> Result<Vec<T>> {
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

    pub(super) fn launch(&mut self, k: Kernel, n: usize) -> Result<()> {
        if n == 0 {
            return Ok(());
        }
        self.p.n_threads = n as u64;
        self.gpu.backend.launch(k, n as u64, &self.p)
    }

    pub(super) fn members(&mut self, ms: usize, fit: bool, hess: bool) -> Result<()> {
        self.p.ms = ms as u64;
        for (name, n, ty) in member_arrays(&self.gpu.dm, fit, hess) {
            self.alloc(name, n * ms, ty)?;
        }
        self.alloc("counter", 1, Ty::U32)
    }

    /// Upload datasets (main, aux, constant), interleaved by dataset.
    pub(super) fn datasets(&mut self, data: &[&Dataset]) -> Result<()> {
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

    /// Datasets of members `start..start + n` of a batch whose `data` holds
    /// one dataset for all members (uploaded once, before the first chunk)
    /// or one per member (uploaded with each chunk).
    pub(super) fn chunk_data(&mut self, data: &[&Dataset], start: usize, n: usize) -> Result<()> {
        let idx: Vec<u32> = if data.len() == 1 {
            vec![0; n]
        } else {
            self.datasets(&data[start..start + n])?;
            (0..n as u32).collect()
        };
        self.put("mb_data", &idx)
    }

    /// Upload fit specifications.
    pub(super) fn specs(&mut self, specs: &[&FitSpec]) -> Result<()> {
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

    /// Minimiser settings of the fits that follow: `opts` with at most
    /// `max_iter` iterations, the exact Hessian at the minimum when `want_hess`.
    pub(super) fn fit_settings(&mut self, opts: &FitOptions, max_iter: usize, want_hess: bool) {
        self.p.max_iter = max_iter as u64;
        self.p.attempts_per_launch = self.gpu.attempts_per_launch;
        self.p.edm_tol = opts.edm_tol;
        self.p.want_hess = want_hess as u64;
        self.p.robust = opts.robust as u64;
    }

    /// Run minimiser iterations on members `0..n` until all have finished.
    pub(super) fn run_fits(&mut self, n: usize, max_iter: usize) -> Result<()> {
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
    pub(super) fn active(&mut self, n: usize) -> Result<u32> {
        self.put("counter", &[0u32])?;
        self.launch(Kernel::CountActive, n)?;
        Ok(self.get::<u32>("counter", 1)?[0])
    }
}
