package org.clipj.runtime.cpu;

import static org.clipj.runtime.cpu.OpTesting.FAST;
import static org.clipj.runtime.cpu.OpTesting.ROWS;
import static org.clipj.runtime.cpu.OpTesting.SCALAR;
import static org.clipj.runtime.cpu.OpTesting.WIDTHS;
import static org.clipj.runtime.cpu.OpTesting.assertClose;
import static org.clipj.runtime.cpu.OpTesting.random;
import static org.junit.jupiter.api.Assertions.assertEquals;

import java.util.SplittableRandom;

import org.clipj.runtime.Backend;
import org.clipj.runtime.DType;
import org.clipj.runtime.Tensor;
import org.junit.jupiter.api.Test;

/** The softmax family: softmax over the last dim, fast vs scalar on ragged shapes, and its edge cases. */
class SoftmaxOpsTest {

    @Test
    void fastMatchesScalarOnRaggedShapes() {
        SplittableRandom rng = new SplittableRandom(11);
        for (int rows : ROWS) {
            for (int width : WIDTHS) {
                Tensor x = random(rng, 20f, rows, width);
                Tensor expected = Tensor.zeros(DType.F32, rows, width), actual = Tensor.zeros(DType.F32, rows, width);
                SCALAR.softmaxForward(expected, x);
                FAST.softmaxForward(actual, x);
                assertClose("softmaxForward " + rows + "x" + width, expected, actual, 0, 1e-6);
            }
        }
    }

    @Test
    void softmaxRowsSumToOneAndSurviveLargeLogits() {
        Tensor x = Tensor.of(new float[] {1000f, 1001f, 1002f, -1e30f, 0f, 0f}, 2, 3);
        for (Backend be : new Backend[] {SCALAR, FAST}) {
            Tensor out = Tensor.zeros(DType.F32, 2, 3);
            be.softmaxForward(out, x);
            float[] o = out.f32();
            assertEquals(1.0, o[0] + o[1] + o[2], 1e-6);
            assertEquals(Math.exp(-2) / (1 + Math.exp(-1) + Math.exp(-2)), o[0], 1e-6);
            assertEquals(0f, o[3]);
            assertEquals(0.5f, o[4], 1e-7);
        }
    }
}
