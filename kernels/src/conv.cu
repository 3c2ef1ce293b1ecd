// conv.cu: convolution as im2col + GEMM (the GEMM is cuBLASLt's), and average pooling.
//   im2col_forward      col (B*Ho*Wo, Ci*K*K) from x (B, Ci, H, W): row (b, oy, ox), column (ci, ky, kx),
//                       zero padding. With K = stride = patch and pad = 0 this is ViT's patchify, and
//                       col @ w (C, Ci*p*p)^T is directly the patch embedding (B, P, C).
//   conv2d_forward_output out (B, Co, Ho*Wo) = y (B, Ho*Wo, Co) transposed per image + bias (Co) (bias may be null)
//   im2col_backward     dx (B, Ci, H, W) += col2im(dcol): atomicAdd (overlapping windows share pixels)
//   avgpool2d_forward   out (B*C, H/k, W/k) = mean of each k x k window of x (B*C, H, W), stride k
//   avgpool2d_backward  dx (B*C, H, W) += dout at its window / k^2
// Launch: 1-D grid-stride over the output elements, 256 threads per block.
// Versions: v1 (this) one thread per output element; reads of x are strided by the kernel window,
// writes coalesced. Implicit GEMM (no col buffer) is the next step if ResNet convs dominate on GPU.
#include "../include/clip_common.cuh"

// The x element that col element i (row (b, oy, ox), column (ci, ky, kx)) reads, or -1 in the zero padding.
__device__ __forceinline__ long im2col_source(long i, int ci, int h, int w, int k, int stride, int pad, int ho, int wo) {
    long cols = (long)ci * k * k;
    long r = i / cols;
    int cc = (int)(i - r * cols);
    int ox = (int)(r % wo);
    int oy = (int)((r / wo) % ho);
    long bb = r / ((long)wo * ho);
    int kx = cc % k;
    int ky = (cc / k) % k;
    int c = cc / (k * k);
    int iy = oy * stride - pad + ky;
    int ix = ox * stride - pad + kx;
    if (iy < 0 || iy >= h || ix < 0 || ix >= w) return -1;
    return ((bb * ci + c) * h + iy) * w + ix;
}

extern "C" __global__ void im2col_forward(float* col, const float* x, int b, int ci, int h, int w, int k, int stride,
                                          int pad, int ho, int wo) {
    long n = (long)b * ho * wo * ci * k * k;
    for (long i = (long)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (long)gridDim.x * blockDim.x) {
        long src = im2col_source(i, ci, h, w, k, stride, pad, ho, wo);
        col[i] = src >= 0 ? x[src] : 0.0f;
    }
}

extern "C" __global__ void conv2d_forward_output(float* out, const float* y, const float* bias, int b, int co, int hw) {
    long n = (long)b * co * hw;
    for (long i = (long)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (long)gridDim.x * blockDim.x) {
        int p = (int)(i % hw);
        int c = (int)((i / hw) % co);
        long bb = i / ((long)hw * co);
        out[i] = y[(bb * hw + p) * co + c] + (bias != nullptr ? bias[c] : 0.0f);
    }
}

extern "C" __global__ void avgpool2d_forward(float* out, const float* x, int planes, int h, int w, int k) {
    int ho = h / k, wo = w / k;
    long n = (long)planes * ho * wo;
    float inv = 1.0f / (k * k);
    for (long i = (long)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (long)gridDim.x * blockDim.x) {
        int ox = (int)(i % wo);
        int oy = (int)((i / wo) % ho);
        long p = i / ((long)wo * ho);
        const float* src = x + (p * h + (long)oy * k) * w + (long)ox * k;
        float sum = 0.0f;
        for (int ky = 0; ky < k; ky++)
            for (int kx = 0; kx < k; kx++) sum += src[(long)ky * w + kx];
        out[i] = sum * inv;
    }
}

extern "C" __global__ void im2col_backward(float* dx, const float* dcol, int b, int ci, int h, int w, int k, int stride,
                                           int pad, int ho, int wo) {
    long n = (long)b * ho * wo * ci * k * k;
    for (long i = (long)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (long)gridDim.x * blockDim.x) {
        long src = im2col_source(i, ci, h, w, k, stride, pad, ho, wo);
        if (src >= 0) atomicAdd(&dx[src], dcol[i]);
    }
}

extern "C" __global__ void avgpool2d_backward(float* dx, const float* dout, int planes, int h, int w, int k) {
    int ho = h / k, wo = w / k;
    long n = (long)planes * h * w;
    float inv = 1.0f / (k * k);
    for (long i = (long)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (long)gridDim.x * blockDim.x) {
        int x = (int)(i % w);
        int y = (int)((i / w) % h);
        long p = i / ((long)w * h);
        if (y / k < ho && x / k < wo) dx[i] += dout[(p * ho + y / k) * wo + x / k] * inv;
    }
}
