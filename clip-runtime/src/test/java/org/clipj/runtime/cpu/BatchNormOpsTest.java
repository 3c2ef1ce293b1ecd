package org.clipj.runtime.cpu;

import static org.clipj.runtime.cpu.OpTesting.FAST;
import static org.clipj.runtime.cpu.OpTesting.SCALAR;
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

/** BatchNorm2d, train and eval, against torch and finite differences. */
class BatchNormOpsTest {

    @Test
    void batchNormTrainUpdatesRunningStatsLikeTorch() {
        SplittableRandom rng = new SplittableRandom(1);
        int b = 3, c = 2, h = 4, w = 5, n = b * h * w;
        Tensor x = random(rng, 2f, b, c, h, w), gamma = random(rng, 1f, c), beta = random(rng, 1f, c);
        for (Backend be : new Backend[] {SCALAR, FAST}) {
            Tensor rm = Tensor.of(new float[] {0.5f, -1f}, c), rv = Tensor.of(new float[] {2f, 0.25f}, c);
            Tensor out = Tensor.zeros(DType.F32, b, c, h, w), sm = Tensor.zeros(DType.F32, c), sr = Tensor.zeros(DType.F32, c);
            be.batchNormForward(out, x, gamma, beta, rm, rv, sm, sr, true, 0.1f, 1e-5f);
            for (int ch = 0; ch < c; ch++) {
                double mean = 0, sq = 0;
                for (int bi = 0; bi < b; bi++) for (int i = 0; i < h * w; i++) mean += x.f32()[(bi * c + ch) * h * w + i];
                mean /= n;
                for (int bi = 0; bi < b; bi++) for (int i = 0; i < h * w; i++) sq += Math.pow(x.f32()[(bi * c + ch) * h * w + i] - mean, 2);
                double biased = sq / n, unbiased = sq / (n - 1);
                assertEquals(mean, sm.f32()[ch], 1e-6);
                assertEquals(1 / Math.sqrt(biased + 1e-5), sr.f32()[ch], 1e-5);
                assertEquals(0.9 * (ch == 0 ? 0.5 : -1) + 0.1 * mean, rm.f32()[ch], 1e-6);
                assertEquals(0.9 * (ch == 0 ? 2 : 0.25) + 0.1 * unbiased, rv.f32()[ch], 1e-6);
                int at = (1 * c + ch) * h * w + 3;
                assertEquals((x.f32()[at] - mean) / Math.sqrt(biased + 1e-5) * gamma.f32()[ch] + beta.f32()[ch], out.f32()[at], 1e-5);
            }
            Tensor eval = Tensor.zeros(DType.F32, b, c, h, w);
            be.batchNormForward(eval, x, gamma, beta, rm, rv, null, null, false, 0.1f, 1e-5f);
            int at = (2 * c + 1) * h * w + 7;
            assertEquals((x.f32()[at] - rm.f32()[1]) / Math.sqrt(rv.f32()[1] + 1e-5) * gamma.f32()[1] + beta.f32()[1], eval.f32()[at], 1e-5);
        }
    }

    @Test
    void batchNormFastMatchesScalar() {
        SplittableRandom rng = new SplittableRandom(2);
        int[][] shapes = {{2, 3, 5, 7}, {4, 16, 7, 7}, {1, 64, 14, 14}, {3, 7, 1, 1}};
        for (int[] s : shapes) {
            Tensor x = random(rng, 2f, s), gamma = random(rng, 1f, s[1]), beta = random(rng, 1f, s[1]), g = random(rng, 1f, s);
            Tensor[] r = new Tensor[10];
            int k = 0;
            for (Backend be : new Backend[] {SCALAR, FAST}) {
                Tensor rm = Tensor.zeros(DType.F32, s[1]), rv = Tensor.zeros(DType.F32, s[1]);
                Tensor out = Tensor.zeros(DType.F32, s), sm = Tensor.zeros(DType.F32, s[1]), sr = Tensor.zeros(DType.F32, s[1]);
                be.batchNormForward(out, x, gamma, beta, rm, rv, sm, sr, true, 0.1f, 1e-5f);
                Tensor dx = Tensor.zeros(DType.F32, s), dg = Tensor.zeros(DType.F32, s[1]), db = Tensor.zeros(DType.F32, s[1]);
                be.batchNormBackward(dx, dg, db, g, x, gamma, sm, sr);
                r[k++] = out;
                r[k++] = rv;
                r[k++] = dx;
                r[k++] = dg;
                r[k++] = db;
            }
            String what = "batchnorm " + java.util.Arrays.toString(s);
            for (int i = 0; i < 5; i++) assertClose(what + " result " + i, r[i], r[i + 5], 1e-5, 1e-5);
        }
    }

    @Test
    void batchNormGradientsMatchFiniteDifferences() {
        SplittableRandom rng = new SplittableRandom(3);
        int[] s = {2, 3, 2, 3};
        Tensor x = random(rng, 2f, s), gamma = random(rng, 1f, 3), beta = random(rng, 1f, 3), proj = random(rng, 1f, s);
        Tensor rm = Tensor.zeros(DType.F32, 3), rv = Tensor.zeros(DType.F32, 3), out = Tensor.zeros(DType.F32, s);
        for (Backend be : new Backend[] {SCALAR, FAST}) {
            Tensor sm = Tensor.zeros(DType.F32, 3), sr = Tensor.zeros(DType.F32, 3);
            be.batchNormForward(out, x, gamma, beta, rm, rv, sm, sr, true, 0.1f, 1e-5f);
            Tensor dx = Tensor.zeros(DType.F32, s), dg = Tensor.zeros(DType.F32, 3), db = Tensor.zeros(DType.F32, 3);
            be.batchNormBackward(dx, dg, db, proj, x, gamma, sm, sr);
            java.util.function.DoubleSupplier loss = () -> {
                be.batchNormForward(out, x, gamma, beta, rm, rv, null, null, true, 0.1f, 1e-5f);
                return project(out, proj);
            };
            assertGradient("batchnorm dx", x, dx, loss, 1e-3, 1e-2);
            assertGradient("batchnorm dgamma", gamma, dg, loss, 1e-3, 1e-2);
            assertGradient("batchnorm dbeta", beta, db, loss, 1e-3, 1e-2);
        }
    }

}
