package org.clipj.service;

import java.util.EnumMap;
import java.util.Map;
import java.util.concurrent.atomic.LongAdder;
import java.util.function.IntSupplier;

/**
 * What {@link ClipService} counts, per input kind: requests by outcome, the inputs per forward pass,
 * the time a request waits in the queue, the time a forward pass takes, and the time from submission
 * to result; and the queue depth. Read-only for callers (e.g. a Prometheus exporter).
 */
public final class ServiceMetrics {
    /** How a request ended (REJECTED: refused at submission, queue full). */
    public enum Outcome { OK, FAILED, EXPIRED, CANCELLED, REJECTED }

    private final Map<ClipService.Kind, Map<Outcome, LongAdder>> counts = new EnumMap<>(ClipService.Kind.class);
    private final Map<ClipService.Kind, Histogram> batchSize = new EnumMap<>(ClipService.Kind.class);
    private final Map<ClipService.Kind, Histogram> queueWait = new EnumMap<>(ClipService.Kind.class);
    private final Map<ClipService.Kind, Histogram> inference = new EnumMap<>(ClipService.Kind.class);
    private final Map<ClipService.Kind, Histogram> latency = new EnumMap<>(ClipService.Kind.class);
    private final IntSupplier queueDepth;
    private final int queueCapacity;

    ServiceMetrics(int maxBatch, int queueCapacity, IntSupplier queueDepth) {
        this.queueCapacity = queueCapacity;
        this.queueDepth = queueDepth;
        for (ClipService.Kind kind : ClipService.Kind.values()) {
            Map<Outcome, LongAdder> byOutcome = new EnumMap<>(Outcome.class);
            for (Outcome o : Outcome.values()) byOutcome.put(o, new LongAdder());
            counts.put(kind, byOutcome);
            batchSize.put(kind, Histogram.batchSizes(maxBatch));
            queueWait.put(kind, Histogram.seconds());
            inference.put(kind, Histogram.seconds());
            latency.put(kind, Histogram.seconds());
        }
    }

    /** Requests (single inputs) of a kind that ended so. */
    public long count(ClipService.Kind kind, Outcome outcome) {
        return counts.get(kind).get(outcome).sum();
    }

    /** Inputs per forward pass. */
    public Histogram batchSize(ClipService.Kind kind) {
        return batchSize.get(kind);
    }

    /** Seconds from submission (for images: from the end of decoding) to the start of the request's batch. */
    public Histogram queueWait(ClipService.Kind kind) {
        return queueWait.get(kind);
    }

    /** Seconds per forward pass (a whole batch). */
    public Histogram inference(ClipService.Kind kind) {
        return inference.get(kind);
    }

    /** Seconds from submission to a computed result (successful requests). */
    public Histogram latency(ClipService.Kind kind) {
        return latency.get(kind);
    }

    /** Requests accepted but not yet in a batch (decoding or queued). */
    public int queueDepth() {
        return queueDepth.getAsInt();
    }

    public int queueCapacity() {
        return queueCapacity;
    }

    void count(ClipService.Kind kind, Outcome outcome, int n) {
        counts.get(kind).get(outcome).add(n);
    }
}
