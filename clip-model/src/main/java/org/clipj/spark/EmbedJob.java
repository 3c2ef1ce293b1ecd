package org.clipj.spark;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.FSDataOutputStream;
import org.apache.hadoop.fs.FileStatus;
import org.apache.hadoop.fs.FileSystem;
import org.apache.hadoop.fs.Path;
import org.apache.spark.HashPartitioner;
import org.apache.spark.TaskContext;
import org.apache.spark.api.java.JavaRDD;
import org.apache.spark.api.java.function.VoidFunction;
import org.apache.spark.sql.Column;
import org.apache.spark.sql.Dataset;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.SparkSession;
import org.apache.spark.sql.types.StructType;
import org.apache.spark.util.CollectionAccumulator;
import org.clipj.Clip;
import org.clipj.runtime.InvalidInputException;
import scala.Tuple2;

import java.io.IOException;
import java.io.InputStream;
import java.io.PrintWriter;
import java.nio.charset.StandardCharsets;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeSet;

import static org.apache.spark.sql.functions.col;
import static org.apache.spark.sql.functions.concat;
import static org.apache.spark.sql.functions.lit;
import static org.apache.spark.sql.functions.not;
import static org.apache.spark.sql.functions.pmod;
import static org.apache.spark.sql.functions.when;
import static org.apache.spark.sql.functions.xxhash64;

/**
 * The restartable embedding job behind {@code clip-spark embed}. Every input row goes to one of S shards
 * by a hash of its id (image path, id column, or caption), so a row's shard does not depend on how
 * Spark splits the input; shard s is partition s of the job and is written as one file
 * {@code part-s.parquet|json}, atomically ({@link ShardWriter}). A rerun with the same output reads S and
 * the settings from {@code _clipj.json}, drops the rows of the shards whose part file exists before
 * the shuffle, and embeds only the rest. (Spark's own output commit protocol would not do this: a job
 * that dies leaves nothing committed, and a rerun does all the work again.)
 */
final class EmbedJob {
    static final String METADATA = "_clipj.json";
    private static final String SHARD = "_clipj_shard";
    private static final ObjectMapper JSON = new ObjectMapper();

    /** What to read and how. */
    record Input(String location, String format, String imageColumn, String textColumn, String idColumn, String csvSeparator) {
    }

    /** What a run did. */
    record Result(int shards, int shardsSkipped, int shardsWritten, Counters counters, double seconds) {
    }

    private final SparkSession spark;
    private final PrintWriter log;

    EmbedJob(SparkSession spark, PrintWriter log) {
        this.spark = spark;
        this.log = log;
    }

    Result run(ClipModelSpec model, Input input, String output, ShardWriter.Format format, Integer shardsWanted) throws IOException {
        long t0 = System.nanoTime();
        Configuration conf = spark.sparkContext().hadoopConfiguration();
        Path out = new Path(output);
        FileSystem fs = out.getFileSystem(conf);
        Dataset<Row> rows = read(input);
        InputColumns columns = columns(input, rows.schema());
        log.printf("clip-spark: input %s (%s), columns: id=%s image=%s text=%s%n", input.location(), input.format(),
                columns.id(), columns.image(), columns.text());

        ObjectNode settings = JSON.createObjectNode();
        settings.put("input", input.location());
        settings.put("input_format", input.format());
        settings.put("id_column", columns.id());
        settings.put("image_column", columns.image());
        settings.put("text_column", columns.text());
        settings.put("format", format.extension);
        settings.put("model", model.model());
        settings.put("precision", model.precision());
        JsonNode previous = readMetadata(fs, out);
        int shards;
        if (previous != null) {
            checkSameJob(previous, settings, out);
            shards = previous.get("shards").asInt();
            if (shardsWanted != null && shardsWanted != shards) {
                throw new InvalidInputException(out + " was written with " + shards + " shards; a rerun must keep them "
                        + "(leave out --shards, or write to a new output)");
            }
        } else {
            shards = shardsWanted != null ? shardsWanted : defaultShards(rows);
        }
        if (shards < 1) {
            throw new InvalidInputException("--shards must be >= 1, got " + shards);
        }
        settings.put("shards", shards);
        settings.set("model_spec", JSON.valueToTree(model));
        fs.mkdirs(out);
        if (previous == null) {
            writeMetadata(fs, out, settings);
        }

        TreeSet<Integer> done = finishedShards(fs, out, format);
        log.printf("clip-spark: %d shard(s), %d already written in %s%n", shards, done.size(), out);
        Column key = columns.id() != null ? col(columns.id()) : columns.image() != null ? col(columns.image()) : col(columns.text());
        Dataset<Row> keyed = rows.withColumn(SHARD, pmod(xxhash64(key), lit(shards)).cast("int"));
        if (!done.isEmpty()) {
            keyed = keyed.filter(not(col(SHARD).isin(done.toArray())));
        }
        StructType schema = keyed.schema();
        int shardIndex = schema.fieldIndex(SHARD);
        ClipSpark clipSpark = ClipSpark.create(spark, model);
        PartitionEmbedder embedder = clipSpark.embedder(schema, columns);
        CollectionAccumulator<String> loaded = spark.sparkContext().collectionAccumulator("clipj model");
        CollectionAccumulator<Integer> written = spark.sparkContext().collectionAccumulator("clipj shards written");
        HadoopConf hadoopConf = new HadoopConf(conf);
        String outDir = out.toString();
        boolean images = columns.image() != null;
        boolean texts = columns.text() != null;
        JavaRDD<Row> byShard = keyed.javaRDD()
                .mapToPair(r -> new Tuple2<>(r.getInt(shardIndex), r))
                .partitionBy(new HashPartitioner(shards)) // an Integer key k goes to partition k
                .values();
        VoidFunction<java.util.Iterator<Row>> writeShard = part -> {
            if (!part.hasNext()) {
                return;
            }
            TaskContext task = TaskContext.get();
            int shard = task.partitionId();
            Map<String, String> metadata = modelMetadata(ExecutorClip.get(model), model);
            loaded.add(JSON.writeValueAsString(metadata));
            if (ShardWriter.write(embedder.embed(part), new Path(outDir), shard, task.taskAttemptId(), format,
                    images, texts, metadata, hadoopConf.get())) {
                written.add(shard);
            }
        };
        byShard.foreachPartition(writeShard);

        Counters counters = clipSpark.counters();
        ObjectNode metadata = settings.deepCopy();
        if (!loaded.value().isEmpty()) {
            metadata.set("loaded", JSON.readTree(loaded.value().getFirst()));
        } else if (previous != null && previous.has("loaded")) {
            metadata.set("loaded", previous.get("loaded"));
        }
        writeMetadata(fs, out, metadata);
        return new Result(shards, done.size(), new TreeSet<>(written.value()).size(), counters, (System.nanoTime() - t0) / 1e9);
    }

    /** Model, config, precision and device of a loaded model: the output's metadata (Parquet footers, _clipj.json). */
    static Map<String, String> modelMetadata(Clip clip, ClipModelSpec spec) throws IOException {
        Map<String, String> m = new LinkedHashMap<>();
        m.put("clipj.model", spec.model());
        m.put("clipj.config", JSON.writeValueAsString(clip.model().config()));
        m.put("clipj.precision", clip.model().precision().name().toLowerCase());
        m.put("clipj.device", clip.backend().name());
        m.put("clipj.embedding_dim", Integer.toString(clip.embeddingSize()));
        return m;
    }

    private Dataset<Row> read(Input input) throws IOException {
        switch (input.format()) {
            case "folder" -> {
                if (input.textColumn() != null || input.imageColumn() != null || input.idColumn() != null) {
                    throw new InvalidInputException("--input " + input.location() + " is a folder of images: it has no "
                            + "columns to choose (--images-column, --text-column, --id-column are for CSV and Parquet)");
                }
                return spark.read().format("binaryFile").option("recursiveFileLookup", "true")
                        .option("pathGlobFilter", "*.{jpg,jpeg,png,gif,bmp,webp,JPG,JPEG,PNG,GIF,BMP,WEBP}")
                        .load(input.location()).select("path");
            }
            case "csv" -> {
                Dataset<Row> csv = spark.read().option("header", "true").option("sep", input.csvSeparator())
                        .option("quote", "\"").option("escape", "\"").option("multiLine", "true").csv(input.location());
                String image = input.imageColumn() != null ? input.imageColumn() : "filepath";
                List<String> fields = Arrays.asList(csv.schema().fieldNames());
                if (!fields.contains(image)) {
                    throw new InvalidInputException(input.location() + ": header " + fields + " lacks column '" + image
                            + "' (see --images-column, --csv-separator; the default separator is a tab, as open_clip's)");
                }
                // relative image paths are relative to the CSV's folder (open_clip, CsvDataset)
                Path base = new Path(input.location()).getFileSystem(spark.sparkContext().hadoopConfiguration())
                        .makeQualified(new Path(input.location())).getParent();
                String prefix = "file".equals(base.toUri().getScheme()) ? base.toUri().getPath() : base.toString();
                Column c = col(image);
                return csv.withColumn(image, when(c.rlike("^(/|[A-Za-z][A-Za-z0-9+.-]*:)"), c)
                        .otherwise(concat(lit(prefix + "/"), c)));
            }
            case "parquet" -> {
                return spark.read().parquet(input.location());
            }
            default -> throw new InvalidInputException("--input-format " + input.format() + ": expected folder, csv or parquet");
        }
    }

    /** The columns to embed; CSV and Parquet default to open_clip's filepath and title (Parquet: those present). */
    private static InputColumns columns(Input input, StructType schema) {
        List<String> fields = Arrays.asList(schema.fieldNames());
        return switch (input.format()) {
            case "folder" -> InputColumns.images("path");
            case "csv" -> new InputColumns(input.idColumn(), input.imageColumn() != null ? input.imageColumn() : "filepath",
                    input.textColumn() != null ? input.textColumn() : "title");
            default -> {
                String image = input.imageColumn() != null ? input.imageColumn() : fields.contains("filepath") ? "filepath" : null;
                String text = input.textColumn() != null ? input.textColumn() : fields.contains("title") ? "title" : null;
                if (image == null && text == null) {
                    throw new InvalidInputException(input.location() + ": columns " + fields + " have neither 'filepath' "
                            + "nor 'title'; name them with --images-column and/or --text-column");
                }
                String id = input.idColumn();
                if (id == null && image != null && schema.apply(image).dataType() instanceof org.apache.spark.sql.types.BinaryType) {
                    if (!fields.contains("path")) {
                        throw new InvalidInputException(input.location() + ": image column '" + image + "' holds bytes; "
                                + "name the column that identifies each row with --id-column (columns: " + fields + ")");
                    }
                    id = "path";
                }
                yield new InputColumns(id, image, text);
            }
        };
    }

    /** Twice the cluster's parallelism, or one shard per 10,000 rows when that is more (restart granularity). */
    private int defaultShards(Dataset<Row> rows) {
        long n = rows.count();
        int parallel = spark.sparkContext().defaultParallelism();
        return (int) Math.max(2L * parallel, Math.min(100_000, (n + 9_999) / 10_000));
    }

    private static TreeSet<Integer> finishedShards(FileSystem fs, Path out, ShardWriter.Format format) throws IOException {
        TreeSet<Integer> done = new TreeSet<>();
        for (FileStatus f : fs.listStatus(out)) {
            int shard = ShardWriter.shardOf(f.getPath().getName(), format);
            if (shard >= 0) done.add(shard);
        }
        return done;
    }

    private static JsonNode readMetadata(FileSystem fs, Path out) throws IOException {
        Path file = new Path(out, METADATA);
        if (!fs.exists(file)) {
            if (fs.exists(out) && fs.listStatus(out).length > 0) {
                throw new InvalidInputException("--output " + out + " exists and is not a clip-spark output (no " + METADATA
                        + "); choose a new or empty folder");
            }
            return null;
        }
        try (InputStream in = fs.open(file)) {
            return JSON.readTree(in);
        }
    }

    private static void checkSameJob(JsonNode previous, ObjectNode settings, Path out) {
        for (var e : settings.properties()) {
            JsonNode before = previous.get(e.getKey());
            if (before == null || !before.equals(e.getValue())) {
                throw new InvalidInputException(out + " was written by another job: " + e.getKey() + " was "
                        + before + ", now " + e.getValue() + " (a rerun must repeat the same command; or use a new output)");
            }
        }
    }

    private static void writeMetadata(FileSystem fs, Path out, JsonNode metadata) throws IOException {
        Path temp = new Path(out, "." + METADATA + ".tmp");
        try (FSDataOutputStream o = fs.create(temp, true)) {
            o.write(JSON.writerWithDefaultPrettyPrinter().writeValueAsString(metadata).getBytes(StandardCharsets.UTF_8));
        }
        Path target = new Path(out, METADATA);
        fs.delete(target, false);
        if (!fs.rename(temp, target)) {
            throw new IOException("cannot rename " + temp + " to " + target);
        }
    }
}
