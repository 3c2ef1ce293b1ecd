// embedding.cu: row gathers.
//   embedding_forward    out (B*T, C) = table (V, C) rows at ids (B*T) (token embedding)
//   gather_rows_forward  out (B, C) = x (B, T, C) at row index[b] (the EOT token / class token)
// An index outside its range writes a zero row and sets error[0] = 1 (the host zeroes it first and
// reads it back, so the Java side can name the bad tensor; kernels never trap).
//   embedding_backward   dtable[ids[r]] += dout[r] (atomicAdd: one token id may repeat)
//   gather_rows_backward dx[b, index[b]] += dout[b] (one row per batch item: no conflicts)
// Launch: one block of 128 threads per output row, threads stride over C.
// Versions: v1 (this) block per row, coalesced row copies.
#include "../include/clip_common.cuh"

extern "C" __global__ void embedding_forward(float* out, const int* ids, const float* table, int rows, int c, int v,
                                             int* error) {
    int row = blockIdx.x;
    if (row >= rows) return;
    int id = ids[row];
    float* dst = out + (long)row * c;
    bool valid = id >= 0 && id < v;
    if (!valid && threadIdx.x == 0) error[0] = 1;
    const float* src = table + (long)(valid ? id : 0) * c;
    for (int i = threadIdx.x; i < c; i += blockDim.x) dst[i] = valid ? src[i] : 0.0f;
}

extern "C" __global__ void gather_rows_forward(float* out, const float* x, const int* index, int b, int t, int c,
                                               int* error) {
    int row = blockIdx.x;
    if (row >= b) return;
    int at = index[row];
    float* dst = out + (long)row * c;
    bool valid = at >= 0 && at < t;
    if (!valid && threadIdx.x == 0) error[0] = 1;
    const float* src = x + ((long)row * t + (valid ? at : 0)) * c;
    for (int i = threadIdx.x; i < c; i += blockDim.x) dst[i] = valid ? src[i] : 0.0f;
}

extern "C" __global__ void embedding_backward(float* dtable, const float* dout, const int* ids, int rows, int c, int v) {
    int row = blockIdx.x;
    if (row >= rows) return;
    int id = ids[row];
    if (id < 0 || id >= v) return; // the forward already rejected it
    for (int i = threadIdx.x; i < c; i += blockDim.x) atomicAdd(&dtable[(long)id * c + i], dout[(long)row * c + i]);
}

extern "C" __global__ void gather_rows_backward(float* dx, const float* dout, const int* index, int b, int t, int c) {
    int row = blockIdx.x;
    if (row >= b) return;
    int at = index[row];
    if (at < 0 || at >= t) return;
    float* dst = dx + ((long)row * t + at) * c;
    for (int i = threadIdx.x; i < c; i += blockDim.x) dst[i] += dout[(long)row * c + i];
}
