package org.clipj.cli;

import org.clipj.io.AtomicFiles;
import org.clipj.io.SafeTensors;
import org.clipj.io.Tmpfs;
import org.clipj.model.ClipConfig;
import org.clipj.model.ClipModel;
import org.clipj.runtime.cpu.CpuBackend;
import org.clipj.text.BpeTrainer;
import org.clipj.text.ClipTokenizer;
import org.clipj.train.MetricsLog;
import org.clipj.train.TrainCheckpoints;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * What a long training run meets: its disk filling up, an output folder it cannot write, SIGTERM
 * and Ctrl-C. Each ends with one {@code error:} line or a final checkpoint, the documented exit
 * status, and nothing half-written; the run resumes from its last complete checkpoint.
 */
class TrainFaultsTest {

    private static List<String> args(Path out, int steps, int saveEvery) {
        return List.of("train", "--model", "tiny", "--synthetic-size", "48", "--batch", "4", "--warmup", "1",
                "--schedule", "const", "--bpe-merges", "60", "--save-every", String.valueOf(saveEvery), "--seed", "11",
                "--device", "cpu", "--steps", String.valueOf(steps), "--out", out.toString());
    }

    private static String[] with(List<String> args, String... more) {
        return Stream.concat(args.stream(), Stream.of(more)).toArray(String[]::new);
    }

    /** The CLI in a child JVM (its own stderr and exit status, signals of its own), output into log. */
    private static Process child(List<String> args, Path log) throws IOException {
        List<String> command = new ArrayList<>(List.of(ProcessHandle.current().info().command().orElse("java"),
                "--add-modules", "jdk.incubator.vector", "--enable-native-access=ALL-UNNAMED", "-Djava.awt.headless=true",
                "-cp", System.getProperty("java.class.path"), Main.class.getName()));
        command.addAll(args);
        return new ProcessBuilder(command).redirectErrorStream(true).redirectOutput(log.toFile()).start();
    }

    private static int waitForExit(Process child, Path log) throws Exception {
        if (!child.waitFor(240, TimeUnit.SECONDS)) {
            child.destroyForcibly();
            throw new AssertionError("the child did not exit in 240 s: " + Files.readString(log));
        }
        return child.exitValue();
    }

    // Waits until the child has finished at least one training step (a metrics line).
    private static void awaitFirstStep(Process child, Path out, Path log) throws Exception {
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(240);
        while (!Files.exists(out.resolve("metrics.jsonl")) || MetricsLog.read(out.resolve("metrics.jsonl")).isEmpty()) {
            assertTrue(child.isAlive(), "the child stopped early: " + Files.readString(log));
            assertTrue(System.nanoTime() < deadline, "no step after 240 s");
            Thread.sleep(20);
        }
    }

    private static void signal(Process child, String name) throws Exception {
        Process kill = new ProcessBuilder("kill", "-s", name, String.valueOf(child.pid())).inheritIO().start();
        assertEquals(0, kill.waitFor(), "kill -s " + name);
    }

    private static List<Path> partials(Path dir) throws IOException {
        try (Stream<Path> s = Files.walk(dir)) {
            return s.filter(p -> p.getFileName().toString().endsWith(AtomicFiles.PARTIAL_SUFFIX)).toList();
        }
    }

    private static void assertOneErrorLineAndNoTrace(String err) {
        List<String> errors = err.lines().filter(l -> l.startsWith("error: ")).toList();
        assertEquals(1, errors.size(), err);
        assertFalse(err.contains("Exception") || err.contains("\tat ") || err.contains("InternalError"), err);
    }

    @Test
    void aDiskThatFillsUpEndsWithOneErrorLineKeepsTheLastCheckpointAndResumes(@TempDir Path dir) throws Exception {
        // 24 MiB hold the run's first checkpoint (about 16 MB) but not a second one
        try (Tmpfs disk = Tmpfs.mount(dir.resolve("disk"), "size=24m")) {
            Path out = disk.dir().resolve("run");
            Path log = dir.resolve("child.log");
            int status = waitForExit(child(args(out, 6, 1), log), log);
            String err = Files.readString(log);
            assertEquals(2, status, err);
            assertOneErrorLineAndNoTrace(err);
            Path first = TrainCheckpoints.stepDir(out.resolve("checkpoints"), 1);
            assertTrue(err.contains("warning: a checkpoint needs ~"), err);
            assertTrue(err.contains("error: cannot write checkpoints in " + out.resolve("checkpoints").toAbsolutePath()
                    + ": a checkpoint needs ~"), err);
            assertTrue(err.contains("the last complete checkpoint is " + first.toAbsolutePath()), err);
            assertEquals(List.of(), partials(disk.dir()));
            assertEquals(List.of(first), TrainCheckpoints.complete(out.resolve("checkpoints")));
            assertEquals(1, TrainCheckpoints.load(first).state().step());

            // resumed elsewhere, where a crashed run left a partial checkpoint that is now removed
            Path resumed = dir.resolve("resumed");
            Path stale = resumed.resolve("checkpoints").resolve(".step-00000002.partial");
            Files.createDirectories(stale);
            Files.writeString(stale.resolve(TrainCheckpoints.MODEL_FILE), "half");
            TrainCommandTest.Result r = TrainCommandTest.run(with(args(resumed, 2, 1), "--resume", out.toString()));
            assertEquals(0, r.status(), r.err());
            assertTrue(r.err().contains("removed " + stale), r.err());
            assertEquals(List.of(), partials(resumed));
            assertEquals(List.of(2), MetricsLog.read(resumed.resolve("metrics.jsonl")).stream().map(MetricsLog.Entry::step).toList());
            assertEquals(List.of(TrainCheckpoints.stepDir(resumed.resolve("checkpoints"), 2)),
                    TrainCheckpoints.complete(resumed.resolve("checkpoints")));
        }
    }

    @Test
    void aDiskTooSmallForOneCheckpointFailsBeforeTheFirstStep(@TempDir Path dir) throws Exception {
        try (Tmpfs disk = Tmpfs.mount(dir.resolve("disk"), "size=3m")) {
            Path out = disk.dir().resolve("run");
            TrainCommandTest.Result r = TrainCommandTest.run(args(out, 4, 2).toArray(String[]::new));
            assertEquals(2, r.status(), r.err());
            assertOneErrorLineAndNoTrace(r.err());
            assertTrue(r.err().matches("(?s).*error: cannot write checkpoints in \\S+: a checkpoint needs ~1\\d\\.\\d MB, "
                    + "3\\.\\d MB free in .*"), r.err());
            assertFalse(Files.exists(out.resolve("metrics.jsonl")) && !MetricsLog.read(out.resolve("metrics.jsonl")).isEmpty());
            assertEquals(List.of(), partials(disk.dir()));
        }
    }

    @Test
    void aReadOnlyOutputFolderIsExitTwoWithItsPath(@TempDir Path dir) throws Exception {
        Path model = dir.resolve("tiny.safetensors");
        Path vocab = dir.resolve(TrainCheckpoints.VOCAB_FILE);
        BpeTrainer.write(vocab, BpeTrainer.learn(List.of("a red square", "a blue circle"), 10, 1));
        int vocabSize = ClipTokenizer.load(vocab).vocabSize();
        try (CpuBackend backend = new CpuBackend(1, true)) {
            SafeTensors.write(model, ClipModel.initialize(ClipConfig.named("tiny").withVocabSize(vocabSize), 0, backend)
                    .stateDict(), Map.of("format", "pt"));
        }
        try (Tmpfs ro = Tmpfs.mount(dir.resolve("ro"), "size=1m,ro")) {
            Path json = ro.dir().resolve("info.json");
            TrainCommandTest.Result info = TrainCommandTest.run("embed", "--model", model.toString(), "--vocab", vocab.toString(),
                    "--text", "a red circle", "--device", "cpu", "--out", json.toString());
            assertEquals(2, info.status(), info.err());
            assertOneErrorLineAndNoTrace(info.err());
            assertTrue(info.err().contains("error: cannot write " + json + ": read-only file system"), info.err());

            TrainCommandTest.Result train = TrainCommandTest.run(args(ro.dir().resolve("run"), 2, 2).toArray(String[]::new));
            assertEquals(2, train.status(), train.err());
            assertOneErrorLineAndNoTrace(train.err());
            assertTrue(train.err().contains("error: " + ro.dir().resolve("run") + ": read-only file system"), train.err());
        }
    }

    @Test
    void sigtermStopsAtAStepBoundaryWithAFinalCheckpointAndResumesExactly(@TempDir Path dir) throws Exception {
        Path out = dir.resolve("run");
        Path log = dir.resolve("child.log");
        // no periodic checkpoint: the only one is written on the signal
        Process child = child(args(out, 100_000, 100_000), log);
        awaitFirstStep(child, out, log);
        signal(child, "TERM");
        int status = waitForExit(child, log);
        String err = Files.readString(log);
        assertEquals(143, status, err);
        int stopped = MetricsLog.read(out.resolve("metrics.jsonl")).getLast().step();
        Path checkpoint = TrainCheckpoints.stepDir(out.resolve("checkpoints"), stopped);
        assertTrue(err.contains("SIGTERM: stopped at step " + stopped + " of 100000; last checkpoint " + checkpoint.toAbsolutePath()), err);
        assertEquals(List.of(checkpoint), TrainCheckpoints.complete(out.resolve("checkpoints")));
        assertEquals(stopped, TrainCheckpoints.load(checkpoint).state().step());
        assertEquals(List.of(), partials(out));

        int steps = stopped + 1;
        TrainCommandTest.Result resumed = TrainCommandTest.run(with(args(out, steps, 100_000), "--resume", out.toString()));
        assertEquals(0, resumed.status(), resumed.err());
        TrainCommandTest.Result reference = TrainCommandTest.run(args(dir.resolve("reference"), steps, 100_000).toArray(String[]::new));
        assertEquals(0, reference.status(), reference.err());
        List<MetricsLog.Entry> expected = MetricsLog.read(dir.resolve("reference").resolve("metrics.jsonl"));
        List<MetricsLog.Entry> actual = MetricsLog.read(out.resolve("metrics.jsonl"));
        assertEquals(expected.stream().map(MetricsLog.Entry::step).toList(), actual.stream().map(MetricsLog.Entry::step).toList());
        for (int i = 0; i < expected.size(); i++) {
            double e = expected.get(i).loss();
            // separate JVMs: the JIT may order vector lane sums differently, so equal up to rounding
            assertEquals(e, actual.get(i).loss(), 1e-4 * Math.max(1, Math.abs(e)), "loss at step " + expected.get(i).step());
        }
    }

    @Test
    void aSecondCtrlCQuitsAtOnceWithoutPartialFiles(@TempDir Path dir) throws Exception {
        Assumptions.assumeFalse(sigintIgnored(), "SIGINT is ignored in this process tree (started in the background"
                + " without job control), so a child cannot receive it");
        Path out = dir.resolve("run");
        Path log = dir.resolve("child.log");
        Process child = child(args(out, 100_000, 1), log);
        awaitFirstStep(child, out, log);
        signal(child, "INT");
        signal(child, "INT");
        int status = waitForExit(child, log);
        String err = Files.readString(log);
        assertEquals(130, status, err);
        assertTrue(err.contains("SIGINT: stopping after the current step"), err);
        assertEquals(List.of(), partials(out));
        for (Path checkpoint : TrainCheckpoints.complete(out.resolve("checkpoints"))) {
            assertEquals(TrainCheckpoints.stepOf(checkpoint), TrainCheckpoints.load(checkpoint).state().step());
        }
    }

    @Test
    void saveOnInterruptIsOnUnlessTurnedOff() {
        assertTrue(picocli.CommandLine.populateCommand(new TrainCommand()).saveOnInterrupt);
        assertFalse(picocli.CommandLine.populateCommand(new TrainCommand(), "--no-save-on-interrupt").saveOnInterrupt);
    }

    // A signal ignored when the test JVM started stays ignored in its children (bit 2 of SigIgn, Linux).
    private static boolean sigintIgnored() throws IOException {
        Path status = Path.of("/proc/self/status");
        if (!Files.isReadable(status)) {
            return false;
        }
        return Files.readAllLines(status).stream().filter(l -> l.startsWith("SigIgn:"))
                .anyMatch(l -> (Long.parseUnsignedLong(l.substring(7).strip(), 16) & 0b10) != 0);
    }
}
