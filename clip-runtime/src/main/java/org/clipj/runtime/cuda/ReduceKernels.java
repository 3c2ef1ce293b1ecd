package org.clipj.runtime.cuda;

import static org.clipj.runtime.cuda.KernelLauncher.ELEMENTWISE_THREADS;
import static org.clipj.runtime.cuda.KernelLauncher.ceilDiv;

import java.util.List;

import org.clipj.runtime.DType;
import org.clipj.runtime.Tensor;

/**
 * reduce.cu: whole-tensor reductions for training bookkeeping, which wait for the stream (sync points), and the
 * argmax of each row of token ids, which does not.
 */
final class ReduceKernels {
    static final String SUM_OF_SQUARES = "sum_of_squares";
    static final String HAS_NON_FINITE = "has_non_finite";
    static final String ROW_ARGMAX = "row_argmax";
    static final List<String> KERNELS = List.of(SUM_OF_SQUARES, HAS_NON_FINITE, ROW_ARGMAX);
    private static final int MAX_BLOCKS = 256;

    private final KernelLauncher launcher;
    private final DeviceMemory memory;

    ReduceKernels(KernelLauncher launcher, DeviceMemory memory) {
        this.launcher = launcher;
        this.memory = memory;
    }

    /** The sum of t's squares in double: one partial per block, added on the host. */
    double sumOfSquares(Tensor t) {
        int blocks = blocks(t);
        Tensor partial = memory.empty(DType.I64, blocks); // 8-byte doubles, read back as raw bits
        launcher.launch(SUM_OF_SQUARES, blocks, 1, 1, ELEMENTWISE_THREADS, 1, 1, 0,
                launcher.args().ptr(partial.deviceAddress()).ptr(t.deviceAddress()).i64(t.numel()));
        long[] bits = memory.download(partial).i64();
        memory.release(partial);
        double sum = 0;
        for (long b : bits) sum += Double.longBitsToDouble(b);
        return sum;
    }

    /** Whether t holds a NaN or an infinity. */
    boolean hasNonFinite(Tensor t) {
        memory.clearFlag();
        launcher.launch(HAS_NON_FINITE, blocks(t), 1, 1, ELEMENTWISE_THREADS, 1, 1, 0,
                launcher.args().ptr(memory.flagAddress()).ptr(t.deviceAddress()).i64(t.numel()));
        return memory.readFlag() != 0;
    }

    /** One warp per row. */
    void rowArgmax(Tensor index, Tensor x) {
        launcher.launch(ROW_ARGMAX, x.dim(0), 1, 1, 32, 1, 1, 0,
                launcher.args().ptr(index.deviceAddress()).ptr(x.deviceAddress()).i32(x.dim(1)));
    }

    private static int blocks(Tensor t) {
        return (int) Math.max(1, Math.min(MAX_BLOCKS, ceilDiv(t.numel(), ELEMENTWISE_THREADS)));
    }
}
