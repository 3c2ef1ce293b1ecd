// softmax.cu: out (N, C) = softmax over the last dim of x (N, C), F32, max-subtracted.
// Launch: one warp per row, 128 threads per block (4 rows), grid = ceil(N / 4).
// Versions: v1 (this) warp-per-row, three passes over the row (max, sum of exp, write).
#include "../include/clip_common.cuh"

extern "C" __global__ void softmax(float* out, const float* x, int n, int c) {
    int warpsPerBlock = blockDim.x / CLIP_WARP;
    int row = blockIdx.x * warpsPerBlock + threadIdx.x / CLIP_WARP;
    int lane = threadIdx.x % CLIP_WARP;
    if (row >= n) return;
    const float* xr = x + (long)row * c;
    float m = -INFINITY;
    for (int i = lane; i < c; i += CLIP_WARP) m = fmaxf(m, xr[i]);
    m = warp_max(m);
    float sum = 0.0f;
    for (int i = lane; i < c; i += CLIP_WARP) sum += expf(xr[i] - m);
    float inv = 1.0f / warp_sum(sum);
    float* outr = out + (long)row * c;
    for (int i = lane; i < c; i += CLIP_WARP) outr[i] = expf(xr[i] - m) * inv;
}
