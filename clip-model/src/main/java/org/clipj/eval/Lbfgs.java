package org.clipj.eval;

/**
 * Limited-memory BFGS (Nocedal and Wright, algorithm 7.4/7.5) with a line search that
 * satisfies the strong Wolfe conditions (bracketing + cubic/bisection zoom), for smooth convex
 * objectives such as regularized logistic regression.
 */
public final class Lbfgs {

    /** f(x), writing the gradient into grad. */
    @FunctionalInterface
    public interface Objective {
        double evaluate(double[] x, double[] grad);
    }

    /** How a minimization ended. */
    public record Result(double[] x, double value, double gradientNorm, int iterations, boolean converged) {
    }

    private static final double C1 = 1e-4;
    private static final double C2 = 0.9;

    private final int memory;
    private final int maxIterations;
    private final double gradientTolerance;

    public Lbfgs(int memory, int maxIterations, double gradientTolerance) {
        if (memory < 1 || maxIterations < 1 || gradientTolerance <= 0) {
            throw new IllegalArgumentException("L-BFGS needs memory >= 1, maxIterations >= 1, tolerance > 0");
        }
        this.memory = memory;
        this.maxIterations = maxIterations;
        this.gradientTolerance = gradientTolerance;
    }

    public Result minimize(Objective f, double[] start) {
        int n = start.length;
        double[] x = start.clone();
        double[] g = new double[n];
        double fx = f.evaluate(x, g);
        double[][] s = new double[memory][n];
        double[][] y = new double[memory][n];
        double[] rho = new double[memory];
        double[] alpha = new double[memory];
        int stored = 0;
        int head = 0;
        double[] d = new double[n];
        double[] xNew = new double[n];
        double[] gNew = new double[n];
        int iter = 0;
        double gnorm = norm(g);
        while (gnorm > gradientTolerance && iter < maxIterations) {
            // two-loop recursion: d = -H g
            for (int i = 0; i < n; i++) d[i] = -g[i];
            for (int k = 0; k < stored; k++) {
                int j = Math.floorMod(head - 1 - k, memory);
                alpha[j] = rho[j] * dot(s[j], d);
                axpy(-alpha[j], y[j], d);
            }
            if (stored > 0) {
                int last = Math.floorMod(head - 1, memory);
                double gamma = dot(s[last], y[last]) / dot(y[last], y[last]);
                for (int i = 0; i < n; i++) d[i] *= gamma;
            } else {
                double scale = 1.0 / Math.max(gnorm, 1e-12);
                for (int i = 0; i < n; i++) d[i] *= Math.min(1.0, scale);
            }
            for (int k = stored - 1; k >= 0; k--) {
                int j = Math.floorMod(head - 1 - k, memory);
                double beta = rho[j] * dot(y[j], d);
                axpy(alpha[j] - beta, s[j], d);
            }
            double slope = dot(g, d);
            if (slope >= 0) { // not a descent direction (numerical trouble): restart with steepest descent
                for (int i = 0; i < n; i++) d[i] = -g[i];
                slope = -gnorm * gnorm;
                stored = 0;
            }
            double[] fNewHolder = new double[1];
            double step = lineSearch(f, x, fx, d, slope, xNew, gNew, fNewHolder);
            if (step == 0) {
                break;
            }
            double fNew = fNewHolder[0];
            double[] sj = s[head];
            double[] yj = y[head];
            for (int i = 0; i < n; i++) {
                sj[i] = xNew[i] - x[i];
                yj[i] = gNew[i] - g[i];
            }
            double sy = dot(sj, yj);
            if (sy > 1e-16) {
                rho[head] = 1.0 / sy;
                head = (head + 1) % memory;
                stored = Math.min(stored + 1, memory);
            }
            System.arraycopy(xNew, 0, x, 0, n);
            System.arraycopy(gNew, 0, g, 0, n);
            fx = fNew;
            gnorm = norm(g);
            iter++;
        }
        return new Result(x, fx, gnorm, iter, gnorm <= gradientTolerance);
    }

    /**
     * Strong-Wolfe line search along d from x (value f0, directional slope slope0 < 0). Leaves the
     * accepted point in xNew/gNew and its value in fOut[0]; returns the step, 0 when none decreases f.
     */
    private static double lineSearch(Objective f, double[] x, double f0, double[] d, double slope0,
                                     double[] xNew, double[] gNew, double[] fOut) {
        double step = 1.0;
        double prevStep = 0;
        double fPrev = f0;
        for (int i = 0; i < 30; i++) {
            double fs = evalAt(f, x, d, step, xNew, gNew);
            double slope = dot(gNew, d);
            if (fs > f0 + C1 * step * slope0 || (i > 0 && fs >= fPrev)) {
                return zoom(f, x, f0, d, slope0, prevStep, fPrev, step, xNew, gNew, fOut);
            }
            if (Math.abs(slope) <= -C2 * slope0) {
                fOut[0] = fs;
                return step;
            }
            if (slope >= 0) {
                return zoom(f, x, f0, d, slope0, step, fs, prevStep, xNew, gNew, fOut);
            }
            prevStep = step;
            fPrev = fs;
            step *= 2;
        }
        fOut[0] = fPrev; // xNew/gNew hold prevStep's point: every doubling kept decreasing f
        return prevStep;
    }

    /** Zoom between lo (satisfies sufficient decrease, value fLo) and hi (Nocedal and Wright 3.6). */
    private static double zoom(Objective f, double[] x, double f0, double[] d, double slope0,
                               double lo, double fLo, double hi, double[] xNew, double[] gNew, double[] fOut) {
        for (int i = 0; i < 50; i++) {
            double step = 0.5 * (lo + hi);
            double fs = evalAt(f, x, d, step, xNew, gNew);
            double slope = dot(gNew, d);
            if (fs > f0 + C1 * step * slope0 || fs >= fLo) {
                hi = step;
            } else {
                if (Math.abs(slope) <= -C2 * slope0) {
                    fOut[0] = fs;
                    return step;
                }
                if (slope * (hi - lo) >= 0) {
                    hi = lo;
                }
                lo = step;
                fLo = fs;
            }
            if (Math.abs(hi - lo) <= 1e-14 * Math.max(1, Math.abs(lo))) {
                break;
            }
        }
        if (lo == 0) {
            return 0;
        }
        fOut[0] = evalAt(f, x, d, lo, xNew, gNew);
        return lo;
    }

    private static double evalAt(Objective f, double[] x, double[] d, double step, double[] xNew, double[] gNew) {
        for (int i = 0; i < x.length; i++) xNew[i] = x[i] + step * d[i];
        return f.evaluate(xNew, gNew);
    }

    static double dot(double[] a, double[] b) {
        double s = 0;
        for (int i = 0; i < a.length; i++) s += a[i] * b[i];
        return s;
    }

    static double norm(double[] a) {
        return Math.sqrt(dot(a, a));
    }

    private static void axpy(double alpha, double[] xv, double[] yv) {
        for (int i = 0; i < xv.length; i++) yv[i] += alpha * xv[i];
    }
}
