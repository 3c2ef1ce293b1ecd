package org.clipj.runtime.cuda;

import java.util.List;

import org.clipj.runtime.Tensor;

/** adamw.cu: one fused AdamW step over a parameter tensor and its moments, grid-stride. */
final class AdamwKernels {
    static final String ADAMW_UPDATE = "adamw_update";
    static final List<String> KERNELS = List.of(ADAMW_UPDATE);

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
}
