package org.clipj.bench;

import java.util.SplittableRandom;
import org.clipj.model.ClipConfig;
import org.clipj.runtime.Tensor;

/** The synthetic inputs the profile and tail harnesses time: seeded, so every run sees the same ones. */
final class BenchInputs {
    private BenchInputs() {}

    /** (batch, 3, R, R) pixels uniform in [-1, 1). */
    static Tensor pixels(ClipConfig config, int batch) {
        SplittableRandom rng = new SplittableRandom(1);
        int r = config.imageResolution();
        float[] px = new float[batch * 3 * r * r];
        for (int i = 0; i < px.length; i++) px[i] = (float) (rng.nextDouble() * 2 - 1);
        return Tensor.of(px, batch, 3, r, r);
    }

    /** Full-length captions (SOT, 75 tokens, EOT), as the encoder benchmark's FLOP count assumes. */
    static Tensor tokens(ClipConfig config, int batch) {
        SplittableRandom rng = new SplittableRandom(1);
        int ctx = config.contextLength(), vocab = config.vocabSize();
        int[] ids = new int[batch * ctx];
        for (int b = 0; b < batch; b++) {
            ids[b * ctx] = vocab - 2;
            for (int i = 1; i < ctx - 1; i++) ids[b * ctx + i] = rng.nextInt(1, vocab - 2);
            ids[b * ctx + ctx - 1] = vocab - 1;
        }
        return Tensor.of(ids, batch, ctx);
    }
}
