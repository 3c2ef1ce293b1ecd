// sim_checks.cu: kernels with one planted bug each, for the simulator's checks (org.clipj.kernels.SimChecksTest);
// compiled into target/sim-test/libclipkernels_simtest.so only, never into the kernels the project ships.
#include "clip_common.cuh"

// Copies n floats with one thread per element, but the bound is off by one: thread n reads in[n] and writes
// out[n], one past the end of both buffers (the slack up to the allocation's granule on a real GPU).
extern "C" __global__ void check_global_one_past_end(float* out, const float* in, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i <= n) out[i] = in[i];
}

// Static shared array of 32 floats written by every thread of the block: with 33 threads, thread 32 writes
// tile[32].
extern "C" __global__ void check_static_shared_past_end(float* out) {
    __shared__ float tile[32];
    tile[threadIdx.x] = (float) threadIdx.x;
    __syncthreads();
    if (threadIdx.x == 0) out[0] = tile[0];
}

// Dynamic shared memory indexed by thread: the launch gives one float less than the block has threads.
extern "C" __global__ void check_dynamic_shared_past_end(float* out) {
    extern __shared__ float row[];
    row[threadIdx.x] = 1.0f;
    __syncthreads();
    if (threadIdx.x == 0) out[0] = row[0];
}

// Doubles a tile in place and writes it reversed, with the barrier between the doubling and the reversed
// read removed: thread i reads tile[n - 1 - i] in the same barrier interval as thread n - 1 - i writes it.
extern "C" __global__ void check_missing_barrier(float* out, const float* in) {
    __shared__ float tile[1024];
    int n = blockDim.x, base = blockIdx.x * n;
    tile[threadIdx.x] = in[base + threadIdx.x];
    __syncthreads();
    tile[threadIdx.x] *= 2.0f;
    out[base + threadIdx.x] = tile[n - 1 - threadIdx.x];
}

// Only the first half of the block fills the tile, but every thread reads its mirror element: the second
// half's slots are never written.
extern "C" __global__ void check_reads_unwritten_shared(float* out) {
    __shared__ float tile[64];
    if (threadIdx.x < blockDim.x / 2) tile[threadIdx.x] = 1.0f;
    __syncthreads();
    out[threadIdx.x] = tile[blockDim.x - 1 - threadIdx.x];
}

// out[i] = in[i] + 1 without writing anything else: reads whatever `in` holds (initcheck: NaN if never written).
extern "C" __global__ void check_add_one(float* out, const float* in, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) out[i] = in[i] + 1.0f;
}

// Two blocks accumulate into the same word with atomics: allowed (no race reported).
extern "C" __global__ void check_shared_atomics(int* out) {
    __shared__ int counter[1];
    if (threadIdx.x == 0) counter[0] = 0;
    __syncthreads();
    atomicAdd(&counter[0], 1);
    __syncthreads();
    if (threadIdx.x == 0) out[blockIdx.x] = counter[0];
}

// Lanes exchange through shared memory ordered by __syncwarp only: legal within a warp.
extern "C" __global__ void check_warp_ordered_exchange(float* out) {
    __shared__ float slot[32];
    int lane = threadIdx.x % 32;
    slot[lane] = (float) lane;
    __syncwarp();
    out[lane] = slot[31 - lane];
}

// Declared for blocks of at most 64 threads (ptxas may then give each thread more registers): a launch of 128
// threads is refused, as the driver refuses it.
extern "C" __global__ void __launch_bounds__(64) check_launch_bounds(float* out) {
    out[blockIdx.x * blockDim.x + threadIdx.x] = 1.0f;
}

// Every block's thread 0 writes out[0] without an atomic: the block's index when `differ`, else 1 (a flag every
// block may set: benign). With differ the result depends on which block runs last.
extern "C" __global__ void check_blocks_write_one_address(float* out, int differ) {
    if (threadIdx.x == 0) out[0] = differ ? (float) blockIdx.x : 1.0f;
}

// Each thread adds its right neighbour in dynamic shared memory: the launch gives one float per thread, so the
// last thread reads row[blockDim.x], one past the dynamic size.
extern "C" __global__ void check_dynamic_shared_read_past_end(float* out) {
    extern __shared__ float row[];
    row[threadIdx.x] = (float) threadIdx.x;
    __syncthreads();
    out[threadIdx.x] = row[threadIdx.x] + row[threadIdx.x + 1];
}

// All 32 lanes shuffle, but the mask leaves out lane 31, which takes part (and which lane 30 reads).
extern "C" __global__ void check_shuffle_mask_missing_lane(float* out) {
    float v = (float) threadIdx.x;
    out[threadIdx.x] = __shfl_down_sync(0x7fffffffu, v, 1);
}

// Odd and even threads wait at two different __syncthreads (a barrier in warp-divergent code).
extern "C" __global__ void check_divergent_syncthreads(float* out) {
    __shared__ float tile[64];
    if (threadIdx.x & 1) {
        tile[threadIdx.x] = 1.0f;
        __syncthreads();
        out[threadIdx.x] = tile[threadIdx.x ^ 1];
    } else {
        tile[threadIdx.x] = 2.0f;
        __syncthreads();
        out[threadIdx.x] = 2.0f * tile[threadIdx.x ^ 1];
    }
}

// Sums float4 vectors read from in + offset floats: an offset not a multiple of 4 makes every vector load
// misaligned (the GPU's ld.global.v4 faults: misaligned address).
extern "C" __global__ void check_misaligned_float4(float* out, const float* in, int offset) {
    const float4* vectors = (const float4*) (in + offset);
    float4 v = vectors[threadIdx.x];
    out[threadIdx.x] = v.x + v.y + v.z + v.w;
}
