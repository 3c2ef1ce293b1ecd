package org.clipj.train;

import org.clipj.data.SyntheticDataset;
import org.clipj.model.ClipConfig;
import org.clipj.model.ClipModel;
import org.clipj.runtime.cpu.CpuBackend;
import org.clipj.text.ClipTokenizer;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** N steps, a checkpoint, then resume for N more gives exactly the losses of 2N steps in one go. */
class TrainerResumeTest {
    private static final ClipTokenizer TOKENIZER = ClipTokenizer.fromMerges(List.of());
    private static final ClipConfig CONFIG = ClipConfig.vit("test-tiny", 16, 16, 32, 1, 8, 12,
            TOKENIZER.vocabSize(), 32, 1);

    private static Trainer.Options options(int saveEvery) {
        return new Trainer.Options(3, 2, 2e-3, 0.2, 2, 6, LrSchedule.Kind.COSINE, 1.0, true, true, 11,
                saveEvery, 2, 2);
    }

    private static SyntheticDataset data() {
        return new SyntheticDataset(4, 10, 24, SyntheticDataset.Split.TRAIN);
    }

    /**
     * The scalar reference ops: bit-for-bit repeatable. (The Vector API path may differ in the last
     * bit between the interpreter and JIT-compiled code, since the order of a float lane reduction is
     * left to the implementation, so two runs in one JVM need not agree to the bit.)
     */
    private static CpuBackend exactBackend() {
        return new CpuBackend(2, false);
    }

    @Test
    void resumeContinuesExactly(@TempDir Path dir) throws Exception {
        float[] straight = new float[6];
        try (CpuBackend backend = exactBackend()) {
            ClipModel model = ClipModel.initialize(CONFIG, 3, backend);
            try (Trainer t = new Trainer(model, TOKENIZER, null, data(), "synthetic", "test", options(0),
                    dir.resolve("a"), null, null)) {
                List<Trainer.StepResult> steps = t.train(6);
                for (int i = 0; i < 6; i++) {
                    straight[i] = steps.get(i).loss();
                }
            }
        }
        Path out = dir.resolve("b");
        try (CpuBackend backend = exactBackend()) {
            ClipModel model = ClipModel.initialize(CONFIG, 3, backend);
            try (Trainer t = new Trainer(model, TOKENIZER, null, data(), "synthetic", "test", options(3), out, null, null)) {
                List<Trainer.StepResult> first = t.train(3);
                for (int i = 0; i < 3; i++) {
                    assertEquals(straight[i], first.get(i).loss(), "step " + (i + 1));
                }
                t.train(4); // one step past the checkpoint: resume must drop it
            }
        }
        Path ckpt = TrainCheckpoints.resolve(out);
        assertEquals(3, TrainCheckpoints.stepOf(ckpt));
        TrainCheckpoints.Loaded loaded = TrainCheckpoints.load(ckpt);
        assertEquals(3, loaded.state().step());
        try (CpuBackend backend = exactBackend()) {
            ClipModel model = ClipModel.fromStateDict(loaded.model(), loaded.config(), backend);
            try (Trainer t = new Trainer(model, TOKENIZER, null, data(), "synthetic", "test", options(3), out, null, loaded)) {
                List<Trainer.StepResult> rest = t.train(6);
                assertEquals(3, rest.size());
                for (int i = 0; i < 3; i++) {
                    assertEquals(straight[i + 3], rest.get(i).loss(), "step " + (i + 4));
                }
                t.finish();
            }
        }
        List<MetricsLog.Entry> log = MetricsLog.read(out.resolve("metrics.jsonl"));
        assertEquals(List.of(1, 2, 3, 4, 5, 6), log.stream().map(MetricsLog.Entry::step).toList());
        for (int i = 0; i < 6; i++) {
            assertEquals(straight[i], (float) log.get(i).loss());
        }
        assertTrue(Files.isRegularFile(out.resolve("model.safetensors")));
        assertTrue(Files.isRegularFile(out.resolve("loss.png")));
        List<Path> kept = TrainCheckpoints.complete(out.resolve("checkpoints"));
        assertEquals(List.of("step-00000003", "step-00000006"), kept.stream().map(p -> p.getFileName().toString()).toList());
        try (var s = Files.list(out.resolve("checkpoints"))) {
            assertFalse(s.anyMatch(p -> p.getFileName().toString().contains("partial")), "no partial checkpoint left");
        }
    }
}
