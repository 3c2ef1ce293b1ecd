package org.clipj.runtime.cuda;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.SplittableRandom;
import java.util.function.Supplier;

import org.clipj.runtime.Activation;
import org.clipj.runtime.DType;
import org.clipj.runtime.Device;
import org.clipj.runtime.InvalidInputException;
import org.clipj.runtime.Tensor;
import org.clipj.runtime.cpu.CpuBackend;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.Test;

/**
 * Every CUDA kernel against the CPU backend's scalar reference path, on several shapes including
 * ragged ones. Subclasses choose the driver binding: the simulator (every build) or a real GPU.
 */
abstract class CudaParityChecks {
    static final CpuBackend CPU = new CpuBackend(1, false);
    static final float TOL = 1e-4f;

    /** The backend under test, opened by the subclass's @BeforeAll. */
    static CudaBackend cuda;

    @AfterAll
    static void closeBackend() {
        if (cuda != null) cuda.close();
        cuda = null;
    }

    // ---------------------------------------------------------------- helpers

    static Tensor random(long seed, int... shape) {
        SplittableRandom r = new SplittableRandom(seed);
        float[] a = new float[Math.toIntExact(Tensor.numel(shape))];
        for (int i = 0; i < a.length; i++) a[i] = (float) (r.nextDouble() * 2 - 1);
        return Tensor.of(a, shape);
    }

    static Tensor up(Tensor host) {
        return cuda.upload(host);
    }

    static float[] down(Tensor device) {
        return cuda.download(device).toFloatArray();
    }

    static void assertClose(String what, Tensor expectedCpu, Tensor actualDevice, float tol) {
        float[] e = expectedCpu.toFloatArray(), a = down(actualDevice);
        assertEquals(e.length, a.length, what + ": size");
        float scale = 1f;
        for (float v : e) scale = Math.max(scale, Math.abs(v));
        for (int i = 0; i < e.length; i++) {
            if (!(Math.abs(e[i] - a[i]) <= tol * scale)) {
                throw new AssertionError(what + ": element " + i + " expected " + e[i] + " got " + a[i] + " (tol " + tol * scale + ")");
            }
        }
    }

    // ---------------------------------------------------------------- memory and casts

    @Test
    void uploadDownloadZerosCopyFill() {
        Tensor h = random(1, 3, 7, 5);
        Tensor d = up(h);
        assertEquals(Device.CUDA, d.device());
        assertArrayEquals(h.f32(), down(d));
        Tensor z = cuda.zeros(DType.F32, 3, 7, 5);
        assertArrayEquals(new float[105], down(z));
        cuda.copy(z, d);
        assertArrayEquals(h.f32(), down(z));
        cuda.fill(z, 2.5f);
        for (float v : down(z)) assertEquals(2.5f, v);
        Tensor ids = up(Tensor.of(new int[] {3, -1, 7}, 3));
        assertArrayEquals(new int[] {3, -1, 7}, cuda.download(ids).i32());
        assertArrayEquals(h.slice(1, 2).toFloatArray(), down(d.slice(1, 2)));
    }

    @Test
    void castsRoundToNearestEvenLikeDType() {
        Tensor h = random(2, 1000);
        float[] x = h.f32();
        x[0] = Float.NaN;
        x[1] = Float.POSITIVE_INFINITY;
        x[2] = 1e-40f;
        x[3] = 70000f;
        for (DType t : new DType[] {DType.BF16, DType.F16}) {
            Tensor d16 = cuda.zeros(t, 1000);
            cuda.cast(d16, up(h));
            short[] bits = cuda.download(d16).bits16();
            for (int i = 0; i < x.length; i++) {
                short expected = t == DType.BF16 ? DType.floatToBf16(x[i]) : DType.floatToF16(x[i]);
                float e = t == DType.BF16 ? DType.bf16ToFloat(expected) : DType.f16ToFloat(expected);
                float a = t == DType.BF16 ? DType.bf16ToFloat(bits[i]) : DType.f16ToFloat(bits[i]);
                assertTrue(Float.isNaN(e) ? Float.isNaN(a) : expected == bits[i], t + " element " + i + ": " + x[i]);
            }
            Tensor back = cuda.zeros(DType.F32, 1000);
            cuda.cast(back, d16);
            float[] b = down(back);
            for (int i = 4; i < x.length; i++) {
                float e = t == DType.BF16 ? DType.bf16ToFloat(bits[i]) : DType.f16ToFloat(bits[i]);
                assertEquals(e, b[i], t + " back " + i);
            }
        }
    }

    // ---------------------------------------------------------------- GEMM

    @Test
    void matmulAllTransposesAndBatches() {
        int[][] mnk = {{1, 1, 1}, {7, 5, 3}, {33, 17, 65}};
        long seed = 10;
        for (int[] s : mnk) {
            int m = s[0], n = s[1], k = s[2];
            for (int ta = 0; ta < 2; ta++) {
                for (int tb = 0; tb < 2; tb++) {
                    Tensor a = ta == 1 ? random(seed++, k, m) : random(seed++, m, k);
                    Tensor b = tb == 1 ? random(seed++, n, k) : random(seed++, k, n);
                    Tensor c = random(seed++, m, n);
                    Tensor dc = up(c);
                    CPU.matmul(c, a, ta == 1, b, tb == 1, 0.5f, 0.25f);
                    cuda.matmul(dc, up(a), ta == 1, up(b), tb == 1, 0.5f, 0.25f);
                    assertClose("matmul " + m + "x" + n + "x" + k + " " + ta + tb, c, dc, TOL);
                }
            }
            Tensor a = random(seed++, 3, m, k), b = random(seed++, 3, n, k), c = Tensor.zeros(DType.F32, 3, m, n);
            Tensor dc = cuda.zeros(DType.F32, 3, m, n);
            CPU.matmul(c, a, false, b, true, 1f, 0f);
            cuda.matmul(dc, up(a), false, up(b), true, 1f, 0f);
            assertClose("batched matmul", c, dc, TOL);
        }
    }

    @Test
    void linearWithAndWithoutBias() {
        for (int[] s : new int[][] {{1, 1, 1}, {2, 13, 24, 40}, {5, 3, 96}}) {
            int in = s[s.length - 2], out = s[s.length - 1];
            int rows = s.length == 4 ? s[0] * s[1] : s[0];
            Tensor x = random(20, rows, in), w = random(21, out, in), bias = random(22, out);
            for (Tensor b : new Tensor[] {null, bias}) {
                Tensor y = Tensor.zeros(DType.F32, rows, out), dy = cuda.zeros(DType.F32, rows, out);
                CPU.linearForward(y, x, w, b);
                cuda.linearForward(dy, up(x), up(w), b == null ? null : up(b));
                assertClose("linear " + rows + "x" + in + "->" + out + (b == null ? "" : " +bias"), y, dy, TOL);
            }
        }
    }

    @Test
    void fusedLinearActivationAndResidual() { // the activations with a bias run the fused bias+activation kernels
        for (int[] s : new int[][] {{1, 1, 1}, {7, 24, 40}, {5, 96, 33}}) {
            int rows = s[0], in = s[1], out = s[2];
            Tensor x = random(23, rows, in), w = random(24, out, in), bias = random(25, out), res = random(26, rows, out);
            for (Tensor b : new Tensor[] {null, bias}) {
                String what = rows + "x" + in + "->" + out + (b == null ? "" : " +bias");
                for (Activation act : Activation.values()) {
                    Tensor y = Tensor.zeros(DType.F32, rows, out), dy = cuda.zeros(DType.F32, rows, out);
                    CPU.linearActivationForward(y, x, w, b, act);
                    cuda.linearActivationForward(dy, up(x), up(w), b == null ? null : up(b), act);
                    assertClose("linear " + act + " " + what, y, dy, TOL);
                }
                Tensor y = Tensor.zeros(DType.F32, rows, out), dy = cuda.zeros(DType.F32, rows, out);
                CPU.linearResidualForward(y, x, w, b, res);
                Tensor dres = up(res);
                cuda.linearResidualForward(dy, up(x), up(w), b == null ? null : up(b), dres);
                assertClose("linear residual " + what, y, dy, TOL);
                assertThrows(IllegalArgumentException.class, () -> cuda.linearResidualForward(dres, up(x), up(w), null, dres));
            }
        }
    }

    // ---------------------------------------------------------------- elementwise

    @Test
    void elementwiseOps() {
        for (int n : new int[] {1, 31, 257, 5000}) {
            Tensor a = random(30 + n, n), b = random(31 + n, n);
            Tensor expected = Tensor.zeros(DType.F32, n), actual = cuda.zeros(DType.F32, n);
            CPU.add(expected, a, b);
            cuda.add(actual, up(a), up(b));
            assertClose("add " + n, expected, actual, 0f);

            Tensor e2 = a.copy(), d2 = up(a);
            CPU.addScaled(e2, b, -0.75f);
            cuda.addScaled(d2, up(b), -0.75f);
            assertClose("addScaled " + n, e2, d2, 1e-6f);
            CPU.scale(e2, 3f);
            cuda.scale(d2, 3f);
            assertClose("scale " + n, e2, d2, 1e-6f);

            Tensor x = random(32 + n, n);
            for (int i = 0; i < n; i += 3) x.f32()[i] *= 8;
            CPU.quickGeluForward(expected, x);
            cuda.quickGeluForward(actual, up(x));
            assertClose("quickGelu " + n, expected, actual, 1e-6f);
            CPU.reluForward(expected, x);
            cuda.reluForward(actual, up(x));
            assertClose("relu " + n, expected, actual, 0f);
        }
    }

    @Test
    void exactGeluForwardAndBackward() {
        for (int[] s : new int[][] {{1}, {31}, {7, 33}, {3, 5, 257}}) {
            Tensor x = random(50, s);
            float[] xs = x.f32();
            for (int i = 0; i < xs.length; i += 3) xs[i] *= 8; // tails: Phi(x) -> 0 or 1, erf saturates
            xs[0] = xs.length > 1 ? -xs[0] : 0f;
            if (xs.length > 2) xs[xs.length - 1] = -40f;
            Tensor expected = Tensor.zeros(DType.F32, s), actual = cuda.zeros(DType.F32, s);
            CPU.geluForward(expected, x);
            cuda.geluForward(actual, up(x));
            assertClose("gelu " + java.util.Arrays.toString(s), expected, actual, 1e-6f);
            Tensor dout = random(51, s), dx = random(52, s), gdx = up(dx);
            CPU.geluBackward(dx, dout, x);
            cuda.geluBackward(gdx, up(dout), up(x));
            assertClose("geluBackward (accumulates) " + java.util.Arrays.toString(s), dx, gdx, 1e-6f);
        }
    }

    @Test
    void channelScaleForwardAndBackward() {
        for (int[] s : new int[][] {{1, 1}, {7, 33}, {3, 5, 80}, {2, 50, 112}}) {
            int c = s[s.length - 1];
            Tensor x = random(60, s), gamma = random(61, c);
            Tensor expected = Tensor.zeros(DType.F32, s), actual = cuda.zeros(DType.F32, s);
            CPU.channelScaleForward(expected, x, gamma);
            cuda.channelScaleForward(actual, up(x), up(gamma));
            assertClose("channelScale " + java.util.Arrays.toString(s), expected, actual, 0f);
            Tensor dout = random(62, s), dx = random(63, s), dgamma = random(64, c);
            Tensor gdx = up(dx), gdgamma = up(dgamma);
            CPU.channelScaleBackward(dx, dgamma, dout, x, gamma);
            cuda.channelScaleBackward(gdx, gdgamma, up(dout), up(x), up(gamma));
            assertClose("channelScaleBackward dx (accumulates) " + java.util.Arrays.toString(s), dx, gdx, 1e-6f);
            assertClose("channelScaleBackward dgamma (accumulates) " + java.util.Arrays.toString(s), dgamma, gdgamma, 1e-5f);
            Tensor onlyGamma = random(65, c), gOnlyGamma = up(onlyGamma);
            CPU.channelScaleBackward(null, onlyGamma, dout, x, gamma);
            cuda.channelScaleBackward(null, gOnlyGamma, up(dout), up(x), up(gamma));
            assertClose("channelScaleBackward dgamma only", onlyGamma, gOnlyGamma, 1e-5f);
            Tensor onlyInput = random(66, s), gOnlyInput = up(onlyInput);
            CPU.channelScaleBackward(onlyInput, null, dout, x, gamma);
            cuda.channelScaleBackward(gOnlyInput, null, up(dout), up(x), up(gamma));
            assertClose("channelScaleBackward dx only", onlyInput, gOnlyInput, 1e-6f);
        }
        Tensor x = cuda.zeros(DType.F32, 2, 6), gamma = cuda.zeros(DType.F32, 5);
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> cuda.channelScaleForward(cuda.zeros(DType.F32, 2, 6), x, gamma));
        assertTrue(e.getMessage().startsWith("channelScaleForward"), e.getMessage());
    }

    @Test
    void broadcastAdd() {
        for (int[] s : new int[][] {{1, 1}, {3, 5, 7}, {50, 128}}) {
            int c = s[s.length - 1];
            Tensor x = random(40, s), b = random(41, c);
            Tensor expected = Tensor.zeros(DType.F32, s), actual = cuda.zeros(DType.F32, s);
            CPU.broadcastAdd(expected, x, b);
            cuda.broadcastAdd(actual, up(x), up(b));
            assertClose("broadcastAdd", expected, actual, 0f);
        }
        Tensor x = random(42, 2, 3, 4, 5), b = random(43, 4, 5);
        Tensor expected = Tensor.zeros(DType.F32, 2, 3, 4, 5), actual = cuda.zeros(DType.F32, 2, 3, 4, 5);
        CPU.broadcastAdd(expected, x, b);
        cuda.broadcastAdd(actual, up(x), up(b));
        assertClose("broadcastAdd 2-D b", expected, actual, 0f);
    }

    @Test
    void softmaxRows() {
        for (int[] s : new int[][] {{1, 1}, {5, 77}, {9, 3, 33}}) {
            Tensor x = random(50, s);
            CPU.scale(x, 20f);
            Tensor expected = Tensor.zeros(DType.F32, s), actual = cuda.zeros(DType.F32, s);
            CPU.softmaxForward(expected, x);
            cuda.softmaxForward(actual, up(x));
            assertClose("softmax", expected, actual, 1e-6f);
        }
    }

    // ---------------------------------------------------------------- normalization

    @Test
    void layerNormWithStatistics() {
        for (int[] s : new int[][] {{1, 1}, {2, 7, 64}, {13, 130}}) {
            int c = s[s.length - 1], n = (int) (Tensor.numel(s) / c);
            Tensor x = random(60, s), w = random(61, c), b = random(62, c);
            for (int i = 0; i < x.f32().length; i++) x.f32()[i] += 3f; // an offset the statistics must survive
            Tensor out = Tensor.zeros(DType.F32, s), mean = Tensor.zeros(DType.F32, n), rstd = Tensor.zeros(DType.F32, n);
            Tensor dOut = cuda.zeros(DType.F32, s), dMean = cuda.zeros(DType.F32, n), dRstd = cuda.zeros(DType.F32, n);
            CPU.layerNormForward(out, mean, rstd, x, w, b, 1e-5f);
            cuda.layerNormForward(dOut, dMean, dRstd, up(x), up(w), up(b), 1e-5f);
            assertClose("layerNorm out", out, dOut, TOL);
            assertClose("layerNorm mean", mean, dMean, 1e-6f);
            assertClose("layerNorm rstd", rstd, dRstd, TOL);
            cuda.layerNormForward(dOut, null, null, up(x), up(w), up(b), 1e-5f);
            assertClose("layerNorm out without statistics", out, dOut, TOL);
        }
    }

    @Test
    void batchNormEvalTrainAndBackward() {
        int b = 2, c = 5, h = 3, w = 7;
        Tensor x = random(70, b, c, h, w), gamma = random(71, c), beta = random(72, c), mean = random(73, c), var = random(74, c);
        for (int i = 0; i < c; i++) var.f32()[i] = Math.abs(var.f32()[i]) + 0.1f;
        Tensor expected = Tensor.zeros(DType.F32, b, c, h, w), actual = cuda.zeros(DType.F32, b, c, h, w);
        CPU.batchNormForward(expected, x, gamma, beta, mean, var, null, null, false, 0.1f, 1e-5f);
        cuda.batchNormForward(actual, up(x), up(gamma), up(beta), up(mean), up(var), null, null, false, 0.1f, 1e-5f);
        assertClose("batchNorm eval", expected, actual, TOL);
        // train mode: batch statistics, running statistics updated, then the backward
        Tensor rm = mean.copy(), rv = var.copy(), sm = Tensor.zeros(DType.F32, c), sr = Tensor.zeros(DType.F32, c);
        Tensor grm = up(mean), grv = up(var), gsm = cuda.zeros(DType.F32, c), gsr = cuda.zeros(DType.F32, c);
        CPU.batchNormForward(expected, x, gamma, beta, rm, rv, sm, sr, true, 0.1f, 1e-5f);
        cuda.batchNormForward(actual, up(x), up(gamma), up(beta), grm, grv, gsm, gsr, true, 0.1f, 1e-5f);
        assertClose("batchNorm train out", expected, actual, TOL);
        assertClose("batchNorm running mean", rm, grm, 1e-6f);
        assertClose("batchNorm running var", rv, grv, 1e-5f);
        assertClose("batchNorm saveRstd", sr, gsr, TOL);
        Tensor dout = random(75, b, c, h, w), dx = random(76, b, c, h, w), dg = random(77, c), db = random(78, c);
        Tensor gdx = up(dx), gdg = up(dg), gdb = up(db);
        CPU.batchNormBackward(dx, dg, db, dout, x, gamma, sm, sr);
        cuda.batchNormBackward(gdx, gdg, gdb, up(dout), up(x), up(gamma), gsm, gsr);
        assertClose("batchNormBackward dx", dx, gdx, TOL);
        assertClose("batchNormBackward dgamma", dg, gdg, TOL);
        assertClose("batchNormBackward dbeta", db, gdb, TOL);
    }

    @Test
    void l2NormalizeAndBackward() {
        for (int[] s : new int[][] {{1, 1}, {4, 64}, {7, 33}}) {
            Tensor x = random(80, s);
            if (s[0] == 7) java.util.Arrays.fill(x.f32(), 0, s[1], 0f); // a zero row stays zero
            Tensor expected = Tensor.zeros(DType.F32, s), actual = cuda.zeros(DType.F32, s);
            Tensor norms = Tensor.zeros(DType.F32, s[0]), dNorms = cuda.zeros(DType.F32, s[0]);
            CPU.l2NormalizeForward(expected, norms, x);
            cuda.l2NormalizeForward(actual, dNorms, up(x));
            assertClose("l2Normalize", expected, actual, 1e-6f);
            assertClose("l2Normalize norms", norms, dNorms, 1e-6f);
            Tensor dout = random(81, s), dx = random(82, s), gdx = up(dx);
            CPU.l2NormalizeBackward(dx, dout, expected, norms);
            cuda.l2NormalizeBackward(gdx, up(dout), actual, dNorms);
            assertClose("l2NormalizeBackward", dx, gdx, 1e-5f);
        }
    }

    // ---------------------------------------------------------------- convolution and pooling

    @Test
    void conv2dAndPatchEmbed() {
        int[][] cases = {{2, 3, 9, 7, 4, 3, 1, 1}, {1, 4, 8, 8, 6, 1, 2, 0}, {2, 2, 7, 5, 3, 3, 2, 1}, {1, 1, 1, 1, 1, 1, 1, 0}};
        for (int[] s : cases) {
            int b = s[0], ci = s[1], h = s[2], w = s[3], co = s[4], k = s[5], stride = s[6], pad = s[7];
            int ho = (h + 2 * pad - k) / stride + 1, wo = (w + 2 * pad - k) / stride + 1;
            Tensor x = random(90, b, ci, h, w), wt = random(91, co, ci, k, k), bias = random(92, co);
            for (Tensor bb : new Tensor[] {null, bias}) {
                Tensor expected = Tensor.zeros(DType.F32, b, co, ho, wo), actual = cuda.zeros(DType.F32, b, co, ho, wo);
                CPU.conv2dForward(expected, x, wt, bb, stride, pad);
                cuda.conv2dForward(actual, up(x), up(wt), bb == null ? null : up(bb), stride, pad);
                assertClose("conv2d " + java.util.Arrays.toString(s), expected, actual, TOL);
                Tensor dout = random(95, b, co, ho, wo), dx = random(96, b, ci, h, w), dw = random(97, co, ci, k, k);
                Tensor db = bb == null ? null : random(98, co);
                Tensor gdx = up(dx), gdw = up(dw), gdb = db == null ? null : up(db);
                CPU.conv2dBackward(dx, dw, db, dout, x, wt, stride, pad);
                cuda.conv2dBackward(gdx, gdw, gdb, up(dout), up(x), up(wt), stride, pad);
                assertClose("conv2dBackward dx " + java.util.Arrays.toString(s), dx, gdx, TOL);
                assertClose("conv2dBackward dw " + java.util.Arrays.toString(s), dw, gdw, TOL);
                if (db != null) assertClose("conv2dBackward dbias", db, gdb, TOL);
            }
        }
        for (int[] s : new int[][] {{2, 3, 32, 8, 16}, {1, 3, 12, 4, 5}}) {
            int b = s[0], ci = s[1], r = s[2], p = s[3], c = s[4], grid = r / p;
            Tensor x = random(93, b, ci, r, r), wt = random(94, c, ci, p, p);
            Tensor expected = Tensor.zeros(DType.F32, b, grid * grid, c), actual = cuda.zeros(DType.F32, b, grid * grid, c);
            CPU.patchEmbedForward(expected, x, wt);
            cuda.patchEmbedForward(actual, up(x), up(wt));
            assertClose("patchEmbed " + java.util.Arrays.toString(s), expected, actual, TOL);
        }
    }

    @Test
    void avgPoolAndTranspose() {
        for (int[] s : new int[][] {{2, 3, 8, 6, 2}, {1, 5, 6, 9, 3}, {1, 1, 4, 4, 4}}) {
            Tensor x = random(100, s[0], s[1], s[2], s[3]);
            int k = s[4];
            Tensor expected = Tensor.zeros(DType.F32, s[0], s[1], s[2] / k, s[3] / k);
            Tensor actual = cuda.zeros(DType.F32, s[0], s[1], s[2] / k, s[3] / k);
            CPU.avgPool2dForward(expected, x, k);
            cuda.avgPool2dForward(actual, up(x), k);
            assertClose("avgPool " + java.util.Arrays.toString(s), expected, actual, 1e-6f);
            Tensor dx = random(103, s[0], s[1], s[2], s[3]), gdx = up(dx);
            CPU.avgPool2dBackward(dx, expected, k);
            cuda.avgPool2dBackward(gdx, actual, k);
            assertClose("avgPoolBackward " + java.util.Arrays.toString(s), dx, gdx, 1e-6f);
        }
        for (int[] s : new int[][] {{1, 1, 1}, {2, 37, 45}, {3, 64, 32}}) {
            Tensor x = random(101, s), start = random(102, s[0], s[2], s[1]);
            for (boolean accumulate : new boolean[] {false, true}) {
                Tensor expected = start.copy(), actual = up(start);
                CPU.transpose(expected, x, accumulate);
                cuda.transpose(actual, up(x), accumulate);
                assertClose("transpose " + java.util.Arrays.toString(s) + (accumulate ? " +=" : ""), expected, actual, 0f);
            }
        }
    }

    // ---------------------------------------------------------------- attention

    @Test
    void attentionF32MatchesCpu() {
        int[][] cases = {{1, 1, 1}, {2, 13, 2}, {1, 50, 2}, {2, 77, 1}, {1, 70, 3}};
        for (int[] s : cases) {
            int b = s[0], t = s[1], heads = s[2], c = heads * 64;
            Tensor qkv = random(110 + t, b, t, 3 * c);
            CPU.scale(qkv, 2f);
            for (boolean causal : new boolean[] {false, true}) {
                Tensor out = Tensor.zeros(DType.F32, b, t, c), lse = Tensor.zeros(DType.F32, b, heads, t);
                Tensor dOut = cuda.zeros(DType.F32, b, t, c), dLse = cuda.zeros(DType.F32, b, heads, t);
                CPU.attentionForward(out, lse, qkv, heads, causal);
                cuda.attentionForward(dOut, dLse, up(qkv), heads, causal);
                String what = "attention B=" + b + " T=" + t + " H=" + heads + (causal ? " causal" : "");
                assertClose(what, out, dOut, TOL);
                assertClose(what + " lse", lse, dLse, TOL);
            }
        }
    }

    @Test
    void attentionStreamsKeyTilesWhenAHeadDoesNotFit() {
        // 300 keys in 64-key tiles on any device: exercises the streaming path of the same kernel.
        assertEquals(64, cuda.cx.attention.keyTile("attention_forward", 64, 100_000));
        int b = 1, t = 300, heads = 1, c = 64;
        Tensor qkv = random(120, b, t, 3 * c);
        Tensor out = Tensor.zeros(DType.F32, b, t, c), dOut = cuda.zeros(DType.F32, b, t, c);
        CPU.attentionForward(out, null, qkv, heads, true);
        cuda.cx.attention.attentionForward("attention_forward", dOut, null, up(qkv), heads, true, 64);
        assertClose("attention T=300 tiled", out, dOut, TOL);
        Tensor q16 = cuda.zeros(DType.BF16, b, t, 3 * c), o16 = cuda.zeros(DType.BF16, b, t, c);
        cuda.cast(q16, up(qkv));
        Tensor rounded = cuda.zeros(DType.F32, b, t, 3 * c);
        cuda.cast(rounded, q16);
        CPU.attentionForward(out, null, cuda.download(rounded), heads, true);
        cuda.cx.attention.attentionForward("attention_forward_mma_bf16", o16, null, q16, heads, true, 40); // ragged tile
        Tensor o32 = cuda.zeros(DType.F32, b, t, c);
        cuda.cast(o32, o16);
        assertClose("tensor-core attention T=300 tiled", out, o32, 2e-2f);
    }

    @Test
    void attention16BitInputsAccumulateInF32() {
        for (int[] shape : new int[][] {{2, 50, 2}, {1, 77, 1}, {1, 13, 3}}) {
            int b = shape[0], t = shape[1], heads = shape[2], c = heads * 64;
            Tensor qkv = random(130 + t, b, t, 3 * c);
            CPU.scale(qkv, 2f);
            for (boolean causal : new boolean[] {false, true}) {
                for (String kernel : new String[] {"attention_forward_bf16", "attention_forward_mma_bf16", "attention_forward_f16"}) {
                    DType type = kernel.endsWith("f16") && !kernel.endsWith("bf16") ? DType.F16 : DType.BF16;
                    Tensor q16 = cuda.zeros(type, b, t, 3 * c);
                    cuda.cast(q16, up(qkv));
                    Tensor rounded = cuda.zeros(DType.F32, b, t, 3 * c);
                    cuda.cast(rounded, q16);
                    Tensor out = Tensor.zeros(DType.F32, b, t, c), lse = Tensor.zeros(DType.F32, b, heads, t);
                    CPU.attentionForward(out, lse, cuda.download(rounded), heads, causal);
                    Tensor o16 = cuda.zeros(type, b, t, c), o32 = cuda.zeros(DType.F32, b, t, c);
                    Tensor dLse = cuda.zeros(DType.F32, b, heads, t);
                    cuda.cx.attention.attentionForward(kernel, o16, dLse, q16, heads, causal, cuda.cx.attention.keyTile(kernel, 64, t));
                    cuda.cast(o32, o16);
                    String what = kernel + " " + java.util.Arrays.toString(shape) + (causal ? " causal" : "");
                    // BF16 outputs carry 8 bits of mantissa; the tensor-core kernel also rounds P to BF16.
                    float tol = type == DType.F16 ? 1e-3f : kernel.contains("mma") ? 1e-2f : 4e-3f;
                    assertClose(what, out, o32, tol);
                    assertClose(what + " lse", lse, dLse, 1e-4f);
                }
            }
        }
        Tensor qkv = cuda.zeros(DType.BF16, 1, 5, 192), out = cuda.zeros(DType.BF16, 1, 5, 64);
        cuda.attentionForward(out, null, qkv, 1, true); // the public entry point takes BF16 too
        assertEquals(0f, down(out)[0]);
    }

    /**
     * (B, T, heads, hd): open_clip's head widths (ViT-H 80, ViT-g 88, ViT-bigG 104, ViT-e 112) at CLIP's
     * T (50: vision at 224 px / 32, 77: text), and widths only the run-time-width kernels take (odd, tiny, 128).
     */
    static final int[][] HEAD_WIDTH_CASES = {
        {2, 50, 1, 80}, {1, 77, 2, 80}, {1, 50, 2, 88}, {1, 77, 1, 88}, {1, 50, 1, 104}, {1, 77, 2, 104},
        {2, 50, 1, 112}, {1, 77, 1, 112}, {1, 50, 1, 33}, {1, 77, 1, 128}, {2, 13, 3, 8}};

    @Test
    void attentionAtEveryHeadWidthMatchesCpu() {
        for (int[] s : HEAD_WIDTH_CASES) {
            int b = s[0], t = s[1], heads = s[2], c = heads * s[3];
            Tensor qkv = random(300 + t + c, b, t, 3 * c);
            CPU.scale(qkv, 2f);
            for (boolean causal : new boolean[] {false, true}) {
                String what = "attention " + java.util.Arrays.toString(s) + (causal ? " causal" : "");
                Tensor out = Tensor.zeros(DType.F32, b, t, c), lse = Tensor.zeros(DType.F32, b, heads, t);
                Tensor dOut = cuda.zeros(DType.F32, b, t, c), dLse = cuda.zeros(DType.F32, b, heads, t);
                CPU.attentionForward(out, lse, qkv, heads, causal);
                cuda.attentionForward(dOut, dLse, up(qkv), heads, causal);
                assertClose(what, out, dOut, TOL);
                assertClose(what + " lse", lse, dLse, TOL);
                Tensor dout = random(301 + t, b, t, c), dqkv = random(302 + t, b, t, 3 * c), gdqkv = up(dqkv);
                CPU.attentionBackward(dqkv, dout, qkv, out, lse, heads, causal);
                cuda.attentionBackward(gdqkv, up(dout), up(qkv), up(out), up(lse), heads, causal);
                assertClose(what + " backward (accumulates)", dqkv, gdqkv, TOL);
            }
        }
    }

    @Test
    void attentionStreamsKeyTilesAtEveryHeadWidth() {
        // T = 77 in ragged tiles (32, 32, 13 and 40, 37): the streaming path with 2, 3 and 4 dims per lane,
        // partly filled (88, 112, 40) or full (64).
        for (int hd : new int[] {64, 88, 112, 40}) {
            int b = 1, t = 77, heads = 1;
            Tensor qkv = random(320 + hd, b, t, 3 * hd);
            CPU.scale(qkv, 2f);
            for (boolean causal : new boolean[] {false, true}) {
                String what = "hd " + hd + (causal ? " causal" : "");
                Tensor out = Tensor.zeros(DType.F32, b, t, hd), lse = Tensor.zeros(DType.F32, b, heads, t);
                CPU.attentionForward(out, lse, qkv, heads, causal);
                Tensor dOut = cuda.zeros(DType.F32, b, t, hd), dLse = cuda.zeros(DType.F32, b, heads, t);
                cuda.cx.attention.attentionForward("attention_forward", dOut, dLse, up(qkv), heads, causal, 32);
                assertClose("attention tiled " + what, out, dOut, TOL);
                assertClose("attention tiled lse " + what, lse, dLse, TOL);
                Tensor dout = random(321 + hd, b, t, hd), dqkv = random(322 + hd, b, t, 3 * hd), gdqkv = up(dqkv);
                CPU.attentionBackward(dqkv, dout, qkv, out, lse, heads, causal);
                cuda.cx.attention.attentionBackward(gdqkv, up(dout), up(qkv), up(out), up(lse), heads, causal, 32, 32);
                assertClose("attentionBackward tiled " + what, dqkv, gdqkv, TOL);

                Tensor q16 = cuda.zeros(DType.BF16, b, t, 3 * hd), o16 = cuda.zeros(DType.BF16, b, t, hd);
                cuda.cast(q16, up(qkv));
                Tensor rounded = cuda.zeros(DType.F32, b, t, 3 * hd), o32 = cuda.zeros(DType.F32, b, t, hd);
                cuda.cast(rounded, q16);
                CPU.attentionForward(out, null, cuda.download(rounded), heads, causal);
                cuda.cx.attention.attentionForward("attention_forward_mma_bf16", o16, null, q16, heads, causal, 40);
                cuda.cast(o32, o16);
                assertClose("tensor-core attention tiled " + what, out, o32, 1e-2f);
            }
        }
    }

    /**
     * The BF16 backward (tensor-core kernels) against the CPU's F32 backward on the same BF16-rounded qkv, out, dout
     * and starting dqkv, lse from the CPU forward; queryTile/keyTile 0 = through the public entry point. The result
     * is stored in BF16 and P, dS enter the tensor cores in BF16: ~1e-2 of the largest gradient.
     */
    static void assertBf16BackwardMatchesCpu(CudaBackend be, String what, long seed, int b, int t, int heads, int hd, boolean causal,
                                             int queryTile, int keyTile) {
        int c = heads * hd;
        Tensor qkv = random(seed, b, t, 3 * c);
        CPU.scale(qkv, 2f);
        Tensor[] q = bf16(be, qkv);
        Tensor out = Tensor.zeros(DType.F32, b, t, c), lse = Tensor.zeros(DType.F32, b, heads, t);
        CPU.attentionForward(out, lse, q[1], heads, causal);
        Tensor[] o = bf16(be, out), g = bf16(be, random(seed + 1, b, t, c)), d = bf16(be, random(seed + 2, b, t, 3 * c));
        Tensor expected = d[1].copy();
        CPU.attentionBackward(expected, g[1], q[1], o[1], lse, heads, causal);
        Tensor gLse = be.upload(lse);
        if (queryTile == 0) {
            be.attentionBackward(d[0], g[0], q[0], o[0], gLse, heads, causal);
        } else {
            be.cx.attention.attentionBackwardMma(d[0], g[0], q[0], o[0], gLse, heads, causal, queryTile, keyTile);
        }
        float[] e = expected.toFloatArray(), a = be.download(d[0]).toFloatArray();
        float scale = 1f;
        for (float v : e) scale = Math.max(scale, Math.abs(v));
        for (int i = 0; i < e.length; i++) {
            if (!(Math.abs(e[i] - a[i]) <= 1.5e-2f * scale)) {
                throw new AssertionError("BF16 attentionBackward " + what + ": element " + i + " (token " + i / (3 * c) + ", "
                        + "qkv".charAt(i % (3 * c) / c) + " dim " + i % c + ") expected " + e[i] + " got " + a[i] + " (scale " + scale + ")");
            }
        }
    }

    /** x on the device as BF16, and its rounded values as an F32 host tensor. */
    private static Tensor[] bf16(CudaBackend be, Tensor x) {
        Tensor x16 = be.zeros(DType.BF16, x.shape()), rounded = be.zeros(DType.F32, x.shape());
        be.cast(x16, be.upload(x));
        be.cast(rounded, x16);
        return new Tensor[] {x16, be.download(rounded)};
    }

    @Test
    void attentionBackwardBf16MatchesCpu() {
        // (B, T, heads, hd): ragged T, zoo widths, an odd width (the scalar-load path) and a tiny one
        for (int[] s : new int[][] {{2, 13, 2, 64}, {1, 50, 1, 80}, {1, 77, 1, 104}, {1, 21, 1, 33}, {2, 13, 3, 8}}) {
            for (boolean causal : new boolean[] {false, true}) {
                assertBf16BackwardMatchesCpu(cuda, java.util.Arrays.toString(s) + (causal ? " causal" : ""), 350 + s[1] + s[3], s[0],
                        s[1], s[2], s[3], causal, 0, 0);
            }
        }
        // ragged query and key tiles (40 + 37): the streaming paths of both kernels
        assertBf16BackwardMatchesCpu(cuda, "T=77 hd 88 tiles 40 causal", 360, 1, 77, 1, 88, true, 40, 40);
        assertBf16BackwardMatchesCpu(cuda, "T=77 hd 64 tiles 40", 361, 1, 77, 1, 64, false, 40, 40);
    }

    @Test
    void attentionAtHeadWidth112AndT257() {
        // ViT-e's head at 224 px / 14 through the public entry point: streams 64-key tiles on sm_80 and sm_90.
        int b = 1, t = 257, heads = 1, hd = 112;
        Tensor qkv = random(330, b, t, 3 * hd);
        Tensor out = Tensor.zeros(DType.F32, b, t, hd), lse = Tensor.zeros(DType.F32, b, heads, t);
        Tensor dOut = cuda.zeros(DType.F32, b, t, hd), dLse = cuda.zeros(DType.F32, b, heads, t);
        CPU.attentionForward(out, lse, qkv, heads, false);
        cuda.attentionForward(dOut, dLse, up(qkv), heads, false);
        assertClose("attention hd 112 T 257", out, dOut, TOL);
        assertClose("attention hd 112 T 257 lse", lse, dLse, TOL);
    }

    @Test
    void attention16BitInputsAtEveryHeadWidth() {
        for (int[] s : new int[][] {{2, 50, 1, 80}, {1, 77, 1, 88}, {1, 50, 2, 104}, {1, 77, 1, 112}, {1, 50, 1, 33}, {2, 13, 3, 8}}) {
            int b = s[0], t = s[1], heads = s[2], c = heads * s[3];
            Tensor qkv = random(340 + t + c, b, t, 3 * c);
            CPU.scale(qkv, 2f);
            boolean causal = t == 77; // text towers are causal, vision towers full
            for (String family : new String[] {"attention_forward_bf16", "attention_forward_mma_bf16", "attention_forward_f16"}) {
                DType type = family.endsWith("_f16") ? DType.F16 : DType.BF16;
                Tensor q16 = cuda.zeros(type, b, t, 3 * c);
                cuda.cast(q16, up(qkv));
                Tensor rounded = cuda.zeros(DType.F32, b, t, 3 * c);
                cuda.cast(rounded, q16);
                Tensor out = Tensor.zeros(DType.F32, b, t, c), lse = Tensor.zeros(DType.F32, b, heads, t);
                CPU.attentionForward(out, lse, cuda.download(rounded), heads, causal);
                Tensor o16 = cuda.zeros(type, b, t, c), o32 = cuda.zeros(DType.F32, b, t, c);
                Tensor dLse = cuda.zeros(DType.F32, b, heads, t);
                if (family.contains("mma")) {
                    cuda.attentionForward(o16, dLse, q16, heads, causal); // the public entry point's BF16 kernel
                } else {
                    cuda.cx.attention.attentionForward(family, o16, dLse, q16, heads, causal, cuda.cx.attention.keyTile(family, s[3], t));
                }
                cuda.cast(o32, o16);
                String what = family + " " + java.util.Arrays.toString(s) + (causal ? " causal" : "");
                // BF16 outputs carry 8 bits of mantissa; the tensor-core kernel also rounds P to BF16.
                float tol = type == DType.F16 ? 1e-3f : family.contains("mma") ? 1e-2f : 4e-3f;
                assertClose(what, out, o32, tol);
                assertClose(what + " lse", lse, dLse, 1e-4f);
            }
        }
    }

    @Test
    void attentionPoolMatchesCpu() {
        // (B, L, C, heads): head dims 64, 20, 64, and 80/88/104/112 at ResNet's L = 50 (224 px); odd 21 (scalar
        // loads) and 600 (wider than two dims per thread: one key group striding over the pairs)
        for (int[] s : new int[][] {{1, 5, 64, 1}, {3, 17, 60, 3}, {2, 50, 512, 8}, {1, 50, 160, 2}, {2, 50, 88, 1},
                                    {1, 50, 208, 2}, {1, 50, 112, 1}, {2, 7, 21, 1}, {1, 3, 600, 1}}) {
            int b = s[0], l = s[1], c = s[2], heads = s[3];
            Tensor q = random(140, b, c), k = random(141, b, l, c), v = random(142, b, l, c);
            Tensor out = Tensor.zeros(DType.F32, b, c), lse = Tensor.zeros(DType.F32, b, heads);
            Tensor dOut = cuda.zeros(DType.F32, b, c), dLse = cuda.zeros(DType.F32, b, heads);
            CPU.attentionPoolForward(out, lse, q, k, v, heads);
            cuda.attentionPoolForward(dOut, dLse, up(q), up(k), up(v), heads);
            assertClose("attentionPool " + java.util.Arrays.toString(s), out, dOut, TOL);
            assertClose("attentionPool lse", lse, dLse, TOL);
            Tensor g = random(143, b, c), dq = random(144, b, c), dk = random(145, b, l, c), dv = random(146, b, l, c);
            Tensor gdq = up(dq), gdk = up(dk), gdv = up(dv);
            CPU.attentionPoolBackward(dq, dk, dv, g, q, k, v, out, lse, heads);
            cuda.attentionPoolBackward(gdq, gdk, gdv, up(g), up(q), up(k), up(v), dOut, dLse, heads);
            assertClose("attentionPoolBackward dq", dq, gdq, TOL);
            assertClose("attentionPoolBackward dk", dk, gdk, TOL);
            assertClose("attentionPoolBackward dv", dv, gdv, TOL);
            assertBf16PoolMatchesCpu(cuda, java.util.Arrays.toString(s), q, k, v, heads);
        }
    }

    /** The BF16 attention pooling forward against the CPU on the same BF16-rounded q, k, v (output rounded to BF16). */
    static void assertBf16PoolMatchesCpu(CudaBackend be, String what, Tensor q, Tensor k, Tensor v, int heads) {
        Tensor[] q16 = bf16(be, q), k16 = bf16(be, k), v16 = bf16(be, v);
        int b = q.dim(0), c = q.dim(1);
        Tensor out = Tensor.zeros(DType.F32, b, c), lse = Tensor.zeros(DType.F32, b, heads);
        CPU.attentionPoolForward(out, lse, q16[1], k16[1], v16[1], heads);
        Tensor o16 = be.zeros(DType.BF16, b, c), gLse = be.zeros(DType.F32, b, heads), o32 = be.zeros(DType.F32, b, c);
        be.attentionPoolForward(o16, gLse, q16[0], k16[0], v16[0], heads);
        be.cast(o32, o16);
        float[] e = out.toFloatArray(), a = be.download(o32).toFloatArray(), el = lse.toFloatArray(), al = be.download(gLse).toFloatArray();
        for (int i = 0; i < e.length; i++) {
            if (!(Math.abs(e[i] - a[i]) <= 8e-3f * Math.max(1f, Math.abs(e[i])))) {
                throw new AssertionError("BF16 attentionPool " + what + ": element " + i + " expected " + e[i] + " got " + a[i]);
            }
        }
        for (int i = 0; i < el.length; i++) {
            if (!(Math.abs(el[i] - al[i]) <= 1e-4f * Math.max(1f, Math.abs(el[i])))) {
                throw new AssertionError("BF16 attentionPool lse " + what + ": element " + i + " expected " + el[i] + " got " + al[i]);
            }
        }
    }

    // ---------------------------------------------------------------- gathers

    @Test
    void embeddingAndRowGather() {
        int v = 11, c = 37;
        Tensor table = random(150, v, c);
        Tensor ids = Tensor.of(new int[] {0, 10, 3, 3, 7, 1}, 2, 3);
        Tensor expected = Tensor.zeros(DType.F32, 2, 3, c), actual = cuda.zeros(DType.F32, 2, 3, c);
        CPU.embeddingForward(expected, ids, table);
        cuda.embeddingForward(actual, up(ids), up(table));
        assertClose("embedding", expected, actual, 0f);
        Tensor bad = up(Tensor.of(new int[] {0, 11}, 1, 2));
        InvalidInputException e = assertThrows(InvalidInputException.class,
                () -> cuda.embeddingForward(cuda.zeros(DType.F32, 1, 2, c), bad, up(table)));
        assertTrue(e.getMessage().contains("embeddingForward"), e.getMessage());

        Tensor x = random(151, 3, 5, c);
        Tensor index = Tensor.of(new int[] {4, 0, 2}, 3);
        Tensor rows = Tensor.zeros(DType.F32, 3, c), dRows = cuda.zeros(DType.F32, 3, c);
        CPU.gatherRowsForward(rows, x, index);
        cuda.gatherRowsForward(dRows, up(x), up(index));
        assertClose("gatherRows", rows, dRows, 0f);
        assertThrows(InvalidInputException.class,
                () -> cuda.gatherRowsForward(cuda.zeros(DType.F32, 3, c), up(x), up(Tensor.of(new int[] {0, 5, 1}, 3))));
    }

    // ---------------------------------------------------------------- similarity and loss

    @Test
    void similarityMixedPrecision() {
        // BF16 on tensor cores: 64 x 64 tiles, D in 64-wide slices; ragged N, M, D (37: scalar loads), ViT-B/32's D = 512
        for (int[] s : new int[][] {{1, 1, 1}, {19, 23, 37}, {4, 40, 64}, {70, 131, 512}}) {
            int n = s[0], m = s[1], d = s[2];
            Tensor a = random(160, n, d), b = random(161, m, d);
            Tensor na = Tensor.zeros(DType.F32, n, d), nb = Tensor.zeros(DType.F32, m, d), expected = Tensor.zeros(DType.F32, n, m);
            CPU.l2NormalizeForward(na, null, a);
            CPU.l2NormalizeForward(nb, null, b);
            CPU.matmul(expected, na, false, nb, true, 100f, 0f);
            Tensor actual = cuda.zeros(DType.F32, n, m);
            cuda.cx.similarity.similarity(actual, up(a), up(b), 100f, true);
            assertClose("similarity F32 " + java.util.Arrays.toString(s), expected, actual, TOL);
            Tensor a16 = cuda.zeros(DType.BF16, n, d), b16 = cuda.zeros(DType.BF16, m, d);
            cuda.cast(a16, up(a));
            cuda.cast(b16, up(b));
            cuda.cx.similarity.similarity(actual, a16, b16, 100f, true);
            assertClose("similarity BF16 " + java.util.Arrays.toString(s), expected, actual, 2e-2f);
            // unnormalized, against the CPU on the same BF16-rounded inputs
            Tensor ra = cuda.zeros(DType.F32, n, d), rb = cuda.zeros(DType.F32, m, d);
            cuda.cast(ra, a16);
            cuda.cast(rb, b16);
            CPU.matmul(expected, cuda.download(ra), false, cuda.download(rb), true, 0.5f, 0f);
            cuda.cx.similarity.similarity(actual, a16, b16, 0.5f, false);
            assertClose("similarity BF16 unnormalized " + java.util.Arrays.toString(s), expected, actual, 1e-4f);
        }
    }

    @Test
    void contrastiveLossAndGradients() {
        for (int[] s : new int[][] {{1, 4}, {37, 24}, {70, 64}}) {
            int n = s[0], d = s[1];
            Tensor img = Tensor.zeros(DType.F32, n, d), txt = Tensor.zeros(DType.F32, n, d);
            CPU.l2NormalizeForward(img, null, random(170, n, d));
            CPU.l2NormalizeForward(txt, null, random(171, n, d));
            Tensor scale = Tensor.of(new float[] {(float) Math.log(1 / 0.07)}, 1);
            float expected = CPU.contrastiveLoss(img, txt, scale, null, null, null, 1f);
            float actual = cuda.contrastiveLoss(up(img), up(txt), up(scale), null, null, null, 1f);
            assertEquals(expected, actual, 1e-4 * Math.max(1, Math.abs(expected)), "contrastive N=" + n);

            // gradients accumulate (+=) into non-zero starts, as every backward op does
            Tensor dImg = random(172, n, d), dTxt = random(173, n, d), dScale = Tensor.of(new float[] {0.5f}, 1);
            Tensor gImg = up(dImg), gTxt = up(dTxt), gScale = up(dScale);
            CPU.contrastiveLoss(img, txt, scale, dImg, dTxt, dScale, 0.25f);
            float loss = cuda.contrastiveLoss(up(img), up(txt), up(scale), gImg, gTxt, gScale, 0.25f);
            assertEquals(expected, loss, 1e-4 * Math.max(1, Math.abs(expected)), "contrastive with gradients N=" + n);
            assertClose("contrastive dImg N=" + n, dImg, gImg, TOL);
            assertClose("contrastive dTxt N=" + n, dTxt, gTxt, TOL);
            assertClose("contrastive dLogitScale N=" + n, dScale, gScale, TOL);
            Tensor onlyScale = cuda.zeros(DType.F32, 1), cpuScale = Tensor.zeros(DType.F32, 1);
            CPU.contrastiveLoss(img, txt, scale, null, null, cpuScale, 1f);
            cuda.contrastiveLoss(up(img), up(txt), up(scale), null, null, onlyScale, 1f);
            assertClose("contrastive dLogitScale alone N=" + n, cpuScale, onlyScale, TOL);
        }
    }

    @Test
    void contrastiveLossBf16AgainstTheF32ReferenceOnRoundedFeatures() {
        for (int[] s : new int[][] {{1, 8}, {7, 24}, {33, 512}, {130, 8}}) {
            assertContrastiveBf16(s[0], s[1], 180, true);
        }
    }

    @Test
    void contrastiveLossBf16BeyondTheLogitsBudgetWidensToTheF32Kernels() {
        System.setProperty(ContrastiveKernels.LOGITS_BUDGET_PROPERTY, "0");
        try {
            assertContrastiveBf16(33, 24, 185, true);
        } finally {
            System.clearProperty(ContrastiveKernels.LOGITS_BUDGET_PROPERTY);
        }
    }

    @Test
    void contrastiveLossBf16AtARealBatch() {
        assertContrastiveBf16(4096, 16, 190, false); // the N x N buffers of a large training batch; D small for the simulator
    }

    /**
     * The BF16 loss (materialized logits, tensor-core GEMMs) against the CPU's F32 loss on the same features rounded to
     * BF16: the loss within 1e-4 relative (its logits are F32 sums of exact BF16 products); the gradients within 1e-2
     * of their largest magnitude, as their GEMM operand scale * dS is rounded to BF16 (8 bits: 2^-9 relative per term),
     * as PyTorch autocast rounds it. They accumulate (+=) into non-zero starts. scaleAlone: also dLogitScale without the
     * feature gradients (a second loss, so off where the simulator's time counts).
     */
    static void assertContrastiveBf16(int n, int d, long seed, boolean scaleAlone) {
        Tensor img = Tensor.zeros(DType.F32, n, d), txt = Tensor.zeros(DType.F32, n, d);
        CPU.l2NormalizeForward(img, null, random(seed, n, d));
        CPU.l2NormalizeForward(txt, null, random(seed + 1, n, d));
        Tensor img16 = Tensor.zeros(DType.BF16, n, d), txt16 = Tensor.zeros(DType.BF16, n, d);
        CPU.cast(img16, img);
        CPU.cast(txt16, txt);
        CPU.cast(img, img16); // the reference sees the rounded features
        CPU.cast(txt, txt16);
        Tensor scale = Tensor.of(new float[] {(float) Math.log(1 / 0.07)}, 1);
        Tensor startImg = random(seed + 2, n, d), startTxt = random(seed + 3, n, d), startScale = Tensor.of(new float[] {0.5f}, 1);
        Tensor dImg = startImg.copy(), dTxt = startTxt.copy(), dScale = startScale.copy();
        Tensor gImg = up(startImg), gTxt = up(startTxt), gScale = up(startScale);
        float expected = CPU.contrastiveLoss(img, txt, scale, dImg, dTxt, dScale, 0.25f);
        float actual = cuda.contrastiveLoss(up(img16), up(txt16), up(scale), gImg, gTxt, gScale, 0.25f);
        String what = "contrastive BF16 N=" + n + " D=" + d;
        assertEquals(expected, actual, 1e-4 * Math.max(1, Math.abs(expected)), what + " loss");
        assertCloseToGradient(what + " dImg", startImg, dImg, gImg, 1e-2f);
        assertCloseToGradient(what + " dTxt", startTxt, dTxt, gTxt, 1e-2f);
        assertCloseToGradient(what + " dLogitScale", startScale, dScale, gScale, 1e-2f);
        if (!scaleAlone) return;
        Tensor onlyScale = cuda.zeros(DType.F32, 1), cpuScale = Tensor.zeros(DType.F32, 1);
        CPU.contrastiveLoss(img, txt, scale, null, null, cpuScale, 1f);
        cuda.contrastiveLoss(up(img16), up(txt16), up(scale), null, null, onlyScale, 1f);
        assertCloseToGradient(what + " dLogitScale alone", Tensor.zeros(DType.F32, 1), cpuScale, onlyScale, 1e-2f);
    }

    /** expected and actual = start + a gradient: within tol of the expected gradient's largest magnitude (1e-6 at least). */
    static void assertCloseToGradient(String what, Tensor start, Tensor expected, Tensor actualDevice, float tol) {
        float[] s = start.toFloatArray(), e = expected.toFloatArray(), a = down(actualDevice);
        float scale = 1e-6f; // a zero gradient (N = 1) must leave the start as it is
        for (int i = 0; i < e.length; i++) scale = Math.max(scale, Math.abs(e[i] - s[i]));
        for (int i = 0; i < e.length; i++) {
            if (!(Math.abs(e[i] - a[i]) <= tol * scale)) {
                throw new AssertionError(what + ": element " + i + " expected " + e[i] + " got " + a[i] + " (tol " + tol * scale + ")");
            }
        }
    }

    // ---------------------------------------------------------------- optimizer and reductions

    @Test
    void adamwAndReductions() {
        int n = 1001;
        Tensor p = random(180, n), g = random(181, n), m = random(182, n), v = random(183, n);
        for (int i = 0; i < n; i++) v.f32()[i] = Math.abs(v.f32()[i]);
        Tensor dp = up(p), dg = up(g), dm = up(m), dv = up(v);
        for (int step = 1; step <= 3; step++) {
            CPU.adamwUpdate(p, g, m, v, 1e-3f, 0.9f, 0.98f, 1e-6f, 0.2f, step, 0.5f);
            cuda.adamwUpdate(dp, dg, dm, dv, 1e-3f, 0.9f, 0.98f, 1e-6f, 0.2f, step, 0.5f);
        }
        assertClose("adamw param", p, dp, 1e-6f);
        assertClose("adamw m", m, dm, 1e-6f);
        assertClose("adamw v", v, dv, 1e-6f);
        for (int size : new int[] {1, 300, 100_000}) {
            Tensor x = random(184 + size, size);
            assertEquals(CPU.sumOfSquares(x), cuda.sumOfSquares(up(x)), 1e-9 * size, "sumOfSquares " + size);
            Tensor dx = up(x);
            assertFalse(cuda.hasNonFinite(dx));
            x.f32()[size - 1] = Float.NaN;
            assertTrue(cuda.hasNonFinite(up(x)));
            x.f32()[size - 1] = Float.NEGATIVE_INFINITY;
            assertTrue(cuda.hasNonFinite(up(x)));
        }
        // rowArgmax: rows shorter than, equal to and longer than a warp (77: CLIP's context), ties, negative ids
        SplittableRandom rng = new SplittableRandom(185);
        for (int t : new int[] {1, 5, 32, 77, 205}) {
            int rows = 3;
            int[] ids = new int[rows * t];
            for (int i = 0; i < ids.length; i++) ids[i] = rng.nextInt(-4, 6); // few values: many ties
            ids[t - 1] = Integer.MIN_VALUE;
            Tensor x = Tensor.of(ids, rows, t), expected = Tensor.zeros(DType.I32, rows), actual = cuda.zeros(DType.I32, rows);
            CPU.rowArgmax(expected, x);
            cuda.rowArgmax(actual, up(x));
            assertArrayEquals(expected.i32(), cuda.download(actual).i32(), "rowArgmax T=" + t);
        }
    }

    /** The fused global norm: every tensor of a list (views and ragged sizes) in one reduction, inf/NaN kept. */
    @Test
    void sumOfSquaresOfAListOfTensors() {
        Tensor flat = random(190, 100_301);
        java.util.List<Tensor> hosts = java.util.List.of(random(191, 1), flat.slice(0, 300), flat.slice(300, 100_300),
                random(192, 7, 5), flat.slice(100_300, 100_301));
        double expected = 0;
        for (Tensor t : hosts) expected += CPU.sumOfSquares(t);
        Tensor device = up(flat);
        java.util.List<Tensor> onDevice = java.util.List.of(up(hosts.get(0)), device.slice(0, 300), device.slice(300, 100_300),
                up(hosts.get(3)), device.slice(100_300, 100_301));
        assertEquals(expected, CPU.sumOfSquaresAll(hosts), 1e-12 * expected, "the CPU reference");
        assertEquals(expected, cuda.sumOfSquaresAll(onDevice), 1e-9 * expected, "sumOfSquaresAll");
        assertEquals(expected, cuda.sumOfSquaresAll(onDevice), 1e-9 * expected, "again (the cached tensor table)");
        double firstTwo = CPU.sumOfSquares(hosts.get(0)) + CPU.sumOfSquares(hosts.get(1));
        assertEquals(firstTwo, cuda.sumOfSquaresAll(onDevice.subList(0, 2)), 1e-9 * firstTwo, "another list");
        assertEquals(0.0, cuda.sumOfSquaresAll(java.util.List.of()));
        Tensor bad = random(193, 3001);
        bad.f32()[2999] = Float.POSITIVE_INFINITY;
        assertEquals(Double.POSITIVE_INFINITY, cuda.sumOfSquaresAll(java.util.List.of(device, up(bad))));
        bad.f32()[2999] = Float.NaN;
        assertTrue(Double.isNaN(cuda.sumOfSquaresAll(java.util.List.of(up(bad), device))));
        assertThrows(IllegalArgumentException.class, () -> cuda.sumOfSquaresAll(java.util.List.of(cuda.zeros(DType.BF16, 4))));
    }

    // ---------------------------------------------------------------- backward ops (accumulate into non-zero starts)

    /**
     * The two-stage column reductions (bias and layernorm parameter gradients) on ragged row counts around the
     * 64-row chunk and up to 8192 rows, and ragged column counts around the 32-column tile.
     */
    @Test
    void columnReductionsOnRaggedShapes() {
        for (int[] s : new int[][] {{1, 1}, {5, 37}, {63, 32}, {64, 130}, {65, 3}, {777, 33}, {8192, 37}}) {
            int n = s[0], c = s[1];
            Tensor dout = random(240 + n, n, c), db = random(241, c), gdb = up(db);
            CPU.broadcastAddBackward(db, dout);
            cuda.broadcastAddBackward(gdb, up(dout));
            assertClose("broadcastAddBackward n=" + n + " c=" + c, db, gdb, TOL);

            Tensor x = random(242 + n, n, c), lw = random(243, c), lb = random(244, c), y = Tensor.zeros(DType.F32, n, c);
            Tensor mean = Tensor.zeros(DType.F32, n), rstd = Tensor.zeros(DType.F32, n);
            CPU.layerNormForward(y, mean, rstd, x, lw, lb, 1e-5f);
            Tensor ldw = random(245, c), ldb = random(246, c), gldw = up(ldw), gldb = up(ldb);
            Tensor gx = up(x), gdout = up(dout), gmean = up(mean), grstd = up(rstd);
            CPU.layerNormBackward(null, ldw, ldb, dout, x, lw, mean, rstd);
            cuda.layerNormBackward(null, gldw, gldb, gdout, gx, up(lw), gmean, grstd);
            assertClose("layerNormBackward dw n=" + n + " c=" + c, ldw, gldw, TOL);
            assertClose("layerNormBackward db n=" + n + " c=" + c, ldb, gldb, TOL);
            Tensor onlyDb = random(247, c), gOnlyDb = up(onlyDb);
            CPU.layerNormBackward(null, null, onlyDb, dout, x, lw, mean, rstd);
            cuda.layerNormBackward(null, null, gOnlyDb, gdout, gx, up(lw), gmean, grstd);
            assertClose("layerNormBackward db alone n=" + n + " c=" + c, onlyDb, gOnlyDb, TOL);
        }
    }

    @Test
    void elementwiseAndBiasBackward() {
        for (int[] s : new int[][] {{1, 1}, {7, 33}, {3, 5, 64}}) {
            int m = s[s.length - 1];
            Tensor x = random(200, s), dout = random(201, s), dx = random(202, s), gdx = up(dx);
            CPU.quickGeluBackward(dx, dout, x);
            cuda.quickGeluBackward(gdx, up(dout), up(x));
            assertClose("quickGeluBackward", dx, gdx, 1e-6f);
            Tensor out = Tensor.zeros(DType.F32, s);
            CPU.reluForward(out, x);
            CPU.reluBackward(dx, dout, out);
            cuda.reluBackward(gdx, up(dout), up(out));
            assertClose("reluBackward", dx, gdx, 1e-6f);
            Tensor db = random(203, m), gdb = up(db);
            CPU.broadcastAddBackward(db, dout);
            cuda.broadcastAddBackward(gdb, up(dout));
            assertClose("broadcastAddBackward", db, gdb, 1e-5f);
        }
    }

    @Test
    void linearAndLayerNormBackward() {
        for (int[] s : new int[][] {{1, 1, 1}, {13, 24, 40}, {2 * 50, 64, 17}}) {
            int n = s[0], in = s[1], o = s[2];
            Tensor x = random(210, n, in), w = random(211, o, in), dout = random(212, n, o);
            Tensor dx = random(213, n, in), dw = random(214, o, in), db = random(215, o);
            Tensor gdx = up(dx), gdw = up(dw), gdb = up(db);
            CPU.linearBackward(dx, dw, db, dout, x, w);
            cuda.linearBackward(gdx, gdw, gdb, up(dout), up(x), up(w));
            assertClose("linearBackward dx", dx, gdx, TOL);
            assertClose("linearBackward dw", dw, gdw, TOL);
            assertClose("linearBackward dbias", db, gdb, TOL);

            Tensor lw = random(216, in), lb = random(217, in), y = Tensor.zeros(DType.F32, n, in);
            Tensor mean = Tensor.zeros(DType.F32, n), rstd = Tensor.zeros(DType.F32, n);
            CPU.layerNormForward(y, mean, rstd, x, lw, lb, 1e-5f);
            Tensor g = random(218, n, in), ldx = random(219, n, in), ldw = random(220, in), ldb = random(221, in);
            Tensor gldx = up(ldx), gldw = up(ldw), gldb = up(ldb);
            CPU.layerNormBackward(ldx, ldw, ldb, g, x, lw, mean, rstd);
            cuda.layerNormBackward(gldx, gldw, gldb, up(g), up(x), up(lw), up(mean), up(rstd));
            assertClose("layerNormBackward dx", ldx, gldx, TOL);
            assertClose("layerNormBackward dw", ldw, gldw, TOL);
            assertClose("layerNormBackward db", ldb, gldb, TOL);
        }
    }

    @Test
    void attentionBackwardMatchesCpu() {
        for (int[] s : new int[][] {{1, 1, 1}, {2, 13, 2}, {1, 77, 1}, {1, 70, 2}}) {
            int b = s[0], t = s[1], heads = s[2], c = heads * 64;
            Tensor qkv = random(230 + t, b, t, 3 * c);
            CPU.scale(qkv, 2f);
            for (boolean causal : new boolean[] {false, true}) {
                Tensor out = Tensor.zeros(DType.F32, b, t, c), lse = Tensor.zeros(DType.F32, b, heads, t);
                CPU.attentionForward(out, lse, qkv, heads, causal);
                Tensor dout = random(231, b, t, c), dqkv = random(232, b, t, 3 * c), gdqkv = up(dqkv);
                CPU.attentionBackward(dqkv, dout, qkv, out, lse, heads, causal);
                cuda.attentionBackward(gdqkv, up(dout), up(qkv), up(out), up(lse), heads, causal);
                assertClose("attentionBackward " + java.util.Arrays.toString(s) + (causal ? " causal" : ""), dqkv, gdqkv, TOL);
            }
        }
    }

    @Test
    void gatherAndPatchEmbedBackward() {
        int v = 11, c = 37;
        Tensor ids = Tensor.of(new int[] {0, 10, 3, 3, 7, 3}, 2, 3);
        Tensor dout = random(240, 2, 3, c), dtable = random(241, v, c), gdtable = up(dtable);
        CPU.embeddingBackward(dtable, dout, ids);
        cuda.embeddingBackward(gdtable, up(dout), up(ids));
        assertClose("embeddingBackward (repeated ids)", dtable, gdtable, 1e-5f);
        Tensor index = Tensor.of(new int[] {4, 0, 2}, 3);
        Tensor drows = random(242, 3, c), dx = random(243, 3, 5, c), gdx = up(dx);
        CPU.gatherRowsBackward(dx, drows, index);
        cuda.gatherRowsBackward(gdx, up(drows), up(index));
        assertClose("gatherRowsBackward", dx, gdx, 1e-6f);

        int b = 2, ci = 3, r = 12, p = 4, e = 5, grid = r / p;
        Tensor x = random(244, b, ci, r, r), w = random(245, e, ci, p, p), g = random(246, b, grid * grid, e);
        Tensor px = random(247, b, ci, r, r), pw = random(248, e, ci, p, p), gpx = up(px), gpw = up(pw);
        CPU.patchEmbedBackward(px, pw, g, x, w);
        cuda.patchEmbedBackward(gpx, gpw, up(g), up(x), up(w));
        assertClose("patchEmbedBackward dx", px, gpx, TOL);
        assertClose("patchEmbedBackward dw", pw, gpw, TOL);
        cuda.patchEmbedBackward(null, gpw, up(g), up(x), up(w)); // pixels need no gradient
        CPU.patchEmbedBackward(null, pw, g, x, w);
        assertClose("patchEmbedBackward dw only", pw, gpw, TOL);
    }

    // ---------------------------------------------------------------- backend machinery

    @Test
    void aCaptureReusesTheBlocksItReleases() {
        // Eagerly the four temporaries share one cached block; the capture must do the same (it may not allocate).
        Tensor x = cuda.upload(random(196, 4, 64)), y = cuda.zeros(DType.F32, 4, 64);
        Runnable body = () -> {
            cuda.fill(y, 0f);
            for (int i = 0; i < 4; i++) {
                Tensor t = cuda.empty(DType.F32, 4, 64);
                cuda.quickGeluForward(t, x);
                cuda.add(y, y, t);
                cuda.release(t);
            }
        };
        body.run();
        try (CudaGraph graph = cuda.capture(body)) {
            cuda.fill(y, 7f);
            graph.replay();
            Tensor expected = Tensor.zeros(DType.F32, 4, 64);
            CPU.quickGeluForward(expected, cuda.download(x));
            CPU.scale(expected, 4f);
            assertClose("four released temporaries in one capture", expected, y, TOL);
        }
    }

    @Test
    void releasingTemporariesLetsACaptureFollowWithoutACollection() {
        // Two temporaries and the result, of a size class nothing else here uses: still referenced (no collection
        // runs in between), they would have to come from the driver, which a capture refuses.
        Tensor x = cuda.upload(random(198, 3, 12345));
        Supplier<Tensor> forward = () -> {
            Tensor a = cuda.empty(DType.F32, 3, 12345), b = cuda.empty(DType.F32, 3, 12345), out = cuda.empty(DType.F32, 3, 12345);
            cuda.quickGeluForward(a, x);
            cuda.add(b, a, a);
            cuda.add(out, b, x);
            return out;
        };
        Tensor eager = cuda.releasingTemporaries(forward);
        float[] expected = down(eager);
        cuda.release(eager);
        Tensor[] captured = new Tensor[1];
        try (CudaGraph graph = cuda.capture(() -> captured[0] = forward.get())) {
            graph.replay();
            assertArrayEquals(expected, down(captured[0]));
        }
        Tensor host = Tensor.zeros(DType.F32, 3, 12345);
        CPU.quickGeluForward(host, cuda.download(x));
        CPU.scale(host, 2f);
        CPU.add(host, host, cuda.download(x));
        assertClose("releasingTemporaries result", host, cuda.upload(Tensor.of(expected, 3, 12345)), TOL);
    }

    @Test
    void graphCaptureReplaysWithNewInputs() {
        Tensor x = cuda.upload(random(190, 4, 64)), w = cuda.upload(random(191, 64)), b = cuda.upload(random(192, 64));
        Tensor y = cuda.zeros(DType.F32, 4, 64);
        try (CudaGraph graph = cuda.capture(() -> {
            cuda.layerNormForward(y, null, null, x, w, b, 1e-5f);
            cuda.quickGeluForward(y, y);
        })) {
            for (long seed = 193; seed < 195; seed++) {
                Tensor input = random(seed, 4, 64);
                cuda.copy(x, cuda.upload(input));
                graph.replay();
                Tensor expected = Tensor.zeros(DType.F32, 4, 64);
                CPU.layerNormForward(expected, null, null, input, cuda.download(w), cuda.download(b), 1e-5f);
                CPU.quickGeluForward(expected, expected);
                assertClose("graph replay " + seed, expected, y, TOL);
            }
        }
    }

    @Test
    void graphKeepsItsTemporariesToItself() {
        Tensor x = random(196, 1, 2, 6, 6), w = random(197, 3, 2, 3, 3);
        Tensor dx = up(x), dw = up(w), y = cuda.zeros(DType.F32, 1, 3, 6, 6);
        cuda.conv2dForward(y, dx, dw, null, 1, 1); // warm-up: the allocator caches im2col's buffers
        try (CudaGraph graph = cuda.capture(() -> cuda.conv2dForward(y, dx, dw, null, 1, 1))) {
            Tensor bystander = cuda.zeros(DType.F32, 36, 18); // im2col's size class: must not get the graph's buffer
            cuda.fill(bystander, 7f);
            cuda.fill(y, 0f);
            graph.replay();
            Tensor expected = Tensor.zeros(DType.F32, 1, 3, 6, 6);
            CPU.conv2dForward(expected, x, w, null, 1, 1);
            assertClose("conv2d replay", expected, y, TOL);
            for (float v : down(bystander)) assertEquals(7f, v);
        }
    }

    @Test
    void anAllocationInsideACaptureIsRefusedWithItsCauseAndTheStreamStaysUsable() {
        Tensor x = up(random(61, 1000)), out = cuda.empty(DType.F32, 1000);
        Tensor half = cuda.empty(DType.BF16, 777_777); // fill() of a BF16 tensor needs an F32 temporary of a fresh size
        IllegalStateException e = assertThrows(IllegalStateException.class, () -> cuda.capture(() -> {
            cuda.add(out, x, x);
            cuda.fill(half, 1f);
        }));
        assertTrue(e.getMessage().startsWith("capture: fill needs 3111108 bytes that the allocator's cache does not hold, and CUDA "
                + "forbids allocating during a capture"), e.getMessage());
        assertTrue(e.getCause() instanceof org.clipj.cuda.CudaException, "the driver's refusal is the cause: " + e.getCause());
        try (CudaGraph graph = cuda.capture(() -> cuda.add(out, x, x))) {
            graph.replay();
        }
        float[] xs = down(x), got = down(out);
        for (int i = 0; i < xs.length; i++) assertEquals(2 * xs[i], got[i]);
    }

    @Test
    void allocatorReusesReleasedBlocks() {
        Tensor t = cuda.zeros(DType.F32, 1000);
        long misses = cuda.cx.memory.driverAllocations();
        cuda.release(t);
        Tensor again = cuda.zeros(DType.F32, 999); // same size class
        assertEquals(misses, cuda.cx.memory.driverAllocations());
        assertEquals(DeviceAllocator.sizeClass(4000), DeviceAllocator.sizeClass(3996));
        assertTrue(DeviceAllocator.sizeClass(5_000_000) >= 5_000_000 && DeviceAllocator.sizeClass(5_000_000) < 6_000_000);
        cuda.release(again);
    }

    @Test
    void concurrentCallersOnDistinctOutputs() throws Exception {
        Tensor x = random(250, 64, 96), w = random(251, 96), b = random(252, 96);
        Tensor expected = Tensor.zeros(DType.F32, 64, 96);
        CPU.layerNormForward(expected, null, null, x, w, b, 1e-5f);
        Tensor dx = up(x), dw = up(w), db = up(b);
        java.util.List<Thread> threads = new java.util.ArrayList<>();
        java.util.List<Tensor> outs = java.util.Collections.synchronizedList(new java.util.ArrayList<>());
        java.util.concurrent.atomic.AtomicReference<Throwable> failure = new java.util.concurrent.atomic.AtomicReference<>();
        for (int i = 0; i < 4; i++) {
            Thread t = new Thread(() -> {
                try {
                    for (int r = 0; r < 5; r++) {
                        Tensor y = cuda.zeros(DType.F32, 64, 96);
                        cuda.layerNormForward(y, null, null, dx, dw, db, 1e-5f);
                        outs.add(y);
                    }
                } catch (Throwable e) {
                    failure.set(e);
                }
            });
            threads.add(t);
            t.start();
        }
        for (Thread t : threads) t.join();
        if (failure.get() != null) throw new AssertionError("a concurrent caller failed", failure.get());
        assertEquals(20, outs.size());
        for (Tensor y : outs) assertClose("concurrent layerNorm", expected, y, TOL);
    }

    @Test
    void attentionWiderThanTheKernelsSaysSo() {
        Tensor qkv = cuda.zeros(DType.F32, 1, 3, 3 * 160), out = cuda.zeros(DType.F32, 1, 3, 160);
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> cuda.attentionForward(out, null, qkv, 1, false));
        assertTrue(e.getMessage().startsWith("attentionForward: head dim 160"), e.getMessage());
        Tensor lse = cuda.zeros(DType.F32, 1, 1, 3);
        e = assertThrows(IllegalArgumentException.class,
                () -> cuda.attentionBackward(cuda.zeros(DType.F32, 1, 3, 3 * 160), out, qkv, out, lse, 1, false));
        assertTrue(e.getMessage().startsWith("attentionBackward: head dim 160"), e.getMessage());
    }

    @Test
    void sharedMemoryBeyondTheDeviceIsRefusedWithTheKernelName() {
        int l = 60_000; // attention pooling over 60000 keys: 241 KB of scores, query and P V partials, more than any GPU's opt-in
        Tensor q = cuda.zeros(DType.F32, 1, 64), k = cuda.zeros(DType.F32, 1, l, 64), out = cuda.zeros(DType.F32, 1, 64);
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> cuda.attentionPoolForward(out, null, q, k, k, 1));
        assertTrue(e.getMessage().startsWith("attention_pool_forward: needs 241280 bytes of shared memory"), e.getMessage());
    }

    @Test
    void cpuTensorsAreRejectedWithTheOpName() {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> cuda.add(cuda.zeros(DType.F32, 2), Tensor.zeros(DType.F32, 2), cuda.zeros(DType.F32, 2)));
        assertTrue(e.getMessage().startsWith("add:"), e.getMessage());
    }
}
