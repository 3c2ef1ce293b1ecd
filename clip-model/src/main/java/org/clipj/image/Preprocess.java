package org.clipj.image;

import org.clipj.runtime.InvalidInputException;

import java.awt.image.BufferedImage;
import java.awt.image.DataBufferInt;
import java.awt.image.IndexColorModel;
import java.awt.image.SinglePixelPackedSampleModel;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.random.RandomGenerator;

/**
 * CLIP's image preprocessing, as {@code clip._transform(n_px)} computes it on a PIL image:
 * Resize(n_px, BICUBIC) of the shorter side, CenterCrop(n_px), RGB, ToTensor (/255), Normalize.
 *
 * <p>The resize is PIL's ImagingResample: bicubic with a = -0.5, support widened by the downscale
 * factor (antialiasing), a horizontal then a vertical pass, 22-bit fixed-point coefficients and
 * 8-bit rounding after each pass. Only the cropped window is computed. As in PIL, palette images
 * are resized with NEAREST and images with alpha are resized premultiplied (RGBa), so pass an
 * image from {@link ImageLoader#readOriginal} to reproduce CLIP exactly on such files.
 */
public final class Preprocess {
    /** CLIP's normalization, per RGB channel. */
    public static final float[] MEAN = {0.48145466f, 0.4578275f, 0.40821073f};
    public static final float[] STD = {0.26862954f, 0.26130258f, 0.27577711f};
    /** torchvision RandomResizedCrop's default aspect ratio range. */
    private static final double MIN_RATIO = 3.0 / 4.0;
    private static final double MAX_RATIO = 4.0 / 3.0;
    private static final int PRECISION_BITS = 32 - 8 - 2;
    private static final double BICUBIC_SUPPORT = 2.0;
    /** Bit offset of channel c (R, G, B, then alpha) in a packed ARGB int. */
    private static final int[] SHIFT = {16, 8, 0, 24};

    private Preprocess() {
    }

    /** clip._transform(nPx) of an image file, decoded with {@link ImageLoader#readOriginal} so alpha and palette images match PIL. */
    public static float[] clip(Path file, int nPx) {
        return clip(ImageLoader.readOriginal(file), nPx);
    }

    /**
     * (3, nPx, nPx) normalized CHW pixels, as clip._transform(nPx) on the PIL image this one stands for:
     * TYPE_INT_ARGB is resized premultiplied as PIL's RGBA, an indexed image with NEAREST as PIL's P.
     */
    public static float[] clip(BufferedImage image, int nPx) {
        return shortestEdge(image, nPx, nPx, Filter.BICUBIC, false, MEAN, STD);
    }

    /** The resampling filters of PIL that CLIP preprocessing uses (always antialiased, as PIL). */
    public enum Filter {
        /** PIL BICUBIC (a = -0.5, support 2) */
        BICUBIC,
        /** PIL BILINEAR (triangle, support 1) */
        BILINEAR
    }

    /**
     * The shorter side resized to {@code resizeTo} (the longer to int(resizeTo * long / short)), then the
     * central (nPx, nPx) crop at round((size - nPx) / 2) (torchvision; {@code floorCrop}: (size - nPx) // 2,
     * as Hugging Face's image processors), normalized with mean/std: (3, nPx, nPx) CHW.
     */
    public static float[] shortestEdge(BufferedImage image, int resizeTo, int nPx, Filter filter, boolean floorCrop,
                                       float[] mean, float[] std) {
        checkSize(image, nPx);
        if (resizeTo < nPx) {
            throw new InvalidInputException("resize size " + resizeTo + " is smaller than the crop " + nPx);
        }
        int w = image.getWidth();
        int h = image.getHeight();
        // torchvision: the short side becomes resizeTo, the long side int(resizeTo * long / short)
        int outW;
        int outH;
        if (w <= h) {
            outW = resizeTo;
            outH = (int) ((double) resizeTo * h / w);
        } else {
            outH = resizeTo;
            outW = (int) ((double) resizeTo * w / h);
        }
        // torchvision center_crop: int(round((size - n) / 2.0)), Python rounding half to even
        int cropX = floorCrop ? (outW - nPx) / 2 : (int) Math.rint((outW - nPx) / 2.0);
        int cropY = floorCrop ? (outH - nPx) / 2 : (int) Math.rint((outH - nPx) / 2.0);
        int[] rgb = resize(image, 0, 0, w, h, outW, outH, cropX, cropY, nPx, nPx, filter);
        return normalize(rgb, nPx, mean, std);
    }

    /** open_clip's resize_mode 'squash': the whole image resized to (nPx, nPx), aspect not kept. */
    public static float[] squash(BufferedImage image, int nPx, Filter filter, float[] mean, float[] std) {
        checkSize(image, nPx);
        return normalize(resize(image, 0, 0, image.getWidth(), image.getHeight(), nPx, nPx, 0, 0, nPx, nPx, filter),
                nPx, mean, std);
    }

    /**
     * open_clip's resize_mode 'longest': the longer side resized to nPx (timm's ResizeKeepRatio: each side
     * round(side / max ratio), half to even), then padded with black to (nPx, nPx), centred as
     * CenterCropOrPad ((nPx - side) // 2 before).
     */
    public static float[] longestEdge(BufferedImage image, int nPx, Filter filter, float[] mean, float[] std) {
        checkSize(image, nPx);
        int w = image.getWidth();
        int h = image.getHeight();
        double ratio = Math.max((double) h / nPx, (double) w / nPx);
        int outW = Math.max(1, (int) Math.rint(w / ratio));
        int outH = Math.max(1, (int) Math.rint(h / ratio));
        int[] resized = resize(image, 0, 0, w, h, outW, outH, 0, 0, outW, outH, filter);
        int[] rgb = new int[nPx * nPx];                    // black, as fill=0
        int left = (nPx - outW) / 2;
        int top = (nPx - outH) / 2;
        for (int y = 0; y < outH; y++) {
            System.arraycopy(resized, y * outW, rgb, (top + y) * nPx + left, outW);
        }
        return normalize(rgb, nPx, mean, std);
    }

    /**
     * torchvision RandomResizedCrop(nPx, scale=(minScale, maxScale), ratio=(3/4, 4/3), BICUBIC), then
     * RGB, /255 and CLIP's normalization: (3, nPx, nPx) CHW. For training augmentation.
     */
    public static float[] randomResizedCrop(BufferedImage image, int nPx, RandomGenerator rng,
                                            double minScale, double maxScale) {
        checkSize(image, nPx);
        if (!(minScale > 0 && minScale <= maxScale && maxScale <= 1)) {
            throw new InvalidInputException("random resized crop scale range must satisfy 0 < min <= max <= 1, got ("
                    + minScale + ", " + maxScale + ")");
        }
        int width = image.getWidth();
        int height = image.getHeight();
        double area = (double) width * height;
        double logMin = Math.log(MIN_RATIO);
        double logMax = Math.log(MAX_RATIO);
        for (int attempt = 0; attempt < 10; attempt++) {
            double targetArea = area * (minScale + (maxScale - minScale) * rng.nextDouble());
            double aspect = Math.exp(logMin + (logMax - logMin) * rng.nextDouble());
            int w = (int) Math.rint(Math.sqrt(targetArea * aspect));
            int h = (int) Math.rint(Math.sqrt(targetArea / aspect));
            if (w > 0 && w <= width && h > 0 && h <= height) {
                int top = rng.nextInt(height - h + 1);
                int left = rng.nextInt(width - w + 1);
                return normalize(resize(image, left, top, w, h, nPx, nPx, 0, 0, nPx, nPx, Filter.BICUBIC), nPx, MEAN, STD);
            }
        }
        // fallback as torchvision: a central crop clamped to the ratio range
        double inRatio = (double) width / height;
        int w = width;
        int h = height;
        if (inRatio < MIN_RATIO) {
            h = (int) Math.rint(w / MIN_RATIO);
        } else if (inRatio > MAX_RATIO) {
            w = (int) Math.rint(h * MAX_RATIO);
        }
        int top = (height - h) / 2;
        int left = (width - w) / 2;
        return normalize(resize(image, left, top, w, h, nPx, nPx, 0, 0, nPx, nPx, Filter.BICUBIC), nPx, MEAN, STD);
    }

    private static void checkSize(BufferedImage image, int nPx) {
        if (nPx <= 0) {
            throw new InvalidInputException("image resolution must be positive, got " + nPx);
        }
        if (image.getWidth() <= 0 || image.getHeight() <= 0) {
            throw new InvalidInputException("image has no pixels (" + image.getWidth() + "x" + image.getHeight() + ")");
        }
    }

    /** ToTensor then Normalize, in float32 as torchvision: (v / 255 - mean) / std. */
    private static float[] normalize(int[] rgb, int n, float[] means, float[] stds) {
        int plane = n * n;
        float[] out = new float[3 * plane];   // (3, n, n)
        for (int c = 0; c < 3; c++) {
            int shift = SHIFT[c];
            float mean = means[c];
            float std = stds[c];
            int base = c * plane;
            for (int i = 0; i < plane; i++) {
                float v = ((rgb[i] >>> shift) & 0xFF) / 255f;
                out[base + i] = (v - mean) / std;
            }
        }
        return out;
    }

    /**
     * Resizes the window (wx, wy, ww, wh) of the image to (outW, outH) as PIL does and returns the
     * (nw, nh) block at (cropX, cropY) of the result as packed 0xRRGGBB.
     */
    static int[] resize(BufferedImage image, int wx, int wy, int ww, int wh,
                        int outW, int outH, int cropX, int cropY, int nw, int nh, Filter filter) {
        int stride = image.getWidth();
        int[] argb = argb(image);
        if (image.getColorModel() instanceof IndexColorModel) {
            return nearest(argb, stride, wx, wy, ww, wh, outW, outH, cropX, cropY, nw, nh);
        }
        boolean alpha = image.getColorModel().hasAlpha();
        if (alpha) {
            argb = premultiply(argb);
        }
        int channels = alpha ? 4 : 3;
        boolean needHorizontal = outW != ww;
        boolean needVertical = outH != wh;

        Coefficients vertical = needVertical ? Coefficients.of(filter, wh, outH, cropY, nh) : null;
        int rowFirst = needVertical ? vertical.first() : cropY;
        int rowEnd = needVertical ? vertical.end() : cropY + nh;
        int rows = rowEnd - rowFirst;
        int n = nw;

        // horizontal pass over the source rows the vertical pass reads: (rows, nw) packed 8-bit
        int[] temp = new int[rows * n];
        if (needHorizontal) {
            Coefficients horizontal = Coefficients.of(filter, ww, outW, cropX, n);
            int half = 1 << (PRECISION_BITS - 1);
            for (int r = 0; r < rows; r++) {
                int srcRow = (wy + rowFirst + r) * stride + wx;
                for (int x = 0; x < n; x++) {
                    int kOff = x * horizontal.ksize;
                    int src = srcRow + horizontal.min[x];
                    int count = horizontal.count[x];
                    int sr = half;
                    int sg = half;
                    int sb = half;
                    int sa = half;
                    for (int i = 0; i < count; i++) {
                        int p = argb[src + i];
                        int k = horizontal.k[kOff + i];
                        sr += ((p >>> 16) & 0xFF) * k;
                        sg += ((p >>> 8) & 0xFF) * k;
                        sb += (p & 0xFF) * k;
                        sa += (p >>> 24) * k;
                    }
                    int a = alpha ? clip8(sa) : 0;
                    temp[r * n + x] = (a << 24) | (clip8(sr) << 16) | (clip8(sg) << 8) | clip8(sb);
                }
            }
        } else {
            for (int r = 0; r < rows; r++) {
                System.arraycopy(argb, (wy + rowFirst + r) * stride + wx + cropX, temp, r * n, n);
            }
        }
        if (!needVertical) {
            return unpremultiplyToRgb(temp, alpha);
        }
        int[] out = new int[nh * n];
        int[][] acc = new int[channels][n];
        for (int y = 0; y < nh; y++) {
            for (int[] a : acc) {
                Arrays.fill(a, 1 << (PRECISION_BITS - 1));
            }
            int kOff = y * vertical.ksize;
            int min = vertical.min[y] - rowFirst;
            for (int i = 0; i < vertical.count[y]; i++) {
                int k = vertical.k[kOff + i];
                int rowOff = (min + i) * n;
                for (int c = 0; c < channels; c++) {
                    int shift = SHIFT[c];
                    int[] a = acc[c];
                    for (int x = 0; x < n; x++) {
                        a[x] += ((temp[rowOff + x] >>> shift) & 0xFF) * k;
                    }
                }
            }
            for (int x = 0; x < n; x++) {
                int v = 0;
                for (int c = 0; c < channels; c++) {
                    v |= clip8(acc[c][x]) << SHIFT[c];
                }
                out[y * n + x] = v;
            }
        }
        return unpremultiplyToRgb(out, alpha);
    }

    private static int clip8(int sum) {
        if (sum >= (1 << PRECISION_BITS << 8)) {
            return 255;
        }
        if (sum <= 0) {
            return 0;
        }
        return sum >> PRECISION_BITS;
    }

    /** PIL's RGBA -> RGBa: each color times alpha / 255, rounded as MULDIV255. */
    private static int[] premultiply(int[] argb) {
        int[] out = new int[argb.length];
        for (int i = 0; i < argb.length; i++) {
            int p = argb[i];
            int a = p >>> 24;
            out[i] = (a << 24) | (mulDiv255((p >>> 16) & 0xFF, a) << 16) | (mulDiv255((p >>> 8) & 0xFF, a) << 8)
                    | mulDiv255(p & 0xFF, a);
        }
        return out;
    }

    private static int mulDiv255(int v, int a) {
        int t = v * a + 128;
        return ((t >> 8) + t) >> 8;
    }

    /** PIL's RGBa -> RGBA (color * 255 / alpha, truncated; alpha 0 and 255 kept), then alpha dropped. */
    private static int[] unpremultiplyToRgb(int[] pixels, boolean alpha) {
        for (int i = 0; i < pixels.length; i++) {
            int p = pixels[i];
            int a = p >>> 24;
            if (alpha && a != 0 && a != 255) {
                int r = Math.min(255, 255 * ((p >>> 16) & 0xFF) / a);
                int g = Math.min(255, 255 * ((p >>> 8) & 0xFF) / a);
                int b = Math.min(255, 255 * (p & 0xFF) / a);
                pixels[i] = (r << 16) | (g << 8) | b;
            } else {
                pixels[i] = p & 0xFFFFFF;
            }
        }
        return pixels;
    }

    /** PIL's NEAREST resize (ImagingScaleAffine): source = (int) of the accumulated pixel-center position. */
    private static int[] nearest(int[] argb, int stride, int wx, int wy, int ww, int wh,
                                 int outW, int outH, int cropX, int cropY, int nw, int nh) {
        int[] xs = nearestTable(ww, outW, cropX, nw);
        int[] ys = nearestTable(wh, outH, cropY, nh);
        int[] out = new int[nh * nw];
        for (int y = 0; y < nh; y++) {
            int row = (wy + ys[y]) * stride + wx;
            for (int x = 0; x < nw; x++) {
                out[y * nw + x] = argb[row + xs[x]] & 0xFFFFFF;
            }
        }
        return out;
    }

    private static int[] nearestTable(int inSize, int outSize, int first, int n) {
        double step = (double) inSize / outSize;
        double pos = step * 0.5;
        int[] table = new int[n];
        for (int x = 0; x < first + n; x++) {
            if (x >= first) {
                table[x - first] = Math.min(inSize - 1, (int) pos);
            }
            pos += step;
        }
        return table;
    }

    /** Non-premultiplied ARGB, row-major; the backing array itself for a plain TYPE_INT_(A)RGB image. */
    private static int[] argb(BufferedImage image) {
        int w = image.getWidth();
        int h = image.getHeight();
        int type = image.getType();
        if ((type == BufferedImage.TYPE_INT_RGB || type == BufferedImage.TYPE_INT_ARGB)
                && image.getRaster().getDataBuffer() instanceof DataBufferInt buffer
                && image.getSampleModel() instanceof SinglePixelPackedSampleModel sm
                && sm.getScanlineStride() == w && buffer.getSize() == w * h && buffer.getOffset() == 0
                && image.getRaster().getSampleModelTranslateX() == 0 && image.getRaster().getSampleModelTranslateY() == 0) {
            return buffer.getData();
        }
        int[] pixels = new int[w * h];
        ImageLoader.argbPixels(image, pixels);
        return pixels;
    }

    /**
     * PIL's precompute_coeffs for outputs [first, first + n) of a resize from inSize to outSize:
     * per output, the first source index, the tap count and 22-bit fixed-point weights.
     */
    private record Coefficients(int[] min, int[] count, int[] k, int ksize) {
        static Coefficients of(Filter filter, int inSize, int outSize, int first, int n) {
            double scale = (double) inSize / outSize;
            double filterScale = Math.max(scale, 1.0);
            double support = (filter == Filter.BICUBIC ? BICUBIC_SUPPORT : 1.0) * filterScale;
            int ksize = (int) Math.ceil(support) * 2 + 1;
            int[] min = new int[n];
            int[] count = new int[n];
            int[] k = new int[n * ksize];
            double[] w = new double[ksize];
            for (int j = 0; j < n; j++) {
                int xx = first + j;
                double center = (xx + 0.5) * scale;
                double ss = 1.0 / filterScale;
                int xmin = Math.max(0, (int) (center - support + 0.5));
                int xmax = Math.min(inSize, (int) (center + support + 0.5)) - xmin;
                double sum = 0.0;
                for (int x = 0; x < xmax; x++) {
                    double d = (x + xmin - center + 0.5) * ss;
                    w[x] = filter == Filter.BICUBIC ? bicubic(d) : Math.max(0.0, 1.0 - Math.abs(d));
                    sum += w[x];
                }
                for (int x = 0; x < xmax; x++) {
                    double v = sum != 0.0 ? w[x] / sum : w[x];
                    k[j * ksize + x] = v < 0 ? (int) (-0.5 + v * (1 << PRECISION_BITS)) : (int) (0.5 + v * (1 << PRECISION_BITS));
                }
                min[j] = xmin;
                count[j] = xmax;
            }
            return new Coefficients(min, count, k, ksize);
        }

        /** First source index any of the outputs reads. */
        int first() {
            return min[0];
        }

        /** One past the last source index any of the outputs reads. */
        int end() {
            int end = 0;
            for (int j = 0; j < min.length; j++) {
                end = Math.max(end, min[j] + count[j]);
            }
            return end;
        }

        private static double bicubic(double x) {
            double a = -0.5;
            if (x < 0.0) {
                x = -x;
            }
            if (x < 1.0) {
                return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
            }
            if (x < 2.0) {
                return (((x - 5) * x + 8) * x - 4) * a;
            }
            return 0.0;
        }
    }
}
