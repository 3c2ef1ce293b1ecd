// batchnorm.cu: BatchNorm2d in eval mode on x (B, C, H*W):
//   out = (x - runningMean[c]) / sqrt(runningVar[c] + eps) * gamma[c] + beta[c]
// Launch: 1-D grid-stride over the elements, 256 threads per block.
// Versions: v1 (this) one thread per element, per-channel scale/shift recomputed (cheap next to the load).
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
