package org.clipj.model;

import org.clipj.runtime.Tensor;
import org.clipj.runtime.cpu.CpuBackend;
import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertEquals;

/** open_clip's 'avg' pooling, written out from the last block's output: ln_post before or after the mean. */
class PoolingTest {

    @Test
    void averagePoolingIsTheMeanOfThePatchTokens() {
        CpuBackend backend = new CpuBackend(1, false);
        for (boolean lnAfterPool : new boolean[]{true, false}) {
            ClipConfig.Variant v = new ClipConfig.Variant(ClipConfig.Activation.GELU, ClipConfig.Activation.GELU, 64, 64,
                    0f, 0f, false, ClipConfig.VisionPool.AVG, lnAfterPool, ClipConfig.TextPool.ARGMAX, -1, true, false,
                    1e-5f, 1e-5f, ClipConfig.CLIP_TOKENIZER);
            ClipConfig c = new ClipConfig("avg", 8, 16, 16, 1, 2, 8, null, 8, 40, 16, 1, 1, v);
            ClipModel model = ClipModel.initialize(c, 3, backend);
            Tensor pixels = ClipModelTest.randomPixels(2, 16, 5);
            ImageActivations acts = model.forwardImage(pixels, false);
            Tensor encoded = acts.intermediates().get("visual.block.0");     // (B, T, W), T = 4 + 1
            float[] e = encoded.toFloatArray();
            float[] lnW = model.stateDict().get("visual.ln_post.weight").toFloatArray();
            float[] lnB = model.stateDict().get("visual.ln_post.bias").toFloatArray();
            float[] proj = model.stateDict().get("visual.proj").toFloatArray();   // (W, E)
            int t = 5, w = 16;
            for (int b = 0; b < 2; b++) {
                double[] pooled = new double[w];
                for (int i = 1; i < t; i++) {
                    double[] row = new double[w];
                    for (int j = 0; j < w; j++) row[j] = e[(b * t + i) * w + j];
                    if (!lnAfterPool) row = layerNorm(row, lnW, lnB);
                    for (int j = 0; j < w; j++) pooled[j] += row[j] / (t - 1);
                }
                if (lnAfterPool) pooled = layerNorm(pooled, lnW, lnB);
                for (int k = 0; k < 8; k++) {
                    double f = 0;
                    for (int j = 0; j < w; j++) f += pooled[j] * proj[j * 8 + k];
                    assertEquals(f, acts.features().toFloatArray()[b * 8 + k], 1e-4, "lnAfterPool " + lnAfterPool);
                }
            }
        }
    }

    private static double[] layerNorm(double[] x, float[] w, float[] b) {
        double mean = 0, var = 0;
        for (double v : x) mean += v / x.length;
        for (double v : x) var += (v - mean) * (v - mean) / x.length;
        double[] out = new double[x.length];
        for (int i = 0; i < x.length; i++) out[i] = (x[i] - mean) / Math.sqrt(var + 1e-5) * w[i] + b[i];
        return out;
    }
}
