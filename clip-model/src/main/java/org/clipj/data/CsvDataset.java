package org.clipj.data;

import org.clipj.image.ImageLoader;
import org.clipj.runtime.InvalidInputException;

import java.awt.image.BufferedImage;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

/**
 * open_clip's CsvDataset: a CSV/TSV with a header row naming an image-path column and a caption
 * column (defaults filepath and title, tab-separated). Relative image paths are resolved against
 * the CSV's folder. Fields may be double-quoted ("" inside quotes is a quote); images are decoded
 * only when asked for, so a missing or corrupt one is a per-example error the loader skips.
 */
public final class CsvDataset implements ImageTextDataset {
    private final Path csv;
    private final List<Path> images = new ArrayList<>();
    private final List<String> captions = new ArrayList<>();

    public CsvDataset(Path csv, String imageKey, String captionKey, char separator) {
        this.csv = csv;
        List<String> lines;
        try {
            lines = Files.readAllLines(csv, StandardCharsets.UTF_8);
        } catch (NoSuchFileException e) {
            throw new InvalidInputException("no such file: " + csv, e);
        } catch (IOException e) {
            throw new InvalidInputException(csv + ": cannot read: " + e.getMessage(), e);
        }
        List<List<String>> rows = parse(String.join("\n", lines), separator);
        if (rows.isEmpty()) {
            throw new InvalidInputException(csv + ": empty; expected a header row with columns '" + imageKey + "' and '"
                    + captionKey + "'");
        }
        List<String> header = rows.getFirst();
        int imageCol = header.indexOf(imageKey);
        int captionCol = header.indexOf(captionKey);
        if (imageCol < 0 || captionCol < 0) {
            throw new InvalidInputException(csv + ": header " + header + " lacks column '"
                    + (imageCol < 0 ? imageKey : captionKey) + "' (see --csv-img-key, --csv-caption-key, --csv-separator)");
        }
        Path base = csv.toAbsolutePath().getParent();
        for (int r = 1; r < rows.size(); r++) {
            List<String> row = rows.get(r);
            if (row.size() == 1 && row.getFirst().isEmpty()) {
                continue;
            }
            if (row.size() <= Math.max(imageCol, captionCol)) {
                throw new InvalidInputException(csv + ": row " + (r + 1) + " has " + row.size() + " fields, the header has "
                        + header.size());
            }
            images.add(base.resolve(row.get(imageCol)));
            captions.add(row.get(captionCol));
        }
        if (images.isEmpty()) {
            throw new InvalidInputException(csv + ": no rows after the header");
        }
    }

    /** Splits text into rows of fields; quoted fields may hold separators, quotes ("") and newlines. */
    static List<List<String>> parse(String text, char separator) {
        List<List<String>> rows = new ArrayList<>();
        List<String> row = new ArrayList<>();
        StringBuilder field = new StringBuilder();
        boolean quoted = false;
        boolean any = false;
        for (int i = 0; i < text.length(); i++) {
            char c = text.charAt(i);
            any = true;
            if (quoted) {
                if (c == '"') {
                    if (i + 1 < text.length() && text.charAt(i + 1) == '"') {
                        field.append('"');
                        i++;
                    } else {
                        quoted = false;
                    }
                } else {
                    field.append(c);
                }
            } else if (c == '"' && field.isEmpty()) {
                quoted = true;
            } else if (c == separator) {
                row.add(field.toString());
                field.setLength(0);
            } else if (c == '\n') {
                row.add(stripCr(field));
                field.setLength(0);
                rows.add(row);
                row = new ArrayList<>();
                any = false;
            } else {
                field.append(c);
            }
        }
        if (any) {
            row.add(stripCr(field));
            rows.add(row);
        }
        return rows;
    }

    private static String stripCr(StringBuilder field) {
        int n = field.length();
        return n > 0 && field.charAt(n - 1) == '\r' ? field.substring(0, n - 1) : field.toString();
    }

    @Override
    public int size() {
        return images.size();
    }

    @Override
    public BufferedImage image(int i) {
        return ImageLoader.readOriginal(images.get(i)); // alpha and palette kept: Preprocess resizes them as PIL does
    }

    @Override
    public String caption(int i) {
        return captions.get(i);
    }

    @Override
    public String source(int i) {
        return images.get(i).toString();
    }

    public Path path(int i) {
        return images.get(i);
    }

    @Override
    public String toString() {
        return "csv:" + csv;
    }
}
