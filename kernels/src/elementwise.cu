// elementwise.cu: pointwise ops over flat F32 buffers (and the F32 <-> BF16/F16 casts).
//   fill                    x[i] = value
//   add                     out[i] = a[i] + b[i]                  (out may alias a or b)
//   add_scaled              dst[i] += alpha * src[i]
//   scale                   x[i] *= s
//   broadcast_add_forward   out[r, j] = x[r, j] + b[j], x (R, M), b (M)  (linear bias, positional embedding)
//   quickgelu_forward       out[i] = x * sigmoid(1.702 x)
//   quickgelu_forward_bias  out[r, j] = g(x[r, j] + bias[j])     (the MLP's c_fc bias fused in)
//   quickgelu_forward_bf16, _f16, gelu_forward_bf16, _f16: the same on 16-bit x and out (F32 math, one
//                           rounding; out may alias x): the activation after a 16-bit GEMM whose bias
//                           epilogue already added c_fc's bias (BF16 inference, 4 B moved per element)
//   relu_forward            out[i] = max(x[i], 0)
//   gelu_forward            out[i] = x Phi(x) = x (1 + erf(x / sqrt 2)) / 2   (exact GELU, nn.GELU())
//   gelu_forward_bias       out[r, j] = gelu(x[r, j] + bias[j])  (as quickgelu_forward_bias)
//   gelu_backward           dx[i] += dout[i] (Phi(x) + x phi(x)), phi the normal density
//   channel_scale_forward   out[r, j] = x[r, j] * gamma[j]         (open_clip's LayerScale)
//   channel_scale_backward_input  dx[r, j] += dout[r, j] * gamma[j]
//   channel_scale_backward_gamma  dgamma[j] += sum_r dout[r, j] x[r, j]: one thread per column, as
//                           broadcast_add_backward
//   quickgelu_backward      dx[i] += dout[i] * (s + 1.702 x s (1 - s)), s = sigmoid(1.702 x)
//   relu_backward           dx[i] += out[i] > 0 ? dout[i] : 0
//   broadcast_add_backward_partials  partial[p, j] = sum of dout[r, j] over row chunk p (bias gradients,
//                           stage 1): a block is 32 columns x 8 row lanes, grid (ceil(M / 32), P chunks),
//                           each warp reads 32 consecutive columns of a row (coalesced)
//   broadcast_add_backward_total     db[j] += sum_p partial[p, j] (stage 2, one thread per column, chunks in
//                           order: deterministic, no atomics)
//   cast_<from>_<to>        F32 <-> BF16/F16, round to nearest even (__float2bfloat16 / __float2half)
// Launch: 1-D grid-stride, 256 threads per block, grid = min(ceil(n / 256), 65535 * 4) blocks.
// Bound (quickgelu_forward_bf16 in place on the MLP hidden layer, ViT-B/32 at batch 256: 12800 x 3072 =
//   39.3 M elements): 2 B read + 2 B written each, 157 MB, ~48 us at ~3.3 TB/s (the F32 path's
//   quickgelu_forward_bias on the F32 GEMM output moves 8 B per element, twice that).
// Versions: v1 (this) grid-stride scalar loops: memory-bound ops at one load+store per element,
// coalesced; vectorized float4 loads are the next step once a GPU run shows these matter. The bias
// gradient: v1 one thread per column over all rows (M / 256 blocks: 3 at M = 768, ~1 % of an H100's
// bandwidth); v2 (this) two stages, P = min(ceil(N / 64), 1024) row chunks, so ViT-B/32's fc bias
// gradient (N = 12800, M = 3072) runs 19200 blocks: 157 MB read, ~50 us at ~3.3 TB/s.
#include "../include/clip_common.cuh"

#define GRID_STRIDE(i, n) for (long i = (long)blockIdx.x * blockDim.x + threadIdx.x; i < (n); i += (long)gridDim.x * blockDim.x)

extern "C" __global__ void fill(float* x, float value, long n) {
    GRID_STRIDE(i, n) x[i] = value;
}

extern "C" __global__ void add(float* out, const float* a, const float* b, long n) {
    GRID_STRIDE(i, n) out[i] = a[i] + b[i];
}

extern "C" __global__ void add_scaled(float* dst, const float* src, float alpha, long n) {
    GRID_STRIDE(i, n) dst[i] += alpha * src[i];
}

extern "C" __global__ void scale(float* x, float s, long n) {
    GRID_STRIDE(i, n) x[i] *= s;
}

extern "C" __global__ void broadcast_add_forward(float* out, const float* x, const float* b, long n, int m) {
    GRID_STRIDE(i, n) out[i] = x[i] + b[i % m];
}

__device__ __forceinline__ float quickgelu(float x) {
    return x / (1.0f + expf(-1.702f * x));
}

extern "C" __global__ void quickgelu_forward(float* out, const float* x, long n) {
    GRID_STRIDE(i, n) out[i] = quickgelu(x[i]);
}

extern "C" __global__ void quickgelu_forward_bias(float* out, const float* x, const float* bias, long n, int m) {
    GRID_STRIDE(i, n) out[i] = quickgelu(x[i] + bias[i % m]);
}

extern "C" __global__ void quickgelu_forward_bf16(bf16* out, const bf16* x, long n) {
    GRID_STRIDE(i, n) out[i] = __float2bfloat16(quickgelu(__bfloat162float(x[i])));
}

extern "C" __global__ void quickgelu_forward_f16(f16* out, const f16* x, long n) {
    GRID_STRIDE(i, n) out[i] = __float2half(quickgelu(__half2float(x[i])));
}

extern "C" __global__ void relu_forward(float* out, const float* x, long n) {
    GRID_STRIDE(i, n) out[i] = fmaxf(x[i], 0.0f);
}

extern "C" __global__ void cast_f32_bf16(bf16* out, const float* x, long n) {
    GRID_STRIDE(i, n) out[i] = __float2bfloat16(x[i]);
}

extern "C" __global__ void cast_bf16_f32(float* out, const bf16* x, long n) {
    GRID_STRIDE(i, n) out[i] = __bfloat162float(x[i]);
}

extern "C" __global__ void cast_f32_f16(f16* out, const float* x, long n) {
    GRID_STRIDE(i, n) out[i] = __float2half(x[i]);
}

extern "C" __global__ void cast_f16_f32(float* out, const f16* x, long n) {
    GRID_STRIDE(i, n) out[i] = __half2float(x[i]);
}

extern "C" __global__ void quickgelu_backward(float* dx, const float* dout, const float* x, long n) {
    GRID_STRIDE(i, n) {
        float v = x[i];
        float s = 1.0f / (1.0f + expf(-1.702f * v));
        dx[i] += dout[i] * (s + 1.702f * v * s * (1.0f - s));
    }
}

extern "C" __global__ void relu_backward(float* dx, const float* dout, const float* out, long n) {
    GRID_STRIDE(i, n) dx[i] += out[i] > 0.0f ? dout[i] : 0.0f;
}

__device__ __forceinline__ float gelu_cdf(float x) {
    return 0.5f * (1.0f + erff(x * 0.70710678118654752f));
}

extern "C" __global__ void gelu_forward(float* out, const float* x, long n) {
    GRID_STRIDE(i, n) out[i] = x[i] * gelu_cdf(x[i]);
}

extern "C" __global__ void gelu_forward_bf16(bf16* out, const bf16* x, long n) {
    GRID_STRIDE(i, n) {
        float v = __bfloat162float(x[i]);
        out[i] = __float2bfloat16(v * gelu_cdf(v));
    }
}

extern "C" __global__ void gelu_forward_f16(f16* out, const f16* x, long n) {
    GRID_STRIDE(i, n) {
        float v = __half2float(x[i]);
        out[i] = __float2half(v * gelu_cdf(v));
    }
}

extern "C" __global__ void gelu_forward_bias(float* out, const float* x, const float* bias, long n, int m) {
    GRID_STRIDE(i, n) {
        float v = x[i] + bias[i % m];
        out[i] = v * gelu_cdf(v);
    }
}

extern "C" __global__ void gelu_backward(float* dx, const float* dout, const float* x, long n) {
    GRID_STRIDE(i, n) {
        float v = x[i];
        float pdf = expf(-0.5f * v * v) * 0.39894228040143268f;
        dx[i] += dout[i] * (gelu_cdf(v) + v * pdf);
    }
}

extern "C" __global__ void channel_scale_forward(float* out, const float* x, const float* gamma, long n, int c) {
    GRID_STRIDE(i, n) out[i] = x[i] * gamma[i % c];
}

extern "C" __global__ void channel_scale_backward_input(float* dx, const float* dout, const float* gamma, long n, int c) {
    GRID_STRIDE(i, n) dx[i] += dout[i] * gamma[i % c];
}

extern "C" __global__ void channel_scale_backward_gamma(float* dgamma, const float* dout, const float* x, int rows, int c) {
    GRID_STRIDE(j, c) {
        float sum = 0.0f;
        for (int r = 0; r < rows; r++) sum += dout[(long)r * c + j] * x[(long)r * c + j];
        dgamma[j] += sum;
    }
}

#define COLUMN_TILE 32
#define ROW_LANES 8

extern "C" __global__ void broadcast_add_backward_partials(float* partial, const float* dout, int rows, int m, int chunk) {
    __shared__ float sums[ROW_LANES * (COLUMN_TILE + 1)];
    int j = blockIdx.x * COLUMN_TILE + threadIdx.x;
    int r0 = blockIdx.y * chunk, r1 = min(rows, r0 + chunk);
    float s = 0.0f;
    if (j < m) {
        for (int r = r0 + threadIdx.y; r < r1; r += ROW_LANES) s += dout[(long)r * m + j];
    }
    sums[threadIdx.y * (COLUMN_TILE + 1) + threadIdx.x] = s;
    __syncthreads();
    if (threadIdx.y == 0 && j < m) {
        float t = 0.0f;
        for (int y = 0; y < ROW_LANES; y++) t += sums[y * (COLUMN_TILE + 1) + threadIdx.x];
        partial[(long)blockIdx.y * m + j] = t;
    }
}

extern "C" __global__ void broadcast_add_backward_total(float* db, const float* partial, int parts, int m) {
    GRID_STRIDE(j, m) {
        float sum = 0.0f;
        for (int p = 0; p < parts; p++) sum += partial[(long)p * m + j];
        db[j] += sum;
    }
}
