package org.clipj.runtime.cuda;

import static org.clipj.runtime.cuda.CudaParityChecks.CPU;
import static org.clipj.runtime.cuda.CudaParityChecks.random;
import static org.junit.jupiter.api.Assertions.assertEquals;

import org.clipj.runtime.DType;
import org.clipj.runtime.Tensor;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.Test;

/**
 * The attention, attention-pooling and contrastive kernels at CLIP's real shapes (one image or text, one or
 * two heads, to keep the simulator quick): the sequence lengths of ViT-B/32 (50), the text
 * tower (77, causal), ViT-B/16 (197) and ViT-L/14 (257), whose key tiles need the >48 KiB shared-memory
 * opt-in, at head width 64 and the zoo's 80, 88, 104; forward and backward in F32 and BF16; RN50's attention pool (7x7+1 tokens, 2048 channels, 32 heads); the contrastive loss at the batch
 * {@link #contrastiveBatch} gives (4096 on a GPU).
 */
abstract class CudaRealShapeChecks {
    /** The backend under test, opened by the subclass's @BeforeAll. */
    static CudaBackend cuda;

    /**
     * N of the contrastive check: 4096 on a GPU; the simulator takes 256 (each of the N x N dot products is a
     * warp reduction, five shuffles that rendezvous 32 fibers: N = 4096 would be some 2.7e9 fiber switches).
     */
    abstract int contrastiveBatch();

    @AfterAll
    static void closeBackend() {
        if (cuda != null) cuda.close();
        cuda = null;
    }

    private static void assertClose(String what, Tensor expected, Tensor actualDevice, float tol) {
        float[] e = expected.toFloatArray(), a = cuda.download(actualDevice).toFloatArray();
        assertEquals(e.length, a.length, what + ": size");
        float scale = 1f;
        for (float v : e) scale = Math.max(scale, Math.abs(v));
        for (int i = 0; i < e.length; i++) {
            if (!(Math.abs(e[i] - a[i]) <= tol * scale)) {
                throw new AssertionError(what + ": element " + i + " expected " + e[i] + " got " + a[i] + " (tol " + tol * scale + ")");
            }
        }
    }

    @Test
    void attentionForwardAndBackwardAtClipSequenceLengths() {
        // (T, hd): every T at width 64, then the zoo's 80 (ViT-H), 88 (ViT-g), 104 (ViT-bigG) at the longer T
        for (int[] shape : new int[][] {{50, 64}, {77, 64}, {197, 64}, {257, 64}, {77, 80}, {197, 88}, {257, 104}}) {
            int t = shape[0], hd = shape[1];
            boolean causal = t == 77;
            int b = 1, heads = t == 50 ? 2 : 1, c = heads * hd;
            String what = "T=" + t + " H=" + heads + " hd " + hd + (causal ? " causal" : "");
            Tensor qkv = random(300 + t, b, t, 3 * c);
            CPU.scale(qkv, 2f);
            Tensor out = Tensor.zeros(DType.F32, b, t, c), lse = Tensor.zeros(DType.F32, b, heads, t);
            CPU.attentionForward(out, lse, qkv, heads, causal);
            Tensor gOut = cuda.zeros(DType.F32, b, t, c), gLse = cuda.zeros(DType.F32, b, heads, t), gQkv = cuda.upload(qkv);
            cuda.attentionForward(gOut, gLse, gQkv, heads, causal);
            assertClose("attention F32 " + what, out, gOut, 1e-4f);
            assertClose("attention F32 lse " + what, lse, gLse, 1e-4f);

            Tensor dout = random(400 + t, b, t, c), dqkv = random(500 + t, b, t, 3 * c), gdqkv = cuda.upload(dqkv);
            CPU.attentionBackward(dqkv, dout, qkv, out, lse, heads, causal);
            cuda.attentionBackward(gdqkv, cuda.upload(dout), gQkv, gOut, gLse, heads, causal);
            assertClose("attentionBackward F32 " + what, dqkv, gdqkv, 1e-4f);

            // BF16 inputs (the tensor-core kernel), against the CPU on the same rounded inputs.
            Tensor q16 = cuda.zeros(DType.BF16, b, t, 3 * c), rounded = cuda.zeros(DType.F32, b, t, 3 * c);
            cuda.cast(q16, gQkv);
            cuda.cast(rounded, q16);
            Tensor out16 = Tensor.zeros(DType.F32, b, t, c);
            CPU.attentionForward(out16, null, cuda.download(rounded), heads, causal);
            Tensor o16 = cuda.zeros(DType.BF16, b, t, c), o32 = cuda.zeros(DType.F32, b, t, c);
            cuda.attentionForward(o16, null, q16, heads, causal);
            cuda.cast(o32, o16);
            assertClose("attention BF16 " + what, out16, o32, 1e-2f);
            CudaParityChecks.assertBf16BackwardMatchesCpu(cuda, what, 800 + t + hd, b, t, heads, hd, causal, 0, 0);
        }
    }

    @Test
    void attentionPoolAtResNet50Shape() {
        int b = 1, l = 50, c = 2048, heads = 32;
        Tensor q = random(600, b, c), k = random(601, b, l, c), v = random(602, b, l, c);
        Tensor out = Tensor.zeros(DType.F32, b, c), lse = Tensor.zeros(DType.F32, b, heads);
        Tensor gOut = cuda.zeros(DType.F32, b, c), gLse = cuda.zeros(DType.F32, b, heads);
        Tensor gq = cuda.upload(q), gk = cuda.upload(k), gv = cuda.upload(v);
        CPU.attentionPoolForward(out, lse, q, k, v, heads);
        cuda.attentionPoolForward(gOut, gLse, gq, gk, gv, heads);
        assertClose("attentionPool RN50", out, gOut, 1e-4f);
        CudaParityChecks.assertBf16PoolMatchesCpu(cuda, "RN50", q, k, v, heads);
        Tensor g = random(603, b, c), dq = random(604, b, c), dk = random(605, b, l, c), dv = random(606, b, l, c);
        Tensor gdq = cuda.upload(dq), gdk = cuda.upload(dk), gdv = cuda.upload(dv);
        CPU.attentionPoolBackward(dq, dk, dv, g, q, k, v, out, lse, heads);
        cuda.attentionPoolBackward(gdq, gdk, gdv, cuda.upload(g), gq, gk, gv, gOut, gLse, heads);
        assertClose("attentionPoolBackward RN50 dq", dq, gdq, 1e-4f);
        assertClose("attentionPoolBackward RN50 dk", dk, gdk, 1e-4f);
        assertClose("attentionPoolBackward RN50 dv", dv, gdv, 1e-4f);
    }

    @Test
    void contrastiveLossAtALargeBatch() {
        int n = contrastiveBatch(), d = 8;
        Tensor img = Tensor.zeros(DType.F32, n, d), txt = Tensor.zeros(DType.F32, n, d);
        CPU.l2NormalizeForward(img, null, random(700, n, d));
        CPU.l2NormalizeForward(txt, null, random(701, n, d));
        Tensor scale = Tensor.of(new float[] {(float) Math.log(1 / 0.07)}, 1);
        Tensor dImg = Tensor.zeros(DType.F32, n, d), dTxt = Tensor.zeros(DType.F32, n, d), dScale = Tensor.zeros(DType.F32, 1);
        Tensor gImg = cuda.zeros(DType.F32, n, d), gTxt = cuda.zeros(DType.F32, n, d), gScale = cuda.zeros(DType.F32, 1);
        float expected = CPU.contrastiveLoss(img, txt, scale, dImg, dTxt, dScale, 1f);
        float actual = cuda.contrastiveLoss(cuda.upload(img), cuda.upload(txt), cuda.upload(scale), gImg, gTxt, gScale, 1f);
        assertEquals(expected, actual, 1e-4 * Math.max(1, Math.abs(expected)), "contrastive loss N=" + n);
        assertClose("contrastive dImg N=" + n, dImg, gImg, 1e-4f);
        assertClose("contrastive dTxt N=" + n, dTxt, gTxt, 1e-4f);
        assertClose("contrastive dLogitScale N=" + n, dScale, gScale, 1e-4f);
    }
}
