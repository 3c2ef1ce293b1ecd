package org.clipj.io;

import org.clipj.runtime.Tensor;
import org.clipj.train.TrainCheckpoints;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.nio.channels.WritableByteChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class AtomicFilesTest {

    /** Passes the first {@code limit} bytes through, then fails as the OS would. */
    private static final class FailingChannel implements WritableByteChannel {
        private final WritableByteChannel inner;
        private final String error;
        private long left;

        FailingChannel(WritableByteChannel inner, long limit, String error) {
            this.inner = inner;
            this.left = limit;
            this.error = error;
        }

        @Override
        public int write(ByteBuffer src) throws IOException {
            if (left <= 0) {
                throw new IOException(error);
            }
            ByteBuffer part = src.slice(src.position(), (int) Math.min(src.remaining(), left));
            int n = inner.write(part);
            src.position(src.position() + n);
            left -= n;
            return n;
        }

        @Override
        public boolean isOpen() {
            return inner.isOpen();
        }

        @Override
        public void close() {
        }
    }

    private static AtomicFiles.Content megabyteThrough(long failAfter, String error) {
        return ch -> {
            WritableByteChannel out = new FailingChannel(ch, failAfter, error);
            for (int i = 0; i < 16; i++) {
                AtomicFiles.writeFully(out, ByteBuffer.allocate(62_500));
            }
        };
    }

    private static List<String> partials(Path dir) throws IOException {
        try (Stream<Path> s = Files.walk(dir)) {
            return s.map(p -> p.getFileName().toString()).filter(n -> n.endsWith(AtomicFiles.PARTIAL_SUFFIX)).toList();
        }
    }

    @Test
    void aWriterFailingAfterNBytesLeavesTheOldFileAndNoPartial(@TempDir Path dir) throws IOException {
        Path target = dir.resolve("weights.bin");
        Files.writeString(target, "old");
        WriteFailedException e = assertThrows(WriteFailedException.class,
                () -> AtomicFiles.write(target, 1_000_000, megabyteThrough(300_000, "No space left on device")));
        assertTrue(e.getMessage().startsWith("cannot write " + target.toAbsolutePath() + ": no space left on device (needs 1.0 MB, "),
                e.getMessage());
        assertTrue(e.getMessage().endsWith(" free)"), e.getMessage());
        assertEquals("old", Files.readString(target));
        assertEquals(List.of(), partials(dir));

        AtomicFiles.write(target, 1_000_000, megabyteThrough(Long.MAX_VALUE, "unused"));
        assertEquals(1_000_000, Files.size(target));
        assertEquals(List.of(), partials(dir));
    }

    @Test
    void aMachineSideErrorIsNotBlamedOnTheUser(@TempDir Path dir) {
        Path target = dir.resolve("out.json");
        UncheckedIOException e = assertThrows(UncheckedIOException.class,
                () -> AtomicFiles.write(target, -1, megabyteThrough(10, "Input/output error")));
        assertFalse((Object) e instanceof org.clipj.runtime.InvalidInputException, "exit 1, not a user error");
        assertTrue(e.getMessage().contains(target.toAbsolutePath().toString()), e.getMessage());
        assertFalse(Files.exists(target));
    }

    @Test
    void userSideCausesAreRecognisedByTypeOrOsMessage() {
        assertEquals("no space left on device", AtomicFiles.userSideReason(new IOException("No space left on device")));
        assertEquals("disk quota exceeded", AtomicFiles.userSideReason(new IOException("Disk quota exceeded")));
        assertEquals("read-only file system",
                AtomicFiles.userSideReason(new java.nio.file.FileSystemException("/x", null, "Read-only file system")));
        assertEquals("permission denied", AtomicFiles.userSideReason(new java.nio.file.AccessDeniedException("/x")));
        assertEquals(null, AtomicFiles.userSideReason(new IOException("Input/output error")));
    }

    @Test
    void staleDottedPartialsAreRemovedAndNothingElse(@TempDir Path dir) throws IOException {
        Files.createDirectories(dir.resolve(".step-00000010.partial"));
        Files.writeString(dir.resolve(".step-00000010.partial").resolve("model.safetensors"), "half");
        Files.writeString(dir.resolve(".loss.png.1f2e.partial"), "half");
        Files.writeString(dir.resolve("notes.partial"), "a user's file");
        Files.writeString(dir.resolve("metrics.jsonl"), "");
        List<Path> removed = AtomicFiles.removeStalePartials(dir);
        assertEquals(2, removed.size(), removed.toString());
        try (Stream<Path> s = Files.list(dir)) {
            assertEquals(List.of("metrics.jsonl", "notes.partial"),
                    s.map(p -> p.getFileName().toString()).sorted().toList());
        }
    }

    @Test
    void safetensorsLargerThanOneWriteChunkRoundTrip(@TempDir Path dir) {
        float[] big = new float[300_001];  // 1.2 MB: crosses the 1 MiB write chunk, ragged end
        for (int i = 0; i < big.length; i++) {
            big[i] = i * 0.5f - 7f;
        }
        long[] longs = {Long.MIN_VALUE, 3, -1};
        Path file = dir.resolve("big.safetensors");
        Map<String, Tensor> tensors = Map.of("big", Tensor.of(big, 300_001), "longs", Tensor.of(longs, 3));
        SafeTensors.write(file, tensors, Map.of("k", "v"));
        SafeTensors.Contents back = SafeTensors.readContents(file);
        assertArrayEquals(big, back.tensors().get("big").f32());
        assertEquals(Map.of("k", "v"), back.metadata());
        assertEquals(SafeTensors.fileSize(tensors, Map.of("k", "v")), file.toFile().length());
    }

    @Test
    void aReadOnlyFolderIsOneClearError(@TempDir Path dir) throws Exception {
        try (Tmpfs ro = Tmpfs.mount(dir.resolve("ro"), "size=1m,ro")) {
            Path target = ro.dir().resolve("sub").resolve("result.json");
            WriteFailedException e = assertThrows(WriteFailedException.class, () -> AtomicFiles.writeString(target, "{}"));
            assertEquals("cannot write " + target + ": read-only file system", e.getMessage());
        }
    }

    @Test
    void aDiskFillingUpDuringACheckpointKeepsTheEarlierOne(@TempDir Path dir) throws Exception {
        // 1 MiB of tmpfs holds one checkpoint of 2 x 400 kB, not two (the newest two are kept)
        try (Tmpfs small = Tmpfs.mount(dir.resolve("small"), "size=1m")) {
            Path checkpoints = small.dir().resolve("checkpoints");
            Map<String, Tensor> model = Map.of("w", Tensor.of(new float[100_000], 100_000));
            Map<String, Tensor> moments = Map.of("m.w", Tensor.of(new float[100_000], 100_000));
            Map<String, Object> run = Map.of("data", "synthetic:1");
            Path first = TrainCheckpoints.save(checkpoints, new TrainCheckpoints.TrainState(1, 4, 0, run), model, null,
                    moments, null, 2);
            WriteFailedException e = assertThrows(WriteFailedException.class, () -> TrainCheckpoints.save(checkpoints,
                    new TrainCheckpoints.TrainState(2, 8, 0, run), model, null, moments, null, 2));
            assertTrue(e.getMessage().startsWith("cannot write " + TrainCheckpoints.stepDir(checkpoints, 2).toAbsolutePath()
                    + ": no space left on device (needs 800.3 kB, "), e.getMessage());
            assertEquals(List.of(), partials(small.dir()));
            assertEquals(List.of(first), TrainCheckpoints.complete(checkpoints));
            assertEquals(1, TrainCheckpoints.load(first).state().step());
        }
    }
}
