package org.clipj;

import org.clipj.image.ImageLoader;
import org.clipj.runtime.InvalidInputException;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

import java.awt.image.BufferedImage;
import java.io.ByteArrayInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Images given as bytes, streams or decoded images embed as the same files do (one pipeline, batch 2 so
 * that several batches and a ragged last one run), bad input is named by its index, and warm-up leaves
 * the results as they were. Equal up to 1e-6 as in ClipConcurrencyTest (JIT vs interpreter sums).
 */
class ClipInputsTest {
    private static final List<String> NAMES = List.of("photo.jpg", "palette.png", "alpha.png", "gray.png", "odd.jpg");
    private static Clip clip;
    private static List<Path> files;
    private static List<byte[]> bytes;
    private static float[][] fromFiles;

    @BeforeAll
    static void load() throws IOException {
        clip = Clip.load(TestAssets.golden("tiny-vit", "model.safetensors"),
                Clip.Options.defaults().withVocab(TestAssets.vocab()).withDevice("cpu").withBatchSize(2));
        files = NAMES.stream().map(n -> TestAssets.golden("text-image", "images", n)).toList();
        bytes = new ArrayList<>();
        for (Path f : files) bytes.add(Files.readAllBytes(f));
        fromFiles = clip.encodeImages(files);
    }

    @AfterAll
    static void close() {
        clip.close();
    }

    private static void assertSameEmbeddings(float[][] expected, float[][] actual) {
        assertEquals(expected.length, actual.length);
        for (int i = 0; i < expected.length; i++) assertArrayEquals(expected[i], actual[i], 1e-6f, "image " + i);
    }

    @Test
    void bytesStreamsAndDecodedImagesEmbedAsTheirFiles() {
        assertSameEmbeddings(fromFiles, clip.encodeImageBytes(bytes));
        List<InputStream> streams = bytes.stream().map(b -> (InputStream) new ByteArrayInputStream(b)).toList();
        assertSameEmbeddings(fromFiles, clip.encodeImageStreams(streams));
        List<BufferedImage> decoded = new ArrayList<>();
        for (int i = 0; i < files.size(); i++) decoded.add(ImageLoader.readOriginal(files.get(i)));
        assertSameEmbeddings(fromFiles, clip.encodeImagesFrom(decoded));
    }

    @Test
    void undecodableInputIsNamedByItsIndex() {
        List<byte[]> bad = new ArrayList<>(bytes);
        bad.set(3, "not an image".getBytes());
        InvalidInputException e = assertThrows(InvalidInputException.class, () -> clip.encodeImageBytes(bad));
        assertTrue(e.getMessage().startsWith("image 3: "), e.getMessage());

        List<String> skipped = new ArrayList<>();
        List<Integer> progress = new ArrayList<>();
        float[][] kept = clip.encodeImageBytes(bad, skipped, progress::add);
        assertEquals(1, skipped.size(), skipped.toString());
        assertTrue(skipped.get(0).startsWith("image 3: "), skipped.get(0));
        assertNull(kept[3]);
        for (int i : new int[]{0, 1, 2, 4}) assertArrayEquals(fromFiles[i], kept[i], 1e-6f, "image " + i);
        assertEquals(List.of(2, 4, 5), progress);

        List<byte[]> truncated = List.of(bytes.get(0), Arrays.copyOf(bytes.get(0), 100));
        e = assertThrows(InvalidInputException.class, () -> clip.encodeImageStreams(
                truncated.stream().map(b -> (InputStream) new ByteArrayInputStream(b)).toList()));
        assertTrue(e.getMessage().startsWith("image 1: "), e.getMessage());

        List<BufferedImage> withNull = Arrays.asList(ImageLoader.read(files.get(0)), null);
        e = assertThrows(InvalidInputException.class, () -> clip.encodeImagesFrom(withNull));
        assertEquals("image 1: null instead of an image", e.getMessage());
    }

    @Test
    void warmUpRunsRoundsAndChangesNoResult() {
        float[][] text = clip.encodeTexts(List.of("a photo of a dog"));
        int rounds = clip.warmUp(List.of(2), List.of(1));
        assertTrue(rounds >= 3 && rounds <= 30, "rounds " + rounds);   // this JVM has no JitThresholds.LATENCY_FLAGS: no C2 minimum
        assertSameEmbeddings(fromFiles, clip.encodeImageBytes(bytes));
        assertNotNull(text[0]);
        assertArrayEquals(text[0], clip.encodeTexts(List.of("a photo of a dog"))[0], 1e-6f);
        InvalidInputException e = assertThrows(InvalidInputException.class, () -> clip.warmUp(List.of(0), List.of()));
        assertTrue(e.getMessage().contains("[0]"), e.getMessage());
    }
}
