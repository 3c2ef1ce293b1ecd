// clip_common.cuh: what every clipj kernel shares. Element load/store for F32, BF16 and F16
// (F32 arithmetic everywhere), warp reductions, and the include switch between the real CUDA
// headers and the simulator's emulation header (kernels/sim/cuda_sim.h, selected by -DCLIP_SIM).
#pragma once

#include <math.h>

#ifdef CLIP_SIM
#include "cuda_sim.h"
#else
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#endif

#define CLIP_WARP 32
#define CLIP_FULL_MASK 0xffffffffu

typedef __nv_bfloat16 bf16;
typedef __half f16;

__device__ __forceinline__ float to_f32(float x) { return x; }
__device__ __forceinline__ float to_f32(bf16 x) { return __bfloat162float(x); }
__device__ __forceinline__ float to_f32(f16 x) { return __half2float(x); }

template <typename T> __device__ __forceinline__ T from_f32(float x);
template <> __device__ __forceinline__ float from_f32<float>(float x) { return x; }
template <> __device__ __forceinline__ bf16 from_f32<bf16>(float x) { return __float2bfloat16(x); }
template <> __device__ __forceinline__ f16 from_f32<f16>(float x) { return __float2half(x); }

// Every lane of the warp must call these (the simulator rendezvous all 32 lanes).
__device__ __forceinline__ float warp_sum(float v) {
    for (int o = CLIP_WARP / 2; o > 0; o >>= 1) v += __shfl_xor_sync(CLIP_FULL_MASK, v, o);
    return v;
}

__device__ __forceinline__ float warp_max(float v) {
    for (int o = CLIP_WARP / 2; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(CLIP_FULL_MASK, v, o));
    return v;
}

// Block-wide sum for blockDim.x a multiple of 32 (<= 1024); every thread gets the result.
// scratch: 32 floats of shared memory not used by the caller between the two barriers.
__device__ __forceinline__ float block_sum(float v, float* scratch) {
    int lane = threadIdx.x % CLIP_WARP, warp = threadIdx.x / CLIP_WARP, warps = blockDim.x / CLIP_WARP;
    v = warp_sum(v);
    __syncthreads();
    if (lane == 0) scratch[warp] = v;
    __syncthreads();
    float total = lane < warps ? scratch[lane] : 0.0f;
    return warp_sum(total);
}

__device__ __forceinline__ float block_max(float v, float* scratch) {
    int lane = threadIdx.x % CLIP_WARP, warp = threadIdx.x / CLIP_WARP, warps = blockDim.x / CLIP_WARP;
    v = warp_max(v);
    __syncthreads();
    if (lane == 0) scratch[warp] = v;
    __syncthreads();
    float m = lane < warps ? scratch[lane] : -INFINITY;
    return warp_max(m);
}
