package org.clipj.runtime.cpu;

import java.util.Arrays;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.VectorMask;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorSpecies;

import org.clipj.runtime.Tensor;

/**
 * The attention family (attention.cu): fused multi-head attention on packed qkv (B, T, 3C), causal or
 * full, forward and backward, and the one-query-row kernels that attention pooling shares. Arguments
 * are checked by {@link org.clipj.runtime.OpChecks}. The scalar reference works one query row at a time (T floats of scores).
 * The forward's fast path on AVX-512 is fused: register tiles for q k^T and p v with the softmax between
 * them on an (FR, T) block in L1 ({@link #forwardFused}); elsewhere, and for the backward, the fast path
 * works on blocks of QB query rows with Sgemm, so a task holds at most a (QB, T) block, never a head's
 * whole (T, T) matrix. Backward recomputes the probabilities from the forward's log-sum-exp.
 */
final class AttentionOps {
    private static final VectorSpecies<Float> S = Vec.S;
    private static final int L = Vec.L;
    private static final int QB = 64; // query rows per block on the Sgemm path
    private static final int FR = 8;  // query rows per block on the fused path (tiles of FR x 2 vectors)
    /**
     * The fused path wants AVX-512 (16 lanes): its 16-accumulator tiles need 32 vector registers and it lays
     * K out with Sgemm.transpose16. With 16 registers (AVX2) the Sgemm path runs.
     */
    private static final boolean FUSED = L == 16;
    private static final ThreadLocal<float[]> SCRATCH = ThreadLocal.withInitial(() -> new float[0]);

    private AttentionOps() {}

    static void attentionForward(OpContext cx, Tensor out, Tensor lse, Tensor qkv, int heads, boolean causal) {
        if (!cx.vector()) forwardScalar(out, lse, qkv, heads, causal);
        else if (FUSED) forwardFused(cx.pool(), out, lse, qkv, heads, causal);
        else forwardBlocked(cx.pool(), out, lse, qkv, heads, causal);
    }

    static void attentionBackward(OpContext cx, Tensor dqkv, Tensor dout, Tensor qkv, Tensor out, Tensor lse, int heads,
                                  boolean causal) {
        if (cx.vector()) backwardBlocked(cx.pool(), dqkv, dout, qkv, out, lse, heads, causal);
        else backwardScalar(dqkv, dout, qkv, out, lse, heads, causal);
    }

    // ---------------------------------------------------------------- one query row

    /**
     * out[0..hd) = softmax_j(scale q . k_j) v_j over keys j < n; key j's row starts at kOff + j * kStride
     * (likewise v). scores holds n floats of scratch. Returns the log-sum-exp of the scaled scores.
     */
    static float attendRow(boolean vector, float[] q, int qOff, float[] k, int kOff, float[] v, int vOff, int kvStride,
                           int n, int hd, float scale, float[] out, int oOff, float[] scores) {
        float max = Float.NEGATIVE_INFINITY, sum = 0f;
        if (vector) {
            for (int j = 0; j < n; j++) scores[j] = scale * Vec.dot(q, qOff, k, kOff + j * kvStride, hd);
            max = Vec.max(scores, 0, n);
            sum = Vec.expShiftSum(scores, 0, max, n);
        } else {
            for (int j = 0; j < n; j++) {
                scores[j] = scale * dotScalar(q, qOff, k, kOff + j * kvStride, hd);
                max = Math.max(max, scores[j]);
            }
            for (int j = 0; j < n; j++) {
                scores[j] = (float) Math.exp(scores[j] - max);
                sum += scores[j];
            }
        }
        float inv = 1f / sum;
        for (int d = 0; d < hd; d++) out[oOff + d] = 0f;
        for (int j = 0; j < n; j++) {
            float p = scores[j] * inv;
            if (vector) {
                Vec.axpy(p, v, vOff + j * kvStride, out, oOff, hd);
            } else {
                for (int d = 0; d < hd; d++) out[oOff + d] += p * v[vOff + j * kvStride + d];
            }
        }
        return max + (float) Math.log(sum);
    }

    /**
     * The gradient of one query row: with p_j = exp(scale q.k_j - lse), D = dout . out,
     * ds_j = p_j (dout . v_j - D): dq += scale sum_j ds_j k_j; dk_j += scale ds_j q; dv_j += p_j dout.
     * dq, dk, dv may be null; dk/dv rows start at dkOff/dvOff with row stride dkvStride.
     * probs holds n floats of scratch.
     */
    static void attendRowBackward(boolean vector, float[] q, int qOff, float[] k, int kOff, float[] v, int vOff, int kvStride,
                                  int n, int hd, float scale, float[] dout, int gOff, float[] out, int oOff, float lse,
                                  float[] dq, int dqOff, float[] dk, int dkOff, float[] dv, int dvOff, int dkvStride,
                                  float[] probs) {
        float dOut = vector ? Vec.dot(dout, gOff, out, oOff, hd) : dotScalar(dout, gOff, out, oOff, hd);
        if (vector) {
            for (int j = 0; j < n; j++) probs[j] = scale * Vec.dot(q, qOff, k, kOff + j * kvStride, hd);
            Vec.expShiftSum(probs, 0, lse, n);
        } else {
            for (int j = 0; j < n; j++) probs[j] = (float) Math.exp(scale * dotScalar(q, qOff, k, kOff + j * kvStride, hd) - lse);
        }
        for (int j = 0; j < n; j++) {
            int kj = kOff + j * kvStride, vj = vOff + j * kvStride;
            float p = probs[j];
            float dp = vector ? Vec.dot(dout, gOff, v, vj, hd) : dotScalar(dout, gOff, v, vj, hd);
            float ds = p * (dp - dOut) * scale;
            if (vector) {
                if (dq != null) Vec.axpy(ds, k, kj, dq, dqOff, hd);
                if (dk != null) Vec.axpy(ds, q, qOff, dk, dkOff + j * dkvStride, hd);
                if (dv != null) Vec.axpy(p, dout, gOff, dv, dvOff + j * dkvStride, hd);
            } else {
                for (int d = 0; d < hd; d++) {
                    if (dq != null) dq[dqOff + d] += ds * k[kj + d];
                    if (dk != null) dk[dkOff + j * dkvStride + d] += ds * q[qOff + d];
                    if (dv != null) dv[dvOff + j * dkvStride + d] += p * dout[gOff + d];
                }
            }
        }
    }

    private static float dotScalar(float[] a, int ao, float[] b, int bo, int n) {
        float s = 0f;
        for (int i = 0; i < n; i++) s += a[ao + i] * b[bo + i];
        return s;
    }

    // ---------------------------------------------------------------- self-attention on packed qkv, scalar reference

    /** out (B, T, C), lse (B, heads, T) or null, qkv (B, T, 3C); serial, one query row at a time. */
    private static void forwardScalar(Tensor out, Tensor lse, Tensor qkv, int heads, boolean causal) {
        int b = qkv.dim(0), t = qkv.dim(1), c3 = qkv.dim(2), c = c3 / 3, hd = c / heads;
        float scale = (float) (1.0 / Math.sqrt(hd));
        float[] x = qkv.f32(), o = out.f32();
        float[] ls = lse == null ? null : lse.f32();
        int xo = qkv.offset(), oo = out.offset(), lo = lse == null ? 0 : lse.offset();
        float[] scores = new float[t];
        for (int row = 0; row < b * heads * t; row++) {
            int bi = row / (heads * t), h = (row / t) % heads, ti = row % t;
            int base = xo + bi * t * c3;
            int n = causal ? ti + 1 : t;
            float l = attendRow(false, x, base + ti * c3 + h * hd, x, base + c + h * hd, x, base + 2 * c + h * hd, c3,
                    n, hd, scale, o, oo + (bi * t + ti) * c + h * hd, scores);
            if (ls != null) ls[lo + (bi * heads + h) * t + ti] = l;
        }
    }

    /** dqkv (B, T, 3C) += the gradient; serial, one query row at a time. */
    private static void backwardScalar(Tensor dqkv, Tensor dout, Tensor qkv, Tensor out, Tensor lse, int heads, boolean causal) {
        int b = qkv.dim(0), t = qkv.dim(1), c3 = qkv.dim(2), c = c3 / 3, hd = c / heads;
        float scale = (float) (1.0 / Math.sqrt(hd));
        float[] x = qkv.f32(), o = out.f32(), g = dout.f32(), ls = lse.f32(), d = dqkv.f32();
        int xo = qkv.offset(), oo = out.offset(), go = dout.offset(), lo = lse.offset(), dOff = dqkv.offset();
        float[] probs = new float[t];
        for (int bh = 0; bh < b * heads; bh++) {
            int bi = bh / heads, h = bh % heads;
            int base = xo + bi * t * c3, dbase = dOff + bi * t * c3;
            for (int ti = 0; ti < t; ti++) {
                int n = causal ? ti + 1 : t;
                int rowOut = (bi * t + ti) * c + h * hd;
                attendRowBackward(false, x, base + ti * c3 + h * hd, x, base + c + h * hd, x, base + 2 * c + h * hd, c3,
                        n, hd, scale, g, go + rowOut, o, oo + rowOut, ls[lo + bh * t + ti],
                        d, dbase + ti * c3 + h * hd, d, dbase + c + h * hd, d, dbase + 2 * c + h * hd, c3, probs);
            }
        }
    }

    // ---------------------------------------------------------------- self-attention, fused fast path

    /**
     * The fused forward: per (b, h), K laid out once as key panels kt[(panel * hd + d) * L + lane] (L keys
     * each, the ragged last panel zero-padded), then per block of FR query rows: the scores block
     * (FR, n) in L1 from register tiles (FR rows x 2 panels), the softmax on it (exp written in place,
     * masked key tails, 1 / sum kept per row), and out = P V from register tiles (FR rows x 2 vectors of
     * the head) that read V's rows straight from qkv and scale by 1 / sum on the store. The (T, T)
     * matrix is never written; with the causal mask a block reads only the key panels below its
     * diagonal. A block's rows past T repeat row T - 1 in the tiles and are not stored.
     */
    private static void forwardFused(ComputePool pool, Tensor out, Tensor lse, Tensor qkv, int heads, boolean causal) {
        int b = qkv.dim(0), t = qkv.dim(1), c3 = qkv.dim(2), c = c3 / 3, hd = c / heads;
        float scale = (float) (1.0 / Math.sqrt(hd));
        float[] x = qkv.f32(), o = out.f32();
        float[] ls = lse == null ? null : lse.f32();
        int xo = qkv.offset(), oo = out.offset(), lo = lse == null ? 0 : lse.offset();
        int panels = (t + L - 1) / L, tp = panels * L;
        Parallel.range(pool, b * heads, 1, (from, to) -> {
            // kt, the scores block, 1 / sum per row, the ragged key panel's block
            float[] scratch = scratch(panels * hd * L + FR * tp + FR + L * hd);
            int pOff = panels * hd * L, invOff = pOff + FR * tp, blockOff = invOff + FR;
            for (int bh = from; bh < to; bh++) {
                int bi = bh / heads, h = bh % heads;
                int base = xo + bi * t * c3 + h * hd;
                packKeyPanels(x, base + c, c3, t, hd, scratch, blockOff);
                for (int i0 = 0; i0 < t; i0 += FR) {
                    int rows = Math.min(FR, t - i0), n = causal ? i0 + rows : t;
                    int blockPanels = (n + L - 1) / L;
                    for (int pb = 0; pb < blockPanels; pb += 2) {
                        if (pb + 1 < blockPanels) scoreTile2(x, base, c3, i0, t - 1, hd, scratch, pb, scale, pOff, tp);
                        else scoreTile1(x, base, c3, i0, t - 1, hd, scratch, pb, scale, pOff, tp);
                    }
                    for (int r = 0; r < rows; r++) {   // rows past t keep their raw scores: p v computes them, nothing stores them
                        int i = i0 + r;
                        softmaxRow(scratch, pOff + r * tp, causal ? i + 1 : t, blockPanels * L, scratch, invOff + r, ls, lo + bh * t + i);
                    }
                    int oRow = oo + (bi * t + i0) * c + h * hd;
                    for (int d0 = 0; d0 < hd; d0 += 2 * L) {
                        if (hd - d0 > L) {
                            valueTile2(x, base + 2 * c + d0, c3, n, S.indexInRange(d0 + L, hd), scratch, pOff, tp, invOff,
                                    o, oRow + d0, c, rows);
                        } else {
                            valueTile1(x, base + 2 * c + d0, c3, n, S.indexInRange(d0, hd), scratch, pOff, tp, invOff,
                                    o, oRow + d0, c, rows);
                        }
                    }
                }
            }
        });
    }

    /**
     * This thread's scratch of at least n floats, kept between calls: a chunk of forwardFused calls no other op
     * and no pool, so a thread's buffer is never in use twice (unlike ConvOps.scratch's, held across a pool run).
     */
    private static float[] scratch(int n) {
        float[] a = SCRATCH.get();
        if (a.length < n) {
            a = new float[n];
            SCRATCH.set(a);
        }
        return a;
    }

    /**
     * kt[(panel * hd + d) * L + lane] = k[panel * L + lane][d] for the t keys whose rows start at
     * x[kOff + j * ldk], into buf at 0; lanes past t are 0: the ragged last panel's keys are first copied
     * into a zero-filled (L, hd) block at buf[blockOff].
     */
    private static void packKeyPanels(float[] x, int kOff, int ldk, int t, int hd, float[] buf, int blockOff) {
        int fullPanels = t / L;
        for (int pb = 0; pb < fullPanels; pb++) packKeyPanel(x, kOff + pb * L * ldk, ldk, hd, buf, pb * hd * L);
        int tail = t - fullPanels * L;
        if (tail > 0) {
            for (int lane = 0; lane < tail; lane++) System.arraycopy(x, kOff + (fullPanels * L + lane) * ldk, buf, blockOff + lane * hd, hd);
            Arrays.fill(buf, blockOff + tail * hd, blockOff + L * hd, 0f);
            packKeyPanel(buf, blockOff, hd, hd, buf, fullPanels * hd * L);
        }
    }

    /** One panel: kt[dst + d * L + lane] = x[src + lane * ldk + d]; (16, 16) blocks through Sgemm's register transpose. */
    private static void packKeyPanel(float[] x, int src, int ldk, int hd, float[] kt, int dst) {
        int blockedDepth = hd - hd % L;
        for (int d0 = 0; d0 < blockedDepth; d0 += L) Sgemm.transpose16(x, src + d0, ldk, kt, dst + d0 * L, L);
        for (int lane = 0; lane < L; lane++) {
            for (int d = blockedDepth; d < hd; d++) kt[dst + d * L + lane] = x[src + lane * ldk + d];
        }
    }

    /**
     * p[pOff + r * tp + pb * L ..+ 2L) = scale q_i . k_j for the FR rows i = min(i0 + r, last) and the keys of
     * panels pb, pb + 1 (kt at 0 of buf, p in buf too): 16 accumulators, one broadcast of q per row and depth.
     */
    private static void scoreTile2(float[] x, int qOff, int ldq, int i0, int last, int hd, float[] buf, int pb, float scale,
                                   int pOff, int tp) {
        int q0 = qOff + Math.min(i0, last) * ldq, q1 = qOff + Math.min(i0 + 1, last) * ldq;
        int q2 = qOff + Math.min(i0 + 2, last) * ldq, q3 = qOff + Math.min(i0 + 3, last) * ldq;
        int q4 = qOff + Math.min(i0 + 4, last) * ldq, q5 = qOff + Math.min(i0 + 5, last) * ldq;
        int q6 = qOff + Math.min(i0 + 6, last) * ldq, q7 = qOff + Math.min(i0 + 7, last) * ldq;
        FloatVector a00 = FloatVector.zero(S), a01 = a00, a10 = a00, a11 = a00, a20 = a00, a21 = a00, a30 = a00, a31 = a00;
        FloatVector a40 = a00, a41 = a00, a50 = a00, a51 = a00, a60 = a00, a61 = a00, a70 = a00, a71 = a00;
        int k0 = pb * hd * L, k1 = k0 + hd * L;
        for (int d = 0; d < hd; d++) {
            FloatVector b0 = FloatVector.fromArray(S, buf, k0 + d * L), b1 = FloatVector.fromArray(S, buf, k1 + d * L);
            FloatVector q = FloatVector.broadcast(S, x[q0 + d]);
            a00 = q.fma(b0, a00); a01 = q.fma(b1, a01);
            q = FloatVector.broadcast(S, x[q1 + d]);
            a10 = q.fma(b0, a10); a11 = q.fma(b1, a11);
            q = FloatVector.broadcast(S, x[q2 + d]);
            a20 = q.fma(b0, a20); a21 = q.fma(b1, a21);
            q = FloatVector.broadcast(S, x[q3 + d]);
            a30 = q.fma(b0, a30); a31 = q.fma(b1, a31);
            q = FloatVector.broadcast(S, x[q4 + d]);
            a40 = q.fma(b0, a40); a41 = q.fma(b1, a41);
            q = FloatVector.broadcast(S, x[q5 + d]);
            a50 = q.fma(b0, a50); a51 = q.fma(b1, a51);
            q = FloatVector.broadcast(S, x[q6 + d]);
            a60 = q.fma(b0, a60); a61 = q.fma(b1, a61);
            q = FloatVector.broadcast(S, x[q7 + d]);
            a70 = q.fma(b0, a70); a71 = q.fma(b1, a71);
        }
        int p = pOff + pb * L;
        a00.mul(scale).intoArray(buf, p); a01.mul(scale).intoArray(buf, p + L); p += tp;
        a10.mul(scale).intoArray(buf, p); a11.mul(scale).intoArray(buf, p + L); p += tp;
        a20.mul(scale).intoArray(buf, p); a21.mul(scale).intoArray(buf, p + L); p += tp;
        a30.mul(scale).intoArray(buf, p); a31.mul(scale).intoArray(buf, p + L); p += tp;
        a40.mul(scale).intoArray(buf, p); a41.mul(scale).intoArray(buf, p + L); p += tp;
        a50.mul(scale).intoArray(buf, p); a51.mul(scale).intoArray(buf, p + L); p += tp;
        a60.mul(scale).intoArray(buf, p); a61.mul(scale).intoArray(buf, p + L); p += tp;
        a70.mul(scale).intoArray(buf, p); a71.mul(scale).intoArray(buf, p + L);
    }

    /** scoreTile2 for the one panel pb (the odd last one). */
    private static void scoreTile1(float[] x, int qOff, int ldq, int i0, int last, int hd, float[] buf, int pb, float scale,
                                   int pOff, int tp) {
        int q0 = qOff + Math.min(i0, last) * ldq, q1 = qOff + Math.min(i0 + 1, last) * ldq;
        int q2 = qOff + Math.min(i0 + 2, last) * ldq, q3 = qOff + Math.min(i0 + 3, last) * ldq;
        int q4 = qOff + Math.min(i0 + 4, last) * ldq, q5 = qOff + Math.min(i0 + 5, last) * ldq;
        int q6 = qOff + Math.min(i0 + 6, last) * ldq, q7 = qOff + Math.min(i0 + 7, last) * ldq;
        FloatVector a0 = FloatVector.zero(S), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0;
        int k0 = pb * hd * L;
        for (int d = 0; d < hd; d++) {
            FloatVector b0 = FloatVector.fromArray(S, buf, k0 + d * L);
            a0 = FloatVector.broadcast(S, x[q0 + d]).fma(b0, a0);
            a1 = FloatVector.broadcast(S, x[q1 + d]).fma(b0, a1);
            a2 = FloatVector.broadcast(S, x[q2 + d]).fma(b0, a2);
            a3 = FloatVector.broadcast(S, x[q3 + d]).fma(b0, a3);
            a4 = FloatVector.broadcast(S, x[q4 + d]).fma(b0, a4);
            a5 = FloatVector.broadcast(S, x[q5 + d]).fma(b0, a5);
            a6 = FloatVector.broadcast(S, x[q6 + d]).fma(b0, a6);
            a7 = FloatVector.broadcast(S, x[q7 + d]).fma(b0, a7);
        }
        int p = pOff + pb * L;
        a0.mul(scale).intoArray(buf, p); a1.mul(scale).intoArray(buf, p + tp);
        a2.mul(scale).intoArray(buf, p + 2 * tp); a3.mul(scale).intoArray(buf, p + 3 * tp);
        a4.mul(scale).intoArray(buf, p + 4 * tp); a5.mul(scale).intoArray(buf, p + 5 * tp);
        a6.mul(scale).intoArray(buf, p + 6 * tp); a7.mul(scale).intoArray(buf, p + 7 * tp);
    }

    /**
     * One row of scores p[row ..+ end) (end a multiple of L, the keys the block computed): p becomes
     * exp(p - max) on the valid keys [0, valid) and 0 on [valid, end); buf[invAt] = 1 / sum; the
     * log-sum-exp goes to lse[lseAt] when lse is not null (training; inference skips the log, 3-6 % of the fused
     * forward at T = 50). Partial vectors are masked, so no key takes a scalar exp.
     */
    private static void softmaxRow(float[] p, int row, int valid, int end, float[] buf, int invAt, float[] lse, int lseAt) {
        int full = S.loopBound(valid);
        FloatVector vmax = FloatVector.broadcast(S, Float.NEGATIVE_INFINITY);
        for (int j = 0; j < full; j += L) vmax = vmax.max(FloatVector.fromArray(S, p, row + j));
        float max = vmax.reduceLanes(VectorOperators.MAX);
        if (full < valid) {
            max = Math.max(max, FloatVector.fromArray(S, p, row + full).reduceLanes(VectorOperators.MAX, S.indexInRange(full, valid)));
        }
        FloatVector sum = FloatVector.zero(S);
        for (int j = 0; j < full; j += L) {
            FloatVector e = exp(FloatVector.fromArray(S, p, row + j).sub(max));
            e.intoArray(p, row + j);
            sum = sum.add(e);
        }
        FloatVector zero = FloatVector.zero(S);
        for (int j = full; j < end; j += L) {
            VectorMask<Float> m = S.indexInRange(j, valid);
            FloatVector e = zero.blend(exp(FloatVector.fromArray(S, p, row + j).sub(max)), m);
            e.intoArray(p, row + j);
            sum = sum.add(e);
        }
        float s = sum.reduceLanes(VectorOperators.ADD);
        buf[invAt] = 1f / s;
        if (lse != null) lse[lseAt] = max + (float) Math.log(s);
    }

    /**
     * e^x lane by lane, inline (the Vector API's EXP calls a math stub: about a third of the fused forward
     * at T = 77): x = n ln 2 + r with n = round(x / ln 2) and |r| <= ln 2 / 2 (ln 2 in two parts), e^r from
     * Cephes' expf polynomial (about 1 ulp), 2^n written into the exponent bits. The softmax gives x <= 0;
     * x is clamped to [-87.3, 88] so that 2^n stays a normal float (below: about 1e-38 instead of 0).
     */
    private static FloatVector exp(FloatVector x) {
        x = x.max(-87.33654f).min(88f);
        FloatVector t = x.fma(1.44269504f, 12582912f);   // + 1.5 * 2^23 rounds n into the low bits
        FloatVector n = t.sub(12582912f);
        FloatVector r = n.fma(FloatVector.broadcast(S, 2.12194440e-4f), n.fma(FloatVector.broadcast(S, -0.693359375f), x));   // x - n ln 2
        FloatVector p = r.fma(1.9875691500e-4f, 1.3981999507e-3f);
        p = p.fma(r, FloatVector.broadcast(S, 8.3334519073e-3f));
        p = p.fma(r, FloatVector.broadcast(S, 4.1665795894e-2f));
        p = p.fma(r, FloatVector.broadcast(S, 1.6666665459e-1f));
        p = p.fma(r, FloatVector.broadcast(S, 5.0000001201e-1f));
        p = p.fma(r.mul(r), r).add(1f);
        IntVector pow2n = t.reinterpretAsInts().sub(0x4B400000 - 127).lanewise(VectorOperators.LSHL, 23);
        return p.mul(pow2n.reinterpretAsFloats());
    }

    /**
     * o[oOff + r * ldo ..+ 2L) = inv_r sum_{j < n} p[r][j] v_j[0 ..+ 2L) for the first `rows` of the FR rows
     * (p at pOff of buf, row stride tp; inv_r = buf[invOff + r]); v_j starts at x[vOff + j * ldv], its
     * second vector masked by m1 (the head's ragged end).
     */
    private static void valueTile2(float[] x, int vOff, int ldv, int n, VectorMask<Float> m1, float[] buf, int pOff, int tp,
                                   int invOff, float[] o, int oOff, int ldo, int rows) {
        FloatVector a00 = FloatVector.zero(S), a01 = a00, a10 = a00, a11 = a00, a20 = a00, a21 = a00, a30 = a00, a31 = a00;
        FloatVector a40 = a00, a41 = a00, a50 = a00, a51 = a00, a60 = a00, a61 = a00, a70 = a00, a71 = a00;
        for (int j = 0; j < n; j++) {
            int v = vOff + j * ldv, p = pOff + j;
            FloatVector b0 = FloatVector.fromArray(S, x, v), b1 = FloatVector.fromArray(S, x, v + L, m1);
            FloatVector w = FloatVector.broadcast(S, buf[p]);
            a00 = w.fma(b0, a00); a01 = w.fma(b1, a01);
            w = FloatVector.broadcast(S, buf[p + tp]);
            a10 = w.fma(b0, a10); a11 = w.fma(b1, a11);
            w = FloatVector.broadcast(S, buf[p + 2 * tp]);
            a20 = w.fma(b0, a20); a21 = w.fma(b1, a21);
            w = FloatVector.broadcast(S, buf[p + 3 * tp]);
            a30 = w.fma(b0, a30); a31 = w.fma(b1, a31);
            w = FloatVector.broadcast(S, buf[p + 4 * tp]);
            a40 = w.fma(b0, a40); a41 = w.fma(b1, a41);
            w = FloatVector.broadcast(S, buf[p + 5 * tp]);
            a50 = w.fma(b0, a50); a51 = w.fma(b1, a51);
            w = FloatVector.broadcast(S, buf[p + 6 * tp]);
            a60 = w.fma(b0, a60); a61 = w.fma(b1, a61);
            w = FloatVector.broadcast(S, buf[p + 7 * tp]);
            a70 = w.fma(b0, a70); a71 = w.fma(b1, a71);
        }
        a00.mul(buf[invOff]).intoArray(o, oOff); a01.mul(buf[invOff]).intoArray(o, oOff + L, m1);
        if (rows > 1) { a10.mul(buf[invOff + 1]).intoArray(o, oOff + ldo); a11.mul(buf[invOff + 1]).intoArray(o, oOff + ldo + L, m1); }
        if (rows > 2) { a20.mul(buf[invOff + 2]).intoArray(o, oOff + 2 * ldo); a21.mul(buf[invOff + 2]).intoArray(o, oOff + 2 * ldo + L, m1); }
        if (rows > 3) { a30.mul(buf[invOff + 3]).intoArray(o, oOff + 3 * ldo); a31.mul(buf[invOff + 3]).intoArray(o, oOff + 3 * ldo + L, m1); }
        if (rows > 4) { a40.mul(buf[invOff + 4]).intoArray(o, oOff + 4 * ldo); a41.mul(buf[invOff + 4]).intoArray(o, oOff + 4 * ldo + L, m1); }
        if (rows > 5) { a50.mul(buf[invOff + 5]).intoArray(o, oOff + 5 * ldo); a51.mul(buf[invOff + 5]).intoArray(o, oOff + 5 * ldo + L, m1); }
        if (rows > 6) { a60.mul(buf[invOff + 6]).intoArray(o, oOff + 6 * ldo); a61.mul(buf[invOff + 6]).intoArray(o, oOff + 6 * ldo + L, m1); }
        if (rows > 7) { a70.mul(buf[invOff + 7]).intoArray(o, oOff + 7 * ldo); a71.mul(buf[invOff + 7]).intoArray(o, oOff + 7 * ldo + L, m1); }
    }

    /** valueTile2 for one vector of the head, masked by m0. */
    private static void valueTile1(float[] x, int vOff, int ldv, int n, VectorMask<Float> m0, float[] buf, int pOff, int tp,
                                   int invOff, float[] o, int oOff, int ldo, int rows) {
        FloatVector a0 = FloatVector.zero(S), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0;
        for (int j = 0; j < n; j++) {
            int p = pOff + j;
            FloatVector b0 = FloatVector.fromArray(S, x, vOff + j * ldv, m0);
            a0 = FloatVector.broadcast(S, buf[p]).fma(b0, a0);
            a1 = FloatVector.broadcast(S, buf[p + tp]).fma(b0, a1);
            a2 = FloatVector.broadcast(S, buf[p + 2 * tp]).fma(b0, a2);
            a3 = FloatVector.broadcast(S, buf[p + 3 * tp]).fma(b0, a3);
            a4 = FloatVector.broadcast(S, buf[p + 4 * tp]).fma(b0, a4);
            a5 = FloatVector.broadcast(S, buf[p + 5 * tp]).fma(b0, a5);
            a6 = FloatVector.broadcast(S, buf[p + 6 * tp]).fma(b0, a6);
            a7 = FloatVector.broadcast(S, buf[p + 7 * tp]).fma(b0, a7);
        }
        a0.mul(buf[invOff]).intoArray(o, oOff, m0);
        if (rows > 1) a1.mul(buf[invOff + 1]).intoArray(o, oOff + ldo, m0);
        if (rows > 2) a2.mul(buf[invOff + 2]).intoArray(o, oOff + 2 * ldo, m0);
        if (rows > 3) a3.mul(buf[invOff + 3]).intoArray(o, oOff + 3 * ldo, m0);
        if (rows > 4) a4.mul(buf[invOff + 4]).intoArray(o, oOff + 4 * ldo, m0);
        if (rows > 5) a5.mul(buf[invOff + 5]).intoArray(o, oOff + 5 * ldo, m0);
        if (rows > 6) a6.mul(buf[invOff + 6]).intoArray(o, oOff + 6 * ldo, m0);
        if (rows > 7) a7.mul(buf[invOff + 7]).intoArray(o, oOff + 7 * ldo, m0);
    }

    // ---------------------------------------------------------------- self-attention, blocked fast path

    /**
     * The fast path: for each (b, h) and block of up to QB query rows, the scores block
     * (rows, n) = q_blk k^T and out_blk = P v come from Sgemm on strided views of qkv; with the
     * causal mask only the first n = i1 keys are computed. A task holds one (QB, T) block.
     */
    private static void forwardBlocked(ComputePool pool, Tensor out, Tensor lse, Tensor qkv, int heads, boolean causal) {
        int b = qkv.dim(0), t = qkv.dim(1), c3 = qkv.dim(2), c = c3 / 3, hd = c / heads;
        float scale = (float) (1.0 / Math.sqrt(hd));
        float[] x = qkv.f32(), o = out.f32();
        float[] ls = lse == null ? null : lse.f32();
        int xo = qkv.offset(), oo = out.offset(), lo = lse == null ? 0 : lse.offset();
        int blocks = (t + QB - 1) / QB;
        Parallel.range(pool, b * heads * blocks, 1, (from, to) -> {
            float[] p = new float[Math.min(QB, t) * t];
            for (int task = from; task < to; task++) {
                int bh = task / blocks, bi = bh / heads, h = bh % heads, i0 = (task % blocks) * QB;
                int rows = Math.min(QB, t - i0), n = causal ? i0 + rows : t;
                int base = xo + bi * t * c3 + h * hd;
                probabilities(x, base, c3, c, i0, rows, n, hd, scale, causal, p, ls, lo + bh * t, null);
                Sgemm.sgemm(false, false, rows, hd, n, 1f, p, 0, n, x, base + 2 * c, c3, 0f,
                        o, oo + (bi * t + i0) * c + h * hd, c, null);
            }
        });
    }

    /**
     * p (rows, n) = softmax rows of scale q_i . k_j for query rows i0 .. i0 + rows, keys j < n
     * (causal: j <= i, the rest 0). With lseIn == null the row statistics are computed and stored
     * in lseOut (may be null); otherwise p = exp(s - lseIn[i]) reuses the forward's.
     */
    private static void probabilities(float[] x, int base, int c3, int c, int i0, int rows, int n, int hd, float scale,
                                      boolean causal, float[] p, float[] lseOut, int lseOff, float[] lseIn) {
        Sgemm.sgemm(false, true, rows, n, hd, scale, x, base + i0 * c3, c3, x, base + c, c3, 0f, p, 0, n, null);
        for (int r = 0; r < rows; r++) {
            int i = i0 + r, row = r * n, valid = causal ? i + 1 : n;
            if (lseIn != null) {
                Vec.expShiftSum(p, row, lseIn[lseOff + i], valid);
            } else {
                float max = Vec.max(p, row, valid);
                float sum = Vec.expShiftSum(p, row, max, valid);
                Vec.scale(p, row, 1f / sum, valid);
                if (lseOut != null) lseOut[lseOff + i] = max + (float) Math.log(sum);
            }
            Arrays.fill(p, row + valid, row + n, 0f);
        }
    }

    /** dqkv += the gradient, blocked like the forward; parallel over (b, h) so dk/dv never race. */
    private static void backwardBlocked(ComputePool pool, Tensor dqkv, Tensor dout, Tensor qkv, Tensor out, Tensor lse,
                                int heads, boolean causal) {
        int b = qkv.dim(0), t = qkv.dim(1), c3 = qkv.dim(2), c = c3 / 3, hd = c / heads;
        float scale = (float) (1.0 / Math.sqrt(hd));
        float[] x = qkv.f32(), o = out.f32(), g = dout.f32(), ls = lse.f32(), d = dqkv.f32();
        int xo = qkv.offset(), oo = out.offset(), go = dout.offset(), lo = lse.offset(), dOff = dqkv.offset();
        Parallel.range(pool, b * heads, 1, (from, to) -> {
            float[] p = new float[Math.min(QB, t) * t], ds = new float[Math.min(QB, t) * t];
            for (int bh = from; bh < to; bh++) {
                int bi = bh / heads, h = bh % heads;
                int base = xo + bi * t * c3 + h * hd, dbase = dOff + bi * t * c3 + h * hd;
                for (int i0 = 0; i0 < t; i0 += QB) {
                    int rows = Math.min(QB, t - i0), n = causal ? i0 + rows : t;
                    int gRow = go + (bi * t + i0) * c + h * hd, oRow = oo + (bi * t + i0) * c + h * hd;
                    probabilities(x, base, c3, c, i0, rows, n, hd, scale, causal, p, null, lo + bh * t, ls);
                    // dp (rows, n) = dout_blk v^T; ds = p (dp - dout_i . out_i) scale
                    Sgemm.sgemm(false, true, rows, n, hd, 1f, g, gRow, c, x, base + 2 * c, c3, 0f, ds, 0, n, null);
                    for (int r = 0; r < rows; r++) {
                        float dOut = Vec.dot(g, gRow + r * c, o, oRow + r * c, hd);
                        scaledSoftmaxGrad(p, ds, r * n, n, dOut, scale);
                    }
                    Sgemm.sgemm(false, false, rows, hd, n, 1f, ds, 0, n, x, base + c, c3, 1f, d, dbase + i0 * c3, c3, null);
                    Sgemm.sgemm(true, false, n, hd, rows, 1f, ds, 0, n, x, base + i0 * c3, c3, 1f, d, dbase + c, c3, null);
                    Sgemm.sgemm(true, false, n, hd, rows, 1f, p, 0, n, g, gRow, c, 1f, d, dbase + 2 * c, c3, null);
                }
            }
        });
    }

    /** ds[j] = p[j] (ds[j] - dOut) scale over one row of n. */
    private static void scaledSoftmaxGrad(float[] p, float[] ds, int off, int n, float dOut, float scale) {
        int j = 0, upper = Vec.S.loopBound(n);
        for (; j < upper; j += Vec.L) {
            FloatVector pv = FloatVector.fromArray(Vec.S, p, off + j);
            pv.mul(FloatVector.fromArray(Vec.S, ds, off + j).sub(dOut)).mul(scale).intoArray(ds, off + j);
        }
        for (; j < n; j++) ds[off + j] = p[off + j] * (ds[off + j] - dOut) * scale;
    }
}
