//! Fits whose results are differentiable with respect to the templates, by
//! implicit differentiation.
//!
//! At a minimum `theta_hat(phi)` of `twice_nll(theta, phi)` the free
//! components satisfy `g_f(theta_hat, phi) = 0`, so
//! `d theta_hat_f / d phi = -H_ff^-1 d g_f / d phi` with the exact Hessian `H`
//! (from the fused kernel) of the free block. Parameters that are fixed, or
//! held at a bound at the minimum, do not move (their rows are zero): this is
//! the one-sided derivative for a parameter pressed against its bound, and
//! the exact one for a bound that stays active under small changes of `phi`.
//!
//! [`theta_tensor`] returns `theta_hat` as a tensor whose *value* is the fit
//! result and whose *gradient* with respect to the templates (and anything
//! upstream of them, such as network weights) is this implicit derivative:
//! `theta_hat + (T - T.detach())` with `T = -H_ff^-1 g_f(theta_hat, phi)` (the
//! numeric `H_ff^-1` a constant). Any loss built from it backpropagates
//! through the fit with one reverse pass.

use super::graph::{DataTensors, TemplateGraph};
use super::spec::Templates;
use crate::error::{Error, Result};
use crate::fit::linalg::Chol;
use crate::fit::{FitOptions, FitResult, FitSpec};
use crate::model::{Dataset, HistFactoryModel, Likelihood};
use candle_core::Tensor;

/// Options of the fits inside a loss.
pub fn fit_options() -> FitOptions {
    FitOptions {
        covariance: false,
        edm_tol: 1e-14,
        ..Default::default()
    }
}

/// Fit `spec` on `data`; an error when the fit does not converge.
///
/// The minimum is polished with up to two Newton steps on the moving
/// parameters (exact Hessian), so that the gradient left there is at the
/// rounding level: the envelope theorem used for test statistics and the
/// implicit derivative are then exact to rounding, not to the fit tolerance.
pub fn fit(m: &HistFactoryModel, data: &Dataset, spec: &FitSpec, what: &str) -> Result<FitResult> {
    let mut r = crate::fit::fit(m, data, spec, &fit_options());
    if !r.converged {
        return Err(Error::Numerical(format!(
            "{what} did not converge ({}); twice_nll = {}",
            r.status.reason(),
            r.twice_nll
        )));
    }
    polish(m, data, spec, &mut r);
    Ok(r)
}

fn polish(m: &HistFactoryModel, data: &Dataset, spec: &FitSpec, r: &mut FitResult) {
    let p = m.n_pars();
    let mut scratch = m.scratch();
    let mut g = vec![0.0; p];
    let mut h = vec![0.0; p * p];
    for _ in 0..2 {
        let mv = moving(spec, &r.x);
        let free: Vec<usize> = (0..p).filter(|&i| mv[i]).collect();
        if free.is_empty() {
            return;
        }
        let f0 = Likelihood::eval(m, &r.x, data, &mut scratch, Some(&mut g), Some(&mut h));
        let f = free.len();
        let mut chol = Chol::new(f);
        if !f0.is_finite() || !chol.factor(f, |i, j| h[free[i] * p + free[j]]) {
            return;
        }
        let mut step: Vec<f64> = free.iter().map(|&i| g[i]).collect();
        chol.solve(&mut step);
        let mut x = r.x.clone();
        for (k, &i) in free.iter().enumerate() {
            x[i] -= step[k];
            let (lo, hi) = spec.bounds[i];
            if !(x[i] > lo && x[i] < hi) {
                return;
            }
        }
        let f1 = Likelihood::eval(m, &x, data, &mut scratch, None, None);
        // accept unless twice_nll rises beyond rounding: a step rejected at the
        // rounding level in one fit and taken in a neighbouring one would make
        // the fitted point jump with the templates
        if !(f1 <= f0 + 1e-12 * f0.abs().max(1.0)) {
            return;
        }
        r.x = x;
        r.twice_nll = f1;
    }
}

/// Which parameters the implicit derivative moves: not fixed and not at a bound.
pub fn moving(spec: &FitSpec, x: &[f64]) -> Vec<bool> {
    (0..x.len())
        .map(|i| {
            let (lo, hi) = spec.bounds[i];
            let tol = 1e-9 * (1.0 + x[i].abs());
            !spec.fixed[i] && x[i] - lo > tol && hi - x[i] > tol
        })
        .collect()
}

/// The inverse of the exact Hessian's block over `free` at `x` (row-major, F x F).
pub fn inverse_hessian_block(
    m: &HistFactoryModel,
    data: &Dataset,
    x: &[f64],
    free: &[usize],
) -> Result<Vec<f64>> {
    let p = m.n_pars();
    let mut h = vec![0.0; p * p];
    let mut scratch = m.scratch();
    let v = Likelihood::eval(m, x, data, &mut scratch, None, Some(&mut h));
    if !v.is_finite() {
        return Err(Error::Numerical(format!(
            "twice_nll is not finite at the fitted point ({v})"
        )));
    }
    let f = free.len();
    let mut chol = Chol::new(f.max(1));
    if !chol.factor(f, |i, j| h[free[i] * p + free[j]]) {
        return Err(Error::Numerical(
            "the Hessian of the free parameters at the fitted point is not positive definite; \
             the implicit derivative does not exist"
                .into(),
        ));
    }
    let mut inv = vec![0.0; f * f];
    chol.inverse(&mut inv);
    Ok(inv)
}

/// `theta_hat` as a tensor [P] whose gradient is the implicit derivative of the fit.
///
/// `data_t` must be the tensors of the data the fit ran on (their dependence
/// on the templates is part of the derivative); `data` their numeric copy.
#[allow(clippy::too_many_arguments)]
pub fn theta_tensor(
    graph: &TemplateGraph,
    m: &HistFactoryModel,
    tp: &Templates,
    data_t: &DataTensors,
    data: &Dataset,
    fit: &FitResult,
    spec: &FitSpec,
) -> Result<Tensor> {
    let p = graph.n_pars();
    let x = &fit.x;
    let mv = moving(spec, x);
    let free: Vec<usize> = (0..p).filter(|&i| mv[i]).collect();
    let dev = candle_core::Device::Cpu;
    let base = Tensor::from_slice(x, p, &dev)?;
    if free.is_empty() {
        return Ok(base);
    }
    let inv = inverse_hessian_block(m, data, x, &free)?;
    let f = free.len();
    let g = graph.grad(x, tp, data_t)?;
    let idx = Tensor::from_vec(free.iter().map(|&i| i as u32).collect::<Vec<_>>(), f, &dev)?;
    let gf = g.index_select(&idx, 0)?;
    let minv = (Tensor::from_vec(inv, (f, f), &dev)? * -1.0)?;
    let t = minv.matmul(&gf.unsqueeze(1)?)?.squeeze(1)?;
    let delta = (&t - t.detach())?;
    let full = Tensor::zeros(p, candle_core::DType::F64, &dev)?.index_add(&idx, &delta, 0)?;
    Ok((base + full)?)
}
