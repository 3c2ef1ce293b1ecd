package org.clipj.runtime.cpu;

import static org.junit.jupiter.api.Assertions.fail;

import java.util.SplittableRandom;
import java.util.function.DoubleSupplier;

import org.clipj.runtime.Tensor;

/**
 * Shared helpers for the op-family tests: the scalar reference backend, the fast backend, seeded
 * random tensors, closeness checks and central finite differences accumulated in double.
 */
final class OpTesting {
    /** The serial scalar reference path. */
    static final CpuBackend SCALAR = new CpuBackend(1, false);
    /** The Vector API path on two threads, so every parallel split is exercised. */
    static final CpuBackend FAST = new CpuBackend(2, true);

    static final int[] ROWS = {1, 7, 50, 63, 65, 77, 197, 257};
    static final int[] WIDTHS = {64, 96, 768};

    private OpTesting() {}

    static Tensor random(SplittableRandom rng, float scale, int... shape) {
        Tensor t = Tensor.zeros(org.clipj.runtime.DType.F32, shape);
        float[] a = t.f32();
        for (int i = 0; i < a.length; i++) a[i] = (float) (rng.nextDouble(-1, 1) * scale);
        return t;
    }

    /** Max |a - b| <= atol + rtol * max|a|, reporting the worst element. */
    static void assertClose(String what, Tensor expected, Tensor actual, double atol, double rtol) {
        assertClose(what, expected.toFloatArray(), actual.toFloatArray(), atol, rtol);
    }

    static void assertClose(String what, float[] expected, float[] actual, double atol, double rtol) {
        if (expected.length != actual.length) fail(what + ": length " + actual.length + " != " + expected.length);
        double maxAbs = 0;
        for (float e : expected) maxAbs = Math.max(maxAbs, Math.abs(e));
        double limit = atol + rtol * maxAbs;
        int worst = -1;
        double worstErr = 0;
        for (int i = 0; i < expected.length; i++) {
            double err = Math.abs((double) expected[i] - actual[i]);
            if (Double.isNaN(err) || err > worstErr) {
                worstErr = Double.isNaN(err) ? Double.POSITIVE_INFINITY : err;
                worst = i;
            }
        }
        if (worstErr > limit) {
            fail(what + ": max error " + worstErr + " at " + worst + " (expected " + expected[worst] + ", got "
                    + actual[worst] + "), limit " + limit);
        }
    }

    /** sum_i w[i] * t[i] in double: projects an output onto fixed random weights to get a scalar loss. */
    static double project(Tensor t, Tensor w) {
        float[] a = t.toFloatArray(), b = w.toFloatArray();
        double s = 0;
        for (int i = 0; i < a.length; i++) s += (double) a[i] * b[i];
        return s;
    }

    /**
     * Compares the analytic gradient of {@code loss} with respect to {@code input} against central
     * differences (loss(x + h) - loss(x - h)) / 2h, every element, accumulated in double; the
     * error limit is tol * max(max|analytic|, 1e-2).
     */
    static void assertGradient(String what, Tensor input, Tensor analytic, DoubleSupplier loss, double h, double tol) {
        float[] x = input.f32();
        int off = input.offset(), n = input.size();
        float[] expected = new float[n];
        for (int i = 0; i < n; i++) {
            float saved = x[off + i];
            x[off + i] = (float) (saved + h);
            double plus = loss.getAsDouble();
            x[off + i] = (float) (saved - h);
            double minus = loss.getAsDouble();
            x[off + i] = saved;
            double step = (double) (float) (saved + h) - (float) (saved - h);
            expected[i] = (float) ((plus - minus) / step);
        }
        float[] got = analytic.toFloatArray();
        double scale = 1e-2;
        for (float g : got) scale = Math.max(scale, Math.abs(g));
        assertClose(what + " vs finite differences", expected, got, tol * scale, 0);
    }
}
