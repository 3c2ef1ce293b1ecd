package org.clipj.train;

import org.clipj.model.ClipConfig;
import org.clipj.model.ClipModel;
import org.clipj.model.Parameter;
import org.clipj.runtime.Tensor;
import org.clipj.runtime.cpu.CpuBackend;
import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** GradCache: k micro-batches of b give the loss and gradients of one batch of k * b. */
class ContrastiveStepTest {
    static final ClipConfig TINY = ClipConfig.vit("test-tiny", 16, 16, 32, 2, 8, 8, 300, 32, 2);

    static Tensor pixels(int b, int r, long seed) {
        SplittableRandom rng = new SplittableRandom(seed);
        float[] px = new float[b * 3 * r * r];
        for (int i = 0; i < px.length; i++) {
            px[i] = (float) rng.nextGaussian();
        }
        return Tensor.of(px, b, 3, r, r);
    }

    static Tensor tokens(int b, int ctx, int vocab, long seed) {
        SplittableRandom rng = new SplittableRandom(seed);
        int[] ids = new int[b * ctx];
        for (int i = 0; i < b; i++) {
            int len = 1 + rng.nextInt(ctx - 1);
            for (int t = 0; t < len; t++) {
                ids[i * ctx + t] = 1 + rng.nextInt(vocab - 2);
            }
            ids[i * ctx + len] = vocab - 1; // EOT: the highest id, found by argmax
        }
        return Tensor.of(ids, b, ctx);
    }

    private static List<float[]> grads(ClipModel model) {
        List<float[]> out = new ArrayList<>();
        for (Parameter p : model.parameters()) {
            out.add(model.backend().download(p.grad()).toFloatArray());
        }
        return out;
    }

    @Test
    void microBatchesGiveTheGradientOfTheWholeBatch() {
        try (CpuBackend backend = new CpuBackend(2, false)) {
            ClipModel model = ClipModel.initialize(TINY, 5, backend);
            int r = TINY.imageResolution();
            Tensor px = pixels(6, r, 1);
            Tensor tk = tokens(6, TINY.contextLength(), TINY.vocabSize(), 2);

            model.zeroGrad();
            float whole = ContrastiveStep.lossAndGradients(model, List.of(px), List.of(tk));
            List<float[]> expected = grads(model);

            model.zeroGrad();
            float parts = ContrastiveStep.lossAndGradients(model,
                    List.of(px.slice(0, 2), px.slice(2, 4), px.slice(4, 6)),
                    List.of(tk.slice(0, 2), tk.slice(2, 4), tk.slice(4, 6)));
            List<float[]> actual = grads(model);

            assertEquals(whole, parts, 1e-6f);
            assertTrue(whole > 0.5f, "loss of random features over 6 pairs is near ln 6: " + whole);
            double maxAbs = 0;
            List<Parameter> params = model.parameters();
            for (int i = 0; i < expected.size(); i++) {
                float[] e = expected.get(i);
                float[] a = actual.get(i);
                for (int j = 0; j < e.length; j++) {
                    maxAbs = Math.max(maxAbs, Math.abs(e[j]));
                    assertEquals(e[j], a[j], 1e-6 + 1e-4 * Math.abs(e[j]), params.get(i).name() + "[" + j + "]");
                }
            }
            assertTrue(maxAbs > 1e-4, "gradients are not all zero");
        }
    }
}
