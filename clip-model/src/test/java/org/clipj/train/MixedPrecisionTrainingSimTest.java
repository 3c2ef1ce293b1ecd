package org.clipj.train;

import org.clipj.data.SyntheticDataset;
import org.clipj.kernels.Kernels;
import org.clipj.model.ClipConfig;
import org.clipj.model.ClipModel;
import org.clipj.model.Precision;
import org.clipj.runtime.InvalidInputException;
import org.clipj.runtime.Tensor;
import org.clipj.runtime.cpu.CpuBackend;
import org.clipj.runtime.cuda.CudaBackend;
import org.clipj.text.ClipTokenizer;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

/**
 * Mixed-precision training of a tiny ViT CLIP on the simulator binding: BF16 autocast follows the F32 loss curve
 * within 2 % over 20 steps; F16 loss scaling skips a step whose gradients overflow, halves the scale and leaves the
 * weights and the optimizer step alone, and resume continues the scale.
 */
class MixedPrecisionTrainingSimTest {
    private static final ClipTokenizer TOKENIZER = ClipTokenizer.fromMerges(List.of());
    private static final ClipConfig CONFIG = ClipConfig.vit("test-tiny", 16, 16, 32, 1, 8, 12,
            TOKENIZER.vocabSize(), 32, 1);

    @BeforeAll
    static void simulator() {
        assumeTrue(Kernels.simLibrary().isPresent(), "simulator library not built: " + Kernels.simLibraryUnavailableReason());
    }

    private static Trainer.Options options(Precision precision, int steps, int saveEvery) {
        return new Trainer.Options(4, 1, 2e-3, 0.2, 2, steps, LrSchedule.Kind.COSINE, 1.0, false, true, 11,
                saveEvery, 1, 3).withPrecision(precision);
    }

    private static SyntheticDataset data() {
        return new SyntheticDataset(4, 12, 24, SyntheticDataset.Split.TRAIN);
    }

    private static float[] losses(Precision precision, int steps, Path out) {
        try (CudaBackend cuda = CudaBackend.open("sim")) {
            ClipModel model = ClipModel.initialize(CONFIG, 3, cuda);
            try (Trainer t = new Trainer(model, TOKENIZER, null, data(), "synthetic", "test", options(precision, steps, 0),
                    out, null, null)) {
                List<Trainer.StepResult> results = t.train(steps);
                float[] losses = new float[steps];
                for (int i = 0; i < steps; i++) {
                    losses[i] = results.get(i).loss();
                    assertFalse(results.get(i).skipped());
                }
                return losses;
            }
        }
    }

    @Test
    void bf16FollowsTheF32LossCurveWithin2Percent(@TempDir Path dir) {
        long start = System.nanoTime();
        float[] f32 = losses(Precision.F32, 20, dir.resolve("f32"));
        long mid = System.nanoTime();
        float[] bf16 = losses(Precision.BF16, 20, dir.resolve("bf16"));
        double worst = 0;
        for (int i = 0; i < f32.length; i++) {
            double rel = Math.abs(bf16[i] - f32[i]) / Math.abs(f32[i]);
            assertTrue(rel <= 0.02, "step " + (i + 1) + ": bf16 loss " + bf16[i] + ", f32 " + f32[i]);
            worst = Math.max(worst, rel);
        }
        assertTrue(worst > 0, "bf16 ran the same arithmetic as f32: the 16-bit GEMMs were not used");
        System.out.printf("cuda-sim tiny ViT 20 steps: f32 %.1f s, bf16 %.1f s; loss %.4f -> %.4f (f32), %.4f -> %.4f (bf16),"
                        + " max relative difference %.2e%n", (mid - start) / 1e9, (System.nanoTime() - mid) / 1e9, f32[0],
                f32[19], bf16[0], bf16[19], worst);
    }

    @Test
    void f16SkipsAnOverflowingStepLowersTheScaleAndResumeContinuesIt(@TempDir Path dir) {
        Path first = dir.resolve("first");
        try (CudaBackend cuda = CudaBackend.open("sim")) {
            ClipModel model = ClipModel.initialize(CONFIG, 3, cuda);
            try (Trainer t = new Trainer(model, TOKENIZER, null, data(), "synthetic", "test", options(Precision.F16, 4, 1),
                    first, null, null)) {
                assertEquals(LossScaler.INITIAL_SCALE, t.lossScale());
                t.train(1);
            }
        }
        // The step-1 checkpoint again, with a loss scale no F16 gradient survives: the injected overflow.
        TrainCheckpoints.Loaded one = TrainCheckpoints.load(TrainCheckpoints.resolve(first));
        TrainCheckpoints.TrainState s = one.state();
        assertEquals(1, s.step());
        int optimizerStep = s.optimizerStep();
        Path injected = dir.resolve("injected");
        TrainCheckpoints.save(injected.resolve("checkpoints"), new TrainCheckpoints.TrainState(1, s.dataPosition(),
                s.skipped(), s.run(), optimizerStep, new LossScaler.State(Float.MAX_VALUE, 7)), one.model(), one.config(),
                one.optimizer(), null, 2);
        TrainCheckpoints.Loaded poisoned = TrainCheckpoints.load(TrainCheckpoints.resolve(injected));
        assertEquals(new LossScaler.State(Float.MAX_VALUE, 7), poisoned.state().lossScale());
        try (CudaBackend cuda = CudaBackend.open("sim")) {
            ClipModel model = ClipModel.fromStateDict(poisoned.model(), poisoned.config(), cuda);
            try (Trainer t = new Trainer(model, TOKENIZER, null, data(), "synthetic", "test", options(Precision.F16, 4, 1),
                    injected, null, poisoned)) {
                Map<String, Tensor> before = model.stateDict();
                Trainer.StepResult r = t.train(2).getFirst();
                assertTrue(r.skipped(), "the overflowing step is skipped");
                assertEquals(Float.MAX_VALUE, r.lossScale());
                assertEquals(Float.MAX_VALUE / 2, t.lossScale(), "and the scale halved");
                assertEquals(1, t.skippedSteps());
                Map<String, Tensor> after = model.stateDict();
                for (String name : before.keySet()) {
                    if (name.equals("logit_scale")) continue; // clamped into [0, ln 100] after every step
                    assertArrayEquals(before.get(name).toFloatArray(), after.get(name).toFloatArray(), name + " unchanged");
                }
            }
        }
        TrainCheckpoints.Loaded two = TrainCheckpoints.load(TrainCheckpoints.resolve(injected));
        assertEquals(2, two.state().step());
        assertEquals(optimizerStep, two.state().optimizerStep(), "a skipped step does not advance AdamW");
        assertEquals(new LossScaler.State(Float.MAX_VALUE / 2, 0), two.state().lossScale());
        try (CudaBackend cuda = CudaBackend.open("sim")) {
            ClipModel model = ClipModel.fromStateDict(two.model(), two.config(), cuda);
            try (Trainer t = new Trainer(model, TOKENIZER, null, data(), "synthetic", "test", options(Precision.F16, 4, 1),
                    injected, null, two)) {
                assertEquals(Float.MAX_VALUE / 2, t.lossScale(), "resume continues the scale");
            }
        }
    }

    @Test
    void sixteenBitTrainingNeedsCuda() {
        try (CpuBackend cpu = new CpuBackend(1, false)) {
            ClipModel model = ClipModel.initialize(CONFIG, 3, cpu);
            InvalidInputException e = assertThrows(InvalidInputException.class, () -> model.trainIn(Precision.BF16));
            assertTrue(e.getMessage().contains("needs the CUDA backend"), e.getMessage());
        }
    }
}
