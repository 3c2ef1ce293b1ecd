package org.clipj.io;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import org.clipj.runtime.DType;
import org.clipj.runtime.InvalidInputException;
import org.clipj.runtime.Tensor;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * safetensors: 8-byte little-endian header length, a JSON header
 * ({@code name -> {dtype, shape, data_offsets: [begin, end]}}, optional {@code __metadata__}),
 * then raw little-endian data. The file is memory-mapped and each tensor copied out once.
 */
public final class SafeTensors {
    private static final ObjectMapper JSON = new ObjectMapper();
    private static final long MAX_HEADER = 100L << 20;

    /** The tensors of a file (CPU, in file order) and its string metadata. */
    public record Contents(Map<String, Tensor> tensors, Map<String, String> metadata) {
    }

    private SafeTensors() {
    }

    /** Reads every tensor; I64, F16 and BF16 keep their dtype. */
    public static Map<String, Tensor> read(Path file) {
        return readContents(file).tensors();
    }

    public static Contents readContents(Path file) {
        try (FileChannel ch = FileChannel.open(file, StandardOpenOption.READ); Arena arena = Arena.ofConfined()) {
            long size = ch.size();
            if (size < 8) {
                throw new InvalidInputException(file + ": not a safetensors file (only " + size + " bytes)");
            }
            MemorySegment map = ch.map(FileChannel.MapMode.READ_ONLY, 0, size, arena);
            long headerLength = map.get(ValueLayout.JAVA_LONG_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN), 0);
            if (headerLength <= 0 || headerLength > MAX_HEADER || 8 + headerLength > size) {
                throw new InvalidInputException(file + ": safetensors header length " + headerLength
                        + " does not fit the file of " + size + " bytes (truncated or not safetensors)");
            }
            byte[] headerBytes = map.asSlice(8, headerLength).toArray(ValueLayout.JAVA_BYTE);
            JsonNode header;
            try {
                header = JSON.readTree(new String(headerBytes, StandardCharsets.UTF_8));
            } catch (IOException e) {
                throw new InvalidInputException(file + ": safetensors header is not valid JSON: " + e.getMessage(), e);
            }
            if (header == null || !header.isObject()) {
                throw new InvalidInputException(file + ": safetensors header is not a JSON object");
            }
            long dataStart = 8 + headerLength;
            long dataSize = size - dataStart;
            Map<String, Tensor> tensors = new LinkedHashMap<>();
            Map<String, String> metadata = new LinkedHashMap<>();
            for (Iterator<Map.Entry<String, JsonNode>> it = header.fields(); it.hasNext(); ) {
                Map.Entry<String, JsonNode> e = it.next();
                String name = e.getKey();
                JsonNode info = e.getValue();
                if (name.equals("__metadata__")) {
                    info.fields().forEachRemaining(m -> metadata.put(m.getKey(), m.getValue().asText()));
                    continue;
                }
                tensors.put(name, readTensor(file, name, info, map.asSlice(dataStart, dataSize)));
            }
            return new Contents(tensors, metadata);
        } catch (IOException e) {
            throw new InvalidInputException(file + ": cannot read: " + e.getMessage(), e);
        }
    }

    private static Tensor readTensor(Path file, String name, JsonNode info, MemorySegment data) {
        String where = file + ": tensor '" + name + "'";
        DType dtype = switch (info.path("dtype").asText()) {
            case "F32" -> DType.F32;
            case "F16" -> DType.F16;
            case "BF16" -> DType.BF16;
            case "I32" -> DType.I32;
            case "I64" -> DType.I64;
            default -> throw new InvalidInputException(where + ": unsupported dtype '" + info.path("dtype").asText() + "'");
        };
        JsonNode shapeNode = info.path("shape");
        JsonNode offsets = info.path("data_offsets");
        if (!shapeNode.isArray() || !offsets.isArray() || offsets.size() != 2) {
            throw new InvalidInputException(where + ": header entry lacks shape or data_offsets");
        }
        int[] shape = new int[shapeNode.size()];
        for (int i = 0; i < shape.length; i++) {
            long d = shapeNode.get(i).asLong(-1);
            if (d < 0 || d > Integer.MAX_VALUE) {
                throw new InvalidInputException(where + ": bad dimension " + shapeNode.get(i));
            }
            shape[i] = (int) d;
        }
        long begin = offsets.get(0).asLong(-1);
        long end = offsets.get(1).asLong(-1);
        long expected = Tensor.numel(shape) * dtype.byteSize();
        if (begin < 0 || end < begin || end > data.byteSize()) {
            throw new InvalidInputException(where + ": data offsets [" + begin + ", " + end
                    + ") lie outside the file's " + data.byteSize() + " data bytes (truncated?)");
        }
        if (end - begin != expected) {
            throw new InvalidInputException(where + ": " + (end - begin) + " bytes for shape "
                    + java.util.Arrays.toString(shape) + " " + dtype + " (expected " + expected + ")");
        }
        Tensor t = Tensor.zeros(dtype, shape);
        MemorySegment src = data.asSlice(begin, expected);
        switch (dtype) {
            case F32 -> MemorySegment.copy(src, ValueLayout.JAVA_FLOAT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN), 0,
                    t.f32(), 0, t.size());
            case F16, BF16 -> MemorySegment.copy(src, ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN), 0,
                    t.bits16(), 0, t.size());
            case I32 -> MemorySegment.copy(src, ValueLayout.JAVA_INT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN), 0,
                    t.i32(), 0, t.size());
            case I64 -> MemorySegment.copy(src, ValueLayout.JAVA_LONG_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN), 0,
                    t.i64(), 0, t.size());
        }
        return t;
    }
}
