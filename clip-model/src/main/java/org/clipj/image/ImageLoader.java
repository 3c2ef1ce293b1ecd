package org.clipj.image;

import org.clipj.runtime.InvalidInputException;
import org.w3c.dom.Node;

import javax.imageio.ImageIO;
import javax.imageio.ImageReader;
import javax.imageio.event.IIOReadWarningListener;
import javax.imageio.metadata.IIOMetadata;
import javax.imageio.stream.ImageInputStream;
import java.awt.color.ColorSpace;
import java.awt.image.BufferedImage;
import java.awt.image.ColorModel;
import java.awt.image.ComponentColorModel;
import java.awt.image.DataBuffer;
import java.awt.image.DataBufferInt;
import java.awt.image.IndexColorModel;
import java.awt.image.Raster;
import java.io.ByteArrayInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.List;
import java.util.Locale;

/**
 * Decodes PNG, JPEG (CMYK/YCCK and progressive through TwelveMonkeys), GIF, BMP and WebP into
 * 8-bit RGB as PIL's {@code Image.open(f).convert("RGB")} does: stored samples are taken as they
 * are (no ICC or gamma conversion), alpha is discarded without compositing, 16-bit RGB keeps the
 * high byte, 16-bit grayscale is clipped to 255 (PIL's I;16 -> RGB), palettes are looked up.
 *
 * <p>{@link #readOriginal} keeps what CLIP's preprocessing needs to know about the PIL mode: palette
 * images stay indexed (PIL resizes them with NEAREST) and images with alpha come back as
 * TYPE_INT_ARGB (PIL resizes them premultiplied); see {@link Preprocess#clip}.
 *
 * <p>Like PIL (and CLIP), EXIF orientation is not applied. Images over PIL's decompression-bomb
 * limit (178,956,970 pixels) are refused. CMYK/YCCK JPEGs are converted to RGB by TwelveMonkeys
 * (ICC-based), where PIL would resize in CMYK and convert naively: close, not identical.
 */
public final class ImageLoader {
    /** PIL's DecompressionBombError threshold: twice Image.MAX_IMAGE_PIXELS. */
    public static final long MAX_PIXELS = 2L * 89_478_485L;
    static {
        ImageIO.setUseCache(false);
        ImageIO.scanForPlugins();
    }

    private ImageLoader() {
    }

    /** The image as TYPE_INT_RGB, alpha dropped. */
    public static BufferedImage read(Path file) {
        return toRgb(readOriginal(file));
    }

    /** {@link #read(Path)} from encoded bytes; {@code name} names the image in errors. */
    public static BufferedImage read(byte[] encoded, String name) {
        return toRgb(readOriginal(encoded, name));
    }

    /** {@link #read(Path)} from a stream (read to its end, not closed). */
    public static BufferedImage read(InputStream in, String name) {
        try {
            return read(in.readAllBytes(), name);
        } catch (IOException e) {
            throw new InvalidInputException(name + ": cannot read image bytes: " + e.getMessage(), e);
        }
    }

    /**
     * The image in the form PIL would hold it after {@code Image.open}: indexed (palette), TYPE_INT_ARGB
     * (with alpha, not premultiplied) or TYPE_INT_RGB (RGB, grayscale, CMYK converted).
     */
    public static BufferedImage readOriginal(Path file) {
        if (!Files.isRegularFile(file)) {
            throw new InvalidInputException(file + ": no such image file");
        }
        try {
            return readOriginal(Files.readAllBytes(file), file.toString());
        } catch (IOException e) {
            throw new InvalidInputException(file + ": cannot read image file: " + e.getMessage(), e);
        }
    }

    /** {@link #readOriginal(Path)} from a stream (read to its end, not closed); {@code name} names the image in errors. */
    public static BufferedImage readOriginal(InputStream in, String name) {
        try {
            return readOriginal(in.readAllBytes(), name);
        } catch (IOException e) {
            throw new InvalidInputException(name + ": cannot read image bytes: " + e.getMessage(), e);
        }
    }

    /** {@link #readOriginal(Path)} from encoded bytes; {@code name} names the image in errors. */
    public static BufferedImage readOriginal(byte[] encoded, String name) {
        if (encoded.length == 0) {
            throw new InvalidInputException(name + ": empty file, not an image");
        }
        try (ImageInputStream in = ImageIO.createImageInputStream(new ByteArrayInputStream(encoded))) {
            Iterator<ImageReader> readers = ImageIO.getImageReaders(in);
            if (!readers.hasNext()) {
                throw new InvalidInputException(name + ": not an image in a supported format (PNG, JPEG, GIF, BMP, WebP)");
            }
            ImageReader reader = readers.next();
            List<String> warnings = new ArrayList<>();
            IIOReadWarningListener listener = (source, warning) -> warnings.add(warning);
            try {
                reader.setInput(in, true, false);
                reader.addIIOReadWarningListener(listener);
                long pixels = (long) reader.getWidth(0) * reader.getHeight(0);
                if (pixels > MAX_PIXELS) {
                    throw new InvalidInputException(name + ": image of " + reader.getWidth(0) + "x" + reader.getHeight(0)
                            + " pixels exceeds the limit of " + MAX_PIXELS + " pixels");
                }
                BufferedImage decoded = reader.read(0);
                for (String w : warnings) {
                    String lower = w.toLowerCase(Locale.ROOT);
                    if (lower.contains("premature end") || lower.contains("truncated")) {
                        throw new InvalidInputException(name + ": truncated image (" + w + ")");
                    }
                }
                boolean pngGray = isPngGrayscale(reader);
                return normalize(decoded, pngGray);
            } finally {
                reader.dispose();
            }
        } catch (InvalidInputException e) {
            throw e;
        } catch (IOException | RuntimeException e) {
            throw new InvalidInputException(name + ": cannot decode image (corrupt or truncated): " + e.getMessage(), e);
        }
    }

    /** PNG grayscale below 8 bits decodes as indexed in Java but is mode L (not P) in PIL. */
    private static boolean isPngGrayscale(ImageReader reader) throws IOException {
        if (!"png".equalsIgnoreCase(reader.getFormatName())) {
            return false;
        }
        IIOMetadata metadata = reader.getImageMetadata(0);
        Node root = metadata.getAsTree("javax_imageio_png_1.0");
        for (Node n = root.getFirstChild(); n != null; n = n.getNextSibling()) {
            if ("IHDR".equals(n.getNodeName())) {
                Node colorType = n.getAttributes().getNamedItem("colorType");
                Node bitDepth = n.getAttributes().getNamedItem("bitDepth");
                // PIL reads 1-bit grayscale as mode "1", which it resizes like a palette image
                return colorType != null && colorType.getNodeValue().startsWith("Gray")
                        && !(bitDepth != null && "1".equals(bitDepth.getNodeValue()));
            }
        }
        return false;
    }

    private static BufferedImage normalize(BufferedImage decoded, boolean pngGray) {
        if (decoded.getColorModel() instanceof IndexColorModel && !pngGray) {
            return decoded;
        }
        boolean alpha = decoded.getColorModel().hasAlpha();
        int w = decoded.getWidth();
        int h = decoded.getHeight();
        BufferedImage out = new BufferedImage(w, h, alpha ? BufferedImage.TYPE_INT_ARGB : BufferedImage.TYPE_INT_RGB);
        int[] dst = ((DataBufferInt) out.getRaster().getDataBuffer()).getData();
        argbPixels(decoded, dst);
        if (!alpha) {
            for (int i = 0; i < dst.length; i++) {
                dst[i] &= 0xFFFFFF;
            }
        }
        return out;
    }

    /** The image as TYPE_INT_RGB with alpha dropped (PIL convert("RGB")); a TYPE_INT_RGB input is returned as is. */
    public static BufferedImage toRgb(BufferedImage image) {
        if (image.getType() == BufferedImage.TYPE_INT_RGB) {
            return image;
        }
        BufferedImage out = new BufferedImage(image.getWidth(), image.getHeight(), BufferedImage.TYPE_INT_RGB);
        int[] dst = ((DataBufferInt) out.getRaster().getDataBuffer()).getData();
        argbPixels(image, dst);
        for (int i = 0; i < dst.length; i++) {
            dst[i] &= 0xFFFFFF;
        }
        return out;
    }

    /**
     * Non-premultiplied ARGB of every pixel, row-major, into {@code dst}. Gray and RGB component images
     * are read from the raster (Java's getRGB would apply a gamma curve to linear gray and ICC
     * conversions PIL does not); everything else goes through the color model.
     */
    static void argbPixels(BufferedImage image, int[] dst) {
        int w = image.getWidth();
        int h = image.getHeight();
        ColorModel cm = image.getColorModel();
        int csType = cm.getColorSpace().getType();
        Raster raster = image.getRaster();
        int transfer = raster.getTransferType();
        boolean raw = cm instanceof ComponentColorModel
                && (csType == ColorSpace.TYPE_GRAY || csType == ColorSpace.TYPE_RGB)
                && (transfer == DataBuffer.TYPE_BYTE || transfer == DataBuffer.TYPE_USHORT)
                && !cm.isAlphaPremultiplied();
        if (!raw) {
            for (int y = 0; y < h; y++) {
                image.getRGB(0, y, w, 1, dst, y * w, w);
            }
            return;
        }
        boolean gray = csType == ColorSpace.TYPE_GRAY;
        boolean alpha = cm.hasAlpha();
        int bands = raster.getNumBands();
        int bits = cm.getComponentSize(0);
        int alphaBits = alpha ? cm.getComponentSize(bands - 1) : 8;
        // PIL: 16-bit gray without alpha is mode I;16, clipped to 255 by convert("RGB"); other 16-bit keep the high byte
        boolean clipGray = gray && !alpha && bits == 16;
        int[] row = new int[w * bands];
        for (int y = 0; y < h; y++) {
            raster.getPixels(0, y, w, 1, row);
            int o = y * w;
            for (int x = 0, s = 0; x < w; x++, s += bands) {
                int r;
                int g;
                int b;
                if (gray) {
                    r = g = b = clipGray ? Math.min(row[s], 255) : to8(row[s], bits);
                } else {
                    r = to8(row[s], bits);
                    g = to8(row[s + 1], bits);
                    b = to8(row[s + 2], bits);
                }
                int a = alpha ? to8(row[s + bands - 1], alphaBits) : 255;
                dst[o + x] = (a << 24) | (r << 16) | (g << 8) | b;
            }
        }
    }

    private static int to8(int v, int bits) {
        if (bits == 8) {
            return v;
        }
        if (bits == 16) {
            return v >>> 8;
        }
        return (int) Math.round(v * 255.0 / ((1 << bits) - 1));
    }
}
