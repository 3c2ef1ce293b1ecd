package org.clipj.cli;

import org.clipj.data.SyntheticDataset;
import org.clipj.image.Preprocess;
import org.clipj.io.AtomicFiles;
import org.clipj.model.ClipConfig;
import org.clipj.model.ClipModel;
import org.clipj.runtime.Backend;
import org.clipj.runtime.Backends;
import org.clipj.runtime.Tensor;
import org.clipj.text.BpeTrainer;
import org.clipj.text.ClipTokenizer;
import org.clipj.train.LrSchedule;
import org.clipj.train.MetricsLog;
import org.clipj.train.TrainCheckpoints;
import org.clipj.train.Trainer;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

import java.awt.image.BufferedImage;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;

/**
 * {@code clip demo}: trains the tiny CLIP from scratch on the built-in synthetic data (colour-shape
 * pairs of {@link SyntheticDataset#isHeldOut} never shown together), then classifies held-out
 * images zero-shot among every colour-shape label with prompt ensembling.
 */
@Command(name = "demo", mixinStandardHelpOptions = true, description = "Train a small CLIP on synthetic data and evaluate it zero-shot on held-out combinations.")
public final class DemoCommand extends CliCommand {
    static final List<String> TEMPLATES = List.of("a photo of a {}.", "a {}.", "a small {}.", "a large {}.",
            "there is a {} in the picture.", "a {} on a plain background.");

    @Option(names = "--out", defaultValue = "demo-out", description = "Output folder (default demo-out).")
    Path out;

    @Option(names = "--steps", defaultValue = "1800", description = "Training steps (default 1800: about 5 minutes on 2 free cores).")
    int steps;

    @Option(names = "--batch", defaultValue = "64", description = "Contrastive batch size.")
    int batch;

    @Option(names = "--lr", defaultValue = "1e-3")
    double lr;

    @Option(names = "--warmup", defaultValue = "40")
    int warmup;

    @Option(names = "--train-size", defaultValue = "30000", description = "Synthetic training examples.")
    int trainSize;

    @Option(names = "--eval-size", defaultValue = "360", description = "Held-out images to classify.")
    int evalSize;

    @Option(names = "--seed", defaultValue = "0")
    long seed;

    @Option(names = "--device", paramLabel = "D", converter = DeviceName.class, description = DeviceName.DESCRIPTION)
    String device;

    private Path jsonFile;

    @Override
    public Integer call() throws Exception {
        long start = System.nanoTime();
        Files.createDirectories(out);
        SyntheticDataset train = new SyntheticDataset(seed, trainSize, 64, SyntheticDataset.Split.TRAIN);
        Path vocabFile = out.resolve(TrainCheckpoints.VOCAB_FILE);
        BpeTrainer.write(vocabFile, BpeTrainer.learn(train.captions(), 400, 2));
        ClipTokenizer tokenizer = ClipTokenizer.load(vocabFile);
        ClipConfig config = ClipConfig.named("tiny").withVocabSize(tokenizer.vocabSize());
        Map<String, Object> summary = new LinkedHashMap<>();
        try (Backend backend = Backends.select(device, "--device " + device)) {
            err().printf("clip demo: training the tiny CLIP (%s) on %d synthetic images, %d steps of %d, on %s%n",
                    describe(config), trainSize, steps, batch, backend.description());
            ClipModel model = ClipModel.initialize(config, seed, backend);
            Trainer.Options options = new Trainer.Options(batch, 1, lr, 0.1, warmup, steps, LrSchedule.Kind.COSINE,
                    1.0, true, true, seed, 0, 2, 1);
            double trainSeconds;
            List<MetricsLog.Entry> log;
            try (Trainer trainer = new Trainer(model, tokenizer, vocabFile, train, "synthetic:" + trainSize, "tiny",
                    options, out, err(), null)) {
                long t0 = System.nanoTime();
                trainer.train(steps);
                trainSeconds = (System.nanoTime() - t0) / 1e9;
                trainer.finish();
                log = trainer.metrics();
            }

            List<String> labels = SyntheticDataset.allLabels();
            float[][] classifier = classifier(model, tokenizer, labels);
            SyntheticDataset heldOut = new SyntheticDataset(seed + 1_000_003, evalSize, 64, SyntheticDataset.Split.HELD_OUT);
            SyntheticDataset seen = new SyntheticDataset(seed + 2_000_003, evalSize, 64, SyntheticDataset.Split.SEEN);
            Evaluation held = evaluate(model, heldOut, labels, classifier, true);
            Evaluation seenEval = evaluate(model, seen, labels, classifier, false);
            List<String> heldLabels = labels.stream().filter(l -> {
                int c = SyntheticDataset.COLOURS.indexOf(l.split(" ")[0]);
                int s = SyntheticDataset.SHAPES.indexOf(l.split(" ")[1]);
                return SyntheticDataset.isHeldOut(c, s);
            }).toList();
            Evaluation heldRestricted = evaluate(model, heldOut, heldLabels,
                    classifier(model, tokenizer, heldLabels), false);

            double chance = 1.0 / labels.size();
            printTable(err(), held, seenEval, heldRestricted, labels.size(), heldLabels.size());
            List<Map<String, Object>> examples = examples(heldOut, held, labels);

            MetricsLog.Entry last = log.getLast();
            summary.put("zero_shot_top1", held.top1());
            summary.put("chance", chance);
            summary.put("zero_shot_top5", held.top5());
            summary.put("labels", labels.size());
            summary.put("held_out_pairs", heldLabels);
            summary.put("zero_shot_top1_among_held_out_pairs", heldRestricted.top1());
            summary.put("chance_among_held_out_pairs", 1.0 / heldLabels.size());
            summary.put("seen_pairs_top1", seenEval.top1());
            summary.put("eval_images", evalSize);
            summary.put("steps", steps);
            summary.put("batch", batch);
            summary.put("train_images", trainSize);
            summary.put("final_loss", last.loss());
            summary.put("logit_scale", last.logitScale());
            summary.put("images_per_s", last.imagesPerSecond());
            summary.put("train_seconds", trainSeconds);
            summary.put("wall_seconds", (System.nanoTime() - start) / 1e9);
            summary.put("device", backend.description());
            summary.put("model", out.resolve("model.safetensors").toAbsolutePath().toString());
            summary.put("vocab", vocabFile.toAbsolutePath().toString());
            summary.put("loss_curve", out.resolve("loss.png").toAbsolutePath().toString());
            summary.put("examples", examples);
        }
        jsonFile = out.resolve("summary.json");
        emitJson(summary);
        jsonFile = null;
        emitJson(summary);
        err().printf(Locale.ROOT, "held-out zero-shot top-1 %.3f (chance %.3f); wrote %s%n",
                (double) summary.get("zero_shot_top1"), (double) summary.get("chance"), out.resolve("summary.json"));
        return 0;
    }

    @Override
    protected Path jsonOutFile() {
        return jsonFile;
    }

    private static String describe(ClipConfig c) {
        return String.format(Locale.ROOT, "ViT %dpx patch %d width %d x %d layers, text ctx %d width %d x %d layers, embed %d, vocab %d",
                c.imageResolution(), c.visionPatchSize(), c.visionWidth(), c.visionLayers(), c.contextLength(),
                c.textWidth(), c.textLayers(), c.embedDim(), c.vocabSize());
    }

    /** Per label: the mean of its L2-normalized template embeddings, renormalized. (L, E) */
    static float[][] classifier(ClipModel model, ClipTokenizer tokenizer, List<String> labels) {
        Backend be = model.backend();
        int ctx = model.config().contextLength();
        float[][] out = new float[labels.size()][];
        for (int l = 0; l < labels.size(); l++) {
            List<String> prompts = new ArrayList<>();
            for (String t : TEMPLATES) {
                prompts.add(t.replace("{}", labels.get(l)));
            }
            int[][] ids = tokenizer.tokenize(prompts, ctx, true);
            int[] flat = new int[prompts.size() * ctx];
            for (int i = 0; i < ids.length; i++) {
                System.arraycopy(ids[i], 0, flat, i * ctx, ctx);
            }
            float[][] rows = rows(be.download(model.encodeText(be.upload(Tensor.of(flat, prompts.size(), ctx)))));
            int e = rows[0].length;
            float[] mean = new float[e];
            for (float[] r : rows) {
                normalize(r);
                for (int k = 0; k < e; k++) {
                    mean[k] += r[k] / rows.length;
                }
            }
            normalize(mean);
            out[l] = mean;
        }
        return out;
    }

    record Evaluation(double top1, double top5, int[][] top3, float[][] probs, List<String> labels, int[] truth) {
    }

    /** Zero-shot top-1/top-5 of the data set's colour-shape labels among {@code labels}. */
    static Evaluation evaluate(ClipModel model, SyntheticDataset data, List<String> labels, float[][] classifier,
                               boolean keepProbs) {
        Backend be = model.backend();
        int r = model.config().imageResolution();
        double scale = Math.exp(be.download(model.logitScale()).toFloatArray()[0]);
        int n = data.size();
        int correct1 = 0;
        int correct5 = 0;
        int[][] top3 = new int[n][];
        float[][] probs = keepProbs ? new float[n][] : null;
        int[] truth = new int[n];
        int chunk = 64;
        for (int from = 0; from < n; from += chunk) {
            int b = Math.min(chunk, n - from);
            float[] px = new float[b * 3 * r * r];
            for (int i = 0; i < b; i++) {
                System.arraycopy(Preprocess.clip(data.image(from + i), r), 0, px, i * 3 * r * r, 3 * r * r);
            }
            float[][] feats = rows(be.download(model.encodeImage(be.upload(Tensor.of(px, b, 3, r, r)))));
            for (int i = 0; i < b; i++) {
                float[] f = feats[i];
                normalize(f);
                double[] logits = new double[labels.size()];
                for (int l = 0; l < labels.size(); l++) {
                    double dot = 0;
                    for (int k = 0; k < f.length; k++) {
                        dot += f[k] * classifier[l][k];
                    }
                    logits[l] = scale * dot;
                }
                Integer[] order = new Integer[labels.size()];
                for (int l = 0; l < order.length; l++) {
                    order[l] = l;
                }
                java.util.Arrays.sort(order, (p, q) -> Double.compare(logits[q], logits[p]));
                int gold = labels.indexOf(data.item(from + i).label());
                truth[from + i] = gold;
                correct1 += order[0] == gold ? 1 : 0;
                for (int k = 0; k < Math.min(5, order.length); k++) {
                    correct5 += order[k] == gold ? 1 : 0;
                }
                top3[from + i] = new int[]{order[0], order[Math.min(1, order.length - 1)], order[Math.min(2, order.length - 1)]};
                if (keepProbs) {
                    double max = logits[order[0]];
                    double sum = 0;
                    float[] p = new float[logits.length];
                    for (int l = 0; l < logits.length; l++) {
                        sum += Math.exp(logits[l] - max);
                    }
                    for (int l = 0; l < logits.length; l++) {
                        p[l] = (float) (Math.exp(logits[l] - max) / sum);
                    }
                    probs[from + i] = p;
                }
            }
        }
        return new Evaluation((double) correct1 / n, (double) correct5 / n, top3, probs, labels, truth);
    }

    private List<Map<String, Object>> examples(SyntheticDataset data, Evaluation eval, List<String> labels)
            throws java.io.IOException {
        Path dir = out.resolve("examples");
        Files.createDirectories(dir);
        List<Map<String, Object>> out = new ArrayList<>();
        err().println();
        err().println("examples (held-out combinations; images in " + dir + "):");
        for (int i = 0; i < Math.min(6, data.size()); i++) {
            BufferedImage img = data.image(i);
            Path file = dir.resolve(String.format("heldout-%d.png", i));
            AtomicFiles.writePng(file, img);
            Map<String, Object> m = new LinkedHashMap<>();
            m.put("file", file.toAbsolutePath().toString());
            m.put("caption", data.caption(i));
            m.put("truth", data.item(i).label());
            List<Map<String, Object>> top = new ArrayList<>();
            StringBuilder line = new StringBuilder();
            for (int k : eval.top3()[i]) {
                top.add(Map.of("label", labels.get(k), "prob", eval.probs()[i][k]));
                line.append(String.format(Locale.ROOT, "  %s %.2f", labels.get(k), eval.probs()[i][k]));
            }
            m.put("top", top);
            out.add(m);
            err().printf(Locale.ROOT, "  %-16s %-15s ->%s%n", file.getFileName(), data.item(i).label(), line);
        }
        return out;
    }

    static float[][] rows(Tensor t) {
        float[] a = t.toFloatArray();
        int n = t.dim(0);
        int e = t.dim(1);
        float[][] out = new float[n][e];
        for (int i = 0; i < n; i++) {
            System.arraycopy(a, i * e, out[i], 0, e);
        }
        return out;
    }

    static void normalize(float[] v) {
        double s = 0;
        for (float x : v) {
            s += x * x;
        }
        float inv = (float) (1 / Math.max(Math.sqrt(s), 1e-12));
        for (int i = 0; i < v.length; i++) {
            v[i] *= inv;
        }
    }

    /** The accuracy table on stderr. */
    private static void printTable(java.io.PrintWriter err, Evaluation held, Evaluation seen, Evaluation heldOnly,
                                   int labels, int heldLabels) {
        err.println();
        err.println("zero-shot evaluation (prompt ensemble of " + TEMPLATES.size() + " templates)");
        err.println("  images                       labels  top-1   top-5   chance");
        err.printf(Locale.ROOT, "  held-out colour-shape pairs  %6d  %.3f   %.3f   %.3f%n", labels, held.top1(), held.top5(), 1.0 / labels);
        err.printf(Locale.ROOT, "  held-out, among held-out     %6d  %.3f   %.3f   %.3f%n", heldLabels, heldOnly.top1(), heldOnly.top5(), 1.0 / heldLabels);
        err.printf(Locale.ROOT, "  seen pairs (fresh images)    %6d  %.3f   %.3f   %.3f%n", labels, seen.top1(), seen.top5(), 1.0 / labels);
    }
}
