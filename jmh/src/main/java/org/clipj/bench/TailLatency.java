package org.clipj.bench;

import java.io.IOException;
import java.lang.management.ManagementFactory;
import java.nio.file.DirectoryStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.function.ToDoubleFunction;

import jdk.jfr.Recording;
import jdk.jfr.consumer.RecordedEvent;
import jdk.jfr.consumer.RecordedMethod;
import jdk.jfr.consumer.RecordingFile;
import org.clipj.model.ClipConfig;
import org.clipj.model.ClipModel;
import org.clipj.model.Parameter;
import org.clipj.model.Precision;
import org.clipj.runtime.Tensor;
import org.clipj.runtime.cpu.CpuBackend;
import org.clipj.train.AdamW;
import org.clipj.train.ContrastiveStep;

/**
 * Per-iteration attribution of slow iterations (issue 15 item 5, `scripts/bench tail`): runs one
 * case (an encoder forward or a training step) back to back, times every iteration and records
 * what happened inside it: the calling thread's and the pool workers' CPU, kernel and run-queue
 * time (ThreadMXBean, /proc schedstat), the CPU the JVM's other threads used (GC, JIT), the host's steal and
 * the CPU other processes used (/proc/stat), heap allocated, and from a JFR recording the GC
 * pauses, safepoints, JIT compilations and deoptimizations that overlap it. Prints p50/p99 and the
 * means of every column over the slow iterations (above 1.3x p50) against the others, and the ten
 * slowest, on stderr; one JSON object on stdout.
 *
 * <p>Usage: TailLatency CASE [ITERATIONS [WARMUP [THREADS]]]; CASE is image-b1, text-b1, image-b8,
 * text-b8 (ViT-B/32, random weights, F32 inference as Clip.load builds it), image-b1-bf16 ...,
 * train-tiny-b64 (the demo's config, vocabulary 914) or train-vit-b32-b8. Warm-up: WARMUP calls at
 * least and until the JIT is quiet ({@link JitQuiet}). Defaults: 500 iterations (at least 100) after
 * at least 100 warm-up ones (200 and 10 for training, 100 for ViT-B/32's 2-3 s step), 2 threads; an empty argument takes its default.
 */
public final class TailLatency {
    static final double SLOW = 1.3;   // issue 15's p99/p50 target: iterations above 1.3x p50 are "slow"
    private static final long USER_HZ_NANOS = 10_000_000L;   // /proc/stat counts in 1/100 s

    private static final com.sun.management.ThreadMXBean THREADS =
            (com.sun.management.ThreadMXBean) ManagementFactory.getThreadMXBean();
    private static final com.sun.management.OperatingSystemMXBean OS =
            (com.sun.management.OperatingSystemMXBean) ManagementFactory.getOperatingSystemMXBean();

    /** What one iteration took and what ran beside it. CPU and overlap figures in ns. */
    static final class Sample {
        int index;
        long startEpochNs;
        long wallNs;
        long callerCpuNs;
        long callerKernelNs;     // of which in the kernel (page faults, THP compaction, /proc reads)
        long callerFaults;       // minor page faults: first touches of fresh memory (4 KB or 2 MB pages)
        long callerRunqueueNs;   // runnable but not running (preempted, or waiting for a CPU)
        long workerCpuNs;
        long workerFaults;
        long workerRunqueueNs;
        long processCpuNs;
        long machineBusyNs;    // all CPUs, all processes (/proc/stat user+nice+system+irq+softirq)
        long stealNs;
        long allocatedBytes;
        long gcPauseNs;
        long poolWaitNs;       // the caller waiting for the workers' last tasks of its ops
        int callerParks;       // ... and how often it parked for them (a worker off its CPU, most likely)
        long hostStallNs;      // time the VM's CPUs did not run although the guest thought they did (StallWatch)
        long safepointNs;
        long compileNs;        // compiler-thread time overlapping the iteration
        int compilations;
        int modelCompilations;   // of clipj's own code (org.clipj, not this harness): what a longer warm-up can remove
        int deoptimizations;
        long longestCompileNs;
        String longestCompile = "";   // the compilation overlapping the iteration longest
        final List<String> modelCompiled = new ArrayList<>();

        long callerOffCpuNs() {
            return Math.max(0, wallNs - callerCpuNs);
        }

        long jvmOtherCpuNs() {
            return Math.max(0, processCpuNs - callerCpuNs - workerCpuNs);
        }

        long otherProcessesNs() {
            return Math.max(0, machineBusyNs - processCpuNs);
        }
    }

    private TailLatency() {}

    public static void main(String[] args) throws IOException {
        if (args.length < 1) {
            throw new IllegalArgumentException("usage: TailLatency CASE [ITERATIONS [WARMUP [THREADS]]]"
                    + " (CASE: image-b1, text-b1, image-b8, text-b8, *-bf16, train-tiny-b64, train-vit-b32-b8)");
        }
        String name = args[0];
        boolean train = name.startsWith("train-");
        int iterations = intArg(args, 1, name.equals("train-vit-b32-b8") ? 100 : name.startsWith("train-") ? 200 : 500);
        int warmup = intArg(args, 2, train ? 10 : 100);
        int threads = intArg(args, 3, 2);
        if (iterations < 100) throw new IllegalArgumentException("TailLatency: a p99 needs >= 100 iterations, got " + iterations);
        try (CpuBackend cpu = new CpuBackend(threads, true)) {
            Runnable body = train ? trainStep(name, cpu) : forward(name, cpu);
            System.err.printf(Locale.ROOT, "tail: %s, %s, %d warm-up then %d timed iterations; JVM: %s%n", name,
                    cpu.description(), warmup, iterations, ManagementFactory.getRuntimeMXBean().getInputArguments());
            // the recording and the stall watch run from here to the end, so that their own code (the sleeper's loop,
            // JFR's event classes, the pool's wait event) is compiled in the warm-up, not in the timed iterations
            StallWatch stalls = StallWatch.start();
            try (Recording recording = startRecording()) {
                measure(body, Math.min(warmup, 20), recording, stalls);   // the harness's own code, compiled before the timed iterations too
                warmInstrumentation();
                JitQuiet.warmUp(name, body, JitQuiet.clipjMinCalls(name, warmup), train ? 3 : 10, 180_000);
                List<Sample> samples = measure(body, iterations, recording, stalls);
                report(name, samples);
            } finally {
                stalls.stop();
            }
        }
    }

    /** A JFR recording of what can slow an iteration down: GC pauses, safepoints, compilations, deoptimizations, pool waits. */
    private static Recording startRecording() {
        Recording recording = new Recording();
        recording.enable("jdk.GCPhasePause").withThreshold(Duration.ZERO);
        recording.enable("jdk.SafepointBegin").withThreshold(Duration.ZERO);
        recording.enable("jdk.Compilation").withThreshold(Duration.ZERO);
        recording.enable("jdk.Deoptimization").withoutStackTrace();
        recording.enable("org.clipj.ComputePoolWait").withThreshold(Duration.ZERO);
        recording.start();
        return recording;
    }

    /** args[i] as an int; the default where it is absent or empty. */
    private static int intArg(String[] args, int i, int fallback) {
        return args.length > i && !args[i].isEmpty() ? Integer.parseInt(args[i]) : fallback;
    }

    private static Runnable forward(String name, CpuBackend cpu) {
        String[] parts = name.split("-");
        if (parts.length < 2 || !(parts[0].equals("image") || parts[0].equals("text")) || !parts[1].startsWith("b")) {
            throw new IllegalArgumentException("TailLatency: unknown case " + name);
        }
        int batch = Integer.parseInt(parts[1].substring(1));
        Precision precision = Precision.parse(parts.length > 2 ? parts[2] : "f32");
        ClipConfig config = ClipConfig.named("ViT-B/32");
        Map<String, Tensor> weights = ClipModel.initialize(config, 0, cpu).stateDict();
        ClipModel model = ClipModel.fromStateDict(weights, config, cpu, precision);
        if (parts[0].equals("image")) {
            Tensor pixels = BenchInputs.pixels(config, batch);
            return () -> model.encodeImage(pixels);
        }
        Tensor tokens = BenchInputs.tokens(config, batch);
        return () -> model.encodeText(tokens);
    }

    private static Runnable trainStep(String name, CpuBackend cpu) {
        ClipConfig config;
        int batch;
        switch (name) {
            case "train-tiny-b64" -> {
                config = ClipConfig.named("tiny").withVocabSize(914);
                batch = 64;
            }
            case "train-vit-b32-b8" -> {
                config = ClipConfig.named("ViT-B/32");
                batch = 8;
            }
            default -> throw new IllegalArgumentException("TailLatency: unknown case " + name);
        }
        ClipModel model = ClipModel.initialize(config, 0, cpu);
        List<AdamW.Param> params = new ArrayList<>();
        for (Parameter p : model.parameters()) params.add(new AdamW.Param(p.name(), p.value(), p.grad()));
        AdamW optimizer = new AdamW(cpu, params, 0.9f, 0.98f, 1e-6f, 0.1f);
        List<Tensor> pixels = List.of(BenchInputs.pixels(config, batch));
        List<Tensor> tokens = List.of(BenchInputs.tokens(config, batch));
        return () -> {
            model.zeroGrad();
            ContrastiveStep.lossAndGradients(model, pixels, tokens);
            optimizer.update(1e-4f, 1f);
        };
    }

    /**
     * Calls the per-iteration counters (/proc thread and machine stats) until the JIT is done with them: twenty
     * measured warm-up iterations call them 40 times, far below C2's threshold, and a quiet-machine run showed
     * their C2 compilation (ThreadTimes.read, level 4) inside the slow timed iterations.
     */
    private static void warmInstrumentation() throws IOException {
        ThreadTimes caller = new ThreadTimes(List.of(Thread.currentThread().threadId()), List.of(Path.of("/proc/thread-self")));
        ThreadTimes workers = ThreadTimes.poolWorkers();
        JitQuiet.warmUp("tail instrumentation", () -> {
            caller.read();
            workers.read();
            machineStat();
        }, 20_000, 2_000, 60_000);
    }

    /**
     * Runs body iterations times and attributes to each iteration what the running recording and stall watch saw
     * during it (the recording is dumped, not stopped: events before the first iteration match none).
     */
    static List<Sample> measure(Runnable body, int iterations, Recording recording, StallWatch stalls) throws IOException {
        ThreadTimes caller = new ThreadTimes(List.of(Thread.currentThread().threadId()), List.of(Path.of("/proc/thread-self")));
        ThreadTimes workers = ThreadTimes.poolWorkers();
        Path jfr = Files.createTempFile("clipj-tail", ".jfr");
        List<Sample> samples = new ArrayList<>(iterations);
        long epoch0 = epochNanos(Instant.now());
        long nano0 = System.nanoTime();
        for (int i = 0; i < iterations; i++) {
            Sample s = new Sample();
            s.index = i;
            long[] caller0 = caller.read(), worker0 = workers.read();
            long process0 = OS.getProcessCpuTime();
            long[] stat0 = machineStat();
            long alloc0 = THREADS.getCurrentThreadAllocatedBytes();
            long user0 = THREADS.getCurrentThreadUserTime();
            long t0 = System.nanoTime();
            body.run();
            long t1 = System.nanoTime();
            long user1 = THREADS.getCurrentThreadUserTime();
            s.allocatedBytes = THREADS.getCurrentThreadAllocatedBytes() - alloc0;
            long[] stat1 = machineStat();
            s.processCpuNs = OS.getProcessCpuTime() - process0;
            long[] caller1 = caller.read(), worker1 = workers.read();
            s.callerCpuNs = caller1[0] - caller0[0];
            s.callerKernelNs = Math.max(0, s.callerCpuNs - (user1 - user0));
            s.callerFaults = caller1[1] - caller0[1];
            s.callerRunqueueNs = caller1[2] - caller0[2];
            s.workerCpuNs = worker1[0] - worker0[0];
            s.workerFaults = worker1[1] - worker0[1];
            s.workerRunqueueNs = worker1[2] - worker0[2];
            s.machineBusyNs = (stat1[0] - stat0[0]) * USER_HZ_NANOS;
            s.stealNs = (stat1[1] - stat0[1]) * USER_HZ_NANOS;
            s.startEpochNs = epoch0 + (t0 - nano0);
            s.wallNs = t1 - t0;
            samples.add(s);
        }
        recording.dump(jfr);
        for (Sample s : samples) {
            for (long[] w : stalls.windows()) {
                long a = s.startEpochNs - epoch0 + nano0, b = a + s.wallNs;
                s.hostStallNs += Math.max(0, Math.min(w[1], b) - Math.max(w[0], a));
            }
        }
        try {
            attribute(samples, RecordingFile.readAllEvents(jfr));
        } finally {
            Files.deleteIfExists(jfr);
        }
        return samples;
    }

    /** Adds each JFR event's overlap with each iteration's window to that iteration. */
    static void attribute(List<Sample> samples, List<RecordedEvent> events) {
        for (RecordedEvent e : events) {
            long from = epochNanos(e.getStartTime()), to = epochNanos(e.getEndTime());
            String type = e.getEventType().getName();
            for (Sample s : samples) {
                long a = s.startEpochNs, b = s.startEpochNs + s.wallNs;
                boolean inside = type.equals("jdk.Deoptimization") ? from >= a && from < b : from < b && to > a;
                if (!inside) continue;
                long overlap = Math.min(to, b) - Math.max(from, a);
                switch (type) {
                    case "jdk.GCPhasePause" -> s.gcPauseNs += overlap;
                    case "jdk.SafepointBegin" -> s.safepointNs += overlap;
                    case "jdk.Compilation" -> {
                        s.compileNs += overlap;
                        s.compilations++;
                        // counted once, in the iteration it started in (or the first, if it started before)
                        if (isModelCode(e) && (from >= a || s.index == 0)) {
                            s.modelCompilations++;
                            s.modelCompiled.add(methodName(e) + " (level " + e.getValue("compileLevel") + ")");
                        }
                        if (overlap > s.longestCompileNs) {
                            s.longestCompileNs = overlap;
                            s.longestCompile = methodName(e) + " (level " + e.getValue("compileLevel") + ", "
                                    + String.format(Locale.ROOT, "%.1f ms", (to - from) / 1e6) + ")";
                        }
                    }
                    case "jdk.Deoptimization" -> s.deoptimizations++;
                    case "org.clipj.ComputePoolWait" -> {
                        s.poolWaitNs += overlap;
                        if (e.getBoolean("parked")) s.callerParks++;
                    }
                    default -> { }
                }
            }
        }
    }

    /** Whether a compilation event is of clipj's model, runtime or server code (not of this harness). */
    private static boolean isModelCode(RecordedEvent e) {
        RecordedMethod m = e.getValue("method");
        String type = m == null ? "" : m.getType().getName();
        return type.startsWith("org.clipj.") && !type.startsWith("org.clipj.bench.");
    }

    private static String methodName(RecordedEvent e) {
        RecordedMethod m = e.getValue("method");
        if (m == null) return "?";
        String type = m.getType().getName();
        return type.substring(type.lastIndexOf('.') + 1) + "." + m.getName();
    }

    static void report(String name, List<Sample> samples) {
        double[] ms = samples.stream().mapToDouble(s -> s.wallNs / 1e6).sorted().toArray();
        double p50 = percentile(ms, 50), p90 = percentile(ms, 90), p99 = percentile(ms, 99), max = ms[ms.length - 1];
        List<Sample> slow = samples.stream().filter(s -> s.wallNs / 1e6 > SLOW * p50).toList();
        List<Sample> normal = samples.stream().filter(s -> s.wallNs / 1e6 <= SLOW * p50).toList();
        System.err.printf(Locale.ROOT, "tail: %s: %d iterations, p50 %.2f ms, p90 %.2f, p99 %.2f (%.2fx p50), max %.2f;"
                + " %d slow (> %.1fx p50)%n", name, ms.length, p50, p90, p99, p99 / p50, max, slow.size(), SLOW);
        Map<String, ToDoubleFunction<Sample>> columns = columns();
        System.err.printf("%-34s %12s %12s%n", "mean per iteration", "slow", "others");
        for (Map.Entry<String, ToDoubleFunction<Sample>> c : columns.entrySet()) {
            System.err.printf(Locale.ROOT, "%-34s %12.2f %12.2f%n", c.getKey(), mean(slow, c.getValue()), mean(normal, c.getValue()));
        }
        StringBuilder timeline = new StringBuilder();
        for (Sample s : samples) {
            double r = s.wallNs / 1e6 / p50;
            timeline.append(s.index % 100 == 0 ? "\n  " : "").append(r > 2 ? 'O' : r > SLOW ? 'o' : '.');
        }
        System.err.println("timeline (. <= " + SLOW + "x p50 < o <= 2x < O), 100 iterations a line:" + timeline);
        System.err.println("ten slowest: iteration | wall ms | caller CPU ms / page faults / run-queue ms | caller waiting for workers ms"
                + " | workers CPU ms / page faults / run-queue ms | JVM other CPU ms | other processes ms | steal ms | host stall ms | GC pause ms"
                + " | safepoint ms | compile ms (count) | deopts | longest compile");
        samples.stream().sorted(Comparator.comparingLong((Sample s) -> s.wallNs).reversed()).limit(10).forEach(s ->
                System.err.printf(Locale.ROOT, "  %d | %.2f | %.2f / %d / %.2f | %.2f | %.2f / %d / %.2f | %.2f | %.1f | %.1f | %.1f | %.2f"
                                + " | %.2f | %.1f (%d) | %d | %s%n", s.index, s.wallNs / 1e6, s.callerCpuNs / 1e6, s.callerFaults,
                        s.callerRunqueueNs / 1e6, s.poolWaitNs / 1e6, s.workerCpuNs / 1e6, s.workerFaults, s.workerRunqueueNs / 1e6,
                        s.jvmOtherCpuNs() / 1e6, s.otherProcessesNs() / 1e6, s.stealNs / 1e6, s.hostStallNs / 1e6, s.gcPauseNs / 1e6,
                        s.safepointNs / 1e6, s.compileNs / 1e6, s.compilations, s.deoptimizations, s.longestCompile));
        List<String> modelCompiled = samples.stream().flatMap(s -> s.modelCompiled.stream().map(m -> s.index + ": " + m)).toList();
        System.err.println("clipj methods compiled during the timed iterations (iteration: method): " + modelCompiled.size()
                + (modelCompiled.isEmpty() ? "" : "\n  " + String.join("\n  ", modelCompiled)));
        StringBuilder json = new StringBuilder(String.format(Locale.ROOT,
                "{\"case\": \"%s\", \"iterations\": %d, \"p50_ms\": %.3f, \"p90_ms\": %.3f, \"p99_ms\": %.3f, \"max_ms\": %.3f,"
                        + " \"p99_over_p50\": %.3f, \"slow\": %d, \"clipj_compilations\": %d", name, ms.length, p50, p90, p99, max, p99 / p50,
                slow.size(), modelCompiled.size()));
        for (Map.Entry<String, ToDoubleFunction<Sample>> c : columns.entrySet()) {
            String key = c.getKey().replaceAll("[^a-zA-Z0-9]+", "_").replaceAll("_$", "").toLowerCase(Locale.ROOT);
            json.append(String.format(Locale.ROOT, ", \"slow_%s\": %.3f, \"others_%s\": %.3f", key, mean(slow, c.getValue()),
                    key, mean(normal, c.getValue())));
        }
        System.out.println(json.append('}'));
    }

    private static Map<String, ToDoubleFunction<Sample>> columns() {
        Map<String, ToDoubleFunction<Sample>> c = new LinkedHashMap<>();
        c.put("wall ms", s -> s.wallNs / 1e6);
        c.put("caller CPU ms", s -> s.callerCpuNs / 1e6);
        c.put("caller kernel CPU ms", s -> s.callerKernelNs / 1e6);
        c.put("caller page faults", s -> s.callerFaults);
        c.put("caller run-queue ms", s -> s.callerRunqueueNs / 1e6);
        c.put("caller off-CPU ms", s -> s.callerOffCpuNs() / 1e6);
        c.put("caller waiting for workers ms", s -> s.poolWaitNs / 1e6);
        c.put("caller parks for workers", s -> s.callerParks);
        c.put("workers CPU ms", s -> s.workerCpuNs / 1e6);
        c.put("workers page faults", s -> s.workerFaults);
        c.put("workers run-queue ms", s -> s.workerRunqueueNs / 1e6);
        c.put("share with workers idle (< 1 ms CPU)", s -> s.workerCpuNs < 1_000_000 ? 1 : 0);
        c.put("JVM other threads CPU ms", s -> s.jvmOtherCpuNs() / 1e6);
        c.put("other processes CPU ms", s -> s.otherProcessesNs() / 1e6);
        c.put("steal ms", s -> s.stealNs / 1e6);
        c.put("host stall ms", s -> s.hostStallNs / 1e6);
        c.put("allocated MB", s -> s.allocatedBytes / 1e6);
        c.put("GC pause ms", s -> s.gcPauseNs / 1e6);
        c.put("safepoint ms", s -> s.safepointNs / 1e6);
        c.put("compile ms", s -> s.compileNs / 1e6);
        c.put("compilations", s -> s.compilations);
        c.put("clipj compilations", s -> s.modelCompilations);
        c.put("deoptimizations", s -> s.deoptimizations);
        return c;
    }

    private static double mean(List<Sample> samples, ToDoubleFunction<Sample> f) {
        return samples.isEmpty() ? 0 : samples.stream().mapToDouble(f).average().orElse(0);
    }

    /** The q-th percentile (0..100) of sorted xs, linearly interpolated (as bench/peers/timing.py). */
    static double percentile(double[] xs, double q) {
        double pos = (xs.length - 1) * q / 100.0;
        int lo = (int) pos, hi = Math.min(lo + 1, xs.length - 1);
        return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo);
    }

    private static long epochNanos(Instant t) {
        return t.getEpochSecond() * 1_000_000_000L + t.getNano();
    }

    /**
     * Host stalls: a daemon thread sleeps 1 ms at a time and records each wake-up that came more than
     * 2 ms late beyond the time it waited in the guest's run queue (schedstat). Such missing time is
     * the hypervisor not running the vCPU (a VM without steal accounting shows it nowhere else: the
     * guest counts it as CPU time of whatever thread it thinks was running). Windows in nanoTime.
     */
    private static final class StallWatch implements Runnable {
        private final List<long[]> windows = new ArrayList<>();
        private final Thread thread = Thread.ofPlatform().daemon(true).name("tail-stall-watch").unstarted(this);
        private volatile boolean stop;

        static StallWatch start() {
            StallWatch w = new StallWatch();
            w.thread.start();
            return w;
        }

        @Override
        public void run() {
            Path schedstat = Path.of("/proc/thread-self/schedstat");
            long queued = runQueueNanos(schedstat);
            while (!stop) {
                long before = System.nanoTime();
                try {
                    Thread.sleep(1);
                } catch (InterruptedException e) {
                    return;
                }
                long after = System.nanoTime(), nowQueued = runQueueNanos(schedstat);
                long missing = after - before - 1_000_000 - (nowQueued - queued);
                queued = nowQueued;
                if (missing > 2_000_000) {
                    synchronized (windows) {
                        windows.add(new long[] {after - missing, after});
                    }
                }
            }
        }

        void stop() {
            stop = true;
            try {
                thread.join();
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        }

        List<long[]> windows() {
            synchronized (windows) {
                return List.copyOf(windows);
            }
        }

        private static long runQueueNanos(Path schedstat) {
            try {
                return ThreadTimes.field(Files.readAllBytes(schedstat), 0, 1);
            } catch (IOException e) {
                return 0;
            }
        }
    }

    /** CPU time (ThreadMXBean), minor page faults and run-queue time (/proc/.../stat, schedstat) of some threads. */
    private record ThreadTimes(List<Long> javaIds, List<Path> procDirs) {

        /** The CpuBackend pool's workers (Java and native names start with clip-cpu-). */
        static ThreadTimes poolWorkers() throws IOException {
            List<Long> ids = Thread.getAllStackTraces().keySet().stream()
                    .filter(t -> t.getName().startsWith("clip-cpu-")).map(Thread::threadId).toList();
            List<Path> dirs = new ArrayList<>();
            Path tasks = Path.of("/proc/self/task");
            if (Files.isDirectory(tasks)) {
                try (DirectoryStream<Path> dir = Files.newDirectoryStream(tasks)) {
                    for (Path task : dir) {
                        try {
                            if (Files.readString(task.resolve("comm")).startsWith("clip-cpu-")) dirs.add(task);
                        } catch (IOException gone) {
                            // the thread exited between the listing and the read
                        }
                    }
                }
            }
            return new ThreadTimes(ids, dirs);
        }

        /** {CPU ns, minor faults, run-queue ns} summed over the threads; 0 for what /proc does not give. */
        long[] read() {
            long[] t = new long[3];
            for (long id : javaIds) t[0] += Math.max(0, THREADS.getThreadCpuTime(id));
            for (Path dir : procDirs) {
                try {
                    byte[] stat = Files.readAllBytes(dir.resolve("stat"));   // "pid (comm) state ppid ... minflt ..."
                    int i = stat.length - 1;
                    while (i > 0 && stat[i] != ')') i--;
                    t[1] += field(stat, i + 2, 7);                            // after the comm: state is 0, minflt 7
                    t[2] += field(Files.readAllBytes(dir.resolve("schedstat")), 0, 1);   // "run_ns wait_ns timeslices"
                } catch (IOException e) {
                    // not Linux, or the thread is gone: no figure
                }
            }
            return t;
        }

        /** The n-th space-separated decimal field of text from offset from. */
        static long field(byte[] text, int from, int n) {
            int i = from;
            for (int f = 0; f < n && i < text.length; i++) if (text[i] == ' ') f++;
            long v = 0;
            for (; i < text.length && text[i] >= '0' && text[i] <= '9'; i++) v = v * 10 + (text[i] - '0');
            return v;
        }
    }

    /** {busy, steal} ticks of all CPUs from /proc/stat's first line; zeros where it cannot be read. */
    private static long[] machineStat() {
        try (var lines = Files.lines(Path.of("/proc/stat"))) {
            String[] f = lines.findFirst().orElse("cpu").trim().split("\\s+");
            long[] v = Arrays.stream(f).skip(1).mapToLong(Long::parseLong).toArray();
            // user nice system idle iowait irq softirq steal ...
            return new long[] {v[0] + v[1] + v[2] + v[5] + v[6], v.length > 7 ? v[7] : 0};
        } catch (IOException | RuntimeException e) {
            return new long[2];
        }
    }
}
