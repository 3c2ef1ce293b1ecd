// adamw.cu: one fused AdamW step over a flat parameter range (torch.optim.AdamW semantics):
//   g = grad * gradScale; m = b1 m + (1 - b1) g; v = b2 v + (1 - b2) g^2;
//   p -= lr * ((m / c1) / (sqrt(v / c2) + eps) + weightDecay * p), c1 = 1 - b1^step, c2 = 1 - b2^step
//   (the host passes c1 and c2, computed in double).
// Launch: 1-D grid-stride, 256 threads per block.
// Versions: v1 (this) one pass, one load and store of each of p, m, v.
#include "../include/clip_common.cuh"

extern "C" __global__ void adamw_update(float* param, const float* grad, float* m, float* v, float lr, float beta1,
                                         float beta2, float eps, float weightDecay, float c1, float c2,
                                         float gradScale, long n) {
    for (long i = (long)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (long)gridDim.x * blockDim.x) {
        float g = grad[i] * gradScale;
        float mi = beta1 * m[i] + (1.0f - beta1) * g;
        float vi = beta2 * v[i] + (1.0f - beta2) * g * g;
        m[i] = mi;
        v[i] = vi;
        float p = param[i];
        param[i] = p - lr * ((mi / c1) / (sqrtf(vi / c2) + eps) + weightDecay * p);
    }
}
