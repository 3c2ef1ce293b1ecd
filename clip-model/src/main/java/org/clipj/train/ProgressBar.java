package org.clipj.train;

import java.io.PrintWriter;
import java.util.Locale;

/**
 * One-line training progress on stderr: step, loss, lr, logit scale, images/s, ETA. Redraws in
 * place with a carriage return; prints at most every {@code minIntervalNanos} (always the last step).
 */
public final class ProgressBar {
    private static final int WIDTH = 24;

    private final PrintWriter err;
    private final int totalSteps;
    private final long minIntervalNanos;
    private long lastDraw;
    private boolean lineOpen;   // a progress line is drawn without its newline

    public ProgressBar(PrintWriter err, int totalSteps, long minIntervalNanos) {
        this.err = err;
        this.totalSteps = totalSteps;
        this.minIntervalNanos = minIntervalNanos;
    }

    /** Draws step (1-based, done) of the total; etaSeconds < 0 when unknown. */
    public void update(int step, double loss, double lr, double logitScale, double imagesPerSecond, double etaSeconds) {
        long now = System.nanoTime();
        if (step < totalSteps && lastDraw != 0 && now - lastDraw < minIntervalNanos) {
            return;
        }
        lastDraw = now;
        err.print("\r" + line(step, loss, lr, logitScale, imagesPerSecond, etaSeconds));
        lineOpen = step < totalSteps;
        if (!lineOpen) {
            err.println();
        }
        err.flush();
    }

    /** Ends a progress line left open (by a stop before the last step), so the next message starts a line. */
    public void endLine() {
        if (lineOpen) {
            err.println();
            err.flush();
            lineOpen = false;
        }
    }

    /** The text of one progress line. */
    public String line(int step, double loss, double lr, double logitScale, double imagesPerSecond, double etaSeconds) {
        int filled = (int) Math.round(WIDTH * Math.min(1.0, (double) step / totalSteps));
        return String.format(Locale.ROOT, "[%s%s] step %d/%d loss %.4f lr %.2e scale %.2f %.1f img/s ETA %s",
                "#".repeat(filled), ".".repeat(WIDTH - filled), step, totalSteps, loss, lr, logitScale,
                imagesPerSecond, formatDuration(etaSeconds));
    }

    static String formatDuration(double seconds) {
        if (!(seconds >= 0) || Double.isInfinite(seconds)) {
            return "--:--";
        }
        long s = Math.round(seconds);
        return s >= 3600 ? String.format(Locale.ROOT, "%d:%02d:%02d", s / 3600, s / 60 % 60, s % 60)
                : String.format(Locale.ROOT, "%02d:%02d", s / 60, s % 60);
    }
}
