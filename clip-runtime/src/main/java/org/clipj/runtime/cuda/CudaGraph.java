package org.clipj.runtime.cuda;

import java.util.List;

/**
 * An instantiated CUDA graph of a backend ({@link CudaBackend#capture}): the launches and copies a body issued,
 * replayed with the same shapes and device addresses. The blocks allocated during the capture stay reserved for
 * the graph until it is closed. Tests capture and replay on the simulator; issue 18's bundle times the batch-1
 * encoders with it.
 */
public final class CudaGraph implements AutoCloseable {
    private final CudaBackend backend;
    private final CudaStream stream;
    private final long exec;
    private final List<DeviceAllocator.Block> blocks; // allocated during capture: reused by nothing else
    private boolean closed;

    private CudaGraph(CudaBackend backend, CudaStream stream, long exec, List<DeviceAllocator.Block> blocks) {
        this.backend = backend;
        this.stream = stream;
        this.exec = exec;
        this.blocks = blocks;
    }

    /**
     * Records every launch and copy that {@code body} issues on the backend's stream into a CUDA graph (the
     * simulator records the launch list) without running them (called under the backend's lock). For fixed-shape
     * inference: allocate the inputs and outputs first, capture the forward once, then upload new inputs into the
     * same tensors (with {@link CudaBackend#copy}) and replay. Ops with a sync point (download, the loss, sums)
     * cannot be captured; gathers skip their index check while capturing. Run the body once before capturing it
     * so the allocator's cache already holds its temporaries (a driver allocation inside a capture is not allowed
     * by CUDA). Every block allocated during the capture stays reserved for the graph (even if released) until
     * the graph is closed.
     */
    static CudaGraph capture(CudaBackend backend, CudaStream stream, DeviceMemory memory, Runnable body) {
        stream.checkOpen();
        if (stream.capturing()) throw new IllegalStateException("capture: already capturing");
        memory.beginCapture();
        stream.setCapturing(true);
        stream.driver.streamBeginCapture(stream.handle);
        try {
            body.run();
        } catch (RuntimeException | Error failure) {
            // End the capture so the stream is usable again, but throw what went wrong in the body: the
            // driver's "capture invalidated" that follows is only a consequence.
            stream.setCapturing(false);
            memory.endCapture();
            try {
                stream.driver.graphDestroy(stream.driver.streamEndCaptureAndInstantiate(stream.handle));
            } catch (RuntimeException end) {
                failure.addSuppressed(end);
            }
            throw failure;
        }
        stream.setCapturing(false);
        List<DeviceAllocator.Block> blocks = memory.endCapture();
        return new CudaGraph(backend, stream, stream.driver.streamEndCaptureAndInstantiate(stream.handle), blocks);
    }

    /** Launches the recorded work on the backend's stream (asynchronous). */
    public void replay() {
        synchronized (backend) {
            if (closed) throw new IllegalStateException("graph already closed");
            stream.checkOpen();
            stream.driver.graphLaunch(exec, stream.handle);
        }
    }

    @Override
    public void close() {
        synchronized (backend) {
            if (!closed) {
                closed = true;
                stream.driver.graphDestroy(exec);
                blocks.clear(); // the blocks return to the allocator once their tensors are unreachable too
            }
        }
    }
}
