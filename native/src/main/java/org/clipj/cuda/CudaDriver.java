package org.clipj.cuda;

import java.lang.foreign.MemorySegment;

/**
 * The small part of the CUDA driver API that clipj uses, bound three ways: {@link PanamaCudaDriver}
 * (FFM on libcuda.so.1, the default), {@link JCudaDriver} (JCuda's JNI, for comparison) and
 * {@link SimCudaDriver} (the simulator library: host memory, kernels compiled with g++). Open one with
 * {@link CudaDrivers#open(String, int)}: it has initialized the device and made its primary context current
 * on the opening thread. Device pointers, streams, events, modules and graphs are opaque {@code long}
 * handles; stream 0 is the legacy default stream. Every failure is a {@link CudaException} naming the
 * call and the op; the {@code op} parameters are the clipj op (kernel name, "upload x", ...) for messages.
 * Host memory passed to copies must be native (off-heap) memory, pinned for truly async copies.
 */
public interface CudaDriver extends AutoCloseable {

    record DeviceInfo(int ordinal, String name, int multiprocessors, int computeMajor, int computeMinor,
                      long totalMemoryBytes, int maxSharedPerBlockOptin) {
        public String computeCapability() { return computeMajor + "." + computeMinor; }
    }

    /** A kernel of a loaded module; the name is kept for messages (and is the simulator's key). */
    record Function(long handle, String name) {}

    /** "panama", "jcuda" or "sim". */
    String binding();

    int deviceCount();

    /** The device this driver opened. */
    DeviceInfo device();

    long memAlloc(long bytes, String op);

    void memFree(long devicePointer);

    /**
     * Tells the driver that only the first {@code bytes} of an allocation are in use (the caching allocator
     * serves a request from a larger size class), or, with {@code bytes} < 0, that none is (the block is
     * idle in the cache). The simulator checks accesses against it and fills the bytes as fresh memory;
     * a real driver ignores it.
     */
    default void memUsable(long devicePointer, long bytes) {}

    /** Page-locked host memory of {@code bytes} bytes (for async copies). */
    MemorySegment hostAllocPinned(long bytes);

    void hostFreePinned(MemorySegment pinned);

    void memcpyHtoD(long dst, MemorySegment src, long bytes, long stream, String op);

    void memcpyDtoH(MemorySegment dst, long src, long bytes, long stream, String op);

    void memcpyDtoD(long dst, long src, long bytes, long stream, String op);

    void memsetD8(long dst, byte value, long bytes, long stream, String op);

    void memsetD32(long dst, int value, long count, long stream, String op);

    long streamCreate();

    void streamSynchronize(long stream, String op);

    void streamDestroy(long stream);

    long eventCreate();

    void eventRecord(long event, long stream);

    void eventSynchronize(long event);

    /** Milliseconds between two recorded, completed events. */
    float eventElapsedMs(long start, long end);

    void eventDestroy(long event);

    /** Loads a cubin, fatbin or PTX image. */
    long moduleLoadData(byte[] image);

    void moduleUnload(long module);

    Function moduleGetFunction(long module, String name);

    /** Allows {@code bytes} of dynamic shared memory (needed above 48 KiB). */
    void funcSetMaxDynamicShared(Function function, int bytes);

    void launchKernel(Function function, int gridX, int gridY, int gridZ, int blockX, int blockY, int blockZ,
                      int sharedBytes, long stream, KernelArgs args);

    /** Starts recording the stream's work into a graph (nothing executes until the graph is launched). */
    void streamBeginCapture(long stream);

    /** Ends capture and returns an executable graph. */
    long streamEndCaptureAndInstantiate(long stream);

    void graphLaunch(long graphExec, long stream);

    void graphDestroy(long graphExec);

    /** Name of a CUresult code (cuGetErrorName where the binding has it). */
    String errorName(int status);

    /** Releases the primary context (the driver handle is unusable afterwards). */
    @Override
    void close();
}
