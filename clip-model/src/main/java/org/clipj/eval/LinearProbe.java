package org.clipj.eval;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Random;

/**
 * Linear probe as in the CLIP paper: L2-regularized multinomial logistic regression on frozen
 * features, fitted with L-BFGS. Objective, for N samples, weights W (C, D) and bias b (C):
 * {@code (1/N) sum_i CE(W x_i + b, y_i) + (lambda/2) ||W||^2} (the bias is not regularized).
 * The regularization strength is chosen by a sweep on a held-out part of the training split, then
 * the model is refit on the whole split.
 */
public final class LinearProbe {

    /** A fitted classifier: weights (C, D) row-major and bias (C). */
    public record Model(int classes, int dim, double[] weights, double[] bias, double lambda,
                        double gradientNorm, int iterations) {

        public double[] logits(float[] x) {
            double[] z = new double[classes];
            for (int c = 0; c < classes; c++) {
                double s = bias[c];
                int row = c * dim;
                for (int d = 0; d < dim; d++) s += weights[row + d] * x[d];
                z[c] = s;
            }
            return z;
        }

        public int predict(float[] x) {
            double[] z = logits(x);
            int best = 0;
            for (int c = 1; c < classes; c++) if (z[c] > z[best]) best = c;
            return best;
        }

        public double accuracy(float[][] x, int[] y) {
            int correct = 0;
            for (int i = 0; i < x.length; i++) if (predict(x[i]) == y[i]) correct++;
            return x.length == 0 ? 0 : (double) correct / x.length;
        }
    }

    /** One point of the regularization sweep. */
    public record SweepPoint(double lambda, double validationAccuracy) {
    }

    /** The sweep's points, the chosen lambda, and the model refit on all training data with it. */
    public record Result(Model model, double chosenLambda, List<SweepPoint> sweep) {
    }

    private static final double GRADIENT_TOLERANCE = 1e-6;
    private static final int MAX_ITERATIONS = 1000;

    private LinearProbe() {
    }

    /** Fits one model at a fixed lambda. */
    public static Model fit(float[][] x, int[] y, int classes, double lambda) {
        int dim = checkData(x, y, classes);
        int n = x.length;
        int wSize = classes * dim;
        Lbfgs.Objective objective = (theta, grad) -> value(x, y, classes, dim, lambda, theta, grad, n, wSize);
        Lbfgs.Result r = new Lbfgs(10, MAX_ITERATIONS, GRADIENT_TOLERANCE).minimize(objective, new double[wSize + classes]);
        double[] w = Arrays.copyOf(r.x(), wSize);
        double[] b = Arrays.copyOfRange(r.x(), wSize, wSize + classes);
        return new Model(classes, dim, w, b, lambda, r.gradientNorm(), r.iterations());
    }

    /** The objective and its gradient at theta = [W (C, D) row-major, b (C)]. */
    static double value(float[][] x, int[] y, int classes, int dim, double lambda, double[] theta, double[] grad,
                        int n, int wSize) {
        Arrays.fill(grad, 0);
        double loss = 0;
        double[] z = new double[classes];
        for (int i = 0; i < n; i++) {
            float[] xi = x[i];
            double max = Double.NEGATIVE_INFINITY;
            for (int c = 0; c < classes; c++) {
                double s = theta[wSize + c];
                int row = c * dim;
                for (int d = 0; d < dim; d++) s += theta[row + d] * xi[d];
                z[c] = s;
                max = Math.max(max, s);
            }
            double sum = 0;
            for (int c = 0; c < classes; c++) {
                z[c] = Math.exp(z[c] - max);
                sum += z[c];
            }
            loss += Math.log(sum) + max - (Math.log(z[y[i]]) + max);
            for (int c = 0; c < classes; c++) {
                double coef = (z[c] / sum - (c == y[i] ? 1 : 0)) / n;
                if (coef == 0) continue;
                int row = c * dim;
                for (int d = 0; d < dim; d++) grad[row + d] += coef * xi[d];
                grad[wSize + c] += coef;
            }
        }
        double reg = 0;
        for (int k = 0; k < wSize; k++) {
            reg += theta[k] * theta[k];
            grad[k] += lambda * theta[k];
        }
        return loss / n + 0.5 * lambda * reg;
    }

    /**
     * Chooses lambda on a held-out {@code validationFraction} of (x, y) (split by seed, stratified by
     * class), first over decades 1e-6..1e2, then refined by quarter-decades around the best, and refits
     * on all of (x, y).
     */
    public static Result fitWithSweep(float[][] x, int[] y, int classes, double validationFraction, long seed) {
        checkData(x, y, classes);
        if (!(validationFraction > 0 && validationFraction < 1)) {
            throw new IllegalArgumentException("validation fraction must be in (0, 1): " + validationFraction);
        }
        int[][] split = stratifiedSplit(y, classes, validationFraction, seed);
        float[][] xTrain = select(x, split[0]);
        int[] yTrain = select(y, split[0]);
        float[][] xVal = select(x, split[1]);
        int[] yVal = select(y, split[1]);
        List<SweepPoint> points = new ArrayList<>();
        double bestExp = Double.NaN;
        double bestAcc = -1;
        for (int e = -6; e <= 2; e++) {
            double acc = fit(xTrain, yTrain, classes, Math.pow(10, e)).accuracy(xVal, yVal);
            points.add(new SweepPoint(Math.pow(10, e), acc));
            if (acc > bestAcc) { // ties keep the smaller lambda found first
                bestAcc = acc;
                bestExp = e;
            }
        }
        double center = bestExp;
        for (double e = center - 0.75; e <= center + 0.751; e += 0.25) {
            if (Math.abs(e - Math.rint(e)) < 1e-9) continue; // decades already done
            double acc = fit(xTrain, yTrain, classes, Math.pow(10, e)).accuracy(xVal, yVal);
            points.add(new SweepPoint(Math.pow(10, e), acc));
            if (acc > bestAcc) {
                bestAcc = acc;
                bestExp = e;
            }
        }
        double lambda = Math.pow(10, bestExp);
        points.sort((a, b) -> Double.compare(a.lambda(), b.lambda()));
        return new Result(fit(x, y, classes, lambda), lambda, points);
    }

    /** Indices of the train and validation parts, each class split in the same proportion. */
    static int[][] stratifiedSplit(int[] y, int classes, double validationFraction, long seed) {
        Random rng = new Random(seed);
        List<Integer> train = new ArrayList<>();
        List<Integer> val = new ArrayList<>();
        for (int c = 0; c < classes; c++) {
            List<Integer> members = new ArrayList<>();
            for (int i = 0; i < y.length; i++) if (y[i] == c) members.add(i);
            java.util.Collections.shuffle(members, rng);
            int nVal = members.size() < 2 ? 0 : Math.max(1, (int) Math.round(members.size() * validationFraction));
            val.addAll(members.subList(0, nVal));
            train.addAll(members.subList(nVal, members.size()));
        }
        if (val.isEmpty() || train.isEmpty()) {
            throw new IllegalArgumentException("too few samples to hold out a validation split (" + y.length + ")");
        }
        return new int[][]{train.stream().mapToInt(Integer::intValue).sorted().toArray(),
                val.stream().mapToInt(Integer::intValue).sorted().toArray()};
    }

    private static int checkData(float[][] x, int[] y, int classes) {
        if (x.length == 0 || x.length != y.length) {
            throw new IllegalArgumentException("linear probe needs matching, non-empty features (" + x.length
                    + ") and labels (" + y.length + ")");
        }
        int dim = x[0].length;
        for (int i = 0; i < x.length; i++) {
            if (x[i].length != dim) {
                throw new IllegalArgumentException("feature " + i + " has " + x[i].length + " dims, expected " + dim);
            }
            if (y[i] < 0 || y[i] >= classes) {
                throw new IllegalArgumentException("label " + y[i] + " of sample " + i + " outside [0, " + classes + ")");
            }
        }
        return dim;
    }

    private static float[][] select(float[][] x, int[] idx) {
        float[][] out = new float[idx.length][];
        for (int i = 0; i < idx.length; i++) out[i] = x[idx[i]];
        return out;
    }

    private static int[] select(int[] y, int[] idx) {
        int[] out = new int[idx.length];
        for (int i = 0; i < idx.length; i++) out[i] = y[idx[i]];
        return out;
    }
}
