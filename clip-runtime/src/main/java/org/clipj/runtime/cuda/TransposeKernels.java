package org.clipj.runtime.cuda;

import static org.clipj.runtime.cuda.KernelLauncher.ceilDiv;

import java.util.List;

import org.clipj.runtime.Tensor;

/** transpose.cu: out (B, N, M) (+)= x (B, M, N)^T per batch entry, through 32 x 32 shared-memory tiles of 32 x 8 threads. */
final class TransposeKernels {
    static final String TRANSPOSE = "transpose";
    static final List<String> KERNELS = List.of(TRANSPOSE);

    private final KernelLauncher launcher;

    TransposeKernels(KernelLauncher launcher) {
        this.launcher = launcher;
    }

    /** out (b, n, m) = (accumulate ? out + : ) x (b, m, n) transposed; the tensors may have any shape of those sizes. */
    void transpose(Tensor out, Tensor x, int b, int m, int n, boolean accumulate) {
        launcher.launch(TRANSPOSE, ceilDiv(n, 32), ceilDiv(m, 32), b, 32, 8, 1, 0,
                launcher.args().ptr(out.deviceAddress()).ptr(x.deviceAddress()).i32(m).i32(n).i32(accumulate ? 1 : 0));
    }
}
