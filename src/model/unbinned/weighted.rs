//! The asymptotically correct covariance of weighted unbinned fits.
//!
//! With per-event weights w_i the sum-of-weights likelihood gives the right
//! estimates but `2 H^-1` underestimates or overestimates their spread. The
//! asymptotic covariance (Langenbruch, Eur. Phys. J. C 82 (2022) 393; RooFit's
//! `AsymptoticError`, zfit's `hesse(method="asymptotic")`) is
//! `C = H^-1 D H^-1` with `H` the Hessian of `-ln L` and
//! `D = sum_i w_i^2 s_i s_i^T`, `s_i = d ln(nu p(x_i)) / d theta` for extended
//! channels (`d ln p(x_i)` otherwise). In twice_nll units (`H2 = 2 H`) this is
//! `C = 4 H2^-1 D H2^-1`.

use super::atoms::{Mode, tri};
use super::channel::{Act, Extension, Prepared};
use super::kernel;
use super::part::{Events, UnbinnedPart};
use super::slots::{SlotValues, chain_to_params};

/// `sum_i w_i^2 s_i s_i^T` over the part's local parameters (row-major).
pub fn score_outer(
    part: &UnbinnedPart,
    theta: &[f64],
    events: &Events,
) -> Result<Vec<f64>, String> {
    let ch = &part.channel;
    let np = part.par_names.len();
    let mut sv = SlotValues::default();
    sv.compute(&ch.slots, theta, true);
    let norms = ch.norms(&sv)?;
    let prep = Prepared {
        ch,
        sv: &sv,
        norms: &norms,
        mode: Mode::Hess,
        score: true,
    };
    let r = kernel::run(&prep, &events.data);
    if let Some((i, p)) = r.bad {
        return Err(format!("the density is {p} (not > 0) at event {i}"));
    }
    let na = ch.n_act();
    // slot-space matrix; coefficient-normalised channels subtract 1/A from the
    // coefficient entries of every score
    let mut m = vec![0.0; na * na];
    for i in 0..na {
        for j in 0..na {
            m[i * na + j] = r.h[tri(i, j)];
        }
    }
    if ch.ext == Extension::Normalized {
        let a = ch.coef_sum(&sv);
        let sw2 = events
            .data
            .weights
            .as_ref()
            .map_or(events.data.len() as f64, |w| w.iter().map(|x| x * x).sum());
        let c: Vec<f64> = ch
            .roles
            .iter()
            .map(|r| {
                if matches!(r, Act::Coef(_)) {
                    1.0 / a
                } else {
                    0.0
                }
            })
            .collect();
        for i in 0..na {
            for j in 0..na {
                m[i * na + j] += -c[i] * r.g[j] - r.g[i] * c[j] + sw2 * c[i] * c[j];
            }
        }
    }
    // D_theta = J^T M J: the chain rule with zero gradient gives exactly that
    let mut out = vec![0.0; np * np];
    let mut g = vec![0.0; np];
    let zeros = vec![0.0; na];
    chain_to_params(
        &ch.slots,
        &sv,
        &ch.act,
        &zeros,
        Some(&m),
        np,
        &mut g,
        Some(&mut out),
    );
    Ok(out)
}

/// The asymptotic covariance `4 H2^-1 D H2^-1` from the Hessian of twice_nll
/// over the free parameters (`free`: their indices) and the score matrix `d`
/// (both over all parameters, row-major). None when the Hessian is singular.
pub fn asymptotic_covariance(h2: &[f64], d: &[f64], free: &[usize], n: usize) -> Option<Vec<f64>> {
    let k = free.len();
    let mut chol = crate::fit::linalg::Chol::new(k);
    if !chol.factor(k, |a, b| h2[free[a] * n + free[b]]) {
        return None;
    }
    let mut inv = vec![0.0; k * k];
    chol.inverse(&mut inv);
    // C = 4 inv D inv
    let mut t = vec![0.0; k * k];
    for a in 0..k {
        for b in 0..k {
            let mut s = 0.0;
            for c in 0..k {
                s += inv[a * k + c] * d[free[c] * n + free[b]];
            }
            t[a * k + b] = s;
        }
    }
    let mut out = vec![0.0; n * n];
    for a in 0..k {
        for b in 0..k {
            let mut s = 0.0;
            for c in 0..k {
                s += t[a * k + c] * inv[c * k + b];
            }
            out[free[a] * n + free[b]] = 4.0 * s;
        }
    }
    Some(out)
}

/// The asymptotically correct covariance of a fit of `model` at `theta` over the
/// parameters not `fixed` (row-major over all parameters, zero rows for fixed
/// ones): `4 H2^-1 D H2^-1` with `H2` the Hessian of twice_nll and `D` the sum
/// over parts of their score matrices (parts with unit weights contribute
/// `H2_part / 2`, their expected information). None when the Hessian of the free
/// parameters is not positive definite.
pub fn fit_covariance_asymptotic(
    model: &crate::model::CombinedModel,
    theta: &[f64],
    fixed: &[bool],
) -> Option<Vec<f64>> {
    use crate::model::Likelihood;
    let n = model.n_pars();
    let data = model.observed();
    let mut s = model.scratch();
    let mut g = vec![0.0; n];
    let mut h2 = vec![0.0; n * n];
    let f = model.eval(theta, data, &mut s, Some(&mut g), Some(&mut h2));
    if !f.is_finite() {
        return None;
    }
    let mut d = vec![0.0; n * n];
    for (k, part) in model.parts().iter().enumerate() {
        let map = model.part_map(k);
        let local: Vec<f64> = map.iter().map(|&i| theta[i]).collect();
        let nl = map.len();
        let dk = match part.score_outer(&local, &data.parts[k]) {
            Some(dk) => dk,
            None => {
                let mut ps = part.scratch();
                let mut hg = vec![0.0; nl];
                let mut hh = vec![0.0; nl * nl];
                part.eval(
                    &local,
                    &data.parts[k],
                    &mut ps,
                    Some(&mut hg),
                    Some(&mut hh),
                );
                hh.iter().map(|x| 0.5 * x).collect()
            }
        };
        for a in 0..nl {
            for b in 0..nl {
                d[map[a] * n + map[b]] += dk[a * nl + b];
            }
        }
    }
    let free: Vec<usize> = (0..n).filter(|&i| !fixed[i]).collect();
    asymptotic_covariance(&h2, &d, &free, n)
}

/// Whether any unbinned channel of `model` has observed events with a weight
/// other than 1 (then [`fit_covariance_asymptotic`] is the covariance to quote).
pub fn has_weights(model: &crate::model::CombinedModel) -> bool {
    use crate::model::Likelihood;
    let data = model.observed();
    model.parts().iter().enumerate().any(|(k, part)| {
        part.as_any()
            .is_some_and(|a| a.downcast_ref::<UnbinnedPart>().is_some())
            && data.parts[k]
                .downcast_ref::<Events>()
                .and_then(|e| e.data.weights.as_ref())
                .is_some_and(|w| w.iter().any(|&x| x != 1.0))
    })
}
