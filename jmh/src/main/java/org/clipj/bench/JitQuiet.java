package org.clipj.bench;

import java.lang.management.CompilationMXBean;
import java.lang.management.ManagementFactory;
import java.util.Locale;

/**
 * Warm-up until the JIT is done with a benchmark body, so that no C2 compilation competes with the
 * timed calls for the cores: on a 2-core machine a compiler thread takes one of the two pool
 * threads' cores and the op waits for the descheduled one (bench/RESULTS.md, tail latency: after
 * JMH's 3 s of warm-up, C2 compilations of the model's ops still landed in the timed calls).
 * Runs the body in windows of {@code window} calls, at least {@code minCalls} calls, until a window
 * spends under 1 % of its wall time in the compiler threads or {@code maxMillis} have passed.
 */
final class JitQuiet {
    static final double QUIET_FRACTION = 0.01;

    private JitQuiet() {}

    /** Returns the calls made; prints on stderr how long it took and whether the JIT went quiet. */
    static int warmUp(String what, Runnable body, int minCalls, int window, long maxMillis) {
        CompilationMXBean jit = ManagementFactory.getCompilationMXBean();
        boolean timed = jit != null && jit.isCompilationTimeMonitoringSupported();
        long start = System.nanoTime(), deadline = start + maxMillis * 1_000_000;
        int calls = 0;
        boolean quiet = false;
        while (!quiet && System.nanoTime() < deadline) {
            long compiled = timed ? jit.getTotalCompilationTime() : 0;
            long windowStart = System.nanoTime();
            for (int i = 0; i < window; i++) body.run();
            calls += window;
            double wallMillis = (System.nanoTime() - windowStart) / 1e6;
            double compileMillis = timed ? jit.getTotalCompilationTime() - compiled : 0;
            quiet = calls >= minCalls && compileMillis < QUIET_FRACTION * wallMillis;
        }
        System.err.printf(Locale.ROOT, "bench: %s warm-up: %d calls in %.1f s, JIT %s%n", what, calls,
                (System.nanoTime() - start) / 1e9, quiet ? "quiet" : "still compiling after " + maxMillis + " ms");
        return calls;
    }
}
