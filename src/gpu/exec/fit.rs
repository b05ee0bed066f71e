//! Batched fits on the device and the assembly of their results: fit
//! statuses, covariances from the Hessian the device leaves at each minimum,
//! and the host refit of members whose fit stalled on the device.

use super::work::{Work, member_of};
use super::{Backend, Gpu};
use crate::error::{Error, Result};
use crate::fit::{FitOptions, FitResult, FitSpec, FitStatus};
use crate::gpu::params::Kernel;
use crate::gpu::plan::DeviceModel;
use crate::model::Dataset;

/// The fit status of a device status code.
pub(super) fn status_of(code: u32) -> Result<FitStatus> {
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

impl<B: Backend> Gpu<B> {
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
        let (mut w, ms) = Work::batch(self, t, true, true, data)?;
        w.fit_settings(opts, opts.max_iter, opts.covariance);
        for start in (0..t).step_by(ms) {
            let n = (t - start).min(ms);
            let chunk: Vec<&FitSpec> = specs[start..start + n].iter().collect();
            w.specs(&chunk)?;
            let idx: Vec<u32> = (0..n as u32).collect();
            w.put("mb_spec", &idx)?;
            w.chunk_data(data, start, n)?;
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
                let xk: Vec<f64> = member_of(&x, p, ms, k).collect();
                let st = status_of(status[k])?;
                let mut cov = None;
                let mut not_pd = false;
                if let Some(h) = &hess
                    && f[k].is_finite()
                    && st != FitStatus::NonFiniteStart
                {
                    let hp: Vec<f64> = member_of(h, self.dm.n_hess, ms, k).collect();
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
        }
        self.finish_stalled_on_host(data, specs, opts, &mut results);
        Ok(results)
    }

    /// The device runs the minimiser's Newton iteration and scoring runs; where
    /// that stalls the CPU minimiser escalates to its trust region
    /// (src/fit/trust.rs), and where it stalls or reaches the iteration limit
    /// it restarts from the suggested start (`FitResult::restarted`); neither
    /// has a device version. Such members (rare) are refitted on the host,
    /// which gives exactly the CPU minimiser's result.
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
            .filter(|&k| {
                matches!(
                    results[k].status,
                    FitStatus::Stalled | FitStatus::MaxIterations
                )
            })
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
}

/// Covariance `2 H^-1` over the non-fixed parameters from a packed Hessian
/// (as `fit::finish` computes it); `None` when it is not positive definite.
pub fn covariance(dm: &DeviceModel, hp: &[f64], fixed: &[bool]) -> Option<Vec<f64>> {
    crate::fit::covariance::dense_covariance(&dm.unpack(hp), dm.n_pars, |i| fixed[i])
}
