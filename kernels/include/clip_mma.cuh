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

// ---- shared-memory fragment loads and asynchronous copies (sm_80+) ----
// ldmatrix.sync.aligned.m8n8.x4[.trans].shared.b16: four 8x8 matrices of 16-bit elements, each row 16
// contiguous bytes in shared memory, 16-byte aligned; lane l gives the address of row l % 8 of matrix
// l / 8. Lane l receives, per matrix i, r[i] = (with group = l / 4, quad = l % 4, lower index in the low half):
//   ldmatrix_x4:        M_i[group][2 quad], M_i[group][2 quad + 1]     (row-major fragment: an A row or a B column)
//   ldmatrix_x4_trans:  M_i[2 quad][group], M_i[2 quad + 1][group]     (the transposed matrix's fragment)
// Under CLIP_SIM the lanes exchange their row addresses by shuffles and read shared memory directly (checked
// like any other access; a misaligned row traps, as it faults on the GPU). Every lane of the warp must call.
#ifndef CLIP_SIM
__device__ __forceinline__ unsigned clip_shared_address(const void* p) { return (unsigned) __cvta_generic_to_shared(p); }
#endif

__device__ __forceinline__ void ldmatrix_x4(unsigned r[4], const unsigned short* row) {
#ifdef CLIP_SIM
    unsigned long long mine = (unsigned long long) (uintptr_t) row;
    if (mine % 16 != 0) clip_sim_trap("ldmatrix: row address not 16-byte aligned");
    int lane = threadIdx.x % CLIP_WARP, group = lane / 4, quad = lane % 4;
    for (int i = 0; i < 4; i++) {
        const unsigned short* src = (const unsigned short*) (uintptr_t) __shfl_sync(CLIP_FULL_MASK, mine, i * 8 + group);
        r[i] = (unsigned) src[2 * quad] | ((unsigned) src[2 * quad + 1] << 16);
    }
#else
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : "r"(clip_shared_address(row)));
#endif
}

__device__ __forceinline__ void ldmatrix_x4_trans(unsigned r[4], const unsigned short* row) {
#ifdef CLIP_SIM
    unsigned long long mine = (unsigned long long) (uintptr_t) row;
    if (mine % 16 != 0) clip_sim_trap("ldmatrix.trans: row address not 16-byte aligned");
    int lane = threadIdx.x % CLIP_WARP, group = lane / 4, quad = lane % 4;
    for (int i = 0; i < 4; i++) {
        const unsigned short* lo = (const unsigned short*) (uintptr_t) __shfl_sync(CLIP_FULL_MASK, mine, i * 8 + 2 * quad);
        const unsigned short* hi = (const unsigned short*) (uintptr_t) __shfl_sync(CLIP_FULL_MASK, mine, i * 8 + 2 * quad + 1);
        r[i] = (unsigned) lo[group] | ((unsigned) hi[group] << 16);
    }
#else
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : "r"(clip_shared_address(row)));
#endif
}

// cp.async.cg.shared.global: 16 bytes global -> shared without passing through registers (L2 only);
// both addresses 16-byte aligned. cp_async_commit closes the thread's group of copies issued so far,
// cp_async_wait_all waits for all of them (a __syncthreads after it publishes them to the block).
// Under CLIP_SIM the copy happens at issue as four checked 32-bit loads and stores (a misaligned address traps).
__device__ __forceinline__ void cp_async_16(void* shared, const void* global) {
#ifdef CLIP_SIM
    if ((uintptr_t) shared % 16 != 0 || (uintptr_t) global % 16 != 0) clip_sim_trap("cp.async: address not 16-byte aligned");
    const unsigned* src = (const unsigned*) global;
    unsigned* dst = (unsigned*) shared;
    for (int i = 0; i < 4; i++) dst[i] = src[i];
#else
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" :: "r"(clip_shared_address(shared)), "l"(global) : "memory");
#endif
}

__device__ __forceinline__ void cp_async_commit() {
#ifndef CLIP_SIM
    asm volatile("cp.async.commit_group;\n" ::: "memory");
#endif
}

__device__ __forceinline__ void cp_async_wait_all() {
#ifndef CLIP_SIM
    asm volatile("cp.async.wait_group 0;\n" ::: "memory");
#endif
}

// ---- tiles and fragments built from the above ----

// Rows [first, first + rows) of a BF16 matrix (row stride `stride` elements), columns [0, cols), into a shared tile
// (padded rows, rowStride elements a row) at dst: columns cols..width and rows rows..padded are zeros. 16-byte
// cp.async copies where every row starts 16-byte aligned (cols, stride multiples of 8, base aligned), else scalar.
// Commits the copies as one group; the caller waits (cp_async_wait_all) and syncs.
__device__ __forceinline__ void load_tile_bf16(unsigned short* dst, const bf16* base, long stride, int first, int rows, int padded,
                                               int cols, int width, int rowStride) {
    if (cols % 8 == 0 && stride % 8 == 0 && (unsigned long long) base % 16 == 0) {
        int chunks = width / 8; // 16-byte chunks per shared row (width is a multiple of 16)
        for (int i = threadIdx.x; i < padded * chunks; i += blockDim.x) {
            int j = i / chunks, d = (i % chunks) * 8;
            unsigned short* s = dst + j * rowStride + d;
            if (j < rows && d < cols) {
                cp_async_16(s, base + (long)(first + j) * stride + d);
            } else {
                for (int e = 0; e < 8; e += 2) *(unsigned*)(s + e) = 0u;
            }
        }
    } else {
        for (int i = threadIdx.x; i < padded * width; i += blockDim.x) {
            int j = i / width, d = i % width;
            dst[j * rowStride + d] = j < rows && d < cols ? __bfloat16_as_ushort(base[(long)(first + j) * stride + d]) : (unsigned short)0;
        }
    }
    cp_async_commit();
}

// Lane addresses for ldmatrix over a 16 x 16 block at (row, col) of a shared tile of rowStride elements a row.
// ldm_rows_b: matrices (rows 0-7, cols 0-7), (0-7, 8-15), (8-15, 0-7), (8-15, 8-15); with ldmatrix_x4 the
// B fragments (n = the tile's rows, k = its columns) of two 8-row halves as {r[0], r[1]} and {r[2], r[3]}.
__device__ __forceinline__ const unsigned short* ldm_rows_b(const unsigned short* tile, int rowStride, int row, int col) {
    int lane = threadIdx.x % CLIP_WARP;
    return tile + (long)(row + (lane / 16) * 8 + lane % 8) * rowStride + col + ((lane / 8) & 1) * 8;
}

// ldm_rows_a: matrices (rows 0-7, cols 0-7), (8-15, 0-7), (0-7, 8-15), (8-15, 8-15); with ldmatrix_x4 the A
// fragment of the block (a[0..3]), with ldmatrix_x4_trans the B fragments (k = the tile's rows, n = its
// columns) of two 8-column blocks as {r[0], r[1]} and {r[2], r[3]}.
__device__ __forceinline__ const unsigned short* ldm_rows_a(const unsigned short* tile, int rowStride, int row, int col) {
    int lane = threadIdx.x % CLIP_WARP;
    return tile + (long)(row + ((lane / 8) & 1) * 8 + lane % 8) * rowStride + col + (lane / 16) * 8;
}

// The A fragment of a 16 x 16 block held as two m16n8 accumulators (16 rows x 2 x 8 columns), rounded to BF16.
__device__ __forceinline__ void pack_a_fragment(unsigned a[4], const float s[2][4]) {
    a[0] = pack_bf16x2(s[0][0], s[0][1]);
    a[1] = pack_bf16x2(s[0][2], s[0][3]);
    a[2] = pack_bf16x2(s[1][0], s[1][1]);
    a[3] = pack_bf16x2(s[1][2], s[1][3]);
}
