// The fused HistFactory likelihood for one batch member: twice_nll, its
// gradient and its exact Hessian (or the Fisher information) in packed block
// form. This is src/model/histfactory/kernel.rs, term for term, with two
// changes for a GPU thread: term values are recomputed per sample-bin instead
// of being stored for the whole model, and the Hessian is stored packed.
//
// Packed block Hessian (lower triangle, permuted order; see src/gpu/plan.rs):
// row r starts at m_row_off[r]; its columns are the globals 0..G-1 and then the
// columns m_row_bs[r]..r of its own local block. Entry (r, c), c <= r, is at
//     m_row_off[r] + (c < G ? c : G + c - m_row_bs[r]).
#pragma once
#include "common.cuh"

struct GfParams {
#define GF_PTR(T, name) T* name;
#define GF_U64(name) u64 name;
#define GF_F64(name) double name;
#include "params.def"
#undef GF_PTR
#undef GF_U64
#undef GF_F64
};

// Interpolation codes (src/model/histfactory/interp.rs).
#define GF_CODE0 0u
#define GF_CODE1 1u
#define GF_CODE2 2u
#define GF_CODE4 4u
#define GF_CODE4P 5u
#define GF_NONE 0xFFFFFFFFu

// Constraint kinds.
#define GF_CON_NORMAL 1u
#define GF_CON_POISSON 2u

// Evaluation modes.
#define GF_EVAL_VALUE 0u
#define GF_EVAL_GRAD 1u
#define GF_EVAL_HESS 2u
#define GF_EVAL_FISHER 3u

GF_HD u64 gf_hpos(const GfParams& p, u32 r, u32 c) {
    u32 g = (u32)p.n_global;
    return (u64)p.m_row_off[r] + (c < g ? c : g + c - p.m_row_bs[r]);
}

// Raw (unmapped) interpolated value.
GF_HD double gf_interp_raw_value(u32 code, const double* c, double a) {
    switch (code) {
        case GF_CODE0:
            return a >= 0.0 ? a * c[0] : a * c[1];
        case GF_CODE1:
            return a >= 0.0 ? exp(a * c[0]) : exp(-a * c[1]);
        case GF_CODE2: {
            double qa = c[0], qb = c[1];
            if (a > 1.0) return (qb + 2.0 * qa) * (a - 1.0) + qa + qb;
            if (a < -1.0) return (qb - 2.0 * qa) * (a + 1.0) + qa - qb;
            return a * (qa * a + qb);
        }
        case GF_CODE4: {
            if (a >= 1.0) return exp(a * c[0]);
            if (a <= -1.0) return exp(-a * c[1]);
            return 1.0 + a * (c[2] + a * (c[3] + a * (c[4] + a * (c[5] + a * (c[6] + a * c[7])))));
        }
        default: {  // code 4p
            if (a > 1.0) return a * c[0];
            if (a < -1.0) return a * c[1];
            double a2 = a * a;
            return a * (c[2] + a * c[3] * (15.0 + a2 * (-10.0 + a2 * 3.0)));
        }
    }
}

// Raw value with first and second derivative.
GF_HD void gf_interp_raw(u32 code, const double* c, double a, double& v, double& d1, double& d2) {
    switch (code) {
        case GF_CODE0: {
            double d = a >= 0.0 ? c[0] : c[1];
            v = a * d;
            d1 = d;
            d2 = 0.0;
            return;
        }
        case GF_CODE1: {
            double l = a >= 0.0 ? c[0] : -c[1];
            v = exp(a * l);
            d1 = l * v;
            d2 = l * l * v;
            return;
        }
        case GF_CODE2: {
            double qa = c[0], qb = c[1];
            if (a > 1.0) {
                double s = qb + 2.0 * qa;
                v = s * (a - 1.0) + qa + qb;
                d1 = s;
                d2 = 0.0;
            } else if (a < -1.0) {
                double s = qb - 2.0 * qa;
                v = s * (a + 1.0) + qa - qb;
                d1 = s;
                d2 = 0.0;
            } else {
                v = a * (qa * a + qb);
                d1 = 2.0 * qa * a + qb;
                d2 = 2.0 * qa;
            }
            return;
        }
        case GF_CODE4: {
            if (a >= 1.0 || a <= -1.0) {
                double l = a >= 1.0 ? c[0] : -c[1];
                v = exp(a * l);
                d1 = l * v;
                d2 = l * l * v;
            } else {
                const double* q = c + 2;
                v = 1.0 + a * (q[0] + a * (q[1] + a * (q[2] + a * (q[3] + a * (q[4] + a * q[5])))));
                d1 = q[0] + a * (2.0 * q[1] + a * (3.0 * q[2] + a * (4.0 * q[3] + a * (5.0 * q[4] + a * 6.0 * q[5]))));
                d2 = 2.0 * q[1] + a * (6.0 * q[2] + a * (12.0 * q[3] + a * (20.0 * q[4] + a * 30.0 * q[5])));
            }
            return;
        }
        default: {  // code 4p
            if (a > 1.0) {
                v = a * c[0];
                d1 = c[0];
                d2 = 0.0;
            } else if (a < -1.0) {
                v = a * c[1];
                d1 = c[1];
                d2 = 0.0;
            } else {
                double s = c[2], aa = c[3];
                double a2 = a * a;
                v = a * (s + a * aa * (15.0 + a2 * (-10.0 + a2 * 3.0)));
                d1 = s + aa * a * (30.0 + a2 * (-40.0 + a2 * 18.0));
                d2 = aa * (30.0 + a2 * (-120.0 + a2 * 90.0));
            }
            return;
        }
    }
}

GF_HD double gf_interp_value(const GfParams& p, u32 k, double a) {
    return p.m_ip_off[k] + p.m_ip_scale[k] * gf_interp_raw_value(p.m_ip_code[k], p.m_ip_c + 8 * (u64)k, a);
}

GF_HD void gf_interp_eval(const GfParams& p, u32 k, double a, double& v, double& d1, double& d2) {
    double rv, r1, r2;
    gf_interp_raw(p.m_ip_code[k], p.m_ip_c + 8 * (u64)k, a, rv, r1, r2);
    double sc = p.m_ip_scale[k];
    v = p.m_ip_off[k] + sc * rv;
    d1 = sc * r1;
    d2 = sc * r2;
}

// A member's evaluation scratch.
struct GfScratch {
    SV<double> sbf, sba, nu, w1, w2, jac, mval, md1, md2, ad1, ad2, pre, suf, tv;
};

GF_HD GfScratch gf_scratch(const GfParams& p, u64 t) {
    GfScratch s;
    u64 ms = p.ms;
    s.sbf = sv(p.sc_sbf, t, ms);
    s.sba = sv(p.sc_sba, t, ms);
    s.nu = sv(p.sc_nu, t, ms);
    s.w1 = sv(p.sc_w1, t, ms);
    s.w2 = sv(p.sc_w2, t, ms);
    s.jac = sv(p.sc_jac, t, ms);
    s.mval = sv(p.sc_mval, t, ms);
    s.md1 = sv(p.sc_md1, t, ms);
    s.md2 = sv(p.sc_md2, t, ms);
    s.ad1 = sv(p.sc_ad1, t, ms);
    s.ad2 = sv(p.sc_ad2, t, ms);
    s.pre = sv(p.sc_pre, t, ms);
    s.suf = sv(p.sc_suf, t, ms);
    s.tv = sv(p.sc_tv, t, ms);
    return s;
}

// A dataset as seen by one member.
struct GfData {
    SV<double> main, aux;
    double constant;
};

GF_HD GfData gf_data(const GfParams& p, u32 di) {
    GfData d;
    d.main = sv(p.data_main, di, p.nd);
    d.aux = sv(p.data_aux, di, p.nd);
    d.constant = p.data_const[di];
    return d;
}

// One main bin's term of twice_nll and its derivatives w1 = dt/dnu, w2 =
// d2t/dnu2, with gradfit's extension outside the Poisson domain unless
// strict: src/model/histfactory/kernel.rs `bin_term` (same constants).
#define GF_RATE_FLOOR 1e-6
#define GF_EMPTY_BIN_WIDTH 1e-3
GF_HD double gf_bin_term(double n, double nu, bool strict, double* w1, double* w2) {
    if (n > 0.0) {
        if (nu >= GF_RATE_FLOOR || (strict && nu > 0.0)) {
            *w1 = 2.0 * (1.0 - n / nu);
            *w2 = 2.0 * n / (nu * nu);
            return 2.0 * (nu - n * log(nu));
        }
        if (strict || !gf_finite(nu)) return GF_INF;
        double e = GF_RATE_FLOOR;
        double d = nu - e;
        double c = n / (e * e);
        double g = 2.0 * (1.0 - n / e);
        *w1 = g + 2.0 * c * d;
        *w2 = 2.0 * c;
        return 2.0 * (e - n * log(e)) + g * d + c * d * d;
    }
    if (nu >= 0.0) {
        *w1 = 2.0;
        *w2 = 0.0;
        return 2.0 * nu;
    }
    if (strict || !gf_finite(nu)) return GF_INF;
    double k = 1.0 / (GF_EMPTY_BIN_WIDTH * GF_EMPTY_BIN_WIDTH);
    *w1 = 2.0 + 2.0 * k * nu;
    *w2 = 2.0 * k;
    return 2.0 * nu + k * nu * nu;
}

// The expected-information weight of one main bin (kernel.rs `fisher_weight`).
GF_HD double gf_fisher_weight(double n, double nu, double w2) {
    if ((n > 0.0 && nu >= GF_RATE_FLOOR) || (n <= 0.0 && nu >= 0.0)) return nu > 0.0 ? 2.0 / nu : 0.0;
    return w2;
}

// Whether the rates of the last evaluation put a bin with data below the
// floor of its extension (kernel.rs `outside_domain`).
GF_HD bool gf_outside_domain(const GfParams& p, const GfData& data, const GfScratch& s) {
    if (p.strict_domain) return false;
    for (u32 b = 0; b < (u32)p.n_main; b++)
        if (data.main[b] > 0.0 && !(s.nu[b] >= GF_RATE_FLOOR)) return true;
    return false;
}

// twice_nll at theta on data. mode: GF_EVAL_VALUE, _GRAD (gradient),
// _HESS (gradient and exact Hessian), _FISHER (gradient and expected
// information). Returns +inf outside the model's domain (then gradient and
// Hessian are meaningless). grad has P entries, hess n_hess packed entries.
GF_HD double gf_eval(const GfParams& p, SV<double> theta, const GfData& data, const GfScratch& s, u32 mode,
                     SV<double> grad, SV<double> hess) {
    const u32 nb = (u32)p.n_main;
    const u32 nsb = (u32)p.n_sb;
    // 1. rates
    for (u32 b = 0; b < nb; b++) s.nu[b] = 0.0;
    for (u32 j = 0; j < nsb; j++) {
        double f = 1.0;
        for (u32 k = p.m_sb_m0[j]; k < p.m_sb_m1[j]; k++) {
            double x = theta[p.m_mult_par[k]];
            u32 ip = p.m_mult_interp[k];
            f *= ip == GF_NONE ? x : gf_interp_value(p, ip, x);
        }
        double a = p.m_sb_nom[j];
        for (u32 k = p.m_sb_a0[j]; k < p.m_sb_a1[j]; k++) a += gf_interp_value(p, p.m_add_interp[k], theta[p.m_add_par[k]]);
        s.sbf[j] = f;
        s.sba[j] = a;
        s.nu[p.m_sb_bin[j]] += f * a;
    }
    // 2. main term and per-bin weights
    double val = data.constant;
    bool bad = false;
    for (u32 b = 0; b < nb; b++) {
        double t = gf_bin_term(data.main[b], s.nu[b], p.strict_domain != 0, &s.w1[b], &s.w2[b]);
        if (!gf_finite(t)) {
            bad = true;
            break;
        }
        val += t;
    }
    // 3. constraints (value)
    const u32 ncon = (u32)p.n_con;
    for (u32 c = 0; c < ncon; c++) {
        double x = theta[p.m_con_par[c]];
        double aux = data.aux[p.m_con_aux[c]];
        if (p.m_con_kind[c] == GF_CON_NORMAL) {
            double r = (x - aux) / p.m_con_val[c];
            val += r * r;
        } else {
            double lam = x * p.m_con_val[c];
            if (aux > 0.0) {
                if (!(lam > 0.0))
                    bad = true;
                else
                    val += 2.0 * (lam - aux * log(lam));
            } else {
                val += 2.0 * lam;
            }
        }
    }
    if (bad || !gf_finite(val)) return GF_INF;
    if (mode == GF_EVAL_VALUE) return val;
    const bool need_h = mode == GF_EVAL_HESS || mode == GF_EVAL_FISHER;
    const bool fisher = mode == GF_EVAL_FISHER;
    if (fisher) {
        for (u32 b = 0; b < nb; b++) {
            s.w2[b] = gf_fisher_weight(data.main[b], s.nu[b], s.w2[b]);
        }
    }
    const bool pairs = need_h && !fisher;
    const u32 np = (u32)p.n_pars;
    for (u32 i = 0; i < np; i++) grad[i] = 0.0;
    if (need_h) {
        for (u64 e = 0; e < p.n_hess; e++) hess[e] = 0.0;
        for (u64 e = 0; e < p.n_jac; e++) s.jac[e] = 0.0;
    }
    // 4. gradient and Hessian pieces per sample-bin (see kernel.rs: each
    // unordered pair of terms once, half of every self term on the diagonal;
    // the diagonal is doubled at the end)
    for (u32 j = 0; j < nsb; j++) {
        // identically zero (nominal 0, no additive terms; kernel.rs
        // SampleBin::is_dead): no derivatives, and no entries in the plan's rows
        if (p.m_sb_nom[j] == 0.0 && p.m_sb_a0[j] == p.m_sb_a1[j]) continue;
        const u32 b = p.m_sb_bin[j];
        const double w1 = s.w1[b];
        const double a = s.sba[j];
        const u32 m0 = p.m_sb_m0[j], m1 = p.m_sb_m1[j], a0 = p.m_sb_a0[j], a1 = p.m_sb_a1[j];
        const u32 m = m1 - m0, na = a1 - a0;
        const u32 row = p.m_bin_ptr[b];
        const u32* tp = p.m_sb_pars + p.m_sb_ptr[j];
        double f = 1.0;
        for (u32 k = 0; k < m; k++) {
            u32 ip = p.m_mult_interp[m0 + k];
            double x = theta[p.m_mult_par[m0 + k]];
            double v, d1, d2;
            if (ip == GF_NONE) {
                v = x;
                d1 = 1.0;
                d2 = 0.0;
            } else {
                gf_interp_eval(p, ip, x, v, d1, d2);
            }
            s.mval[k] = v;
            s.md1[k] = d1;
            s.md2[k] = d2;
            f *= v;
        }
        for (u32 q = 0; q < na; q++) {
            double v, d1, d2;
            gf_interp_eval(p, p.m_add_interp[a0 + q], theta[p.m_add_par[a0 + q]], v, d1, d2);
            s.ad1[q] = d1;
            s.ad2[q] = d2;
        }
        if (f != 0.0) {
            // x_k = F f'_k / f_k ; tv holds A u_k (mult) then a'_q (add)
            const u32 nt = m + na;
            for (u32 k = 0; k < m; k++) {
                double u = s.md1[k] / s.mval[k];
                double xk = f * u;
                s.pre[k] = xk;
                s.tv[k] = a * u;
                double d = xk * a;
                grad[p.m_mult_par[m0 + k]] += w1 * d;
                if (need_h) s.jac[row + p.m_mult_pos[m0 + k]] += d;
            }
            for (u32 q = 0; q < na; q++) {
                s.tv[m + q] = s.ad1[q];
                double d = f * s.ad1[q];
                grad[p.m_add_par[a0 + q]] += w1 * d;
                if (need_h) s.jac[row + p.m_add_pos[a0 + q]] += d;
            }
            if (pairs && w1 != 0.0) {
                for (u32 k = 0; k < m; k++) {
                    u32 pk = tp[k];
                    double d2 = s.md2[k];
                    if (d2 != 0.0) hess[gf_hpos(p, pk, pk)] += 0.5 * w1 * a * f * d2 / s.mval[k];
                    double ck = w1 * s.pre[k];
                    if (ck != 0.0) {
                        for (u32 t2 = k + 1; t2 < nt; t2++) {
                            u32 q = tp[t2];
                            u64 e = pk >= q ? gf_hpos(p, pk, q) : gf_hpos(p, q, pk);
                            hess[e] += ck * s.tv[t2];
                        }
                    }
                }
                for (u32 q = 0; q < na; q++) {
                    double d2 = s.ad2[q];
                    if (d2 != 0.0) {
                        u32 pq = tp[m + q];
                        hess[gf_hpos(p, pq, pq)] += 0.5 * w1 * f * d2;
                    }
                }
            }
            continue;
        }
        // some factor is zero: prefix / suffix products, no division
        s.pre[0] = 1.0;
        for (u32 k = 0; k < m; k++) s.pre[k + 1] = s.pre[k] * s.mval[k];
        s.suf[m] = 1.0;
        for (u32 k = m; k-- > 0;) s.suf[k] = s.suf[k + 1] * s.mval[k];
        for (u32 k = 0; k < m; k++) {
            double d = s.pre[k] * s.suf[k + 1] * s.md1[k] * a;
            grad[p.m_mult_par[m0 + k]] += w1 * d;
            if (need_h) s.jac[row + p.m_mult_pos[m0 + k]] += d;
        }
        for (u32 q = 0; q < na; q++) {
            double d = f * s.ad1[q];
            grad[p.m_add_par[a0 + q]] += w1 * d;
            if (need_h) s.jac[row + p.m_add_pos[a0 + q]] += d;
        }
        if (pairs && w1 != 0.0) {
            for (u32 k = 0; k < m; k++) {
                u32 pk = tp[k];
                double fk = s.pre[k] * s.suf[k + 1];
                double d2 = s.md2[k];
                if (d2 != 0.0) hess[gf_hpos(p, pk, pk)] += 0.5 * w1 * fk * d2 * a;
                double d1k = s.md1[k];
                if (d1k != 0.0) {
                    double c = w1 * d1k;
                    double mid = s.pre[k];
                    for (u32 l = k + 1; l < m; l++) {
                        double v = c * mid * s.suf[l + 1] * s.md1[l] * a;
                        u32 q = tp[l];
                        u64 e = pk >= q ? gf_hpos(p, pk, q) : gf_hpos(p, q, pk);
                        hess[e] += v;
                        mid *= s.mval[l];
                    }
                    double ck = c * fk;
                    for (u32 qq = 0; qq < na; qq++) {
                        u32 q = tp[m + qq];
                        u64 e = pk >= q ? gf_hpos(p, pk, q) : gf_hpos(p, q, pk);
                        hess[e] += ck * s.ad1[qq];
                    }
                }
            }
            for (u32 qq = 0; qq < na; qq++) {
                double d2 = s.ad2[qq];
                if (d2 != 0.0) {
                    u32 pq = tp[m + qq];
                    hess[gf_hpos(p, pq, pq)] += 0.5 * w1 * f * d2;
                }
            }
        }
    }
    if (need_h) {
        // outer products sum_b w2_b J_b J_b^T (rows in descending order, halves on the diagonal)
        const u32 g = (u32)p.n_global;
        for (u32 b = 0; b < nb; b++) {
            double w2 = s.w2[b];
            if (w2 == 0.0) continue;
            u32 r0 = p.m_bin_ptr[b], r1 = p.m_bin_ptr[b + 1];
            const u32* pars = p.m_bin_pars + r0;
            u32 len = r1 - r0;
            for (u32 i = 0; i < len; i++) {
                double ji = s.jac[r0 + i];
                double wi = w2 * ji;
                if (wi == 0.0) continue;
                u32 pi = pars[i];
                u64 ro = p.m_row_off[pi];
                u32 bs = p.m_row_bs[pi];
                hess[ro + (pi < g ? pi : g + pi - bs)] += 0.5 * wi * ji;
                for (u32 jj = i + 1; jj < len; jj++) {
                    u32 c = pars[jj];
                    hess[ro + (c < g ? c : g + c - bs)] += wi * s.jac[r0 + jj];
                }
            }
        }
        for (u32 i = 0; i < np; i++) hess[gf_hpos(p, i, i)] *= 2.0;
    }
    // 5. constraints (derivatives)
    for (u32 c = 0; c < ncon; c++) {
        u32 i = p.m_con_par[c];
        double x = theta[i];
        double aux = data.aux[p.m_con_aux[c]];
        if (p.m_con_kind[c] == GF_CON_NORMAL) {
            double sg = p.m_con_val[c];
            double is2 = 1.0 / (sg * sg);
            grad[i] += 2.0 * (x - aux) * is2;
            if (need_h) {
                u32 k = p.m_inv[i];
                hess[gf_hpos(p, k, k)] += 2.0 * is2;
            }
        } else {
            double tau = p.m_con_val[c];
            grad[i] += 2.0 * (tau - aux / x);
            if (need_h) {
                u32 k = p.m_inv[i];
                hess[gf_hpos(p, k, k)] += fisher ? 2.0 * tau / x : 2.0 * aux / (x * x);
            }
        }
    }
    return val;
}

// x^T H x over the packed block Hessian, x in the original parameter order.
GF_HD double gf_quad_form(const GfParams& p, SV<double> h, SV<double> x) {
    const u32 n = (u32)p.n_pars, g = (u32)p.n_global;
    double s = 0.0;
    for (u32 i = 0; i < n; i++) {
        double xi = x[p.m_perm[i]];
        u64 ro = p.m_row_off[i];
        u32 gend = i < g ? i + 1 : g;
        for (u32 j = 0; j < gend; j++) {
            double v = h[ro + j] * xi * x[p.m_perm[j]];
            s += i == j ? v : 2.0 * v;
        }
        if (i >= g) {
            u32 bs = p.m_row_bs[i];
            for (u32 j = bs; j <= i; j++) {
                double v = h[ro + g + j - bs] * xi * x[p.m_perm[j]];
                s += i == j ? v : 2.0 * v;
            }
        }
    }
    return s;
}
