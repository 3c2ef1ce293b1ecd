package org.clipj.runtime.cpu;

import static org.clipj.runtime.cpu.OpTesting.FAST;
import static org.clipj.runtime.cpu.OpTesting.SCALAR;
import static org.clipj.runtime.cpu.OpTesting.assertClose;
import static org.clipj.runtime.cpu.OpTesting.assertGradient;
import static org.clipj.runtime.cpu.OpTesting.random;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import java.util.SplittableRandom;

import org.clipj.runtime.Backend;
import org.clipj.runtime.DType;
import org.clipj.runtime.Tensor;
import org.junit.jupiter.api.Test;

/** The symmetric contrastive loss: tiled fast path vs scalar reference, known values, gradients. */
class ContrastiveOpsTest {

    private static Tensor normalizedRows(SplittableRandom rng, int n, int d) {
        Tensor t = random(rng, 1f, n, d), out = Tensor.zeros(DType.F32, n, d);
        SCALAR.l2NormalizeForward(out, null, t);
        return out;
    }

    /** The loss from the full logits matrix in double, the textbook way. */
    private static double naiveLoss(Tensor img, Tensor txt, float logScale) {
        int n = img.dim(0), d = img.dim(1);
        double s = Math.exp(logScale);
        double[][] l = new double[n][n];
        for (int i = 0; i < n; i++) {
            for (int j = 0; j < n; j++) {
                double dot = 0;
                for (int k = 0; k < d; k++) dot += (double) img.f32()[i * d + k] * txt.f32()[j * d + k];
                l[i][j] = s * dot;
            }
        }
        double rows = 0, cols = 0;
        for (int i = 0; i < n; i++) {
            double mr = Double.NEGATIVE_INFINITY, mc = Double.NEGATIVE_INFINITY;
            for (int j = 0; j < n; j++) {
                mr = Math.max(mr, l[i][j]);
                mc = Math.max(mc, l[j][i]);
            }
            double sr = 0, sc = 0;
            for (int j = 0; j < n; j++) {
                sr += Math.exp(l[i][j] - mr);
                sc += Math.exp(l[j][i] - mc);
            }
            rows += mr + Math.log(sr) - l[i][i];
            cols += mc + Math.log(sc) - l[i][i];
        }
        return (rows / n + cols / n) / 2;
    }

    @Test
    void lossMatchesDefinitionAndKnownValues() {
        SplittableRandom rng = new SplittableRandom(1);
        Tensor img = normalizedRows(rng, 9, 16), txt = normalizedRows(rng, 9, 16);
        Tensor ls = Tensor.of(new float[] {(float) Math.log(1 / 0.07)}, 1);
        double expected = naiveLoss(img, txt, ls.f32()[0]);
        for (Backend be : new Backend[] {SCALAR, FAST}) {
            assertEquals(expected, be.contrastiveLoss(img, txt, ls, null, null, null, 1f), 1e-5);
            // Identical features everywhere: every logit equal, loss = log N.
            Tensor same = Tensor.zeros(DType.F32, 5, 4);
            be.fill(same, 0.5f);
            assertEquals(Math.log(5), be.contrastiveLoss(same, same, ls, null, null, null, 1f), 1e-5);
        }
    }

    @Test
    void tiledMatchesScalar() {
        SplittableRandom rng = new SplittableRandom(2);
        // N across the tile size (128): 1, 7, 127, 129, 257.
        int[][] cases = {{1, 64}, {7, 64}, {50, 96}, {127, 64}, {129, 96}, {257, 64}};
        for (int[] cs : cases) {
            int n = cs[0], d = cs[1];
            Tensor img = normalizedRows(rng, n, d), txt = normalizedRows(rng, n, d);
            Tensor ls = Tensor.of(new float[] {2.659f}, 1);
            float[] losses = new float[2];
            Tensor[] r = new Tensor[6];
            int k = 0;
            for (Backend be : new Backend[] {SCALAR, FAST}) {
                Tensor di = random(new SplittableRandom(3), 1f, n, d), dt = Tensor.zeros(DType.F32, n, d), dls = Tensor.of(new float[] {0.5f}, 1);
                losses[k / 3] = be.contrastiveLoss(img, txt, ls, di, dt, dls, 0.75f);
                r[k++] = di;
                r[k++] = dt;
                r[k++] = dls;
            }
            String what = "contrastive N=" + n + " D=" + d;
            assertEquals(losses[0], losses[1], 1e-5 * Math.max(1, Math.abs(losses[0])), what + " loss");
            assertClose(what + " dImg", r[0], r[3], 1e-6, 1e-4);
            assertClose(what + " dTxt", r[1], r[4], 1e-6, 1e-4);
            assertClose(what + " dLogitScale", r[2], r[5], 1e-6, 1e-4);
        }
    }

    @Test
    void gradientsMatchFiniteDifferences() {
        SplittableRandom rng = new SplittableRandom(4);
        Tensor img = normalizedRows(rng, 5, 4), txt = normalizedRows(rng, 5, 4);
        Tensor ls = Tensor.of(new float[] {1.2f}, 1);
        for (Backend be : new Backend[] {SCALAR, FAST}) {
            Tensor di = Tensor.zeros(DType.F32, 5, 4), dt = Tensor.zeros(DType.F32, 5, 4), dls = Tensor.zeros(DType.F32, 1);
            be.contrastiveLoss(img, txt, ls, di, dt, dls, 2f);
            java.util.function.DoubleSupplier loss = () -> 2.0 * be.contrastiveLoss(img, txt, ls, null, null, null, 1f);
            assertGradient("contrastive dImg", img, di, loss, 1e-3, 1e-2);
            assertGradient("contrastive dTxt", txt, dt, loss, 1e-3, 1e-2);
            assertGradient("contrastive dLogitScale", ls, dls, loss, 1e-3, 1e-2);
        }
    }

    @Test
    void mismatchedShapesAreRejected() {
        Tensor a = Tensor.zeros(DType.F32, 4, 8), b = Tensor.zeros(DType.F32, 4, 7), ls = Tensor.zeros(DType.F32, 1);
        assertThrows(IllegalArgumentException.class, () -> FAST.contrastiveLoss(a, b, ls, null, null, null, 1f));
        assertThrows(IllegalArgumentException.class, () -> FAST.contrastiveLoss(a, a, Tensor.zeros(DType.F32, 2), null, null, null, 1f));
    }
}
