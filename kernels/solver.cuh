// Per-member solves with the packed block Hessian: the Schur complement on the
// free globals, small Cholesky factors of the free part of each local block,
// Levenberg-Marquardt damping of the diagonal. This is src/fit/block.rs for
// one GPU thread; the global Schur complement S is factorised in place by a
// packed (row-major lower-triangular) Cholesky instead of faer.
#pragma once
#include "histfactory.cuh"

GF_HD double gf_damp(double v, double lambda) {
    return lambda == 0.0 ? v : v + lambda * fmax(fabs(v), 1e-8);
}

// In-place Cholesky of a small row-major l x l matrix (lower triangle).
GF_HD bool gf_small_cholesky(SV<double> a, u64 off, u32 l) {
    for (u32 j = 0; j < l; j++) {
        double d = a[off + j * l + j];
        for (u32 k = 0; k < j; k++) d -= a[off + j * l + k] * a[off + j * l + k];
        if (!(d > 0.0) || !gf_finite(d)) return false;
        d = sqrt(d);
        a[off + j * l + j] = d;
        for (u32 i = j + 1; i < l; i++) {
            double v = a[off + i * l + j];
            for (u32 k = 0; k < j; k++) v -= a[off + i * l + k] * a[off + j * l + k];
            a[off + i * l + j] = v / d;
        }
    }
    return true;
}

// Solve L L^T x = b in place; b is y[boff .. boff + l).
GF_HD void gf_small_solve(SV<double> f, u64 off, u32 l, SV<double> b, u64 boff) {
    for (u32 i = 0; i < l; i++) {
        double v = b[boff + i];
        for (u32 k = 0; k < i; k++) v -= f[off + i * l + k] * b[boff + k];
        b[boff + i] = v / f[off + i * l + i];
    }
    for (u32 i = l; i-- > 0;) {
        double v = b[boff + i];
        for (u32 k = i + 1; k < l; k++) v -= f[off + k * l + i] * b[boff + k];
        b[boff + i] = v / f[off + i * l + i];
    }
}

// Solve L L^T X = B in place for the l x n row-major B at b[boff ...] (row
// stride n), four columns at a time; column by column this is gf_small_solve.
GF_HD void gf_solve_columns(SV<double> f, u64 off, u32 l, SV<double> b, u64 boff, u32 n) {
    u32 c = 0;
    for (; c + 4 <= n; c += 4) {
        u64 bc = boff + c;
        for (u32 i = 0; i < l; i++) {
            u64 bi = bc + (u64)i * n;
            double v0 = b[bi], v1 = b[bi + 1], v2 = b[bi + 2], v3 = b[bi + 3];
            for (u32 k = 0; k < i; k++) {
                double fk = f[off + i * l + k];
                u64 bk = bc + (u64)k * n;
                v0 -= fk * b[bk];
                v1 -= fk * b[bk + 1];
                v2 -= fk * b[bk + 2];
                v3 -= fk * b[bk + 3];
            }
            double di = f[off + i * l + i];
            b[bi] = v0 / di;
            b[bi + 1] = v1 / di;
            b[bi + 2] = v2 / di;
            b[bi + 3] = v3 / di;
        }
        for (u32 i = l; i-- > 0;) {
            u64 bi = bc + (u64)i * n;
            double v0 = b[bi], v1 = b[bi + 1], v2 = b[bi + 2], v3 = b[bi + 3];
            for (u32 k = i + 1; k < l; k++) {
                double fk = f[off + k * l + i];
                u64 bk = bc + (u64)k * n;
                v0 -= fk * b[bk];
                v1 -= fk * b[bk + 1];
                v2 -= fk * b[bk + 2];
                v3 -= fk * b[bk + 3];
            }
            double di = f[off + i * l + i];
            b[bi] = v0 / di;
            b[bi + 1] = v1 / di;
            b[bi + 2] = v2 / di;
            b[bi + 3] = v3 / di;
        }
    }
    for (; c < n; c++) {
        u64 bc = boff + c;
        for (u32 i = 0; i < l; i++) {
            double v = b[bc + (u64)i * n];
            for (u32 k = 0; k < i; k++) v -= f[off + i * l + k] * b[bc + (u64)k * n];
            b[bc + (u64)i * n] = v / f[off + i * l + i];
        }
        for (u32 i = l; i-- > 0;) {
            double v = b[bc + (u64)i * n];
            for (u32 k = i + 1; k < l; k++) v -= f[off + k * l + i] * b[bc + (u64)k * n];
            b[bc + (u64)i * n] = v / f[off + i * l + i];
        }
    }
}

GF_HD u64 gf_tri(u32 a, u32 c) { return (u64)a * (a + 1) / 2 + c; }

// Packed Cholesky of the n x n matrix s (row-major lower triangle, entry (a, c) at a(a+1)/2 + c).
// Rows below the pivot are updated four at a time, sharing the loads of the
// pivot row (the arithmetic of each entry is that of the one-row loop).
GF_HD bool gf_packed_cholesky(SV<double> s, u32 n) {
    for (u64 e = 0; e < (u64)n * (n + 1) / 2; e++)
        if (!gf_finite(s[e])) return false;
    for (u32 j = 0; j < n; j++) {
        u64 rj = gf_tri(j, 0);
        double d = s[rj + j];
        for (u32 k = 0; k < j; k++) d -= s[rj + k] * s[rj + k];
        if (!(d > 0.0) || !gf_finite(d)) return false;
        d = sqrt(d);
        s[rj + j] = d;
        u32 i = j + 1;
        for (; i + 4 <= n; i += 4) {
            u64 r0 = gf_tri(i, 0), r1 = gf_tri(i + 1, 0), r2 = gf_tri(i + 2, 0), r3 = gf_tri(i + 3, 0);
            double v0 = s[r0 + j], v1 = s[r1 + j], v2 = s[r2 + j], v3 = s[r3 + j];
            for (u32 k = 0; k < j; k++) {
                double l = s[rj + k];
                v0 -= s[r0 + k] * l;
                v1 -= s[r1 + k] * l;
                v2 -= s[r2 + k] * l;
                v3 -= s[r3 + k] * l;
            }
            s[r0 + j] = v0 / d;
            s[r1 + j] = v1 / d;
            s[r2 + j] = v2 / d;
            s[r3 + j] = v3 / d;
        }
        for (; i < n; i++) {
            u64 ri = gf_tri(i, 0);
            double v = s[ri + j];
            for (u32 k = 0; k < j; k++) v -= s[ri + k] * s[rj + k];
            s[ri + j] = v / d;
        }
    }
    return true;
}

GF_HD void gf_packed_solve(SV<double> s, u32 n, SV<double> b) {
    for (u32 i = 0; i < n; i++) {
        u64 ri = gf_tri(i, 0);
        double v = b[i];
        for (u32 k = 0; k < i; k++) v -= s[ri + k] * b[k];
        b[i] = v / s[ri + i];
    }
    for (u32 i = n; i-- > 0;) {
        double v = b[i];
        for (u32 k = i + 1; k < n; k++) v -= s[gf_tri(k, i)] * b[k];
        b[i] = v / s[gf_tri(i, i)];
    }
}

// A member's solver buffers.
struct GfSolver {
    SV<double> dfac, w, s, y, rg;
    SV<u32> gfree, lfree, blk_s, blk_e, doff, woff, counts;  // counts: gf, nlf, nblk
};

GF_HD GfSolver gf_solver(const GfParams& p, u64 t) {
    GfSolver v;
    u64 ms = p.ms;
    v.dfac = sv(p.st_dfac, t, ms);
    v.w = sv(p.st_w, t, ms);
    v.s = sv(p.st_s, t, ms);
    v.y = sv(p.st_y, t, ms);
    v.rg = sv(p.st_rg, t, ms);
    v.gfree = sv(p.st_gfree, t, ms);
    v.lfree = sv(p.st_lfree, t, ms);
    v.blk_s = sv(p.st_blk_s, t, ms);
    v.blk_e = sv(p.st_blk_e, t, ms);
    v.doff = sv(p.st_doff, t, ms);
    v.woff = sv(p.st_woff, t, ms);
    v.counts = sv(p.mb_counts, t, ms);
    return v;
}

// Factor the free part (free[new index] != 0) of the packed block Hessian h
// with damping lambda; false when it is not positive definite.
GF_HD bool gf_factor(const GfParams& p, const GfSolver& sl, SV<double> h, SV<u32> free_new, double lambda) {
    const u32 g = (u32)p.n_global;
    // free index lists and buffer offsets
    u32 gf = 0;
    for (u32 i = 0; i < g; i++)
        if (free_new[i]) sl.gfree[gf++] = i;
    u32 nlf = 0, nblk = 0, dsize = 0, wsize = 0;
    for (u32 bi = 0; bi < (u32)p.n_blocks; bi++) {
        u32 start = nlf;
        for (u32 i = p.m_blk_s[bi]; i < p.m_blk_e[bi]; i++)
            if (free_new[i]) sl.lfree[nlf++] = i;
        u32 l = nlf - start;
        if (l == 0) continue;
        sl.blk_s[nblk] = start;
        sl.blk_e[nblk] = nlf;
        sl.doff[nblk] = dsize;
        sl.woff[nblk] = wsize;
        nblk++;
        dsize += l * l;
        wsize += l * gf;
    }
    sl.counts[0] = gf;
    sl.counts[1] = nlf;
    sl.counts[2] = nblk;
    for (u32 bi = 0; bi < nblk; bi++) {
        u32 start = sl.blk_s[bi], end = sl.blk_e[bi];
        u32 l = end - start;
        u32 d0 = sl.doff[bi], w0 = sl.woff[bi];
        if (l == 1) {
            u32 i = sl.lfree[start];
            u64 ro = p.m_row_off[i];
            double d = gf_damp(h[ro + g + i - p.m_row_bs[i]], lambda);
            if (!(d > 0.0) || !gf_finite(d)) return false;
            sl.dfac[d0] = sqrt(d);
            for (u32 c = 0; c < gf; c++) sl.w[w0 + c] = h[ro + sl.gfree[c]] / d;
            continue;
        }
        for (u32 a = 0; a < l; a++) {
            u32 ia = sl.lfree[start + a];
            for (u32 b = 0; b < l; b++) {
                double v;
                if (b < a)
                    v = h[gf_hpos(p, ia, sl.lfree[start + b])];
                else if (b == a)
                    v = gf_damp(h[gf_hpos(p, ia, ia)], lambda);
                else
                    v = 0.0;
                sl.dfac[d0 + a * l + b] = v;
            }
        }
        if (!gf_small_cholesky(sl.dfac, d0, l)) return false;
        // W_b = D_b^-1 C_b, row-major l x gf, solved in place four columns at a
        // time (each column's arithmetic is gf_small_solve's)
        for (u32 a = 0; a < l; a++) {
            u64 ro = p.m_row_off[sl.lfree[start + a]];
            for (u32 c = 0; c < gf; c++) sl.w[w0 + a * gf + c] = h[ro + sl.gfree[c]];
        }
        gf_solve_columns(sl.dfac, d0, l, sl.w, w0, gf);
    }
    if (gf == 0) return true;
    // Schur complement on the free globals (packed lower triangle)
    for (u32 a = 0; a < gf; a++) {
        u32 ga = sl.gfree[a];
        u64 ro = p.m_row_off[ga];
        for (u32 c = 0; c <= a; c++) {
            double v = h[ro + sl.gfree[c]];
            sl.s[gf_tri(a, c)] = a == c ? gf_damp(v, lambda) : v;
        }
    }
    // S -= sum over the free local rows r of C_r^T W_r, four rows at a time
    // (each entry receives the rows' updates in the same order as one at a
    // time). Blocks are stored one after the other, so row r of W starts at r gf.
    const u32 nlf_ = nlf;
    u32 r = 0;
    for (; r + 4 <= nlf_; r += 4) {
        u64 ro[4], wk[4];
        for (u32 q = 0; q < 4; q++) {
            ro[q] = p.m_row_off[sl.lfree[r + q]];
            wk[q] = (u64)(r + q) * gf;
        }
        for (u32 a = 0; a < gf; a++) {
            u32 ga = sl.gfree[a];
            double c0 = h[ro[0] + ga], c1 = h[ro[1] + ga], c2 = h[ro[2] + ga], c3 = h[ro[3] + ga];
            u64 ra = gf_tri(a, 0);
            if (c0 != 0.0 && c1 != 0.0 && c2 != 0.0 && c3 != 0.0) {
                for (u32 c = 0; c <= a; c++) {
                    double v = sl.s[ra + c];
                    v -= c0 * sl.w[wk[0] + c];
                    v -= c1 * sl.w[wk[1] + c];
                    v -= c2 * sl.w[wk[2] + c];
                    v -= c3 * sl.w[wk[3] + c];
                    sl.s[ra + c] = v;
                }
            } else {
                double cq[4] = {c0, c1, c2, c3};
                for (u32 q = 0; q < 4; q++) {
                    if (cq[q] == 0.0) continue;
                    for (u32 c = 0; c <= a; c++) sl.s[ra + c] -= cq[q] * sl.w[wk[q] + c];
                }
            }
        }
    }
    for (; r < nlf_; r++) {
        u64 ro = p.m_row_off[sl.lfree[r]];
        u64 wk = (u64)r * gf;
        for (u32 a = 0; a < gf; a++) {
            double ca = h[ro + sl.gfree[a]];
            if (ca == 0.0) continue;
            u64 ra = gf_tri(a, 0);
            for (u32 c = 0; c <= a; c++) sl.s[ra + c] -= ca * sl.w[wk + c];
        }
    }
    return gf_packed_cholesky(sl.s, gf);
}

// Solve with the last factorisation; r (new index order, P entries) holds the
// right-hand side on the free entries and receives the solution there.
GF_HD void gf_solve(const GfParams& p, const GfSolver& sl, SV<double> h, SV<double> r) {
    const u32 gf = sl.counts[0];
    const u32 nblk = sl.counts[2];
    // y_b = D_b^-1 r_b
    for (u32 bi = 0; bi < nblk; bi++) {
        u32 start = sl.blk_s[bi], end = sl.blk_e[bi];
        u32 l = end - start;
        u32 d0 = sl.doff[bi];
        if (l == 1) {
            double f = sl.dfac[d0];
            sl.y[start] = r[sl.lfree[start]] / (f * f);
            continue;
        }
        for (u32 a = 0; a < l; a++) sl.y[start + a] = r[sl.lfree[start + a]];
        gf_small_solve(sl.dfac, d0, l, sl.y, start);
    }
    if (gf > 0) {
        // r_g' = r_g - sum_b C_b^T y_b ; x_g = S^-1 r_g'
        for (u32 a = 0; a < gf; a++) sl.rg[a] = r[sl.gfree[a]];
        for (u32 bi = 0; bi < nblk; bi++) {
            for (u32 k = sl.blk_s[bi]; k < sl.blk_e[bi]; k++) {
                double yk = sl.y[k];
                if (yk == 0.0) continue;
                u64 ro = p.m_row_off[sl.lfree[k]];
                for (u32 a = 0; a < gf; a++) sl.rg[a] -= h[ro + sl.gfree[a]] * yk;
            }
        }
        gf_packed_solve(sl.s, gf, sl.rg);
        for (u32 a = 0; a < gf; a++) r[sl.gfree[a]] = sl.rg[a];
    }
    // x_b = y_b - W_b x_g
    for (u32 bi = 0; bi < nblk; bi++) {
        u32 start = sl.blk_s[bi], end = sl.blk_e[bi];
        u32 w0 = sl.woff[bi];
        for (u32 k = 0; k < end - start; k++) {
            double v = sl.y[start + k];
            if (gf > 0) {
                u64 wk = w0 + (u64)k * gf;
                double acc = 0.0;
                for (u32 c = 0; c < gf; c++) acc += sl.w[wk + c] * sl.rg[c];
                v -= acc;
            }
            r[sl.lfree[start + k]] = v;
        }
    }
}
