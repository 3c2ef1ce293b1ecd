package org.clipj.model;

import org.clipj.runtime.Backend;
import org.clipj.runtime.Tensor;
import org.clipj.runtime.cpu.CpuBackend;
import org.junit.jupiter.api.Test;

import java.util.List;
import java.util.SplittableRandom;
import java.util.function.Supplier;

import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The hand-written backward against central finite differences, per parameter tensor, on shapes the
 * golden models do not cover: ResNet stages of several blocks (identity shortcuts), multi-head
 * vision attention, text shorter than the context with the EOT at different positions.
 * Loss = sum(features * R) for a fixed random R, so dFeatures = R. Scalar backend: deterministic.
 */
class ClipModelGradientTest {
    private final Backend backend = new CpuBackend(1, false);

    @Test
    void resnetGradientsMatchFiniteDifferences() {
        ClipConfig c = ClipConfig.resnet("fd-rn", 12, 64, 8, List.of(1, 1, 1, 1), 8, 40, 32, 1);
        ClipModel model = perturbed(ClipModel.initialize(c, 3, backend));
        Tensor pixels = ClipModelTest.randomPixels(2, 64, 11);
        checkImage(model, pixels);
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
        compare(model, "visual.", true, () -> dot(model.forwardText(tokens).features(), r));
    }

    private void checkImage(ClipModel model, Tensor pixels) {
        int e = model.config().embedDim();
        float[] r = random(pixels.dim(0) * e, 21);
        model.zeroGrad();
        ImageActivations acts = model.forwardImage(pixels, true);
        model.backwardImage(acts, Tensor.of(r, pixels.dim(0), e));
        compare(model, "visual.", false, () -> dot(model.forwardImage(pixels, true).features(), r));
    }

    /** For every parameter of one tower (names with/without the prefix), grad . v vs (L(p + hv) - L(p - hv)) / 2h. */
    private static void compare(ClipModel model, String prefix, boolean exclude, Supplier<Double> loss) {
        SplittableRandom rng = new SplittableRandom(5);
        int checked = 0;
        double worst = 0;
        for (Parameter p : model.parameters()) {
            if (p.name().startsWith(prefix) == exclude || p.name().equals("logit_scale")) {
                continue;
            }
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
            double h = Double.parseDouble(System.getProperty("fd.h", "1e-4"));
            for (int i = 0; i < n; i++) value[off + i] = (float) (saved[i] + h * v[i]);
            double plus = loss.get();
            for (int i = 0; i < n; i++) value[off + i] = (float) (saved[i] - h * v[i]);
            double minus = loss.get();
            System.arraycopy(saved, 0, value, off, n);
            double numeric = (plus - minus) / (2 * h);
            double err = Math.abs(analytic - numeric) / (Math.max(Math.abs(analytic), Math.abs(numeric)) + 1e-2);
            worst = Math.max(worst, err);
            if (err >= 2e-2) System.out.println("FD " + p.name() + ": analytic " + analytic + " vs finite difference " + numeric);
            checked++;
        }
        assertTrue(checked > 0);
        System.out.printf("finite differences: %d tensors, worst relative error %.2e%n", checked, worst);
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
