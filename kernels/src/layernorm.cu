// layernorm.cu: out (N, C) = (x - mean) * rstd * w (C) + b (C) over the last dim, F32 statistics
// (two passes over the row held in registers/L1: mean first, then the centered variance, as the
// CPU reference does, so large-offset rows do not lose precision). mean (N) and rstd (N) are
// written when non-null (training keeps them for backward).
// Launch: one warp per row, 128 threads per block (4 rows), grid = ceil(N / 4).
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
