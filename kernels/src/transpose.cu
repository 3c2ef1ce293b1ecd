// transpose.cu: out (B, N, M) = x (B, M, N) transposed per batch; accumulate != 0 adds into out.
// Launch: grid (ceil(N / 32), ceil(M / 32), B), block (32, 8): a 32 x 33 shared tile so both the
// read of x and the write of out are coalesced without bank conflicts.
// Versions: v1 (this) classic shared-memory tile transpose.
#include "../include/clip_common.cuh"

extern "C" __global__ void transpose(float* out, const float* x, int m, int n, int accumulate) {
    __shared__ float tile[32][33];
    long base = (long)blockIdx.z * m * n;
    int x0 = blockIdx.x * 32, y0 = blockIdx.y * 32; // column (n) and row (m) origin in x
    for (int dy = threadIdx.y; dy < 32; dy += blockDim.y) {
        int row = y0 + dy, col = x0 + threadIdx.x;
        if (row < m && col < n) tile[dy][threadIdx.x] = x[base + (long)row * n + col];
    }
    __syncthreads();
    for (int dy = threadIdx.y; dy < 32; dy += blockDim.y) {
        int row = x0 + dy, col = y0 + threadIdx.x; // row in out (n), column in out (m)
        if (row < n && col < m) {
            long at = base + (long)row * m + col;
            float v = tile[threadIdx.x][dy];
            out[at] = accumulate ? out[at] + v : v;
        }
    }
}
