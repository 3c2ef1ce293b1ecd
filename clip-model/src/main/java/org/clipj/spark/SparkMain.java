package org.clipj.spark;

import org.apache.spark.SparkConf;
import org.apache.spark.sql.SparkSession;
import org.clipj.cli.CliCommand;
import org.clipj.cli.DeviceName;
import org.clipj.cli.PrecisionName;
import org.clipj.model.Precision;
import org.clipj.runtime.Backends;
import org.clipj.runtime.InvalidInputException;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

import java.io.PrintWriter;
import java.nio.file.NoSuchFileException;
import java.util.LinkedHashMap;
import java.util.Locale;
import java.util.Map;

/**
 * {@code clip-spark}: clipj's Spark jobs, run by {@code scripts/clip-spark} (local mode) or by
 * {@code spark-submit --class org.clipj.spark.SparkMain clip.jar embed ...} on a cluster. As {@code clip}:
 * a human summary on stderr, one JSON object on stdout; {@code error: ...} and exit 2 for bad input,
 * 1 for an internal failure.
 */
@Command(name = "clip-spark", mixinStandardHelpOptions = true,
        description = "CLIP embeddings of image and caption tables on Apache Spark.",
        subcommands = {CommandLine.HelpCommand.class, SparkMain.Embed.class})
public final class SparkMain implements Runnable {
    @CommandLine.Spec
    CommandLine.Model.CommandSpec spec;

    public static void main(String[] args) {
        System.exit(run(new PrintWriter(System.out, true), new PrintWriter(System.err, true), args));
    }

    /** Runs one command line and returns its exit status (for tests). */
    public static int run(PrintWriter out, PrintWriter err, String... args) {
        CommandLine cli = new CommandLine(new SparkMain());
        cli.setOut(out);
        cli.setErr(err);
        boolean debug = java.util.Arrays.asList(args).contains("--debug");
        cli.setParameterExceptionHandler((ex, a) -> {
            err.println("error: " + ex.getMessage());
            err.flush();
            return 2;
        });
        cli.setExecutionExceptionHandler((ex, c, parsed) -> {
            if (debug) {
                ex.printStackTrace(err);
            }
            String message = null;
            for (Throwable t = ex; t != null && message == null; t = t.getCause()) {
                if (t instanceof InvalidInputException) message = t.getMessage();
                if (t instanceof NoSuchFileException nsf) message = "no such file: " + nsf.getFile();
            }
            err.println("error: " + (message != null ? message
                    : "internal: " + ex.getClass().getSimpleName() + ": " + ex.getMessage() + " (run with --debug for the stack trace)"));
            err.flush();
            return message != null ? 2 : 1;
        });
        int status = cli.execute(args);
        out.flush();
        err.flush();
        return status;
    }

    @Override
    public void run() {
        throw new CommandLine.ParameterException(spec.commandLine(), "missing command: embed (see --help)");
    }

    @Command(name = "embed", mixinStandardHelpOptions = true,
            description = "Embed a folder of images, an open_clip CSV/TSV or a Parquet table; write Parquet or JSON Lines, "
                    + "one part file per shard; a rerun with the same --output skips the shards already written.")
    static final class Embed extends CliCommand {
        @Option(names = "--model", required = true, paramLabel = "M",
                description = "Checkpoint as every executor sees it (shared filesystem), or the file name of one shipped with spark-submit --files.")
        String model;

        @Option(names = "--arch", paramLabel = "NAME", description = "Architecture by name (open_clip's or OpenAI's), as clip embed --arch."
                + " Default: the config beside the weights.")
        String arch;

        @Option(names = "--vocab", paramLabel = "V", description = "BPE vocabulary, found like --model. Default: next to the model, then $CLIP_VOCAB.")
        String vocab;

        @Option(names = "--device", paramLabel = "D", converter = DeviceName.class, description = DeviceName.DESCRIPTION
                + " Read on the driver; the executors use the driver's choice.")
        String device;

        @Option(names = "--precision", paramLabel = "P", converter = PrecisionName.class, description = "f32, bf16 or f16 (default: bf16 on cuda, f32 on cpu).")
        Precision precision;

        @Option(names = "--batch", defaultValue = "32", paramLabel = "N", description = "Images or texts per forward pass (default: ${DEFAULT-VALUE}).")
        int batch;

        @Option(names = "--input", required = true, paramLabel = "IN", description = "A folder of images, a CSV/TSV (.csv, .tsv), or a Parquet table (folder or file).")
        String input;

        @Option(names = "--input-format", paramLabel = "F", description = "folder, csv or parquet (default: from IN: .csv/.tsv -> csv; .parquet, or a folder with .parquet files -> parquet; else folder).")
        String inputFormat;

        @Option(names = "--output", required = true, paramLabel = "OUT", description = "Output folder (part-NNNNN files and _clipj.json).")
        String output;

        @Option(names = "--format", defaultValue = "parquet", paramLabel = "F", description = "parquet or json (JSON Lines) (default: ${DEFAULT-VALUE}).")
        String format;

        @Option(names = "--master", paramLabel = "URL", description = "Spark master, e.g. local[2] (default: spark-submit's, else local[*]).")
        String master;

        @Option(names = "--images-column", paramLabel = "C", description = "Image column: paths/URIs (string) or encoded bytes (binary). Default: filepath.")
        String imagesColumn;

        @Option(names = "--text-column", paramLabel = "C", description = "Caption column. Default: title.")
        String textColumn;

        @Option(names = "--id-column", paramLabel = "C", description = "Column written as 'path' (default: the image path; for image bytes: path).")
        String idColumn;

        @Option(names = "--csv-separator", defaultValue = "\t", paramLabel = "S", description = "CSV field separator (default: tab, as open_clip's).")
        String csvSeparator;

        @Option(names = "--shards", paramLabel = "N", description = "Output shards (restart granularity); default: 2 x parallelism, or one per 10,000 rows. A rerun keeps the first run's.")
        Integer shards;

        @Override
        public Integer call() throws Exception {
            ShardWriter.Format out = switch (format.toLowerCase(Locale.ROOT)) {
                case "parquet" -> ShardWriter.Format.PARQUET;
                case "json", "jsonl" -> ShardWriter.Format.JSON;
                default -> throw new InvalidInputException("--format " + format + ": expected parquet or json");
            };
            String backend = device != null ? device : Backends.requestFromEnvironment().checkedName();
            ClipModelSpec spec = new ClipModelSpec(model, vocab, backend, batch,
                    precision == null ? null : precision.name().toLowerCase(Locale.ROOT), arch);
            SparkConf conf = new SparkConf();
            SparkSession.Builder builder = SparkSession.builder().appName("clipj embed");
            if (master != null) {
                builder.master(master);
            } else if (!conf.contains("spark.master")) {
                builder.master("local[*]");
            }
            if (!conf.contains("spark.log.level")) {
                builder.config("spark.log.level", "WARN"); // the summary, not Spark's INFO lines, on stderr
            }
            SparkSession spark = builder.getOrCreate();
            String fmt = inputFormat != null ? inputFormat : detectFormat(spark);
            EmbedJob.Input in = new EmbedJob.Input(input, fmt, imagesColumn, textColumn, idColumn, csvSeparator);
            EmbedJob.Result r = new EmbedJob(spark, err()).run(spec, in, output, out, shards);
            Counters c = r.counters();
            Map<String, Object> result = new LinkedHashMap<>();
            result.put("output", output);
            result.put("format", out.extension);
            result.put("shards", r.shards());
            result.put("shards_skipped", r.shardsSkipped());
            result.put("shards_written", r.shardsWritten());
            result.put("rows", c.rows());
            result.put("errors", c.errors());
            result.put("images", c.images());
            result.put("texts", c.texts());
            result.put("images_per_second", c.imagesPerSecond());
            result.put("seconds", r.seconds());
            emitJson(result);
            err().printf("embedded %d row(s) (%d image(s), %d text(s), %d error(s)) into %s: %d shard(s) written, %d skipped, "
                            + "%.1f images/s, %.1f s%n", c.rows(), c.images(), c.texts(), c.errors(), output, r.shardsWritten(),
                    r.shardsSkipped(), c.imagesPerSecond(), r.seconds());
            return 0;
        }

        private String detectFormat(SparkSession spark) throws java.io.IOException {
            String lower = input.toLowerCase(Locale.ROOT);
            if (lower.endsWith(".csv") || lower.endsWith(".tsv")) {
                return "csv";
            }
            if (lower.endsWith(".parquet")) {
                return "parquet";
            }
            org.apache.hadoop.fs.Path path = new org.apache.hadoop.fs.Path(input);
            org.apache.hadoop.fs.FileSystem fs = path.getFileSystem(spark.sparkContext().hadoopConfiguration());
            if (!fs.exists(path)) {
                throw new InvalidInputException("--input " + input + ": no such file or folder");
            }
            if (!fs.getFileStatus(path).isDirectory()) {
                throw new InvalidInputException("--input " + input + ": a file that is neither .csv, .tsv nor .parquet; "
                        + "give --input-format");
            }
            for (org.apache.hadoop.fs.FileStatus f : fs.listStatus(path)) {
                if (f.getPath().getName().endsWith(".parquet")) {
                    return "parquet";
                }
            }
            return "folder";
        }
    }
}
