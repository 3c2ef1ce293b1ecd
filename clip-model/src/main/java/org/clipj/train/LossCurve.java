package org.clipj.train;

import org.clipj.io.AtomicFiles;

import java.awt.BasicStroke;
import java.awt.Color;
import java.awt.Font;
import java.awt.Graphics2D;
import java.awt.RenderingHints;
import java.awt.geom.Path2D;
import java.awt.image.BufferedImage;
import java.nio.file.Path;
import java.util.List;
import java.util.Locale;

/** The training loss per step (raw and smoothed) drawn with Java2D into a PNG. */
public final class LossCurve {
    private static final int W = 800;
    private static final int H = 480;
    private static final int LEFT = 70;
    private static final int RIGHT = 20;
    private static final int TOP = 40;
    private static final int BOTTOM = 50;

    private LossCurve() {
    }

    /** Renders the curve; entries must be non-empty. */
    public static BufferedImage render(List<MetricsLog.Entry> entries, String title) {
        BufferedImage img = new BufferedImage(W, H, BufferedImage.TYPE_INT_RGB);
        Graphics2D g = img.createGraphics();
        try {
            g.setRenderingHint(RenderingHints.KEY_ANTIALIASING, RenderingHints.VALUE_ANTIALIAS_ON);
            g.setColor(Color.WHITE);
            g.fillRect(0, 0, W, H);
            double minStep = entries.getFirst().step();
            double maxStep = Math.max(minStep + 1, entries.getLast().step());
            double minLoss = Double.POSITIVE_INFINITY;
            double maxLoss = Double.NEGATIVE_INFINITY;
            for (MetricsLog.Entry e : entries) {
                if (Double.isFinite(e.loss())) {
                    minLoss = Math.min(minLoss, e.loss());
                    maxLoss = Math.max(maxLoss, e.loss());
                }
            }
            if (!Double.isFinite(minLoss)) {
                minLoss = 0;
                maxLoss = 1;
            }
            minLoss = Math.min(0, minLoss);
            if (maxLoss - minLoss < 1e-9) {
                maxLoss = minLoss + 1;
            }
            int plotW = W - LEFT - RIGHT;
            int plotH = H - TOP - BOTTOM;
            g.setFont(new Font(Font.SANS_SERIF, Font.PLAIN, 12));
            for (int i = 0; i <= 5; i++) {
                int y = TOP + plotH - plotH * i / 5;
                g.setColor(new Color(230, 230, 230));
                g.drawLine(LEFT, y, LEFT + plotW, y);
                g.setColor(Color.DARK_GRAY);
                g.drawString(String.format(Locale.ROOT, "%.2f", minLoss + (maxLoss - minLoss) * i / 5), 10, y + 4);
                int x = LEFT + plotW * i / 5;
                g.drawString(String.valueOf(Math.round(minStep + (maxStep - minStep) * i / 5)), x - 10, TOP + plotH + 20);
            }
            g.setColor(Color.BLACK);
            g.drawRect(LEFT, TOP, plotW, plotH);
            g.drawString("step", LEFT + plotW / 2 - 12, H - 10);
            g.setFont(new Font(Font.SANS_SERIF, Font.BOLD, 14));
            g.drawString(title, LEFT, 24);

            List<MetricsLog.Entry> finite = entries.stream().filter(e -> Double.isFinite(e.loss())).toList();
            int half = Math.max(1, finite.size() / 100); // centred moving average: smooth without lag
            double[] prefix = new double[finite.size() + 1];
            for (int i = 0; i < finite.size(); i++) {
                prefix[i + 1] = prefix[i] + finite.get(i).loss();
            }
            Path2D raw = new Path2D.Double();
            Path2D smooth = new Path2D.Double();
            for (int i = 0; i < finite.size(); i++) {
                MetricsLog.Entry e = finite.get(i);
                int lo = Math.max(0, i - half);
                int hi = Math.min(finite.size(), i + half + 1);
                double mean = (prefix[hi] - prefix[lo]) / (hi - lo);
                double x = LEFT + plotW * (e.step() - minStep) / (maxStep - minStep);
                double yRaw = TOP + plotH * (maxLoss - e.loss()) / (maxLoss - minLoss);
                double ySmooth = TOP + plotH * (maxLoss - mean) / (maxLoss - minLoss);
                if (i == 0) {
                    raw.moveTo(x, yRaw);
                    smooth.moveTo(x, ySmooth);
                } else {
                    raw.lineTo(x, yRaw);
                    smooth.lineTo(x, ySmooth);
                }
            }
            g.setStroke(new BasicStroke(1f));
            g.setColor(new Color(120, 160, 230));
            g.draw(raw);
            g.setStroke(new BasicStroke(2.2f));
            g.setColor(new Color(200, 40, 40));
            g.draw(smooth);
            g.setFont(new Font(Font.SANS_SERIF, Font.PLAIN, 12));
            g.drawString("loss (smoothed)", LEFT + plotW - 110, TOP + 18);
            g.setColor(new Color(120, 160, 230));
            g.drawString("loss per step", LEFT + plotW - 110, TOP + 34);
        } finally {
            g.dispose();
        }
        return img;
    }

    /** Writes the PNG atomically ({@link AtomicFiles}). */
    public static void write(Path png, List<MetricsLog.Entry> entries, String title) {
        if (entries.isEmpty()) {
            return;
        }
        AtomicFiles.writePng(png, render(entries, title));
    }
}
