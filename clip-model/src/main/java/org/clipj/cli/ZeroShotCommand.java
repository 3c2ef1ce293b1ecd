package org.clipj.cli;

import org.clipj.Clip;
import org.clipj.runtime.InvalidInputException;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/** {@code clip zero-shot}: class probabilities of images among labels, with prompt ensembling. */
@Command(name = "zero-shot", mixinStandardHelpOptions = true,
        description = "Classify images zero-shot among labels (prompt ensembling over templates).")
public final class ZeroShotCommand extends CliCommand {
    @Mixin
    ModelOptions modelOptions;

    @Option(names = "--image", required = true, paramLabel = "F", description = "An image file (repeatable).")
    List<Path> images = new ArrayList<>();

    @Option(names = "--labels", required = true, paramLabel = "a,b,c", description = "Comma-separated class labels.")
    String labels;

    @Option(names = "--template", paramLabel = "T", description = "A prompt template with {} for the label (repeatable; default \"a photo of a {}.\").")
    List<String> templates = new ArrayList<>();

    @Option(names = "--templates", paramLabel = "FILE", description = "Templates, one per line ({} marks the label; # starts a comment).")
    Path templatesFile;

    @Mixin
    JsonOutput jsonOutput;

    @Override
    public Integer call() {
        List<String> labelList = Arrays.stream(labels.split(",")).map(String::strip).filter(s -> !s.isEmpty()).toList();
        if (labelList.isEmpty()) {
            throw new InvalidInputException("--labels has no label");
        }
        List<String> all = new ArrayList<>(templates);
        if (templatesFile != null) {
            all.addAll(readTemplates(templatesFile));
        }
        if (all.isEmpty()) {
            all.add("a photo of a {}.");
        }
        try (Clip clip = modelOptions.open()) {
            List<Clip.ZeroShotResult> results = clip.zeroShot(images, labelList, all);
            List<Map<String, Object>> rows = new ArrayList<>();
            for (int i = 0; i < images.size(); i++) {
                Clip.ZeroShotResult r = results.get(i);
                Map<String, Object> probs = new LinkedHashMap<>();
                for (int c = 0; c < labelList.size(); c++) probs.put(labelList.get(c), r.probabilities()[c]);
                Map<String, Object> row = new LinkedHashMap<>();
                row.put("file", images.get(i).toString());
                row.put("probs", probs);
                row.put("top", labelList.get(r.top()));
                rows.add(row);
                err().printf("%-40s %s (%.1f%%)%n", images.get(i), labelList.get(r.top()), 100 * r.probabilities()[r.top()]);
            }
            emitJson(Map.of("results", rows));
        }
        return 0;
    }

    /** Non-blank lines that are not comments; each must contain {}. */
    static List<String> readTemplates(Path file) {
        try {
            List<String> lines = Files.readAllLines(file).stream().map(String::strip)
                    .filter(l -> !l.isEmpty() && !l.startsWith("#")).toList();
            if (lines.isEmpty()) {
                throw new InvalidInputException(file + ": no templates in file");
            }
            for (String l : lines) {
                if (!l.contains("{}")) {
                    throw new InvalidInputException(file + ": template '" + l + "' has no {} for the label");
                }
            }
            return lines;
        } catch (IOException e) {
            throw new InvalidInputException(file + ": cannot read templates: " + e.getMessage(), e);
        }
    }
}
