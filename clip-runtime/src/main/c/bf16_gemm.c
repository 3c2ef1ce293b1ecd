// bf16_gemm.c: the CPU's BF16 linear layers, out (m, n) = epilogue(x (m, k) @ w (n, k)^T), through the
// AVX512_BF16 dot-product instruction: BF16 weights, BF16-rounded activations, F32 accumulation and output.
// Called by org.clipj.runtime.cpu.Bf16Gemm through FFM; Java splits C into tiles over its ComputePool and
// each call here computes one tile on the calling thread.
//
// Weights (nn.Linear's (n, k), as BF16 bits) are packed once by clip_bf16_pack into NR = 48 column
// panels, each (kp, NR, 2) with kp = ceil(k / 2) depth pairs: the two BF16 of one column and one depth
// pair side by side, as vdpbf16ps wants them (lane j: acc[j] += a.lo * b[j].lo + a.hi * b[j].hi).
// Columns past n and an odd k's last depth are zero. Activations are converted to BF16 (round to
// nearest even, vcvtne2ps2bf16) while an (MC, KCP-pair) block of them is packed into MR-row panels,
// (kcp, MR) pairs, so the micro-kernel's broadcasts share one base pointer.
//
// Blocking: the micro-kernel is MR x NR = 8 x 48, 24 accumulators (of 32 zmm) + 3 weight vectors + 1
// broadcast; per depth pair 3 weight loads and 8 broadcast loads feed 24 vdpbf16ps (no spills: see
// objdump). The depth is cut into equal blocks of at most KCP pairs, rows into blocks of MC: an (MC, KCP)
// activation block is converted and packed once, then every weight panel streams past all of its row
// panels. The tile's C is the output: the first depth block writes it (never reads it), later ones
// accumulate, the last applies bias, activation and residual in registers.
// Versions (one thread, thread CPU time, 2-vCPU Zen 5 with a load average of 14: +-10 %; shapes
// 400x2304x768, 400x768x3072, 50x3072x768, 77x2048x512): KCP 128 pairs (weight micro-panel of 24 KiB in
// L1) 250/230/260 GFLOP/s; KCP 384 280/265/320/310; KCP 1536 (the whole depth of CLIP's layers: no
// reloads of C) 330/295/330/350. A weight panel streamed from L2 needs 16 B/cycle at full rate, well
// within what L2 delivers, while each extra depth block reloads and rewrites C. MC 48/96/192 were within
// the noise. (The Java F32 Sgemm: 353 GFLOP/s on two threads at 400x2304x768 on a quiet Zen 5, issue 15.)
// The peak, measured (24 independent register-only vdpbf16ps chains, thread CPU time): Zen 5 issues 2
// per cycle, as many as 512-bit FMAs, with a latency of ~7 cycles (FMA's 4 as the yardstick), 64 flops
// each: 430 GFLOP/s per core at its ~3.4 GHz, twice the F32 FMA peak; 14 of the 24 accumulators cover
// the latency. The form with an embedded broadcast (vdpbf16ps zmm, zmm, [mem]{1to16}) issued 5-14 %
// slower than the register form in that test, so the broadcasts stay separate loads (vpbroadcastd,
// one load uop each). With the activations packed by a scalar scatter (one 4-byte store per pair, stride MR
// pairs: a store miss per pair on wide rows), packing took 18 % of a 400x768x3072 call and 6 % of
// 400x2304x768 (rdtsc around it); packed instead by an (8, 16) pair transpose in registers with
// full-line stores, 3 % and 2 %. One thread, best of many, thread CPU time, same run, 2026-12-07
// (others' builds running), scatter -> transpose, GFLOP/s: 400x2304x768 377 -> 389, 400x768x768 381 ->
// 399, 400x3072x768 357 -> 374, 400x768x3072 334 -> 387, 392x768x3072 (patch embedding) 343 -> 388,
// 50x768x3072 387 -> 404; the tiles Bf16LinearOps cuts at image b8 200x384x3072 383 -> 413. A GEMM-only
// b8 forward (the 48 GEMMs of ViT-B/32 image b8 on 2 threads, tiles as in Java, weights cold): 337 ->
// 353 GFLOP/s per CPU second; with the weights hot 360 (the cold weights cost ~3 %). Equal row blocks
// (no 8-row tail block in a 200-row tile), MC 48/96/200 and 2 or 4 tiles per GEMM stayed within the
// noise there. The kernel now runs CLIP's shapes at 87-96 % of the measured peak on one thread.

#include <immintrin.h>
#include <stdint.h>
#include <string.h>

#define MR 8
#define NR 48
#define NV (NR / 16)
#define KCP 1536  // depth pairs per block (at most)
#define MC 96     // rows per packed activation block (12 row panels; 576 KiB of BF16 pairs at KCP)

#define ACT_NONE 0
#define ACT_QUICK_GELU 1
#define ACT_GELU 2

#define INLINE static inline __attribute__((always_inline))

// ---------------------------------------------------------------- math for the epilogue

// exp(x) for |x| <= 88.37 (clamped): x = n ln2 + r, |r| <= ln2 / 2, Cephes' expf polynomial, 2^n by scalef.
INLINE __m512 exp512(__m512 x) {
    x = _mm512_min_ps(_mm512_max_ps(x, _mm512_set1_ps(-88.3762626647949f)), _mm512_set1_ps(88.3762626647949f));
    __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                    _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
    __m512 p = _mm512_set1_ps(1.9875691500E-4f);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507E-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073E-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894E-2f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459E-1f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201E-1f));
    __m512 y = _mm512_fmadd_ps(_mm512_mul_ps(p, r), r, _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
    return _mm512_scalef_ps(y, n);
}

// QuickGELU: x * sigmoid(1.702 x) = x / (1 + exp(-1.702 x)).
INLINE __m512 quick_gelu512(__m512 x) {
    __m512 e = exp512(_mm512_mul_ps(x, _mm512_set1_ps(-1.702f)));
    return _mm512_div_ps(x, _mm512_add_ps(e, _mm512_set1_ps(1.0f)));
}

// Exact GELU, x * Phi(x) = x (1 + erf(x / sqrt 2)) / 2, with erfc(|z|) from Abramowitz & Stegun 7.1.26
// (absolute error <= 1.5e-7): 1 + erf(z) is erfc(|z|) below zero and 2 - erfc(|z|) above, so the
// negative side keeps its relative accuracy where both terms nearly cancel.
INLINE __m512 gelu512(__m512 x) {
    __m512 z = _mm512_abs_ps(_mm512_mul_ps(x, _mm512_set1_ps(0.70710678118654752f)));
    __m512 t = _mm512_div_ps(_mm512_set1_ps(1.0f), _mm512_fmadd_ps(z, _mm512_set1_ps(0.3275911f), _mm512_set1_ps(1.0f)));
    __m512 p = _mm512_set1_ps(1.061405429f);
    p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(-1.453152027f));
    p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(1.421413741f));
    p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(-0.284496736f));
    p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(0.254829592f));
    __m512 erfc = _mm512_mul_ps(_mm512_mul_ps(p, t), exp512(_mm512_mul_ps(_mm512_mul_ps(z, z), _mm512_set1_ps(-1.0f))));
    __mmask16 negative = _mm512_cmp_ps_mask(x, _mm512_setzero_ps(), _CMP_LT_OQ);
    __m512 onePlusErf = _mm512_mask_blend_ps(negative, _mm512_sub_ps(_mm512_set1_ps(2.0f), erfc), erfc);
    return _mm512_mul_ps(_mm512_mul_ps(x, _mm512_set1_ps(0.5f)), onePlusErf);
}

// ---------------------------------------------------------------- packing

// w (n, k) BF16 bits, row stride ldw, into ceil(n / NR) panels of (kp, NR, 2); packed holds
// clip_bf16_packed_elements(n, k) uint16.
int64_t clip_bf16_packed_elements(int32_t n, int32_t k) {
    int64_t panels = (n + NR - 1) / NR, kp = (k + 1) / 2;
    return panels * kp * NR * 2;
}

void clip_bf16_pack(const uint16_t *w, int64_t ldw, int32_t n, int32_t k, uint16_t *packed) {
    int64_t kp = (k + 1) / 2;
    memset(packed, 0, (size_t) clip_bf16_packed_elements(n, k) * sizeof(uint16_t));
    for (int32_t col = 0; col < n; col++) {
        uint16_t *panel = packed + (int64_t) (col / NR) * kp * NR * 2 + (col % NR) * 2;
        const uint16_t *row = w + col * ldw;
        for (int32_t d = 0; d < k; d++) panel[(d / 2) * NR * 2 + (d & 1)] = row[d];
    }
}

// 16 BF16 pairs of one activation row: src[d : d + 32] for the first depth d of the pairs (k columns
// in all; depths past k are zero), rounded to nearest even.
INLINE __m512i row_pairs(const float *src, int32_t d, int32_t k) {
    int32_t left = k - d;
    __mmask16 lo = left >= 16 ? 0xFFFF : (__mmask16) ((1u << (left > 0 ? left : 0)) - 1);
    int32_t leftHi = left - 16;
    __mmask16 hi = leftHi >= 16 ? 0xFFFF : (__mmask16) ((1u << (leftHi > 0 ? leftHi : 0)) - 1);
    return (__m512i) _mm512_cvtne2ps_pbh(_mm512_maskz_loadu_ps(hi, src + d + 16), _mm512_maskz_loadu_ps(lo, src + d));
}

// x[r0 : r0 + rows, 2 p0 : 2 p1] (F32, row stride ldx, k columns in all) as BF16 pairs into MR-row
// panels of (p1 - p0, MR) pairs; rows of the last panel past `rows` are zero. 16 pairs of the panel's
// 8 rows at a time, (8, 16) pairs transposed in registers to (16, 8): 8 full-line stores, where a
// scalar scatter of each pair (stride MR pairs) cost 18 % of a 400x768x3072 call.
static void pack_activations(const float *x, int64_t ldx, int32_t k, int32_t rows, int32_t p0, int32_t p1,
                             uint32_t *packed) {
    _Static_assert(MR == 8, "the register transpose is for 8-row panels");
    int32_t kcp = p1 - p0;
    for (int32_t panel = 0; panel * MR < rows; panel++) {
        uint32_t *dst = packed + (int64_t) panel * kcp * MR;
        int32_t live = rows - panel * MR < MR ? rows - panel * MR : MR;
        const float *src = x + (int64_t) panel * MR * ldx;
        for (int32_t p = p0; p < p1; p += 16) {
            __m512i v[MR], t[MR], u[MR];
#pragma GCC unroll 8
            for (int r = 0; r < MR; r++) v[r] = r < live ? row_pairs(src + r * ldx, 2 * p, k) : _mm512_setzero_si512();
            // per 128-bit lane l (pairs 4l .. 4l + 3): u[q] = pair 4l + q of rows 0-3, u[4 + q] of rows 4-7
#pragma GCC unroll 2
            for (int h = 0; h < 2; h++) {
                __m512i *vh = v + 4 * h, *th = t + 4 * h, *uh = u + 4 * h;
                th[0] = _mm512_unpacklo_epi32(vh[0], vh[1]);
                th[1] = _mm512_unpackhi_epi32(vh[0], vh[1]);
                th[2] = _mm512_unpacklo_epi32(vh[2], vh[3]);
                th[3] = _mm512_unpackhi_epi32(vh[2], vh[3]);
                uh[0] = _mm512_unpacklo_epi64(th[0], th[2]);
                uh[1] = _mm512_unpackhi_epi64(th[0], th[2]);
                uh[2] = _mm512_unpacklo_epi64(th[1], th[3]);
                uh[3] = _mm512_unpackhi_epi64(th[1], th[3]);
            }
            // out[2 l + e] = pairs 4 l + 2 e, 4 l + 2 e + 1 of rows 0-7: lanes (u[2e].l, u[4+2e].l, u[2e+1].l, u[4+2e+1].l)
            __m512i out[8];
#pragma GCC unroll 2
            for (int e = 0; e < 2; e++) {
                __m512i y02 = _mm512_shuffle_i32x4(u[2 * e], u[4 + 2 * e], _MM_SHUFFLE(2, 0, 2, 0));
                __m512i y13 = _mm512_shuffle_i32x4(u[2 * e], u[4 + 2 * e], _MM_SHUFFLE(3, 1, 3, 1));
                __m512i z02 = _mm512_shuffle_i32x4(u[2 * e + 1], u[4 + 2 * e + 1], _MM_SHUFFLE(2, 0, 2, 0));
                __m512i z13 = _mm512_shuffle_i32x4(u[2 * e + 1], u[4 + 2 * e + 1], _MM_SHUFFLE(3, 1, 3, 1));
                out[0 + e] = _mm512_shuffle_i32x4(y02, z02, _MM_SHUFFLE(2, 0, 2, 0));
                out[4 + e] = _mm512_shuffle_i32x4(y02, z02, _MM_SHUFFLE(3, 1, 3, 1));
                out[2 + e] = _mm512_shuffle_i32x4(y13, z13, _MM_SHUFFLE(2, 0, 2, 0));
                out[6 + e] = _mm512_shuffle_i32x4(y13, z13, _MM_SHUFFLE(3, 1, 3, 1));
            }
            uint32_t *o = dst + (int64_t) (p - p0) * MR;
            int32_t count = p1 - p < 16 ? p1 - p : 16;
            if (count == 16) {
#pragma GCC unroll 8
                for (int j = 0; j < 8; j++) _mm512_storeu_si512((__m512i *) (o + 16 * j), out[j]);
            } else {
                for (int j = 0; 2 * j < count; j++) {
                    _mm512_mask_storeu_epi32(o + 16 * j, 2 * j + 1 < count ? 0xFFFF : 0x00FF, out[j]);
                }
            }
        }
    }
}

// ---------------------------------------------------------------- micro-kernel

typedef struct {
    const float *bias;      // (n) or NULL
    const float *residual;  // (m, n) from row 0 of out, row stride ldr, or NULL
    int64_t ldr;
    int32_t activation;
} epilogue_t;

// C[0:mr, 0:cols] (cols <= nv * 16) for one row panel and one weight panel over kcp depth pairs.
// first: C = product (C not read); else C += product. last: then the epilogue on the columns from col0.
INLINE void micro_kernel(int mr, int nv, int32_t kcp, const uint32_t *a, const uint16_t *b, float *c, int64_t ldc,
                         int32_t cols, int first, int last, const epilogue_t *e, int32_t row0, int32_t col0) {
    __m512 acc[MR][NV];
    __mmask16 mask[NV];
#pragma GCC unroll 3
    for (int v = 0; v < nv; v++) {
        int32_t left = cols - 16 * v;
        mask[v] = left >= 16 ? 0xFFFF : (__mmask16) ((1u << (left > 0 ? left : 0)) - 1);
    }
#pragma GCC unroll 8
    for (int r = 0; r < mr; r++) {
#pragma GCC unroll 3
        for (int v = 0; v < nv; v++) {
            acc[r][v] = first ? _mm512_setzero_ps() : _mm512_maskz_loadu_ps(mask[v], c + r * ldc + 16 * v);
        }
    }
    for (int32_t p = 0; p < kcp; p++) {
        __m512bh bv[NV];
#pragma GCC unroll 3
        for (int v = 0; v < nv; v++) bv[v] = (__m512bh) _mm512_load_si512((const __m512i *) (b + p * NR * 2 + 32 * v));
#pragma GCC unroll 8
        for (int r = 0; r < mr; r++) {
            __m512bh av = (__m512bh) _mm512_set1_epi32((int) a[p * MR + r]);
#pragma GCC unroll 3
            for (int v = 0; v < nv; v++) acc[r][v] = _mm512_dpbf16_ps(acc[r][v], av, bv[v]);
        }
    }
#pragma GCC unroll 8
    for (int r = 0; r < mr; r++) {
#pragma GCC unroll 3
        for (int v = 0; v < nv; v++) {
            __m512 out = acc[r][v];
            if (last) {
                if (e->bias) out = _mm512_add_ps(out, _mm512_maskz_loadu_ps(mask[v], e->bias + col0 + 16 * v));
                if (e->activation == ACT_QUICK_GELU) out = quick_gelu512(out);
                else if (e->activation == ACT_GELU) out = gelu512(out);
                if (e->residual) {
                    out = _mm512_add_ps(out, _mm512_maskz_loadu_ps(mask[v], e->residual + (row0 + r) * e->ldr + col0 + 16 * v));
                }
            }
            _mm512_mask_storeu_ps(c + r * ldc + 16 * v, mask[v], out);
        }
    }
}

// The micro-kernel for a row panel of mr rows and a weight panel with nv vectors of live columns.
#define MK(MRV, NVV) micro_kernel(MRV, NVV, kcp, a, b, c, ldc, cols, first, last, e, row0, col0)
#define ROWS(NVV) switch (mr) { \
        case 8: MK(8, NVV); break; case 7: MK(7, NVV); break; case 6: MK(6, NVV); break; case 5: MK(5, NVV); break; \
        case 4: MK(4, NVV); break; case 3: MK(3, NVV); break; case 2: MK(2, NVV); break; default: MK(1, NVV); break; }

static void micro_dispatch(int mr, int nv, int32_t kcp, const uint32_t *a, const uint16_t *b, float *c, int64_t ldc,
                           int32_t cols, int first, int last, const epilogue_t *e, int32_t row0, int32_t col0) {
    if (nv == 3) { ROWS(3) } else if (nv == 2) { ROWS(2) } else { ROWS(1) }
}

// ---------------------------------------------------------------- one tile

static __thread uint32_t packed_x[MC * KCP] __attribute__((aligned(64)));

/**
 * out[i0:i1, j0:j1] = epilogue(x[i0:i1, :] @ W^T[:, j0:j1]) with W packed by clip_bf16_pack (n, k).
 * x (m, k) F32 row stride ldx; out (m, n) row stride ldo; bias (n) or NULL; residual (m, n) row stride
 * ldr or NULL (must not overlap out); activation ACT_*. j0 is a multiple of NR (a panel boundary).
 * Returns 0, or -1 when the arguments are out of range (nothing written).
 */
int32_t clip_bf16_linear_tile(const float *x, int64_t ldx, const uint16_t *w, int32_t n, int32_t k,
                              float *out, int64_t ldo, const float *bias, const float *residual, int64_t ldr,
                              int32_t activation, int32_t i0, int32_t i1, int32_t j0, int32_t j1) {
    if (k <= 0 || n <= 0 || i0 < 0 || i1 < i0 || j0 < 0 || j1 > n || j1 < j0 || j0 % NR != 0
            || activation < ACT_NONE || activation > ACT_GELU) {
        return -1;
    }
    int32_t kp = (k + 1) / 2;
    int32_t blocks = (kp + KCP - 1) / KCP;
    int32_t step = (kp + blocks - 1) / blocks;   // equal depth blocks: no short last one
    epilogue_t e = {bias, residual, ldr, activation};
    for (int32_t m0 = i0; m0 < i1; m0 += MC) {
        int32_t rows = i1 - m0 < MC ? i1 - m0 : MC;
        for (int32_t p0 = 0; p0 < kp; p0 += step) {
            int32_t p1 = p0 + step < kp ? p0 + step : kp;
            int32_t kcp = p1 - p0;
            int first = p0 == 0, last = p1 == kp;
            pack_activations(x + m0 * ldx, ldx, k, rows, p0, p1, packed_x);
            for (int32_t j = j0; j < j1; j += NR) {
                int32_t cols = j1 - j < NR ? j1 - j : NR;
                int nv = (cols + 15) / 16;
                const uint16_t *b = w + (int64_t) (j / NR) * kp * NR * 2 + (int64_t) p0 * NR * 2;
                for (int32_t r = 0; r < rows; r += MR) {
                    int mr = rows - r < MR ? rows - r : MR;
                    micro_dispatch(mr, nv, kcp, packed_x + (int64_t) r * kcp, b, out + (int64_t) (m0 + r) * ldo + j, ldo,
                                   cols, first, last, &e, m0 + r, j);
                }
            }
        }
    }
    return 0;
}
