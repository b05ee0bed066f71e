// Host emulation of gradfit's CUDA kernels (the `cuda-emu` feature): the very
// kernel bodies of kernels.cuh, compiled by the host C++ compiler, with a
// launch that calls the body for every thread index in turn. Used by the
// tests to check the GPU code paths against the CPU kernel on machines
// without a GPU.
#include <stddef.h>
#include "kernels.cuh"

enum GfKernelId {
#define GF_ID(name, body) GF_ID_##name,
    GF_KERNELS(GF_ID)
#undef GF_ID
    GF_N_KERNELS
};

extern "C" {

// Run kernel `id` for thread indices [begin, end).
int gf_emu_launch(u32 id, u64 begin, u64 end, const GfParams* p) {
    switch (id) {
#define GF_CASE(name, body)                           \
    case GF_ID_##name:                                \
        for (u64 i = begin; i < end; i++) body(*p, i); \
        return 0;
        GF_KERNELS(GF_CASE)
#undef GF_CASE
        default:
            return -1;
    }
}

// Name of kernel `id` (NULL past the end), to match the Rust kernel list.
const char* gf_emu_kernel_name(u32 id) {
    static const char* names[] = {
#define GF_NAME(name, body) #name,
        GF_KERNELS(GF_NAME)
#undef GF_NAME
    };
    return id < GF_N_KERNELS ? names[id] : NULL;
}

// Field names and byte offsets of GfParams, to match the Rust declaration.
u64 gf_emu_params_size(void) { return sizeof(GfParams); }

const char* gf_emu_field_name(u32 i) {
    static const char* names[] = {
#define GF_PTR(T, name) #name,
#define GF_U64(name) #name,
#define GF_F64(name) #name,
#include "params.def"
#undef GF_PTR
#undef GF_U64
#undef GF_F64
    };
    return i < sizeof(names) / sizeof(names[0]) ? names[i] : NULL;
}

u64 gf_emu_field_offset(u32 i) {
    static const u64 offs[] = {
#define GF_PTR(T, name) offsetof(GfParams, name),
#define GF_U64(name) offsetof(GfParams, name),
#define GF_F64(name) offsetof(GfParams, name),
#include "params.def"
#undef GF_PTR
#undef GF_U64
#undef GF_F64
    };
    return i < sizeof(offs) / sizeof(offs[0]) ? offs[i] : (u64)-1;
}

// One Philox block, and n draws of one stream (kind 0 uniform, 1 normal, 2 Poisson(lam)).
void gf_emu_philox(const u32* ctr, const u32* key, u32* out) { gf_philox4x32_10(ctr, key, out); }

void gf_emu_stream(u64 seed, u32 toy, u32 purpose, u32 variable, u32 kind, double lam, u64 n, double* out) {
    GfStream s = gf_stream(seed, toy, purpose, variable);
    for (u64 i = 0; i < n; i++) out[i] = kind == 0 ? gf_uniform(s) : kind == 1 ? gf_normal(s) : gf_poisson(s, lam);
}

}  // extern "C"
