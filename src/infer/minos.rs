//! Asymmetric (MINOS-like) uncertainties from the profile likelihood: for
//! each requested parameter, the values on either side of the best fit where
//! the profiled twice_nll rises by `delta` (1 for 68.3% intervals).
//!
//! All (parameter, side) searches advance together: each round proposes one
//! value per unfinished search and fits them as one batch. The proposal
//! assumes a locally parabolic profile: from a point `v` with rise `q`, the
//! next is `x_hat + s |v - x_hat| sqrt(delta / q)`; where that would leave a
//! bracket already found, the search bisects the bracket instead.

use crate::error::{Error, Result};
use crate::fit::{BatchFitter, FitOptions, FitResult, FitSpec};
use crate::model::Likelihood;
use serde::Serialize;

/// One side of an interval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct MinosSide {
    /// Signed distance from the best fit (negative below), when found.
    pub error: Option<f64>,
    /// The crossing lies beyond the parameter's bound: no crossing inside.
    pub at_bound: bool,
    /// Fits used.
    pub n_fits: usize,
}

/// The asymmetric uncertainty of one parameter.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MinosError {
    /// Parameter index.
    pub par: usize,
    /// Below the best fit.
    pub lower: MinosSide,
    /// Above the best fit.
    pub upper: MinosSide,
}

/// Tolerance on the rise of twice_nll at a crossing.
const TOL: f64 = 1e-4;
/// Rounds of batched fits before a search gives up.
const MAX_ROUNDS: usize = 40;

struct Search {
    par: usize,
    sign: f64,
    /// Last proposed value and the start of its fit.
    v: f64,
    start: Vec<f64>,
    /// Bracket: largest distance with rise below delta, smallest above.
    inside: f64,
    outside: Option<f64>,
    done: Option<MinosSide>,
    fits: usize,
}

/// The fits a profile search runs: a model, its data, the fit configuration
/// of the best fit and the fitter.
pub struct Profile<'a, L: Likelihood> {
    /// The model.
    pub model: &'a L,
    /// The data.
    pub data: &'a L::Data,
    /// Start, bounds and fixed flags of the best fit.
    pub spec: &'a FitSpec,
    /// Where the fits run.
    pub fitter: &'a dyn BatchFitter<L>,
}

/// MINOS-like errors of the parameters `pars` around the best fit `best`
/// (which must have converged with `p.spec`), for a rise of `delta`.
pub fn minos<L: Likelihood>(
    p: &Profile<L>,
    best: &FitResult,
    pars: &[usize],
    delta: f64,
    opts: &FitOptions,
) -> Result<Vec<MinosError>> {
    if !best.converged {
        return Err(Error::Numerical(
            "profile errors need a converged best fit".into(),
        ));
    }
    if !(delta > 0.0 && delta.is_finite()) {
        return Err(Error::input(format!("delta must be positive, got {delta}")));
    }
    let opts = FitOptions {
        covariance: false,
        ..opts.clone()
    };
    let mut searches: Vec<Search> = Vec::new();
    for &i in pars {
        if p.spec.fixed[i] {
            return Err(Error::input(format!(
                "'{}' is fixed: it has no uncertainty",
                p.model.par_names()[i]
            )));
        }
        let sigma = best.errors[i];
        let step = if sigma.is_finite() && sigma > 0.0 {
            sigma * delta.sqrt()
        } else {
            0.1 * best.x[i].abs().max(1.0)
        };
        for sign in [-1.0, 1.0] {
            searches.push(Search {
                par: i,
                sign,
                v: best.x[i] + sign * step,
                start: best.x.clone(),
                inside: 0.0,
                outside: None,
                done: None,
                fits: 0,
            });
        }
    }
    for _ in 0..MAX_ROUNDS {
        let live: Vec<usize> = (0..searches.len())
            .filter(|&k| searches[k].done.is_none())
            .collect();
        if live.is_empty() {
            break;
        }
        let mut specs = Vec::with_capacity(live.len());
        for &k in &live {
            let s = &mut searches[k];
            let (lo, hi) = p.spec.bounds[s.par];
            let bound = if s.sign < 0.0 { lo } else { hi };
            if (s.sign < 0.0 && s.v <= lo) || (s.sign > 0.0 && s.v >= hi) {
                // the next proposal is beyond the bound: test the bound itself
                s.v = bound;
            }
            let mut spec = FitSpec {
                init: s.start.clone(),
                ..p.spec.clone()
            };
            spec.init[s.par] = s.v;
            spec.fixed[s.par] = true;
            specs.push(spec);
        }
        let fits = p.fitter.fit_batch(p.model, &[p.data], &specs, &opts)?;
        for (&k, f) in live.iter().zip(fits) {
            let s = &mut searches[k];
            s.fits += 1;
            let x0 = best.x[s.par];
            let dist = (s.v - x0).abs();
            let (lo, hi) = p.spec.bounds[s.par];
            let bound = if s.sign < 0.0 { lo } else { hi };
            if !f.converged || !f.twice_nll.is_finite() {
                // shorten towards the best fit and try again
                s.outside = Some(s.outside.map_or(dist, |o| o.min(dist)));
                s.v = x0 + s.sign * 0.5 * (s.inside + dist);
                continue;
            }
            let q = f.twice_nll - best.twice_nll;
            if (q - delta).abs() < TOL {
                s.done = Some(MinosSide {
                    error: Some(s.sign * dist),
                    at_bound: false,
                    n_fits: s.fits,
                });
                continue;
            }
            if q < delta {
                s.inside = s.inside.max(dist);
                s.start = f.x;
                if s.v == bound {
                    s.done = Some(MinosSide {
                        error: None,
                        at_bound: true,
                        n_fits: s.fits,
                    });
                    continue;
                }
            } else {
                s.outside = Some(s.outside.map_or(dist, |o| o.min(dist)));
            }
            // parabolic proposal, kept inside the bracket
            let mut next = if q > 0.0 {
                dist * (delta / q).sqrt()
            } else {
                2.0 * dist
            };
            if let Some(o) = s.outside
                && !(next > s.inside && next < o)
            {
                next = 0.5 * (s.inside + o);
            }
            if next <= s.inside {
                next = 2.0 * s.inside.max(dist);
            }
            s.v = x0 + s.sign * next;
        }
    }
    let mut out = Vec::new();
    for pair in searches.chunks(2) {
        let side = |s: &Search| {
            s.done.unwrap_or(MinosSide {
                error: None,
                at_bound: false,
                n_fits: s.fits,
            })
        };
        out.push(MinosError {
            par: pair[0].par,
            lower: side(&pair[0]),
            upper: side(&pair[1]),
        });
    }
    Ok(out)
}
