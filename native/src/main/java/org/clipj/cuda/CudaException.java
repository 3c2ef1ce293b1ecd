package org.clipj.cuda;

/**
 * A CUDA (driver, cuBLASLt, NVRTC or simulator) call that did not succeed: names the call, the error
 * (e.g. CUDA_ERROR_ILLEGAL_ADDRESS), its status code and the clipj op that issued it.
 */
public class CudaException extends RuntimeException {
    private final String call;
    private final int status;
    private final String errorName;

    public CudaException(String call, int status, String errorName, String op) {
        super(call + " failed: " + errorName + " (" + status + ")" + (op == null || op.isEmpty() ? "" : " in " + op));
        this.call = call;
        this.status = status;
        this.errorName = errorName;
    }

    /** A failure that has no status code: a missing library, an absent device, a bad argument. */
    public CudaException(String message) {
        this(message, null);
    }

    public CudaException(String message, Throwable cause) {
        super(message, cause);
        this.call = null;
        this.status = -1;
        this.errorName = null;
    }

    /** The failed call (cuLaunchKernel, cublasLtMatmul, ...), or null for a failure without a status. */
    public String call() { return call; }

    /** The status code the call returned, or -1. */
    public int status() { return status; }

    /** The error's name (CUDA_ERROR_..., CUBLAS_STATUS_..., NVRTC_ERROR_...), or null. */
    public String errorName() { return errorName; }
}
