package org.clipj.data;

import org.clipj.runtime.InvalidInputException;

import java.awt.image.BufferedImage;
import java.io.IOException;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.random.RandomGenerator;

/**
 * Batches of preprocessed images and their captions, decoded and augmented ahead of the training
 * step on a small bounded pool. The stream is a pure function of (data set, seed, position):
 * position p is example order(p / N)[p % N] of epoch p / N (a seeded permutation, or file order
 * without shuffling), and its augmentation draws from a generator seeded by (seed, p). A batch
 * ends at {@link Batch#endPosition()}; starting a loader there continues the same stream exactly
 * (that is what resume stores). Missing or corrupt images are skipped, counted and reported.
 */
public final class BatchLoader implements AutoCloseable {

    /** Image to normalized CHW floats; rng is the example's own augmentation randomness. */
    @FunctionalInterface
    public interface ImageTransform {
        float[] apply(BufferedImage image, RandomGenerator rng);
    }

    /** pixels (B, 3, R, R) flattened; captions and data set indices of the B examples. */
    public record Batch(float[] pixels, List<String> captions, int[] indices, long endPosition) {
        public int size() {
            return indices.length;
        }
    }

    private record Loaded(int index, float[] pixels, String caption, String error) {
    }

    private static final int MAX_REPORTED = 20;

    private final ImageTextDataset dataset;
    private final int batchSize;
    private final int pixelsPerImage;
    private final ImageTransform transform;
    private final boolean shuffle;
    private final long seed;
    private final int lookahead;
    private final ExecutorService pool;
    private final ArrayDeque<Future<Loaded>> window = new ArrayDeque<>();
    private long consumed;       // positions taken out of the window
    private long submitted;      // positions handed to the pool
    private long cachedEpoch = -1;
    private int[] cachedOrder;
    private long skipped;
    private final List<String> skippedReports = new ArrayList<>();

    /**
     * @param pixelsPerImage  3 * R * R, the length transform returns
     * @param threads         decoding threads
     * @param prefetchBatches how many batches may be decoded ahead of the consumer
     */
    public BatchLoader(ImageTextDataset dataset, int batchSize, int pixelsPerImage, ImageTransform transform,
                       boolean shuffle, long seed, long startPosition, int threads, int prefetchBatches) {
        if (dataset.size() < 1) {
            throw new InvalidInputException("the training data set is empty");
        }
        if (batchSize < 1) {
            throw new InvalidInputException("--batch must be >= 1, got " + batchSize);
        }
        this.dataset = dataset;
        this.batchSize = batchSize;
        this.pixelsPerImage = pixelsPerImage;
        this.transform = transform;
        this.shuffle = shuffle;
        this.seed = seed;
        this.consumed = startPosition;
        this.submitted = startPosition;
        this.lookahead = batchSize * Math.max(1, prefetchBatches);
        AtomicInteger count = new AtomicInteger();
        this.pool = Executors.newFixedThreadPool(Math.max(1, threads), r -> {
            Thread t = new Thread(r, "clip-data-" + count.incrementAndGet());
            t.setDaemon(true);
            return t;
        });
    }

    /** The data set index at stream position p. */
    public int indexAt(long position) {
        int n = dataset.size();
        long epoch = position / n;
        int k = (int) (position % n);
        if (!shuffle) {
            return k;
        }
        if (epoch != cachedEpoch) {
            cachedOrder = permutation(n, seed, epoch);
            cachedEpoch = epoch;
        }
        return cachedOrder[k];
    }

    /** The order of one epoch: Fisher-Yates with a generator seeded by (seed, epoch). */
    static int[] permutation(int n, long seed, long epoch) {
        int[] order = new int[n];
        for (int i = 0; i < n; i++) {
            order[i] = i;
        }
        SplittableRandom r = new SplittableRandom(seed ^ (0xD1B54A32D192ED03L * (epoch + 1)));
        for (int i = n - 1; i > 0; i--) {
            int j = r.nextInt(i + 1);
            int t = order[i];
            order[i] = order[j];
            order[j] = t;
        }
        return order;
    }

    private void topUp() {
        while (submitted - consumed < lookahead) {
            long position = submitted++;
            int index = indexAt(position);
            window.addLast(pool.submit(() -> load(index, position)));
        }
    }

    private Loaded load(int index, long position) {
        float[] pixels;
        try {
            BufferedImage image = dataset.image(index);
            if (image == null) {
                return new Loaded(index, null, null, dataset.source(index) + ": not a decodable image");
            }
            pixels = transform.apply(image, new SplittableRandom(seed * 0x9E3779B97F4A7C15L ^ position));
        } catch (IOException | RuntimeException e) {
            // decoders report corrupt data with assorted runtime exceptions; each one skips only this example
            String why = e.getMessage() == null ? e.getClass().getSimpleName() : e.getMessage();
            return new Loaded(index, null, null, dataset.source(index) + ": " + why);
        }
        if (pixels.length != pixelsPerImage) {
            throw new IllegalStateException("transform returned " + pixels.length + " floats, expected " + pixelsPerImage);
        }
        return new Loaded(index, pixels, dataset.caption(index), null);
    }

    /** The next batch; skips unreadable examples (the batch is always full). */
    public Batch next() {
        float[] pixels = new float[batchSize * pixelsPerImage];
        List<String> captions = new ArrayList<>(batchSize);
        int[] indices = new int[batchSize];
        int filled = 0;
        int failuresInARow = 0;
        while (filled < batchSize) {
            topUp();
            Loaded item = take(window.removeFirst());
            consumed++;
            if (item.error() != null) {
                skipped++;
                if (skippedReports.size() < MAX_REPORTED) {
                    skippedReports.add(item.error());
                }
                if (++failuresInARow >= dataset.size()) {
                    throw new InvalidInputException("no readable image in the data set (" + dataset.size()
                            + " tried; first: " + skippedReports.getFirst() + ")");
                }
                continue;
            }
            failuresInARow = 0;
            System.arraycopy(item.pixels(), 0, pixels, filled * pixelsPerImage, pixelsPerImage);
            captions.add(item.caption());
            indices[filled++] = item.index();
        }
        return new Batch(pixels, captions, indices, consumed);
    }

    private static Loaded take(Future<Loaded> f) {
        try {
            return f.get();
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IllegalStateException("interrupted while loading data", e);
        } catch (ExecutionException e) {
            if (e.getCause() instanceof RuntimeException re) {
                throw re;
            }
            throw new IllegalStateException(e.getCause());
        }
    }

    /** Stream position after the last batch returned. */
    public long position() {
        return consumed;
    }

    /** Examples skipped so far because they were missing or corrupt. */
    public long skipped() {
        return skipped;
    }

    /** The first few skip reasons (file and error). */
    public List<String> skippedReports() {
        return List.copyOf(skippedReports);
    }

    @Override
    public void close() {
        pool.shutdownNow();
    }
}
