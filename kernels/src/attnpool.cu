// attnpool.cu: ModifiedResNet's AttentionPool2d core after its q/k/v projections: one query per image.
//   q (B, C), k (B, L, C), v (B, L, C), C = heads * hd -> out (B, C), lse (B, heads) (may be null)
//   out[b, h] = softmax_j(q[b, h] . k[b, j, h] / sqrt(hd)) v[b, j, h]   (L = H*W + 1 tokens: mean token + grid)
// attention_pool_forward (F32) and attention_pool_forward_bf16 (BF16 q, k, v, out; lse and all math F32).
// Launch: grid (heads, B), block 128 threads; dynamic shared = (L + hd + groups * hd) floats (scores, scaled
// query, P V partials; groups = max(1, 128 / ceil(hd / 2))). Warps score keys (lanes over pairs of dims: one
// 8-byte F32 or 4-byte BF16 load per pair, a warp reads 64 dims of a key in one coalesced access), the block
// reduces max and sum, then `groups` key groups of ceil(hd / 2) threads accumulate p_j v_j over pairs of
// dims (all 128 threads busy at hd 64: 4 groups of 32) and the groups' partials are summed. Any head dim
// (OpenAI's ResNets: 64; tested at 20, 64, 80, 88, 104, 112; odd widths load scalars), scale
// 1.0f / sqrtf(hd) (IEEE, as the CPU reference; rsqrtf is approximate on the GPU).
// attention_pool_backward: same grid; recomputes the scores, then dv_j += p_j dout, dS_j = p_j (dout . v_j - D)
// with D = dout . out, dq += sum_j dS_j k_j / sqrt(hd), dk_j += dS_j q / sqrt(hd). A (head, image) block owns
// its slices of dq/dk/dv: plain adds, no atomics. Dynamic shared = (2 L + 2 hd) floats.
// Versions: v1 one block per (head, image): L <= 50 at 224 px, so the scores fit in shared. v2 the exact
// scale. v3 (this) forward: BF16 variant, paired loads, P V over all threads in key groups (v2: hd of the
// 128 threads, one scalar load per element).
// Expected bound at RN50's shape, batch 256 (L = 50, C = 2048, 32 heads of 64; H100 3.35 TB/s): one query per
// image, so 4 L C B = 105 MFLOP, nothing for tensor cores; forward bytes k + v = 2 B L C x 4 = 210 MB F32 ->
// 63 us, 105 MB BF16 -> 31 us (q, out: 2 B C, 1-4 MB): memory-bound; 8192 blocks. Backward (F32): k, v read,
// dk, dv read and written: 629 MB -> 188 us.
#include "../include/clip_common.cuh"

// Two adjacent elements of a head's slice as F32: one 8-byte (F32) or 4-byte (BF16) load where `paired` (hd
// even: every pair starts aligned), else two scalar loads, the second only below hd.
__device__ __forceinline__ void load_pair(const float* p, bool paired, bool second, float& x, float& y) {
    if (paired) {
        float2 v = *(const float2*)p;
        x = v.x;
        y = v.y;
    } else {
        x = p[0];
        y = second ? p[1] : 0.0f;
    }
}

__device__ __forceinline__ void load_pair(const bf16* p, bool paired, bool second, float& x, float& y) {
    if (paired) {
        unsigned v = *(const unsigned*)p;
        x = __bfloat162float(__ushort_as_bfloat16((unsigned short)(v & 0xffffu)));
        y = __bfloat162float(__ushort_as_bfloat16((unsigned short)(v >> 16)));
    } else {
        x = to_f32(p[0]);
        y = second ? to_f32(p[1]) : 0.0f;
    }
}

// Shared memory (floats) of attention_pool_forward: scores (L), scaled query (hd), and the P V partial sums of
// `groups` key groups (hd each); the host computes the same (AttnPoolKernels).
__device__ __forceinline__ int pool_groups(int hd, int threads) { return max(1, threads / ((hd + 1) / 2)); }

template <typename T>
__device__ void attention_pool_forward_impl(T* out, float* lse, const T* q, const T* k, const T* v, int b, int l, int c, int heads) {
    extern __shared__ float smem[];
    __shared__ float scratch[32];
    int hd = c / heads, pairs = (hd + 1) / 2, groups = pool_groups(hd, blockDim.x);
    float* scores = smem;       // (L)
    float* qs = smem + l;       // (hd)
    float* part = qs + hd;      // (groups, hd)
    int h = blockIdx.x, bb = blockIdx.y;
    int lane = threadIdx.x % CLIP_WARP, warp = threadIdx.x / CLIP_WARP, warps = blockDim.x / CLIP_WARP;
    bool paired = hd % 2 == 0;
    float scale = 1.0f / sqrtf((float)hd);
    for (int d = threadIdx.x; d < hd; d += blockDim.x) qs[d] = to_f32(q[(long)bb * c + h * hd + d]) * scale;
    __syncthreads();
    const T* kb = k + (long)bb * l * c + h * hd;
    const T* vb = v + (long)bb * l * c + h * hd;
    // scores: a warp per key, lanes over pairs of dims (one 4- or 8-byte load each: a warp reads 64 dims at once)
    for (int j = warp; j < l; j += warps) {
        float dot = 0.0f;
        for (int p = lane; p < pairs; p += CLIP_WARP) {
            float x, y;
            load_pair(kb + (long)j * c + 2 * p, paired, 2 * p + 1 < hd, x, y);
            dot += qs[2 * p] * x + (2 * p + 1 < hd ? qs[2 * p + 1] * y : 0.0f);
        }
        dot = warp_sum(dot);
        if (lane == 0) scores[j] = dot;
    }
    __syncthreads();
    float m = -INFINITY;
    for (int j = threadIdx.x; j < l; j += blockDim.x) m = fmaxf(m, scores[j]);
    m = block_max(m, scratch);
    float sum = 0.0f;
    for (int j = threadIdx.x; j < l; j += blockDim.x) {
        float p = expf(scores[j] - m);
        scores[j] = p;
        sum += p;
    }
    sum = block_sum(sum, scratch); // its barriers also publish the probabilities
    // P V: `groups` key groups (keys g, g + groups, ...) of `pairs` threads, each thread a pair of dims (coalesced
    // rows of v); with one group (hd > 2 * blockDim) a thread strides over the pairs.
    int g = groups == 1 ? 0 : threadIdx.x / pairs;
    if (g < groups) {
        for (int p = groups == 1 ? threadIdx.x : threadIdx.x % pairs; p < pairs; p += groups == 1 ? blockDim.x : pairs) {
            float ax = 0.0f, ay = 0.0f;
            for (int j = g; j < l; j += groups) {
                float x, y;
                load_pair(vb + (long)j * c + 2 * p, paired, 2 * p + 1 < hd, x, y);
                ax += scores[j] * x;
                ay += scores[j] * y;
            }
            part[g * hd + 2 * p] = ax;
            if (2 * p + 1 < hd) part[g * hd + 2 * p + 1] = ay;
        }
    }
    __syncthreads();
    float inv = 1.0f / sum;
    for (int d = threadIdx.x; d < hd; d += blockDim.x) {
        float acc = 0.0f;
        for (int gg = 0; gg < groups; gg++) acc += part[gg * hd + d];
        out[(long)bb * c + h * hd + d] = from_f32<T>(acc * inv);
    }
    if (lse != nullptr && threadIdx.x == 0) lse[(long)bb * heads + h] = m + logf(sum);
}

extern "C" __global__ void attention_pool_forward(float* out, float* lse, const float* q, const float* k, const float* v, int b, int l,
                                                  int c, int heads) {
    attention_pool_forward_impl<float>(out, lse, q, k, v, b, l, c, heads);
}

extern "C" __global__ void attention_pool_forward_bf16(bf16* out, float* lse, const bf16* q, const bf16* k, const bf16* v, int b, int l,
                                                       int c, int heads) {
    attention_pool_forward_impl<bf16>(out, lse, q, k, v, b, l, c, heads);
}

extern "C" __global__ void attention_pool_backward(float* dq, float* dk, float* dv, const float* dout, const float* q,
                                                   const float* k, const float* v, const float* out, const float* lse,
                                                   int b, int l, int c, int heads) {
    extern __shared__ float smem[];
    __shared__ float scratch[32];
    int hd = c / heads;
    float* p = smem;            // (L) probabilities
    float* ds = smem + l;       // (L) score gradients
    float* qs = ds + l;         // (hd) scaled query
    float* gs = qs + hd;        // (hd) dout slice
    int h = blockIdx.x, bb = blockIdx.y;
    int lane = threadIdx.x % CLIP_WARP, warp = threadIdx.x / CLIP_WARP, warps = blockDim.x / CLIP_WARP;
    float scale = 1.0f / sqrtf((float)hd);
    long head = (long)bb * c + h * hd;
    float dpart = 0.0f;
    for (int d = threadIdx.x; d < hd; d += blockDim.x) {
        qs[d] = q[head + d] * scale;
        gs[d] = dout[head + d];
        dpart += gs[d] * out[head + d];
    }
    float delta = block_sum(dpart, scratch); // its barriers also publish qs and gs
    float rowLse = lse[(long)bb * heads + h];
    const float* kb = k + (long)bb * l * c + h * hd;
    const float* vb = v + (long)bb * l * c + h * hd;
    for (int j = warp; j < l; j += warps) {
        float dot = 0.0f, dp = 0.0f;
        for (int d = lane; d < hd; d += CLIP_WARP) {
            dot += qs[d] * kb[(long)j * c + d];
            dp += gs[d] * vb[(long)j * c + d];
        }
        dot = warp_sum(dot);
        dp = warp_sum(dp);
        if (lane == 0) {
            float pj = expf(dot - rowLse);
            p[j] = pj;
            ds[j] = pj * (dp - delta);
        }
    }
    __syncthreads();
    float* dkb = dk + (long)bb * l * c + h * hd;
    float* dvb = dv + (long)bb * l * c + h * hd;
    for (int d = threadIdx.x; d < hd; d += blockDim.x) {
        float acc = 0.0f;
        for (int j = 0; j < l; j++) {
            acc += ds[j] * kb[(long)j * c + d];
            if (dk != nullptr) dkb[(long)j * c + d] += ds[j] * qs[d];
            if (dv != nullptr) dvb[(long)j * c + d] += p[j] * gs[d];
        }
        if (dq != nullptr) dq[head + d] += acc * scale;
    }
}
