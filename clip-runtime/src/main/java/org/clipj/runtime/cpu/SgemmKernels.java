package org.clipj.runtime.cpu;

import static org.clipj.runtime.cpu.Sgemm.MR;
import static org.clipj.runtime.cpu.Sgemm.NR;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorMask;
import jdk.incubator.vector.VectorSpecies;

/**
 * {@link Sgemm}'s register kernels: the MR x NR micro-kernel (16 accumulators), the same with B
 * packing fused in, half- and quarter-height kernels for ragged last panels, and the masked update
 * of C. Every inner-loop stride is a constant, so C2 hoists every bounds check out of the loops.
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
        updateC(tile, c, cIdx, ldc, rows, cols, alpha, blockBeta);
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
        updateC(tile, c, cIdx, ldc, rows, cols, alpha, blockBeta);
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
        updateC(tile, c, cIdx, ldc, rows, cols, alpha, blockBeta);
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
        updateC(tile, c, cIdx, ldc, rows, cols, alpha, blockBeta);
    }

    /** C[r, 0:cols] = alpha * tile[r, 0:cols] + blockBeta * C[r, 0:cols] for r < rows (C not read when blockBeta == 0). */
    private static void updateC(float[] tile, float[] c, int cIdx, int ldc, int rows, int cols, float alpha, float blockBeta) {
        if (cols == NR) {
            for (int r = 0; r < rows; r++) {
                int row = cIdx + r * ldc;
                FloatVector out0 = FloatVector.fromArray(S, tile, r * NR).mul(alpha);
                FloatVector out1 = FloatVector.fromArray(S, tile, r * NR + L).mul(alpha);
                if (blockBeta != 0f) {
                    FloatVector vb = FloatVector.broadcast(S, blockBeta);
                    out0 = FloatVector.fromArray(S, c, row).fma(vb, out0);
                    out1 = FloatVector.fromArray(S, c, row + L).fma(vb, out1);
                }
                out0.intoArray(c, row);
                out1.intoArray(c, row + L);
            }
            return;
        }
        for (int r = 0; r < rows; r++) {
            int row = cIdx + r * ldc;
            for (int j = 0; j < cols; j += L) {
                VectorMask<Float> mask = S.indexInRange(j, cols);
                FloatVector out = FloatVector.fromArray(S, tile, r * NR + j).mul(alpha);
                if (blockBeta != 0f) out = FloatVector.fromArray(S, c, row + j, mask).fma(FloatVector.broadcast(S, blockBeta), out);
                out.intoArray(c, row + j, mask);
            }
        }
    }
}
