package org.clipj.cuda;

/** {@link Blas} on the simulator: sim_gemm, a plain C loop with F32 accumulation, run on the launching thread. */
public final class SimBlas implements Blas {
    private final SimCudaDriver driver;

    public SimBlas(SimCudaDriver driver) {
        this.driver = driver;
    }

    @Override
    public void matmul(boolean transA, boolean transB, int m, int n, int k, float alpha, long a, int lda, long b, int ldb,
                       float beta, long c, long d, int ldc, long bias, Type in, Type out, int batch, long strideA, long strideB,
                       long strideC, long stream, String op) {
        if (in == Type.F32 && out != Type.F32)
            throw new IllegalArgumentException(op + ": F32 inputs need an F32 output (got " + out + ")");
        driver.submitOp(stream, () -> {
            int rc = driver.gemm(transA ? 1 : 0, transB ? 1 : 0, m, n, k, alpha, a, in.ordinal(), lda, strideA, b,
                    in.ordinal(), ldb, strideB, beta, c, d, out.ordinal(), ldc, strideC, bias, out.ordinal(), batch);
            if (rc != 0) throw new CudaException("sim_gemm", rc, "SIM_GEMM_ERROR", op + ": " + driver.simLastError());
        });
    }

    @Override
    public void close() {}
}
