package org.clipj.runtime.cpu;


import jdk.incubator.vector.DoubleVector;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorSpecies;

import org.clipj.runtime.DType;
import org.clipj.runtime.Tensor;

/** AdamW (exactly torch.optim.AdamW), sum of squares and the non-finite check. */
final class OptimizerOps {
    private static final VectorSpecies<Float> S = FloatVector.SPECIES_PREFERRED;
    private static final int L = S.length();
    private static final VectorSpecies<Double> D = DoubleVector.SPECIES_PREFERRED;
    private static final int GRAIN = 1 << 14;
    // Reductions run in blocks through small methods: a long vector loop with a loop-carried
    // accumulator inside a lambda only gets an OSR compilation, which keeps the vectors boxed.
    private static final int BLOCK = 1 << 12;

    private OptimizerOps() {}

    /** The per-step scalars, computed in double as PyTorch does in Python floats. */
    private record Step(float decay, float lerp, float beta2, float oneMinusBeta2, float stepSize, float bc2Sqrt, float eps) {
        static Step of(float lr, float beta1, float beta2, float eps, float weightDecay, int step) {
            double bc1 = 1.0 - Math.pow(beta1, step), bc2 = 1.0 - Math.pow(beta2, step);
            return new Step((float) (1.0 - (double) lr * weightDecay), 1f - beta1, beta2, 1f - beta2,
                    (float) (lr / bc1), (float) Math.sqrt(bc2), eps);
        }
    }

    /**
     * torch.optim.AdamW, single-tensor path: p *= 1 - lr wd; m = lerp(m, g, 1 - b1);
     * v = b2 v + (1 - b2) g^2; p -= (lr / bc1) m / (sqrt(v) / sqrt(bc2) + eps); g = grad * gradScale.
     */
    static void adamwScalar(Tensor param, Tensor grad, Tensor m, Tensor v, float lr, float beta1, float beta2, float eps,
                            float weightDecay, int step, float gradScale) {
        Step k = Step.of(lr, beta1, beta2, eps, weightDecay, step);
        adamwRange(param, grad, m, v, k, gradScale, 0, param.size());
    }

    private static void adamwRange(Tensor param, Tensor grad, Tensor m, Tensor v, Step k, float gradScale, int from, int to) {
        float[] p = param.f32(), g = grad.f32(), ms = m.f32(), vs = v.f32();
        int po = param.offset(), go = grad.offset(), mo = m.offset(), vo = v.offset();
        for (int i = from; i < to; i++) {
            float gi = g[go + i] * gradScale;
            float mOld = ms[mo + i];
            // torch's lerp: self + w (end - self) for w < 0.5, else end - (end - self)(1 - w)
            float mi = k.lerp < 0.5f ? mOld + k.lerp * (gi - mOld) : gi - (gi - mOld) * (1f - k.lerp);
            float vi = vs[vo + i] * k.beta2 + k.oneMinusBeta2 * gi * gi;
            ms[mo + i] = mi;
            vs[vo + i] = vi;
            float denom = (float) Math.sqrt(vi) / k.bc2Sqrt + k.eps;
            p[po + i] = p[po + i] * k.decay - k.stepSize * mi / denom; // addcdiv: (value * m) / denom
        }
    }

    static void adamwVector(Tensor param, Tensor grad, Tensor m, Tensor v, float lr, float beta1, float beta2, float eps,
                            float weightDecay, int step, float gradScale, ComputePool pool) {
        Step k = Step.of(lr, beta1, beta2, eps, weightDecay, step);
        float[] p = param.f32(), g = grad.f32(), ms = m.f32(), vs = v.f32();
        int po = param.offset(), go = grad.offset(), mo = m.offset(), vo = v.offset();
        Parallel.range(pool, param.size(), GRAIN, (from, to) -> {
            int i = from, upper = from + S.loopBound(to - from);
            for (; i < upper; i += L) {
                FloatVector gi = FloatVector.fromArray(S, g, go + i).mul(gradScale);
                FloatVector mOld = FloatVector.fromArray(S, ms, mo + i);
                FloatVector mi = k.lerp < 0.5f ? mOld.add(gi.sub(mOld).mul(k.lerp)) : gi.sub(gi.sub(mOld).mul(1f - k.lerp));
                FloatVector vi = FloatVector.fromArray(S, vs, vo + i).mul(k.beta2).add(gi.mul(k.oneMinusBeta2).mul(gi));
                mi.intoArray(ms, mo + i);
                vi.intoArray(vs, vo + i);
                FloatVector denom = vi.lanewise(VectorOperators.SQRT).div(k.bc2Sqrt).add(k.eps);
                FloatVector pi = FloatVector.fromArray(S, p, po + i).mul(k.decay);
                pi.sub(mi.mul(k.stepSize).div(denom)).intoArray(p, po + i);
            }
            adamwRange(param, grad, m, v, k, gradScale, i, to);
        });
    }

    // ---------------------------------------------------------------- reductions

    static double sumOfSquaresScalar(Tensor t) {
        int o = t.offset(), n = t.size();
        double sum = 0;
        if (t.dtype() == DType.F32) {
            float[] x = t.f32();
            for (int i = 0; i < n; i++) sum += (double) x[o + i] * x[o + i];
        } else {
            float[] x = t.toFloatArray();
            for (float f : x) sum += (double) f * f;
        }
        return sum;
    }

    /** Squares in double lanes (a float square overflows above 1.8e19), one partial per chunk, merged in order. */
    static double sumOfSquaresVector(Tensor t, ComputePool pool) {
        if (t.dtype() != DType.F32) return sumOfSquaresScalar(t);
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

    static boolean hasNonFiniteScalar(Tensor t) {
        float[] x = t.dtype() == DType.F32 ? t.f32() : t.toFloatArray();
        int o = t.dtype() == DType.F32 ? t.offset() : 0, n = t.size();
        for (int i = 0; i < n; i++) {
            if (!Float.isFinite(x[o + i])) return true;
        }
        return false;
    }

    static boolean hasNonFiniteVector(Tensor t, ComputePool pool) {
        if (t.dtype() != DType.F32) return hasNonFiniteScalar(t);
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
