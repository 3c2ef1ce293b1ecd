package org.clipj.runtime.cuda;

import java.util.Arrays;

import org.clipj.runtime.DType;
import org.clipj.runtime.Device;
import org.clipj.runtime.Tensor;

/** The CUDA backend's argument checks, one method per op: IllegalArgumentException naming the op and the shapes. */
final class CudaChecks {
    private CudaChecks() {}

    static void copy(Tensor dst, Tensor src) {
        String op = "copy";
        requireDevice(op, "dst", dst);
        requireDevice(op, "src", src);
        if (dst.dtype() != src.dtype() || dst.numel() != src.numel()) {
            throw new IllegalArgumentException(op + ": dst " + dst.dtype() + " " + dst.shapeString() + " and src "
                    + src.dtype() + " " + src.shapeString() + " differ");
        }
    }

    static void fill(Tensor t) {
        requireDevice("fill", "t", t);
        if (!t.dtype().isFloatingPoint()) throw new IllegalArgumentException("fill: t must be floating point, got " + t.dtype());
    }

    static void cast(Tensor dst, Tensor src) {
        String op = "cast";
        requireDevice(op, "dst", dst);
        requireDevice(op, "src", src);
        if (dst.numel() != src.numel()) {
            throw new IllegalArgumentException(op + ": dst " + dst.shapeString() + " and src " + src.shapeString() + " differ in size");
        }
        if (src.dtype() != dst.dtype() && !(src.dtype().isFloatingPoint() && dst.dtype().isFloatingPoint())) {
            throw new IllegalArgumentException(op + ": cannot cast " + src.dtype() + " to " + dst.dtype());
        }
    }

    static void matmul(Tensor c, Tensor a, boolean transA, Tensor b, boolean transB) {
        String op = "matmul";
        requireF32(op, "c", c);
        requireF32(op, "a", a);
        requireF32(op, "b", b);
        int rank = c.rank();
        if (rank < 2 || rank > 3 || a.rank() != rank || b.rank() != rank) {
            throw new IllegalArgumentException(op + ": a " + a.shapeString() + ", b " + b.shapeString() + ", c "
                    + c.shapeString() + " must all be 2-D or all 3-D");
        }
        int batch = rank == 3 ? c.dim(0) : 1;
        int m = transA ? a.dim(-1) : a.dim(-2);
        int k = transA ? a.dim(-2) : a.dim(-1);
        int kb = transB ? b.dim(-1) : b.dim(-2);
        int n = transB ? b.dim(-2) : b.dim(-1);
        if (k != kb || c.dim(-2) != m || c.dim(-1) != n || (rank == 3 && (a.dim(0) != batch || b.dim(0) != batch))) {
            throw new IllegalArgumentException(op + ": c " + c.shapeString() + " != op(a " + a.shapeString() + (transA ? "^T" : "")
                    + ") @ op(b " + b.shapeString() + (transB ? "^T" : "") + ")");
        }
    }

    static void linearForward(String op, Tensor out, Tensor x, Tensor w, Tensor bias) {
        requireF32(op, "out", out);
        requireF32(op, "x", x);
        requireGemmWeight(op, w);
        if (w.rank() != 2) throw new IllegalArgumentException(op + ": w must be (O, I), got " + w.shapeString());
        int o = w.dim(0), in = w.dim(1);
        if (x.dim(-1) != in || out.dim(-1) != o || x.numel() / in != out.numel() / o) {
            throw new IllegalArgumentException(op + ": x " + x.shapeString() + " @ w " + w.shapeString() + "^T does not fit out " + out.shapeString());
        }
        if (bias != null) requireShape(op, "bias", bias, o);
    }

    static void linearActivationForward(Tensor out, Tensor x, Tensor w, Tensor bias, Object activation) {
        String op = "linearActivationForward";
        if (activation == null) throw new IllegalArgumentException(op + ": activation is null");
        requireDisjoint(op, "out", out, "x", x);
        linearForward(op, out, x, w, bias);
    }

    static void linearResidualForward(Tensor out, Tensor x, Tensor w, Tensor bias, Tensor residual) {
        String op = "linearResidualForward";
        requireSameShape(op, "residual", residual, "out", out);
        requireDisjoint(op, "out", out, "x", x);
        requireDisjoint(op, "out", out, "residual", residual);
        linearForward(op, out, x, w, bias);
    }

    static void linearBackward(Tensor dx, Tensor dw, Tensor dbias, Tensor dout, Tensor x, Tensor w) {
        String op = "linearBackward";
        requireF32(op, "dout", dout);
        requireF32(op, "x", x);
        requireF32(op, "w", w);
        if (w.rank() != 2) throw new IllegalArgumentException(op + ": w must be (O, I), got " + w.shapeString());
        int o = w.dim(0), in = w.dim(1);
        if (x.dim(-1) != in || dout.dim(-1) != o || x.numel() / in != dout.numel() / o) {
            throw new IllegalArgumentException(op + ": dout " + dout.shapeString() + ", x " + x.shapeString() + " and w "
                    + w.shapeString() + " do not fit");
        }
        if (dx != null) requireSameNumel(op, "dx", dx, "x", x);
        if (dw != null) requireShape(op, "dw", dw, o, in);
        if (dbias != null) requireShape(op, "dbias", dbias, o);
    }

    static void add(Tensor out, Tensor a, Tensor b) {
        requireSameShape("add", "out", out, "a", a);
        requireSameShape("add", "b", b, "a", a);
    }

    static void sameNumel(String op, String aName, Tensor a, String bName, Tensor b) {
        requireSameNumel(op, aName, a, bName, b);
    }

    static void f32(String op, String name, Tensor t) {
        requireF32(op, name, t);
    }

    static void broadcastAdd(Tensor out, Tensor x, Tensor b) {
        String op = "broadcastAdd";
        requireSameShape(op, "out", out, "x", x);
        requireF32(op, "b", b);
        int[] xs = x.shape(), bs = b.shape();
        boolean trailing = bs.length <= xs.length;
        for (int i = 0; trailing && i < bs.length; i++) trailing = bs[i] == xs[xs.length - bs.length + i];
        if (!trailing) throw new IllegalArgumentException(op + ": b " + b.shapeString() + " is not the trailing shape of x " + x.shapeString());
    }

    static void broadcastAddBackward(Tensor db, Tensor dout) {
        String op = "broadcastAddBackward";
        requireF32(op, "db", db);
        requireF32(op, "dout", dout);
        long m = db.numel();
        if (m == 0 || dout.numel() % m != 0) {
            throw new IllegalArgumentException(op + ": db " + db.shapeString() + " is not the trailing shape of dout " + dout.shapeString());
        }
    }

    /** out = f(x): the unary forwards. */
    static void unary(String op, Tensor out, Tensor x) {
        requireSameShape(op, "out", out, "x", x);
    }

    /** dx += dout * f'(saved): the unary backwards. */
    static void unaryBackward(String op, Tensor dx, Tensor dout, String savedName, Tensor saved) {
        requireSameShape(op, "dx", dx, savedName, saved);
        requireSameShape(op, "dout", dout, savedName, saved);
    }

    static void biasActivation(String op, Tensor out, Tensor x, Tensor bias) {
        requireSameShape(op, "out", out, "x", x);
        requireShape(op, "bias", bias, x.dim(-1));
    }

    static void channelScaleForward(Tensor out, Tensor x, Tensor gamma) {
        String op = "channelScaleForward";
        requireSameShape(op, "out", out, "x", x);
        requireShape(op, "gamma", gamma, x.dim(-1));
    }

    static void channelScaleBackward(Tensor dx, Tensor dgamma, Tensor dout, Tensor x, Tensor gamma) {
        String op = "channelScaleBackward";
        requireShape(op, "gamma", gamma, x.dim(-1));
        requireSameShape(op, "dout", dout, "x", x);
        if (dx != null) requireSameShape(op, "dx", dx, "x", x);
        if (dgamma != null) requireShape(op, "dgamma", dgamma, gamma.dim(0));
    }

    static void layerNormForward(Tensor out, Tensor mean, Tensor rstd, Tensor x, Tensor w, Tensor b) {
        String op = "layerNormForward";
        requireSameShape(op, "out", out, "x", x);
        int c = x.dim(-1), n = Math.toIntExact(x.numel() / Math.max(c, 1));
        requireShape(op, "w", w, c);
        requireShape(op, "b", b, c);
        if (mean != null) requireShape(op, "mean", mean, n);
        if (rstd != null) requireShape(op, "rstd", rstd, n);
    }

    static void layerNormBackward(Tensor dx, Tensor dw, Tensor db, Tensor dout, Tensor x, Tensor w, Tensor mean, Tensor rstd) {
        String op = "layerNormBackward";
        requireSameShape(op, "dout", dout, "x", x);
        int c = x.dim(-1), n = Math.toIntExact(x.numel() / Math.max(c, 1));
        requireShape(op, "w", w, c);
        requireShape(op, "mean", mean, n);
        requireShape(op, "rstd", rstd, n);
        if (dx != null) requireSameShape(op, "dx", dx, "x", x);
        if (dw != null) requireShape(op, "dw", dw, c);
        if (db != null) requireShape(op, "db", db, c);
    }

    static void batchNormForward(Tensor out, Tensor x, Tensor gamma, Tensor beta, Tensor runningMean, Tensor runningVar,
                                 Tensor saveMean, Tensor saveRstd, boolean train) {
        String op = "batchNormForward";
        requireSameShape(op, "out", out, "x", x);
        if (x.rank() != 4) throw new IllegalArgumentException(op + ": x must be (B, C, H, W), got " + x.shapeString());
        int c = x.dim(1);
        requireShape(op, "gamma", gamma, c);
        requireShape(op, "beta", beta, c);
        requireShape(op, "runningMean", runningMean, c);
        requireShape(op, "runningVar", runningVar, c);
        if (train && saveMean != null) requireShape(op, "saveMean", saveMean, c);
        if (train && saveRstd != null) requireShape(op, "saveRstd", saveRstd, c);
    }

    static void batchNormBackward(Tensor dx, Tensor dgamma, Tensor dbeta, Tensor dout, Tensor x, Tensor gamma, Tensor saveMean,
                                  Tensor saveRstd) {
        String op = "batchNormBackward";
        requireSameShape(op, "dout", dout, "x", x);
        if (x.rank() != 4) throw new IllegalArgumentException(op + ": x must be (B, C, H, W), got " + x.shapeString());
        int c = x.dim(1);
        requireShape(op, "gamma", gamma, c);
        requireShape(op, "saveMean", saveMean, c);
        requireShape(op, "saveRstd", saveRstd, c);
        if (dx != null) requireSameShape(op, "dx", dx, "x", x);
        if (dgamma != null) requireShape(op, "dgamma", dgamma, c);
        if (dbeta != null) requireShape(op, "dbeta", dbeta, c);
    }

    static void l2NormalizeForward(Tensor out, Tensor norms, Tensor x) {
        String op = "l2NormalizeForward";
        requireSameShape(op, "out", out, "x", x);
        if (x.rank() != 2) throw new IllegalArgumentException(op + ": x must be (N, D), got " + x.shapeString());
        if (norms != null) requireShape(op, "norms", norms, x.dim(0));
    }

    static void l2NormalizeBackward(Tensor dx, Tensor dout, Tensor out, Tensor norms) {
        String op = "l2NormalizeBackward";
        requireSameShape(op, "dx", dx, "out", out);
        requireSameShape(op, "dout", dout, "out", out);
        if (out.rank() != 2) throw new IllegalArgumentException(op + ": out must be (N, D), got " + out.shapeString());
        requireShape(op, "norms", norms, out.dim(0));
    }

    static void conv2dForward(Tensor out, Tensor x, Tensor w, Tensor bias, int stride, int padding) {
        String op = "conv2dForward";
        requireF32(op, "out", out);
        requireF32(op, "x", x);
        requireGemmWeight(op, w);
        if (x.rank() != 4 || w.rank() != 4 || out.rank() != 4 || w.dim(2) != w.dim(3) || w.dim(1) != x.dim(1)) {
            throw new IllegalArgumentException(op + ": x " + x.shapeString() + " (B, Ci, H, W) and w " + w.shapeString() + " (Co, Ci, K, K) do not fit");
        }
        int k = w.dim(2);
        if (stride < 1 || padding < 0) throw new IllegalArgumentException(op + ": stride " + stride + ", padding " + padding);
        int ho = (x.dim(2) + 2 * padding - k) / stride + 1, wo = (x.dim(3) + 2 * padding - k) / stride + 1;
        requireShape(op, "out", out, x.dim(0), w.dim(0), ho, wo);
        if (bias != null) requireShape(op, "bias", bias, w.dim(0));
    }

    static void conv2dBackward(Tensor dx, Tensor dw, Tensor dbias, Tensor dout, Tensor x, Tensor w, int stride, int padding) {
        String op = "conv2dBackward";
        requireF32(op, "x", x);
        requireF32(op, "w", w);
        if (x.rank() != 4 || w.rank() != 4 || w.dim(2) != w.dim(3) || w.dim(1) != x.dim(1) || stride < 1 || padding < 0) {
            throw new IllegalArgumentException(op + ": x " + x.shapeString() + " (B, Ci, H, W) and w " + w.shapeString() + " (Co, Ci, K, K) do not fit");
        }
        int k = w.dim(2), co = w.dim(0);
        int ho = (x.dim(2) + 2 * padding - k) / stride + 1, wo = (x.dim(3) + 2 * padding - k) / stride + 1;
        requireShape(op, "dout", dout, x.dim(0), co, ho, wo);
        if (dbias != null) requireShape(op, "dbias", dbias, co);
        if (dw != null) requireSameShape(op, "dw", dw, "w", w);
        if (dx != null) requireSameShape(op, "dx", dx, "x", x);
    }

    static void patchEmbedForward(Tensor out, Tensor x, Tensor w) {
        String op = "patchEmbedForward";
        requireF32(op, "out", out);
        requireF32(op, "x", x);
        requireGemmWeight(op, w);
        if (x.rank() != 4 || w.rank() != 4 || w.dim(2) != w.dim(3) || w.dim(1) != x.dim(1)) {
            throw new IllegalArgumentException(op + ": x " + x.shapeString() + " (B, Ci, H, W) and w " + w.shapeString() + " (C, Ci, p, p) do not fit");
        }
        int p = w.dim(2), gh = x.dim(2) / p, gw = x.dim(3) / p;
        if (gh * p != x.dim(2) || gw * p != x.dim(3)) {
            throw new IllegalArgumentException(op + ": image " + x.shapeString() + " is not a whole number of " + p + "x" + p + " patches");
        }
        requireShape(op, "out", out, x.dim(0), gh * gw, w.dim(0));
    }

    static void patchEmbedBackward(Tensor dx, Tensor dw, Tensor dout, Tensor x, Tensor w) {
        String op = "patchEmbedBackward";
        requireF32(op, "x", x);
        requireF32(op, "w", w);
        if (x.rank() != 4 || w.rank() != 4 || w.dim(2) != w.dim(3) || w.dim(1) != x.dim(1)) {
            throw new IllegalArgumentException(op + ": x " + x.shapeString() + " (B, Ci, H, W) and w " + w.shapeString() + " (C, Ci, p, p) do not fit");
        }
        int p = w.dim(2);
        requireShape(op, "dout", dout, x.dim(0), (x.dim(2) / p) * (x.dim(3) / p), w.dim(0));
        if (dw != null) requireSameShape(op, "dw", dw, "w", w);
        if (dx != null) requireSameShape(op, "dx", dx, "x", x);
    }

    static void avgPool2dForward(Tensor out, Tensor x, int k) {
        String op = "avgPool2dForward";
        requireF32(op, "x", x);
        if (x.rank() != 4 || k < 1) throw new IllegalArgumentException(op + ": x must be (B, C, H, W) and k >= 1, got " + x.shapeString() + ", k " + k);
        int h = x.dim(2), w = x.dim(3);
        if (h % k != 0 || w % k != 0) throw new IllegalArgumentException(op + ": window " + k + " must divide H and W of x " + x.shapeString());
        requireShape(op, "out", out, x.dim(0), x.dim(1), h / k, w / k);
    }

    static void avgPool2dBackward(Tensor dx, Tensor dout, int k) {
        String op = "avgPool2dBackward";
        requireF32(op, "dx", dx);
        if (dx.rank() != 4 || k < 1 || dx.dim(2) % k != 0 || dx.dim(3) % k != 0) {
            throw new IllegalArgumentException(op + ": dx must be (B, C, H, W) with H and W divisible by k " + k + ", got " + dx.shapeString());
        }
        requireShape(op, "dout", dout, dx.dim(0), dx.dim(1), dx.dim(2) / k, dx.dim(3) / k);
    }

    static void transpose(Tensor out, Tensor x) {
        String op = "transpose";
        requireF32(op, "x", x);
        requireF32(op, "out", out);
        if (x.rank() != 3) throw new IllegalArgumentException(op + ": x must be (B, M, N), got " + x.shapeString());
        requireShape(op, "out", out, x.dim(0), x.dim(2), x.dim(1));
    }

    static void attentionForward(Tensor out, Tensor lse, Tensor qkv, int heads) {
        String op = "attentionForward";
        requireDevice(op, "qkv", qkv);
        requireDevice(op, "out", out);
        int hd = AttentionKernels.headDim(op, qkv, heads);
        int b = qkv.dim(0), t = qkv.dim(1), c = heads * hd;
        if (out.dtype() != qkv.dtype() || !Arrays.equals(out.shape(), new int[] {b, t, c})) {
            throw new IllegalArgumentException(op + ": out " + out.dtype() + " " + out.shapeString() + " must be " + qkv.dtype() + " [" + b + ", " + t + ", " + c + "]");
        }
        if (lse != null) requireShape(op, "lse", lse, b, heads, t);
        if (qkv.dtype() != DType.F32 && qkv.dtype() != DType.BF16 && qkv.dtype() != DType.F16) {
            throw new IllegalArgumentException(op + ": qkv must be F32, BF16 or F16, got " + qkv.dtype());
        }
    }

    static void attentionBackward(Tensor dqkv, Tensor dout, Tensor qkv, Tensor out, Tensor lse, int heads) {
        String op = "attentionBackward";
        requireF32(op, "qkv", qkv);
        int hd = AttentionKernels.headDim(op, qkv, heads);
        int b = qkv.dim(0), t = qkv.dim(1), c = heads * hd;
        requireSameShape(op, "dqkv", dqkv, "qkv", qkv);
        requireShape(op, "dout", dout, b, t, c);
        requireShape(op, "out", out, b, t, c);
        requireShape(op, "lse", lse, b, heads, t);
    }

    static void attentionPoolForward(Tensor out, Tensor lse, Tensor q, Tensor k, Tensor v, int heads) {
        String op = "attentionPoolForward";
        requireF32(op, "q", q);
        if (q.rank() != 2 || heads < 1 || q.dim(1) % heads != 0) {
            throw new IllegalArgumentException(op + ": q must be (B, C) with C divisible by " + heads + " heads, got " + q.shapeString());
        }
        int b = q.dim(0), c = q.dim(1);
        requireF32(op, "k", k);
        if (k.rank() != 3) throw new IllegalArgumentException(op + ": k must be (B, L, C), got " + k.shapeString());
        int l = k.dim(1);
        requireShape(op, "k", k, b, l, c);
        requireShape(op, "v", v, b, l, c);
        requireShape(op, "out", out, b, c);
        if (lse != null) requireShape(op, "lse", lse, b, heads);
    }

    static void attentionPoolBackward(Tensor dq, Tensor dk, Tensor dv, Tensor dout, Tensor q, Tensor k, Tensor v, Tensor out,
                                      Tensor lse, int heads) {
        String op = "attentionPoolBackward";
        requireF32(op, "q", q);
        requireF32(op, "k", k);
        if (q.rank() != 2 || k.rank() != 3 || heads < 1 || q.dim(1) % heads != 0) {
            throw new IllegalArgumentException(op + ": q (B, C) and k (B, L, C) with C divisible by " + heads + " heads, got "
                    + q.shapeString() + " and " + k.shapeString());
        }
        int b = q.dim(0), c = q.dim(1), l = k.dim(1);
        requireShape(op, "k", k, b, l, c);
        requireShape(op, "v", v, b, l, c);
        requireShape(op, "out", out, b, c);
        requireShape(op, "dout", dout, b, c);
        requireShape(op, "lse", lse, b, heads);
        if (dq != null) requireShape(op, "dq", dq, b, c);
        if (dk != null) requireShape(op, "dk", dk, b, l, c);
        if (dv != null) requireShape(op, "dv", dv, b, l, c);
    }

    static void embeddingForward(Tensor out, Tensor ids, Tensor table) {
        String op = "embeddingForward";
        requireI32(op, "ids", ids);
        requireF32(op, "table", table);
        if (table.rank() != 2) throw new IllegalArgumentException(op + ": table must be (V, C), got " + table.shapeString());
        int c = table.dim(1);
        requireF32(op, "out", out);
        if (out.numel() != ids.numel() * c || out.dim(-1) != c) {
            throw new IllegalArgumentException(op + ": out " + out.shapeString() + " must be ids " + ids.shapeString() + " x " + c);
        }
    }

    static void embeddingBackward(Tensor dtable, Tensor dout, Tensor ids) {
        String op = "embeddingBackward";
        requireI32(op, "ids", ids);
        requireF32(op, "dtable", dtable);
        requireF32(op, "dout", dout);
        if (dtable.rank() != 2) throw new IllegalArgumentException(op + ": dtable must be (V, C), got " + dtable.shapeString());
        if (dout.numel() != ids.numel() * dtable.dim(1)) {
            throw new IllegalArgumentException(op + ": dout " + dout.shapeString() + " must be ids " + ids.shapeString() + " x " + dtable.dim(1));
        }
    }

    /** gatherRowsForward (x, out) and gatherRowsBackward (dx, dout): rows (B, T, C) and picked (B, C). */
    static void gatherRows(String op, String rowsName, Tensor rows, String pickedName, Tensor picked, Tensor index) {
        requireF32(op, rowsName, rows);
        if (rows.rank() != 3) throw new IllegalArgumentException(op + ": " + rowsName + " must be (B, T, C), got " + rows.shapeString());
        int b = rows.dim(0);
        requireI32(op, "index", index);
        if (index.numel() != b) throw new IllegalArgumentException(op + ": index " + index.shapeString() + " must hold " + b + " rows");
        requireShape(op, pickedName, picked, b, rows.dim(2));
    }

    static void similarityForward(Tensor out, Tensor a, Tensor b) {
        String op = "similarityForward";
        requireDevice(op, "a", a);
        requireDevice(op, "b", b);
        if (a.rank() != 2 || b.rank() != 2 || a.dim(1) != b.dim(1) || a.dtype() != b.dtype()) {
            throw new IllegalArgumentException(op + ": a " + a.dtype() + " " + a.shapeString() + " and b " + b.dtype() + " "
                    + b.shapeString() + " must be (N, D) and (M, D) of one dtype");
        }
        requireShape(op, "out", out, a.dim(0), b.dim(0));
    }

    static void contrastiveLoss(Tensor img, Tensor txt, Tensor logitScale, Tensor dImg, Tensor dTxt, Tensor dLogitScale) {
        String op = "contrastiveLoss";
        requireSameShape(op, "txt", txt, "img", img);
        if (img.rank() != 2 || img.dim(0) < 1) throw new IllegalArgumentException(op + ": img must be (N, D) with N >= 1, got " + img.shapeString());
        requireShape(op, "logitScale", logitScale, 1);
        if (dImg != null) requireSameShape(op, "dImg", dImg, "img", img);
        if (dTxt != null) requireSameShape(op, "dTxt", dTxt, "txt", txt);
        if (dLogitScale != null) requireShape(op, "dLogitScale", dLogitScale, 1);
    }

    static void adamwUpdate(Tensor param, Tensor grad, Tensor m, Tensor v, int step) {
        String op = "adamwUpdate";
        requireSameNumel(op, "grad", grad, "param", param);
        requireSameNumel(op, "m", m, "param", param);
        requireSameNumel(op, "v", v, "param", param);
        if (step < 1) throw new IllegalArgumentException(op + ": step is 1-based, got " + step);
    }

    private static void requireGemmWeight(String op, Tensor w) {
        requireDevice(op, "w", w);
        if (w.dtype() != DType.F32 && w.dtype() != DType.BF16 && w.dtype() != DType.F16) {
            throw new IllegalArgumentException(op + ": w must be F32, BF16 or F16, got " + w.dtype());
        }
    }

    private static void requireDisjoint(String op, String aName, Tensor a, String bName, Tensor b) {
        long a0 = a.deviceAddress(), b0 = b.deviceAddress();
        if (a0 < b0 + b.byteSize() && b0 < a0 + a.byteSize()) {
            throw new IllegalArgumentException(op + ": " + aName + " and " + bName + " must not overlap");
        }
    }

    private static void requireDevice(String op, String name, Tensor t) {
        if (t == null) throw new IllegalArgumentException(op + ": " + name + " is null");
        if (t.device() != Device.CUDA) {
            throw new IllegalArgumentException(op + ": " + name + " " + t.shapeString() + " is on " + t.device() + "; upload it to the CUDA backend first");
        }
    }

    private static void requireF32(String op, String name, Tensor t) {
        requireDevice(op, name, t);
        if (t.dtype() != DType.F32) throw new IllegalArgumentException(op + ": " + name + " must be F32, got " + t.dtype() + " " + t.shapeString());
    }

    private static void requireI32(String op, String name, Tensor t) {
        requireDevice(op, name, t);
        if (t.dtype() != DType.I32) throw new IllegalArgumentException(op + ": " + name + " must be I32, got " + t.dtype() + " " + t.shapeString());
    }

    private static void requireShape(String op, String name, Tensor t, int... expected) {
        requireF32(op, name, t);
        if (!Arrays.equals(t.shape(), expected)) {
            throw new IllegalArgumentException(op + ": " + name + " has shape " + t.shapeString() + ", expected " + Arrays.toString(expected));
        }
    }

    private static void requireSameShape(String op, String aName, Tensor a, String bName, Tensor b) {
        requireF32(op, aName, a);
        requireF32(op, bName, b);
        if (!a.sameShape(b)) {
            throw new IllegalArgumentException(op + ": " + aName + " " + a.shapeString() + " and " + bName + " " + b.shapeString() + " must have the same shape");
        }
    }

    private static void requireSameNumel(String op, String aName, Tensor a, String bName, Tensor b) {
        requireF32(op, aName, a);
        requireF32(op, bName, b);
        if (a.numel() != b.numel()) {
            throw new IllegalArgumentException(op + ": " + aName + " " + a.shapeString() + " and " + bName + " " + b.shapeString() + " differ in size");
        }
    }
}
