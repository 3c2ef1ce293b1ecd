package org.clipj.runtime.cpu;

import static org.clipj.runtime.cpu.OpTesting.FAST;
import static org.clipj.runtime.cpu.OpTesting.SCALAR;
import static org.clipj.runtime.cpu.OpTesting.assertClose;
import static org.clipj.runtime.cpu.OpTesting.random;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.util.Arrays;
import java.util.SplittableRandom;

import org.clipj.runtime.Activation;
import org.clipj.runtime.DType;
import org.clipj.runtime.InvalidInputException;
import org.clipj.runtime.Tensor;
import org.junit.jupiter.api.Test;

/**
 * The native AVX512_BF16 linear layers against the scalar reference (the F32 reference GEMM on
 * BF16-rounded activations and the BF16 weights widened), on ragged and CLIP's own shapes, with each
 * epilogue; and the refusal on a machine without the instructions.
 */
class Bf16LinearOpsTest {

    private static void assumeBf16() {
        String reason = Bf16Gemm.unavailableReason();
        assumeTrue(reason == null, "native BF16 kernels unavailable here: " + reason);
    }

    /** w (o, i) as BF16, rounded from uniform values in [-scale, scale]. */
    private static Tensor bf16(SplittableRandom rng, float scale, int o, int i) {
        Tensor w = Tensor.zeros(DType.BF16, o, i);
        FAST.cast(w, random(rng, scale, o, i));
        return w;
    }

    /**
     * out from the native kernel on a prepared weight vs the scalar reference: the same BF16 products,
     * summed in F32 (native) or double (reference), so the difference is F32 rounding of k terms.
     */
    private static void check(SplittableRandom rng, int rows, int in, int out, Activation activation, boolean residual) {
        Tensor x = random(rng, 1f, rows, in);
        Tensor w = bf16(rng, 0.1f, out, in);
        Tensor bias = random(rng, 0.5f, out);
        Tensor res = residual ? random(rng, 1f, rows, out) : null;
        Tensor expected = Tensor.zeros(DType.F32, rows, out);
        Tensor actual = FAST.empty(DType.F32, rows, out);
        Tensor prepared = FAST.prepareWeight(w);
        if (activation != null) {
            SCALAR.linearActivationForward(expected, x, w, bias, activation);
            FAST.linearActivationForward(actual, x, prepared, bias, activation);
        } else if (residual) {
            SCALAR.linearResidualForward(expected, x, w, bias, res);
            FAST.linearResidualForward(actual, x, prepared, bias, res);
        } else {
            SCALAR.linearForward(expected, x, w, null);
            FAST.linearForward(actual, x, prepared, null);
        }
        assertClose("bf16 linear " + rows + "x" + in + "->" + out + " " + activation + (residual ? " residual" : ""),
                expected, actual, 1e-5, 2e-5 * Math.sqrt(in));
        FAST.release(actual);
    }

    @Test
    void nativeKernelMatchesScalarReferenceOnRaggedShapes() {
        assumeBf16();
        SplittableRandom rng = new SplittableRandom(15);
        int[][] shapes = {{1, 1, 1}, {1, 3, 17}, {7, 13, 47}, {9, 31, 48}, {8, 64, 49}, {50, 96, 97}, {63, 255, 130},
                {65, 257, 96}, {3, 1100, 200}, {77, 64, 1},
                {9, 3101, 60},      // odd depth past one depth block (1536 pairs): C accumulated over two
                {300, 32, 200}};    // tiles of 150 rows: two row blocks (96) per tile
        for (int[] s : shapes) {
            check(rng, s[0], s[1], s[2], null, false);
            check(rng, s[0], s[1], s[2], Activation.QUICK_GELU, false);
            check(rng, s[0], s[1], s[2], Activation.GELU, false);
            check(rng, s[0], s[1], s[2], null, true);
        }
    }

    @Test
    void nativeKernelMatchesScalarReferenceOnClipShapes() {
        assumeBf16();
        SplittableRandom rng = new SplittableRandom(16);
        check(rng, 50, 768, 2304, null, false);             // ViT-B/32 b1: in_proj
        check(rng, 50, 768, 3072, Activation.QUICK_GELU, false);   // c_fc
        check(rng, 100, 3072, 768, null, true);             // c_proj, two images
        check(rng, 77, 512, 2048, Activation.GELU, false);  // text c_fc (open_clip GELU)
        check(rng, 154, 512, 512, null, true);              // text out_proj, two texts
    }

    @Test
    void unpreparedBf16WeightAndLeadingShapes() {
        assumeBf16();
        SplittableRandom rng = new SplittableRandom(17);
        Tensor x = random(rng, 1f, 2, 25, 96);
        Tensor w = bf16(rng, 0.1f, 100, 96);
        Tensor bias = random(rng, 0.5f, 100);
        Tensor expected = Tensor.zeros(DType.F32, 2, 25, 100), actual = Tensor.zeros(DType.F32, 2, 25, 100);
        SCALAR.linearForward(expected, x, w, bias);
        FAST.linearForward(actual, x, w, bias);   // not prepared: packed for the call
        assertClose("unprepared bf16 linear", expected, actual, 1e-5, 2e-4);
    }

    /** w (c, ci, p, p) as BF16, rounded from uniform values in [-scale, scale]. */
    private static Tensor bf16Conv(SplittableRandom rng, float scale, int c, int ci, int p) {
        Tensor w = Tensor.zeros(DType.BF16, c, ci, p, p);
        FAST.cast(w, random(rng, scale, c, ci, p, p));
        return w;
    }

    @Test
    void patchEmbeddingInBf16MatchesScalarReference() {
        assumeBf16();
        SplittableRandom rng = new SplittableRandom(19);
        // b, ci, h, w, c, p: odd depth (ci p p = 9), ragged width, ViT-L/14's depth 588, ViT-B/16's 768, ViT-B/32's
        // 3072 at its full width and resolution
        int[][] shapes = {{3, 1, 9, 6, 7, 3}, {2, 3, 28, 28, 50, 14}, {1, 3, 32, 16, 100, 16}, {1, 3, 224, 224, 768, 32}};
        for (int[] s : shapes) {
            int b = s[0], ci = s[1], h = s[2], wd = s[3], c = s[4], p = s[5], patches = (h / p) * (wd / p);
            Tensor x = random(rng, 2f, b, ci, h, wd);
            Tensor w = bf16Conv(rng, 0.05f, c, ci, p);
            Tensor expected = Tensor.zeros(DType.F32, b, patches, c);
            Tensor prepared = FAST.empty(DType.F32, b, patches, c), unprepared = FAST.empty(DType.F32, b, patches, c);
            SCALAR.patchEmbedForward(expected, x, w);
            FAST.patchEmbedForward(prepared, x, FAST.prepareWeight(w));
            FAST.patchEmbedForward(unprepared, x, w);
            String what = "bf16 patch embedding " + Arrays.toString(s);
            assertClose(what, expected, prepared, 1e-5, 2e-5 * Math.sqrt(ci * p * p));
            assertClose(what + " unprepared", expected, unprepared, 1e-5, 2e-5 * Math.sqrt(ci * p * p));
        }
    }

    @Test
    void bf16IsCloseToF32() {
        assumeBf16();
        SplittableRandom rng = new SplittableRandom(18);
        Tensor x = random(rng, 1f, 50, 768);
        Tensor w32 = random(rng, 0.05f, 768, 768);
        Tensor w16 = Tensor.zeros(DType.BF16, 768, 768);
        FAST.cast(w16, w32);
        Tensor f32 = Tensor.zeros(DType.F32, 50, 768), bf = Tensor.zeros(DType.F32, 50, 768);
        FAST.linearForward(f32, x, w32, null);
        FAST.linearForward(bf, x, FAST.prepareWeight(w16), null);
        // BF16 keeps 8 bits: each product is off by ~2^-8 relative, the sum of 768 by ~sqrt(768) of that
        assertClose("bf16 vs f32", f32, bf, 0, 2e-2);
    }

    @Test
    void refusedWhereTheCpuLacksAvx512Bf16() {
        String previous = System.getProperty(Bf16Gemm.MASK_PROPERTY);
        System.setProperty(Bf16Gemm.MASK_PROPERTY, "avx512_bf16");
        try {
            String reason = Bf16Gemm.unavailableReason();
            assertTrue(reason != null && reason.contains("avx512_bf16") && reason.contains(Bf16Gemm.MASK_PROPERTY), reason);
            Tensor w = Tensor.zeros(DType.BF16, 4, 4);
            InvalidInputException e = assertThrows(InvalidInputException.class, () -> FAST.prepareWeight(w));
            assertTrue(e.getMessage().contains("avx512_bf16"), e.getMessage());
        } finally {
            if (previous == null) System.clearProperty(Bf16Gemm.MASK_PROPERTY);
            else System.setProperty(Bf16Gemm.MASK_PROPERTY, previous);
        }
    }

    @Test
    void badBf16WeightsNameTheOp() {
        Tensor rank3 = Tensor.zeros(DType.BF16, 4, 3, 2);
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> FAST.prepareWeight(rank3));
        assertTrue(e.getMessage().startsWith("prepareWeight:"), e.getMessage());
        Tensor f16 = Tensor.zeros(DType.F16, 4, 4);
        e = assertThrows(IllegalArgumentException.class,
                () -> FAST.linearForward(Tensor.zeros(DType.F32, 2, 4), Tensor.zeros(DType.F32, 2, 4), f16, null));
        assertTrue(e.getMessage().startsWith("linearForward:") && e.getMessage().contains("F16"), e.getMessage());
    }
}
