package org.clipj.model;

import org.clipj.runtime.Backend;
import org.clipj.runtime.Tensor;
import org.clipj.runtime.cpu.CpuBackend;
import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import java.util.function.Supplier;

import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The hand-written backward against central finite differences, per tensor, on what the golden
 * models do not cover: Bottlenecks with an identity shortcut, multi-head vision attention, text
 * shorter than the context with the EOT at different positions.
 * Loss = sum(out * R) for a fixed random R, so dOut = R. Scalar backend: deterministic.
 */
class ClipModelGradientTest {
    private final Backend backend = new CpuBackend(1, false);

    @Test
    void bottleneckGradientsMatchFiniteDifferences() {
        checkBottleneck(16, 4, 1);    // identity shortcut (the golden ResNet has none)
        checkBottleneck(8, 4, 2);     // avg-pooled main path and downsample
    }

    @Test
    void resnetWithSeveralBlocksPerStageBackpropagatesEverywhere() {
        ClipConfig c = ClipConfig.resnet("rn-1211", 12, 32, 8, List.of(1, 2, 1, 1), 8, 40, 32, 1);
        ClipModel model = perturbed(ClipModel.initialize(c, 3, backend));
        Tensor pixels = ClipModelTest.randomPixels(3, 32, 11);
        ImageActivations acts = model.forwardImage(pixels, true);
        model.backwardImage(acts, Tensor.of(random(3 * 12, 2), 3, 12));
        for (Parameter p : tower(model, true)) {
            if (p.name().equals("visual.attnpool.k_proj.bias")) {
                continue;   // exactly zero in theory: softmax ignores a shift shared by all keys
            }
            float m = GoldenData.maxAbs(p.grad().toFloatArray());
            assertTrue(m > 0 && Float.isFinite(m), p.name() + " gradient max abs " + m);
        }
    }

    /**
     * One Bottleneck in train mode: the input gradient (the shortcut) and every parameter gradient.
     * BatchNorm shifts of +5 and a positive input keep every ReLU input positive, so no kink lies
     * inside the difference step and F32 differences are accurate (ReLU masks: the golden test).
     */
    private void checkBottleneck(int inplanes, int planes, int stride) {
        List<TensorSpec> specs = new ArrayList<>();
        Bottleneck.specs("b.", inplanes, planes, stride, specs);
        TowerStorage storage = new TowerStorage(backend, specs, s -> false);
        SplittableRandom rng = new SplittableRandom(inplanes * 31L + stride);
        for (TensorSpec spec : specs) {
            Tensor t = storage.value(spec.name());
            float[] a = t.f32();
            for (int i = t.offset(); i < t.offset() + t.size(); i++) {
                double g = rng.nextGaussian();
                a[i] = (float) switch (spec.name().substring(spec.name().lastIndexOf('.') + 1)) {
                    case "running_mean" -> 0;
                    case "running_var" -> 1;
                    case "bias" -> 5 + 0.1 * g;
                    default -> spec.shape().length == 4 ? g / Math.sqrt(spec.shape()[1] * spec.shape()[2] * spec.shape()[3])
                            : 1 + 0.1 * g;
                };
            }
        }
        Bottleneck block = new Bottleneck(backend, storage::value, "b.", inplanes, planes, stride);
        Bottleneck grads = new Bottleneck(backend, storage::grad, "b.", inplanes, planes, stride);
        int side = 4;
        float[] pixels = random(4 * inplanes * side * side, 3);
        for (int i = 0; i < pixels.length; i++) {
            pixels[i] = 2 + 0.5f * pixels[i];
        }
        Tensor x = Tensor.of(pixels, 4, inplanes, side, side);
        int outSide = side / stride;
        float[] r = random(4 * planes * 4 * outSide * outSide, 4);
        Bottleneck.Cache cache = new Bottleneck.Cache();
        block.forward(x, cache, true);
        Tensor dx = block.backward(Tensor.of(r, 4, planes * 4, outSide, outSide), cache, grads);
        Supplier<Double> loss = () -> dot(block.forward(x, null, true), r);
        List<Parameter> tensors = new ArrayList<>(storage.parameterList());
        tensors.add(new Parameter("input", x, dx));
        compare(tensors, loss, 1e-2);
    }

    @Test
    void vitAndTextGradientsMatchFiniteDifferences() {
        ClipConfig c = new ClipConfig("fd-vit", 12, 16, 128, 2, 2, 4, null, 8, 40, 32, 1, 2);
        ClipModel model = perturbed(ClipModel.initialize(c, 4, backend));
        checkImage(model, ClipModelTest.randomPixels(2, 16, 12));
        // T = 6 < context 8; EOT (the largest id) at positions 3 and 5
        Tensor tokens = Tensor.of(new int[]{1, 7, 22, 39, 0, 0, 5, 5, 31, 2, 17, 39}, 2, 6);
        float[] r = random(2 * c.embedDim(), 13);
        model.zeroGrad();
        TextActivations acts = model.forwardText(tokens);
        model.backwardText(acts, Tensor.of(r, 2, c.embedDim()));
        compare(tower(model, false), () -> dot(model.forwardText(tokens).features(), r), 1e-2);
    }

    /**
     * open_clip's options on the finite-difference model: exact GELU, MLP ratio 3, layer scale, no ln_pre,
     * average pooling with ln_post after (CLIPA) or before it, a bidirectional text tower pooled at the
     * last position, a text projection with bias, other layer-norm eps; and the EOS pool.
     */
    @Test
    void openClipVariantsMatchFiniteDifferences() {
        for (boolean lnAfterPool : new boolean[]{true, false}) {
            ClipConfig.Variant v = new ClipConfig.Variant(ClipConfig.Activation.GELU, ClipConfig.Activation.GELU, 96, 72,
                    0.1f, 0.2f, false, ClipConfig.VisionPool.AVG, lnAfterPool, ClipConfig.TextPool.LAST, -1, false, true,
                    1e-6f, 1e-5f, ClipConfig.CLIP_TOKENIZER);
            ClipConfig c = new ClipConfig("fd-openclip", 12, 16, 32, 2, 2, 4, null, 8, 40, 24, 2, 2, v);
            ClipModel model = perturbed(ClipModel.initialize(c, 4, backend));
            checkImage(model, ClipModelTest.randomPixels(2, 16, 12));
            checkText(model, Tensor.of(new int[]{1, 7, 22, 39, 0, 0, 5, 5, 31, 2, 17, 39}, 2, 6));
        }
        ClipConfig.Variant eos = new ClipConfig.Variant(ClipConfig.Activation.QUICK_GELU, ClipConfig.Activation.GELU, 128,
                64, 0f, 0.1f, true, ClipConfig.VisionPool.TOKEN, false, ClipConfig.TextPool.EOS, 31, true, false, 1e-5f,
                1e-5f, ClipConfig.CLIP_TOKENIZER);
        ClipModel model = perturbed(ClipModel.initialize(new ClipConfig("fd-eos", 12, 16, 32, 1, 1, 4, null, 8, 40, 32, 2, 2,
                eos), 4, backend));
        checkText(model, Tensor.of(new int[]{1, 7, 31, 39, 0, 0, 5, 5, 31, 2, 17, 39}, 2, 6));
    }

    private void checkText(ClipModel model, Tensor tokens) {
        int e = model.config().embedDim();
        float[] r = random(tokens.dim(0) * e, 13);
        model.zeroGrad();
        TextActivations acts = model.forwardText(tokens);
        model.backwardText(acts, Tensor.of(r, tokens.dim(0), e));
        compare(tower(model, false), () -> dot(model.forwardText(tokens).features(), r), 1e-2);
    }

    private void checkImage(ClipModel model, Tensor pixels) {
        int e = model.config().embedDim();
        float[] r = random(pixels.dim(0) * e, 21);
        model.zeroGrad();
        ImageActivations acts = model.forwardImage(pixels, true);
        model.backwardImage(acts, Tensor.of(r, pixels.dim(0), e));
        compare(tower(model, true), () -> dot(model.forwardImage(pixels, true).features(), r), 1e-2);
    }

    /** The parameters of the vision or the text tower (logit_scale belongs to neither forward). */
    private static List<Parameter> tower(ClipModel model, boolean visual) {
        return model.parameters().stream()
                .filter(p -> p.name().startsWith("visual.") == visual && !p.name().equals("logit_scale")).toList();
    }

    /** Per tensor: grad . v against (L(p + hv) - L(p - hv)) / 2h for a random unit direction v. */
    private static void compare(List<Parameter> tensors, Supplier<Double> loss, double h) {
        SplittableRandom rng = new SplittableRandom(5);
        double worst = 0;
        for (Parameter p : tensors) {
            float[] value = p.value().f32();
            int off = p.value().offset();
            int n = p.value().size();
            float[] grad = p.grad().toFloatArray();
            double[] v = new double[n];
            double norm = 0;
            for (int i = 0; i < n; i++) {
                v[i] = rng.nextGaussian();
                norm += v[i] * v[i];
            }
            double analytic = 0;
            for (int i = 0; i < n; i++) {
                v[i] /= Math.sqrt(norm);
                analytic += grad[i] * v[i];
            }
            float[] saved = java.util.Arrays.copyOfRange(value, off, off + n);
            for (int i = 0; i < n; i++) value[off + i] = (float) (saved[i] + h * v[i]);
            double plus = loss.get();
            for (int i = 0; i < n; i++) value[off + i] = (float) (saved[i] - h * v[i]);
            double minus = loss.get();
            System.arraycopy(saved, 0, value, off, n);
            double numeric = (plus - minus) / (2 * h);
            double err = Math.abs(analytic - numeric) / (Math.max(Math.abs(analytic), Math.abs(numeric)) + 5e-2);
            worst = Math.max(worst, err);
            assertTrue(err < 2e-2, p.name() + ": analytic " + analytic + " vs finite difference " + numeric);
        }
        System.out.printf("finite differences: %d tensors, worst relative error %.2e%n", tensors.size(), worst);
    }

    /** Moves every parameter off its initial value (zero-initialized gains would hide gradients). */
    private static ClipModel perturbed(ClipModel model) {
        SplittableRandom rng = new SplittableRandom(9);
        for (Parameter p : model.parameters()) {
            float[] a = p.value().f32();
            for (int i = p.value().offset(); i < p.value().offset() + p.value().size(); i++) {
                a[i] += (float) (0.1 * rng.nextGaussian());
            }
        }
        return model;
    }

    private static double dot(Tensor features, float[] r) {
        float[] f = features.toFloatArray();
        double s = 0;
        for (int i = 0; i < f.length; i++) {
            s += (double) f[i] * r[i];
        }
        return s;
    }

    private static float[] random(int n, long seed) {
        SplittableRandom rng = new SplittableRandom(seed);
        float[] r = new float[n];
        for (int i = 0; i < n; i++) {
            r[i] = (float) rng.nextGaussian();
        }
        return r;
    }
}
