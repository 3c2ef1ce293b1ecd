// attention.cu: fused multi-head self-attention on packed projections (nn.MultiheadAttention between
// in_proj and out_proj), any head dim hd <= 128, causal (text) or full (vision).
//   qkv (B, T, 3C) = q | k | v, C = heads * hd; out (B, T, C); lse (B, heads, T) (may be null)
//   out[b, t, h] = softmax_j(q_t . k_j / sqrt(hd) + mask) v_j, lse = log sum_j exp(q_t . k_j / sqrt(hd) + mask)
// FlashAttention-style online softmax: scores of a query row exist only as 32 registers of one warp
// at a time; nothing of size T x T is ever stored, in global or in shared memory.
// Head widths: every kernel is compiled once per width of open_clip's zoo with hd a compile-time
// constant (dot products unrolled, register arrays sized to the width): NAME for hd 64 (OpenAI's
// models, ViT-S/M/B/L, every text tower), NAME_hd80 (ViT-H), NAME_hd88 (ViT-g), NAME_hd104 (ViT-bigG),
// NAME_hd112 (ViT-e); NAME_hdany takes any other hd <= 128 as its `hd` argument (register arrays sized
// for 128). Every variant takes `hd`; the host picks the variant by width and refuses hd > 128. The
// 16-bit SIMT kernels (attention_forward_bf16/_f16: no model path reaches them; the BF16 one is the
// reference of the tensor-core kernel) exist for hd 64 and as _hdany only, which keeps nvcc's time down.
// Variants: attention_forward (F32 in/out), attention_forward_bf16, attention_forward_f16 (16-bit
// in/out); all accumulate in F32 and convert K/V to F32 as they enter shared memory.
// Launch: grid (ceil(T / 16), heads, B), block 128 threads (4 warps x 4 query rows each),
// dynamic shared = (keyTile * (hd | 1) + keyTile * hd + 16 * hd) floats. The host picks keyTile = T when
// that fits the device's opt-in shared memory (a whole head's K and V), else 64; key tiles then
// stream through shared memory (each block still reads its head's K and V from global memory once:
// streaming costs barriers, not traffic). More than 48 KiB needs the opt-in (cuFuncSetAttribute),
// which the host's launch does. Budget per width (KiB; sm_80 opts in to 163, sm_90 to 227):
//     hd            64     80     88    104    112
//     T = 50      29.2   36.4   40.1   47.3   50.9
//     T = 77      42.8   53.4   58.7   69.4   74.7
//     T = 257    133.5  166.6  183.2  216.3  232.9   (sm_90: 112 streams; sm_80: 80 and wider stream)
//     keyTile 64  36.2   45.2   49.8   58.8   63.3
// Per query row, lane l scores key j0 + l (an hd-wide dot against K in shared, rows padded to an odd
// stride hd | 1 so the 32 lanes hit 32 banks), one warp max/sum updates the running (m, l), and the
// probabilities are broadcast lane by lane (shfl) into the output accumulator (lane l owns dims
// l, l + 32, l + 64, l + 96 below hd: ceil(hd / 32) registers per row).
// Versions: v1 SIMT F32 math, whole head resident, hd 64 only. v2 (this) any hd <= 128, one
// compile-time instantiation per zoo width. The scale 1/sqrt(hd) is 1.0f / sqrtf(hd) (IEEE, exact
// for 64), folded into Q as Q enters shared memory.
// attention_forward_mma_bf16: tensor cores (mma_m16n8k16_bf16, clip_mma.cuh), FlashAttention-2
// register layout: each warp owns 16 query rows, S = Q K^T for 16 keys at a time stays in the mma
// accumulator fragments (hd in ceil(hd / 16) k-steps; Q and K columns past hd are zeros), the scale is
// applied to S in F32, the online softmax runs on the fragments (row max/sum across the 4 lanes of a
// quad), and P is re-packed in registers as the A operand of O += P V (ceil(hd / 8) output blocks of
// 8 dims). K and V of the whole head (keys padded to a multiple of 16, dims to a multiple of 16 plus
// 8: an odd multiple of 4 words per row staggers the banks of the 8 row groups) sit in shared memory
// as BF16: grid (ceil(T / 64), heads, B), block 128,
// dynamic shared = 2 * roundup(keyTile, 16) * (roundup(hd, 16) + 8) * 2 bytes. Budget (KiB):
//     hd            64     80     88    104    112
//     T = 77      22.5   27.5   32.5   37.5   37.5
//     T = 257     76.5   93.5  110.5  127.5  127.5   (whole head on sm_80 and sm_90)
// P is rounded to BF16 before PV, as in FlashAttention; accuracy vs the F32 path ~1e-2 relative.
// Versions: v1 hd 64, Q pre-scaled by 1/8 in BF16. v2 (this) any hd <= 128, scale on S in F32.
// Speed on H100/A100: pending a GPU run. ptxas (sm_80, CUDA 13.0): no stack, no spills; registers: SIMT
// forward 48-55 (hdany 63), tensor-core 79 (hd 64), 95 (80), 116 (88), 128 (104), 126 (112), 135 (hdany),
// backward 64-72 (hdany 96).
// attention_backward (F32): dqkv += the gradient, recomputing P = exp(S - lse) from the forward's lse
// (no T x T matrix stored). Same grid and shared K/V tiles as attention_forward, plus the 16 dout rows:
// dynamic shared = (keyTile * (hd | 1) + keyTile * hd + 32 * hd) floats. Budget (KiB):
//     hd            64     80     88    104    112
//     T = 77      46.8   58.4   64.2   75.9   81.7
//     T = 257    137.5  171.6  188.7  222.8  239.9   (sm_90: 112 streams; sm_80: 80 and wider stream)
//     keyTile 64  40.2   50.2   55.2   65.2   70.2
// Per query row: D = dout . out, dS_j = P_j (dout . v_j - D); dq += dS_j k_j / sqrt(hd) in registers,
// dk_j += dS_j q / sqrt(hd) and dv_j += P_j dout by atomicAdd (rows of a block share keys). v1: simple
// and exact; a key-major pass without atomics (FlashAttention-2's backward) is the next step for speed.
#include "../include/clip_common.cuh"
#include "../include/clip_mma.cuh"

#define ATT_MAX_HD 128
#define ATT_WARPS 4
#define ATT_ROWS_PER_WARP 4
#define ATT_ROWS (ATT_WARPS * ATT_ROWS_PER_WARP)

// Registers per lane for one row of hd dims (lane l owns l, l + 32, ...): sized to the width, or to
// ATT_MAX_HD for the run-time-width variant (HD = 0).
template <int HD> struct AttLanes {
    static constexpr int count = HD > 0 ? (HD + CLIP_WARP - 1) / CLIP_WARP : ATT_MAX_HD / CLIP_WARP;
    static constexpr bool full = HD > 0 && HD % CLIP_WARP == 0; // every lane owns all its dims
};

template <typename T, int HD>
__device__ void attention_forward_impl(T* out, float* lse, const T* qkv, int b, int t, int heads, int hdArg,
                                       int causal, int keyTile) {
    constexpr int DIMS = AttLanes<HD>::count;
    constexpr bool FULL = AttLanes<HD>::full;
    const int hd = HD > 0 ? HD : hdArg;
    const int kpad = hd | 1;
    extern __shared__ float smem[];
    float* ks = smem;                            // (keyTile, hd | 1)
    float* vs = ks + (long)keyTile * kpad;       // (keyTile, hd)
    float* qs = vs + (long)keyTile * hd;         // (16, hd), pre-scaled by 1/sqrt(hd)
    int c = heads * hd;
    long stride = 3L * c;
    int h = blockIdx.y, bb = blockIdx.z;
    int rowStart = blockIdx.x * ATT_ROWS;
    int lane = threadIdx.x % CLIP_WARP, warp = threadIdx.x / CLIP_WARP;
    const T* base = qkv + (long)bb * t * stride + h * hd;
    const float scale = 1.0f / sqrtf((float)hd);

    for (int i = threadIdx.x; i < ATT_ROWS * hd; i += blockDim.x) {
        int r = rowStart + i / hd;
        qs[i] = r < t ? to_f32(base[(long)r * stride + i % hd]) * scale : 0.0f;
    }
    float m[ATT_ROWS_PER_WARP], l[ATT_ROWS_PER_WARP], acc[ATT_ROWS_PER_WARP][DIMS];
    for (int r = 0; r < ATT_ROWS_PER_WARP; r++) {
        m[r] = -INFINITY;
        l[r] = 0.0f;
        for (int i = 0; i < DIMS; i++) acc[r][i] = 0.0f;
    }
    int lastRow = min(rowStart + ATT_ROWS, t) - 1;
    int keyEnd = causal ? lastRow + 1 : t;
    for (int t0 = 0; t0 < keyEnd; t0 += keyTile) {
        int tileLen = min(keyTile, keyEnd - t0);
        __syncthreads(); // previous tile fully consumed (and qs written, on the first pass)
        for (int i = threadIdx.x; i < tileLen * hd; i += blockDim.x) {
            int j = i / hd, d = i % hd;
            const T* src = base + (long)(t0 + j) * stride + d;
            ks[j * kpad + d] = to_f32(src[c]);
            vs[j * hd + d] = to_f32(src[2 * c]);
        }
        __syncthreads();
#pragma unroll // the rows' register arrays (acc, dq) stay registers only when r is a constant
        for (int r = 0; r < ATT_ROWS_PER_WARP; r++) {
            int local = warp + ATT_WARPS * r;
            int row = rowStart + local;
            if (row >= t) continue; // warp-uniform
            int tileEnd = min(t0 + tileLen, causal ? row + 1 : t);
            const float* q = qs + local * hd;
            for (int j0 = t0; j0 < tileEnd; j0 += CLIP_WARP) {
                int j = j0 + lane;
                float s = -INFINITY;
                if (j < tileEnd) {
                    const float* k = ks + (j - t0) * kpad;
                    float dot = 0.0f;
                    for (int d = 0; d < hd; d++) dot += q[d] * k[d];
                    s = dot;
                }
                float newM = fmaxf(m[r], warp_max(s)); // finite: lane 0's key is always valid
                float p = expf(s - newM);
                float corr = expf(m[r] - newM);
                l[r] = l[r] * corr + warp_sum(p);
                m[r] = newM;
                float a[DIMS];
                for (int i = 0; i < DIMS; i++) a[i] = acc[r][i] * corr;
                int count = min(CLIP_WARP, tileEnd - j0);
                for (int jj = 0; jj < count; jj++) {
                    float pj = __shfl_sync(CLIP_FULL_MASK, p, jj);
                    const float* v = vs + (j0 + jj - t0) * hd + lane;
                    for (int i = 0; i < DIMS; i++) {
                        if (FULL || lane + CLIP_WARP * i < hd) a[i] += pj * v[CLIP_WARP * i];
                    }
                }
                for (int i = 0; i < DIMS; i++) acc[r][i] = a[i];
            }
        }
    }
    for (int r = 0; r < ATT_ROWS_PER_WARP; r++) {
        int row = rowStart + warp + ATT_WARPS * r;
        if (row >= t) continue;
        float inv = 1.0f / l[r];
        T* o = out + ((long)bb * t + row) * c + h * hd + lane;
        for (int i = 0; i < DIMS; i++) {
            if (FULL || lane + CLIP_WARP * i < hd) o[CLIP_WARP * i] = from_f32<T>(acc[r][i] * inv);
        }
        if (lse != nullptr && lane == 0) lse[((long)bb * heads + h) * t + row] = m[r] + logf(l[r]);
    }
}

// The kernels' parameter lists (one per kind), so that each width's entry point stays one line.
#define ATT_FORWARD_PARAMS(T) T* out, float* lse, const T* qkv, int b, int t, int heads, int hd, int causal, int keyTile
#define ATT_FORWARD_ARGS out, lse, qkv, b, t, heads, hd, causal, keyTile

extern "C" __global__ void attention_forward(ATT_FORWARD_PARAMS(float)) { attention_forward_impl<float, 64>(ATT_FORWARD_ARGS); }
extern "C" __global__ void attention_forward_hd80(ATT_FORWARD_PARAMS(float)) { attention_forward_impl<float, 80>(ATT_FORWARD_ARGS); }
extern "C" __global__ void attention_forward_hd88(ATT_FORWARD_PARAMS(float)) { attention_forward_impl<float, 88>(ATT_FORWARD_ARGS); }
extern "C" __global__ void attention_forward_hd104(ATT_FORWARD_PARAMS(float)) { attention_forward_impl<float, 104>(ATT_FORWARD_ARGS); }
extern "C" __global__ void attention_forward_hd112(ATT_FORWARD_PARAMS(float)) { attention_forward_impl<float, 112>(ATT_FORWARD_ARGS); }
extern "C" __global__ void attention_forward_hdany(ATT_FORWARD_PARAMS(float)) { attention_forward_impl<float, 0>(ATT_FORWARD_ARGS); }

extern "C" __global__ void attention_forward_bf16(ATT_FORWARD_PARAMS(bf16)) { attention_forward_impl<bf16, 64>(ATT_FORWARD_ARGS); }
extern "C" __global__ void attention_forward_bf16_hdany(ATT_FORWARD_PARAMS(bf16)) { attention_forward_impl<bf16, 0>(ATT_FORWARD_ARGS); }

extern "C" __global__ void attention_forward_f16(ATT_FORWARD_PARAMS(f16)) { attention_forward_impl<f16, 64>(ATT_FORWARD_ARGS); }
extern "C" __global__ void attention_forward_f16_hdany(ATT_FORWARD_PARAMS(f16)) { attention_forward_impl<f16, 0>(ATT_FORWARD_ARGS); }

// ---------------------------------------------------------------- tensor cores (BF16)

#define MMA_ROWS_PER_WARP 16
#define MMA_ROWS (ATT_WARPS * MMA_ROWS_PER_WARP)

template <int HD>
__device__ void attention_forward_mma_impl(bf16* out, float* lse, const bf16* qkv, int b, int t, int heads, int hdArg,
                                           int causal, int keyTile) {
    constexpr int KSTEPS = (HD > 0 ? HD : ATT_MAX_HD) / 16 + ((HD > 0 ? HD : ATT_MAX_HD) % 16 != 0); // k-steps of Q K^T
    constexpr int DBLOCKS = (HD > 0 ? HD : ATT_MAX_HD) / 8 + ((HD > 0 ? HD : ATT_MAX_HD) % 8 != 0);  // 8-dim blocks of P V
    const int hd = HD > 0 ? HD : hdArg;
    const int kdim = (hd + 15) / 16 * 16; // K and V columns in shared: hd, then zeros
    const int kstride = kdim + 8;         // bf16 per shared row: an odd multiple of 4 words
    const int ksteps = kdim / 16, dblocks = (hd + 7) / 8;
    extern __shared__ float smem[];
    unsigned short* ks = (unsigned short*) smem;              // (tileRows, kstride) bf16 bits
    int tileRows = (keyTile + 15) / 16 * 16;                  // keys padded to whole mma blocks
    unsigned short* vs = ks + (long)tileRows * kstride;       // (tileRows, kstride)
    int c = heads * hd;
    long stride = 3L * c;
    int h = blockIdx.y, bb = blockIdx.z;
    int lane = threadIdx.x % CLIP_WARP, warp = threadIdx.x / CLIP_WARP;
    int group = lane / 4, quad = lane % 4;
    int rowBase = blockIdx.x * MMA_ROWS + warp * MMA_ROWS_PER_WARP;
    int row0 = rowBase + group, row1 = rowBase + group + 8;
    const bf16* base = qkv + (long)bb * t * stride + h * hd;
    const float scale = 1.0f / sqrtf((float)hd);

    // Q fragments for the k-steps of the hd-dim dot product (columns past hd are zeros).
    unsigned qa[KSTEPS][4];
    for (int ks16 = 0; ks16 < KSTEPS; ks16++) {
        for (int r = 0; r < 4; r++) {
            int row = (r & 1) ? row1 : row0;
            int col = ks16 * 16 + 2 * quad + (r >= 2 ? 8 : 0);
            float lo = 0.0f, hi = 0.0f;
            if (row < t && col < hd) lo = to_f32(base[(long)row * stride + col]);
            if (row < t && col + 1 < hd) hi = to_f32(base[(long)row * stride + col + 1]);
            qa[ks16][r] = pack_bf16x2(lo, hi);
        }
    }
    float acc[DBLOCKS][4];
    for (int i = 0; i < DBLOCKS; i++)
        for (int j = 0; j < 4; j++) acc[i][j] = 0.0f;
    float m0 = -INFINITY, m1 = -INFINITY, l0 = 0.0f, l1 = 0.0f;

    int blockLast = min((int)blockIdx.x * MMA_ROWS + MMA_ROWS, t) - 1;
    int keyEnd = causal ? blockLast + 1 : t;
    int warpLast = min(rowBase + MMA_ROWS_PER_WARP, t) - 1;
    for (int t0 = 0; t0 < keyEnd; t0 += keyTile) {
        int tileLen = min(keyTile, keyEnd - t0);
        int padded = (tileLen + 15) / 16 * 16;
        __syncthreads();
        for (int i = threadIdx.x; i < padded * kdim; i += blockDim.x) {
            int j = i / kdim, d = i % kdim;
            unsigned short kv = 0, vv = 0;
            if (j < tileLen && d < hd) {
                const bf16* src = base + (long)(t0 + j) * stride + d;
                kv = __bfloat16_as_ushort(src[c]);
                vv = __bfloat16_as_ushort(src[2 * c]);
            }
            ks[j * kstride + d] = kv;
            vs[j * kstride + d] = vv;
        }
        __syncthreads();
        if (rowBase >= t) continue; // warp-uniform: this warp has no rows (barriers above still met)
        int warpKeyEnd = min(t0 + padded, causal ? warpLast + 1 : t0 + padded);
        for (int j0 = t0; j0 < warpKeyEnd; j0 += 16) {
            float s[2][4];
            for (int nb = 0; nb < 2; nb++) {
                for (int i = 0; i < 4; i++) s[nb][i] = 0.0f;
                const unsigned short* krow = ks + (j0 - t0 + nb * 8 + group) * kstride;
                for (int ks16 = 0; ks16 < KSTEPS; ks16++) {
                    if (HD == 0 && ks16 >= ksteps) break; // warp-uniform
                    unsigned kb[2];
                    int d = ks16 * 16 + 2 * quad;
                    kb[0] = krow[d] | ((unsigned)krow[d + 1] << 16);
                    kb[1] = krow[d + 8] | ((unsigned)krow[d + 9] << 16);
                    mma_m16n8k16_bf16(s[nb], qa[ks16], kb, s[nb]);
                }
            }
            // scale and mask, then the online softmax on the fragments (rows row0: s[.][0..1], row1: s[.][2..3])
            float mx0 = -INFINITY, mx1 = -INFINITY;
            for (int nb = 0; nb < 2; nb++) {
                for (int i = 0; i < 4; i++) {
                    int key = j0 + nb * 8 + 2 * quad + (i & 1);
                    int row = i < 2 ? row0 : row1;
                    bool valid = key < t0 + tileLen && (!causal || key <= row);
                    s[nb][i] = valid ? s[nb][i] * scale : -INFINITY;
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
            for (int db = 0; db < DBLOCKS; db++) {
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
            const unsigned short* v0 = vs + (j0 - t0 + 2 * quad) * kstride;
            for (int db = 0; db < DBLOCKS; db++) {
                if (HD == 0 && db >= dblocks) break; // warp-uniform
                int d = db * 8 + group;
                unsigned vb[2];
                vb[0] = v0[d] | ((unsigned)v0[kstride + d] << 16);
                vb[1] = v0[8 * kstride + d] | ((unsigned)v0[9 * kstride + d] << 16);
                mma_m16n8k16_bf16(acc[db], pa, vb, acc[db]);
            }
        }
    }
    if (rowBase >= t) return;
    for (int half = 0; half < 2; half++) {
        int row = half ? row1 : row0;
        if (row >= t) continue;
        float inv = 1.0f / (half ? l1 : l0);
        bf16* o = out + ((long)bb * t + row) * c + h * hd;
        for (int db = 0; db < DBLOCKS; db++) {
            int d = db * 8 + 2 * quad;
            if (d < hd) o[d] = __float2bfloat16(acc[db][2 * half] * inv);
            if (d + 1 < hd) o[d + 1] = __float2bfloat16(acc[db][2 * half + 1] * inv);
        }
        if (lse != nullptr && quad == 0) lse[((long)bb * heads + h) * t + row] = (half ? m1 : m0) + logf(half ? l1 : l0);
    }
}

extern "C" __global__ void attention_forward_mma_bf16(ATT_FORWARD_PARAMS(bf16)) { attention_forward_mma_impl<64>(ATT_FORWARD_ARGS); }
extern "C" __global__ void attention_forward_mma_bf16_hd80(ATT_FORWARD_PARAMS(bf16)) { attention_forward_mma_impl<80>(ATT_FORWARD_ARGS); }
extern "C" __global__ void attention_forward_mma_bf16_hd88(ATT_FORWARD_PARAMS(bf16)) { attention_forward_mma_impl<88>(ATT_FORWARD_ARGS); }
extern "C" __global__ void attention_forward_mma_bf16_hd104(ATT_FORWARD_PARAMS(bf16)) { attention_forward_mma_impl<104>(ATT_FORWARD_ARGS); }
extern "C" __global__ void attention_forward_mma_bf16_hd112(ATT_FORWARD_PARAMS(bf16)) { attention_forward_mma_impl<112>(ATT_FORWARD_ARGS); }
extern "C" __global__ void attention_forward_mma_bf16_hdany(ATT_FORWARD_PARAMS(bf16)) { attention_forward_mma_impl<0>(ATT_FORWARD_ARGS); }

// ---------------------------------------------------------------- backward (F32)

template <int HD>
__device__ void attention_backward_impl(float* dqkv, const float* dout, const float* qkv, const float* out,
                                        const float* lse, int b, int t, int heads, int hdArg, int causal, int keyTile) {
    constexpr int DIMS = AttLanes<HD>::count;
    constexpr bool FULL = AttLanes<HD>::full;
    const int hd = HD > 0 ? HD : hdArg;
    const int kpad = hd | 1;
    extern __shared__ float smem[];
    float* ks = smem;                            // (keyTile, hd | 1)
    float* vs = ks + (long)keyTile * kpad;       // (keyTile, hd)
    float* qs = vs + (long)keyTile * hd;         // (16, hd), pre-scaled by 1/sqrt(hd)
    float* gs = qs + ATT_ROWS * hd;              // (16, hd) dout rows
    int c = heads * hd;
    long stride = 3L * c;
    int h = blockIdx.y, bb = blockIdx.z;
    int rowStart = blockIdx.x * ATT_ROWS;
    int lane = threadIdx.x % CLIP_WARP, warp = threadIdx.x / CLIP_WARP;
    const float* base = qkv + (long)bb * t * stride + h * hd;
    float* dbase = dqkv + (long)bb * t * stride + h * hd;
    const float scale = 1.0f / sqrtf((float)hd);

    for (int i = threadIdx.x; i < ATT_ROWS * hd; i += blockDim.x) {
        int r = rowStart + i / hd, d = i % hd;
        qs[i] = r < t ? base[(long)r * stride + d] * scale : 0.0f;
        gs[i] = r < t ? dout[((long)bb * t + r) * c + h * hd + d] : 0.0f;
    }
    __syncthreads();
    float delta[ATT_ROWS_PER_WARP], rowLse[ATT_ROWS_PER_WARP], dq[ATT_ROWS_PER_WARP][DIMS];
    for (int r = 0; r < ATT_ROWS_PER_WARP; r++) {
        int local = warp + ATT_WARPS * r, row = rowStart + local;
        float part = 0.0f;
        if (row < t) {
            const float* o = out + ((long)bb * t + row) * c + h * hd + lane;
            const float* g = gs + local * hd + lane;
            for (int i = 0; i < DIMS; i++) {
                if (FULL || lane + CLIP_WARP * i < hd) part += g[CLIP_WARP * i] * o[CLIP_WARP * i];
            }
        }
        delta[r] = warp_sum(part);
        rowLse[r] = row < t ? lse[((long)bb * heads + h) * t + row] : 0.0f;
        for (int i = 0; i < DIMS; i++) dq[r][i] = 0.0f;
    }
    int lastRow = min(rowStart + ATT_ROWS, t) - 1;
    int keyEnd = causal ? lastRow + 1 : t;
    for (int t0 = 0; t0 < keyEnd; t0 += keyTile) {
        int tileLen = min(keyTile, keyEnd - t0);
        __syncthreads();
        for (int i = threadIdx.x; i < tileLen * hd; i += blockDim.x) {
            int j = i / hd, d = i % hd;
            const float* src = base + (long)(t0 + j) * stride + d;
            ks[j * kpad + d] = src[c];
            vs[j * hd + d] = src[2 * c];
        }
        __syncthreads();
#pragma unroll // the rows' register arrays (acc, dq) stay registers only when r is a constant
        for (int r = 0; r < ATT_ROWS_PER_WARP; r++) {
            int local = warp + ATT_WARPS * r;
            int row = rowStart + local;
            if (row >= t) continue; // warp-uniform
            int tileEnd = min(t0 + tileLen, causal ? row + 1 : t);
            const float* q = qs + local * hd;
            const float* g = gs + local * hd;
            for (int j0 = t0; j0 < tileEnd; j0 += CLIP_WARP) {
                int j = j0 + lane;
                float p = 0.0f, ds = 0.0f;
                if (j < tileEnd) {
                    const float* k = ks + (j - t0) * kpad;
                    const float* v = vs + (j - t0) * hd;
                    float dot = 0.0f, dp = 0.0f;
                    for (int d = 0; d < hd; d++) {
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
                    const float* k = ks + (key - t0) * kpad + lane;
                    float* dk = dbase + (long)key * stride + c + lane;
                    float* dv = dbase + (long)key * stride + 2 * c + lane;
                    for (int i = 0; i < DIMS; i++) {
                        int d = lane + CLIP_WARP * i;
                        if (!FULL && d >= hd) continue;
                        dq[r][i] += dsj * k[CLIP_WARP * i];
                        atomicAdd(&dk[CLIP_WARP * i], dsj * q[d]);
                        atomicAdd(&dv[CLIP_WARP * i], pj * g[d]);
                    }
                }
            }
        }
    }
    for (int r = 0; r < ATT_ROWS_PER_WARP; r++) {
        int row = rowStart + warp + ATT_WARPS * r;
        if (row >= t) continue;
        float* dqRow = dbase + (long)row * stride + lane;
        for (int i = 0; i < DIMS; i++) {
            if (FULL || lane + CLIP_WARP * i < hd) dqRow[CLIP_WARP * i] += dq[r][i] * scale;
        }
    }
}

#define ATT_BACKWARD_PARAMS float* dqkv, const float* dout, const float* qkv, const float* out, const float* lse, int b, int t, \
                            int heads, int hd, int causal, int keyTile
#define ATT_BACKWARD_ARGS dqkv, dout, qkv, out, lse, b, t, heads, hd, causal, keyTile

extern "C" __global__ void attention_backward(ATT_BACKWARD_PARAMS) { attention_backward_impl<64>(ATT_BACKWARD_ARGS); }
extern "C" __global__ void attention_backward_hd80(ATT_BACKWARD_PARAMS) { attention_backward_impl<80>(ATT_BACKWARD_ARGS); }
extern "C" __global__ void attention_backward_hd88(ATT_BACKWARD_PARAMS) { attention_backward_impl<88>(ATT_BACKWARD_ARGS); }
extern "C" __global__ void attention_backward_hd104(ATT_BACKWARD_PARAMS) { attention_backward_impl<104>(ATT_BACKWARD_ARGS); }
extern "C" __global__ void attention_backward_hd112(ATT_BACKWARD_PARAMS) { attention_backward_impl<112>(ATT_BACKWARD_ARGS); }
extern "C" __global__ void attention_backward_hdany(ATT_BACKWARD_PARAMS) { attention_backward_impl<0>(ATT_BACKWARD_ARGS); }
