package org.clipj.runtime.cpu;

import org.clipj.runtime.Tensor;

/**
 * The attnpool family (attnpool.cu): one-query attention, ModifiedResNet's AttentionPool2d after its
 * q/k/v projections, forward and backward, one (batch item, head) per task through AttentionOps' row
 * kernels (scalar or vector). Arguments are checked by {@link org.clipj.runtime.OpChecks}.
 */
final class AttnPoolOps {
    private AttnPoolOps() {}

    /** out (B, C), lse (B, heads) or null, q (B, C), k (B, L, C), v (B, L, C). */
    static void attentionPoolForward(OpContext cx, Tensor out, Tensor lse, Tensor q, Tensor k, Tensor v, int heads) {
        ComputePool pool = cx.parallel();
        boolean vector = cx.vector();
        int b = k.dim(0), len = k.dim(1), c = k.dim(2), hd = c / heads;
        float scale = (float) (1.0 / Math.sqrt(hd));
        Parallel.Range body = (from, to) -> {
            float[] scores = new float[len];
            for (int bh = from; bh < to; bh++) {
                int bi = bh / heads, h = bh % heads;
                float l = AttentionOps.attendRow(vector, q.f32(), q.offset() + bi * c + h * hd,
                        k.f32(), k.offset() + bi * len * c + h * hd, v.f32(), v.offset() + bi * len * c + h * hd, c,
                        len, hd, scale, out.f32(), out.offset() + bi * c + h * hd, scores);
                if (lse != null) lse.f32()[lse.offset() + bh] = l;
            }
        };
        if (pool == null) body.run(0, b * heads);
        else Parallel.range(pool, b * heads, 1, body);
    }

    /** dq (B, C) +=, dk (B, L, C) +=, dv (B, L, C) += (each may be null). */
    static void attentionPoolBackward(OpContext cx, Tensor dq, Tensor dk, Tensor dv, Tensor dout, Tensor q, Tensor k,
                                      Tensor v, Tensor out, Tensor lse, int heads) {
        ComputePool pool = cx.parallel();
        boolean vector = cx.vector();
        int b = k.dim(0), len = k.dim(1), c = k.dim(2), hd = c / heads;
        float scale = (float) (1.0 / Math.sqrt(hd));
        Parallel.Range body = (from, to) -> {
            float[] probs = new float[len];
            for (int bh = from; bh < to; bh++) {
                int bi = bh / heads, h = bh % heads;
                int col = h * hd, kv = bi * len * c + col;
                AttentionOps.attendRowBackward(vector, q.f32(), q.offset() + bi * c + col, k.f32(), k.offset() + kv, v.f32(), v.offset() + kv,
                        c, len, hd, scale, dout.f32(), dout.offset() + bi * c + col, out.f32(), out.offset() + bi * c + col,
                        lse.f32()[lse.offset() + bh],
                        dq == null ? null : dq.f32(), dq == null ? 0 : dq.offset() + bi * c + col,
                        dk == null ? null : dk.f32(), dk == null ? 0 : dk.offset() + kv,
                        dv == null ? null : dv.f32(), dv == null ? 0 : dv.offset() + kv, c, probs);
            }
        };
        if (pool == null) body.run(0, b * heads);
        else Parallel.range(pool, b * heads, 1, body);
    }
}
