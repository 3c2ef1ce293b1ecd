package org.clipj.runtime.cpu;

import static org.clipj.runtime.cpu.OpTesting.FAST;
import static org.clipj.runtime.cpu.OpTesting.ROWS;
import static org.clipj.runtime.cpu.OpTesting.SCALAR;
import static org.clipj.runtime.cpu.OpTesting.WIDTHS;
import static org.clipj.runtime.cpu.OpTesting.assertClose;
import static org.clipj.runtime.cpu.OpTesting.assertGradient;
import static org.clipj.runtime.cpu.OpTesting.project;
import static org.clipj.runtime.cpu.OpTesting.random;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.SplittableRandom;

import org.clipj.runtime.Backend;
import org.clipj.runtime.DType;
import org.clipj.runtime.Tensor;
import org.junit.jupiter.api.Test;

/** LayerNorm: against a double-precision formula, fast vs scalar, gradients vs finite differences. */
class LayerNormOpsTest {

    @Test
    void forwardMatchesDoubleFormula() {
        SplittableRandom rng = new SplittableRandom(1);
        int rows = 5, c = 96;
        Tensor x = random(rng, 3f, rows, c), w = random(rng, 1f, c), b = random(rng, 1f, c);
        for (int i = 0; i < c; i++) x.f32()[i] += 100f; // a large mean must not cost precision
        float[] expected = new float[rows * c];
        for (int r = 0; r < rows; r++) {
            double m = 0, v = 0;
            for (int i = 0; i < c; i++) m += x.f32()[r * c + i];
            m /= c;
            for (int i = 0; i < c; i++) v += Math.pow(x.f32()[r * c + i] - m, 2);
            v /= c;
            for (int i = 0; i < c; i++) {
                expected[r * c + i] = (float) ((x.f32()[r * c + i] - m) / Math.sqrt(v + 1e-5) * w.f32()[i] + b.f32()[i]);
            }
        }
        for (Backend be : new Backend[] {SCALAR, FAST}) {
            Tensor out = Tensor.zeros(DType.F32, rows, c);
            be.layerNormForward(out, null, null, x, w, b, 1e-5f);
            assertClose("layernorm vs double " + be.description(), expected, out.toFloatArray(), 1e-5, 0);
        }
    }

    @Test
    void fastMatchesScalar() {
        SplittableRandom rng = new SplittableRandom(2);
        for (int rows : ROWS) {
            for (int c : WIDTHS) {
                Tensor x = random(rng, 2f, rows, c), w = random(rng, 1f, c), b = random(rng, 1f, c), g = random(rng, 1f, rows, c);
                Tensor[] r = new Tensor[10];
                int k = 0;
                for (Backend be : new Backend[] {SCALAR, FAST}) {
                    Tensor out = Tensor.zeros(DType.F32, rows, c), mean = Tensor.zeros(DType.F32, rows), rstd = Tensor.zeros(DType.F32, rows);
                    be.layerNormForward(out, mean, rstd, x, w, b, 1e-5f);
                    Tensor dx = Tensor.zeros(DType.F32, rows, c), dw = Tensor.zeros(DType.F32, c), db = Tensor.zeros(DType.F32, c);
                    be.layerNormBackward(dx, dw, db, g, x, w, mean, rstd);
                    r[k++] = out;
                    r[k++] = rstd;
                    r[k++] = dx;
                    r[k++] = dw;
                    r[k++] = db;
                }
                String what = "layernorm " + rows + "x" + c;
                assertClose(what + " out", r[0], r[5], 1e-5, 1e-5);
                assertClose(what + " rstd", r[1], r[6], 0, 1e-5);
                assertClose(what + " dx", r[2], r[7], 1e-5, 1e-4);
                assertClose(what + " dw", r[3], r[8], 1e-5, 1e-4);
                assertClose(what + " db", r[4], r[9], 1e-5, 1e-5);
            }
        }
    }

    @Test
    void gradientsMatchFiniteDifferences() {
        SplittableRandom rng = new SplittableRandom(3);
        int rows = 3, c = 10;
        Tensor x = random(rng, 2f, rows, c), w = random(rng, 1f, c), b = random(rng, 1f, c), proj = random(rng, 1f, rows, c);
        Tensor out = Tensor.zeros(DType.F32, rows, c), mean = Tensor.zeros(DType.F32, rows), rstd = Tensor.zeros(DType.F32, rows);
        for (Backend be : new Backend[] {SCALAR, FAST}) {
            be.layerNormForward(out, mean, rstd, x, w, b, 1e-5f);
            Tensor dx = Tensor.zeros(DType.F32, rows, c), dw = Tensor.zeros(DType.F32, c), db = Tensor.zeros(DType.F32, c);
            be.layerNormBackward(dx, dw, db, proj, x, w, mean, rstd);
            java.util.function.DoubleSupplier loss = () -> {
                be.layerNormForward(out, null, null, x, w, b, 1e-5f);
                return project(out, proj);
            };
            assertGradient("layernorm dx", x, dx, loss, 1e-3, 1e-2);
            assertGradient("layernorm dw", w, dw, loss, 1e-3, 1e-2);
            assertGradient("layernorm db", b, db, loss, 1e-3, 1e-2);
        }
    }

    @Test
    void mismatchedWeightIsRejected() {
        Tensor x = Tensor.zeros(DType.F32, 4, 8), out = Tensor.zeros(DType.F32, 4, 8);
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> FAST.layerNormForward(out, null, null, x, Tensor.zeros(DType.F32, 7), Tensor.zeros(DType.F32, 8), 1e-5f));
        assertTrue(e.getMessage().contains("layerNormForward") && e.getMessage().contains("[7]") && e.getMessage().contains("[4, 8]"),
                e.getMessage());
    }
}
