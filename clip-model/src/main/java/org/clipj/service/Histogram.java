package org.clipj.service;

import java.util.Arrays;
import java.util.concurrent.atomic.DoubleAdder;
import java.util.concurrent.atomic.LongAdder;

/**
 * A fixed-bucket histogram safe for concurrent {@link #observe}: bucket i counts the values v with
 * {@code bounds[i-1] < v <= bounds[i]} (Prometheus' "le" buckets), the last bucket everything above
 * the last bound (+Inf).
 */
public final class Histogram {
    private final double[] bounds;
    private final LongAdder[] buckets;   // bounds.length + 1, the last for +Inf
    private final DoubleAdder sum = new DoubleAdder();

    /** @param bounds the upper bounds, strictly increasing */
    public Histogram(double... bounds) {
        for (int i = 1; i < bounds.length; i++) {
            if (!(bounds[i] > bounds[i - 1])) {
                throw new IllegalArgumentException("histogram bounds must increase: " + Arrays.toString(bounds));
            }
        }
        this.bounds = bounds.clone();
        this.buckets = new LongAdder[bounds.length + 1];
        for (int i = 0; i < buckets.length; i++) buckets[i] = new LongAdder();
    }

    /** Latency buckets in seconds, 1 ms to 30 s. */
    public static Histogram seconds() {
        return new Histogram(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30);
    }

    /** Batch-size buckets: the powers of two below maxBatch, then maxBatch. */
    public static Histogram batchSizes(int maxBatch) {
        int powers = 32 - Integer.numberOfLeadingZeros(Math.max(1, maxBatch - 1));   // 1, 2, 4, ... < maxBatch
        double[] b = new double[maxBatch == 1 ? 1 : powers + 1];
        for (int i = 0; i < b.length - 1; i++) b[i] = 1 << i;
        b[b.length - 1] = maxBatch;
        return new Histogram(b);
    }

    public void observe(double value) {
        int i = Arrays.binarySearch(bounds, value);
        buckets[i >= 0 ? i : -i - 1].increment();
        sum.add(value);
    }

    public double[] bounds() {
        return bounds.clone();
    }

    /** Cumulative counts per bound, then the total (the +Inf bucket): length bounds().length + 1. */
    public long[] cumulativeCounts() {
        long[] out = new long[buckets.length];
        long running = 0;
        for (int i = 0; i < buckets.length; i++) {
            running += buckets[i].sum();
            out[i] = running;
        }
        return out;
    }

    public long count() {
        long n = 0;
        for (LongAdder b : buckets) n += b.sum();
        return n;
    }

    public double sum() {
        return sum.sum();
    }
}
