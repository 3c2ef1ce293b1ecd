package org.clipj.cli;

import com.fasterxml.jackson.databind.JsonNode;
import org.clipj.TestAssets;
import org.clipj.io.SafeTensors;
import org.clipj.model.ClipConfig;
import org.clipj.model.ClipModel;
import org.clipj.runtime.DType;
import org.clipj.runtime.Tensor;
import org.clipj.runtime.cpu.CpuBackend;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import java.io.IOException;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;

import static org.clipj.cli.InferenceCommandsTest.clip;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Full-size OpenAI layouts (random weights, stored F16 as released checkpoints are) through the CLI:
 * the config is inferred from the file alone and the embedding matches the F32 model's.
 */
class FullSizeLayoutsTest {

    @ParameterizedTest
    @ValueSource(strings = {"ViT-B/32", "RN50"})
    void f16CheckpointEmbedsLikeTheF32Model(String name, @TempDir Path dir) throws IOException {
        ClipConfig config = ClipConfig.named(name);
        ClipModel f32 = ClipModel.initialize(config, 42, new CpuBackend());
        Map<String, Tensor> half = new LinkedHashMap<>();
        f32.stateDict().forEach((k, v) -> half.put(k, toF16(v)));
        Path file = dir.resolve("model.safetensors");
        SafeTensors.write(file, half, Map.of("format", "pt"));

        JsonNode info = clip("info", "--model", file.toString()).json();
        assertEquals(config.embedDim(), info.get("config").get("embedDim").asInt());
        assertEquals(config.imageResolution(), info.get("config").get("imageResolution").asInt());
        assertTrue(info.get("dtypes").has("F16"));

        InferenceCommandsTest.Run r = clip("embed", "--model", file.toString(), "--device", "cpu",
                "--image", TestAssets.golden("text-image", "images", "photo.jpg").toString());
        assertEquals(0, r.status(), r.err());
        JsonNode e = r.json().get("images").get(0).get("embedding");
        assertEquals(config.embedDim(), e.size());

        // the same image through the F32 model in memory
        ClipModel widened = ClipModel.fromStateDict(half, new CpuBackend());
        float[] pixels = org.clipj.image.Preprocess.clip(org.clipj.image.ImageLoader.read(
                TestAssets.golden("text-image", "images", "photo.jpg")), config.imageResolution());
        Tensor input = Tensor.of(pixels, 1, 3, config.imageResolution(), config.imageResolution());
        float[] ref32 = TestAssets.normalized(f32.encodeImage(input).toFloatArray());
        float[] refHalf = TestAssets.normalized(widened.encodeImage(input).toFloatArray());
        float[] cli = new float[e.size()];
        for (int i = 0; i < cli.length; i++) cli[i] = (float) e.get(i).asDouble();
        assertTrue(TestAssets.maxAbsDiff(refHalf, cli) <= 1e-5f, "CLI vs in-memory F16 model");
        assertTrue(TestAssets.dot(ref32, cli) >= 0.999f, "F16 weights vs F32 weights: cosine " + TestAssets.dot(ref32, cli));
    }

    private static Tensor toF16(Tensor t) {
        if (t.dtype() != DType.F32) {
            return t;
        }
        float[] v = t.toFloatArray();
        short[] bits = new short[v.length];
        for (int i = 0; i < v.length; i++) bits[i] = DType.floatToF16(v[i]);
        return Tensor.ofBits(DType.F16, bits, t.shape());
    }
}
