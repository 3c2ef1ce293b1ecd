package org.clipj.spark;

import org.apache.spark.util.AccumulatorV2;

/**
 * Items per second over the whole job, for the Spark UI: the count of items embedded divided by the wall
 * time from the first batch's start to the last batch's end on any executor (epoch milliseconds).
 * Added to with {@code {startMillis, endMillis, items}} per batch.
 */
public final class Throughput extends AccumulatorV2<long[], Double> {
    private long items;
    private long firstStart = Long.MAX_VALUE;
    private long lastEnd = Long.MIN_VALUE;

    @Override
    public boolean isZero() {
        return items == 0 && firstStart == Long.MAX_VALUE && lastEnd == Long.MIN_VALUE;
    }

    @Override
    public Throughput copy() {
        Throughput t = new Throughput();
        t.items = items;
        t.firstStart = firstStart;
        t.lastEnd = lastEnd;
        return t;
    }

    @Override
    public void reset() {
        items = 0;
        firstStart = Long.MAX_VALUE;
        lastEnd = Long.MIN_VALUE;
    }

    /** @param batch {startMillis, endMillis, items} */
    @Override
    public void add(long[] batch) {
        firstStart = Math.min(firstStart, batch[0]);
        lastEnd = Math.max(lastEnd, batch[1]);
        items += batch[2];
    }

    @Override
    public void merge(AccumulatorV2<long[], Double> other) {
        Throughput t = (Throughput) other;
        firstStart = Math.min(firstStart, t.firstStart);
        lastEnd = Math.max(lastEnd, t.lastEnd);
        items += t.items;
    }

    /** Items per second; 0 before anything was embedded. */
    @Override
    public Double value() {
        if (items == 0 || lastEnd <= firstStart) {
            return 0.0;
        }
        return items * 1000.0 / (lastEnd - firstStart);
    }

    public long items() {
        return items;
    }
}
