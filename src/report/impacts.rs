//! Impacts of the nuisance parameters on the POI: linearised (from the Hessian)
//! and by refits (the ranking), as cabinetry defines them.
//!
//! - Hessian impact: `C[poi, k] / sqrt(C[k, k])`, the POI shift of the
//!   linearised refit with theta_k moved by its post-fit width; the pre-fit
//!   variant scales it by `sigma_prefit / sigma_postfit`.
//! - NSBI form (ATLAS): `Gamma_k = -H[poi, k] / H[poi, poi] * sqrt(C[k, k])`,
//!   the POI shift when only the POI is re-optimised.
//! - Refit ranking: theta_k fixed at `theta_hat +- sigma_prefit` and
//!   `theta_hat +- sigma_postfit`, everything else refitted; the impact is the
//!   change of the POI. All refits of a ranking run as batches of the batched
//!   minimiser, warm-started at the best fit. A shift that would cross a
//!   parameter bound is clipped to the bound and marked.

use super::PostFit;
use crate::error::Result;
use crate::fit::{self, FitOptions, FitSpec};
use crate::model::Likelihood;

/// Linearised impacts of one parameter on the POI.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HessianImpact {
    /// Parameter index.
    pub par: usize,
    /// `C[poi, k] / sqrt(C[k, k])` (post-fit).
    pub hessian: f64,
    /// The post-fit impact scaled by `sigma_prefit / sigma_postfit` (0 without a pre-fit width).
    pub hessian_prefit: f64,
    /// `-H[poi, k] / H[poi, poi] * sqrt(C[k, k])`.
    pub nsbi_gamma: f64,
}

/// Hessian-based impacts on the POI of every non-fixed parameter other than the POI
/// (in model order). `prefit_sigma` has one entry per parameter.
pub fn hessian_impacts(post: &PostFit, poi: usize, prefit_sigma: &[f64]) -> Vec<HessianImpact> {
    let p = post.n_pars();
    let c = &post.covariance;
    let h = &post.hessian;
    let hpp = h[poi * p + poi];
    (0..p)
        .filter(|&k| k != poi && !post.fixed[k])
        .map(|k| {
            let ckk = c[k * p + k];
            let (hessian, hessian_prefit, sk) = if ckk > 0.0 {
                let sk = ckk.sqrt();
                let imp = c[poi * p + k] / sk;
                (imp, imp * prefit_sigma[k] / sk, sk)
            } else {
                (0.0, 0.0, 0.0)
            };
            // (+ 0.0 turns -0.0 into 0.0 for parameters that do not touch the POI)
            let nsbi_gamma = if hpp != 0.0 {
                -h[poi * p + k] / hpp * sk + 0.0
            } else {
                0.0
            };
            HessianImpact {
                par: k,
                hessian,
                hessian_prefit,
                nsbi_gamma,
            }
        })
        .collect()
}

/// The four refits of a parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShiftKind {
    /// theta_hat + sigma_prefit.
    PrefitUp,
    /// theta_hat - sigma_prefit.
    PrefitDown,
    /// theta_hat + sigma_postfit.
    PostfitUp,
    /// theta_hat - sigma_postfit.
    PostfitDown,
}

impl ShiftKind {
    /// All four, in the order of [`RefitImpact::shifts`].
    pub const ALL: [ShiftKind; 4] = [
        ShiftKind::PrefitUp,
        ShiftKind::PrefitDown,
        ShiftKind::PostfitUp,
        ShiftKind::PostfitDown,
    ];

    /// Name used in JSON (`prefit_up`, ...).
    pub fn key(self) -> &'static str {
        match self {
            ShiftKind::PrefitUp => "prefit_up",
            ShiftKind::PrefitDown => "prefit_down",
            ShiftKind::PostfitUp => "postfit_up",
            ShiftKind::PostfitDown => "postfit_down",
        }
    }

    fn sign(self) -> f64 {
        match self {
            ShiftKind::PrefitUp | ShiftKind::PostfitUp => 1.0,
            _ => -1.0,
        }
    }

    fn prefit(self) -> bool {
        matches!(self, ShiftKind::PrefitUp | ShiftKind::PrefitDown)
    }
}

/// One refit of the ranking.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RefitShift {
    /// The intended value `theta_hat +- sigma`.
    pub target: f64,
    /// The value theta_k was fixed at: `target` clipped to the parameter's bounds.
    pub value: f64,
    /// True when `target` crossed a bound and was clipped.
    pub clipped: bool,
    /// Whether a refit ran (false when the shift is zero: no width, or clipped onto the best fit).
    pub fitted: bool,
    /// Whether the refit converged (true when none was needed).
    pub converged: bool,
    /// POI after the refit.
    pub poi: f64,
    /// `poi - poi_hat`.
    pub impact: f64,
    /// twice_nll after the refit.
    pub twice_nll: f64,
}

/// The refit impacts of one parameter.
#[derive(Debug, Clone, PartialEq)]
pub struct RefitImpact {
    /// Parameter index.
    pub par: usize,
    /// Pre-fit up, pre-fit down, post-fit up, post-fit down (the order of [`ShiftKind::ALL`]).
    pub shifts: [RefitShift; 4],
}

impl RefitImpact {
    /// The refit of one kind.
    pub fn get(&self, k: ShiftKind) -> &RefitShift {
        &self.shifts[k as usize]
    }

    /// Largest post-fit impact in size.
    pub fn postfit_size(&self) -> f64 {
        self.get(ShiftKind::PostfitUp)
            .impact
            .abs()
            .max(self.get(ShiftKind::PostfitDown).impact.abs())
    }
}

/// Settings of a refit ranking.
#[derive(Debug, Clone)]
pub struct RefitOptions {
    /// Minimiser settings of every refit (the covariance is not needed).
    pub fit: FitOptions,
    /// Refits handed to the batched minimiser at once (progress is reported after each batch).
    pub batch: usize,
}

impl Default for RefitOptions {
    fn default() -> Self {
        RefitOptions {
            fit: FitOptions {
                covariance: false,
                ..FitOptions::default()
            },
            batch: 128,
        }
    }
}

/// One planned refit: parameter, kind, target and clipped value.
#[derive(Debug, Clone, Copy)]
struct Planned {
    row: usize,
    kind: ShiftKind,
    target: f64,
    value: f64,
    clipped: bool,
}

/// The refit problem fixing `par` at `value`, warm-started at the best fit.
pub fn refit_spec(post: &PostFit, par: usize, value: f64) -> FitSpec {
    let mut spec = post.spec.clone();
    spec.init = post.x.clone();
    spec.fix(par, value)
}

/// What a refit ranking computes.
#[derive(Debug, Clone, Copy)]
pub struct RefitPlan<'a> {
    /// Index of the POI whose shifts are recorded.
    pub poi: usize,
    /// Parameters to rank (results come in this order).
    pub pars: &'a [usize],
    /// Pre-fit width of every parameter (one entry per model parameter).
    pub prefit_sigma: &'a [f64],
}

/// The refit ranking (4 refits per parameter of `plan.pars`, run as batches).
///
/// `progress(done, total)` is called before the first batch and after each one.
pub fn refit_impacts<L: Likelihood>(
    model: &L,
    data: &L::Data,
    post: &PostFit,
    plan: &RefitPlan,
    opts: &RefitOptions,
    progress: &mut dyn FnMut(usize, usize),
) -> Vec<RefitImpact> {
    refit_impacts_with(&fit::Cpu, model, data, post, plan, opts, progress)
        .expect("the CPU minimiser does not fail")
}

/// [`refit_impacts`] with the refits run by `fitter` (e.g. a GPU session).
pub fn refit_impacts_with<L: Likelihood>(
    fitter: &dyn fit::BatchFitter<L>,
    model: &L,
    data: &L::Data,
    post: &PostFit,
    plan: &RefitPlan,
    opts: &RefitOptions,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<Vec<RefitImpact>> {
    let RefitPlan {
        poi,
        pars,
        prefit_sigma,
    } = *plan;
    let poi_hat = post.x[poi];
    let none = RefitShift {
        target: 0.0,
        value: 0.0,
        clipped: false,
        fitted: false,
        converged: true,
        poi: poi_hat,
        impact: 0.0,
        twice_nll: post.twice_nll,
    };
    let mut out: Vec<RefitImpact> = pars
        .iter()
        .map(|&k| RefitImpact {
            par: k,
            shifts: [none; 4],
        })
        .collect();
    let mut plans = Vec::new();
    for (row, &k) in pars.iter().enumerate() {
        let (lo, hi) = post.spec.bounds[k];
        for kind in ShiftKind::ALL {
            let sigma = if kind.prefit() {
                prefit_sigma[k]
            } else {
                post.error(k)
            };
            let target = post.x[k] + kind.sign() * sigma;
            let value = target.clamp(lo, hi);
            let clipped = value != target;
            let s = &mut out[row].shifts[kind as usize];
            s.target = target;
            s.value = value;
            s.clipped = clipped;
            if value != post.x[k] {
                plans.push(Planned {
                    row,
                    kind,
                    target,
                    value,
                    clipped,
                });
            }
        }
    }
    let total = plans.len();
    progress(0, total);
    let batch = opts.batch.max(1);
    let mut done = 0;
    for chunk in plans.chunks(batch) {
        let specs: Vec<FitSpec> = chunk
            .iter()
            .map(|pl| refit_spec(post, pars[pl.row], pl.value))
            .collect();
        let res = fitter.fit_batch(model, &[data], &specs, &opts.fit)?;
        for (pl, r) in chunk.iter().zip(res) {
            out[pl.row].shifts[pl.kind as usize] = RefitShift {
                target: pl.target,
                value: pl.value,
                clipped: pl.clipped,
                fitted: true,
                converged: r.converged,
                poi: r.x[poi],
                impact: r.x[poi] - poi_hat,
                twice_nll: r.twice_nll,
            };
        }
        done += chunk.len();
        progress(done, total);
    }
    Ok(out)
}

/// Hessian and (optionally) refit impacts of one parameter.
#[derive(Debug, Clone, PartialEq)]
pub struct ImpactRow {
    /// Linearised impacts.
    pub hessian: HessianImpact,
    /// Refit impacts, when the ranking ran.
    pub refit: Option<RefitImpact>,
}

impl ImpactRow {
    /// Parameter index.
    pub fn par(&self) -> usize {
        self.hessian.par
    }

    /// The ranking key: the largest post-fit refit impact in size, or the
    /// Hessian impact's size when no refits ran.
    pub fn postfit_size(&self) -> f64 {
        match &self.refit {
            Some(r) => r.postfit_size(),
            None => self.hessian.hessian.abs(),
        }
    }
}

/// Join Hessian and refit impacts (same parameters) and sort by the largest post-fit
/// impact (ties by the size of the Hessian impact, then by parameter index).
pub fn rank(hessian: Vec<HessianImpact>, refit: Option<Vec<RefitImpact>>) -> Vec<ImpactRow> {
    let mut rows: Vec<ImpactRow> = match refit {
        Some(r) => {
            let by_par: std::collections::HashMap<usize, RefitImpact> =
                r.into_iter().map(|x| (x.par, x)).collect();
            hessian
                .into_iter()
                .map(|h| ImpactRow {
                    refit: by_par.get(&h.par).cloned(),
                    hessian: h,
                })
                .collect()
        }
        None => hessian
            .into_iter()
            .map(|h| ImpactRow {
                hessian: h,
                refit: None,
            })
            .collect(),
    };
    // ties (e.g. every refit impact 0 with the POI held at a bound) follow the Hessian impacts
    rows.sort_by(|a, b| {
        b.postfit_size()
            .total_cmp(&a.postfit_size())
            .then(b.hessian.hessian.abs().total_cmp(&a.hessian.hessian.abs()))
            .then(a.par().cmp(&b.par()))
    });
    rows
}
