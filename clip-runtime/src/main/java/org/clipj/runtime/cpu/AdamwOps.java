package org.clipj.runtime.cpu;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorSpecies;

import org.clipj.runtime.Tensor;

/**
 * The adamw family (adamw.cu): one fused AdamW step (exactly torch.optim.AdamW), scalar reference and
 * vector path. Arguments are checked by {@link org.clipj.runtime.OpChecks}.
 */
final class AdamwOps {
    private static final VectorSpecies<Float> S = FloatVector.SPECIES_PREFERRED;
    private static final int L = S.length();
    private static final int GRAIN = 1 << 14;

    private AdamwOps() {}

    static void adamwUpdate(OpContext cx, Tensor param, Tensor grad, Tensor m, Tensor v, float lr, float beta1, float beta2,
                            float eps, float weightDecay, int step, float gradScale) {
        if (cx.vector()) adamwVector(param, grad, m, v, lr, beta1, beta2, eps, weightDecay, step, gradScale, cx.pool());
        else adamwScalar(param, grad, m, v, lr, beta1, beta2, eps, weightDecay, step, gradScale);
    }

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
    private static void adamwScalar(Tensor param, Tensor grad, Tensor m, Tensor v, float lr, float beta1, float beta2, float eps,
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

    private static void adamwVector(Tensor param, Tensor grad, Tensor m, Tensor v, float lr, float beta1, float beta2, float eps,
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
}
