//! The covariance `2 H^-1` at a minimum: dense (Cholesky) for ordinary
//! models, and for large models from the block factorisation of the
//! Hessian (see [`super::block`]).

use super::block::BlockSolver;
use super::linalg::Chol;
use crate::model::HessianLayout;

/// The covariance `2 H^-1` over the parameters not `held` from the dense
/// row-major Hessian `full` (p x p; zeros in held rows and columns), by a
/// Cholesky factorisation; `None` where it is not positive definite.
pub fn dense_covariance(full: &[f64], p: usize, held: impl Fn(usize) -> bool) -> Option<Vec<f64>> {
    let nfix: Vec<usize> = (0..p).filter(|&i| !held(i)).collect();
    let n = nfix.len();
    let mut cov = vec![0.0; p * p];
    if n == 0 {
        return Some(cov);
    }
    let mut chol = Chol::new(n);
    if !chol.factor(n, |a, b| full[nfix[a] * p + nfix[b]]) {
        return None;
    }
    let mut inv = vec![0.0; n * n];
    chol.inverse(&mut inv);
    for a in 0..n {
        for b in 0..n {
            cov[nfix[a] * p + nfix[b]] = 2.0 * inv[a * n + b];
        }
    }
    Some(cov)
}

/// Models with at least this many free parameters, and local blocks, get
/// their covariance column by column from the block factorisation (cost
/// p^2 times the number of global parameters) instead of a dense inverse
/// (p^3: minutes and gigabytes at 10,000 staterror parameters).
pub(super) const BLOCK_COVARIANCE_MIN: usize = 500;

/// The covariance `2 H^-1` over the parameters not `held` (original order),
/// one row per solve with the block factorisation; rows in parallel, each
/// computed alone, so the result does not depend on the thread count.
/// `None` where the Hessian is not positive definite.
pub(super) fn block_covariance(
    lay: &HessianLayout,
    h: &[f64],
    held: &[bool],
    solver: &mut BlockSolver,
) -> Option<Vec<f64>> {
    use rayon::prelude::*;
    let p = lay.n;
    let free_new: Vec<bool> = (0..p).map(|a| !held[lay.perm[a]]).collect();
    if !solver.factor(lay, h, &free_new, 0.0) {
        return None;
    }
    let solver = &*solver;
    let mut cov = vec![0.0; p * p];
    cov.par_chunks_mut(p).enumerate().for_each_init(
        || (solver.clone(), vec![0.0; p]),
        |(s, r), (j, row)| {
            if held[j] {
                return;
            }
            r.fill(0.0);
            r[lay.inv[j]] = 1.0;
            s.solve(lay, h, r);
            for (i, c) in row.iter_mut().enumerate() {
                if !held[i] {
                    *c = 2.0 * r[lay.inv[i]];
                }
            }
        },
    );
    Some(cov)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fit::linalg::Chol;
    use crate::fit::{FitOptions, FitSpec, fit};
    use crate::model::Likelihood;

    /// The block path (601 parameters: 600 per-bin shapesys and mu) against
    /// the dense inverse of the same Hessian.
    #[test]
    fn block_covariance_equals_the_dense_inverse() {
        let m = crate::synthetic::shapesys_model(3, 200);
        let data = m.observed().clone();
        let spec = FitSpec::from_model(&m);
        let r = fit(&m, &data, &spec, &FitOptions::default());
        assert!(r.converged);
        let p = m.n_pars();
        assert!(p >= BLOCK_COVARIANCE_MIN && m.layout().n_global < p);
        let cov = r.covariance.expect("a covariance");
        let lay = m.layout();
        let mut s = m.scratch();
        let (mut g, mut hb) = (vec![0.0; p], vec![0.0; lay.n_packed]);
        m.eval_block(&r.x, &data, &mut s, Some(&mut g), Some(&mut hb), false);
        let mut full = vec![0.0; p * p];
        lay.expand(&hb, &mut full);
        let mut chol = Chol::new(p);
        assert!(chol.factor(p, |a, b| full[a * p + b]));
        let mut inv = vec![0.0; p * p];
        chol.inverse(&mut inv);
        let mut worst = 0.0f64;
        for i in 0..p {
            for j in 0..p {
                let d = 2.0 * inv[i * p + j];
                let scale = (cov[i * p + i] * cov[j * p + j]).sqrt();
                worst = worst.max((cov[i * p + j] - d).abs() / scale);
            }
        }
        assert!(
            worst < 1e-9,
            "largest difference {worst} (relative to the errors)"
        );
    }
}
