package org.clipj.data;

import org.clipj.runtime.InvalidInputException;

import java.awt.BasicStroke;
import java.awt.Color;
import java.awt.Graphics2D;
import java.awt.RenderingHints;
import java.awt.Shape;
import java.awt.geom.Area;
import java.awt.geom.Ellipse2D;
import java.awt.geom.Rectangle2D;
import java.awt.image.BufferedImage;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;

/**
 * The built-in image-caption generator: one shape of some colour, size and position on a
 * textured grey background, drawn with Java2D, with a caption from one of several templates.
 * Example i is a pure function of (seed, i), so the data set is deterministic and needs no files.
 *
 * <p>Colour-shape pairs of the six evaluation colours with {@code (shape - colour) mod 6 == 0} are
 * held out of the TRAIN split (each colour and each shape still appears in training, only those
 * combinations never do); the HELD_OUT split draws only them, for compositional zero-shot
 * evaluation; SEEN draws only the other thirty evaluation pairs. TRAIN also draws a few extra
 * colours with every shape and extra shapes in every colour: seeing each shape in many colours
 * (and each colour on many shapes) teaches the model to tell shape apart from colour.
 */
public final class SyntheticDataset implements ImageTextDataset {

    /** TRAIN: all but the held-out pairs, extras included; SEEN / HELD_OUT / ALL: evaluation pairs only. */
    public enum Split { TRAIN, SEEN, HELD_OUT, ALL }

    /** The evaluation colours (zero-shot labels). */
    public static final List<String> COLOURS = List.of("red", "green", "blue", "yellow", "purple", "orange");
    /** Training-only colours, drawn with every shape. */
    public static final List<String> EXTRA_COLOURS = List.of("pink", "cyan", "brown");
    /** The evaluation shapes (zero-shot labels). */
    public static final List<String> SHAPES = List.of("circle", "square", "triangle", "star", "cross", "diamond");
    /** Training-only shapes, drawn in every colour. */
    public static final List<String> EXTRA_SHAPES = List.of("ring", "arrow");
    public static final List<String> SIZES = List.of("small", "large");
    public static final List<String> POSITIONS = List.of("left", "right", "top", "bottom", "center");
    public static final List<String> BACKGROUNDS = List.of("plain", "striped", "dotted", "checkered");
    private static final int[][] RGB = {
            {220, 30, 30}, {30, 170, 40}, {40, 70, 230}, {235, 220, 40}, {150, 40, 190}, {245, 140, 20},
            {250, 130, 200}, {40, 215, 225}, {125, 75, 30}};
    private static final String[] TEMPLATES = {
            "a %1$s %2$s %3$s.",
            "a photo of a %2$s %3$s.",
            "a %1$s %2$s %3$s on the %4$s.",
            "a %2$s %3$s on a %5$s background.",
            "there is a %1$s %2$s %3$s in the %4$s of the picture.",
            "the %3$s is %2$s.",
            "%2$s %3$s",
            "a %1$s %3$s that is %2$s, %4$s, on a %5$s background.",
    };

    /** One example's attributes and caption. */
    public record Item(int colour, int shape, int size, int position, int background, String caption) {
        public String colourName() {
            return SyntheticDataset.colourName(colour);
        }

        public String shapeName() {
            return SyntheticDataset.shapeName(shape);
        }

        /** The colour-shape class label, e.g. "red circle". */
        public String label() {
            return colourName() + " " + shapeName();
        }
    }

    private final long seed;
    private final int size;
    private final int imageSize;
    private final int[][] pairs; // allowed (colour, shape) pairs of this split

    public SyntheticDataset(long seed, int size, int imageSize, Split split) {
        if (size < 1) {
            throw new InvalidInputException("synthetic data set size must be >= 1, got " + size);
        }
        if (imageSize < 8) {
            throw new InvalidInputException("synthetic image size must be >= 8, got " + imageSize);
        }
        this.seed = seed;
        this.size = size;
        this.imageSize = imageSize;
        List<int[]> allowed = new ArrayList<>();
        for (int c = 0; c < COLOURS.size() + EXTRA_COLOURS.size(); c++) {
            for (int s = 0; s < SHAPES.size() + EXTRA_SHAPES.size(); s++) {
                boolean evaluation = c < COLOURS.size() && s < SHAPES.size();
                boolean heldOut = isHeldOut(c, s);
                boolean wanted = switch (split) {
                    case TRAIN -> !heldOut;
                    case SEEN -> evaluation && !heldOut;
                    case HELD_OUT -> heldOut;
                    case ALL -> evaluation;
                };
                if (wanted) {
                    allowed.add(new int[]{c, s});
                }
            }
        }
        this.pairs = allowed.toArray(int[][]::new);
    }

    /** The name of a colour index: evaluation colours first, then the training-only ones. */
    public static String colourName(int colour) {
        return colour < COLOURS.size() ? COLOURS.get(colour) : EXTRA_COLOURS.get(colour - COLOURS.size());
    }

    /** The name of a shape index: evaluation shapes first, then the training-only ones. */
    public static String shapeName(int shape) {
        return shape < SHAPES.size() ? SHAPES.get(shape) : EXTRA_SHAPES.get(shape - SHAPES.size());
    }

    /** Whether a colour-shape pair is one of the evaluation pairs held out of training (extras never are). */
    public static boolean isHeldOut(int colour, int shape) {
        return colour < COLOURS.size() && shape < SHAPES.size() && Math.floorMod(shape - colour, SHAPES.size()) == 0;
    }

    /** Every colour-shape label, e.g. "red circle", colour-major. */
    public static List<String> allLabels() {
        List<String> out = new ArrayList<>();
        for (String c : COLOURS) {
            for (String s : SHAPES) {
                out.add(c + " " + s);
            }
        }
        return out;
    }

    @Override
    public int size() {
        return size;
    }

    public int imageSize() {
        return imageSize;
    }

    /** The random stream of example i: stream 0 picks the attributes, stream 1 draws the picture. */
    private SplittableRandom rng(int i, int stream) {
        if (i < 0 || i >= size) {
            throw new IndexOutOfBoundsException("synthetic example " + i + " of " + size);
        }
        return new SplittableRandom((seed * 0x9E3779B97F4A7C15L + i) * 2 + stream);
    }

    public Item item(int i) {
        SplittableRandom r = rng(i, 0);
        int[] pair = pairs[r.nextInt(pairs.length)];
        int sz = r.nextInt(SIZES.size());
        int pos = r.nextInt(POSITIONS.size());
        int bg = r.nextInt(BACKGROUNDS.size());
        String template = TEMPLATES[r.nextInt(TEMPLATES.length)];
        String caption = String.format(template, SIZES.get(sz), colourName(pair[0]), shapeName(pair[1]),
                POSITIONS.get(pos), BACKGROUNDS.get(bg));
        return new Item(pair[0], pair[1], sz, pos, bg, caption);
    }

    @Override
    public String caption(int i) {
        return item(i).caption();
    }

    @Override
    public String source(int i) {
        return "synthetic:" + seed + ":" + i;
    }

    @Override
    public BufferedImage image(int i) {
        SplittableRandom r = rng(i, 1);
        Item it = item(i);
        int n = imageSize;
        BufferedImage img = new BufferedImage(n, n, BufferedImage.TYPE_INT_RGB);
        Graphics2D g = img.createGraphics();
        try {
            g.setRenderingHint(RenderingHints.KEY_ANTIALIASING, RenderingHints.VALUE_ANTIALIAS_ON);
            drawBackground(g, it.background(), n, r);
            double extent = n * (it.size() == 0 ? 0.38 : 0.6) * (0.9 + 0.2 * r.nextDouble());
            double[] centre = centre(it.position(), n, extent, r);
            int[] base = RGB[it.colour()];
            Color colour = new Color(jitter(base[0], r), jitter(base[1], r), jitter(base[2], r));
            Shape outline = shape(it.shape(), centre[0], centre[1], extent, r.nextDouble() * 0.3 - 0.15);
            g.setColor(colour);
            g.fill(outline);
            // a dark border in every colour: the shape shows as the same luminance edge whatever its fill
            g.setColor(new Color(25, 25, 25));
            g.setStroke(new BasicStroke(Math.max(1f, n / 32f)));
            g.draw(outline);
        } finally {
            g.dispose();
        }
        return img;
    }

    private static int jitter(int v, SplittableRandom r) {
        return Math.clamp(v + r.nextInt(-18, 19), 0, 255);
    }

    private static double[] centre(int position, int n, double extent, SplittableRandom r) {
        double lo = extent / 2 + 1;
        double hi = n - extent / 2 - 1;
        double mid = n / 2.0;
        double wobble = n * 0.04 * (r.nextDouble() * 2 - 1);
        return switch (position) {
            case 0 -> new double[]{lo + n * 0.02, mid + wobble};
            case 1 -> new double[]{hi - n * 0.02, mid + wobble};
            case 2 -> new double[]{mid + wobble, lo + n * 0.02};
            case 3 -> new double[]{mid + wobble, hi - n * 0.02};
            default -> new double[]{mid + wobble, mid - wobble};
        };
    }

    private static void drawBackground(Graphics2D g, int background, int n, SplittableRandom r) {
        int level = 70 + r.nextInt(110);
        Color base = new Color(level, level, level);
        int alt = level > 125 ? level - 45 : level + 45;
        Color other = new Color(alt, alt, alt);
        g.setColor(base);
        g.fillRect(0, 0, n, n);
        g.setColor(other);
        int period = Math.max(4, n / (6 + r.nextInt(4)));
        switch (background) {
            case 1 -> {
                g.setStroke(new BasicStroke(period / 2f));
                for (int k = -n; k < 2 * n; k += period) {
                    g.drawLine(k, 0, k + n, n);
                }
            }
            case 2 -> {
                double d = period * 0.4;
                for (int y = period / 2; y < n; y += period) {
                    for (int x = period / 2; x < n; x += period) {
                        g.fill(new Ellipse2D.Double(x - d / 2, y - d / 2, d, d));
                    }
                }
            }
            case 3 -> {
                for (int y = 0; y < n; y += period) {
                    for (int x = 0; x < n; x += period) {
                        if (((x + y) / period & 1) == 0) {
                            g.fillRect(x, y, period, period);
                        }
                    }
                }
            }
            default -> {
            }
        }
    }

    private static Shape shape(int kind, double cx, double cy, double extent, double rotation) {
        double h = extent / 2;
        Shape s = switch (kind) {
            case 0 -> new Ellipse2D.Double(cx - h, cy - h, extent, extent);
            case 1 -> new Rectangle2D.Double(cx - h * 0.85, cy - h * 0.85, extent * 0.85, extent * 0.85);
            case 2 -> polygon(cx, cy, h, 3, -Math.PI / 2, 1.0);
            case 3 -> star(cx, cy, h);
            case 4 -> {
                Area a = new Area(new Rectangle2D.Double(cx - h, cy - h * 0.3, extent, h * 0.6));
                a.add(new Area(new Rectangle2D.Double(cx - h * 0.3, cy - h, h * 0.6, extent)));
                yield a;
            }
            case 5 -> polygon(cx, cy, h, 4, -Math.PI / 2, 0.65);
            case 6 -> {
                Area a = new Area(new Ellipse2D.Double(cx - h, cy - h, extent, extent));
                a.subtract(new Area(new Ellipse2D.Double(cx - h * 0.5, cy - h * 0.5, h, h)));
                yield a;
            }
            default -> arrow(cx, cy, h);
        };
        if (kind == 0) {
            return s;
        }
        return java.awt.geom.AffineTransform.getRotateInstance(rotation, cx, cy).createTransformedShape(s);
    }

    private static Shape polygon(double cx, double cy, double radius, int corners, double phase, double xScale) {
        java.awt.geom.Path2D.Double p = new java.awt.geom.Path2D.Double();
        for (int k = 0; k < corners; k++) {
            double a = phase + 2 * Math.PI * k / corners;
            double x = cx + xScale * radius * Math.cos(a);
            double y = cy + radius * Math.sin(a);
            if (k == 0) {
                p.moveTo(x, y);
            } else {
                p.lineTo(x, y);
            }
        }
        p.closePath();
        return p;
    }

    private static Shape arrow(double cx, double cy, double h) {
        double[][] points = {{-1, -0.3}, {0.1, -0.3}, {0.1, -0.75}, {1, 0}, {0.1, 0.75}, {0.1, 0.3}, {-1, 0.3}};
        java.awt.geom.Path2D.Double p = new java.awt.geom.Path2D.Double();
        for (int k = 0; k < points.length; k++) {
            double x = cx + h * points[k][0];
            double y = cy + h * points[k][1];
            if (k == 0) {
                p.moveTo(x, y);
            } else {
                p.lineTo(x, y);
            }
        }
        p.closePath();
        return p;
    }

    private static Shape star(double cx, double cy, double radius) {
        java.awt.geom.Path2D.Double p = new java.awt.geom.Path2D.Double();
        for (int k = 0; k < 10; k++) {
            double a = -Math.PI / 2 + Math.PI * k / 5;
            double rr = (k & 1) == 0 ? radius : radius * 0.45;
            double x = cx + rr * Math.cos(a);
            double y = cy + rr * Math.sin(a);
            if (k == 0) {
                p.moveTo(x, y);
            } else {
                p.lineTo(x, y);
            }
        }
        p.closePath();
        return p;
    }
}
