package org.clipj.image;

import org.clipj.runtime.InvalidInputException;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import javax.imageio.ImageIO;
import java.awt.Transparency;
import java.awt.color.ColorSpace;
import java.awt.image.BufferedImage;
import java.awt.image.ComponentColorModel;
import java.awt.image.DataBuffer;
import java.awt.image.IndexColorModel;
import java.awt.image.WritableRaster;
import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.Base64;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class ImageLoaderTest {

    private static byte[] encode(BufferedImage image, String format) throws IOException {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        assertTrue(ImageIO.write(image, format, out), "no writer for " + format);
        return out.toByteArray();
    }

    private static int rgb(BufferedImage image, int x, int y) {
        assertEquals(BufferedImage.TYPE_INT_RGB, image.getType());
        return image.getRGB(x, y) & 0xFFFFFF;
    }

    @Test
    void goldenImagesDecodeToRgb() {
        Path dir = PreprocessTest.textImageGolden().resolve("images");
        String[] files = {"CLIP.png", "alpha.png", "gray.png", "odd.jpg", "palette.png", "photo.jpg", "tall.png", "tiny.png", "wide.png"};
        int[][] sizes = {{2162, 762}, {240, 240}, {64, 64}, {333, 517}, {120, 90}, {640, 480}, {150, 400}, {20, 30}, {300, 200}};
        for (int i = 0; i < files.length; i++) {
            BufferedImage image = ImageLoader.read(dir.resolve(files[i]));
            assertEquals(BufferedImage.TYPE_INT_RGB, image.getType(), files[i]);
            assertEquals(sizes[i][0], image.getWidth(), files[i]);
            assertEquals(sizes[i][1], image.getHeight(), files[i]);
        }
        assertInstanceOf(IndexColorModel.class, ImageLoader.readOriginal(dir.resolve("palette.png")).getColorModel());
        assertEquals(BufferedImage.TYPE_INT_ARGB, ImageLoader.readOriginal(dir.resolve("alpha.png")).getType());
    }

    @Test
    void grayIsTakenAsStoredWithoutGamma() throws IOException {
        BufferedImage gray = new BufferedImage(2, 1, BufferedImage.TYPE_BYTE_GRAY);
        gray.getRaster().setSample(0, 0, 0, 77);
        gray.getRaster().setSample(1, 0, 0, 200);
        BufferedImage back = ImageLoader.read(encode(gray, "png"), "gray.png");
        assertEquals(0x4D4D4D, rgb(back, 0, 0));
        assertEquals(0xC8C8C8, rgb(back, 1, 0));
    }

    @Test
    void sixteenBitAsPil() throws IOException {
        // 16-bit gray is PIL mode I;16: convert("RGB") clips to 255
        BufferedImage gray16 = new BufferedImage(2, 1, BufferedImage.TYPE_USHORT_GRAY);
        gray16.getRaster().setSample(0, 0, 0, 100);
        gray16.getRaster().setSample(1, 0, 0, 5000);
        BufferedImage back = ImageLoader.read(encode(gray16, "png"), "gray16.png");
        assertEquals(0x646464, rgb(back, 0, 0));
        assertEquals(0xFFFFFF, rgb(back, 1, 0));
        // 16-bit RGB keeps the high byte
        ComponentColorModel cm = new ComponentColorModel(ColorSpace.getInstance(ColorSpace.CS_sRGB), false, false,
                Transparency.OPAQUE, DataBuffer.TYPE_USHORT);
        WritableRaster raster = cm.createCompatibleWritableRaster(1, 1);
        raster.setPixel(0, 0, new int[]{0x12FF, 0xAB00, 0xFFFF});
        BufferedImage rgb16 = new BufferedImage(cm, raster, false, null);
        assertEquals(0x12ABFF, rgb(ImageLoader.read(encode(rgb16, "png"), "rgb16.png"), 0, 0));
    }

    @Test
    void alphaIsDroppedWithoutCompositing() throws IOException {
        BufferedImage rgba = new BufferedImage(2, 1, BufferedImage.TYPE_INT_ARGB);
        rgba.setRGB(0, 0, 0x000A141E);   // fully transparent, color kept
        rgba.setRGB(1, 0, 0x80FF0000);
        byte[] png = encode(rgba, "png");
        BufferedImage back = ImageLoader.read(png, "rgba.png");
        assertEquals(0x0A141E, rgb(back, 0, 0));
        assertEquals(0xFF0000, rgb(back, 1, 0));
        BufferedImage original = ImageLoader.readOriginal(png, "rgba.png");
        assertEquals(0x000A141E, original.getRGB(0, 0));
        assertEquals(0x80FF0000, original.getRGB(1, 0));
    }

    @Test
    void paletteGifAndBmpDecode(@TempDir Path dir) throws IOException {
        // a full 256-entry palette: the JDK's BMP writer mangles short palettes
        byte[] reds = new byte[256];
        byte[] greens = new byte[256];
        byte[] blues = new byte[256];
        reds[1] = (byte) 255;
        reds[2] = 10;
        greens[2] = 20;
        blues[2] = 30;
        IndexColorModel palette = new IndexColorModel(8, 256, reds, greens, blues);
        BufferedImage indexed = new BufferedImage(3, 1, BufferedImage.TYPE_BYTE_INDEXED, palette);
        indexed.getRaster().setPixels(0, 0, 3, 1, new int[]{0, 1, 2});
        for (String format : new String[]{"png", "gif", "bmp"}) {
            Path file = dir.resolve("palette." + format);
            Files.write(file, encode(indexed, format));
            BufferedImage back = ImageLoader.read(file);
            assertEquals(0x000000, rgb(back, 0, 0), format);
            assertEquals(0xFF0000, rgb(back, 1, 0), format);
            assertEquals(0x0A141E, rgb(back, 2, 0), format);
        }
        BufferedImage plain = new BufferedImage(2, 2, BufferedImage.TYPE_INT_RGB);
        plain.setRGB(1, 1, 0x123456);
        assertEquals(0x123456, rgb(ImageLoader.read(new ByteArrayInputStream(encode(plain, "bmp")), "x.bmp"), 1, 1));
    }

    /** CPython's Lib/test/test_email/data/python.webp (PSF licence): 16x16 lossy WebP with an alpha chunk (VP8X + ALPH). */
    private static final String PYTHON_WEBP =
            "UklGRqgBAABXRUJQVlA4WAoAAAAQAAAADwAADwAAQUxQSMMAAAABJ6KokSTleucYX+ffKpmImP90cY3gJjDi4Yt3MsjBEVyD" +
            "KzDosHgVjnhRNcEIDAJPkqBqsFUZHNa2bUYvTsZ2PLbtd/uvKa4hov9J0f2PkPe6REkkGzolkTTzFG0Ox9PlFiD0CxS+kOGD" +
            "txoynjaCfx0pfk52CPuInrOR75lzRugygtv4zEiy90UwfSD9NheMITJWLaXWayO8XeOlWRXVnIGk2W6WdYoYMQ+KqixQNPow" +
            "gt+6a1BSKbUtz+lUFAoBAAAAVlA4IL4AAACQAgCdASoQABAAAwA0JbACdDBPCIUMfAMdCCz96AD+/XSg/QKbH4r3Q3ycN/bS" +
            "DK/T/zVo4u6nvclvG/SqxWOuup+XhN9BojvaW+Tv+MvxvX/hr/o/5Qns9LtmX/+qKdl/yWznhuasl7nkxvSTI4xf3Y85VSB/" +
            "lU/8Ofj/b9JrA+ifvIOYZm2x1RP/dhfmsf5diuSfR7+z+r/+HR3zEo/+XM/B+vkYw73Pzx+ROaAB/ZoBSzEs3rzZe6qsAAAA";

    @Test
    void webpDecodes() {
        byte[] webp = Base64.getDecoder().decode(PYTHON_WEBP);
        BufferedImage original = ImageLoader.readOriginal(webp, "python.webp");
        assertEquals(BufferedImage.TYPE_INT_ARGB, original.getType());
        BufferedImage rgb = ImageLoader.read(webp, "python.webp");
        assertEquals(16, rgb.getWidth());
        assertEquals(16, rgb.getHeight());
        assertEquals(original.getRGB(8, 8) & 0xFFFFFF, rgb(rgb, 8, 8));
        assertEquals(3 * 8 * 8, Preprocess.clip(original, 8).length);
    }

    @Test
    void decompressionBombIsRefusedBeforeDecoding() {
        // PNG signature + IHDR announcing 20000 x 10000 RGB; no pixel data is needed to refuse it
        java.nio.ByteBuffer ihdr = java.nio.ByteBuffer.allocate(17).put("IHDR".getBytes())
                .putInt(20000).putInt(10000).put((byte) 8).put((byte) 2).put((byte) 0).put((byte) 0).put((byte) 0);
        java.util.zip.CRC32 crc = new java.util.zip.CRC32();
        crc.update(ihdr.array());
        java.nio.ByteBuffer png = java.nio.ByteBuffer.allocate(8 + 4 + 17 + 4)
                .put(new byte[]{(byte) 0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n'})
                .putInt(13).put(ihdr.array()).putInt((int) crc.getValue());
        InvalidInputException e = assertThrows(InvalidInputException.class,
                () -> ImageLoader.read(png.array(), "bomb.png"));
        assertTrue(e.getMessage().contains("bomb.png") && e.getMessage().contains("exceeds"), e.getMessage());
    }

    @Test
    void badInputNamesTheFile(@TempDir Path dir) throws IOException {
        Path text = dir.resolve("notes.png");
        Files.writeString(text, "this is not an image");
        InvalidInputException e = assertThrows(InvalidInputException.class, () -> ImageLoader.read(text));
        assertTrue(e.getMessage().contains("notes.png"), e.getMessage());

        Path empty = dir.resolve("empty.jpg");
        Files.write(empty, new byte[0]);
        e = assertThrows(InvalidInputException.class, () -> ImageLoader.read(empty));
        assertTrue(e.getMessage().contains("empty.jpg"), e.getMessage());

        e = assertThrows(InvalidInputException.class, () -> ImageLoader.read(dir.resolve("missing.png")));
        assertTrue(e.getMessage().contains("missing.png"), e.getMessage());

        Path golden = PreprocessTest.textImageGolden().resolve("images");
        for (String name : new String[]{"photo.jpg", "wide.png"}) {
            byte[] full = Files.readAllBytes(golden.resolve(name));
            Path cut = dir.resolve("cut-" + name);
            Files.write(cut, Arrays.copyOf(full, full.length / 2));
            e = assertThrows(InvalidInputException.class, () -> ImageLoader.read(cut), name);
            assertTrue(e.getMessage().contains("cut-" + name), e.getMessage());
        }
    }
}
