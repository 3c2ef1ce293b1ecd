package org.clipj.runtime.cpu;


import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorOperators;

import org.clipj.runtime.Tensor;

/** BatchNorm2d (train and eval) and row-wise L2 normalization. */
final class NormOps {
    static final float L2_EPS = 1e-12f; // F.normalize's eps: x / max(||x||, eps)
    private static final int GRAIN = 1 << 13;

    private NormOps() {}

    // ---------------------------------------------------------------- BatchNorm2d on (B, C, H, W)

    /** pool == null or !vector: serial scalar loops; otherwise channels in parallel with vector inner loops. */
    static void batchNormForward(ComputePool pool, boolean vector, Tensor out, Tensor x, Tensor gamma, Tensor beta,
                                 Tensor runningMean, Tensor runningVar, Tensor saveMean, Tensor saveRstd,
                                 boolean train, float momentum, float eps) {
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
    static void batchNormBackward(ComputePool pool, boolean vector, Tensor dx, Tensor dgamma, Tensor dbeta, Tensor dout,
                                  Tensor x, Tensor gamma, Tensor saveMean, Tensor saveRstd) {
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

    // ---------------------------------------------------------------- L2 normalization of rows

    static void l2NormalizeForward(ComputePool pool, boolean vector, Tensor out, Tensor norms, Tensor x) {
        int d = x.dim(-1), rows = Shapes.rows(x);
        float[] o = out.f32(), xs = x.f32();
        int oo = out.offset(), xo = x.offset();
        Parallel.Range body = (from, to) -> {
            for (int r = from; r < to; r++) {
                int rx = xo + r * d, ro = oo + r * d;
                float sq;
                if (vector) {
                    sq = Vec.dot(xs, rx, xs, rx, d);
                } else {
                    sq = 0f;
                    for (int i = 0; i < d; i++) sq += xs[rx + i] * xs[rx + i];
                }
                float norm = (float) Math.sqrt(sq);
                float inv = 1f / Math.max(norm, L2_EPS);
                if (vector) {
                    if (o != xs || ro != rx) System.arraycopy(xs, rx, o, ro, d);
                    Vec.scale(o, ro, inv, d);
                } else {
                    for (int i = 0; i < d; i++) o[ro + i] = xs[rx + i] * inv;
                }
                if (norms != null) norms.f32()[norms.offset() + r] = norm;
            }
        };
        if (vector) Parallel.range(pool, rows, Math.max(1, GRAIN / Math.max(1, d)), body);
        else body.run(0, rows);
    }

    /** dx += (dout - out (dout . out)) / ||x|| per row; below eps the denominator is the constant eps. */
    static void l2NormalizeBackward(ComputePool pool, boolean vector, Tensor dx, Tensor dout, Tensor out, Tensor norms) {
        int d = out.dim(-1), rows = Shapes.rows(out);
        float[] dxs = dx.f32(), g = dout.f32(), y = out.f32(), ns = norms.f32();
        int dxo = dx.offset(), go = dout.offset(), yo = out.offset(), no = norms.offset();
        Parallel.Range body = (from, to) -> {
            for (int r = from; r < to; r++) {
                int rg = go + r * d, ry = yo + r * d, rd = dxo + r * d;
                float norm = ns[no + r];
                if (norm <= L2_EPS) {
                    float inv = 1f / L2_EPS;
                    for (int i = 0; i < d; i++) dxs[rd + i] += g[rg + i] * inv;
                    continue;
                }
                float inv = 1f / norm;
                float dot;
                if (vector) {
                    dot = Vec.dot(g, rg, y, ry, d);
                    Vec.axpy(inv, g, rg, dxs, rd, d);
                    Vec.axpy(-dot * inv, y, ry, dxs, rd, d);
                } else {
                    dot = 0f;
                    for (int i = 0; i < d; i++) dot += g[rg + i] * y[ry + i];
                    for (int i = 0; i < d; i++) dxs[rd + i] += (g[rg + i] - y[ry + i] * dot) * inv;
                }
            }
        };
        if (vector) Parallel.range(pool, rows, Math.max(1, GRAIN / Math.max(1, d)), body);
        else body.run(0, rows);
    }
}
