// similarity.cu: the CLIP similarity matrix, mixed precision:
//   out (N, M) F32 = scale * normalize(a (N, D)) @ normalize(b (M, D))^T   (normalize != 0)
//                  = scale * a @ b^T                                       (normalize == 0)
// Inputs F32, F16 (similarity, similarity_f16: SIMT) or BF16 (similarity_mma_bf16: tensor cores); products and
// sums in F32. The row norms are accumulated from the same shared tiles as the dot products (no separate pass).
// SIMT launch: grid (ceil(M / 16), ceil(N / 16)), block (16, 16); 16 x 17 shared tiles of a and b.
// Tensor-core launch: grid (ceil(M / 64), ceil(N / 64)), block 128 (4 warps x 16 rows of a, each against all 64
// rows of b: 8 m16n8 accumulators); the D axis in 64-wide slices: a and b slices (64 x 64 BF16, rows padded to 72
// elements, 144 bytes: the 8 rows an ldmatrix phase reads fall on distinct banks) enter shared memory by 16-byte
// cp.async (scalar loads where D % 8 != 0), fragments leave it by ldmatrix; static shared 18.9 KB.
// Expected bound at ViT-B/32's zero-shot shape (N = 256 images, M = 1000 classes, D = 512, BF16 in, F32 out):
// 2 N M D = 0.26 GFLOP -> 0.27 us at 989 TFLOP/s; bytes (N + M) D 2 + 4 N M = 2.3 MB -> 0.69 us at 3.35 TB/s:
// memory-bound on the F32 output, ~0.7 us (plus launch); 64 blocks on 132 SMs (a wave under one).
// Versions: v1 classic shared-memory tiled dot products, F32 math. v2 (this) BF16 on tensor cores
// (mma.sync m16n8k16, ldmatrix, cp.async); the SIMT BF16 kernel it replaces is gone.
#include "../include/clip_common.cuh"
#include "../include/clip_mma.cuh"

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

#define SIM_MMA_TILE 64
#define SIM_MMA_STRIDE (SIM_MMA_TILE + 8)

extern "C" __global__ void similarity_mma_bf16(float* out, const bf16* a, const bf16* b, int n, int m, int d, float scale,
                                               int normalize) {
    __shared__ __align__(16) unsigned short as[SIM_MMA_TILE * SIM_MMA_STRIDE];
    __shared__ __align__(16) unsigned short bs[SIM_MMA_TILE * SIM_MMA_STRIDE];
    __shared__ float normA[SIM_MMA_TILE];
    __shared__ float normB[SIM_MMA_TILE];
    int lane = threadIdx.x % CLIP_WARP, warp = threadIdx.x / CLIP_WARP;
    int group = lane / 4, quad = lane % 4;
    int rowStart = blockIdx.y * SIM_MMA_TILE, colStart = blockIdx.x * SIM_MMA_TILE;
    int rows = min(SIM_MMA_TILE, n - rowStart), cols = min(SIM_MMA_TILE, m - colStart);
    float acc[SIM_MMA_TILE / 8][4];
    for (int i = 0; i < SIM_MMA_TILE / 8; i++)
        for (int j = 0; j < 4; j++) acc[i][j] = 0.0f;
    float squares = 0.0f; // thread x < 64: row x of a's tile; 64 <= x < 128: row x - 64 of b's
    for (int d0 = 0; d0 < d; d0 += SIM_MMA_TILE) {
        int width = min(SIM_MMA_TILE, d - d0);
        __syncthreads(); // the previous slice fully consumed
        load_tile_bf16(as, a + d0, d, rowStart, rows, SIM_MMA_TILE, width, SIM_MMA_TILE, SIM_MMA_STRIDE);
        load_tile_bf16(bs, b + d0, d, colStart, cols, SIM_MMA_TILE, width, SIM_MMA_TILE, SIM_MMA_STRIDE);
        cp_async_wait_all();
        __syncthreads();
        if (normalize) {
            const unsigned short* row = threadIdx.x < SIM_MMA_TILE ? as + threadIdx.x * SIM_MMA_STRIDE
                                                                   : bs + (threadIdx.x - SIM_MMA_TILE) * SIM_MMA_STRIDE;
            for (int x = 0; x < width; x++) {
                float v = __bfloat162float(__ushort_as_bfloat16(row[x]));
                squares += v * v;
            }
        }
        for (int k0 = 0; k0 < width; k0 += 16) { // columns past width are zeros in both tiles
            unsigned fa[4];
            ldmatrix_x4(fa, ldm_rows_a(as, SIM_MMA_STRIDE, warp * 16, k0));
            for (int nb = 0; nb < SIM_MMA_TILE / 16; nb++) {
                unsigned fb[4];
                ldmatrix_x4(fb, ldm_rows_b(bs, SIM_MMA_STRIDE, nb * 16, k0));
                mma_m16n8k16_bf16(acc[2 * nb], fa, fb, acc[2 * nb]);
                mma_m16n8k16_bf16(acc[2 * nb + 1], fa, fb + 2, acc[2 * nb + 1]);
            }
        }
    }
    if (normalize) {
        float norm = fmaxf(sqrtf(squares), 1e-12f);
        if (threadIdx.x < SIM_MMA_TILE) normA[threadIdx.x] = norm;
        else normB[threadIdx.x - SIM_MMA_TILE] = norm;
        __syncthreads();
    }
    // element (nb, i) of acc: row warp * 16 + group (+ 8 for i >= 2), column nb * 8 + 2 quad + (i & 1)
    for (int half = 0; half < 2; half++) {
        int r = warp * 16 + group + 8 * half;
        if (r >= rows) continue;
        float* o = out + (long)(rowStart + r) * m + colStart;
        for (int nb = 0; nb < SIM_MMA_TILE / 8; nb++) {
            int col = nb * 8 + 2 * quad;
            float v0 = scale * acc[nb][2 * half], v1 = scale * acc[nb][2 * half + 1];
            if (normalize) {
                v0 /= normA[r] * normB[col];
                if (col + 1 < cols) v1 /= normA[r] * normB[col + 1];
            }
            if (col + 1 < cols && m % 2 == 0) {
                *(float2*)(o + col) = make_float2(v0, v1); // 8-byte aligned: m and col even
            } else {
                if (col < cols) o[col] = v0;
                if (col + 1 < cols) o[col + 1] = v1;
            }
        }
    }
}

extern "C" __global__ void similarity_f16(float* out, const f16* a, const f16* b, int n, int m, int d,
                                                  float scale, int normalize) {
    similarity_impl<f16>(out, a, b, n, m, d, scale, normalize);
}
