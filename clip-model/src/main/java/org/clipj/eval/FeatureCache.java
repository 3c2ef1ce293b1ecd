package org.clipj.eval;

import org.clipj.io.SafeTensors;
import org.clipj.runtime.InvalidInputException;
import org.clipj.runtime.Tensor;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.HexFormat;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;

/**
 * On-disk cache of image embeddings, so a linear probe sweep or a rerun does not re-encode a data set.
 * One safetensors file per (model, data set): {@code DIR/<model key>/<set key>.safetensors} with a
 * tensor {@code features} (N, E) and the N image keys in its metadata. A model key hashes the model
 * file's (or folder's files') path, size and modification time; an image key hashes the image's path,
 * size and modification time, so an edited model or image is simply a miss. Writes are atomic.
 */
public final class FeatureCache {
    private static final String KEYS = "clipj.feature_keys";

    private final Path file;
    private final Map<String, float[]> entries = new LinkedHashMap<>();
    private int embedDim;
    private boolean dirty;

    private FeatureCache(Path file) {
        this.file = file;
    }

    /** The cache of one data set (identified by {@code setId}, e.g. its root folder) under a model. */
    public static FeatureCache open(Path cacheDir, Path model, String setId, int embedDim) {
        FeatureCache cache = new FeatureCache(cacheDir.resolve(modelKey(model)).resolve(hash(setId) + ".safetensors"));
        cache.embedDim = embedDim;
        cache.load();
        return cache;
    }

    public Path file() {
        return file;
    }

    private void load() {
        if (!Files.isRegularFile(file)) {
            return;
        }
        SafeTensors.Contents contents;
        try {
            contents = SafeTensors.readContents(file);
        } catch (InvalidInputException | UncheckedIOException e) {
            return; // an unreadable cache is a miss; the next save replaces it
        }
        Tensor features = contents.tensors().get("features");
        String keys = contents.metadata().get(KEYS);
        if (features == null || keys == null || features.rank() != 2 || features.dim(1) != embedDim) {
            return;
        }
        String[] k = keys.isEmpty() ? new String[0] : keys.split("\n");
        if (k.length != features.dim(0)) {
            return;
        }
        float[] f = features.toFloatArray();
        for (int i = 0; i < k.length; i++) {
            float[] row = new float[embedDim];
            System.arraycopy(f, i * embedDim, row, 0, embedDim);
            entries.put(k[i], row);
        }
    }

    public float[] get(String imageKey) {
        return imageKey == null ? null : entries.get(imageKey);
    }

    public void put(String imageKey, float[] embedding) {
        if (embedding.length != embedDim) {
            throw new IllegalArgumentException("embedding of " + embedding.length + " dims in a cache of " + embedDim);
        }
        entries.put(imageKey, embedding);
        dirty = true;
    }

    public int size() {
        return entries.size();
    }

    /** Writes the cache if anything was added. */
    public void save() {
        if (!dirty) {
            return;
        }
        float[] data = new float[entries.size() * embedDim];
        int i = 0;
        for (float[] row : entries.values()) {
            System.arraycopy(row, 0, data, i++ * embedDim, embedDim);
        }
        try {
            Files.createDirectories(file.getParent());
        } catch (IOException e) {
            throw new InvalidInputException(file.getParent() + ": cannot create the feature cache folder: " + e.getMessage(), e);
        }
        SafeTensors.write(file, Map.of("features", Tensor.of(data, entries.size(), embedDim)),
                Map.of(KEYS, String.join("\n", entries.keySet())));
        dirty = false;
    }

    /** Key of an image file: its absolute path, size and modification time; null when it cannot be stat'ed. */
    public static String imageKey(Path image) {
        try {
            return hash(image.toAbsolutePath().normalize() + "|" + Files.size(image) + "|"
                    + Files.getLastModifiedTime(image).toMillis());
        } catch (IOException e) {
            return null;
        }
    }

    /** Key of a model file, or of a model folder's files. */
    public static String modelKey(Path model) {
        StringBuilder id = new StringBuilder();
        try {
            if (Files.isDirectory(model)) {
                try (Stream<Path> walk = Files.walk(model)) {
                    List<Path> files = walk.filter(Files::isRegularFile).sorted().toList();
                    for (Path f : files) appendStat(id, f);
                }
            } else {
                appendStat(id, model);
            }
        } catch (IOException e) {
            throw new InvalidInputException(model + ": cannot read the model file for the feature cache key: " + e.getMessage(), e);
        }
        return hash(id.toString());
    }

    private static void appendStat(StringBuilder id, Path f) throws IOException {
        id.append(f.toAbsolutePath().normalize()).append('|').append(Files.size(f)).append('|')
                .append(Files.getLastModifiedTime(f).toMillis()).append('\n');
    }

    static String hash(String s) {
        try {
            byte[] d = MessageDigest.getInstance("SHA-256").digest(s.getBytes(StandardCharsets.UTF_8));
            return HexFormat.of().formatHex(d, 0, 16);
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException(e);
        }
    }
}
