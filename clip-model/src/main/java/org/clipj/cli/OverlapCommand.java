package org.clipj.cli;

import org.clipj.Clip;
import org.clipj.data.CsvDataset;
import org.clipj.eval.EvalCharts;
import org.clipj.eval.ImageFeatures;
import org.clipj.eval.NearDuplicates;
import org.clipj.image.ImageLoader;
import org.clipj.runtime.InvalidInputException;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

import java.io.IOException;
import java.io.PrintWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;
import java.util.stream.Stream;

/**
 * {@code clip overlap}: near-duplicate images between two sets (the paper's data-overlap analysis),
 * by cosine similarity of their embeddings, computed block by block (never an Na x Nb matrix).
 */
@Command(name = "overlap", mixinStandardHelpOptions = true,
        description = "Near-duplicate pairs between two image sets (folders or CSVs) by embedding cosine similarity.")
public final class OverlapCommand extends CliCommand {
    private static final Set<String> EXTENSIONS = Set.of("jpg", "jpeg", "png", "ppm", "bmp", "pgm", "tif", "tiff",
            "webp", "gif");

    @Mixin
    ModelOptions modelOptions;

    @Option(names = "--a", required = true, paramLabel = "DIR|CSV", description = "First set: a folder (searched recursively) or a CSV.")
    Path a;

    @Option(names = "--b", required = true, paramLabel = "DIR|CSV", description = "Second set: a folder or a CSV.")
    Path b;

    @Option(names = "--threshold", defaultValue = "0.95", paramLabel = "T",
            description = "Cosine similarity at or above which a pair is a near duplicate (default: ${DEFAULT-VALUE}).")
    float threshold;

    @Option(names = "--top-k", defaultValue = "5", paramLabel = "K",
            description = "Most matches kept per image of --a (default: ${DEFAULT-VALUE}).")
    int topK;

    @Option(names = "--sheet-pairs", defaultValue = "32", paramLabel = "N",
            description = "Pairs shown on the contact sheet, most similar first (default: ${DEFAULT-VALUE}).")
    int sheetPairs;

    @Option(names = "--csv-img-key", defaultValue = "filepath", description = "Image path column of a CSV set (default filepath).")
    String csvImageKey;

    @Option(names = "--csv-caption-key", defaultValue = "title", description = "Caption column of a CSV set (default title).")
    String csvCaptionKey;

    @Option(names = "--csv-separator", defaultValue = "\t", description = "Field separator of a CSV set (default tab).")
    String csvSeparator;

    @Option(names = "--report-dir", paramLabel = "DIR",
            description = "Where overlap.png (contact sheet) goes (default: next to --out; none without either).")
    Path reportDir;

    @Mixin
    JsonOutput jsonOutput;

    @Override
    public Integer call() {
        if (!(threshold >= -1 && threshold <= 1)) {
            throw new InvalidInputException("--threshold must be a cosine similarity in [-1, 1], got " + threshold);
        }
        if (topK < 1) {
            throw new InvalidInputException("--top-k must be >= 1, got " + topK);
        }
        if (sheetPairs < 0) {
            throw new InvalidInputException("--sheet-pairs must be >= 0, got " + sheetPairs);
        }
        List<Path> filesA = images(a, "--a");
        List<Path> filesB = images(b, "--b");
        PrintWriter err = err();
        try (Clip clip = modelOptions.open()) {
            long t0 = System.nanoTime();
            ImageFeatures.Extracted exA = ImageFeatures.extract(clip, filesA, null,
                    EvalCommand.progress(err, "--a", filesA.size()));
            ImageFeatures.Extracted exB = ImageFeatures.extract(clip, filesB, null,
                    EvalCommand.progress(err, "--b", filesB.size()));
            int[] keptA = exA.kept();
            int[] keptB = exB.kept();
            List<NearDuplicates.Pair> found = NearDuplicates.find(clip.backend(), EvalCommand.select(exA.embeddings(), keptA),
                    EvalCommand.select(exB.embeddings(), keptB), threshold, topK);
            long t1 = System.nanoTime();
            List<Map<String, Object>> pairs = new ArrayList<>(found.size());
            for (NearDuplicates.Pair p : found) {
                Map<String, Object> row = new LinkedHashMap<>();
                row.put("a", filesA.get(keptA[p.a()]).toString());
                row.put("b", filesB.get(keptB[p.b()]).toString());
                row.put("similarity", p.similarity());
                pairs.add(row);
            }
            Path reports = EvalCommand.reportDir(reportDir, jsonOutput.file);
            Path png = reports == null || found.isEmpty() || sheetPairs == 0 ? null : reports.resolve("overlap.png");
            if (png != null) {
                List<NearDuplicates.Pair> shown = found.subList(0, Math.min(sheetPairs, found.size()));
                List<String> captions = shown.stream().map(p -> String.format(Locale.ROOT, "%.4f  %s | %s", p.similarity(),
                        filesA.get(keptA[p.a()]).getFileName(), filesB.get(keptB[p.b()]).getFileName())).toList();
                EvalCharts.writeContactSheet(png, captions, i -> thumbnail(filesA.get(keptA[shown.get(i).a()])),
                        i -> thumbnail(filesB.get(keptB[shown.get(i).b()])));
            }
            List<String> skipped = new ArrayList<>(exA.skipped());
            skipped.addAll(exB.skipped());

            Map<String, Object> result = new LinkedHashMap<>();
            result.put("task", "overlap");
            result.put("model", modelOptions.model.toString());
            result.put("device", clip.backend().name());
            result.put("a", a.toString());
            result.put("b", b.toString());
            result.put("a_images", keptA.length);
            result.put("b_images", keptB.length);
            result.put("threshold", threshold);
            result.put("top_k", topK);
            result.put("skipped", skipped.size());
            result.put("skipped_files", skipped);
            result.put("count", pairs.size());
            result.put("pairs", pairs);
            result.put("contact_sheet", png == null ? null : png.toString());
            result.put("seconds", (t1 - t0) / 1e9);

            err.printf("overlap: %d images in %s vs %d in %s, threshold %s, %s%n", keptA.length, a, keptB.length, b,
                    threshold, clip.backend().description());
            EvalCommand.printSkipped(err, a.toString(), exA.skipped());
            EvalCommand.printSkipped(err, b.toString(), exB.skipped());
            err.printf("  %d near-duplicate pair(s)%n", pairs.size());
            for (int i = 0; i < Math.min(10, found.size()); i++) {
                NearDuplicates.Pair p = found.get(i);
                err.printf("  %.4f  %s  %s%n", p.similarity(), filesA.get(keptA[p.a()]), filesB.get(keptB[p.b()]));
            }
            if (found.size() > 10) {
                err.printf("  ... %d more in the JSON%n", found.size() - 10);
            }
            if (png != null) {
                err.println("  contact sheet: " + png);
            } else if (!found.isEmpty() && sheetPairs > 0) {
                err.println("  (pass --report-dir DIR or --out FILE for the contact sheet overlap.png)");
            }
            err.flush();
            emitJson(result);
        }
        return 0;
    }

    /** The image files of a folder (recursively, sorted) or the distinct image paths of a CSV. */
    private List<Path> images(Path source, String option) {
        if (Files.isDirectory(source)) {
            try (Stream<Path> walk = Files.walk(source)) {
                List<Path> files = walk.filter(Files::isRegularFile).filter(OverlapCommand::isImage).sorted().toList();
                if (files.isEmpty()) {
                    throw new InvalidInputException(option + " " + source + ": no image files in the folder");
                }
                return files;
            } catch (IOException e) {
                throw new InvalidInputException(option + " " + source + ": cannot list: " + e.getMessage(), e);
            }
        }
        if (!Files.isRegularFile(source)) {
            throw new InvalidInputException(option + " " + source + ": no such folder or CSV file");
        }
        CsvDataset csv = EvalCommand.csv(source, csvImageKey, csvCaptionKey, csvSeparator);
        Set<Path> distinct = new LinkedHashSet<>();
        for (int i = 0; i < csv.size(); i++) distinct.add(csv.path(i).toAbsolutePath().normalize());
        return new ArrayList<>(distinct);
    }

    private static boolean isImage(Path p) {
        String name = p.getFileName().toString();
        int dot = name.lastIndexOf('.');
        return dot > 0 && EXTENSIONS.contains(name.substring(dot + 1).toLowerCase(Locale.ROOT));
    }

    private static java.awt.image.BufferedImage thumbnail(Path file) {
        try {
            return ImageLoader.read(file);
        } catch (InvalidInputException e) {
            return null; // changed since it was embedded: the sheet shows a grey box
        }
    }
}
