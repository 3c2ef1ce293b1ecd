package org.clipj.model;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.util.List;
import java.util.Map;

import org.clipj.kernels.Kernels;
import org.clipj.runtime.DType;
import org.clipj.runtime.Tensor;
import org.clipj.runtime.cuda.CudaBackend;
import org.clipj.runtime.cuda.CudaGraph;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;
import org.clipj.runtime.cpu.CpuBackend;

/**
 * The whole tiny golden models (F32) run end to end through CudaBackend on the simulator binding
 * (the real kernels, compiled for the host): every activation and the features within 1e-3 of
 * openai/CLIP's PyTorch outputs; and one training step's loss and every parameter gradient (within
 * 1e-3, relative to the tensor's max abs where that exceeds 1; train-mode BatchNorm for the ResNet).
 */
class CudaModelParityTest {
    private static final float TOL = 1e-3f;
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

    @Test
    void tinyVitMatchesGoldenOnTheSimulator() {
        check("tiny-vit");
    }

    @Test
    void tinyResNetMatchesGoldenOnTheSimulator() {
        check("tiny-rn");
    }

    @Test
    void tinyVitLossAndGradientsMatchGoldenOnTheSimulator() {
        checkGradients("tiny-vit");
    }

    @Test
    void tinyResNetLossAndGradientsMatchGoldenOnTheSimulator() {
        checkGradients("tiny-rn");
    }

    /**
     * open_clip's exact GELU, layer scale and heads of 80 (golden/openclip cases) through the simulator:
     * features and every gradient of a backward with fixed feature gradients, against the CPU backend
     * (which matches open_clip's own outputs, OpenClipGoldenTest).
     */
    @ParameterizedTest
    @ValueSource(strings = {"B-32-gelu-openclip", "M-16-alt-ls-openclip-st", "train-mix-openclip-st"})
    void openClipVariantsMatchTheCpuOnTheSimulator(String name) {
        ResolvedModel r = ResolvedModel.resolve(OpenClipGoldenTest.caseDir(name), null);
        ClipModel ref = ClipModel.fromStateDict(r.checkpoint().tensors(), r.config(), new CpuBackend());
        ClipModel sim = ClipModel.fromStateDict(r.checkpoint().tensors(), r.config(), cuda);
        Tensor pixels = ClipModelTest.randomPixels(2, r.config().imageResolution(), 3);
        Tensor tokens = GoldenData.get(GoldenData.golden("tiny-vit"), "input.text");
        int e = r.config().embedDim();
        java.util.SplittableRandom rng = new java.util.SplittableRandom(7);
        float[] dI = new float[2 * e];
        float[] dT = new float[tokens.dim(0) * e];
        for (int i = 0; i < dI.length; i++) dI[i] = (float) rng.nextGaussian();
        for (int i = 0; i < dT.length; i++) dT[i] = (float) rng.nextGaussian();
        for (ClipModel m : List.of(ref, sim)) {
            m.zeroGrad();
            ImageActivations ia = m.forwardImage(pixels, true);
            TextActivations ta = m.forwardText(tokens);
            m.backwardImage(ia, m.backend().upload(Tensor.of(dI, 2, e)));
            m.backwardText(ta, m.backend().upload(Tensor.of(dT, tokens.dim(0), e)));
        }
        assertWithin(name + " image features", ref.encodeImage(pixels), sim.encodeImage(pixels));
        assertWithin(name + " text features", ref.encodeText(tokens), sim.encodeText(tokens));
        float worst = 0;
        for (int i = 0; i < ref.parameters().size(); i++) {
            Parameter p = ref.parameters().get(i);
            Tensor expected = p.grad();
            float scale = Math.max(1f, GoldenData.maxAbs(expected.toFloatArray()));
            float err = GoldenData.maxDiff(p.name(), expected, cuda.download(sim.parameters().get(i).grad())) / scale;
            worst = Math.max(worst, err);
            assertTrue(err <= TOL, name + " grad." + p.name() + ": max error " + err);
        }
        System.out.printf("cuda-sim vs cpu max error %-36s %.3e%n", name + " grads (all)", worst);
    }

    private void checkGradients(String name) {
        Map<String, Tensor> golden = GoldenData.golden(name);
        ClipModel model = ClipModel.fromStateDict(GoldenData.model(name), cuda);
        model.zeroGrad();
        ImageActivations ia = model.forwardImage(GoldenData.get(golden, "input.image"), true);
        TextActivations ta = model.forwardText(GoldenData.get(golden, "input.text"));
        int n = ia.batchSize(), e = model.config().embedDim();
        Tensor img = cuda.zeros(DType.F32, n, e), imgNorms = cuda.zeros(DType.F32, n);
        Tensor txt = cuda.zeros(DType.F32, n, e), txtNorms = cuda.zeros(DType.F32, n);
        cuda.l2NormalizeForward(img, imgNorms, ia.features());
        cuda.l2NormalizeForward(txt, txtNorms, ta.features());
        Tensor dImg = cuda.zeros(DType.F32, n, e), dTxt = cuda.zeros(DType.F32, n, e);
        float loss = cuda.contrastiveLoss(img, txt, model.logitScale(), dImg, dTxt, model.logitScaleGrad(), 1f);
        float expectedLoss = GoldenData.get(golden, "train.loss").toFloatArray()[0];
        System.out.printf("cuda-sim golden max error %-36s %.3e%n", name + " train.loss", Math.abs(loss - expectedLoss));
        assertTrue(Math.abs(loss - expectedLoss) <= 1e-4f, name + " loss " + loss + " vs " + expectedLoss);
        Tensor dImgFeatures = cuda.zeros(DType.F32, n, e), dTxtFeatures = cuda.zeros(DType.F32, n, e);
        cuda.l2NormalizeBackward(dImgFeatures, dImg, img, imgNorms);
        cuda.l2NormalizeBackward(dTxtFeatures, dTxt, txt, txtNorms);
        model.backwardImage(ia, dImgFeatures);
        model.backwardText(ta, dTxtFeatures);
        int checked = 0;
        float worst = 0;
        for (Parameter p : model.parameters()) {
            Tensor expected = GoldenData.get(golden, "grad." + p.name());
            Tensor actual = cuda.download(p.grad());
            if (p.name().equals("token_embedding.weight")) {
                actual = rows(actual, GoldenData.get(golden, "grad.token_embedding.weight.rows"));
            }
            float scale = Math.max(1f, GoldenData.maxAbs(expected.toFloatArray()));
            float err = GoldenData.maxDiff(p.name(), expected, actual) / scale;
            worst = Math.max(worst, err);
            assertTrue(err <= TOL, name + " grad." + p.name() + ": max error " + err + " (scale " + scale + ")");
            checked++;
        }
        System.out.printf("cuda-sim golden max error %-36s %.3e (%d parameters)%n", name + " grads (all)", worst, checked);
        assertTrue(checked > 10, "parameters checked: " + checked);
    }

    private static Tensor rows(Tensor table, Tensor rowIds) {
        long[] ids = rowIds.i64();
        int width = table.dim(1);
        float[] out = new float[ids.length * width];
        for (int i = 0; i < ids.length; i++) {
            System.arraycopy(table.get((int) ids[rowIds.offset() + i]).toFloatArray(), 0, out, i * width, width);
        }
        return Tensor.of(out, ids.length, width);
    }

    private void check(String name) {
        Map<String, Tensor> golden = GoldenData.golden(name);
        ClipModel model = ClipModel.fromStateDict(GoldenData.model(name), cuda);
        Tensor image = GoldenData.get(golden, "input.image");
        Tensor text = GoldenData.get(golden, "input.text");
        ImageActivations ia = model.forwardImage(image, false);
        TextActivations ta = model.forwardText(text, false);   // all 77 positions, as the golden activations
        int compared = 0;
        for (Map<String, Tensor> acts : List.of(ia.intermediates(), ta.intermediates())) {
            for (Map.Entry<String, Tensor> e : acts.entrySet()) {
                assertWithin(name + " act." + e.getKey(), GoldenData.get(golden, "act." + e.getKey()), e.getValue());
                compared++;
            }
        }
        assertTrue(compared > 0, name + ": no activations compared");
        assertWithin(name + " image_features", GoldenData.get(golden, "output.image_features"), ia.features());
        assertWithin(name + " text_features", GoldenData.get(golden, "output.text_features"), ta.features());
        assertWithin(name + " encodeImage", GoldenData.get(golden, "output.image_features"), model.encodeImage(image));
        assertWithin(name + " encodeText", GoldenData.get(golden, "output.text_features"), model.encodeText(text));
    }

    /**
     * The text forward from ids on the device (EOT found there) has no sync point: run eagerly with its temporaries
     * released, then captured (no allocation left to make), and replayed with the next captions copied into the ids.
     */
    @Test
    void textFromDeviceIdsIsCapturedAndReplayedWithNewCaptions() {
        ClipModel model = ClipModel.fromStateDict(GoldenData.model("tiny-vit"), cuda);
        Tensor text = GoldenData.get(GoldenData.golden("tiny-vit"), "input.text");
        Tensor expected = cuda.download(model.encodeText(text)); // before: its own temporaries stay live until collected
        Tensor ids = model.uploadTokenIds(text);
        Tensor eager = cuda.releasingTemporaries(() -> model.encodeTextIds(ids));
        assertWithin("encodeTextIds", expected, eager);
        float[] eagerFeatures = cuda.download(eager).f32();
        cuda.release(eager);
        Tensor[] features = new Tensor[1];
        try (CudaGraph graph = cuda.capture(() -> features[0] = model.encodeTextIds(ids))) {
            graph.replay();
            assertArrayEquals(eagerFeatures, cuda.download(features[0]).f32());
            long[] next = new long[(int) text.numel()]; // input.text is I64
            for (int r = 0; r < text.dim(0); r++) { // the next captions: the same rows in reverse order
                System.arraycopy(text.i64(), text.offset() + (text.dim(0) - 1 - r) * text.dim(1), next, r * text.dim(1), text.dim(1));
            }
            Tensor nextText = Tensor.of(next, text.shape());
            cuda.copy(ids, model.uploadTokenIds(nextText));
            graph.replay();
            assertWithin("replayed with new captions", cuda.download(model.encodeText(nextText)), features[0]);
        }
    }

    private static void assertWithin(String what, Tensor expected, Tensor actualOnDevice) {
        Tensor actual = cuda.download(actualOnDevice);
        float err = GoldenData.maxDiff(what, expected, actual);
        System.out.printf("cuda-sim golden max error %-36s %.3e%n", what, err);
        assertTrue(err <= TOL, what + ": max abs error " + err + " > " + TOL);
    }
}
