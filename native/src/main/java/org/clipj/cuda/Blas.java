package org.clipj.cuda;

/**
 * GEMM on the device, row-major like the rest of clipj:
 * <pre>
 *   D[b] (m, n) = alpha * op(A[b]) (m, k) @ op(B[b]) (k, n) + beta * C[b] + bias (n), broadcast over rows
 * </pre>
 * op(X) = X^T when transX. lda/ldb/ldc are the row strides of A, B, C/D as stored (A is (m, k) or, transposed,
 * (k, m)); strides are element offsets between batch entries. A and B share the input type, C and D the
 * output type, layout and strides (C may be D: the in-place form; a separate C is how a residual add rides
 * in the GEMM); products accumulate in F32 (optionally TF32 for F32 inputs). The bias (0 = none) has the
 * output type. beta == 0 never reads C. Implementations: {@link CuBlasLt} (cuBLASLt through FFM) and
 * {@link SimBlas} (the simulator's plain C GEMM).
 */
public interface Blas extends AutoCloseable {

    /** Element types; the ordinals are the simulator's type codes. */
    enum Type {
        F32(4), F16(2), BF16(2);

        public final int bytes;

        Type(int bytes) { this.bytes = bytes; }
    }

    void matmul(boolean transA, boolean transB, int m, int n, int k, float alpha, long a, int lda, long b, int ldb,
                float beta, long c, long d, int ldc, long bias, Type in, Type out, int batch, long strideA, long strideB,
                long strideC, long stream, String op);

    /** In place: D is C. */
    default void matmul(boolean transA, boolean transB, int m, int n, int k, float alpha, long a, int lda, long b, int ldb,
                        float beta, long c, int ldc, long bias, Type in, Type out, int batch, long strideA, long strideB,
                        long strideC, long stream, String op) {
        matmul(transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, c, ldc, bias, in, out, batch, strideA, strideB,
                strideC, stream, op);
    }

    default void matmul(boolean transA, boolean transB, int m, int n, int k, float alpha, long a, int lda, long b,
                        int ldb, float beta, long c, int ldc, long bias, Type in, Type out, long stream, String op) {
        matmul(transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, c, ldc, bias, in, out, 1, 0, 0, 0, stream, op);
    }

    /** Opens the GEMM library that goes with the driver: cuBLASLt for panama/jcuda, the simulator's GEMM for sim. */
    static Blas open(CudaDriver driver, boolean allowTf32) {
        if (driver instanceof SimCudaDriver sim) return new SimBlas(sim);
        return new CuBlasLt(driver, allowTf32);
    }

    @Override
    void close();
}
