//! Pre-fit widths and pulls of the nuisance parameters.

use super::PostFit;
use crate::model::ModelInfo;

/// The pull of one parameter.
#[derive(Debug, Clone)]
pub struct Pull {
    /// Parameter index.
    pub par: usize,
    /// Best-fit value.
    pub value: f64,
    /// Post-fit uncertainty (0 when fixed).
    pub error: f64,
    /// Pre-fit width (0 for unconstrained or fixed parameters).
    pub prefit_sigma: f64,
    /// Centre of the constraint, theta_0 (the aux datum for Gaussians, aux/tau for Poissons).
    pub center: Option<f64>,
    /// `(value - theta_0) / prefit_sigma`, when the parameter is constrained and free.
    pub pull: Option<f64>,
    /// `error / prefit_sigma`, when the pull is defined.
    pub pull_error: Option<f64>,
    /// Constraint type: "normal", "poisson", ... or "none".
    pub constraint: &'static str,
    /// Held fixed in the fit.
    pub fixed: bool,
}

/// Pre-fit widths as cabinetry defines them: the constraint's width, 0 for
/// unconstrained parameters and for parameters fixed in `fixed`.
pub fn prefit_sigmas<M: ModelInfo>(model: &M, fixed: &[bool]) -> Vec<f64> {
    (0..model.n_pars())
        .map(|i| if fixed[i] { 0.0 } else { model.prefit_sigma(i) })
        .collect()
}

/// Centre theta_0 of each parameter's constraint on the observed aux data
/// (`None` for unconstrained parameters).
pub fn constraint_centers<M: ModelInfo>(model: &M) -> Vec<Option<f64>> {
    (0..model.n_pars())
        .map(|i| model.constraint_info(i).map(|c| c.center))
        .collect()
}

/// Pulls of every parameter at the best fit (in model order).
pub fn pulls<M: ModelInfo>(model: &M, post: &PostFit) -> Vec<Pull> {
    let sig = prefit_sigmas(model, &post.fixed);
    let centers = constraint_centers(model);
    (0..model.n_pars())
        .map(|i| {
            let error = post.error(i);
            let (pull, pull_error) = match centers[i] {
                Some(c) if sig[i] > 0.0 => (Some((post.x[i] - c) / sig[i]), Some(error / sig[i])),
                _ => (None, None),
            };
            Pull {
                par: i,
                value: post.x[i],
                error,
                prefit_sigma: sig[i],
                center: centers[i],
                pull,
                pull_error,
                constraint: model.constraint_info(i).map_or("none", |c| c.kind),
                fixed: post.fixed[i],
            }
        })
        .collect()
}
