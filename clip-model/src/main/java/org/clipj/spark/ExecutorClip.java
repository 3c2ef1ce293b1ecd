package org.clipj.spark;

import org.apache.spark.SparkEnv;
import org.apache.spark.SparkFiles;
import org.clipj.Clip;
import org.clipj.model.Precision;
import org.clipj.runtime.InvalidInputException;

import java.net.URI;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;

/**
 * The models of this JVM (a Spark executor, or the driver in local mode): each {@link ClipModelSpec} is
 * loaded once, on first use, and shared by every task of the JVM ({@link Clip} is thread-safe); a
 * shutdown hook closes them when the JVM ends. Also the JVM's image decode pool, shared by the tasks.
 */
final class ExecutorClip {
    private static final Map<ClipModelSpec, Clip> MODELS = new ConcurrentHashMap<>();
    private static final ExecutorService DECODE_POOL;

    static {
        int threads = Math.max(1, Math.min(4, Runtime.getRuntime().availableProcessors()));
        DECODE_POOL = Executors.newFixedThreadPool(threads, r -> {
            Thread t = new Thread(r, "clipj-spark-decode");
            t.setDaemon(true);
            return t;
        });
        Runtime.getRuntime().addShutdownHook(new Thread(ExecutorClip::closeAll, "clipj-spark-close"));
    }

    private ExecutorClip() {
    }

    /** The JVM's model for the spec, loaded (once) on first use. */
    static Clip get(ClipModelSpec spec) {
        return MODELS.computeIfAbsent(spec, ExecutorClip::load);
    }

    static ExecutorService decodePool() {
        return DECODE_POOL;
    }

    /** Closes and forgets every model of this JVM (the shutdown hook; also for a driver that is done). */
    static void closeAll() {
        for (ClipModelSpec spec : MODELS.keySet()) {
            Clip clip = MODELS.remove(spec);
            if (clip != null) {
                clip.close();
            }
        }
    }

    private static Clip load(ClipModelSpec spec) {
        Path vocab = spec.vocab() == null ? null : localFile(spec.vocab(), "vocabulary");
        Precision precision = spec.precision() == null ? null : Precision.parse(spec.precision());
        return Clip.load(localFile(spec.model(), "model"), new Clip.Options(vocab, spec.device(), spec.batch(), precision, spec.arch()));
    }

    /**
     * A path as this JVM sees it: a local or shared-filesystem path (or file: URI) that exists here, else
     * the file of that name shipped with the job (--files, SparkContext.addFile).
     */
    static Path localFile(String name, String what) {
        Path path = name.startsWith("file:") ? Path.of(URI.create(name)) : Path.of(name);
        if (Files.exists(path)) {
            return path;
        }
        if (SparkEnv.get() != null && path.getFileName() != null) {
            Path shipped = Path.of(SparkFiles.get(path.getFileName().toString()));
            if (Files.exists(shipped)) {
                return shipped;
            }
        }
        throw new InvalidInputException(what + " " + name + " not found on this executor: put it on a filesystem every "
                + "executor mounts at the same path, or ship it with --files (SparkContext.addFile) and pass its file name");
    }
}
