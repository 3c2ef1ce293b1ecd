// contrastive.cu: CLIP's symmetric contrastive loss forward, never materializing the N x N logits.
//   S = exp(logScale[0]) * img (N, D) @ txt (N, D)^T
//   loss = (mean_i(lse_j S_ij - S_ii) + mean_j(lse_i S_ij - S_jj)) / 2
//   contrastive_forward_lse   lse (N), diag (N) for the rows of S = scale * a @ b^T: called with
//                             (img, txt) for the row log-sum-exps and with (txt, img) for the columns.
//                             One block per row of a: its 4 warps stream the rows of b (lanes over D,
//                             coalesced) keeping a running (max, sum) each, merged at the end:
//                             memory O(N), work O(N^2 D).
//   contrastive_forward_loss  loss[0] = sum_i (lseRow_i + lseCol_i - 2 diag_i) / (2N), one block.
//   contrastive_backward      recomputes S row by row (never stored): with
//                             dS_ij = gradScale (softmax_row_ij + softmax_col_ij - 2 delta_ij) / (2N),
//                             da_i += scale sum_j dS_ij b_j and dLogScale += sum_ij dS_ij S_ij. Called with
//                             (img, txt, lseRow, lseCol) for dImg and with (txt, img, lseCol, lseRow) for dTxt
//                             (dS is symmetric under that swap); dLogScale only in one of the two calls.
// Launch: lse: grid N, block 128, dynamic shared D floats (the row of a); loss: grid 1, block 256;
// backward: grid N, block 128, dynamic shared (1 + 4) * D floats (the row of a, one accumulator per warp).
// Versions: v1 (this) row-streaming log-sum-exp, F32. Next: tensor-core tiles of S shared between the
// row and column passes (one GEMM-like sweep instead of two; BF16 inputs through mma.sync as
// similarity_mma_bf16 does) -- not done yet: every pass here is F32 SIMT with a warp reduction per S_ij.
// Expected bound (H100 SXM: 67 TFLOP/s F32 FMA, 989 TFLOP/s BF16 dense, 3.35 TB/s), D = 512:
//   N = 256 (ViT-B/32 batch 256): forward 2 lse passes x 2 N^2 D = 0.13 GFLOP, backward 2 passes x 4 N^2 D
//   = 0.27 GFLOP: ~6 us of F32 FMA in all, bytes ~1 MB: launch- and latency-bound (N = 256 blocks);
//   N = 4096: forward 34 GFLOP -> 0.51 ms F32 (35 us on tensor cores), backward 69 GFLOP -> 1.0 ms F32
//   (70 us on tensor cores); the operands (8 MB) stay in L2: compute-bound, where tensor cores pay 15x.
#include "../include/clip_common.cuh"

extern "C" __global__ void contrastive_forward_lse(float* lse, float* diag, const float* a, const float* b, int n,
                                                   int d, const float* logScale) {
    extern __shared__ float ai[]; // (D)
    __shared__ float warpM[32];
    __shared__ float warpL[32];
    int i = blockIdx.x;
    int lane = threadIdx.x % CLIP_WARP, warp = threadIdx.x / CLIP_WARP, warps = blockDim.x / CLIP_WARP;
    float scale = expf(logScale[0]);
    for (int x = threadIdx.x; x < d; x += blockDim.x) ai[x] = a[(long)i * d + x] * scale;
    __syncthreads();
    float m = -INFINITY, l = 0.0f;
    for (int j = warp; j < n; j += warps) {
        float dot = 0.0f;
        for (int x = lane; x < d; x += CLIP_WARP) dot += ai[x] * b[(long)j * d + x];
        float s = warp_sum(dot);
        if (j == i && lane == 0) diag[i] = s;
        float newM = fmaxf(m, s);
        l = l * expf(m - newM) + expf(s - newM);
        m = newM;
    }
    if (lane == 0) {
        warpM[warp] = m;
        warpL[warp] = l;
    }
    __syncthreads();
    if (threadIdx.x == 0) {
        float gm = -INFINITY;
        for (int w = 0; w < warps; w++) gm = fmaxf(gm, warpM[w]);
        float gl = 0.0f;
        for (int w = 0; w < warps; w++)
            if (warpL[w] > 0.0f) gl += warpL[w] * expf(warpM[w] - gm);
        lse[i] = gm + logf(gl);
    }
}

extern "C" __global__ void contrastive_forward_loss(float* loss, const float* lseRow, const float* lseCol,
                                                    const float* diag, int n) {
    __shared__ float scratch[32];
    float acc = 0.0f;
    for (int i = threadIdx.x; i < n; i += blockDim.x) acc += (lseRow[i] - diag[i]) + (lseCol[i] - diag[i]);
    acc = block_sum(acc, scratch);
    if (threadIdx.x == 0) loss[0] = acc / (2.0f * n);
}

extern "C" __global__ void contrastive_backward(float* da, float* dLogScale, const float* a, const float* b,
                                                const float* lseRow, const float* lseCol, int n, int d,
                                                const float* logScale, float gradScale) {
    extern __shared__ float smem[];
    __shared__ float warpDs[32];
    int i = blockIdx.x;
    int lane = threadIdx.x % CLIP_WARP, warp = threadIdx.x / CLIP_WARP, warps = blockDim.x / CLIP_WARP;
    float* ai = smem;                       // (D) row i of a, times scale
    float* acc = smem + d + warp * d;       // (D) this warp's share of da_i
    float scale = expf(logScale[0]);
    for (int x = threadIdx.x; x < d; x += blockDim.x) ai[x] = a[(long)i * d + x] * scale;
    for (int x = lane; x < d; x += CLIP_WARP) acc[x] = 0.0f;
    __syncthreads();
    float coef = gradScale / (2.0f * n);
    float dsPartial = 0.0f;
    for (int j = warp; j < n; j += warps) {
        float dot = 0.0f;
        for (int x = lane; x < d; x += CLIP_WARP) dot += ai[x] * b[(long)j * d + x];
        float s = warp_sum(dot);
        float g = coef * (expf(s - lseRow[i]) + expf(s - lseCol[j]) - (i == j ? 2.0f : 0.0f));
        dsPartial += g * s;
        for (int x = lane; x < d; x += CLIP_WARP) acc[x] += g * b[(long)j * d + x];
    }
    if (lane == 0) warpDs[warp] = dsPartial;
    __syncthreads();
    for (int x = threadIdx.x; x < d; x += blockDim.x) {
        float sum = 0.0f;
        for (int w = 0; w < warps; w++) sum += smem[d + w * d + x];
        da[(long)i * d + x] += scale * sum;
    }
    if (dLogScale != nullptr && threadIdx.x == 0) {
        float total = 0.0f;
        for (int w = 0; w < warps; w++) total += warpDs[w];
        atomicAdd(dLogScale, total);
    }
}
