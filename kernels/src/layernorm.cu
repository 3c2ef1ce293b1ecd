// layernorm.cu: out (N, C) = (x - mean) * rstd * w (C) + b (C) over the last dim, F32 statistics
// (two passes over the row held in registers/L1: mean first, then the centered variance, as the
// CPU reference does, so large-offset rows do not lose precision). mean (N) and rstd (N) are
// written when non-null (training keeps them for backward).
// layernorm_backward: dx (N, C) += rstd (g - mean(g) - xhat mean(g xhat)), g = dout * w, xhat = (x - mean) rstd
//   (one warp per row); layernorm_backward_params: dw (C) += sum_rows dout xhat, db (C) += sum_rows dout
//   (one thread per column, rows in order: coalesced and deterministic, no atomics).
// Launch: one warp per row, 128 threads per block (4 rows), grid = ceil(N / 4); params: 1-D over C.
// Versions: v1 (this) warp-per-row, three passes over global x (L1-resident for C <= 1024).
#include "../include/clip_common.cuh"

extern "C" __global__ void layernorm_forward(float* out, float* mean, float* rstd, const float* x, const float* w,
                                             const float* b, int n, int c, float eps) {
    int warpsPerBlock = blockDim.x / CLIP_WARP;
    int row = blockIdx.x * warpsPerBlock + threadIdx.x / CLIP_WARP;
    int lane = threadIdx.x % CLIP_WARP;
    if (row >= n) return; // whole warp leaves together
    const float* xr = x + (long)row * c;
    float sum = 0.0f;
    for (int i = lane; i < c; i += CLIP_WARP) sum += xr[i];
    float mu = warp_sum(sum) / c;
    float sq = 0.0f;
    for (int i = lane; i < c; i += CLIP_WARP) {
        float d = xr[i] - mu;
        sq += d * d;
    }
    float rs = rsqrtf(warp_sum(sq) / c + eps);
    float* outr = out + (long)row * c;
    for (int i = lane; i < c; i += CLIP_WARP) outr[i] = (xr[i] - mu) * rs * w[i] + b[i];
    if (lane == 0) {
        if (mean != nullptr) mean[row] = mu;
        if (rstd != nullptr) rstd[row] = rs;
    }
}

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

extern "C" __global__ void layernorm_backward_params(float* dw, float* db, const float* dout, const float* x,
                                                     const float* mean, const float* rstd, int n, int c) {
    for (int j = blockIdx.x * blockDim.x + threadIdx.x; j < c; j += gridDim.x * blockDim.x) {
        float sw = 0.0f, sb = 0.0f;
        for (int r = 0; r < n; r++) {
            float g = dout[(long)r * c + j];
            sw += g * (x[(long)r * c + j] - mean[r]) * rstd[r];
            sb += g;
        }
        if (dw != nullptr) dw[j] += sw;
        if (db != nullptr) db[j] += sb;
    }
}
