package org.clipj.cli;

import org.clipj.Clip;
import org.clipj.data.ImageFolder;
import org.clipj.eval.ClassificationMetrics;
import org.clipj.eval.EvalCharts;
import org.clipj.eval.FeatureCache;
import org.clipj.eval.ImageFeatures;
import org.clipj.eval.LinearProbe;
import org.clipj.runtime.InvalidInputException;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

import java.io.PrintWriter;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * {@code clip eval linear-probe}: logistic regression on frozen image features (cached per model and
 * image), regularization chosen on a held-out part of the training split, accuracy on the test split.
 */
@Command(name = "linear-probe", mixinStandardHelpOptions = true,
        description = "Linear-probe accuracy: L2-regularized logistic regression (L-BFGS) on frozen image features, "
                + "strength chosen on a validation part of --train, refit on all of --train, scored on --test.")
public final class EvalLinearProbeCommand extends CliCommand {
    @Mixin
    ModelOptions modelOptions;

    @Option(names = "--train", required = true, paramLabel = "DIR", description = "Training image folder (ROOT/CLASS/IMAGE).")
    Path train;

    @Option(names = "--test", required = true, paramLabel = "DIR", description = "Test image folder with the same class folders.")
    Path test;

    @Option(names = "--val-fraction", defaultValue = "0.2", paramLabel = "F",
            description = "Part of each training class held out for the regularization sweep (default: ${DEFAULT-VALUE}).")
    double valFraction;

    @Option(names = "--seed", defaultValue = "0", description = "Seed of the validation split (default: ${DEFAULT-VALUE}).")
    long seed;

    @Option(names = "--cache-dir", paramLabel = "DIR",
            description = "Feature cache (default: $XDG_CACHE_HOME/clipj/features, else ~/.cache/clipj/features).")
    Path cacheDir;

    @Option(names = "--no-cache", description = "Neither read nor write the feature cache.")
    boolean noCache;

    @Option(names = "--report-dir", paramLabel = "DIR", description = "Where confusion.png (test split) goes (default: next to --out; none without either).")
    Path reportDir;

    @Mixin
    JsonOutput jsonOutput;

    @Override
    public Integer call() {
        if (!(valFraction > 0 && valFraction < 1)) {
            throw new InvalidInputException("--val-fraction must be in (0, 1), got " + valFraction);
        }
        ImageFolder trainSet = new ImageFolder(train);
        ImageFolder testSet = new ImageFolder(test);
        if (!trainSet.classes().equals(testSet.classes())) {
            throw new InvalidInputException("--train " + train + " has classes " + trainSet.classes() + " but --test " + test
                    + " has " + testSet.classes() + "; both need the same class folders");
        }
        List<String> names = trainSet.classes();
        PrintWriter err = err();
        try (Clip clip = modelOptions.open()) {
            long t0 = System.nanoTime();
            Split trainData = features(clip, trainSet, "train");
            Split testData = features(clip, testSet, "test");
            long t1 = System.nanoTime();
            LinearProbe.Result fit;
            try {
                fit = LinearProbe.fitWithSweep(trainData.x(), trainData.y(), names.size(), valFraction, seed);
            } catch (IllegalArgumentException e) {
                throw new InvalidInputException("--train " + train + ": " + e.getMessage(), e);
            }
            long t2 = System.nanoTime();
            LinearProbe.Model model = fit.model();
            float[][] scores = new float[testData.x().length][];
            for (int i = 0; i < scores.length; i++) {
                double[] z = model.logits(testData.x()[i]);
                scores[i] = new float[z.length];
                for (int c = 0; c < z.length; c++) scores[i][c] = (float) z[c];
            }
            ClassificationMetrics m = ClassificationMetrics.of(scores, testData.y(), names.size());
            Path reports = EvalCommand.reportDir(reportDir, jsonOutput.file);
            Path png = reports == null ? null : reports.resolve("confusion.png");
            if (png != null) {
                EvalCharts.writeConfusionMatrix(png, m.confusion(), names);
            }

            List<Map<String, Object>> sweep = new ArrayList<>();
            for (LinearProbe.SweepPoint p : fit.sweep()) {
                sweep.add(Map.of("lambda", p.lambda(), "validation_accuracy", p.validationAccuracy()));
            }
            Map<String, Object> result = new LinkedHashMap<>();
            result.put("task", "linear-probe");
            result.put("model", modelOptions.model.toString());
            result.put("device", clip.backend().name());
            result.put("train", train.toString());
            result.put("test", test.toString());
            result.put("classes", names);
            result.put("train_images", trainData.x().length);
            result.put("test_images", testData.x().length);
            result.put("skipped", trainData.skipped().size() + testData.skipped().size());
            List<String> skippedFiles = new ArrayList<>(trainData.skipped());
            skippedFiles.addAll(testData.skipped());
            result.put("skipped_files", skippedFiles);
            result.put("cache_hits", trainData.cacheHits() + testData.cacheHits());
            result.put("accuracy", m.top1());
            result.put("top5", m.top5());
            result.put("lambda", fit.chosenLambda());
            result.put("sweep", sweep);
            result.put("iterations", model.iterations());
            result.put("gradient_norm", model.gradientNorm());
            result.put("per_class", EvalCommand.perClass(names, m.perClassAccuracy(), m.confusion()));
            result.put("confusion", m.confusion());
            result.put("confusion_png", png == null ? null : png.toString());
            result.put("feature_seconds", (t1 - t0) / 1e9);
            result.put("fit_seconds", (t2 - t1) / 1e9);

            err.printf("linear probe: %d train / %d test images, %d classes, features of dim %d (%d from the cache), %s%n",
                    trainData.x().length, testData.x().length, names.size(), clip.embeddingSize(),
                    trainData.cacheHits() + testData.cacheHits(), clip.backend().description());
            EvalCommand.printSkipped(err, train.toString(), trainData.skipped());
            EvalCommand.printSkipped(err, test.toString(), testData.skipped());
            err.printf("  %-12s %s%n", "lambda", "validation accuracy");
            for (LinearProbe.SweepPoint p : fit.sweep()) {
                err.printf("  %-12.3g %6.2f%%%s%n", p.lambda(), 100 * p.validationAccuracy(),
                        p.lambda() == fit.chosenLambda() ? "  <- chosen" : "");
            }
            err.printf("  test accuracy %6.2f%% (top-5 %6.2f%%) at lambda %.3g; features %.1f s, fit %.1f s%n",
                    100 * m.top1(), 100 * m.top5(), fit.chosenLambda(), (t1 - t0) / 1e9, (t2 - t1) / 1e9);
            EvalCommand.printPerClass(err, names, m.perClassAccuracy(), m.confusion());
            if (png != null) {
                err.println("  confusion matrix: " + png);
            }
            err.flush();
            emitJson(result);
        }
        return 0;
    }

    /** Features (N, E) and labels (N) of the readable images of a split. */
    private record Split(float[][] x, int[] y, List<String> skipped, int cacheHits) {
    }

    private Split features(Clip clip, ImageFolder set, String what) {
        List<Path> files = new ArrayList<>(set.size());
        int[] labels = new int[set.size()];
        for (int i = 0; i < set.size(); i++) {
            files.add(set.path(i));
            labels[i] = set.label(i);
        }
        FeatureCache cache = noCache ? null : FeatureCache.open(cacheRoot(), modelOptions.model,
                set.root().toAbsolutePath().normalize().toString(), clip.embeddingSize());
        ImageFeatures.Extracted ex = ImageFeatures.extract(clip, files, cache,
                EvalCommand.progress(err(), what, files.size()));
        int[] kept = ex.kept();
        if (kept.length == 0) {
            throw new InvalidInputException(set.root() + ": none of the " + files.size() + " images could be read");
        }
        return new Split(EvalCommand.select(ex.embeddings(), kept), EvalCommand.select(labels, kept), ex.skipped(),
                ex.cacheHits());
    }

    private Path cacheRoot() {
        if (cacheDir != null) {
            return cacheDir;
        }
        String xdg = System.getenv("XDG_CACHE_HOME");
        Path base = xdg != null && !xdg.isBlank() ? Path.of(xdg) : Path.of(System.getProperty("user.home"), ".cache");
        return base.resolve("clipj").resolve("features");
    }
}
