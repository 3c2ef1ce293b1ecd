package org.clipj.runtime.cpu;

import static org.clipj.runtime.cpu.OpTesting.FAST;
import static org.clipj.runtime.cpu.OpTesting.SCALAR;
import static org.clipj.runtime.cpu.OpTesting.assertClose;
import static org.clipj.runtime.cpu.OpTesting.assertGradient;
import static org.clipj.runtime.cpu.OpTesting.project;
import static org.clipj.runtime.cpu.OpTesting.random;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import java.util.SplittableRandom;
import java.util.function.DoubleSupplier;

import org.clipj.runtime.Backend;
import org.clipj.runtime.DType;
import org.clipj.runtime.Tensor;
import org.junit.jupiter.api.Test;

/** conv2d (im2col + Sgemm), patch embedding, AvgPool2d and transpose. */
class ConvOpsTest {

    // (B, Ci, H, W, Co, K, stride, padding)
    private static final int[][] CONVS = {
        {2, 3, 9, 11, 5, 3, 1, 1}, {1, 4, 8, 8, 6, 1, 1, 0}, {2, 3, 13, 13, 4, 3, 2, 1},
        {1, 8, 7, 7, 16, 1, 2, 0}, {1, 3, 32, 32, 16, 3, 2, 1}, {3, 5, 6, 6, 7, 3, 1, 0},
        {1, 2, 3, 2, 3, 3, 1, 2}, {2, 3, 10, 7, 4, 5, 3, 2}, // windows wholly in the padding
    };

    @Test
    void conv2dFastMatchesScalar() {
        SplittableRandom rng = new SplittableRandom(1);
        for (int[] c : CONVS) {
            int b = c[0], ci = c[1], h = c[2], w = c[3], co = c[4], k = c[5], s = c[6], p = c[7];
            int ho = (h + 2 * p - k) / s + 1, wo = (w + 2 * p - k) / s + 1;
            Tensor x = random(rng, 1f, b, ci, h, w), wt = random(rng, 0.5f, co, ci, k, k), bias = random(rng, 1f, co);
            Tensor g = random(rng, 1f, b, co, ho, wo);
            Tensor[] r = new Tensor[8];
            int n = 0;
            for (Backend be : new Backend[] {SCALAR, FAST}) {
                Tensor out = Tensor.zeros(DType.F32, b, co, ho, wo);
                be.conv2dForward(out, x, wt, bias, s, p);
                Tensor noBias = Tensor.zeros(DType.F32, b, co, ho, wo);
                be.conv2dForward(noBias, x, wt, null, s, p);
                Tensor dx = random(new SplittableRandom(9), 1f, b, ci, h, w), dw = Tensor.zeros(DType.F32, co, ci, k, k);
                Tensor db = Tensor.zeros(DType.F32, co);
                be.conv2dBackward(dx, dw, db, g, x, wt, s, p);
                r[n++] = out;
                r[n++] = noBias;
                r[n++] = dx;
                r[n++] = dw;
            }
            String what = "conv " + java.util.Arrays.toString(c);
            for (int i = 0; i < 4; i++) assertClose(what + " result " + i, r[i], r[i + 4], 1e-5, 1e-5);
        }
    }

    @Test
    void conv2dGradientsMatchFiniteDifferences() {
        SplittableRandom rng = new SplittableRandom(2);
        Tensor x = random(rng, 1f, 2, 2, 5, 5), w = random(rng, 1f, 3, 2, 3, 3), bias = random(rng, 1f, 3);
        Tensor proj = random(rng, 1f, 2, 3, 3, 3), out = Tensor.zeros(DType.F32, 2, 3, 3, 3);
        for (Backend be : new Backend[] {SCALAR, FAST}) {
            Tensor dx = Tensor.zeros(DType.F32, 2, 2, 5, 5), dw = Tensor.zeros(DType.F32, 3, 2, 3, 3), db = Tensor.zeros(DType.F32, 3);
            be.conv2dBackward(dx, dw, db, proj, x, w, 2, 1);
            DoubleSupplier loss = () -> {
                be.conv2dForward(out, x, w, bias, 2, 1);
                return project(out, proj);
            };
            assertGradient("conv dx", x, dx, loss, 1e-2, 1e-3);
            assertGradient("conv dw", w, dw, loss, 1e-2, 1e-3);
            assertGradient("conv dbias", bias, db, loss, 1e-2, 1e-3);
        }
    }

    @Test
    void patchEmbedMatchesScalarAndConv() {
        SplittableRandom rng = new SplittableRandom(3);
        int[][] shapes = {{2, 3, 32, 32, 8, 64}, {1, 3, 28, 42, 14, 96}, {3, 2, 4, 6, 2, 5}};
        for (int[] s : shapes) {
            int b = s[0], ci = s[1], h = s[2], w = s[3], p = s[4], c = s[5], np = (h / p) * (w / p);
            Tensor x = random(rng, 1f, b, ci, h, w), wt = random(rng, 0.2f, c, ci, p, p), g = random(rng, 1f, b, np, c);
            Tensor[] r = new Tensor[6];
            int n = 0;
            for (Backend be : new Backend[] {SCALAR, FAST}) {
                Tensor out = Tensor.zeros(DType.F32, b, np, c);
                be.patchEmbedForward(out, x, wt);
                Tensor dx = Tensor.zeros(DType.F32, b, ci, h, w), dw = random(new SplittableRandom(5), 1f, c, ci, p, p);
                be.patchEmbedBackward(dx, dw, g, x, wt);
                r[n++] = out;
                r[n++] = dx;
                r[n++] = dw;
            }
            String what = "patchEmbed " + java.util.Arrays.toString(s);
            for (int i = 0; i < 3; i++) assertClose(what + " result " + i, r[i], r[i + 3], 1e-5, 1e-5);
            // The same numbers as a stride-p convolution, transposed to (B, P, C).
            Tensor conv = Tensor.zeros(DType.F32, b, c, h / p, w / p), convT = Tensor.zeros(DType.F32, b, np, c);
            SCALAR.conv2dForward(conv, x, wt, null, p, 0);
            SCALAR.transpose(convT, conv.reshape(b, c, np), false);
            assertClose(what + " vs conv", convT, r[0], 1e-5, 1e-5);
        }
    }

    @Test
    void patchEmbedGradientsMatchFiniteDifferences() {
        SplittableRandom rng = new SplittableRandom(4);
        Tensor x = random(rng, 1f, 2, 2, 4, 4), w = random(rng, 1f, 3, 2, 2, 2), proj = random(rng, 1f, 2, 4, 3);
        Tensor out = Tensor.zeros(DType.F32, 2, 4, 3);
        for (Backend be : new Backend[] {SCALAR, FAST}) {
            Tensor dx = Tensor.zeros(DType.F32, 2, 2, 4, 4), dw = Tensor.zeros(DType.F32, 3, 2, 2, 2);
            be.patchEmbedBackward(dx, dw, proj, x, w);
            DoubleSupplier loss = () -> {
                be.patchEmbedForward(out, x, w);
                return project(out, proj);
            };
            assertGradient("patchEmbed dx", x, dx, loss, 1e-2, 1e-3);
            assertGradient("patchEmbed dw", w, dw, loss, 1e-2, 1e-3);
        }
    }

    @Test
    void avgPoolMatchesDefinitionAndGradient() {
        SplittableRandom rng = new SplittableRandom(6);
        Tensor x = random(rng, 1f, 2, 3, 6, 4), proj = random(rng, 1f, 2, 3, 3, 2);
        for (Backend be : new Backend[] {SCALAR, FAST}) {
            Tensor out = Tensor.zeros(DType.F32, 2, 3, 3, 2);
            be.avgPool2dForward(out, x, 2);
            float[] a = x.f32();
            int base = (1 * 3 + 2) * 24; // batch 1, channel 2
            assertEquals((a[base + 2 * 4 + 2] + a[base + 2 * 4 + 3] + a[base + 3 * 4 + 2] + a[base + 3 * 4 + 3]) / 4,
                    out.f32()[(1 * 3 + 2) * 6 + 1 * 2 + 1], 1e-6);
            Tensor dx = Tensor.zeros(DType.F32, 2, 3, 6, 4);
            be.avgPool2dBackward(dx, proj, 2);
            assertGradient("avgpool dx", x, dx, () -> {
                be.avgPool2dForward(out, x, 2);
                return project(out, proj);
            }, 1e-2, 1e-3);
        }
        assertThrows(IllegalArgumentException.class, () -> FAST.avgPool2dForward(Tensor.zeros(DType.F32, 2, 3, 2, 1), x, 3));
    }

}
