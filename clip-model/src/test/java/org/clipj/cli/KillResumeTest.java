package org.clipj.cli;

import org.clipj.train.MetricsLog;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * A training process killed with SIGKILL in the middle of its run resumes from its last complete
 * checkpoint and then follows the same loss curve as a run that was never interrupted.
 */
class KillResumeTest {
    private static final int STEPS = 24;   // far enough past step 4 that the kill lands before the end

    private static List<String> args(Path out, int steps) {
        return List.of("train", "--model", "tiny", "--synthetic-size", "48", "--batch", "4", "--warmup", "1",
                "--schedule", "const", "--bpe-merges", "60", "--save-every", "2", "--seed", "11", "--device", "cpu",
                "--steps", String.valueOf(steps), "--out", out.toString());
    }

    @Test
    void sigkilledRunResumesFromItsLastCompleteCheckpoint(@TempDir Path dir) throws Exception {
        Path reference = dir.resolve("reference");
        TrainCommandTest.Result ref = TrainCommandTest.run(args(reference, STEPS).toArray(String[]::new));
        assertEquals(0, ref.status(), ref.err());

        // The same run in a child JVM (made long so that it is still going), killed once it has saved step 4.
        Path killed = dir.resolve("killed");
        List<String> command = new ArrayList<>(List.of(ProcessHandle.current().info().command().orElse("java"),
                "--add-modules", "jdk.incubator.vector", "--enable-native-access=ALL-UNNAMED", "-Djava.awt.headless=true",
                "-cp", System.getProperty("java.class.path"), Main.class.getName()));
        command.addAll(args(killed, 100_000));
        Process child = new ProcessBuilder(command).redirectErrorStream(true)
                .redirectOutput(dir.resolve("child.log").toFile()).start();
        try {
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(240);
            while (!Files.isDirectory(killed.resolve("checkpoints").resolve("step-00000004"))) {
                assertTrue(child.isAlive(), "the child stopped early: " + Files.readString(dir.resolve("child.log")));
                assertTrue(System.nanoTime() < deadline, "no checkpoint after 240 s");
                Thread.sleep(50);
            }
            Thread.sleep(50); // let it get into the middle of later steps or checkpoint writes (a quiet Zen 5 runs ~10 steps in 300 ms)
        } finally {
            child.destroyForcibly(); // SIGKILL on Linux
            child.waitFor(30, TimeUnit.SECONDS);
        }

        TrainCommandTest.Result resumed = TrainCommandTest.run(
                Stream.concat(args(killed, STEPS).stream(), Stream.of("--resume", killed.toString())).toArray(String[]::new));
        assertEquals(0, resumed.status(), resumed.err());
        List<MetricsLog.Entry> expected = MetricsLog.read(reference.resolve("metrics.jsonl"));
        List<MetricsLog.Entry> actual = MetricsLog.read(killed.resolve("metrics.jsonl"));
        assertEquals(expected.stream().map(MetricsLog.Entry::step).toList(), actual.stream().map(MetricsLog.Entry::step).toList());
        for (int i = 0; i < expected.size(); i++) {
            double e = expected.get(i).loss();
            double a = actual.get(i).loss();
            // separate JVMs: the JIT may order vector lane sums differently, so equal up to rounding
            assertEquals(e, a, 1e-4 * Math.max(1, Math.abs(e)), "loss at step " + expected.get(i).step());
        }
    }
}
