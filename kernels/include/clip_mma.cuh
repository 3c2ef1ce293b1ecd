// clip_mma.cuh: the project's tensor-core wrapper. One warp-wide D (16x8, F32) = A (16x16, BF16, row)
// @ B (16x8, BF16, col) + C, i.e. PTX mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 (sm_80+).
// Fragment layout (PTX ISA, per lane: group = lane / 4, quad = lane % 4; bf16 pairs packed in a
// uint32, lower column/row index in the low 16 bits):
//   a[0] = A[group][2q, 2q+1]      a[1] = A[group+8][2q, 2q+1]
//   a[2] = A[group][2q+8, 2q+9]    a[3] = A[group+8][2q+8, 2q+9]
//   b[0] = B[2q, 2q+1][group]      b[1] = B[2q+8, 2q+9][group]
//   c[0], c[1] = C[group][2q, 2q+1]    c[2], c[3] = C[group+8][2q, 2q+1]
// Under CLIP_SIM the same layout is emulated with warp shuffles (every lane of the warp must call it,
// as on the GPU), so kernels that rely on the layout are tested bit-for-bit in fragment placement.
#pragma once

#include "clip_common.cuh"

__device__ __forceinline__ unsigned pack_bf16x2(float lo, float hi) {
    unsigned l = __bfloat16_as_ushort(__float2bfloat16(lo));
    unsigned h = __bfloat16_as_ushort(__float2bfloat16(hi));
    return l | (h << 16);
}

__device__ __forceinline__ float bf16x2_lo(unsigned v) { return __bfloat162float(__ushort_as_bfloat16((unsigned short)(v & 0xffffu))); }
__device__ __forceinline__ float bf16x2_hi(unsigned v) { return __bfloat162float(__ushort_as_bfloat16((unsigned short)(v >> 16))); }

__device__ __forceinline__ void mma_m16n8k16_bf16(float d[4], const unsigned a[4], const unsigned b[2], const float c[4]) {
#ifdef CLIP_SIM
    int lane = threadIdx.x % CLIP_WARP, group = lane / 4, quad = lane % 4;
    float arow[2][16]; // A rows group and group + 8
    for (int src = 0; src < 4; src++) {
        for (int r = 0; r < 4; r++) {
            unsigned v = __shfl_sync(CLIP_FULL_MASK, a[r], group * 4 + src);
            int row = r & 1, col = 2 * src + (r >= 2 ? 8 : 0);
            arow[row][col] = bf16x2_lo(v);
            arow[row][col + 1] = bf16x2_hi(v);
        }
    }
    float bcol[2][16]; // B columns 2q and 2q + 1
    for (int cc = 0; cc < 2; cc++) {
        for (int src = 0; src < 4; src++) {
            for (int r = 0; r < 2; r++) {
                unsigned v = __shfl_sync(CLIP_FULL_MASK, b[r], (2 * quad + cc) * 4 + src);
                int k = 2 * src + (r == 1 ? 8 : 0);
                bcol[cc][k] = bf16x2_lo(v);
                bcol[cc][k + 1] = bf16x2_hi(v);
            }
        }
    }
    for (int i = 0; i < 4; i++) {
        int row = i >= 2 ? 1 : 0, col = i & 1;
        float acc = c[i];
        for (int k = 0; k < 16; k++) acc += arow[row][k] * bcol[col][k];
        d[i] = acc;
    }
#else
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%10,%11,%12,%13};\n"
        : "=f"(d[0]), "=f"(d[1]), "=f"(d[2]), "=f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]),
          "f"(c[0]), "f"(c[1]), "f"(c[2]), "f"(c[3]));
#endif
}
