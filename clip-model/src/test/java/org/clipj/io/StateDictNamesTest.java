package org.clipj.io;

import org.clipj.io.Checkpoint.Naming;
import org.clipj.runtime.DType;
import org.clipj.runtime.InvalidInputException;
import org.clipj.runtime.Tensor;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class StateDictNamesTest {
    @TempDir
    Path dir;

    private static final Path VIT = TestFiles.golden().resolve("tiny-vit");

    @Test
    void huggingFaceCopyOfTinyVitRoundTrips() {
        Map<String, Tensor> openAi = Checkpoints.load(VIT.resolve("model.safetensors")).tensors();
        Map<String, Tensor> hf = StateDictNames.toHuggingFace(openAi);

        // the HF layout, checked independently of the mapping back
        Tensor q = hf.get("vision_model.encoder.layers.1.self_attn.q_proj.weight");
        Tensor k = hf.get("vision_model.encoder.layers.1.self_attn.k_proj.weight");
        Tensor inProj = openAi.get("visual.transformer.resblocks.1.attn.in_proj_weight"); // (3C, C), C = 128
        assertArrayEquals(new int[]{128, 128}, k.shape());
        assertEquals(inProj.toFloatArray()[128 * 128 + 5], k.toFloatArray()[5]);
        assertEquals(inProj.toFloatArray()[7], q.toFloatArray()[7]);
        Tensor proj = openAi.get("visual.proj"); // (width 128, embed 64)
        Tensor visualProjection = hf.get("visual_projection.weight"); // (64, 128)
        assertArrayEquals(new int[]{64, 128}, visualProjection.shape());
        assertEquals(proj.toFloatArray()[3 * 64 + 10], visualProjection.toFloatArray()[10 * 128 + 3]);
        assertArrayEquals(new int[]{}, hf.get("logit_scale").shape());
        assertTrue(hf.containsKey("vision_model.pre_layrnorm.weight"));
        assertTrue(hf.containsKey("text_model.encoder.layers.0.mlp.fc2.bias"));
        assertTrue(hf.containsKey("text_model.embeddings.position_embedding.weight"));
        assertFalse(hf.keySet().stream().anyMatch(n -> n.contains("in_proj")));

        // written to disk with HF names plus the HF position_ids buffers, read back as OpenAI names
        Map<String, Tensor> onDisk = new LinkedHashMap<>(hf);
        onDisk.put("text_model.embeddings.position_ids", Tensor.of(new long[77], 1, 77));
        onDisk.put("vision_model.embeddings.position_ids", Tensor.of(new long[17], 1, 17));
        Path file = dir.resolve("model.safetensors");
        SafeTensors.write(file, onDisk, Map.of("format", "pt"));
        Checkpoint back = Checkpoints.load(dir);
        assertEquals(Naming.HUGGINGFACE, back.naming());
        assertEquals(openAi.keySet(), back.tensors().keySet());
        for (String name : openAi.keySet()) {
            assertArrayEquals(openAi.get(name).shape(), back.tensors().get(name).shape(), name);
            assertArrayEquals(openAi.get(name).toFloatArray(), back.tensors().get(name).toFloatArray(), name);
        }
    }

    @Test
    void stripsModulePrefixesAndDropsNonParametersByName() {
        Map<String, Tensor> raw = new LinkedHashMap<>();
        raw.put("module.visual.conv1.weight", Tensor.zeros(DType.F32, 2, 3, 1, 1));
        raw.put("module.logit_scale", Tensor.zeros(DType.F32));
        raw.put("input_resolution", Tensor.of(new long[]{224}));
        raw.put("context_length", Tensor.of(new long[]{77}));
        raw.put("vocab_size", Tensor.of(new long[]{49408}));
        raw.put("transformer.resblocks.0.attn_mask", Tensor.zeros(DType.F32, 77, 77));
        Map<String, StoredTensor> out = StateDictNames.toOpenAi(stored(raw), "f");
        assertEquals(List.of("visual.conv1.weight", "logit_scale"), List.copyOf(out.keySet()));
        assertArrayEquals(new int[]{1}, out.get("logit_scale").shape());
        assertArrayEquals(new int[]{1}, out.get("logit_scale").read().shape());
        assertEquals(Naming.OPENAI, StateDictNames.detect(raw.keySet()));

        raw.put("visual.conv1.weight", Tensor.zeros(DType.F32, 1));
        InvalidInputException e = assertThrows(InvalidInputException.class, () -> StateDictNames.toOpenAi(stored(raw), "f"));
        assertTrue(e.getMessage().contains("'visual.conv1.weight' appears twice"), e.getMessage());
    }

    @Test
    void rejectsUnknownOrIncompleteHuggingFaceTensors() {
        Map<String, Tensor> raw = new LinkedHashMap<>();
        raw.put("text_model.encoder.layers.0.self_attn.q_proj.weight", Tensor.zeros(DType.F32, 4, 4));
        raw.put("text_model.encoder.layers.0.self_attn.k_proj.weight", Tensor.zeros(DType.F32, 4, 4));
        InvalidInputException e = assertThrows(InvalidInputException.class, () -> StateDictNames.toOpenAi(stored(raw), "hf.bin"));
        assertTrue(e.getMessage().contains("hf.bin") && e.getMessage().contains("v_proj")
                && e.getMessage().contains("transformer.resblocks.0.attn.in_proj_weight"), e.getMessage());
        float[] v = new float[16];
        v[15] = 7f;
        raw.put("text_model.encoder.layers.0.self_attn.v_proj.weight", Tensor.of(v, 4, 4));
        StoredTensor inProj = StateDictNames.toOpenAi(stored(raw), "hf.bin").get("transformer.resblocks.0.attn.in_proj_weight");
        assertArrayEquals(new int[]{12, 4}, inProj.shape());
        float[] read = inProj.read().toFloatArray();
        float sum = 0;
        for (float x : read) sum += x;
        assertEquals(7f, read[47]); // q, k, then v: v's last element is the last row's
        assertEquals(7f, sum);
        raw.put("text_model.encoder.layers.0.adapter.weight", Tensor.zeros(DType.F32, 4));
        e = assertThrows(InvalidInputException.class, () -> StateDictNames.toOpenAi(stored(raw), "hf.bin"));
        assertTrue(e.getMessage().contains("'text_model.encoder.layers.0.adapter.weight'"), e.getMessage());
    }

    private static Map<String, StoredTensor> stored(Map<String, Tensor> tensors) {
        Map<String, StoredTensor> out = new LinkedHashMap<>();
        tensors.forEach((name, t) -> out.put(name, StoredTensor.of(t.dtype(), t.shape(), () -> t)));
        return out;
    }

    @Test
    void resNetTowersHaveNoHuggingFaceNames() {
        Map<String, Tensor> rn = Checkpoints.load(TestFiles.golden().resolve("tiny-rn/model.safetensors")).tensors();
        InvalidInputException e = assertThrows(InvalidInputException.class, () -> StateDictNames.toHuggingFace(rn));
        assertTrue(e.getMessage().contains("ResNet"), e.getMessage());
    }
}
