package org.clipj.io;

import org.clipj.runtime.InvalidInputException;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.Collection;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.zip.DataFormatException;
import java.util.zip.Inflater;

/**
 * The central directory of a zip archive read from its memory mapping (zip64 included), so that a
 * stored (uncompressed) entry, as torch.save writes every storage, is a slice of the mapping: its
 * bytes go straight from the page cache into a tensor, with no intermediate copy. Every offset and
 * size is checked against the file before use; encrypted entries and compression methods other than
 * stored and deflated are refused with an error naming the file and the entry.
 */
final class ZipIndex {
    /** One entry: compression method (0 stored, 8 deflated), sizes and the file offset of its data. */
    record Entry(String name, int method, long compressedSize, long size, long dataOffset) {
    }

    private static final ValueLayout.OfInt U32 = ValueLayout.JAVA_INT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final ValueLayout.OfShort U16 = ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final ValueLayout.OfLong U64 = ValueLayout.JAVA_LONG_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final int END = 0x06054b50, END64 = 0x06064b50, END64_LOCATOR = 0x07064b50;
    private static final int CENTRAL = 0x02014b50, LOCAL = 0x04034b50;
    private static final int END_SIZE = 22, CENTRAL_SIZE = 46, LOCAL_SIZE = 30, MAX_COMMENT = 0xffff;
    private static final int STORED = 0, DEFLATED = 8;

    private final MemorySegment file;
    private final Path path;
    private final Map<String, Entry> entries;

    private ZipIndex(MemorySegment file, Path path, Map<String, Entry> entries) {
        this.file = file;
        this.path = path;
        this.entries = entries;
    }

    /** Reads the central directory of the mapped zip file {@code file} ({@code path} names it in errors). */
    static ZipIndex read(MemorySegment file, Path path) {
        long end = findEnd(file, path);
        long count = u16(file, end + 10);
        long directorySize = u32(file, end + 12);
        long directoryOffset = u32(file, end + 16);
        long locator = end - 20;   // a zip64 archive (PyTorch writes them) has its real values in the zip64 record
        if (locator >= 0 && file.get(U32, locator) == END64_LOCATOR) {
            long end64 = file.get(U64, locator + 8);
            if (end64 < 0 || end64 > locator - 56 || file.get(U32, end64) != END64) {
                throw corrupt(path, "zip64 end-of-central-directory record missing at offset " + end64);
            }
            count = file.get(U64, end64 + 32);
            directorySize = file.get(U64, end64 + 40);
            directoryOffset = file.get(U64, end64 + 48);
            end = end64;
        } else if (directorySize == 0xffffffffL || directoryOffset == 0xffffffffL) {
            throw corrupt(path, "zip64 sizes without a zip64 end-of-central-directory locator");
        }
        if (directoryOffset < 0 || directorySize < 0 || directoryOffset > end - directorySize || count < 0
                || count > directorySize / CENTRAL_SIZE) {
            throw corrupt(path, "central directory of " + count + " entries at [" + directoryOffset + ", +" + directorySize
                    + ") does not fit before offset " + end);
        }
        Map<String, Entry> entries = new LinkedHashMap<>();
        long at = directoryOffset;
        long limit = directoryOffset + directorySize;
        for (long i = 0; i < count; i++) {
            if (at > limit - CENTRAL_SIZE || file.get(U32, at) != CENTRAL) {
                throw corrupt(path, "central directory entry " + i + " missing at offset " + at);
            }
            int flags = u16(file, at + 8);
            int method = u16(file, at + 10);
            long compressed = u32(file, at + 20);
            long uncompressed = u32(file, at + 24);
            int nameLength = u16(file, at + 28);
            int extraLength = u16(file, at + 30);
            int commentLength = u16(file, at + 32);
            long local = u32(file, at + 42);
            long next = at + CENTRAL_SIZE + nameLength + extraLength + commentLength;
            if (next > limit) {
                throw corrupt(path, "central directory entry " + i + " runs past the directory");
            }
            String name = new String(file.asSlice(at + CENTRAL_SIZE, nameLength).toArray(ValueLayout.JAVA_BYTE),
                    StandardCharsets.UTF_8);
            // zip64 extra field (id 1): the 8-byte values of the fields that read 0xffffffff, in this order
            long extra = at + CENTRAL_SIZE + nameLength;
            for (long e = extra; e + 4 <= extra + extraLength; ) {
                int id = u16(file, e);
                int length = u16(file, e + 2);
                if (e + 4 + length > extra + extraLength) {
                    throw corrupt(path, "entry " + name + " has an extra field running past its header");
                }
                if (id == 1) {
                    long field = e + 4;
                    long fieldsEnd = field + length;
                    if (uncompressed == 0xffffffffL) {
                        uncompressed = zip64Field(file, field, fieldsEnd, path, name);
                        field += 8;
                    }
                    if (compressed == 0xffffffffL) {
                        compressed = zip64Field(file, field, fieldsEnd, path, name);
                        field += 8;
                    }
                    if (local == 0xffffffffL) {
                        local = zip64Field(file, field, fieldsEnd, path, name);
                    }
                }
                e += 4 + length;
            }
            if ((flags & 1) != 0) {
                throw new InvalidInputException(path + ": zip entry " + name + " is encrypted, which is not supported");
            }
            entries.put(name, entry(file, path, name, method, compressed, uncompressed, local, directoryOffset));
            if (entries.size() != i + 1) {
                throw corrupt(path, "entry " + name + " appears twice");
            }
            at = next;
        }
        return new ZipIndex(file, path, Collections.unmodifiableMap(entries));
    }

    /** The entry of that name, or null. */
    Entry get(String name) {
        return entries.get(name);
    }

    Collection<Entry> entries() {
        return entries.values();
    }

    /** Whether {@link #slice} can serve the entry (stored, not compressed). */
    static boolean isStored(Entry e) {
        return e.method() == STORED;
    }

    /** The data of a stored entry: a slice of the mapping (no copy). */
    MemorySegment slice(Entry e) {
        if (!isStored(e)) {
            throw new IllegalStateException("zip entry " + e.name() + " is compressed (method " + e.method() + ")");
        }
        return file.asSlice(e.dataOffset(), e.size());
    }

    /** The uncompressed bytes of an entry of at most {@code limit} bytes (stored or deflated). */
    byte[] bytes(Entry e, long limit) {
        if (e.size() > limit || e.size() > Integer.MAX_VALUE - 8) {
            throw new InvalidInputException(path + ": zip entry " + e.name() + " has size " + e.size());
        }
        if (isStored(e)) {
            return slice(e).toArray(ValueLayout.JAVA_BYTE);
        }
        byte[] out = new byte[(int) e.size()];
        Inflater inflater = new Inflater(true);
        try {
            inflater.setInput(file.asSlice(e.dataOffset(), e.compressedSize()).asByteBuffer());
            int n = 0;
            while (n < out.length && !inflater.finished() && !inflater.needsInput() && !inflater.needsDictionary()) {
                n += inflater.inflate(out, n, out.length - n);
            }
            if (n != out.length) {
                throw new InvalidInputException(path + ": zip entry " + e.name() + " inflates to " + n + " of its "
                        + e.size() + " bytes (truncated or corrupt)");
            }
            return out;
        } catch (DataFormatException ex) {
            throw new InvalidInputException(path + ": zip entry " + e.name() + " is corrupt: " + ex.getMessage(), ex);
        } finally {
            inflater.end();
        }
    }

    // The end-of-central-directory record: the last signature in the final 22 + 65535 bytes.
    private static long findEnd(MemorySegment file, Path path) {
        long size = file.byteSize();
        for (long at = size - END_SIZE; at >= Math.max(0, size - END_SIZE - MAX_COMMENT); at--) {
            if (file.get(U32, at) == END && at + END_SIZE + u16(file, at + 20) <= size) {
                return at;
            }
        }
        throw new InvalidInputException(path + ": not a readable zip archive (no end-of-central-directory record:"
                + " truncated or corrupt?)");
    }

    private static Entry entry(MemorySegment file, Path path, String name, int method, long compressed,
                               long size, long local, long directoryOffset) {
        if (method != STORED && method != DEFLATED) {
            throw new InvalidInputException(path + ": zip entry " + name + " uses compression method " + method
                    + " (only stored and deflated are supported)");
        }
        if (compressed < 0 || size < 0 || (method == STORED && compressed != size)) {
            throw corrupt(path, "entry " + name + " has sizes " + compressed + " (stored) and " + size);
        }
        if (local < 0 || local > directoryOffset - LOCAL_SIZE || file.get(U32, local) != LOCAL) {
            throw corrupt(path, "entry " + name + " has no local header at offset " + local);
        }
        long data = local + LOCAL_SIZE + u16(file, local + 26) + u16(file, local + 28);
        if (data > directoryOffset || compressed > directoryOffset - data) {
            throw new InvalidInputException(path + ": zip entry " + name + " (" + compressed + " bytes at offset " + data
                    + ") runs past the entries' data (truncated or corrupt archive)");
        }
        return new Entry(name, method, compressed, size, data);
    }

    private static long zip64Field(MemorySegment file, long at, long end, Path path, String name) {
        if (at + 8 > end) {
            throw corrupt(path, "entry " + name + " lacks a zip64 size or offset in its extra field");
        }
        return file.get(U64, at);
    }

    private static int u16(MemorySegment file, long at) {
        return Short.toUnsignedInt(file.get(U16, at));
    }

    private static long u32(MemorySegment file, long at) {
        return Integer.toUnsignedLong(file.get(U32, at));
    }

    private static InvalidInputException corrupt(Path path, String what) {
        return new InvalidInputException(path + ": corrupt zip archive: " + what);
    }
}
