// Shared definitions for gradfit's CUDA kernels and their host emulation.
//
// Every per-member computation is written once, as inline functions that
// compile both with nvcc (device code) and with a host C++ compiler (the
// `cuda-emu` build, which runs the same code on the CPU in tests). Nothing here
// may use shared memory, warp intrinsics or block-level synchronisation: one
// GPU thread owns one batch member (or one random variable), so the host can
// emulate a launch by calling the same body for every thread index in turn.
#pragma once

#include <stdint.h>
#ifndef __CUDACC__
#include <math.h>
#include <stddef.h>
#endif

#ifdef __CUDACC__
#define GF_HD __host__ __device__ __forceinline__
#define GF_HDM __host__ __device__ __forceinline__
#else
#define GF_HD static inline
#define GF_HDM inline
#endif

typedef uint32_t u32;
typedef uint64_t u64;

// Arithmetic that must round exactly as the Rust code does (random numbers):
// the device versions forbid contraction into fused multiply-adds.
#ifdef __CUDA_ARCH__
GF_HD double gf_mul(double a, double b) { return __dmul_rn(a, b); }
GF_HD double gf_add(double a, double b) { return __dadd_rn(a, b); }
GF_HD double gf_sub(double a, double b) { return __dsub_rn(a, b); }
GF_HD double gf_div(double a, double b) { return __ddiv_rn(a, b); }
#else
GF_HD double gf_mul(double a, double b) { return a * b; }
GF_HD double gf_add(double a, double b) { return a + b; }
GF_HD double gf_sub(double a, double b) { return a - b; }
GF_HD double gf_div(double a, double b) { return a / b; }
#endif

GF_HD bool gf_finite(double x) { return isfinite(x); }
GF_HD double gf_abs(double x) { return fabs(x); }
// f64::clamp(lo, hi) of Rust (NaN stays NaN).
GF_HD double gf_clamp(double x, double lo, double hi) {
    if (x < lo) return lo;
    if (x > hi) return hi;
    return x;
}

#define GF_INF ((double)INFINITY)
#define GF_NAN ((double)NAN)

// A strided view of one member's array: element i of member t lives at
// base[i * stride + t] (members interleaved, so that the threads of a warp,
// which own consecutive members, touch consecutive addresses).
template <class T>
struct SV {
    T* p;
    u64 s;
    GF_HDM T& operator[](u64 i) const { return p[i * s]; }
};

template <class T>
GF_HD SV<T> sv(T* base, u64 t, u64 stride) {
    SV<T> v;
    v.p = base + t;
    v.s = stride;
    return v;
}
