package org.clipj.io;

import org.clipj.io.Checkpoint.Format;
import org.clipj.io.Checkpoint.Naming;
import org.clipj.runtime.DType;
import org.clipj.runtime.InvalidInputException;
import org.clipj.runtime.Tensor;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.nio.file.attribute.FileTime;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.zip.ZipEntry;
import java.util.zip.ZipFile;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The golden checkpoints in every container format, and damaged or hostile archives. */
class CheckpointsTest {
    @TempDir
    Path dir;

    private static final Path VIT = TestFiles.golden().resolve("tiny-vit");
    private static final Path RN = TestFiles.golden().resolve("tiny-rn");

    private static void assertSameValues(Map<String, Tensor> expected, Map<String, Tensor> actual) {
        assertEquals(expected.keySet(), actual.keySet());
        for (String name : expected.keySet()) {
            Tensor e = expected.get(name), a = actual.get(name);
            assertEquals(e.dtype(), a.dtype(), name);
            assertArrayEquals(e.shape(), a.shape(), name);
            assertArrayEquals(e.toFloatArray(), a.toFloatArray(), name);
        }
    }

    @Test
    void tinyVitLoadsTheSameFromAllThreeFormats() {
        Checkpoint safetensors = Checkpoints.load(VIT.resolve("model.safetensors"));
        Checkpoint torchScript = Checkpoints.load(VIT.resolve("model.pt"));
        Checkpoint half = Checkpoints.load(VIT.resolve("model-fp16.bin"));
        assertEquals(Format.SAFETENSORS, safetensors.format());
        assertEquals(Format.TORCHSCRIPT, torchScript.format());
        assertEquals(Format.TORCH_ZIP, half.format());
        for (Checkpoint c : List.of(safetensors, torchScript, half)) {
            assertEquals(Naming.OPENAI, c.naming());
        }
        assertEquals(62, safetensors.tensors().size());
        assertEquals("tiny-vit", safetensors.metadata().get("model"));
        assertTrue(safetensors.tensors().containsKey("visual.transformer.resblocks.1.attn.in_proj_weight"));
        assertArrayEquals(new int[]{128, 3, 8, 8}, safetensors.tensors().get("visual.conv1.weight").shape());
        assertSameValues(safetensors.tensors(), torchScript.tensors());

        assertEquals(safetensors.tensors().keySet(), half.tensors().keySet());
        for (Map.Entry<String, Tensor> e : safetensors.tensors().entrySet()) {
            Tensor h = half.tensors().get(e.getKey());
            assertEquals(DType.F16, h.dtype(), e.getKey() + " stays F16");
            assertArrayEquals(e.getValue().shape(), h.shape(), e.getKey());
            float[] f32 = e.getValue().toFloatArray(), f16 = h.toFloatArray();
            int worst = -1;
            for (int i = 0; i < f32.length; i++) {
                // round to nearest: within half an F16 ulp (2^-11 relative; 2^-25 absolute in the subnormal range)
                float bound = Math.max(Math.abs(f32[i]) * 0x1p-11f, 0x1p-25f);
                if (Math.abs(f32[i] - f16[i]) > bound) {
                    worst = i;
                }
            }
            int at = worst;
            assertEquals(-1, at, () -> e.getKey() + "[" + at + "]: " + f32[at] + " vs " + f16[at]);
        }
    }

    @Test
    void tinyRnLoadsTheSameFromBothFormats() {
        Checkpoint safetensors = Checkpoints.load(RN.resolve("model.safetensors"));
        Checkpoint bin = Checkpoints.load(RN.resolve("model.bin"));
        assertEquals(Format.TORCH_ZIP, bin.format());
        assertEquals(134, bin.tensors().size());
        assertTrue(bin.tensors().containsKey("visual.attnpool.positional_embedding"));
        assertSameValues(safetensors.tensors(), bin.tensors());
    }

    @Test
    void formatComesFromContentNotExtension() throws IOException {
        Path misnamed = Files.copy(VIT.resolve("model.safetensors"), dir.resolve("weights.bin"));
        assertEquals(Format.SAFETENSORS, Checkpoints.load(misnamed).format());
        Path script = Files.copy(VIT.resolve("model.pt"), dir.resolve("weights.safetensors"));
        assertEquals(Format.TORCHSCRIPT, Checkpoints.load(script).format());
        Path text = Files.writeString(dir.resolve("notes.pt"), "hello, not a checkpoint");
        InvalidInputException e = assertThrows(InvalidInputException.class, () -> Checkpoints.load(text));
        assertTrue(e.getMessage().contains("notes.pt") && e.getMessage().contains("not a checkpoint"), e.getMessage());
    }

    @Test
    void folderResolvesToItsWeightsFile() throws IOException {
        Path folder = Files.createDirectory(dir.resolve("model"));
        Files.copy(RN.resolve("model.bin"), folder.resolve("open_clip_pytorch_model.bin"));
        Files.writeString(folder.resolve("notes.pt"), "x");
        assertEquals(folder.resolve("open_clip_pytorch_model.bin"), Checkpoints.resolve(folder));
        Files.copy(RN.resolve("model.safetensors"), folder.resolve("model.safetensors"));
        Checkpoint preferred = Checkpoints.load(folder);
        assertEquals(folder.resolve("model.safetensors"), preferred.path());
        assertEquals(Format.SAFETENSORS, preferred.format());
        Path single = Files.createDirectory(dir.resolve("single"));
        Files.writeString(single.resolve("ViT-B-32.pt"), "x");
        assertEquals(single.resolve("ViT-B-32.pt"), Checkpoints.resolve(single));

        Path two = Files.createDirectory(dir.resolve("two"));
        Files.writeString(two.resolve("a.pt"), "x");
        Files.writeString(two.resolve("b.pt"), "x");
        InvalidInputException e = assertThrows(InvalidInputException.class, () -> Checkpoints.resolve(two));
        assertTrue(e.getMessage().contains("a.pt") && e.getMessage().contains("b.pt"), e.getMessage());
        Path empty = Files.createDirectory(dir.resolve("empty"));
        assertThrows(InvalidInputException.class, () -> Checkpoints.resolve(empty));
    }

    // ---- damaged and hostile archives ----

    private static Map<String, byte[]> entries(Path zipFile) throws IOException {
        Map<String, byte[]> out = new LinkedHashMap<>();
        try (ZipFile zip = new ZipFile(zipFile.toFile())) {
            for (ZipEntry e : java.util.Collections.list(zip.entries())) {
                try (InputStream in = zip.getInputStream(e)) {
                    out.put(e.getName(), in.readAllBytes());
                }
            }
        }
        return out;
    }

    private static InvalidInputException assertBad(Path file, String... fragments) {
        InvalidInputException e = assertThrows(InvalidInputException.class, () -> Checkpoints.load(file));
        assertTrue(e.getMessage().contains(file.toString()), e.getMessage());
        for (String fragment : fragments) {
            assertTrue(e.getMessage().contains(fragment), e.getMessage());
        }
        return e;
    }

    @Test
    void rejectsTruncatedZip() throws IOException {
        byte[] all = Files.readAllBytes(VIT.resolve("model-fp16.bin"));
        Path cut = Files.write(dir.resolve("cut.bin"), Arrays.copyOf(all, all.length / 2));
        assertBad(cut, "zip");
    }

    /** A stored tensor read after its file changed fails naming the file and the tensor; it never reads the new bytes. */
    private static void assertChanged(StoredTensor t, Path file, String tensor, String how) {
        InvalidInputException e = assertThrows(InvalidInputException.class, t::read);
        for (String fragment : List.of(file.toString(), "changed since the checkpoint was opened", how, "'" + tensor + "'")) {
            assertTrue(e.getMessage().contains(fragment), e.getMessage());
        }
    }

    @Test
    void tensorsAreReadWhenAskedAndNotAfterTheFileChanged() throws IOException {
        String name = "visual.conv1.weight";
        for (String source : List.of("model.pt", "model-fp16.bin", "model.safetensors")) {
            Path file = Files.copy(VIT.resolve(source), dir.resolve(source));
            Map<String, Tensor> eager = Checkpoints.load(file).tensors();
            Checkpoint opened = Checkpoints.load(file);
            assertSameValues(eager, StoredTensor.readAll(opened.stored()));   // read again: same values, no cache

            // truncated: its size differs, and a read racing the truncation would hit the end of the file
            Files.write(file, Arrays.copyOf(Files.readAllBytes(file), (int) Files.size(file) - 100));
            assertChanged(opened.stored().get(name), file, name, "bytes now");

            // replaced by a file of the same size (an atomic rename, as checkpoint writers do): another inode
            Checkpoint reopened = Checkpoints.load(Files.copy(VIT.resolve(source), file, StandardCopyOption.REPLACE_EXISTING));
            Path sibling = Files.copy(VIT.resolve(source), dir.resolve(source + ".new"));
            Files.move(sibling, file, StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
            assertChanged(reopened.stored().get(name), file, name, "another file has replaced it");

            // rewritten in place, same size, later modification time
            Checkpoint third = Checkpoints.load(file);
            Files.write(file, Files.readAllBytes(file), StandardOpenOption.TRUNCATE_EXISTING);
            Files.setLastModifiedTime(file, FileTime.fromMillis(Files.getLastModifiedTime(file).toMillis() + 5_000));
            assertChanged(third.stored().get(name), file, name, "modified at");

            Checkpoint fourth = Checkpoints.load(file);
            Files.delete(file);
            InvalidInputException gone = assertThrows(InvalidInputException.class, () -> fourth.stored().get(name).read());
            assertTrue(gone.getMessage().contains(file.toString()) && gone.getMessage().contains("'" + name + "'"), gone.getMessage());
        }
    }

    @Test
    void readsDeflatedEntriesAsStoredOnes() throws IOException {
        Path deflated = dir.resolve("deflated.bin");
        try (var zip = new java.util.zip.ZipOutputStream(Files.newOutputStream(deflated))) {
            for (Map.Entry<String, byte[]> e : entries(VIT.resolve("model-fp16.bin")).entrySet()) {
                zip.putNextEntry(new ZipEntry(e.getKey()));   // DEFLATED, ZipOutputStream's default
                zip.write(e.getValue());
                zip.closeEntry();
            }
        }
        assertSameValues(Checkpoints.load(VIT.resolve("model-fp16.bin")).tensors(), Checkpoints.load(deflated).tensors());
    }

    @Test
    void rejectsStorageRunningPastTheArchiveData() throws IOException {
        Map<String, byte[]> entries = entries(VIT.resolve("model-fp16.bin"));
        Path broken = dir.resolve("past-data.bin");
        TestFiles.zip(broken, entries);
        byte[] bytes = Files.readAllBytes(broken);
        // the central directory entry of data/1: its stored and uncompressed sizes (offsets 20, 24) made 1 GB
        byte[] name = "model-fp16/data/1".getBytes(java.nio.charset.StandardCharsets.US_ASCII);
        int at = -1;
        for (int i = 0; i + 46 + name.length <= bytes.length && at < 0; i++) {
            if (bytes[i] == 'P' && bytes[i + 1] == 'K' && bytes[i + 2] == 1 && bytes[i + 3] == 2
                    && Arrays.equals(bytes, i + 46, i + 46 + name.length, name, 0, name.length)) {
                at = i;
            }
        }
        assertTrue(at >= 0, "central directory entry of data/1 not found");
        java.nio.ByteBuffer.wrap(bytes).order(java.nio.ByteOrder.LITTLE_ENDIAN).putInt(at + 20, 1 << 30).putInt(at + 24, 1 << 30);
        Files.write(broken, bytes);
        assertBad(broken, "model-fp16/data/1", "runs past");
    }

    @Test
    void rejectsArchiveWithMissingStorage() throws IOException {
        Map<String, byte[]> entries = entries(VIT.resolve("model-fp16.bin"));
        assertTrue(entries.remove("model-fp16/data/5") != null);
        Path broken = dir.resolve("missing.bin");
        TestFiles.zip(broken, entries);
        assertBad(broken, "data/5", "tensor '");
    }

    @Test
    void rejectsArchiveWithShortStorage() throws IOException {
        Map<String, byte[]> entries = entries(VIT.resolve("model-fp16.bin"));
        entries.put("model-fp16/data/1", new byte[10]);
        Path broken = dir.resolve("short.bin");
        TestFiles.zip(broken, entries);
        assertBad(broken, "data/1", "'text_projection'", "10 bytes");
    }

    @Test
    void rejectsHostilePickleInsideArchive() throws IOException {
        Map<String, byte[]> entries = new LinkedHashMap<>();
        entries.put("archive/data.pkl", new TestFiles.Pickle().proto(2).global("os", "system").string("touch /tmp/pwned")
                .op(0x85).op('R').op('.').bytes());
        entries.put("archive/version", "3\n".getBytes());
        Path hostile = dir.resolve("hostile.pt");
        TestFiles.zip(hostile, entries);
        assertBad(hostile, "archive/data.pkl", "'os.system'");
    }

    @Test
    void rejectsCyclicStateDict() throws IOException {
        Map<String, byte[]> entries = new LinkedHashMap<>();
        // d = {}; d["self"] = d
        entries.put("archive/data.pkl", new TestFiles.Pickle().proto(2).op('}').op('q').op(0).op('(')
                .string("self").op('h').op(0).op('u').op('.').bytes());
        Path cyclic = dir.resolve("cyclic.bin");
        TestFiles.zip(cyclic, entries);
        assertBad(cyclic, "cycle", "'self'");
    }

    @Test
    void readsStridedSharedAndBigEndianStorages() throws IOException {
        // storage 0: 6 floats 0..5; "t" views it transposed as (3, 2); "tail" is a (2,) view at offset 4
        byte[] pickle = new TestFiles.Pickle().proto(2).op('}').op('(')
                .tensor("module.t", "FloatStorage", "0", 6, 0, new int[]{3, 2}, new int[]{1, 3})
                .tensor("tail", "FloatStorage", "0", 6, 4, new int[]{2}, new int[]{1})
                .tensor("text_model.embeddings.position_ids", "LongStorage", "1", 2, 0, new int[]{1, 2}, new int[]{2, 1})
                .op('u').op('.').bytes();
        for (String order : List.of("little", "big")) {
            java.nio.ByteBuffer storage = java.nio.ByteBuffer.allocate(24)
                    .order(order.equals("big") ? java.nio.ByteOrder.BIG_ENDIAN : java.nio.ByteOrder.LITTLE_ENDIAN);
            for (int i = 0; i < 6; i++) storage.putFloat(i);
            Map<String, byte[]> entries = new LinkedHashMap<>();
            entries.put("x/data.pkl", pickle);
            entries.put("x/byteorder", order.getBytes());
            entries.put("x/data/0", storage.array());
            // storage 1 is absent: position_ids is ignored by name, so it is never read
            Path file = dir.resolve(order + ".bin");
            TestFiles.zip(file, entries);
            Checkpoint c = Checkpoints.load(file);
            assertEquals(List.of("t", "tail"), List.copyOf(c.tensors().keySet()));
            assertArrayEquals(new float[]{0, 3, 1, 4, 2, 5}, c.tensors().get("t").toFloatArray(), order);
            assertArrayEquals(new float[]{4, 5}, c.tensors().get("tail").toFloatArray(), order);
        }
    }

    @Test
    void rejectsViewsPastTheirStorage() throws IOException {
        byte[] pickle = new TestFiles.Pickle().proto(2).op('}').op('(')
                .tensor("w", "FloatStorage", "0", 6, 2, new int[]{2, 3}, new int[]{3, 1})
                .op('u').op('.').bytes();
        Map<String, byte[]> entries = new LinkedHashMap<>();
        entries.put("x/data.pkl", pickle);
        entries.put("x/data/0", new byte[24]);
        Path file = dir.resolve("past.bin");
        TestFiles.zip(file, entries);
        assertBad(file, "'w'", "past its storage");
    }
}
