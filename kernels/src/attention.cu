// attention.cu: fused multi-head self-attention forward on packed projections (nn.MultiheadAttention
// between in_proj and out_proj), head dim 64 (every CLIP model), causal (text) or full (vision).
//   qkv (B, T, 3C) = q | k | v, C = heads * 64; out (B, T, C); lse (B, heads, T) (may be null)
//   out[b, t, h] = softmax_j(q_t . k_j / 8 + mask) v_j, lse = log sum_j exp(q_t . k_j / 8 + mask)
// FlashAttention-style online softmax: scores of a query row exist only as 32 registers of one warp
// at a time; nothing of size T x T is ever stored, in global or in shared memory.
// Variants: attention_forward (F32 in/out), attention_forward_bf16, attention_forward_f16 (16-bit
// in/out); all accumulate in F32 and convert K/V to F32 as they enter shared memory.
// Launch: grid (ceil(T / 16), heads, B), block 128 threads (4 warps x 4 query rows each),
// dynamic shared = (keyTile * 65 + keyTile * 64 + 16 * 64) floats. The host picks keyTile = T when
// that fits the device's opt-in shared memory (a whole head's K and V: T = 257 -> 134 KB, fine on
// sm_80/sm_90), else 64 (37 KB); key tiles then stream through shared memory.
// Per query row, lane l scores key j0 + l (a 64-wide dot against K in shared, rows padded to 65
// floats so the 32 lanes hit 32 banks), one warp max/sum updates the running (m, l), and the
// probabilities are broadcast lane by lane (shfl) into the output accumulator (2 dims per lane).
// Versions: v1 SIMT F32 math, whole head resident (attention_forward*: the F32 path, and the 16-bit
// reference). v2 attention_forward_mma_bf16: tensor cores (mma_m16n8k16_bf16, clip_mma.cuh), FlashAttention-2
// register layout: each warp owns 16 query rows, S = Q K^T for 16 keys at a time stays in the mma
// accumulator fragments, the online softmax runs on those fragments (row max/sum across the 4 lanes
// of a quad), and P is re-packed in registers as the A operand of O += P V. K and V of the whole head
// (keys padded to a multiple of 16) sit in shared memory as BF16: grid (ceil(T / 64), heads, B), block 128,
// dynamic shared = 2 * roundup(keyTile, 16) * 72 * 2 bytes (T = 257: 78 KB). P is rounded to BF16 before PV, as in
// FlashAttention; accuracy vs the F32 path ~1e-2 relative. Speed on H100/A100: pending a GPU run.
// attention_backward (F32): dqkv += the gradient, recomputing P = exp(S - lse) from the forward's lse
// (no T x T matrix stored). Same grid and shared K/V tiles as attention_forward; per query row:
// D = dout . out, dS_j = P_j (dout . v_j - D); dq += dS_j k_j / 8 in registers, dk_j += dS_j q / 8 and
// dv_j += P_j dout by atomicAdd (rows of a block share keys). v1: simple and exact; a key-major pass
// without atomics (FlashAttention-2's backward) is the next step for speed.
#include "../include/clip_common.cuh"
#include "../include/clip_mma.cuh"

#define ATT_HD 64
#define ATT_WARPS 4
#define ATT_ROWS_PER_WARP 4
#define ATT_ROWS (ATT_WARPS * ATT_ROWS_PER_WARP)
#define ATT_KPAD (ATT_HD + 1)

template <typename T>
__device__ void attention_forward_impl(T* out, float* lse, const T* qkv, int b, int t, int heads, int causal,
                                       int keyTile) {
    extern __shared__ float smem[];
    float* ks = smem;                            // (keyTile, 65)
    float* vs = ks + (long)keyTile * ATT_KPAD;   // (keyTile, 64)
    float* qs = vs + (long)keyTile * ATT_HD;     // (16, 64), pre-scaled by 1/sqrt(64)
    int c = heads * ATT_HD;
    long stride = 3L * c;
    int h = blockIdx.y, bb = blockIdx.z;
    int rowStart = blockIdx.x * ATT_ROWS;
    int lane = threadIdx.x % CLIP_WARP, warp = threadIdx.x / CLIP_WARP;
    const T* base = qkv + (long)bb * t * stride + h * ATT_HD;
    const float scale = 0.125f; // 1 / sqrt(64)

    for (int i = threadIdx.x; i < ATT_ROWS * ATT_HD; i += blockDim.x) {
        int r = rowStart + i / ATT_HD;
        qs[i] = r < t ? to_f32(base[(long)r * stride + i % ATT_HD]) * scale : 0.0f;
    }
    float m[ATT_ROWS_PER_WARP], l[ATT_ROWS_PER_WARP], acc0[ATT_ROWS_PER_WARP], acc1[ATT_ROWS_PER_WARP];
    for (int r = 0; r < ATT_ROWS_PER_WARP; r++) {
        m[r] = -INFINITY;
        l[r] = 0.0f;
        acc0[r] = 0.0f;
        acc1[r] = 0.0f;
    }
    int lastRow = min(rowStart + ATT_ROWS, t) - 1;
    int keyEnd = causal ? lastRow + 1 : t;
    for (int t0 = 0; t0 < keyEnd; t0 += keyTile) {
        int tileLen = min(keyTile, keyEnd - t0);
        __syncthreads(); // previous tile fully consumed (and qs written, on the first pass)
        for (int i = threadIdx.x; i < tileLen * ATT_HD; i += blockDim.x) {
            int j = i / ATT_HD, d = i % ATT_HD;
            const T* src = base + (long)(t0 + j) * stride + d;
            ks[j * ATT_KPAD + d] = to_f32(src[c]);
            vs[j * ATT_HD + d] = to_f32(src[2 * c]);
        }
        __syncthreads();
        for (int r = 0; r < ATT_ROWS_PER_WARP; r++) {
            int local = warp + ATT_WARPS * r;
            int row = rowStart + local;
            if (row >= t) continue; // warp-uniform
            int tileEnd = min(t0 + tileLen, causal ? row + 1 : t);
            const float* q = qs + local * ATT_HD;
            for (int j0 = t0; j0 < tileEnd; j0 += CLIP_WARP) {
                int j = j0 + lane;
                float s = -INFINITY;
                if (j < tileEnd) {
                    const float* k = ks + (j - t0) * ATT_KPAD;
                    float dot = 0.0f;
                    for (int d = 0; d < ATT_HD; d++) dot += q[d] * k[d];
                    s = dot;
                }
                float newM = fmaxf(m[r], warp_max(s)); // finite: lane 0's key is always valid
                float p = expf(s - newM);
                float corr = expf(m[r] - newM);
                l[r] = l[r] * corr + warp_sum(p);
                m[r] = newM;
                float a0 = acc0[r] * corr, a1 = acc1[r] * corr;
                int count = min(CLIP_WARP, tileEnd - j0);
                for (int jj = 0; jj < count; jj++) {
                    float pj = __shfl_sync(CLIP_FULL_MASK, p, jj);
                    const float* v = vs + (j0 + jj - t0) * ATT_HD + 2 * lane;
                    a0 += pj * v[0];
                    a1 += pj * v[1];
                }
                acc0[r] = a0;
                acc1[r] = a1;
            }
        }
    }
    for (int r = 0; r < ATT_ROWS_PER_WARP; r++) {
        int row = rowStart + warp + ATT_WARPS * r;
        if (row >= t) continue;
        float inv = 1.0f / l[r];
        T* o = out + ((long)bb * t + row) * c + h * ATT_HD + 2 * lane;
        o[0] = from_f32<T>(acc0[r] * inv);
        o[1] = from_f32<T>(acc1[r] * inv);
        if (lse != nullptr && lane == 0) lse[((long)bb * heads + h) * t + row] = m[r] + logf(l[r]);
    }
}

extern "C" __global__ void attention_forward(float* out, float* lse, const float* qkv, int b, int t, int heads,
                                             int causal, int keyTile) {
    attention_forward_impl<float>(out, lse, qkv, b, t, heads, causal, keyTile);
}

extern "C" __global__ void attention_forward_bf16(bf16* out, float* lse, const bf16* qkv, int b, int t, int heads,
                                                  int causal, int keyTile) {
    attention_forward_impl<bf16>(out, lse, qkv, b, t, heads, causal, keyTile);
}

extern "C" __global__ void attention_forward_f16(f16* out, float* lse, const f16* qkv, int b, int t, int heads,
                                                 int causal, int keyTile) {
    attention_forward_impl<f16>(out, lse, qkv, b, t, heads, causal, keyTile);
}

// ---------------------------------------------------------------- v2: tensor cores (BF16)

#define MMA_ROWS_PER_WARP 16
#define MMA_ROWS (ATT_WARPS * MMA_ROWS_PER_WARP)
#define MMA_KSTRIDE (ATT_HD + 8) // bf16 elements per shared row: 144 bytes, staggers the banks

extern "C" __global__ void attention_forward_mma_bf16(bf16* out, float* lse, const bf16* qkv, int b, int t, int heads,
                                                      int causal, int keyTile) {
    extern __shared__ float smem[];
    unsigned short* ks = (unsigned short*) smem;              // (tileRows, 72) bf16 bits
    int tileRows = (keyTile + 15) / 16 * 16;                  // keys padded to whole mma blocks
    unsigned short* vs = ks + (long)tileRows * MMA_KSTRIDE;   // (tileRows, 72)
    int c = heads * ATT_HD;
    long stride = 3L * c;
    int h = blockIdx.y, bb = blockIdx.z;
    int lane = threadIdx.x % CLIP_WARP, warp = threadIdx.x / CLIP_WARP;
    int group = lane / 4, quad = lane % 4;
    int rowBase = blockIdx.x * MMA_ROWS + warp * MMA_ROWS_PER_WARP;
    int row0 = rowBase + group, row1 = rowBase + group + 8;
    const bf16* base = qkv + (long)bb * t * stride + h * ATT_HD;

    // Q fragments for the 4 k-steps of the 64-dim dot product, pre-scaled by 1/8 (exact in BF16).
    unsigned qa[4][4];
    for (int ks16 = 0; ks16 < 4; ks16++) {
        for (int r = 0; r < 4; r++) {
            int row = (r & 1) ? row1 : row0;
            int col = ks16 * 16 + 2 * quad + (r >= 2 ? 8 : 0);
            float lo = 0.0f, hi = 0.0f;
            if (row < t) {
                lo = to_f32(base[(long)row * stride + col]) * 0.125f;
                hi = to_f32(base[(long)row * stride + col + 1]) * 0.125f;
            }
            qa[ks16][r] = pack_bf16x2(lo, hi);
        }
    }
    float acc[8][4];
    for (int i = 0; i < 8; i++)
        for (int j = 0; j < 4; j++) acc[i][j] = 0.0f;
    float m0 = -INFINITY, m1 = -INFINITY, l0 = 0.0f, l1 = 0.0f;

    int blockLast = min((int)blockIdx.x * MMA_ROWS + MMA_ROWS, t) - 1;
    int keyEnd = causal ? blockLast + 1 : t;
    int warpLast = min(rowBase + MMA_ROWS_PER_WARP, t) - 1;
    for (int t0 = 0; t0 < keyEnd; t0 += keyTile) {
        int tileLen = min(keyTile, keyEnd - t0);
        int padded = (tileLen + 15) / 16 * 16;
        __syncthreads();
        for (int i = threadIdx.x; i < padded * ATT_HD; i += blockDim.x) {
            int j = i / ATT_HD, d = i % ATT_HD;
            unsigned short kv = 0, vv = 0;
            if (j < tileLen) {
                const bf16* src = base + (long)(t0 + j) * stride + d;
                kv = __bfloat16_as_ushort(src[c]);
                vv = __bfloat16_as_ushort(src[2 * c]);
            }
            ks[j * MMA_KSTRIDE + d] = kv;
            vs[j * MMA_KSTRIDE + d] = vv;
        }
        __syncthreads();
        if (rowBase >= t) continue; // warp-uniform: this warp has no rows (barriers above still met)
        int warpKeyEnd = min(t0 + padded, causal ? warpLast + 1 : t0 + padded);
        for (int j0 = t0; j0 < warpKeyEnd; j0 += 16) {
            float s[2][4];
            for (int nb = 0; nb < 2; nb++) {
                for (int i = 0; i < 4; i++) s[nb][i] = 0.0f;
                const unsigned short* krow = ks + (j0 - t0 + nb * 8 + group) * MMA_KSTRIDE;
                for (int ks16 = 0; ks16 < 4; ks16++) {
                    unsigned kb[2];
                    int d = ks16 * 16 + 2 * quad;
                    kb[0] = krow[d] | ((unsigned)krow[d + 1] << 16);
                    kb[1] = krow[d + 8] | ((unsigned)krow[d + 9] << 16);
                    mma_m16n8k16_bf16(s[nb], qa[ks16], kb, s[nb]);
                }
            }
            // mask, then the online softmax on the fragments (rows row0: s[.][0..1], row1: s[.][2..3])
            float mx0 = -INFINITY, mx1 = -INFINITY;
            for (int nb = 0; nb < 2; nb++) {
                for (int i = 0; i < 4; i++) {
                    int key = j0 + nb * 8 + 2 * quad + (i & 1);
                    int row = i < 2 ? row0 : row1;
                    bool valid = key < t0 + tileLen && (!causal || key <= row);
                    if (!valid) s[nb][i] = -INFINITY;
                }
                mx0 = fmaxf(mx0, fmaxf(s[nb][0], s[nb][1]));
                mx1 = fmaxf(mx1, fmaxf(s[nb][2], s[nb][3]));
            }
            for (int o = 1; o < 4; o <<= 1) {
                mx0 = fmaxf(mx0, __shfl_xor_sync(CLIP_FULL_MASK, mx0, o));
                mx1 = fmaxf(mx1, __shfl_xor_sync(CLIP_FULL_MASK, mx1, o));
            }
            float n0 = fmaxf(m0, mx0), n1 = fmaxf(m1, mx1);
            // A row with every key so far masked (a padding row past T under causal) keeps -inf: guard exp(nan).
            float corr0 = n0 == -INFINITY ? 1.0f : expf(m0 - n0), corr1 = n1 == -INFINITY ? 1.0f : expf(m1 - n1);
            float sum0 = 0.0f, sum1 = 0.0f;
            for (int nb = 0; nb < 2; nb++) {
                s[nb][0] = n0 == -INFINITY ? 0.0f : expf(s[nb][0] - n0);
                s[nb][1] = n0 == -INFINITY ? 0.0f : expf(s[nb][1] - n0);
                s[nb][2] = n1 == -INFINITY ? 0.0f : expf(s[nb][2] - n1);
                s[nb][3] = n1 == -INFINITY ? 0.0f : expf(s[nb][3] - n1);
                sum0 += s[nb][0] + s[nb][1];
                sum1 += s[nb][2] + s[nb][3];
            }
            for (int o = 1; o < 4; o <<= 1) {
                sum0 += __shfl_xor_sync(CLIP_FULL_MASK, sum0, o);
                sum1 += __shfl_xor_sync(CLIP_FULL_MASK, sum1, o);
            }
            l0 = l0 * corr0 + sum0;
            l1 = l1 * corr1 + sum1;
            m0 = n0;
            m1 = n1;
            for (int db = 0; db < 8; db++) {
                acc[db][0] *= corr0;
                acc[db][1] *= corr0;
                acc[db][2] *= corr1;
                acc[db][3] *= corr1;
            }
            // P (16 rows x 16 keys) as the A operand: the S accumulators of the two 8-key halves.
            unsigned pa[4];
            pa[0] = pack_bf16x2(s[0][0], s[0][1]);
            pa[1] = pack_bf16x2(s[0][2], s[0][3]);
            pa[2] = pack_bf16x2(s[1][0], s[1][1]);
            pa[3] = pack_bf16x2(s[1][2], s[1][3]);
            const unsigned short* v0 = vs + (j0 - t0 + 2 * quad) * MMA_KSTRIDE;
            for (int db = 0; db < 8; db++) {
                int d = db * 8 + group;
                unsigned vb[2];
                vb[0] = v0[d] | ((unsigned)v0[MMA_KSTRIDE + d] << 16);
                vb[1] = v0[8 * MMA_KSTRIDE + d] | ((unsigned)v0[9 * MMA_KSTRIDE + d] << 16);
                mma_m16n8k16_bf16(acc[db], pa, vb, acc[db]);
            }
        }
    }
    if (rowBase >= t) return;
    for (int half = 0; half < 2; half++) {
        int row = half ? row1 : row0;
        if (row >= t) continue;
        float inv = 1.0f / (half ? l1 : l0);
        bf16* o = out + ((long)bb * t + row) * c + h * ATT_HD;
        for (int db = 0; db < 8; db++) {
            int d = db * 8 + 2 * quad;
            o[d] = __float2bfloat16(acc[db][2 * half] * inv);
            o[d + 1] = __float2bfloat16(acc[db][2 * half + 1] * inv);
        }
        if (lse != nullptr && quad == 0) lse[((long)bb * heads + h) * t + row] = (half ? m1 : m0) + logf(half ? l1 : l0);
    }
}

// ---------------------------------------------------------------- backward (F32)

extern "C" __global__ void attention_backward(float* dqkv, const float* dout, const float* qkv, const float* out,
                                              const float* lse, int b, int t, int heads, int causal, int keyTile) {
    extern __shared__ float smem[];
    float* ks = smem;                            // (keyTile, 65)
    float* vs = ks + (long)keyTile * ATT_KPAD;   // (keyTile, 64)
    float* qs = vs + (long)keyTile * ATT_HD;     // (16, 64), pre-scaled by 1/8
    float* gs = qs + ATT_ROWS * ATT_HD;          // (16, 64) dout rows
    int c = heads * ATT_HD;
    long stride = 3L * c;
    int h = blockIdx.y, bb = blockIdx.z;
    int rowStart = blockIdx.x * ATT_ROWS;
    int lane = threadIdx.x % CLIP_WARP, warp = threadIdx.x / CLIP_WARP;
    const float* base = qkv + (long)bb * t * stride + h * ATT_HD;
    float* dbase = dqkv + (long)bb * t * stride + h * ATT_HD;
    const float scale = 0.125f;

    for (int i = threadIdx.x; i < ATT_ROWS * ATT_HD; i += blockDim.x) {
        int r = rowStart + i / ATT_HD, d = i % ATT_HD;
        qs[i] = r < t ? base[(long)r * stride + d] * scale : 0.0f;
        gs[i] = r < t ? dout[((long)bb * t + r) * c + h * ATT_HD + d] : 0.0f;
    }
    __syncthreads();
    float delta[ATT_ROWS_PER_WARP], rowLse[ATT_ROWS_PER_WARP], dq0[ATT_ROWS_PER_WARP], dq1[ATT_ROWS_PER_WARP];
    for (int r = 0; r < ATT_ROWS_PER_WARP; r++) {
        int local = warp + ATT_WARPS * r, row = rowStart + local;
        float part = 0.0f;
        if (row < t) {
            const float* o = out + ((long)bb * t + row) * c + h * ATT_HD;
            part = gs[local * ATT_HD + 2 * lane] * o[2 * lane] + gs[local * ATT_HD + 2 * lane + 1] * o[2 * lane + 1];
        }
        delta[r] = warp_sum(part);
        rowLse[r] = row < t ? lse[((long)bb * heads + h) * t + row] : 0.0f;
        dq0[r] = 0.0f;
        dq1[r] = 0.0f;
    }
    int lastRow = min(rowStart + ATT_ROWS, t) - 1;
    int keyEnd = causal ? lastRow + 1 : t;
    for (int t0 = 0; t0 < keyEnd; t0 += keyTile) {
        int tileLen = min(keyTile, keyEnd - t0);
        __syncthreads();
        for (int i = threadIdx.x; i < tileLen * ATT_HD; i += blockDim.x) {
            int j = i / ATT_HD, d = i % ATT_HD;
            const float* src = base + (long)(t0 + j) * stride + d;
            ks[j * ATT_KPAD + d] = src[c];
            vs[j * ATT_HD + d] = src[2 * c];
        }
        __syncthreads();
        for (int r = 0; r < ATT_ROWS_PER_WARP; r++) {
            int local = warp + ATT_WARPS * r;
            int row = rowStart + local;
            if (row >= t) continue; // warp-uniform
            int tileEnd = min(t0 + tileLen, causal ? row + 1 : t);
            const float* q = qs + local * ATT_HD;
            const float* g = gs + local * ATT_HD;
            for (int j0 = t0; j0 < tileEnd; j0 += CLIP_WARP) {
                int j = j0 + lane;
                float p = 0.0f, ds = 0.0f;
                if (j < tileEnd) {
                    const float* k = ks + (j - t0) * ATT_KPAD;
                    const float* v = vs + (j - t0) * ATT_HD;
                    float dot = 0.0f, dp = 0.0f;
                    for (int d = 0; d < ATT_HD; d++) {
                        dot += q[d] * k[d];
                        dp += g[d] * v[d];
                    }
                    p = expf(dot - rowLse[r]);
                    ds = p * (dp - delta[r]);
                }
                int count = min(CLIP_WARP, tileEnd - j0);
                for (int jj = 0; jj < count; jj++) {
                    float pj = __shfl_sync(CLIP_FULL_MASK, p, jj);
                    float dsj = __shfl_sync(CLIP_FULL_MASK, ds, jj);
                    int key = j0 + jj;
                    const float* k = ks + (key - t0) * ATT_KPAD + 2 * lane;
                    dq0[r] += dsj * k[0];
                    dq1[r] += dsj * k[1];
                    float* dk = dbase + (long)key * stride + c + 2 * lane;
                    atomicAdd(&dk[0], dsj * q[2 * lane]);
                    atomicAdd(&dk[1], dsj * q[2 * lane + 1]);
                    float* dv = dbase + (long)key * stride + 2 * c + 2 * lane;
                    atomicAdd(&dv[0], pj * g[2 * lane]);
                    atomicAdd(&dv[1], pj * g[2 * lane + 1]);
                }
            }
        }
    }
    for (int r = 0; r < ATT_ROWS_PER_WARP; r++) {
        int row = rowStart + warp + ATT_WARPS * r;
        if (row >= t) continue;
        float* dq = dbase + (long)row * stride + 2 * lane;
        dq[0] += dq0[r] * scale;
        dq[1] += dq1[r] * scale;
    }
}
