package org.clipj.eval;

import org.junit.jupiter.api.Test;

import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class LinearProbeTest {

    /** Gaussian blobs around C centres in D dims. */
    private static float[][] blobs(int n, int classes, int dim, double noise, long seed, int[] labelsOut) {
        Random rng = new Random(seed);
        Random centres = new Random(1234);
        double[][] mu = new double[classes][dim];
        for (double[] m : mu) for (int d = 0; d < dim; d++) m[d] = centres.nextGaussian();
        float[][] x = new float[n][dim];
        for (int i = 0; i < n; i++) {
            int y = i % classes;
            labelsOut[i] = y;
            for (int d = 0; d < dim; d++) x[i][d] = (float) (mu[y][d] + noise * rng.nextGaussian());
        }
        return x;
    }

    @Test
    void separableDataIsClassifiedPerfectlyAndTheGradientVanishes() {
        int[] y = new int[300];
        float[][] x = blobs(300, 4, 8, 0.1, 1, y);
        LinearProbe.Model m = LinearProbe.fit(x, y, 4, 1e-3);
        assertEquals(1.0, m.accuracy(x, y), 1e-12);
        assertTrue(m.gradientNorm() < 1e-4, "gradient norm at the solution: " + m.gradientNorm());
        double[] theta = new double[4 * 8 + 4];
        System.arraycopy(m.weights(), 0, theta, 0, 32);
        System.arraycopy(m.bias(), 0, theta, 32, 4);
        double[] grad = new double[theta.length];
        LinearProbe.value(x, y, 4, 8, 1e-3, theta, grad, x.length, 32);
        assertTrue(Lbfgs.norm(grad) < 1e-4, "recomputed gradient norm " + Lbfgs.norm(grad));
    }

    @Test
    void noisyDataGeneralizesAndSweepPicksARegularizer() {
        int[] y = new int[400];
        float[][] x = blobs(400, 3, 16, 1.2, 2, y);
        int[] yTest = new int[300];
        float[][] xTest = blobs(300, 3, 16, 1.2, 3, yTest);
        LinearProbe.Result r = LinearProbe.fitWithSweep(x, y, 3, 0.25, 7);
        assertTrue(r.sweep().size() >= 9);
        assertTrue(r.chosenLambda() >= 1e-6 && r.chosenLambda() <= 1e3);
        double acc = r.model().accuracy(xTest, yTest);
        assertTrue(acc > 0.8, "held-out accuracy " + acc);
        assertTrue(r.model().gradientNorm() < 1e-4, "gradient norm " + r.model().gradientNorm());
    }

    /**
     * Two classes in one dimension: the optimum reduces to logistic regression in (v, c) =
     * (w1 - w0, b1 - b0) with penalty (lambda/2)(v^2/2); solved here independently by Newton's method.
     */
    @Test
    void matchesAnIndependentlyComputedOptimum() {
        Random rng = new Random(5);
        int n = 200;
        float[][] x = new float[n][1];
        int[] y = new int[n];
        for (int i = 0; i < n; i++) {
            y[i] = rng.nextBoolean() ? 1 : 0;
            x[i][0] = (float) ((y[i] == 1 ? 0.7 : -0.4) + rng.nextGaussian());
        }
        double lambda = 0.05;
        double v = 0, c = 0;
        for (int it = 0; it < 100; it++) {
            double gv = lambda * v / 2, gc = 0, hvv = lambda / 2, hvc = 0, hcc = 0;
            for (int i = 0; i < n; i++) {
                double p = 1 / (1 + Math.exp(-(v * x[i][0] + c)));
                double r = (p - y[i]) / n;
                double w = p * (1 - p) / n;
                gv += r * x[i][0];
                gc += r;
                hvv += w * x[i][0] * x[i][0];
                hvc += w * x[i][0];
                hcc += w;
            }
            double det = hvv * hcc - hvc * hvc;
            v -= (hcc * gv - hvc * gc) / det;
            c -= (hvv * gc - hvc * gv) / det;
        }
        LinearProbe.Model m = LinearProbe.fit(x, y, 2, lambda);
        assertEquals(v, m.weights()[1] - m.weights()[0], 1e-4);
        assertEquals(c, m.bias()[1] - m.bias()[0], 1e-4);
        assertEquals(-m.weights()[0], m.weights()[1], 1e-4); // the penalty splits v evenly
    }

    @Test
    void rejectsLabelsOutOfRange() {
        float[][] x = {{1f}, {2f}};
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> LinearProbe.fit(x, new int[]{0, 3}, 2, 1e-3));
        assertTrue(e.getMessage().contains("label 3"));
    }
}
