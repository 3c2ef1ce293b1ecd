package org.clipj.runtime.cpu;

import static org.clipj.runtime.cpu.Sgemm.MR;
import static org.clipj.runtime.cpu.Sgemm.NR;
import static org.clipj.runtime.cpu.Sgemm.PACKED_NR;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorMask;
import jdk.incubator.vector.VectorSpecies;

/**
 * {@link Sgemm}'s register kernels: the MR x NR micro-kernel (16 accumulators), the same with B
 * packing fused in, half- and quarter-height kernels for ragged last panels, the MR x PACKED_NR
 * kernels for pre-packed weights (24 accumulators, with their ragged variants), and the masked
 * update of C. Every inner-loop stride is a constant, so C2 hoists every bounds check out of the loops.
 */
final class SgemmKernels {
    private static final VectorSpecies<Float> S = FloatVector.SPECIES_PREFERRED;
    private static final int L = S.length();

    private SgemmKernels() {}

    /**
     * The MR x NR register tile: acc(MR, NR) = sum over p of A[r, p] * B[p, :], with A[r, p] at
     * a[aIdx + p * MR + r] and B[p, :] at b[bIdx + p * NR] (packed panels), then
     * C[0:rows, 0:cols] = alpha * acc + blockBeta * C (C not read when blockBeta == 0).
     */
    static void microKernel(int kc, float[] a, int aIdx, float[] b, int bIdx,
                                    float[] tile, // (MR, NR) scratch
                                    float[] c, int cIdx, int ldc, int rows, int cols, float alpha, float blockBeta) {
        FloatVector z = FloatVector.zero(S);
        FloatVector c00 = z, c01 = z, c10 = z, c11 = z, c20 = z, c21 = z, c30 = z, c31 = z;
        FloatVector c40 = z, c41 = z, c50 = z, c51 = z, c60 = z, c61 = z, c70 = z, c71 = z;
        for (int p = 0; p < kc; p++) {
            int ap = aIdx + p * MR, bp = bIdx + p * NR;
            FloatVector b0 = FloatVector.fromArray(S, b, bp);
            FloatVector b1 = FloatVector.fromArray(S, b, bp + L);
            FloatVector av = FloatVector.broadcast(S, a[ap + 0]);
            c00 = av.fma(b0, c00); c01 = av.fma(b1, c01);
            av = FloatVector.broadcast(S, a[ap + 1]);
            c10 = av.fma(b0, c10); c11 = av.fma(b1, c11);
            av = FloatVector.broadcast(S, a[ap + 2]);
            c20 = av.fma(b0, c20); c21 = av.fma(b1, c21);
            av = FloatVector.broadcast(S, a[ap + 3]);
            c30 = av.fma(b0, c30); c31 = av.fma(b1, c31);
            av = FloatVector.broadcast(S, a[ap + 4]);
            c40 = av.fma(b0, c40); c41 = av.fma(b1, c41);
            av = FloatVector.broadcast(S, a[ap + 5]);
            c50 = av.fma(b0, c50); c51 = av.fma(b1, c51);
            av = FloatVector.broadcast(S, a[ap + 6]);
            c60 = av.fma(b0, c60); c61 = av.fma(b1, c61);
            av = FloatVector.broadcast(S, a[ap + 7]);
            c70 = av.fma(b0, c70); c71 = av.fma(b1, c71);
        }
        // Spilling the tile to a scratch array keeps the accumulators unboxed: handing them to
        // the C update directly makes C2 box them inside the loop.
        c00.intoArray(tile, 0); c01.intoArray(tile, L);
        c10.intoArray(tile, NR); c11.intoArray(tile, NR + L);
        c20.intoArray(tile, 2 * NR); c21.intoArray(tile, 2 * NR + L);
        c30.intoArray(tile, 3 * NR); c31.intoArray(tile, 3 * NR + L);
        c40.intoArray(tile, 4 * NR); c41.intoArray(tile, 4 * NR + L);
        c50.intoArray(tile, 5 * NR); c51.intoArray(tile, 5 * NR + L);
        c60.intoArray(tile, 6 * NR); c61.intoArray(tile, 6 * NR + L);
        c70.intoArray(tile, 7 * NR); c71.intoArray(tile, 7 * NR + L);
        updateC(tile, NR, c, cIdx, ldc, rows, cols, alpha, blockBeta);
    }

    /** microKernel that also copies the B panel it reads, B[p, :] from bSrc[bSrcIdx + p * ldb], to b[bIdx + p * NR]. */
    static void microKernelPackingB(int kc, float[] a, int aIdx, float[] bSrc, int bSrcIdx, int ldb, float[] b, int bIdx,
                                    float[] tile, // (MR, NR) scratch
                                    float[] c, int cIdx, int ldc, int rows, int cols, float alpha, float blockBeta) {
        FloatVector z = FloatVector.zero(S);
        FloatVector c00 = z, c01 = z, c10 = z, c11 = z, c20 = z, c21 = z, c30 = z, c31 = z;
        FloatVector c40 = z, c41 = z, c50 = z, c51 = z, c60 = z, c61 = z, c70 = z, c71 = z;
        for (int p = 0; p < kc; p++) {
            int ap = aIdx + p * MR, bp = bIdx + p * NR;
            int src = bSrcIdx + p * ldb;
            FloatVector b0 = FloatVector.fromArray(S, bSrc, src);
            FloatVector b1 = FloatVector.fromArray(S, bSrc, src + L);
            b0.intoArray(b, bp);
            b1.intoArray(b, bp + L);
            FloatVector av = FloatVector.broadcast(S, a[ap + 0]);
            c00 = av.fma(b0, c00); c01 = av.fma(b1, c01);
            av = FloatVector.broadcast(S, a[ap + 1]);
            c10 = av.fma(b0, c10); c11 = av.fma(b1, c11);
            av = FloatVector.broadcast(S, a[ap + 2]);
            c20 = av.fma(b0, c20); c21 = av.fma(b1, c21);
            av = FloatVector.broadcast(S, a[ap + 3]);
            c30 = av.fma(b0, c30); c31 = av.fma(b1, c31);
            av = FloatVector.broadcast(S, a[ap + 4]);
            c40 = av.fma(b0, c40); c41 = av.fma(b1, c41);
            av = FloatVector.broadcast(S, a[ap + 5]);
            c50 = av.fma(b0, c50); c51 = av.fma(b1, c51);
            av = FloatVector.broadcast(S, a[ap + 6]);
            c60 = av.fma(b0, c60); c61 = av.fma(b1, c61);
            av = FloatVector.broadcast(S, a[ap + 7]);
            c70 = av.fma(b0, c70); c71 = av.fma(b1, c71);
        }
        c00.intoArray(tile, 0); c01.intoArray(tile, L);
        c10.intoArray(tile, NR); c11.intoArray(tile, NR + L);
        c20.intoArray(tile, 2 * NR); c21.intoArray(tile, 2 * NR + L);
        c30.intoArray(tile, 3 * NR); c31.intoArray(tile, 3 * NR + L);
        c40.intoArray(tile, 4 * NR); c41.intoArray(tile, 4 * NR + L);
        c50.intoArray(tile, 5 * NR); c51.intoArray(tile, 5 * NR + L);
        c60.intoArray(tile, 6 * NR); c61.intoArray(tile, 6 * NR + L);
        c70.intoArray(tile, 7 * NR); c71.intoArray(tile, 7 * NR + L);
        updateC(tile, NR, c, cIdx, ldc, rows, cols, alpha, blockBeta);
    }

    /**
     * The four-row tile: the whole micro-kernel when MR == 4 (16 vector registers), else a ragged last
     * panel of at most four rows at half the FMAs.
     */
    static void microKernel4Rows(int kc, float[] a, int aIdx, float[] b, int bIdx,
                                        float[] tile, // (MR, NR) scratch, first 4 rows used
                                        float[] c, int cIdx, int ldc, int rows, int cols, float alpha, float blockBeta) {
        FloatVector z = FloatVector.zero(S);
        FloatVector c00 = z, c01 = z, c10 = z, c11 = z, c20 = z, c21 = z, c30 = z, c31 = z;
        for (int p = 0; p < kc; p++) {
            int ap = aIdx + p * MR, bp = bIdx + p * NR;
            FloatVector b0 = FloatVector.fromArray(S, b, bp);
            FloatVector b1 = FloatVector.fromArray(S, b, bp + L);
            FloatVector av = FloatVector.broadcast(S, a[ap + 0]);
            c00 = av.fma(b0, c00); c01 = av.fma(b1, c01);
            av = FloatVector.broadcast(S, a[ap + 1]);
            c10 = av.fma(b0, c10); c11 = av.fma(b1, c11);
            av = FloatVector.broadcast(S, a[ap + 2]);
            c20 = av.fma(b0, c20); c21 = av.fma(b1, c21);
            av = FloatVector.broadcast(S, a[ap + 3]);
            c30 = av.fma(b0, c30); c31 = av.fma(b1, c31);
        }
        c00.intoArray(tile, 0); c01.intoArray(tile, L);
        c10.intoArray(tile, NR); c11.intoArray(tile, NR + L);
        c20.intoArray(tile, 2 * NR); c21.intoArray(tile, 2 * NR + L);
        c30.intoArray(tile, 3 * NR); c31.intoArray(tile, 3 * NR + L);
        updateC(tile, NR, c, cIdx, ldc, rows, cols, alpha, blockBeta);
    }

    /** microKernel for a ragged last panel of at most two rows (m = 50 ends in 2 rows). */
    static void microKernel2Rows(int kc, float[] a, int aIdx, float[] b, int bIdx,
                                           float[] tile, // (MR, NR) scratch, first 2 rows used
                                           float[] c, int cIdx, int ldc, int rows, int cols, float alpha, float blockBeta) {
        FloatVector z = FloatVector.zero(S);
        FloatVector c00 = z, c01 = z, c10 = z, c11 = z;
        for (int p = 0; p < kc; p++) {
            int ap = aIdx + p * MR, bp = bIdx + p * NR;
            FloatVector b0 = FloatVector.fromArray(S, b, bp);
            FloatVector b1 = FloatVector.fromArray(S, b, bp + L);
            FloatVector av = FloatVector.broadcast(S, a[ap + 0]);
            c00 = av.fma(b0, c00); c01 = av.fma(b1, c01);
            av = FloatVector.broadcast(S, a[ap + 1]);
            c10 = av.fma(b0, c10); c11 = av.fma(b1, c11);
        }
        c00.intoArray(tile, 0); c01.intoArray(tile, L);
        c10.intoArray(tile, NR); c11.intoArray(tile, NR + L);
        updateC(tile, NR, c, cIdx, ldc, rows, cols, alpha, blockBeta);
    }

    /** microKernel on a three-vector-wide B panel (packed weights on 32-register machines): 24 accumulators, B[p, :] at b[bIdx + p * PACKED_NR]. */
    static void wideKernel(int kc, float[] a, int aIdx, float[] b, int bIdx,
                                  float[] tile, // (MR, PACKED_NR) scratch
                                  float[] c, int cIdx, int ldc, int rows, int cols, float alpha, float blockBeta) {
        FloatVector z = FloatVector.zero(S);
        FloatVector c00 = z, c01 = z, c02 = z, c10 = z, c11 = z, c12 = z, c20 = z, c21 = z, c22 = z, c30 = z, c31 = z, c32 = z;
        FloatVector c40 = z, c41 = z, c42 = z, c50 = z, c51 = z, c52 = z, c60 = z, c61 = z, c62 = z, c70 = z, c71 = z, c72 = z;
        for (int p = 0; p < kc; p++) {
            int ap = aIdx + p * MR, bp = bIdx + p * PACKED_NR;
            FloatVector b0 = FloatVector.fromArray(S, b, bp);
            FloatVector b1 = FloatVector.fromArray(S, b, bp + L);
            FloatVector b2 = FloatVector.fromArray(S, b, bp + 2 * L);
            FloatVector av = FloatVector.broadcast(S, a[ap + 0]);
            c00 = av.fma(b0, c00); c01 = av.fma(b1, c01); c02 = av.fma(b2, c02);
            av = FloatVector.broadcast(S, a[ap + 1]);
            c10 = av.fma(b0, c10); c11 = av.fma(b1, c11); c12 = av.fma(b2, c12);
            av = FloatVector.broadcast(S, a[ap + 2]);
            c20 = av.fma(b0, c20); c21 = av.fma(b1, c21); c22 = av.fma(b2, c22);
            av = FloatVector.broadcast(S, a[ap + 3]);
            c30 = av.fma(b0, c30); c31 = av.fma(b1, c31); c32 = av.fma(b2, c32);
            av = FloatVector.broadcast(S, a[ap + 4]);
            c40 = av.fma(b0, c40); c41 = av.fma(b1, c41); c42 = av.fma(b2, c42);
            av = FloatVector.broadcast(S, a[ap + 5]);
            c50 = av.fma(b0, c50); c51 = av.fma(b1, c51); c52 = av.fma(b2, c52);
            av = FloatVector.broadcast(S, a[ap + 6]);
            c60 = av.fma(b0, c60); c61 = av.fma(b1, c61); c62 = av.fma(b2, c62);
            av = FloatVector.broadcast(S, a[ap + 7]);
            c70 = av.fma(b0, c70); c71 = av.fma(b1, c71); c72 = av.fma(b2, c72);
        }
        c00.intoArray(tile, 0); c01.intoArray(tile, L); c02.intoArray(tile, 2 * L);
        c10.intoArray(tile, PACKED_NR); c11.intoArray(tile, PACKED_NR + L); c12.intoArray(tile, PACKED_NR + 2 * L);
        c20.intoArray(tile, 2 * PACKED_NR); c21.intoArray(tile, 2 * PACKED_NR + L); c22.intoArray(tile, 2 * PACKED_NR + 2 * L);
        c30.intoArray(tile, 3 * PACKED_NR); c31.intoArray(tile, 3 * PACKED_NR + L); c32.intoArray(tile, 3 * PACKED_NR + 2 * L);
        c40.intoArray(tile, 4 * PACKED_NR); c41.intoArray(tile, 4 * PACKED_NR + L); c42.intoArray(tile, 4 * PACKED_NR + 2 * L);
        c50.intoArray(tile, 5 * PACKED_NR); c51.intoArray(tile, 5 * PACKED_NR + L); c52.intoArray(tile, 5 * PACKED_NR + 2 * L);
        c60.intoArray(tile, 6 * PACKED_NR); c61.intoArray(tile, 6 * PACKED_NR + L); c62.intoArray(tile, 6 * PACKED_NR + 2 * L);
        c70.intoArray(tile, 7 * PACKED_NR); c71.intoArray(tile, 7 * PACKED_NR + L); c72.intoArray(tile, 7 * PACKED_NR + 2 * L);
        updateC(tile, PACKED_NR, c, cIdx, ldc, rows, cols, alpha, blockBeta);
    }

    /** wideKernel for a ragged last panel of at most four rows. */
    static void wideKernel4Rows(int kc, float[] a, int aIdx, float[] b, int bIdx,
                                  float[] tile, // (MR, PACKED_NR) scratch, first 4 rows used
                                  float[] c, int cIdx, int ldc, int rows, int cols, float alpha, float blockBeta) {
        FloatVector z = FloatVector.zero(S);
        FloatVector c00 = z, c01 = z, c02 = z, c10 = z, c11 = z, c12 = z, c20 = z, c21 = z, c22 = z, c30 = z, c31 = z, c32 = z;
        for (int p = 0; p < kc; p++) {
            int ap = aIdx + p * MR, bp = bIdx + p * PACKED_NR;
            FloatVector b0 = FloatVector.fromArray(S, b, bp);
            FloatVector b1 = FloatVector.fromArray(S, b, bp + L);
            FloatVector b2 = FloatVector.fromArray(S, b, bp + 2 * L);
            FloatVector av = FloatVector.broadcast(S, a[ap + 0]);
            c00 = av.fma(b0, c00); c01 = av.fma(b1, c01); c02 = av.fma(b2, c02);
            av = FloatVector.broadcast(S, a[ap + 1]);
            c10 = av.fma(b0, c10); c11 = av.fma(b1, c11); c12 = av.fma(b2, c12);
            av = FloatVector.broadcast(S, a[ap + 2]);
            c20 = av.fma(b0, c20); c21 = av.fma(b1, c21); c22 = av.fma(b2, c22);
            av = FloatVector.broadcast(S, a[ap + 3]);
            c30 = av.fma(b0, c30); c31 = av.fma(b1, c31); c32 = av.fma(b2, c32);
        }
        c00.intoArray(tile, 0); c01.intoArray(tile, L); c02.intoArray(tile, 2 * L);
        c10.intoArray(tile, PACKED_NR); c11.intoArray(tile, PACKED_NR + L); c12.intoArray(tile, PACKED_NR + 2 * L);
        c20.intoArray(tile, 2 * PACKED_NR); c21.intoArray(tile, 2 * PACKED_NR + L); c22.intoArray(tile, 2 * PACKED_NR + 2 * L);
        c30.intoArray(tile, 3 * PACKED_NR); c31.intoArray(tile, 3 * PACKED_NR + L); c32.intoArray(tile, 3 * PACKED_NR + 2 * L);
        updateC(tile, PACKED_NR, c, cIdx, ldc, rows, cols, alpha, blockBeta);
    }

    /** wideKernel for a ragged last panel of at most two rows. */
    static void wideKernel2Rows(int kc, float[] a, int aIdx, float[] b, int bIdx,
                                  float[] tile, // (MR, PACKED_NR) scratch, first 2 rows used
                                  float[] c, int cIdx, int ldc, int rows, int cols, float alpha, float blockBeta) {
        FloatVector z = FloatVector.zero(S);
        FloatVector c00 = z, c01 = z, c02 = z, c10 = z, c11 = z, c12 = z;
        for (int p = 0; p < kc; p++) {
            int ap = aIdx + p * MR, bp = bIdx + p * PACKED_NR;
            FloatVector b0 = FloatVector.fromArray(S, b, bp);
            FloatVector b1 = FloatVector.fromArray(S, b, bp + L);
            FloatVector b2 = FloatVector.fromArray(S, b, bp + 2 * L);
            FloatVector av = FloatVector.broadcast(S, a[ap + 0]);
            c00 = av.fma(b0, c00); c01 = av.fma(b1, c01); c02 = av.fma(b2, c02);
            av = FloatVector.broadcast(S, a[ap + 1]);
            c10 = av.fma(b0, c10); c11 = av.fma(b1, c11); c12 = av.fma(b2, c12);
        }
        c00.intoArray(tile, 0); c01.intoArray(tile, L); c02.intoArray(tile, 2 * L);
        c10.intoArray(tile, PACKED_NR); c11.intoArray(tile, PACKED_NR + L); c12.intoArray(tile, PACKED_NR + 2 * L);
        updateC(tile, PACKED_NR, c, cIdx, ldc, rows, cols, alpha, blockBeta);
    }

    /**
     * C[r, 0:cols] = alpha * tile[r, 0:cols] + blockBeta * C[r, 0:cols] for r < rows (C not read when
     * blockBeta == 0); the tile's rows are `width` apart, width a multiple of L.
     */
    private static void updateC(float[] tile, int width, float[] c, int cIdx, int ldc, int rows, int cols, float alpha, float blockBeta) {
        if (cols == width) {
            for (int r = 0; r < rows; r++) {
                int row = cIdx + r * ldc;
                for (int j = 0; j < width; j += L) {
                    FloatVector out = FloatVector.fromArray(S, tile, r * width + j).mul(alpha);
                    if (blockBeta != 0f) out = FloatVector.fromArray(S, c, row + j).fma(FloatVector.broadcast(S, blockBeta), out);
                    out.intoArray(c, row + j);
                }
            }
            return;
        }
        for (int r = 0; r < rows; r++) {
            int row = cIdx + r * ldc;
            for (int j = 0; j < cols; j += L) {
                VectorMask<Float> mask = S.indexInRange(j, cols);
                FloatVector out = FloatVector.fromArray(S, tile, r * width + j).mul(alpha);
                if (blockBeta != 0f) out = FloatVector.fromArray(S, c, row + j, mask).fma(FloatVector.broadcast(S, blockBeta), out);
                out.intoArray(c, row + j, mask);
            }
        }
    }
}
