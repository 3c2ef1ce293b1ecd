package org.clipj.runtime.cpu;

import java.util.Arrays;

import org.clipj.runtime.Tensor;

/**
 * The conv family (conv.cu): conv2d (im2col + Sgemm on the fast path), ViT patch embedding (a
 * stride-p conv) and AvgPool2d, forward and backward. The scalar methods are direct loops over the
 * definition. Arguments are checked by {@link org.clipj.runtime.OpChecks}.
 */
final class ConvOps {
    private static final int GRAIN = 1 << 13;

    // Per-thread scratch for the im2col / patch matrices, grown on demand and fully overwritten
    // before use: a 3x3 conv's column matrix is megabytes, too big to allocate and zero per call.
    private static final ThreadLocal<float[]> COL = ThreadLocal.withInitial(() -> new float[0]);
    private static final ThreadLocal<float[]> DCOL = ThreadLocal.withInitial(() -> new float[0]);

    private ConvOps() {}

    static void conv2dForward(OpContext cx, Tensor out, Tensor x, Tensor w, Tensor bias, int stride, int padding) {
        if (cx.vector()) conv2dForwardVector(out, x, w, bias, stride, padding, cx.pool());
        else conv2dForwardScalar(out, x, w, bias, stride, padding);
    }

    static void conv2dBackward(OpContext cx, Tensor dx, Tensor dw, Tensor dbias, Tensor dout, Tensor x, Tensor w, int stride,
                               int padding) {
        if (cx.vector()) conv2dBackwardVector(dx, dw, dbias, dout, x, w, stride, padding, cx.pool());
        else conv2dBackwardScalar(dx, dw, dbias, dout, x, w, stride, padding);
    }

    /** packed: w's GEMM panels from prepareWeight (used on the vector path), or null. */
    static void patchEmbedForward(OpContext cx, Tensor out, Tensor x, Tensor w, Sgemm.PackedB packed) {
        if (cx.vector()) patchEmbedForwardVector(out, x, w, packed, cx.pool());
        else patchEmbedForwardScalar(out, x, w);
    }

    /**
     * The patch embedding with a BF16 w (O, Ci, p, p): the fast path multiplies the F32 patches by w's
     * packed panels in the native BF16 GEMM (the patches rounded to BF16 as it packs them); the scalar
     * reference is the F32 loop on BF16-rounded pixels and the widened w, the products the kernel forms.
     */
    static void patchEmbedForwardBf16(OpContext cx, Tensor out, Tensor x, Tensor w) {
        if (!cx.vector()) {
            patchEmbedForwardScalar(out, Bf16LinearOps.roundedToBf16(x), Bf16LinearOps.widened(w));
            return;
        }
        int rows = out.dim(0) * out.dim(1);
        float[] patches = patches(cx.pool(), x, w.dim(2));
        Bf16LinearOps.multiply(cx.pool(), patches, 0, rows, Bf16LinearOps.panels(w), out.f32(), out.offset(), null, 0, null, 0, null);
    }

    static void patchEmbedBackward(OpContext cx, Tensor dx, Tensor dw, Tensor dout, Tensor x, Tensor w) {
        if (cx.vector()) patchEmbedBackwardVector(dx, dw, dout, x, w, cx.pool());
        else patchEmbedBackwardScalar(dx, dw, dout, x, w);
    }

    /** One loop serves both paths (a window mean has nothing to vectorize); serial on the scalar path. */
    static void avgPool2dForward(OpContext cx, Tensor out, Tensor x, int k) {
        avgPool2dForward(cx.parallel(), out, x, k);
    }

    static void avgPool2dBackward(OpContext cx, Tensor dx, Tensor dout, int k) {
        avgPool2dBackward(cx.parallel(), dx, dout, k);
    }

    private static int outSize(int in, int k, int stride, int padding) {
        return (in + 2 * padding - k) / stride + 1;
    }

    // ---------------------------------------------------------------- conv2d, scalar reference

    /** out (B, Co, Ho, Wo) = conv2d(x (B, Ci, H, W), w (Co, Ci, K, K)) + bias (Co). */
    private static void conv2dForwardScalar(Tensor out, Tensor x, Tensor w, Tensor bias, int stride, int padding) {
        int b = x.dim(0), ci = x.dim(1), h = x.dim(2), wd = x.dim(3), co = w.dim(0), k = w.dim(2);
        int ho = out.dim(2), wo = out.dim(3);
        float[] o = out.f32(), xs = x.f32(), ws = w.f32();
        int oo = out.offset(), xo = x.offset(), wof = w.offset();
        for (int bi = 0; bi < b; bi++) {
            for (int oc = 0; oc < co; oc++) {
                float bv = bias == null ? 0f : bias.f32()[bias.offset() + oc];
                for (int oy = 0; oy < ho; oy++) {
                    for (int ox = 0; ox < wo; ox++) {
                        float sum = bv;
                        for (int ic = 0; ic < ci; ic++) {
                            for (int ky = 0; ky < k; ky++) {
                                int iy = oy * stride + ky - padding;
                                if (iy < 0 || iy >= h) continue;
                                for (int kx = 0; kx < k; kx++) {
                                    int ix = ox * stride + kx - padding;
                                    if (ix < 0 || ix >= wd) continue;
                                    sum += ws[wof + ((oc * ci + ic) * k + ky) * k + kx] * xs[xo + ((bi * ci + ic) * h + iy) * wd + ix];
                                }
                            }
                        }
                        o[oo + ((bi * co + oc) * ho + oy) * wo + ox] = sum;
                    }
                }
            }
        }
    }

    private static void conv2dBackwardScalar(Tensor dx, Tensor dw, Tensor dbias, Tensor dout, Tensor x, Tensor w,
                                     int stride, int padding) {
        int b = x.dim(0), ci = x.dim(1), h = x.dim(2), wd = x.dim(3), co = w.dim(0), k = w.dim(2);
        int ho = dout.dim(2), wo = dout.dim(3);
        float[] g = dout.f32(), xs = x.f32(), ws = w.f32();
        int go = dout.offset(), xo = x.offset(), wof = w.offset();
        for (int bi = 0; bi < b; bi++) {
            for (int oc = 0; oc < co; oc++) {
                for (int oy = 0; oy < ho; oy++) {
                    for (int ox = 0; ox < wo; ox++) {
                        float gv = g[go + ((bi * co + oc) * ho + oy) * wo + ox];
                        if (dbias != null) dbias.f32()[dbias.offset() + oc] += gv;
                        for (int ic = 0; ic < ci; ic++) {
                            for (int ky = 0; ky < k; ky++) {
                                int iy = oy * stride + ky - padding;
                                if (iy < 0 || iy >= h) continue;
                                for (int kx = 0; kx < k; kx++) {
                                    int ix = ox * stride + kx - padding;
                                    if (ix < 0 || ix >= wd) continue;
                                    int wi = ((oc * ci + ic) * k + ky) * k + kx;
                                    int xi = ((bi * ci + ic) * h + iy) * wd + ix;
                                    if (dw != null) dw.f32()[dw.offset() + wi] += gv * xs[xo + xi];
                                    if (dx != null) dx.f32()[dx.offset() + xi] += gv * ws[wof + wi];
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    // ---------------------------------------------------------------- conv2d, im2col + Sgemm

    /**
     * col (Ci*K*K, Ho*Wo) from batch item x[bi]; zero where the window leaves the image. Each
     * output row's in-image columns [ox0, ox1) are found once, so the inner loop has no bounds
     * test and is a plain copy at stride 1.
     */
    private static void im2col(ComputePool pool, float[] col, float[] xs, int xOff, int ci, int h, int wd, int k,
                               int stride, int padding, int ho, int wo) {
        int hw = ho * wo;
        Parallel.range(pool, ci * k * k, Math.max(1, GRAIN / Math.max(1, hw)), (from, to) -> {
            for (int row = from; row < to; row++) {
                int ic = row / (k * k), ky = (row / k) % k, kx = row % k;
                int ox0 = Math.min(wo, firstInside(kx - padding, stride));
                int ox1 = Math.max(ox0, Math.min(wo, firstInside(kx - padding - wd, stride)));
                for (int oy = 0; oy < ho; oy++) {
                    int iy = oy * stride + ky - padding, dst = row * hw + oy * wo;
                    if (iy < 0 || iy >= h) {
                        Arrays.fill(col, dst, dst + wo, 0f);
                        continue;
                    }
                    Arrays.fill(col, dst, dst + ox0, 0f);
                    Arrays.fill(col, dst + ox1, dst + wo, 0f);
                    if (ox1 == ox0) continue;
                    int src = xOff + (ic * h + iy) * wd + ox0 * stride + kx - padding;
                    if (stride == 1) {
                        System.arraycopy(xs, src, col, dst + ox0, ox1 - ox0);
                    } else {
                        for (int ox = ox0; ox < ox1; ox++, src += stride) col[dst + ox] = xs[src];
                    }
                }
            }
        });
    }

    /** The smallest ox >= 0 with ox * stride + shift >= 0. */
    private static int firstInside(int shift, int stride) {
        return shift >= 0 ? 0 : (-shift + stride - 1) / stride;
    }

    /** dx[bi] += col2im(dcol); parallel over input channels, whose rows only touch their own plane. */
    private static void col2imAdd(ComputePool pool, float[] dcol, float[] dxs, int dxOff, int ci, int h, int wd, int k,
                                  int stride, int padding, int ho, int wo) {
        int hw = ho * wo;
        Parallel.range(pool, ci, Math.max(1, GRAIN / Math.max(1, k * k * hw)), (from, to) -> {
            for (int ic = from; ic < to; ic++) {
                for (int ky = 0; ky < k; ky++) {
                    for (int kx = 0; kx < k; kx++) {
                        int src = ((ic * k + ky) * k + kx) * hw;
                        for (int oy = 0; oy < ho; oy++) {
                            int iy = oy * stride + ky - padding;
                            if (iy < 0 || iy >= h) continue;
                            for (int ox = 0; ox < wo; ox++) {
                                int ix = ox * stride + kx - padding;
                                if (ix >= 0 && ix < wd) dxs[dxOff + (ic * h + iy) * wd + ix] += dcol[src + oy * wo + ox];
                            }
                        }
                    }
                }
            }
        });
    }

    /**
     * The calling thread's scratch buffer of at least n floats (contents undefined). Inside a pool
     * task a fresh array: the thread's buffer may belong to the op that runs the task.
     */
    private static float[] scratch(ThreadLocal<float[]> buffer, int n) {
        if (ComputePool.inTask()) return new float[n];
        float[] a = buffer.get();
        if (a.length < n) {
            a = new float[n];
            buffer.set(a);
        }
        return a;
    }

    private static boolean isPointwise(int k, int stride, int padding) {
        return k == 1 && stride == 1 && padding == 0;
    }

    private static void conv2dForwardVector(Tensor out, Tensor x, Tensor w, Tensor bias, int stride, int padding, ComputePool pool) {
        int b = x.dim(0), ci = x.dim(1), h = x.dim(2), wd = x.dim(3), co = w.dim(0), k = w.dim(2);
        int ho = out.dim(2), wo = out.dim(3), hw = ho * wo, ckk = ci * k * k;
        float[] o = out.f32(), xs = x.f32();
        boolean pointwise = isPointwise(k, stride, padding);
        float[] col = pointwise ? null : scratch(COL, ckk * hw);
        for (int bi = 0; bi < b; bi++) {
            int xOff = x.offset() + bi * ci * h * wd, oOff = out.offset() + bi * co * hw;
            float[] src = xs;
            int srcOff = xOff;
            if (!pointwise) {
                im2col(pool, col, xs, xOff, ci, h, wd, k, stride, padding, ho, wo);
                src = col;
                srcOff = 0;
            }
            Sgemm.sgemm(false, false, co, hw, ckk, 1f, w.f32(), w.offset(), ckk, src, srcOff, hw, 0f, o, oOff, hw, pool);
            if (bias != null) {
                float[] bv = bias.f32();
                int bo = bias.offset();
                Parallel.range(pool, co, Math.max(1, GRAIN / Math.max(1, hw)), (from, to) -> {
                    for (int oc = from; oc < to; oc++) {
                        float v = bv[bo + oc];
                        int p = oOff + oc * hw;
                        for (int i = 0; i < hw; i++) o[p + i] += v;
                    }
                });
            }
        }
    }

    private static void conv2dBackwardVector(Tensor dx, Tensor dw, Tensor dbias, Tensor dout, Tensor x, Tensor w,
                                     int stride, int padding, ComputePool pool) {
        int b = x.dim(0), ci = x.dim(1), h = x.dim(2), wd = x.dim(3), co = w.dim(0), k = w.dim(2);
        int ho = dout.dim(2), wo = dout.dim(3), hw = ho * wo, ckk = ci * k * k;
        float[] g = dout.f32(), xs = x.f32();
        boolean pointwise = isPointwise(k, stride, padding);
        float[] col = pointwise || dw == null ? null : scratch(COL, ckk * hw);
        float[] dcol = pointwise || dx == null ? null : scratch(DCOL, ckk * hw);
        for (int bi = 0; bi < b; bi++) {
            int xOff = x.offset() + bi * ci * h * wd, gOff = dout.offset() + bi * co * hw;
            if (dw != null) {
                float[] src = xs;
                int srcOff = xOff;
                if (!pointwise) {
                    im2col(pool, col, xs, xOff, ci, h, wd, k, stride, padding, ho, wo);
                    src = col;
                    srcOff = 0;
                }
                Sgemm.sgemm(false, true, co, ckk, hw, 1f, g, gOff, hw, src, srcOff, hw, 1f, dw.f32(), dw.offset(), ckk, pool);
            }
            if (dx != null) {
                int dxOff = dx.offset() + bi * ci * h * wd;
                if (pointwise) {
                    Sgemm.sgemm(true, false, ci, hw, co, 1f, w.f32(), w.offset(), ckk, g, gOff, hw, 1f, dx.f32(), dxOff, hw, pool);
                } else {
                    Sgemm.sgemm(true, false, ckk, hw, co, 1f, w.f32(), w.offset(), ckk, g, gOff, hw, 0f, dcol, 0, hw, pool);
                    col2imAdd(pool, dcol, dx.f32(), dxOff, ci, h, wd, k, stride, padding, ho, wo);
                }
            }
        }
        if (dbias != null) {
            float[] db = dbias.f32();
            int dbo = dbias.offset();
            Parallel.range(pool, co, Math.max(1, GRAIN / Math.max(1, b * hw)), (from, to) -> {
                for (int oc = from; oc < to; oc++) {
                    float sum = 0f;
                    for (int bi = 0; bi < b; bi++) sum += Vec.sum(g, dout.offset() + (bi * co + oc) * hw, hw);
                    db[dbo + oc] += sum;
                }
            });
        }
    }

    // ---------------------------------------------------------------- ViT patch embedding

    /** out (B, P, C) from x (B, Ci, H, W) and w (C, Ci, p, p): a stride-p conv without bias, patches row-major. */
    private static void patchEmbedForwardScalar(Tensor out, Tensor x, Tensor w) {
        int b = x.dim(0), ci = x.dim(1), h = x.dim(2), wd = x.dim(3), c = w.dim(0), p = w.dim(2);
        int gh = h / p, gw = wd / p, np = gh * gw;
        float[] o = out.f32(), xs = x.f32(), ws = w.f32();
        for (int bi = 0; bi < b; bi++) {
            for (int pi = 0; pi < np; pi++) {
                int py = pi / gw, px = pi % gw;
                for (int oc = 0; oc < c; oc++) {
                    float sum = 0f;
                    for (int ic = 0; ic < ci; ic++) {
                        for (int ky = 0; ky < p; ky++) {
                            for (int kx = 0; kx < p; kx++) {
                                sum += ws[w.offset() + ((oc * ci + ic) * p + ky) * p + kx]
                                        * xs[x.offset() + ((bi * ci + ic) * h + py * p + ky) * wd + px * p + kx];
                            }
                        }
                    }
                    o[out.offset() + (bi * np + pi) * c + oc] = sum;
                }
            }
        }
    }

    private static void patchEmbedBackwardScalar(Tensor dx, Tensor dw, Tensor dout, Tensor x, Tensor w) {
        int b = x.dim(0), ci = x.dim(1), h = x.dim(2), wd = x.dim(3), c = w.dim(0), p = w.dim(2);
        int gh = h / p, gw = wd / p, np = gh * gw;
        float[] g = dout.f32(), xs = x.f32(), ws = w.f32();
        for (int bi = 0; bi < b; bi++) {
            for (int pi = 0; pi < np; pi++) {
                int py = pi / gw, px = pi % gw;
                for (int oc = 0; oc < c; oc++) {
                    float gv = g[dout.offset() + (bi * np + pi) * c + oc];
                    for (int ic = 0; ic < ci; ic++) {
                        for (int ky = 0; ky < p; ky++) {
                            for (int kx = 0; kx < p; kx++) {
                                int wi = ((oc * ci + ic) * p + ky) * p + kx;
                                int xi = ((bi * ci + ic) * h + py * p + ky) * wd + px * p + kx;
                                if (dw != null) dw.f32()[dw.offset() + wi] += gv * xs[x.offset() + xi];
                                if (dx != null) dx.f32()[dx.offset() + xi] += gv * ws[w.offset() + wi];
                            }
                        }
                    }
                }
            }
        }
    }

    /**
     * patches (B*P, Ci*p*p), each row one patch flattened as (ci, ky, kx) to match w's layout,
     * written into the calling thread's COL scratch (which is returned).
     */
    private static float[] patches(ComputePool pool, Tensor x, int p) {
        int b = x.dim(0), ci = x.dim(1), h = x.dim(2), wd = x.dim(3), gw = wd / p, np = (h / p) * gw, cpp = ci * p * p;
        float[] xs = x.f32(), out = scratch(COL, b * np * cpp);
        int xo = x.offset();
        Parallel.range(pool, b * np, Math.max(1, GRAIN / Math.max(1, cpp)), (from, to) -> {
            for (int row = from; row < to; row++) {
                int bi = row / np, pi = row % np, py = pi / gw, px = pi % gw;
                for (int ic = 0; ic < ci; ic++) {
                    for (int ky = 0; ky < p; ky++) {
                        System.arraycopy(xs, xo + ((bi * ci + ic) * h + py * p + ky) * wd + px * p,
                                out, row * cpp + (ic * p + ky) * p, p);
                    }
                }
            }
        });
        return out;
    }

    /** packed: w's GEMM panels from prepareWeight, or null. */
    private static void patchEmbedForwardVector(Tensor out, Tensor x, Tensor w, Sgemm.PackedB packed, ComputePool pool) {
        int c = w.dim(0), p = w.dim(2), cpp = w.dim(1) * p * p, rows = out.dim(0) * out.dim(1);
        float[] patches = patches(pool, x, p);
        if (packed != null) Sgemm.sgemm(rows, c, cpp, 1f, patches, 0, cpp, packed, 0f, out.f32(), out.offset(), c, pool);
        else Sgemm.sgemm(false, true, rows, c, cpp, 1f, patches, 0, cpp, w.f32(), w.offset(), cpp, 0f, out.f32(), out.offset(), c, pool);
    }

    private static void patchEmbedBackwardVector(Tensor dx, Tensor dw, Tensor dout, Tensor x, Tensor w, ComputePool pool) {
        int b = x.dim(0), ci = x.dim(1), h = x.dim(2), wd = x.dim(3), c = w.dim(0), p = w.dim(2);
        int gw = wd / p, np = (h / p) * gw, cpp = ci * p * p, rows = b * np;
        if (dw != null) {
            float[] patches = patches(pool, x, p);
            Sgemm.sgemm(true, false, c, cpp, rows, 1f, dout.f32(), dout.offset(), c, patches, 0, cpp, 1f,
                    dw.f32(), dw.offset(), cpp, pool);
        }
        if (dx != null) {
            float[] dpatches = scratch(DCOL, rows * cpp);
            Sgemm.sgemm(false, false, rows, cpp, c, 1f, dout.f32(), dout.offset(), c, w.f32(), w.offset(), cpp, 0f,
                    dpatches, 0, cpp, pool);
            float[] d = dx.f32();
            int dxo = dx.offset();
            Parallel.range(pool, rows, Math.max(1, GRAIN / Math.max(1, cpp)), (from, to) -> {
                for (int row = from; row < to; row++) {
                    int bi = row / np, pi = row % np, py = pi / gw, px = pi % gw;
                    for (int ic = 0; ic < ci; ic++) {
                        for (int ky = 0; ky < p; ky++) {
                            Vec.axpy(1f, dpatches, row * cpp + (ic * p + ky) * p,
                                    d, dxo + ((bi * ci + ic) * h + py * p + ky) * wd + px * p, p);
                        }
                    }
                }
            });
        }
    }

    // ---------------------------------------------------------------- AvgPool2d(k), stride k

    /** Parallel over (B*C) planes when pool != null. */
    private static void avgPool2dForward(ComputePool pool, Tensor out, Tensor x, int k) {
        int planes = x.dim(0) * x.dim(1), h = x.dim(2), wd = x.dim(3), ho = out.dim(2), wo = out.dim(3);
        float[] o = out.f32(), xs = x.f32();
        int oo = out.offset(), xo = x.offset();
        float inv = 1f / (k * k);
        Parallel.range(pool, planes, Math.max(1, GRAIN / Math.max(1, h * wd)), (from, to) -> {
            for (int pl = from; pl < to; pl++) {
                for (int oy = 0; oy < ho; oy++) {
                    for (int ox = 0; ox < wo; ox++) {
                        float sum = 0f;
                        for (int ky = 0; ky < k; ky++) {
                            for (int kx = 0; kx < k; kx++) sum += xs[xo + (pl * h + oy * k + ky) * wd + ox * k + kx];
                        }
                        o[oo + (pl * ho + oy) * wo + ox] = sum * inv;
                    }
                }
            }
        });
    }

    private static void avgPool2dBackward(ComputePool pool, Tensor dx, Tensor dout, int k) {
        int planes = dx.dim(0) * dx.dim(1), h = dx.dim(2), wd = dx.dim(3), ho = dout.dim(2), wo = dout.dim(3);
        float[] d = dx.f32(), g = dout.f32();
        int dxo = dx.offset(), go = dout.offset();
        float inv = 1f / (k * k);
        Parallel.range(pool, planes, Math.max(1, GRAIN / Math.max(1, h * wd)), (from, to) -> {
            for (int pl = from; pl < to; pl++) {
                for (int oy = 0; oy < ho; oy++) {
                    for (int ox = 0; ox < wo; ox++) {
                        float v = g[go + (pl * ho + oy) * wo + ox] * inv;
                        for (int ky = 0; ky < k; ky++) {
                            for (int kx = 0; kx < k; kx++) d[dxo + (pl * h + oy * k + ky) * wd + ox * k + kx] += v;
                        }
                    }
                }
            }
        });
    }
}
