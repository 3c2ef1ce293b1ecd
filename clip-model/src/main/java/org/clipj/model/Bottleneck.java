package org.clipj.model;

import org.clipj.runtime.Backend;
import org.clipj.runtime.DType;
import org.clipj.runtime.Tensor;

import java.util.List;
import java.util.function.Function;

/**
 * ModifiedResNet's Bottleneck (expansion 4): conv1 1x1 -> conv2 3x3 -> avgpool(stride) -> conv3 1x1,
 * each with BatchNorm (ReLU after the first two); the identity path is AvgPool(stride) -> 1x1 conv
 * (downsample.0) -> BatchNorm (downsample.1) when the stride or the channel count changes;
 * out = relu(main + identity). All convolutions have stride 1: the stride is an average pool.
 */
final class Bottleneck {
    static final int EXPANSION = 4;

    private final Backend backend;
    private final int stride;
    final ConvBn conv1;          // inplanes -> planes, 1x1
    final ConvBn conv2;          // planes -> planes, 3x3 pad 1
    final ConvBn conv3;          // planes -> 4 planes, 1x1, no ReLU
    final ConvBn downsample;     // inplanes -> 4 planes, 1x1, no ReLU; null when the identity passes through

    /** Activations kept for the backward. */
    static final class Cache {
        final ConvBn.Cache c1 = new ConvBn.Cache();
        final ConvBn.Cache c2 = new ConvBn.Cache();
        final ConvBn.Cache c3 = new ConvBn.Cache();
        final ConvBn.Cache ds = new ConvBn.Cache();
        Tensor x;                // (B, inplanes, H, W)
        Tensor out;              // (B, 4 planes, H/stride, W/stride) after the final ReLU
    }

    Bottleneck(Backend backend, Function<String, Tensor> lookup, String prefix, int inplanes, int planes, int stride) {
        this.backend = backend;
        this.stride = stride;
        conv1 = new ConvBn(backend, lookup, prefix + "conv1.weight", prefix + "bn1.", 1, 0, true);
        conv2 = new ConvBn(backend, lookup, prefix + "conv2.weight", prefix + "bn2.", 1, 1, true);
        conv3 = new ConvBn(backend, lookup, prefix + "conv3.weight", prefix + "bn3.", 1, 0, false);
        downsample = hasDownsample(inplanes, planes, stride)
                ? new ConvBn(backend, lookup, prefix + "downsample.0.weight", prefix + "downsample.1.", 1, 0, false)
                : null;
    }

    static boolean hasDownsample(int inplanes, int planes, int stride) {
        return stride > 1 || inplanes != planes * EXPANSION;
    }

    static void specs(String prefix, int inplanes, int planes, int stride, List<TensorSpec> out) {
        ConvBn.specs(prefix + "conv1.weight", prefix + "bn1.", planes, inplanes, 1, out);
        ConvBn.specs(prefix + "conv2.weight", prefix + "bn2.", planes, planes, 3, out);
        ConvBn.specs(prefix + "conv3.weight", prefix + "bn3.", planes * EXPANSION, planes, 1, out);
        if (hasDownsample(inplanes, planes, stride)) {
            ConvBn.specs(prefix + "downsample.0.weight", prefix + "downsample.1.", planes * EXPANSION, inplanes, 1, out);
        }
    }

    /** x (B, inplanes, H, W) -> (B, 4 planes, H/stride, W/stride). */
    Tensor forward(Tensor x, Cache cache, boolean train) {
        boolean keep = cache != null;
        Tensor h = conv1.forward(x, keep ? cache.c1 : null, train);
        h = conv2.forward(h, keep ? cache.c2 : null, train);
        h = pool(h);
        Tensor main = conv3.forward(h, keep ? cache.c3 : null, train);
        Tensor identity = downsample != null ? downsample.forward(pool(x), keep ? cache.ds : null, train) : x;
        Tensor out = backend.empty(DType.F32, main.shape());
        backend.add(out, main, identity);
        backend.reluForward(out, out);
        if (keep) {
            cache.x = x;
            cache.out = out;
        }
        return out;
    }

    /** dout (B, 4 planes, H/stride, W/stride) -> dx (B, inplanes, H, W). */
    Tensor backward(Tensor dout, Cache cache, Bottleneck grads) {
        Tensor dSum = backend.zeros(DType.F32, dout.shape());
        backend.reluBackward(dSum, dout, cache.out);
        Tensor dPooled = conv3.backward(dSum, cache.c3, grads.conv3, true);
        Tensor dh = unpool(dPooled, cache.c2.out);
        dh = conv2.backward(dh, cache.c2, grads.conv2, true);
        Tensor dx = conv1.backward(dh, cache.c1, grads.conv1, true);
        if (downsample != null) {
            Tensor dIdentity = downsample.backward(dSum, cache.ds, grads.downsample, true);
            if (stride > 1) {
                backend.avgPool2dBackward(dx, dIdentity, stride);
            } else {
                backend.addScaled(dx, dIdentity, 1f);
            }
        } else {
            backend.addScaled(dx, dSum, 1f);
        }
        return dx;
    }

    /** nn.AvgPool2d(stride), the identity at stride 1. */
    private Tensor pool(Tensor x) {
        if (stride == 1) {
            return x;
        }
        Tensor out = backend.empty(DType.F32, x.dim(0), x.dim(1), x.dim(2) / stride, x.dim(3) / stride);
        backend.avgPool2dForward(out, x, stride);
        return out;
    }

    /** Backward of {@link #pool}: dout of the pooled map -> gradient of {@code input}'s shape. */
    private Tensor unpool(Tensor dout, Tensor input) {
        if (stride == 1) {
            return dout;
        }
        Tensor dx = backend.zeros(DType.F32, input.shape());
        backend.avgPool2dBackward(dx, dout, stride);
        return dx;
    }
}
