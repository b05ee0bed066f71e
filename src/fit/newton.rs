//! The fast path: projected Newton steps on the exact Hessian, scoring steps
//! far from the minimum, backtracking and Levenberg-Marquardt damping. Where
//! it finds no decreasing step it hands the member to [`super::trust`]
//! (unless `FitOptions::robust` is off).

use super::covariance::{BLOCK_COVARIANCE_MIN, block_covariance, dense_covariance};
use super::{FitOptions, FitSpec, FitStatus, Member, Work};
use crate::model::{HessianLayout, Likelihood};

/// Consecutive iterations with an indefinite exact Hessian after which the
/// steps use the expected information even close to the minimum.
const NOT_PD_RUN: u32 = 8;

/// Iterations over which a lack of progress is measured, and the progress
/// (twice_nll) below which there is none.
const STAGNANT_ITERS: usize = 10;
const STAGNANT_GAIN: f64 = 1e-7;
/// Largest edm of the expected information accepted at a stagnant point.
const EDM_STAGNANT: f64 = 1e-4;

/// Whether twice_nll (now `f`) fell by less than `STAGNANT_GAIN` over the
/// last `STAGNANT_ITERS` iterations (checked once per such window).
pub(super) fn stagnant(m: &mut Member, f: f64) -> bool {
    let (it0, f0) = m.window;
    if m.iter < it0 + STAGNANT_ITERS {
        return false;
    }
    m.window = (m.iter, f);
    f0 - f < STAGNANT_GAIN
}

pub(super) fn at_lower(x: f64, lo: f64) -> bool {
    x <= lo
}

pub(super) fn at_upper(x: f64, hi: f64) -> bool {
    x >= hi
}

/// Scale of rounding noise in twice_nll near `f`.
pub(super) fn f_noise(f: f64, magnitude: f64) -> f64 {
    1e-13 * f.abs().max(magnitude).max(1.0)
}

/// `GRADFIT_TRACE=1` prints every minimiser iteration to stderr.
pub(super) fn trace() -> bool {
    static T: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *T.get_or_init(|| std::env::var_os("GRADFIT_TRACE").is_some())
}

/// Shortest step fraction tried along one direction before damping further.
const T_MIN: f64 = 0.1;
/// An undamped Newton step that raises twice_nll by more than `OVERSHOOT`
/// times its predicted decrease ran into a wall its Hessian does not see (a
/// bin's rate crossing 0, where the curvature jumps): its direction is then
/// searched down to `T_MIN_OVERSHOOT`, which lands at the wall.
const OVERSHOOT: f64 = 100.0;
const T_MIN_OVERSHOOT: f64 = 1e-4;

/// The step fraction after a rejected trial at `t` with slope term `gs`
/// (`g . step`, negative) and actual decrease `actual` (twice_nll before minus
/// after): the minimum of the parabola through the start value, the slope and
/// the trial value, kept within [0.05 t, 0.5 t] (0.05 t where the trial value is
/// not finite or the parabola has no minimum).
pub(super) fn shorten(t: f64, gs: f64, actual: f64) -> f64 {
    // parabola phi(tau) = f + (gs / t) tau + c (tau / t)^2 with c = -actual - gs
    let c = -actual - gs;
    let tau = if c > 0.0 && c.is_finite() {
        -gs * t / (2.0 * c)
    } else {
        0.0
    };
    tau.clamp(0.05 * t, 0.5 * t)
}

/// edm below which a verified-later Newton step is followed by a check with
/// the gradient alone (see [`light_check`]).
const LIGHT_EDM: f64 = 1e-6;

/// The free parameters at `x` (not fixed, not held at a bound by the
/// gradient in `w.g`): `w.free` (original indices) and `w.free_new`.
pub(super) fn free_set<S>(lay: &HessianLayout, spec: &FitSpec, x: &[f64], w: &mut Work<S>) {
    w.free.clear();
    for i in 0..x.len() {
        if spec.fixed[i] {
            continue;
        }
        let (lo, hi) = spec.bounds[i];
        if (at_lower(x[i], lo) && w.g[i] > 0.0) || (at_upper(x[i], hi) && w.g[i] < 0.0) {
            continue;
        }
        w.free.push(i);
    }
    w.free_new.iter_mut().for_each(|x| *x = false);
    for &i in &w.free {
        w.free_new[lay.inv[i]] = true;
    }
}

/// Drop from the free set the parameters that do not affect twice_nll at
/// this point: a zero gradient and a zero row of the exact Hessian over the
/// free set (a peak's position and width when its yield is fixed at 0).
/// Steps, the convergence test and the covariance leave them out, so they
/// stay where they are; `flat` marks them (original order, empty when none).
/// Costs one look at each free parameter's gradient and diagonal unless a
/// candidate exists.
pub(super) fn drop_flat<S>(lay: &HessianLayout, w: &mut Work<S>, flat: &mut Vec<bool>) {
    flat.clear();
    let cand = |w: &Work<S>, i: usize| {
        let a = lay.inv[i];
        w.g[i] == 0.0 && w.h[lay.pos(a, a)] == 0.0
    };
    if !w.free.iter().any(|&i| cand(w, i)) {
        return;
    }
    // candidates (new order) with a nonzero coupling to a free parameter are not flat
    let mut is_flat = vec![false; lay.n];
    for &i in &w.free {
        is_flat[lay.inv[i]] = cand(w, i);
    }
    let coupled: Vec<(usize, usize)> = {
        let mut v = Vec::new();
        lay.for_each_entry(|a, b| {
            if a != b
                && (is_flat[a] || is_flat[b])
                && w.free_new[a]
                && w.free_new[b]
                && w.h[lay.pos(a, b)] != 0.0
            {
                v.push((a, b));
            }
        });
        v
    };
    for (a, b) in coupled {
        is_flat[a] = false;
        is_flat[b] = false;
    }
    if !is_flat.iter().any(|&f| f) {
        return;
    }
    flat.resize(lay.n, false);
    w.free.retain(|&i| {
        let a = lay.inv[i];
        if is_flat[a] {
            flat[i] = true;
            w.free_new[a] = false;
        }
        !is_flat[a]
    });
}

/// After a Newton step taken close to the minimum (edm below `LIGHT_EDM`)
/// in a fit that wants no covariance: evaluate twice_nll and the gradient
/// only, and estimate edm with the previous point's factorised Hessian (the
/// step was small, so it differs from the new one by about the step's
/// relative size). Below tolerance the fit has converged and the Hessian
/// evaluation is saved; otherwise (false) the iteration continues as usual.
/// An uphill step is undone here as in [`iterate`] (true).
fn light_check<L: Likelihood>(
    model: &L,
    data: &L::Data,
    spec: &FitSpec,
    opts: &FitOptions,
    m: &mut Member,
    w: &mut Work<L::Scratch>,
) -> bool {
    m.light = false;
    let lay = model.layout();
    let mag = model.magnitude(data);
    let f = model.eval(&m.x, data, &mut w.s, Some(&mut w.g), None);
    m.evals += 1;
    if m.unverified {
        m.unverified = false;
        if !(f <= m.f_prev + f_noise(m.f_prev, mag)) {
            m.x.copy_from_slice(&m.x_prev);
            m.f = m.f_prev;
            m.checked = true;
            return true;
        }
    }
    if !f.is_finite() {
        return false;
    }
    free_set(lay, spec, &m.x, w);
    if !m.flat.is_empty() {
        // still flat only while their gradient stays exactly zero
        if w.free.iter().any(|&i| m.flat[i] && w.g[i] != 0.0) {
            return false;
        }
        let flat = &m.flat;
        w.free.retain(|&i| !flat[i]);
        for (i, &f) in flat.iter().enumerate() {
            if f {
                w.free_new[lay.inv[i]] = false;
            }
        }
    }
    if w.free.is_empty() || !w.solver.factored_for(&w.free_new) {
        return false;
    }
    newton_step(lay, w);
    let edm = -0.5
        * w.free
            .iter()
            .map(|&i| w.g[i] * w.d[lay.inv[i]])
            .sum::<f64>();
    if edm >= 0.0 && edm < opts.edm_tol.max(0.01 * f_noise(f, mag)) {
        m.f = f;
        m.edm = edm;
        m.outside = model.outside_domain(&w.s, data);
        m.status = FitStatus::Converged;
        finish(model, data, m, spec, opts, w);
        return true;
    }
    false
}

/// Next damping value after a failure. The first damping after a failed
/// undamped step starts from `mem`, the damping the last accepted step left
/// (when below the default 1e-4): where the exact Hessian is positive
/// definite but its Newton step overshoots (a rate's curvature jumps where a
/// bin's expected rate reaches 0), each iteration then damps less than the
/// previous one, so the steps grow geometrically instead of crawling at the
/// default damping.
fn raise(lambda: f64, mem: f64) -> f64 {
    if lambda == 0.0 {
        if mem > 0.0 { mem.min(1e-4) } else { 1e-4 }
    } else {
        lambda * 10.0
    }
}

/// One iteration of one member: evaluate, test convergence, find an accepted step.
pub(super) fn iterate<L: Likelihood>(
    model: &L,
    data: &L::Data,
    spec: &FitSpec,
    opts: &FitOptions,
    m: &mut Member,
    w: &mut Work<L::Scratch>,
) {
    let lay = model.layout();
    let mag = model.magnitude(data);
    if m.light && light_check(model, data, spec, opts, m, w) {
        return;
    }
    let f = model.eval_block(&m.x, data, &mut w.s, Some(&mut w.g), Some(&mut w.h), false);
    m.evals += 1;
    m.outside = model.outside_domain(&w.s, data);
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
    free_set(lay, spec, &m.x, w);
    drop_flat(lay, w, &mut m.flat);
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
                .filter(|&&i| w.h[lay.pos(lay.inv[i], lay.inv[i])] <= 0.0)
                .map(|&i| (i, w.h[lay.pos(lay.inv[i], lay.inv[i])], m.x[i]))
                .collect();
            eprintln!("  not PD; non-positive diagonal: {neg:?}");
        }
    }
    if m.iter >= opts.max_iter {
        m.status = FitStatus::MaxIterations;
        finish(model, data, m, spec, opts, w);
        return;
    }
    if exact_pd {
        m.not_pd_run = 0;
    } else {
        m.not_pd_run += 1;
    }
    m.iter += 1;
    // The step matrix: exact Hessian where it is positive definite; far from the
    // minimum the expected information (scoring); near it, the damped exact Hessian,
    // unless it has been indefinite for a run of iterations (where damping only
    // crawls): then scoring again, with Levenberg-Marquardt damping.
    // A positive-definite exact Hessian always gets the undamped Newton step first.
    let mut lambda = if exact_pd { 0.0 } else { m.lambda };
    let mut undamped_ready = exact_pd;
    let scoring_run = opts.robust && m.not_pd_run >= NOT_PD_RUN;
    if !exact_pd {
        if m.far || scoring_run {
            model.eval_block(&m.x, data, &mut w.s, Some(&mut w.g), Some(&mut w.h), true);
            m.evals += 1;
            w.h_is_fisher = true;
            lambda = 0.0;
            if scoring_run
                && !m.far
                && stagnant(m, f)
                && w.solver.factor(lay, &w.h, &w.free_new, 0.0)
            {
                // No measurable progress for a while where the exact Hessian stays
                // indefinite (at the edge of the likelihood's domain, or at a
                // minimum on a bound with an indefinite curvature beyond it): a
                // minimum when the expected information sees none left to gain.
                newton_step(lay, w);
                let edm_f = -0.5
                    * w.free
                        .iter()
                        .map(|&i| w.g[i] * w.d[lay.inv[i]])
                        .sum::<f64>();
                if (0.0..EDM_STAGNANT).contains(&edm_f) {
                    m.edm = edm_f;
                    m.status = FitStatus::Converged;
                    finish(model, data, m, spec, opts, w);
                    return;
                }
                undamped_ready = true;
            }
        } else {
            lambda = lambda.max(1e-3);
        }
    }
    // Rejected steps are first shortened along the same direction (backtracking on
    // the projected path), then damped further (a new factorisation).
    let mut t = 1.0;
    let mut t_min = T_MIN;
    let mem = if opts.robust { m.lambda } else { 0.0 };
    for _attempt in 0..60 {
        if !undamped_ready {
            if !w.solver.factor(lay, &w.h, &w.free_new, lambda) {
                lambda = raise(lambda, mem);
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
        // A full Newton step on a positive-definite Hessian that stays inside the
        // bounds is taken without evaluating twice_nll first: the next
        // iteration's evaluation checks it, and an uphill step is undone (after
        // which every step of this fit is checked before it is taken). Its
        // predicted decrease is edm (`-(g.d + d.H.d / 2)` with `H d = -g`), so
        // the quadratic form is not needed.
        if !m.checked
            && exact_pd
            && lambda == 0.0
            && t == 1.0
            && m.edm > 0.0
            && w.free
                .iter()
                .all(|&i| m.x_trial[i] == m.x[i] + w.d[lay.inv[i]])
        {
            if trace() {
                eprintln!(
                    "iter {} f {:.12} edm {:.3e} lambda {:.1e} pred {:.3e} exact_pd {} far {}",
                    m.iter, f, m.edm, lambda, m.edm, exact_pd, m.far
                );
            }
            m.x_prev.clone_from(&m.x);
            m.f_prev = f;
            m.x.copy_from_slice(&m.x_trial);
            m.unverified = true;
            m.far = false;
            m.lambda = 0.0;
            // this close to the minimum the next point is very likely converged:
            // check it with the gradient alone (no covariance wanted)
            m.light = opts.robust && !opts.covariance && m.edm < LIGHT_EDM;
            return;
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
        if !(pred > 0.0) {
            if pred.abs() <= noise && m.edm < 1e-6 {
                m.status = FitStatus::Converged;
                finish(model, data, m, spec, opts, w);
                return;
            }
            lambda = raise(lambda, mem);
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
        if opts.robust && exact_pd && lambda == 0.0 && t == 1.0 && actual < -OVERSHOOT * pred {
            t_min = T_MIN_OVERSHOOT;
        }
        if t > t_min {
            t = if opts.robust {
                shorten(t, gs, actual)
            } else {
                0.5 * t
            };
        } else {
            lambda = raise(lambda, mem);
            undamped_ready = false;
            t = 1.0;
            t_min = T_MIN;
        }
    }
    m.lambda = lambda;
    if opts.robust {
        // escalate: the trust-region strategy continues from this point
        super::trust::enter(m, w);
        return;
    }
    m.status = FitStatus::Stalled;
    finish(model, data, m, spec, opts, w);
}

/// Newton direction `d = -H^-1 g` on the free set, from the current factorisation (permuted order).
pub(super) fn newton_step<S>(lay: &HessianLayout, w: &mut Work<S>) {
    w.d.iter_mut().for_each(|x| *x = 0.0);
    for &i in &w.free {
        w.d[lay.inv[i]] = -w.g[i];
    }
    w.solver.solve(lay, &w.h, &mut w.d);
}

/// Finish a member: covariance from the exact Hessian at `m.x` (already in `w`
/// unless a scoring matrix replaced it).
pub(super) fn finish<L: Likelihood>(
    model: &L,
    data: &L::Data,
    m: &mut Member,
    spec: &FitSpec,
    opts: &FitOptions,
    w: &mut Work<L::Scratch>,
) {
    m.done = true;
    if m.status == FitStatus::Converged && m.outside {
        m.status = FitStatus::OutsideDomain;
    }
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
    let held = |i: usize| spec.fixed[i] || m.flat.get(i).copied().unwrap_or(false);
    let n = (0..p).filter(|&i| !held(i)).count();
    if n == 0 {
        m.cov = Some(vec![0.0; p * p]);
        return;
    }
    if n >= BLOCK_COVARIANCE_MIN && lay.n_global < lay.n {
        let held: Vec<bool> = (0..p).map(held).collect();
        match block_covariance(lay, &w.h, &held, &mut w.solver) {
            Some(c) => m.cov = Some(c),
            None => m.not_pd = true,
        }
        return;
    }
    let mut full = vec![0.0; p * p];
    lay.expand(&w.h, &mut full);
    match dense_covariance(&full, p, held) {
        Some(c) => m.cov = Some(c),
        None => m.not_pd = true,
    }
}
