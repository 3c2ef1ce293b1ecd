package org.clipj.cli;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import org.clipj.io.SafeTensors;
import org.clipj.model.ClipModel;
import org.clipj.runtime.cpu.CpuBackend;
import org.clipj.text.ClipTokenizer;
import org.clipj.train.MetricsLog;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import javax.imageio.ImageIO;
import java.awt.image.BufferedImage;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

class TrainCommandTest {
    private static final ObjectMapper JSON = new ObjectMapper();

    record Result(int status, String out, String err) {
    }

    static Result run(String... args) {
        StringWriter out = new StringWriter();
        StringWriter err = new StringWriter();
        int status = Main.run(new PrintWriter(out), new PrintWriter(err), args);
        return new Result(status, out.toString(), err.toString());
    }

    @Test
    void sixteenBitTrainingAndTf32NeedCuda(@TempDir Path dir) {
        String[] common = {"train", "--model", "tiny", "--synthetic-size", "8", "--batch", "4", "--steps", "1",
                "--bpe-merges", "20", "--device", "cpu", "--out", dir.toString()};
        Result bf16 = run(concat(common, new String[]{"--precision", "bf16"}));
        assertEquals(2, bf16.status(), bf16.err());
        assertTrue(bf16.err().contains("--precision bf16: training in 16 bits needs --device cuda"), bf16.err());
        Result tf32 = run(concat(common, new String[]{"--tf32"}));
        assertEquals(2, tf32.status(), tf32.err());
        assertTrue(tf32.err().contains("--tf32 needs the CUDA backend"), tf32.err());
        Result bad = run(concat(common, new String[]{"--precision", "f8"}));
        assertEquals(2, bad.status(), bad.err());
        assertTrue(bad.err().contains("--precision") && bad.err().contains("unknown precision 'f8'"), bad.err());
    }

    /** --device cuda on the simulator: bf16 by default, f16 with its loss scale in the result, tf32 said in the log. */
    @Test
    void trainsOnCudaInEachPrecision(@TempDir Path dir) throws Exception {
        org.junit.jupiter.api.Assumptions.assumeTrue(org.clipj.kernels.Kernels.simLibrary().isPresent(),
                "simulator library not built: " + org.clipj.kernels.Kernels.simLibraryUnavailableReason());
        String previous = System.getProperty("clip.cuda.binding");
        System.setProperty("clip.cuda.binding", "sim");
        try {
            for (String[] extra : new String[][] {{}, {"--precision", "f16"}, {"--precision", "f32", "--tf32"}}) {
                String[] args = concat(new String[]{"train", "--model", "tiny", "--synthetic-size", "8", "--batch", "4",
                        "--steps", "1", "--bpe-merges", "20", "--device", "cuda", "--out",
                        dir.resolve("run" + extra.length).toString()}, extra);
                Result r = run(args);
                assertEquals(0, r.status(), r.err());
                JsonNode json = JSON.readTree(r.out());
                String expected = extra.length == 0 ? "bf16" : extra[1];
                assertEquals(expected, json.get("precision").asText(), r.out());
                assertEquals(expected.equals("f16"), json.has("loss_scale"), r.out());
                assertEquals(expected.equals("f32"), r.err().contains("TF32 GEMMs"), r.err());
            }
        } finally {
            if (previous == null) System.clearProperty("clip.cuda.binding");
            else System.setProperty("clip.cuda.binding", previous);
        }
    }

    @Test
    void fromScratchOnSyntheticDataThenResume(@TempDir Path dir) throws Exception {
        Path out = dir.resolve("run");
        String[] common = {"--model", "tiny", "--synthetic-size", "40", "--batch", "4", "--accum", "2", "--warmup", "1",
                "--bpe-merges", "100", "--save-every", "2", "--seed", "3", "--schedule", "const", "--device", "cpu",
                "--out", out.toString()};
        Result r = run(concat(new String[]{"train", "--steps", "2"}, common));
        assertEquals(0, r.status(), r.err());
        JsonNode json = JSON.readTree(r.out());
        assertEquals(2, json.get("steps").asInt());
        assertTrue(r.err().contains("step 2/2"), r.err());
        Path weights = out.resolve("model.safetensors");
        assertEquals(weights.toAbsolutePath().toString(), json.get("model").asText());
        // the weights and the vocab next to them are a usable model
        ClipTokenizer tokenizer = ClipTokenizer.load(out);
        try (CpuBackend backend = new CpuBackend()) {
            ClipModel model = ClipModel.fromStateDict(SafeTensors.read(weights), backend);
            assertEquals(tokenizer.vocabSize(), model.config().vocabSize());
        }
        assertTrue(Files.isRegularFile(out.resolve("loss.png")));
        assertEquals(2, MetricsLog.read(out.resolve("metrics.jsonl")).size());

        Result resumed = run(concat(new String[]{"train", "--steps", "4", "--resume", out.toString()}, common));
        assertEquals(0, resumed.status(), resumed.err());
        List<MetricsLog.Entry> log = MetricsLog.read(out.resolve("metrics.jsonl"));
        assertEquals(List.of(1, 2, 3, 4), log.stream().map(MetricsLog.Entry::step).toList());
        assertTrue(Files.isDirectory(out.resolve("checkpoints/step-00000004")));

        // fine-tuning from the result: --init finds the vocab next to the weights
        Path tuned = dir.resolve("tuned");
        Result init = run("train", "--init", out.resolve("model.safetensors").toString(), "--synthetic-size", "40",
                "--batch", "4", "--steps", "1", "--warmup", "0", "--device", "cpu", "--out", tuned.toString());
        assertEquals(0, init.status(), init.err());
        assertTrue(Files.isRegularFile(tuned.resolve("model.safetensors")));
        assertTrue(Files.isRegularFile(tuned.resolve("bpe.txt.gz")));
    }

    @Test
    void csvRunSkipsAndReportsUnreadableImages(@TempDir Path dir) throws Exception {
        StringBuilder tsv = new StringBuilder("filepath\ttitle\n");
        for (int i = 0; i < 6; i++) {
            BufferedImage img = new BufferedImage(40, 30, BufferedImage.TYPE_INT_RGB);
            img.setRGB(i, i, 0xFF0000);
            ImageIO.write(img, "png", dir.resolve("i" + i + ".png").toFile());
            tsv.append("i").append(i).append(".png\tpicture number ").append(i).append('\n');
        }
        tsv.append("missing.png\ta missing picture\n");
        Files.writeString(dir.resolve("data.tsv"), tsv.toString());
        Path out = dir.resolve("out");
        Result r = run("train", "--data", dir.resolve("data.tsv").toString(), "--steps", "2", "--batch", "4",
                "--bpe-merges", "20", "--no-shuffle", "--no-augment", "--device", "cpu", "--out", out.toString());
        assertEquals(0, r.status(), r.err());
        JsonNode json = JSON.readTree(r.out());
        assertEquals(1, json.get("skipped_images").asInt());
        assertTrue(json.get("skipped_examples").get(0).asText().contains("missing.png"), r.out());
        assertTrue(r.err().contains("skipped 1"), r.err());
    }

    @Test
    void badArgumentsExitTwoWithTheirName(@TempDir Path dir) {
        Result both = run("train", "--model", "tiny", "--init", "x.safetensors", "--out", dir.toString());
        assertEquals(2, both.status());
        assertTrue(both.err().contains("--init"), both.err());
        Result schedule = run("train", "--schedule", "linear", "--steps", "1", "--out", dir.toString());
        assertEquals(2, schedule.status());
        assertTrue(schedule.err().contains("--schedule"), schedule.err());
        Result csv = run("train", "--data", dir.resolve("none.tsv").toString(), "--out", dir.toString());
        assertEquals(2, csv.status());
        assertTrue(csv.err().contains("none.tsv"), csv.err());
        Result resume = run("train", "--resume", dir.toString(), "--out", dir.toString());
        assertEquals(2, resume.status());
        assertTrue(resume.err().contains("no complete checkpoint"), resume.err());
    }

    private static String[] concat(String[] a, String[] b) {
        String[] out = java.util.Arrays.copyOf(a, a.length + b.length);
        System.arraycopy(b, 0, out, a.length, b.length);
        return out;
    }
}
