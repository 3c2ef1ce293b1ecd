// normalize.cu: row-wise L2 normalization (F.normalize), the step between CLIP's features and its logits.
//   l2normalize_forward   out (N, D) = x / max(||x||_2, 1e-12) per row; norms (N) = ||x|| when non-null
//   l2normalize_backward  dx (N, D) += (dout - out (out . dout)) / ||x||  (dout / 1e-12 where ||x|| <= 1e-12)
// Launch: one warp per row, 128 threads per block (4 rows), grid = ceil(N / 4).
// Versions: v1 (this) warp-per-row, two passes (a reduction, then the elementwise write).
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

extern "C" __global__ void l2normalize_backward(float* dx, const float* dout, const float* out, const float* norms, int n,
                                                int d) {
    int warpsPerBlock = blockDim.x / CLIP_WARP;
    int row = blockIdx.x * warpsPerBlock + threadIdx.x / CLIP_WARP;
    int lane = threadIdx.x % CLIP_WARP;
    if (row >= n) return;
    const float* g = dout + (long)row * d;
    const float* y = out + (long)row * d;
    float* dxr = dx + (long)row * d;
    float norm = norms[row];
    if (norm <= 1e-12f) {
        for (int i = lane; i < d; i += CLIP_WARP) dxr[i] += g[i] * 1e12f;
        return;
    }
    float dot = 0.0f;
    for (int i = lane; i < d; i += CLIP_WARP) dot += g[i] * y[i];
    dot = warp_sum(dot);
    float inv = 1.0f / norm;
    for (int i = lane; i < d; i += CLIP_WARP) dxr[i] += (g[i] - y[i] * dot) * inv;
}
