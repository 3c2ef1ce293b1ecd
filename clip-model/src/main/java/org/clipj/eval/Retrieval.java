package org.clipj.eval;

import org.clipj.runtime.Backend;
import org.clipj.runtime.DType;
import org.clipj.runtime.Tensor;

import java.util.Arrays;

/**
 * Image-text retrieval metrics with several captions per image. Embeddings are L2-normalized, so
 * similarity is the dot product. A rank is 1 + the number of candidates scoring strictly higher
 * than the best correct one (ties resolved in the query's favour). Similarities are computed for
 * blocks of images at a time, so memory is O(block x Nt), never O(Ni x Nt).
 */
public final class Retrieval {

    /** Recall@1/5/10 and mean/median rank (1-based) of one direction. */
    public record Metrics(double recallAt1, double recallAt5, double recallAt10, double meanRank, double medianRank) {
        static Metrics of(int[] ranks) {
            int n = ranks.length;
            int r1 = 0, r5 = 0, r10 = 0;
            long sum = 0;
            for (int r : ranks) {
                if (r <= 1) r1++;
                if (r <= 5) r5++;
                if (r <= 10) r10++;
                sum += r;
            }
            int[] sorted = ranks.clone();
            Arrays.sort(sorted);
            double median = n % 2 == 1 ? sorted[n / 2] : 0.5 * (sorted[n / 2 - 1] + sorted[n / 2]);
            return new Metrics((double) r1 / n, (double) r5 / n, (double) r10 / n, (double) sum / n, median);
        }
    }

    /** Both directions, and the ranks behind them. */
    public record Result(Metrics imageToText, Metrics textToImage, int[] imageRanks, int[] textRanks) {
    }

    private Retrieval() {
    }

    /** Fills rows (count, Nt) with the similarities of images [from, from + count) to every caption. */
    @FunctionalInterface
    interface SimilarityBlock {
        void fill(int from, int count, float[] rows);
    }

    private static final int BLOCK = 256;

    /**
     * Scalar reference: similarities as plain dot products.
     *
     * @param images      (Ni, D) normalized image embeddings
     * @param texts       (Nt, D) normalized caption embeddings
     * @param textToImage for each caption, the index of its image; every image needs at least one caption
     */
    public static Result evaluate(float[][] images, float[][] texts, int[] textToImage) {
        check(images, texts, textToImage);
        int nt = texts.length;
        return rank(images.length, textToImage, (from, count, rows) -> {
            for (int i = 0; i < count; i++) {
                for (int t = 0; t < nt; t++) rows[i * nt + t] = dot(images[from + i], texts[t]);
            }
        });
    }

    /** As {@link #evaluate(float[][], float[][], int[])}, with (block, D) @ (Nt, D)^T on the backend. */
    public static Result evaluate(Backend backend, float[][] images, float[][] texts, int[] textToImage) {
        check(images, texts, textToImage);
        int nt = texts.length;
        int dim = texts[0].length;
        Tensor textMatrix = backend.upload(pack(texts, 0, nt, dim)); // (Nt, D)
        int blockRows = Math.min(BLOCK, images.length);
        Tensor sim = backend.zeros(DType.F32, blockRows, nt); // (block, Nt)
        return rank(images.length, textToImage, (from, count, rows) -> {
            Tensor block = backend.upload(pack(images, from, count, dim)); // (count, D)
            Tensor out = count == blockRows ? sim : sim.slice(0, count);
            backend.matmul(out, block, false, textMatrix, true, 1f, 0f);
            System.arraycopy(backend.download(out).toFloatArray(), 0, rows, 0, count * nt);
        });
    }

    private static void check(float[][] images, float[][] texts, int[] textToImage) {
        int ni = images.length;
        int nt = texts.length;
        if (ni == 0 || nt == 0 || textToImage.length != nt) {
            throw new IllegalArgumentException("retrieval needs images (" + ni + "), captions (" + nt
                    + ") and one image index per caption (" + textToImage.length + ")");
        }
        boolean[] hasCaption = new boolean[ni];
        for (int t = 0; t < nt; t++) {
            if (textToImage[t] < 0 || textToImage[t] >= ni) {
                throw new IllegalArgumentException("caption " + t + " names image " + textToImage[t] + " of " + ni);
            }
            hasCaption[textToImage[t]] = true;
        }
        for (int i = 0; i < ni; i++) {
            if (!hasCaption[i]) {
                throw new IllegalArgumentException("image " + i + " has no caption");
            }
        }
        int dim = texts[0].length;
        for (float[][] set : new float[][][]{images, texts}) {
            for (float[] row : set) {
                if (row.length != dim) {
                    throw new IllegalArgumentException("embedding sizes differ: " + dim + " vs " + row.length);
                }
            }
        }
    }

    /**
     * Ranks from similarity rows computed block by block, never the (Ni, Nt) matrix. Two passes over
     * the same blocks: the first finds each caption's score with its own image (and the image ranks),
     * the second counts the images scoring strictly higher, so both compare identically computed numbers.
     */
    private static Result rank(int ni, int[] textToImage, SimilarityBlock similarities) {
        int nt = textToImage.length;
        float[] rows = new float[Math.min(BLOCK, ni) * nt];
        float[] correctScore = new float[nt];
        int[] imageRanks = new int[ni];
        for (int from = 0; from < ni; from += BLOCK) {
            int count = Math.min(BLOCK, ni - from);
            similarities.fill(from, count, rows);
            for (int i = 0; i < count; i++) {
                int image = from + i;
                int base = i * nt;
                float best = Float.NEGATIVE_INFINITY;
                for (int t = 0; t < nt; t++) {
                    if (textToImage[t] == image) {
                        correctScore[t] = rows[base + t];
                        best = Math.max(best, rows[base + t]);
                    }
                }
                int higher = 0;
                for (int t = 0; t < nt; t++) if (rows[base + t] > best) higher++;
                imageRanks[image] = 1 + higher;
            }
        }
        int[] textRanks = new int[nt];
        Arrays.fill(textRanks, 1);
        for (int from = 0; from < ni; from += BLOCK) {
            int count = Math.min(BLOCK, ni - from);
            similarities.fill(from, count, rows);
            for (int i = 0; i < count; i++) {
                int base = i * nt;
                for (int t = 0; t < nt; t++) if (rows[base + t] > correctScore[t]) textRanks[t]++;
            }
        }
        return new Result(Metrics.of(imageRanks), Metrics.of(textRanks), imageRanks, textRanks);
    }

    private static Tensor pack(float[][] rows, int from, int count, int dim) {
        float[] data = new float[count * dim];
        for (int i = 0; i < count; i++) System.arraycopy(rows[from + i], 0, data, i * dim, dim);
        return Tensor.of(data, count, dim);
    }

    static float dot(float[] a, float[] b) {
        if (a.length != b.length) {
            throw new IllegalArgumentException("embedding sizes differ: " + a.length + " vs " + b.length);
        }
        float s = 0;
        for (int i = 0; i < a.length; i++) s += a[i] * b[i];
        return s;
    }
}
