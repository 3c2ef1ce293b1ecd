package org.clipj.runtime.cpu;

import static org.clipj.runtime.cpu.OpTesting.FAST;
import static org.clipj.runtime.cpu.OpTesting.SCALAR;
import static org.clipj.runtime.cpu.OpTesting.assertClose;
import static org.clipj.runtime.cpu.OpTesting.random;

import java.util.SplittableRandom;

import org.clipj.runtime.Backend;
import org.clipj.runtime.DType;
import org.clipj.runtime.Tensor;
import org.junit.jupiter.api.Test;

/** AdamW against torch.optim.AdamW's formula in double, fast vs scalar. */
class AdamwOpsTest {

    @Test
    void adamwFollowsTorchOverSeveralSteps() {
        SplittableRandom rng = new SplittableRandom(1);
        int n = 1000;
        Tensor p0 = random(rng, 1f, n);
        float lr = 5e-4f, b1 = 0.9f, b2 = 0.98f, eps = 1e-6f, wd = 0.2f, gradScale = 0.5f;
        for (Backend be : new Backend[] {SCALAR, FAST}) {
            Tensor p = p0.copy(), m = Tensor.zeros(DType.F32, n), v = Tensor.zeros(DType.F32, n);
            double[] pd = new double[n], md = new double[n], vd = new double[n];
            for (int i = 0; i < n; i++) pd[i] = p0.f32()[i];
            SplittableRandom grads = new SplittableRandom(2);
            for (int step = 1; step <= 5; step++) {
                Tensor g = random(grads, 3f, n);
                be.adamwUpdate(p, g, m, v, lr, b1, b2, eps, wd, step, gradScale);
                double bc1 = 1 - Math.pow(b1, step), bc2 = 1 - Math.pow(b2, step);
                for (int i = 0; i < n; i++) {
                    double gi = g.f32()[i] * (double) gradScale;
                    pd[i] *= 1 - (double) lr * wd;
                    md[i] = b1 * md[i] + (1 - b1) * gi;
                    vd[i] = b2 * vd[i] + (1 - b2) * gi * gi;
                    pd[i] -= lr / bc1 * md[i] / (Math.sqrt(vd[i]) / Math.sqrt(bc2) + eps);
                }
            }
            float[] expected = new float[n];
            for (int i = 0; i < n; i++) expected[i] = (float) pd[i];
            assertClose("adamw " + be.description(), expected, p.f32(), 1e-6, 0);
        }
    }

    @Test
    void adamwFastMatchesScalar() {
        SplittableRandom rng = new SplittableRandom(3);
        for (int n : new int[] {1, 7, 63, 65, 197 * 96, 257 * 768}) {
            Tensor p = random(rng, 1f, n), g = random(rng, 1f, n), m = random(rng, 0.1f, n), v = random(rng, 0.1f, n);
            for (int i = 0; i < n; i++) v.f32()[i] = Math.abs(v.f32()[i]);
            for (float beta1 : new float[] {0.9f, 0.3f}) { // both branches of torch's lerp
                Tensor pa = p.copy(), ma = m.copy(), va = v.copy(), pb = p.copy(), mb = m.copy(), vb = v.copy();
                SCALAR.adamwUpdate(pa, g, ma, va, 1e-3f, beta1, 0.999f, 1e-8f, 0.1f, 3, 1f);
                FAST.adamwUpdate(pb, g, mb, vb, 1e-3f, beta1, 0.999f, 1e-8f, 0.1f, 3, 1f);
                // Same operations in the same order, no FMA: bit-identical.
                assertClose("adamw p n=" + n, pa, pb, 0, 0);
                assertClose("adamw m n=" + n, ma, mb, 0, 0);
                assertClose("adamw v n=" + n, va, vb, 0, 0);
            }
        }
    }

}
