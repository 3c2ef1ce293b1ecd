// layernorm.cu: out (N, C) = (x - mean) * rstd * w (C) + b (C) over the last dim, F32 statistics
// (two passes over the row held in registers/L1: mean first, then the centered variance, as the
// CPU reference does, so large-offset rows do not lose precision). mean (N) and rstd (N) are
// written when non-null (training keeps them for backward).
//   layernorm_forward           x F32 -> out F32
//   layernorm_forward_f32_bf16  x F32 -> out BF16 (the inference residual stream is F32, the GEMM input BF16)
//   layernorm_forward_f32_f16   x F32 -> out F16
//   layernorm_forward_bf16      x BF16 -> out BF16; layernorm_forward_f16 the same in F16
//   (one template: loads widen to F32, the statistics and the affine map are F32, the store rounds once)
// layernorm_backward: dx (N, C) += rstd (g - mean(g) - xhat mean(g xhat)), g = dout * w, xhat = (x - mean) rstd
//   (one warp per row); the parameter gradients dw (C) += sum_rows dout xhat, db (C) += sum_rows dout in two
//   stages: layernorm_backward_params_partials writes partial (2, P, C) (dw's then db's sums over row chunk p;
//   a block is 32 columns x 8 row lanes, grid (ceil(C / 32), P), coalesced along the row), and
//   layernorm_backward_params_total adds the P partials of each column in order (deterministic, no atomics).
// Launch: one warp per row, 128 threads per block (4 rows), grid = ceil(N / 4); params: P = min(ceil(N / 64),
//   1024) chunks, then 1-D over C.
// Bound (ViT-B/32 at batch 256: N = 12800 rows, C = 768): memory-bound, one read of x and one write of out from
//   DRAM (the second and third passes hit L1): forward F32 -> BF16 moves 6 B per element, 59 MB, ~18 us at an
//   H100's ~3.3 TB/s; F32 -> F32 79 MB, ~24 us; backward ~40 MB, ~12 us; params stage 1 reads 2 x 39 MB over
//   4800 blocks (was C / 256 = 3 blocks, one thread per column: ~1 % of the bandwidth, plausibly ~2 ms per call).
// Versions: v1 warp-per-row, three passes over global x (L1-resident for C <= 1024), F32 only, params one thread
//   per column; v2 the forward templated over the input and output types for the BF16/F16 inference path;
//   v3 (this) two-stage params.
#include "../include/clip_common.cuh"

template <typename In, typename Out>
__device__ __forceinline__ void layernorm_forward_impl(Out* out, float* mean, float* rstd, const In* x, const float* w,
                                                       const float* b, int n, int c, float eps) {
    int warpsPerBlock = blockDim.x / CLIP_WARP;
    int row = blockIdx.x * warpsPerBlock + threadIdx.x / CLIP_WARP;
    int lane = threadIdx.x % CLIP_WARP;
    if (row >= n) return; // whole warp leaves together
    const In* xr = x + (long)row * c;
    float sum = 0.0f;
    for (int i = lane; i < c; i += CLIP_WARP) sum += to_f32(xr[i]);
    float mu = warp_sum(sum) / c;
    float sq = 0.0f;
    for (int i = lane; i < c; i += CLIP_WARP) {
        float d = to_f32(xr[i]) - mu;
        sq += d * d;
    }
    float rs = rsqrtf(warp_sum(sq) / c + eps);
    Out* outr = out + (long)row * c;
    for (int i = lane; i < c; i += CLIP_WARP) outr[i] = from_f32<Out>((to_f32(xr[i]) - mu) * rs * w[i] + b[i]);
    if (lane == 0) {
        if (mean != nullptr) mean[row] = mu;
        if (rstd != nullptr) rstd[row] = rs;
    }
}

#define LN_FORWARD_PARAMS(In, Out) Out* out, float* mean, float* rstd, const In* x, const float* w, const float* b, int n, int c, float eps
#define LN_FORWARD_ARGS out, mean, rstd, x, w, b, n, c, eps

extern "C" __global__ void layernorm_forward(LN_FORWARD_PARAMS(float, float)) { layernorm_forward_impl(LN_FORWARD_ARGS); }
extern "C" __global__ void layernorm_forward_f32_bf16(LN_FORWARD_PARAMS(float, bf16)) { layernorm_forward_impl(LN_FORWARD_ARGS); }
extern "C" __global__ void layernorm_forward_f32_f16(LN_FORWARD_PARAMS(float, f16)) { layernorm_forward_impl(LN_FORWARD_ARGS); }
extern "C" __global__ void layernorm_forward_bf16(LN_FORWARD_PARAMS(bf16, bf16)) { layernorm_forward_impl(LN_FORWARD_ARGS); }
extern "C" __global__ void layernorm_forward_f16(LN_FORWARD_PARAMS(f16, f16)) { layernorm_forward_impl(LN_FORWARD_ARGS); }

extern "C" __global__ void layernorm_backward(float* dx, const float* dout, const float* x, const float* w,
                                              const float* mean, const float* rstd, int n, int c) {
    int warpsPerBlock = blockDim.x / CLIP_WARP;
    int row = blockIdx.x * warpsPerBlock + threadIdx.x / CLIP_WARP;
    int lane = threadIdx.x % CLIP_WARP;
    if (row >= n) return;
    const float* xr = x + (long)row * c;
    const float* gr = dout + (long)row * c;
    float mu = mean[row], rs = rstd[row];
    float sumG = 0.0f, sumGx = 0.0f;
    for (int i = lane; i < c; i += CLIP_WARP) {
        float g = gr[i] * w[i];
        sumG += g;
        sumGx += g * (xr[i] - mu) * rs;
    }
    float meanG = warp_sum(sumG) / c, meanGx = warp_sum(sumGx) / c;
    float* dxr = dx + (long)row * c;
    for (int i = lane; i < c; i += CLIP_WARP) {
        float xhat = (xr[i] - mu) * rs;
        dxr[i] += rs * (gr[i] * w[i] - meanG - xhat * meanGx);
    }
}

#define COLUMN_TILE 32
#define ROW_LANES 8

extern "C" __global__ void layernorm_backward_params_partials(float* partial, const float* dout, const float* x,
                                                              const float* mean, const float* rstd, int n, int c,
                                                              int chunk) {
    __shared__ float sumsW[ROW_LANES * (COLUMN_TILE + 1)];
    __shared__ float sumsB[ROW_LANES * (COLUMN_TILE + 1)];
    int j = blockIdx.x * COLUMN_TILE + threadIdx.x;
    int r0 = blockIdx.y * chunk, r1 = min(n, r0 + chunk);
    float sw = 0.0f, sb = 0.0f;
    if (j < c) {
        for (int r = r0 + threadIdx.y; r < r1; r += ROW_LANES) {
            float g = dout[(long)r * c + j];
            sw += g * (x[(long)r * c + j] - mean[r]) * rstd[r];
            sb += g;
        }
    }
    int at = threadIdx.y * (COLUMN_TILE + 1) + threadIdx.x;
    sumsW[at] = sw;
    sumsB[at] = sb;
    __syncthreads();
    if (threadIdx.y == 0 && j < c) {
        float tw = 0.0f, tb = 0.0f;
        for (int y = 0; y < ROW_LANES; y++) {
            tw += sumsW[y * (COLUMN_TILE + 1) + threadIdx.x];
            tb += sumsB[y * (COLUMN_TILE + 1) + threadIdx.x];
        }
        partial[(long)blockIdx.y * c + j] = tw;
        partial[((long)gridDim.y + blockIdx.y) * c + j] = tb;
    }
}

extern "C" __global__ void layernorm_backward_params_total(float* dw, float* db, const float* partial, int parts, int c) {
    for (int j = blockIdx.x * blockDim.x + threadIdx.x; j < c; j += gridDim.x * blockDim.x) {
        float sw = 0.0f, sb = 0.0f;
        for (int p = 0; p < parts; p++) {
            sw += partial[(long)p * c + j];
            sb += partial[(long)(parts + p) * c + j];
        }
        if (dw != nullptr) dw[j] += sw;
        if (db != nullptr) db[j] += sb;
    }
}
