package org.clipj.runtime.cpu;

import org.clipj.runtime.Tensor;

/**
 * The normalize family (normalize.cu): row-wise L2 normalization (F.normalize) and its backward, scalar
 * reference and vector path per row. Arguments are checked by {@link org.clipj.runtime.OpChecks}.
 */
final class NormalizeOps {
    static final float L2_EPS = 1e-12f; // F.normalize's eps: x / max(||x||, eps)
    private static final int GRAIN = 1 << 13;

    private NormalizeOps() {}

    static void l2NormalizeForward(OpContext cx, Tensor out, Tensor norms, Tensor x) {
        boolean vector = cx.vector();
        ComputePool pool = cx.pool();
        int d = x.dim(-1), rows = Shapes.rows(x);
        float[] o = out.f32(), xs = x.f32();
        int oo = out.offset(), xo = x.offset();
        Parallel.Range body = (from, to) -> {
            for (int r = from; r < to; r++) {
                int rx = xo + r * d, ro = oo + r * d;
                float sq;
                if (vector) {
                    sq = Vec.dot(xs, rx, xs, rx, d);
                } else {
                    sq = 0f;
                    for (int i = 0; i < d; i++) sq += xs[rx + i] * xs[rx + i];
                }
                float norm = (float) Math.sqrt(sq);
                float inv = 1f / Math.max(norm, L2_EPS);
                if (vector) {
                    if (o != xs || ro != rx) System.arraycopy(xs, rx, o, ro, d);
                    Vec.scale(o, ro, inv, d);
                } else {
                    for (int i = 0; i < d; i++) o[ro + i] = xs[rx + i] * inv;
                }
                if (norms != null) norms.f32()[norms.offset() + r] = norm;
            }
        };
        if (vector) Parallel.range(pool, rows, Math.max(1, GRAIN / Math.max(1, d)), body);
        else body.run(0, rows);
    }

    /** dx += (dout - out (dout . out)) / ||x|| per row; below eps the denominator is the constant eps. */
    static void l2NormalizeBackward(OpContext cx, Tensor dx, Tensor dout, Tensor out, Tensor norms) {
        boolean vector = cx.vector();
        ComputePool pool = cx.pool();
        int d = out.dim(-1), rows = Shapes.rows(out);
        float[] dxs = dx.f32(), g = dout.f32(), y = out.f32(), ns = norms.f32();
        int dxo = dx.offset(), go = dout.offset(), yo = out.offset(), no = norms.offset();
        Parallel.Range body = (from, to) -> {
            for (int r = from; r < to; r++) {
                int rg = go + r * d, ry = yo + r * d, rd = dxo + r * d;
                float norm = ns[no + r];
                if (norm <= L2_EPS) {
                    float inv = 1f / L2_EPS;
                    for (int i = 0; i < d; i++) dxs[rd + i] += g[rg + i] * inv;
                    continue;
                }
                float inv = 1f / norm;
                float dot;
                if (vector) {
                    dot = Vec.dot(g, rg, y, ry, d);
                    Vec.axpy(inv, g, rg, dxs, rd, d);
                    Vec.axpy(-dot * inv, y, ry, dxs, rd, d);
                } else {
                    dot = 0f;
                    for (int i = 0; i < d; i++) dot += g[rg + i] * y[ry + i];
                    for (int i = 0; i < d; i++) dxs[rd + i] += (g[rg + i] - y[ry + i] * dot) * inv;
                }
            }
        };
        if (vector) Parallel.range(pool, rows, Math.max(1, GRAIN / Math.max(1, d)), body);
        else body.run(0, rows);
    }
}
