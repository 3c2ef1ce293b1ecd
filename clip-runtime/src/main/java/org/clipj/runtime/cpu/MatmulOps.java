package org.clipj.runtime.cpu;

import org.clipj.runtime.Activation;
import org.clipj.runtime.Tensor;

/**
 * The matmul family (cuBLASLt on CUDA, no .cu file): matmul and the linear layers on top of {@link Sgemm},
 * and the packed panels of {@code prepareWeight} (held by the prepared tensor itself). The scalar reference path uses
 * {@link Sgemm#sgemmReference} (a plain triple loop accumulating in double).
 */
final class MatmulOps {
    private MatmulOps() {}

    /** c = alpha op(a) op(b) + beta c for one row-major matrix product; !vector: the scalar reference. */
    static void gemm(OpContext cx, boolean transA, boolean transB, int m, int n, int k, float alpha,
                     float[] a, int aOff, int lda, float[] b, int bOff, int ldb, float beta, float[] c, int cOff, int ldc) {
        if (cx.vector()) Sgemm.sgemm(transA, transB, m, n, k, alpha, a, aOff, lda, b, bOff, ldb, beta, c, cOff, ldc, cx.pool());
        else Sgemm.sgemmReference(transA, transB, m, n, k, alpha, a, aOff, lda, b, bOff, ldb, beta, c, cOff, ldc);
    }

    /** c (batch, M, N) from a (batch, M, K) or (batch, K, M) and b (batch, K, N) or (batch, N, K); batch 1 for 2-D. */
    static void matmul(OpContext cx, Tensor c, Tensor a, boolean transA, Tensor b, boolean transB,
                       float alpha, float beta) {
        int r = c.rank();
        int batch = r == 3 ? c.dim(0) : 1;
        int m = c.dim(-2), n = c.dim(-1);
        int k = transA ? a.dim(-2) : a.dim(-1);
        int lda = a.dim(-1), ldb = b.dim(-1);
        float[] av = a.f32(), bv = b.f32(), cv = c.f32();
        for (int i = 0; i < batch; i++) {
            gemm(cx, transA, transB, m, n, k, alpha,
                    av, a.offset() + i * m * k, lda, bv, b.offset() + i * k * n, ldb,
                    beta, cv, c.offset() + i * m * n, n);
        }
    }

    /**
     * out (N, O) = activation(x (N, I) @ w (O, I)^T + bias (O)) + residual (N, O); bias, activation and
     * residual may each be null. packed: w's panels from prepareWeight (fast path only), or null. The
     * fast path applies bias, activation and residual to each GEMM tile as it finishes (Sgemm's
     * epilogue); the scalar reference after the whole product.
     */
    static void linearForward(OpContext cx, Tensor out, Tensor x, Tensor w, Sgemm.PackedB packed,
                              Tensor bias, Activation activation, Tensor residual) {
        int o = w.dim(0), in = w.dim(1), rows = Shapes.rows(x);
        float[] ov = out.f32();
        int oo = out.offset();
        if (cx.vector()) {
            ComputePool pool = cx.pool();
            Sgemm.Epilogue epilogue = bias == null && activation == null && residual == null ? null
                    : new Sgemm.Epilogue(bias == null ? null : bias.f32(), bias == null ? 0 : bias.offset(), activation,
                            residual == null ? null : residual.f32(), residual == null ? 0 : residual.offset(), o);
            if (packed != null) Sgemm.sgemm(rows, o, in, 1f, x.f32(), x.offset(), in, packed, 0f, ov, oo, o, pool, epilogue);
            else Sgemm.sgemm(false, true, rows, o, in, 1f, x.f32(), x.offset(), in, w.f32(), w.offset(), in, 0f, ov, oo, o,
                    pool, epilogue);
            return;
        }
        Sgemm.sgemmReference(false, true, rows, o, in, 1f, x.f32(), x.offset(), in, w.f32(), w.offset(), in, 0f, ov, oo, o);
        float[] bv = bias == null ? null : bias.f32();
        float[] rv = residual == null ? null : residual.f32();
        for (int r = 0; r < rows; r++) {
            for (int j = 0; j < o; j++) {
                float v = ov[oo + r * o + j];
                if (bv != null) v += bv[bias.offset() + j];
                if (activation == Activation.QUICK_GELU) v = ElementwiseOps.quickGelu(v);
                else if (activation == Activation.GELU) v = ElementwiseOps.gelu(v);
                if (rv != null) v += rv[residual.offset() + r * o + j];
                ov[oo + r * o + j] = v;
            }
        }
    }

    /** dx (N, I) += dout (N, O) @ w (O, I); dw (O, I) += dout^T @ x; dbias (O) += sum_rows(dout). */
    static void linearBackward(OpContext cx, Tensor dx, Tensor dw, Tensor dbias, Tensor dout,
                               Tensor x, Tensor w) {
        int o = w.dim(0), in = w.dim(1), rows = Shapes.rows(dout);
        float[] g = dout.f32();
        int go = dout.offset();
        if (dx != null) {
            gemm(cx, false, false, rows, in, o, 1f, g, go, o, w.f32(), w.offset(), in, 1f, dx.f32(), dx.offset(), in);
        }
        if (dw != null) {
            gemm(cx, true, false, o, in, rows, 1f, g, go, o, x.f32(), x.offset(), in, 1f, dw.f32(), dw.offset(), in);
        }
        if (dbias != null) {
            ElementwiseOps.broadcastAddBackward(cx, dbias, dout.reshape(rows, o));
        }
    }

    /**
     * w (O, I...) packed into GEMM panels as op(B) = w^T (I, O): a prepared tensor that holds only the
     * panels (vector path), so no row-major copy of w is kept beside them.
     */
    static Tensor prepare(Tensor w) {
        int o = w.dim(0), in = (int) (w.numel() / o);
        return Tensor.prepared(w.dtype(), Sgemm.pack(true, o, in, w.f32(), w.offset(), in), w.shape());
    }

    /** w's packed panels when w came from {@link #prepare}, else null (packed per call). */
    static Sgemm.PackedB panels(Tensor w) {
        return w.preparedForm() instanceof Sgemm.PackedB packed ? packed : null;
    }
}
