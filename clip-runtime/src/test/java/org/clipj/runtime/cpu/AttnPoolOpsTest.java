package org.clipj.runtime.cpu;

import static org.clipj.runtime.cpu.OpTesting.FAST;
import static org.clipj.runtime.cpu.OpTesting.SCALAR;
import static org.clipj.runtime.cpu.OpTesting.assertClose;
import static org.clipj.runtime.cpu.OpTesting.assertGradient;
import static org.clipj.runtime.cpu.OpTesting.project;
import static org.clipj.runtime.cpu.OpTesting.random;

import java.util.SplittableRandom;
import java.util.function.DoubleSupplier;

import org.clipj.runtime.Backend;
import org.clipj.runtime.DType;
import org.clipj.runtime.Tensor;
import org.junit.jupiter.api.Test;

/** One-query attention pooling (ModifiedResNet's AttentionPool2d), fast vs scalar, definition and finite differences. */
class AttnPoolOpsTest {

    @Test
    void poolFastMatchesScalarAndDefinition() {
        SplittableRandom rng = new SplittableRandom(5);
        int[][] cases = {{2, 50, 8, 64}, {1, 197, 2, 64}, {3, 7, 4, 5}};
        for (int[] cs : cases) {
            int b = cs[0], len = cs[1], heads = cs[2], c = heads * cs[3];
            Tensor q = random(rng, 1f, b, c), k = random(rng, 1f, b, len, c), v = random(rng, 1f, b, len, c), g = random(rng, 1f, b, c);
            Tensor[] r = new Tensor[10];
            int n = 0;
            for (Backend be : new Backend[] {SCALAR, FAST}) {
                Tensor out = Tensor.zeros(DType.F32, b, c), lse = Tensor.zeros(DType.F32, b, heads);
                be.attentionPoolForward(out, lse, q, k, v, heads);
                Tensor dq = Tensor.zeros(DType.F32, b, c), dk = Tensor.zeros(DType.F32, b, len, c), dv = Tensor.zeros(DType.F32, b, len, c);
                be.attentionPoolBackward(dq, dk, dv, g, q, k, v, out, lse, heads);
                r[n++] = out;
                r[n++] = lse;
                r[n++] = dq;
                r[n++] = dk;
                r[n++] = dv;
            }
            for (int i = 0; i < 5; i++) assertClose("attentionPool " + java.util.Arrays.toString(cs) + " result " + i, r[i], r[i + 5], 1e-5, 1e-5);
            // Definition: one query over L keys equals packed attention whose first row is that query.
            Tensor qkv = Tensor.zeros(DType.F32, b, len, 3 * c);
            for (int bi = 0; bi < b; bi++) {
                for (int j = 0; j < len; j++) {
                    int row = (bi * len + j) * 3 * c;
                    if (j == 0) System.arraycopy(q.f32(), bi * c, qkv.f32(), row, c);
                    System.arraycopy(k.f32(), (bi * len + j) * c, qkv.f32(), row + c, c);
                    System.arraycopy(v.f32(), (bi * len + j) * c, qkv.f32(), row + 2 * c, c);
                }
            }
            Tensor full = Tensor.zeros(DType.F32, b, len, c);
            SCALAR.attentionForward(full, null, qkv, heads, false);
            for (int bi = 0; bi < b; bi++) {
                assertClose("attentionPool vs attention row 0", full.get(bi).get(0), r[0].get(bi), 1e-6, 1e-5);
            }
        }
    }

    @Test
    void poolGradientsMatchFiniteDifferences() {
        SplittableRandom rng = new SplittableRandom(6);
        Tensor q = random(rng, 1f, 2, 6), k = random(rng, 1f, 2, 5, 6), v = random(rng, 1f, 2, 5, 6), proj = random(rng, 1f, 2, 6);
        Tensor out = Tensor.zeros(DType.F32, 2, 6), lse = Tensor.zeros(DType.F32, 2, 3);
        for (Backend be : new Backend[] {SCALAR, FAST}) {
            be.attentionPoolForward(out, lse, q, k, v, 3);
            Tensor dq = Tensor.zeros(DType.F32, 2, 6), dk = Tensor.zeros(DType.F32, 2, 5, 6), dv = Tensor.zeros(DType.F32, 2, 5, 6);
            be.attentionPoolBackward(dq, dk, dv, proj, q, k, v, out, lse, 3);
            DoubleSupplier loss = () -> {
                be.attentionPoolForward(out, null, q, k, v, 3);
                return project(out, proj);
            };
            assertGradient("attentionPool dq", q, dq, loss, 1e-3, 1e-2);
            assertGradient("attentionPool dk", k, dk, loss, 1e-3, 1e-2);
            assertGradient("attentionPool dv", v, dv, loss, 1e-3, 1e-2);
        }
    }
}
