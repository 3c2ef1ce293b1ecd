package org.clipj.bench;

import java.lang.management.CompilationMXBean;
import java.lang.management.ManagementFactory;
import java.util.Locale;

import org.clipj.JitThresholds;

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
    static final int MAX_C2_CALLS = 300;   // warm-up calls spent at most on bringing clipj's per-call methods to C2

    private JitQuiet() {}

    /**
     * minCalls, raised to the calls C2 needs to compile clipj's methods called once per call
     * ({@link JitThresholds#warmUpCalls()}; the time-share criterion alone stops in the quiet stretch before them and
     * their compilation lands in the timed calls) where that is at most {@value #MAX_C2_CALLS}; otherwise says on
     * stderr that the JVM lacks {@link JitThresholds#LATENCY_FLAGS}.
     */
    static int clipjMinCalls(String what, int minCalls) {
        int calls = JitThresholds.warmUpCalls();
        if (calls > MAX_C2_CALLS) {
            System.err.printf(Locale.ROOT, "bench: %s: C2 compiles clipj's per-call methods after %d calls, too many to warm"
                    + " up; they will compile inside the timed calls (run with %s)%n", what, JitThresholds.callsToC2(), JitThresholds.LATENCY_FLAGS);
            return minCalls;
        }
        return Math.max(minCalls, calls);
    }

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
