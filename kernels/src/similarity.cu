// similarity.cu: the CLIP similarity matrix, mixed precision:
//   out (N, M) F32 = scale * normalize(a (N, D)) @ normalize(b (M, D))^T   (normalize != 0)
//                  = scale * a @ b^T                                       (normalize == 0)
// Inputs F32, BF16 or F16 (similarity, _bf16, _f16); products and sums in F32. The row
// norms are accumulated from the same shared tiles as the dot products (no separate pass).
// Launch: grid (ceil(M / 16), ceil(N / 16)), block (16, 16); 16 x 17 shared tiles of a and b.
// Versions: v1 (this) classic shared-memory tiled dot products, F32 math. Tensor cores are the
// next step for large N, M (zero-shot over big label sets).
#include "../include/clip_common.cuh"

#define SIM_TILE 16

template <typename T>
__device__ void similarity_impl(float* out, const T* a, const T* b, int n, int m, int d, float scale,
                                        int normalize) {
    __shared__ float as[SIM_TILE][SIM_TILE + 1];
    __shared__ float bs[SIM_TILE][SIM_TILE + 1];
    int tx = threadIdx.x, ty = threadIdx.y;
    int i = blockIdx.y * SIM_TILE + ty; // row of a
    int j = blockIdx.x * SIM_TILE + tx; // row of b
    int bRow = blockIdx.x * SIM_TILE + ty;
    float dot = 0.0f, sa = 0.0f, sb = 0.0f;
    for (int d0 = 0; d0 < d; d0 += SIM_TILE) {
        int dd = d0 + tx;
        as[ty][tx] = (i < n && dd < d) ? to_f32(a[(long)i * d + dd]) : 0.0f;
        bs[ty][tx] = (bRow < m && dd < d) ? to_f32(b[(long)bRow * d + dd]) : 0.0f;
        __syncthreads();
        for (int kk = 0; kk < SIM_TILE; kk++) {
            float x = as[ty][kk], y = bs[tx][kk];
            dot += x * y;
            sa += x * x;
            sb += y * y;
        }
        __syncthreads();
    }
    if (i < n && j < m) {
        float s = scale * dot;
        if (normalize) s /= fmaxf(sqrtf(sa), 1e-12f) * fmaxf(sqrtf(sb), 1e-12f);
        out[(long)i * m + j] = s;
    }
}

extern "C" __global__ void similarity(float* out, const float* a, const float* b, int n, int m, int d,
                                              float scale, int normalize) {
    similarity_impl<float>(out, a, b, n, m, d, scale, normalize);
}

extern "C" __global__ void similarity_bf16(float* out, const bf16* a, const bf16* b, int n, int m, int d,
                                                   float scale, int normalize) {
    similarity_impl<bf16>(out, a, b, n, m, d, scale, normalize);
}

extern "C" __global__ void similarity_f16(float* out, const f16* a, const f16* b, int n, int m, int d,
                                                  float scale, int normalize) {
    similarity_impl<f16>(out, a, b, n, m, d, scale, normalize);
}
