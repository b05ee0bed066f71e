//! What users read a fit from: pulls, correlations, impacts on the POI and the
//! refit ranking, pre- and post-fit yields, and plots of all of them.
//!
//! Conventions follow cabinetry (see `docs/report.md`):
//! - pre-fit width: 1 for normsys/histosys, sigma_b for staterror,
//!   sqrt(1/tau_b) for shapesys, the lumi sigma; 0 for unconstrained or fixed;
//! - pull `(theta_hat - theta_0) / sigma_prefit` with error `sigma_postfit / sigma_prefit`;
//! - covariance `C = 2 H^-1` (H: exact Hessian of twice_nll at the best fit)
//!   over all non-fixed parameters, including any that sit at a bound.
//!
//! Everything that only needs a likelihood (post-fit covariance, Hessian
//! impacts, refit ranking) is generic over [`Likelihood`]; pulls and yields
//! need the HistFactory structure.

pub mod impacts;
pub mod plot;
mod plot_corr;
pub mod plot_infer;
mod plot_ranking;
mod plot_text;
pub mod plot_yields;
pub mod pulls;
pub mod yields;

pub use impacts::{
    HessianImpact, ImpactRow, RefitImpact, RefitOptions, RefitPlan, RefitShift, ShiftKind,
    hessian_impacts, rank, refit_impacts, refit_impacts_with,
};
pub use pulls::{Pull, constraint_centers, prefit_sigmas, pulls};
pub use yields::{ChannelYields, SampleYields, Yields, postfit_yields, prefit_yields, yields};

use crate::error::{Error, Result};
use crate::fit::linalg::Chol;
use crate::fit::{self, FitOptions, FitSpec, FitStatus};
use crate::model::Likelihood;

/// Convergence tolerance (edm, twice_nll units) of the best fit that reports
/// start from: tighter than the minimiser's default, so that a refit of a
/// parameter without influence returns the best fit itself (impact 0, not the
/// best fit's own imprecision). The minimiser's floor (rounding noise of
/// twice_nll) applies when it is larger. Refits use the default tolerance.
pub const EDM_TOL: f64 = 1e-16;

/// Minimiser settings of the best fit that reports start from.
pub fn best_fit_options() -> FitOptions {
    FitOptions {
        edm_tol: EDM_TOL,
        ..FitOptions::default()
    }
}

/// A best fit with the exact Hessian and covariance there: the starting point of every report.
#[derive(Debug, Clone)]
pub struct PostFit {
    /// Best-fit parameters.
    pub x: Vec<f64>,
    /// twice_nll at `x`.
    pub twice_nll: f64,
    /// Parameters held fixed in the fit.
    pub fixed: Vec<bool>,
    /// Exact Hessian of twice_nll at `x` (row-major P x P, all parameters).
    pub hessian: Vec<f64>,
    /// Covariance `2 H^-1` over the non-fixed parameters (row-major P x P; zero rows for fixed ones).
    pub covariance: Vec<f64>,
    /// Whether the minimiser reported a minimum (true for a point given with [`PostFit::at`]).
    pub converged: bool,
    /// Why the minimiser stopped.
    pub status: FitStatus,
    /// The fit problem (bounds, fixed flags) the point solves; refits start from it.
    pub spec: FitSpec,
}

impl PostFit {
    /// Fit `spec` on `data` and compute the Hessian and covariance at the minimum.
    ///
    /// A fit that did not converge is returned with `converged == false` (callers
    /// report it); a Hessian that is not positive definite over the non-fixed
    /// parameters is an error, since no uncertainty is defined then.
    pub fn fit<L: Likelihood>(
        model: &L,
        data: &L::Data,
        spec: &FitSpec,
        opts: &FitOptions,
    ) -> Result<PostFit> {
        Self::fit_with(&fit::Cpu, model, data, spec, opts)
    }

    /// [`PostFit::fit`] with the fit run by `fitter` (e.g. a GPU session).
    pub fn fit_with<L: Likelihood>(
        fitter: &dyn fit::BatchFitter<L>,
        model: &L,
        data: &L::Data,
        spec: &FitSpec,
        opts: &FitOptions,
    ) -> Result<PostFit> {
        let r = fitter.fit(model, data, spec, opts)?;
        if !r.twice_nll.is_finite() {
            return Err(Error::Numerical(format!(
                "the best fit failed: {} (twice_nll = {})",
                r.status.reason(),
                r.twice_nll
            )));
        }
        let mut pf = PostFit::at(model, data, spec, r.x)?;
        pf.converged = r.converged;
        pf.status = r.status;
        Ok(pf)
    }

    /// Hessian and covariance at a given point `x` (e.g. a reference best fit).
    pub fn at<L: Likelihood>(
        model: &L,
        data: &L::Data,
        spec: &FitSpec,
        x: Vec<f64>,
    ) -> Result<PostFit> {
        let p = model.n_pars();
        if x.len() != p {
            return Err(Error::input(format!(
                "best-fit vector has {} entries, the model has {p} parameters",
                x.len()
            )));
        }
        let mut s = model.scratch();
        let mut g = vec![0.0; p];
        let mut h = vec![0.0; p * p];
        let f = model.eval(&x, data, &mut s, Some(&mut g), Some(&mut h));
        if !f.is_finite() {
            return Err(Error::Numerical(
                "twice_nll is not finite at the best fit".to_string(),
            ));
        }
        let free: Vec<usize> = (0..p).filter(|&i| !spec.fixed[i]).collect();
        let n = free.len();
        let mut cov = vec![0.0; p * p];
        if n > 0 {
            let mut chol = Chol::new(n);
            if !chol.factor(n, |a, b| h[free[a] * p + free[b]]) {
                let flat: Vec<&str> = free
                    .iter()
                    .filter(|&&i| !(h[i * p + i] > 0.0))
                    .map(|&i| model.par_names()[i].as_str())
                    .take(5)
                    .collect();
                let hint = if flat.is_empty() {
                    String::new()
                } else {
                    format!(
                        " (no curvature along {}; fix such parameters or check the model)",
                        flat.join(", ")
                    )
                };
                return Err(Error::Numerical(format!(
                    "the Hessian of twice_nll at the best fit is not positive definite: \
                     no covariance, uncertainties or impacts{hint}"
                )));
            }
            let mut inv = vec![0.0; n * n];
            chol.inverse(&mut inv);
            for a in 0..n {
                for b in 0..n {
                    cov[free[a] * p + free[b]] = 2.0 * inv[a * n + b];
                }
            }
        }
        Ok(PostFit {
            x,
            twice_nll: f,
            fixed: spec.fixed.clone(),
            hessian: h,
            covariance: cov,
            converged: true,
            status: FitStatus::Converged,
            spec: spec.clone(),
        })
    }

    /// Number of parameters.
    pub fn n_pars(&self) -> usize {
        self.x.len()
    }

    /// Post-fit uncertainty `sqrt(C[i, i])` (0 for fixed parameters).
    pub fn error(&self, i: usize) -> f64 {
        let p = self.n_pars();
        self.covariance[i * p + i].max(0.0).sqrt()
    }

    /// All post-fit uncertainties.
    pub fn errors(&self) -> Vec<f64> {
        (0..self.n_pars()).map(|i| self.error(i)).collect()
    }

    /// Correlation matrix (row-major; zero rows and columns for fixed parameters).
    pub fn correlation(&self) -> Vec<f64> {
        let p = self.n_pars();
        let e = self.errors();
        let mut r = vec![0.0; p * p];
        for i in 0..p {
            for j in 0..p {
                let d = e[i] * e[j];
                r[i * p + j] = if d > 0.0 {
                    self.covariance[i * p + j] / d
                } else {
                    0.0
                };
            }
        }
        r
    }

    /// True when parameter `i` sits at one of its bounds.
    pub fn at_bound(&self, i: usize) -> bool {
        let (lo, hi) = self.spec.bounds[i];
        self.x[i] <= lo || self.x[i] >= hi
    }
}

/// Parameters whose correlation with some other parameter reaches `threshold` in
/// size (the rest are pruned from correlation plots); fixed parameters never.
pub fn correlated_parameters(post: &PostFit, corr: &[f64], threshold: f64) -> Vec<usize> {
    let p = post.n_pars();
    (0..p)
        .filter(|&i| !post.fixed[i] && post.error(i) > 0.0)
        .filter(|&i| {
            threshold <= 0.0
                || (0..p).any(|j| j != i && !post.fixed[j] && corr[i * p + j].abs() >= threshold)
        })
        .collect()
}
