package org.clipj.eval;

import java.util.Arrays;

/**
 * Image-text retrieval metrics with several captions per image. Embeddings are L2-normalized, so
 * similarity is the dot product. A rank is 1 + the number of candidates scoring strictly higher
 * than the best correct one (ties resolved in the query's favour).
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

    /**
     * @param images      (Ni, D) normalized image embeddings
     * @param texts       (Nt, D) normalized caption embeddings
     * @param textToImage for each caption, the index of its image; every image needs at least one caption
     */
    public static Result evaluate(float[][] images, float[][] texts, int[] textToImage) {
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
        // One pass over similarity rows, never the (Ni, Nt) matrix: O(Nt) memory.
        float[] correctScore = new float[nt];
        for (int t = 0; t < nt; t++) correctScore[t] = dot(images[textToImage[t]], texts[t]);
        int[] textHigher = new int[nt];
        int[] imageRanks = new int[ni];
        float[] row = new float[nt];
        for (int i = 0; i < ni; i++) {
            float best = Float.NEGATIVE_INFINITY;
            for (int t = 0; t < nt; t++) {
                row[t] = dot(images[i], texts[t]);
                if (textToImage[t] == i) best = Math.max(best, row[t]);
                if (row[t] > correctScore[t]) textHigher[t]++;
            }
            int higher = 0;
            for (int t = 0; t < nt; t++) if (row[t] > best) higher++;
            imageRanks[i] = 1 + higher;
        }
        int[] textRanks = new int[nt];
        for (int t = 0; t < nt; t++) textRanks[t] = 1 + textHigher[t];
        return new Result(Metrics.of(imageRanks), Metrics.of(textRanks), imageRanks, textRanks);
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
