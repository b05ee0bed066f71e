// The batched bounded projected-Newton minimiser for one member, one
// iteration per call: src/fit/mod.rs `iterate` and `finish` for a GPU thread.
// The member's state lives in device memory between launches; members that
// finished are skipped (masked) by the launch.
#pragma once
#include "solver.cuh"

// FitStatus codes (src/gpu/exec/fit.rs maps them back).
#define GF_CONVERGED 0u
#define GF_NOTHING_TO_FIT 1u
#define GF_MAX_ITERATIONS 2u
#define GF_NON_FINITE_START 3u
#define GF_STALLED 4u
#define GF_OUTSIDE_DOMAIN 5u

// Member flags.
#define GF_F_DONE 1u
#define GF_F_FAR 2u
#define GF_F_STOP 4u
#define GF_F_UNVERIFIED 8u
#define GF_F_CHECKED 16u
#define GF_F_HFISHER 32u
#define GF_F_OUTSIDE 64u
#define GF_F_LIGHT 128u
#define GF_F_INLOOP 256u
#define GF_F_READY 512u
#define GF_F_EXACTPD 1024u
#define GF_F_OVERSHOOT 2048u

// Trial steps of one iteration before a fit is reported as stalled.
#define GF_MAX_ATTEMPTS 60u

struct GfMember {
    u64 t;
    SV<double> x, xt, xp, g, h, d, step;
    SV<u32> free_new, free_list;
    const u32* fixed;
    const double* lo;
    const double* hi;
    GfData data;
};

GF_HD GfMember gf_member(const GfParams& p, u64 t) {
    GfMember m;
    u64 ms = p.ms;
    m.t = t;
    m.x = sv(p.st_x, t, ms);
    m.xt = sv(p.st_xt, t, ms);
    m.xp = sv(p.st_xp, t, ms);
    m.g = sv(p.st_g, t, ms);
    m.h = sv(p.st_h, t, ms);
    m.d = sv(p.st_d, t, ms);
    m.step = sv(p.st_step, t, ms);
    m.free_new = sv(p.st_free_new, t, ms);
    m.free_list = sv(p.st_free_list, t, ms);
    u64 sp = (u64)p.mb_spec[t] * p.n_pars;
    m.fixed = p.spec_fixed + sp;
    m.lo = p.spec_lo + sp;
    m.hi = p.spec_hi + sp;
    m.data = gf_data(p, p.mb_data[t]);
    return m;
}

// Scale of rounding noise in twice_nll near f.
GF_HD double gf_noise(double f, double mag) { return 1e-13 * fmax(fmax(fabs(f), mag), 1.0); }

// newton.rs `raise`: the first damping after a failed undamped step starts
// from `mem`, the damping the last accepted step left, when below 1e-4.
GF_HD double gf_raise(double lambda, double mem) {
    if (lambda == 0.0) return mem > 0.0 ? fmin(mem, 1e-4) : 1e-4;
    return lambda * 10.0;
}

// Rejected trials: the step fraction shrinks by parabolic interpolation down to
// GF_T_MIN before the damping grows (newton.rs `shorten`).
#define GF_T_MIN 0.1
// newton.rs OVERSHOOT, T_MIN_OVERSHOOT: an undamped step on a positive-definite
// Hessian that raised twice_nll by more than GF_OVERSHOOT times its predicted
// decrease is shortened down to GF_T_MIN_OVERSHOOT.
#define GF_OVERSHOOT 100.0
#define GF_T_MIN_OVERSHOOT 1e-4
GF_HD double gf_shorten(double t, double gs, double actual) {
    double c = -actual - gs;
    double tau = (c > 0.0 && gf_finite(c)) ? -gs * t / (2.0 * c) : 0.0;
    return fmin(fmax(tau, 0.05 * t), 0.5 * t);
}

// The scoring runs of src/fit/newton.rs: consecutive iterations with an
// indefinite exact Hessian after which steps use the expected information,
// and the stagnation test (iterations, gain, largest edm of the expected
// information) that ends such a run at a minimum.
#define GF_NOT_PD_RUN 8u
#define GF_STAGNANT_ITERS 10u
#define GF_STAGNANT_GAIN 1e-7
#define GF_EDM_STAGNANT 1e-4
// edm below which a Newton step is followed by a gradient-only check (newton.rs LIGHT_EDM)
#define GF_LIGHT_EDM 1e-6

// newton.rs `stagnant`: twice_nll fell by less than GF_STAGNANT_GAIN over the
// last GF_STAGNANT_ITERS iterations (checked once per such window).
GF_HD bool gf_stagnant(const GfParams& p, u64 t, double f) {
    u32 it0 = p.mb_win_iter[t];
    double f0 = p.mb_win_f[t];
    if (p.mb_iter[t] < it0 + GF_STAGNANT_ITERS) return false;
    p.mb_win_iter[t] = p.mb_iter[t];
    p.mb_win_f[t] = f;
    return f0 - f < GF_STAGNANT_GAIN;
}

// Reset member t to the start of a fit from x (already clamped into the bounds).
GF_HD void gf_reset_member(const GfParams& p, u64 t) {
    p.mb_f[t] = GF_NAN;
    p.mb_lambda[t] = 0.0;
    p.mb_edm[t] = GF_INF;
    p.mb_fprev[t] = GF_NAN;
    p.mb_iter[t] = 0;
    p.mb_evals[t] = 0;
    p.mb_status[t] = GF_MAX_ITERATIONS;
    p.mb_flags[t] = GF_F_FAR;
    p.mb_npd[t] = 0;
    p.mb_win_iter[t] = 0;
    p.mb_win_f[t] = GF_INF;
}

// Start member t at its specification's initial values.
GF_HD void gf_fit_init(const GfParams& p, u64 t) {
    GfMember m = gf_member(p, t);
    u64 sp = (u64)p.mb_spec[t] * p.n_pars;
    for (u32 i = 0; i < (u32)p.n_pars; i++) m.x[i] = gf_clamp(p.spec_init[sp + i], m.lo[i], m.hi[i]);
    gf_reset_member(p, t);
}

GF_HD void gf_newton_step(const GfParams& p, const GfMember& m, const GfSolver& sl, u32 nf) {
    for (u32 i = 0; i < (u32)p.n_pars; i++) m.d[i] = 0.0;
    for (u32 k = 0; k < nf; k++) {
        u32 i = m.free_list[k];
        m.d[p.m_inv[i]] = -m.g[i];
    }
    gf_solve(p, sl, m.h, m.d);
}

// Mark done; with want_hess, leave the exact Hessian at x in h (the host
// computes the covariance from it).
GF_HD void gf_finish(const GfParams& p, const GfMember& m, const GfScratch& s) {
    u64 t = m.t;
    p.mb_flags[t] |= GF_F_DONE;
    if (p.mb_status[t] == GF_CONVERGED && (p.mb_flags[t] & GF_F_OUTSIDE)) p.mb_status[t] = GF_OUTSIDE_DOMAIN;
    if (!p.want_hess || !gf_finite(p.mb_f[t])) return;
    if (p.mb_flags[t] & GF_F_HFISHER) {
        gf_eval(p, m.x, m.data, s, GF_EVAL_HESS, m.g, m.h);
        p.mb_evals[t] += 1;
        p.mb_flags[t] &= ~GF_F_HFISHER;
    }
}

// The step search of one iteration (src/fit/newton.rs): up to GF_MAX_ATTEMPTS
// trial steps, shortened along the direction and then damped, from the state
// (lambda, tstep, attempt, tmin) at which it starts; `mem` is the damping
// the last accepted step left (see gf_raise). At most p.attempts_per_launch
// attempts run per launch; then the state is parked in the member arrays and
// the next launch resumes it (gf_fit_iterate), so that one member's long
// search never holds a whole launch. The sequence of attempts, and so every
// result, is the same however it is split across launches.
GF_HD void gf_step_search(const GfParams& p, const GfMember& m, const GfSolver& sl, u32 nf, double f, double edm,
                          bool exact_pd, double lambda, double mem, bool undamped_ready, double tstep,
                          double tmin, u32 attempt0) {
    const u64 t = m.t;
    const u32 np = (u32)p.n_pars;
    const double mag = fabs(m.data.constant);
    const GfScratch s = gf_scratch(p, t);
    u32 budget = p.attempts_per_launch ? (u32)p.attempts_per_launch : GF_MAX_ATTEMPTS;
    u32 here = 0;
    p.mb_flags[t] &= ~(GF_F_INLOOP | GF_F_READY | GF_F_EXACTPD | GF_F_OVERSHOOT);
    for (u32 attempt = attempt0; attempt < GF_MAX_ATTEMPTS; attempt++) {
        if (here == budget) {
            // this launch's share of the search is done: park the state, go on next launch
            // (while undamped, the slot holds -mem: gf_fit_iterate decodes it)
            p.mb_lambda[t] = lambda == 0.0 ? -mem : lambda;
            p.mb_tstep[t] = tstep;
            p.mb_attempt[t] = attempt;
            p.mb_nf[t] = nf;
            p.mb_flags[t] |= GF_F_INLOOP | (undamped_ready ? GF_F_READY : 0u) | (exact_pd ? GF_F_EXACTPD : 0u) |
                             (tmin != GF_T_MIN ? GF_F_OVERSHOOT : 0u);
            return;
        }
        here++;
        if (!undamped_ready) {
            if (!gf_factor(p, sl, m.h, m.free_new, lambda)) {
                lambda = gf_raise(lambda, mem);
                continue;
            }
            gf_newton_step(p, m, sl, nf);
        }
        undamped_ready = true;
        // clip to the bounds and predict the decrease of the quadratic model
        for (u32 i = 0; i < np; i++) {
            m.xt[i] = m.x[i];
            m.step[i] = 0.0;
        }
        double gs = 0.0;
        for (u32 k = 0; k < nf; k++) {
            u32 i = m.free_list[k];
            double xi = gf_clamp(m.x[i] + tstep * m.d[p.m_inv[i]], m.lo[i], m.hi[i]);
            m.xt[i] = xi;
            m.step[i] = xi - m.x[i];
            gs += m.g[i] * m.step[i];
        }
        double shs = gf_quad_form(p, m.h, m.step);
        double pred = -(gs + 0.5 * shs);
        double noise = gf_noise(f, mag);
        // a full Newton step on a positive-definite Hessian that stays inside the
        // bounds is taken without evaluating twice_nll first; the next
        // iteration's evaluation checks it (as the CPU minimiser does; its predicted
        // decrease is edm)
        u32 fl = p.mb_flags[t];
        if (!(fl & GF_F_CHECKED) && exact_pd && lambda == 0.0 && tstep == 1.0 && edm > 0.0) {
            bool inside = true;
            for (u32 k = 0; k < nf; k++) {
                u32 i = m.free_list[k];
                if (m.xt[i] != m.x[i] + m.d[p.m_inv[i]]) {
                    inside = false;
                    break;
                }
            }
            if (inside) {
                for (u32 i = 0; i < np; i++) {
                    m.xp[i] = m.x[i];
                    m.x[i] = m.xt[i];
                }
                p.mb_fprev[t] = f;
                // this close to the minimum the next point is very likely converged:
                // check it with the gradient alone (no Hessian wanted)
                u32 light = (p.robust && !p.want_hess && edm < GF_LIGHT_EDM) ? GF_F_LIGHT : 0u;
                p.mb_flags[t] = ((fl | GF_F_UNVERIFIED) & ~GF_F_FAR) | light;
                p.mb_lambda[t] = 0.0;
                return;
            }
        }
        if (!(pred > 0.0)) {
            if (fabs(pred) <= noise && edm < 1e-6) {
                p.mb_status[t] = GF_CONVERGED;
                gf_finish(p, m, s);
                return;
            }
            lambda = gf_raise(lambda, mem);
            undamped_ready = false;
            tstep = 1.0;
            continue;
        }
        double ft = gf_eval(p, m.xt, m.data, s, GF_EVAL_VALUE, m.g, m.h);
        p.mb_evals[t] += 1;
        double actual = f - ft;
        if (gf_finite(ft) && actual > -noise && (actual >= 1e-4 * pred || pred < noise)) {
            double rho = actual / pred;
            for (u32 i = 0; i < np; i++) m.x[i] = m.xt[i];
            p.mb_f[t] = ft;
            if (actual > 1.0)
                p.mb_flags[t] |= GF_F_FAR;
            else
                p.mb_flags[t] &= ~GF_F_FAR;
            double nl;
            if (rho > 0.75)
                nl = lambda < 1e-9 ? 0.0 : lambda * 0.1;
            else if (rho < 0.25)
                nl = fmax(lambda * 4.0, 1e-6);
            else
                nl = lambda;
            p.mb_lambda[t] = nl;
            return;
        }
        if (pred < noise && edm < 1e-6) {
            // nothing measurable left to gain: this point is the minimum
            p.mb_status[t] = GF_CONVERGED;
            p.mb_flags[t] |= GF_F_STOP;
            return;
        }
        if (p.robust && exact_pd && lambda == 0.0 && tstep == 1.0 && actual < -GF_OVERSHOOT * pred)
            tmin = GF_T_MIN_OVERSHOOT;
        if (tstep > tmin) {
            tstep = p.robust ? gf_shorten(tstep, gs, actual) : 0.5 * tstep;
        } else {
            lambda = gf_raise(lambda, mem);
            undamped_ready = false;
            tstep = 1.0;
            tmin = GF_T_MIN;
        }
    }
    p.mb_lambda[t] = lambda;
    p.mb_status[t] = GF_STALLED;
    gf_finish(p, m, s);
}

// One minimiser iteration of member t: evaluate, test convergence, find an accepted step.
GF_HD void gf_fit_iterate(const GfParams& p, u64 t) {
    u32 flags = p.mb_flags[t];
    if (flags & GF_F_DONE) return;
    const GfMember m = gf_member(p, t);
    const GfScratch s = gf_scratch(p, t);
    const GfSolver sl = gf_solver(p, t);
    const u32 np = (u32)p.n_pars;
    const double mag = fabs(m.data.constant);

    if (flags & GF_F_INLOOP) {
        // the step search of this iteration continues (see gf_step_search)
        double pl = p.mb_lambda[t];
        gf_step_search(p, m, sl, p.mb_nf[t], p.mb_f[t], p.mb_edm[t], (flags & GF_F_EXACTPD) != 0, pl > 0.0 ? pl : 0.0,
                       pl > 0.0 ? 0.0 : -pl, (flags & GF_F_READY) != 0, p.mb_tstep[t],
                       (flags & GF_F_OVERSHOOT) ? GF_T_MIN_OVERSHOOT : GF_T_MIN, p.mb_attempt[t]);
        return;
    }

    if (flags & GF_F_LIGHT) {
        // newton.rs `light_check`: after a Newton step taken close to the
        // minimum, the gradient alone and the previous point's factorisation
        flags &= ~GF_F_LIGHT;
        double fl = gf_eval(p, m.x, m.data, s, GF_EVAL_GRAD, m.g, m.h);
        p.mb_evals[t] += 1;
        if (flags & GF_F_UNVERIFIED) {
            flags &= ~GF_F_UNVERIFIED;
            double fprev = p.mb_fprev[t];
            if (!(fl <= fprev + gf_noise(fprev, mag))) {
                for (u32 i = 0; i < np; i++) m.x[i] = m.xp[i];
                p.mb_f[t] = fprev;
                p.mb_flags[t] = flags | GF_F_CHECKED;
                return;
            }
        }
        if (gf_finite(fl)) {
            // the free set must be the one factorised (free_new, free_list unchanged)
            u32 nf = 0;
            bool same = true;
            for (u32 i = 0; i < np; i++) {
                bool fr = !m.fixed[i] && !((m.x[i] <= m.lo[i] && m.g[i] > 0.0) || (m.x[i] >= m.hi[i] && m.g[i] < 0.0));
                if (fr != (m.free_new[p.m_inv[i]] != 0)) {
                    same = false;
                    break;
                }
                if (fr) nf++;
            }
            if (same && nf > 0) {
                gf_newton_step(p, m, sl, nf);
                double acc = 0.0;
                for (u32 k = 0; k < nf; k++) {
                    u32 i = m.free_list[k];
                    acc += m.g[i] * m.d[p.m_inv[i]];
                }
                double edm = -0.5 * acc;
                if (edm >= 0.0 && edm < fmax(p.edm_tol, 0.01 * gf_noise(fl, mag))) {
                    flags &= ~(GF_F_HFISHER | GF_F_OUTSIDE);
                    if (gf_outside_domain(p, m.data, s)) flags |= GF_F_OUTSIDE;
                    p.mb_f[t] = fl;
                    p.mb_edm[t] = edm;
                    p.mb_flags[t] = flags;
                    p.mb_status[t] = GF_CONVERGED;
                    gf_finish(p, m, s);
                    return;
                }
            }
        }
        // not converged: the full evaluation, as usual
    }

    double f = gf_eval(p, m.x, m.data, s, GF_EVAL_HESS, m.g, m.h);
    p.mb_evals[t] += 1;
    flags &= ~(GF_F_HFISHER | GF_F_OUTSIDE);
    if (gf_outside_domain(p, m.data, s)) flags |= GF_F_OUTSIDE;
    if (flags & GF_F_UNVERIFIED) {
        flags &= ~GF_F_UNVERIFIED;
        double fprev = p.mb_fprev[t];
        if (!(f <= fprev + gf_noise(fprev, mag))) {
            // the unchecked Newton step went uphill: go back and damp
            for (u32 i = 0; i < np; i++) m.x[i] = m.xp[i];
            p.mb_f[t] = fprev;
            p.mb_flags[t] = flags | GF_F_CHECKED;
            return;
        }
    }
    if (!gf_finite(f)) {
        p.mb_f[t] = f;
        p.mb_status[t] = p.mb_iter[t] == 0 ? GF_NON_FINITE_START : GF_STALLED;
        p.mb_flags[t] = flags | GF_F_DONE;
        return;
    }
    p.mb_f[t] = f;
    p.mb_flags[t] = flags;
    if (flags & GF_F_STOP) {
        gf_finish(p, m, s);
        return;
    }
    u32 nf = 0;
    for (u32 i = 0; i < np; i++) {
        if (m.fixed[i]) continue;
        double xi = m.x[i], gi = m.g[i];
        if ((xi <= m.lo[i] && gi > 0.0) || (xi >= m.hi[i] && gi < 0.0)) continue;
        m.free_list[nf++] = i;
    }
    if (nf == 0) {
        p.mb_edm[t] = 0.0;
        p.mb_status[t] = p.spec_allfixed[p.mb_spec[t]] ? GF_NOTHING_TO_FIT : GF_CONVERGED;
        gf_finish(p, m, s);
        return;
    }
    for (u32 i = 0; i < np; i++) m.free_new[i] = 0;
    for (u32 k = 0; k < nf; k++) m.free_new[p.m_inv[m.free_list[k]]] = 1;
    // undamped Newton on the exact Hessian: edm and convergence test
    const bool exact_pd = gf_factor(p, sl, m.h, m.free_new, 0.0);
    double edm = GF_INF;
    if (exact_pd) {
        gf_newton_step(p, m, sl, nf);
        double acc = 0.0;
        for (u32 k = 0; k < nf; k++) {
            u32 i = m.free_list[k];
            acc += m.g[i] * m.d[p.m_inv[i]];
        }
        edm = -0.5 * acc;
        p.mb_edm[t] = edm;
        if (edm >= 0.0 && edm < fmax(p.edm_tol, 0.01 * gf_noise(f, mag))) {
            p.mb_status[t] = GF_CONVERGED;
            gf_finish(p, m, s);
            return;
        }
    } else {
        p.mb_edm[t] = edm;
    }
    if (p.mb_iter[t] >= p.max_iter) {
        p.mb_status[t] = GF_MAX_ITERATIONS;
        gf_finish(p, m, s);
        return;
    }
    if (exact_pd)
        p.mb_npd[t] = 0;
    else
        p.mb_npd[t] += 1;
    p.mb_iter[t] += 1;
    // the step matrix: exact Hessian where positive definite; far from the
    // minimum the expected information (scoring); near it, the damped exact
    // Hessian, unless it has been indefinite for a run of iterations (then
    // scoring again, with damping)
    double lambda = exact_pd ? 0.0 : p.mb_lambda[t];
    bool undamped_ready = exact_pd;
    const bool scoring_run = p.robust != 0 && p.mb_npd[t] >= GF_NOT_PD_RUN;
    if (!exact_pd) {
        const bool far = (p.mb_flags[t] & GF_F_FAR) != 0;
        if (far || scoring_run) {
            gf_eval(p, m.x, m.data, s, GF_EVAL_FISHER, m.g, m.h);
            p.mb_evals[t] += 1;
            p.mb_flags[t] |= GF_F_HFISHER;
            lambda = 0.0;
            if (scoring_run && !far && gf_stagnant(p, t, f) && gf_factor(p, sl, m.h, m.free_new, 0.0)) {
                // no measurable progress where the exact Hessian stays indefinite:
                // a minimum when the expected information sees none left to gain
                gf_newton_step(p, m, sl, nf);
                double acc = 0.0;
                for (u32 k = 0; k < nf; k++) {
                    u32 i = m.free_list[k];
                    acc += m.g[i] * m.d[p.m_inv[i]];
                }
                double edm_f = -0.5 * acc;
                if (edm_f >= 0.0 && edm_f < GF_EDM_STAGNANT) {
                    p.mb_edm[t] = edm_f;
                    p.mb_status[t] = GF_CONVERGED;
                    gf_finish(p, m, s);
                    return;
                }
                undamped_ready = true;
            }
        } else {
            lambda = fmax(lambda, 1e-3);
        }
    }
    // rejected steps are first shortened along the same direction, then damped further
    gf_step_search(p, m, sl, nf, f, edm, exact_pd, lambda, p.robust ? p.mb_lambda[t] : 0.0, undamped_ready, 1.0,
                   GF_T_MIN, 0);
}
