package org.clipj.runtime.cpu;

import static org.clipj.runtime.cpu.OpTesting.FAST;
import static org.clipj.runtime.cpu.OpTesting.ROWS;
import static org.clipj.runtime.cpu.OpTesting.SCALAR;
import static org.clipj.runtime.cpu.OpTesting.WIDTHS;
import static org.clipj.runtime.cpu.OpTesting.assertClose;
import static org.clipj.runtime.cpu.OpTesting.assertGradient;
import static org.clipj.runtime.cpu.OpTesting.project;
import static org.clipj.runtime.cpu.OpTesting.random;
import static org.junit.jupiter.api.Assertions.assertEquals;

import java.util.SplittableRandom;

import org.clipj.runtime.Backend;
import org.clipj.runtime.DType;
import org.clipj.runtime.Tensor;
import org.junit.jupiter.api.Test;

/** Row-wise L2 normalization, fast vs scalar and finite differences. */
class NormalizeOpsTest {

    @Test
    void l2NormalizeFastMatchesScalar() {
        SplittableRandom rng = new SplittableRandom(4);
        for (int rows : ROWS) {
            for (int d : WIDTHS) {
                Tensor x = random(rng, 3f, rows, d), g = random(rng, 1f, rows, d);
                Tensor[] r = new Tensor[6];
                int k = 0;
                for (Backend be : new Backend[] {SCALAR, FAST}) {
                    Tensor out = Tensor.zeros(DType.F32, rows, d), norms = Tensor.zeros(DType.F32, rows), dx = Tensor.zeros(DType.F32, rows, d);
                    be.l2NormalizeForward(out, norms, x);
                    be.l2NormalizeBackward(dx, g, out, norms);
                    r[k++] = out;
                    r[k++] = norms;
                    r[k++] = dx;
                }
                for (int i = 0; i < 3; i++) assertClose("l2norm " + rows + "x" + d + " result " + i, r[i], r[i + 3], 1e-6, 1e-5);
            }
        }
    }

    @Test
    void l2NormalizeGradientMatchesFiniteDifferences() {
        SplittableRandom rng = new SplittableRandom(5);
        Tensor x = random(rng, 1f, 3, 6), proj = random(rng, 1f, 3, 6), out = Tensor.zeros(DType.F32, 3, 6);
        x.f32()[12] = x.f32()[13] = x.f32()[14] = x.f32()[15] = x.f32()[16] = x.f32()[17] = 0f; // a zero row: norm below eps
        for (Backend be : new Backend[] {SCALAR, FAST}) {
            Tensor norms = Tensor.zeros(DType.F32, 3), dx = Tensor.zeros(DType.F32, 3, 6);
            be.l2NormalizeForward(out, norms, x);
            assertEquals(0f, out.f32()[14]);
            be.l2NormalizeBackward(dx, proj, out, norms);
            assertGradient("l2norm dx", x.slice(0, 2), dx.slice(0, 2), () -> {
                be.l2NormalizeForward(out, null, x);
                return project(out, proj);
            }, 1e-3, 1e-2);
            assertEquals(proj.f32()[15] / 1e-12f, dx.f32()[15], 1e-3 * Math.abs(proj.f32()[15] / 1e-12f));
        }
    }
}
