package org.clipj.data;

import org.junit.jupiter.api.Test;

import java.awt.image.BufferedImage;
import java.util.HashSet;
import java.util.Set;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

class SyntheticDatasetTest {

    private static int[] pixels(BufferedImage img) {
        return img.getRGB(0, 0, img.getWidth(), img.getHeight(), null, 0, img.getWidth());
    }

    @Test
    void deterministicBySeedAndIndex() {
        SyntheticDataset a = new SyntheticDataset(7, 100, 48, SyntheticDataset.Split.TRAIN);
        SyntheticDataset b = new SyntheticDataset(7, 100, 48, SyntheticDataset.Split.TRAIN);
        SyntheticDataset c = new SyntheticDataset(8, 100, 48, SyntheticDataset.Split.TRAIN);
        for (int i = 0; i < 20; i++) {
            assertEquals(a.caption(i), b.caption(i));
            assertArrayEquals(pixels(a.image(i)), pixels(b.image(i)));
        }
        int differing = 0;
        for (int i = 0; i < 20; i++) {
            differing += a.caption(i).equals(c.caption(i)) ? 0 : 1;
        }
        assertTrue(differing > 10, "another seed gives other examples");
        assertEquals(48, a.image(3).getWidth());
        assertEquals(BufferedImage.TYPE_INT_RGB, a.image(3).getType());
    }

    @Test
    void heldOutPairsNeverAppearInTraining() {
        SyntheticDataset train = new SyntheticDataset(1, 2000, 16, SyntheticDataset.Split.TRAIN);
        SyntheticDataset held = new SyntheticDataset(1, 300, 16, SyntheticDataset.Split.HELD_OUT);
        Set<String> trainLabels = new HashSet<>();
        Set<Integer> colours = new HashSet<>();
        Set<Integer> shapes = new HashSet<>();
        for (int i = 0; i < train.size(); i++) {
            SyntheticDataset.Item it = train.item(i);
            assertFalse(SyntheticDataset.isHeldOut(it.colour(), it.shape()), it.label());
            trainLabels.add(it.label());
            colours.add(it.colour());
            shapes.add(it.shape());
            assertTrue(it.caption().contains(it.colourName()) && it.caption().contains(it.shapeName()), it.caption());
        }
        assertEquals(30 + 3 * 6 + 9 * 2, trainLabels.size(),
                "30 evaluation pairs, 3 extra colours on 6 shapes, 2 extra shapes in 9 colours");
        assertEquals(9, colours.size());
        assertEquals(8, shapes.size());
        SyntheticDataset seen = new SyntheticDataset(2, 500, 16, SyntheticDataset.Split.SEEN);
        Set<String> seenLabels = new HashSet<>();
        for (int i = 0; i < seen.size(); i++) {
            seenLabels.add(seen.item(i).label());
        }
        assertEquals(30, seenLabels.size());
        assertTrue(SyntheticDataset.allLabels().containsAll(seenLabels));
        Set<String> heldLabels = new HashSet<>();
        for (int i = 0; i < held.size(); i++) {
            heldLabels.add(held.item(i).label());
        }
        assertEquals(6, heldLabels.size());
        for (String l : heldLabels) {
            assertFalse(trainLabels.contains(l), l);
        }
        assertEquals(36, SyntheticDataset.allLabels().size());
    }

    @Test
    void theShapeIsDrawnInItsColour() {
        SyntheticDataset d = new SyntheticDataset(3, 50, 64, SyntheticDataset.Split.ALL);
        for (int i = 0; i < 50; i++) {
            SyntheticDataset.Item it = d.item(i);
            int[] px = pixels(d.image(i));
            int chromatic = 0;
            for (int p : px) {
                int r = p >> 16 & 255;
                int g = p >> 8 & 255;
                int b = p & 255;
                if (Math.max(r, Math.max(g, b)) - Math.min(r, Math.min(g, b)) > 60) {
                    chromatic++;
                }
            }
            int minimum = it.size() == 0 ? 40 : 150;
            assertTrue(chromatic > minimum, it.label() + " drew " + chromatic + " coloured pixels");
            assertNotEquals(it.caption(), "");
        }
    }
}
