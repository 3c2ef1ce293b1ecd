package org.clipj;

import com.sun.management.HotSpotDiagnosticMXBean;

import java.lang.management.ManagementFactory;
import java.util.List;

/**
 * How many calls the running HotSpot JVM needs before it compiles a clipj method with C2, from its flags.
 *
 * <p>Why it matters for latency: C2 compiles a method after about {@code Tier4InvocationThreshold} (5,000)
 * invocations. A model's per-request methods (encodeImage, the tower's forward, the op checks called a few
 * times per forward) reach that only after thousands of requests, and its per-layer methods (12 or 24 calls
 * a forward) after hundreds; each such compilation then lands in a live request and, on a machine with few
 * cores, takes a pool thread's core for 10-60 ms (bench/RESULTS.md, tail latency). {@link #LATENCY_FLAGS}
 * scales the thresholds of clipj's per-forward methods only, so that a warm-up of a few dozen calls brings
 * them to C2; {@link Clip#warmUp} uses {@link #callsToC2()} to run that long.
 */
public final class JitThresholds {
    /** The clipj method scaling {@code scripts/clip} gives serve, train and demo (C2 after 50 calls, not 5,000). */
    public static final double LATENCY_SCALING = 0.01;
    /**
     * JVM flags for latency-sensitive use: C2's thresholds scaled by {@value #LATENCY_SCALING} for the methods
     * called a few times per forward: the model layer (org.clipj.model), the Clip API and the CPU backend's op
     * dispatch and checks ({@code quiet}: HotSpot would otherwise print the command on stdout). Not the op
     * kernels: they run per tile or row, reach C2 within a few forwards anyway, and compiled that early
     * their Vector API code stays boxed (with org.clipj.* scaled, an image b1 forward allocated 48 MB in
     * FloatVector temporaries instead of 0.19 MB, and G1 paused in the slow calls: bench/RESULTS.md, run P).
     */
    public static final String LATENCY_FLAGS = "-XX:CompileCommand=quiet"
            + " -XX:CompileCommand=CompileThresholdScaling,org.clipj.model.*::*," + LATENCY_SCALING
            + " -XX:CompileCommand=CompileThresholdScaling,org.clipj.Clip*::*," + LATENCY_SCALING
            + " -XX:CompileCommand=CompileThresholdScaling,org.clipj.runtime.cpu.CpuBackend::*," + LATENCY_SCALING
            + " -XX:CompileCommand=CompileThresholdScaling,org.clipj.runtime.OpChecks::*," + LATENCY_SCALING;

    private static final String SCALING_OPTION = "-XX:CompileCommand=CompileThresholdScaling";

    private JitThresholds() {}

    /**
     * Invocations of a clipj method without loops before HotSpot compiles it with C2:
     * Tier4InvocationThreshold x CompileThresholdScaling x the org.clipj scaling of a
     * {@code -XX:CompileCommand=CompileThresholdScaling,PATTERN,X} argument; 0 where no C2 will come
     * (not HotSpot, -Xint, C1 only) or the flags cannot be read.
     */
    public static int callsToC2() {
        HotSpotDiagnosticMXBean hotspot = ManagementFactory.getPlatformMXBean(HotSpotDiagnosticMXBean.class);
        if (hotspot == null) return 0;
        try {
            if (Integer.parseInt(hotspot.getVMOption("TieredStopAtLevel").getValue()) < 4
                    || !"true".equals(hotspot.getVMOption("UseCompiler").getValue())) {
                return 0;
            }
            double threshold = Double.parseDouble(hotspot.getVMOption("Tier4InvocationThreshold").getValue())
                    * Double.parseDouble(hotspot.getVMOption("CompileThresholdScaling").getValue());
            return (int) Math.ceil(threshold * clipjScaling(ManagementFactory.getRuntimeMXBean().getInputArguments()));
        } catch (IllegalArgumentException | UnsupportedOperationException e) {
            return 0;   // a JVM without these flags
        }
    }

    /**
     * Calls a warm-up should make of a clipj method called once per call so that C2 has compiled it: 2.5 x
     * {@link #callsToC2()}. The margin: C2's thresholds stretch while its queue is long (Tier4LoadFeedback; a
     * warm-up queues every method at once), and tier-3 code reports its calls in steps; measured with
     * {@link #LATENCY_FLAGS} (C2 at 50 calls), a training step's per-step methods still compiled at steps 70-100
     * (bench/RESULTS.md, tail latency). 0 where no C2 will come.
     */
    public static int warmUpCalls() {
        return (int) Math.ceil(2.5 * callsToC2());
    }

    /**
     * The scaling the last {@code -XX:CompileCommand=CompileThresholdScaling,PATTERN,X} argument whose pattern
     * covers the model layer (org.clipj.*, org.clipj.model.*, *) gives its per-forward methods; 1 without one.
     * Patterns for single classes or methods, and CompileCommandFile, are not read (the warm-up then errs
     * long, never short).
     */
    static double clipjScaling(List<String> jvmArguments) {
        double scaling = 1;
        for (String arg : jvmArguments) {
            if (!arg.startsWith(SCALING_OPTION)) continue;
            // "PATTERN,VALUE" after the option's comma (HotSpot also takes spaces as separators)
            List<String> fields = List.of(arg.substring(SCALING_OPTION.length()).split("[,\\s]+")).stream()
                    .filter(f -> !f.isEmpty()).toList();
            if (fields.size() != 2) continue;
            String pattern = fields.get(0).replace('/', '.');
            if (!(pattern.startsWith("org.clipj.*") || pattern.startsWith("org.clipj.model.*") || pattern.equals("*") || pattern.equals("*.*") || pattern.equals("*::*"))) {
                continue;
            }
            try {
                double value = Double.parseDouble(fields.get(1));
                if (value > 0) scaling = value;
            } catch (NumberFormatException e) {
                // HotSpot refuses such a flag at start-up; nothing to read
            }
        }
        return scaling;
    }
}
