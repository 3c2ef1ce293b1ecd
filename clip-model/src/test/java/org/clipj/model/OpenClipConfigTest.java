package org.clipj.model;

import com.fasterxml.jackson.databind.ObjectMapper;
import org.clipj.io.StateDictNames;
import org.clipj.model.ClipConfig.Activation;
import org.clipj.model.ClipConfig.TextPool;
import org.clipj.model.ClipConfig.VisionPool;
import org.clipj.runtime.InvalidInputException;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** open_clip's zoo by name, open_clip and Hugging Face config files, refusals, clipj's own config and file layouts. */
class OpenClipConfigTest {
    private static final ObjectMapper JSON = new ObjectMapper();

    @Test
    void zooHyperParametersAreOpenClips() {
        ClipConfig h = ClipConfig.named("ViT-H-14");
        assertEquals(List.of(1024, 224, 1280, 32, 16, 14, 1024, 16, 24, 5120, 4096),
                List.of(h.embedDim(), h.imageResolution(), h.visionWidth(), h.visionLayers(), h.visionHeads(),
                        h.visionPatchSize(), h.textWidth(), h.textHeads(), h.textLayers(), h.variant().visionMlpWidth(),
                        h.variant().textMlpWidth()));
        assertEquals(Activation.GELU, h.variant().visionActivation());
        assertEquals(Activation.QUICK_GELU, ClipConfig.named("ViT-H-14-quickgelu").variant().textActivation());
        ClipConfig g = ClipConfig.named("ViT-g-14");
        assertEquals(16, g.visionHeads());          // 1408 / 88
        assertEquals(6144, g.variant().visionMlpWidth());
        ClipConfig bigG = ClipConfig.named("ViT-bigG-14");
        assertEquals(16, bigG.visionHeads());       // 1664 / 104
        assertEquals(8192, bigG.variant().visionMlpWidth());
        assertEquals(20, bigG.textHeads());
        ClipConfig e = ClipConfig.named("ViT-e-14");
        assertEquals(16, e.visionHeads());          // 1792 / 112
        assertEquals(15360, e.variant().visionMlpWidth());
        ClipConfig alt = ClipConfig.named("ViT-M-16-alt");
        assertEquals(1e-4f, alt.variant().visionLayerScale());
        assertFalse(alt.variant().hasTextLayerScale());
        assertEquals(6, alt.textHeads());
        ClipConfig rn = ClipConfig.named("RN50");
        assertFalse(rn.isVit());
        assertEquals(32, rn.visionHeads());
        assertEquals(Activation.QUICK_GELU, ClipConfig.named("RN50-quickgelu").variant().textActivation());
        assertEquals(Activation.GELU, ClipConfig.named("RN50").variant().textActivation());
        assertEquals(240, ClipConfig.named("ViT-B-16-plus-240").imageResolution());
        // OpenAI's names stay openai/CLIP's architecture
        assertEquals(Activation.QUICK_GELU, ClipConfig.named("ViT-B/32").variant().visionActivation());
    }

    @Test
    void clipaAndWorldwideTowers() {
        ClipConfig c = ClipConfig.named("ViT-L-14-CLIPA");
        assertEquals(VisionPool.AVG, c.variant().visionPool());
        assertTrue(c.variant().visionLnAfterPool());
        assertFalse(c.variant().visionLnPre());
        assertEquals(TextPool.LAST, c.variant().textPool());
        assertFalse(c.variant().textCausal());
        assertFalse(c.textTruncatable());
        assertFalse(c.hasClipTokenizer());
        assertTrue(c.variant().tokenizer().contains("bert-base-uncased"));
        assertEquals(32, c.contextLength());
        ClipConfig w = ClipConfig.named("ViT-H-14-worldwide");
        assertEquals(TextPool.EOS, w.variant().textPool());
        assertEquals(2, w.variant().textEosId());
        assertFalse(w.hasClipTokenizer());
    }

    @Test
    void everyZooNameBuildsAndSpecsAreConsistent() {
        List<String> names = OpenClipZoo.names();
        assertTrue(names.size() >= 50, "zoo names: " + names.size());
        for (String name : names) {
            ClipConfig c = OpenClipZoo.config(name);
            assertFalse(ClipModel.specs(c).isEmpty(), name);
            assertEquals(c, ClipConfig.fromJson(c.toJson(), name), "JSON round trip of " + name);
        }
    }

    @Test
    void unsupportedArchitecturesAreRefusedByName() {
        assertMessage(() -> ClipConfig.named("convnext_base"), "timm");
        assertMessage(() -> ClipConfig.named("coca_ViT-B-32"), "CoCa");
        assertMessage(() -> ClipConfig.named("xlm-roberta-base-ViT-B-32"), "Hugging Face text tower");
        assertMessage(() -> ClipConfig.named("ViT-B-16-SigLIP"), "timm");
        assertMessage(() -> ClipConfig.named("ViT-B-99"), "unknown architecture");
        assertEquals("a timm vision tower (ConvNeXt, EVA, SigLIP's ViT, ...: 'visual.trunk.*')",
                StateDictNames.unsupportedTower(List.of("visual.trunk.stem.0.weight")));
        assertTrue(StateDictNames.unsupportedTower(List.of("text.transformer.encoder.layer.0.attention.self.query.weight"))
                .contains("Hugging Face text tower"));
        assertTrue(StateDictNames.unsupportedTower(List.of("text_decoder.resblocks.0.ln_1.weight")).contains("CoCa"));
        assertNull(StateDictNames.unsupportedTower(List.of("visual.proj", "text.token_embedding.weight")));
    }

    @Test
    void openClipConfigFieldsAreCheckedNotGuessed() throws IOException {
        String base = "{\"embed_dim\": 64, \"vision_cfg\": {\"image_size\": 32, \"layers\": 1, \"width\": 160,"
                + " \"head_width\": 80, \"patch_size\": 8%s}, \"text_cfg\": {\"width\": 64, \"heads\": 1, \"layers\": 1%s}%s}";
        ClipConfig c = OpenClipConfig.parse("x", JSON.readTree(String.format(base, ", \"mlp_ratio\": 2.5", "", "")), "test");
        assertEquals(2, c.visionHeads());
        assertEquals(400, c.variant().visionMlpWidth());
        assertEquals(256, c.variant().textMlpWidth());
        assertEquals(Activation.GELU, c.variant().visionActivation());
        ClipConfig eps = OpenClipConfig.parse("x", JSON.readTree(String.format(base, ", \"norm_kwargs\": {\"eps\": 1e-6}",
                ", \"proj_bias\": true", ", \"quick_gelu\": true")), "test");
        assertEquals(1e-6f, eps.variant().visionLnEps());
        assertTrue(eps.variant().textProjectionBias());
        assertEquals(Activation.QUICK_GELU, eps.variant().textActivation());
        assertMessage(() -> OpenClipConfig.parse("x", JSON.readTree(String.format(base, ", \"fancy_new_flag\": true", "", "")),
                "test"), "fancy_new_flag");
        assertMessage(() -> OpenClipConfig.parse("x", JSON.readTree(String.format(base, ", \"qk_norm\": true", "", "")),
                "test"), "custom attention blocks");
        assertMessage(() -> OpenClipConfig.parse("x", JSON.readTree(String.format(base, "", ", \"hf_model_name\": \"xlm-roberta-base\"",
                "")), "test"), "xlm-roberta-base");
        assertMessage(() -> OpenClipConfig.parse("x", JSON.readTree(String.format(base, ", \"head_width\": 64", "", "")),
                "test"), "head_width");
    }

    @Test
    void huggingFaceConfigDefaultsAndOldSpellings() throws IOException {
        ClipConfig d = HuggingFaceConfig.parse("hf", JSON.readTree("{\"model_type\": \"clip\"}"), "test");
        assertEquals(List.of(512, 224, 768, 12, 12, 32, 512, 8, 12, 3072, 2048),
                List.of(d.embedDim(), d.imageResolution(), d.visionWidth(), d.visionLayers(), d.visionHeads(),
                        d.visionPatchSize(), d.textWidth(), d.textHeads(), d.textLayers(), d.variant().visionMlpWidth(),
                        d.variant().textMlpWidth()));
        assertEquals(Activation.QUICK_GELU, d.variant().visionActivation());
        assertEquals(TextPool.ARGMAX, d.variant().textPool());
        ClipConfig old = HuggingFaceConfig.parse("hf", JSON.readTree("{\"architectures\": [\"CLIPModel\"], \"projection_dim\": 768,"
                + " \"text_config_dict\": {\"hidden_size\": 768, \"num_attention_heads\": 12, \"hidden_act\": \"gelu\","
                + " \"eos_token_id\": 49407}, \"vision_config_dict\": {\"hidden_size\": 1280, \"num_attention_heads\": 16,"
                + " \"patch_size\": 14, \"layer_norm_eps\": 1e-6}}"), "test");
        assertEquals(768, old.textWidth());
        assertEquals(Activation.GELU, old.variant().textActivation());
        assertEquals(TextPool.EOS, old.variant().textPool());
        assertEquals(16, old.visionHeads());
        assertEquals(1e-6f, old.variant().visionLnEps());
        assertMessage(() -> HuggingFaceConfig.parse("hf", JSON.readTree("{\"model_type\": \"clip\", \"text_config\":"
                + " {\"hidden_act\": \"gelu_new\"}}"), "test"), "gelu_new");
        assertMessage(() -> HuggingFaceConfig.parse("hf", JSON.readTree("{\"model_type\": \"siglip\"}"), "test"), "siglip");
    }

    @Test
    void laionFolderWithBothPairsNeverMixesThem(@TempDir Path tmp) throws IOException {
        Path gelu = OpenClipGoldenTest.caseDir("B-32-gelu-openclip");
        Path hf = OpenClipGoldenTest.caseDir("H-14-hw80-hf");
        Files.createSymbolicLink(tmp.resolve("open_clip_pytorch_model.bin"), gelu.resolve("open_clip_pytorch_model.bin").toAbsolutePath());
        Files.createSymbolicLink(tmp.resolve("open_clip_config.json"), gelu.resolve("open_clip_config.json").toAbsolutePath());
        Files.createSymbolicLink(tmp.resolve("model.safetensors"), hf.resolve("model.safetensors").toAbsolutePath());
        Files.createSymbolicLink(tmp.resolve("config.json"), hf.resolve("config.json").toAbsolutePath());
        ResolvedModel folder = ResolvedModel.resolve(tmp, null);
        assertTrue(folder.configSource().startsWith("open_clip_config.json"), folder.configSource());
        assertEquals(128, folder.config().visionWidth());
        ResolvedModel hfFile = ResolvedModel.resolve(tmp.resolve("model.safetensors"), null);
        assertTrue(hfFile.configSource().contains("config.json") && !hfFile.configSource().contains("open_clip"),
                hfFile.configSource());
        assertEquals(4, hfFile.config().visionHeads());
    }

    @Test
    void huggingFaceHubCacheFolderWorksOffline(@TempDir Path tmp) throws IOException {
        Path hf = OpenClipGoldenTest.caseDir("H-14-hw80-hf");
        Path repo = tmp.resolve("models--laion--tiny-h14");
        Path blobs = Files.createDirectories(repo.resolve("blobs"));
        Path snap = Files.createDirectories(repo.resolve("snapshots").resolve("0123abcd"));
        Files.createDirectories(repo.resolve("refs"));
        Files.writeString(repo.resolve("refs").resolve("main"), "0123abcd");
        for (String f : List.of("model.safetensors", "config.json", "vocab.json", "merges.txt")) {
            Files.copy(hf.resolve(f), blobs.resolve("sha-" + f));
            Files.createSymbolicLink(snap.resolve(f), Path.of("..", "..", "blobs", "sha-" + f));
        }
        ResolvedModel r = ResolvedModel.resolve(repo, null);
        assertEquals(snap.resolve("model.safetensors"), r.checkpoint().path());
        assertEquals(4, r.config().visionHeads());
        assertTrue(r.warnings().isEmpty(), r.warnings().toString());
    }

    private static void assertMessage(org.junit.jupiter.api.function.Executable call, String part) {
        InvalidInputException e = assertThrows(InvalidInputException.class, call);
        assertTrue(e.getMessage().contains(part), e.getMessage());
    }
}
