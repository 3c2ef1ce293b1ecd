package org.clipj.runtime.cuda;

import java.util.List;

import org.clipj.runtime.DType;
import org.clipj.runtime.Tensor;

/**
 * adamw.cu: one fused AdamW step over a parameter tensor and its moments, grid-stride; the mixed-precision variant
 * also writes the 16-bit GEMM copy of the updated F32 master weights in the same pass.
 */
final class AdamwKernels {
    static final String ADAMW_UPDATE = "adamw_update";
    static final String ADAMW_UPDATE_COPY_BF16 = "adamw_update_copy_bf16";
    static final String ADAMW_UPDATE_COPY_F16 = "adamw_update_copy_f16";
    static final List<String> KERNELS = List.of(ADAMW_UPDATE, ADAMW_UPDATE_COPY_BF16, ADAMW_UPDATE_COPY_F16);

    private final KernelLauncher launcher;

    AdamwKernels(KernelLauncher launcher) {
        this.launcher = launcher;
    }

    /** param, m, v updated in place from grad * gradScale; step is 1-based (the bias corrections). */
    void adamwUpdate(Tensor param, Tensor grad, Tensor m, Tensor v, float lr, float beta1, float beta2, float eps,
                     float weightDecay, int step, float gradScale) {
        float c1 = (float) (1.0 - Math.pow(beta1, step)), c2 = (float) (1.0 - Math.pow(beta2, step));
        launcher.elementwise(ADAMW_UPDATE, param.numel(), launcher.args().ptr(param.deviceAddress()).ptr(grad.deviceAddress())
                .ptr(m.deviceAddress()).ptr(v.deviceAddress()).f32(lr).f32(beta1).f32(beta2).f32(eps).f32(weightDecay)
                .f32(c1).f32(c2).f32(gradScale).i64(param.numel()));
    }

    /** As {@link #adamwUpdate}, and copy (BF16 or F16, param's numel) = the updated param rounded to nearest even. */
    void adamwUpdateCopy(Tensor param, Tensor copy, Tensor grad, Tensor m, Tensor v, float lr, float beta1, float beta2,
                         float eps, float weightDecay, int step, float gradScale) {
        float c1 = (float) (1.0 - Math.pow(beta1, step)), c2 = (float) (1.0 - Math.pow(beta2, step));
        String kernel = copy.dtype() == DType.BF16 ? ADAMW_UPDATE_COPY_BF16 : ADAMW_UPDATE_COPY_F16;
        launcher.elementwise(kernel, param.numel(), launcher.args().ptr(param.deviceAddress()).ptr(copy.deviceAddress())
                .ptr(grad.deviceAddress()).ptr(m.deviceAddress()).ptr(v.deviceAddress()).f32(lr).f32(beta1).f32(beta2)
                .f32(eps).f32(weightDecay).f32(c1).f32(c2).f32(gradScale).i64(param.numel()));
    }
}
