package org.clipj.runtime.cpu;

import java.util.Arrays;

import jdk.incubator.vector.FloatVector;

import org.clipj.runtime.Tensor;

/**
 * The attention family (attention.cu): fused multi-head attention on packed qkv (B, T, 3C), causal or
 * full, forward and backward, and the one-query-row kernels that attention pooling shares. Arguments
 * are checked by {@link org.clipj.runtime.OpChecks}. The scalar reference works one query row at a time (T floats of scores); the fast
 * path works on blocks of QB query rows with Sgemm, so a task holds at most a (QB, T) block,
 * never a head's whole (T, T) matrix. Backward recomputes the probabilities from the forward's
 * log-sum-exp.
 */
final class AttentionOps {
    private static final int QB = 64; // query rows per block on the fast path

    private AttentionOps() {}

    static void attentionForward(OpContext cx, Tensor out, Tensor lse, Tensor qkv, int heads, boolean causal) {
        if (cx.vector()) forwardBlocked(cx.pool(), out, lse, qkv, heads, causal);
        else forwardScalar(out, lse, qkv, heads, causal);
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
