package org.clipj.cli;

import org.clipj.Clip;
import org.clipj.data.CsvDataset;
import org.clipj.eval.ImageFeatures;
import org.clipj.eval.Retrieval;
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

/** {@code clip eval retrieval}: image-to-text and text-to-image recall on a captioned CSV. */
@Command(name = "retrieval", mixinStandardHelpOptions = true,
        description = "Image->text and text->image retrieval (R@1/5/10, mean and median rank) on a CSV of "
                + "(image, caption) rows; rows with the same image path are that image's captions.")
public final class EvalRetrievalCommand extends CliCommand {
    @Mixin
    ModelOptions modelOptions;

    @Option(names = "--data", required = true, paramLabel = "CSV", description = "CSV/TSV with a header (see --csv-*).")
    Path data;

    @Option(names = "--csv-img-key", defaultValue = "filepath", description = "Image path column (default filepath).")
    String csvImageKey;

    @Option(names = "--csv-caption-key", defaultValue = "title", description = "Caption column (default title).")
    String csvCaptionKey;

    @Option(names = "--csv-separator", defaultValue = "\t", description = "Field separator (default tab).")
    String csvSeparator;

    @Mixin
    JsonOutput jsonOutput;

    @Override
    public Integer call() {
        CsvDataset csv = EvalCommand.csv(data, csvImageKey, csvCaptionKey, csvSeparator);
        Map<Path, Integer> imageIndex = new LinkedHashMap<>();
        int[] rowImage = new int[csv.size()];
        for (int r = 0; r < csv.size(); r++) {
            rowImage[r] = imageIndex.computeIfAbsent(csv.path(r).toAbsolutePath().normalize(), p -> imageIndex.size());
        }
        List<Path> images = new ArrayList<>(imageIndex.keySet());
        PrintWriter err = err();
        try (Clip clip = modelOptions.open()) {
            long t0 = System.nanoTime();
            ImageFeatures.Extracted ex = ImageFeatures.extract(clip, images, null,
                    EvalCommand.progress(err, "images", images.size()));
            int[] kept = ex.kept();
            if (kept.length == 0) {
                throw new InvalidInputException(data + ": none of the " + images.size() + " images could be read");
            }
            int[] newIndex = new int[images.size()]; // image index -> index among the readable ones, or -1
            java.util.Arrays.fill(newIndex, -1);
            for (int k = 0; k < kept.length; k++) newIndex[kept[k]] = k;
            List<String> captions = new ArrayList<>();
            List<Integer> captionImage = new ArrayList<>();
            for (int r = 0; r < csv.size(); r++) {
                if (newIndex[rowImage[r]] >= 0) {
                    captions.add(csv.caption(r));
                    captionImage.add(newIndex[rowImage[r]]);
                }
            }
            float[][] texts = clip.encodeTexts(captions);
            long t1 = System.nanoTime();
            Retrieval.Result r = Retrieval.evaluate(clip.backend(), EvalCommand.select(ex.embeddings(), kept), texts,
                    captionImage.stream().mapToInt(Integer::intValue).toArray());

            Map<String, Object> result = new LinkedHashMap<>();
            result.put("task", "retrieval");
            result.put("model", modelOptions.model.toString());
            result.put("device", clip.backend().name());
            result.put("data", data.toString());
            result.put("images", kept.length);
            result.put("captions", captions.size());
            result.put("skipped", ex.skipped().size());
            result.put("skipped_files", ex.skipped());
            result.put("image_to_text", json(r.imageToText()));
            result.put("text_to_image", json(r.textToImage()));
            result.put("seconds", (t1 - t0) / 1e9);

            err.printf("retrieval on %s: %d images, %d captions, %s%n", data, kept.length, captions.size(),
                    clip.backend().description());
            EvalCommand.printSkipped(err, data.toString(), ex.skipped());
            err.printf("  %-14s %7s %7s %7s %10s %11s%n", "direction", "R@1", "R@5", "R@10", "mean rank", "median rank");
            print(err, "image->text", r.imageToText());
            print(err, "text->image", r.textToImage());
            err.flush();
            emitJson(result);
        }
        return 0;
    }

    private static Map<String, Object> json(Retrieval.Metrics m) {
        Map<String, Object> out = new LinkedHashMap<>();
        out.put("r1", m.recallAt1());
        out.put("r5", m.recallAt5());
        out.put("r10", m.recallAt10());
        out.put("mean_rank", m.meanRank());
        out.put("median_rank", m.medianRank());
        return out;
    }

    private static void print(PrintWriter err, String direction, Retrieval.Metrics m) {
        err.printf("  %-14s %6.2f%% %6.2f%% %6.2f%% %10.2f %11.1f%n", direction, 100 * m.recallAt1(), 100 * m.recallAt5(),
                100 * m.recallAt10(), m.meanRank(), m.medianRank());
    }
}
