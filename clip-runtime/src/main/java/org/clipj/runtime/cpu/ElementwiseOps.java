package org.clipj.runtime.cpu;

import java.util.Arrays;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.ShortVector;
import jdk.incubator.vector.VectorMask;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorShape;
import jdk.incubator.vector.VectorSpecies;

import org.clipj.runtime.DType;
import org.clipj.runtime.Tensor;

/**
 * The elementwise family (elementwise.cu): add, addScaled, scale, broadcastAdd and its backward, quickGELU,
 * GELU, channel scale, ReLU, fill, copy, cast. Each op takes the {@link OpContext} first and runs its
 * scalar reference or its vector path (the two side by side below). Arguments are checked by
 * {@link org.clipj.runtime.OpChecks}; here every tensor is CPU, contiguous, with matching sizes.
 */
final class ElementwiseOps {
    private static final VectorSpecies<Float> S = FloatVector.SPECIES_PREFERRED;
    private static final int L = S.length();
    private static final int GRAIN = 1 << 14; // elements per parallel chunk
    private static final float GELU_K = 1.702f;

    private ElementwiseOps() {}

    // ---------------------------------------------------------------- the ops

    static void add(OpContext cx, Tensor out, Tensor a, Tensor b) {
        if (cx.vector()) addVector(out, a, b, cx.pool());
        else addScalar(out, a, b);
    }

    static void addScaled(OpContext cx, Tensor dst, Tensor src, float alpha) {
        if (cx.vector()) addScaledVector(dst, src, alpha, cx.pool());
        else addScaledScalar(dst, src, alpha);
    }

    static void scale(OpContext cx, Tensor t, float s) {
        if (cx.vector()) scaleVector(t, s, cx.pool());
        else scaleScalar(t, s);
    }

    static void broadcastAdd(OpContext cx, Tensor out, Tensor x, Tensor b) {
        if (cx.vector()) broadcastAddVector(out, x, b, cx.pool());
        else broadcastAddScalar(out, x, b);
    }

    static void broadcastAddBackward(OpContext cx, Tensor db, Tensor dout) {
        if (cx.vector()) broadcastAddBackwardVector(db, dout, cx.pool());
        else broadcastAddBackwardScalar(db, dout);
    }

    static void quickGeluForward(OpContext cx, Tensor out, Tensor x) {
        if (cx.vector()) quickGeluForwardVector(out, x, cx.pool());
        else quickGeluForwardScalar(out, x);
    }

    static void quickGeluBackward(OpContext cx, Tensor dx, Tensor dout, Tensor x) {
        if (cx.vector()) quickGeluBackwardVector(dx, dout, x, cx.pool());
        else quickGeluBackwardScalar(dx, dout, x);
    }

    static void geluForward(OpContext cx, Tensor out, Tensor x) {
        if (cx.vector()) geluForwardVector(out, x, cx.pool());
        else geluForwardScalar(out, x);
    }

    static void geluBackward(OpContext cx, Tensor dx, Tensor dout, Tensor x) {
        if (cx.vector()) geluBackwardVector(dx, dout, x, cx.pool());
        else geluBackwardScalar(dx, dout, x);
    }

    static void channelScaleForward(OpContext cx, Tensor out, Tensor x, Tensor gamma) {
        if (cx.vector()) channelScaleForwardVector(out, x, gamma, cx.pool());
        else channelScaleForwardScalar(out, x, gamma);
    }

    static void channelScaleBackward(OpContext cx, Tensor dx, Tensor dgamma, Tensor dout, Tensor x, Tensor gamma) {
        if (cx.vector()) channelScaleBackwardVector(dx, dgamma, dout, x, gamma, cx.pool());
        else channelScaleBackwardScalar(dx, dgamma, dout, x, gamma);
    }

    static void reluForward(OpContext cx, Tensor out, Tensor x) {
        if (cx.vector()) reluForwardVector(out, x, cx.pool());
        else reluForwardScalar(out, x);
    }

    static void reluBackward(OpContext cx, Tensor dx, Tensor dout, Tensor out) {
        if (cx.vector()) reluBackwardVector(dx, dout, out, cx.pool());
        else reluBackwardScalar(dx, dout, out);
    }

    /** Same path on both: a fill or a copy is one loop the JIT vectorizes. */
    static void fill(OpContext cx, Tensor t, float value) {
        int o = t.offset(), n = t.size();
        switch (t.dtype()) {
            case F32 -> Arrays.fill(t.f32(), o, o + n, value);
            case F16 -> Arrays.fill(t.bits16(), o, o + n, DType.floatToF16(value));
            case BF16 -> Arrays.fill(t.bits16(), o, o + n, DType.floatToBf16(value));
            default -> throw new IllegalStateException("fill: " + t.dtype() + " passed OpChecks.fill");
        }
    }

    static void copy(OpContext cx, Tensor dst, Tensor src) {
        copy(dst, src);
    }

    static void cast(OpContext cx, Tensor dst, Tensor src) {
        if (cx.vector()) castParallel(dst, src, cx.pool());
        else castScalar(dst, src);
    }

    // ---------------------------------------------------------------- add

    private static void addScalar(Tensor out, Tensor a, Tensor b) {
        float[] o = out.f32(), x = a.f32(), y = b.f32();
        int oo = out.offset(), xo = a.offset(), yo = b.offset(), n = out.size();
        for (int i = 0; i < n; i++) o[oo + i] = x[xo + i] + y[yo + i];
    }

    private static void addVector(Tensor out, Tensor a, Tensor b, ComputePool pool) {
        float[] o = out.f32(), x = a.f32(), y = b.f32();
        int oo = out.offset(), xo = a.offset(), yo = b.offset();
        Parallel.range(pool, out.size(), GRAIN, (from, to) -> {
            int i = from, upper = from + S.loopBound(to - from);
            for (; i < upper; i += L) {
                FloatVector.fromArray(S, x, xo + i).add(FloatVector.fromArray(S, y, yo + i)).intoArray(o, oo + i);
            }
            for (; i < to; i++) o[oo + i] = x[xo + i] + y[yo + i];
        });
    }

    // ---------------------------------------------------------------- addScaled, scale

    private static void addScaledScalar(Tensor dst, Tensor src, float alpha) {
        float[] d = dst.f32(), s = src.f32();
        int d0 = dst.offset(), s0 = src.offset(), n = dst.size();
        for (int i = 0; i < n; i++) d[d0 + i] += alpha * s[s0 + i];
    }

    private static void addScaledVector(Tensor dst, Tensor src, float alpha, ComputePool pool) {
        float[] d = dst.f32(), s = src.f32();
        int d0 = dst.offset(), s0 = src.offset();
        Parallel.range(pool, dst.size(), GRAIN, (from, to) -> Vec.axpy(alpha, s, s0 + from, d, d0 + from, to - from));
    }

    private static void scaleScalar(Tensor t, float s) {
        float[] x = t.f32();
        int x0 = t.offset(), n = t.size();
        for (int i = 0; i < n; i++) x[x0 + i] *= s;
    }

    private static void scaleVector(Tensor t, float s, ComputePool pool) {
        float[] x = t.f32();
        int x0 = t.offset();
        Parallel.range(pool, t.size(), GRAIN, (from, to) -> Vec.scale(x, x0 + from, s, to - from));
    }

    // ---------------------------------------------------------------- broadcastAdd

    private static void broadcastAddScalar(Tensor out, Tensor x, Tensor b) {
        float[] o = out.f32(), xs = x.f32(), bs = b.f32();
        int oo = out.offset(), xo = x.offset(), bo = b.offset(), inner = b.size(), rows = out.size() / Math.max(1, inner);
        for (int r = 0; r < rows; r++) {
            for (int i = 0; i < inner; i++) o[oo + r * inner + i] = xs[xo + r * inner + i] + bs[bo + i];
        }
    }

    private static void broadcastAddVector(Tensor out, Tensor x, Tensor b, ComputePool pool) {
        float[] o = out.f32(), xs = x.f32(), bs = b.f32();
        int oo = out.offset(), xo = x.offset(), bo = b.offset(), inner = b.size();
        if (inner == 0) return;
        int rows = out.size() / inner;
        Parallel.range(pool, rows, Math.max(1, GRAIN / inner), (from, to) -> {
            for (int r = from; r < to; r++) {
                int ro = oo + r * inner, rx = xo + r * inner;
                int i = 0, upper = S.loopBound(inner);
                for (; i < upper; i += L) {
                    FloatVector.fromArray(S, xs, rx + i).add(FloatVector.fromArray(S, bs, bo + i)).intoArray(o, ro + i);
                }
                for (; i < inner; i++) o[ro + i] = xs[rx + i] + bs[bo + i];
            }
        });
    }

    private static void broadcastAddBackwardScalar(Tensor db, Tensor dout) {
        float[] d = db.f32(), g = dout.f32();
        int d0 = db.offset(), g0 = dout.offset(), inner = db.size(), rows = dout.size() / Math.max(1, inner);
        for (int r = 0; r < rows; r++) {
            for (int i = 0; i < inner; i++) d[d0 + i] += g[g0 + r * inner + i];
        }
    }

    /** Parallel over column chunks of b: every chunk sums all rows of its columns (no shared writes). */
    private static void broadcastAddBackwardVector(Tensor db, Tensor dout, ComputePool pool) {
        float[] d = db.f32(), g = dout.f32();
        int d0 = db.offset(), g0 = dout.offset(), inner = db.size();
        if (inner == 0) return;
        int rows = dout.size() / inner;
        int grain = Math.max(L, GRAIN / Math.max(1, rows));
        Parallel.range(pool, inner, grain, (from, to) -> {
            for (int r = 0; r < rows; r++) Vec.axpy(1f, g, g0 + r * inner + from, d, d0 + from, to - from);
        });
    }

    // ---------------------------------------------------------------- quickGELU: x * sigmoid(1.702 x)

    private static void quickGeluForwardScalar(Tensor out, Tensor x) {
        float[] o = out.f32(), xs = x.f32();
        int oo = out.offset(), xo = x.offset(), n = out.size();
        for (int i = 0; i < n; i++) o[oo + i] = quickGelu(xs[xo + i]);
    }

    /** The scalar reference's QuickGELU of one value. */
    static float quickGelu(float v) {
        return v / (1f + (float) Math.exp(-GELU_K * v));
    }

    private static void quickGeluForwardVector(Tensor out, Tensor x, ComputePool pool) {
        float[] o = out.f32(), xs = x.f32();
        int oo = out.offset(), xo = x.offset();
        Parallel.range(pool, out.size(), GRAIN, (from, to) -> {
            int i = from, upper = from + S.loopBound(to - from);
            for (; i < upper; i += L) {
                quickGelu(FloatVector.fromArray(S, xs, xo + i)).intoArray(o, oo + i);
            }
            for (; i < to; i++) {
                float v = xs[xo + i];
                o[oo + i] = v / (1f + (float) Math.exp(-GELU_K * v));
            }
        });
    }

    /** QuickGELU of one vector, as quickGeluForwardVector computes it (the GEMM epilogue's). */
    static FloatVector quickGelu(FloatVector v) {
        return v.div(v.mul(-GELU_K).lanewise(VectorOperators.EXP).add(1f));
    }

    private static void quickGeluBackwardScalar(Tensor dx, Tensor dout, Tensor x) {
        float[] d = dx.f32(), g = dout.f32(), xs = x.f32();
        int d0 = dx.offset(), g0 = dout.offset(), xo = x.offset(), n = dx.size();
        for (int i = 0; i < n; i++) {
            float v = xs[xo + i];
            float s = 1f / (1f + (float) Math.exp(-GELU_K * v));
            d[d0 + i] += g[g0 + i] * (s + GELU_K * v * s * (1f - s));
        }
    }

    private static void quickGeluBackwardVector(Tensor dx, Tensor dout, Tensor x, ComputePool pool) {
        float[] d = dx.f32(), g = dout.f32(), xs = x.f32();
        int d0 = dx.offset(), g0 = dout.offset(), xo = x.offset();
        Parallel.range(pool, dx.size(), GRAIN, (from, to) -> {
            int i = from, upper = from + S.loopBound(to - from);
            for (; i < upper; i += L) {
                FloatVector v = FloatVector.fromArray(S, xs, xo + i);
                FloatVector sig = FloatVector.broadcast(S, 1f).div(v.mul(-GELU_K).lanewise(VectorOperators.EXP).add(1f));
                FloatVector local = v.mul(GELU_K).mul(sig).mul(sig.neg().add(1f)).add(sig);
                FloatVector.fromArray(S, g, g0 + i).fma(local, FloatVector.fromArray(S, d, d0 + i)).intoArray(d, d0 + i);
            }
            for (; i < to; i++) {
                float v = xs[xo + i];
                float s = 1f / (1f + (float) Math.exp(-GELU_K * v));
                d[d0 + i] += g[g0 + i] * (s + GELU_K * v * s * (1f - s));
            }
        });
    }

    // ---------------------------------------------------------------- GELU: x * Phi(x), Phi(x) = (1 + erf(x / sqrt 2)) / 2

    /** The scalar reference computes erf in double (series without cancellation); see {@link #erf(double)}. */
    private static void geluForwardScalar(Tensor out, Tensor x) {
        float[] o = out.f32(), xs = x.f32();
        int oo = out.offset(), xo = x.offset(), n = out.size();
        for (int i = 0; i < n; i++) o[oo + i] = gelu(xs[xo + i]);
    }

    /** The scalar reference's exact GELU of one value, erf in double. */
    static float gelu(float x) {
        double v = x;
        return (float) (0.5 * v * (1 + erf(v * SQRT1_2)));
    }

    private static void geluForwardVector(Tensor out, Tensor x, ComputePool pool) {
        float[] o = out.f32(), xs = x.f32();
        int oo = out.offset(), xo = x.offset();
        Parallel.range(pool, out.size(), GRAIN, (from, to) -> {
            int i = from, upper = from + S.loopBound(to - from);
            for (; i < upper; i += L) {
                gelu(FloatVector.fromArray(S, xs, xo + i)).intoArray(o, oo + i);
            }
            for (; i < to; i++) {
                float v = xs[xo + i];
                o[oo + i] = 0.5f * v * (1f + erf(v * (float) SQRT1_2));
            }
        });
    }

    /** Exact GELU of one vector, as geluForwardVector computes it (the GEMM epilogue's). */
    static FloatVector gelu(FloatVector v) {
        return v.mul(0.5f).mul(erf(v.mul((float) SQRT1_2)).add(1f));
    }

    private static void geluBackwardScalar(Tensor dx, Tensor dout, Tensor x) {
        float[] d = dx.f32(), g = dout.f32(), xs = x.f32();
        int d0 = dx.offset(), g0 = dout.offset(), xo = x.offset(), n = dx.size();
        for (int i = 0; i < n; i++) {
            double v = xs[xo + i];
            double cdf = 0.5 * (1 + erf(v * SQRT1_2));
            double pdf = Math.exp(-0.5 * v * v) * INV_SQRT_2PI;
            d[d0 + i] += (float) (g[g0 + i] * (cdf + v * pdf));
        }
    }

    private static void geluBackwardVector(Tensor dx, Tensor dout, Tensor x, ComputePool pool) {
        float[] d = dx.f32(), g = dout.f32(), xs = x.f32();
        int d0 = dx.offset(), g0 = dout.offset(), xo = x.offset();
        Parallel.range(pool, dx.size(), GRAIN, (from, to) -> {
            int i = from, upper = from + S.loopBound(to - from);
            for (; i < upper; i += L) {
                FloatVector v = FloatVector.fromArray(S, xs, xo + i);
                FloatVector cdf = erf(v.mul((float) SQRT1_2)).add(1f).mul(0.5f);
                FloatVector pdf = v.mul(v).mul(-0.5f).lanewise(VectorOperators.EXP).mul((float) INV_SQRT_2PI);
                FloatVector local = v.fma(pdf, cdf);
                FloatVector.fromArray(S, g, g0 + i).fma(local, FloatVector.fromArray(S, d, d0 + i)).intoArray(d, d0 + i);
            }
            for (; i < to; i++) {
                float v = xs[xo + i];
                float cdf = 0.5f * (1f + erf(v * (float) SQRT1_2));
                float pdf = (float) (Math.exp(-0.5f * v * v) * INV_SQRT_2PI);
                d[d0 + i] += g[g0 + i] * (cdf + v * pdf);
            }
        });
    }

    private static final double SQRT1_2 = Math.sqrt(0.5);
    private static final double INV_SQRT_2PI = 1 / Math.sqrt(2 * Math.PI);
    // Abramowitz & Stegun 7.1.26 (|error| <= 1.5e-7), the approximation PyTorch's vectorized CPU erf uses.
    private static final float ERF_P = 0.3275911f;
    private static final float ERF_A1 = 0.254829592f, ERF_A2 = -0.284496736f, ERF_A3 = 1.421413741f,
            ERF_A4 = -1.453152027f, ERF_A5 = 1.061405429f;

    /**
     * erf(z) in double to ~1e-15: 2/sqrt(pi) exp(-z^2) sum_n 2^n z^(2n+1) / (1 3 5 ... (2n+1)), a
     * series of positive terms (no cancellation); |z| >= 6 gives +-1 (erfc(6) = 2e-17).
     */
    static double erf(double z) {
        double a = Math.abs(z);
        if (a >= 6) return Math.copySign(1.0, z);
        double term = a, sum = a;
        for (int n = 1; term > 1e-17 * sum; n++) {
            term *= 2 * a * a / (2 * n + 1);
            sum += term;
        }
        return Math.copySign(2 / Math.sqrt(Math.PI) * Math.exp(-a * a) * sum, z);
    }

    /** The float erf of the vector path's scalar tail (A&S 7.1.26). */
    static float erf(float z) {
        float a = Math.abs(z);
        float t = 1f / (1f + ERF_P * a);
        float poly = ((((ERF_A5 * t + ERF_A4) * t + ERF_A3) * t + ERF_A2) * t + ERF_A1) * t;
        return Math.copySign(1f - poly * (float) Math.exp(-a * a), z);
    }

    private static FloatVector erf(FloatVector z) {
        FloatVector a = z.abs();
        FloatVector t = FloatVector.broadcast(S, 1f).div(a.fma(ERF_P, 1f));
        FloatVector poly = t.fma(ERF_A5, ERF_A4).fma(t, FloatVector.broadcast(S, ERF_A3))
                .fma(t, FloatVector.broadcast(S, ERF_A2)).fma(t, FloatVector.broadcast(S, ERF_A1)).mul(t);
        FloatVector r = poly.mul(a.mul(a).neg().lanewise(VectorOperators.EXP)).neg().add(1f);
        return r.blend(r.neg(), z.lt(0f));
    }

    // ---------------------------------------------------------------- channel scale (LayerScale): out[r, c] = x[r, c] * gamma[c]

    private static void channelScaleForwardScalar(Tensor out, Tensor x, Tensor gamma) {
        float[] o = out.f32(), xs = x.f32(), gs = gamma.f32();
        int oo = out.offset(), xo = x.offset(), go = gamma.offset(), c = gamma.size(), rows = out.size() / c;
        for (int r = 0; r < rows; r++) {
            for (int j = 0; j < c; j++) o[oo + r * c + j] = xs[xo + r * c + j] * gs[go + j];
        }
    }

    private static void channelScaleForwardVector(Tensor out, Tensor x, Tensor gamma, ComputePool pool) {
        float[] o = out.f32(), xs = x.f32(), gs = gamma.f32();
        int oo = out.offset(), xo = x.offset(), go = gamma.offset(), c = gamma.size(), rows = out.size() / c;
        Parallel.range(pool, rows, Math.max(1, GRAIN / c), (from, to) -> {
            for (int r = from; r < to; r++) {
                int ro = oo + r * c, rx = xo + r * c;
                int j = 0, upper = S.loopBound(c);
                for (; j < upper; j += L) {
                    FloatVector.fromArray(S, xs, rx + j).mul(FloatVector.fromArray(S, gs, go + j)).intoArray(o, ro + j);
                }
                for (; j < c; j++) o[ro + j] = xs[rx + j] * gs[go + j];
            }
        });
    }

    private static void channelScaleBackwardScalar(Tensor dx, Tensor dgamma, Tensor dout, Tensor x, Tensor gamma) {
        float[] g = dout.f32(), xs = x.f32(), gs = gamma.f32();
        int g0 = dout.offset(), xo = x.offset(), go = gamma.offset(), c = gamma.size(), rows = dout.size() / c;
        for (int r = 0; r < rows; r++) {
            for (int j = 0; j < c; j++) {
                float gr = g[g0 + r * c + j];
                if (dx != null) dx.f32()[dx.offset() + r * c + j] += gr * gs[go + j];
                if (dgamma != null) dgamma.f32()[dgamma.offset() + j] += gr * xs[xo + r * c + j];
            }
        }
    }

    /** dx in row chunks; dgamma in column chunks, each summing all rows of its columns (no shared writes). */
    private static void channelScaleBackwardVector(Tensor dx, Tensor dgamma, Tensor dout, Tensor x, Tensor gamma,
                                           ComputePool pool) {
        float[] g = dout.f32(), xs = x.f32(), gs = gamma.f32();
        int g0 = dout.offset(), xo = x.offset(), go = gamma.offset(), c = gamma.size(), rows = dout.size() / c;
        if (dx != null) {
            float[] d = dx.f32();
            int d0 = dx.offset();
            Parallel.range(pool, rows, Math.max(1, GRAIN / c), (from, to) -> {
                for (int r = from; r < to; r++) {
                    int rd = d0 + r * c, rg = g0 + r * c;
                    int j = 0, upper = S.loopBound(c);
                    for (; j < upper; j += L) {
                        FloatVector.fromArray(S, g, rg + j).fma(FloatVector.fromArray(S, gs, go + j),
                                FloatVector.fromArray(S, d, rd + j)).intoArray(d, rd + j);
                    }
                    for (; j < c; j++) d[rd + j] += g[rg + j] * gs[go + j];
                }
            });
        }
        if (dgamma != null) {
            float[] dg = dgamma.f32();
            int dg0 = dgamma.offset();
            Parallel.range(pool, c, Math.max(L, GRAIN / Math.max(1, rows)), (from, to) -> {
                for (int r = 0; r < rows; r++) {
                    int rg = g0 + r * c, rx = xo + r * c;
                    int j = from, upper = from + S.loopBound(to - from);
                    for (; j < upper; j += L) {
                        FloatVector.fromArray(S, g, rg + j).fma(FloatVector.fromArray(S, xs, rx + j),
                                FloatVector.fromArray(S, dg, dg0 + j)).intoArray(dg, dg0 + j);
                    }
                    for (; j < to; j++) dg[dg0 + j] += g[rg + j] * xs[rx + j];
                }
            });
        }
    }

    // ---------------------------------------------------------------- ReLU

    private static void reluForwardScalar(Tensor out, Tensor x) {
        float[] o = out.f32(), xs = x.f32();
        int oo = out.offset(), xo = x.offset(), n = out.size();
        for (int i = 0; i < n; i++) o[oo + i] = Math.max(xs[xo + i], 0f);
    }

    private static void reluForwardVector(Tensor out, Tensor x, ComputePool pool) {
        float[] o = out.f32(), xs = x.f32();
        int oo = out.offset(), xo = x.offset();
        Parallel.range(pool, out.size(), GRAIN, (from, to) -> {
            int i = from, upper = from + S.loopBound(to - from);
            for (; i < upper; i += L) FloatVector.fromArray(S, xs, xo + i).max(0f).intoArray(o, oo + i);
            for (; i < to; i++) o[oo + i] = Math.max(xs[xo + i], 0f);
        });
    }

    private static void reluBackwardScalar(Tensor dx, Tensor dout, Tensor out) {
        float[] d = dx.f32(), g = dout.f32(), y = out.f32();
        int d0 = dx.offset(), g0 = dout.offset(), y0 = out.offset(), n = dx.size();
        for (int i = 0; i < n; i++) {
            if (y[y0 + i] > 0f) d[d0 + i] += g[g0 + i];
        }
    }

    private static void reluBackwardVector(Tensor dx, Tensor dout, Tensor out, ComputePool pool) {
        float[] d = dx.f32(), g = dout.f32(), y = out.f32();
        int d0 = dx.offset(), g0 = dout.offset(), y0 = out.offset();
        Parallel.range(pool, dx.size(), GRAIN, (from, to) -> {
            int i = from, upper = from + S.loopBound(to - from);
            for (; i < upper; i += L) {
                var positive = FloatVector.fromArray(S, y, y0 + i).compare(VectorOperators.GT, 0f);
                FloatVector.fromArray(S, d, d0 + i).add(FloatVector.fromArray(S, g, g0 + i), positive).intoArray(d, d0 + i);
            }
            for (; i < to; i++) {
                if (y[y0 + i] > 0f) d[d0 + i] += g[g0 + i];
            }
        });
    }

    // ---------------------------------------------------------------- fill, copy, cast

    private static void copy(Tensor dst, Tensor src) {
        int n = dst.size();
        switch (dst.dtype()) {
            case F32 -> System.arraycopy(src.f32(), src.offset(), dst.f32(), dst.offset(), n);
            case F16, BF16 -> System.arraycopy(src.bits16(), src.offset(), dst.bits16(), dst.offset(), n);
            case I32 -> System.arraycopy(src.i32(), src.offset(), dst.i32(), dst.offset(), n);
            case I64 -> System.arraycopy(src.i64(), src.offset(), dst.i64(), dst.offset(), n);
        }
    }

    /** Element-by-element conversion through F32; each conversion rounds to nearest even. */
    private static void castScalar(Tensor dst, Tensor src) {
        if (dst.dtype() == src.dtype()) {
            copy(dst, src);
            return;
        }
        int n = dst.size(), d0 = dst.offset(), s0 = src.offset();
        switch (dst.dtype()) {
            case F32 -> {
                float[] d = dst.f32();
                short[] s = src.bits16();
                boolean half = src.dtype() == DType.F16;
                for (int i = 0; i < n; i++) d[d0 + i] = half ? DType.f16ToFloat(s[s0 + i]) : DType.bf16ToFloat(s[s0 + i]);
            }
            case F16, BF16 -> {
                short[] d = dst.bits16();
                boolean toHalf = dst.dtype() == DType.F16;
                for (int i = 0; i < n; i++) {
                    float f = switch (src.dtype()) {
                        case F32 -> src.f32()[s0 + i];
                        case F16 -> DType.f16ToFloat(src.bits16()[s0 + i]);
                        default -> DType.bf16ToFloat(src.bits16()[s0 + i]);
                    };
                    d[d0 + i] = toHalf ? DType.floatToF16(f) : DType.floatToBf16(f);
                }
            }
            default -> throw new IllegalArgumentException("cast: unsupported " + src.dtype() + " -> " + dst.dtype());
        }
    }

    /** The same conversions, chunked over the pool; from F16/BF16 to F32 or BF16 and F32 to BF16 on vectors. */
    private static void castParallel(Tensor dst, Tensor src, ComputePool pool) {
        if (dst.dtype() == src.dtype()) {
            copy(dst, src);
            return;
        }
        Tensor d = dst.reshape(dst.size()), s = src.reshape(src.size());
        Parallel.range(pool, d.size(), GRAIN, (from, to) -> castVector(d.slice(from, to), s.slice(from, to)));
    }

    // 16-bit lanes as many as S has floats (half its width), the same count of int lanes
    private static final VectorSpecies<Short> H = VectorSpecies.of(short.class, VectorShape.forBitSize(S.vectorBitSize() / 2));
    private static final VectorSpecies<Integer> I = S.withLanes(int.class);
    private static final float MIN_NORMAL_F16 = 0x1p-14f;

    /** One chunk (dst, src 1-D): whole vectors on the Vector API, the tail and the other pairs by castScalar. */
    private static void castVector(Tensor dst, Tensor src) {
        DType from = src.dtype(), to = dst.dtype();
        boolean vectorized = from != DType.F32 && to == DType.F32 || to == DType.BF16;
        int n = dst.size(), upper = vectorized ? S.loopBound(n) : 0, d0 = dst.offset(), s0 = src.offset();
        for (int i = 0; i < upper; i += L) {
            FloatVector f = from == DType.F32 ? FloatVector.fromArray(S, src.f32(), s0 + i)
                    : widen(ShortVector.fromArray(H, src.bits16(), s0 + i), from);
            if (to == DType.F32) f.intoArray(dst.f32(), d0 + i);
            else toBf16(f).intoArray(dst.bits16(), d0 + i);
        }
        if (upper < n) castScalar(dst.slice(upper, n), src.slice(upper, n));
    }

    /** F16 or BF16 bits to F32, exact (as DType.f16ToFloat / bf16ToFloat, NaN payloads kept). */
    private static FloatVector widen(ShortVector bits, DType from) {
        IntVector h = ((IntVector) bits.convertShape(VectorOperators.S2I, I, 0)).and(0xffff);
        if (from == DType.BF16) return h.lanewise(VectorOperators.LSHL, 16).reinterpretAsFloats();
        // F16: exponent and mantissa moved to F32's places and the exponent rebased (15 -> 127); Inf/NaN
        // get the all-ones exponent; zero and subnormals are rebased as 2^-14 * (1 + m / 1024) minus 2^-14
        IntVector magnitude = h.and(0x7fff).lanewise(VectorOperators.LSHL, 13);
        IntVector exponent = magnitude.and(0x1f << 23);
        IntVector rebased = magnitude.add(112 << 23);
        rebased = rebased.add(112 << 23, exponent.eq(0x1f << 23));
        VectorMask<Integer> small = exponent.eq(0);
        FloatVector f = rebased.add(1 << 23, small).reinterpretAsFloats().sub(MIN_NORMAL_F16, small.cast(S));
        return f.reinterpretAsInts().or(h.and(0x8000).lanewise(VectorOperators.LSHL, 16)).reinterpretAsFloats();
    }

    /** F32 to BF16 bits, round to nearest even, NaN kept quiet (as DType.floatToBf16). */
    private static ShortVector toBf16(FloatVector f) {
        IntVector bits = f.reinterpretAsInts();
        VectorMask<Integer> nan = bits.and(0x7fffffff).compare(VectorOperators.GT, 0x7f800000);
        IntVector upperHalf = bits.lanewise(VectorOperators.LSHR, 16);
        IntVector rounded = bits.add(upperHalf.and(1).add(0x7fff)).lanewise(VectorOperators.LSHR, 16);
        IntVector result = rounded.blend(upperHalf.or(0x0040), nan);
        return (ShortVector) result.convertShape(VectorOperators.I2S, H, 0);
    }
}
