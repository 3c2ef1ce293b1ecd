package org.clipj.spark;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import org.apache.hadoop.conf.Configuration;
import org.apache.parquet.hadoop.ParquetFileReader;
import org.apache.parquet.hadoop.util.HadoopInputFile;
import org.apache.spark.sql.Dataset;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.RowFactory;
import org.apache.spark.sql.SparkSession;
import org.apache.spark.sql.types.DataTypes;
import org.apache.spark.sql.types.StructType;
import org.clipj.Clip;
import org.clipj.TestAssets;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import javax.imageio.ImageIO;
import java.awt.image.BufferedImage;
import java.io.IOException;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.FileTime;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Spark in local[2] on made-up images (one corrupt, one missing) and captions, with the golden tiny ViT:
 * every embedding of the job, the Dataset API and the SQL UDF against {@link Clip} called directly, the
 * error rows, the output metadata, and a rerun that redoes only the shard whose part file is gone.
 */
class ClipSparkTest {
    private static final int IMAGES = 30;
    private static final double MIN_COSINE = 0.99999;

    @TempDir
    static Path dir;
    static SparkSession spark;
    static Path model;
    static Path vocab;
    static Path csv;
    static Path corrupt;
    static Path missing;
    static final List<Path> goodImages = new ArrayList<>();
    static final Map<String, float[]> imageReference = new HashMap<>();
    static final Map<String, float[]> textReference = new HashMap<>();
    static final Map<String, String> captionOf = new HashMap<>();

    @BeforeAll
    static void setUp() throws IOException {
        model = TestAssets.golden("tiny-vit", "model.safetensors").toAbsolutePath();
        vocab = TestAssets.vocab().toAbsolutePath();
        Path images = Files.createDirectories(dir.resolve("images"));
        Random random = new Random(16);
        StringBuilder table = new StringBuilder("filepath\ttitle\n");
        List<String> captions = new ArrayList<>();
        for (int i = 0; i < IMAGES; i++) {
            BufferedImage img = new BufferedImage(20 + random.nextInt(40), 20 + random.nextInt(40), BufferedImage.TYPE_INT_RGB);
            for (int y = 0; y < img.getHeight(); y++) {
                for (int x = 0; x < img.getWidth(); x++) img.setRGB(x, y, random.nextInt(1 << 24));
            }
            Path file = images.resolve("img" + i + ".png");
            ImageIO.write(img, "png", file.toFile());
            goodImages.add(file);
            String caption = "a photo of thing number " + i;
            captions.add(caption);
            captionOf.put(file.toString(), caption);
            table.append(i % 2 == 0 ? file.getFileName() : file).append('\t').append(caption).append('\n');
        }
        corrupt = images.resolve("corrupt.png");
        Files.write(corrupt, new byte[]{(byte) 0x89, 'P', 'N', 'G', 1, 2, 3, 4, 5});
        missing = images.resolve("missing.png");
        table.append("corrupt.png\ta corrupt picture\n").append(missing).append("\ta picture that is not there\n");
        captionOf.put(corrupt.toString(), "a corrupt picture");
        captionOf.put(missing.toString(), "a picture that is not there");
        csv = Files.writeString(images.resolve("pairs.tsv"), table.toString());

        try (Clip clip = Clip.load(model, new Clip.Options(vocab, "cpu", 8))) {
            float[][] img = clip.encodeImages(goodImages);
            for (int i = 0; i < IMAGES; i++) imageReference.put(goodImages.get(i).toString(), img[i]);
            captions.add("a corrupt picture");
            captions.add("a picture that is not there");
            float[][] txt = clip.encodeTexts(captions);
            for (int i = 0; i < captions.size(); i++) textReference.put(captions.get(i), txt[i]);
        }
        spark = SparkSession.builder().master("local[2]").appName("ClipSparkTest")
                .config("spark.ui.enabled", "false").config("spark.driver.host", "127.0.0.1")
                .config("spark.driver.bindAddress", "127.0.0.1").config("spark.sql.shuffle.partitions", "2")
                .getOrCreate();
    }

    @AfterAll
    static void tearDown() {
        if (spark != null) {
            spark.stop();
        }
        ExecutorClip.closeAll();
    }

    @Test
    void jobEmbedsTsvWithErrorRowsAndRerunRedoesOnlyMissingShards() throws Exception {
        Path out = dir.resolve("out-tsv");
        JsonNode first = job("--input", csv.toString(), "--output", out.toString(), "--shards", "4", "--batch", "8");
        assertEquals(IMAGES + 2, first.get("rows").asLong());
        assertEquals(2, first.get("errors").asLong());
        assertEquals(IMAGES, first.get("images").asLong());
        assertEquals(IMAGES + 2, first.get("texts").asLong());
        assertEquals(4, first.get("shards_written").asInt());
        checkPairs(spark.read().parquet(out.toString()));

        // footers and _clipj.json carry the model, its config and the precision
        Path part = out.resolve(ShardWriter.partName(0, ShardWriter.Format.PARQUET));
        try (ParquetFileReader reader = ParquetFileReader.open(HadoopInputFile.fromPath(
                new org.apache.hadoop.fs.Path(part.toUri()), new Configuration()))) {
            Map<String, String> kv = reader.getFooter().getFileMetaData().getKeyValueMetaData();
            assertEquals(model.toString(), kv.get("clipj.model"));
            assertEquals("f32", kv.get("clipj.precision"));
            assertEquals(64, new ObjectMapper().readTree(kv.get("clipj.config")).get("embedDim").asInt(), kv.toString());
        }
        JsonNode meta = new ObjectMapper().readTree(out.resolve(EmbedJob.METADATA).toFile());
        assertEquals(4, meta.get("shards").asInt());
        assertEquals("f32", meta.get("loaded").get("clipj.precision").asText());

        // a run that died after three shards: the fourth part file is gone, a temporary file was left behind
        Path lost = out.resolve(ShardWriter.partName(2, ShardWriter.Format.PARQUET));
        long lostRows = spark.read().parquet(lost.toString()).count();
        Files.delete(lost);
        Files.deleteIfExists(out.resolve("." + lost.getFileName() + ".crc"));
        Files.writeString(out.resolve("." + lost.getFileName() + ".77.tmp"), "half a file");
        Map<Path, FileTime> kept = new HashMap<>();
        try (Stream<Path> files = Files.list(out)) {
            for (Path f : files.filter(f -> f.getFileName().toString().startsWith("part-")).toList()) {
                kept.put(f, Files.getLastModifiedTime(f));
            }
        }
        JsonNode rerun = job("--input", csv.toString(), "--output", out.toString(), "--batch", "8");
        assertEquals(3, rerun.get("shards_skipped").asInt());
        assertEquals(1, rerun.get("shards_written").asInt());
        assertEquals(lostRows, rerun.get("rows").asLong());
        for (Map.Entry<Path, FileTime> e : kept.entrySet()) {
            assertEquals(e.getValue(), Files.getLastModifiedTime(e.getKey()), "rewrote " + e.getKey());
        }
        checkPairs(spark.read().parquet(out.toString()));

        JsonNode nothingLeft = job("--input", csv.toString(), "--output", out.toString());
        assertEquals(0, nothingLeft.get("rows").asLong());
        assertEquals(4, nothingLeft.get("shards_skipped").asInt());
    }

    @Test
    void jobEmbedsImageFolderAsJsonLines() throws Exception {
        Path out = dir.resolve("out-folder");
        JsonNode result = job("--input", dir.resolve("images").toString(), "--output", out.toString(), "--format", "json");
        assertEquals(IMAGES + 1, result.get("rows").asLong()); // the corrupt .png is listed, the .tsv is not
        assertEquals(1, result.get("errors").asLong());
        List<Row> rows = spark.read().json(out.toString()).collectAsList();
        assertEquals(IMAGES + 1, rows.size());
        for (Row r : rows) {
            String path = Path.of(java.net.URI.create(r.<String>getAs("path"))).toString();
            if (path.equals(corrupt.toString())) {
                assertNull(r.getAs("image_embedding"));
                assertTrue(r.<String>getAs("error").contains("corrupt.png"), r.<String>getAs("error"));
            } else {
                assertNull(r.getAs("error"), path);
                checkCosine(imageReference.get(path), toFloats(r.getList(r.fieldIndex("image_embedding"))), path);
            }
        }
    }

    @Test
    void datasetApiEmbedsBytesAndTextsAndTheUdfMatches() throws Exception {
        // the model shipped with the job (SparkFiles) and named by its file name only
        spark.sparkContext().addFile(model.toString());
        ClipSpark clip = ClipSpark.create(spark, ClipModelSpec.of(model.getFileName().toString()).withVocab(vocab.toString()).withBatch(4));
        List<Row> input = new ArrayList<>();
        for (Path p : goodImages) input.add(RowFactory.create(p.toString(), Files.readAllBytes(p), captionOf.get(p.toString())));
        input.add(RowFactory.create(corrupt.toString(), Files.readAllBytes(corrupt), null));
        StructType schema = new StructType().add("path", DataTypes.StringType).add("image", DataTypes.BinaryType)
                .add("title", DataTypes.StringType);
        Dataset<Row> table = spark.createDataFrame(input, schema).repartition(3);
        List<Row> rows = clip.embed(table, new InputColumns("path", "image", "title")).collectAsList();
        assertEquals(IMAGES + 1, rows.size());
        for (Row r : rows) {
            String path = r.getAs("path");
            if (path.equals(corrupt.toString())) {
                assertNull(r.getAs("image_embedding"));
                assertNull(r.getAs("text_embedding"));
                String error = r.getAs("error");
                assertTrue(error.contains("corrupt.png") && error.contains("no caption"), error);
            } else {
                assertNull(r.getAs("error"), path);
                checkCosine(imageReference.get(path), toFloats(r.getList(r.fieldIndex("image_embedding"))), path);
                checkCosine(textReference.get(captionOf.get(path)), toFloats(r.getList(r.fieldIndex("text_embedding"))), path);
            }
        }
        assertEquals(IMAGES + 1, clip.counters().rows());
        assertEquals(1, clip.counters().errors());

        clip.registerUdf();
        table.createOrReplaceTempView("pairs");
        List<Row> udf = spark.sql("SELECT title, " + ClipSpark.TEXT_UDF + "(title) AS e FROM pairs").collectAsList();
        assertEquals(IMAGES + 1, udf.size());
        for (Row r : udf) {
            if (r.isNullAt(0)) {
                assertTrue(r.isNullAt(1));
            } else {
                checkCosine(textReference.get(r.getString(0)), toFloats(r.getList(1)), r.getString(0));
            }
        }
    }

    /** One row per TSV row: image and caption embeddings as Clip's, the corrupt and the missing image as errors. */
    private static void checkPairs(Dataset<Row> output) {
        List<Row> rows = output.collectAsList();
        assertEquals(IMAGES + 2, rows.size());
        for (Row r : rows) {
            String path = r.getAs("path");
            checkCosine(textReference.get(captionOf.get(path)), toFloats(r.getList(r.fieldIndex("text_embedding"))), path);
            if (path.equals(corrupt.toString()) || path.equals(missing.toString())) {
                assertNull(r.getAs("image_embedding"), path);
                String error = r.getAs("error");
                assertNotNull(error, path);
                assertTrue(error.contains(path.substring(path.lastIndexOf('/') + 1)), error);
            } else {
                assertNull(r.getAs("error"), path);
                checkCosine(imageReference.get(path), toFloats(r.getList(r.fieldIndex("image_embedding"))), path);
            }
        }
    }

    private static JsonNode job(String... args) throws IOException {
        List<String> all = new ArrayList<>(List.of("embed", "--model", model.toString(), "--vocab", vocab.toString(), "--device", "cpu"));
        all.addAll(List.of(args));
        StringWriter out = new StringWriter();
        StringWriter err = new StringWriter();
        int status = SparkMain.run(new PrintWriter(out), new PrintWriter(err), all.toArray(String[]::new));
        assertEquals(0, status, err.toString());
        return new ObjectMapper().readTree(out.toString());
    }

    private static float[] toFloats(List<Object> values) {
        float[] f = new float[values.size()];
        for (int i = 0; i < f.length; i++) f[i] = ((Number) values.get(i)).floatValue();
        return f;
    }

    private static void checkCosine(float[] expected, float[] actual, String what) {
        assertNotNull(expected, "no reference for " + what);
        assertEquals(expected.length, actual.length, what);
        double dot = 0;
        double norm = 0;
        for (int i = 0; i < expected.length; i++) {
            dot += (double) expected[i] * actual[i];
            norm += (double) actual[i] * actual[i];
        }
        assertEquals(1.0, Math.sqrt(norm), 1e-5, what + ": not L2-normalized");
        assertTrue(dot >= MIN_COSINE, what + ": cosine " + dot);
    }
}
