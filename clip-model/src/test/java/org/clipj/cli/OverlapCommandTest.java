package org.clipj.cli;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import org.clipj.data.SyntheticDataset;
import org.clipj.eval.TinyModels;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import javax.imageio.IIOImage;
import javax.imageio.ImageIO;
import javax.imageio.ImageWriteParam;
import javax.imageio.ImageWriter;
import javax.imageio.stream.ImageOutputStream;
import java.awt.Graphics2D;
import java.awt.RenderingHints;
import java.awt.image.BufferedImage;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HashSet;
import java.util.Set;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** {@code clip overlap} finds planted near duplicates (resized, re-encoded copies) and nothing else. */
class OverlapCommandTest {
    private static final ObjectMapper JSON = new ObjectMapper();
    private static final int[] PLANTED = {1, 4, 7};

    static String run(Path dir, String... args) throws Exception {
        StringWriter out = new StringWriter();
        StringWriter err = new StringWriter();
        int status = Main.run(new PrintWriter(out), new PrintWriter(err), args);
        assertEquals(0, status, err.toString());
        return out.toString();
    }

    @Test
    void findsPlantedDuplicatesOnly(@TempDir Path dir) throws Exception {
        Path model = TinyModels.write(dir.resolve("model"), 7);
        Path a = dir.resolve("a");
        Path b = dir.resolve("b");
        Files.createDirectories(a);
        Files.createDirectories(b.resolve("sub"));
        SyntheticDataset setA = new SyntheticDataset(21, 10, 96, SyntheticDataset.Split.ALL);
        SyntheticDataset others = new SyntheticDataset(22, 7, 96, SyntheticDataset.Split.ALL);
        for (int i = 0; i < setA.size(); i++) {
            ImageIO.write(setA.image(i), "png", a.resolve("a" + i + ".png").toFile());
        }
        for (int i : PLANTED) {
            writeJpeg(resize(setA.image(i), 72, 72), b.resolve("sub/copy-of-a" + i + ".jpg"), 0.85f);
        }
        for (int i = 0; i < others.size(); i++) {
            ImageIO.write(others.image(i), "png", b.resolve("other" + i + ".png").toFile());
        }
        TinyModels.writeCorrupt(b.resolve("broken.jpg"));
        Path out = dir.resolve("report/overlap.json");
        run(dir, "overlap", "--model", model.toString(), "--a", a.toString(), "--b", b.toString(), "--threshold", "0.999",
                "--device", "cpu", "--batch", "4", "--out", out.toString());
        JsonNode json = JSON.readTree(out.toFile());
        assertEquals(10, json.get("a_images").asInt());
        assertEquals(10, json.get("b_images").asInt());
        assertEquals(1, json.get("skipped").asInt());
        assertPlanted(json);
        Path sheet = Path.of(json.get("contact_sheet").asText());
        assertEquals(dir.resolve("report/overlap.png"), sheet);
        BufferedImage png = ImageIO.read(sheet.toFile());
        assertTrue(png.getHeight() >= 3 * 128, "one row per pair");

        // the same through a CSV for --a, JSON on stdout, no sheet without --report-dir/--out
        StringBuilder tsv = new StringBuilder("filepath\ttitle\n");
        for (int i = 0; i < setA.size(); i++) tsv.append("a/a").append(i).append(".png\tx\n").append("a/a").append(i).append(".png\ty\n");
        Files.writeString(dir.resolve("a.tsv"), tsv.toString());
        JsonNode viaCsv = JSON.readTree(run(dir, "overlap", "--model", model.toString(), "--a", dir.resolve("a.tsv").toString(),
                "--b", b.toString(), "--threshold", "0.999", "--device", "cpu"));
        assertEquals(10, viaCsv.get("a_images").asInt(), "rows with the same image count once");
        assertPlanted(viaCsv);
        assertTrue(viaCsv.get("contact_sheet").isNull());

        StringWriter err = new StringWriter();
        int status = Main.run(new PrintWriter(new StringWriter()), new PrintWriter(err), "overlap", "--model", model.toString(),
                "--a", a.toString(), "--b", b.toString(), "--threshold", "1.5");
        assertEquals(2, status);
        assertTrue(err.toString().contains("--threshold"), err.toString());
    }

    private static void assertPlanted(JsonNode json) {
        Set<String> found = new HashSet<>();
        for (JsonNode p : json.get("pairs")) {
            String a = Path.of(p.get("a").asText()).getFileName().toString();
            String b = Path.of(p.get("b").asText()).getFileName().toString();
            assertEquals("copy-of-" + a.replace(".png", ".jpg"), b, "only planted pairs: " + json.get("pairs"));
            assertTrue(p.get("similarity").asDouble() >= 0.999);
            found.add(a);
        }
        assertEquals(Set.of("a1.png", "a4.png", "a7.png"), found, json.get("pairs").toString());
        assertEquals(3, json.get("count").asInt());
    }

    private static BufferedImage resize(BufferedImage img, int w, int h) {
        BufferedImage out = new BufferedImage(w, h, BufferedImage.TYPE_INT_RGB);
        Graphics2D g = out.createGraphics();
        g.setRenderingHint(RenderingHints.KEY_INTERPOLATION, RenderingHints.VALUE_INTERPOLATION_BILINEAR);
        g.drawImage(img, 0, 0, w, h, null);
        g.dispose();
        return out;
    }

    private static void writeJpeg(BufferedImage img, Path file, float quality) throws Exception {
        ImageWriter writer = ImageIO.getImageWritersByFormatName("jpeg").next();
        ImageWriteParam param = writer.getDefaultWriteParam();
        param.setCompressionMode(ImageWriteParam.MODE_EXPLICIT);
        param.setCompressionQuality(quality);
        try (ImageOutputStream stream = ImageIO.createImageOutputStream(file.toFile())) {
            writer.setOutput(stream);
            writer.write(null, new IIOImage(img, null, null), param);
        } finally {
            writer.dispose();
        }
    }
}
