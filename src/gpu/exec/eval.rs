//! Batched likelihood evaluations on the device (twice_nll, gradient,
//! Hessian or Fisher information at given points), and a timing of the
//! evaluation kernel alone for the selftest's benchmark.

use super::work::{Work, member_of};
use super::{Backend, Gpu};
use crate::error::Result;
use crate::gpu::params::Kernel;
use crate::model::Dataset;

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
    ///
    /// [`DeviceModel::unpack`]: crate::gpu::plan::DeviceModel::unpack
    pub hess: Option<Vec<f64>>,
}

impl<B: Backend> Gpu<B> {
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
        let (mut w, ms) = Work::batch(self, t, false, mode.hess(), data)?;
        w.p.eval_mode = mode.code();
        for start in (0..t).step_by(ms) {
            let n = (t - start).min(ms);
            let mut th = vec![0.0; p * ms];
            for k in 0..n {
                for i in 0..p {
                    th[i * ms + k] = thetas[(start + k) * p + i];
                }
            }
            w.put("ev_theta", &th)?;
            w.chunk_data(data, start, n)?;
            w.launch(Kernel::Eval, n)?;
            out.f.extend_from_slice(&w.get::<f64>("ev_f", n)?);
            if let Some(g) = out.grad.as_mut() {
                let gd = w.get::<f64>("st_g", p * ms)?;
                for k in 0..n {
                    g.extend(member_of(&gd, p, ms, k));
                }
            }
            if let Some(h) = out.hess.as_mut() {
                let nh = self.dm.n_hess;
                let hd = w.get::<f64>("st_h", nh * ms)?;
                for k in 0..n {
                    h.extend(member_of(&hd, nh, ms, k));
                }
            }
        }
        Ok(out)
    }
}
