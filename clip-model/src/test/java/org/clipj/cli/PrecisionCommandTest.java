package org.clipj.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import com.fasterxml.jackson.databind.JsonNode;
import org.clipj.TestAssets;
import org.clipj.kernels.Kernels;
import org.clipj.runtime.cpu.Bf16Gemm;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import java.io.IOException;

/**
 * `clip embed --device cuda --precision bf16|f16|f32` end to end on the simulator binding, and `--device cpu
 * --precision bf16` through the native AVX512_BF16 kernels: the embeddings match the CPU's F32 ones
 * (cosine >= 0.999); BF16 on a CPU without the instructions, and F16 on any CPU, are errors.
 */
class PrecisionCommandTest {

    @ParameterizedTest
    @ValueSource(strings = {"bf16", "f16", "f32"})
    void embedOnCudaMatchesTheCpu(String precision) throws IOException {
        assumeTrue(Kernels.simLibrary().isPresent(), "simulator library not built: " + Kernels.simLibraryUnavailableReason());
        String[] inputs = {"--model", TestAssets.golden("tiny-vit", "model.safetensors").toString(),
                "--vocab", TestAssets.vocab().toString(),
                "--image", TestAssets.golden("text-image", "images", "photo.jpg").toString(), "--text", "a dog"};
        InferenceCommandsTest.Run cpu = InferenceCommandsTest.clip(concat(new String[]{"embed", "--device", "cpu"}, inputs));
        assertEquals(0, cpu.status(), cpu.err());
        String previous = System.getProperty("clip.cuda.binding");
        System.setProperty("clip.cuda.binding", "sim");
        InferenceCommandsTest.Run cuda;
        try {
            cuda = InferenceCommandsTest.clip(concat(new String[]{"embed", "--device", "cuda", "--precision", precision}, inputs));
        } finally {
            if (previous == null) System.clearProperty("clip.cuda.binding");
            else System.setProperty("clip.cuda.binding", previous);
        }
        assertEquals(0, cuda.status(), cuda.err());
        assertEquals("cuda", cuda.json().get("device").asText());
        assertEquals(precision, cuda.json().get("precision").asText());
        assertEquals("f32", cpu.json().get("precision").asText());
        for (String kind : new String[]{"images", "texts"}) {
            JsonNode a = cpu.json().get(kind).get(0).get("embedding"), b = cuda.json().get(kind).get(0).get("embedding");
            assertEquals(a.size(), b.size());
            double dot = 0;
            for (int i = 0; i < a.size(); i++) dot += a.get(i).asDouble() * b.get(i).asDouble();
            System.out.printf("embed --device cuda --precision %s (sim) %s cosine to cpu f32: %.6f%n", precision, kind, dot);
            assertTrue(dot >= 0.999 && dot <= 1.0 + 1e-6, kind + " cosine " + dot);
        }
    }

    @Test
    void embedOnTheCpuInBf16MatchesF32() throws IOException {
        String reason = Bf16Gemm.unavailableReason();
        assumeTrue(reason == null, "native BF16 kernels unavailable here: " + reason);
        String[] inputs = {"--model", TestAssets.golden("tiny-vit", "model.safetensors").toString(),
                "--vocab", TestAssets.vocab().toString(),
                "--image", TestAssets.golden("text-image", "images", "photo.jpg").toString(), "--text", "a dog"};
        InferenceCommandsTest.Run f32 = InferenceCommandsTest.clip(concat(new String[]{"embed", "--device", "cpu"}, inputs));
        assertEquals(0, f32.status(), f32.err());
        InferenceCommandsTest.Run bf16 = InferenceCommandsTest.clip(concat(new String[]{"embed", "--device", "cpu", "--precision", "bf16"}, inputs));
        assertEquals(0, bf16.status(), bf16.err());
        for (String kind : new String[]{"images", "texts"}) {
            JsonNode a = f32.json().get(kind).get(0).get("embedding"), b = bf16.json().get(kind).get(0).get("embedding");
            double dot = 0;
            for (int i = 0; i < a.size(); i++) dot += a.get(i).asDouble() * b.get(i).asDouble();
            System.out.printf("embed --device cpu --precision bf16 %s cosine to cpu f32: %.6f%n", kind, dot);
            assertTrue(dot >= 0.999 && dot <= 1.0 + 1e-6, kind + " cosine " + dot);
        }
    }

    @Test
    void bf16OnACpuWithoutAvx512Bf16IsAnError() {
        String previous = System.getProperty(Bf16Gemm.MASK_PROPERTY);
        System.setProperty(Bf16Gemm.MASK_PROPERTY, "avx512_bf16");
        InferenceCommandsTest.Run r;
        try {
            r = InferenceCommandsTest.clip("embed", "--device", "cpu", "--precision", "bf16",
                    "--model", TestAssets.golden("tiny-vit", "model.safetensors").toString(), "--text", "a dog",
                    "--vocab", TestAssets.vocab().toString());
        } finally {
            if (previous == null) System.clearProperty(Bf16Gemm.MASK_PROPERTY);
            else System.setProperty(Bf16Gemm.MASK_PROPERTY, previous);
        }
        assertEquals(2, r.status(), r.err());
        assertTrue(r.err().contains("precision bf16 on the CPU backend") && r.err().contains("avx512_bf16") && r.err().contains("f32"), r.err());
    }

    @Test
    void f16OnTheCpuIsAnError() {
        InferenceCommandsTest.Run r = InferenceCommandsTest.clip("embed", "--device", "cpu", "--precision", "f16",
                "--model", TestAssets.golden("tiny-vit", "model.safetensors").toString(), "--text", "a dog",
                "--vocab", TestAssets.vocab().toString());
        assertEquals(2, r.status(), r.err());
        assertTrue(r.err().contains("precision f16 on the CPU backend") && r.err().contains("F32"), r.err());
    }

    @Test
    void unknownPrecisionIsAnError() {
        InferenceCommandsTest.Run r = InferenceCommandsTest.clip("embed", "--device", "cpu", "--precision", "fp8",
                "--model", TestAssets.golden("tiny-vit", "model.safetensors").toString(), "--text", "a dog",
                "--vocab", TestAssets.vocab().toString());
        assertEquals(2, r.status(), r.err());
        assertTrue(r.err().contains("--precision") && r.err().contains("'fp8': expected f32, bf16 or f16"), r.err());
    }

    private static String[] concat(String[] a, String[] b) {
        String[] out = new String[a.length + b.length];
        System.arraycopy(a, 0, out, 0, a.length);
        System.arraycopy(b, 0, out, a.length, b.length);
        return out;
    }
}
