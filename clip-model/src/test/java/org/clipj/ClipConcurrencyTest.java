package org.clipj;

import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;

/**
 * One Clip shared by many threads gives each the same embeddings as a lone caller. Equal up to
 * 1e-6, not bit for bit: the Vector API leaves the order of a float reduceLanes to the
 * implementation, and the JIT-compiled intrinsic and the interpreter's fallback sum differently.
 */
class ClipConcurrencyTest {
    @Test
    void concurrentCallersGetIdenticalEmbeddings() throws Exception {
        List<String> texts = List.of("a diagram", "a photo of a dog.", "a cat sitting on a red chair");
        List<java.nio.file.Path> images = List.of(TestAssets.golden("text-image", "images", "CLIP.png"),
                TestAssets.golden("text-image", "images", "wide.png"));
        try (Clip clip = Clip.load(TestAssets.golden("tiny-vit", "model.safetensors"),
                Clip.Options.defaults().withVocab(TestAssets.vocab()).withDevice("cpu"))) {
            float[][] textRef = clip.encodeTexts(texts);
            float[][] imageRef = clip.encodeImages(images);
            ExecutorService pool = Executors.newFixedThreadPool(6);
            try {
                List<Future<float[][][]>> futures = new ArrayList<>();
                for (int i = 0; i < 12; i++) {
                    futures.add(pool.submit(() -> new float[][][]{clip.encodeTexts(texts), clip.encodeImages(images)}));
                }
                for (Future<float[][][]> f : futures) {
                    float[][][] got = f.get();
                    for (int i = 0; i < texts.size(); i++) assertArrayEquals(textRef[i], got[0][i], 1e-6f);
                    for (int i = 0; i < images.size(); i++) assertArrayEquals(imageRef[i], got[1][i], 1e-6f);
                }
            } finally {
                pool.shutdownNow();
            }
        }
    }
}
