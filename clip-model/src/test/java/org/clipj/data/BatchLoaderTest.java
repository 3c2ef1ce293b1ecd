package org.clipj.data;

import org.clipj.runtime.InvalidInputException;
import org.junit.jupiter.api.Test;

import java.awt.image.BufferedImage;
import java.io.IOException;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class BatchLoaderTest {

    /** Example i is a 1x1 image of value i; multiples of 7 are "corrupt". */
    private static final class Numbers implements ImageTextDataset {
        final int size;
        final int corruptEvery;

        Numbers(int size, int corruptEvery) {
            this.size = size;
            this.corruptEvery = corruptEvery;
        }

        @Override
        public int size() {
            return size;
        }

        @Override
        public BufferedImage image(int i) throws IOException {
            if (corruptEvery > 0 && i % corruptEvery == 0) {
                throw new IOException("corrupt");
            }
            BufferedImage img = new BufferedImage(1, 1, BufferedImage.TYPE_INT_RGB);
            img.setRGB(0, 0, i);
            return img;
        }

        @Override
        public String caption(int i) {
            return "number " + i;
        }

        @Override
        public String source(int i) {
            return "n" + i;
        }
    }

    /** Pixel 0: the example's value; pixel 1: a draw from its augmentation generator. */
    private static final BatchLoader.ImageTransform TRANSFORM =
            (img, rng) -> new float[]{img.getRGB(0, 0) & 0xFFFFFF, rng.nextFloat()};

    private static List<BatchLoader.Batch> batches(ImageTextDataset d, boolean shuffle, long start, int count) {
        List<BatchLoader.Batch> out = new ArrayList<>();
        try (BatchLoader loader = new BatchLoader(d, 5, 2, TRANSFORM, shuffle, 42, start, 2, 2)) {
            for (int i = 0; i < count; i++) {
                out.add(loader.next());
            }
        }
        return out;
    }

    @Test
    void restartingAtABatchEndContinuesTheSameStream() {
        Numbers d = new Numbers(23, 7);
        List<BatchLoader.Batch> full = batches(d, true, 0, 8);
        List<BatchLoader.Batch> resumed = batches(d, true, full.get(2).endPosition(), 5);
        for (int i = 0; i < 5; i++) {
            assertArrayEquals(full.get(i + 3).indices(), resumed.get(i).indices());
            assertArrayEquals(full.get(i + 3).pixels(), resumed.get(i).pixels());
            assertEquals(full.get(i + 3).captions(), resumed.get(i).captions());
        }
    }

    @Test
    void corruptExamplesAreSkippedAndCounted() {
        Numbers d = new Numbers(20, 7);
        try (BatchLoader loader = new BatchLoader(d, 5, 2, TRANSFORM, false, 1, 0, 2, 3)) {
            BatchLoader.Batch b1 = loader.next();
            BatchLoader.Batch b2 = loader.next();
            assertArrayEquals(new int[]{1, 2, 3, 4, 5}, b1.indices());
            assertArrayEquals(new int[]{6, 8, 9, 10, 11}, b2.indices());
            assertEquals(12, b2.endPosition());
            assertEquals(2, loader.skipped());
            assertEquals(List.of("n0: corrupt", "n7: corrupt"), loader.skippedReports());
            assertEquals("number 8", b2.captions().get(1));
            assertEquals(8f, b2.pixels()[2]);
        }
    }

    @Test
    void everyEpochIsAPermutationAndEpochsDiffer() {
        int[] e0 = BatchLoader.permutation(50, 3, 0);
        int[] e1 = BatchLoader.permutation(50, 3, 1);
        int[] sorted = e0.clone();
        Arrays.sort(sorted);
        for (int i = 0; i < 50; i++) {
            assertEquals(i, sorted[i]);
        }
        assertNotEquals(Arrays.toString(e0), Arrays.toString(e1));
        assertArrayEquals(e0, BatchLoader.permutation(50, 3, 0));
    }

    @Test
    void aDataSetWithNoReadableImageIsAnError() {
        Numbers d = new Numbers(6, 1);
        try (BatchLoader loader = new BatchLoader(d, 2, 2, TRANSFORM, true, 1, 0, 1, 1)) {
            InvalidInputException e = assertThrows(InvalidInputException.class, loader::next);
            assertTrue(e.getMessage().contains("no readable image"), e.getMessage());
        }
    }
}
