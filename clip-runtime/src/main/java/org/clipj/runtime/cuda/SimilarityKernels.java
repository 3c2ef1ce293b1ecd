package org.clipj.runtime.cuda;

import static org.clipj.runtime.cuda.KernelLauncher.ceilDiv;

import java.util.List;

import org.clipj.runtime.DType;
import org.clipj.runtime.Device;
import org.clipj.runtime.Tensor;

/**
 * similarity.cu: the mixed-precision similarity matrix: F32 and F16 in 16 x 16 output tiles, BF16 on tensor cores in
 * 64 x 64 tiles. Not a {@link org.clipj.runtime.Backend} op yet: tests check it against the CPU.
 */
final class SimilarityKernels {
    static final String SIMILARITY = "similarity";
    static final String SIMILARITY_MMA_BF16 = "similarity_mma_bf16";
    static final String SIMILARITY_F16 = "similarity_f16";
    static final List<String> KERNELS = List.of(SIMILARITY, SIMILARITY_MMA_BF16, SIMILARITY_F16);
    private static final int MMA_TILE = 64;

    private final KernelLauncher launcher;

    SimilarityKernels(KernelLauncher launcher) {
        this.launcher = launcher;
    }

    private static void check(Tensor out, Tensor a, Tensor b) {
        String op = "similarity";
        if (out == null || a == null || b == null || a.device() != Device.CUDA || b.device() != Device.CUDA || out.device() != Device.CUDA) {
            throw new IllegalArgumentException(op + ": out, a and b must be CUDA tensors (upload them first)");
        }
        if (a.rank() != 2 || b.rank() != 2 || a.dim(1) != b.dim(1) || a.dtype() != b.dtype()) {
            throw new IllegalArgumentException(op + ": a " + a.dtype() + " " + a.shapeString() + " and b " + b.dtype() + " "
                    + b.shapeString() + " must be (N, D) and (M, D) of one dtype");
        }
        if (out.dtype() != DType.F32 || out.rank() != 2 || out.dim(0) != a.dim(0) || out.dim(1) != b.dim(0)) {
            throw new IllegalArgumentException(op + ": out " + out.dtype() + " " + out.shapeString() + " must be F32 [" + a.dim(0) + ", "
                    + b.dim(0) + "]");
        }
    }

    /**
     * out (N, M) F32 = scale * normalize(a (N, D)) @ normalize(b (M, D))^T (or without the normalization); a and b
     * F32, BF16 or F16 (one dtype), products accumulated in F32. Checks its arguments (it is no Backend op).
     */
    void similarity(Tensor out, Tensor a, Tensor b, float scale, boolean normalize) {
        check(out, a, b);
        int n = a.dim(0), m = b.dim(0), d = a.dim(1);
        String kernel = switch (a.dtype()) {
            case F32 -> SIMILARITY;
            case BF16 -> SIMILARITY_MMA_BF16;
            case F16 -> SIMILARITY_F16;
            default -> throw new IllegalArgumentException("similarity: a must be F32, BF16 or F16, got " + a.dtype());
        };
        var args = launcher.args().ptr(out.deviceAddress()).ptr(a.deviceAddress()).ptr(b.deviceAddress()).i32(n).i32(m).i32(d).f32(scale)
                .i32(normalize ? 1 : 0);
        if (kernel.equals(SIMILARITY_MMA_BF16)) {
            launcher.launch(kernel, ceilDiv(m, MMA_TILE), ceilDiv(n, MMA_TILE), 1, KernelLauncher.ROW_THREADS, 1, 1, 0, args);
        } else {
            launcher.launch(kernel, ceilDiv(m, 16), ceilDiv(n, 16), 1, 16, 16, 1, 0, args);
        }
    }
}
