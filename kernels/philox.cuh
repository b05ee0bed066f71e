// Philox4x32-10 streams and samplers, bit for bit as src/rng.rs: the same
// counter layout [block, variable, toy, purpose] under the key [seed_lo, seed_hi],
// the same 53-bit uniforms in (0, 1), Box-Muller normals (cosine branch),
// Poisson deviates by inversion below mean 10 and by PTRS above.
//
// Integer operations, the uniforms and every multiply/add below round exactly
// as in Rust (gf_mul/gf_add forbid fused multiply-adds on the device). What
// can differ between devices are the last bits of the library functions
// (exp, log, cos, lgamma), see docs/gpu.md.
#pragma once
#include "common.cuh"

#define GF_PHILOX_M0 0xD2511F53u
#define GF_PHILOX_M1 0xCD9E8D57u
#define GF_PHILOX_W0 0x9E3779B9u
#define GF_PHILOX_W1 0xBB67AE85u

GF_HD void gf_philox4x32_10(const u32 ctr[4], const u32 key[2], u32 out[4]) {
    u32 c0 = ctr[0], c1 = ctr[1], c2 = ctr[2], c3 = ctr[3];
    u32 k0 = key[0], k1 = key[1];
    for (int r = 0; r < 10; r++) {
        if (r > 0) {
            k0 += GF_PHILOX_W0;
            k1 += GF_PHILOX_W1;
        }
        u64 p0 = (u64)GF_PHILOX_M0 * (u64)c0;
        u64 p1 = (u64)GF_PHILOX_M1 * (u64)c2;
        u32 n0 = (u32)(p1 >> 32) ^ c1 ^ k0;
        u32 n1 = (u32)p1;
        u32 n2 = (u32)(p0 >> 32) ^ c3 ^ k1;
        u32 n3 = (u32)p0;
        c0 = n0;
        c1 = n1;
        c2 = n2;
        c3 = n3;
    }
    out[0] = c0;
    out[1] = c1;
    out[2] = c2;
    out[3] = c3;
}

// The random stream of one variable of one toy (src/rng.rs `Stream`).
struct GfStream {
    u32 key[2];
    u32 ctr[4];
    u32 buf[4];
    int used;
};

GF_HD GfStream gf_stream(u64 seed, u32 toy, u32 purpose, u32 variable) {
    GfStream s;
    s.key[0] = (u32)seed;
    s.key[1] = (u32)(seed >> 32);
    s.ctr[0] = 0;
    s.ctr[1] = variable;
    s.ctr[2] = toy;
    s.ctr[3] = purpose;
    s.buf[0] = s.buf[1] = s.buf[2] = s.buf[3] = 0;
    s.used = 4;
    return s;
}

GF_HD u32 gf_next_u32(GfStream& s) {
    if (s.used == 4) {
        gf_philox4x32_10(s.ctr, s.key, s.buf);
        s.ctr[0] += 1;
        s.used = 0;
    }
    return s.buf[s.used++];
}

// Uniform double in (0, 1): 27 + 26 random bits, offset by half an ulp of 2^-53.
GF_HD double gf_uniform(GfStream& s) {
    u64 a = (u64)(gf_next_u32(s) >> 5);
    u64 b = (u64)(gf_next_u32(s) >> 6);
    double x = (double)((a << 26) | b);
    return gf_mul(gf_add(x, 0.5), 1.0 / 9007199254740992.0);
}

// Standard normal deviate (Box-Muller, cosine branch).
GF_HD double gf_normal(GfStream& s) {
    double u1 = gf_uniform(s);
    double u2 = gf_uniform(s);
    const double two_pi = 2.0 * 3.141592653589793;  // 2 * std::f64::consts::PI (exact doubling)
    return gf_mul(sqrt(gf_mul(-2.0, log(u1))), cos(gf_mul(two_pi, u2)));
}

// Poisson deviate with mean lam (0 for lam <= 0 or NaN).
GF_HD double gf_poisson(GfStream& s, double lam) {
    if (!(lam > 0.0)) return 0.0;
    if (lam < 10.0) {
        double u = gf_uniform(s);
        double k = 0.0;
        double p = exp(-lam);
        double cdf = p;
        while (u > cdf) {
            k = gf_add(k, 1.0);
            p = gf_mul(p, gf_div(lam, k));
            cdf = gf_add(cdf, p);
            if (p < 1e-300 && k > lam) break;
        }
        return k;
    }
    // PTRS: W. Hoermann, Insurance: Mathematics and Economics 12 (1993) 39-45.
    double slam = sqrt(lam);
    double loglam = log(lam);
    double b = gf_add(0.931, gf_mul(2.53, slam));
    double a = gf_add(-0.059, gf_mul(0.02483, b));
    double inv_alpha = gf_add(1.1239, gf_div(1.1328, gf_sub(b, 3.4)));
    double vr = gf_sub(0.9277, gf_div(3.6224, gf_sub(b, 2.0)));
    for (;;) {
        double u = gf_sub(gf_uniform(s), 0.5);
        double v = gf_uniform(s);
        double us = gf_sub(0.5, fabs(u));
        double k = floor(gf_add(gf_add(gf_mul(gf_add(gf_div(gf_mul(2.0, a), us), b), u), lam), 0.43));
        if (us >= 0.07 && v <= vr) return k;
        if (k < 0.0 || (us < 0.013 && v > us)) continue;
        double lhs = gf_sub(gf_add(log(v), log(inv_alpha)), log(gf_add(gf_div(a, gf_mul(us, us)), b)));
        double rhs = gf_sub(gf_add(-lam, gf_mul(k, loglam)), lgamma(gf_add(k, 1.0)));
        if (lhs <= rhs) return k;
    }
}
