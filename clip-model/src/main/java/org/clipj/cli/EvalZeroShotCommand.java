package org.clipj.cli;

import org.clipj.Clip;
import org.clipj.data.ImageFolder;
import org.clipj.eval.ClassificationMetrics;
import org.clipj.eval.EvalCharts;
import org.clipj.eval.ImageFeatures;
import org.clipj.eval.Templates;
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
import java.util.List;
import java.util.Map;

/** {@code clip eval zero-shot}: zero-shot accuracy on an image folder, with prompt ensembling. */
@Command(name = "zero-shot", mixinStandardHelpOptions = true,
        description = "Zero-shot accuracy (top-1/top-5, per class, confusion matrix) on an ImageFolder (ROOT/CLASS/IMAGE).")
public final class EvalZeroShotCommand extends CliCommand {
    @Mixin
    ModelOptions modelOptions;

    @Option(names = "--data", required = true, paramLabel = "DIR", description = "Image folder: one sub-folder per class.")
    Path data;

    @Option(names = "--classnames", paramLabel = "FILE",
            description = "Class names for the prompts, one per line, in the sorted order of the class folders "
                    + "(default: the folder names with _ read as spaces).")
    Path classnames;

    @Option(names = "--template", paramLabel = "T", description = "A prompt template with {} for the class name (repeatable).")
    List<String> templates = new ArrayList<>();

    @Option(names = "--templates", paramLabel = "FILE",
            description = "Templates, one per line (# comments). Default without --template/--templates: the built-in ensemble.")
    Path templatesFile;

    @Option(names = "--report-dir", paramLabel = "DIR", description = "Where confusion.png goes (default: next to --out; none without either).")
    Path reportDir;

    @Mixin
    JsonOutput jsonOutput;

    @Override
    public Integer call() {
        ImageFolder folder = new ImageFolder(data);
        List<String> names = classnames == null
                ? folder.classes().stream().map(c -> c.replace('_', ' ')).toList()
                : readClassnames(classnames, folder.classes().size());
        List<String> prompts = new ArrayList<>(templates);
        if (templatesFile != null) {
            prompts.addAll(Templates.read(templatesFile));
        }
        boolean builtIn = prompts.isEmpty();
        if (builtIn) {
            prompts = Templates.builtIn();
        }
        List<Path> files = new ArrayList<>(folder.size());
        int[] labels = new int[folder.size()];
        for (int i = 0; i < folder.size(); i++) {
            files.add(folder.path(i));
            labels[i] = folder.label(i);
        }
        PrintWriter err = err();
        try (Clip clip = modelOptions.open()) {
            long t0 = System.nanoTime();
            float[][] classifier = clip.classifier(names, prompts); // (C, E)
            long t1 = System.nanoTime();
            ImageFeatures.Extracted ex = ImageFeatures.extract(clip, files, null,
                    EvalCommand.progress(err, "encoded", files.size()));
            long t2 = System.nanoTime();
            int[] kept = ex.kept();
            if (kept.length == 0) {
                throw new InvalidInputException(data + ": none of the " + files.size() + " images could be read");
            }
            float[][] scores = new float[kept.length][names.size()]; // (N, C) cosine similarities
            for (int k = 0; k < kept.length; k++) {
                float[] img = ex.embeddings()[kept[k]];
                for (int c = 0; c < names.size(); c++) {
                    float s = 0;
                    for (int d = 0; d < img.length; d++) s += img[d] * classifier[c][d];
                    scores[k][c] = s;
                }
            }
            ClassificationMetrics m = ClassificationMetrics.of(scores, EvalCommand.select(labels, kept), names.size());
            Path reports = EvalCommand.reportDir(reportDir, jsonOutput.file);
            Path png = reports == null ? null : reports.resolve("confusion.png");
            if (png != null) {
                EvalCharts.writeConfusionMatrix(png, m.confusion(), names);
            }
            double imageSeconds = (t2 - t1) / 1e9;
            double imagesPerSecond = kept.length / Math.max(imageSeconds, 1e-9);

            Map<String, Object> result = new LinkedHashMap<>();
            result.put("task", "zero-shot");
            result.put("model", modelOptions.model.toString());
            result.put("device", clip.backend().name());
            result.put("data", data.toString());
            result.put("classes", names);
            result.put("templates", prompts);
            result.put("images", kept.length);
            result.put("skipped", ex.skipped().size());
            result.put("skipped_files", ex.skipped());
            result.put("top1", m.top1());
            result.put("top5", m.top5());
            result.put("per_class", EvalCommand.perClass(names, m.perClassAccuracy(), m.confusion()));
            result.put("confusion", m.confusion());
            result.put("confusion_png", png == null ? null : png.toString());
            result.put("text_seconds", (t1 - t0) / 1e9);
            result.put("image_seconds", imageSeconds);
            result.put("images_per_second", imagesPerSecond);

            err.printf("zero-shot on %s: %d images, %d classes, %d template(s)%s, %s%n", data, kept.length, names.size(),
                    prompts.size(), builtIn ? " (built-in)" : "", clip.backend().description());
            EvalCommand.printSkipped(err, data.toString(), ex.skipped());
            err.printf("  top-1 %6.2f%%   top-5 %6.2f%%%n", 100 * m.top1(), 100 * m.top5());
            EvalCommand.printPerClass(err, names, m.perClassAccuracy(), m.confusion());
            err.printf("  images: %.1f images/s (decode + encode), text: %.2f s%n", imagesPerSecond, (t1 - t0) / 1e9);
            err.println(png == null ? "  confusion matrix: in the JSON (pass --report-dir DIR or --out FILE for confusion.png)"
                    : "  confusion matrix: " + png);
            err.flush();
            emitJson(result);
        }
        return 0;
    }

    /** One name per non-blank line; exactly one per class folder. */
    static List<String> readClassnames(Path file, int classes) {
        List<String> names;
        try {
            names = Files.readAllLines(file).stream().map(String::strip).filter(l -> !l.isEmpty()).toList();
        } catch (IOException e) {
            throw new InvalidInputException(file + ": cannot read class names: " + e.getMessage(), e);
        }
        if (names.size() != classes) {
            throw new InvalidInputException(file + ": " + names.size() + " class names for " + classes
                    + " class folders (--classnames needs one line per folder, in sorted folder order)");
        }
        return names;
    }
}
