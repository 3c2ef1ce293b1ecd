package org.clipj.eval;

import org.clipj.runtime.InvalidInputException;

import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;

/** Zero-shot prompt templates: one per line, {} marks the class name, # starts a comment line. */
public final class Templates {
    private static final String BUILT_IN = "templates.txt";

    private Templates() {
    }

    /** The built-in ensemble (resource org/clipj/eval/templates.txt). */
    public static List<String> builtIn() {
        try (InputStream in = Templates.class.getResourceAsStream(BUILT_IN)) {
            if (in == null) {
                throw new IllegalStateException("resource org/clipj/eval/" + BUILT_IN + " is missing from the jar");
            }
            return parse(new String(in.readAllBytes(), StandardCharsets.UTF_8), "built-in templates");
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    public static List<String> read(Path file) {
        try {
            return parse(Files.readString(file), file.toString());
        } catch (IOException e) {
            throw new InvalidInputException(file + ": cannot read templates: " + e.getMessage(), e);
        }
    }

    static List<String> parse(String text, String source) {
        List<String> lines = Arrays.stream(text.split("\n")).map(String::strip)
                .filter(l -> !l.isEmpty() && !l.startsWith("#")).toList();
        if (lines.isEmpty()) {
            throw new InvalidInputException(source + ": no templates");
        }
        for (String l : lines) {
            if (!l.contains("{}")) {
                throw new InvalidInputException(source + ": template '" + l + "' has no {} for the class name");
            }
        }
        return lines;
    }
}
