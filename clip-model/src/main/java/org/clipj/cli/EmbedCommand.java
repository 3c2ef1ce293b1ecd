package org.clipj.cli;

import org.clipj.Clip;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;

/** {@code clip embed}: L2-normalized image and text embeddings as JSON. */
@Command(name = "embed", mixinStandardHelpOptions = true,
        description = "Embed images and texts (L2-normalized) with a CLIP checkpoint.")
public final class EmbedCommand extends CliCommand {
    @Mixin
    ModelOptions modelOptions;

    @Option(names = "--image", paramLabel = "F", description = "An image file (repeatable).")
    List<Path> images = new ArrayList<>();

    @Option(names = "--text", paramLabel = "S", description = "A text (repeatable).")
    List<String> texts = new ArrayList<>();

    @Mixin
    JsonOutput jsonOutput;

    @Override
    public Integer call() {
        if (images.isEmpty() && texts.isEmpty()) {
            throw new picocli.CommandLine.ParameterException(spec.commandLine(), "nothing to embed: give --image and/or --text");
        }
        long t0 = System.nanoTime();
        try (Clip clip = modelOptions.open()) {
            float[][] imageEmb = images.isEmpty() ? new float[0][] : clip.encodeImages(images);
            float[][] textEmb = texts.isEmpty() ? new float[0][] : clip.encodeTexts(texts);
            Map<String, Object> result = new LinkedHashMap<>();
            result.put("model", modelOptions.model.toString());
            result.put("device", clip.backend().name());
            result.put("precision", clip.model().precision().name().toLowerCase(Locale.ROOT));
            List<Map<String, Object>> imageRows = new ArrayList<>();
            for (int i = 0; i < images.size(); i++) {
                Map<String, Object> row = new LinkedHashMap<>();
                row.put("file", images.get(i).toString());
                row.put("embedding", imageEmb[i]);
                imageRows.add(row);
            }
            List<Map<String, Object>> textRows = new ArrayList<>();
            for (int i = 0; i < texts.size(); i++) {
                Map<String, Object> row = new LinkedHashMap<>();
                row.put("text", texts.get(i));
                row.put("embedding", textEmb[i]);
                textRows.add(row);
            }
            result.put("images", imageRows);
            result.put("texts", textRows);
            emitJson(result);
            err().printf("embedded %d image(s) and %d text(s) with %s on %s (dim %d) in %.2f s%n", images.size(), texts.size(),
                    modelOptions.model, clip.backend().description(), clip.embeddingSize(), (System.nanoTime() - t0) / 1e9);
        }
        return 0;
    }
}
