package org.clipj.runtime.cuda;

import static org.clipj.runtime.cuda.KernelLauncher.ELEMENTWISE_THREADS;
import static org.clipj.runtime.cuda.KernelLauncher.address;

import java.util.List;

import org.clipj.runtime.DType;
import org.clipj.runtime.Tensor;

/** batchnorm.cu: batch norm over (B, C, H, W) per channel; statistics and backward one block per channel. */
final class BatchNormKernels {
    static final String BATCHNORM_FORWARD_EVAL = "batchnorm_forward_eval";
    static final String BATCHNORM_FORWARD_STATS = "batchnorm_forward_stats";
    static final String BATCHNORM_FORWARD_APPLY = "batchnorm_forward_apply";
    static final String BATCHNORM_BACKWARD = "batchnorm_backward";
    static final List<String> KERNELS = List.of(BATCHNORM_FORWARD_EVAL, BATCHNORM_FORWARD_STATS, BATCHNORM_FORWARD_APPLY,
            BATCHNORM_BACKWARD);

    private final KernelLauncher launcher;
    private final DeviceMemory memory;

    BatchNormKernels(KernelLauncher launcher, DeviceMemory memory) {
        this.launcher = launcher;
        this.memory = memory;
    }

    /**
     * Training: batch statistics (saved to saveMean/saveRstd when not null, running stats updated), then the
     * normalization; eval: the running statistics.
     */
    void batchNormForward(Tensor out, Tensor x, Tensor gamma, Tensor beta, Tensor runningMean, Tensor runningVar,
                          Tensor saveMean, Tensor saveRstd, boolean train, float momentum, float eps) {
        if (!train) {
            batchnormForwardEval(out, x, gamma, beta, runningMean, runningVar, eps);
            return;
        }
        int c = x.dim(1);
        Tensor mean = saveMean != null ? saveMean : memory.empty(DType.F32, c);
        Tensor rstd = saveRstd != null ? saveRstd : memory.empty(DType.F32, c);
        batchnormForwardStats(mean, rstd, runningMean, runningVar, x, momentum, eps);
        batchnormForwardApply(out, x, gamma, beta, mean, rstd);
        if (mean != saveMean) memory.release(mean);
        if (rstd != saveRstd) memory.release(rstd);
    }

    void batchnormForwardEval(Tensor out, Tensor x, Tensor gamma, Tensor beta, Tensor runningMean, Tensor runningVar, float eps) {
        launcher.elementwise(BATCHNORM_FORWARD_EVAL, x.numel(), launcher.args().ptr(out.deviceAddress()).ptr(x.deviceAddress())
                .ptr(gamma.deviceAddress()).ptr(beta.deviceAddress()).ptr(runningMean.deviceAddress())
                .ptr(runningVar.deviceAddress()).i32(x.dim(0)).i32(x.dim(1)).i32(planeSize(x)).f32(eps));
    }

    void batchnormForwardStats(Tensor mean, Tensor rstd, Tensor runningMean, Tensor runningVar, Tensor x, float momentum, float eps) {
        launcher.launch(BATCHNORM_FORWARD_STATS, x.dim(1), 1, 1, ELEMENTWISE_THREADS, 1, 1, 0, launcher.args().ptr(mean.deviceAddress())
                .ptr(rstd.deviceAddress()).ptr(runningMean.deviceAddress()).ptr(runningVar.deviceAddress()).ptr(x.deviceAddress())
                .i32(x.dim(0)).i32(x.dim(1)).i32(planeSize(x)).f32(momentum).f32(eps));
    }

    void batchnormForwardApply(Tensor out, Tensor x, Tensor gamma, Tensor beta, Tensor mean, Tensor rstd) {
        launcher.elementwise(BATCHNORM_FORWARD_APPLY, x.numel(), launcher.args().ptr(out.deviceAddress()).ptr(x.deviceAddress())
                .ptr(gamma.deviceAddress()).ptr(beta.deviceAddress()).ptr(mean.deviceAddress()).ptr(rstd.deviceAddress())
                .i32(x.dim(0)).i32(x.dim(1)).i32(planeSize(x)));
    }

    /** dx, dgamma, dbeta += the gradients (each may be null). */
    void batchnormBackward(Tensor dx, Tensor dgamma, Tensor dbeta, Tensor dout, Tensor x, Tensor gamma, Tensor saveMean, Tensor saveRstd) {
        launcher.launch(BATCHNORM_BACKWARD, x.dim(1), 1, 1, ELEMENTWISE_THREADS, 1, 1, 0, launcher.args().ptr(address(dx))
                .ptr(address(dgamma)).ptr(address(dbeta)).ptr(dout.deviceAddress()).ptr(x.deviceAddress()).ptr(gamma.deviceAddress())
                .ptr(saveMean.deviceAddress()).ptr(saveRstd.deviceAddress()).i32(x.dim(0)).i32(x.dim(1)).i32(planeSize(x)));
    }

    private static int planeSize(Tensor x) {
        return x.dim(2) * x.dim(3);
    }
}
