package org.clipj.io;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.OutputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;
import java.util.zip.CRC32;
import java.util.zip.ZipEntry;
import java.util.zip.ZipOutputStream;

import static org.junit.jupiter.api.Assertions.assertTrue;

/** Golden data location and small writers for hand-made pickles and torch zip archives. */
final class TestFiles {
    private TestFiles() {
    }

    /** /work/shared/golden (system property clip.shared, else ../shared next to the repo root); must exist. */
    static Path golden() {
        String property = System.getProperty("clip.shared");
        Path shared;
        if (property != null) {
            shared = Path.of(property);
        } else {
            Path dir = Path.of("").toAbsolutePath();
            while (dir != null && !Files.exists(dir.resolve("mvnw"))) {
                dir = dir.getParent();
            }
            shared = dir == null ? Path.of("../shared") : dir.resolveSibling("shared");
        }
        Path golden = shared.resolve("golden");
        assertTrue(Files.isDirectory(golden), "golden data missing at " + golden.toAbsolutePath());
        return golden;
    }

    static byte[] hex(String hex) {
        byte[] out = new byte[hex.length() / 2];
        for (int i = 0; i < out.length; i++) {
            out[i] = (byte) Integer.parseInt(hex.substring(2 * i, 2 * i + 2), 16);
        }
        return out;
    }

    /** Writes a zip with the given entries (in order), uncompressed. */
    static void zip(Path file, Map<String, byte[]> entries) throws IOException {
        try (OutputStream out = Files.newOutputStream(file); ZipOutputStream zip = new ZipOutputStream(out)) {
            for (Map.Entry<String, byte[]> e : entries.entrySet()) {
                ZipEntry entry = new ZipEntry(e.getKey()); // stored, as torch.save writes them
                CRC32 crc = new CRC32();
                crc.update(e.getValue());
                entry.setMethod(ZipEntry.STORED);
                entry.setSize(e.getValue().length);
                entry.setCrc(crc.getValue());
                zip.putNextEntry(entry);
                zip.write(e.getValue());
                zip.closeEntry();
            }
        }
    }

    /** Emits pickle opcodes (protocol 2) the way torch.save lays out a state dict. */
    static final class Pickle {
        private final ByteArrayOutputStream out = new ByteArrayOutputStream();

        Pickle op(int opcode) {
            out.write(opcode);
            return this;
        }

        Pickle proto(int version) {
            return op(0x80).op(version);
        }

        Pickle global(String module, String name) {
            op('c');
            out.writeBytes((module + "\n" + name + "\n").getBytes(StandardCharsets.UTF_8));
            return this;
        }

        Pickle string(String s) {
            byte[] b = s.getBytes(StandardCharsets.UTF_8);
            op('X');
            out.writeBytes(new byte[]{(byte) b.length, (byte) (b.length >> 8), (byte) (b.length >> 16), (byte) (b.length >> 24)});
            out.writeBytes(b);
            return this;
        }

        Pickle integer(int v) {
            op('J');
            out.writeBytes(new byte[]{(byte) v, (byte) (v >> 8), (byte) (v >> 16), (byte) (v >> 24)});
            return this;
        }

        Pickle tuple(int... values) {
            op('(');
            for (int v : values) integer(v);
            return op('t');
        }

        /** One state dict entry: name -> _rebuild_tensor_v2(storage, offset, size, stride, False, OrderedDict()). */
        Pickle tensor(String name, String storageType, String key, int numel, int offset, int[] size, int[] stride) {
            return string(name).tensorValue(storageType, key, numel, offset, size, stride);
        }

        /** _rebuild_tensor_v2(('storage', torch.<storageType>, key, 'cpu', numel), offset, size, stride, False, OrderedDict()). */
        Pickle tensorValue(String storageType, String key, int numel, int offset, int[] size, int[] stride) {
            global("torch._utils", "_rebuild_tensor_v2");
            op('(');
            op('(').string("storage").global("torch", storageType).string(key).string("cpu").integer(numel).op('t').op('Q');
            integer(offset).tuple(size).tuple(stride).op(0x89);
            global("collections", "OrderedDict").op(')').op('R');
            op('t').op('R');
            return this;
        }

        byte[] bytes() {
            return out.toByteArray();
        }
    }
}
