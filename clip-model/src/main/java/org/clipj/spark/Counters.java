package org.clipj.spark;

import org.apache.spark.SparkContext;
import org.apache.spark.util.LongAccumulator;

import java.io.Serializable;

/**
 * The progress a Spark UI shows for a clipj job (named accumulators, on the stage pages): rows seen, rows
 * with an error, images and texts embedded, images per second. Exact for the job's output writes (an
 * action); in a Dataset transformation a retried task may count twice, as with any Spark accumulator.
 */
public final class Counters implements Serializable {
    private static final long serialVersionUID = 1L;
    final LongAccumulator rows;
    final LongAccumulator errors;
    final LongAccumulator texts;
    final Throughput images;

    Counters(SparkContext sc) {
        rows = sc.longAccumulator("clipj rows");
        errors = sc.longAccumulator("clipj errors");
        texts = sc.longAccumulator("clipj texts");
        images = new Throughput();
        sc.register(images, "clipj images/s");
    }

    public long rows() {
        return rows.value();
    }

    public long errors() {
        return errors.value();
    }

    public long images() {
        return images.items();
    }

    public long texts() {
        return texts.value();
    }

    /** Images embedded per second of wall time, first batch to last, over all executors. */
    public double imagesPerSecond() {
        return images.value();
    }
}
