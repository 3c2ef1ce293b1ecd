package org.clipj;

import com.fasterxml.jackson.databind.ObjectMapper;
import org.clipj.io.Checkpoint;
import org.clipj.io.Checkpoints;
import org.clipj.io.SafeTensors;
import org.clipj.io.StateDictNames;
import org.clipj.model.ClipModel;
import org.clipj.runtime.Tensor;
import org.clipj.runtime.cpu.CpuBackend;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import java.util.Map;

import static org.clipj.TestAssets.maxAbsDiff;
import static org.clipj.TestAssets.normalized;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Every checkpoint file of the golden data, loaded through the front door, gives the reference
 * PyTorch features: tiny-vit from safetensors, TorchScript and F16 torch.save; tiny-rn from
 * safetensors and torch.save; and a Hugging Face-named copy written by the project's own mapping.
 */
class ClipFormatsParityTest {
    private static final ObjectMapper JSON = new ObjectMapper();

    @ParameterizedTest(name = "{0}/{1}")
    @CsvSource({
            "tiny-vit, model.safetensors, 1e-4",
            "tiny-vit, model.pt,          1e-4",
            "tiny-vit, model-fp16.bin,    2e-2",
            "tiny-rn,  model.safetensors, 1e-4",
            "tiny-rn,  model.bin,         1e-4"})
    void featuresMatchTheReference(String model, String file, float tolerance) throws Exception {
        Map<String, Tensor> golden = SafeTensors.read(TestAssets.golden(model, "golden.safetensors"));
        ClipModel clipModel = ClipModel.fromStateDict(Checkpoints.load(TestAssets.golden(model, file)).tensors(), new CpuBackend());
        assertFeatures(clipModel, golden, tolerance, model + "/" + file);
    }

    @Test
    void huggingFaceNamedCopyGivesTheSameOutputs(@TempDir Path dir) {
        Checkpoint original = Checkpoints.load(TestAssets.golden("tiny-vit", "model.safetensors"));
        Path hf = dir.resolve("hf-model.safetensors");
        SafeTensors.write(hf, StateDictNames.toHuggingFace(original.tensors()), Map.of());
        Checkpoint reloaded = Checkpoints.load(hf);
        assertEquals(Checkpoint.Naming.HUGGINGFACE, reloaded.naming());
        ClipModel model = ClipModel.fromStateDict(reloaded.tensors(), new CpuBackend());
        assertFeatures(model, SafeTensors.read(TestAssets.golden("tiny-vit", "golden.safetensors")), 1e-4f, "HF copy");
    }

    @Test
    void scalarLogitScaleAsTorchSavesItIsAccepted() {
        Map<String, Tensor> tensors = new java.util.LinkedHashMap<>(SafeTensors.read(TestAssets.golden("tiny-vit", "model.safetensors")));
        float scale = tensors.get("logit_scale").toFloatArray()[0];
        tensors.put("logit_scale", Tensor.of(new float[]{scale}));
        ClipModel model = ClipModel.fromStateDict(tensors, new CpuBackend());
        assertEquals(scale, model.logitScale().toFloatArray()[0]);
    }

    @Test
    void frontDoorTextEmbeddingsAreTheNormalizedReferenceFeatures() throws Exception {
        SafeTensors.Contents golden = SafeTensors.readContents(TestAssets.golden("tiny-vit", "golden.safetensors"));
        List<String> captions = Arrays.asList(JSON.readValue(golden.metadata().get("captions"), String[].class));
        float[] expected = golden.tensors().get("output.text_features").toFloatArray();
        try (Clip clip = Clip.load(TestAssets.golden("tiny-vit", "model.safetensors"),
                Clip.Options.defaults().withVocab(TestAssets.vocab()).withDevice("cpu"))) {
            float[][] emb = clip.encodeTexts(captions);
            for (int i = 0; i < captions.size(); i++) {
                float[] ref = normalized(Arrays.copyOfRange(expected, i * 64, (i + 1) * 64));
                assertTrue(maxAbsDiff(ref, emb[i]) <= 1e-4f, "caption " + i + ": " + maxAbsDiff(ref, emb[i]));
            }
        }
    }

    private static void assertFeatures(ClipModel model, Map<String, Tensor> golden, float tolerance, String what) {
        Tensor pixels = golden.get("input.image");
        long[] ids64 = golden.get("input.text").i64();
        int[] ids = new int[ids64.length];
        for (int i = 0; i < ids.length; i++) ids[i] = (int) ids64[i];
        Tensor tokens = Tensor.of(ids, golden.get("input.text").shape());
        float[] image = model.encodeImage(pixels).toFloatArray();
        float[] text = model.encodeText(tokens).toFloatArray();
        float imageErr = maxAbsDiff(golden.get("output.image_features").toFloatArray(), image);
        float textErr = maxAbsDiff(golden.get("output.text_features").toFloatArray(), text);
        assertTrue(imageErr <= tolerance, what + " image features max abs error " + imageErr);
        assertTrue(textErr <= tolerance, what + " text features max abs error " + textErr);
    }
}
