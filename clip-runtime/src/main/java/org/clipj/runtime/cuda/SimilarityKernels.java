package org.clipj.runtime.cuda;

import static org.clipj.runtime.cuda.KernelLauncher.ceilDiv;

import java.util.List;

import org.clipj.runtime.Tensor;

/**
 * similarity.cu: the mixed-precision similarity matrix, 16 x 16 output tiles. Tests check it against the CPU;
 * issue 19 moves it to tensor cores and wires it into retrieval.
 */
final class SimilarityKernels {
    static final String SIMILARITY = "similarity";
    static final String SIMILARITY_BF16 = "similarity_bf16";
    static final String SIMILARITY_F16 = "similarity_f16";
    static final List<String> KERNELS = List.of(SIMILARITY, SIMILARITY_BF16, SIMILARITY_F16);

    private final KernelLauncher launcher;

    SimilarityKernels(KernelLauncher launcher) {
        this.launcher = launcher;
    }

    /** out (N, M) F32 = scale * normalize(a (N, D)) @ normalize(b (M, D))^T (or without the normalization). */
    void similarity(Tensor out, Tensor a, Tensor b, float scale, boolean normalize) {
        int n = a.dim(0), m = b.dim(0), d = a.dim(1);
        String kernel = switch (a.dtype()) {
            case F32 -> SIMILARITY;
            case BF16 -> SIMILARITY_BF16;
            case F16 -> SIMILARITY_F16;
            default -> throw new IllegalArgumentException("similarityForward: a must be F32, BF16 or F16, got " + a.dtype());
        };
        launcher.launch(kernel, ceilDiv(m, 16), ceilDiv(n, 16), 1, 16, 16, 1, 0, launcher.args().ptr(out.deviceAddress())
                .ptr(a.deviceAddress()).ptr(b.deviceAddress()).i32(n).i32(m).i32(d).f32(scale).i32(normalize ? 1 : 0));
    }
}
