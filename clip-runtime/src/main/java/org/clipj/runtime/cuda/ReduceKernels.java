package org.clipj.runtime.cuda;

import static org.clipj.runtime.cuda.KernelLauncher.ELEMENTWISE_THREADS;
import static org.clipj.runtime.cuda.KernelLauncher.ceilDiv;

import java.util.Arrays;
import java.util.List;

import org.clipj.runtime.DType;
import org.clipj.runtime.Tensor;

/**
 * reduce.cu: whole-tensor reductions for training bookkeeping, which wait for the stream (sync points), and the
 * argmax of each row of token ids, which does not.
 */
final class ReduceKernels {
    static final String SUM_OF_SQUARES = "sum_of_squares";
    static final String SUM_OF_SQUARES_ALL_PARTIALS = "sum_of_squares_all_partials";
    static final String SUM_OF_SQUARES_ALL_TOTAL = "sum_of_squares_all_total";
    static final String HAS_NON_FINITE = "has_non_finite";
    static final String ROW_ARGMAX = "row_argmax";
    static final List<String> KERNELS = List.of(SUM_OF_SQUARES, SUM_OF_SQUARES_ALL_PARTIALS, SUM_OF_SQUARES_ALL_TOTAL,
            HAS_NON_FINITE, ROW_ARGMAX);
    private static final int MAX_BLOCKS = 256;

    private final KernelLauncher launcher;
    private final DeviceMemory memory;
    // The device tables of the last sumOfSquaresAll (a training step passes the same gradients every time):
    // (2, T) I64, the addresses then the lengths, and the host copy they were made from.
    private long[] tableKey;
    private Tensor table;

    ReduceKernels(KernelLauncher launcher, DeviceMemory memory) {
        this.launcher = launcher;
        this.memory = memory;
    }

    /** The sum of t's squares in double: one partial per block, added on the host. */
    double sumOfSquares(Tensor t) {
        int blocks = blocks(t.numel());
        Tensor partial = memory.empty(DType.I64, blocks); // 8-byte doubles, read back as raw bits
        launcher.launch(SUM_OF_SQUARES, blocks, 1, 1, ELEMENTWISE_THREADS, 1, 1, 0,
                launcher.args().ptr(partial.deviceAddress()).ptr(t.deviceAddress()).i64(t.numel()));
        long[] bits = memory.download(partial).i64();
        memory.release(partial);
        double sum = 0;
        for (long b : bits) sum += Double.longBitsToDouble(b);
        return sum;
    }

    /**
     * The sum of the squares of every element of every tensor, in double: two launches (per-block partials of all
     * tensors, then their total on the device) and one 8-byte read.
     */
    double sumOfSquaresAll(List<Tensor> tensors) {
        int count = tensors.size();
        long[] key = new long[2 * count];
        long longest = 0;
        for (int i = 0; i < count; i++) {
            key[i] = tensors.get(i).deviceAddress();
            key[count + i] = tensors.get(i).numel();
            longest = Math.max(longest, tensors.get(i).numel());
        }
        if (!Arrays.equals(key, tableKey)) {
            if (table != null) memory.release(table);
            table = memory.upload(Tensor.of(key, 2, count));
            tableKey = key;
        }
        int blocks = blocks(longest);
        Tensor partial = memory.empty(DType.I64, count, blocks); // doubles: (T, blocks) partials
        Tensor total = memory.empty(DType.I64, 1);               // a double
        sumOfSquaresAllPartials(partial, table, count, blocks);
        sumOfSquaresAllTotal(total, partial, count * blocks);
        double sum = Double.longBitsToDouble(memory.download(total).i64()[0]);
        memory.release(partial);
        memory.release(total);
        return sum;
    }

    /** partial (T, blocks) = each block's share of each tensor's sum of squares; table (2, T) addresses, lengths. */
    void sumOfSquaresAllPartials(Tensor partial, Tensor table, int count, int blocks) {
        long addresses = table.deviceAddress(), lengths = addresses + 8L * count;
        launcher.launch(SUM_OF_SQUARES_ALL_PARTIALS, blocks, count, 1, ELEMENTWISE_THREADS, 1, 1, 0,
                launcher.args().ptr(partial.deviceAddress()).ptr(addresses).ptr(lengths));
    }

    /** total (1) = the sum of the first count partials, in one block. */
    void sumOfSquaresAllTotal(Tensor total, Tensor partial, int count) {
        launcher.launch(SUM_OF_SQUARES_ALL_TOTAL, 1, 1, 1, ELEMENTWISE_THREADS, 1, 1, 0,
                launcher.args().ptr(total.deviceAddress()).ptr(partial.deviceAddress()).i32(count));
    }

    /** Whether t holds a NaN or an infinity. */
    boolean hasNonFinite(Tensor t) {
        memory.clearFlag();
        launcher.launch(HAS_NON_FINITE, blocks(t.numel()), 1, 1, ELEMENTWISE_THREADS, 1, 1, 0,
                launcher.args().ptr(memory.flagAddress()).ptr(t.deviceAddress()).i64(t.numel()));
        return memory.readFlag() != 0;
    }

    /** One warp per row. */
    void rowArgmax(Tensor index, Tensor x) {
        launcher.launch(ROW_ARGMAX, x.dim(0), 1, 1, 32, 1, 1, 0,
                launcher.args().ptr(index.deviceAddress()).ptr(x.deviceAddress()).i32(x.dim(1)));
    }

    private static int blocks(long n) {
        return (int) Math.max(1, Math.min(MAX_BLOCKS, ceilDiv(n, ELEMENTWISE_THREADS)));
    }
}
