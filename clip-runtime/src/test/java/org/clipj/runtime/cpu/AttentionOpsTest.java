package org.clipj.runtime.cpu;

import static org.clipj.runtime.cpu.OpTesting.FAST;
import static org.clipj.runtime.cpu.OpTesting.SCALAR;
import static org.clipj.runtime.cpu.OpTesting.assertClose;
import static org.clipj.runtime.cpu.OpTesting.assertGradient;
import static org.clipj.runtime.cpu.OpTesting.project;
import static org.clipj.runtime.cpu.OpTesting.random;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import java.util.SplittableRandom;
import java.util.function.DoubleSupplier;

import org.clipj.runtime.Backend;
import org.clipj.runtime.DType;
import org.clipj.runtime.Tensor;
import org.junit.jupiter.api.Test;

/** Fused attention (packed qkv, causal or full) and attention pooling. */
class AttentionOpsTest {

    /** softmax(q k^T / sqrt(hd) + mask) v with the whole (T, T) matrix, in double: the definition. */
    private static float[] naive(Tensor qkv, int heads, boolean causal, float[] lseOut) {
        int b = qkv.dim(0), t = qkv.dim(1), c = qkv.dim(2) / 3, hd = c / heads;
        float[] x = qkv.f32(), out = new float[b * t * c];
        for (int bi = 0; bi < b; bi++) {
            for (int h = 0; h < heads; h++) {
                double[][] s = new double[t][t];
                for (int i = 0; i < t; i++) {
                    double max = Double.NEGATIVE_INFINITY;
                    for (int j = 0; j < t; j++) {
                        double dot = 0;
                        for (int d = 0; d < hd; d++) {
                            dot += (double) x[(bi * t + i) * 3 * c + h * hd + d] * x[(bi * t + j) * 3 * c + c + h * hd + d];
                        }
                        s[i][j] = causal && j > i ? Double.NEGATIVE_INFINITY : dot / Math.sqrt(hd);
                        max = Math.max(max, s[i][j]);
                    }
                    double sum = 0;
                    for (int j = 0; j < t; j++) sum += Math.exp(s[i][j] - max);
                    lseOut[(bi * heads + h) * t + i] = (float) (max + Math.log(sum));
                    for (int d = 0; d < hd; d++) {
                        double acc = 0;
                        for (int j = 0; j < t; j++) acc += Math.exp(s[i][j] - max) / sum * x[(bi * t + j) * 3 * c + 2 * c + h * hd + d];
                        out[(bi * t + i) * c + h * hd + d] = (float) acc;
                    }
                }
            }
        }
        return out;
    }

    @Test
    void forwardMatchesDefinition() {
        SplittableRandom rng = new SplittableRandom(1);
        // range 2: scores within a few units; range 12: score gaps past -87, where exp underflows
        for (float range : new float[] {2f, 12f}) {
            for (boolean causal : new boolean[] {false, true}) {
                Tensor qkv = random(rng, range, 2, 9, 3 * 2 * 8);
                float[] lse = new float[2 * 2 * 9];
                float[] expected = naive(qkv, 2, causal, lse);
                for (Backend be : new Backend[] {SCALAR, FAST}) {
                    Tensor out = Tensor.zeros(DType.F32, 2, 9, 16), l = Tensor.zeros(DType.F32, 2, 2, 9);
                    be.attentionForward(out, l, qkv, 2, causal);
                    String what = "causal=" + causal + " range=" + range + " " + be.description();
                    assertClose("attention " + what, expected, out.toFloatArray(), 1e-5, 1e-5);
                    assertClose("lse " + what, lse, l.toFloatArray(), 1e-5, 1e-5);
                    Tensor inference = Tensor.zeros(DType.F32, 2, 9, 16);   // no lse asked: the same output
                    be.attentionForward(inference, null, qkv, 2, causal);
                    assertArrayEquals(out.toFloatArray(), inference.toFloatArray(), "attention without lse " + what);
                }
            }
        }
    }

    @Test
    void fastMatchesScalar() {
        SplittableRandom rng = new SplittableRandom(2);
        // (B, T, heads, headDim): head dim 64 first, then others; T ragged.
        int[][] cases = {{2, 1, 2, 64}, {1, 7, 2, 64}, {2, 50, 1, 64}, {1, 77, 12, 64}, {1, 197, 2, 64}, {1, 257, 1, 64},
            {2, 65, 3, 32}, {1, 63, 2, 80}, {3, 5, 4, 7},
            // CLIP's other head widths (ViT-H 80, ViT-g 88, ViT-bigG 104, 112) at their sequence lengths
            {1, 257, 2, 80}, {2, 50, 1, 88}, {1, 77, 2, 104}, {1, 197, 1, 112},
            // the fused forward's edges: T = 2..4 and around its 8-row blocks and 16-key panels, heads
            // narrower than one vector, one and a half vectors, one vector and a tail
            {1, 2, 1, 88}, {2, 3, 2, 104}, {1, 4, 1, 16}, {1, 9, 2, 48}, {1, 16, 1, 24}, {1, 17, 2, 40}, {1, 33, 1, 20},
            {1, 32, 1, 8}};
        for (int[] cs : cases) {
            int b = cs[0], t = cs[1], heads = cs[2], c = heads * cs[3];
            for (boolean causal : new boolean[] {false, true}) {
                Tensor qkv = random(rng, 1f, b, t, 3 * c), g = random(rng, 1f, b, t, c);
                Tensor[] r = new Tensor[6];
                int n = 0;
                for (Backend be : new Backend[] {SCALAR, FAST}) {
                    Tensor out = Tensor.zeros(DType.F32, b, t, c), lse = Tensor.zeros(DType.F32, b, heads, t);
                    be.attentionForward(out, lse, qkv, heads, causal);
                    Tensor dqkv = random(new SplittableRandom(3), 1f, b, t, 3 * c);
                    be.attentionBackward(dqkv, g, qkv, out, lse, heads, causal);
                    r[n++] = out;
                    r[n++] = lse;
                    r[n++] = dqkv;
                }
                String what = "attention " + java.util.Arrays.toString(cs) + " causal=" + causal;
                assertClose(what + " out", r[0], r[3], 1e-5, 1e-5);
                assertClose(what + " lse", r[1], r[4], 1e-5, 1e-5);
                assertClose(what + " dqkv", r[2], r[5], 1e-5, 1e-5);
            }
        }
    }

    @Test
    void gradientMatchesFiniteDifferences() {
        SplittableRandom rng = new SplittableRandom(4);
        for (boolean causal : new boolean[] {false, true}) {
            Tensor qkv = random(rng, 1f, 2, 4, 3 * 2 * 3), proj = random(rng, 1f, 2, 4, 6);
            Tensor out = Tensor.zeros(DType.F32, 2, 4, 6), lse = Tensor.zeros(DType.F32, 2, 2, 4);
            for (Backend be : new Backend[] {SCALAR, FAST}) {
                be.attentionForward(out, lse, qkv, 2, causal);
                Tensor dqkv = Tensor.zeros(DType.F32, 2, 4, 18);
                be.attentionBackward(dqkv, proj, qkv, out, lse, 2, causal);
                DoubleSupplier loss = () -> {
                    be.attentionForward(out, null, qkv, 2, causal);
                    return project(out, proj);
                };
                assertGradient("attention dqkv causal=" + causal, qkv, dqkv, loss, 1e-3, 1e-2);
            }
        }
    }

    @Test
    void badHeadsAndShapesAreRejected() {
        Tensor qkv = Tensor.zeros(DType.F32, 1, 4, 12);
        assertThrows(IllegalArgumentException.class, () -> FAST.attentionForward(Tensor.zeros(DType.F32, 1, 4, 4), null, qkv, 3, true));
        assertThrows(IllegalArgumentException.class, () -> FAST.attentionForward(Tensor.zeros(DType.F32, 1, 4, 5), null, qkv, 2, true));
        assertThrows(IllegalArgumentException.class,
                () -> FAST.attentionBackward(Tensor.zeros(DType.F32, 1, 4, 12), Tensor.zeros(DType.F32, 1, 4, 4), qkv,
                        Tensor.zeros(DType.F32, 1, 4, 4), null, 2, true));
    }
}
