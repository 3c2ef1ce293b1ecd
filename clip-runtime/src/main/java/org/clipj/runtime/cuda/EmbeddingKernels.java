package org.clipj.runtime.cuda;

import static org.clipj.runtime.cuda.KernelLauncher.ROW_THREADS;

import java.util.List;

import org.clipj.runtime.InvalidInputException;
import org.clipj.runtime.Tensor;

/**
 * embedding.cu: row gathers (token embedding, the EOT row) and their scatter-add backward, one block per row.
 * The forwards set the scratch flag on an index out of range and wait for it (a sync point), except while a
 * graph is captured.
 */
final class EmbeddingKernels {
    static final String EMBEDDING_FORWARD = "embedding_forward";
    static final String EMBEDDING_BACKWARD = "embedding_backward";
    static final String GATHER_ROWS_FORWARD = "gather_rows_forward";
    static final String GATHER_ROWS_BACKWARD = "gather_rows_backward";
    static final List<String> KERNELS = List.of(EMBEDDING_FORWARD, EMBEDDING_BACKWARD, GATHER_ROWS_FORWARD, GATHER_ROWS_BACKWARD);

    private final KernelLauncher launcher;
    private final DeviceMemory memory;
    private final CudaStream stream;

    EmbeddingKernels(KernelLauncher launcher, DeviceMemory memory, CudaStream stream) {
        this.launcher = launcher;
        this.memory = memory;
        this.stream = stream;
    }

    /** out (..., C) = table (V, C) rows at ids; an id outside [0, V) is an InvalidInputException. */
    void embeddingForward(Tensor out, Tensor ids, Tensor table) {
        int rows = Math.toIntExact(ids.numel()), v = table.dim(0), c = table.dim(1);
        boolean checked = !stream.capturing();
        if (checked) memory.clearFlag();
        launcher.launch(EMBEDDING_FORWARD, Math.max(rows, 1), 1, 1, ROW_THREADS, 1, 1, 0, launcher.args().ptr(out.deviceAddress())
                .ptr(ids.deviceAddress()).ptr(table.deviceAddress()).i32(rows).i32(c).i32(v).ptr(memory.flagAddress()));
        if (checked && memory.readFlag() != 0) {
            throw new InvalidInputException("embeddingForward: ids " + ids.shapeString() + " holds a token id outside [0, " + v + ")");
        }
    }

    /** dtable rows at ids += dout rows. */
    void embeddingBackward(Tensor dtable, Tensor dout, Tensor ids) {
        int rows = Math.toIntExact(ids.numel()), v = dtable.dim(0), c = dtable.dim(1);
        launcher.launch(EMBEDDING_BACKWARD, Math.max(rows, 1), 1, 1, ROW_THREADS, 1, 1, 0, launcher.args().ptr(dtable.deviceAddress())
                .ptr(dout.deviceAddress()).ptr(ids.deviceAddress()).i32(rows).i32(c).i32(v));
    }

    /** out (B, C) = x (B, T, C) at row index[b] of each batch entry; a row outside [0, T) is an InvalidInputException. */
    void gatherRowsForward(Tensor out, Tensor x, Tensor index) {
        int b = x.dim(0), t = x.dim(1), c = x.dim(2);
        boolean checked = !stream.capturing();
        if (checked) memory.clearFlag();
        launcher.launch(GATHER_ROWS_FORWARD, Math.max(b, 1), 1, 1, ROW_THREADS, 1, 1, 0, launcher.args().ptr(out.deviceAddress())
                .ptr(x.deviceAddress()).ptr(index.deviceAddress()).i32(b).i32(t).i32(c).ptr(memory.flagAddress()));
        if (checked && memory.readFlag() != 0) throw new InvalidInputException("gatherRowsForward: index holds a row outside [0, " + t + ")");
    }

    void gatherRowsBackward(Tensor dx, Tensor dout, Tensor index) {
        int b = dx.dim(0), t = dx.dim(1), c = dx.dim(2);
        launcher.launch(GATHER_ROWS_BACKWARD, Math.max(b, 1), 1, 1, ROW_THREADS, 1, 1, 0, launcher.args().ptr(dx.deviceAddress())
                .ptr(dout.deviceAddress()).ptr(index.deviceAddress()).i32(b).i32(t).i32(c));
    }
}
