package org.clipj.runtime.cpu;

import org.clipj.runtime.Tensor;

/**
 * The embedding family (embedding.cu): embedding lookup and scatter-add, and the per-batch row gather
 * (EOT or class token) and its backward, scalar reference and vector path. Shapes are checked by
 * {@link org.clipj.runtime.OpChecks}; the ids themselves here, before anything is written.
 */
final class EmbeddingOps {
    private static final int GRAIN = 1 << 13;

    private EmbeddingOps() {}

    static void embeddingForward(OpContext cx, Tensor out, Tensor ids, Tensor table) {
        checkIds("embeddingForward", ids, table.dim(0));
        embeddingForward(cx.parallel(), out, ids, table);
    }

    static void embeddingBackward(OpContext cx, Tensor dtable, Tensor dout, Tensor ids) {
        checkIds("embeddingBackward", ids, dtable.dim(0));
        if (cx.vector()) embeddingBackwardVector(dtable, dout, ids, cx.pool());
        else embeddingBackwardScalar(dtable, dout, ids);
    }

    static void gatherRowsForward(OpContext cx, Tensor out, Tensor x, Tensor index) {
        checkIds("gatherRowsForward", index, x.dim(1));
        gatherRowsForward(out, x, index);
    }

    static void gatherRowsBackward(OpContext cx, Tensor dx, Tensor dout, Tensor index) {
        checkIds("gatherRowsBackward", index, dx.dim(1));
        gatherRowsBackward(cx.vector(), dx, dout, index);
    }

    /** Every id in [0, limit), checked before anything is written. */
    private static void checkIds(String op, Tensor ids, int limit) {
        int[] a = ids.i32();
        int o = ids.offset(), n = ids.size();
        for (int i = 0; i < n; i++) {
            int id = a[o + i];
            if (id < 0 || id >= limit) {
                throw new IllegalArgumentException(op + ": index " + id + " at position " + i + " of " + ids.shapeString()
                        + " is outside [0, " + limit + ")");
            }
        }
    }

    /** out (N, C) = table (V, C) rows at ids (N); pool null: serial. */
    private static void embeddingForward(ComputePool pool, Tensor out, Tensor ids, Tensor table) {
        int c = table.dim(1), n = ids.size();
        int[] id = ids.i32();
        float[] o = out.f32(), tb = table.f32();
        int io = ids.offset(), oo = out.offset(), to0 = table.offset();
        Parallel.Range body = (from, to) -> {
            for (int i = from; i < to; i++) System.arraycopy(tb, to0 + id[io + i] * c, o, oo + i * c, c);
        };
        if (pool == null) body.run(0, n);
        else Parallel.range(pool, n, Math.max(1, GRAIN / Math.max(1, c)), body);
    }

    private static void embeddingBackwardScalar(Tensor dtable, Tensor dout, Tensor ids) {
        int c = dtable.dim(1), n = ids.size();
        int[] id = ids.i32();
        float[] d = dtable.f32(), g = dout.f32();
        for (int i = 0; i < n; i++) {
            int row = dtable.offset() + id[ids.offset() + i] * c;
            for (int j = 0; j < c; j++) d[row + j] += g[dout.offset() + i * c + j];
        }
    }

    /** Parallel over column chunks: each chunk scatters every token, so repeated ids never race. */
    private static void embeddingBackwardVector(Tensor dtable, Tensor dout, Tensor ids, ComputePool pool) {
        int c = dtable.dim(1), n = ids.size();
        int[] id = ids.i32();
        float[] d = dtable.f32(), g = dout.f32();
        int dOff = dtable.offset(), go = dout.offset(), io = ids.offset();
        Parallel.range(pool, c, Math.max(Vec.L * 4, GRAIN / Math.max(1, n)), (from, to) -> {
            for (int i = 0; i < n; i++) Vec.axpy(1f, g, go + i * c + from, d, dOff + id[io + i] * c + from, to - from);
        });
    }

    /** out (B, C) = x (B, T, C) at row index[b]. */
    private static void gatherRowsForward(Tensor out, Tensor x, Tensor index) {
        int b = x.dim(0), t = x.dim(1), c = x.dim(2);
        for (int bi = 0; bi < b; bi++) {
            int row = index.i32()[index.offset() + bi];
            System.arraycopy(x.f32(), x.offset() + (bi * t + row) * c, out.f32(), out.offset() + bi * c, c);
        }
    }

    /** dx (B, T, C) += dout (B, C) at row index[b]. */
    private static void gatherRowsBackward(boolean vector, Tensor dx, Tensor dout, Tensor index) {
        int b = dx.dim(0), t = dx.dim(1), c = dx.dim(2);
        float[] d = dx.f32(), g = dout.f32();
        for (int bi = 0; bi < b; bi++) {
            int row = dx.offset() + (bi * t + index.i32()[index.offset() + bi]) * c, src = dout.offset() + bi * c;
            if (vector) {
                Vec.axpy(1f, g, src, d, row, c);
            } else {
                for (int j = 0; j < c; j++) d[row + j] += g[src + j];
            }
        }
    }
}
