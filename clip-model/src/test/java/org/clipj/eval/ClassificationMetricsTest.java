package org.clipj.eval;

import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

class ClassificationMetricsTest {
    @Test
    void topKPerClassAndConfusion() {
        float[][] scores = {
                {0.9f, 0.1f, 0.0f, 0, 0, 0, 0}, // true 0, predicted 0
                {0.2f, 0.1f, 0.7f, 0, 0, 0, 0}, // true 1, predicted 2, true class ranked 3rd (below 0.2 and 0.7)
                {0.1f, 0.0f, 0.3f, 0.4f, 0.5f, 0.6f, 0.7f}, // true 1 (0.0): rank 7 -> miss top-5
                {0.0f, 0.0f, 1.0f, 0, 0, 0, 0}, // true 2
        };
        ClassificationMetrics m = ClassificationMetrics.of(scores, new int[]{0, 1, 1, 2}, 7);
        assertEquals(0.5, m.top1(), 1e-12);
        assertEquals(0.75, m.top5(), 1e-12);
        double[] perClass = m.perClassAccuracy();
        assertEquals(1.0, perClass[0]);
        assertEquals(0.0, perClass[1]);
        assertEquals(1.0, perClass[2]);
        assertEquals(Double.NaN, perClass[3]);
        assertArrayEquals(new int[]{0, 0, 1, 0, 0, 0, 1}, m.confusion()[1]);
    }
}
