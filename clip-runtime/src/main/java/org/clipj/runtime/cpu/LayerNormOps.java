package org.clipj.runtime.cpu;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorSpecies;

import org.clipj.runtime.Tensor;

/**
 * The layernorm family (layernorm.cu): LayerNorm over the last dim, F32, biased variance (as
 * torch.nn.LayerNorm), forward and backward, scalar reference and vector path side by side.
 * Arguments are checked by {@link org.clipj.runtime.OpChecks}.
 */
final class LayerNormOps {
    private static final VectorSpecies<Float> S = FloatVector.SPECIES_PREFERRED;
    private static final int L = S.length();
    private static final int GRAIN = 1 << 13; // elements per parallel chunk

    private LayerNormOps() {}

    static void layerNormForward(OpContext cx, Tensor out, Tensor mean, Tensor rstd, Tensor x, Tensor w, Tensor b, float eps) {
        if (cx.vector()) forwardVector(out, mean, rstd, x, w, b, eps, cx.pool());
        else forwardScalar(out, mean, rstd, x, w, b, eps);
    }

    static void layerNormBackward(OpContext cx, Tensor dx, Tensor dw, Tensor db, Tensor dout, Tensor x, Tensor w, Tensor mean,
                                  Tensor rstd) {
        if (cx.vector()) backwardVector(dx, dw, db, dout, x, w, mean, rstd, cx.pool());
        else backwardScalar(dx, dw, db, dout, x, w, mean, rstd);
    }

    /** out (N, C), mean (N) and rstd (N) (both may be null), x (N, C), w (C), b (C). */
    private static void forwardScalar(Tensor out, Tensor mean, Tensor rstd, Tensor x, Tensor w, Tensor b, float eps) {
        int c = x.dim(-1), rows = Shapes.rows(x);
        float[] o = out.f32(), xs = x.f32(), ws = w.f32(), bs = b.f32();
        int oo = out.offset(), xo = x.offset(), wo = w.offset(), bo = b.offset();
        for (int r = 0; r < rows; r++) {
            int rx = xo + r * c, ro = oo + r * c;
            double sum = 0; // a double sum keeps the mean exact enough when |mean| >> std
            for (int i = 0; i < c; i++) sum += xs[rx + i];
            float m = (float) (sum / c);
            float v = 0f;
            for (int i = 0; i < c; i++) {
                float d = xs[rx + i] - m;
                v += d * d;
            }
            v /= c;
            float s = 1f / (float) Math.sqrt(v + eps);
            for (int i = 0; i < c; i++) o[ro + i] = (xs[rx + i] - m) * s * ws[wo + i] + bs[bo + i];
            if (mean != null) mean.f32()[mean.offset() + r] = m;
            if (rstd != null) rstd.f32()[rstd.offset() + r] = s;
        }
    }

    /**
     * Rows split over the pool. The vector loops live in per-row methods: a long loop with a
     * loop-carried vector inside a lambda gets only an OSR compilation, which keeps vectors boxed.
     */
    private static void forwardVector(Tensor out, Tensor mean, Tensor rstd, Tensor x, Tensor w, Tensor b, float eps,
                              ComputePool pool) {
        int c = x.dim(-1), rows = Shapes.rows(x);
        float[] o = out.f32(), xs = x.f32(), ws = w.f32(), bs = b.f32();
        int oo = out.offset(), xo = x.offset(), wo = w.offset(), bo = b.offset();
        float[] ms = mean == null ? null : mean.f32(), rs = rstd == null ? null : rstd.f32();
        int mo = mean == null ? 0 : mean.offset(), so = rstd == null ? 0 : rstd.offset();
        Parallel.range(pool, rows, Math.max(1, GRAIN / Math.max(1, c)), (from, to) -> {
            for (int r = from; r < to; r++) {
                forwardRow(o, oo + r * c, xs, xo + r * c, ws, wo, bs, bo, c, eps, ms, mo + r, rs, so + r);
            }
        });
    }

    /** One row: corrected two-pass statistics (sum(x - m0) refines the mean when |mean| >> std). */
    private static void forwardRow(float[] o, int ro, float[] xs, int rx, float[] ws, int wo, float[] bs, int bo, int c,
                                   float eps, float[] ms, int mi, float[] rs, int ri) {
        float m0 = Vec.sum(xs, rx, c) / c;
        FloatVector vm0 = FloatVector.broadcast(S, m0);
        FloatVector accD = FloatVector.zero(S), accSq = FloatVector.zero(S);
        int i = 0, upper = S.loopBound(c);
        for (; i < upper; i += L) {
            FloatVector d = FloatVector.fromArray(S, xs, rx + i).sub(vm0);
            accD = accD.add(d);
            accSq = d.fma(d, accSq);
        }
        float sumD = accD.reduceLanes(VectorOperators.ADD), sumSq = accSq.reduceLanes(VectorOperators.ADD);
        for (; i < c; i++) {
            float d = xs[rx + i] - m0;
            sumD += d;
            sumSq += d * d;
        }
        float shift = sumD / c;
        float m = m0 + shift;
        float v = Math.max(0f, sumSq / c - shift * shift);
        float s = 1f / (float) Math.sqrt(v + eps);
        FloatVector vm = FloatVector.broadcast(S, m), vs = FloatVector.broadcast(S, s);
        for (i = 0; i < upper; i += L) {
            FloatVector n = FloatVector.fromArray(S, xs, rx + i).sub(vm).mul(vs);
            n.fma(FloatVector.fromArray(S, ws, wo + i), FloatVector.fromArray(S, bs, bo + i)).intoArray(o, ro + i);
        }
        for (; i < c; i++) o[ro + i] = (xs[rx + i] - m) * s * ws[wo + i] + bs[bo + i];
        if (ms != null) ms[mi] = m;
        if (rs != null) rs[ri] = s;
    }

    /** dx (N, C) +=, dw (C) +=, db (C) += (each may be null), as llm.c's layernorm_backward. */
    private static void backwardScalar(Tensor dx, Tensor dw, Tensor db, Tensor dout, Tensor x, Tensor w, Tensor mean, Tensor rstd) {
        int c = x.dim(-1), rows = Shapes.rows(x);
        float[] g = dout.f32(), xs = x.f32(), ws = w.f32(), ms = mean.f32(), rs = rstd.f32();
        int go = dout.offset(), xo = x.offset(), wo = w.offset();
        for (int r = 0; r < rows; r++) {
            int rg = go + r * c, rx = xo + r * c;
            float m = ms[mean.offset() + r], s = rs[rstd.offset() + r];
            float dnormMean = 0f, dnormNormMean = 0f;
            for (int i = 0; i < c; i++) {
                float norm = (xs[rx + i] - m) * s;
                float dnorm = ws[wo + i] * g[rg + i];
                dnormMean += dnorm;
                dnormNormMean += dnorm * norm;
            }
            dnormMean /= c;
            dnormNormMean /= c;
            for (int i = 0; i < c; i++) {
                float norm = (xs[rx + i] - m) * s;
                float dnorm = ws[wo + i] * g[rg + i];
                if (db != null) db.f32()[db.offset() + i] += g[rg + i];
                if (dw != null) dw.f32()[dw.offset() + i] += norm * g[rg + i];
                if (dx != null) dx.f32()[dx.offset() + r * c + i] += (dnorm - dnormMean - norm * dnormNormMean) * s;
            }
        }
    }

    /** Rows split over the pool; dw/db go through one partial buffer per chunk, merged in chunk order. */
    private static void backwardVector(Tensor dx, Tensor dw, Tensor db, Tensor dout, Tensor x, Tensor w, Tensor mean, Tensor rstd,
                               ComputePool pool) {
        int c = x.dim(-1), rows = Shapes.rows(x);
        float[] g = dout.f32(), xs = x.f32(), ws = w.f32(), ms = mean.f32(), rs = rstd.f32();
        int go = dout.offset(), xo = x.offset(), wo = w.offset(), mo = mean.offset(), so = rstd.offset();
        int chunks = Parallel.chunks(pool, rows, Math.max(1, GRAIN / Math.max(1, c)));
        float[] dwPart = dw == null ? null : new float[chunks * c];
        float[] dbPart = db == null ? null : new float[chunks * c];
        float[] dxs = dx == null ? null : dx.f32();
        int dxo = dx == null ? 0 : dx.offset();
        Parallel.partials(pool, rows, chunks, (chunk, from, to) -> {
            float[] norm = new float[c];
            float[] dnorm = new float[c];
            for (int r = from; r < to; r++) {
                backwardRow(dxs, dxo + r * c, dwPart, dbPart, chunk * c, g, go + r * c, xs, xo + r * c, ws, wo, ms[mo + r],
                        rs[so + r], c, norm, dnorm);
            }
        });
        for (int chunk = 0; chunk < chunks; chunk++) {
            if (dwPart != null) Vec.axpy(1f, dwPart, chunk * c, dw.f32(), dw.offset(), c);
            if (dbPart != null) Vec.axpy(1f, dbPart, chunk * c, db.f32(), db.offset(), c);
        }
    }

    /** One row of the backward; norm and dnorm are c floats of scratch. */
    private static void backwardRow(float[] dxs, int rd, float[] dwPart, float[] dbPart, int p, float[] g, int rg,
                                    float[] xs, int rx, float[] ws, int wo, float m, float s, int c,
                                    float[] norm, float[] dnorm) {
        FloatVector vm = FloatVector.broadcast(S, m), vs = FloatVector.broadcast(S, s);
        FloatVector accMean = FloatVector.zero(S), accNorm = FloatVector.zero(S);
        int i = 0, upper = S.loopBound(c);
        for (; i < upper; i += L) {
            FloatVector n = FloatVector.fromArray(S, xs, rx + i).sub(vm).mul(vs);
            FloatVector d = FloatVector.fromArray(S, ws, wo + i).mul(FloatVector.fromArray(S, g, rg + i));
            n.intoArray(norm, i);
            d.intoArray(dnorm, i);
            accMean = accMean.add(d);
            accNorm = d.fma(n, accNorm);
        }
        float dnormMean = accMean.reduceLanes(VectorOperators.ADD);
        float dnormNormMean = accNorm.reduceLanes(VectorOperators.ADD);
        for (; i < c; i++) {
            norm[i] = (xs[rx + i] - m) * s;
            dnorm[i] = ws[wo + i] * g[rg + i];
            dnormMean += dnorm[i];
            dnormNormMean += dnorm[i] * norm[i];
        }
        dnormMean /= c;
        dnormNormMean /= c;
        if (dbPart != null) Vec.axpy(1f, g, rg, dbPart, p, c);
        if (dwPart != null) {
            for (i = 0; i < upper; i += L) {
                FloatVector.fromArray(S, norm, i).fma(FloatVector.fromArray(S, g, rg + i),
                        FloatVector.fromArray(S, dwPart, p + i)).intoArray(dwPart, p + i);
            }
            for (; i < c; i++) dwPart[p + i] += norm[i] * g[rg + i];
        }
        if (dxs != null) {
            for (i = 0; i < upper; i += L) {
                FloatVector t = FloatVector.fromArray(S, dnorm, i).sub(dnormMean)
                        .sub(FloatVector.fromArray(S, norm, i).mul(dnormNormMean));
                t.fma(vs, FloatVector.fromArray(S, dxs, rd + i)).intoArray(dxs, rd + i);
            }
            for (; i < c; i++) dxs[rd + i] += (dnorm[i] - dnormMean - norm[i] * dnormNormMean) * s;
        }
    }
}
