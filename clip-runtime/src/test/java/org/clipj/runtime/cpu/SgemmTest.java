package org.clipj.runtime.cpu;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Arrays;
import java.util.SplittableRandom;

import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/** Sgemm.sgemm against the plain triple loop on ragged shapes, every transpose, offsets and strides. */
class SgemmTest {

    private static ComputePool pool;

    @BeforeAll
    static void startPool() {
        pool = new ComputePool(2, "sgemm-test");
    }

    @AfterAll
    static void stopPool() {
        pool.close();
    }

    // (M, N, K): ragged against MR=8 (and its half), NR=32 (packed B: 48), MC=128, NC=512 and depth blocks of at most
    // 512, or 768 when M > MC (one block at 150x70x700, two uneven ones at 140x40x1100).
    private static final int[][] SHAPES = {
        {1, 1, 1}, {1, 7, 3}, {7, 1, 50}, {7, 13, 5}, {50, 63, 77}, {63, 65, 1}, {64, 97, 33},
        {65, 257, 197}, {77, 33, 257}, {130, 70, 300}, {197, 45, 63}, {257, 530, 70}, {20, 1100, 40},
        {9, 70, 1100}, {100, 300, 777}, {150, 70, 700}, {140, 40, 1100},
    };

    @Test
    void matchesReferenceForAllTransposesAndShapes() {
        SplittableRandom rng = new SplittableRandom(7);
        for (int[] shape : SHAPES) {
            for (int t = 0; t < 4; t++) {
                boolean transA = (t & 1) != 0, transB = (t & 2) != 0;
                check(rng, transA, transB, shape[0], shape[1], shape[2], 1f, 0f, pool);
                check(rng, transA, transB, shape[0], shape[1], shape[2], -0.75f, 0.5f, pool);
            }
        }
    }

    @Test
    void singleThreadedWithoutPoolMatchesReference() {
        SplittableRandom rng = new SplittableRandom(11);
        check(rng, false, false, 65, 257, 197, 1f, 1f, null);
        check(rng, true, true, 50, 63, 300, 2f, 0f, null);
    }

    @Test
    void clipBatchOneShapeMatchesReference() {
        check(new SplittableRandom(3), false, true, 50, 768, 768, 1f, 0f, pool);
    }

    @Test
    void packedBMatchesReferenceAndTheUnpackedProductBitForBit() {
        SplittableRandom rng = new SplittableRandom(13);
        for (int[] shape : SHAPES) {
            for (boolean transB : new boolean[] {false, true}) {
                int m = shape[0], n = shape[1], k = shape[2];
                int lda = k + 3, ldb = (transB ? k : n) + 1, ldc = n + 2, aOff = 5, bOff = 2, cOff = 1;
                float[] a = random(rng, aOff + m * lda), b = random(rng, bOff + (transB ? n : k) * ldb);
                float[] c = random(rng, cOff + m * ldc);
                float[] unpacked = c.clone(), expected = c.clone();
                Sgemm.PackedB packed = Sgemm.pack(transB, n, k, b, bOff, ldb);
                Sgemm.sgemm(m, n, k, 0.5f, a, aOff, lda, packed, 2f, c, cOff, ldc, pool);
                Sgemm.sgemm(false, transB, m, n, k, 0.5f, a, aOff, lda, b, bOff, ldb, 2f, unpacked, cOff, ldc, pool);
                Sgemm.sgemmReference(false, transB, m, n, k, 0.5f, a, aOff, lda, b, bOff, ldb, 2f, expected, cOff, ldc);
                String what = "packed " + (transB ? "B^T" : "B") + " m=" + m + " n=" + n + " k=" + k;
                assertArrayEquals(unpacked, c, what + ": differs from the unpacked product");
                for (int i = 0; i < m; i++) {
                    for (int j = 0; j < n; j++) {
                        int idx = cOff + i * ldc + j;
                        assertEquals(expected[idx], c[idx], 2e-6f * k + 1e-6f, what + " at (" + i + ", " + j + ")");
                    }
                }
            }
        }
    }

    @Test
    void packedBOfAnotherShapeIsRejected() {
        Sgemm.PackedB packed = Sgemm.pack(true, 40, 12, new float[40 * 12], 0, 12);
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> Sgemm.sgemm(2, 40, 13, 1f, new float[26], 0, 13, packed, 0f, new float[80], 0, 40, pool));
        assertTrue(e.getMessage().contains("(12, 40)"), e.getMessage());
        assertThrows(IllegalArgumentException.class, () -> Sgemm.pack(true, 40, 12, new float[40 * 12 - 1], 0, 12));
    }

    @Test
    void betaZeroIgnoresNaNInC() {
        int m = 9, n = 40, k = 12;
        SplittableRandom rng = new SplittableRandom(5);
        float[] a = random(rng, m * k), b = random(rng, k * n);
        float[] c = new float[m * n];
        Arrays.fill(c, Float.NaN);
        Sgemm.sgemm(false, false, m, n, k, 1f, a, 0, k, b, 0, n, 0f, c, 0, n, pool);
        for (float v : c) assertTrue(Float.isFinite(v), "beta == 0 must not read C");
    }

    @Test
    void zeroDepthOrZeroAlphaOnlyScalesC() {
        float[] c = {1f, 2f, Float.NaN, 4f};
        Sgemm.sgemm(false, false, 2, 2, 0, 1f, new float[0], 0, 0, new float[0], 0, 2, 0f, c, 0, 2, pool);
        assertArrayEquals(new float[] {0f, 0f, 0f, 0f}, c);
        float[] d = {1f, 2f, 3f, 4f};
        float[] a = {Float.NaN, 1f, 1f, 1f};
        Sgemm.sgemm(false, false, 2, 2, 2, 0f, a, 0, 2, a, 0, 2, 2f, d, 0, 2, pool);
        assertArrayEquals(new float[] {2f, 4f, 6f, 8f}, d);
    }

    @Test
    void undersizedArraysAreRejectedBeforeWriting() {
        float[] a = new float[6], b = new float[6], c = new float[3];
        Arrays.fill(c, 9f);
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> Sgemm.sgemm(false, false, 2, 2, 3, 1f, a, 0, 3, b, 0, 2, 0f, c, 0, 2, pool));
        assertTrue(e.getMessage().contains("C"), e.getMessage());
        assertArrayEquals(new float[] {9f, 9f, 9f}, c);
        assertThrows(IllegalArgumentException.class,
                () -> Sgemm.sgemm(true, false, 2, 2, 3, 1f, a, 1, 2, b, 0, 2, 0f, new float[4], 0, 2, pool));
    }

    /** B^T packing: the register transpose (L == 16) and the generic block transpose (other L) against a plain one. */
    @Test
    void registerAndBlockTransposesMatchThePlainTranspose() {
        int l = Sgemm.L, ld = l + 5, outLd = l + 3;
        float[] x = random(new SplittableRandom(17), 2 + l * ld);
        float[] block = new float[l * l];
        for (int r = 0; r < l; r++) System.arraycopy(x, 2 + r * ld, block, r * l, l);
        Sgemm.transposeBlock(block);
        for (int r = 0; r < l; r++) {
            for (int col = 0; col < l; col++) assertEquals(x[2 + r * ld + col], block[col * l + r], "block (" + r + ", " + col + ")");
        }
        if (l != 16) return;   // transpose16 is used only where a vector holds 16 floats
        float[] y = new float[1 + l * outLd];
        Sgemm.transpose16(x, 2, ld, y, 1, outLd);
        for (int r = 0; r < l; r++) {
            for (int col = 0; col < l; col++) assertEquals(x[2 + r * ld + col], y[1 + col * outLd + r], "registers (" + r + ", " + col + ")");
        }
    }

    /** Random A, B, C with padded row strides and offsets; compares sgemm with sgemmReference. */
    private static void check(SplittableRandom rng, boolean transA, boolean transB, int m, int n, int k,
                              float alpha, float beta, ComputePool p) {
        int lda = (transA ? m : k) + 3, ldb = (transB ? k : n) + 1, ldc = n + 2;
        int aOff = 5, bOff = 2, cOff = 1;
        float[] a = random(rng, aOff + (transA ? k : m) * lda);
        float[] b = random(rng, bOff + (transB ? n : k) * ldb);
        float[] c = random(rng, cOff + m * ldc);
        if (beta == 0f) Arrays.fill(c, Float.NaN);
        float[] expected = c.clone();
        Sgemm.sgemm(transA, transB, m, n, k, alpha, a, aOff, lda, b, bOff, ldb, beta, c, cOff, ldc, p);
        Sgemm.sgemmReference(transA, transB, m, n, k, alpha, a, aOff, lda, b, bOff, ldb, beta, expected, cOff, ldc);
        String what = (transA ? "A^T" : "A") + (transB ? " B^T" : " B") + " m=" + m + " n=" + n + " k=" + k
                + " alpha=" + alpha + " beta=" + beta;
        float tolerance = 2e-6f * k + 1e-6f;
        for (int i = 0; i < m; i++) {
            for (int j = 0; j < ldc; j++) {
                int idx = cOff + i * ldc + j;
                if (j < n) assertEquals(expected[idx], c[idx], tolerance, what + " at (" + i + ", " + j + ")");
                else assertEquals(Float.floatToRawIntBits(expected[idx]), Float.floatToRawIntBits(c[idx]),
                        what + ": padding past column n was written at (" + i + ", " + j + ")");
            }
        }
        assertEquals(Float.floatToRawIntBits(expected[0]), Float.floatToRawIntBits(c[0]), what + ": wrote before cOff");
    }

    private static float[] random(SplittableRandom rng, int length) {
        float[] x = new float[length];
        for (int i = 0; i < length; i++) x[i] = (float) (rng.nextDouble() * 2 - 1);
        return x;
    }
}
