package org.clipj.io;

import javax.imageio.ImageIO;
import javax.imageio.stream.ImageOutputStream;
import javax.imageio.stream.MemoryCacheImageOutputStream;
import java.awt.image.RenderedImage;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.channels.WritableByteChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.AccessDeniedException;
import java.nio.file.DirectoryNotEmptyException;
import java.nio.file.FileAlreadyExistsException;
import java.nio.file.FileSystemException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.NotDirectoryException;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.Locale;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ThreadLocalRandom;
import java.util.stream.Stream;

/**
 * The one way clipj writes a file: into {@code .NAME.RANDOM.partial} in the target's folder with
 * plain channel writes (no memory mapping: on a full disk a mapped write is a SIGBUS, which the
 * JVM turns into an InternalError), forced to disk, then renamed over the target. On any failure
 * the partial file is removed and the target is left as it was; a cause on the user's side (full
 * disk, quota, read-only or vanished folder, permission) becomes a {@link WriteFailedException}
 * naming the path, the bytes needed and the bytes free where known.
 *
 * <p>Partial files and folders being written are registered, so that a second Ctrl-C can remove
 * them before the process halts ({@link #removeInFlight}); leftovers of a crashed process are
 * found by their {@code .partial} suffix ({@link #removeStalePartials}).
 */
public final class AtomicFiles {
    public static final String PARTIAL_SUFFIX = ".partial";
    private static final Set<Path> IN_FLIGHT = ConcurrentHashMap.newKeySet();
    // Creating a partial file or folder and renaming one into place happen under this lock, so that
    // once removeInFlight has run no partial can appear, be half-removed or be half-renamed.
    private static final Object PARTIALS = new Object();
    private static boolean halting;

    /** Writes the content of one file to the channel it is given. */
    @FunctionalInterface
    public interface Content {
        void writeTo(WritableByteChannel out) throws IOException;
    }

    private AtomicFiles() {
    }

    /**
     * Writes {@code target} atomically. {@code expectedBytes} (or -1 when unknown) only goes into
     * the error message.
     */
    public static void write(Path target, long expectedBytes, Content content) {
        Path file = target.toAbsolutePath();
        Path dir = file.getParent();
        Path temp = dir.resolve("." + file.getFileName() + "."
                + Long.toHexString(ThreadLocalRandom.current().nextLong() >>> 1) + PARTIAL_SUFFIX);
        try {
            FileChannel opened;
            synchronized (PARTIALS) {
                checkNotHalting();
                Files.createDirectories(dir);
                opened = FileChannel.open(temp, StandardOpenOption.CREATE_NEW, StandardOpenOption.WRITE);
                IN_FLIGHT.add(temp);
            }
            try (FileChannel ch = opened) {
                content.writeTo(ch);
                ch.force(true);
            }
            synchronized (PARTIALS) {
                checkNotHalting();
                Files.move(temp, file, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
            }
            syncDirectory(dir);
        } catch (IOException e) {
            deleteQuietly(temp); // first, so that the free space reported is what is left
            throw failure(file, expectedBytes, e);
        } finally {
            deleteQuietly(temp);
            IN_FLIGHT.remove(temp);
        }
    }

    public static void writeBytes(Path target, byte[] bytes) {
        write(target, bytes.length, ch -> writeFully(ch, ByteBuffer.wrap(bytes)));
    }

    /** Writes text as UTF-8. */
    public static void writeString(Path target, String text) {
        writeBytes(target, text.getBytes(StandardCharsets.UTF_8));
    }

    /** Encodes a PNG in memory (no ImageIO cache file in the temp folder), then writes it. */
    public static void writePng(Path target, RenderedImage image) {
        ByteArrayOutputStream bytes = new ByteArrayOutputStream();
        try (ImageOutputStream out = new MemoryCacheImageOutputStream(bytes)) {
            if (!ImageIO.write(image, "png", out)) {
                throw new IllegalStateException("no PNG writer in this JDK");
            }
        } catch (IOException e) {
            throw new UncheckedIOException("cannot encode " + target + " as PNG", e);
        }
        writeBytes(target, bytes.toByteArray());
    }

    /** Copies {@code source} to {@code target} atomically. */
    public static void copy(Path source, Path target) {
        long size;
        try {
            size = Files.size(source);
        } catch (IOException e) {
            throw failure(source, -1, e);
        }
        write(target, size, ch -> {
            try (FileChannel in = FileChannel.open(source, StandardOpenOption.READ)) {
                for (long at = 0; at < size; ) {
                    at += in.transferTo(at, size - at, ch);
                }
            }
        });
    }

    public static void writeFully(WritableByteChannel ch, ByteBuffer buffer) throws IOException {
        while (buffer.hasRemaining()) {
            ch.write(buffer);
        }
    }

    /** Creates a partial folder (empty: an old one is removed first) that {@link #removeInFlight} will remove. */
    public static void createPartialDirectory(Path partial) throws IOException {
        Path dir = partial.toAbsolutePath();
        synchronized (PARTIALS) {
            checkNotHalting();
            deleteTree(dir);
            Files.createDirectories(dir);
            IN_FLIGHT.add(dir);
        }
    }

    /** Renames a complete partial folder over {@code target} (removed first) and forgets it. */
    public static void commitDirectory(Path partial, Path target) throws IOException {
        synchronized (PARTIALS) {
            checkNotHalting();
            deleteTree(target);
            Files.move(partial, target, StandardCopyOption.ATOMIC_MOVE);
            IN_FLIGHT.remove(partial.toAbsolutePath());
        }
    }

    /** Removes a partial folder that failed and forgets it. */
    public static void abandonDirectory(Path partial) {
        deleteQuietly(partial);
        IN_FLIGHT.remove(partial.toAbsolutePath());
    }

    /**
     * Removes every partial file and folder being written now, for a process about to halt; from
     * then on no partial can be created or renamed into place (writers still running fail).
     */
    public static void removeInFlight() {
        synchronized (PARTIALS) {
            halting = true;
            for (Path p : List.copyOf(IN_FLIGHT)) {
                deleteQuietly(p);
            }
        }
    }

    private static void checkNotHalting() {
        if (halting) {
            throw new IllegalStateException("the process is halting: no more files are written");
        }
    }

    /** Removes {@code .*.partial} files and folders in {@code dir} that this process is not writing; returns them. */
    public static List<Path> removeStalePartials(Path dir) {
        List<Path> removed = new ArrayList<>();
        if (!Files.isDirectory(dir)) {
            return removed;
        }
        try (Stream<Path> s = Files.list(dir)) {
            for (Path p : s.toList()) {
                String name = p.getFileName().toString();
                if (name.startsWith(".") && name.endsWith(PARTIAL_SUFFIX) && !IN_FLIGHT.contains(p.toAbsolutePath())) {
                    deleteTree(p);
                    removed.add(p);
                }
            }
        } catch (IOException e) {
            throw failure(dir, -1, e);
        }
        return removed;
    }

    /** Deletes a file or a folder tree; nothing when it does not exist. */
    public static void deleteTree(Path p) throws IOException {
        if (!Files.exists(p, java.nio.file.LinkOption.NOFOLLOW_LINKS)) {
            return;
        }
        try (Stream<Path> s = Files.walk(p)) {
            for (Path q : s.sorted(Comparator.reverseOrder()).toList()) {
                Files.deleteIfExists(q);
            }
        }
    }

    /** Removes a partial file or folder after a failure, which is the error to report. */
    public static void deleteQuietly(Path p) {
        try {
            deleteTree(p);
        } catch (IOException | UncheckedIOException ignored) {
            // the write already failed or the process is halting; that is what gets reported
        }
    }

    /**
     * The exception for a failed write of {@code path}: a {@link WriteFailedException} for a cause on
     * the user's side, with the bytes needed ({@code bytesNeeded}, -1 when unknown) and free when the
     * disk is full; an {@link UncheckedIOException} naming the path otherwise.
     */
    public static RuntimeException failure(Path path, long bytesNeeded, IOException e) {
        String reason = userSideReason(e);
        if (reason == null) {
            return new UncheckedIOException("cannot write " + path + ": " + e.getMessage(), e);
        }
        StringBuilder message = new StringBuilder("cannot write ").append(path).append(": ").append(reason);
        if (reason.startsWith("no space") || reason.startsWith("disk quota") || reason.startsWith("file too large")) {
            long free = usableSpace(path);
            if (bytesNeeded >= 0 && free >= 0) {
                message.append(" (needs ").append(formatBytes(bytesNeeded)).append(", ").append(formatBytes(free)).append(" free)");
            } else if (free >= 0) {
                message.append(" (").append(formatBytes(free)).append(" free)");
            }
        }
        return new WriteFailedException(path, message.toString(), e);
    }

    /**
     * What went wrong in words when the cause is on the user's side (full disk, quota, read-only or
     * missing folder, permission), else null (an I/O error of the machine or a bug).
     */
    public static String userSideReason(IOException e) {
        if (e instanceof AccessDeniedException) {
            return "permission denied";
        }
        if (e instanceof NoSuchFileException) {
            return "no such file or folder (was the folder removed?)";
        }
        if (e instanceof NotDirectoryException) {
            return "not a folder";
        }
        if (e instanceof DirectoryNotEmptyException) {
            return "a non-empty folder is in the way";
        }
        if (e instanceof FileAlreadyExistsException) {
            return "something else is in the way";
        }
        String text = e instanceof FileSystemException f && f.getReason() != null ? f.getReason() : e.getMessage();
        String m = text == null ? "" : text.toLowerCase(Locale.ROOT);
        if (m.contains("no space left")) {
            return "no space left on device";
        }
        if (m.contains("quota")) {
            return "disk quota exceeded";
        }
        if (m.contains("read-only file system")) {
            return "read-only file system";
        }
        if (m.contains("permission denied") || m.contains("operation not permitted")) {
            return "permission denied";
        }
        if (m.contains("file too large")) {
            return "file too large for this file system";
        }
        if (m.contains("no such file")) {
            return "no such file or folder (was the folder removed?)";
        }
        if (m.contains("not a directory")) {
            return "not a folder";
        }
        if (m.contains("is a directory")) {
            return "a folder is in the way";
        }
        if (m.contains("stale file handle")) {
            return "stale file handle (the folder vanished on the file server)";
        }
        return null;
    }

    /** Free bytes for this process on the file system of {@code path} (or its nearest existing folder); -1 when unknown. */
    public static long usableSpace(Path path) {
        for (Path p = path.toAbsolutePath(); p != null; p = p.getParent()) {
            if (Files.exists(p)) {
                try {
                    return Files.getFileStore(p).getUsableSpace();
                } catch (IOException e) {
                    return -1;
                }
            }
        }
        return -1;
    }

    /** 1234567 -> "1.2 MB" (SI units, as df -H prints). */
    public static String formatBytes(long bytes) {
        if (bytes < 10_000) {
            return bytes + " bytes";
        }
        if (bytes < 1_000_000) {
            return String.format(Locale.ROOT, "%.1f kB", bytes / 1e3);
        }
        if (bytes < 1_000_000_000) {
            return String.format(Locale.ROOT, "%.1f MB", bytes / 1e6);
        }
        return String.format(Locale.ROOT, "%.2f GB", bytes / 1e9);
    }

    /** Makes a rename durable (POSIX); file systems that cannot open a folder skip it. */
    public static void syncDirectory(Path dir) {
        try (FileChannel ch = FileChannel.open(dir, StandardOpenOption.READ)) {
            ch.force(true);
        } catch (IOException | UnsupportedOperationException ignored) {
            // not supported here (e.g. Windows): the rename itself is still atomic
        }
    }
}
