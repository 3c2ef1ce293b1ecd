package org.clipj.runtime.cuda;

import java.lang.foreign.MemorySegment;

import org.clipj.cuda.CudaDriver;
import org.clipj.cuda.CudaException;

/**
 * The backend's one stream and its state: open or closed, capturing a graph or not, and the debug mode
 * {@code -Dclip.cuda.sync=true} (synchronize after every launch and GEMM so that an asynchronous fault
 * is reported under the op that caused it). Every launch, copy and memset of a backend goes through here,
 * in order, so reusing a freed block needs no events.
 */
final class CudaStream {
    final CudaDriver driver;
    final long handle;
    private final boolean syncEveryLaunch;
    private boolean capturing;
    private boolean closed;

    CudaStream(CudaDriver driver) {
        this.driver = driver;
        this.handle = driver.streamCreate();
        this.syncEveryLaunch = Boolean.getBoolean("clip.cuda.sync");
    }

    void checkOpen() {
        if (closed) throw new IllegalStateException("CudaBackend is closed");
    }

    boolean capturing() {
        return capturing;
    }

    void setCapturing(boolean capturing) {
        this.capturing = capturing;
    }

    /** clip.cuda.sync (outside a capture): waits for the op just issued, so that a fault is reported under its own name. */
    void checkedAfter(String op) {
        if (!syncEveryLaunch || capturing) return;
        try {
            driver.streamSynchronize(handle, op);
        } catch (CudaException e) {
            throw new CudaException(op + " (clip.cuda.sync: checked right after its launch): " + e.getMessage(), e);
        }
    }

    void synchronize() {
        checkOpen();
        driver.streamSynchronize(handle, "synchronize");
    }

    void memsetZero(long address, long bytes) {
        checkOpen();
        if (bytes > 0) driver.memsetD8(address, (byte) 0, bytes, handle, "memset");
    }

    void copyHostToDevice(long dst, MemorySegment src, long bytes) {
        checkOpen();
        driver.memcpyHtoD(dst, src, bytes, handle, "upload");
    }

    void copyDeviceToHost(MemorySegment dst, long src, long bytes) {
        checkOpen();
        driver.memcpyDtoH(dst, src, bytes, handle, "download");
    }

    void copyDeviceToDevice(long dst, long src, long bytes) {
        checkOpen();
        if (bytes > 0) driver.memcpyDtoD(dst, src, bytes, handle, "copy");
    }

    /** Waits for the work queued so far and marks the stream closed; the caller frees what used it, then calls {@link #destroy}. */
    void close() {
        try {
            driver.streamSynchronize(handle, "close");
        } finally {
            closed = true;
        }
    }

    void destroy() {
        driver.streamDestroy(handle);
    }
}
