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
// quad), and P is re-packed in registers as the A operand of O += P V (2 * ceil(hd / 16) output blocks
// of 8 dims). K and V of the whole head (keys padded to a multiple of 16, dims to a multiple of 16 plus
// 8: an odd multiple of 16 bytes per row, so the 8 rows of an ldmatrix phase hit distinct banks) sit in
// shared memory as BF16, copied there by 16-byte cp.async (scalar loads where hd % 8 != 0), and leave it
// by ldmatrix.x4: K rows as the B operand of S (not transposed), V rows through .trans as the B operand
// of P V, 16 dims per load (clip_mma.cuh). Q fragments come from global memory once, 32-bit pairs.
// Grid (ceil(T / 64), heads, B), block 128,
// dynamic shared = 2 * roundup(keyTile, 16) * (roundup(hd, 16) + 8) * 2 bytes. Budget (KiB):
//     hd            64     80     88    104    112
//     T = 77      22.5   27.5   32.5   37.5   37.5
//     T = 257     76.5   93.5  110.5  127.5  127.5   (whole head on sm_80 and sm_90)
// P is rounded to BF16 before PV, as in FlashAttention; accuracy vs the F32 path ~1e-2 relative.
// Versions: v1 hd 64, Q pre-scaled by 1/8 in BF16. v2 any hd <= 128, scale on S in F32. v3 (this)
// ldmatrix.x4 (4 x 32-bit fragments per instruction) instead of 2 scalar 16-bit shared loads per
// 32-bit fragment register, cp.async for the K/V tiles.
// Speed on H100/A100: pending a GPU run. ptxas (sm_90a, CUDA 13.0): no stack, no spills; registers of the
// tensor-core kernels (hd 64 / 80 / 88 / 104 / 112 / hdany): forward 96 / 99 / 126 / 126 / 126 / 153,
// backward dK/dV 166 / 170 / 226 / 246 / 248 / 250 (two 128-thread blocks per SM at the widest: the price of
// holding K, V, dK, dV in registers), backward dQ 128 / 127 / 162 / 176 / 164 / 186; F32 backward dK/dV 56-64
// (hdany 80), dQ 56.
// attention_backward (F32): dqkv += the gradient, recomputing P = exp(S - lse) from the forward's lse
// (no T x T matrix stored). Same grid and shared K/V tiles as attention_forward, plus the 16 dout rows:
// dynamic shared = (keyTile * (hd | 1) + keyTile * hd + 32 * hd) floats. Budget (KiB):
//     hd            64     80     88    104    112
//     T = 77      46.8   58.4   64.2   75.9   81.7
//     T = 257    137.5  171.6  188.7  222.8  239.9   (sm_90: 112 streams; sm_80: 80 and wider stream)
//     keyTile 64  40.2   50.2   55.2   65.2   70.2
// Per query row: D = dout . out, dS_j = P_j (dout . v_j - D); dq += dS_j k_j / sqrt(hd) in registers,
// dk_j += dS_j q / sqrt(hd) and dv_j += P_j dout by atomicAdd (rows of a block share keys). v1: simple
// and exact, but per-pair atomics (4 hd of them per (query, key) pair): the BF16 backward below has none.
// attention_backward BF16 (FlashAttention-2): attention_backward_delta_bf16 (delta = rowsum(dout * out),
// (B, heads, T) F32, one warp per row), then attention_backward_dkdv_mma_bf16 (key-major: 16 keys per
// warp, K and V rows held as A fragments, Q and dout tiles (+ lse, delta) in shared memory; per 16
// queries S^T = K Q^T, P^T, dP^T = V dout^T, dS^T = P^T (dP^T - delta), dV += P^T dout, dK += dS^T Q:
// 4 products) and attention_backward_dq_mma_bf16 (query-major, the forward's layout: S, dP = dout V^T,
// dS, dQ += dS K with K through ldmatrix .trans: 3 products). Each row of dqkv is written by one
// warp: no atomics; P and dS rounded to BF16 before their products (as FlashAttention), F32 accumulation,
// dqkv += in F32 then rounded to BF16. Shared: dq as the forward; dkdv 2 * roundup(queryTile, 16) *
// (roundup(hd, 16) + 8) * 2 + 2 * roundup(queryTile, 16) * 4 bytes (T = 257, hd 112: 129.5 KiB).
//
// Expected bound at ViT-B/32 shapes, batch 256 (H100 SXM: 989 TFLOP/s BF16 dense, 67 TFLOP/s F32 FMA,
// 3.35 TB/s HBM3; FLOP counts the useful T x T products, bytes the compulsory global traffic):
//   vision T = 50, 12 heads, hd 64 (grid 1 x 12 x 256 = 3072 blocks)
//     forward BF16 (mma)   1.97 GFLOP -> 2.0 us;  qkv 59.0 + out 19.7 + lse 0.6 MB = 79.3 MB -> 24 us: memory-bound, ~24 us
//     forward F32 (SIMT)   1.97 GFLOP -> 29 us;   158.6 MB -> 47 us: memory-bound, ~47 us
//     backward BF16 (mma)  6.9 GFLOP (7 products) -> 7.0 us; delta 40 + dkdv 159 + dq 119 = 318 MB -> 95 us
//                          (dqkv += reads and writes dqkv: 118 MB of it): memory-bound, ~95 us
//   text T = 77 causal, 8 heads, hd 64 (grid 2 x 8 x 256 = 4096 blocks)
//     forward BF16 (mma)   1.6 GFLOP (causal half) -> 1.6 us; qkv 60.6 + out 20.2 + lse 0.6 MB = 81.4 MB -> 24 us
// Padding costs compute, not bytes: at T = 50 the mma tiles cover 64 x 64 (queries, keys) of the 50 x 50,
// 1.6x the useful FLOPs, still far under the memory time.
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

// k-steps of 16 dims for a width (HD = 0: the widest, ATT_MAX_HD); the P V / dS K products cover 2 * KSTEPS
// blocks of 8 dims (the shared rows are zero past hd, so an odd last block costs one mma on zeros).
template <int HD> struct MmaSteps {
    static constexpr int width = HD > 0 ? HD : ATT_MAX_HD;
    static constexpr int k = (width + 15) / 16;
};

// A fragments (16 rows x hd, row-major, mma_m16n8k16_bf16's layout) of rows row0 = first + group and
// row1 = first + group + 8 of a (T, stride) BF16 matrix; rows past t and columns past hd are zeros.
// 32-bit loads (a bf16 pair) where hd is even.
template <int KSTEPS>
__device__ __forceinline__ void load_a_fragments(unsigned frag[KSTEPS][4], const bf16* base, long stride, int first, int t,
                                                 int hd, int ksteps) {
    int lane = threadIdx.x % CLIP_WARP, group = lane / 4, quad = lane % 4;
    for (int ks16 = 0; ks16 < KSTEPS; ks16++) {
        for (int r = 0; r < 4; r++) {
            int row = first + group + ((r & 1) ? 8 : 0);
            int col = ks16 * 16 + 2 * quad + (r >= 2 ? 8 : 0);
            unsigned v = 0;
            if (ks16 < ksteps && row < t && col < hd) {
                const bf16* p = base + (long)row * stride + col;
                if (hd % 2 == 0) {
                    v = *(const unsigned*)p;
                } else {
                    v = __bfloat16_as_ushort(p[0]) | (col + 1 < hd ? (unsigned)__bfloat16_as_ushort(p[1]) << 16 : 0u);
                }
            }
            frag[ks16][r] = v;
        }
    }
}

// Shared-memory layout of the tensor-core kernels: BF16 rows of kstride = roundup(hd, 16) + 8 elements (an odd
// multiple of 16 bytes: the 8 rows an ldmatrix phase reads fall on 8 distinct 4-bank groups).
__device__ __forceinline__ int mma_kdim(int hd) { return (hd + 15) / 16 * 16; }

template <int HD>
__device__ void attention_forward_mma_impl(bf16* out, float* lse, const bf16* qkv, int b, int t, int heads, int hdArg,
                                           int causal, int keyTile) {
    constexpr int KSTEPS = MmaSteps<HD>::k;
    const int hd = HD > 0 ? HD : hdArg;
    const int kdim = mma_kdim(hd), kstride = kdim + 8, ksteps = kdim / 16;
    extern __shared__ float smem[];
    int tileRows = (keyTile + 15) / 16 * 16;                  // keys padded to whole mma blocks
    unsigned short* ks = (unsigned short*) smem;              // (tileRows, kstride) bf16 bits
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

    unsigned qa[KSTEPS][4];
    load_a_fragments<KSTEPS>(qa, base, stride, rowBase, t, hd, ksteps);
    float acc[2 * KSTEPS][4];
    for (int i = 0; i < 2 * KSTEPS; i++)
        for (int j = 0; j < 4; j++) acc[i][j] = 0.0f;
    float m0 = -INFINITY, m1 = -INFINITY, l0 = 0.0f, l1 = 0.0f;

    int blockLast = min((int)blockIdx.x * MMA_ROWS + MMA_ROWS, t) - 1;
    int keyEnd = causal ? blockLast + 1 : t;
    int warpLast = min(rowBase + MMA_ROWS_PER_WARP, t) - 1;
    for (int t0 = 0; t0 < keyEnd; t0 += keyTile) {
        int tileLen = min(keyTile, keyEnd - t0);
        int padded = (tileLen + 15) / 16 * 16;
        __syncthreads(); // the previous tile fully consumed
        load_tile_bf16(ks, base + c, stride, t0, tileLen, padded, hd, kdim, kstride);
        load_tile_bf16(vs, base + 2 * c, stride, t0, tileLen, padded, hd, kdim, kstride);
        cp_async_wait_all();
        __syncthreads();
        if (rowBase >= t) continue; // warp-uniform: this warp has no rows (barriers above still met)
        int warpKeyEnd = min(t0 + padded, causal ? warpLast + 1 : t0 + padded);
        for (int j0 = t0; j0 < warpKeyEnd; j0 += 16) {
            // S = Q K^T for 16 keys: two 8-key halves, K rows as B columns (ldmatrix, not transposed)
            float s[2][4] = {{0.0f, 0.0f, 0.0f, 0.0f}, {0.0f, 0.0f, 0.0f, 0.0f}};
            for (int ks16 = 0; ks16 < KSTEPS; ks16++) {
                if (HD == 0 && ks16 >= ksteps) break; // warp-uniform
                unsigned kb[4];
                ldmatrix_x4(kb, ldm_rows_b(ks, kstride, j0 - t0, ks16 * 16));
                mma_m16n8k16_bf16(s[0], qa[ks16], kb, s[0]);
                mma_m16n8k16_bf16(s[1], qa[ks16], kb + 2, s[1]);
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
            for (int db = 0; db < 2 * KSTEPS; db++) {
                acc[db][0] *= corr0;
                acc[db][1] *= corr0;
                acc[db][2] *= corr1;
                acc[db][3] *= corr1;
            }
            // O += P V: P (16 rows x 16 keys) from the S accumulators, V rows as B (ldmatrix .trans), 16 dims a load
            unsigned pa[4];
            pack_a_fragment(pa, s);
            for (int pair = 0; pair < KSTEPS; pair++) {
                if (HD == 0 && pair >= ksteps) break; // warp-uniform
                unsigned vb[4];
                ldmatrix_x4_trans(vb, ldm_rows_a(vs, kstride, j0 - t0, pair * 16));
                mma_m16n8k16_bf16(acc[2 * pair], pa, vb, acc[2 * pair]);
                mma_m16n8k16_bf16(acc[2 * pair + 1], pa, vb + 2, acc[2 * pair + 1]);
            }
        }
    }
    if (rowBase >= t) return;
    for (int half = 0; half < 2; half++) {
        int row = half ? row1 : row0;
        if (row >= t) continue;
        float inv = 1.0f / (half ? l1 : l0);
        bf16* o = out + ((long)bb * t + row) * c + h * hd;
        for (int db = 0; db < 2 * KSTEPS; db++) {
            int d = db * 8 + 2 * quad;
            if (d >= hd) break;
            float lo = acc[db][2 * half] * inv, hi = acc[db][2 * half + 1] * inv;
            if (hd % 2 == 0) {
                *(unsigned*)(o + d) = pack_bf16x2(lo, hi); // a bf16 pair, 4-byte aligned
            } else {
                o[d] = __float2bfloat16(lo);
                if (d + 1 < hd) o[d + 1] = __float2bfloat16(hi);
            }
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

// ---------------------------------------------------------------- backward (BF16, tensor cores)

// dK and dV of 16 keys per warp (64 per block), FlashAttention-2's key-major pass: K and V rows stay in
// registers as A fragments, Q and dO tiles of the queries stream through shared memory (the whole head at
// CLIP's T), and for 16 queries at a time: S^T = K Q^T, P^T = exp(scale S^T - lse), dP^T = V dO^T,
// dS^T = P^T (dP^T - delta), dV += P^T dO, dK += dS^T Q (scale at the end). No atomics: each key's rows of
// dqkv are written by one warp. shared = 2 * roundup(queryTile, 16) * kstride * 2 + 2 * roundup(queryTile, 16) * 4.
template <int HD>
__device__ void attention_backward_dkdv_mma_impl(bf16* dqkv, const bf16* dout, const bf16* qkv, const float* lse, const float* delta,
                                                 int b, int t, int heads, int hdArg, int causal, int queryTile) {
    constexpr int KSTEPS = MmaSteps<HD>::k;
    const int hd = HD > 0 ? HD : hdArg;
    const int kdim = mma_kdim(hd), kstride = kdim + 8, ksteps = kdim / 16;
    extern __shared__ float smem[];
    int tileRows = (queryTile + 15) / 16 * 16;
    unsigned short* qs = (unsigned short*) smem;           // (tileRows, kstride) Q
    unsigned short* gs = qs + (long)tileRows * kstride;    // (tileRows, kstride) dO
    float* lses = (float*)(gs + (long)tileRows * kstride); // (tileRows) lse, 16-byte aligned (kstride * 2 is)
    float* deltas = lses + tileRows;                       // (tileRows) delta
    int c = heads * hd;
    long stride = 3L * c;
    int h = blockIdx.y, bb = blockIdx.z;
    int lane = threadIdx.x % CLIP_WARP, warp = threadIdx.x / CLIP_WARP;
    int group = lane / 4, quad = lane % 4;
    int blockKey = blockIdx.x * MMA_ROWS;
    int keyBase = blockKey + warp * MMA_ROWS_PER_WARP;
    int key0 = keyBase + group, key1 = keyBase + group + 8;
    const bf16* base = qkv + (long)bb * t * stride + h * hd;
    const bf16* gbase = dout + (long)bb * t * c + h * hd;
    const float* lseRow = lse + ((long)bb * heads + h) * t;
    const float* deltaRow = delta + ((long)bb * heads + h) * t;
    const float scale = 1.0f / sqrtf((float)hd);

    unsigned kf[KSTEPS][4], vf[KSTEPS][4];
    load_a_fragments<KSTEPS>(kf, base + c, stride, keyBase, t, hd, ksteps);
    load_a_fragments<KSTEPS>(vf, base + 2 * c, stride, keyBase, t, hd, ksteps);
    float dk[2 * KSTEPS][4], dv[2 * KSTEPS][4];
    for (int i = 0; i < 2 * KSTEPS; i++)
        for (int j = 0; j < 4; j++) dk[i][j] = dv[i][j] = 0.0f;

    int queryStart = causal ? blockKey : 0; // causal: queries before the block's first key see none of its keys
    for (int q0 = queryStart; q0 < t; q0 += queryTile) {
        int tileLen = min(queryTile, t - q0);
        int padded = (tileLen + 15) / 16 * 16;
        __syncthreads();
        load_tile_bf16(qs, base, stride, q0, tileLen, padded, hd, kdim, kstride);
        load_tile_bf16(gs, gbase, c, q0, tileLen, padded, hd, kdim, kstride);
        for (int i = threadIdx.x; i < padded; i += blockDim.x) {
            lses[i] = i < tileLen ? lseRow[q0 + i] : 0.0f;
            deltas[i] = i < tileLen ? deltaRow[q0 + i] : 0.0f;
        }
        cp_async_wait_all();
        __syncthreads();
        if (keyBase >= t) continue; // warp-uniform
        int first = causal && keyBase > q0 ? (keyBase - q0) / 16 * 16 : 0; // causal: queries before keyBase see no key of this warp
        for (int i0 = first; i0 < padded; i0 += 16) {
            float s[2][4] = {{0.0f, 0.0f, 0.0f, 0.0f}, {0.0f, 0.0f, 0.0f, 0.0f}};
            float dp[2][4] = {{0.0f, 0.0f, 0.0f, 0.0f}, {0.0f, 0.0f, 0.0f, 0.0f}};
            for (int ks16 = 0; ks16 < KSTEPS; ks16++) {
                if (HD == 0 && ks16 >= ksteps) break; // warp-uniform
                unsigned qb[4], gb[4];
                ldmatrix_x4(qb, ldm_rows_b(qs, kstride, i0, ks16 * 16));
                mma_m16n8k16_bf16(s[0], kf[ks16], qb, s[0]);
                mma_m16n8k16_bf16(s[1], kf[ks16], qb + 2, s[1]);
                ldmatrix_x4(gb, ldm_rows_b(gs, kstride, i0, ks16 * 16));
                mma_m16n8k16_bf16(dp[0], vf[ks16], gb, dp[0]);
                mma_m16n8k16_bf16(dp[1], vf[ks16], gb + 2, dp[1]);
            }
            // element (nb, i): key = i < 2 ? key0 : key1, query = q0 + i0 + nb * 8 + 2 * quad + (i & 1)
            for (int nb = 0; nb < 2; nb++) {
                for (int i = 0; i < 4; i++) {
                    int local = i0 + nb * 8 + 2 * quad + (i & 1);
                    int key = i < 2 ? key0 : key1;
                    bool valid = local < tileLen && (!causal || q0 + local >= key);
                    float p = valid ? expf(s[nb][i] * scale - lses[local]) : 0.0f;
                    s[nb][i] = p;
                    dp[nb][i] = p * (dp[nb][i] - deltas[local]);
                }
            }
            unsigned pa[4], dsa[4];
            pack_a_fragment(pa, s);
            pack_a_fragment(dsa, dp);
            for (int pair = 0; pair < KSTEPS; pair++) {
                if (HD == 0 && pair >= ksteps) break; // warp-uniform
                unsigned gb[4], qb[4];
                ldmatrix_x4_trans(gb, ldm_rows_a(gs, kstride, i0, pair * 16));
                mma_m16n8k16_bf16(dv[2 * pair], pa, gb, dv[2 * pair]);
                mma_m16n8k16_bf16(dv[2 * pair + 1], pa, gb + 2, dv[2 * pair + 1]);
                ldmatrix_x4_trans(qb, ldm_rows_a(qs, kstride, i0, pair * 16));
                mma_m16n8k16_bf16(dk[2 * pair], dsa, qb, dk[2 * pair]);
                mma_m16n8k16_bf16(dk[2 * pair + 1], dsa, qb + 2, dk[2 * pair + 1]);
            }
        }
    }
    if (keyBase >= t) return;
    bf16* dbase = dqkv + (long)bb * t * stride + h * hd;
    for (int half = 0; half < 2; half++) {
        int key = half ? key1 : key0;
        if (key >= t) continue;
        bf16* dkRow = dbase + (long)key * stride + c;
        bf16* dvRow = dkRow + c;
        for (int db = 0; db < 2 * KSTEPS; db++) {
            for (int e = 0; e < 2; e++) {
                int d = db * 8 + 2 * quad + e;
                if (d >= hd) continue;
                dkRow[d] = __float2bfloat16(to_f32(dkRow[d]) + dk[db][2 * half + e] * scale);
                dvRow[d] = __float2bfloat16(to_f32(dvRow[d]) + dv[db][2 * half + e]);
            }
        }
    }
}

// dQ of 16 queries per warp (64 per block): the forward's layout (Q and dO rows as A fragments, K and V tiles
// in shared memory); for 16 keys at a time S = Q K^T, P = exp(scale S - lse), dP = dO V^T, dS = P (dP - delta),
// dQ += dS K (K rows as B through ldmatrix .trans). Same grid and shared memory as attention_forward_mma_bf16.
template <int HD>
__device__ void attention_backward_dq_mma_impl(bf16* dqkv, const bf16* dout, const bf16* qkv, const float* lse, const float* delta,
                                               int b, int t, int heads, int hdArg, int causal, int keyTile) {
    constexpr int KSTEPS = MmaSteps<HD>::k;
    const int hd = HD > 0 ? HD : hdArg;
    const int kdim = mma_kdim(hd), kstride = kdim + 8, ksteps = kdim / 16;
    extern __shared__ float smem[];
    int tileRows = (keyTile + 15) / 16 * 16;
    unsigned short* ks = (unsigned short*) smem;
    unsigned short* vs = ks + (long)tileRows * kstride;
    int c = heads * hd;
    long stride = 3L * c;
    int h = blockIdx.y, bb = blockIdx.z;
    int lane = threadIdx.x % CLIP_WARP, warp = threadIdx.x / CLIP_WARP;
    int group = lane / 4, quad = lane % 4;
    int rowBase = blockIdx.x * MMA_ROWS + warp * MMA_ROWS_PER_WARP;
    int row0 = rowBase + group, row1 = rowBase + group + 8;
    const bf16* base = qkv + (long)bb * t * stride + h * hd;
    const float* lseRow = lse + ((long)bb * heads + h) * t;
    const float* deltaRow = delta + ((long)bb * heads + h) * t;
    const float scale = 1.0f / sqrtf((float)hd);

    unsigned qa[KSTEPS][4], ga[KSTEPS][4];
    load_a_fragments<KSTEPS>(qa, base, stride, rowBase, t, hd, ksteps);
    load_a_fragments<KSTEPS>(ga, dout + (long)bb * t * c + h * hd, c, rowBase, t, hd, ksteps);
    float lse0 = row0 < t ? lseRow[row0] : 0.0f, lse1 = row1 < t ? lseRow[row1] : 0.0f;
    float delta0 = row0 < t ? deltaRow[row0] : 0.0f, delta1 = row1 < t ? deltaRow[row1] : 0.0f;
    float dq[2 * KSTEPS][4];
    for (int i = 0; i < 2 * KSTEPS; i++)
        for (int j = 0; j < 4; j++) dq[i][j] = 0.0f;

    int blockLast = min((int)blockIdx.x * MMA_ROWS + MMA_ROWS, t) - 1;
    int keyEnd = causal ? blockLast + 1 : t;
    int warpLast = min(rowBase + MMA_ROWS_PER_WARP, t) - 1;
    for (int t0 = 0; t0 < keyEnd; t0 += keyTile) {
        int tileLen = min(keyTile, keyEnd - t0);
        int padded = (tileLen + 15) / 16 * 16;
        __syncthreads();
        load_tile_bf16(ks, base + c, stride, t0, tileLen, padded, hd, kdim, kstride);
        load_tile_bf16(vs, base + 2 * c, stride, t0, tileLen, padded, hd, kdim, kstride);
        cp_async_wait_all();
        __syncthreads();
        if (rowBase >= t) continue; // warp-uniform
        int warpKeyEnd = min(t0 + padded, causal ? warpLast + 1 : t0 + padded);
        for (int j0 = t0; j0 < warpKeyEnd; j0 += 16) {
            float s[2][4] = {{0.0f, 0.0f, 0.0f, 0.0f}, {0.0f, 0.0f, 0.0f, 0.0f}};
            float dp[2][4] = {{0.0f, 0.0f, 0.0f, 0.0f}, {0.0f, 0.0f, 0.0f, 0.0f}};
            for (int ks16 = 0; ks16 < KSTEPS; ks16++) {
                if (HD == 0 && ks16 >= ksteps) break; // warp-uniform
                unsigned kb[4], vb[4];
                ldmatrix_x4(kb, ldm_rows_b(ks, kstride, j0 - t0, ks16 * 16));
                mma_m16n8k16_bf16(s[0], qa[ks16], kb, s[0]);
                mma_m16n8k16_bf16(s[1], qa[ks16], kb + 2, s[1]);
                ldmatrix_x4(vb, ldm_rows_b(vs, kstride, j0 - t0, ks16 * 16));
                mma_m16n8k16_bf16(dp[0], ga[ks16], vb, dp[0]);
                mma_m16n8k16_bf16(dp[1], ga[ks16], vb + 2, dp[1]);
            }
            for (int nb = 0; nb < 2; nb++) {
                for (int i = 0; i < 4; i++) {
                    int key = j0 + nb * 8 + 2 * quad + (i & 1);
                    int row = i < 2 ? row0 : row1;
                    bool valid = row < t && key < t0 + tileLen && (!causal || key <= row);
                    float p = valid ? expf(s[nb][i] * scale - (i < 2 ? lse0 : lse1)) : 0.0f;
                    dp[nb][i] = p * (dp[nb][i] - (i < 2 ? delta0 : delta1));
                }
            }
            unsigned dsa[4];
            pack_a_fragment(dsa, dp);
            for (int pair = 0; pair < KSTEPS; pair++) {
                if (HD == 0 && pair >= ksteps) break; // warp-uniform
                unsigned kb[4];
                ldmatrix_x4_trans(kb, ldm_rows_a(ks, kstride, j0 - t0, pair * 16));
                mma_m16n8k16_bf16(dq[2 * pair], dsa, kb, dq[2 * pair]);
                mma_m16n8k16_bf16(dq[2 * pair + 1], dsa, kb + 2, dq[2 * pair + 1]);
            }
        }
    }
    if (rowBase >= t) return;
    bf16* dbase = dqkv + (long)bb * t * stride + h * hd;
    for (int half = 0; half < 2; half++) {
        int row = half ? row1 : row0;
        if (row >= t) continue;
        bf16* dqRow = dbase + (long)row * stride;
        for (int db = 0; db < 2 * KSTEPS; db++) {
            for (int e = 0; e < 2; e++) {
                int d = db * 8 + 2 * quad + e;
                if (d < hd) dqRow[d] = __float2bfloat16(to_f32(dqRow[d]) + dq[db][2 * half + e] * scale);
            }
        }
    }
}

#define ATT_BACKWARD_MMA_PARAMS bf16* dqkv, const bf16* dout, const bf16* qkv, const float* lse, const float* delta, int b, int t, \
                                int heads, int hd, int causal, int tile
#define ATT_BACKWARD_MMA_ARGS dqkv, dout, qkv, lse, delta, b, t, heads, hd, causal, tile

extern "C" __global__ void attention_backward_dkdv_mma_bf16(ATT_BACKWARD_MMA_PARAMS) { attention_backward_dkdv_mma_impl<64>(ATT_BACKWARD_MMA_ARGS); }
extern "C" __global__ void attention_backward_dkdv_mma_bf16_hd80(ATT_BACKWARD_MMA_PARAMS) { attention_backward_dkdv_mma_impl<80>(ATT_BACKWARD_MMA_ARGS); }
extern "C" __global__ void attention_backward_dkdv_mma_bf16_hd88(ATT_BACKWARD_MMA_PARAMS) { attention_backward_dkdv_mma_impl<88>(ATT_BACKWARD_MMA_ARGS); }
extern "C" __global__ void attention_backward_dkdv_mma_bf16_hd104(ATT_BACKWARD_MMA_PARAMS) { attention_backward_dkdv_mma_impl<104>(ATT_BACKWARD_MMA_ARGS); }
extern "C" __global__ void attention_backward_dkdv_mma_bf16_hd112(ATT_BACKWARD_MMA_PARAMS) { attention_backward_dkdv_mma_impl<112>(ATT_BACKWARD_MMA_ARGS); }
extern "C" __global__ void attention_backward_dkdv_mma_bf16_hdany(ATT_BACKWARD_MMA_PARAMS) { attention_backward_dkdv_mma_impl<0>(ATT_BACKWARD_MMA_ARGS); }

extern "C" __global__ void attention_backward_dq_mma_bf16(ATT_BACKWARD_MMA_PARAMS) { attention_backward_dq_mma_impl<64>(ATT_BACKWARD_MMA_ARGS); }
extern "C" __global__ void attention_backward_dq_mma_bf16_hd80(ATT_BACKWARD_MMA_PARAMS) { attention_backward_dq_mma_impl<80>(ATT_BACKWARD_MMA_ARGS); }
extern "C" __global__ void attention_backward_dq_mma_bf16_hd88(ATT_BACKWARD_MMA_PARAMS) { attention_backward_dq_mma_impl<88>(ATT_BACKWARD_MMA_ARGS); }
extern "C" __global__ void attention_backward_dq_mma_bf16_hd104(ATT_BACKWARD_MMA_PARAMS) { attention_backward_dq_mma_impl<104>(ATT_BACKWARD_MMA_ARGS); }
extern "C" __global__ void attention_backward_dq_mma_bf16_hd112(ATT_BACKWARD_MMA_PARAMS) { attention_backward_dq_mma_impl<112>(ATT_BACKWARD_MMA_ARGS); }
extern "C" __global__ void attention_backward_dq_mma_bf16_hdany(ATT_BACKWARD_MMA_PARAMS) { attention_backward_dq_mma_impl<0>(ATT_BACKWARD_MMA_ARGS); }

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
                float ds = 0.0f;
                if (j < tileEnd) {
                    const float* k = ks + (j - t0) * kpad;
                    const float* v = vs + (j - t0) * hd;
                    float dot = 0.0f, dp = 0.0f;
                    for (int d = 0; d < hd; d++) {
                        dot += q[d] * k[d];
                        dp += g[d] * v[d];
                    }
                    ds = expf(dot - rowLse[r]) * (dp - delta[r]);
                }
                int count = min(CLIP_WARP, tileEnd - j0);
                for (int jj = 0; jj < count; jj++) {
                    float dsj = __shfl_sync(CLIP_FULL_MASK, ds, jj);
                    const float* k = ks + (j0 + jj - t0) * kpad + lane;
                    for (int i = 0; i < DIMS; i++) {
                        if (FULL || lane + CLIP_WARP * i < hd) dq[r][i] += dsj * k[CLIP_WARP * i];
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

// delta (B, heads, T) = rowsum(dout * out) per head, F32 math: one warp per (b, t, head) row.
template <typename T>
__device__ void attention_backward_delta_impl(float* delta, const T* dout, const T* out, int b, int t, int heads, int hd) {
    long rowIndex = (long)blockIdx.x * (blockDim.x / CLIP_WARP) + threadIdx.x / CLIP_WARP; // (bb * t + row) * heads + h
    int lane = threadIdx.x % CLIP_WARP;
    if (rowIndex >= (long)b * t * heads) return; // warp-uniform
    int h = (int)(rowIndex % heads);
    long token = rowIndex / heads; // bb * t + row
    const T* g = dout + token * heads * hd + (long)h * hd;
    const T* o = out + token * heads * hd + (long)h * hd;
    float part = 0.0f;
    for (int d = lane; d < hd; d += CLIP_WARP) part += to_f32(g[d]) * to_f32(o[d]);
    part = warp_sum(part);
    if (lane == 0) delta[(token / t * heads + h) * t + token % t] = part;
}

extern "C" __global__ void attention_backward_delta(float* delta, const float* dout, const float* out, int b, int t, int heads, int hd) {
    attention_backward_delta_impl<float>(delta, dout, out, b, t, heads, hd);
}

extern "C" __global__ void attention_backward_delta_bf16(float* delta, const bf16* dout, const bf16* out, int b, int t, int heads, int hd) {
    attention_backward_delta_impl<bf16>(delta, dout, out, b, t, heads, hd);
}

// dK and dV (F32), key-major: 16 keys per block (4 per warp), the mirror of attention_backward's dQ pass. Q
// (pre-scaled) and dout tiles of the queries in shared memory (rows padded to hd | 1: lanes over queries read
// 32 banks), with lse and delta; per key row, lane l takes query i0 + l: p = exp(q . k - lse), dS = p (dout . v
// - delta); then the 32 (p, dS) pairs are broadcast lane by lane into dv += p dout, dk += dS q (lane l owns dims
// l, l + 32, ...). Each key's rows of dqkv are written by one warp: no atomics. dynamic shared =
// (2 * queryTile * (hd | 1) + 2 * 16 * hd + 2 * queryTile) floats.
template <int HD>
__device__ void attention_backward_dkdv_impl(float* dqkv, const float* dout, const float* qkv, const float* lse, const float* delta,
                                             int b, int t, int heads, int hdArg, int causal, int queryTile) {
    constexpr int DIMS = AttLanes<HD>::count;
    constexpr bool FULL = AttLanes<HD>::full;
    const int hd = HD > 0 ? HD : hdArg;
    const int kpad = hd | 1;
    extern __shared__ float smem[];
    float* qs = smem;                            // (queryTile, hd | 1) Q / sqrt(hd)
    float* gs = qs + (long)queryTile * kpad;     // (queryTile, hd | 1) dout
    float* ks = gs + (long)queryTile * kpad;     // (16, hd) the block's keys
    float* vs = ks + ATT_ROWS * hd;              // (16, hd) their values
    float* lses = vs + ATT_ROWS * hd;            // (queryTile)
    float* deltas = lses + queryTile;            // (queryTile)
    int c = heads * hd;
    long stride = 3L * c;
    int h = blockIdx.y, bb = blockIdx.z;
    int keyStart = blockIdx.x * ATT_ROWS;
    int lane = threadIdx.x % CLIP_WARP, warp = threadIdx.x / CLIP_WARP;
    const float* base = qkv + (long)bb * t * stride + h * hd;
    const float* gbase = dout + (long)bb * t * c + h * hd;
    const float* lseRow = lse + ((long)bb * heads + h) * t;
    const float* deltaRow = delta + ((long)bb * heads + h) * t;
    const float scale = 1.0f / sqrtf((float)hd);

    for (int i = threadIdx.x; i < ATT_ROWS * hd; i += blockDim.x) {
        int j = keyStart + i / hd, d = i % hd;
        ks[i] = j < t ? base[(long)j * stride + c + d] : 0.0f;
        vs[i] = j < t ? base[(long)j * stride + 2 * c + d] : 0.0f;
    }
    float dk[ATT_ROWS_PER_WARP][DIMS], dv[ATT_ROWS_PER_WARP][DIMS];
    for (int r = 0; r < ATT_ROWS_PER_WARP; r++)
        for (int i = 0; i < DIMS; i++) dk[r][i] = dv[r][i] = 0.0f;
    int queryStart = causal ? keyStart : 0; // causal: earlier queries see none of the block's keys
    for (int q0 = queryStart; q0 < t; q0 += queryTile) {
        int tileLen = min(queryTile, t - q0);
        __syncthreads(); // previous tile fully consumed (and ks, vs written, on the first pass)
        for (int i = threadIdx.x; i < tileLen * hd; i += blockDim.x) {
            int j = i / hd, d = i % hd;
            qs[j * kpad + d] = base[(long)(q0 + j) * stride + d] * scale;
            gs[j * kpad + d] = gbase[(long)(q0 + j) * c + d];
        }
        for (int i = threadIdx.x; i < tileLen; i += blockDim.x) {
            lses[i] = lseRow[q0 + i];
            deltas[i] = deltaRow[q0 + i];
        }
        __syncthreads();
#pragma unroll // the rows' register arrays (dk, dv) stay registers only when r is a constant
        for (int r = 0; r < ATT_ROWS_PER_WARP; r++) {
            int local = warp + ATT_WARPS * r;
            int key = keyStart + local;
            if (key >= t) continue; // warp-uniform
            int first = causal ? max(q0, key) : q0; // causal: queries before the key do not see it
            const float* k = ks + local * hd;
            const float* v = vs + local * hd;
            for (int i0 = first; i0 < q0 + tileLen; i0 += CLIP_WARP) {
                int i = i0 + lane;
                float p = 0.0f, ds = 0.0f;
                if (i < q0 + tileLen) {
                    const float* q = qs + (i - q0) * kpad;
                    const float* g = gs + (i - q0) * kpad;
                    float dot = 0.0f, dp = 0.0f;
                    for (int d = 0; d < hd; d++) {
                        dot += q[d] * k[d];
                        dp += g[d] * v[d];
                    }
                    p = expf(dot - lses[i - q0]);
                    ds = p * (dp - deltas[i - q0]);
                }
                int count = min(CLIP_WARP, q0 + tileLen - i0);
                for (int jj = 0; jj < count; jj++) {
                    float pj = __shfl_sync(CLIP_FULL_MASK, p, jj);
                    float dsj = __shfl_sync(CLIP_FULL_MASK, ds, jj);
                    const float* q = qs + (i0 + jj - q0) * kpad + lane;
                    const float* g = gs + (i0 + jj - q0) * kpad + lane;
                    for (int e = 0; e < DIMS; e++) {
                        if (FULL || lane + CLIP_WARP * e < hd) {
                            dk[r][e] += dsj * q[CLIP_WARP * e];
                            dv[r][e] += pj * g[CLIP_WARP * e];
                        }
                    }
                }
            }
        }
    }
    float* dbase = dqkv + (long)bb * t * stride + h * hd;
    for (int r = 0; r < ATT_ROWS_PER_WARP; r++) {
        int key = keyStart + warp + ATT_WARPS * r;
        if (key >= t) continue;
        float* dkRow = dbase + (long)key * stride + c + lane;
        float* dvRow = dkRow + c;
        for (int e = 0; e < DIMS; e++) {
            if (FULL || lane + CLIP_WARP * e < hd) {
                dkRow[CLIP_WARP * e] += dk[r][e]; // q was pre-scaled: dS q / sqrt(hd)
                dvRow[CLIP_WARP * e] += dv[r][e];
            }
        }
    }
}

#define ATT_BACKWARD_DKDV_PARAMS float* dqkv, const float* dout, const float* qkv, const float* lse, const float* delta, int b, int t, \
                                 int heads, int hd, int causal, int tile
#define ATT_BACKWARD_DKDV_ARGS dqkv, dout, qkv, lse, delta, b, t, heads, hd, causal, tile

extern "C" __global__ void attention_backward_dkdv(ATT_BACKWARD_DKDV_PARAMS) { attention_backward_dkdv_impl<64>(ATT_BACKWARD_DKDV_ARGS); }
extern "C" __global__ void attention_backward_dkdv_hd80(ATT_BACKWARD_DKDV_PARAMS) { attention_backward_dkdv_impl<80>(ATT_BACKWARD_DKDV_ARGS); }
extern "C" __global__ void attention_backward_dkdv_hd88(ATT_BACKWARD_DKDV_PARAMS) { attention_backward_dkdv_impl<88>(ATT_BACKWARD_DKDV_ARGS); }
extern "C" __global__ void attention_backward_dkdv_hd104(ATT_BACKWARD_DKDV_PARAMS) { attention_backward_dkdv_impl<104>(ATT_BACKWARD_DKDV_ARGS); }
extern "C" __global__ void attention_backward_dkdv_hd112(ATT_BACKWARD_DKDV_PARAMS) { attention_backward_dkdv_impl<112>(ATT_BACKWARD_DKDV_ARGS); }
extern "C" __global__ void attention_backward_dkdv_hdany(ATT_BACKWARD_DKDV_PARAMS) { attention_backward_dkdv_impl<0>(ATT_BACKWARD_DKDV_ARGS); }
