package org.clipj.runtime.cuda;

import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.util.Random;

import org.clipj.kernels.Kernels;
import org.clipj.runtime.Activation;
import org.clipj.runtime.DType;
import org.clipj.runtime.Tensor;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

/**
 * linearForward, conv2dForward and patchEmbedForward with BF16/F16 weights on the simulator, on ragged
 * shapes, against a scalar double reference over the same 16-bit-rounded inputs and weights; and the ops
 * of the 16-bit inference path with 16-bit activations (layerNormForward F32/16-bit -> 16-bit, the linear
 * forwards with 16-bit input, output, bias and residual), on ragged and real (ViT-B/32 block) shapes,
 * against the same reference rounded where the kernels round.
 */
class CudaMixedPrecisionSimTest {
    private static final float TOL = 1e-4f;   // F32 accumulation of exactly representable products
    private static CudaBackend cuda;

    @BeforeAll
    static void open() {
        assumeTrue(Kernels.simLibrary().isPresent(), "simulator library not built: " + Kernels.simLibraryUnavailableReason());
        cuda = CudaBackend.open("sim");
    }

    @AfterAll
    static void close() {
        if (cuda != null) cuda.close();
    }

    @ParameterizedTest
    @EnumSource(value = DType.class, names = {"BF16", "F16"})
    void linearForwardWith16BitWeights(DType dtype) {
        Random rng = new Random(1);
        int n = 7, in = 37, o = 13;
        float[] x = random(rng, n * in), w = random(rng, o * in), bias = random(rng, o);
        Tensor out = cuda.zeros(DType.F32, n, o);
        cuda.linearForward(out, cuda.upload(Tensor.of(x, n, in)), weights(w, dtype, o, in), cuda.upload(Tensor.of(bias, o)));
        float[] xr = round(x, dtype), wr = round(w, dtype);
        float[] expected = new float[n * o];
        for (int r = 0; r < n; r++) {
            for (int c = 0; c < o; c++) {
                double s = bias[c];
                for (int i = 0; i < in; i++) s += (double) xr[r * in + i] * wr[c * in + i];
                expected[r * o + c] = (float) s;
            }
        }
        assertClose("linearForward " + dtype, expected, cuda.download(out).toFloatArray());
    }

    @ParameterizedTest
    @EnumSource(value = DType.class, names = {"BF16", "F16"})
    void conv2dForwardWith16BitWeights(DType dtype) {
        Random rng = new Random(2);
        int b = 2, ci = 3, h = 9, co = 5, k = 3, stride = 2, pad = 1, ho = (h + 2 * pad - k) / stride + 1;
        float[] x = random(rng, b * ci * h * h), w = random(rng, co * ci * k * k);
        Tensor out = cuda.zeros(DType.F32, b, co, ho, ho);
        cuda.conv2dForward(out, cuda.upload(Tensor.of(x, b, ci, h, h)), weights(w, dtype, co, ci, k, k), null, stride, pad);
        assertClose("conv2dForward " + dtype, conv(round(x, dtype), round(w, dtype), b, ci, h, co, k, stride, pad),
                cuda.download(out).toFloatArray());
    }

    @ParameterizedTest
    @EnumSource(value = DType.class, names = {"BF16", "F16"})
    void patchEmbedForwardWith16BitWeights(DType dtype) {
        Random rng = new Random(3);
        int b = 2, ci = 3, h = 12, c = 6, p = 4, g = h / p;
        float[] x = random(rng, b * ci * h * h), w = random(rng, c * ci * p * p);
        Tensor out = cuda.zeros(DType.F32, b, g * g, c);
        cuda.patchEmbedForward(out, cuda.upload(Tensor.of(x, b, ci, h, h)), weights(w, dtype, c, ci, p, p));
        float[] nchw = conv(round(x, dtype), round(w, dtype), b, ci, h, c, p, p, 0);   // (B, C, G, G)
        float[] expected = new float[b * g * g * c];
        for (int i = 0; i < b; i++) {
            for (int ch = 0; ch < c; ch++) {
                for (int q = 0; q < g * g; q++) expected[(i * g * g + q) * c + ch] = nchw[(i * c + ch) * g * g + q];
            }
        }
        assertClose("patchEmbedForward " + dtype, expected, cuda.download(out).toFloatArray());
    }

    /** Mixed-precision training's linear backward: dout and x rounded to w's type, F32 accumulation into F32 dx, dw. */
    @ParameterizedTest
    @EnumSource(value = DType.class, names = {"BF16", "F16"})
    void linearBackwardWith16BitWeights(DType dtype) {
        Random rng = new Random(4);
        for (int[] s : new int[][] {{1, 1, 1}, {7, 37, 13}, {50, 64, 33}}) {
            int n = s[0], in = s[1], o = s[2];
            float[] x = random(rng, n * in), w = random(rng, o * in), dout = random(rng, n * o);
            float[] dx0 = random(rng, n * in), dw0 = random(rng, o * in), db0 = random(rng, o);
            Tensor dx = cuda.upload(Tensor.of(dx0, n, in)), dw = cuda.upload(Tensor.of(dw0, o, in));
            Tensor db = cuda.upload(Tensor.of(db0, o));
            cuda.linearBackward(dx, dw, db, cuda.upload(Tensor.of(dout, n, o)), cuda.upload(Tensor.of(x, n, in)),
                    weights(w, dtype, o, in));
            float[] xr = round(x, dtype), wr = round(w, dtype), gr = round(dout, dtype);
            float[] ex = dx0.clone(), ew = dw0.clone(), eb = db0.clone();
            for (int r = 0; r < n; r++) {
                for (int i = 0; i < in; i++) {
                    double sum = 0;
                    for (int c = 0; c < o; c++) sum += (double) gr[r * o + c] * wr[c * in + i];
                    ex[r * in + i] += (float) sum;
                }
            }
            for (int c = 0; c < o; c++) {
                for (int i = 0; i < in; i++) {
                    double sum = 0;
                    for (int r = 0; r < n; r++) sum += (double) gr[r * o + c] * xr[r * in + i];
                    ew[c * in + i] += (float) sum;
                }
                double sum = 0;
                for (int r = 0; r < n; r++) sum += dout[r * o + c]; // the bias gradient sums the F32 dout
                eb[c] += (float) sum;
            }
            String shape = " " + dtype + " n=" + n + " in=" + in + " o=" + o;
            assertClose("linearBackward dx" + shape, ex, cuda.download(dx).toFloatArray());
            assertClose("linearBackward dw" + shape, ew, cuda.download(dw).toFloatArray());
            assertClose("linearBackward dbias" + shape, eb, cuda.download(db).toFloatArray());
        }
    }

    /** adamw_update_copy_*: the F32 step as adamw_update, and the copy exactly the updated parameter rounded. */
    @ParameterizedTest
    @EnumSource(value = DType.class, names = {"BF16", "F16"})
    void adamwUpdateWritesTheRoundedCopyInTheSamePass(DType dtype) {
        Random rng = new Random(5);
        int n = 1001;
        float[] p = random(rng, n), g = random(rng, n), m = random(rng, n), v = random(rng, n);
        for (int i = 0; i < n; i++) v[i] = Math.abs(v[i]);
        Tensor fp = cuda.upload(Tensor.of(p, n)), fm = cuda.upload(Tensor.of(m, n)), fv = cuda.upload(Tensor.of(v, n));
        Tensor cp = cuda.upload(Tensor.of(p, n)), cm = cuda.upload(Tensor.of(m, n)), cv = cuda.upload(Tensor.of(v, n));
        Tensor grad = cuda.upload(Tensor.of(g, n)), copy = cuda.zeros(dtype, n);
        for (int step = 1; step <= 3; step++) {
            cuda.adamwUpdate(fp, grad, fm, fv, 1e-2f, 0.9f, 0.98f, 1e-6f, 0.2f, step, 0.5f);
            cuda.adamwUpdateCopy(cp, copy, grad, cm, cv, 1e-2f, 0.9f, 0.98f, 1e-6f, 0.2f, step, 0.5f);
        }
        float[] params = cuda.download(cp).toFloatArray();
        assertTrue(java.util.Arrays.equals(cuda.download(fp).toFloatArray(), params), "param as adamw_update");
        assertTrue(java.util.Arrays.equals(cuda.download(fm).toFloatArray(), cuda.download(cm).toFloatArray()), "m");
        assertTrue(java.util.Arrays.equals(cuda.download(fv).toFloatArray(), cuda.download(cv).toFloatArray()), "v");
        float[] rounded = round(params, dtype), copied = cuda.download(copy).toFloatArray();
        assertTrue(java.util.Arrays.equals(rounded, copied), "copy = the updated param rounded to " + dtype);
        Tensor f32Copy = cuda.zeros(DType.F32, n);
        assertThrows(IllegalArgumentException.class, () -> cuda.adamwUpdateCopy(cp, f32Copy, grad, cm, cv, 1e-2f, 0.9f,
                0.98f, 1e-6f, 0.2f, 4, 1f));
        Tensor shortCopy = cuda.zeros(dtype, n - 1);
        assertThrows(IllegalArgumentException.class, () -> cuda.adamwUpdateCopy(cp, shortCopy, grad, cm, cv, 1e-2f, 0.9f,
                0.98f, 1e-6f, 0.2f, 4, 1f));
    }

    /** (rows, width): ragged (C not a multiple of the warp) and ViT-B/32's (T = 50 tokens, C = 768). */
    private static final int[][] LAYER_NORM_SHAPES = {{7, 37}, {50, 768}};

    @ParameterizedTest
    @EnumSource(value = DType.class, names = {"BF16", "F16"})
    void layerNormForwardWrites16BitFromF32And16BitRows(DType dtype) {
        Random rng = new Random(4);
        for (int[] shape : LAYER_NORM_SHAPES) {
            int n = shape[0], c = shape[1];
            float[] x = random(rng, n * c), w = random(rng, c), b = random(rng, c);
            for (int i = 0; i < x.length; i++) x[i] = 3f + 2f * x[i];   // an offset, as a residual stream has
            for (DType in : new DType[]{DType.F32, dtype}) {
                float[] xr = in == DType.F32 ? x : round(x, dtype);
                Tensor out = cuda.empty(dtype, n, c);
                cuda.layerNormForward(out, null, null, device(x, in, n, c), cuda.upload(Tensor.of(w, c)),
                        cuda.upload(Tensor.of(b, c)), 1e-5f);
                float[] expected = new float[n * c];
                for (int r = 0; r < n; r++) {
                    double mean = 0, var = 0;
                    for (int i = 0; i < c; i++) mean += xr[r * c + i];
                    mean /= c;
                    for (int i = 0; i < c; i++) var += (xr[r * c + i] - mean) * (xr[r * c + i] - mean);
                    double rstd = 1 / Math.sqrt(var / c + 1e-5);
                    for (int i = 0; i < c; i++) expected[r * c + i] = (float) ((xr[r * c + i] - mean) * rstd * w[i] + b[i]);
                }
                assertWithinUlps("layerNormForward " + in + " -> " + dtype + " " + n + "x" + c, round(expected, dtype),
                        cuda.download(out).toFloatArray(), dtype, 1);
            }
        }
    }

    @ParameterizedTest
    @EnumSource(value = DType.class, names = {"BF16", "F16"})
    void linearForwardWith16BitActivations(DType dtype) {
        Random rng = new Random(5);
        for (int[] shape : new int[][]{{7, 37, 13}, {50, 768, 2304}}) {   // ragged; ViT-B/32's in_proj on one image
            int n = shape[0], in = shape[1], o = shape[2];
            float[] x = random(rng, n * in), w = random(rng, o * in), bias = random(rng, o);
            Tensor out = cuda.empty(dtype, n, o);
            cuda.linearForward(out, device(x, dtype, n, in), weights(w, dtype, o, in), device(bias, dtype, o));
            float[] expected = linear(round(x, dtype), round(w, dtype), round(bias, dtype), n, in, o);
            assertWithinUlps("linearForward " + dtype + " " + n + "x" + in + "x" + o, round(expected, dtype),
                    cuda.download(out).toFloatArray(), dtype, 1);
        }
    }

    @ParameterizedTest
    @EnumSource(value = DType.class, names = {"BF16", "F16"})
    void linearActivationForwardWith16BitOutput(DType dtype) {
        Random rng = new Random(6);
        int n = 7, in = 37, o = 19;
        float[] x = random(rng, n * in), w = random(rng, o * in), bias = random(rng, o);
        for (Activation activation : Activation.values()) {
            for (boolean withBias : new boolean[]{true, false}) {
                Tensor out = cuda.empty(dtype, n, o);
                cuda.linearActivationForward(out, device(x, dtype, n, in), weights(w, dtype, o, in),
                        withBias ? device(bias, dtype, o) : null, activation);
                // the GEMM rounds its output (bias included) to 16 bits, the activation rounds again
                float[] pre = round(linear(round(x, dtype), round(w, dtype), withBias ? round(bias, dtype) : new float[o], n, in, o), dtype);
                float[] expected = new float[pre.length];
                for (int i = 0; i < pre.length; i++) {
                    double v = pre[i];
                    expected[i] = (float) (activation == Activation.QUICK_GELU ? v / (1 + Math.exp(-1.702 * v)) : gelu(v));
                }
                assertWithinUlps("linearActivationForward " + dtype + " " + activation + (withBias ? " with bias" : ""),
                        round(expected, dtype), cuda.download(out).toFloatArray(), dtype, 2);
            }
        }
    }

    @ParameterizedTest
    @EnumSource(value = DType.class, names = {"BF16", "F16"})
    void linearResidualForwardFrom16BitInputIntoTheF32ResidualStream(DType dtype) {
        Random rng = new Random(7);
        for (int[] shape : new int[][]{{7, 37, 13}, {50, 768, 768}}) {   // ragged; ViT-B/32's out_proj on one image
            int n = shape[0], in = shape[1], o = shape[2];
            float[] x = random(rng, n * in), w = random(rng, o * in), bias = random(rng, o), residual = random(rng, n * o);
            float[] product = linear(round(x, dtype), round(w, dtype), bias, n, in, o);
            float[] expected = new float[n * o];
            for (int i = 0; i < expected.length; i++) expected[i] = product[i] + residual[i];
            Tensor out = cuda.empty(DType.F32, n, o);
            cuda.linearResidualForward(out, device(x, dtype, n, in), weights(w, dtype, o, in), cuda.upload(Tensor.of(bias, o)),
                    cuda.upload(Tensor.of(residual, n, o)));
            assertClose("linearResidualForward " + dtype + " -> F32 " + n + "x" + in + "x" + o, expected, cuda.download(out).toFloatArray());
            // all 16-bit: the residual read and the output written in the GEMM's type
            float[] residual16 = round(residual, dtype), bias16 = round(bias, dtype);
            float[] product16 = linear(round(x, dtype), round(w, dtype), bias16, n, in, o);
            for (int i = 0; i < expected.length; i++) expected[i] = product16[i] + residual16[i];
            Tensor out16 = cuda.empty(dtype, n, o);
            cuda.linearResidualForward(out16, device(x, dtype, n, in), weights(w, dtype, o, in), device(bias, dtype, o),
                    device(residual, dtype, n, o));
            assertWithinUlps("linearResidualForward " + dtype + " -> " + dtype, round(expected, dtype),
                    cuda.download(out16).toFloatArray(), dtype, 1);
        }
    }

    @Test
    void integerWeightsAreRejected() {
        Tensor out = cuda.zeros(DType.F32, 2, 3);
        Tensor x = cuda.zeros(DType.F32, 2, 4);
        Tensor w = cuda.zeros(DType.I32, 3, 4);
        assertThrows(IllegalArgumentException.class, () -> cuda.linearForward(out, x, w, null));
    }

    /** w uploaded and cast to dtype on the device, as the model's weight copies are made. */
    private static Tensor weights(float[] w, DType dtype, int... shape) {
        Tensor copy = cuda.zeros(dtype, shape);
        cuda.cast(copy, cuda.upload(Tensor.of(w, shape)));
        return copy;
    }

    /** values uploaded (F32) and cast to dtype on the device (F32: as they are). */
    private static Tensor device(float[] values, DType dtype, int... shape) {
        Tensor f32 = cuda.upload(Tensor.of(values, shape));
        if (dtype == DType.F32) return f32;
        Tensor t = cuda.empty(dtype, shape);
        cuda.cast(t, f32);
        return t;
    }

    /** x (n, in) @ w (o, in)^T + bias (o), in double, rounded once to F32. */
    private static float[] linear(float[] x, float[] w, float[] bias, int n, int in, int o) {
        float[] out = new float[n * o];
        for (int r = 0; r < n; r++) {
            for (int c = 0; c < o; c++) {
                double s = bias[c];
                for (int i = 0; i < in; i++) s += (double) x[r * in + i] * w[c * in + i];
                out[r * o + c] = (float) s;
            }
        }
        return out;
    }

    /** Exact GELU, x Phi(x), through erf's Abramowitz-Stegun 7.1.26 (|error| < 1.5e-7, far below a 16-bit ulp). */
    private static double gelu(double x) {
        double z = Math.abs(x) / Math.sqrt(2), t = 1 / (1 + 0.3275911 * z);
        double erf = 1 - t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))))
                * Math.exp(-z * z);
        return 0.5 * x * (1 + Math.signum(x) * erf);
    }

    /** Each value within {@code ulps} units in the last place of dtype (relative to max(1, |expected|)). */
    private static void assertWithinUlps(String what, float[] expected, float[] actual, DType dtype, int ulps) {
        float ulp = dtype == DType.BF16 ? 0x1p-7f : 0x1p-10f;
        float worst = 0;
        for (int i = 0; i < expected.length; i++) {
            float err = Math.abs(expected[i] - actual[i]) / Math.max(1f, Math.abs(expected[i]));
            if (!(err <= worst)) worst = Float.isNaN(err) ? Float.POSITIVE_INFINITY : err;
        }
        assertTrue(worst <= ulps * ulp, what + ": max relative error " + worst + " > " + ulps + " ulp of " + dtype);
    }

    private static float[] conv(float[] x, float[] w, int b, int ci, int h, int co, int k, int stride, int pad) {
        int ho = (h + 2 * pad - k) / stride + 1;
        float[] out = new float[b * co * ho * ho];
        for (int i = 0; i < b; i++) {
            for (int o = 0; o < co; o++) {
                for (int y = 0; y < ho; y++) {
                    for (int xo = 0; xo < ho; xo++) {
                        double s = 0;
                        for (int c = 0; c < ci; c++) {
                            for (int ky = 0; ky < k; ky++) {
                                for (int kx = 0; kx < k; kx++) {
                                    int iy = y * stride - pad + ky, ix = xo * stride - pad + kx;
                                    if (iy < 0 || ix < 0 || iy >= h || ix >= h) continue;
                                    s += (double) x[((i * ci + c) * h + iy) * h + ix] * w[((o * ci + c) * k + ky) * k + kx];
                                }
                            }
                        }
                        out[((i * co + o) * ho + y) * ho + xo] = (float) s;
                    }
                }
            }
        }
        return out;
    }

    private static float[] round(float[] a, DType dtype) {
        float[] out = new float[a.length];
        for (int i = 0; i < a.length; i++) {
            out[i] = dtype == DType.BF16 ? DType.bf16ToFloat(DType.floatToBf16(a[i])) : DType.f16ToFloat(DType.floatToF16(a[i]));
        }
        return out;
    }

    private static float[] random(Random rng, int n) {
        float[] a = new float[n];
        for (int i = 0; i < n; i++) a[i] = (float) rng.nextGaussian();
        return a;
    }

    private static void assertClose(String what, float[] expected, float[] actual) {
        float worst = 0;
        for (int i = 0; i < expected.length; i++) {
            float err = Math.abs(expected[i] - actual[i]) / Math.max(1f, Math.abs(expected[i]));
            if (!(err <= worst)) worst = Float.isNaN(err) ? Float.POSITIVE_INFINITY : err;
        }
        assertTrue(worst <= TOL, what + ": max relative error " + worst);
    }
}
