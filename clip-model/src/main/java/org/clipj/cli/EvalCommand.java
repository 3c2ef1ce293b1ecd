package org.clipj.cli;

import org.clipj.data.CsvDataset;
import org.clipj.eval.ImageFeatures;
import org.clipj.runtime.InvalidInputException;
import picocli.CommandLine.Command;

import java.io.PrintWriter;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/** {@code clip eval}: the evaluation commands (zero-shot, linear probe, retrieval). */
@Command(name = "eval", mixinStandardHelpOptions = true,
        description = "Evaluate a model: zero-shot classification, linear probe, image-text retrieval.",
        subcommands = {EvalZeroShotCommand.class, EvalLinearProbeCommand.class, EvalRetrievalCommand.class})
public final class EvalCommand extends CliCommand {
    private static final int SHOWN_SKIPS = 10;

    @Override
    public Integer call() {
        throw new InvalidInputException("eval needs a subcommand: zero-shot, linear-probe or retrieval (clip eval --help)");
    }

    /** Where PNG reports go: --report-dir, else the folder of --out, else nowhere (null). */
    static Path reportDir(Path reportDir, Path out) {
        if (reportDir != null) {
            return reportDir;
        }
        return out == null ? null : out.toAbsolutePath().getParent();
    }

    /** Prints a progress line at every tenth of a large set. */
    static ImageFeatures.Progress progress(PrintWriter err, String what, int total) {
        if (total < 1000) {
            return null;
        }
        int step = total / 10;
        int[] next = {step};
        return done -> {
            if (done >= next[0] || done == total) {
                err.printf("  %s: %d/%d images%n", what, done, total);
                err.flush();
                next[0] = done + step;
            }
        };
    }

    /** Reports skipped files on stderr: their number and the first few. */
    static void printSkipped(PrintWriter err, String what, List<String> skipped) {
        if (skipped.isEmpty()) {
            return;
        }
        err.printf("skipped %d unreadable image(s) in %s:%n", skipped.size(), what);
        for (int i = 0; i < Math.min(SHOWN_SKIPS, skipped.size()); i++) err.println("  " + skipped.get(i));
        if (skipped.size() > SHOWN_SKIPS) {
            err.printf("  ... and %d more (all in the JSON)%n", skipped.size() - SHOWN_SKIPS);
        }
    }

    static CsvDataset csv(Path file, String imageKey, String captionKey, String separator) {
        if (separator.length() != 1) {
            throw new InvalidInputException("--csv-separator must be one character, got '" + separator + "'");
        }
        return new CsvDataset(file, imageKey, captionKey, separator.charAt(0));
    }

    /** JSON of per-class accuracy: class name, accuracy (null without samples), sample count. */
    static List<Map<String, Object>> perClass(List<String> names, double[] accuracy, int[][] confusion) {
        List<Map<String, Object>> rows = new ArrayList<>();
        for (int c = 0; c < names.size(); c++) {
            int count = 0;
            for (int v : confusion[c]) count += v;
            Map<String, Object> row = new LinkedHashMap<>();
            row.put("class", names.get(c));
            row.put("accuracy", Double.isNaN(accuracy[c]) ? null : accuracy[c]);
            row.put("count", count);
            rows.add(row);
        }
        return rows;
    }

    /** The per-class accuracy table on stderr. */
    static void printPerClass(PrintWriter err, List<String> names, double[] accuracy, int[][] confusion) {
        int width = Math.max(5, Math.min(40, names.stream().mapToInt(String::length).max().orElse(5)));
        err.printf("  %-" + width + "s %8s %6s%n", "class", "accuracy", "n");
        for (int c = 0; c < names.size(); c++) {
            int count = 0;
            for (int v : confusion[c]) count += v;
            String acc = Double.isNaN(accuracy[c]) ? "-" : String.format("%7.2f%%", 100 * accuracy[c]);
            err.printf("  %-" + width + "s %8s %6d%n", names.get(c), acc, count);
        }
    }

    /** The rows of scores kept (embedding not null), and their labels. */
    static int[] select(int[] labels, int[] kept) {
        int[] out = new int[kept.length];
        for (int i = 0; i < kept.length; i++) out[i] = labels[kept[i]];
        return out;
    }

    static float[][] select(float[][] rows, int[] kept) {
        float[][] out = new float[kept.length][];
        for (int i = 0; i < kept.length; i++) out[i] = rows[kept[i]];
        return out;
    }
}
