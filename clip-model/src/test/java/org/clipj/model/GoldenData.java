package org.clipj.model;

import org.clipj.io.SafeTensors;
import org.clipj.io.StoredTensor;
import org.clipj.runtime.Tensor;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

/** The PyTorch reference files under {@code clip.shared}/golden, and float comparisons against them. */
final class GoldenData {
    private GoldenData() {
    }

    /** The golden folder; fails (never skips) when it is missing. */
    static Path dir() {
        String property = System.getProperty("clip.shared");
        Path shared = property != null ? Path.of(property) : Path.of("..", "..", "shared");
        if (!Files.isDirectory(shared)) {
            shared = Path.of("..", "shared");
        }
        Path golden = shared.resolve("golden");
        assertTrue(Files.isDirectory(golden), "golden data missing: " + golden.toAbsolutePath());
        return golden;
    }

    static Map<String, Tensor> model(String name) {
        return SafeTensors.read(dir().resolve(name).resolve("model.safetensors"));
    }

    /** The model's tensors as a checkpoint opens them: read from the file when asked. */
    static Map<String, StoredTensor> stored(String name) {
        return SafeTensors.open(dir().resolve(name).resolve("model.safetensors"), n -> true).tensors();
    }

    static Map<String, Tensor> golden(String name) {
        return SafeTensors.read(dir().resolve(name).resolve("golden.safetensors"));
    }

    static Tensor get(Map<String, Tensor> tensors, String name) {
        Tensor t = tensors.get(name);
        if (t == null) {
            fail("golden file lacks " + name);
        }
        return t;
    }

    static float maxAbs(float[] a) {
        float m = 0;
        for (float v : a) {
            m = Math.max(m, Math.abs(v));
        }
        return m;
    }

    /** Max abs difference, after checking the shapes agree. */
    static float maxDiff(String what, Tensor expected, Tensor actual) {
        if (!expected.sameShape(actual)) {
            fail(what + ": shape " + actual.shapeString() + ", expected " + expected.shapeString());
        }
        float[] e = expected.toFloatArray();
        float[] a = actual.toFloatArray();
        float m = 0;
        for (int i = 0; i < e.length; i++) {
            float d = Math.abs(e[i] - a[i]);
            if (!(d <= m)) {
                m = Float.isNaN(d) ? Float.POSITIVE_INFINITY : d;
            }
        }
        return m;
    }
}
