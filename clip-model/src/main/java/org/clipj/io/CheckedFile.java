package org.clipj.io;

import org.clipj.runtime.InvalidInputException;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.nio.file.attribute.BasicFileAttributes;
import java.nio.file.attribute.FileTime;
import java.util.Objects;

/**
 * A checkpoint file as it was when its header was validated: tensors are read from it later, one at a
 * time, each read reopening the file and refusing it if it is no longer the same file (another inode,
 * as when a new version is renamed over it), has another size (truncated, appended to) or another
 * modification time. Reads are plain positional reads through a small native buffer, not a memory
 * mapping: a mapped file truncated by another process faults (SIGBUS) on the next access instead of
 * failing with an error, and read pages would stay resident in the process. A file rewritten in place
 * with the same size within the file system's timestamp granularity cannot be told apart: its new bytes
 * would be read (checkpoints are written atomically by renaming, {@link AtomicFiles}, which a reader
 * always detects).
 */
final class CheckedFile {
    private static final int CHUNK = 1 << 20;

    private final Path path;
    private final Object fileKey;
    private final long size;
    private final FileTime modified;

    private CheckedFile(Path path, Object fileKey, long size, FileTime modified) {
        this.path = path;
        this.fileKey = fileKey;
        this.size = size;
        this.modified = modified;
    }

    /** The file as it is now; {@code channel} is the one its header is read from (its size must agree). */
    static CheckedFile of(Path path, FileChannel channel) throws IOException {
        BasicFileAttributes a = Files.readAttributes(path, BasicFileAttributes.class);
        if (a.size() != channel.size()) {
            throw new InvalidInputException(path + ": changed while it was being opened (" + a.size() + " bytes, then "
                    + channel.size() + ")");
        }
        return new CheckedFile(path, a.fileKey(), a.size(), a.lastModifiedTime());
    }

    Path path() {
        return path;
    }

    long size() {
        return size;
    }

    /**
     * Copies the elements stored at {@code position} in the file, in {@code fileLayout} (its byte order),
     * into {@code dst} in native order: {@code dst.byteSize()} bytes' worth; {@code what} names them in errors.
     */
    void copy(long position, ValueLayout fileLayout, MemorySegment dst, String what) {
        long length = dst.byteSize();
        if (position < 0 || length > size - position) {
            throw new InvalidInputException(path + ": " + what + " at [" + position + ", +" + length + ") lies outside the file's "
                    + size + " bytes");
        }
        ValueLayout nativeLayout = fileLayout.withOrder(ByteOrder.nativeOrder());
        try (FileChannel channel = FileChannel.open(path, StandardOpenOption.READ); Arena arena = Arena.ofConfined()) {
            requireUnchanged(channel, what);
            MemorySegment chunk = arena.allocate(Math.min(CHUNK, Math.max(length, 1)), 8);
            for (long done = 0; done < length; ) {
                int n = (int) Math.min(chunk.byteSize(), length - done);
                ByteBuffer buffer = chunk.asSlice(0, n).asByteBuffer();
                while (buffer.hasRemaining()) {
                    if (channel.read(buffer, position + done + buffer.position()) < 0) {
                        throw changed(what, "it ends at byte " + (position + done + buffer.position()) + " now");
                    }
                }
                MemorySegment.copy(chunk, fileLayout, 0, dst, nativeLayout, done, n / fileLayout.byteSize());
                done += n;
            }
        } catch (IOException e) {
            throw new InvalidInputException(path + ": cannot read " + what + ": " + e.getMessage(), e);
        }
    }

    /** The {@code length} bytes at {@code position}, as stored. */
    byte[] bytes(long position, long length, String what) {
        if (length > Integer.MAX_VALUE - 8) {
            throw new InvalidInputException(path + ": " + what + " has " + length + " bytes, too many for one array");
        }
        byte[] out = new byte[(int) length];
        copy(position, ValueLayout.JAVA_BYTE, MemorySegment.ofArray(out), what);
        return out;
    }

    private void requireUnchanged(FileChannel channel, String what) throws IOException {
        BasicFileAttributes a = Files.readAttributes(path, BasicFileAttributes.class);
        if (!Objects.equals(a.fileKey(), fileKey)) {
            throw changed(what, "another file has replaced it");
        }
        if (a.size() != size || channel.size() != size) {
            throw changed(what, "it has " + channel.size() + " bytes now, " + size + " when it was opened");
        }
        if (!a.lastModifiedTime().equals(modified)) {
            throw changed(what, "modified at " + a.lastModifiedTime() + ", after it was opened (" + modified + ")");
        }
    }

    private InvalidInputException changed(String what, String how) {
        return new InvalidInputException(path + ": changed since the checkpoint was opened (" + how + "): cannot read "
                + what + "; load it again");
    }
}
