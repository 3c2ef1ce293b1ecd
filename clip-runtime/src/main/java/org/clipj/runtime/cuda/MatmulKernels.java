package org.clipj.runtime.cuda;

import org.clipj.cuda.Blas;
import org.clipj.cuda.CudaException;
import org.clipj.runtime.Activation;
import org.clipj.runtime.Tensor;

/**
 * GEMMs through {@link Blas} (cuBLASLt; a plain C GEMM on the simulator), no kernels of our own: matmul and the
 * linear layers, whose forward and backward take BF16/F16 weights for mixed-precision inference and training (the
 * F32 operands are cast to the weight's type, the GEMM accumulates in F32 and writes F32, + F32 bias). F32 GEMMs
 * run in full F32 unless the backend was opened with TF32 (cuBLASLt's COMPUTE_32F_FAST_TF32; the simulator's GEMM
 * stays F32).
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
        int o = w.dim(0), in = w.dim(1), n = Math.toIntExact(x.numel() / in);
        Tensor xw = elementwise.castLike(x, w);
        gemm("linearForward", false, true, n, o, in, 1f, xw.deviceAddress(), in, 0, w.deviceAddress(), in, 0, 0f,
                out.deviceAddress(), o, 0, KernelLauncher.address(bias), 1, gemmInputType(w));
        if (xw != x) memory.release(xw);
    }

    /**
     * out = activation(x @ w^T + bias): the GEMM, then the bias and the activation in one elementwise pass
     * (quickgelu_forward_bias, gelu_forward_bias); without a bias the plain activation kernel.
     */
    void linearActivationForward(Tensor out, Tensor x, Tensor w, Tensor bias, Activation activation) {
        linearForward(out, x, w, null);
        boolean quickGelu = activation == Activation.QUICK_GELU;
        if (bias == null && quickGelu) elementwise.quickgeluForward(out, out);
        else if (bias == null) elementwise.geluForward(out, out);
        else if (quickGelu) elementwise.quickgeluForwardBias(out, out, bias);
        else elementwise.geluForwardBias(out, out, bias);
    }

    /** out = x @ w^T + bias + residual: the GEMM, then the add. */
    void linearResidualForward(Tensor out, Tensor x, Tensor w, Tensor bias, Tensor residual) {
        linearForward(out, x, w, bias);
        elementwise.add(out, out, residual);
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
        stream.checkOpen();
        if (m == 0 || n == 0) return;
        try {
            blas.matmul(transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc, bias, in, Blas.Type.F32, batch,
                    strideA, strideB, strideC, stream.handle, op);
        } catch (CudaException e) {
            throw new CudaException(op + ": " + e.getMessage(), e);
        }
        stream.checkedAfter(op + " (GEMM)");
    }

    /** The GEMM input type of a forward weight: F32, or BF16/F16 for the weight copies of mixed-precision inference. */
    static Blas.Type gemmInputType(Tensor w) {
        return switch (w.dtype()) {
            case F32 -> Blas.Type.F32;
            case BF16 -> Blas.Type.BF16;
            case F16 -> Blas.Type.F16;
            default -> throw new IllegalArgumentException("GEMM: weight " + w.shapeString() + " must be F32, BF16 or F16, got " + w.dtype());
        };
    }

    void close() {
        blas.close();
    }
}
