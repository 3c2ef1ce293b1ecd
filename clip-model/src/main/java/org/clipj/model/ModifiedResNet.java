package org.clipj.model;

import org.clipj.runtime.Backend;
import org.clipj.runtime.DType;
import org.clipj.runtime.Tensor;

import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.function.Function;

/**
 * openai/CLIP's ModifiedResNet: a 3-convolution stem (3x3 stride 2, 3x3, 3x3; BatchNorm + ReLU each)
 * and a 2x2 average pool, four stages of {@link Bottleneck}s (planes w, 2w, 4w, 8w; strides 1, 2, 2, 2),
 * then {@link AttentionPool2d} to the embedding width.
 */
final class ModifiedResNet implements VisionTower {
    private static final String P = "visual.";

    private final Backend backend;
    final ConvBn stem1;                      // 3 -> w/2, stride 2
    final ConvBn stem2;                      // w/2 -> w/2
    final ConvBn stem3;                      // w/2 -> w
    final List<List<Bottleneck>> stages;     // 4 stages
    final AttentionPool2d attnpool;

    /** Activations kept for the backward, and the stage outputs for inspection. */
    static final class Cache implements Activations {
        final ConvBn.Cache s1 = new ConvBn.Cache();
        final ConvBn.Cache s2 = new ConvBn.Cache();
        final ConvBn.Cache s3 = new ConvBn.Cache();
        Tensor stem;                         // (B, w, R/4, R/4) after the stem's average pool
        final List<List<Bottleneck.Cache>> stages = new ArrayList<>();
        final List<Tensor> stageOutputs = new ArrayList<>();  // (B, 4w * 2^s, R/(4 * 2^s), ...)
        final AttentionPool2d.Cache pool = new AttentionPool2d.Cache();
        Tensor features;                     // (B, E)

        @Override
        public Tensor features() {
            return features;
        }

        /** {@code visual.stem} and {@code visual.layer<1..4>} (B, C, H, W). */
        @Override
        public Map<String, Tensor> intermediates() {
            Map<String, Tensor> m = new LinkedHashMap<>();
            m.put("visual.stem", stem);
            for (int i = 0; i < stageOutputs.size(); i++) {
                m.put("visual.layer" + (i + 1), stageOutputs.get(i));
            }
            return Collections.unmodifiableMap(m);
        }
    }

    ModifiedResNet(Backend backend, Function<String, Tensor> lookup, ClipConfig c) {
        this.backend = backend;
        stem1 = new ConvBn(backend, lookup, P + "conv1.weight", P + "bn1.", 2, 1, true);
        stem2 = new ConvBn(backend, lookup, P + "conv2.weight", P + "bn2.", 1, 1, true);
        stem3 = new ConvBn(backend, lookup, P + "conv3.weight", P + "bn3.", 1, 1, true);
        List<List<Bottleneck>> list = new ArrayList<>();
        int width = c.visionWidth();
        int inplanes = width;
        for (int s = 0; s < 4; s++) {
            int planes = width << s;
            List<Bottleneck> blocks = new ArrayList<>();
            for (int i = 0; i < c.resnetLayers().get(s); i++) {
                int stride = i == 0 && s > 0 ? 2 : 1;
                blocks.add(new Bottleneck(backend, lookup, P + "layer" + (s + 1) + "." + i + ".", inplanes, planes, stride));
                inplanes = planes * Bottleneck.EXPANSION;
            }
            list.add(List.copyOf(blocks));
        }
        stages = List.copyOf(list);
        attnpool = new AttentionPool2d(backend, lookup, P + "attnpool.", c.visionAttentionWidth(), c.visionHeads(),
                c.embedDim());
    }

    static void specs(ClipConfig c, List<TensorSpec> out) {
        int width = c.visionWidth();
        ConvBn.specs(P + "conv1.weight", P + "bn1.", width / 2, 3, 3, out);
        ConvBn.specs(P + "conv2.weight", P + "bn2.", width / 2, width / 2, 3, out);
        ConvBn.specs(P + "conv3.weight", P + "bn3.", width, width / 2, 3, out);
        int inplanes = width;
        for (int s = 0; s < 4; s++) {
            int planes = width << s;
            for (int i = 0; i < c.resnetLayers().get(s); i++) {
                int stride = i == 0 && s > 0 ? 2 : 1;
                Bottleneck.specs(P + "layer" + (s + 1) + "." + i + ".", inplanes, planes, stride, out);
                inplanes = planes * Bottleneck.EXPANSION;
            }
        }
        AttentionPool2d.specs(P + "attnpool.", c.grid(), c.visionAttentionWidth(), c.embedDim(), out);
    }

    @Override
    public Activations newActivations() {
        return new Cache();
    }

    /** pixels (B, 3, R, R) -> features (B, E); kept (filled) when non-null; train selects BatchNorm batch statistics. */
    @Override
    public Tensor forward(Tensor pixels, Activations kept, boolean train) {
        Cache cache = (Cache) kept;
        boolean keep = cache != null;
        Tensor x = stem1.forward(pixels, keep ? cache.s1 : null, train);
        x = stem2.forward(x, keep ? cache.s2 : null, train);
        x = stem3.forward(x, keep ? cache.s3 : null, train);
        Tensor pooled = backend.empty(DType.F32, x.dim(0), x.dim(1), x.dim(2) / 2, x.dim(3) / 2);
        backend.avgPool2dForward(pooled, x, 2);
        x = pooled;
        if (keep) {
            cache.stem = pooled;
        }
        for (List<Bottleneck> stage : stages) {
            List<Bottleneck.Cache> caches = new ArrayList<>();
            for (Bottleneck block : stage) {
                Bottleneck.Cache c = keep ? new Bottleneck.Cache() : null;
                x = block.forward(x, c, train);
                caches.add(c);
            }
            if (keep) {
                cache.stages.add(caches);
                cache.stageOutputs.add(x);
            }
        }
        Tensor features = attnpool.forward(x, keep ? cache.pool : null);
        if (keep) {
            cache.features = features;
        }
        return features;
    }

    /** Accumulates every parameter's gradient into {@code gradTower} for dFeatures (B, E). */
    @Override
    public void backward(Tensor dFeatures, Activations kept, VisionTower gradTower) {
        Cache cache = (Cache) kept;
        ModifiedResNet grads = (ModifiedResNet) gradTower;
        Tensor dx = attnpool.backward(dFeatures, cache.pool, grads.attnpool);
        for (int s = stages.size() - 1; s >= 0; s--) {
            List<Bottleneck> stage = stages.get(s);
            for (int i = stage.size() - 1; i >= 0; i--) {
                dx = stage.get(i).backward(dx, cache.stages.get(s).get(i), grads.stages.get(s).get(i));
            }
        }
        Tensor dStem = backend.zeros(DType.F32, cache.s3.out.shape());
        backend.avgPool2dBackward(dStem, dx, 2);
        dx = stem3.backward(dStem, cache.s3, grads.stem3, true);
        dx = stem2.backward(dx, cache.s2, grads.stem2, true);
        stem1.backward(dx, cache.s1, grads.stem1, false);
    }
}
