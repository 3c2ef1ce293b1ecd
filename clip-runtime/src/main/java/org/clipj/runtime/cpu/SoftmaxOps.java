package org.clipj.runtime.cpu;

import org.clipj.runtime.Tensor;

/**
 * The softmax family (softmax.cu): softmax over the last dim, scalar reference and vector path.
 * Arguments are checked by {@link org.clipj.runtime.OpChecks}.
 */
final class SoftmaxOps {
    private static final int GRAIN = 1 << 14; // elements per parallel chunk

    private SoftmaxOps() {}

    static void softmaxForward(OpContext cx, Tensor out, Tensor x) {
        if (cx.vector()) softmaxVector(out, x, cx.pool());
        else softmaxScalar(out, x);
    }

    private static void softmaxScalar(Tensor out, Tensor x) {
        float[] o = out.f32(), xs = x.f32();
        int oo = out.offset(), xo = x.offset(), c = x.dim(-1), rows = Shapes.rows(x);
        for (int r = 0; r < rows; r++) {
            int ro = oo + r * c, rx = xo + r * c;
            float max = Float.NEGATIVE_INFINITY;
            for (int i = 0; i < c; i++) max = Math.max(max, xs[rx + i]);
            float sum = 0f;
            for (int i = 0; i < c; i++) {
                float e = (float) Math.exp(xs[rx + i] - max);
                o[ro + i] = e;
                sum += e;
            }
            float inv = 1f / sum;
            for (int i = 0; i < c; i++) o[ro + i] *= inv;
        }
    }

    private static void softmaxVector(Tensor out, Tensor x, ComputePool pool) {
        float[] o = out.f32(), xs = x.f32();
        int oo = out.offset(), xo = x.offset(), c = x.dim(-1), rows = Shapes.rows(x);
        if (c == 0) return;
        Parallel.range(pool, rows, Math.max(1, GRAIN / c), (from, to) -> {
            for (int r = from; r < to; r++) {
                int ro = oo + r * c;
                float max = Vec.max(xs, xo + r * c, c);
                if (o != xs || ro != xo + r * c) System.arraycopy(xs, xo + r * c, o, ro, c);
                float sum = Vec.expShiftSum(o, ro, max, c);
                Vec.scale(o, ro, 1f / sum, c);
            }
        });
    }
}
