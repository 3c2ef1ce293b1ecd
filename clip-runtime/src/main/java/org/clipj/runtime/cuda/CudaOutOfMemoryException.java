package org.clipj.runtime.cuda;

import org.clipj.cuda.CudaErrors;
import org.clipj.cuda.CudaException;

/**
 * The device had no memory for an allocation even after the caching allocator gave its idle blocks back
 * to the driver and tried once more. Names the op, the bytes asked and the pool's state at the failure.
 */
public final class CudaOutOfMemoryException extends CudaException {
    private final String op;
    private final long requestedBytes;

    CudaOutOfMemoryException(String op, long requestedBytes, long sizeClass, long heldBytes, long cachedBytes, long deviceBytes,
                             CudaException cause) {
        super("CUDA out of memory in " + op + ": " + requestedBytes + " bytes asked (" + sizeClass + "-byte size class); the pool holds "
                + mib(heldBytes) + " from the driver, all in use (" + mib(cachedBytes) + " idle after its cache was released and the "
                + "allocation retried once), of the device's " + mib(deviceBytes) + ". Use a smaller batch, or free tensors "
                + "(CudaBackend.release) before this op [" + cause.getMessage() + "]", cause);
        this.op = op;
        this.requestedBytes = requestedBytes;
    }

    private static String mib(long bytes) {
        return String.format(java.util.Locale.ROOT, "%.1f MiB", bytes / 1048576.0);
    }

    /** The clipj op that asked (the CudaBackend method, e.g. "attentionForward"). */
    public String op() { return op; }

    public long requestedBytes() { return requestedBytes; }

    @Override public String call() { return "cuMemAlloc"; }

    @Override public int status() { return CudaErrors.CUDA_ERROR_OUT_OF_MEMORY; }

    @Override public String errorName() { return CudaErrors.name(CudaErrors.CUDA_ERROR_OUT_OF_MEMORY); }
}
