// sim_mma.cu: the tensor-core helpers of clip_mma.cuh as the simulator emulates them (org.clipj.kernels.SimMmaTest);
// compiled into target/sim-test/libclipkernels_simtest.so only.
#include "clip_mma.cuh"

// One warp. tile (16, 24) 16-bit values reach shared memory by cp_async_16 (3 chunks per row); lane l then gives
// row address (row l % 16, column 8 * (l / 16) + shift) to ldmatrix_x4 and ldmatrix_x4_trans and writes its
// registers: out[l * 8 + i] = r[i], out[l * 8 + 4 + i] = the transposed load's r[i]. shift != 0 misaligns the rows.
extern "C" __global__ void mma_ldmatrix_layout(unsigned* out, const unsigned short* tile, int shift) {
    extern __shared__ unsigned short rows[];
    for (int i = threadIdx.x; i < 16 * 3; i += blockDim.x) cp_async_16(rows + i * 8, tile + i * 8);
    cp_async_commit();
    cp_async_wait_all();
    __syncthreads();
    int lane = threadIdx.x % CLIP_WARP;
    const unsigned short* row = rows + (lane % 16) * 24 + 8 * (lane / 16) + shift;
    unsigned r[4], rt[4];
    ldmatrix_x4(r, row);
    ldmatrix_x4_trans(rt, row);
    for (int i = 0; i < 4; i++) {
        out[lane * 8 + i] = r[i];
        out[lane * 8 + 4 + i] = rt[i];
    }
}
