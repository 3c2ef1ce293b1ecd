package org.clipj.runtime.cpu;

import org.clipj.runtime.Activation;
import org.clipj.runtime.DType;
import org.clipj.runtime.Tensor;

/**
 * Linear layers with BF16 weights on the CPU: out (N, O) = epilogue(x (N, I) @ w (O, I)^T) with x and
 * out F32, w BF16, products of BF16 values accumulated in F32; the ViT patch embedding's GEMM (w
 * (O, Ci, p, p) seen as (O, Ci p p), {@link ConvOps#patchEmbedForwardBf16}) runs through it too. The fast path runs the native
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

    /** w (O, ...) as (O, the rest): a linear weight, or a patch embedding's (O, Ci, p, p). */
    private static Bf16Gemm.PackedWeight pack(Tensor w) {
        return Bf16Gemm.pack(w.bits16(), w.offset(), w.dim(0), Math.toIntExact(w.numel() / w.dim(0)));
    }

    /** w's panels from prepare, or packed now for one call when w did not come from prepare. */
    static Bf16Gemm.PackedWeight panels(Tensor w) {
        return w.preparedForm() instanceof Bf16Gemm.PackedWeight pw ? pw : pack(w);
    }

    /** The linear ops' shared body for a BF16 w; arguments were checked by OpChecks. */
    static void forward(OpContext cx, Tensor out, Tensor x, Tensor w, Tensor bias, Activation activation, Tensor residual) {
        if (!cx.vector()) {
            reference(out, x, w, bias, activation, residual);
            return;
        }
        float[] bv = bias == null ? null : bias.f32(), rv = residual == null ? null : residual.f32();
        multiply(cx.pool(), x.f32(), x.offset(), Shapes.rows(x), panels(w), out.f32(), out.offset(),
                bv, bias == null ? 0 : bias.offset(), rv, residual == null ? 0 : residual.offset(), activation);
    }

    /**
     * out (m, n) = epilogue(x (m, k) @ w^T) on the pool, for x from x[xo] with row stride k and out from
     * out[oo] with row stride n (n, k: the packed weight's); bias and residual may be null.
     */
    static void multiply(ComputePool pool, float[] xv, int xo, int m, Bf16Gemm.PackedWeight weights, float[] ov, int oo,
                         float[] bv, int bo, float[] rv, int ro, Activation activation) {
        int n = weights.n(), k = weights.k();
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
        MatmulOps.linearForward(new OpContext(null, false), out, roundedToBf16(x), widened(w), null, bias, activation, residual);
    }

    /** A contiguous F32 copy of x with every value rounded to BF16 (what the kernel multiplies). */
    static Tensor roundedToBf16(Tensor x) {
        float[] xs = x.f32();
        float[] rounded = new float[x.size()];
        for (int i = 0; i < rounded.length; i++) rounded[i] = DType.bf16ToFloat(DType.floatToBf16(xs[x.offset() + i]));
        return Tensor.of(rounded, x.shape());
    }

    /** A contiguous F32 copy of the BF16 w, same shape. */
    static Tensor widened(Tensor w) {
        short[] bits = w.bits16();
        float[] wide = new float[w.size()];
        for (int i = 0; i < wide.length; i++) wide[i] = DType.bf16ToFloat(bits[w.offset() + i]);
        return Tensor.of(wide, w.shape());
    }
}
