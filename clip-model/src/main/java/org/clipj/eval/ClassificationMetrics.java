package org.clipj.eval;

/**
 * Top-1/top-5 accuracy, per-class accuracy and the confusion matrix of scores (N, C) against
 * true labels (N). Ties between scores rank the lower class index first.
 */
public final class ClassificationMetrics {
    private final int classes;
    private final int samples;
    private final int top1;
    private final int top5;
    private final int[][] confusion; // (C true, C predicted)

    private ClassificationMetrics(int classes, int samples, int top1, int top5, int[][] confusion) {
        this.classes = classes;
        this.samples = samples;
        this.top1 = top1;
        this.top5 = top5;
        this.confusion = confusion;
    }

    /** scores[i][c]: higher is more likely; labels[i] in [0, C). */
    public static ClassificationMetrics of(float[][] scores, int[] labels, int classes) {
        if (scores.length != labels.length) {
            throw new IllegalArgumentException(scores.length + " score rows for " + labels.length + " labels");
        }
        int[][] confusion = new int[classes][classes];
        int top1 = 0;
        int top5 = 0;
        for (int i = 0; i < scores.length; i++) {
            float[] s = scores[i];
            if (s.length != classes) {
                throw new IllegalArgumentException("score row " + i + " has " + s.length + " classes, expected " + classes);
            }
            int y = labels[i];
            if (y < 0 || y >= classes) {
                throw new IllegalArgumentException("label " + y + " of sample " + i + " outside [0, " + classes + ")");
            }
            int rank = 0; // classes ranked above the true one
            int argmax = 0;
            for (int c = 0; c < classes; c++) {
                if (s[c] > s[y] || (s[c] == s[y] && c < y)) rank++;
                if (s[c] > s[argmax]) argmax = c;
            }
            confusion[y][argmax]++;
            if (rank == 0) top1++;
            if (rank < 5) top5++;
        }
        return new ClassificationMetrics(classes, scores.length, top1, top5, confusion);
    }

    public int samples() {
        return samples;
    }

    public double top1() {
        return samples == 0 ? 0 : (double) top1 / samples;
    }

    public double top5() {
        return samples == 0 ? 0 : (double) top5 / samples;
    }

    /** Accuracy per true class (NaN for a class without samples). */
    public double[] perClassAccuracy() {
        double[] acc = new double[classes];
        for (int c = 0; c < classes; c++) {
            int total = 0;
            for (int p = 0; p < classes; p++) total += confusion[c][p];
            acc[c] = total == 0 ? Double.NaN : (double) confusion[c][c] / total;
        }
        return acc;
    }

    /** Counts (C true, C predicted); a copy. */
    public int[][] confusion() {
        int[][] copy = new int[classes][];
        for (int c = 0; c < classes; c++) copy[c] = confusion[c].clone();
        return copy;
    }
}
