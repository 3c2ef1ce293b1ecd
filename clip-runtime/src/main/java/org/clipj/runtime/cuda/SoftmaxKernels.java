package org.clipj.runtime.cuda;

import java.util.List;

import org.clipj.runtime.Tensor;

/** softmax.cu: softmax over the last dim, one warp per row. */
final class SoftmaxKernels {
    static final String SOFTMAX = "softmax";
    static final List<String> KERNELS = List.of(SOFTMAX);

    private final KernelLauncher launcher;

    SoftmaxKernels(KernelLauncher launcher) {
        this.launcher = launcher;
    }

    /** out = softmax(x) over rows of x.dim(-1). */
    void softmax(Tensor out, Tensor x) {
        int c = x.dim(-1), n = Math.toIntExact(x.numel() / Math.max(c, 1));
        launcher.rows(SOFTMAX, n, launcher.args().ptr(out.deviceAddress()).ptr(x.deviceAddress()).i32(n).i32(c));
    }
}
