package org.clipj.eval;

import org.clipj.io.AtomicFiles;

import java.awt.Color;
import java.awt.Font;
import java.awt.Graphics2D;
import java.awt.RenderingHints;
import java.awt.image.BufferedImage;
import java.nio.file.Path;
import java.util.List;
import java.util.function.IntFunction;

/** PNG figures of the evaluations: a confusion matrix and a contact sheet of image pairs. */
public final class EvalCharts {
    private static final int CELL = 18;
    private static final int THUMB = 128;

    private EvalCharts() {
    }

    /** Heat map of row-normalized counts (C true, C predicted), labels on both axes. */
    public static void writeConfusionMatrix(Path png, int[][] confusion, List<String> classNames) {
        int c = confusion.length;
        int label = Math.min(160, 8 + 7 * classNames.stream().mapToInt(String::length).max().orElse(4));
        int size = label + c * CELL + 10;
        BufferedImage img = new BufferedImage(Math.max(size, 330), size + 20, BufferedImage.TYPE_INT_RGB); // room for the footer
        Graphics2D g = start(img);
        g.setFont(new Font(Font.SANS_SERIF, Font.PLAIN, 11));
        for (int t = 0; t < c; t++) {
            int total = 0;
            for (int p = 0; p < c; p++) total += confusion[t][p];
            for (int p = 0; p < c; p++) {
                double frac = total == 0 ? 0 : (double) confusion[t][p] / total;
                int shade = (int) Math.round(255 * (1 - frac));
                g.setColor(new Color(shade, shade, 255));
                g.fillRect(label + p * CELL, label + t * CELL, CELL - 1, CELL - 1);
            }
            g.setColor(Color.BLACK);
            g.drawString(clip(classNames.get(t), label / 7), 4, label + t * CELL + 13);
        }
        for (int p = 0; p < c; p++) { // predicted-class labels, rotated
            Graphics2D r = (Graphics2D) g.create();
            r.translate(label + p * CELL + 13, label - 4);
            r.rotate(-Math.PI / 2);
            r.drawString(clip(classNames.get(p), label / 7), 0, 0);
            r.dispose();
        }
        g.drawString("rows: true class, columns: predicted (row-normalized)", 4, size + 12);
        g.dispose();
        write(img, png);
    }

    /**
     * A sheet of image pairs side by side with their similarity, one pair per row.
     *
     * @param left  loads the i-th pair's first image (null when unreadable)
     * @param right loads the i-th pair's second image
     */
    public static void writeContactSheet(Path png, List<String> captions, IntFunction<BufferedImage> left,
                                         IntFunction<BufferedImage> right) {
        int rows = captions.size();
        BufferedImage sheet = new BufferedImage(2 * THUMB + 280, Math.max(1, rows) * (THUMB + 8) + 8,
                BufferedImage.TYPE_INT_RGB);
        Graphics2D g = start(sheet);
        g.setFont(new Font(Font.SANS_SERIF, Font.PLAIN, 12));
        for (int i = 0; i < rows; i++) {
            int y = 8 + i * (THUMB + 8);
            drawThumb(g, left.apply(i), 8, y);
            drawThumb(g, right.apply(i), 16 + THUMB, y);
            g.setColor(Color.BLACK);
            g.drawString(clip(captions.get(i), 40), 28 + 2 * THUMB, y + THUMB / 2);
        }
        g.dispose();
        write(sheet, png);
    }

    private static void drawThumb(Graphics2D g, BufferedImage img, int x, int y) {
        if (img == null) {
            g.setColor(Color.LIGHT_GRAY);
            g.fillRect(x, y, THUMB, THUMB);
            return;
        }
        double s = Math.min((double) THUMB / img.getWidth(), (double) THUMB / img.getHeight());
        int w = (int) Math.round(img.getWidth() * s);
        int h = (int) Math.round(img.getHeight() * s);
        g.drawImage(img, x + (THUMB - w) / 2, y + (THUMB - h) / 2, w, h, null);
    }

    private static Graphics2D start(BufferedImage img) {
        Graphics2D g = img.createGraphics();
        g.setColor(Color.WHITE);
        g.fillRect(0, 0, img.getWidth(), img.getHeight());
        g.setRenderingHint(RenderingHints.KEY_ANTIALIASING, RenderingHints.VALUE_ANTIALIAS_ON);
        g.setRenderingHint(RenderingHints.KEY_INTERPOLATION, RenderingHints.VALUE_INTERPOLATION_BILINEAR);
        return g;
    }

    private static String clip(String s, int max) {
        return s.length() <= max ? s : s.substring(0, Math.max(1, max - 1)) + "…";
    }

    /** Writes atomically: a temp file beside the target, then a rename. */
    static void write(BufferedImage img, Path png) {
        AtomicFiles.writePng(png, img);
    }
}
