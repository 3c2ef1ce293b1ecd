package org.clipj.runtime.cpu;

import static org.clipj.runtime.cpu.OpTesting.FAST;
import static org.clipj.runtime.cpu.OpTesting.SCALAR;
import static org.clipj.runtime.cpu.OpTesting.assertClose;
import static org.clipj.runtime.cpu.OpTesting.assertGradient;
import static org.clipj.runtime.cpu.OpTesting.project;
import static org.clipj.runtime.cpu.OpTesting.random;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.SplittableRandom;

import org.clipj.runtime.Activation;
import org.clipj.runtime.Backend;
import org.clipj.runtime.DType;
import org.clipj.runtime.Tensor;
import org.junit.jupiter.api.Test;

/** matmul and linear: Sgemm path vs the scalar reference, gradients vs finite differences. */
class MatmulOpsTest {

    @Test
    void matmulMatchesScalarForTransposesAndBatches() {
        SplittableRandom rng = new SplittableRandom(1);
        int[][] shapes = {{1, 64, 7}, {7, 96, 50}, {50, 63, 65}, {77, 64, 197}, {65, 257, 96}};
        for (int[] s : shapes) {
            int m = s[0], n = s[1], k = s[2];
            for (int batch : new int[] {0, 3}) {
                for (int t = 0; t < 4; t++) {
                    boolean ta = (t & 1) != 0, tb = (t & 2) != 0;
                    Tensor a = batch == 0 ? random(rng, 1f, ta ? k : m, ta ? m : k) : random(rng, 1f, batch, ta ? k : m, ta ? m : k);
                    Tensor b = batch == 0 ? random(rng, 1f, tb ? n : k, tb ? k : n) : random(rng, 1f, batch, tb ? n : k, tb ? k : n);
                    Tensor c0 = batch == 0 ? random(rng, 1f, m, n) : random(rng, 1f, batch, m, n);
                    Tensor expected = c0.copy(), actual = c0.copy();
                    SCALAR.matmul(expected, a, ta, b, tb, 0.5f, 0.25f);
                    FAST.matmul(actual, a, ta, b, tb, 0.5f, 0.25f);
                    assertClose("matmul " + m + "x" + n + "x" + k + " batch " + batch + " ta " + ta + " tb " + tb,
                            expected, actual, 1e-5, 1e-5);
                }
            }
        }
    }

    @Test
    void linearMatchesScalar() {
        SplittableRandom rng = new SplittableRandom(2);
        for (int rows : new int[] {1, 7, 50, 77, 257}) {
            for (int[] io : new int[][] {{64, 96}, {96, 64}, {768, 64}}) {
                int in = io[0], out = io[1];
                Tensor x = random(rng, 1f, rows, in), w = random(rng, 0.1f, out, in), bias = random(rng, 1f, out);
                Tensor g = random(rng, 1f, rows, out);
                Tensor[] results = new Tensor[8];
                int idx = 0;
                for (Backend be : new Backend[] {SCALAR, FAST}) {
                    Tensor y = Tensor.zeros(DType.F32, rows, out);
                    be.linearForward(y, x, w, bias);
                    Tensor dx = random(new SplittableRandom(4), 1f, rows, in), dw = Tensor.zeros(DType.F32, out, in);
                    Tensor db = Tensor.zeros(DType.F32, out);
                    be.linearBackward(dx, dw, db, g, x, w);
                    results[idx++] = y;
                    results[idx++] = dx;
                    results[idx++] = dw;
                    results[idx++] = db;
                }
                String what = "linear " + rows + " " + in + "->" + out;
                assertClose(what + " out", results[0], results[4], 1e-5, 1e-5);
                assertClose(what + " dx", results[1], results[5], 1e-5, 1e-5);
                assertClose(what + " dw", results[2], results[6], 1e-5, 1e-5);
                assertClose(what + " db", results[3], results[7], 1e-5, 1e-5);
            }
        }
    }

    /**
     * linearActivationForward and linearResidualForward (bias, activation and residual applied to each
     * GEMM tile) against the scalar reference and against the unfused ops, with plain and prepared
     * weights; ragged shapes and CLIP's (depth 3072 and 2048: several depth blocks, so the epilogue
     * must wait for the last one).
     */
    @Test
    void fusedLinearEpiloguesMatchScalarAndUnfusedOps() {
        SplittableRandom rng = new SplittableRandom(8);
        int[][] shapes = {{1, 64, 96}, {7, 97, 33}, {50, 300, 70}, {7, 768, 3072}, {50, 3072, 768}, {77, 2048, 512}};
        for (int[] s : shapes) {
            int rows = s[0], in = s[1], out = s[2];
            Tensor x = random(rng, 1f, rows, in), w = random(rng, 0.1f, out, in), bias = random(rng, 1f, out);
            Tensor residual = random(rng, 1f, rows, out);
            Tensor prepared = FAST.prepareWeight(w);
            for (boolean withBias : new boolean[] {true, false}) {
                Tensor b = withBias ? bias : null;
                String what = rows + "x" + in + "->" + out + (withBias ? " bias" : "");
                for (Activation act : Activation.values()) {
                    Tensor expected = Tensor.zeros(DType.F32, rows, out);
                    SCALAR.linearActivationForward(expected, x, w, b, act);
                    Tensor unfused = Tensor.zeros(DType.F32, rows, out);
                    SCALAR.linearForward(unfused, x, w, b);
                    if (act == Activation.QUICK_GELU) SCALAR.quickGeluForward(unfused, unfused);
                    else SCALAR.geluForward(unfused, unfused);
                    assertClose(act + " scalar vs unfused " + what, unfused, expected, 1e-6, 1e-6);
                    for (Tensor weight : new Tensor[] {w, prepared}) {
                        Tensor actual = random(rng, 1f, rows, out);   // garbage: every element must be written
                        FAST.linearActivationForward(actual, x, weight, b, act);
                        assertClose(act + " " + what + (weight == w ? "" : " prepared"), expected, actual, 1e-5, 1e-5);
                    }
                }
                Tensor expected = Tensor.zeros(DType.F32, rows, out);
                SCALAR.linearResidualForward(expected, x, w, b, residual);
                Tensor unfused = Tensor.zeros(DType.F32, rows, out);
                SCALAR.linearForward(unfused, x, w, b);
                SCALAR.add(unfused, unfused, residual);
                assertClose("residual scalar vs unfused " + what, unfused, expected, 1e-6, 1e-6);
                for (Tensor weight : new Tensor[] {w, prepared}) {
                    Tensor actual = random(rng, 1f, rows, out);
                    FAST.linearResidualForward(actual, x, weight, b, residual);
                    assertClose("residual " + what + (weight == w ? "" : " prepared"), expected, actual, 1e-5, 1e-5);
                }
            }
        }
    }

    @Test
    void fusedLinearRejectsOverlappingOutput() {
        Tensor x = Tensor.zeros(DType.F32, 4, 8), w = Tensor.zeros(DType.F32, 8, 8), res = Tensor.zeros(DType.F32, 4, 8);
        for (Backend be : new Backend[] {SCALAR, FAST}) {
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                    () -> be.linearResidualForward(res, x, w, null, res));
            assertTrue(e.getMessage().contains("linearResidualForward: out and residual must not overlap"), e.getMessage());
            assertThrows(IllegalArgumentException.class, () -> be.linearActivationForward(x, x, w, null, Activation.GELU));
            assertThrows(IllegalArgumentException.class, () -> be.linearActivationForward(res, x, w, null, null));
        }
    }

    @Test
    void preparedWeightsGiveTheSameLinearAndPatchEmbedding() {
        SplittableRandom rng = new SplittableRandom(6);
        for (int rows : new int[] {1, 7, 50, 65}) {
            for (int[] io : new int[][] {{64, 96}, {97, 33}, {300, 70}}) {
                int in = io[0], out = io[1];
                Tensor x = random(rng, 1f, rows, in), w = random(rng, 0.1f, out, in), bias = random(rng, 1f, out);
                Tensor expected = Tensor.zeros(DType.F32, rows, out), plain = Tensor.zeros(DType.F32, rows, out);
                SCALAR.linearForward(expected, x, w, bias);
                FAST.linearForward(plain, x, w, bias);
                Tensor prepared = FAST.prepareWeight(w);
                java.util.Arrays.fill(w.f32(), Float.NaN);   // the prepared tensor keeps nothing of w but its panels
                for (int call = 0; call < 2; call++) {   // both calls multiply the panels packed by prepareWeight
                    Tensor y = Tensor.zeros(DType.F32, rows, out);
                    FAST.linearForward(y, x, prepared, bias);
                    String what = "prepared linear " + rows + " " + in + "->" + out + " call " + call;
                    assertClose(what, expected, y, 1e-5, 1e-5);
                    assertClose(what + " vs unprepared", plain, y, 0, 0);
                }
            }
        }
        Tensor pixels = random(rng, 1f, 2, 3, 32, 32), conv = random(rng, 0.2f, 40, 3, 8, 8);
        Tensor expected = Tensor.zeros(DType.F32, 2, 16, 40), actual = Tensor.zeros(DType.F32, 2, 16, 40);
        SCALAR.patchEmbedForward(expected, pixels, conv);
        Tensor preparedConv = FAST.prepareWeight(conv);
        FAST.patchEmbedForward(actual, pixels, preparedConv);
        assertClose("prepared patch embedding", expected, actual, 1e-5, 1e-5);
        // only the packed form is kept: host reads of it fail loudly, and ops that read rows refuse it
        IllegalStateException read = assertThrows(IllegalStateException.class, preparedConv::f32);
        assertTrue(read.getMessage().contains("prepared"), read.getMessage());
        Tensor preparedLinear = FAST.prepareWeight(random(rng, 1f, 4, 5));
        assertThrows(IllegalStateException.class, () -> preparedLinear.slice(0, 2));
        assertThrows(IllegalStateException.class, () -> FAST.linearBackward(Tensor.zeros(DType.F32, 3, 5), null, null,
                random(rng, 1f, 3, 4), random(rng, 1f, 3, 5), preparedLinear));
        assertTrue(SCALAR.prepareWeight(conv) == conv, "the scalar reference keeps the weight as it is");
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> FAST.prepareWeight(random(rng, 1f, 2, 3, 4)));
        assertTrue(e.getMessage().contains("prepareWeight"), e.getMessage());
    }

    @Test
    void linearGradientsMatchFiniteDifferences() {
        SplittableRandom rng = new SplittableRandom(3);
        Tensor x = random(rng, 1f, 2, 3, 5), w = random(rng, 1f, 4, 5), bias = random(rng, 1f, 4);
        Tensor proj = random(rng, 1f, 2, 3, 4), y = Tensor.zeros(DType.F32, 2, 3, 4);
        for (Backend be : new Backend[] {SCALAR, FAST}) {
            Tensor dx = Tensor.zeros(DType.F32, 2, 3, 5), dw = Tensor.zeros(DType.F32, 4, 5), db = Tensor.zeros(DType.F32, 4);
            be.linearBackward(dx, dw, db, proj, x, w);
            java.util.function.DoubleSupplier loss = () -> {
                be.linearForward(y, x, w, bias);
                return project(y, proj);
            };
            assertGradient("linear dx", x, dx, loss, 1e-2, 1e-3);
            assertGradient("linear dw", w, dw, loss, 1e-2, 1e-3);
            assertGradient("linear db", bias, db, loss, 1e-2, 1e-3);
        }
    }

    @Test
    void shapeMismatchNamesOpAndShapes() {
        Tensor c = Tensor.zeros(DType.F32, 3, 4), a = Tensor.zeros(DType.F32, 3, 5), b = Tensor.zeros(DType.F32, 6, 4);
        for (Backend be : new Backend[] {SCALAR, FAST}) {
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> be.matmul(c, a, false, b, false, 1f, 0f));
            assertTrue(e.getMessage().startsWith("matmul") && e.getMessage().contains("[3, 5]") && e.getMessage().contains("[6, 4]"),
                    e.getMessage());
            IllegalArgumentException l = assertThrows(IllegalArgumentException.class,
                    () -> be.linearForward(c, a, Tensor.zeros(DType.F32, 4, 6), null));
            assertTrue(l.getMessage().startsWith("linearForward") && l.getMessage().contains("[4, 6]"), l.getMessage());
        }
    }
}
