package org.clipj.model;

import org.clipj.Clip;
import org.clipj.io.SafeTensors;
import org.clipj.io.StateDictNames;
import org.clipj.runtime.Tensor;
import org.clipj.runtime.cpu.CpuBackend;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Configs written here in open_clip's and Hugging Face's published formats (beyond the golden cases):
 * a ViT-g-14-like tower (heads of 88, MLP ratio 4.3637, QuickGELU, text layer scale, LayerNorm eps 1e-6)
 * beside open_clip-named weights, and a CLIPModel config.json that omits hidden_act (transformers'
 * default quick_gelu) beside Hugging Face-named weights. Loaded from their folders, each embeds exactly
 * as the model it was written from.
 */
class WrittenConfigsTest {
    private static final String OPEN_CLIP = """
            {"model_cfg": {"embed_dim": 48, "quick_gelu": true,
              "vision_cfg": {"image_size": 32, "layers": 2, "width": 176, "head_width": 88, "mlp_ratio": 4.3637,
                             "patch_size": 16, "norm_kwargs": {"eps": 1e-6}},
              "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 1,
                           "ls_init_value": 0.5}},
             "preprocess_cfg": {"mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5], "interpolation": "bilinear",
                                "resize_mode": "squash"}}""";
    private static final String HUGGING_FACE = """
            {"architectures": ["CLIPModel"], "model_type": "clip", "projection_dim": 48,
             "text_config": {"hidden_size": 64, "intermediate_size": 96, "num_attention_heads": 2,
                             "num_hidden_layers": 1, "eos_token_id": 49407},
             "vision_config": {"hidden_size": 176, "intermediate_size": 320, "num_attention_heads": 2,
                               "num_hidden_layers": 1, "image_size": 32, "patch_size": 16}}""";

    @Test
    void openClipConfigWrittenFromAPublishedOne(@TempDir Path dir) throws IOException {
        Files.writeString(dir.resolve("open_clip_config.json"), OPEN_CLIP);
        ClipConfig config = OpenClipConfig.parse("g-like", new com.fasterxml.jackson.databind.ObjectMapper()
                .readTree(OPEN_CLIP).get("model_cfg"), "test");
        assertEquals(2, config.visionHeads());
        assertEquals(768, config.variant().visionMlpWidth());   // int(176 * 4.3637)
        assertEquals(1e-6f, config.variant().visionLnEps());
        ClipModel written = ClipModel.initialize(config, 11, new CpuBackend());
        SafeTensors.write(dir.resolve("open_clip_model.safetensors"), written.stateDict(), Map.of("format", "pt"));
        compare(dir, written);
        assertEquals(org.clipj.image.PreprocessConfig.ResizeMode.SQUASH, ResolvedModel.resolve(dir, null).preprocess().mode());
    }

    @Test
    void huggingFaceConfigWithTransformersDefaults(@TempDir Path dir) throws IOException {
        Files.writeString(dir.resolve("config.json"), HUGGING_FACE);
        ClipConfig config = HuggingFaceConfig.parse("hf", new com.fasterxml.jackson.databind.ObjectMapper()
                .readTree(HUGGING_FACE), "test");
        assertEquals(ClipConfig.Activation.QUICK_GELU, config.variant().visionActivation());
        ClipModel written = ClipModel.initialize(config, 12, new CpuBackend());
        SafeTensors.write(dir.resolve("model.safetensors"), StateDictNames.toHuggingFace(written.stateDict()),
                Map.of("format", "pt"));
        compare(dir, written);
    }

    private static void compare(Path dir, ClipModel written) {
        Clip.Options options = Clip.Options.defaults().withDevice("cpu").withVocab(OpenClipGoldenTest.vocab());
        try (Clip loaded = Clip.load(dir, options); Clip reference = Clip.of(written, loaded.tokenizer(), options)) {
            assertEquals(written.config().withName(loaded.config().name()), loaded.config());
            float[][] a = loaded.encodeTexts(List.of("a photo of a dog", "two red squares"));
            float[][] b = reference.encodeTexts(List.of("a photo of a dog", "two red squares"));
            for (int i = 0; i < a.length; i++) {
                for (int d = 0; d < a[i].length; d++) assertEquals(b[i][d], a[i][d], 1e-5f, "text " + i);
            }
            Tensor pixels = ClipModelTest.randomPixels(2, 32, 4);
            float[][] ia = loaded.encodePixels(pixels.toFloatArray(), 2);
            float[][] ib = reference.encodePixels(pixels.toFloatArray(), 2);
            for (int i = 0; i < ia.length; i++) {
                for (int d = 0; d < ia[i].length; d++) assertEquals(ib[i][d], ia[i][d], 1e-5f, "image " + i);
            }
            assertTrue(loaded.configSource().contains("json"), loaded.configSource());
        }
    }
}
