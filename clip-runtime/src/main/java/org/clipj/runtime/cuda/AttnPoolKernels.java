package org.clipj.runtime.cuda;

import static org.clipj.runtime.cuda.KernelLauncher.ROW_THREADS;
import static org.clipj.runtime.cuda.KernelLauncher.address;

import java.util.List;

import org.clipj.runtime.DType;
import org.clipj.runtime.Tensor;

/**
 * attnpool.cu: ModifiedResNet's attention pooling, one query (B, C) over L keys (B, L, C); one block per (head, image).
 * The forward takes F32 or BF16 (q, k, v, out of one dtype; lse F32), the backward F32.
 */
final class AttnPoolKernels {
    static final String ATTENTION_POOL_FORWARD = "attention_pool_forward";
    static final String ATTENTION_POOL_FORWARD_BF16 = "attention_pool_forward_bf16";
    static final String ATTENTION_POOL_BACKWARD = "attention_pool_backward";
    static final List<String> KERNELS = List.of(ATTENTION_POOL_FORWARD, ATTENTION_POOL_FORWARD_BF16, ATTENTION_POOL_BACKWARD);

    private final KernelLauncher launcher;

    AttnPoolKernels(KernelLauncher launcher) {
        this.launcher = launcher;
    }

    /** out (B, C) = attention of q over k, v; lse (B, heads) saved when not null. */
    void attentionPoolForward(Tensor out, Tensor lse, Tensor q, Tensor k, Tensor v, int heads) {
        int b = q.dim(0), c = q.dim(1), l = k.dim(1), hd = c / heads;
        int groups = Math.max(1, ROW_THREADS / ((hd + 1) / 2)); // attnpool.cu's pool_groups: key groups of the P V sums
        String kernel = q.dtype() == DType.BF16 ? ATTENTION_POOL_FORWARD_BF16 : ATTENTION_POOL_FORWARD;
        launcher.launch(kernel, heads, b, 1, ROW_THREADS, 1, 1, (l + hd + groups * hd) * Float.BYTES,
                launcher.args().ptr(out.deviceAddress()).ptr(address(lse)).ptr(q.deviceAddress()).ptr(k.deviceAddress())
                        .ptr(v.deviceAddress()).i32(b).i32(l).i32(c).i32(heads));
    }

    /** dq, dk, dv += the gradients (each may be null). */
    void attentionPoolBackward(Tensor dq, Tensor dk, Tensor dv, Tensor dout, Tensor q, Tensor k, Tensor v, Tensor out, Tensor lse,
                               int heads) {
        int b = q.dim(0), c = q.dim(1), l = k.dim(1);
        launcher.launch(ATTENTION_POOL_BACKWARD, heads, b, 1, ROW_THREADS, 1, 1, (2 * l + 2 * (c / heads)) * Float.BYTES,
                launcher.args().ptr(address(dq)).ptr(address(dk)).ptr(address(dv)).ptr(dout.deviceAddress()).ptr(q.deviceAddress())
                        .ptr(k.deviceAddress()).ptr(v.deviceAddress()).ptr(out.deviceAddress()).ptr(lse.deviceAddress())
                        .i32(b).i32(l).i32(c).i32(heads));
    }
}
