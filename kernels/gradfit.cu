// gradfit's CUDA kernels: one thread per batch member (or per random
// variable), all sharing the bodies in kernels.cuh with the host emulation.
// Compiled to PTX by build.rs (nvcc -arch=sm_90) and embedded in the binary.
#include "kernels.cuh"

#define GF_GLOBAL(name, body)                                                    \
    extern "C" __global__ void __launch_bounds__(128) name(const GfParams p) { \
        u64 i = (u64)blockIdx.x * blockDim.x + threadIdx.x;                     \
        if (i < p.n_threads) body(p, i);                                         \
    }
GF_KERNELS(GF_GLOBAL)
