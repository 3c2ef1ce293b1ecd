package org.clipj.image;

import org.clipj.io.SafeTensors;
import org.clipj.runtime.InvalidInputException;
import org.clipj.runtime.Tensor;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

import java.awt.image.BufferedImage;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;
import java.util.SplittableRandom;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class PreprocessTest {
    private static Map<String, Tensor> golden;
    private static Path images;

    static Path textImageGolden() {
        String prop = System.getProperty("clip.shared");
        Path dir = (prop != null ? Path.of(prop) : Path.of("..", "..", "shared")).resolve("golden/text-image");
        if (!Files.isDirectory(dir) && prop == null) {
            dir = Path.of("..", "shared", "golden", "text-image");
        }
        assertTrue(Files.isDirectory(dir), "golden data missing: " + dir.toAbsolutePath());
        return dir;
    }

    @BeforeAll
    static void load() {
        Path dir = textImageGolden();
        golden = SafeTensors.read(dir.resolve("preprocess.safetensors"));
        images = dir.resolve("images");
    }

    @Test
    void everyGoldenImageWithinTolerance() {
        int checked = 0;
        for (Map.Entry<String, Tensor> e : golden.entrySet()) {
            String key = e.getKey();
            int dot = key.indexOf('.');
            int nPx = key.substring(0, dot).equals("pixels") ? 224 : Integer.parseInt(key.substring(6, dot));
            String file = key.substring(dot + 1);
            float[] expected = e.getValue().toFloatArray();
            float[] actual = Preprocess.clip(images.resolve(file), nPx);
            assertEquals(expected.length, actual.length, key);
            double max = 0;
            double sum = 0;
            for (int i = 0; i < actual.length; i++) {
                double d = Math.abs(actual[i] - expected[i]);
                max = Math.max(max, d);
                sum += d;
            }
            double mean = sum / actual.length;
            System.out.printf("preprocess %-22s max abs %.5f mean abs %.6f%n", key, max, mean);
            if (file.endsWith(".png")) {
                // README allows max 0.02 / mean 0.002; the fixed-point port of PIL's resampler is exact on PNG
                assertTrue(max <= 1e-6, key + ": max abs " + max + ", mean abs " + mean);
            } else {
                assertTrue(mean <= 0.01, key + ": mean abs " + mean);
            }
            checked++;
        }
        assertEquals(18, checked);
    }

    @Test
    void upscalesImagesSmallerThanTheCrop() {
        BufferedImage tiny = new BufferedImage(3, 5, BufferedImage.TYPE_INT_RGB);
        for (int y = 0; y < 5; y++) {
            for (int x = 0; x < 3; x++) {
                tiny.setRGB(x, y, 0x102030 * (x + y + 1));
            }
        }
        float[] px = Preprocess.clip(tiny, 32);
        assertEquals(3 * 32 * 32, px.length);
        for (float v : px) {
            assertTrue(Float.isFinite(v) && v > -2.5f && v < 2.7f, "normalized value out of range: " + v);
        }
    }

    @Test
    void uniformImageGivesTheNormalizedColorEverywhere() {
        BufferedImage img = new BufferedImage(57, 41, BufferedImage.TYPE_INT_RGB);
        for (int y = 0; y < 41; y++) {
            for (int x = 0; x < 57; x++) {
                img.setRGB(x, y, 0x80C040);
            }
        }
        float[] px = Preprocess.clip(img, 24);
        int[] rgb = {0x80, 0xC0, 0x40};
        for (int c = 0; c < 3; c++) {
            float want = (rgb[c] / 255f - Preprocess.MEAN[c]) / Preprocess.STD[c];
            for (int i = 0; i < 24 * 24; i++) {
                assertEquals(want, px[c * 576 + i], 0f);
            }
        }
    }

    @Test
    void randomResizedCropIsDeterministicPerSeedAndVaries() {
        BufferedImage img = ImageLoader.read(images.resolve("photo.jpg"));
        float[] a = Preprocess.randomResizedCrop(img, 32, new SplittableRandom(7), 0.5, 1.0);
        float[] b = Preprocess.randomResizedCrop(img, 32, new SplittableRandom(7), 0.5, 1.0);
        float[] c = Preprocess.randomResizedCrop(img, 32, new SplittableRandom(8), 0.5, 1.0);
        assertEquals(3 * 32 * 32, a.length);
        assertArrayEquals(a, b);
        assertFalse(java.util.Arrays.equals(a, c));
        // scale 1 with the image's own aspect inside the ratio range can only pick the whole image
        BufferedImage square = ImageLoader.read(images.resolve("gray.png"));
        float[] whole = Preprocess.randomResizedCrop(square, 32, new SplittableRandom(1), 1.0, 1.0);
        float[] clip = Preprocess.clip(square, 32);
        assertArrayEquals(clip, whole);
        assertThrows(InvalidInputException.class,
                () -> Preprocess.randomResizedCrop(img, 32, new SplittableRandom(1), 0.0, 1.0));
    }
}
