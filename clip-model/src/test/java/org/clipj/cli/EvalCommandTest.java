package org.clipj.cli;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import org.clipj.data.SyntheticDataset;
import org.clipj.eval.TinyModels;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import javax.imageio.ImageIO;
import java.awt.image.BufferedImage;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** End-to-end runs of {@code clip eval ...} with an untrained small model on generated data. */
class EvalCommandTest {
    private static final ObjectMapper JSON = new ObjectMapper();

    @TempDir
    static Path shared;
    static Path model;

    record Result(int status, String out, String err) {
    }

    static Result run(String... args) {
        StringWriter out = new StringWriter();
        StringWriter err = new StringWriter();
        int status = Main.run(new PrintWriter(out), new PrintWriter(err), args);
        return new Result(status, out.toString(), err.toString());
    }

    @BeforeAll
    static void model() {
        model = TinyModels.write(shared, 7);
    }

    @Test
    void zeroShotOnSyntheticHeldOutSet(@TempDir Path dir) throws Exception {
        Path data = dir.resolve("held-out");
        Map<String, Integer> perClass = TinyModels.writeImageFolder(data, 11, 30, 48, SyntheticDataset.Split.HELD_OUT);
        TinyModels.writeCorrupt(data.resolve(perClass.keySet().iterator().next()).resolve("broken.png"));
        Path reports = dir.resolve("reports");
        Result r = run("eval", "zero-shot", "--model", model.toString(), "--data", data.toString(), "--device", "cpu",
                "--batch", "8", "--report-dir", reports.toString());
        assertEquals(0, r.status(), r.err());
        JsonNode json = JSON.readTree(r.out());
        assertEquals("zero-shot", json.get("task").asText());
        int classes = perClass.size();
        assertEquals(classes, json.get("classes").size());
        assertEquals(perClass.keySet().iterator().next().replace('_', ' '), json.get("classes").get(0).asText());
        assertTrue(json.get("templates").size() > 5, "built-in ensemble by default");
        assertEquals(30, json.get("images").asInt());
        assertEquals(1, json.get("skipped").asInt());
        assertTrue(json.get("skipped_files").get(0).asText().contains("broken.png"));
        // accuracies agree with the confusion matrix
        JsonNode confusion = json.get("confusion");
        assertEquals(classes, confusion.size());
        int total = 0;
        int diagonal = 0;
        for (int t = 0; t < classes; t++) {
            int row = 0;
            for (int p = 0; p < classes; p++) row += confusion.get(t).get(p).asInt();
            JsonNode pc = json.get("per_class").get(t);
            assertEquals(perClass.get(json.get("classes").get(t).asText().replace(' ', '_')), row);
            assertEquals(row, pc.get("count").asInt());
            assertEquals((double) confusion.get(t).get(t).asInt() / row, pc.get("accuracy").asDouble(), 1e-12);
            total += row;
            diagonal += confusion.get(t).get(t).asInt();
        }
        assertEquals(30, total);
        assertEquals((double) diagonal / total, json.get("top1").asDouble(), 1e-12);
        assertTrue(json.get("top5").asDouble() >= json.get("top1").asDouble());
        assertTrue(json.get("images_per_second").asDouble() > 0);
        Path png = Path.of(json.get("confusion_png").asText());
        assertEquals(reports.resolve("confusion.png"), png);
        BufferedImage chart = ImageIO.read(png.toFile());
        assertNotNull(chart);
        assertTrue(r.err().contains("top-1") && r.err().contains("skipped 1"), r.err());
    }

    @Test
    void zeroShotWithOwnTemplatesAndClassNames(@TempDir Path dir) throws Exception {
        Path data = dir.resolve("d");
        Map<String, Integer> perClass = TinyModels.writeImageFolder(data, 3, 12, 32, SyntheticDataset.Split.HELD_OUT);
        List<String> names = new ArrayList<>();
        for (String c : perClass.keySet()) names.add("shape " + c.replace('_', ' '));
        Path classnames = dir.resolve("names.txt");
        Files.write(classnames, names);
        Path out = dir.resolve("res/zs.json");
        Result r = run("eval", "zero-shot", "--model", model.toString(), "--data", data.toString(), "--device", "cpu",
                "--classnames", classnames.toString(), "--template", "a {}.", "--template", "the {}!", "--out", out.toString());
        assertEquals(0, r.status(), r.err());
        JsonNode json = JSON.readTree(out.toFile());
        assertEquals(2, json.get("templates").size());
        assertEquals(names.getFirst(), json.get("classes").get(0).asText());
        assertTrue(Files.isRegularFile(dir.resolve("res/confusion.png")), "PNG next to --out");

        Files.write(classnames, names.subList(0, names.size() - 1));
        Result bad = run("eval", "zero-shot", "--model", model.toString(), "--data", data.toString(), "--device", "cpu",
                "--classnames", classnames.toString());
        assertEquals(2, bad.status(), bad.err());
        assertTrue(bad.err().contains("names.txt"), bad.err());
        Result noData = run("eval", "zero-shot", "--model", model.toString(), "--data", dir.resolve("none").toString());
        assertEquals(2, noData.status());
        assertTrue(noData.err().contains("none"), noData.err());
        Result noSubcommand = run("eval");
        assertEquals(2, noSubcommand.status());
        assertTrue(noSubcommand.err().contains("zero-shot, linear-probe or retrieval"), noSubcommand.err());
    }

    @Test
    void linearProbeCachesFeatures(@TempDir Path dir) throws Exception {
        Path train = dir.resolve("train");
        Path test = dir.resolve("test");
        TinyModels.writeImageFolder(train, 5, 36, 32, SyntheticDataset.Split.HELD_OUT);
        TinyModels.writeImageFolder(test, 6, 60, 32, SyntheticDataset.Split.HELD_OUT);
        pruneToClassesOf(train, test);
        Path cache = dir.resolve("cache");
        String[] args = {"eval", "linear-probe", "--model", model.toString(), "--train", train.toString(), "--test",
                test.toString(), "--device", "cpu", "--cache-dir", cache.toString()};
        Result first = run(args);
        assertEquals(0, first.status(), first.err());
        JsonNode a = JSON.readTree(first.out());
        int trainImages = a.get("train_images").asInt();
        int testImages = a.get("test_images").asInt();
        assertEquals(36, trainImages);
        assertEquals(0, a.get("cache_hits").asInt());
        double lambda = a.get("lambda").asDouble();
        boolean inSweep = false;
        for (JsonNode p : a.get("sweep")) inSweep |= Math.abs(p.get("lambda").asDouble() - lambda) <= 1e-12 * lambda;
        assertTrue(inSweep, "the chosen strength is one of the sweep's");
        double acc = a.get("accuracy").asDouble();
        assertTrue(acc >= 0 && acc <= 1);
        assertTrue(a.get("gradient_norm").asDouble() < 1e-4, a.toString());
        try (var files = Files.walk(cache)) {
            assertEquals(2, files.filter(f -> f.toString().endsWith(".safetensors")).count(), "one cache file per split");
        }

        Result second = run(args);
        assertEquals(0, second.status(), second.err());
        JsonNode b = JSON.readTree(second.out());
        assertEquals(trainImages + testImages, b.get("cache_hits").asInt());
        assertEquals(acc, b.get("accuracy").asDouble(), 0.0, "cached features are the same features");
        assertEquals(lambda, b.get("lambda").asDouble(), 0.0);

        Files.createDirectories(test.resolve("zz_extra_class"));
        ImageIO.write(new BufferedImage(8, 8, BufferedImage.TYPE_INT_RGB), "png", test.resolve("zz_extra_class/x.png").toFile());
        Result mismatch = run(args);
        assertEquals(2, mismatch.status());
        assertTrue(mismatch.err().contains("zz_extra_class"), mismatch.err());
    }

    /** Keeps in test only the class folders that train has (small sets may miss a class). */
    private static void pruneToClassesOf(Path train, Path test) throws Exception {
        try (var dirs = Files.list(test)) {
            for (Path d : dirs.toList()) {
                if (!Files.isDirectory(train.resolve(d.getFileName()))) {
                    try (var files = Files.walk(d)) {
                        for (Path f : files.sorted(java.util.Comparator.reverseOrder()).toList()) Files.delete(f);
                    }
                }
            }
        }
        try (var dirs = Files.list(train)) {
            for (Path d : dirs.toList()) {
                assertTrue(Files.isDirectory(test.resolve(d.getFileName())), "test set lacks class " + d.getFileName());
            }
        }
    }

    @Test
    void retrievalGroupsCaptionsByImage(@TempDir Path dir) throws Exception {
        SyntheticDataset data = new SyntheticDataset(9, 6, 40, SyntheticDataset.Split.ALL);
        StringBuilder tsv = new StringBuilder("filepath\ttitle\n");
        for (int i = 0; i < 6; i++) {
            ImageIO.write(data.image(i), "png", dir.resolve("i" + i + ".png").toFile());
            tsv.append("i").append(i).append(".png\t").append(data.caption(i)).append('\n');
        }
        for (int i = 0; i < 6; i++) {
            tsv.append("i").append(i).append(".png\ta ").append(data.item(i).label()).append('\n');
        }
        tsv.append("missing.png\ta lost picture\n");
        Path csv = dir.resolve("captions.tsv");
        Files.writeString(csv, tsv.toString());
        Result r = run("eval", "retrieval", "--model", model.toString(), "--data", csv.toString(), "--device", "cpu",
                "--batch", "4");
        assertEquals(0, r.status(), r.err());
        JsonNode json = JSON.readTree(r.out());
        assertEquals(6, json.get("images").asInt());
        assertEquals(12, json.get("captions").asInt());
        assertEquals(1, json.get("skipped").asInt());
        for (String direction : new String[]{"image_to_text", "text_to_image"}) {
            JsonNode m = json.get(direction);
            assertTrue(m.get("r1").asDouble() <= m.get("r5").asDouble());
            assertTrue(m.get("r5").asDouble() <= m.get("r10").asDouble());
            assertTrue(m.get("mean_rank").asDouble() >= 1);
        }
        // 6 candidate images: every caption's image is within the top 10
        assertEquals(1.0, json.get("text_to_image").get("r10").asDouble(), 0.0);
        assertTrue(json.get("text_to_image").get("mean_rank").asDouble() <= 6);
        assertTrue(r.err().contains("image->text"), r.err());
    }
}
