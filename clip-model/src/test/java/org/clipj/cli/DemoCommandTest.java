package org.clipj.cli;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** A few steps only (the real demo takes minutes): every output is written and consistent. */
class DemoCommandTest {

    @Test
    void shortDemoWritesSummaryCheckpointAndCurve(@TempDir Path dir) throws Exception {
        Path out = dir.resolve("demo");
        TrainCommandTest.Result r = TrainCommandTest.run("demo", "--out", out.toString(), "--steps", "3", "--batch", "8",
                "--train-size", "64", "--eval-size", "12", "--warmup", "1", "--device", "cpu");
        assertEquals(0, r.status(), r.err());
        JsonNode stdout = new ObjectMapper().readTree(r.out());
        JsonNode file = new ObjectMapper().readTree(out.resolve("summary.json").toFile());
        assertEquals(stdout, file);
        assertEquals(3, file.get("steps").asInt());
        assertEquals(1.0 / 36, file.get("chance").asDouble(), 1e-12);
        double top1 = file.get("zero_shot_top1").asDouble();
        assertTrue(top1 >= 0 && top1 <= 1);
        assertEquals(6, file.get("held_out_pairs").size());
        assertEquals(6, file.get("examples").size());
        assertTrue(Files.isRegularFile(Path.of(file.get("examples").get(0).get("file").asText())));
        assertTrue(Files.isRegularFile(out.resolve("model.safetensors")));
        assertTrue(Files.isRegularFile(out.resolve("bpe.txt.gz")));
        assertTrue(Files.isRegularFile(out.resolve("loss.png")));
        assertTrue(Files.isDirectory(out.resolve("checkpoints/step-00000003")));
        assertTrue(r.err().contains("held-out colour-shape pairs"), r.err());
    }
}
