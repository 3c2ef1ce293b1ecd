package org.clipj.train;

import com.fasterxml.jackson.databind.ObjectMapper;
import org.clipj.io.AtomicFiles;

import java.io.BufferedWriter;
import java.io.IOException;
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
 * step are dropped first (the kept lines are rewritten atomically) so the file matches the
 * continued run. A failed append (full disk) is a {@link org.clipj.io.WriteFailedException}; a torn
 * last line is ignored by {@link #read}.
 */
public final class MetricsLog implements AutoCloseable {
    private static final ObjectMapper JSON = new ObjectMapper();

    public record Entry(int step, double loss, double lr, double logitScale, double imagesPerSecond) {
    }

    private final Path path;
    private final BufferedWriter writer;
    private final List<Entry> entries = new ArrayList<>();

    /** Opens path, keeping the existing entries with step <= keepUpToStep (all when creating a fresh log, use -1 for none). */
    public MetricsLog(Path path, int keepUpToStep) {
        this.path = path;
        try {
            StringBuilder kept = new StringBuilder();
            if (keepUpToStep >= 0 && Files.exists(path)) {
                for (Entry e : read(path)) {
                    if (e.step() <= keepUpToStep) {
                        kept.append(line(e)).append('\n');
                        entries.add(e);
                    }
                }
            }
            AtomicFiles.writeString(path, kept.toString());
            writer = Files.newBufferedWriter(path, StandardCharsets.UTF_8, StandardOpenOption.APPEND);
        } catch (IOException e) {
            throw AtomicFiles.failure(path, -1, e);
        }
    }

    public void append(Entry e) {
        try {
            writer.write(line(e));
            writer.newLine();
            writer.flush();
            entries.add(e);
        } catch (IOException ex) {
            throw AtomicFiles.failure(path, -1, ex);
        }
    }

    private static String line(Entry e) throws IOException {
        Map<String, Object> line = new LinkedHashMap<>();
        line.put("step", e.step());
        line.put("loss", e.loss());
        line.put("lr", e.lr());
        line.put("logit_scale", e.logitScale());
        line.put("images_per_s", e.imagesPerSecond());
        return JSON.writeValueAsString(line);
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
            throw AtomicFiles.failure(path, -1, e);
        }
    }
}
