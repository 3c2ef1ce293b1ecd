// reduce.cu: whole-tensor reductions for training bookkeeping.
//   sum_of_squares          partial[block] = sum of x[i]^2 over the block's grid-stride share, in double
//                           (the host adds the gridDim.x partials)
//   sum_of_squares_all_partials  the same over a list of tensors in one launch: blockIdx.y picks tensor t
//                           (its address and length from two device tables), partial[t * gridDim.x + block]
//   sum_of_squares_all_total     total[0] = the sum of `count` partials, one block, in a fixed order
//                           (deterministic): the global grad norm^2 as one device scalar, read by one sync
//   has_non_finite          flag[0] = 1 when any x[i] is NaN or +-Inf (loss scaling); flag is zeroed by the host
//   row_argmax              index[r] = the first position of the largest value of row r of x (R, T) I32 (a text
//                           tower's EOT position: the largest token id), on the device so a text forward has no sync
// Launch: 256 threads per block, grid <= 256 blocks (x) per tensor, grid-stride; the total one block; row_argmax one
//   warp per row (grid R, block 32), each lane over positions lane, lane + 32, ..., then a shuffle reduction.
// Bound (global norm of ViT-B/32's 151 M gradients): 604 MB read, ~0.2 ms at ~3.3 TB/s; launches 2 (was
//   one launch and one host sync per tensor, ~300 per step).
// Versions: v1 per-thread double accumulation, warp shuffles, one partial per block; v2 (this) the
// multi-tensor norm with a device total, and row_argmax.
#include "../include/clip_common.cuh"

#define REDUCE_THREADS 256

// The block's sum of acc (double) for blockDim.x == REDUCE_THREADS, valid in thread 0.
__device__ __forceinline__ double block_sum_double(double acc, double* warpSums) {
    for (int o = CLIP_WARP / 2; o > 0; o >>= 1) acc += __shfl_xor_sync(CLIP_FULL_MASK, acc, o);
    int lane = threadIdx.x % CLIP_WARP, warp = threadIdx.x / CLIP_WARP;
    if (lane == 0) warpSums[warp] = acc;
    __syncthreads();
    double total = 0.0;
    if (threadIdx.x == 0) {
        for (int w = 0; w < (int)(blockDim.x / CLIP_WARP); w++) total += warpSums[w];
    }
    return total;
}

extern "C" __global__ void sum_of_squares(double* partial, const float* x, long n) {
    __shared__ double warpSums[32];
    double acc = 0.0;
    for (long i = (long)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (long)gridDim.x * blockDim.x) {
        double v = x[i];
        acc += v * v;
    }
    double total = block_sum_double(acc, warpSums);
    if (threadIdx.x == 0) partial[blockIdx.x] = total;
}

extern "C" __global__ void sum_of_squares_all_partials(double* partial, const long* addresses, const long* lengths) {
    __shared__ double warpSums[32];
    const float* x = (const float*)addresses[blockIdx.y];
    long n = lengths[blockIdx.y];
    double acc = 0.0;
    for (long i = (long)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (long)gridDim.x * blockDim.x) {
        double v = x[i];
        acc += v * v;
    }
    double total = block_sum_double(acc, warpSums);
    if (threadIdx.x == 0) partial[(long)blockIdx.y * gridDim.x + blockIdx.x] = total;
}

extern "C" __global__ void sum_of_squares_all_total(double* total, const double* partial, int count) {
    __shared__ double warpSums[32];
    double acc = 0.0;
    for (int i = threadIdx.x; i < count; i += blockDim.x) acc += partial[i];
    double sum = block_sum_double(acc, warpSums);
    if (threadIdx.x == 0) total[0] = sum;
}

extern "C" __global__ void has_non_finite(int* flag, const float* x, long n) {
    for (long i = (long)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (long)gridDim.x * blockDim.x) {
        if (!isfinite(x[i])) flag[0] = 1;
    }
}

extern "C" __global__ void row_argmax(int* index, const int* x, int t) {
    const int* row = x + (long)blockIdx.x * t;
    int best = -2147483647 - 1, at = t; // at = t: no position yet (t >= 1: lane 0 always finds one)
    for (int j = threadIdx.x; j < t; j += CLIP_WARP) {
        int v = row[j];
        if (v > best || at == t) { best = v; at = j; }
    }
    for (int o = CLIP_WARP / 2; o > 0; o >>= 1) {
        int otherBest = __shfl_xor_sync(CLIP_FULL_MASK, best, o), otherAt = __shfl_xor_sync(CLIP_FULL_MASK, at, o);
        if (otherBest > best || (otherBest == best && otherAt < at)) { best = otherBest; at = otherAt; }
    }
    if (threadIdx.x == 0) index[blockIdx.x] = at;
}
