package org.clipj.runtime.cuda;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.function.Supplier;

import org.clipj.cuda.CudaException;
import org.clipj.runtime.DType;
import org.clipj.runtime.Device;
import org.clipj.runtime.Tensor;

/**
 * The backend's device memory: tensors from the caching {@link DeviceAllocator}, uploads and downloads
 * through one pinned staging buffer, an 8-byte scratch flag (the error flags of the gathers and the
 * non-finite check) and the blocks a graph capture allocated (owned by the graph; a block released during
 * the capture serves that capture's later allocations, as in eager mode: one stream, so the graph runs in order).
 */
final class DeviceMemory {
    private static final long STAGING_BYTES = 1 << 20;

    private final CudaStream stream;
    private final DeviceAllocator allocator;
    private final DeviceAllocator.Block scratchFlag;
    private final MemorySegment staging;
    private List<DeviceAllocator.Block> captureBlocks; // non-null while capturing
    private Map<DeviceAllocator.Block, Long> captureUsable; // of those, the most bytes any use in the capture asked
    private Map<Long, ArrayDeque<DeviceAllocator.Block>> captureIdle; // released in the capture, by size class
    private List<DeviceAllocator.Block> scopeBlocks; // non-null inside CudaBackend.releasingTemporaries

    DeviceMemory(CudaStream stream) {
        this.stream = stream;
        var driver = stream.driver;
        this.allocator = new DeviceAllocator(bytes -> driver.memAlloc(bytes, "CudaBackend allocation"), driver::memFree,
                driver::memUsable, driver.device().totalMemoryBytes());
        this.scratchFlag = allocator.allocate(8, () -> "open");
        this.staging = driver.hostAllocPinned(STAGING_BYTES);
    }

    /** An uninitialized tensor on the device (an allocation failure names the backend op it serves). */
    Tensor empty(DType dtype, int... shape) {
        long bytes = Tensor.numel(shape) * dtype.byteSize();
        DeviceAllocator.Block block;
        ArrayDeque<DeviceAllocator.Block> idle = captureBlocks != null ? captureIdle.get(DeviceAllocator.sizeClass(bytes)) : null;
        if (idle != null && !idle.isEmpty()) {
            block = idle.pop();
            long usable = Math.max(captureUsable.get(block), bytes);
            captureUsable.put(block, usable);
            stream.driver.memUsable(block.address, usable);
            if (scopeBlocks != null) scopeBlocks.add(block);
            return Tensor.onDevice(Device.CUDA, dtype, block.address, block, shape);
        }
        try {
            block = allocator.allocate(bytes, DeviceMemory::publicOp);
        } catch (CudaException e) {
            if (captureBlocks != null && !(e instanceof CudaOutOfMemoryException)) {
                throw new IllegalStateException("capture: " + publicOp() + " needs " + bytes + " bytes that the allocator's cache "
                        + "does not hold, and CUDA forbids allocating during a capture: run the body once before capturing it", e);
            }
            throw e;
        }
        if (captureBlocks != null) {
            captureBlocks.add(block);
            captureUsable.put(block, bytes);
        }
        if (scopeBlocks != null) scopeBlocks.add(block);
        return Tensor.onDevice(Device.CUDA, dtype, block.address, block, shape);
    }

    Tensor zeros(DType dtype, int... shape) {
        Tensor t = empty(dtype, shape);
        stream.memsetZero(t.deviceAddress(), t.byteSize());
        return t;
    }

    Tensor upload(Tensor host) {
        Tensor t = empty(host.dtype(), host.shape());
        long bytes = host.byteSize();
        MemorySegment src = host.segment();
        for (long done = 0; done < bytes; ) {
            long n = Math.min(bytes - done, staging.byteSize());
            MemorySegment.copy(src, done, staging, 0, n);
            stream.copyHostToDevice(t.deviceAddress() + done, staging, n);
            stream.synchronize(); // the staging buffer is reused by the next chunk
            done += n;
        }
        return t;
    }

    Tensor download(Tensor t) {
        Tensor host = Tensor.zeros(t.dtype(), t.shape());
        long bytes = t.byteSize();
        MemorySegment dst = host.segment();
        for (long done = 0; done < bytes; ) {
            long n = Math.min(bytes - done, staging.byteSize());
            stream.copyDeviceToHost(staging, t.deviceAddress() + done, n);
            stream.synchronize();
            MemorySegment.copy(staging, 0, dst, done, n);
            done += n;
        }
        return host;
    }

    /** Returns a tensor's block to the allocator now; one a capture owns goes back to that capture only. */
    void release(Tensor t) {
        if (t != null && t.owner() instanceof DeviceAllocator.Block block) release(block);
    }

    private void release(DeviceAllocator.Block block) {
        if (captureBlocks != null && captureUsable.containsKey(block)) {
            ArrayDeque<DeviceAllocator.Block> idle = captureIdle.computeIfAbsent(block.bytes, k -> new ArrayDeque<>());
            if (!idle.contains(block)) idle.push(block);
        } else {
            allocator.release(block);
        }
    }

    long flagAddress() {
        return scratchFlag.address;
    }

    void clearFlag() {
        stream.memsetZero(scratchFlag.address, 8);
    }

    /** Waits for the stream and reads the flag's first int. */
    int readFlag() {
        stream.copyDeviceToHost(staging, scratchFlag.address, 4);
        stream.synchronize();
        return staging.get(ValueLayout.JAVA_INT, 0);
    }

    /**
     * Runs body, then releases every block allocated while it ran except the result's: the temporaries of a
     * forward return to the cache at once, not when the collector finds them unreachable.
     */
    Tensor releasingTemporaries(Supplier<Tensor> body) {
        if (scopeBlocks != null) throw new IllegalStateException("releasingTemporaries: already inside one");
        scopeBlocks = new ArrayList<>();
        List<DeviceAllocator.Block> blocks = scopeBlocks;
        Tensor result;
        try {
            result = body.get();
        } finally {
            scopeBlocks = null;
        }
        for (DeviceAllocator.Block block : blocks) {
            if (result == null || block != result.owner()) release(block);
        }
        return result;
    }

    /** From now on every block allocated belongs to the capture. */
    void beginCapture() {
        captureBlocks = new ArrayList<>();
        captureUsable = new HashMap<>();
        captureIdle = new HashMap<>();
    }

    /** The blocks allocated since {@link #beginCapture}. */
    List<DeviceAllocator.Block> endCapture() {
        List<DeviceAllocator.Block> blocks = captureBlocks;
        captureBlocks = null;
        captureUsable = null;
        captureIdle = null;
        return blocks;
    }

    long cachedBytes() {
        return allocator.cachedBytes();
    }

    long driverAllocations() {
        return allocator.driverAllocations();
    }

    void close() {
        allocator.close();
        stream.driver.hostFreePinned(staging);
    }

    /**
     * The public op of the backend that the current allocation serves (the outermost CudaBackend frame of the
     * caller's stack), for error messages; "empty" when a caller allocated directly.
     */
    private static String publicOp() {
        return StackWalker.getInstance(StackWalker.Option.RETAIN_CLASS_REFERENCE).walk(frames -> {
            String op = null;
            for (StackWalker.StackFrame f : (Iterable<StackWalker.StackFrame>) frames::iterator) {
                Class<?> c = f.getDeclaringClass();
                if (c == CudaBackend.class) {
                    if (!f.getMethodName().startsWith("lambda$")) op = f.getMethodName();
                } else if (op != null) {
                    break; // the caller of the outermost backend frame
                }
            }
            return op == null ? "empty" : op;
        });
    }
}
