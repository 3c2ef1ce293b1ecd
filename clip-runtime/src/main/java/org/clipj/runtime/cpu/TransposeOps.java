package org.clipj.runtime.cpu;

import org.clipj.runtime.Tensor;

/**
 * The transpose family (transpose.cu): a batched transpose (B, M, N) -> (B, N, M), overwriting or
 * accumulating. One loop serves both paths: it has no arithmetic to vectorize, the scalar path runs it
 * serially. Arguments are checked by {@link org.clipj.runtime.OpChecks}.
 */
final class TransposeOps {
    private static final int GRAIN = 1 << 13;

    private TransposeOps() {}

    /** out (B, N, M) = (or +=) x (B, M, N) transposed per batch, in 32 x 32 tiles; serial on the scalar path. */
    static void transpose(OpContext cx, Tensor out, Tensor x, boolean accumulate) {
        ComputePool pool = cx.parallel();
        int b = x.dim(0), m = x.dim(1), n = x.dim(2);
        float[] o = out.f32(), xs = x.f32();
        int oo = out.offset(), xo = x.offset();
        final int tile = 32; // cache blocking: a 32 x 32 tile of both sides stays in L1
        int tilesM = (m + tile - 1) / tile;
        Parallel.range(pool, b * tilesM, Math.max(1, GRAIN / Math.max(1, tile * n)), (from, to) -> {
            for (int t = from; t < to; t++) {
                int bi = t / tilesM, i0 = (t % tilesM) * tile, i1 = Math.min(m, i0 + tile);
                int base = bi * m * n;
                for (int j0 = 0; j0 < n; j0 += tile) {
                    int j1 = Math.min(n, j0 + tile);
                    for (int i = i0; i < i1; i++) {
                        for (int j = j0; j < j1; j++) {
                            int dst = oo + base + j * m + i;
                            float v = xs[xo + base + i * n + j];
                            o[dst] = accumulate ? o[dst] + v : v;
                        }
                    }
                }
            }
        });
    }
}
