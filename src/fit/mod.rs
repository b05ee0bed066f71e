//! Batched bounded minimisation of twice_nll with exact Hessians.
//!
//! The minimiser escalates through two strategies, as Minuit's strategy
//! levels do, so that easy fits stay fast and hard ones still finish:
//!
//! 1. **Projected Newton** ([`newton`]), the fast path. Each iteration
//!    evaluates twice_nll, its gradient and exact Hessian; the free parameters
//!    are those not fixed and not held at a bound by their gradient. Where the
//!    exact Hessian of the free block is positive definite the step is
//!    Newton's; far from the minimum, where it often is not, the step uses the
//!    expected (Fisher) information instead (scoring). The step is clipped to
//!    the bounds and accepted when the actual decrease matches the quadratic
//!    prediction well enough; otherwise it is shortened, then damped
//!    (Levenberg-Marquardt) and solved again with the same matrix.
//! 2. **Trust region on the exact Hessian** ([`trust`]), where the fast path
//!    finds no decreasing step (60 rejected trials: an indefinite Hessian, a
//!    curved valley, the edge of the likelihood's domain). Steps solve the
//!    trust-region subproblem by Steihaug's truncated conjugate gradients in
//!    the metric of the Hessian's diagonal, follow directions of negative
//!    curvature to the region's edge, stop at the parameter bounds, and the
//!    radius adapts to how well the quadratic model predicted the decrease.
//!    When the radius collapses, the step is tried once more from the Fisher
//!    (scoring) model, a restart; only then is the fit reported as stalled.
//!
//! Convergence is declared when the estimated distance to the minimum
//! `edm = g^T H^-1 g / 2` (exact Hessian, twice_nll units) falls below the
//! tolerance. All members of a batch are independent: one failing member never
//! stops the others, and a member's result does not depend on the schedule.

pub mod block;
mod coords;
pub mod covariance;
pub mod linalg;
mod newton;
mod trust;

use crate::model::HessianLayout;
use crate::model::Likelihood;
use block::BlockSolver;
use rayon::prelude::*;
use serde::Serialize;

/// Settings of the minimiser.
#[derive(Debug, Clone)]
pub struct FitOptions {
    /// Largest number of iterations per member.
    pub max_iter: usize,
    /// Convergence when edm (twice_nll units) is below this.
    pub edm_tol: f64,
    /// Compute the covariance matrix at the minimum.
    pub covariance: bool,
    /// Members advanced together (bounds memory for large batches).
    pub chunk: usize,
    /// The robustness measures of docs/robustness.md: scoring runs where the
    /// exact Hessian stays indefinite, parabolic backtracking, and the
    /// trust-region strategy where no decreasing step is found (on by
    /// default; off reproduces the plain Newton minimiser of gradfit 0.1,
    /// which reports such fits as stalled).
    pub robust: bool,
}

impl Default for FitOptions {
    fn default() -> Self {
        FitOptions {
            max_iter: 500,
            edm_tol: 1e-12,
            covariance: true,
            chunk: 256,
            robust: true,
        }
    }
}

/// One fit problem: start point, fixed parameters and bounds.
#[derive(Debug, Clone)]
pub struct FitSpec {
    /// Start values (clipped into the bounds).
    pub init: Vec<f64>,
    /// Parameters held at their start value.
    pub fixed: Vec<bool>,
    /// Bounds.
    pub bounds: Vec<(f64, f64)>,
}

impl FitSpec {
    /// The model's suggested start, fixed flags and bounds.
    pub fn from_model<L: Likelihood + ?Sized>(m: &L) -> Self {
        FitSpec {
            init: m.init().to_vec(),
            fixed: m.fixed().to_vec(),
            bounds: m.bounds().to_vec(),
        }
    }

    /// Fix parameter `i` at `value` (a value outside the bounds widens them:
    /// bounds only matter for free parameters).
    pub fn fix(mut self, i: usize, value: f64) -> Self {
        self.init[i] = value;
        self.fixed[i] = true;
        let (lo, hi) = self.bounds[i];
        self.bounds[i] = (lo.min(value), hi.max(value));
        self
    }
}

/// Why a fit stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FitStatus {
    /// edm below tolerance.
    Converged,
    /// Every parameter is fixed or held at a bound.
    NothingToFit,
    /// Iteration limit reached.
    MaxIterations,
    /// The likelihood is not finite at the start point.
    NonFiniteStart,
    /// No step decreases twice_nll any more while edm is still large.
    Stalled,
    /// The minimum found lies outside the likelihood's domain (an expected
    /// rate in a bin with data is not positive there: only the extension of
    /// the Poisson term is minimised, see docs/robustness.md).
    OutsideDomain,
}

impl FitStatus {
    /// True for the outcomes that found a minimum.
    pub fn ok(self) -> bool {
        matches!(self, FitStatus::Converged | FitStatus::NothingToFit)
    }

    /// A short human-readable reason.
    pub fn reason(self) -> &'static str {
        match self {
            FitStatus::Converged => "edm below tolerance",
            FitStatus::NothingToFit => "all parameters fixed",
            FitStatus::MaxIterations => "iteration limit reached",
            FitStatus::NonFiniteStart => {
                "likelihood not finite at the start point (an expected rate is not positive)"
            }
            FitStatus::Stalled => "no decreasing step found while edm is still above tolerance",
            FitStatus::OutsideDomain => {
                "the minimum found is outside the likelihood's domain (an expected rate in a bin \
                 with data is not positive there)"
            }
        }
    }
}

/// Result of one fit.
#[derive(Debug, Clone)]
pub struct FitResult {
    /// twice_nll at the minimum.
    pub twice_nll: f64,
    /// Best-fit parameters.
    pub x: Vec<f64>,
    /// Uncertainties sqrt(diag(2 H^-1)) (0 for fixed, NaN if the Hessian is not positive definite).
    pub errors: Vec<f64>,
    /// Covariance 2 H^-1 over the non-fixed parameters, row-major P x P (zeros for fixed).
    pub covariance: Option<Vec<f64>>,
    /// Iterations used.
    pub iterations: usize,
    /// Likelihood evaluations used.
    pub n_evals: usize,
    /// Whether a minimum was found.
    pub converged: bool,
    /// Why the fit stopped.
    pub status: FitStatus,
    /// Estimated distance to the minimum at the end.
    pub edm: f64,
    /// True when the covariance could not be computed (Hessian not positive definite).
    pub hessian_not_pd: bool,
    /// Iterations spent in the trust-region strategy (0: the Newton iteration sufficed).
    pub trust_iterations: usize,
    /// Parameters that do not affect twice_nll at the minimum (zero gradient
    /// and Hessian row, e.g. a signal shape's parameters at zero signal
    /// yield): held at their start values, left out of the covariance (error
    /// 0, like fixed parameters). Original indices; usually empty.
    pub flat: Vec<usize>,
    /// The fit from the given start did not converge (`max_iterations` or
    /// `stalled`) and this result comes from a second fit started at the
    /// model's suggested initial values (fixed parameters kept), the better
    /// of the two. Iterations and evaluations count both.
    pub restarted: bool,
}

impl FitResult {
    /// Assemble a result from the minimiser's end state; `errors` follow from
    /// the covariance's diagonal (0 for fixed parameters, NaN without one).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn assemble(
        twice_nll: f64,
        x: Vec<f64>,
        covariance: Option<Vec<f64>>,
        fixed: &[bool],
        iterations: usize,
        n_evals: usize,
        status: FitStatus,
        edm: f64,
        hessian_not_pd: bool,
    ) -> Self {
        let p = x.len();
        let errors = (0..p)
            .map(|i| match (&covariance, fixed[i]) {
                (_, true) => 0.0,
                (Some(c), false) => c[i * p + i].max(0.0).sqrt(),
                (None, false) => f64::NAN,
            })
            .collect();
        FitResult {
            twice_nll,
            x,
            errors,
            covariance,
            iterations,
            n_evals,
            converged: status.ok(),
            status,
            edm,
            hessian_not_pd,
            trust_iterations: 0,
            flat: Vec::new(),
            restarted: false,
        }
    }

    /// Correlation matrix from the covariance (row-major; zero rows for fixed parameters).
    pub fn correlation(&self) -> Option<Vec<f64>> {
        let c = self.covariance.as_ref()?;
        let p = self.x.len();
        let mut r = vec![0.0; p * p];
        for i in 0..p {
            for j in 0..p {
                let d = (c[i * p + i] * c[j * p + j]).sqrt();
                r[i * p + j] = if d > 0.0 { c[i * p + j] / d } else { 0.0 };
            }
        }
        Some(r)
    }
}

struct Member {
    x: Vec<f64>,
    x_trial: Vec<f64>,
    f: f64,
    lambda: f64,
    iter: usize,
    evals: usize,
    edm: f64,
    done: bool,
    /// The last accepted step decreased twice_nll by more than one unit.
    far: bool,
    status: FitStatus,
    cov: Option<Vec<f64>>,
    not_pd: bool,
    /// Stop at the next iteration (after computing the Hessian for the covariance).
    stop: bool,
    /// The last step was a Newton step accepted without evaluating twice_nll
    /// (close to the minimum); the next evaluation verifies it.
    unverified: bool,
    /// Point and value before an unverified step.
    x_prev: Vec<f64>,
    f_prev: f64,
    /// An unverified step failed once: check every step from now on.
    checked: bool,
    /// The trust-region strategy is in charge (see [`trust`]).
    trust: bool,
    /// Trust-region radius in the scaled norm `|D s|`.
    radius: f64,
    /// Scale `D` per parameter (original order): `sqrt|H_ii|`.
    scale: Vec<f64>,
    /// Iterations in the trust-region strategy.
    trust_iter: usize,
    /// Consecutive Newton iterations with an indefinite exact Hessian.
    not_pd_run: u32,
    /// Iteration and twice_nll at the start of the current progress window.
    window: (usize, f64),
    /// The current point is outside the likelihood's domain in a bin with data.
    outside: bool,
    /// The next evaluation may be the gradient alone (see `newton::light_check`).
    light: bool,
    /// Parameters found flat at the last full evaluation (see `newton::drop_flat`).
    flat: Vec<bool>,
}

impl Member {
    fn new(sp: &FitSpec) -> Self {
        let x: Vec<f64> = sp
            .init
            .iter()
            .zip(&sp.bounds)
            .map(|(v, (lo, hi))| v.clamp(*lo, *hi))
            .collect();
        Member {
            x_trial: x.clone(),
            x,
            f: f64::NAN,
            lambda: 0.0,
            iter: 0,
            evals: 0,
            edm: f64::INFINITY,
            done: false,
            far: true,
            status: FitStatus::MaxIterations,
            cov: None,
            not_pd: false,
            stop: false,
            unverified: false,
            x_prev: Vec::new(),
            f_prev: f64::NAN,
            checked: false,
            trust: false,
            radius: 0.0,
            scale: Vec::new(),
            trust_iter: 0,
            not_pd_run: 0,
            window: (0, f64::INFINITY),
            outside: false,
            light: false,
            flat: Vec::new(),
        }
    }
}

struct Work<S> {
    s: S,
    g: Vec<f64>,
    /// Packed block Hessian (see `HessianLayout`).
    h: Vec<f64>,
    solver: BlockSolver,
    /// Free parameters (original indices) of the current iteration.
    free: Vec<usize>,
    /// Free flags by permuted index.
    free_new: Vec<bool>,
    /// Step in permuted order.
    d: Vec<f64>,
    /// Trial step in original order (for the quadratic model).
    step: Vec<f64>,
    h_is_fisher: bool,
    /// Conjugate-gradient vectors of the trust-region strategy (permuted order).
    cg: trust::CgWork,
}

impl<S> Work<S> {
    fn new(s: S, layout: &HessianLayout) -> Self {
        let p = layout.n;
        Work {
            s,
            g: vec![0.0; p],
            h: vec![0.0; layout.n_packed],
            solver: BlockSolver::new(layout),
            free: Vec::with_capacity(p),
            free_new: vec![false; p],
            d: vec![0.0; p],
            step: vec![0.0; p],
            h_is_fisher: false,
            cg: trust::CgWork::default(),
        }
    }
}

/// Checks that a batch of `n_fits` fits has one dataset for all or one per fit.
pub fn check_batch_data(n_data: usize, n_fits: usize) -> crate::Result<()> {
    if n_data == 1 || n_data == n_fits {
        Ok(())
    } else {
        Err(crate::Error::input(format!(
            "{n_data} datasets for {n_fits} fits (need 1 or {n_fits})"
        )))
    }
}

/// Runs batches of fits: the CPU minimiser ([`Cpu`]) or a device session
/// (`device::Session`). Every fit in gradfit's inference and report code goes
/// through one, so `--device` moves them all.
pub trait BatchFitter<L: Likelihood> {
    /// Fit `specs` (one dataset for all, or one per member), as [`fit_batch`].
    fn fit_batch(
        &self,
        model: &L,
        data: &[&L::Data],
        specs: &[FitSpec],
        opts: &FitOptions,
    ) -> crate::Result<Vec<FitResult>>;

    /// Fit one problem.
    fn fit(
        &self,
        model: &L,
        data: &L::Data,
        spec: &FitSpec,
        opts: &FitOptions,
    ) -> crate::Result<FitResult> {
        let mut r = self.fit_batch(model, &[data], std::slice::from_ref(spec), opts)?;
        r.pop()
            .ok_or_else(|| crate::Error::Numerical("no fit result".into()))
    }
}

/// The CPU minimiser of this module.
#[derive(Debug, Clone, Copy, Default)]
pub struct Cpu;

impl<L: Likelihood> BatchFitter<L> for Cpu {
    fn fit_batch(
        &self,
        model: &L,
        data: &[&L::Data],
        specs: &[FitSpec],
        opts: &FitOptions,
    ) -> crate::Result<Vec<FitResult>> {
        Ok(fit_batch(model, data, specs, opts))
    }
}

/// Fit one problem.
pub fn fit<L: Likelihood>(
    model: &L,
    data: &L::Data,
    spec: &FitSpec,
    opts: &FitOptions,
) -> FitResult {
    fit_batch(model, &[data], std::slice::from_ref(spec), opts)
        .pop()
        .expect("one result")
}

/// Fit a batch of problems: `data` holds one dataset for all members or one per member.
pub fn fit_batch<L: Likelihood>(
    model: &L,
    data: &[&L::Data],
    specs: &[FitSpec],
    opts: &FitOptions,
) -> Vec<FitResult> {
    match coords::reciprocal_mask(model, specs) {
        Some(rec) => coords::fit_reciprocal(model, data, specs, opts, rec),
        None => fit_batch_plain(model, data, specs, opts),
    }
}

/// [`fit_batch`] in the model's own coordinates.
fn fit_batch_plain<L: Likelihood>(
    model: &L,
    data: &[&L::Data],
    specs: &[FitSpec],
    opts: &FitOptions,
) -> Vec<FitResult> {
    assert!(
        data.len() == 1 || data.len() == specs.len(),
        "one dataset or one per member"
    );
    let mut out = Vec::with_capacity(specs.len());
    let chunk = opts.chunk.max(1);
    for (c, specs_c) in specs.chunks(chunk).enumerate() {
        let base = c * chunk;
        let data_c: Vec<&L::Data> = if data.len() == 1 {
            vec![data[0]]
        } else {
            data[base..base + specs_c.len()].to_vec()
        };
        out.extend(fit_chunk(model, &data_c, specs_c, opts));
    }
    out
}

fn fit_chunk<L: Likelihood>(
    model: &L,
    data: &[&L::Data],
    specs: &[FitSpec],
    opts: &FitOptions,
) -> Vec<FitResult> {
    let dat = |i: usize| if data.len() == 1 { data[0] } else { data[i] };
    let parallel = specs.len() > 1 && rayon::current_num_threads() > 1;
    // One set of work buffers per worker thread, kept across iterations.
    let nthreads = if parallel {
        rayon::current_num_threads()
    } else {
        1
    };
    let pool: Vec<std::sync::Mutex<Work<L::Scratch>>> = (0..nthreads)
        .map(|_| std::sync::Mutex::new(Work::new(model.scratch(), model.layout())))
        .collect();
    // Members are independent: on the CPU each one is iterated to the end by
    // one worker (no lockstep rounds, so a few slow members never leave the
    // other cores idle). The result of a member does not depend on the
    // schedule.
    let run = |i: usize, sp: &FitSpec| {
        let mut m = Member::new(sp);
        let t = rayon::current_thread_index().unwrap_or(0) % nthreads;
        let mut w = pool[t].lock().unwrap_or_else(|e| e.into_inner());
        while !m.done {
            if m.trust {
                trust::iterate(model, dat(i), sp, opts, &mut m, &mut w);
            } else {
                newton::iterate(model, dat(i), sp, opts, &mut m, &mut w);
            }
        }
        m
    };
    // each member is set up and its result assembled by the worker that fits
    // it (the calling thread would otherwise allocate them all while the
    // workers wait)
    let fit_one = |i: usize| {
        let m = run(i, &specs[i]);
        let again = match m.status {
            FitStatus::MaxIterations | FitStatus::Stalled if opts.robust => {
                restart_spec(model, &specs[i], &m)
            }
            _ => None,
        };
        match again {
            Some(sp) => {
                let m2 = run(i, &sp);
                better_of(m, m2, &specs[i])
            }
            None => result(m, &specs[i]),
        }
    };
    if parallel {
        (0..specs.len()).into_par_iter().map(fit_one).collect()
    } else {
        (0..specs.len()).map(fit_one).collect()
    }
}

/// The spec of a restart from the model's suggested start, for a member
/// that did not converge from its own start (`None` where the two starts
/// agree on every free parameter, or the member had no finite start): fixed
/// parameters keep their values, bounds stay.
fn restart_spec<L: Likelihood>(model: &L, sp: &FitSpec, m: &Member) -> Option<FitSpec> {
    if m.iter == 0 {
        return None;
    }
    let init = model.init();
    let mut again = sp.clone();
    let mut differs = false;
    for i in 0..init.len() {
        if sp.fixed[i] {
            continue;
        }
        let (lo, hi) = sp.bounds[i];
        let v = init[i].clamp(lo, hi);
        differs |= v != sp.init[i].clamp(lo, hi);
        again.init[i] = v;
    }
    differs.then_some(again)
}

/// The result of a member that did not converge (`first`) and of its restart
/// (`second`): the restart's when it converged or ended lower, marked
/// `restarted`; iterations and evaluations count both.
fn better_of(first: Member, second: Member, sp: &FitSpec) -> FitResult {
    let (iter, evals) = (first.iter + second.iter, first.evals + second.evals);
    // (a finite value beats a first fit that ended not a number)
    let take_second = second.status.ok() || (second.f.is_finite() && !(second.f >= first.f));
    let mut r = if take_second {
        let mut r = result(second, sp);
        r.restarted = true;
        r
    } else {
        result(first, sp)
    };
    r.iterations = iter;
    r.n_evals = evals;
    r
}

/// The result of a finished member.
fn result(m: Member, sp: &FitSpec) -> FitResult {
    let mut r = FitResult::assemble(
        m.f, m.x, m.cov, &sp.fixed, m.iter, m.evals, m.status, m.edm, m.not_pd,
    );
    r.trust_iterations = m.trust_iter;
    r.flat = (0..m.flat.len()).filter(|&i| m.flat[i]).collect();
    for &i in &r.flat {
        if r.covariance.is_some() {
            r.errors[i] = 0.0;
        }
    }
    r
}
