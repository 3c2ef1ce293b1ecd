package org.clipj.model;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import org.clipj.Clip;
import org.clipj.io.SafeTensors;
import org.clipj.runtime.Backend;
import org.clipj.runtime.DType;
import org.clipj.runtime.InvalidInputException;
import org.clipj.runtime.Tensor;
import org.clipj.runtime.cpu.CpuBackend;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.TreeSet;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

/**
 * Parity with open_clip's own model code ({@code golden/openclip}): exact-GELU ViT-B-32 with its
 * open_clip_config.json, a head-width-80 ViT-H as a Hugging Face folder, layer scale, and one training
 * step (loss and every gradient) of a model with all three; each loaded as a user would, from its folder.
 */
class OpenClipGoldenTest {
    private static final double IMAGE_COS = 0.99999;
    private static final float TEXT_ABS = 2e-4f;
    private static final float GRAD_TOL = 1e-4f;
    private static final Map<String, Double> WORST = new TreeMap<>();
    private static final ObjectMapper JSON = new ObjectMapper();

    @AfterAll
    static void report() {
        WORST.forEach((k, v) -> System.out.printf("open_clip golden %-40s %.3g%n", k, v));
    }

    static Path caseDir(String name) {
        return GoldenData.dir().resolve("openclip").resolve(name);
    }

    static Path vocab() {
        return GoldenData.dir().getParent().resolve("vocab").resolve("bpe_simple_vocab_16e6.txt.gz");
    }

    @ParameterizedTest
    @ValueSource(strings = {"B-32-gelu-openclip", "H-14-hw80-hf", "M-16-alt-ls-openclip-st", "train-mix-openclip-st"})
    void embeddingsMatchOpenClip(String name) throws IOException {
        Path dir = caseDir(name);
        JsonNode expected = JSON.readTree(dir.resolve("expected.json").toFile());
        Clip.Options options = Clip.Options.defaults().withDevice("cpu");
        if (!Files.isRegularFile(dir.resolve("vocab.json"))) options = options.withVocab(vocab());
        try (Clip clip = Clip.load(dir, options)) {
            assertTrue(clip.configSource().contains(name.endsWith("-hf") ? "config.json" : "open_clip_config.json"),
                    clip.configSource());
            List<Path> files = new ArrayList<>();
            List<float[]> want = new ArrayList<>();
            for (Iterator<Map.Entry<String, JsonNode>> it = expected.get("images").fields(); it.hasNext(); ) {
                Map.Entry<String, JsonNode> e = it.next();
                Path file = dir.resolve(e.getValue().get("path").asText());
                if (!Files.isRegularFile(file)) { // CLIP.png is listed under images/ but lives in text-image/images
                    file = GoldenData.dir().resolve("text-image").resolve("images").resolve(e.getKey());
                }
                files.add(file);
                want.add(floats(e.getValue().get("embedding")));
            }
            float[][] got = clip.encodeImages(files);
            for (int i = 0; i < files.size(); i++) {
                double cos = cosine(want.get(i), got[i]);
                record(name + " image " + files.get(i).getFileName() + " 1-cos", 1 - cos);
                assertTrue(cos >= IMAGE_COS, name + " " + files.get(i).getFileName() + ": cosine " + cos);
            }
            List<String> texts = new ArrayList<>();
            expected.get("texts").fieldNames().forEachRemaining(texts::add);
            float[][] emb = clip.encodeTexts(texts);
            for (int i = 0; i < texts.size(); i++) {
                float err = maxDiff(floats(expected.get("texts").get(texts.get(i))), emb[i]);
                record(name + " text max abs", err);
                assertTrue(err <= TEXT_ABS, name + " '" + texts.get(i) + "': max abs " + err);
            }
            List<String> labels = new ArrayList<>();
            expected.get("labels").forEach(l -> labels.add(l.asText()));
            List<Clip.ZeroShotResult> zs = clip.classify(got, clip.classifier(labels, List.of("{}")));
            for (int i = 0; i < files.size(); i++) {
                JsonNode probs = expected.get("images").get(files.get(i).getFileName().toString()).get("probs");
                float[] p = new float[labels.size()];
                for (int c = 0; c < p.length; c++) p[c] = (float) probs.get(labels.get(c)).asDouble();
                float err = maxDiff(p, zs.get(i).probabilities());
                record(name + " zero-shot probs max abs", err);
                assertTrue(err <= 1e-4f, name + " zero-shot probabilities of " + files.get(i) + ": max abs " + err);
            }
        }
    }

    @Test
    void bareWeightsWarnAndNameMatchingArchitectures(@TempDir Path tmp) throws IOException {
        Path weights = tmp.resolve("weights.bin");
        Files.copy(caseDir("B-32-gelu-openclip").resolve("open_clip_pytorch_model.bin"), weights);
        ResolvedModel r = ResolvedModel.resolve(weights, null);
        assertEquals(1, r.warnings().size(), r.warnings().toString());
        assertTrue(r.warnings().getFirst().contains("need their arch (an open_clip model name)"), r.warnings().getFirst());
        assertEquals(ClipConfig.Activation.QUICK_GELU, r.config().variant().textActivation());
        assertTrue(r.configSource().contains("build_model"), r.configSource());
    }

    @Test
    void configThatContradictsTheTensorsIsAnErrorNamingBoth() {
        InvalidInputException e = assertThrows(InvalidInputException.class,
                () -> ResolvedModel.resolve(caseDir("B-32-gelu-openclip"), "ViT-B-32"));
        assertTrue(e.getMessage().contains("ViT-B-32") && e.getMessage().contains("arch ViT-B-32 (given)")
                && e.getMessage().contains("expects"), e.getMessage());
    }

    @Test
    void layerScaleWithoutConfigIsRefusedWithAPointerToArch(@TempDir Path tmp) throws IOException {
        Path weights = tmp.resolve("ls.safetensors");
        Files.copy(caseDir("M-16-alt-ls-openclip-st").resolve("open_clip_model.safetensors"), weights);
        InvalidInputException e = assertThrows(InvalidInputException.class, () -> ResolvedModel.resolve(weights, null));
        assertTrue(e.getMessage().contains("ls_1.gamma") && e.getMessage().contains("give their arch"), e.getMessage());
    }

    @Test
    void headWidth80IsReadFromTheHuggingFaceConfig() {
        ResolvedModel r = ResolvedModel.resolve(caseDir("H-14-hw80-hf"), null);
        assertEquals(4, r.config().visionHeads(), "320 wide with heads of 80");
        assertEquals(ClipConfig.Activation.GELU, r.config().variant().visionActivation());
        assertTrue(r.warnings().isEmpty(), r.warnings().toString());
    }

    @Test
    void trainingStepMatchesOpenClipLossAndEveryGradient() {
        Path dir = caseDir("train-mix-openclip-st");
        Map<String, Tensor> golden = SafeTensors.read(dir.resolve("train.safetensors"));
        ResolvedModel r = ResolvedModel.resolve(dir, null);
        assertTrue(r.config().variant().hasVisionLayerScale() && r.config().visionHeads() == 4);
        for (Backend backend : List.<Backend>of(new CpuBackend(1, false), new CpuBackend(2, true))) {
            ClipModel model = ClipModel.fromStateDict(r.checkpoint().tensors(), r.config(), backend);
            Tensor pixels = GoldenData.get(golden, "input.pixels");
            Tensor tokens = GoldenData.get(golden, "input.tokens");
            ContrastiveStep step = ContrastiveStep.run(model, pixels, tokens);
            float loss = step.loss();
            float expectedLoss = GoldenData.get(golden, "output.loss").toFloatArray()[0];
            record("train-mix loss " + backend.description(), Math.abs(loss - expectedLoss));
            assertEquals(expectedLoss, loss, 1e-5f, "loss on " + backend.description());
            int n = step.image().batchSize();
            int e = model.config().embedDim();
            Tensor img = backend.zeros(DType.F32, n, e);
            backend.l2NormalizeForward(img, null, step.image().features());
            Tensor txt = backend.zeros(DType.F32, n, e);
            backend.l2NormalizeForward(txt, null, step.text().features());
            Tensor logits = backend.zeros(DType.F32, n, n);
            backend.matmul(logits, img, false, txt, true, (float) Math.exp(model.logitScale().toFloatArray()[0]), 0f);
            float logitErr = GoldenData.maxDiff("logits", GoldenData.get(golden, "output.logits_per_image"), logits);
            assertTrue(logitErr <= 1e-4f, "logits max abs " + logitErr);
            TreeSet<String> unchecked = new TreeSet<>();
            golden.keySet().stream().filter(k -> k.startsWith("grad.")).forEach(k -> unchecked.add(k.substring(5)));
            for (Parameter p : model.parameters()) {
                if (p.name().equals("token_embedding.weight")) continue; // not in the reference (README)
                if (!unchecked.remove(p.name())) fail("no reference gradient for " + p.name());
                Tensor expected = GoldenData.get(golden, "grad." + p.name());
                float scale = Math.max(1f, GoldenData.maxAbs(expected.toFloatArray()));
                float err = GoldenData.maxDiff(p.name(), expected, p.grad()) / scale;
                record("train-mix grads " + backend.description(), err);
                assertTrue(err <= GRAD_TOL, backend.description() + " grad." + p.name() + ": max error " + err);
            }
            assertTrue(unchecked.isEmpty(), "reference gradients without a parameter: " + unchecked);
            assertFalse(model.parameters().stream().noneMatch(p -> p.name().endsWith("ls_1.gamma")));
        }
    }

    private static float[] floats(JsonNode array) {
        float[] out = new float[array.size()];
        for (int i = 0; i < out.length; i++) out[i] = (float) array.get(i).asDouble();
        return out;
    }

    private static double cosine(float[] a, float[] b) {
        double ab = 0, aa = 0, bb = 0;
        for (int i = 0; i < a.length; i++) {
            ab += (double) a[i] * b[i];
            aa += (double) a[i] * a[i];
            bb += (double) b[i] * b[i];
        }
        return ab / Math.sqrt(aa * bb);
    }

    private static float maxDiff(float[] a, float[] b) {
        assertEquals(a.length, b.length, "length");
        float m = 0;
        for (int i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
        return m;
    }

    private static synchronized void record(String what, double err) {
        WORST.merge(what, err, Math::max);
    }
}
