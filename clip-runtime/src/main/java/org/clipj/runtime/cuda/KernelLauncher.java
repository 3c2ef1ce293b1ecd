package org.clipj.runtime.cuda;

import java.util.HashMap;
import java.util.Map;

import org.clipj.cuda.CudaDriver;
import org.clipj.cuda.CudaException;
import org.clipj.cuda.KernelArgs;
import org.clipj.runtime.Tensor;

/**
 * Launches the kernels of the backend's module on its stream: the function handles looked up once per
 * name, the one reused argument buffer, the dynamic shared memory opt-in above 48 KiB, and the two
 * launch shapes most kernels share (grid-stride over elements, one warp per row).
 */
final class KernelLauncher {
    static final int ELEMENTWISE_THREADS = 256;
    static final int ROW_THREADS = 128; // 4 warps: one row per warp
    private static final int ELEMENTWISE_MAX_BLOCKS = 4096;
    private static final int DEFAULT_SHARED_LIMIT = 48 * 1024;

    private final CudaStream stream;
    private final long module;
    private final int maxDynamicShared;
    private final KernelArgs args = new KernelArgs(16);
    private final Map<String, CudaDriver.Function> functions = new HashMap<>();
    private final Map<String, Integer> sharedLimits = new HashMap<>(); // dynamic shared memory opted into, per kernel

    KernelLauncher(CudaStream stream, byte[] image) {
        this.stream = stream;
        this.module = stream.driver.moduleLoadData(image);
        this.maxDynamicShared = stream.driver.device().maxSharedPerBlockOptin();
    }

    /** The argument buffer, cleared: fill it and pass it to one launch. */
    KernelArgs args() {
        return args.clear();
    }

    int maxDynamicShared() {
        return maxDynamicShared;
    }

    /** One launch; an empty grid (an empty tensor) launches nothing. */
    void launch(String kernel, long gx, int gy, int gz, int bx, int by, int bz, int sharedBytes, KernelArgs a) {
        stream.checkOpen();
        if (gx < 1 || gy < 1 || gz < 1) return;
        if (sharedBytes > maxDynamicShared) {
            throw new IllegalArgumentException(kernel + ": needs " + sharedBytes + " bytes of shared memory per block, the device allows "
                    + maxDynamicShared);
        }
        CudaDriver.Function f = function(kernel);
        if (sharedBytes > DEFAULT_SHARED_LIMIT && sharedLimits.getOrDefault(kernel, 0) < sharedBytes) {
            stream.driver.funcSetMaxDynamicShared(f, sharedBytes);
            sharedLimits.put(kernel, sharedBytes);
        }
        try {
            stream.driver.launchKernel(f, Math.toIntExact(gx), gy, gz, bx, by, bz, sharedBytes, stream.handle, a);
        } catch (CudaException e) {
            throw new CudaException(kernel + ": " + e.getMessage(), e);
        }
        stream.checkedAfter(kernel);
    }

    /** Grid-stride kernels over n elements. */
    void elementwise(String kernel, long n, KernelArgs a) {
        long blocks = Math.min(ceilDiv(n, ELEMENTWISE_THREADS), ELEMENTWISE_MAX_BLOCKS);
        launch(kernel, blocks, 1, 1, ELEMENTWISE_THREADS, 1, 1, 0, a);
    }

    /** One warp per row, 4 rows per block. */
    void rows(String kernel, int rows, KernelArgs a) {
        launch(kernel, ceilDiv(rows, ROW_THREADS / 32), 1, 1, ROW_THREADS, 1, 1, 0, a);
    }

    void close() {
        stream.driver.moduleUnload(module);
    }

    private CudaDriver.Function function(String kernel) {
        CudaDriver.Function f = functions.get(kernel);
        if (f == null) {
            f = stream.driver.moduleGetFunction(module, kernel);
            functions.put(kernel, f);
        }
        return f;
    }

    static long ceilDiv(long a, long b) {
        return (a + b - 1) / b;
    }

    static int ceilDiv(int a, int b) {
        return (a + b - 1) / b;
    }

    /** A tensor's device address, 0 (a null pointer for the kernel) for an absent optional tensor. */
    static long address(Tensor t) {
        return t == null ? 0L : t.deviceAddress();
    }
}
