package org.clipj.eval;

import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

class RetrievalTest {

    private static float[] unit(double angle) {
        return new float[]{(float) Math.cos(angle), (float) Math.sin(angle)};
    }

    @Test
    void ranksWithSeveralCaptionsPerImage() {
        // images at angles 0, 1, 2 rad; captions: two for image 0 (one close, one far), one each for 1 and 2
        float[][] images = {unit(0), unit(1), unit(2)};
        float[][] texts = {unit(0.05), unit(2.9), unit(1.02), unit(0.4)};
        int[] textToImage = {0, 0, 1, 2};
        Retrieval.Result r = Retrieval.evaluate(images, texts, textToImage);
        // image 0: best caption is text 0 (closest overall) -> rank 1
        // image 1 (angle 1): text 2 at 1.02 closest -> rank 1
        // image 2 (angle 2): its caption text 3 at 0.4 (1.6 away); texts 2 (0.98), 1 (0.9) and 0 (1.95) ... ranks by cos
        assertArrayEquals(new int[]{1, 1, 3}, r.imageRanks());
        // text 0 -> image 0 rank 1; text 1 (2.9) -> image 2 (0.9 away) beats image 0 (2.9 away) and image 1 (1.9): rank 3
        // text 2 -> image 1 rank 1; text 3 (0.4) -> image 0 (0.4), image 1 (0.6) both beat image 2: rank 3
        assertArrayEquals(new int[]{1, 3, 1, 3}, r.textRanks());
        assertEquals(2.0 / 3, r.imageToText().recallAt1(), 1e-12);
        assertEquals(1.0, r.imageToText().recallAt5(), 1e-12);
        assertEquals(0.5, r.textToImage().recallAt1(), 1e-12);
        assertEquals(2.0, r.textToImage().meanRank(), 1e-12);
        assertEquals(2.0, r.textToImage().medianRank(), 1e-12);
    }

    @Test
    void backendBlocksMatchTheScalarReference() {
        java.util.Random rng = new java.util.Random(5);
        int ni = 300; // more than one block of 256
        int dim = 37;
        float[][] images = new float[ni][];
        for (int i = 0; i < ni; i++) images[i] = randomUnit(rng, dim);
        int nt = 2 * ni + 17;
        float[][] texts = new float[nt][];
        int[] textToImage = new int[nt];
        for (int t = 0; t < nt; t++) {
            textToImage[t] = t < ni ? t : rng.nextInt(ni);
            float[] noisy = randomUnit(rng, dim);
            float[] img = images[textToImage[t]];
            for (int d = 0; d < dim; d++) noisy[d] = img[d] + 3f * noisy[d];
            texts[t] = normalize(noisy);
        }
        Retrieval.Result reference = Retrieval.evaluate(images, texts, textToImage);
        try (org.clipj.runtime.cpu.CpuBackend backend = new org.clipj.runtime.cpu.CpuBackend()) {
            Retrieval.Result blocked = Retrieval.evaluate(backend, images, texts, textToImage);
            assertArrayEquals(reference.imageRanks(), blocked.imageRanks());
            assertArrayEquals(reference.textRanks(), blocked.textRanks());
        }
        assertEquals(true, reference.imageToText().recallAt1() > 0.2 && reference.imageToText().recallAt1() < 1,
                "a non-trivial case: " + reference.imageToText());
    }

    private static float[] randomUnit(java.util.Random rng, int dim) {
        float[] v = new float[dim];
        for (int d = 0; d < dim; d++) v[d] = (float) rng.nextGaussian();
        return normalize(v);
    }

    private static float[] normalize(float[] v) {
        double s = 0;
        for (float x : v) s += x * x;
        for (int d = 0; d < v.length; d++) v[d] /= (float) Math.sqrt(s);
        return v;
    }

    @Test
    void imageWithoutCaptionIsAnError() {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> Retrieval.evaluate(new float[][]{unit(0), unit(1)}, new float[][]{unit(0)}, new int[]{0}));
        assertEquals("image 1 has no caption", e.getMessage());
    }
}
