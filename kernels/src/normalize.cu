// normalize.cu: out (N, D) = x / max(||x||_2, 1e-12) per row (F.normalize); norms (N) = ||x|| when non-null.
// Launch: one warp per row, 128 threads per block (4 rows), grid = ceil(N / 4).
// Versions: v1 (this) warp-per-row, two passes (sum of squares, scale).
#include "../include/clip_common.cuh"

extern "C" __global__ void l2normalize_forward(float* out, float* norms, const float* x, int n, int d) {
    int warpsPerBlock = blockDim.x / CLIP_WARP;
    int row = blockIdx.x * warpsPerBlock + threadIdx.x / CLIP_WARP;
    int lane = threadIdx.x % CLIP_WARP;
    if (row >= n) return;
    const float* xr = x + (long)row * d;
    float sq = 0.0f;
    for (int i = lane; i < d; i += CLIP_WARP) sq += xr[i] * xr[i];
    float norm = sqrtf(warp_sum(sq));
    float inv = 1.0f / fmaxf(norm, 1e-12f);
    float* outr = out + (long)row * d;
    for (int i = lane; i < d; i += CLIP_WARP) outr[i] = xr[i] * inv;
    if (lane == 0 && norms != nullptr) norms[row] = norm;
}
