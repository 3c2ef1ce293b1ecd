package org.clipj;

import java.nio.file.Files;
import java.nio.file.Path;

import static org.junit.jupiter.api.Assertions.assertTrue;

/** Paths into ../shared (golden data and the BPE vocabulary); a missing folder fails the test, never skips it. */
public final class TestAssets {
    private TestAssets() {
    }

    public static Path shared() {
        String property = System.getProperty("clip.shared");
        Path shared = property != null ? Path.of(property) : Path.of("..", "..", "shared");
        if (!Files.isDirectory(shared)) {
            shared = Path.of("..", "shared");
        }
        assertTrue(Files.isDirectory(shared.resolve("golden")), "shared test assets missing: " + shared.toAbsolutePath());
        return shared;
    }

    public static Path golden(String first, String... more) {
        return shared().resolve("golden").resolve(first).resolve(String.join("/", more));
    }

    public static Path vocab() {
        return shared().resolve("vocab").resolve("bpe_simple_vocab_16e6.txt.gz");
    }

    public static float dot(float[] a, float[] b) {
        float s = 0;
        for (int i = 0; i < a.length; i++) s += a[i] * b[i];
        return s;
    }

    public static float[] normalized(float[] v) {
        double s = 0;
        for (float x : v) s += (double) x * x;
        float inv = (float) (1 / Math.sqrt(s));
        float[] out = new float[v.length];
        for (int i = 0; i < v.length; i++) out[i] = v[i] * inv;
        return out;
    }

    public static float maxAbsDiff(float[] a, float[] b) {
        assertTrue(a.length == b.length, "lengths " + a.length + " vs " + b.length);
        float m = 0;
        for (int i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
        return m;
    }
}
