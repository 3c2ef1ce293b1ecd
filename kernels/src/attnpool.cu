// attnpool.cu: ModifiedResNet's AttentionPool2d core after its q/k/v projections: one query per image.
//   q (B, C), k (B, L, C), v (B, L, C), C = heads * hd -> out (B, C), lse (B, heads) (may be null)
//   out[b, h] = softmax_j(q[b, h] . k[b, j, h] / sqrt(hd)) v[b, j, h]   (L = H*W + 1 tokens: mean token + grid)
// Launch: grid (heads, B), block 128 threads; dynamic shared = (L + hd) floats (scores + scaled query).
// Warps score keys (lanes over the head dim, coalesced), the block reduces max and sum, then threads
// over the head dim accumulate p_j v_j. Any head dim (OpenAI's ResNets: 64; tested at 20, 64, 80, 88,
// 104, 112), scale 1.0f / sqrtf(hd) (IEEE, as the CPU reference; rsqrtf is approximate on the GPU).
// attention_pool_backward: same grid; recomputes the scores, then dv_j += p_j dout, dS_j = p_j (dout . v_j - D)
// with D = dout . out, dq += sum_j dS_j k_j / sqrt(hd), dk_j += dS_j q / sqrt(hd). A (head, image) block owns
// its slices of dq/dk/dv: plain adds, no atomics. Dynamic shared = (2 L + 2 hd) floats.
// Versions: v1 one block per (head, image): L <= 50 at 224 px, so the scores fit in shared. v2 (this)
// the exact scale. Shared memory is (L + hd) / (2 L + 2 hd) floats: 0.6 / 1.3 KiB at L = 50, hd 112.
#include "../include/clip_common.cuh"

extern "C" __global__ void attention_pool_forward(float* out, float* lse, const float* q, const float* k,
                                                  const float* v, int b, int l, int c, int heads) {
    extern __shared__ float smem[];
    __shared__ float scratch[32];
    int hd = c / heads;
    float* scores = smem;       // (L)
    float* qs = smem + l;       // (hd)
    int h = blockIdx.x, bb = blockIdx.y;
    int lane = threadIdx.x % CLIP_WARP, warp = threadIdx.x / CLIP_WARP, warps = blockDim.x / CLIP_WARP;
    float scale = 1.0f / sqrtf((float)hd);
    for (int d = threadIdx.x; d < hd; d += blockDim.x) qs[d] = q[(long)bb * c + h * hd + d] * scale;
    __syncthreads();
    const float* kb = k + (long)bb * l * c + h * hd;
    const float* vb = v + (long)bb * l * c + h * hd;
    for (int j = warp; j < l; j += warps) {
        float dot = 0.0f;
        for (int d = lane; d < hd; d += CLIP_WARP) dot += qs[d] * kb[(long)j * c + d];
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
    float inv = 1.0f / sum;
    for (int d = threadIdx.x; d < hd; d += blockDim.x) {
        float acc = 0.0f;
        for (int j = 0; j < l; j++) acc += scores[j] * vb[(long)j * c + d];
        out[(long)bb * c + h * hd + d] = acc * inv;
    }
    if (lse != nullptr && threadIdx.x == 0) lse[(long)bb * heads + h] = m + logf(sum);
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
