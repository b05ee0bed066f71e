// Kernel bodies: one call handles one thread index. kernels/gradfit.cu wraps
// each in a __global__ function; the cuda-emu build calls them in a loop.
#pragma once
#include "fit.cuh"
#include "philox.cuh"

// Test statistics (src/infer/teststat.rs TestStat).
#define GF_Q0 0u
#define GF_Q 1u
#define GF_QTILDE 2u
#define GF_T 3u
#define GF_TTILDE 4u

#ifdef __CUDA_ARCH__
#define GF_ATOMIC_INC(ptr) atomicAdd((ptr), 1u)
#else
#define GF_ATOMIC_INC(ptr) (*(ptr) += 1u)
#endif

// Batched evaluation: member t at ev_theta[i * ms + t] on dataset mb_data[t].
GF_HD void gf_k_eval(const GfParams& p, u64 t) {
    GfMember m = gf_member(p, t);
    GfScratch s = gf_scratch(p, t);
    p.ev_f[t] = gf_eval(p, sv(p.ev_theta, t, p.ms), m.data, s, (u32)p.eval_mode, m.g, m.h);
}

GF_HD void gf_k_fit_init(const GfParams& p, u64 t) { gf_fit_init(p, t); }

GF_HD void gf_k_fit_iterate(const GfParams& p, u64 t) { gf_fit_iterate(p, t); }

GF_HD void gf_k_count_active(const GfParams& p, u64 t) {
    if (!(p.mb_flags[t] & GF_F_DONE)) GF_ATOMIC_INC(p.counter);
}

// Toy data: thread i draws variable i / n_toys of toy toy0 + i % n_toys
// (main bins first, then aux data), as src/model/histfactory/generate.rs.
GF_HD void gf_k_toy_sample(const GfParams& p, u64 i) {
    u64 k = i % p.n_toys;
    u32 var = (u32)(i / p.n_toys);
    GfStream st = gf_stream(p.seed, (u32)(p.toy0 + k), (u32)p.purpose, var);
    if (var < p.n_main) {
        p.data_main[(u64)var * p.nd + k] = gf_poisson(st, p.gen_nu[var]);
    } else {
        u32 a = var - (u32)p.n_main;
        double mean = p.gen_mean[a];
        double v = p.gen_kind[a] == GF_CON_NORMAL ? gf_add(mean, gf_mul(p.gen_sigma[a], gf_normal(st)))
                                                   : gf_poisson(st, mean);
        p.data_aux[(u64)a * p.nd + k] = v;
    }
}

// The parameter-independent constant of dataset k (HistFactoryModel::data_constant).
GF_HD void gf_k_data_const(const GfParams& p, u64 k) {
    double c = 0.0;
    for (u32 b = 0; b < (u32)p.n_main; b++) c += 2.0 * lgamma(p.data_main[(u64)b * p.nd + k] + 1.0);
    for (u32 j = 0; j < (u32)p.n_con; j++) {
        if (p.m_con_kind[j] == GF_CON_NORMAL)
            c += p.m_con_const[j];
        else
            c += 2.0 * lgamma(p.data_aux[(u64)p.m_con_aux[j] * p.nd + k] + 1.0);
    }
    p.data_const[k] = c;
}

// Toy members: 0..n_toys free fits (spec 0), n_toys..2 n_toys POI-fixed fits
// (spec 1). The free fits are set up (this kernel over n_toys members) and run
// first; gf_k_toy_setup_fixed then starts the POI-fixed ones.
GF_HD void gf_k_toy_setup(const GfParams& p, u64 t) {
    p.mb_data[t] = (u32)(t % p.n_toys);
    p.mb_spec[t] = t < p.n_toys ? 0u : 1u;
    gf_fit_init(p, t);
}

GF_HD bool gf_status_ok(u32 s) { return s == GF_CONVERGED || s == GF_NOTHING_TO_FIT; }

// The POI-fixed fit of toy k starts at spec 1's values, with its local
// parameters (those of one bin's block: permuted index >= n_global) at the
// free fit's values where that fit converged (src/infer/toys.rs records_for).
GF_HD void gf_k_toy_setup_fixed(const GfParams& p, u64 k) {
    u64 a = k, t = p.n_toys + k;
    p.mb_data[t] = (u32)k;
    p.mb_spec[t] = 1u;
    GfMember m = gf_member(p, t);
    u64 sp = (u64)p.n_pars;
    bool from_free = gf_status_ok(p.mb_status[a]);
    for (u32 i = 0; i < (u32)p.n_pars; i++) {
        double v = p.spec_init[sp + i];
        if (from_free && p.m_inv[i] >= (u32)p.n_global && !m.fixed[i]) v = p.st_x[(u64)i * p.ms + a];
        m.x[i] = gf_clamp(v, m.lo[i], m.hi[i]);
    }
    gf_reset_member(p, t);
}

// A free fit that ended above the POI-fixed fit stopped in a local minimum:
// restart it from the fixed fit's point (src/infer/toys.rs fit_toys).
GF_HD void gf_k_toy_restart(const GfParams& p, u64 k) {
    u64 a = k, b = p.n_toys + k;
    double fa = p.mb_f[a], fb = p.mb_f[b];
    double tol = 1e-9 * fmax(fabs(fa), 1.0);
    u32 r = 0;
    if (gf_status_ok(p.mb_status[a]) && gf_status_ok(p.mb_status[b]) && fb < fa - tol) {
        p.sv_f[k] = fa;
        p.sv_muhat[k] = p.st_x[p.poi * p.ms + a];
        p.sv_status[k] = p.mb_status[a];
        const double* lo = p.spec_lo;  // spec 0: the free fit
        const double* hi = p.spec_hi;
        for (u32 i = 0; i < (u32)p.n_pars; i++)
            p.st_x[(u64)i * p.ms + a] = gf_clamp(p.st_x[(u64)i * p.ms + b], lo[i], hi[i]);
        gf_reset_member(p, a);
        r = 1;
    }
    p.tr_restart[k] = r;
}

GF_HD double gf_from_fits(u32 kind, double mu, double mu_hat, double t) {
    switch (kind) {
        case GF_Q0:
            return mu_hat < 0.0 ? 0.0 : t;
        case GF_Q:
        case GF_QTILDE:
            return mu_hat > mu ? 0.0 : t;
        default:
            return t;
    }
}

// Per-toy record: test statistic (NaN when a fit failed), mu_hat, both twice_nll, both statuses.
GF_HD void gf_k_toy_finalize(const GfParams& p, u64 k) {
    u64 a = k, b = p.n_toys + k;
    double f_first = p.mb_f[a];
    double mu_first = p.st_x[p.poi * p.ms + a];
    u32 s_first = p.mb_status[a];
    if (p.tr_restart[k]) {
        double f_again = f_first, mu_again = mu_first;
        u32 s_again = s_first;
        f_first = p.sv_f[k];
        mu_first = p.sv_muhat[k];
        s_first = p.sv_status[k];
        double tol = 1e-9 * fmax(fabs(f_first), 1.0);
        double f_free = f_first, mu_hat = mu_first;
        u32 s_free = s_first;
        if (gf_status_ok(s_again) && f_again < f_first) {
            f_free = f_again;
            mu_hat = mu_again;
            s_free = s_again;
        }
        double fx = p.mb_f[b];
        u32 sx = p.mb_status[b];
        bool ok = gf_status_ok(s_free) && gf_status_ok(sx) && fx >= f_free - tol;
        double tv = fmax(fx - f_free, 0.0);
        p.tr_stat[k] = ok ? gf_from_fits((u32)p.kind, p.mu, mu_hat, tv) : GF_NAN;
        p.tr_muhat[k] = mu_hat;
        p.tr_ffree[k] = f_free;
        p.tr_ffixed[k] = fx;
        p.tr_sfree[k] = s_free;
        p.tr_sfixed[k] = sx;
        return;
    }
    double tol = 1e-9 * fmax(fabs(f_first), 1.0);
    double fx = p.mb_f[b];
    u32 sx = p.mb_status[b];
    bool ok = gf_status_ok(s_first) && gf_status_ok(sx) && fx >= f_first - tol;
    double tv = fmax(fx - f_first, 0.0);
    p.tr_stat[k] = ok ? gf_from_fits((u32)p.kind, p.mu, mu_first, tv) : GF_NAN;
    p.tr_muhat[k] = mu_first;
    p.tr_ffree[k] = f_first;
    p.tr_ffixed[k] = fx;
    p.tr_sfree[k] = s_first;
    p.tr_sfixed[k] = sx;
}

// Every kernel, for the launch table (name, body).
#define GF_KERNELS(X)                      \
    X(gf_eval_kernel, gf_k_eval)           \
    X(gf_fit_init, gf_k_fit_init)          \
    X(gf_fit_iterate, gf_k_fit_iterate)    \
    X(gf_count_active, gf_k_count_active)  \
    X(gf_toy_sample, gf_k_toy_sample)      \
    X(gf_data_const, gf_k_data_const)      \
    X(gf_toy_setup, gf_k_toy_setup)        \
    X(gf_toy_restart, gf_k_toy_restart)    \
    X(gf_toy_finalize, gf_k_toy_finalize)  \
    X(gf_toy_setup_fixed, gf_k_toy_setup_fixed)
