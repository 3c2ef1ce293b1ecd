package org.clipj.eval;

import org.clipj.Clip;
import org.clipj.data.SyntheticDataset;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import javax.imageio.ImageIO;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.FileTime;
import java.util.ArrayList;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

class FeatureCacheTest {

    @Test
    void roundTripAndInvalidation(@TempDir Path dir) throws Exception {
        Path model = dir.resolve("model.bin");
        Files.write(model, new byte[]{1, 2, 3});
        Path image = dir.resolve("x.png");
        Files.write(image, new byte[]{4, 5});
        String key = FeatureCache.imageKey(image);
        assertNotNull(key);
        FeatureCache cache = FeatureCache.open(dir.resolve("cache"), model, "set", 3);
        assertNull(cache.get(key));
        cache.put(key, new float[]{1, 2, 3});
        cache.save();
        assertTrue(Files.isRegularFile(cache.file()));

        FeatureCache reopened = FeatureCache.open(dir.resolve("cache"), model, "set", 3);
        assertArrayEquals(new float[]{1, 2, 3}, reopened.get(key));
        assertEquals(0, FeatureCache.open(dir.resolve("cache"), model, "other set", 3).size());
        assertEquals(0, FeatureCache.open(dir.resolve("cache"), model, "set", 4).size(), "another embedding size is a miss");

        Files.setLastModifiedTime(image, FileTime.fromMillis(Files.getLastModifiedTime(image).toMillis() + 5000));
        assertNotEquals(key, FeatureCache.imageKey(image), "an edited image is a new key");
        String modelKey = FeatureCache.modelKey(model);
        Files.write(model, new byte[]{1, 2, 3, 4});
        assertNotEquals(modelKey, FeatureCache.modelKey(model), "an edited model is a new cache");
        assertNull(FeatureCache.imageKey(dir.resolve("missing.png")));

        Files.writeString(cache.file(), "not safetensors");
        assertEquals(0, FeatureCache.open(dir.resolve("cache"), Path.of(model.toString()), "set", 3).size());
    }

    @Test
    void extractionSkipsCorruptFilesAndMatchesTheModel(@TempDir Path dir) throws Exception {
        Path modelFile = TinyModels.write(dir.resolve("m"), 3);
        SyntheticDataset data = new SyntheticDataset(4, 7, 40, SyntheticDataset.Split.ALL);
        List<Path> files = new ArrayList<>();
        for (int i = 0; i < data.size(); i++) {
            Path f = dir.resolve("i" + i + ".png");
            ImageIO.write(data.image(i), "png", f.toFile());
            files.add(f);
            if (i == 2) {
                Path bad = dir.resolve("bad.png");
                TinyModels.writeCorrupt(bad);
                files.add(bad);
            }
        }
        try (Clip clip = Clip.load(modelFile, new Clip.Options(null, "cpu", 3))) {
            List<Path> good = files.stream().filter(f -> !f.getFileName().toString().equals("bad.png")).toList();
            float[][] reference = clip.encodeImages(good);
            FeatureCache cache = FeatureCache.open(dir.resolve("cache"), modelFile, "s", clip.embeddingSize());
            ImageFeatures.Extracted first = ImageFeatures.extract(clip, files, cache, null);
            assertEquals(1, first.skipped().size());
            assertTrue(first.skipped().getFirst().contains("bad.png"), first.skipped().toString());
            assertNull(first.embeddings()[3]);
            assertEquals(7, first.kept().length);
            for (int k = 0; k < 7; k++) {
                assertArrayEquals(reference[k], first.embeddings()[first.kept()[k]], 1e-5f);
            }
            ImageFeatures.Extracted second = ImageFeatures.extract(clip, files,
                    FeatureCache.open(dir.resolve("cache"), modelFile, "s", clip.embeddingSize()), null);
            assertEquals(7, second.cacheHits());
            assertEquals(1, second.skipped().size(), "a corrupt file is retried, not cached");
            for (int k = 0; k < 7; k++) {
                assertArrayEquals(first.embeddings()[first.kept()[k]], second.embeddings()[second.kept()[k]], 0f);
            }
        }
    }
}
