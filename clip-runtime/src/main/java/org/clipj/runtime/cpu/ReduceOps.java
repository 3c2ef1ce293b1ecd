package org.clipj.runtime.cpu;

import jdk.incubator.vector.DoubleVector;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorSpecies;

import org.clipj.runtime.Tensor;

/**
 * The reduce family (reduce.cu): the sum of squares (for the global gradient norm) and the non-finite
 * check (loss scaling) over an F32 tensor, scalar reference and vector path. Arguments are checked by
 * {@link org.clipj.runtime.OpChecks}.
 */
final class ReduceOps {
    private static final VectorSpecies<Float> S = FloatVector.SPECIES_PREFERRED;
    private static final int L = S.length();
    private static final VectorSpecies<Double> D = DoubleVector.SPECIES_PREFERRED;
    private static final int GRAIN = 1 << 14;
    // Reductions run in blocks through small methods: a long vector loop with a loop-carried
    // accumulator inside a lambda only gets an OSR compilation, which keeps the vectors boxed.
    private static final int BLOCK = 1 << 12;

    private ReduceOps() {}

    static double sumOfSquares(OpContext cx, Tensor t) {
        return cx.vector() ? sumOfSquaresVector(t, cx.pool()) : sumOfSquaresScalar(t);
    }

    static boolean hasNonFinite(OpContext cx, Tensor t) {
        return cx.vector() ? hasNonFiniteVector(t, cx.pool()) : hasNonFiniteScalar(t);
    }

    private static double sumOfSquaresScalar(Tensor t) {
        float[] x = t.f32();
        int o = t.offset(), n = t.size();
        double sum = 0;
        for (int i = 0; i < n; i++) sum += (double) x[o + i] * x[o + i];
        return sum;
    }

    /** Squares in double lanes (a float square overflows above 1.8e19), one partial per chunk, merged in order. */
    private static double sumOfSquaresVector(Tensor t, ComputePool pool) {
        float[] x = t.f32();
        int o = t.offset(), n = t.size();
        int chunks = Parallel.chunks(pool, n, GRAIN);
        double[] partial = new double[chunks];
        Parallel.partials(pool, n, chunks, (chunk, from, to) -> {
            double sum = 0;
            for (int b0 = from; b0 < to; b0 += BLOCK) sum += sumOfSquaresBlock(x, o + b0, Math.min(BLOCK, to - b0));
            partial[chunk] = sum;
        });
        double total = 0;
        for (double p : partial) total += p;
        return total;
    }

    /** The scalar reference (the only path: R * T token ids are too few to vectorize). */
    static void rowArgmax(Tensor index, Tensor x) {
        int[] in = x.i32(), out = index.i32();
        int rows = x.dim(0), t = x.dim(1), xo = x.offset(), io = index.offset();
        for (int r = 0; r < rows; r++) {
            int at = 0;
            for (int j = 1; j < t; j++) {
                if (in[xo + r * t + j] > in[xo + r * t + at]) at = j;
            }
            out[io + r] = at;
        }
    }

    private static boolean hasNonFiniteScalar(Tensor t) {
        float[] x = t.f32();
        int o = t.offset(), n = t.size();
        for (int i = 0; i < n; i++) {
            if (!Float.isFinite(x[o + i])) return true;
        }
        return false;
    }

    private static boolean hasNonFiniteVector(Tensor t, ComputePool pool) {
        float[] x = t.f32();
        int o = t.offset(), n = t.size();
        int chunks = Parallel.chunks(pool, n, GRAIN);
        boolean[] found = new boolean[chunks];
        Parallel.partials(pool, n, chunks, (chunk, from, to) -> {
            boolean bad = false;
            for (int b0 = from; b0 < to && !bad; b0 += BLOCK) bad = nonFiniteBlock(x, o + b0, Math.min(BLOCK, to - b0));
            found[chunk] = bad;
        });
        for (boolean b : found) {
            if (b) return true;
        }
        return false;
    }

    /** sum of x^2 over n floats, squared in double lanes. */
    private static double sumOfSquaresBlock(float[] x, int off, int n) {
        DoubleVector acc = DoubleVector.zero(D);
        int i = 0, upper = S.loopBound(n);
        for (; i < upper; i += L) {
            FloatVector f = FloatVector.fromArray(S, x, off + i);
            for (int part = 0; part < L / D.length(); part++) {
                DoubleVector d = (DoubleVector) f.convertShape(VectorOperators.F2D, D, part);
                acc = d.fma(d, acc);
            }
        }
        double sum = acc.reduceLanes(VectorOperators.ADD);
        for (; i < n; i++) sum += (double) x[off + i] * x[off + i];
        return sum;
    }

    /** x * 0 is NaN exactly for NaN and infinities, and a NaN survives any sum. */
    private static boolean nonFiniteBlock(float[] x, int off, int n) {
        FloatVector acc = FloatVector.zero(S);
        int i = 0, upper = S.loopBound(n);
        for (; i < upper; i += L) acc = acc.add(FloatVector.fromArray(S, x, off + i).mul(0f));
        boolean bad = Float.isNaN(acc.reduceLanes(VectorOperators.ADD));
        for (; i < n && !bad; i++) bad = !Float.isFinite(x[off + i]);
        return bad;
    }
}
