package org.clipj.runtime.cpu;

import static org.clipj.runtime.cpu.OpTesting.FAST;
import static org.clipj.runtime.cpu.OpTesting.SCALAR;
import static org.clipj.runtime.cpu.OpTesting.random;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.SplittableRandom;

import org.clipj.runtime.Backend;
import org.clipj.runtime.DType;
import org.clipj.runtime.Tensor;
import org.junit.jupiter.api.Test;

/**
 * The reduce family: sum of squares (in double) and the non-finite check, fast vs scalar, at ragged sizes; the
 * argmax of each row of token ids against written-out answers.
 */
class ReduceOpsTest {

    @Test
    void rowArgmaxIsTheFirstLargestPosition() {
        Tensor ids = Tensor.of(new int[] {49406, 320, 1125, 49407, 0, 0, // EOT in the middle, padding after
                7, 7, 7, 7, 7, 7, // ties: the first
                Integer.MIN_VALUE, Integer.MIN_VALUE, -3, Integer.MIN_VALUE, -3, -9}, 3, 6);
        Tensor index = Tensor.zeros(DType.I32, 3);
        SCALAR.rowArgmax(index, ids);
        assertArrayEquals(new int[] {3, 0, 2}, index.i32());
        Tensor one = Tensor.zeros(DType.I32, 2);
        FAST.rowArgmax(one, Tensor.of(new int[] {Integer.MIN_VALUE, 5}, 2, 1));
        assertArrayEquals(new int[] {0, 0}, one.i32());
    }

    @Test
    void sumOfSquaresAndNonFinite() {
        SplittableRandom rng = new SplittableRandom(4);
        for (int n : new int[] {1, 7, 65, 100_003}) {
            Tensor t = random(rng, 2f, n);
            double expected = 0;
            for (float f : t.f32()) expected += (double) f * f;
            for (Backend be : new Backend[] {SCALAR, FAST}) {
                assertEquals(expected, be.sumOfSquares(t), 1e-6 * expected);
                assertFalse(be.hasNonFinite(t));
                for (float bad : new float[] {Float.NaN, Float.POSITIVE_INFINITY, Float.NEGATIVE_INFINITY}) {
                    Tensor u = t.copy();
                    u.f32()[n - 1] = bad;
                    assertTrue(be.hasNonFinite(u), "non-finite at the tail, n=" + n);
                    Tensor w = t.copy();
                    w.f32()[n / 2] = bad;
                    assertTrue(be.hasNonFinite(w), "non-finite in the middle, n=" + n);
                }
            }
        }
        Tensor max = Tensor.of(new float[] {Float.MAX_VALUE, -Float.MAX_VALUE}, 2);
        assertFalse(FAST.hasNonFinite(max));
        assertEquals(2.0 * Float.MAX_VALUE * (double) Float.MAX_VALUE, FAST.sumOfSquares(max), 1e60);
    }
}
