package org.clipj.runtime.cpu;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorOperators;

import org.clipj.runtime.Tensor;

/**
 * The batchnorm family (batchnorm.cu): BatchNorm2d in train and eval mode and its backward, scalar
 * reference and vector path per channel. Arguments are checked by {@link org.clipj.runtime.OpChecks}.
 */
final class BatchNormOps {
    private static final int GRAIN = 1 << 13;

    private BatchNormOps() {}

    // ---------------------------------------------------------------- BatchNorm2d on (B, C, H, W)

    /** !vector: serial scalar loops; otherwise channels in parallel with vector inner loops. */
    static void batchNormForward(OpContext cx, Tensor out, Tensor x, Tensor gamma, Tensor beta,
                                 Tensor runningMean, Tensor runningVar, Tensor saveMean, Tensor saveRstd,
                                 boolean train, float momentum, float eps) {
        boolean vector = cx.vector();
        ComputePool pool = cx.pool();
        int b = x.dim(0), c = x.dim(1), hw = x.dim(2) * x.dim(3);
        Parallel.Range body = (from, to) -> {
            for (int ch = from; ch < to; ch++) {
                batchNormChannel(vector, ch, b, c, hw, out, x, gamma, beta, runningMean, runningVar, saveMean, saveRstd,
                        train, momentum, eps);
            }
        };
        if (vector) Parallel.range(pool, c, Math.max(1, GRAIN / Math.max(1, b * hw)), body);
        else body.run(0, c);
    }

    private static void batchNormChannel(boolean vector, int ch, int b, int c, int hw, Tensor out, Tensor x, Tensor gamma,
                                         Tensor beta, Tensor runningMean, Tensor runningVar, Tensor saveMean,
                                         Tensor saveRstd, boolean train, float momentum, float eps) {
        float[] xs = x.f32(), o = out.f32();
        int xo = x.offset(), oo = out.offset();
        float[] rm = runningMean.f32(), rv = runningVar.f32();
        int rmo = runningMean.offset() + ch, rvo = runningVar.offset() + ch;
        float mean, rstd;
        if (train) {
            long n = (long) b * hw;
            double sum = 0;
            for (int bi = 0; bi < b; bi++) {
                int p = xo + (bi * c + ch) * hw;
                sum += vector ? Vec.sum(xs, p, hw) : plainSum(xs, p, hw);
            }
            mean = (float) (sum / n);
            double sq = 0;
            for (int bi = 0; bi < b; bi++) {
                int p = xo + (bi * c + ch) * hw;
                if (vector) {
                    sq += Vec.sumSquaredDiff(xs, p, mean, hw);
                } else {
                    for (int i = 0; i < hw; i++) {
                        float d = xs[p + i] - mean;
                        sq += d * d;
                    }
                }
            }
            float var = (float) (sq / n);
            rstd = 1f / (float) Math.sqrt(var + eps);
            float unbiased = n > 1 ? (float) (sq / (n - 1)) : var;
            rm[rmo] = (1f - momentum) * rm[rmo] + momentum * mean;
            rv[rvo] = (1f - momentum) * rv[rvo] + momentum * unbiased;
            if (saveMean != null) saveMean.f32()[saveMean.offset() + ch] = mean;
            if (saveRstd != null) saveRstd.f32()[saveRstd.offset() + ch] = rstd;
        } else {
            mean = rm[rmo];
            rstd = 1f / (float) Math.sqrt(rv[rvo] + eps);
        }
        float scale = rstd * gamma.f32()[gamma.offset() + ch];
        float shift = beta.f32()[beta.offset() + ch] - mean * scale;
        for (int bi = 0; bi < b; bi++) {
            int p = (bi * c + ch) * hw;
            for (int i = 0; i < hw; i++) o[oo + p + i] = xs[xo + p + i] * scale + shift;
        }
    }

    private static float plainSum(float[] x, int off, int n) {
        float s = 0f;
        for (int i = 0; i < n; i++) s += x[off + i];
        return s;
    }

    /** dx (B, C, H, W) +=, dgamma (C) +=, dbeta (C) += for train-mode BatchNorm. */
    static void batchNormBackward(OpContext cx, Tensor dx, Tensor dgamma, Tensor dbeta, Tensor dout,
                                  Tensor x, Tensor gamma, Tensor saveMean, Tensor saveRstd) {
        boolean vector = cx.vector();
        ComputePool pool = cx.pool();
        int b = x.dim(0), c = x.dim(1), hw = x.dim(2) * x.dim(3);
        float[] xs = x.f32(), g = dout.f32();
        int xo = x.offset(), go = dout.offset();
        Parallel.Range body = (from, to) -> {
            for (int ch = from; ch < to; ch++) {
                float mean = saveMean.f32()[saveMean.offset() + ch], rstd = saveRstd.f32()[saveRstd.offset() + ch];
                double sumG = 0, sumGx = 0;
                for (int bi = 0; bi < b; bi++) {
                    int p = (bi * c + ch) * hw;
                    if (vector) {
                        FloatVector accG = FloatVector.zero(Vec.S), accGx = FloatVector.zero(Vec.S);
                        int i = 0, upper = Vec.S.loopBound(hw);
                        for (; i < upper; i += Vec.L) {
                            FloatVector gv = FloatVector.fromArray(Vec.S, g, go + p + i);
                            accG = accG.add(gv);
                            accGx = gv.fma(FloatVector.fromArray(Vec.S, xs, xo + p + i).sub(mean), accGx);
                        }
                        float planeG = accG.reduceLanes(VectorOperators.ADD), planeGx = accGx.reduceLanes(VectorOperators.ADD);
                        for (; i < hw; i++) {
                            planeG += g[go + p + i];
                            planeGx += g[go + p + i] * (xs[xo + p + i] - mean);
                        }
                        sumG += planeG;
                        sumGx += rstd * planeGx;
                        continue;
                    }
                    for (int i = 0; i < hw; i++) {
                        float gv = g[go + p + i];
                        sumG += gv;
                        sumGx += gv * ((xs[xo + p + i] - mean) * rstd);
                    }
                }
                if (dbeta != null) dbeta.f32()[dbeta.offset() + ch] += (float) sumG;
                if (dgamma != null) dgamma.f32()[dgamma.offset() + ch] += (float) sumGx;
                if (dx == null) continue;
                long n = (long) b * hw;
                float k = gamma.f32()[gamma.offset() + ch] * rstd;
                float meanG = (float) (sumG / n), meanGx = (float) (sumGx / n);
                float[] d = dx.f32();
                int dox = dx.offset();
                for (int bi = 0; bi < b; bi++) {
                    int p = (bi * c + ch) * hw;
                    for (int i = 0; i < hw; i++) {
                        float xhat = (xs[xo + p + i] - mean) * rstd;
                        d[dox + p + i] += k * (g[go + p + i] - meanG - xhat * meanGx);
                    }
                }
            }
        };
        if (vector) Parallel.range(pool, c, Math.max(1, GRAIN / Math.max(1, b * hw)), body);
        else body.run(0, c);
    }
}
