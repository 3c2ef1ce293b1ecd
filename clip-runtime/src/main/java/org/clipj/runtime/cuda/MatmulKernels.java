package org.clipj.runtime.cuda;

import org.clipj.cuda.Blas;
import org.clipj.cuda.CudaException;
import org.clipj.runtime.Activation;
import org.clipj.runtime.DType;
import org.clipj.runtime.Tensor;

/**
 * GEMMs through {@link Blas} (cuBLASLt; a plain C GEMM on the simulator), no kernels of our own: matmul and the
 * linear layers, whose forward and backward take BF16/F16 weights for mixed-precision inference and training. The
 * forward: an F32 input is cast to the weight's type (an input already in it is used as is), the GEMM accumulates in
 * F32 and writes out's type (F32, or the weight's 16-bit type), the bias (out's type) added in cuBLASLt's bias
 * epilogue and a residual (out's type) as the GEMM's C (beta = 1), so a linear layer is one GEMM, plus the
 * activation kernel for a 16-bit linearActivationForward. The backward casts its F32 operands to the weight's type
 * and writes F32 gradients. F32 GEMMs run in full F32 unless the backend was opened with TF32 (cuBLASLt's
 * COMPUTE_32F_FAST_TF32; the simulator's GEMM stays F32).
 */
final class MatmulKernels {
    private final CudaStream stream;
    private final Blas blas;
    private final DeviceMemory memory;
    private final ElementwiseKernels elementwise;

    MatmulKernels(CudaStream stream, Blas blas, DeviceMemory memory, ElementwiseKernels elementwise) {
        this.stream = stream;
        this.blas = blas;
        this.memory = memory;
        this.elementwise = elementwise;
    }

    /** c = alpha op(a) @ op(b) + beta c, all 2-D or all 3-D (batched), F32. */
    void matmul(Tensor c, Tensor a, boolean transA, Tensor b, boolean transB, float alpha, float beta) {
        int batch = c.rank() == 3 ? c.dim(0) : 1;
        int m = transA ? a.dim(-1) : a.dim(-2);
        int k = transA ? a.dim(-2) : a.dim(-1);
        int n = transB ? b.dim(-2) : b.dim(-1);
        gemm("matmul", transA, transB, m, n, k, alpha, a.deviceAddress(), a.dim(-1), (long) a.dim(-2) * a.dim(-1),
                b.deviceAddress(), b.dim(-1), (long) b.dim(-2) * b.dim(-1), beta, c.deviceAddress(), n, (long) m * n, 0, batch,
                Blas.Type.F32);
    }

    /** out (..., O) = x (..., I) @ w (O, I)^T + bias (O, may be null); w F32, BF16 or F16. */
    void linearForward(Tensor out, Tensor x, Tensor w, Tensor bias) {
        linear("linearForward", out, x, w, bias, null);
    }

    /**
     * out = activation(x @ w^T + bias). F32 out: the GEMM, then the bias and the activation in one elementwise
     * pass (quickgelu_forward_bias, gelu_forward_bias; without a bias the plain activation kernel). 16-bit out:
     * the GEMM with its bias epilogue writes 16 bits, then the activation in place (quickgelu_forward_bf16, ...).
     */
    void linearActivationForward(Tensor out, Tensor x, Tensor w, Tensor bias, Activation activation) {
        boolean quickGelu = activation == Activation.QUICK_GELU;
        if (out.dtype() != DType.F32 || bias == null) {
            linearForward(out, x, w, bias);
            if (quickGelu) elementwise.quickgeluForward(out, out);
            else elementwise.geluForward(out, out);
        } else {
            linearForward(out, x, w, null);
            if (quickGelu) elementwise.quickgeluForwardBias(out, out, bias);
            else elementwise.geluForwardBias(out, out, bias);
        }
    }

    /** out = x @ w^T + bias + residual: one GEMM reading the residual as its C (beta = 1). */
    void linearResidualForward(Tensor out, Tensor x, Tensor w, Tensor bias, Tensor residual) {
        linear("linearResidualForward", out, x, w, bias, residual);
    }

    /** out = x @ w^T (+ bias) (+ residual): x cast to w's type unless already in it, out F32 or w's 16-bit type. */
    private void linear(String op, Tensor out, Tensor x, Tensor w, Tensor bias, Tensor residual) {
        int o = w.dim(0), in = w.dim(1), n = Math.toIntExact(x.numel() / in);
        Tensor xw = elementwise.castLike(x, w);
        long c = residual == null ? out.deviceAddress() : residual.deviceAddress();
        gemm(op, false, true, n, o, in, 1f, xw.deviceAddress(), in, 0, w.deviceAddress(), in, 0, residual == null ? 0f : 1f,
                c, out.deviceAddress(), o, 0, KernelLauncher.address(bias), 1, gemmInputType(w), gemmType(out));
        if (xw != x) memory.release(xw);
    }

    /**
     * dx += dout @ w, dw += dout^T @ x, dbias += column sums of dout (each may be null). w F32, or the BF16/F16 copy
     * of mixed-precision training: then dout and x are cast to w's type for the GEMMs (PyTorch autocast's operands),
     * which accumulate in F32 and add F32 results straight into the F32 dx and dw (no rounding of the gradients,
     * no cast pass after); dbias sums the F32 dout.
     */
    void linearBackward(Tensor dx, Tensor dw, Tensor dbias, Tensor dout, Tensor x, Tensor w) {
        int o = w.dim(0), in = w.dim(1), n = Math.toIntExact(x.numel() / in);
        String op = "linearBackward";
        Blas.Type type = gemmInputType(w);
        Tensor doutW = dx != null || dw != null ? elementwise.castLike(dout, w) : dout;
        if (dx != null) {
            gemm(op, false, false, n, in, o, 1f, doutW.deviceAddress(), o, 0, w.deviceAddress(), in, 0, 1f, dx.deviceAddress(), in, 0,
                    0, 1, type);
        }
        if (dw != null) {
            Tensor xw = elementwise.castLike(x, w);
            gemm(op, true, false, o, in, n, 1f, doutW.deviceAddress(), o, 0, xw.deviceAddress(), in, 0, 1f, dw.deviceAddress(), in, 0,
                    0, 1, type);
            if (xw != x) memory.release(xw);
        }
        if (doutW != dout) memory.release(doutW);
        if (dbias != null) elementwise.broadcastAddBackward(dbias, dout);
    }

    /**
     * Row-major GEMM: c = alpha op(a) op(b) + beta c (+ bias (N) on every row when bias != 0); lda/ldb/ldc are
     * row strides, strides the per-batch element strides; a and b of type {@code in}, c and bias F32, F32 accumulate.
     */
    void gemm(String op, boolean transA, boolean transB, int m, int n, int k, float alpha, long a, int lda, long strideA,
              long b, int ldb, long strideB, float beta, long c, int ldc, long strideC, long bias, int batch, Blas.Type in) {
        gemm(op, transA, transB, m, n, k, alpha, a, lda, strideA, b, ldb, strideB, beta, c, c, ldc, strideC, bias, batch, in,
                Blas.Type.F32);
    }

    /** As above with d = alpha op(a) op(b) + beta c (+ bias): c read, d written (they may be one), both and bias of type {@code out}. */
    void gemm(String op, boolean transA, boolean transB, int m, int n, int k, float alpha, long a, int lda, long strideA,
              long b, int ldb, long strideB, float beta, long c, long d, int ldc, long strideC, long bias, int batch,
              Blas.Type in, Blas.Type out) {
        stream.checkOpen();
        if (m == 0 || n == 0) return;
        try {
            blas.matmul(transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, d, ldc, bias, in, out, batch,
                    strideA, strideB, strideC, stream.handle, op);
        } catch (CudaException e) {
            throw new CudaException(op + ": " + e.getMessage(), e);
        }
        stream.checkedAfter(op + " (GEMM)");
    }

    /** The GEMM input type of a forward weight: F32, or BF16/F16 for the weight copies of mixed-precision inference. */
    static Blas.Type gemmInputType(Tensor w) {
        return gemmType(w);
    }

    /** The GEMM type of a weight, input or output: F32, BF16 or F16. */
    static Blas.Type gemmType(Tensor t) {
        return switch (t.dtype()) {
            case F32 -> Blas.Type.F32;
            case BF16 -> Blas.Type.BF16;
            case F16 -> Blas.Type.F16;
            default -> throw new IllegalArgumentException("GEMM: " + t.shapeString() + " must be F32, BF16 or F16, got " + t.dtype());
        };
    }

    void close() {
        blas.close();
    }
}
