package org.clipj.eval;

import org.clipj.Clip;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

/**
 * Image embeddings of an evaluation set, through {@link Clip#encodeImages(List, List, java.util.function.IntConsumer)}
 * (bounded decode pool, batches) and an optional feature cache. An unreadable image is skipped and
 * reported, never fatal.
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
    public static Extracted extract(Clip clip, List<Path> files, FeatureCache cache, Progress progress) {
        if (cache == null) {
            return encode(clip, files, progress);
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
        Extracted fresh = encode(clip, missing, progress == null ? null : done -> progress.done(hits + done));
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

    private static Extracted encode(Clip clip, List<Path> files, Progress progress) {
        List<String> skipped = new ArrayList<>();
        float[][] out = clip.encodeImages(files, skipped, progress == null ? null : progress::done);
        return new Extracted(out, skipped, 0);
    }
}
