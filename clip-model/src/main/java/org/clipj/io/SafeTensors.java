package org.clipj.io;

import com.fasterxml.jackson.core.JsonParser;
import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import org.clipj.runtime.DType;
import org.clipj.runtime.Device;
import org.clipj.runtime.InvalidInputException;
import org.clipj.runtime.Tensor;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.function.Predicate;

/**
 * safetensors: 8-byte little-endian header length, a JSON header
 * ({@code name -> {dtype, shape, data_offsets: [begin, end]}}, optional {@code __metadata__}),
 * then raw little-endian data. Opening a file validates the whole header (offsets inside the data, no
 * overlaps and no holes, byte counts matching shape times dtype, no duplicate names) before any tensor
 * is read; {@link #open} then reads each tensor when it is asked for ({@link StoredTensor}),
 * {@link #readContents} reads them all at once, in parallel. Writing is atomic and never memory-mapped
 * ({@link AtomicFiles}).
 */
public final class SafeTensors {
    private static final ObjectMapper JSON = new ObjectMapper().enable(JsonParser.Feature.STRICT_DUPLICATE_DETECTION);
    private static final long MAX_HEADER = 100L << 20;
    private static final String METADATA = "__metadata__";
    private static final long WRITE_CHUNK = 1 << 20;

    /** The tensors of a file (CPU, in file order) and its string metadata. */
    public record Contents(Map<String, Tensor> tensors, Map<String, String> metadata) {
    }

    private record Entry(String name, DType dtype, int[] shape, long begin, long end) {
    }

    private SafeTensors() {
    }

    /** Reads every tensor; I64, I32, F16 and BF16 keep their dtype. */
    public static Map<String, Tensor> read(Path file) {
        return readContents(file).tensors();
    }

    public static Contents readContents(Path file) {
        return readContents(file, name -> true);
    }

    /** Reads the tensors whose name {@code keep} accepts (the whole header is validated regardless). */
    public static Contents readContents(Path file, Predicate<String> keep) {
        Opened opened = open(file, keep);
        return new Contents(StoredTensor.readAll(opened.tensors()), opened.metadata());
    }

    /** The tensors of a file as {@link StoredTensor}s (read when asked), in file order, and its string metadata. */
    public record Opened(Map<String, StoredTensor> tensors, Map<String, String> metadata) {
    }

    /**
     * Validates the header of a file and returns the tensors whose name {@code keep} accepts without
     * reading them: each is read from the file when its {@link StoredTensor#read} is called.
     */
    public static Opened open(Path file, Predicate<String> keep) {
        try (FileChannel ch = FileChannel.open(file, StandardOpenOption.READ); Arena arena = Arena.ofConfined()) {
            CheckedFile checked = CheckedFile.of(file, ch);
            long size = checked.size();
            if (size < 8) {
                throw new InvalidInputException(file + ": not a safetensors file (only " + size + " bytes)");
            }
            MemorySegment head = arena.allocate(8);
            readFully(ch, head, 0, file);
            long headerLength = head.get(ValueLayout.JAVA_LONG_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN), 0);
            if (headerLength <= 0 || headerLength > MAX_HEADER || headerLength > size - 8) {
                throw new InvalidInputException(file + ": safetensors header length " + headerLength
                        + " does not fit the file of " + size + " bytes (truncated or not safetensors)");
            }
            MemorySegment headerBytes = arena.allocate(headerLength);
            readFully(ch, headerBytes, 8, file);
            JsonNode header = parseHeader(file, headerBytes.toArray(ValueLayout.JAVA_BYTE));
            long dataStart = 8 + headerLength;
            long dataSize = size - dataStart;
            Map<String, String> metadata = new LinkedHashMap<>();
            List<Entry> entries = new ArrayList<>();
            for (Map.Entry<String, JsonNode> e : header.properties()) {
                if (e.getKey().equals(METADATA)) {
                    readMetadata(file, e.getValue(), metadata);
                } else {
                    entries.add(entry(file, e.getKey(), e.getValue(), dataSize));
                }
            }
            checkLayout(file, entries, dataSize);
            Map<String, StoredTensor> tensors = new LinkedHashMap<>();
            for (Entry e : entries) {
                if (keep.test(e.name())) {
                    tensors.put(e.name(), StoredTensor.of(e.dtype(), e.shape(), () -> readTensor(checked, dataStart, e)));
                }
            }
            return new Opened(tensors, metadata);
        } catch (IOException e) {
            throw new InvalidInputException(file + ": cannot read: " + e.getMessage(), e);
        }
    }

    private static void readFully(FileChannel ch, MemorySegment dst, long position, Path file) throws IOException {
        ByteBuffer buffer = dst.asByteBuffer();
        while (buffer.hasRemaining()) {
            if (ch.read(buffer, position + buffer.position()) < 0) {
                throw new InvalidInputException(file + ": ends inside its safetensors header (truncated)");
            }
        }
    }

    private static JsonNode parseHeader(Path file, byte[] bytes) {
        JsonNode header;
        try {
            header = JSON.readTree(new String(bytes, StandardCharsets.UTF_8));
        } catch (JsonProcessingException e) {
            throw new InvalidInputException(file + ": safetensors header is not valid JSON (or repeats a name): "
                    + e.getOriginalMessage(), e);
        }
        if (header == null || !header.isObject()) {
            throw new InvalidInputException(file + ": safetensors header is not a JSON object");
        }
        return header;
    }

    private static void readMetadata(Path file, JsonNode node, Map<String, String> metadata) {
        if (!node.isObject()) {
            throw new InvalidInputException(file + ": safetensors __metadata__ is not a JSON object");
        }
        for (Map.Entry<String, JsonNode> m : node.properties()) {
            if (!m.getValue().isTextual()) {
                throw new InvalidInputException(file + ": safetensors __metadata__ value '" + m.getKey() + "' is not a string");
            }
            metadata.put(m.getKey(), m.getValue().asText());
        }
    }

    private static Entry entry(Path file, String name, JsonNode info, long dataSize) {
        String where = file + ": tensor '" + name + "'";
        if (!info.isObject()) {
            throw new InvalidInputException(where + ": header entry is not a JSON object");
        }
        String dtypeName = info.path("dtype").asText();
        DType dtype = switch (dtypeName) {
            case "F32" -> DType.F32;
            case "F16" -> DType.F16;
            case "BF16" -> DType.BF16;
            case "I32" -> DType.I32;
            case "I64" -> DType.I64;
            default -> throw new InvalidInputException(where + ": unsupported dtype '" + dtypeName
                    + "' (F32, F16, BF16, I32, I64 are supported)");
        };
        JsonNode shapeNode = info.path("shape");
        JsonNode offsets = info.path("data_offsets");
        if (!shapeNode.isArray() || !offsets.isArray() || offsets.size() != 2
                || !offsets.get(0).isIntegralNumber() || !offsets.get(1).isIntegralNumber()) {
            throw new InvalidInputException(where + ": header entry lacks a shape or integer data_offsets");
        }
        int[] shape = new int[shapeNode.size()];
        for (int i = 0; i < shape.length; i++) {
            JsonNode d = shapeNode.get(i);
            if (!d.isIntegralNumber() || d.asLong() < 0 || d.asLong() > Integer.MAX_VALUE) {
                throw new InvalidInputException(where + ": bad dimension " + d + " in shape " + shapeNode);
            }
            shape[i] = d.asInt();
        }
        long begin = offsets.get(0).asLong();
        long end = offsets.get(1).asLong();
        if (begin < 0 || end < begin || end > dataSize) {
            throw new InvalidInputException(where + ": data offsets [" + begin + ", " + end
                    + ") lie outside the file's " + dataSize + " data bytes (truncated?)");
        }
        long numel = Tensor.numel(shape);
        if (numel > Integer.MAX_VALUE - 8 || end - begin != numel * dtype.byteSize()) {
            throw new InvalidInputException(where + ": " + (end - begin) + " bytes for shape "
                    + Arrays.toString(shape) + " " + dtype + " (expected " + numel * dtype.byteSize() + ")");
        }
        return new Entry(name, dtype, shape, begin, end);
    }

    // The data section must be exactly tiled by the tensors: no overlaps, no holes, nothing after.
    private static void checkLayout(Path file, List<Entry> entries, long dataSize) {
        List<Entry> sorted = new ArrayList<>(entries);
        sorted.sort(Comparator.comparingLong(Entry::begin).thenComparingLong(Entry::end));
        long covered = 0;
        String previous = null;
        for (Entry e : sorted) {
            if (e.begin() < covered) {
                throw new InvalidInputException(file + ": tensor '" + e.name() + "' data [" + e.begin() + ", " + e.end()
                        + ") overlaps tensor '" + previous + "'");
            }
            if (e.begin() > covered) {
                throw new InvalidInputException(file + ": " + (e.begin() - covered) + " unused data bytes before tensor '"
                        + e.name() + "' (corrupt header)");
            }
            covered = e.end();
            previous = e.name();
        }
        if (covered != dataSize) {
            throw new InvalidInputException(file + ": the header describes " + covered + " data bytes but the file has "
                    + dataSize + " (corrupt or has trailing bytes)");
        }
    }

    private static Tensor readTensor(CheckedFile file, long dataStart, Entry e) {
        Tensor t = Tensor.zeros(e.dtype(), e.shape());
        file.copy(dataStart + e.begin(), layout(e.dtype()).withOrder(ByteOrder.LITTLE_ENDIAN), t.segment(), "tensor '" + e.name() + "'");
        return t;
    }

    private static ValueLayout layout(DType dtype) {
        return switch (dtype) {
            case F32 -> ValueLayout.JAVA_FLOAT_UNALIGNED;
            case F16, BF16 -> ValueLayout.JAVA_SHORT_UNALIGNED;
            case I32 -> ValueLayout.JAVA_INT_UNALIGNED;
            case I64 -> ValueLayout.JAVA_LONG_UNALIGNED;
        };
    }

    /**
     * Writes CPU tensors (in map order) and optional string metadata atomically through
     * {@link AtomicFiles}: plain channel writes in chunks into a partial file next to {@code file},
     * forced to disk and renamed over it; on any failure {@code file} is left as it was.
     */
    public static void write(Path file, Map<String, Tensor> tensors, Map<String, String> metadata) {
        byte[] header = header(file, tensors, metadata);
        long total = 8 + header.length + dataBytes(tensors);
        AtomicFiles.write(file, total, ch -> {
            AtomicFiles.writeFully(ch, ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN).putLong(0, header.length));
            AtomicFiles.writeFully(ch, ByteBuffer.wrap(header));
            try (Arena arena = Arena.ofConfined()) {
                MemorySegment chunk = arena.allocate(WRITE_CHUNK, 8);
                for (Tensor t : tensors.values()) {
                    ValueLayout layout = layout(t.dtype());
                    long elementBytes = t.dtype().byteSize();
                    long perChunk = WRITE_CHUNK / elementBytes;
                    for (long done = 0; done < t.numel(); ) {
                        long n = Math.min(perChunk, t.numel() - done);
                        MemorySegment.copy(t.segment(), layout.withOrder(ByteOrder.nativeOrder()), done * elementBytes,
                                chunk, layout.withOrder(ByteOrder.LITTLE_ENDIAN), 0, n);
                        AtomicFiles.writeFully(ch, chunk.asSlice(0, n * elementBytes).asByteBuffer());
                        done += n;
                    }
                }
            }
        });
    }

    /** The size in bytes of the file {@link #write} makes of these tensors and metadata. */
    public static long fileSize(Map<String, Tensor> tensors, Map<String, String> metadata) {
        return 8 + header(Path.of("size"), tensors, metadata).length + dataBytes(tensors);
    }

    private static long dataBytes(Map<String, Tensor> tensors) {
        long total = 0;
        for (Tensor t : tensors.values()) {
            total += t.byteSize();
        }
        return total;
    }

    // The JSON header padded with spaces to a multiple of 8, so that the data starts 8-byte aligned.
    private static byte[] header(Path file, Map<String, Tensor> tensors, Map<String, String> metadata) {
        ObjectNode header = JSON.createObjectNode();
        if (metadata != null && !metadata.isEmpty()) {
            ObjectNode meta = header.putObject(METADATA);
            metadata.forEach((k, v) -> {
                if (k == null || v == null) {
                    throw new InvalidInputException(file + ": metadata keys and values must not be null");
                }
                meta.put(k, v);
            });
        }
        long offset = 0;
        for (Map.Entry<String, Tensor> e : tensors.entrySet()) {
            String name = e.getKey();
            Tensor t = e.getValue();
            if (name == null || name.isEmpty() || name.equals(METADATA)) {
                throw new InvalidInputException(file + ": cannot write a tensor named '" + name + "'");
            }
            if (t == null || t.device() != Device.CPU) {
                throw new InvalidInputException(file + ": tensor '" + name + "' must be a CPU tensor to be written ("
                        + (t == null ? "null" : t.device()) + ")");
            }
            ObjectNode info = header.putObject(name);
            info.put("dtype", t.dtype().name()); // F32, F16, BF16, I32, I64: safetensors' own spelling
            var shape = info.putArray("shape");
            for (int d : t.shape()) {
                shape.add(d);
            }
            info.putArray("data_offsets").add(offset).add(offset + t.byteSize());
            offset += t.byteSize();
        }
        byte[] json;
        try {
            json = JSON.writeValueAsBytes(header);
        } catch (IOException e) {
            throw new InvalidInputException(file + ": cannot encode the safetensors header: " + e.getMessage(), e);
        }
        byte[] padded = Arrays.copyOf(json, (json.length + 7) & ~7);
        Arrays.fill(padded, json.length, padded.length, (byte) ' ');
        return padded;
    }
}
