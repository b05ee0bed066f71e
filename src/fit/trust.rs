//! The robust strategy: a trust-region Newton method on the exact Hessian.
//!
//! Each iteration evaluates twice_nll, its gradient `g` and exact Hessian `H`
//! and minimises the quadratic model `g^T s + s^T H s / 2` over steps `s` with
//! `|D s| <= radius` that keep the parameters inside their bounds, where `D`
//! holds `sqrt|H_ii|` per parameter (so that the radius is measured in units
//! of the parameters' own widths). Where `H` is
//! positive definite and the Newton step fits, the step is Newton's (exact, so
//! convergence is quadratic). Otherwise Steihaug's truncated conjugate
//! gradients (preconditioned by `D^2`) solve the subproblem: they stop at the
//! region's edge, follow a direction of negative curvature to the edge, and
//! stop where a parameter reaches a bound (which is then held at the next
//! iteration when its gradient points outward).
//!
//! A trial step is accepted when `rho = actual / predicted decrease` is
//! positive enough; the radius doubles after good steps that reached the edge
//! and shrinks to a quarter of the step after poor ones. When the radius
//! collapses without an accepted step, the subproblem is solved once more on
//! the expected (Fisher) information, which is positive semi-definite (a
//! scoring restart with a fresh radius); only when that fails too does the fit
//! stop as stalled.

use super::newton::{f_noise, finish, newton_step, trace};
use super::{FitOptions, FitSpec, FitStatus, Member, Work};
use crate::model::{HessianLayout, Likelihood};

/// Radius of a fresh trust region (scaled units: about one parameter width).
const RADIUS0: f64 = 1.0;
/// Steps predicted to gain less than this are not worth an evaluation when edm is small.
const EDM_SMALL: f64 = 1e-6;

/// Conjugate-gradient work vectors, all in the layout's new (permuted) order.
#[derive(Default)]
pub(super) struct CgWork {
    /// Gradient on the free set (0 elsewhere).
    g: Vec<f64>,
    /// Scale `D`.
    d: Vec<f64>,
    /// Step.
    s: Vec<f64>,
    /// Residual `g + H s`.
    r: Vec<f64>,
    /// Preconditioned residual.
    z: Vec<f64>,
    /// Search direction.
    p: Vec<f64>,
    /// `H p`.
    hp: Vec<f64>,
    /// Step bounds from the parameter bounds.
    lo: Vec<f64>,
    hi: Vec<f64>,
    /// Taking part in the subproblem (free and not held at a bound by it).
    act: Vec<bool>,
}

impl CgWork {
    fn ensure(&mut self, n: usize) {
        if self.g.len() != n {
            for v in [
                &mut self.g,
                &mut self.d,
                &mut self.s,
                &mut self.r,
                &mut self.z,
                &mut self.p,
                &mut self.hp,
                &mut self.lo,
                &mut self.hi,
            ] {
                v.resize(n, 0.0);
            }
            self.act.resize(n, false);
        }
    }
}

/// Hand a member over to the trust-region strategy (its next iteration starts it).
pub(super) fn enter<S>(m: &mut Member, _w: &Work<S>) {
    m.trust = true;
    m.radius = RADIUS0;
    m.stop = false;
    if trace() {
        eprintln!("  -> trust region at iteration {} f {:.12}", m.iter, m.f);
    }
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Largest `tau >= 0` with `|D (s + tau p)| <= radius` (the region's edge).
fn to_edge(d: &[f64], s: &[f64], p: &[f64], act: &[bool], radius: f64) -> f64 {
    let (mut a, mut b, mut c) = (0.0, 0.0, 0.0);
    for k in 0..s.len() {
        if act[k] {
            let (ds, dp) = (d[k] * s[k], d[k] * p[k]);
            a += dp * dp;
            b += ds * dp;
            c += ds * ds;
        }
    }
    if a <= 0.0 {
        return 0.0;
    }
    let c = c - radius * radius;
    // positive root of a tau^2 + 2 b tau + c = 0 (c <= 0 inside the region)
    let disc = (b * b - a * c).max(0.0).sqrt();
    if b > 0.0 {
        (-c / (b + disc)).max(0.0)
    } else {
        ((disc - b) / a).max(0.0)
    }
}

/// Largest `tau >= 0` keeping `s + tau p` inside the step bounds, and the
/// coordinate that limits it.
fn to_bound(c: &CgWork, act: &[bool]) -> (f64, Option<usize>) {
    let mut t = f64::INFINITY;
    let mut who = None;
    for k in 0..c.s.len() {
        if !act[k] || c.p[k] == 0.0 {
            continue;
        }
        let room = if c.p[k] > 0.0 {
            (c.hi[k] - c.s[k]) / c.p[k]
        } else {
            (c.lo[k] - c.s[k]) / c.p[k]
        };
        let room = room.max(0.0);
        if room < t {
            t = room;
            who = Some(k);
        }
    }
    (t, who)
}

/// Steihaug's truncated CG for `min g^T s + s^T H s / 2`, `|D s| <= radius`,
/// `lo <= s <= hi`, over `c.act`; leaves the step in `c.s`. Returns true when
/// the step ended on the region's edge.
fn steihaug(lay: &HessianLayout, h: &[f64], c: &mut CgWork, radius: f64) -> bool {
    let n = c.s.len();
    // A coordinate that blocks the very first move is held and the solve
    // restarted, at most once per coordinate.
    'restart: for _ in 0..=n {
        c.s.fill(0.0);
        for k in 0..n {
            c.r[k] = if c.act[k] { c.g[k] } else { 0.0 };
            c.z[k] = if c.act[k] {
                c.r[k] / (c.d[k] * c.d[k])
            } else {
                0.0
            };
            c.p[k] = -c.z[k];
        }
        let mut rz = dot(&c.r, &c.z);
        if !(rz > 0.0) {
            return false;
        }
        let eta = 0.5f64.min(rz.sqrt().sqrt());
        let stop = eta * rz.sqrt();
        let maxit = 2 * n + 10;
        for it in 0..maxit {
            lay.matvec(h, &c.p, &mut c.hp);
            for k in 0..n {
                if !c.act[k] {
                    c.hp[k] = 0.0;
                }
            }
            let php = dot(&c.p, &c.hp);
            let (tb, who) = to_bound(c, &c.act);
            if it == 0
                && tb == 0.0
                && let Some(k) = who
            {
                c.act[k] = false;
                continue 'restart;
            }
            if !(php > 0.0) {
                // negative curvature: to the edge (or the first bound)
                let te = to_edge(&c.d, &c.s, &c.p, &c.act, radius);
                let t = te.min(tb);
                for k in 0..n {
                    c.s[k] += t * c.p[k];
                }
                return te <= tb;
            }
            let alpha = rz / php;
            let te = to_edge(&c.d, &c.s, &c.p, &c.act, radius);
            if alpha >= te.min(tb) {
                let t = te.min(tb);
                for k in 0..n {
                    c.s[k] += t * c.p[k];
                }
                return te <= tb;
            }
            for k in 0..n {
                c.s[k] += alpha * c.p[k];
                c.r[k] += alpha * c.hp[k];
            }
            for k in 0..n {
                c.z[k] = if c.act[k] {
                    c.r[k] / (c.d[k] * c.d[k])
                } else {
                    0.0
                };
            }
            let rz_new = dot(&c.r, &c.z);
            if !(rz_new.sqrt() > stop) {
                return false;
            }
            let beta = rz_new / rz;
            rz = rz_new;
            for k in 0..n {
                c.p[k] = -c.z[k] + beta * c.p[k];
            }
        }
        return false;
    }
    false
}

/// One trust-region iteration of one member.
pub(super) fn iterate<L: Likelihood>(
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
    m.outside = model.outside_domain(&w.s, data);
    w.h_is_fisher = false;
    if !f.is_finite() {
        m.f = f;
        m.status = FitStatus::Stalled;
        m.done = true;
        return;
    }
    m.f = f;
    if m.stop {
        finish(model, data, m, spec, opts, w);
        return;
    }
    super::newton::free_set(lay, spec, &m.x, w);
    if w.free.is_empty() {
        m.edm = 0.0;
        m.status = FitStatus::Converged;
        finish(model, data, m, spec, opts, w);
        return;
    }
    super::newton::drop_flat(lay, w, &mut m.flat);
    if w.free.is_empty() {
        m.edm = 0.0;
        m.status = FitStatus::Converged;
        finish(model, data, m, spec, opts, w);
        return;
    }
    let edm_of = |w: &Work<L::Scratch>| -> f64 {
        -0.5 * w
            .free
            .iter()
            .map(|&i| w.g[i] * w.d[lay.inv[i]])
            .sum::<f64>()
    };
    let noise = f_noise(f, mag);
    let exact_pd = w.solver.factor(lay, &w.h, &w.free_new, 0.0);
    // edm of the Newton step; where H is not positive definite, of a slightly
    // damped one (used only to recognise a minimum in a flat direction, where
    // no step gains anything measurable)
    let mut edm_flat = f64::INFINITY;
    if exact_pd {
        newton_step(lay, w);
        let edm = edm_of(w);
        m.edm = edm;
        edm_flat = edm;
        if edm >= 0.0 && edm < opts.edm_tol.max(0.01 * noise) {
            m.status = FitStatus::Converged;
            finish(model, data, m, spec, opts, w);
            return;
        }
    } else {
        m.edm = f64::INFINITY;
        if w.solver.factor(lay, &w.h, &w.free_new, 1e-9) {
            newton_step(lay, w);
            edm_flat = edm_of(w).max(0.0);
        }
    }
    if m.iter >= opts.max_iter {
        m.status = FitStatus::MaxIterations;
        finish(model, data, m, spec, opts, w);
        return;
    }
    m.iter += 1;
    m.trust_iter += 1;

    // scale D (original order, kept across iterations) and the subproblem's vectors
    if m.scale.len() != p {
        m.scale = vec![0.0; p];
    }
    let mut dmax: f64 = 0.0;
    for &i in &w.free {
        let k = lay.inv[i];
        let hii = w.h[lay.pos(k, k)].abs();
        m.scale[i] = hii.sqrt();
        dmax = dmax.max(m.scale[i]);
    }
    let dfloor = (1e-8 * dmax).max(1e-150);
    w.cg.ensure(p);
    let newton_ok = exact_pd;
    let mut fisher = false;
    loop {
        {
            let c = &mut w.cg;
            c.g.fill(0.0);
            c.act.fill(false);
            for &i in &w.free {
                let k = lay.inv[i];
                let (lo, hi) = spec.bounds[i];
                c.g[k] = w.g[i];
                c.d[k] = m.scale[i].max(dfloor);
                c.lo[k] = lo - m.x[i];
                c.hi[k] = hi - m.x[i];
                c.act[k] = true;
            }
        }
        for _attempt in 0..40 {
            // the step: Newton's where it fits, else Steihaug-CG
            let mut edge = false;
            let use_newton = !fisher && newton_ok && {
                let c = &w.cg;
                let mut norm2 = 0.0;
                let mut inside = true;
                for &i in &w.free {
                    let k = lay.inv[i];
                    let v = w.d[k];
                    norm2 += (c.d[k] * v) * (c.d[k] * v);
                    inside &= v >= c.lo[k] && v <= c.hi[k];
                }
                inside && norm2.sqrt() <= m.radius
            };
            if use_newton {
                for &i in &w.free {
                    let k = lay.inv[i];
                    w.cg.s[k] = w.d[k];
                }
            } else {
                for &i in &w.free {
                    w.cg.act[lay.inv[i]] = true;
                }
                edge = steihaug(lay, &w.h, &mut w.cg, m.radius);
            }
            m.x_trial.copy_from_slice(&m.x);
            w.step.iter_mut().for_each(|x| *x = 0.0);
            let mut gs = 0.0;
            let mut snorm2 = 0.0;
            for &i in &w.free {
                let k = lay.inv[i];
                let (lo, hi) = spec.bounds[i];
                m.x_trial[i] = (m.x[i] + w.cg.s[k]).clamp(lo, hi);
                w.step[i] = m.x_trial[i] - m.x[i];
                gs += w.g[i] * w.step[i];
                snorm2 += (w.cg.d[k] * w.step[i]).powi(2);
            }
            let snorm = snorm2.sqrt();
            let shs = lay.quad_form(&w.h, &w.step);
            let pred = -(gs + 0.5 * shs);
            if trace() {
                eprintln!(
                    "trust iter {} f {:.12} edm {:.3e} radius {:.3e} |Ds| {:.3e} pred {:.3e} newton {} edge {} fisher {}",
                    m.iter, f, m.edm, m.radius, snorm, pred, use_newton, edge, fisher
                );
            }
            if !(pred > noise) && edm_flat < EDM_SMALL {
                // nothing measurable left to gain: this point is the minimum
                m.edm = edm_flat;
                m.status = FitStatus::Converged;
                finish(model, data, m, spec, opts, w);
                return;
            }
            if !(pred > 0.0) || snorm == 0.0 {
                m.radius *= 0.25;
                if m.radius < 1e-12 {
                    break;
                }
                continue;
            }
            let ft = model.eval(&m.x_trial, data, &mut w.s, None, None);
            m.evals += 1;
            let actual = f - ft;
            let rho = actual / pred;
            if ft.is_finite() && actual > -noise && (rho >= 1e-4 || pred < noise) {
                m.x.copy_from_slice(&m.x_trial);
                m.f = ft;
                if rho > 0.75 && (edge || use_newton) {
                    m.radius = m.radius.max(2.0 * snorm);
                } else if rho < 0.25 {
                    m.radius = 0.25 * snorm;
                }
                if fisher {
                    m.radius = m.radius.max(RADIUS0);
                }
                return;
            }
            m.radius = 0.25 * snorm.min(m.radius);
            if m.radius < 1e-12 * (1.0 + snorm) {
                break;
            }
        }
        if fisher {
            break;
        }
        // restart from the Fisher (scoring) model with a fresh radius
        model.eval_block(&m.x, data, &mut w.s, Some(&mut w.g), Some(&mut w.h), true);
        m.evals += 1;
        w.h_is_fisher = true;
        fisher = true;
        m.radius = RADIUS0;
    }
    m.status = FitStatus::Stalled;
    finish(model, data, m, spec, opts, w);
}
