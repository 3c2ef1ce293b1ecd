package org.clipj.data;

import org.clipj.runtime.InvalidInputException;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import javax.imageio.ImageIO;
import java.awt.image.BufferedImage;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class CsvDatasetTest {

    private static void png(Path file, int rgb) throws Exception {
        Files.createDirectories(file.getParent());
        BufferedImage img = new BufferedImage(4, 4, BufferedImage.TYPE_INT_RGB);
        for (int y = 0; y < 4; y++) {
            for (int x = 0; x < 4; x++) {
                img.setRGB(x, y, rgb);
            }
        }
        ImageIO.write(img, "png", file.toFile());
    }

    @Test
    void tsvWithRelativePathsAndSkippedBadImages(@TempDir Path dir) throws Exception {
        png(dir.resolve("img/a.png"), 0x102030);
        png(dir.resolve("img/b.png"), 0x405060);
        Files.writeString(dir.resolve("img/broken.png"), "not a png");
        Files.writeString(dir.resolve("train.tsv"), "title\tfilepath\n"
                + "a dark picture\timg/a.png\n"
                + "missing\timg/none.png\n"
                + "\"quoted\ttab, \"\"x\"\"\"\timg/b.png\n"
                + "broken\timg/broken.png\n");
        CsvDataset d = new CsvDataset(dir.resolve("train.tsv"), "filepath", "title", '\t');
        assertEquals(4, d.size());
        assertEquals("quoted\ttab, \"x\"", d.caption(2));
        assertEquals(dir.toAbsolutePath().resolve("img/b.png"), d.path(2));
        assertEquals(0x405060, d.image(2).getRGB(1, 1) & 0xFFFFFF);
        BatchLoader.ImageTransform first = (img, rng) -> new float[]{img.getRGB(0, 0) & 0xFFFFFF};
        try (BatchLoader loader = new BatchLoader(d, 2, 1, first, false, 0, 0, 2, 1)) {
            BatchLoader.Batch b = loader.next();
            assertArrayEquals(new int[]{0, 2}, b.indices());
            assertEquals(List.of("a dark picture", "quoted\ttab, \"x\""), b.captions());
            BatchLoader.Batch again = loader.next();
            assertArrayEquals(new int[]{0, 2}, again.indices(), "the second epoch starts over in file order");
            assertEquals(3, loader.skipped(), "missing, broken, missing again");
            assertTrue(loader.skippedReports().getFirst().contains("none.png"), loader.skippedReports().toString());
        }
    }

    @Test
    void commaSeparatedWithOtherKeys(@TempDir Path dir) throws Exception {
        png(dir.resolve("x.png"), 0xFFFFFF);
        Files.writeString(dir.resolve("d.csv"), "image,text\r\nx.png,\"a, b\"\r\n");
        CsvDataset d = new CsvDataset(dir.resolve("d.csv"), "image", "text", ',');
        assertEquals(1, d.size());
        assertEquals("a, b", d.caption(0));
    }

    @Test
    void missingColumnOrFileIsNamed(@TempDir Path dir) throws Exception {
        Files.writeString(dir.resolve("d.tsv"), "path\ttitle\nx.png\thello\n");
        InvalidInputException e = assertThrows(InvalidInputException.class,
                () -> new CsvDataset(dir.resolve("d.tsv"), "filepath", "title", '\t'));
        assertTrue(e.getMessage().contains("filepath") && e.getMessage().contains("d.tsv"), e.getMessage());
        assertThrows(InvalidInputException.class, () -> new CsvDataset(dir.resolve("nope.tsv"), "filepath", "title", '\t'));
    }

    @Test
    void imageFolderSortsClassesAndFiles(@TempDir Path dir) throws Exception {
        png(dir.resolve("dog/2.png"), 1);
        png(dir.resolve("dog/1.png"), 2);
        png(dir.resolve("cat/z.png"), 3);
        Files.writeString(dir.resolve("cat/notes.txt"), "ignored");
        ImageFolder f = new ImageFolder(dir);
        assertEquals(List.of("cat", "dog"), f.classes());
        assertEquals(3, f.size());
        assertEquals(0, f.label(0));
        assertEquals("1.png", f.path(1).getFileName().toString());
        assertEquals(1, f.label(2));
        assertThrows(InvalidInputException.class, () -> new ImageFolder(dir.resolve("cat/z.png")));
    }
}
