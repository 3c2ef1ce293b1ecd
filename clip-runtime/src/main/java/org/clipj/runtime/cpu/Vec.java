package org.clipj.runtime.cpu;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorSpecies;

/** Vector API building blocks: loopBound + fma + one reduceLanes + scalar tail. */
final class Vec {
    static final VectorSpecies<Float> S = FloatVector.SPECIES_PREFERRED;
    static final int L = S.length();

    private Vec() {}

    /** sum_i a[ao + i] * b[bo + i]. */
    static float dot(float[] a, int ao, float[] b, int bo, int n) {
        FloatVector acc = FloatVector.zero(S);
        int i = 0, upper = S.loopBound(n);
        for (; i < upper; i += L) {
            acc = FloatVector.fromArray(S, a, ao + i).fma(FloatVector.fromArray(S, b, bo + i), acc);
        }
        float sum = acc.reduceLanes(VectorOperators.ADD);
        for (; i < n; i++) sum += a[ao + i] * b[bo + i];
        return sum;
    }

    /** y[yo + i] += alpha * x[xo + i]. */
    static void axpy(float alpha, float[] x, int xo, float[] y, int yo, int n) {
        FloatVector va = FloatVector.broadcast(S, alpha);
        int i = 0, upper = S.loopBound(n);
        for (; i < upper; i += L) {
            FloatVector.fromArray(S, x, xo + i).fma(va, FloatVector.fromArray(S, y, yo + i)).intoArray(y, yo + i);
        }
        for (; i < n; i++) y[yo + i] += alpha * x[xo + i];
    }

    /** y[yo + i] = alpha * y[yo + i]. */
    static void scale(float[] y, int yo, float alpha, int n) {
        int i = 0, upper = S.loopBound(n);
        for (; i < upper; i += L) FloatVector.fromArray(S, y, yo + i).mul(alpha).intoArray(y, yo + i);
        for (; i < n; i++) y[yo + i] *= alpha;
    }

    /** sum_i x[xo + i]. */
    static float sum(float[] x, int xo, int n) {
        FloatVector acc = FloatVector.zero(S);
        int i = 0, upper = S.loopBound(n);
        for (; i < upper; i += L) acc = acc.add(FloatVector.fromArray(S, x, xo + i));
        float sum = acc.reduceLanes(VectorOperators.ADD);
        for (; i < n; i++) sum += x[xo + i];
        return sum;
    }

    /** sum_i (x[xo + i] - mean)^2. */
    static float sumSquaredDiff(float[] x, int xo, float mean, int n) {
        FloatVector acc = FloatVector.zero(S);
        int i = 0, upper = S.loopBound(n);
        for (; i < upper; i += L) {
            FloatVector d = FloatVector.fromArray(S, x, xo + i).sub(mean);
            acc = d.fma(d, acc);
        }
        float sum = acc.reduceLanes(VectorOperators.ADD);
        for (; i < n; i++) {
            float d = x[xo + i] - mean;
            sum += d * d;
        }
        return sum;
    }

    /** max_i x[xo + i] (n >= 1). */
    static float max(float[] x, int xo, int n) {
        FloatVector acc = FloatVector.broadcast(S, Float.NEGATIVE_INFINITY);
        int i = 0, upper = S.loopBound(n);
        for (; i < upper; i += L) acc = acc.max(FloatVector.fromArray(S, x, xo + i));
        float max = acc.reduceLanes(VectorOperators.MAX);
        for (; i < n; i++) max = Math.max(max, x[xo + i]);
        return max;
    }

    /** x[xo + i] = exp(x[xo + i] - shift); returns the sum of the results. */
    static float expShiftSum(float[] x, int xo, float shift, int n) {
        FloatVector acc = FloatVector.zero(S);
        int i = 0, upper = S.loopBound(n);
        for (; i < upper; i += L) {
            FloatVector e = FloatVector.fromArray(S, x, xo + i).sub(shift).lanewise(VectorOperators.EXP);
            e.intoArray(x, xo + i);
            acc = acc.add(e);
        }
        float sum = acc.reduceLanes(VectorOperators.ADD);
        for (; i < n; i++) {
            float e = (float) Math.exp(x[xo + i] - shift);
            x[xo + i] = e;
            sum += e;
        }
        return sum;
    }
}
