package org.clipj.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import com.fasterxml.jackson.databind.JsonNode;
import org.clipj.TestAssets;
import org.clipj.kernels.Kernels;
import org.junit.jupiter.api.Test;

import java.io.IOException;

/**
 * `clip embed --device cuda --precision bf16` end to end on the simulator binding: the embeddings
 * match the CPU's F32 ones (cosine >= 0.999); `--precision bf16` with `--device cpu` is an error.
 */
class PrecisionCommandTest {

    @Test
    void embedOnCudaInBf16MatchesTheCpu() throws IOException {
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
            cuda = InferenceCommandsTest.clip(concat(new String[]{"embed", "--device", "cuda", "--precision", "bf16"}, inputs));
        } finally {
            if (previous == null) System.clearProperty("clip.cuda.binding");
            else System.setProperty("clip.cuda.binding", previous);
        }
        assertEquals(0, cuda.status(), cuda.err());
        assertEquals("cuda", cuda.json().get("device").asText());
        for (String kind : new String[]{"images", "texts"}) {
            JsonNode a = cpu.json().get(kind).get(0).get("embedding"), b = cuda.json().get(kind).get(0).get("embedding");
            assertEquals(a.size(), b.size());
            double dot = 0;
            for (int i = 0; i < a.size(); i++) dot += a.get(i).asDouble() * b.get(i).asDouble();
            System.out.printf("embed --device cuda --precision bf16 (sim) %s cosine to cpu f32: %.6f%n", kind, dot);
            assertTrue(dot >= 0.999 && dot <= 1.0 + 1e-6, kind + " cosine " + dot);
        }
    }

    @Test
    void bf16OnTheCpuIsAnError() {
        InferenceCommandsTest.Run r = InferenceCommandsTest.clip("embed", "--device", "cpu", "--precision", "bf16",
                "--model", TestAssets.golden("tiny-vit", "model.safetensors").toString(), "--text", "a dog",
                "--vocab", TestAssets.vocab().toString());
        assertEquals(2, r.status(), r.err());
        assertTrue(r.err().contains("precision bf16 on the CPU backend") && r.err().contains("F32"), r.err());
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
