package org.clipj.train;

import org.clipj.runtime.InvalidInputException;
import org.clipj.runtime.Tensor;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

class TrainCheckpointsTest {

    private static TrainCheckpoints.TrainState state(int step) {
        Map<String, Object> run = new LinkedHashMap<>();
        run.put("batch", 4);
        run.put("data", "synthetic:10");
        return new TrainCheckpoints.TrainState(step, step * 4L + 1, 2, run);
    }

    @Test
    void roundTripKeepsTheNewestAndIgnoresPartialWrites(@TempDir Path dir) throws Exception {
        Path ckpts = dir.resolve("checkpoints");
        Path vocab = Files.writeString(dir.resolve("v.txt"), "#version\na b\n");
        Map<String, Tensor> model = Map.of("logit_scale", Tensor.of(new float[]{2.5f}, 1));
        for (int step : new int[]{2, 4, 6}) {
            Map<String, Tensor> opt = Map.of("m.logit_scale", Tensor.of(new float[]{step}, 1),
                    "v.logit_scale", Tensor.of(new float[]{step * 10f}, 1));
            TrainCheckpoints.save(ckpts, state(step), model, null, opt, vocab, 2);
        }
        assertEquals(List.of("step-00000004", "step-00000006"),
                TrainCheckpoints.complete(ckpts).stream().map(p -> p.getFileName().toString()).toList());
        // a run killed while writing step 8 leaves only a hidden partial folder; one killed between two
        // file writes of a (hypothetical) non-atomic writer leaves a step folder without its state
        Files.createDirectories(ckpts.resolve(".step-00000008.partial"));
        Files.writeString(ckpts.resolve(".step-00000008.partial/model.safetensors"), "torn");
        Files.createDirectories(ckpts.resolve("step-00000010"));
        Files.writeString(ckpts.resolve("step-00000010/model.safetensors"), "torn");

        Path latest = TrainCheckpoints.resolve(dir);
        assertEquals(6, TrainCheckpoints.stepOf(latest));
        TrainCheckpoints.Loaded loaded = TrainCheckpoints.load(latest);
        assertEquals(6, loaded.state().step());
        assertEquals(25, loaded.state().dataPosition());
        assertEquals(2, loaded.state().skipped());
        assertEquals("synthetic:10", loaded.state().run().get("data"));
        assertArrayEquals(new float[]{60f}, loaded.optimizer().get("v.logit_scale").toFloatArray());
        assertArrayEquals(new float[]{2.5f}, loaded.model().get("logit_scale").toFloatArray());
        assertEquals("#version\na b\n", Files.readString(loaded.vocab()));
        assertEquals(latest, TrainCheckpoints.resolve(ckpts));
        assertEquals(latest, TrainCheckpoints.resolve(latest));
    }

    @Test
    void aFolderWithoutCheckpointsIsNamed(@TempDir Path dir) {
        InvalidInputException e = assertThrows(InvalidInputException.class, () -> TrainCheckpoints.resolve(dir));
        assertEquals(true, e.getMessage().contains(dir.toString()));
    }
}
