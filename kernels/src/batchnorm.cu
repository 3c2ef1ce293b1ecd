// batchnorm.cu: BatchNorm2d on x (B, C, H*W).
//   batchnorm_forward_eval   out = (x - runningMean[c]) / sqrt(runningVar[c] + eps) * gamma[c] + beta[c]
//   batchnorm_forward_stats  training: saveMean[c], saveRstd[c] = batch mean and 1/sqrt(biased var + eps)
//                            (two passes: mean, then centered squares), running stats updated with
//                            momentum and the unbiased variance (PyTorch's semantics)
//   batchnorm_forward_apply  out = (x - saveMean[c]) * saveRstd[c] * gamma[c] + beta[c]
//   batchnorm_backward       dgamma[c] += sum dout xhat, dbeta[c] += sum dout,
//                            dx += gamma rstd (dout - mean(dout) - xhat mean(dout xhat))
// Launch: eval/apply: 1-D grid-stride over the elements, 256 threads; stats/backward: one block of 256
// threads per channel (block reductions over B*H*W).
// Versions: v1 (this) one thread per element; per-channel block reductions in F32 (the CPU reference
// sums in double: agreement ~1e-6 relative at CLIP's sizes).
#include "../include/clip_common.cuh"

extern "C" __global__ void batchnorm_forward_eval(float* out, const float* x, const float* gamma, const float* beta,
                                                  const float* runningMean, const float* runningVar, int b, int c,
                                                  int hw, float eps) {
    long n = (long)b * c * hw;
    for (long i = (long)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (long)gridDim.x * blockDim.x) {
        int ch = (int)((i / hw) % c);
        float s = gamma[ch] / sqrtf(runningVar[ch] + eps);
        out[i] = (x[i] - runningMean[ch]) * s + beta[ch];
    }
}

extern "C" __global__ void batchnorm_forward_stats(float* saveMean, float* saveRstd, float* runningMean, float* runningVar,
                                                   const float* x, int b, int c, int hw, float momentum, float eps) {
    __shared__ float scratch[32];
    int ch = blockIdx.x;
    long count = (long)b * hw;
    float sum = 0.0f;
    for (long i = threadIdx.x; i < count; i += blockDim.x) sum += x[((i / hw) * c + ch) * hw + i % hw];
    float mean = block_sum(sum, scratch) / count;
    float sq = 0.0f;
    for (long i = threadIdx.x; i < count; i += blockDim.x) {
        float d = x[((i / hw) * c + ch) * hw + i % hw] - mean;
        sq += d * d;
    }
    float total = block_sum(sq, scratch);
    if (threadIdx.x == 0) {
        float var = total / count;
        float unbiased = count > 1 ? total / (count - 1) : var;
        saveMean[ch] = mean;
        saveRstd[ch] = 1.0f / sqrtf(var + eps);
        runningMean[ch] = (1.0f - momentum) * runningMean[ch] + momentum * mean;
        runningVar[ch] = (1.0f - momentum) * runningVar[ch] + momentum * unbiased;
    }
}

extern "C" __global__ void batchnorm_forward_apply(float* out, const float* x, const float* gamma, const float* beta,
                                                   const float* mean, const float* rstd, int b, int c, int hw) {
    long n = (long)b * c * hw;
    for (long i = (long)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (long)gridDim.x * blockDim.x) {
        int ch = (int)((i / hw) % c);
        out[i] = (x[i] - mean[ch]) * rstd[ch] * gamma[ch] + beta[ch];
    }
}

extern "C" __global__ void batchnorm_backward(float* dx, float* dgamma, float* dbeta, const float* dout, const float* x,
                                              const float* gamma, const float* mean, const float* rstd, int b, int c,
                                              int hw) {
    __shared__ float scratch[32];
    int ch = blockIdx.x;
    long count = (long)b * hw;
    float mu = mean[ch], rs = rstd[ch];
    float sg = 0.0f, sgx = 0.0f;
    for (long i = threadIdx.x; i < count; i += blockDim.x) {
        long at = ((i / hw) * c + ch) * hw + i % hw;
        float g = dout[at];
        sg += g;
        sgx += g * (x[at] - mu) * rs;
    }
    float sumG = block_sum(sg, scratch);
    float sumGx = block_sum(sgx, scratch);
    if (threadIdx.x == 0) {
        if (dbeta != nullptr) dbeta[ch] += sumG;
        if (dgamma != nullptr) dgamma[ch] += sumGx;
    }
    if (dx == nullptr) return;
    float k = gamma[ch] * rs, meanG = sumG / count, meanGx = sumGx / count;
    for (long i = threadIdx.x; i < count; i += blockDim.x) {
        long at = ((i / hw) * c + ch) * hw + i % hw;
        dx[at] += k * (dout[at] - meanG - (x[at] - mu) * rs * meanGx);
    }
}
