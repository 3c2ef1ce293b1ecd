package org.clipj.model;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import org.clipj.Clip;
import org.clipj.runtime.Tensor;
import org.clipj.runtime.cpu.Bf16Gemm;
import org.clipj.runtime.cpu.CpuBackend;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;
import org.junit.jupiter.api.Test;

/**
 * Whole models with BF16 linear layers and patch embedding on the CPU (native AVX512_BF16 kernels) against the same
 * models in F32: embeddings at cosine >= 0.999 and the same zero-shot label for every golden image,
 * on open_clip's exact-GELU ViT-B-32 and the layer-scale model (QuickGELU), and on the ModifiedResNet
 * (its AttentionPool2d projections in BF16, convolutions in F32).
 */
class CpuBf16ModelTest {
    private static final double MIN_COSINE = 0.999;
    private static final Map<String, Double> WORST = new TreeMap<>();
    private static final ObjectMapper JSON = new ObjectMapper();

    @AfterAll
    static void report() {
        WORST.forEach((k, v) -> System.out.printf("cpu bf16 vs f32 %-45s %.6f%n", k, v));
    }

    private static void assumeBf16() {
        String reason = Bf16Gemm.unavailableReason();
        assumeTrue(reason == null, "native BF16 kernels unavailable here: " + reason);
    }

    @ParameterizedTest
    @ValueSource(strings = {"B-32-gelu-openclip", "M-16-alt-ls-openclip-st"})
    void openClipModelsInBf16AgreeWithF32(String name) throws IOException {
        assumeBf16();
        Path dir = OpenClipGoldenTest.caseDir(name);
        JsonNode expected = JSON.readTree(dir.resolve("expected.json").toFile());
        Clip.Options options = Clip.Options.defaults().withDevice("cpu");
        if (!Files.isRegularFile(dir.resolve("vocab.json"))) options = options.withVocab(OpenClipGoldenTest.vocab());
        List<Path> files = new ArrayList<>();
        expected.get("images").fields().forEachRemaining(e -> {
            Path file = dir.resolve(e.getValue().get("path").asText());
            files.add(Files.isRegularFile(file) ? file : GoldenData.dir().resolve("text-image").resolve("images").resolve(e.getKey()));
        });
        List<String> texts = new ArrayList<>();
        expected.get("texts").fieldNames().forEachRemaining(texts::add);
        List<String> labels = new ArrayList<>();
        expected.get("labels").forEach(l -> labels.add(l.asText()));
        try (Clip f32 = Clip.load(dir, options.withPrecision(Precision.F32));
             Clip bf16 = Clip.load(dir, options.withPrecision(Precision.BF16))) {
            float[][] imagesF32 = f32.encodeImages(files), imagesBf16 = bf16.encodeImages(files);
            for (int i = 0; i < files.size(); i++) {
                assertCosine(name + " image " + files.get(i).getFileName(), imagesF32[i], imagesBf16[i]);
            }
            float[][] textsF32 = f32.encodeTexts(texts), textsBf16 = bf16.encodeTexts(texts);
            for (int i = 0; i < texts.size(); i++) assertCosine(name + " text '" + texts.get(i) + "'", textsF32[i], textsBf16[i]);
            List<Clip.ZeroShotResult> zsF32 = f32.classify(imagesF32, f32.classifier(labels, List.of("{}")));
            List<Clip.ZeroShotResult> zsBf16 = bf16.classify(imagesBf16, bf16.classifier(labels, List.of("{}")));
            for (int i = 0; i < files.size(); i++) {
                assertEquals(zsF32.get(i).top(), zsBf16.get(i).top(), name + " zero-shot label of " + files.get(i).getFileName());
            }
        }
    }

    @Test
    void resNetInBf16AgreesWithF32() {
        assumeBf16();
        Map<String, Tensor> weights = GoldenData.model("tiny-rn");
        Map<String, Tensor> golden = GoldenData.golden("tiny-rn");
        try (CpuBackend backend = new CpuBackend(2, true)) {
            ClipModel f32 = ClipModel.fromStateDict(weights, backend, Precision.F32);
            ClipModel bf16 = ClipModel.fromStateDict(weights, backend, Precision.BF16);
            Tensor pixels = GoldenData.get(golden, "input.image"), tokens = GoldenData.get(golden, "input.text");
            assertRowsCosine("tiny-rn image", f32.encodeImage(pixels), bf16.encodeImage(pixels));
            assertRowsCosine("tiny-rn text", f32.encodeText(tokens), bf16.encodeText(tokens));
        }
    }

    private static void assertRowsCosine(String what, Tensor a, Tensor b) {
        int rows = a.dim(0), d = a.dim(1);
        float[] x = a.toFloatArray(), y = b.toFloatArray();
        for (int r = 0; r < rows; r++) {
            float[] u = new float[d], v = new float[d];
            System.arraycopy(x, r * d, u, 0, d);
            System.arraycopy(y, r * d, v, 0, d);
            assertCosine(what + " row " + r, u, v);
        }
    }

    private static void assertCosine(String what, float[] a, float[] b) {
        double dot = 0, na = 0, nb = 0;
        for (int i = 0; i < a.length; i++) {
            dot += (double) a[i] * b[i];
            na += (double) a[i] * a[i];
            nb += (double) b[i] * b[i];
        }
        double cos = dot / Math.sqrt(na * nb);
        String key = what.replaceAll(" (row \\d+|'.*'|\\S+\\.(png|jpg|jpeg))$", "") + " min cosine";
        WORST.merge(key, cos, Math::min);
        assertTrue(cos >= MIN_COSINE, what + ": cosine " + cos + " < " + MIN_COSINE);
    }
}
