package org.clipj.bench;

import java.lang.management.GarbageCollectorMXBean;
import java.lang.management.ManagementFactory;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

import org.clipj.model.ClipConfig;
import org.clipj.model.ClipModel;
import org.clipj.model.Precision;
import org.clipj.runtime.Tensor;
import org.clipj.runtime.cpu.CpuBackend;

/**
 * Per-op profile of the ViT-B/32 towers for inference (`scripts/bench profile`): a randomly
 * initialized model loaded the way Clip.load loads a checkpoint (fromStateDict at F32: GEMM weights
 * prepared once), its ops timed by {@link ProfilingBackend}, image and text at batch 1 and 8.
 * Prints a markdown table of the time share per op class and per op, per forward.
 *
 * <p>Classes: gemm (linear, patch embedding, matmul, and the fused linear ops with their bias,
 * activation or residual epilogue; A is packed inside the call, B was packed by prepareWeight),
 * attention, layernorm, activation, residual (adds, scales), alloc (zeros, empty, release:
 * allocation and zero-fill of activations, or their reuse), other ops (copy, gathers, L2 norm), and "outside ops":
 * the forward's wall time not inside any op (model code, views). Also the heap the calling thread
 * allocated per forward and the collections during the timed forwards (both independent of load).
 *
 * <p>Usage: EncoderProfile [THREADS [FORWARDS [PRECISION]]] (defaults 2, 20 timed forwards, f32; bf16 runs the
 * linear layers through the native AVX512_BF16 kernels). Each case first warms up as the JMH benchmarks do
 * ({@link JitQuiet}: at least the calls C2 needs for the once-per-forward methods, then until compilation is
 * under a small share of the wall time), so no op is timed interpreted.
 */
public final class EncoderProfile {
    private static final Map<String, String> CLASSES = new LinkedHashMap<>();

    static {
        for (String op : List.of("linearForward", "linearActivationForward", "linearResidualForward", "matmul",
                "patchEmbedForward", "conv2dForward")) {
            CLASSES.put(op, "gemm");
        }
        CLASSES.put("attentionForward", "attention");
        CLASSES.put("layerNormForward", "layernorm");
        for (String op : List.of("quickGeluForward", "geluForward", "reluForward", "softmaxForward")) CLASSES.put(op, "activation");
        for (String op : List.of("add", "addScaled", "broadcastAdd", "channelScaleForward", "scale")) CLASSES.put(op, "residual");
        for (String op : List.of("zeros", "empty", "release")) CLASSES.put(op, "alloc");
    }

    private EncoderProfile() {}

    public static void main(String[] args) {
        int threads = args.length > 0 ? Integer.parseInt(args[0]) : 2;
        int forwards = args.length > 1 ? Integer.parseInt(args[1]) : 20;
        Precision precision = Precision.parse(args.length > 2 ? args[2] : "f32");
        ClipConfig config = ClipConfig.named("ViT-B/32");
        try (CpuBackend cpu = new CpuBackend(threads, true)) {
            ProfilingBackend profiling = new ProfilingBackend(cpu);
            Map<String, Tensor> weights = ClipModel.initialize(config, 0, cpu).stateDict();
            ClipModel model = ClipModel.fromStateDict(weights, config, profiling.backend(), precision);
            System.out.println("Per-op profile, ViT-B/32 " + precision + " inference, " + cpu.description() + ", " + forwards
                    + " forwards after a warm-up until the JIT is quiet; share of the forward's wall time\n");
            for (String tower : List.of("image", "text")) {
                for (int batch : List.of(1, 8)) {
                    Tensor input = tower.equals("image") ? BenchInputs.pixels(config, batch) : BenchInputs.tokens(config, batch);
                    Runnable forward = tower.equals("image") ? () -> model.encodeImage(input) : () -> model.encodeText(input);
                    String what = "profile " + tower + " b" + batch;
                    JitQuiet.warmUp(what, forward, JitQuiet.clipjMinCalls(what, 10), 3, 60_000);
                    profiling.reset();
                    long gcs = gcCount(), gcMillis = gcMillis(), allocated = THREADS.getCurrentThreadAllocatedBytes();
                    long start = System.nanoTime();
                    for (int i = 0; i < forwards; i++) forward.run();
                    long wall = System.nanoTime() - start;
                    print(tower + " b" + batch, wall, forwards, profiling.times());
                    System.out.printf("Heap allocated by the calling thread: %.1f MB per forward; GC: %d collections, %d ms"
                                    + " over the %d forwards%n%n", (THREADS.getCurrentThreadAllocatedBytes() - allocated) / 1e6 / forwards,
                            gcCount() - gcs, gcMillis() - gcMillis, forwards);
                }
            }
        }
    }

    private static void print(String label, long wall, int forwards, Map<String, ProfilingBackend.OpTime> times) {
        Map<String, Long> byClass = new LinkedHashMap<>();
        for (String c : List.of("gemm", "attention", "layernorm", "activation", "residual", "alloc", "other ops")) byClass.put(c, 0L);
        long inOps = 0;
        for (Map.Entry<String, ProfilingBackend.OpTime> e : times.entrySet()) {
            byClass.merge(CLASSES.getOrDefault(e.getKey(), "other ops"), e.getValue().nanos, Long::sum);
            inOps += e.getValue().nanos;
        }
        byClass.put("outside ops", wall - inOps);
        System.out.printf("### %s: %.2f ms per forward%n%n| class | ms | share |%n|---|---:|---:|%n", label, wall / 1e6 / forwards);
        for (Map.Entry<String, Long> e : byClass.entrySet()) {
            System.out.printf("| %s | %.3f | %.1f %% |%n", e.getKey(), e.getValue() / 1e6 / forwards, 100.0 * e.getValue() / wall);
        }
        System.out.printf("%n| op | calls | ms | share |%n|---|---:|---:|---:|%n");
        times.entrySet().stream()
                .sorted((a, b) -> Long.compare(b.getValue().nanos, a.getValue().nanos))
                .forEach(e -> System.out.printf("| %s | %d | %.3f | %.1f %% |%n", e.getKey(), e.getValue().calls / forwards,
                        e.getValue().nanos / 1e6 / forwards, 100.0 * e.getValue().nanos / wall));
        System.out.println();
    }

    private static final com.sun.management.ThreadMXBean THREADS =
            (com.sun.management.ThreadMXBean) ManagementFactory.getThreadMXBean();

    private static long gcCount() {
        return ManagementFactory.getGarbageCollectorMXBeans().stream().mapToLong(GarbageCollectorMXBean::getCollectionCount).sum();
    }

    private static long gcMillis() {
        return ManagementFactory.getGarbageCollectorMXBeans().stream().mapToLong(GarbageCollectorMXBean::getCollectionTime).sum();
    }
}
