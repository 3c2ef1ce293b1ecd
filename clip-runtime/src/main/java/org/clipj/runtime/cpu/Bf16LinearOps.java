package org.clipj.runtime.cpu;

import org.clipj.runtime.Activation;
import org.clipj.runtime.DType;
import org.clipj.runtime.Tensor;

/**
 * Linear layers with BF16 weights on the CPU: out (N, O) = epilogue(x (N, I) @ w (O, I)^T) with x and
 * out F32, w BF16, products of BF16 values accumulated in F32. The fast path runs the native
 * AVX512_BF16 kernel ({@link Bf16Gemm}) on tiles of out spread over the ComputePool, with bias,
 * activation and residual applied in its registers; the scalar reference rounds x to BF16, widens w
 * and runs the F32 reference ({@link MatmulOps#linearForward} on the scalar path), which is exactly
 * the product the instruction computes up to F32 summation order.
 */
final class Bf16LinearOps {
    private static final long SERIAL_FLOPS = 1L << 21;   // below this one thread is faster (as Sgemm)

    private Bf16LinearOps() {}

    /** w (BF16 (O, I), checked by OpChecks) packed now, once: a prepared tensor holding only the native panels. */
    static Tensor prepare(Tensor w) {
        return Tensor.prepared(DType.BF16, pack(w), w.shape());
    }

    private static Bf16Gemm.PackedWeight pack(Tensor w) {
        return Bf16Gemm.pack(w.bits16(), w.offset(), w.dim(0), w.dim(1));
    }

    /** The linear ops' shared body for a BF16 w; arguments were checked by OpChecks. */
    static void forward(OpContext cx, Tensor out, Tensor x, Tensor w, Tensor bias, Activation activation, Tensor residual) {
        if (!cx.vector()) {
            reference(out, x, w, bias, activation, residual);
            return;
        }
        // not from prepareWeight: packed for this call only
        Bf16Gemm.PackedWeight weights = w.preparedForm() instanceof Bf16Gemm.PackedWeight pw ? pw : pack(w);
        int m = Shapes.rows(x), n = w.dim(0), k = w.dim(1);
        float[] xv = x.f32(), ov = out.f32();
        float[] bv = bias == null ? null : bias.f32(), rv = residual == null ? null : residual.f32();
        int xo = x.offset(), oo = out.offset(), bo = bias == null ? 0 : bias.offset(), ro = residual == null ? 0 : residual.offset();
        ComputePool pool = cx.pool();
        int threads = pool.parallelism();
        if (threads <= 1 || 2L * m * n * k < SERIAL_FLOPS) {
            Bf16Gemm.tile(xv, xo, weights, ov, oo, bv, bo, rv, ro, activation, 0, m, 0, n);
            return;
        }
        // Twice as many tiles as threads (both cores stay busy on a shared machine), cut along the
        // longer side so that the activations each tile converts to BF16 are not converted many times.
        int rowPanels = (m + Bf16Gemm.ROWS - 1) / Bf16Gemm.ROWS, colPanels = (n + Bf16Gemm.PANEL - 1) / Bf16Gemm.PANEL;
        int target = 2 * threads;
        int rowTiles, colTiles;
        if (n >= 2 * m) {
            rowTiles = 1;
            colTiles = Math.min(target, colPanels);
        } else if (m >= 2 * n) {
            rowTiles = Math.min(target, rowPanels);
            colTiles = 1;
        } else {
            rowTiles = Math.min(2, rowPanels);
            colTiles = Math.min(Math.max(1, target / rowTiles), colPanels);
        }
        int rows = rowTiles, cols = colTiles;
        pool.run(rows * cols, t -> {
            int ti = t / cols, tj = t % cols;
            int i0 = split(rowPanels, rows, ti) * Bf16Gemm.ROWS, i1 = Math.min(m, split(rowPanels, rows, ti + 1) * Bf16Gemm.ROWS);
            int j0 = split(colPanels, cols, tj) * Bf16Gemm.PANEL, j1 = Math.min(n, split(colPanels, cols, tj + 1) * Bf16Gemm.PANEL);
            if (i0 < i1 && j0 < j1) Bf16Gemm.tile(xv, xo, weights, ov, oo, bv, bo, rv, ro, activation, i0, i1, j0, j1);
        });
    }

    /** First panel of tile t when `panels` panels are shared among `tiles` tiles. */
    private static int split(int panels, int tiles, int t) {
        return (int) ((long) panels * t / tiles);
    }

    /** The scalar reference: the F32 reference linear on BF16-rounded x and the widened w. */
    static void reference(Tensor out, Tensor x, Tensor w, Tensor bias, Activation activation, Tensor residual) {
        float[] xs = x.f32();
        float[] rounded = new float[x.size()];
        for (int i = 0; i < rounded.length; i++) rounded[i] = DType.bf16ToFloat(DType.floatToBf16(xs[x.offset() + i]));
        short[] bits = w.bits16();
        float[] wide = new float[w.size()];
        for (int i = 0; i < wide.length; i++) wide[i] = DType.bf16ToFloat(bits[w.offset() + i]);
        MatmulOps.linearForward(new OpContext(null, false), out, Tensor.of(rounded, x.shape()), Tensor.of(wide, w.shape()), null,
                bias, activation, residual);
    }
}
