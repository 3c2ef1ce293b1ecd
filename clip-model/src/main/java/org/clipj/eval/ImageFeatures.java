package org.clipj.eval;

import org.clipj.Clip;
import org.clipj.image.ImageLoader;
import org.clipj.image.Preprocess;
import org.clipj.runtime.InvalidInputException;

import java.nio.file.Path;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Deque;
import java.util.List;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;

/**
 * Image embeddings of an evaluation set: files are decoded and preprocessed on a bounded pool at
 * most two batches ahead of the model, then encoded batch by batch, so memory stays bounded for
 * any number of files. An unreadable image is skipped and reported, never fatal.
 */
public final class ImageFeatures {

    /**
     * @param embeddings (N, E) L2-normalized rows in file order; null for a skipped file
     * @param skipped    "file: reason" of each skipped file
     * @param cacheHits  how many embeddings came from the feature cache
     */
    public record Extracted(float[][] embeddings, List<String> skipped, int cacheHits) {
        /** Indices of the files that have an embedding. */
        public int[] kept() {
            return java.util.stream.IntStream.range(0, embeddings.length).filter(i -> embeddings[i] != null).toArray();
        }
    }

    /** Called after each batch with the number of files done so far. */
    @FunctionalInterface
    public interface Progress {
        void done(int files);
    }

    private ImageFeatures() {
    }

    /**
     * Embeddings of files; with a cache (may be null) only the files it lacks are encoded, and the
     * new embeddings are saved to it.
     */
    public static Extracted extract(Clip clip, List<Path> files, int batchSize, FeatureCache cache, Progress progress) {
        if (cache == null) {
            return encode(clip, files, batchSize, progress);
        }
        int n = files.size();
        float[][] out = new float[n][];
        String[] keys = new String[n];
        List<Path> missing = new ArrayList<>();
        List<Integer> missingAt = new ArrayList<>();
        for (int i = 0; i < n; i++) {
            keys[i] = FeatureCache.imageKey(files.get(i));
            out[i] = cache.get(keys[i]);
            if (out[i] == null) {
                missing.add(files.get(i));
                missingAt.add(i);
            }
        }
        int hits = n - missing.size();
        Extracted fresh = encode(clip, missing, batchSize, progress == null ? null : done -> progress.done(hits + done));
        for (int m = 0; m < missing.size(); m++) {
            int i = missingAt.get(m);
            out[i] = fresh.embeddings()[m];
            if (out[i] != null && keys[i] != null) {
                cache.put(keys[i], out[i]);
            }
        }
        cache.save();
        return new Extracted(out, fresh.skipped(), hits);
    }

    private static Extracted encode(Clip clip, List<Path> files, int batchSize, Progress progress) {
        if (batchSize < 1) {
            throw new InvalidInputException("batch size must be >= 1, got " + batchSize);
        }
        int n = files.size();
        int res = clip.imageResolution();
        int pixelsPerImage = 3 * res * res;
        float[][] out = new float[n][];
        List<String> skipped = new ArrayList<>();
        int threads = Math.max(1, Math.min(4, Runtime.getRuntime().availableProcessors()));
        ExecutorService pool = Executors.newFixedThreadPool(threads, r -> {
            Thread t = new Thread(r, "clip-eval-decode");
            t.setDaemon(true);
            return t;
        });
        try {
            Deque<Future<float[]>> pending = new ArrayDeque<>();
            int submitted = 0;
            for (int start = 0; start < n; start += batchSize) {
                int count = Math.min(batchSize, n - start);
                for (; submitted < Math.min(n, start + 2 * batchSize); submitted++) {
                    Path file = files.get(submitted);
                    pending.add(pool.submit(() -> Preprocess.clip(ImageLoader.read(file), res)));
                }
                float[] batch = new float[count * pixelsPerImage];
                int[] rows = new int[count];
                int kept = 0;
                for (int i = 0; i < count; i++) {
                    Path file = files.get(start + i);
                    try {
                        System.arraycopy(await(pending.poll()), 0, batch, kept * pixelsPerImage, pixelsPerImage);
                        rows[kept++] = start + i;
                    } catch (InvalidInputException e) {
                        skipped.add(e.getMessage() != null && e.getMessage().contains(file.toString())
                                ? e.getMessage() : file + ": " + e.getMessage());
                    }
                }
                if (kept > 0) {
                    float[][] emb = clip.encodePixels(kept == count ? batch : Arrays.copyOf(batch, kept * pixelsPerImage), kept);
                    for (int k = 0; k < kept; k++) out[rows[k]] = emb[k];
                }
                if (progress != null) {
                    progress.done(start + count);
                }
            }
        } finally {
            pool.shutdownNow();
        }
        return new Extracted(out, skipped, 0);
    }

    private static float[] await(Future<float[]> f) {
        try {
            return f.get();
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IllegalStateException("interrupted while decoding images", e);
        } catch (ExecutionException e) {
            if (e.getCause() instanceof RuntimeException re) {
                throw re;
            }
            throw new IllegalStateException(e.getCause());
        }
    }
}
