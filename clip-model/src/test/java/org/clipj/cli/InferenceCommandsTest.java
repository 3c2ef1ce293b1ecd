package org.clipj.cli;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import org.clipj.TestAssets;
import org.clipj.io.SafeTensors;
import org.clipj.runtime.Tensor;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.OutputStream;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.zip.ZipEntry;
import java.util.zip.ZipOutputStream;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** `clip embed`, `clip zero-shot` and `clip info` end to end, and their errors on bad input. */
class InferenceCommandsTest {
    private static final ObjectMapper JSON = new ObjectMapper();

    record Run(int status, String out, String err) {
        JsonNode json() throws IOException {
            return JSON.readTree(out);
        }
    }

    static Run clip(String... args) {
        StringWriter out = new StringWriter();
        StringWriter err = new StringWriter();
        int status = Main.run(new PrintWriter(out), new PrintWriter(err), args);
        return new Run(status, out.toString(), err.toString());
    }

    private static String model() {
        return TestAssets.golden("tiny-vit", "model.safetensors").toString();
    }

    private static String image(String name) {
        return TestAssets.golden("text-image", "images", name).toString();
    }

    @Test
    void embedGivesUnitVectorsForImagesAndTexts() throws IOException {
        Run r = clip("embed", "--model", model(), "--vocab", TestAssets.vocab().toString(), "--device", "cpu",
                "--image", image("CLIP.png"), "--image", image("photo.jpg"), "--text", "a dog", "--text", "-starts with a dash");
        assertEquals(0, r.status(), r.err());
        JsonNode json = r.json();
        assertEquals("cpu", json.get("device").asText());
        assertEquals(2, json.get("images").size());
        assertEquals(2, json.get("texts").size());
        assertEquals("-starts with a dash", json.get("texts").get(1).get("text").asText());
        for (JsonNode row : new JsonNode[]{json.get("images").get(0), json.get("images").get(1), json.get("texts").get(0)}) {
            JsonNode e = row.get("embedding");
            assertEquals(64, e.size());
            double norm = 0;
            for (JsonNode v : e) norm += v.asDouble() * v.asDouble();
            assertEquals(1.0, norm, 1e-5);
        }
    }

    @Test
    void zeroShotReturnsAProbabilityPerLabel() throws IOException {
        Run r = clip("zero-shot", "--model", model(), "--vocab", TestAssets.vocab().toString(), "--device", "cpu",
                "--image", image("CLIP.png"), "--image", image("gray.png"), "--labels", "diagram, dog ,cat",
                "--template", "a photo of a {}.", "--template", "a drawing of a {}.");
        assertEquals(0, r.status(), r.err());
        JsonNode results = r.json().get("results");
        assertEquals(2, results.size());
        for (JsonNode row : results) {
            JsonNode probs = row.get("probs");
            assertEquals(3, probs.size());
            double sum = 0;
            String best = null;
            double bestP = -1;
            for (String label : new String[]{"diagram", "dog", "cat"}) {
                double p = probs.get(label).asDouble();
                sum += p;
                if (p > bestP) {
                    bestP = p;
                    best = label;
                }
            }
            assertEquals(1.0, sum, 1e-5);
            assertEquals(best, row.get("top").asText());
        }
    }

    @Test
    void infoDescribesEachFormat() throws IOException {
        JsonNode ts = clip("info", "--model", TestAssets.golden("tiny-vit", "model.pt").toString()).json();
        assertEquals("torchscript", ts.get("format").asText());
        assertEquals("openai", ts.get("naming").asText());
        assertEquals("VisionTransformer", ts.get("architecture").asText());
        JsonNode fp16 = clip("info", "--model", TestAssets.golden("tiny-vit", "model-fp16.bin").toString()).json();
        assertEquals("torch_zip", fp16.get("format").asText());
        assertTrue(fp16.get("dtypes").has("F16"));
        assertEquals(ts.get("parameters").asLong(), fp16.get("parameters").asLong());
        JsonNode rn = clip("info", "--model", TestAssets.golden("tiny-rn", "model.bin").toString()).json();
        assertEquals("ModifiedResNet", rn.get("architecture").asText());
    }

    @Test
    void everyCommandHasHelp() {
        for (String name : Main.commandLine().getSubcommands().keySet()) {
            Run r = clip(name, "--help");
            assertEquals(0, r.status(), name + " --help: " + r.err());
            assertTrue((r.out() + r.err()).contains("Usage:"), name + " --help printed no usage");
        }
    }

    @Test
    void missingModelFileIsBadInput() {
        Run r = clip("embed", "--model", "/nonexistent/model.safetensors", "--text", "x");
        assertEquals(2, r.status());
        assertTrue(r.err().startsWith("error: ") && r.err().contains("/nonexistent/model.safetensors"), r.err());
        assertFalse(r.err().contains("\tat "), "no stack trace without --debug");
    }

    @Test
    void truncatedSafetensorsIsBadInput(@TempDir Path dir) throws IOException {
        byte[] whole = Files.readAllBytes(TestAssets.golden("tiny-vit", "model.safetensors"));
        Path cut = dir.resolve("cut.safetensors");
        Files.write(cut, java.util.Arrays.copyOf(whole, whole.length / 2));
        Run r = clip("info", "--model", cut.toString());
        assertEquals(2, r.status(), r.err());
        assertTrue(r.err().startsWith("error: ") && r.err().contains(cut.toString()), r.err());
    }

    @Test
    void hostilePickleIsRejectedWithoutRunningIt(@TempDir Path dir) throws IOException {
        Path marker = dir.resolve("pwned");
        // protocol 2: GLOBAL os.system, the argument tuple, REDUCE, STOP
        ByteArrayOutputStream pickle = new ByteArrayOutputStream();
        pickle.write(new byte[]{(byte) 0x80, 2});
        pickle.writeBytes("cos\nsystem\n".getBytes(StandardCharsets.US_ASCII));
        String cmd = "touch " + marker;
        pickle.write('X');
        pickle.writeBytes(new byte[]{(byte) cmd.length(), 0, 0, 0});
        pickle.writeBytes(cmd.getBytes(StandardCharsets.US_ASCII));
        pickle.writeBytes(new byte[]{(byte) 0x85, 'R', '.'});
        Path evil = dir.resolve("evil.bin");
        try (OutputStream f = Files.newOutputStream(evil); ZipOutputStream zip = new ZipOutputStream(f)) {
            zip.putNextEntry(new ZipEntry("archive/data.pkl"));
            zip.write(pickle.toByteArray());
            zip.closeEntry();
        }
        Run r = clip("embed", "--model", evil.toString(), "--text", "x", "--vocab", TestAssets.vocab().toString());
        assertEquals(2, r.status(), r.err());
        assertTrue(r.err().contains(evil.toString()) && r.err().contains("os") && r.err().contains("system"), r.err());
        assertFalse(Files.exists(marker), "the pickle's code ran");
    }

    @Test
    void wrongShapedTensorIsNamed(@TempDir Path dir) {
        Map<String, Tensor> tensors = new LinkedHashMap<>(SafeTensors.read(TestAssets.golden("tiny-vit", "model.safetensors")));
        tensors.put("visual.ln_post.weight", Tensor.zeros(org.clipj.runtime.DType.F32, 127));
        Path bad = dir.resolve("bad.safetensors");
        SafeTensors.write(bad, tensors, Map.of());
        Run r = clip("embed", "--model", bad.toString(), "--text", "x", "--vocab", TestAssets.vocab().toString());
        assertEquals(2, r.status(), r.err());
        assertTrue(r.err().contains("visual.ln_post.weight"), r.err());
    }

    @Test
    void fileThatIsNotAnImageIsNamed(@TempDir Path dir) throws IOException {
        Path notImage = dir.resolve("notes.png");
        Files.writeString(notImage, "this is text, not a PNG");
        Run r = clip("embed", "--model", model(), "--image", notImage.toString());
        assertEquals(2, r.status(), r.err());
        assertTrue(r.err().startsWith("error: ") && r.err().contains(notImage.toString()), r.err());
    }
}
