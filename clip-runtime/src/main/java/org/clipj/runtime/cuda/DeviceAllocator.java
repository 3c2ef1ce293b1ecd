package org.clipj.runtime.cuda;

import java.lang.ref.Cleaner;
import java.util.ArrayDeque;
import java.util.HashMap;
import java.util.Map;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.function.LongConsumer;
import java.util.function.LongUnaryOperator;
import java.util.function.Supplier;

import org.clipj.cuda.CudaDriver;
import org.clipj.cuda.CudaErrors;
import org.clipj.cuda.CudaException;

/**
 * Caching device allocator with size-class free lists (as PyTorch's caching allocator, much smaller):
 * a request is rounded up to its size class (256-byte granularity below 1 MiB; powers of two times
 * {1, 1.25, 1.5, 1.75} above), served from that class's free list when possible, else allocated from
 * the driver. A block goes back to its free list when the last tensor view over it becomes
 * unreachable (a {@link Cleaner} queues it; the owning backend drains the queue on its own thread),
 * or at once through {@link #release}. Reuse is safe without events because every kernel of a
 * backend runs in order on that backend's single stream. The driver is told how much of each block is
 * in use ({@link CudaDriver#memUsable}: the simulator checks accesses to the slack and to idle blocks).
 * When the driver is out of memory, the idle blocks go back to it and the allocation is tried once more;
 * a second failure is a {@link CudaOutOfMemoryException} with the pool's state.
 */
final class DeviceAllocator implements AutoCloseable {
    private static final Cleaner CLEANER = Cleaner.create();
    private static final long SMALL_LIMIT = 1L << 20;
    private static final long SMALL_GRANULE = 256;

    /** One driver allocation; tensors keep it reachable through {@code Tensor.owner()}. */
    static final class Block {
        final long address;
        final long bytes;
        private final Returned returned;

        private Block(long address, long bytes, Returned returned) {
            this.address = address;
            this.bytes = bytes;
            this.returned = returned;
        }
    }

    /** The cleaning action: must not reference its Block. */
    private static final class Returned implements Runnable {
        private final ConcurrentLinkedQueue<long[]> queue;
        private final long address;
        private final long bytes;
        private volatile boolean released;

        Returned(ConcurrentLinkedQueue<long[]> queue, long address, long bytes) {
            this.queue = queue;
            this.address = address;
            this.bytes = bytes;
        }

        @Override
        public void run() {
            if (!released) {
                released = true;
                queue.add(new long[] {address, bytes});
            }
        }
    }

    /** {@link CudaDriver#memUsable}. */
    interface UsableBytes {
        void mark(long address, long bytes);
    }

    private final LongUnaryOperator driverAlloc;
    private final LongConsumer driverFree;
    private final UsableBytes usable;
    private final long deviceBytes;
    private final Map<Long, ArrayDeque<Long>> freeLists = new HashMap<>();
    private final ConcurrentLinkedQueue<long[]> returned = new ConcurrentLinkedQueue<>();
    private long allocatedBytes;  // held from the driver
    private long cachedBytes;     // of which idle in free lists
    private long driverAllocations;

    DeviceAllocator(LongUnaryOperator driverAlloc, LongConsumer driverFree, UsableBytes usable, long deviceBytes) {
        this.driverAlloc = driverAlloc;
        this.driverFree = driverFree;
        this.usable = usable;
        this.deviceBytes = deviceBytes;
    }

    /** The size class a request of {@code bytes} is served from. */
    static long sizeClass(long bytes) {
        long b = Math.max(bytes, 1);
        if (b <= SMALL_LIMIT) {
            return (b + SMALL_GRANULE - 1) / SMALL_GRANULE * SMALL_GRANULE;
        }
        long pow = Long.highestOneBit(b);
        long quarter = pow / 4;
        return (b + quarter - 1) / quarter * quarter;
    }

    /** A block of at least {@code bytes}; {@code op} names the clipj op for an out-of-memory error. */
    synchronized Block allocate(long bytes, Supplier<String> op) {
        drainReturned();
        long size = sizeClass(bytes);
        ArrayDeque<Long> list = freeLists.get(size);
        long address;
        if (list != null && !list.isEmpty()) {
            address = list.pop();
            cachedBytes -= size;
        } else {
            address = allocateFromDriver(size, bytes, op);
        }
        usable.mark(address, Math.max(bytes, 0));
        Returned action = new Returned(returned, address, size);
        Block block = new Block(address, size, action);
        CLEANER.register(block, action);
        return block;
    }

    private long allocateFromDriver(long size, long bytes, Supplier<String> op) {
        long address;
        try {
            address = driverAlloc.applyAsLong(size);
        } catch (CudaException e) {
            if (e.status() != CudaErrors.CUDA_ERROR_OUT_OF_MEMORY) throw e;
            // Give the cached blocks back to the driver and try once more.
            trim();
            try {
                address = driverAlloc.applyAsLong(size);
            } catch (CudaException again) {
                if (again.status() != CudaErrors.CUDA_ERROR_OUT_OF_MEMORY) throw again;
                throw new CudaOutOfMemoryException(op.get(), bytes, size, allocatedBytes, cachedBytes, deviceBytes, again);
            }
        }
        allocatedBytes += size;
        driverAllocations++;
        return address;
    }

    /** Returns a block to its free list now (its tensors must not be used afterwards). */
    synchronized void release(Block block) {
        block.returned.run();
        drainReturned();
    }

    private void drainReturned() {
        long[] r;
        while ((r = returned.poll()) != null) {
            usable.mark(r[0], -1);
            freeLists.computeIfAbsent(r[1], k -> new ArrayDeque<>()).push(r[0]);
            cachedBytes += r[1];
        }
    }

    /** Frees every idle cached block back to the driver. */
    synchronized void trim() {
        drainReturned();
        for (Map.Entry<Long, ArrayDeque<Long>> e : freeLists.entrySet()) {
            for (long address : e.getValue()) {
                driverFree.accept(address);
                allocatedBytes -= e.getKey();
                cachedBytes -= e.getKey();
            }
            e.getValue().clear();
        }
    }

    synchronized long cachedBytes() {
        drainReturned();
        return cachedBytes;
    }

    synchronized long driverAllocations() {
        return driverAllocations;
    }

    /** Frees the cached blocks; blocks still in use die with the context. */
    @Override
    public synchronized void close() {
        trim();
    }
}
