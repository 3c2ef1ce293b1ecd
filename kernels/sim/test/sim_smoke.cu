// sim_smoke.cu: kernels that exercise every simulator mechanism, for the simulator's own tests
// (org.clipj.kernels.SimSmokeTest); compiled into target/sim-test/libclipkernels_simtest.so only.
#include "clip_common.cuh"

// Block-reversal through static shared memory: needs a working __syncthreads.
// out[blockIdx.x * n + i] = in[blockIdx.x * n + n - 1 - i], n = blockDim.x
extern "C" __global__ void smoke_reverse(float* out, const float* in) {
    __shared__ float tile[1024];
    int n = blockDim.x, base = blockIdx.x * n;
    tile[threadIdx.x] = in[base + threadIdx.x];
    __syncthreads();
    out[base + threadIdx.x] = tile[n - 1 - threadIdx.x];
}

// Per-block sum with warp shuffles and a block reduction; sums[blockIdx.x] = sum of the block's slice.
extern "C" __global__ void smoke_block_sum(float* sums, const float* in, int n) {
    __shared__ float scratch[32];
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    float v = i < n ? in[i] : 0.0f;
    float total = block_sum(v, scratch);
    if (threadIdx.x == 0) sums[blockIdx.x] = total;
}

// Each shuffle flavour and each vote, written per thread: out has 7 ints per thread.
extern "C" __global__ void smoke_warp_ops(int* out) {
    int lane = threadIdx.x % 32;
    int* o = out + (blockIdx.x * blockDim.x + threadIdx.x) * 7;
    o[0] = __shfl_sync(CLIP_FULL_MASK, lane * 10, 3);
    o[1] = __shfl_xor_sync(CLIP_FULL_MASK, lane * 10, 5);
    o[2] = __shfl_down_sync(CLIP_FULL_MASK, lane * 10, 4);
    o[3] = __shfl_up_sync(CLIP_FULL_MASK, lane * 10, 4, 16);
    o[4] = (int) __ballot_sync(CLIP_FULL_MASK, lane % 3 == 0);
    o[5] = __any_sync(CLIP_FULL_MASK, lane == 31);
    o[6] = __all_sync(CLIP_FULL_MASK, lane < 31);
}

// Histogram with atomics across blocks; max with atomicMax; a counter built from atomicCAS.
extern "C" __global__ void smoke_atomics(int* hist, int* maxOut, int* casCount, const int* values, int n, int bins) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    atomicAdd(&hist[values[i] % bins], 1);
    atomicMax(maxOut, values[i]);
    int old = *casCount, seen;
    do {
        seen = old;
        old = atomicCAS(casCount, seen, seen + 1);
    } while (old != seen);
}

// Dynamic shared memory sized by the launch: rows of n floats scaled by the row's maximum.
// out[row, j] = x[row, j] / max_j x[row, j]; one block per row, sharedBytes = n * 4.
extern "C" __global__ void smoke_dynamic_shared(float* out, const float* x, int n) {
    extern __shared__ float row[];
    __shared__ float scratch[32];
    const float* xr = x + (long) blockIdx.x * n;
    float m = -INFINITY;
    for (int j = threadIdx.x; j < n; j += blockDim.x) {
        row[j] = xr[j];
        m = fmaxf(m, row[j]);
    }
    m = block_max(m, scratch);
    for (int j = threadIdx.x; j < n; j += blockDim.x) out[(long) blockIdx.x * n + j] = row[j] / m;
}

// bf16 / f16 round trips: out16[i] = bits of the conversion of x[i]; back[i] = the value read back.
extern "C" __global__ void smoke_convert(unsigned short* bf, unsigned short* hf, float* bfBack, float* hfBack,
                                         const float* x, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    bf16 b = __float2bfloat16(x[i]);
    f16 h = __float2half(x[i]);
    bf[i] = __bfloat16_as_ushort(b);
    hf[i] = __half_as_ushort(h);
    bfBack[i] = __bfloat162float(b);
    hfBack[i] = __half2float(h);
}

// A barrier that only some threads reach: the simulator must report it, not hang.
extern "C" __global__ void smoke_divergent_barrier(float* x) {
    if (threadIdx.x < 16) return;
    __syncthreads();
    x[threadIdx.x] = 1.0f;
}

// 3-D grid and block indices: out[linear thread id] = packed (block, thread) coordinates.
extern "C" __global__ void smoke_indices(int* out) {
    int block = (blockIdx.z * gridDim.y + blockIdx.y) * gridDim.x + blockIdx.x;
    int thread = (threadIdx.z * blockDim.y + threadIdx.y) * blockDim.x + threadIdx.x;
    int threads = blockDim.x * blockDim.y * blockDim.z;
    out[block * threads + thread] = blockIdx.x | blockIdx.y << 4 | blockIdx.z << 8 | threadIdx.x << 12
        | threadIdx.y << 16 | threadIdx.z << 20;
}
