package org.clipj.runtime.cpu;

import static org.clipj.runtime.cpu.OpTesting.FAST;
import static org.clipj.runtime.cpu.OpTesting.SCALAR;
import static org.clipj.runtime.cpu.OpTesting.assertClose;
import static org.clipj.runtime.cpu.OpTesting.random;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.SplittableRandom;

import org.clipj.runtime.DType;
import org.clipj.runtime.Tensor;
import org.junit.jupiter.api.Test;

/** The batched transpose, overwriting and accumulating. */
class TransposeOpsTest {

    @Test
    void transposeMatchesScalarAndAccumulates() {
        SplittableRandom rng = new SplittableRandom(7);
        int[][] shapes = {{3, 50, 77}, {1, 257, 65}, {2, 1, 7}, {4, 63, 33}};
        for (int[] s : shapes) {
            Tensor x = random(rng, 1f, s), init = random(rng, 1f, s[0], s[2], s[1]);
            Tensor a = init.copy(), b = init.copy(), c = init.copy();
            SCALAR.transpose(a, x, true);
            FAST.transpose(b, x, true);
            FAST.transpose(c, x, false);
            assertClose("transpose accumulate", a, b, 0, 0);
            int i = s[1] - 1, j = s[2] / 2, bi = s[0] - 1;
            assertEquals(x.f32()[(bi * s[1] + i) * s[2] + j], c.f32()[(bi * s[2] + j) * s[1] + i]);
            assertEquals(x.f32()[(bi * s[1] + i) * s[2] + j] + init.f32()[(bi * s[2] + j) * s[1] + i], b.f32()[(bi * s[2] + j) * s[1] + i], 1e-6);
        }
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> FAST.transpose(Tensor.zeros(DType.F32, 2, 3, 4), Tensor.zeros(DType.F32, 2, 3, 4), false));
        assertTrue(e.getMessage().contains("transpose") && e.getMessage().contains("[2, 4, 3]"), e.getMessage());
    }
}
