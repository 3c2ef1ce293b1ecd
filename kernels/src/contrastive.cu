// contrastive.cu: CLIP's symmetric contrastive loss, forward and backward: F32 features without the N x N logits,
// BF16 features through materialized logits and tensor-core GEMMs (below).
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
// BF16 features (mixed-precision training; ContrastiveKernels.java): the logits materialized instead, F32 throughout
// but for the GEMM operands:
//   G = img @ txt^T (N, N) F32, a cuBLASLt BF16 GEMM on tensor cores (F32 accumulation), unscaled (the scale stays on
//   the device); contrastive_rows_lse -> lseRow, diag; contrastive_cols_lse -> lseCol; contrastive_forward_loss;
//   contrastive_logit_grad_bf16 -> ds = scale dS (N, N) BF16 and dLogScale; dImg += ds @ txt, dTxt += ds^T @ img as two
//   more BF16 GEMMs (F32 accumulation straight into the F32 gradients, beta = 1).
// rows_lse: grid N, block 128, each thread a strided set of columns, (max, sum) merged by shuffles and shared memory;
// cols_lse: grid ceil(N / 32), block (32, 8), a thread a column over an eighth of the rows (coalesced);
// logit_grad: grid-stride over N^2 (elementwise launch, block 256), one atomic per block for dLogScale.
// Why materialized rather than streaming mma.sync tiles: the three GEMMs are what cuBLASLt does best (and what its
// simulator GEMM checks cheaply: N = 4096 stays seconds), the rest is memory-bound; the price is 6 N^2 bytes of
// scratch and 22 N^2 bytes of traffic, so the path is taken while 6 N^2 fits -Dclip.cuda.contrastiveLogitsMiB
// (256: N <= 6688); beyond it the F32 kernels below run on F32 copies of the features (memory O(N)).
// Versions: v1 row-streaming log-sum-exp, F32. v2 (this) + the BF16 path above. Next: streaming tensor-core tiles
// (a warp's 16 rows of a against b in 16-wide k-steps through ldmatrix, online lse on the accumulators, the backward
// recomputing S tiles) to drop the N^2 traffic, which bounds v2 at large N.
// Expected bound (H100 SXM: 67 TFLOP/s F32 FMA, 989 TFLOP/s BF16 dense, 3.35 TB/s), D = 512:
//   F32 kernels, N = 256 (ViT-B/32 batch 256): forward 2 lse passes x 2 N^2 D = 0.13 GFLOP, backward 2 passes x
//   4 N^2 D = 0.27 GFLOP: ~6 us of F32 FMA in all, bytes ~1 MB: launch- and latency-bound (N = 256 blocks);
//   N = 4096: forward 34 GFLOP -> 0.51 ms, backward 69 GFLOP -> 1.0 ms; operands (8 MB F32) in L2: compute-bound.
//   BF16 path, N = 256: GEMMs 3 x 2 N^2 D = 0.2 GFLOP -> 0.2 us, N^2 traffic 22 N^2 = 1.4 MB -> 0.4 us: bound by its
//   7 launches (~20 us of launch latency), not by the math;
//   N = 4096: forward GEMM 17 GFLOP -> 17 us, backward GEMMs 34 GFLOP -> 35 us on tensor cores; N^2 traffic
//   22 N^2 = 369 MB (logits 64 MB > the 50 MB L2) -> 110 us: memory-bound, ~0.16 ms in all vs ~1.5 ms for the F32
//   kernels (forward alone: 12 N^2 = 201 MB -> 60 us + 17 us).
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

// ---- v2: the BF16 path over materialized logits (see the header) ----

// (m, l) = (m, l) merged with (m2, l2): running maxima and sums of exp(x - max) of two sets.
__device__ __forceinline__ void lse_merge(float& m, float& l, float m2, float l2) {
    float newM = fmaxf(m, m2);
    if (newM == -INFINITY) return; // both empty
    l = l * expf(m - newM) + l2 * expf(m2 - newM);
    m = newM;
}

// lse (N), diag (N) of the rows of S = exp(logScale[0]) * g, g (N, N) F32. One block per row, its threads stride
// the columns (coalesced), online (max, sum) per thread merged through warp shuffles and shared memory.
extern "C" __global__ void contrastive_rows_lse(float* lse, float* diag, const float* g, int n, const float* logScale) {
    __shared__ float warpM[32];
    __shared__ float warpL[32];
    int i = blockIdx.x;
    int lane = threadIdx.x % CLIP_WARP, warp = threadIdx.x / CLIP_WARP, warps = blockDim.x / CLIP_WARP;
    float scale = expf(logScale[0]);
    const float* row = g + (long)i * n;
    float m = -INFINITY, l = 0.0f;
    for (int j = threadIdx.x; j < n; j += blockDim.x) lse_merge(m, l, scale * row[j], 1.0f);
    for (int o = CLIP_WARP / 2; o > 0; o >>= 1) {
        float m2 = __shfl_xor_sync(CLIP_FULL_MASK, m, o), l2 = __shfl_xor_sync(CLIP_FULL_MASK, l, o);
        lse_merge(m, l, m2, l2);
    }
    if (lane == 0) {
        warpM[warp] = m;
        warpL[warp] = l;
    }
    __syncthreads();
    if (threadIdx.x == 0) {
        for (int w = 1; w < warps; w++) lse_merge(m, l, warpM[w], warpL[w]);
        lse[i] = m + logf(l);
        diag[i] = scale * row[i];
    }
}

// lse (N) of the columns of S = exp(logScale[0]) * g. Block (32, 8): threadIdx.x a column (coalesced rows of g),
// threadIdx.y strides the rows; the 8 partial (max, sum) of a column merged in shared memory.
extern "C" __global__ void contrastive_cols_lse(float* lse, const float* g, int n, const float* logScale) {
    __shared__ float partM[8][32];
    __shared__ float partL[8][32];
    int j = blockIdx.x * 32 + threadIdx.x;
    float scale = expf(logScale[0]);
    float m = -INFINITY, l = 0.0f;
    if (j < n)
        for (int i = threadIdx.y; i < n; i += blockDim.y) lse_merge(m, l, scale * g[(long)i * n + j], 1.0f);
    partM[threadIdx.y][threadIdx.x] = m;
    partL[threadIdx.y][threadIdx.x] = l;
    __syncthreads();
    if (threadIdx.y == 0 && j < n) {
        for (int y = 1; y < blockDim.y; y++) lse_merge(m, l, partM[y][threadIdx.x], partL[y][threadIdx.x]);
        lse[j] = m + logf(l);
    }
}

// ds (N, N) BF16 = scale * dS, dS_ij = gradScale (softmax_row_ij + softmax_col_ij - 2 delta_ij) / (2N), the operand
// of the two gradient GEMMs (da += ds @ b, db += ds^T @ a: the scale folded in, so no host copy of it); ds null for
// dLogScale alone; dLogScale (may be null) += sum_ij dS_ij S_ij, one atomic per block. Grid-stride over the N^2
// elements, blockDim 256.
extern "C" __global__ void contrastive_logit_grad_bf16(bf16* ds, float* dLogScale, const float* g, const float* lseRow,
                                                       const float* lseCol, int n, const float* logScale, float gradScale) {
    __shared__ float scratch[32];
    float scale = expf(logScale[0]);
    float coef = gradScale / (2.0f * n);
    float partial = 0.0f;
    long total = (long)n * n;
    for (long e = (long)blockIdx.x * blockDim.x + threadIdx.x; e < total; e += (long)gridDim.x * blockDim.x) {
        int i = (int)(e / n), j = (int)(e % n);
        float s = scale * g[e];
        float d = coef * (expf(s - lseRow[i]) + expf(s - lseCol[j]) - (i == j ? 2.0f : 0.0f));
        partial += d * s;
        if (ds != nullptr) ds[e] = __float2bfloat16(scale * d);
    }
    if (dLogScale != nullptr) {
        partial = block_sum(partial, scratch);
        if (threadIdx.x == 0) atomicAdd(dLogScale, partial);
    }
}
