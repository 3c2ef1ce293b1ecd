package org.clipj.runtime.cuda;

import static org.clipj.runtime.cuda.KernelLauncher.ROW_THREADS;
import static org.clipj.runtime.cuda.KernelLauncher.address;
import static org.clipj.runtime.cuda.KernelLauncher.ceilDiv;

import java.util.ArrayList;
import java.util.List;

import org.clipj.runtime.DType;
import org.clipj.runtime.Tensor;

/**
 * attention.cu: fused multi-head attention over packed qkv (B, T, 3 * heads * hd), online softmax, any head dim
 * up to {@value #MAX_HEAD_DIM}. A kernel family has one kernel per head width: the family's own name for hd 64,
 * {@code _hd80/_hd88/_hd104/_hd112} for the other widths of the model zoo (F32, tensor-core and backward
 * families), {@code _hdany} for every other width (attention.cu's header). The backward is FlashAttention-2's, no
 * atomics: delta = rowsum(dout * out), then dK/dV key-major and dQ query-major (BF16 on tensor cores, F32 SIMT).
 */
final class AttentionKernels {
    static final String ATTENTION_FORWARD = "attention_forward";
    // The SIMT BF16 kernel: what tests check the tensor-core kernel against (issue 19 decides whether it stays).
    static final String ATTENTION_FORWARD_BF16 = "attention_forward_bf16";
    static final String ATTENTION_FORWARD_F16 = "attention_forward_f16";
    // The BF16 tensor-core kernel, what BF16 qkv runs; the model's qkv is F32 until issue 19 wires BF16 attention in.
    static final String ATTENTION_FORWARD_MMA_BF16 = "attention_forward_mma_bf16";
    static final String ATTENTION_BACKWARD = "attention_backward";
    static final String ATTENTION_BACKWARD_DKDV = "attention_backward_dkdv";
    static final String ATTENTION_BACKWARD_DELTA = "attention_backward_delta";
    static final String ATTENTION_BACKWARD_DELTA_BF16 = "attention_backward_delta_bf16";
    static final String ATTENTION_BACKWARD_DKDV_MMA_BF16 = "attention_backward_dkdv_mma_bf16";
    static final String ATTENTION_BACKWARD_DQ_MMA_BF16 = "attention_backward_dq_mma_bf16";
    static final int MAX_HEAD_DIM = 128;
    private static final int[] ZOO_WIDTHS = {80, 88, 104, 112};
    private static final int ROWS = 16;     // query rows per block, SIMT kernels
    private static final int MMA_ROWS = 64; // query rows per block, tensor-core kernel
    private static final int STREAM_TILE = 64;
    static final List<String> KERNELS = kernelNames();

    private final KernelLauncher launcher;
    private final DeviceMemory memory;

    AttentionKernels(KernelLauncher launcher, DeviceMemory memory) {
        this.launcher = launcher;
        this.memory = memory;
    }

    /**
     * out (B, T, heads * hd) = attention over qkv, lse (B, heads, T) saved when not null, the family chosen by
     * qkv's dtype: F32 SIMT, F16 SIMT, BF16 on tensor cores.
     */
    void attentionForward(Tensor out, Tensor lse, Tensor qkv, int heads, boolean causal) {
        String family = switch (qkv.dtype()) {
            case F32 -> ATTENTION_FORWARD;
            case BF16 -> ATTENTION_FORWARD_MMA_BF16;
            case F16 -> ATTENTION_FORWARD_F16;
            default -> throw new IllegalArgumentException("attentionForward: qkv must be F32, BF16 or F16, got " + qkv.dtype());
        };
        attentionForward(family, out, lse, qkv, heads, causal, keyTile(family, headDim("attentionForward", qkv, heads), qkv.dim(1)));
    }

    /** One forward family with an explicit key tile (tests cover the streaming path and cross-check the families with it). */
    void attentionForward(String family, Tensor out, Tensor lse, Tensor qkv, int heads, boolean causal, int keyTile) {
        int hd = headDim(family, qkv, heads), b = qkv.dim(0), t = qkv.dim(1);
        int rowsPerBlock = tensorCores(family) ? MMA_ROWS : ROWS;
        launcher.launch(kernel(family, hd), ceilDiv(t, rowsPerBlock), heads, b, ROW_THREADS, 1, 1, sharedBytes(family, hd, keyTile),
                launcher.args().ptr(out.deviceAddress()).ptr(address(lse)).ptr(qkv.deviceAddress()).i32(b).i32(t).i32(heads).i32(hd)
                        .i32(causal ? 1 : 0).i32(keyTile));
    }

    /**
     * dqkv += the gradient of attentionForward, recomputing the probabilities from lse: F32 tensors on the SIMT kernels,
     * BF16 ones (lse F32) on the tensor-core kernels.
     */
    void attentionBackward(Tensor dqkv, Tensor dout, Tensor qkv, Tensor out, Tensor lse, int heads, boolean causal) {
        int hd = headDim("attentionBackward", qkv, heads), t = qkv.dim(1);
        if (qkv.dtype() == DType.BF16) {
            attentionBackwardMma(dqkv, dout, qkv, out, lse, heads, causal, keyTile(ATTENTION_BACKWARD_DKDV_MMA_BF16, hd, t),
                    keyTile(ATTENTION_BACKWARD_DQ_MMA_BF16, hd, t));
        } else {
            attentionBackward(dqkv, dout, qkv, out, lse, heads, causal, keyTile(ATTENTION_BACKWARD_DKDV, hd, t),
                    keyTile(ATTENTION_BACKWARD, hd, t));
        }
    }

    /**
     * The BF16 backward with explicit tiles (tests cover the streaming paths with them): delta (B, heads, T) F32 in a
     * scratch buffer, dK and dV with queryTile queries per shared-memory tile, dQ with keyTile keys per tile.
     */
    void attentionBackwardMma(Tensor dqkv, Tensor dout, Tensor qkv, Tensor out, Tensor lse, int heads, boolean causal,
                              int queryTile, int keyTile) {
        int hd = headDim("attentionBackward", qkv, heads), b = qkv.dim(0), t = qkv.dim(1);
        Tensor delta = memory.empty(DType.F32, b, heads, t);
        try {
            attentionBackwardDelta(delta, dout, out, heads);
            attentionBackwardDkdv(dqkv, dout, qkv, lse, delta, heads, causal, queryTile);
            attentionBackwardDq(dqkv, dout, qkv, lse, delta, heads, causal, keyTile);
        } finally {
            memory.release(delta);
        }
    }

    /** delta (B, heads, T) F32 = rowsum(dout * out) of each head's slice, dout and out F32 or BF16 (one warp per row). */
    void attentionBackwardDelta(Tensor delta, Tensor dout, Tensor out, int heads) {
        int b = out.dim(0), t = out.dim(1), hd = out.dim(2) / heads;
        String kernel = out.dtype() == DType.BF16 ? ATTENTION_BACKWARD_DELTA_BF16 : ATTENTION_BACKWARD_DELTA;
        launcher.rows(kernel, b * t * heads, launcher.args().ptr(delta.deviceAddress()).ptr(dout.deviceAddress())
                .ptr(out.deviceAddress()).i32(b).i32(t).i32(heads).i32(hd));
    }

    /**
     * dK and dV parts of dqkv += their gradients, key-major, queryTile queries per shared tile: BF16 on tensor cores (64
     * keys per block), F32 SIMT (16 keys per block).
     */
    void attentionBackwardDkdv(Tensor dqkv, Tensor dout, Tensor qkv, Tensor lse, Tensor delta, int heads, boolean causal, int queryTile) {
        String family = qkv.dtype() == DType.BF16 ? ATTENTION_BACKWARD_DKDV_MMA_BF16 : ATTENTION_BACKWARD_DKDV;
        backwardPass(family, dqkv, dout, qkv, lse, delta, heads, causal, queryTile);
    }

    /** dQ part of dqkv += its gradient (BF16), 64 queries per block, keyTile keys per shared tile. */
    void attentionBackwardDq(Tensor dqkv, Tensor dout, Tensor qkv, Tensor lse, Tensor delta, int heads, boolean causal, int keyTile) {
        backwardPass(ATTENTION_BACKWARD_DQ_MMA_BF16, dqkv, dout, qkv, lse, delta, heads, causal, keyTile);
    }

    /** One pass of the backward over (dqkv, dout, qkv, lse, delta), the kernels' common parameter list. */
    private void backwardPass(String family, Tensor dqkv, Tensor dout, Tensor qkv, Tensor lse, Tensor delta, int heads, boolean causal,
                              int tile) {
        int hd = headDim(family, qkv, heads), b = qkv.dim(0), t = qkv.dim(1);
        int rowsPerBlock = tensorCores(family) ? MMA_ROWS : ROWS;
        launcher.launch(kernel(family, hd), ceilDiv(t, rowsPerBlock), heads, b, ROW_THREADS, 1, 1, sharedBytes(family, hd, tile),
                launcher.args().ptr(dqkv.deviceAddress()).ptr(dout.deviceAddress()).ptr(qkv.deviceAddress()).ptr(lse.deviceAddress())
                        .ptr(delta.deviceAddress()).i32(b).i32(t).i32(heads).i32(hd).i32(causal ? 1 : 0).i32(tile));
    }

    /**
     * The F32 backward with explicit tiles (tests cover the streaming paths with them): delta in a scratch buffer, dK and
     * dV key-major with queryTile queries per shared tile, dQ with keyTile keys per tile.
     */
    void attentionBackward(Tensor dqkv, Tensor dout, Tensor qkv, Tensor out, Tensor lse, int heads, boolean causal, int queryTile,
                           int keyTile) {
        int hd = headDim("attentionBackward", qkv, heads), b = qkv.dim(0), t = qkv.dim(1);
        Tensor delta = memory.empty(DType.F32, b, heads, t);
        try {
            attentionBackwardDelta(delta, dout, out, heads);
            attentionBackwardDkdv(dqkv, dout, qkv, lse, delta, heads, causal, queryTile);
            // dQ (attention_backward: 16 queries per block, keyTile keys per shared tile)
            launcher.launch(kernel(ATTENTION_BACKWARD, hd), ceilDiv(t, ROWS), heads, b, ROW_THREADS, 1, 1,
                    sharedBytes(ATTENTION_BACKWARD, hd, keyTile),
                    launcher.args().ptr(dqkv.deviceAddress()).ptr(dout.deviceAddress()).ptr(qkv.deviceAddress()).ptr(out.deviceAddress())
                            .ptr(lse.deviceAddress()).i32(b).i32(t).i32(heads).i32(hd).i32(causal ? 1 : 0).i32(keyTile));
        } finally {
            memory.release(delta);
        }
    }

    /**
     * Keys per shared-memory tile: the whole sequence (one head's K and V resident) when it fits the
     * device's opt-in shared memory, else {@value #STREAM_TILE}-key tiles streamed through it.
     */
    int keyTile(String family, int hd, int t) {
        return sharedBytes(family, hd, t) <= launcher.maxDynamicShared() ? Math.max(t, 1) : STREAM_TILE;
    }

    /** Dynamic shared memory of a family at a key tile (attention.cu's header). */
    static int sharedBytes(String family, int hd, int keyTile) {
        if (tensorCores(family)) {
            int rows = (keyTile + 15) / 16 * 16;
            int rowElements = (hd + 15) / 16 * 16 + 8;
            int rowScalars = family.equals(ATTENTION_BACKWARD_DKDV_MMA_BF16) ? 2 * rows * Float.BYTES : 0; // lse and delta
            return 2 * rows * rowElements * 2 + rowScalars; // K and V (dK/dV: Q and dO) as BF16
        }
        if (family.equals(ATTENTION_BACKWARD_DKDV)) { // Q and dout tiles (rows hd | 1), 16 keys and values, lse and delta
            return (2 * keyTile * (hd | 1) + 2 * ROWS * hd + 2 * keyTile) * Float.BYTES;
        }
        int queryRows = family.equals(ATTENTION_BACKWARD) ? 2 * ROWS : ROWS; // Q (and dout) rows
        return (keyTile * (hd | 1) + keyTile * hd + queryRows * hd) * Float.BYTES;
    }

    /**
     * The head dim of qkv (B, T, 3 * heads * hd); a width over {@value #MAX_HEAD_DIM} (this backend's limit, every
     * CLIP model is within it) is an IllegalArgumentException naming the op and the width.
     */
    static int headDim(String op, Tensor qkv, int heads) {
        if (qkv.rank() != 3 || heads < 1 || qkv.dim(2) % (3 * heads) != 0) {
            throw new IllegalArgumentException(op + ": qkv must be (B, T, 3 * heads * headDim), got " + qkv.shapeString() + " with "
                    + heads + " heads");
        }
        int hd = qkv.dim(2) / (3 * heads);
        if (hd > MAX_HEAD_DIM) {
            throw new IllegalArgumentException(op + ": head dim " + hd + " (qkv " + qkv.shapeString() + ", " + heads
                    + " heads) is wider than the CUDA attention kernels' " + MAX_HEAD_DIM);
        }
        return hd;
    }

    private static boolean tensorCores(String family) {
        return family.equals(ATTENTION_FORWARD_MMA_BF16) || family.equals(ATTENTION_BACKWARD_DKDV_MMA_BF16)
                || family.equals(ATTENTION_BACKWARD_DQ_MMA_BF16);
    }

    /** The kernel of a family for head dim hd. */
    static String kernel(String family, int hd) {
        if (hd == 64) return family;
        boolean perWidth = !family.equals(ATTENTION_FORWARD_BF16) && !family.equals(ATTENTION_FORWARD_F16);
        for (int w : ZOO_WIDTHS) {
            if (perWidth && hd == w) return family + "_hd" + hd;
        }
        return family + "_hdany";
    }

    /** Every kernel {@link #kernel} can name. */
    private static List<String> kernelNames() {
        List<String> names = new ArrayList<>();
        for (String family : List.of(ATTENTION_FORWARD, ATTENTION_FORWARD_BF16, ATTENTION_FORWARD_F16, ATTENTION_FORWARD_MMA_BF16,
                ATTENTION_BACKWARD, ATTENTION_BACKWARD_DKDV, ATTENTION_BACKWARD_DKDV_MMA_BF16, ATTENTION_BACKWARD_DQ_MMA_BF16)) {
            for (int hd : new int[] {64, 80, 88, 104, 112, MAX_HEAD_DIM}) {
                String name = kernel(family, hd);
                if (!names.contains(name)) names.add(name);
            }
        }
        names.add(ATTENTION_BACKWARD_DELTA); // one kernel per dtype for every width
        names.add(ATTENTION_BACKWARD_DELTA_BF16);
        return List.copyOf(names);
    }
}
