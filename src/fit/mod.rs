//! Batched bounded minimisation of twice_nll with exact Hessians.
//!
//! The minimiser is a projected Newton method with Levenberg-Marquardt damping.
//! Each iteration evaluates twice_nll, its gradient and exact Hessian; the free
//! parameters are those not fixed and not held at a bound by their gradient.
//! Where the exact Hessian of the free block is positive definite the step is
//! Newton's; far from the minimum, where it often is not, the step uses the
//! expected (Fisher) information instead (scoring). The step is clipped to the
//! bounds and accepted when the actual decrease matches the quadratic
//! prediction well enough; otherwise the damping grows and the step is solved
//! again with the same matrix. Convergence is declared when the estimated
//! distance to the minimum `edm = g^T H^-1 g / 2` (exact Hessian, twice_nll
//! units) falls below the tolerance.
//!
//! All members of a batch advance together, one iteration per round; members
//! that finished are masked out, and one failing member never stops the others.

pub mod block;
pub mod linalg;

use crate::model::HessianLayout;
use crate::model::Likelihood;
use block::BlockSolver;
use linalg::Chol;
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
}

impl Default for FitOptions {
    fn default() -> Self {
        FitOptions {
            max_iter: 500,
            edm_tol: 1e-12,
            covariance: true,
            chunk: 256,
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
}

struct Work<S> {
    s: S,
    g: Vec<f64>,
    /// Block Hessian (see `HessianLayout`).
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
}

impl<S> Work<S> {
    fn new(s: S, layout: &HessianLayout) -> Self {
        let p = layout.n;
        Work {
            s,
            g: vec![0.0; p],
            h: vec![0.0; p * p],
            solver: BlockSolver::new(layout),
            free: Vec::with_capacity(p),
            free_new: vec![false; p],
            d: vec![0.0; p],
            step: vec![0.0; p],
            h_is_fisher: false,
        }
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
    let mut members: Vec<Member> = specs
        .iter()
        .map(|sp| {
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
            }
        })
        .collect();

    let parallel = members.len() > 1 && rayon::current_num_threads() > 1;
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
    let run = |(i, m): (usize, &mut Member)| {
        let t = rayon::current_thread_index().unwrap_or(0) % nthreads;
        let mut w = pool[t].lock().unwrap_or_else(|e| e.into_inner());
        while !m.done {
            iterate(model, dat(i), &specs[i], opts, m, &mut w);
        }
    };
    if parallel {
        members.par_iter_mut().enumerate().for_each(run);
    } else {
        members.iter_mut().enumerate().for_each(run);
    }
    members
        .into_iter()
        .zip(specs)
        .map(|(m, sp)| {
            FitResult::assemble(
                m.f, m.x, m.cov, &sp.fixed, m.iter, m.evals, m.status, m.edm, m.not_pd,
            )
        })
        .collect()
}

fn at_lower(x: f64, lo: f64) -> bool {
    x <= lo
}

fn at_upper(x: f64, hi: f64) -> bool {
    x >= hi
}

/// Scale of rounding noise in twice_nll near `f`.
fn f_noise(f: f64, magnitude: f64) -> f64 {
    1e-13 * f.abs().max(magnitude).max(1.0)
}

/// `GRADFIT_TRACE=1` prints every minimiser iteration to stderr.
fn trace() -> bool {
    static T: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *T.get_or_init(|| std::env::var_os("GRADFIT_TRACE").is_some())
}

/// Next damping value after a failure.
fn raise(lambda: f64) -> f64 {
    if lambda == 0.0 { 1e-4 } else { lambda * 10.0 }
}

/// One iteration of one member: evaluate, test convergence, find an accepted step.
fn iterate<L: Likelihood>(
    model: &L,
    data: &L::Data,
    spec: &FitSpec,
    opts: &FitOptions,
    m: &mut Member,
    w: &mut Work<L::Scratch>,
) {
    let p = m.x.len();
    let lay = model.layout();
    let mag = model.magnitude(data);
    let f = model.eval_block(&m.x, data, &mut w.s, Some(&mut w.g), Some(&mut w.h), false);
    m.evals += 1;
    w.h_is_fisher = false;
    if m.unverified {
        m.unverified = false;
        if !(f <= m.f_prev + f_noise(m.f_prev, mag)) {
            // the unchecked Newton step went uphill: go back and damp
            m.x.copy_from_slice(&m.x_prev);
            m.f = m.f_prev;
            m.checked = true;
            return;
        }
    }
    if !f.is_finite() {
        m.f = f;
        m.status = if m.iter == 0 {
            FitStatus::NonFiniteStart
        } else {
            FitStatus::Stalled
        };
        m.done = true;
        return;
    }
    m.f = f;
    if m.stop {
        finish(model, data, m, spec, opts, w);
        return;
    }
    w.free.clear();
    for i in 0..p {
        if spec.fixed[i] {
            continue;
        }
        let (lo, hi) = spec.bounds[i];
        if (at_lower(m.x[i], lo) && w.g[i] > 0.0) || (at_upper(m.x[i], hi) && w.g[i] < 0.0) {
            continue;
        }
        w.free.push(i);
    }
    let nf = w.free.len();
    if nf == 0 {
        m.edm = 0.0;
        m.status = if spec.fixed.iter().all(|&x| x) {
            FitStatus::NothingToFit
        } else {
            FitStatus::Converged
        };
        finish(model, data, m, spec, opts, w);
        return;
    }
    w.free_new.iter_mut().for_each(|x| *x = false);
    for &i in &w.free {
        w.free_new[lay.inv[i]] = true;
    }
    // Undamped Newton on the exact Hessian: edm and convergence test.
    let exact_pd = w.solver.factor(lay, &w.h, &w.free_new, 0.0);
    if exact_pd {
        newton_step(lay, w);
        let edm = -0.5
            * w.free
                .iter()
                .map(|&i| w.g[i] * w.d[lay.inv[i]])
                .sum::<f64>();
        m.edm = edm;
        if edm >= 0.0 && edm < opts.edm_tol.max(0.01 * f_noise(f, mag)) {
            m.status = FitStatus::Converged;
            finish(model, data, m, spec, opts, w);
            return;
        }
    } else {
        m.edm = f64::INFINITY;
        if trace() {
            let neg: Vec<(usize, f64, f64)> = w
                .free
                .iter()
                .filter(|&&i| w.h[lay.inv[i] * p + lay.inv[i]] <= 0.0)
                .map(|&i| (i, w.h[lay.inv[i] * p + lay.inv[i]], m.x[i]))
                .collect();
            eprintln!("  not PD; non-positive diagonal: {neg:?}");
        }
    }
    if m.iter >= opts.max_iter {
        m.status = FitStatus::MaxIterations;
        finish(model, data, m, spec, opts, w);
        return;
    }
    m.iter += 1;
    // The step matrix: exact Hessian where it is positive definite; far from the
    // minimum the expected information (scoring); near it, the damped exact Hessian.
    // A positive-definite exact Hessian always gets the undamped Newton step first.
    let mut lambda = if exact_pd { 0.0 } else { m.lambda };
    let mut undamped_ready = exact_pd;
    if !exact_pd {
        if m.far {
            model.eval_block(&m.x, data, &mut w.s, Some(&mut w.g), Some(&mut w.h), true);
            m.evals += 1;
            w.h_is_fisher = true;
            lambda = 0.0;
        } else {
            lambda = lambda.max(1e-3);
        }
    }
    // Rejected steps are first shortened along the same direction (backtracking on
    // the projected path), then damped further (a new factorisation).
    let mut t = 1.0;
    for _attempt in 0..60 {
        if !undamped_ready {
            if !w.solver.factor(lay, &w.h, &w.free_new, lambda) {
                lambda = raise(lambda);
                continue;
            }
            newton_step(lay, w);
        }
        undamped_ready = true;
        // clip to the bounds and predict the decrease of the quadratic model
        m.x_trial.copy_from_slice(&m.x);
        w.step.iter_mut().for_each(|x| *x = 0.0);
        let mut gs = 0.0;
        for &i in &w.free {
            let (lo, hi) = spec.bounds[i];
            m.x_trial[i] = (m.x[i] + t * w.d[lay.inv[i]]).clamp(lo, hi);
            w.step[i] = m.x_trial[i] - m.x[i];
            gs += w.g[i] * w.step[i];
        }
        let shs = lay.quad_form(&w.h, &w.step);
        let pred = -(gs + 0.5 * shs);
        if trace() {
            eprintln!(
                "iter {} f {:.12} edm {:.3e} lambda {:.1e} pred {:.3e} exact_pd {} far {}",
                m.iter, f, m.edm, lambda, pred, exact_pd, m.far
            );
        }
        let noise = f_noise(f, mag);
        // A full Newton step on a positive-definite Hessian that stays inside the
        // bounds is taken without evaluating twice_nll first: the next
        // iteration's evaluation checks it, and an uphill step is undone (after
        // which every step of this fit is checked before it is taken).
        if !m.checked && exact_pd && lambda == 0.0 && t == 1.0 && pred > 0.0 {
            let inside = w
                .free
                .iter()
                .all(|&i| m.x_trial[i] == m.x[i] + w.d[lay.inv[i]]);
            if inside {
                m.x_prev.clone_from(&m.x);
                m.f_prev = f;
                m.x.copy_from_slice(&m.x_trial);
                m.unverified = true;
                m.far = false;
                m.lambda = 0.0;
                return;
            }
        }
        if !(pred > 0.0) {
            if pred.abs() <= noise && m.edm < 1e-6 {
                m.status = FitStatus::Converged;
                finish(model, data, m, spec, opts, w);
                return;
            }
            lambda = raise(lambda);
            undamped_ready = false;
            t = 1.0;
            continue;
        }
        let ft = model.eval(&m.x_trial, data, &mut w.s, None, None);
        m.evals += 1;
        let actual = f - ft;
        if ft.is_finite() && actual > -noise && (actual >= 1e-4 * pred || pred < noise) {
            let rho = actual / pred;
            m.x.copy_from_slice(&m.x_trial);
            m.f = ft;
            m.far = actual > 1.0;
            m.lambda = if rho > 0.75 {
                if lambda < 1e-9 { 0.0 } else { lambda * 0.1 }
            } else if rho < 0.25 {
                (lambda * 4.0).max(1e-6)
            } else {
                lambda
            };
            return;
        }
        if pred < noise && m.edm < 1e-6 {
            // nothing measurable left to gain: this point is the minimum
            m.status = FitStatus::Converged;
            m.stop = true;
            return;
        }
        if t > 0.1 {
            t *= 0.5;
        } else {
            lambda = raise(lambda);
            undamped_ready = false;
            t = 1.0;
        }
    }
    m.lambda = lambda;
    m.status = FitStatus::Stalled;
    finish(model, data, m, spec, opts, w);
}

/// Newton direction `d = -H^-1 g` on the free set, from the current factorisation (permuted order).
fn newton_step<S>(lay: &HessianLayout, w: &mut Work<S>) {
    w.d.iter_mut().for_each(|x| *x = 0.0);
    for &i in &w.free {
        w.d[lay.inv[i]] = -w.g[i];
    }
    w.solver.solve(&w.h, &mut w.d);
}

/// Finish a member: covariance from the exact Hessian at `m.x` (already in `w`
/// unless a scoring matrix replaced it).
fn finish<L: Likelihood>(
    model: &L,
    data: &L::Data,
    m: &mut Member,
    spec: &FitSpec,
    opts: &FitOptions,
    w: &mut Work<L::Scratch>,
) {
    m.done = true;
    if !opts.covariance || !m.f.is_finite() {
        return;
    }
    let lay = model.layout();
    if w.h_is_fisher {
        model.eval_block(&m.x, data, &mut w.s, Some(&mut w.g), Some(&mut w.h), false);
        m.evals += 1;
        w.h_is_fisher = false;
    }
    let p = m.x.len();
    let nfix: Vec<usize> = (0..p).filter(|&i| !spec.fixed[i]).collect();
    let n = nfix.len();
    if n == 0 {
        m.cov = Some(vec![0.0; p * p]);
        return;
    }
    let mut full = vec![0.0; p * p];
    lay.expand(&w.h, &mut full);
    let mut chol = Chol::new(n);
    if chol.factor(n, |a, b| full[nfix[a] * p + nfix[b]]) {
        let mut inv = vec![0.0; n * n];
        chol.inverse(&mut inv);
        let mut cov = vec![0.0; p * p];
        for a in 0..n {
            for b in 0..n {
                cov[nfix[a] * p + nfix[b]] = 2.0 * inv[a * n + b];
            }
        }
        m.cov = Some(cov);
    } else {
        m.not_pd = true;
    }
}
