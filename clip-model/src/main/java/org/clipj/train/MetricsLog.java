package org.clipj.train;

import com.fasterxml.jackson.databind.ObjectMapper;

import java.io.BufferedWriter;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * metrics.jsonl: one JSON object per optimizer step (step, loss, lr, logit_scale, images_per_s),
 * flushed per line so a killed run keeps every finished step. On resume, lines after the resumed
 * step are dropped first so the file matches the continued run.
 */
public final class MetricsLog implements AutoCloseable {
    private static final ObjectMapper JSON = new ObjectMapper();

    public record Entry(int step, double loss, double lr, double logitScale, double imagesPerSecond) {
    }

    private final BufferedWriter writer;
    private final List<Entry> entries = new ArrayList<>();

    /** Opens path, keeping the existing entries with step <= keepUpToStep (all when creating a fresh log, use -1 for none). */
    public MetricsLog(Path path, int keepUpToStep) {
        try {
            List<Entry> kept = new ArrayList<>();
            if (keepUpToStep >= 0 && Files.exists(path)) {
                for (Entry e : read(path)) {
                    if (e.step() <= keepUpToStep) {
                        kept.add(e);
                    }
                }
            }
            writer = Files.newBufferedWriter(path, StandardCharsets.UTF_8, StandardOpenOption.CREATE,
                    StandardOpenOption.TRUNCATE_EXISTING, StandardOpenOption.WRITE);
            for (Entry e : kept) {
                write(e);
            }
            writer.flush();
        } catch (IOException e) {
            throw new UncheckedIOException("cannot open metrics log " + path, e);
        }
    }

    public void append(Entry e) {
        try {
            write(e);
            writer.flush();
        } catch (IOException ex) {
            throw new UncheckedIOException(ex);
        }
    }

    private void write(Entry e) throws IOException {
        Map<String, Object> line = new LinkedHashMap<>();
        line.put("step", e.step());
        line.put("loss", e.loss());
        line.put("lr", e.lr());
        line.put("logit_scale", e.logitScale());
        line.put("images_per_s", e.imagesPerSecond());
        writer.write(JSON.writeValueAsString(line));
        writer.newLine();
        entries.add(e);
    }

    /** Every entry of this log (kept and appended), in order. */
    public List<Entry> entries() {
        return List.copyOf(entries);
    }

    /** Parses a metrics.jsonl file; a torn last line (killed mid-write) is ignored. */
    public static List<Entry> read(Path path) throws IOException {
        List<Entry> out = new ArrayList<>();
        for (String line : Files.readAllLines(path, StandardCharsets.UTF_8)) {
            if (line.isBlank()) {
                continue;
            }
            Map<?, ?> m;
            try {
                m = JSON.readValue(line, Map.class);
            } catch (IOException torn) {
                continue;
            }
            out.add(new Entry(((Number) m.get("step")).intValue(), num(m, "loss"), num(m, "lr"),
                    num(m, "logit_scale"), num(m, "images_per_s")));
        }
        return out;
    }

    private static double num(Map<?, ?> m, String key) {
        Object o = m.get(key);
        return o instanceof Number n ? n.doubleValue() : Double.NaN;
    }

    @Override
    public void close() {
        try {
            writer.close();
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }
}
