package org.clipj.runtime.cuda;

import static org.clipj.runtime.cuda.KernelLauncher.address;

import java.util.List;

import org.clipj.runtime.Tensor;

/** normalize.cu: L2 normalization of the rows of (N, D), one warp per row. */
final class NormalizeKernels {
    static final String L2NORMALIZE_FORWARD = "l2normalize_forward";
    static final String L2NORMALIZE_BACKWARD = "l2normalize_backward";
    static final List<String> KERNELS = List.of(L2NORMALIZE_FORWARD, L2NORMALIZE_BACKWARD);

    private final KernelLauncher launcher;

    NormalizeKernels(KernelLauncher launcher) {
        this.launcher = launcher;
    }

    /** out = x / |x| per row; norms (N) receives |x| when not null. */
    void l2normalizeForward(Tensor out, Tensor norms, Tensor x) {
        int n = x.dim(0), d = x.dim(1);
        launcher.rows(L2NORMALIZE_FORWARD, n, launcher.args().ptr(out.deviceAddress()).ptr(address(norms))
                .ptr(x.deviceAddress()).i32(n).i32(d));
    }

    void l2normalizeBackward(Tensor dx, Tensor dout, Tensor out, Tensor norms) {
        int n = out.dim(0), d = out.dim(1);
        launcher.rows(L2NORMALIZE_BACKWARD, n, launcher.args().ptr(dx.deviceAddress()).ptr(dout.deviceAddress())
                .ptr(out.deviceAddress()).ptr(norms.deviceAddress()).i32(n).i32(d));
    }
}
