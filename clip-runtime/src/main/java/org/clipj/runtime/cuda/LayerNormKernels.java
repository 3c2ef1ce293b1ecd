package org.clipj.runtime.cuda;

import static org.clipj.runtime.cuda.KernelLauncher.address;

import java.util.List;

import org.clipj.runtime.DType;
import org.clipj.runtime.Tensor;

/**
 * layernorm.cu: layer norm over the last dim (C) of N rows; rows one warp each, parameter gradients in two stages (row
 * chunks, then columns). The forward reads F32 or 16-bit rows and writes F32 or 16-bit ones (F32 statistics).
 */
final class LayerNormKernels {
    static final String LAYERNORM_FORWARD = "layernorm_forward";
    static final String LAYERNORM_FORWARD_F32_BF16 = "layernorm_forward_f32_bf16";
    static final String LAYERNORM_FORWARD_F32_F16 = "layernorm_forward_f32_f16";
    static final String LAYERNORM_FORWARD_BF16 = "layernorm_forward_bf16";
    static final String LAYERNORM_FORWARD_F16 = "layernorm_forward_f16";
    static final String LAYERNORM_BACKWARD = "layernorm_backward";
    static final String LAYERNORM_BACKWARD_PARAMS_PARTIALS = "layernorm_backward_params_partials";
    static final String LAYERNORM_BACKWARD_PARAMS_TOTAL = "layernorm_backward_params_total";
    static final List<String> KERNELS = List.of(LAYERNORM_FORWARD, LAYERNORM_FORWARD_F32_BF16, LAYERNORM_FORWARD_F32_F16,
            LAYERNORM_FORWARD_BF16, LAYERNORM_FORWARD_F16, LAYERNORM_BACKWARD, LAYERNORM_BACKWARD_PARAMS_PARTIALS,
            LAYERNORM_BACKWARD_PARAMS_TOTAL);

    private final KernelLauncher launcher;
    private final DeviceMemory memory;

    LayerNormKernels(KernelLauncher launcher, DeviceMemory memory) {
        this.launcher = launcher;
        this.memory = memory;
    }

    /**
     * out = (x - mean) * rstd * w + b per row; mean and rstd (N) are saved when not null. x F32 and out F32, BF16
     * or F16, or x and out both BF16 or both F16 (w, b, mean, rstd F32).
     */
    void layernormForward(Tensor out, Tensor mean, Tensor rstd, Tensor x, Tensor w, Tensor b, float eps) {
        int c = x.dim(-1), n = rows(x);
        launcher.rows(forwardKernel(x.dtype(), out.dtype()), n, launcher.args().ptr(out.deviceAddress()).ptr(address(mean)).ptr(address(rstd))
                .ptr(x.deviceAddress()).ptr(w.deviceAddress()).ptr(b.deviceAddress()).i32(n).i32(c).f32(eps));
    }

    /** dx, dw, db += the gradients (each may be null). */
    void layerNormBackward(Tensor dx, Tensor dw, Tensor db, Tensor dout, Tensor x, Tensor w, Tensor mean, Tensor rstd) {
        if (dx != null) layernormBackward(dx, dout, x, w, mean, rstd);
        if (dw != null || db != null) layernormBackwardParams(dw, db, dout, x, mean, rstd);
    }

    /** dw, db (C) += the parameter gradients (either may be null), in two stages (see {@link ColumnChunks}). */
    void layernormBackwardParams(Tensor dw, Tensor db, Tensor dout, Tensor x, Tensor mean, Tensor rstd) {
        int c = x.dim(-1), n = rows(x);
        if (c == 0) return;
        ColumnChunks chunks = ColumnChunks.of(n);
        Tensor partial = memory.empty(DType.F32, 2, chunks.parts(), c); // dw's, then db's (P, C) partial sums
        layernormBackwardParamsPartials(partial, dout, x, mean, rstd, n, c, chunks);
        layernormBackwardParamsTotal(dw, db, partial, chunks.parts(), c);
        memory.release(partial);
    }

    /** dx += the input gradient. */
    void layernormBackward(Tensor dx, Tensor dout, Tensor x, Tensor w, Tensor mean, Tensor rstd) {
        int c = x.dim(-1), n = rows(x);
        launcher.rows(LAYERNORM_BACKWARD, n, launcher.args().ptr(dx.deviceAddress()).ptr(dout.deviceAddress()).ptr(x.deviceAddress())
                .ptr(w.deviceAddress()).ptr(mean.deviceAddress()).ptr(rstd.deviceAddress()).i32(n).i32(c));
    }

    /** partial (2, P, C) = the per-chunk column sums of dout * xhat, then of dout. */
    void layernormBackwardParamsPartials(Tensor partial, Tensor dout, Tensor x, Tensor mean, Tensor rstd, int n, int c,
                                         ColumnChunks chunks) {
        chunks.launch(launcher, LAYERNORM_BACKWARD_PARAMS_PARTIALS, c, launcher.args().ptr(partial.deviceAddress())
                .ptr(dout.deviceAddress()).ptr(x.deviceAddress()).ptr(mean.deviceAddress()).ptr(rstd.deviceAddress())
                .i32(n).i32(c).i32(chunks.rowsPerPart()));
    }

    /** dw, db (C) += the sums of their P partial rows (either may be null). */
    void layernormBackwardParamsTotal(Tensor dw, Tensor db, Tensor partial, int parts, int c) {
        launcher.elementwise(LAYERNORM_BACKWARD_PARAMS_TOTAL, c, launcher.args().ptr(address(dw)).ptr(address(db))
                .ptr(partial.deviceAddress()).i32(parts).i32(c));
    }

    private static String forwardKernel(DType in, DType out) {
        if (in == DType.F32 && out == DType.F32) return LAYERNORM_FORWARD;
        if (in == DType.F32 && out == DType.BF16) return LAYERNORM_FORWARD_F32_BF16;
        if (in == DType.F32 && out == DType.F16) return LAYERNORM_FORWARD_F32_F16;
        if (in == DType.BF16 && out == DType.BF16) return LAYERNORM_FORWARD_BF16;
        if (in == DType.F16 && out == DType.F16) return LAYERNORM_FORWARD_F16;
        throw new IllegalArgumentException("layerNormForward: no kernel from " + in + " to " + out);
    }

    private static int rows(Tensor x) {
        return Math.toIntExact(x.numel() / Math.max(x.dim(-1), 1));
    }
}
