package org.clipj.bench;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;

/**
 * clipj against ONNX Runtime in one JVM, block by block (`scripts/bench paired`): both sides of
 * {@link EncoderBenchmark} (the same agreement check and warm-up), then ROUNDS rounds of CALLS timed
 * forwards of each, in the order AB, BA, AB... with a pause before each block so that neither side's
 * spinning threads take a core from the other. On a shared VM the host's speed drifts 5-15 % over tens
 * of seconds, also within one JVM (bench/RESULTS.md, issue 15, part 3); blocks of a few seconds see
 * about the same host, so the median of the rounds' ratios is the ratio.
 *
 * <p>Usage: PairedEncoders DIR TOWER BATCH THREADS ROUNDS CALLS (DIR: export_onnx.py's output). Prints
 * one JSON object: both medians (of the rounds' medians), the rounds' ratios (ONNX Runtime / clipj) and
 * their median.
 */
public final class PairedEncoders {
    private static final long PAUSE_MILLIS = 50;   // ONNX Runtime's workers spin for a while after a run

    private PairedEncoders() {}

    public static void main(String[] args) throws Exception {
        if (args.length != 6) {
            throw new IllegalArgumentException("usage: PairedEncoders DIR TOWER BATCH THREADS ROUNDS CALLS");
        }
        int rounds = positive("ROUNDS", args[4]), calls = positive("CALLS", args[5]);
        EncoderBenchmark clipj = side("clipj", args), ort = side("onnxruntime", args);
        try {
            clipj.setup();
            ort.setup();
            double[] clipjMs = new double[rounds], ortMs = new double[rounds], ratios = new double[rounds];
            for (int r = 0; r < rounds; r++) {
                boolean clipjFirst = r % 2 == 0;
                double first = block(clipjFirst ? clipj : ort, calls), second = block(clipjFirst ? ort : clipj, calls);
                clipjMs[r] = clipjFirst ? first : second;
                ortMs[r] = clipjFirst ? second : first;
                ratios[r] = ortMs[r] / clipjMs[r];
                System.err.printf(Locale.ROOT, "round %d: clipj %.2f ms, onnxruntime %.2f ms, ratio %.3f%n",
                        r + 1, clipjMs[r], ortMs[r], ratios[r]);
            }
            List<String> each = new ArrayList<>();
            for (double ratio : ratios) each.add(String.format(Locale.ROOT, "%.3f", ratio));
            System.out.printf(Locale.ROOT, "{\"tower\": \"%s\", \"batch\": %d, \"threads\": %d, \"rounds\": %d, \"calls\": %d, "
                            + "\"clipj_ms\": %.3f, \"onnxruntime_ms\": %.3f, \"round_ratios\": [%s], \"paired_ratio\": %.3f}%n",
                    clipj.tower, clipj.batch, clipj.threads, rounds, calls, median(clipjMs), median(ortMs),
                    String.join(", ", each), median(ratios));
        } finally {
            clipj.tearDown();
            ort.tearDown();
        }
    }

    private static EncoderBenchmark side(String impl, String[] args) {
        EncoderBenchmark b = new EncoderBenchmark();
        b.impl = impl;
        b.dir = args[0];
        b.tower = args[1];
        b.batch = positive("BATCH", args[2]);
        b.threads = positive("THREADS", args[3]);
        b.config = "ViT-B/32";   // EncoderBenchmark's @Param defaults, which only JMH fills in
        b.precision = "f32";
        return b;
    }

    private static int positive(String name, String value) {
        try {
            int v = Integer.parseInt(value);
            if (v > 0) return v;
        } catch (NumberFormatException e) {
            // reported below
        }
        throw new IllegalArgumentException("PairedEncoders: " + name + " must be a positive integer, got '" + value + "'");
    }

    /** The median time of calls forwards, after a pause. */
    private static double block(EncoderBenchmark side, int calls) throws Exception {
        Thread.sleep(PAUSE_MILLIS);
        double[] ms = new double[calls];
        for (int i = 0; i < calls; i++) {
            long start = System.nanoTime();
            side.encode();
            ms[i] = (System.nanoTime() - start) / 1e6;
        }
        return median(ms);
    }

    private static double median(double[] values) {
        double[] sorted = values.clone();
        Arrays.sort(sorted);
        int n = sorted.length;
        return n % 2 == 1 ? sorted[n / 2] : (sorted[n / 2 - 1] + sorted[n / 2]) / 2;
    }
}
