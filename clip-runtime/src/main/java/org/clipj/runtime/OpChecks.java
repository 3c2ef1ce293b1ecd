package org.clipj.runtime;

import java.util.Arrays;
import java.util.List;

/**
 * The argument rules of every {@link Backend} op, written once: each backend calls the method named
 * like the op, with the device its tensors must be on followed by the op's own parameters, as the
 * first line of that op. A violation is an {@link IllegalArgumentException} naming the op, the
 * tensor and the shapes, with the same message on every backend (BackendContractTest holds them to it).
 *
 * <p>What is checked: null, device and dtype of each tensor; the exact shapes {@link Backend}
 * documents (nothing silently broadcasts); scalar arguments (stride, heads, step); the aliasing
 * Backend forbids. Not checked here: data (token ids in range, read on the device that holds them) and
 * a backend's own limits (the CUDA attention kernels' widest head). 16-bit GEMM weights and
 * attention inputs are a CUDA capability, except BF16 linear and patch embedding weights, which the CPU multiplies too:
 * on the CPU the others are rejected here, saying so.
 */
public final class OpChecks {
    private OpChecks() {}

    // ---------------------------------------------------------------- memory

    public static void copy(Device device, Tensor dst, Tensor src) {
        String op = "copy";
        on(device, op, "dst", dst);
        on(device, op, "src", src);
        if (dst.dtype() != src.dtype() || dst.numel() != src.numel()) {
            throw new IllegalArgumentException(op + ": dst " + dst.dtype() + " " + dst.shapeString() + " and src " + src.dtype()
                    + " " + src.shapeString() + " must have the same dtype and number of elements");
        }
    }

    public static void fill(Device device, Tensor t, float value) {
        floating(device, "fill", "t", t);
    }

    public static void cast(Device device, Tensor dst, Tensor src) {
        String op = "cast";
        floating(device, op, "dst", dst);
        floating(device, op, "src", src);
        if (dst.numel() != src.numel()) {
            throw new IllegalArgumentException(op + ": dst " + dst.dtype() + " " + dst.shapeString() + " and src " + src.dtype()
                    + " " + src.shapeString() + " must have the same number of elements");
        }
    }

    // ---------------------------------------------------------------- GEMM

    public static void matmul(Device device, Tensor c, Tensor a, boolean transA, Tensor b, boolean transB, float alpha,
                              float beta) {
        String op = "matmul";
        f32(device, op, "c", c);
        f32(device, op, "a", a);
        f32(device, op, "b", b);
        int r = c.rank();
        boolean ok = (r == 2 || r == 3) && a.rank() == r && b.rank() == r && (r == 2 || (a.dim(0) == c.dim(0) && b.dim(0) == c.dim(0)));
        if (ok) {
            int m = c.dim(-2), n = c.dim(-1);
            int am = transA ? a.dim(-1) : a.dim(-2), k = transA ? a.dim(-2) : a.dim(-1);
            int bk = transB ? b.dim(-1) : b.dim(-2), bn = transB ? b.dim(-2) : b.dim(-1);
            ok = am == m && bk == k && bn == n;
        }
        if (!ok) {
            throw new IllegalArgumentException(op + ": c " + c.shapeString() + " != op(a " + a.shapeString() + (transA ? "^T" : "")
                    + ") @ op(b " + b.shapeString() + (transB ? "^T" : "") + ")");
        }
    }

    public static void linearForward(Device device, Tensor out, Tensor x, Tensor w, Tensor bias) {
        linear(device, "linearForward", out, x, w, bias);
    }

    public static void linearActivationForward(Device device, Tensor out, Tensor x, Tensor w, Tensor bias, Activation activation) {
        String op = "linearActivationForward";
        linear(device, op, out, x, w, bias);
        argument(op, activation != null, "activation is null");
        disjoint(op, "out", out, "x", x);
    }

    public static void linearResidualForward(Device device, Tensor out, Tensor x, Tensor w, Tensor bias, Tensor residual) {
        String op = "linearResidualForward";
        linear(device, op, out, x, w, bias);
        on(device, op, "residual", residual);
        if (residual.dtype() != out.dtype() || !residual.sameShape(out)) {
            throw new IllegalArgumentException(op + ": residual " + residual.dtype() + " " + residual.shapeString() + " must have out's dtype and shape, "
                    + out.dtype() + " " + out.shapeString());
        }
        disjoint(op, "out", out, "x", x);
        disjoint(op, "out", out, "residual", residual);
    }

    /**
     * out = x @ w^T (+ bias): shapes and dtypes, as every linear forward needs them. x and out are F32; on CUDA
     * with a 16-bit w either may also be w's dtype (the 16-bit activations of BF16/F16 inference); bias has out's dtype.
     */
    private static void linear(Device device, String op, Tensor out, Tensor x, Tensor w, Tensor bias) {
        linearWeight(device, op, w);
        rank(op, "w", w, 2);
        linearActivation(device, op, "x", x, w);
        argument(op, x.rank() >= 1 && x.dim(-1) == w.dim(1), "x " + x.shapeString() + " does not end in w's input size, w " + w.shapeString());
        linearActivation(device, op, "out", out, w);
        int[] expected = lastReplaced(x, w.dim(0));
        if (!Arrays.equals(out.shape(), expected)) {
            throw new IllegalArgumentException(op + ": out has shape " + out.shapeString() + " but x @ w^T for w " + w.shapeString()
                    + " needs " + Arrays.toString(expected));
        }
        if (bias != null) {
            on(device, op, "bias", bias);
            if (bias.dtype() != out.dtype() || !Arrays.equals(bias.shape(), new int[]{w.dim(0)})) {
                throw new IllegalArgumentException(op + ": bias " + bias.dtype() + " " + bias.shapeString() + " must be "
                        + out.dtype() + " (out's dtype) [" + w.dim(0) + "] for w " + w.shapeString());
            }
        }
    }

    /** A linear layer's input or output: F32, or on CUDA the dtype of a 16-bit w. */
    private static void linearActivation(Device device, String op, String name, Tensor t, Tensor w) {
        on(device, op, name, t);
        boolean sixteenBit = device == Device.CUDA && w.dtype() != DType.F32 && t.dtype() == w.dtype();
        if (t.dtype() != DType.F32 && !sixteenBit) {
            throw new IllegalArgumentException(op + ": " + name + " must be F32 (or w's BF16/F16 dtype on CUDA), got " + t.dtype() + " "
                    + t.shapeString() + " with w " + w.dtype());
        }
    }

    /** A backend without device memory of its own (the CPU's) takes and gives back tensors already on it. */
    public static Tensor onHost(String op, String name, Tensor t) {
        if (t != null && t.device() == Device.CPU) return t;
        throw new IllegalArgumentException(op + ": " + name + (t == null ? " is null"
                : " " + t.shapeString() + " is on " + t.device() + ", the CPU backend needs CPU tensors"));
    }

    public static void prepareWeight(Device device, Tensor w) {
        String op = "prepareWeight";
        on(device, op, "w", w);
        linearWeight(device, op, w);
        argument(op, w.rank() == 2 || w.rank() == 4, "w " + w.shapeString() + " is neither (O, I) nor (O, Ci, p, p)");
    }

    public static void linearBackward(Device device, Tensor dx, Tensor dw, Tensor dbias, Tensor dout, Tensor x, Tensor w) {
        String op = "linearBackward";
        gemmWeight(device, op, w);
        rank(op, "w", w, 2);
        f32(device, op, "x", x);
        argument(op, x.rank() >= 1 && x.dim(-1) == w.dim(1), "x " + x.shapeString() + " does not end in w's input size, w " + w.shapeString());
        shape(device, op, "dout", dout, "x @ w^T for w", w, lastReplaced(x, w.dim(0)));
        if (dx != null) sameShape(device, op, "dx", dx, "x", x);
        if (dw != null) shape(device, op, "dw", dw, "w", w, w.shape());
        if (dbias != null) shape(device, op, "dbias", dbias, "w", w, w.dim(0));
    }

    // ---------------------------------------------------------------- elementwise

    public static void add(Device device, Tensor out, Tensor a, Tensor b) {
        sameShape(device, "add", "a", a, "b", b);
        sameShape(device, "add", "out", out, "a", a);
    }

    public static void addScaled(Device device, Tensor dst, Tensor src, float alpha) {
        sameNumel(device, "addScaled", "dst", dst, "src", src);
    }

    public static void scale(Device device, Tensor t, float s) {
        f32(device, "scale", "t", t);
    }

    public static void broadcastAdd(Device device, Tensor out, Tensor x, Tensor b) {
        sameShape(device, "broadcastAdd", "out", out, "x", x);
        trailing(device, "broadcastAdd", "b", b, "x", x);
    }

    public static void broadcastAddBackward(Device device, Tensor db, Tensor dout) {
        f32(device, "broadcastAddBackward", "dout", dout);
        trailing(device, "broadcastAddBackward", "db", db, "dout", dout);
    }

    public static void quickGeluForward(Device device, Tensor out, Tensor x) {
        sameShape(device, "quickGeluForward", "out", out, "x", x);
    }

    public static void quickGeluBackward(Device device, Tensor dx, Tensor dout, Tensor x) {
        sameShape(device, "quickGeluBackward", "dx", dx, "x", x);
        sameShape(device, "quickGeluBackward", "dout", dout, "x", x);
    }

    public static void geluForward(Device device, Tensor out, Tensor x) {
        sameShape(device, "geluForward", "out", out, "x", x);
    }

    public static void geluBackward(Device device, Tensor dx, Tensor dout, Tensor x) {
        sameShape(device, "geluBackward", "dx", dx, "x", x);
        sameShape(device, "geluBackward", "dout", dout, "x", x);
    }

    public static void channelScaleForward(Device device, Tensor out, Tensor x, Tensor gamma) {
        String op = "channelScaleForward";
        sameShape(device, op, "out", out, "x", x);
        channelVector(device, op, x, gamma);
    }

    public static void channelScaleBackward(Device device, Tensor dx, Tensor dgamma, Tensor dout, Tensor x, Tensor gamma) {
        String op = "channelScaleBackward";
        sameShape(device, op, "dout", dout, "x", x);
        channelVector(device, op, x, gamma);
        if (dx != null) sameShape(device, op, "dx", dx, "x", x);
        if (dgamma != null) sameShape(device, op, "dgamma", dgamma, "gamma", gamma);
    }

    /** gamma (C) for x (..., C). */
    private static void channelVector(Device device, String op, Tensor x, Tensor gamma) {
        atLeastRank1(op, "x", x);
        shape(device, op, "gamma", gamma, "x", x, x.dim(-1));
    }

    public static void reluForward(Device device, Tensor out, Tensor x) {
        sameShape(device, "reluForward", "out", out, "x", x);
    }

    public static void reluBackward(Device device, Tensor dx, Tensor dout, Tensor out) {
        sameShape(device, "reluBackward", "dx", dx, "out", out);
        sameShape(device, "reluBackward", "dout", dout, "out", out);
    }

    public static void softmaxForward(Device device, Tensor out, Tensor x) {
        sameShape(device, "softmaxForward", "out", out, "x", x);
        atLeastRank1("softmaxForward", "x", x);
    }

    // ---------------------------------------------------------------- normalization

    public static void layerNormForward(Device device, Tensor out, Tensor mean, Tensor rstd, Tensor x, Tensor w, Tensor b, float eps) {
        String op = "layerNormForward";
        on(device, op, "x", x);
        on(device, op, "out", out);
        boolean sixteenBitOnCuda = device == Device.CUDA && (out.dtype() == DType.BF16 || out.dtype() == DType.F16)
                && (x.dtype() == DType.F32 || x.dtype() == out.dtype());
        if (!(x.dtype() == DType.F32 && out.dtype() == DType.F32) && !sixteenBitOnCuda) {
            throw new IllegalArgumentException(op + ": x " + x.dtype() + " and out " + out.dtype() + " must both be F32 (or on CUDA"
                    + " out BF16/F16 with x F32 or out's dtype)");
        }
        argument(op, out.sameShape(x), "out " + out.shapeString() + " and x " + x.shapeString() + " must have the same shape");
        atLeastRank1(op, "x", x);
        int c = x.dim(-1), rows = rows(x);
        shape(device, op, "w", w, "x", x, c);
        shape(device, op, "b", b, "x", x, c);
        if (mean != null) shape(device, op, "mean", mean, "x (N, C)", x, rows);
        if (rstd != null) shape(device, op, "rstd", rstd, "x (N, C)", x, rows);
    }

    public static void layerNormBackward(Device device, Tensor dx, Tensor dw, Tensor db, Tensor dout, Tensor x, Tensor w,
                                         Tensor mean, Tensor rstd) {
        String op = "layerNormBackward";
        sameShape(device, op, "dout", dout, "x", x);
        atLeastRank1(op, "x", x);
        int c = x.dim(-1), rows = rows(x);
        shape(device, op, "w", w, "x", x, c);
        shape(device, op, "mean", mean, "x (N, C)", x, rows);
        shape(device, op, "rstd", rstd, "x (N, C)", x, rows);
        if (dx != null) sameShape(device, op, "dx", dx, "x", x);
        if (dw != null) shape(device, op, "dw", dw, "x", x, c);
        if (db != null) shape(device, op, "db", db, "x", x, c);
    }

    public static void batchNormForward(Device device, Tensor out, Tensor x, Tensor gamma, Tensor beta, Tensor runningMean,
                                        Tensor runningVar, Tensor saveMean, Tensor saveRstd, boolean train, float momentum, float eps) {
        String op = "batchNormForward";
        f32(device, op, "x", x);
        rank(op, "x", x, 4);
        sameShape(device, op, "out", out, "x", x);
        int c = x.dim(1);
        shape(device, op, "gamma", gamma, "x (B, C, H, W)", x, c);
        shape(device, op, "beta", beta, "x (B, C, H, W)", x, c);
        shape(device, op, "runningMean", runningMean, "x (B, C, H, W)", x, c);
        shape(device, op, "runningVar", runningVar, "x (B, C, H, W)", x, c);
        if (saveMean != null) shape(device, op, "saveMean", saveMean, "x (B, C, H, W)", x, c);
        if (saveRstd != null) shape(device, op, "saveRstd", saveRstd, "x (B, C, H, W)", x, c);
    }

    public static void batchNormBackward(Device device, Tensor dx, Tensor dgamma, Tensor dbeta, Tensor dout, Tensor x, Tensor gamma,
                                         Tensor saveMean, Tensor saveRstd) {
        String op = "batchNormBackward";
        f32(device, op, "x", x);
        rank(op, "x", x, 4);
        sameShape(device, op, "dout", dout, "x", x);
        int c = x.dim(1);
        shape(device, op, "gamma", gamma, "x (B, C, H, W)", x, c);
        shape(device, op, "saveMean", saveMean, "x (B, C, H, W)", x, c);
        shape(device, op, "saveRstd", saveRstd, "x (B, C, H, W)", x, c);
        if (dx != null) sameShape(device, op, "dx", dx, "x", x);
        if (dgamma != null) shape(device, op, "dgamma", dgamma, "x (B, C, H, W)", x, c);
        if (dbeta != null) shape(device, op, "dbeta", dbeta, "x (B, C, H, W)", x, c);
    }

    public static void l2NormalizeForward(Device device, Tensor out, Tensor norms, Tensor x) {
        String op = "l2NormalizeForward";
        f32(device, op, "x", x);
        rank(op, "x", x, 2);
        sameShape(device, op, "out", out, "x", x);
        if (norms != null) shape(device, op, "norms", norms, "x (N, D)", x, x.dim(0));
    }

    public static void l2NormalizeBackward(Device device, Tensor dx, Tensor dout, Tensor out, Tensor norms) {
        String op = "l2NormalizeBackward";
        f32(device, op, "out", out);
        rank(op, "out", out, 2);
        sameShape(device, op, "dx", dx, "out", out);
        sameShape(device, op, "dout", dout, "out", out);
        shape(device, op, "norms", norms, "out (N, D)", out, out.dim(0));
    }

    // ---------------------------------------------------------------- convolution and pooling

    public static void conv2dForward(Device device, Tensor out, Tensor x, Tensor w, Tensor bias, int stride, int padding) {
        String op = "conv2dForward";
        gemmWeight(device, op, w);
        conv(device, op, x, w, bias, out, "out", stride, padding);
    }

    public static void conv2dBackward(Device device, Tensor dx, Tensor dw, Tensor dbias, Tensor dout, Tensor x, Tensor w,
                                      int stride, int padding) {
        String op = "conv2dBackward";
        f32(device, op, "w", w);
        conv(device, op, x, w, dbias, dout, "dout", stride, padding);
        if (dx != null) sameShape(device, op, "dx", dx, "x", x);
        if (dw != null) sameShape(device, op, "dw", dw, "w", w);
    }

    /** x (B, Ci, H, W), w (Co, Ci, K, K) of a checked dtype, the (B, Co, Ho, Wo) result and bias (Co). */
    private static void conv(Device device, String op, Tensor x, Tensor w, Tensor bias, Tensor out, String outName, int stride,
                             int padding) {
        f32(device, op, "x", x);
        rank(op, "x", x, 4);
        rank(op, "w", w, 4);
        argument(op, stride >= 1 && padding >= 0, "stride " + stride + " and padding " + padding + " must be >= 1 and >= 0");
        argument(op, w.dim(1) == x.dim(1) && w.dim(2) == w.dim(3),
                "w " + w.shapeString() + " must be (Co, Ci, K, K) with Ci of x " + x.shapeString());
        int k = w.dim(2);
        argument(op, x.dim(2) + 2 * padding >= k && x.dim(3) + 2 * padding >= k,
                "kernel " + k + " larger than padded input x " + x.shapeString());
        int ho = convOutSize(x.dim(2), k, stride, padding), wo = convOutSize(x.dim(3), k, stride, padding);
        shape(device, op, outName, out, "conv of x " + x.shapeString() + " with w", w, x.dim(0), w.dim(0), ho, wo);
        if (bias != null) shape(device, op, "bias", bias, "w", w, w.dim(0));
    }

    /** Output size of a convolution along one axis: (in + 2 padding - k) / stride + 1. */
    private static int convOutSize(int in, int k, int stride, int padding) {
        return (in + 2 * padding - k) / stride + 1;
    }

    public static void patchEmbedForward(Device device, Tensor out, Tensor x, Tensor w) {
        String op = "patchEmbedForward";
        linearWeight(device, op, w);
        patches(device, op, x, w, out, "out");
    }

    public static void patchEmbedBackward(Device device, Tensor dx, Tensor dw, Tensor dout, Tensor x, Tensor w) {
        String op = "patchEmbedBackward";
        f32(device, op, "w", w);
        patches(device, op, x, w, dout, "dout");
        if (dx != null) sameShape(device, op, "dx", dx, "x", x);
        if (dw != null) sameShape(device, op, "dw", dw, "w", w);
    }

    /** x (B, Ci, H, W), w (C, Ci, p, p) of a checked dtype with p dividing H and W, and the (B, P, C) result. */
    private static void patches(Device device, String op, Tensor x, Tensor w, Tensor out, String outName) {
        f32(device, op, "x", x);
        rank(op, "x", x, 4);
        rank(op, "w", w, 4);
        int p = w.dim(2);
        argument(op, w.dim(1) == x.dim(1) && w.dim(3) == p && p >= 1 && x.dim(2) % p == 0 && x.dim(3) % p == 0,
                "w " + w.shapeString() + " must be (C, Ci, p, p) with Ci of x " + x.shapeString() + " and p dividing H and W");
        shape(device, op, outName, out, "patches of x " + x.shapeString() + " with w", w,
                x.dim(0), (x.dim(2) / p) * (x.dim(3) / p), w.dim(0));
    }

    public static void avgPool2dForward(Device device, Tensor out, Tensor x, int k) {
        pool(device, "avgPool2dForward", x, "x", out, "out", k);
    }

    public static void avgPool2dBackward(Device device, Tensor dx, Tensor dout, int k) {
        pool(device, "avgPool2dBackward", dx, "dx", dout, "dout", k);
    }

    /** x (B, C, H, W) with k dividing H and W, and the (B, C, H/k, W/k) pooled tensor. */
    private static void pool(Device device, String op, Tensor x, String xName, Tensor out, String outName, int k) {
        f32(device, op, xName, x);
        rank(op, xName, x, 4);
        argument(op, k >= 1 && x.dim(2) % k == 0 && x.dim(3) % k == 0,
                "window " + k + " must divide H and W of " + xName + " " + x.shapeString());
        shape(device, op, outName, out, xName, x, x.dim(0), x.dim(1), x.dim(2) / k, x.dim(3) / k);
    }

    public static void transpose(Device device, Tensor out, Tensor x, boolean accumulate) {
        String op = "transpose";
        f32(device, op, "x", x);
        argument(op, x.rank() == 3, "x must be (B, M, N), got " + x.shapeString());
        shape(device, op, "out", out, "x", x, x.dim(0), x.dim(2), x.dim(1));
    }

    // ---------------------------------------------------------------- attention

    public static void attentionForward(Device device, Tensor out, Tensor lse, Tensor qkv, int heads, boolean causal) {
        String op = "attentionForward";
        on(device, op, "qkv", qkv);
        boolean sixteenBit = qkv.dtype() == DType.BF16 || qkv.dtype() == DType.F16;
        if (qkv.dtype() != DType.F32 && !(sixteenBit && device == Device.CUDA)) {
            throw new IllegalArgumentException(op + ": qkv must be F32 (or BF16, F16 on CUDA), got " + qkv.dtype() + " " + qkv.shapeString());
        }
        int c = attentionWidth(device, op, qkv, lse, heads);
        on(device, op, "out", out);
        int[] expected = {qkv.dim(0), qkv.dim(1), c};
        if (out.dtype() != qkv.dtype() || !Arrays.equals(out.shape(), expected)) {
            throw new IllegalArgumentException(op + ": out " + out.dtype() + " " + out.shapeString() + " but qkv " + qkv.dtype()
                    + " " + qkv.shapeString() + " needs " + qkv.dtype() + " " + Arrays.toString(expected));
        }
    }

    public static void attentionBackward(Device device, Tensor dqkv, Tensor dout, Tensor qkv, Tensor out, Tensor lse, int heads,
                                         boolean causal) {
        String op = "attentionBackward";
        on(device, op, "qkv", qkv);
        DType dtype = qkv.dtype();
        if (dtype != DType.F32 && !(dtype == DType.BF16 && device == Device.CUDA)) {
            throw new IllegalArgumentException(op + ": qkv must be F32 (or BF16 on CUDA; the CPU backward is F32 only), got " + dtype
                    + " " + qkv.shapeString());
        }
        int c = attentionWidth(device, op, qkv, lse, heads);
        argument(op, lse != null, "lse from the forward is required");
        attentionOperand(device, op, "dqkv", dqkv, dtype, "qkv " + qkv.shapeString(), qkv.shape());
        int[] rows = {qkv.dim(0), qkv.dim(1), c};
        attentionOperand(device, op, "out", out, dtype, "qkv (B, T, 3C) " + qkv.shapeString(), rows);
        attentionOperand(device, op, "dout", dout, dtype, "qkv (B, T, 3C) " + qkv.shapeString(), rows);
    }

    /** A tensor of the attention backward: qkv's dtype (F32, or BF16 on CUDA) and the expected shape. */
    private static void attentionOperand(Device device, String op, String name, Tensor t, DType dtype, String ref, int[] expected) {
        on(device, op, name, t);
        if (t.dtype() != dtype || !Arrays.equals(t.shape(), expected)) {
            throw new IllegalArgumentException(op + ": " + name + " " + t.dtype() + " " + t.shapeString() + " but " + ref + " needs "
                    + dtype + " " + Arrays.toString(expected));
        }
    }

    /** C = heads * headDim of qkv (B, T, 3C) (dtype already checked), with lse (B, heads, T) when given. */
    private static int attentionWidth(Device device, String op, Tensor qkv, Tensor lse, int heads) {
        rank(op, "qkv", qkv, 3);
        argument(op, heads >= 1 && qkv.dim(2) % (3 * heads) == 0,
                "qkv " + qkv.shapeString() + " last dim must be 3 * heads * headDim with heads = " + heads);
        if (lse != null) shape(device, op, "lse", lse, "qkv (B, T, 3C)", qkv, qkv.dim(0), heads, qkv.dim(1));
        return qkv.dim(2) / 3;
    }

    public static void attentionPoolForward(Device device, Tensor out, Tensor lse, Tensor q, Tensor k, Tensor v, int heads) {
        String op = "attentionPoolForward";
        on(device, op, "k", k);
        if (k.dtype() == DType.BF16 && device == Device.CUDA) { // BF16 inference on CUDA: q, k, v, out BF16, lse F32
            rank(op, "k", k, 3);
            argument(op, heads >= 1 && k.dim(2) % heads == 0, "k " + k.shapeString() + " channels not divisible by heads = " + heads);
            attentionOperand(device, op, "v", v, DType.BF16, "k " + k.shapeString(), k.shape());
            int[] query = {k.dim(0), k.dim(2)};
            attentionOperand(device, op, "q", q, DType.BF16, "k (B, L, C) " + k.shapeString(), query);
            attentionOperand(device, op, "out", out, DType.BF16, "k (B, L, C) " + k.shapeString(), query);
            if (lse != null) shape(device, op, "lse", lse, "k (B, L, C)", k, k.dim(0), heads);
            return;
        }
        if (k.dtype() != DType.F32) {
            throw new IllegalArgumentException(op + ": k must be F32 (or BF16 on CUDA), got " + k.dtype() + " " + k.shapeString());
        }
        poolAttention(device, op, q, k, v, lse, heads);
        sameShape(device, op, "out", out, "q", q);
    }

    public static void attentionPoolBackward(Device device, Tensor dq, Tensor dk, Tensor dv, Tensor dout, Tensor q, Tensor k,
                                             Tensor v, Tensor out, Tensor lse, int heads) {
        String op = "attentionPoolBackward";
        poolAttention(device, op, q, k, v, lse, heads);
        argument(op, lse != null, "lse from the forward is required");
        sameShape(device, op, "out", out, "q", q);
        sameShape(device, op, "dout", dout, "q", q);
        if (dq != null) sameShape(device, op, "dq", dq, "q", q);
        if (dk != null) sameShape(device, op, "dk", dk, "k", k);
        if (dv != null) sameShape(device, op, "dv", dv, "v", v);
    }

    /** k and v (B, L, C) with heads dividing C, q (B, C), lse (B, heads) when given. */
    private static void poolAttention(Device device, String op, Tensor q, Tensor k, Tensor v, Tensor lse, int heads) {
        f32(device, op, "k", k);
        rank(op, "k", k, 3);
        sameShape(device, op, "v", v, "k", k);
        argument(op, heads >= 1 && k.dim(2) % heads == 0, "k " + k.shapeString() + " channels not divisible by heads = " + heads);
        shape(device, op, "q", q, "k (B, L, C)", k, k.dim(0), k.dim(2));
        if (lse != null) shape(device, op, "lse", lse, "k (B, L, C)", k, k.dim(0), heads);
    }

    // ---------------------------------------------------------------- gathers

    public static void embeddingForward(Device device, Tensor out, Tensor ids, Tensor table) {
        embedding(device, "embeddingForward", out, "out", ids, table, "table");
    }

    public static void embeddingBackward(Device device, Tensor dtable, Tensor dout, Tensor ids) {
        embedding(device, "embeddingBackward", dout, "dout", ids, dtable, "dtable");
    }

    /** ids (...) I32, table (V, C), rows (..., C). */
    private static void embedding(Device device, String op, Tensor rows, String rowsName, Tensor ids, Tensor table, String tableName) {
        i32(device, op, "ids", ids);
        f32(device, op, tableName, table);
        rank(op, tableName, table, 2);
        int[] expected = Arrays.copyOf(ids.shape(), ids.rank() + 1);
        expected[ids.rank()] = table.dim(1);
        shape(device, op, rowsName, rows, "ids " + ids.shapeString() + " and " + tableName, table, expected);
    }

    public static void gatherRowsForward(Device device, Tensor out, Tensor x, Tensor index) {
        gather(device, "gatherRowsForward", x, "x", out, "out", index);
    }

    public static void gatherRowsBackward(Device device, Tensor dx, Tensor dout, Tensor index) {
        gather(device, "gatherRowsBackward", dx, "dx", dout, "dout", index);
    }

    /** x (B, T, C), index (B) I32, rows (B, C). */
    private static void gather(Device device, String op, Tensor x, String xName, Tensor rows, String rowsName, Tensor index) {
        f32(device, op, xName, x);
        rank(op, xName, x, 3);
        i32(device, op, "index", index);
        argument(op, index.rank() == 1 && index.dim(0) == x.dim(0),
                "index " + index.shapeString() + " must be (B) for " + xName + " " + x.shapeString());
        shape(device, op, rowsName, rows, xName + " (B, T, C)", x, x.dim(0), x.dim(2));
    }

    // ---------------------------------------------------------------- objective

    public static void contrastiveLoss(Device device, Tensor img, Tensor txt, Tensor logitScale, Tensor dImg, Tensor dTxt,
                                       Tensor dLogitScale, float gradScale) {
        String op = "contrastiveLoss";
        // F32 features, or BF16 on CUDA (mixed-precision training: the logits GEMM on tensor cores); the CPU
        // refuses BF16 rather than widening it silently, as its loss is the F32 reference. Gradients stay F32.
        on(device, op, "img", img);
        on(device, op, "txt", txt);
        argument(op, img.dtype() == DType.F32 || img.dtype() == DType.BF16 && device == Device.CUDA,
                "img must be F32 (or BF16 on CUDA; the CPU loss is F32 only), got " + img.dtype() + " " + img.shapeString());
        argument(op, txt.dtype() == img.dtype(), "txt " + txt.dtype() + " " + txt.shapeString() + " must have img's dtype " + img.dtype());
        rank(op, "img", img, 2);
        argument(op, txt.sameShape(img), "txt " + txt.shapeString() + " and img " + img.shapeString() + " must have the same shape");
        argument(op, img.dim(0) >= 1, "img " + img.shapeString() + " has no rows");
        f32(device, op, "logitScale", logitScale);
        argument(op, logitScale.numel() == 1 && logitScale.rank() == 1, "logitScale must have shape [1], got " + logitScale.shapeString());
        if (dImg != null) {
            f32(device, op, "dImg", dImg);
            argument(op, dImg.sameShape(img), "dImg " + dImg.shapeString() + " and img " + img.shapeString() + " must have the same shape");
        }
        if (dTxt != null) {
            f32(device, op, "dTxt", dTxt);
            argument(op, dTxt.sameShape(txt), "dTxt " + dTxt.shapeString() + " and txt " + txt.shapeString() + " must have the same shape");
        }
        if (dLogitScale != null) shape(device, op, "dLogitScale", dLogitScale, "logitScale", logitScale, 1);
    }

    // ---------------------------------------------------------------- optimizer and reductions

    public static void adamwUpdate(Device device, Tensor param, Tensor grad, Tensor m, Tensor v, float lr, float beta1, float beta2,
                                   float eps, float weightDecay, int step, float gradScale) {
        String op = "adamwUpdate";
        sameNumel(device, op, "grad", grad, "param", param);
        sameNumel(device, op, "m", m, "param", param);
        sameNumel(device, op, "v", v, "param", param);
        argument(op, step >= 1, "step is 1-based, got " + step);
    }

    public static void adamwUpdateCopy(Device device, Tensor param, Tensor copy, Tensor grad, Tensor m, Tensor v, float lr,
                                       float beta1, float beta2, float eps, float weightDecay, int step, float gradScale) {
        String op = "adamwUpdateCopy";
        sameNumel(device, op, "grad", grad, "param", param);
        sameNumel(device, op, "m", m, "param", param);
        sameNumel(device, op, "v", v, "param", param);
        argument(op, step >= 1, "step is 1-based, got " + step);
        on(device, op, "copy", copy);
        argument(op, copy.dtype() == DType.BF16 || copy.dtype() == DType.F16,
                "copy must be BF16 or F16, got " + copy.dtype() + " " + copy.shapeString());
        argument(op, copy.numel() == param.numel(), "copy " + copy.shapeString() + " and param " + param.shapeString()
                + " must have the same number of elements");
    }

    public static void sumOfSquaresAll(Device device, List<Tensor> tensors) {
        argument("sumOfSquaresAll", tensors != null, "tensors is null");
        for (int i = 0; i < tensors.size(); i++) f32(device, "sumOfSquaresAll", "tensors[" + i + "]", tensors.get(i));
    }

    public static void sumOfSquares(Device device, Tensor t) {
        f32(device, "sumOfSquares", "t", t);
    }

    public static void hasNonFinite(Device device, Tensor t) {
        f32(device, "hasNonFinite", "t", t);
    }

    /** x (R, T) I32 with T >= 1, index (R) I32, not aliased. */
    public static void rowArgmax(Device device, Tensor index, Tensor x) {
        String op = "rowArgmax";
        i32(device, op, "x", x);
        rank(op, "x", x, 2);
        argument(op, x.dim(1) >= 1, "x " + x.shapeString() + " has empty rows");
        i32(device, op, "index", index);
        argument(op, index.rank() == 1 && index.dim(0) == x.dim(0), "index " + index.shapeString() + " must be (R) for x " + x.shapeString());
        boolean overlap = index.device() == Device.CPU
                ? index.i32() == x.i32() && index.offset() < x.offset() + x.size() && x.offset() < index.offset() + index.size()
                : index.deviceAddress() < x.deviceAddress() + x.byteSize() && x.deviceAddress() < index.deviceAddress() + index.byteSize();
        argument(op, !overlap, "index and x must not overlap");
    }

    // ---------------------------------------------------------------- rules

    /** All but the last dimension multiplied: the row count of a (..., C) tensor. */
    private static int rows(Tensor t) {
        return t.rank() == 0 ? 1 : Math.toIntExact(t.numel() / Math.max(1, t.dim(-1)));
    }

    /** t is non-null and on the backend's device. */
    private static void on(Device device, String op, String name, Tensor t) {
        if (t == null) throw new IllegalArgumentException(op + ": " + name + " is null");
        if (t.device() != device) {
            throw new IllegalArgumentException(op + ": " + name + " " + t.shapeString() + " is on " + t.device() + ", the "
                    + device + " backend needs " + device + " tensors" + (device == Device.CUDA ? " (upload it first)" : ""));
        }
    }

    private static void f32(Device device, String op, String name, Tensor t) {
        on(device, op, name, t);
        if (t.dtype() != DType.F32) {
            throw new IllegalArgumentException(op + ": " + name + " must be F32, got " + t.dtype() + " " + t.shapeString());
        }
    }

    private static void i32(Device device, String op, String name, Tensor t) {
        on(device, op, name, t);
        if (t.dtype() != DType.I32) {
            throw new IllegalArgumentException(op + ": " + name + " must be I32, got " + t.dtype() + " " + t.shapeString());
        }
    }

    private static void floating(Device device, String op, String name, Tensor t) {
        on(device, op, name, t);
        if (!t.dtype().isFloatingPoint()) {
            throw new IllegalArgumentException(op + ": " + name + " must be floating, got " + t.dtype() + " " + t.shapeString());
        }
    }

    /**
     * A linear layer's or the patch embedding's weight: F32 or BF16 on both backends (the CPU's through
     * its native AVX512_BF16 kernels), F16 on CUDA.
     */
    private static void linearWeight(Device device, String op, Tensor w) {
        on(device, op, "w", w);
        DType d = w.dtype();
        if (d != DType.F32 && d != DType.BF16 && !(d == DType.F16 && device == Device.CUDA)) {
            throw new IllegalArgumentException(op + ": w must be F32 or BF16 (or F16 on CUDA), got " + d + " " + w.shapeString());
        }
    }

    /** A GEMM weight: F32, or BF16/F16 on CUDA (the 16-bit copies of mixed-precision inference). */
    private static void gemmWeight(Device device, String op, Tensor w) {
        on(device, op, "w", w);
        DType d = w.dtype();
        boolean sixteenBit = d == DType.BF16 || d == DType.F16;
        if (d != DType.F32 && !(sixteenBit && device == Device.CUDA)) {
            throw new IllegalArgumentException(op + ": w must be F32 (or BF16, F16 on CUDA), got " + d + " " + w.shapeString());
        }
    }

    /** t (F32) has exactly the expected shape, which was derived from tensor {@code refName}. */
    private static void shape(Device device, String op, String name, Tensor t, String refName, Tensor ref, int... expected) {
        f32(device, op, name, t);
        if (!Arrays.equals(t.shape(), expected)) {
            throw new IllegalArgumentException(op + ": " + name + " has shape " + t.shapeString() + " but "
                    + refName + " " + ref.shapeString() + " needs " + Arrays.toString(expected));
        }
    }

    /** Same shape (both F32). */
    private static void sameShape(Device device, String op, String aName, Tensor a, String bName, Tensor b) {
        f32(device, op, aName, a);
        f32(device, op, bName, b);
        if (!a.sameShape(b)) {
            throw new IllegalArgumentException(op + ": " + aName + " " + a.shapeString() + " and " + bName + " "
                    + b.shapeString() + " must have the same shape");
        }
    }

    /** Same number of elements (both F32). */
    private static void sameNumel(Device device, String op, String aName, Tensor a, String bName, Tensor b) {
        f32(device, op, aName, a);
        f32(device, op, bName, b);
        if (a.numel() != b.numel()) {
            throw new IllegalArgumentException(op + ": " + aName + " " + a.shapeString() + " and " + bName + " "
                    + b.shapeString() + " must have the same number of elements");
        }
    }

    /** b (F32)'s shape equals the trailing dims of x (no other broadcasting). */
    private static void trailing(Device device, String op, String bName, Tensor b, String xName, Tensor x) {
        f32(device, op, bName, b);
        boolean ok = b.rank() <= x.rank();
        for (int i = 1; ok && i <= b.rank(); i++) ok = b.dim(-i) == x.dim(-i);
        if (!ok) {
            throw new IllegalArgumentException(op + ": " + bName + " " + b.shapeString() + " must equal the trailing dims of "
                    + xName + " " + x.shapeString());
        }
    }

    private static void rank(String op, String name, Tensor t, int rank) {
        if (t.rank() != rank) {
            throw new IllegalArgumentException(op + ": " + name + " must have rank " + rank + ", got " + t.shapeString());
        }
    }

    private static void atLeastRank1(String op, String name, Tensor t) {
        argument(op, t.rank() >= 1, name + " must have at least one dimension, got " + t.shapeString());
    }

    /** a and b (same device, checked) share no element. */
    private static void disjoint(String op, String aName, Tensor a, String bName, Tensor b) {
        boolean overlap;
        if (a.device() == Device.CPU) {
            overlap = a.f32() == b.f32() && a.offset() < b.offset() + b.size() && b.offset() < a.offset() + a.size();
        } else {
            long a0 = a.deviceAddress(), b0 = b.deviceAddress();
            overlap = a0 < b0 + b.byteSize() && b0 < a0 + a.byteSize();
        }
        if (overlap) throw new IllegalArgumentException(op + ": " + aName + " and " + bName + " must not overlap");
    }

    private static void argument(String op, boolean ok, String message) {
        if (!ok) throw new IllegalArgumentException(op + ": " + message);
    }

    /** x's shape with its last dim replaced by {@code last}. */
    private static int[] lastReplaced(Tensor x, int last) {
        int[] s = x.shape();
        s[s.length - 1] = last;
        return s;
    }
}
