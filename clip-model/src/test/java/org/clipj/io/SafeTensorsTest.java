package org.clipj.io;

import org.clipj.runtime.DType;
import org.clipj.runtime.Device;
import org.clipj.runtime.InvalidInputException;
import org.clipj.runtime.Tensor;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class SafeTensorsTest {
    @TempDir
    Path dir;

    private static Map<String, Tensor> sample() {
        Map<String, Tensor> t = new LinkedHashMap<>();
        t.put("visual.proj", Tensor.of(new float[]{1f, -2.5f, 3e-8f, Float.MAX_VALUE, -0f, 6f}, 2, 3));
        t.put("half", Tensor.ofBits(DType.F16, new short[]{DType.floatToF16(1.5f), DType.floatToF16(-65504f), 1}, 3));
        t.put("bf", Tensor.ofBits(DType.BF16, new short[]{DType.floatToBf16(3.25f), DType.floatToBf16(-1e30f)}, 2, 1));
        t.put("ints", Tensor.of(new int[]{Integer.MIN_VALUE, 0, 7}, 3));
        t.put("longs", Tensor.of(new long[]{Long.MAX_VALUE, -1}, 1, 2));
        t.put("scalar", Tensor.of(new float[]{4.6052f}));
        t.put("empty", Tensor.zeros(DType.F32, 0, 4));
        return t;
    }

    private static void assertSameTensors(Map<String, Tensor> expected, Map<String, Tensor> actual) {
        assertEquals(List.copyOf(expected.keySet()), List.copyOf(actual.keySet()));
        for (String name : expected.keySet()) {
            Tensor e = expected.get(name), a = actual.get(name);
            assertEquals(e.dtype(), a.dtype(), name);
            assertArrayEquals(e.shape(), a.shape(), name);
            assertArrayEquals(e.segment().toArray(java.lang.foreign.ValueLayout.JAVA_BYTE),
                    a.segment().toArray(java.lang.foreign.ValueLayout.JAVA_BYTE), name);
        }
    }

    private List<Path> leftovers() throws IOException {
        try (Stream<Path> files = Files.list(dir)) {
            return files.filter(p -> p.getFileName().toString().endsWith(".tmp")).toList();
        }
    }

    @Test
    void writeThenReadRoundTripsEveryDtypeAndMetadata() throws IOException {
        Path file = dir.resolve("weights.safetensors");
        Map<String, String> meta = Map.of("format", "pt", "step", "12");
        SafeTensors.write(file, sample(), meta);
        SafeTensors.Contents back = SafeTensors.readContents(file);
        assertSameTensors(sample(), back.tensors());
        assertEquals(meta, back.metadata());
        long headerLength = ByteBuffer.wrap(Files.readAllBytes(file), 0, 8).order(ByteOrder.LITTLE_ENDIAN).getLong();
        assertEquals(0, headerLength % 8, "data section must start 8-byte aligned");
        assertEquals(List.of(), leftovers());
    }

    @Test
    void writeReplacesAnExistingFileAtomically() throws IOException {
        Path file = dir.resolve("w.safetensors");
        Files.writeString(file, "old contents");
        SafeTensors.write(file, sample(), null);
        assertSameTensors(sample(), SafeTensors.read(file));
        assertTrue(SafeTensors.readContents(file).metadata().isEmpty());
        assertEquals(List.of(), leftovers());
    }

    @Test
    void failedWriteLeavesTargetUntouchedAndNoTempFile() throws IOException {
        Path file = dir.resolve("w.safetensors");
        Files.writeString(file, "old contents");
        Map<String, Tensor> bad = new LinkedHashMap<>(sample());
        bad.put("__metadata__", Tensor.of(new float[]{1f}, 1));
        InvalidInputException e = assertThrows(InvalidInputException.class, () -> SafeTensors.write(file, bad, null));
        assertTrue(e.getMessage().contains("__metadata__"), e.getMessage());
        Map<String, Tensor> onDevice = new LinkedHashMap<>(sample());
        onDevice.put("gpu", Tensor.onDevice(Device.CUDA, DType.F32, 0, null, 2));
        e = assertThrows(InvalidInputException.class, () -> SafeTensors.write(file, onDevice, null));
        assertTrue(e.getMessage().contains("'gpu'"), e.getMessage());
        assertEquals("old contents", Files.readString(file));
        assertEquals(List.of(), leftovers());
    }

    @Test
    void failedRenameRemovesTheFullyWrittenTempFile() throws IOException {
        Path target = dir.resolve("occupied");
        Files.createDirectories(target.resolve("inside"));
        assertThrows(InvalidInputException.class, () -> SafeTensors.write(target, sample(), Map.of("a", "b")));
        assertTrue(Files.isDirectory(target.resolve("inside")), "the target must be left as it was");
        assertEquals(List.of(), leftovers());
    }

    // ---- bad input ----

    private Path file(String header, int dataBytes) throws IOException {
        byte[] json = header.getBytes(StandardCharsets.UTF_8);
        ByteBuffer b = ByteBuffer.allocate(8 + json.length + dataBytes).order(ByteOrder.LITTLE_ENDIAN);
        b.putLong(json.length).put(json);
        Path f = dir.resolve("bad.safetensors");
        Files.write(f, b.array());
        return f;
    }

    private static void assertBad(Path f, String... fragments) {
        InvalidInputException e = assertThrows(InvalidInputException.class, () -> SafeTensors.read(f));
        assertTrue(e.getMessage().contains(f.toString()), e.getMessage());
        for (String fragment : fragments) {
            assertTrue(e.getMessage().contains(fragment), e.getMessage());
        }
    }

    @Test
    void rejectsTruncatedFiles() throws IOException {
        Path good = dir.resolve("good.safetensors");
        SafeTensors.write(good, sample(), null);
        byte[] all = Files.readAllBytes(good);
        Path f = dir.resolve("cut.safetensors");
        Files.write(f, java.util.Arrays.copyOf(all, all.length - 5));
        assertBad(f, "outside the file");
        Files.write(f, java.util.Arrays.copyOf(all, 20));
        assertBad(f, "header length");
        Files.write(f, java.util.Arrays.copyOf(all, 5));
        assertBad(f, "5 bytes");
    }

    @Test
    void rejectsOffsetsOutsideTheFile() throws IOException {
        assertBad(file("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                + "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,1000000]}}", 12), "'b'", "outside the file");
        assertBad(file("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[-4,0]}}", 4), "'a'", "outside");
    }

    @Test
    void rejectsOverlapsHolesAndSizeMismatches() throws IOException {
        assertBad(file("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                + "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", 12), "overlaps");
        assertBad(file("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8), "unused data bytes");
        assertBad(file("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 8), "trailing");
        assertBad(file("{\"a\":{\"dtype\":\"F16\",\"shape\":[3],\"data_offsets\":[0,4]}}", 4), "'a'", "expected 6");
    }

    @Test
    void rejectsDuplicateNamesBadDtypesAndBadJson() throws IOException {
        assertBad(file("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
                + "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8), "repeats a name");
        assertBad(file("{\"a\":{\"dtype\":\"F64\",\"shape\":[1],\"data_offsets\":[0,8]}}", 8), "'a'", "F64");
        assertBad(file("{\"a\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,4]}}", 4), "'a'", "bad dimension");
        assertBad(file("{\"a\": [1, 2", 0), "not valid JSON");
        assertBad(file("{\"__metadata__\":{\"k\":{}}}", 0), "__metadata__");
    }
}
