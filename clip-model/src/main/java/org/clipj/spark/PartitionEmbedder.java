package org.clipj.spark;

import org.apache.hadoop.fs.FSDataInputStream;
import org.apache.hadoop.fs.FileSystem;
import org.apache.spark.TaskContext;
import org.apache.spark.sql.Row;
import org.apache.spark.util.TaskCompletionListener;
import org.clipj.Clip;
import org.clipj.image.ImageLoader;
import org.clipj.image.Preprocess;

import java.io.IOException;
import java.io.Serializable;
import java.net.URI;
import java.nio.file.Path;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.Deque;
import java.util.Iterator;
import java.util.List;
import java.util.NoSuchElementException;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.Future;

/**
 * Embeds the rows of one partition, batch by batch, as an iterator (memory bounded by three batches):
 * images are decoded and preprocessed on the JVM's decode pool up to two batches ahead of the model
 * (as {@link Clip#encodeImages} does), texts are tokenized and embedded per batch. A row whose image
 * cannot be read or decoded, or whose caption is null, comes out with null embeddings and an error;
 * a failure of the model itself fails the task.
 */
final class PartitionEmbedder implements Serializable {
    private static final long serialVersionUID = 1L;

    /** One output row: the row id, the L2-normalized embeddings (null when absent or failed), the error (null: none). */
    record Embedded(String path, float[] image, float[] text, String error) {
    }

    private final ClipModelSpec spec;
    private final InputColumns.Resolved columns;
    private final HadoopConf hadoopConf;
    private final Counters counters;

    PartitionEmbedder(ClipModelSpec spec, InputColumns.Resolved columns, HadoopConf hadoopConf, Counters counters) {
        this.spec = spec;
        this.columns = columns;
        this.hadoopConf = hadoopConf;
        this.counters = counters;
    }

    /** The embedded rows of a partition, computed lazily as they are consumed; the model loads on the first batch. */
    Iterator<Embedded> embed(Iterator<Row> rows) {
        return rows.hasNext() ? new Batches(rows) : Collections.emptyIterator();
    }

    /** A row waiting for its batch: its id, its image's pixels being decoded (null: no image column), its caption. */
    private record Pending(String path, Future<float[]> pixels, String text, String textError) {
    }

    private final class Batches implements Iterator<Embedded> {
        private final Iterator<Row> rows;
        private final Clip clip;
        private final int batch;
        private final Deque<Pending> ahead = new ArrayDeque<>();
        private Iterator<Embedded> current = Collections.emptyIterator();

        Batches(Iterator<Row> rows) {
            this.rows = rows;
            this.clip = ExecutorClip.get(spec);
            this.batch = spec.batch();
            TaskContext task = TaskContext.get();
            if (task != null) {
                TaskCompletionListener cancelDecodes = ctx -> ahead.forEach(p -> {
                    if (p.pixels() != null) p.pixels().cancel(true);
                });
                task.addTaskCompletionListener(cancelDecodes);
            }
        }

        @Override
        public boolean hasNext() {
            while (!current.hasNext()) {
                if (ahead.isEmpty() && !rows.hasNext()) {
                    return false;
                }
                current = nextBatch().iterator();
            }
            return true;
        }

        @Override
        public Embedded next() {
            if (!hasNext()) {
                throw new NoSuchElementException();
            }
            return current.next();
        }

        private void fill() {
            while (ahead.size() < 2 * batch && rows.hasNext()) {
                ahead.add(pending(rows.next()));
            }
        }

        private Pending pending(Row row) {
            Object image = columns.image() >= 0 ? row.get(columns.image()) : null;
            String path = columns.id() >= 0 ? String.valueOf(row.get(columns.id()))
                    : image instanceof String s ? s : null;
            Future<float[]> pixels = null;
            if (columns.image() >= 0) {
                String name = path != null ? path : "row image";
                int res = clip.imageResolution();
                pixels = ExecutorClip.decodePool().submit(() -> decode(image, name, res));
            }
            String text = null;
            String textError = null;
            if (columns.text() >= 0) {
                text = row.getString(columns.text());
                if (text == null) {
                    textError = "no caption (null)";
                }
            }
            return new Pending(path, pixels, text, textError);
        }

        private List<Embedded> nextBatch() {
            fill();
            List<Pending> items = new ArrayList<>(batch);
            while (items.size() < batch && !ahead.isEmpty()) {
                items.add(ahead.poll());
            }
            fill(); // the next two batches decode while this one runs through the model
            long start = System.currentTimeMillis();
            int n = items.size();
            float[][] images = new float[n][];
            String[] errors = new String[n];
            if (columns.image() >= 0) {
                int pixelsPerImage = 3 * clip.imageResolution() * clip.imageResolution();
                float[] pixels = new float[n * pixelsPerImage];
                int[] rowOf = new int[n];
                int kept = 0;
                for (int i = 0; i < n; i++) {
                    try {
                        System.arraycopy(await(items.get(i).pixels()), 0, pixels, kept * pixelsPerImage, pixelsPerImage);
                        rowOf[kept++] = i;
                    } catch (DecodeFailure e) {
                        errors[i] = e.getMessage();
                    }
                }
                if (kept > 0) {
                    float[][] emb = clip.encodePixels(kept == n ? pixels : Arrays.copyOf(pixels, kept * pixelsPerImage), kept);
                    for (int k = 0; k < kept; k++) images[rowOf[k]] = emb[k];
                }
                counters.images.add(new long[]{start, System.currentTimeMillis(), kept});
            }
            float[][] texts = new float[n][];
            if (columns.text() >= 0) {
                List<String> captions = new ArrayList<>(n);
                List<Integer> rowOf = new ArrayList<>(n);
                for (int i = 0; i < n; i++) {
                    Pending p = items.get(i);
                    if (p.textError() == null) {
                        captions.add(p.text());
                        rowOf.add(i);
                    } else {
                        errors[i] = errors[i] == null ? p.textError() : errors[i] + "; " + p.textError();
                    }
                }
                if (!captions.isEmpty()) {
                    float[][] emb = clip.encodeTexts(captions);
                    for (int k = 0; k < emb.length; k++) texts[rowOf.get(k)] = emb[k];
                }
                counters.texts.add(captions.size());
            }
            List<Embedded> out = new ArrayList<>(n);
            long failed = 0;
            for (int i = 0; i < n; i++) {
                out.add(new Embedded(items.get(i).path(), images[i], texts[i], errors[i]));
                if (errors[i] != null) failed++;
            }
            counters.rows.add(n);
            counters.errors.add(failed);
            return out;
        }
    }

    /** A row's image could not be read or decoded: the message names it and says why. */
    private static final class DecodeFailure extends Exception {
        private static final long serialVersionUID = 1L;

        DecodeFailure(String message) {
            super(message, null, false, false);
        }
    }

    /** (3, res, res) CLIP pixels of a path (local, file: URI or any Hadoop filesystem) or of encoded bytes. */
    private float[] decode(Object image, String name, int res) throws DecodeFailure {
        try {
            if (image == null) {
                throw new DecodeFailure(name + ": no image (null)");
            }
            if (image instanceof byte[] bytes) {
                return Preprocess.clip(ImageLoader.readOriginal(bytes, name), res);
            }
            String location = (String) image;
            org.apache.hadoop.fs.Path file = new org.apache.hadoop.fs.Path(location);
            URI uri = file.toUri();
            if (uri.getScheme() == null || "file".equals(uri.getScheme())) {
                return Preprocess.clip(Path.of(uri.getPath()), res);
            }
            FileSystem fs = file.getFileSystem(hadoopConf.get()); // cached and shared by the JVM: not closed here
            try (FSDataInputStream in = fs.open(file)) {
                return Preprocess.clip(ImageLoader.readOriginal(in.readAllBytes(), location), res);
            }
        } catch (DecodeFailure e) {
            throw e;
        } catch (IOException e) {
            throw new DecodeFailure(name + ": cannot read: " + e);
        } catch (RuntimeException e) {
            String m = e.getMessage() == null ? e.getClass().getSimpleName() : e.getMessage();
            throw new DecodeFailure(m.contains(name) ? m : name + ": " + m);
        }
    }

    private static float[] await(Future<float[]> f) throws DecodeFailure {
        try {
            return f.get();
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IllegalStateException("interrupted while decoding images", e);
        } catch (ExecutionException e) {
            if (e.getCause() instanceof DecodeFailure d) {
                throw d;
            }
            throw new IllegalStateException("image decoding failed", e.getCause());
        }
    }
}
