package org.clipj.model;

import org.clipj.runtime.Backend;
import org.clipj.runtime.DType;
import org.clipj.runtime.Tensor;

import java.util.List;
import java.util.function.Function;

/** Conv2d (square kernel, no bias) -> BatchNorm2d -> optional ReLU, the unit ModifiedResNet is made of. */
final class ConvBn {
    static final float BN_EPS = 1e-5f;
    static final float BN_MOMENTUM = 0.1f;

    private final Backend backend;
    private final int stride;
    private final int padding;
    private final boolean relu;
    final Tensor weight;         // (Co, Ci, K, K)
    final Tensor gamma;          // (Co)
    final Tensor beta;           // (Co)
    final Tensor runningMean;    // (Co) buffer; null in the gradient instance
    final Tensor runningVar;     // (Co) buffer; null in the gradient instance

    /** Activations kept for the backward. */
    static final class Cache {
        Tensor x;                // (B, Ci, H, W)
        Tensor conv;             // (B, Co, Ho, Wo)
        Tensor saveMean;         // (Co) batch mean (train mode)
        Tensor saveRstd;         // (Co) 1 / sqrt(batch var + eps) (train mode)
        Tensor out;              // (B, Co, Ho, Wo) after BatchNorm (and ReLU)
        boolean train;
    }

    ConvBn(Backend backend, Function<String, Tensor> lookup, String convName, String bnPrefix, int stride, int padding,
           boolean relu) {
        this.backend = backend;
        this.stride = stride;
        this.padding = padding;
        this.relu = relu;
        weight = lookup.apply(convName);
        gamma = lookup.apply(bnPrefix + "weight");
        beta = lookup.apply(bnPrefix + "bias");
        runningMean = lookup.apply(bnPrefix + "running_mean");
        runningVar = lookup.apply(bnPrefix + "running_var");
    }

    static void specs(String convName, String bnPrefix, int out, int in, int kernel, List<TensorSpec> list) {
        list.add(TensorSpec.param(convName, out, in, kernel, kernel));
        list.add(TensorSpec.param(bnPrefix + "weight", out));
        list.add(TensorSpec.param(bnPrefix + "bias", out));
        list.add(TensorSpec.buffer(bnPrefix + "running_mean", out));
        list.add(TensorSpec.buffer(bnPrefix + "running_var", out));
    }

    /**
     * x (B, Ci, H, W) -> (B, Co, Ho, Wo). train: batch statistics, running statistics updated;
     * otherwise the running statistics normalize.
     */
    Tensor forward(Tensor x, Cache cache, boolean train) {
        int b = x.dim(0);
        int co = weight.dim(0);
        int k = weight.dim(2);
        int ho = (x.dim(2) + 2 * padding - k) / stride + 1;
        int wo = (x.dim(3) + 2 * padding - k) / stride + 1;
        Tensor conv = backend.empty(DType.F32, b, co, ho, wo);
        backend.conv2dForward(conv, x, weight, null, stride, padding);
        Tensor out = backend.empty(DType.F32, b, co, ho, wo);
        Tensor saveMean = train ? backend.empty(DType.F32, co) : null;
        Tensor saveRstd = train ? backend.empty(DType.F32, co) : null;
        backend.batchNormForward(out, conv, gamma, beta, runningMean, runningVar, saveMean, saveRstd, train,
                BN_MOMENTUM, BN_EPS);
        if (relu) {
            backend.reluForward(out, out);
        }
        if (cache != null) {
            cache.x = x;
            cache.conv = conv;
            cache.saveMean = saveMean;
            cache.saveRstd = saveRstd;
            cache.out = out;
            cache.train = train;
        }
        return out;
    }

    /** dout (B, Co, Ho, Wo) -> dx (B, Ci, H, W), or null when {@code needInput} is false (pixels). */
    Tensor backward(Tensor dout, Cache cache, ConvBn grads, boolean needInput) {
        if (!cache.train) {
            throw new IllegalStateException("a ResNet backward needs forwardImage(pixels, true): BatchNorm ran in eval mode");
        }
        Tensor dBn = dout;
        if (relu) {
            dBn = backend.zeros(DType.F32, dout.shape());
            backend.reluBackward(dBn, dout, cache.out);
        }
        Tensor dConv = backend.zeros(DType.F32, dout.shape());
        backend.batchNormBackward(dConv, grads.gamma, grads.beta, dBn, cache.conv, gamma, cache.saveMean, cache.saveRstd);
        Tensor dx = needInput ? backend.zeros(DType.F32, cache.x.shape()) : null;
        backend.conv2dBackward(dx, grads.weight, null, dConv, cache.x, weight, stride, padding);
        return dx;
    }
}
