package org.clipj.model;

import org.clipj.runtime.Backend;
import org.clipj.runtime.DType;
import org.clipj.runtime.Tensor;
import org.clipj.runtime.cpu.CpuBackend;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.Test;

import java.util.Map;
import java.util.TreeMap;
import java.util.TreeSet;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

/**
 * Exact parity with openai/CLIP (PyTorch, F32) on the tiny golden models: every activation,
 * feature and logit within 1e-4, the contrastive loss within 1e-5, every gradient within 1e-4
 * (relative to the tensor's max abs where that exceeds 1).
 */
class ClipModelGoldenTest {
    private static final float ACT_TOL = 1e-4f;
    private static final float LOSS_TOL = 1e-5f;
    private static final float GRAD_TOL = 1e-4f;
    private static final Map<String, Float> WORST = new TreeMap<>();

    private final Backend backend = new CpuBackend();

    @AfterAll
    static void report() {
        WORST.forEach((k, v) -> System.out.printf("golden max error %-28s %.3e%n", k, v));
    }

    @Test
    void vitForwardMatchesReference() {
        checkForward("tiny-vit");
    }

    @Test
    void resnetForwardMatchesReference() {
        checkForward("tiny-rn");
    }

    @Test
    void vitLossAndGradientsMatchReference() {
        checkGradients("tiny-vit");
    }

    @Test
    void resnetLossAndGradientsMatchReference() {
        checkGradients("tiny-rn");
    }

    private void checkForward(String name) {
        Map<String, Tensor> golden = GoldenData.golden(name);
        ClipModel model = ClipModel.fromStateDict(GoldenData.model(name), backend);
        Tensor image = GoldenData.get(golden, "input.image");
        Tensor text = GoldenData.get(golden, "input.text");

        ImageActivations ia = model.forwardImage(image, false);
        TextActivations ta = model.forwardText(text, false);
        int acts = 0;
        for (Map<String, Tensor> m : java.util.List.of(ia.intermediates(), ta.intermediates())) {
            for (Map.Entry<String, Tensor> e : m.entrySet()) {
                check(name + " act." + e.getKey(), GoldenData.get(golden, "act." + e.getKey()), e.getValue(), ACT_TOL);
                acts++;
            }
        }
        long goldenActs = golden.keySet().stream().filter(k -> k.startsWith("act.")).count();
        assertEquals(goldenActs, acts, "every golden activation is compared");

        check(name + " image_features", GoldenData.get(golden, "output.image_features"), ia.features(), ACT_TOL);
        check(name + " text_features", GoldenData.get(golden, "output.text_features"), ta.features(), ACT_TOL);
        check(name + " logits_per_image", GoldenData.get(golden, "output.logits_per_image"),
                logits(model, ia.features(), ta.features()), ACT_TOL);

        // the inference entry points give the features of the training forward
        check(name + " encodeImage", GoldenData.get(golden, "output.image_features"), model.encodeImage(image), ACT_TOL);
        check(name + " encodeText", GoldenData.get(golden, "output.text_features"), model.encodeText(text), ACT_TOL);

        // and so does a model loaded for inference (prepared GEMM weights)
        ClipModel inference = ClipModel.fromStateDict(GoldenData.model(name), backend, Precision.F32);
        check(name + " inference encodeImage", GoldenData.get(golden, "output.image_features"),
                inference.encodeImage(image), ACT_TOL);
        check(name + " inference encodeText", GoldenData.get(golden, "output.text_features"),
                inference.encodeText(text), ACT_TOL);
        IllegalStateException e = org.junit.jupiter.api.Assertions.assertThrows(IllegalStateException.class,
                () -> inference.forwardImage(image, true));
        assertTrue(e.getMessage().contains("inference"), e.getMessage());
    }

    private void checkGradients(String name) {
        Map<String, Tensor> golden = GoldenData.golden(name);
        ClipModel model = ClipModel.fromStateDict(GoldenData.model(name), backend);
        Tensor image = GoldenData.get(golden, "input.image");
        Tensor text = GoldenData.get(golden, "input.text");

        ContrastiveStep step = ContrastiveStep.run(model, image, text);
        ImageActivations ia = step.image();
        check(name + " train.logits", GoldenData.get(golden, "train.logits_per_image"), logits(model, ia.features(),
                step.text().features()), ACT_TOL);
        check(name + " encodeImage(train)", ia.features(), model.encodeImage(image, true), ACT_TOL);
        float loss = step.loss();
        float expectedLoss = GoldenData.get(golden, "train.loss").toFloatArray()[0];
        record(name + " train.loss", Math.abs(loss - expectedLoss));
        assertEquals(expectedLoss, loss, LOSS_TOL, name + " loss");

        TreeSet<String> unchecked = new TreeSet<>();
        for (String k : golden.keySet()) {
            if (k.startsWith("grad.") && !k.endsWith(".rows")) {
                unchecked.add(k.substring("grad.".length()));
            }
        }
        float worst = 0;
        for (Parameter p : model.parameters()) {
            if (!unchecked.remove(p.name())) {
                fail(name + ": no reference gradient for parameter " + p.name());
            }
            Tensor expected = GoldenData.get(golden, "grad." + p.name());
            Tensor actual = p.grad();
            if (p.name().equals("token_embedding.weight")) {
                actual = rows(actual, GoldenData.get(golden, "grad.token_embedding.weight.rows"));
            }
            float scale = Math.max(1f, GoldenData.maxAbs(expected.toFloatArray()));
            float err = GoldenData.maxDiff(p.name(), expected, actual) / scale;
            worst = Math.max(worst, err);
            assertTrue(err <= GRAD_TOL, name + " grad." + p.name() + ": max error " + err + " (scale " + scale + ")");
        }
        assertTrue(unchecked.isEmpty(), name + ": reference gradients without a parameter: " + unchecked);
        record(name + " grads (all)", worst);
    }

    /** logits_per_image (B, B) = exp(logit_scale) * norm(img) @ norm(txt)^T. */
    private Tensor logits(ClipModel model, Tensor imgFeatures, Tensor txtFeatures) {
        int n = imgFeatures.dim(0);
        int e = imgFeatures.dim(1);
        Tensor img = backend.zeros(DType.F32, n, e);
        backend.l2NormalizeForward(img, null, imgFeatures);
        Tensor txt = backend.zeros(DType.F32, txtFeatures.dim(0), e);
        backend.l2NormalizeForward(txt, null, txtFeatures);
        float scale = (float) Math.exp(model.logitScale().toFloatArray()[0]);
        Tensor out = backend.zeros(DType.F32, n, txtFeatures.dim(0));
        backend.matmul(out, img, false, txt, true, scale, 0f);
        return out;
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

    private static void check(String what, Tensor expected, Tensor actual, float tol) {
        float err = GoldenData.maxDiff(what, expected, actual);
        record(what, err);
        assertTrue(err <= tol, what + ": max abs error " + err + " > " + tol);
    }

    private static synchronized void record(String what, float err) {
        WORST.merge(what, err, Math::max);
    }
}
