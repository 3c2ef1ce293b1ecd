package org.clipj.image;

import com.fasterxml.jackson.databind.ObjectMapper;
import org.clipj.runtime.InvalidInputException;
import org.junit.jupiter.api.Test;

import java.awt.image.BufferedImage;
import java.io.IOException;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** open_clip's resize modes and interpolations, Hugging Face's crop, and the config parsers. */
class PreprocessConfigTest {
    private static final ObjectMapper JSON = new ObjectMapper();
    private static final float[] ZERO_MEAN = {0f, 0f, 0f};
    private static final float[] UNIT_STD = {1f, 1f, 1f};

    private static BufferedImage image(int w, int h, java.util.function.IntBinaryOperator rgb) {
        BufferedImage img = new BufferedImage(w, h, BufferedImage.TYPE_INT_RGB);
        for (int y = 0; y < h; y++) for (int x = 0; x < w; x++) img.setRGB(x, y, rgb.applyAsInt(x, y));
        return img;
    }

    private static PreprocessConfig cfg(int n, Preprocess.Filter f, PreprocessConfig.ResizeMode mode, boolean floor) {
        return new PreprocessConfig(n, n, ZERO_MEAN, UNIT_STD, f, mode, floor, "test");
    }

    @Test
    void squashOfAnImageOfTheRightSizeIsTheImage() {
        BufferedImage img = image(8, 8, (x, y) -> (x * 30) << 16 | (y * 30) << 8 | 7);
        for (Preprocess.Filter f : Preprocess.Filter.values()) {
            float[] p = cfg(8, f, PreprocessConfig.ResizeMode.SQUASH, false).apply(img);
            assertEquals(3 * 64, p.length);
            assertEquals(5 * 30 / 255f, p[3 * 8 + 5], 1e-6f);            // R at (5, 3)
            assertEquals(3 * 30 / 255f, p[64 + 3 * 8 + 5], 1e-6f);       // G
            assertEquals(7 / 255f, p[128 + 9], 1e-6f);                   // B
        }
    }

    @Test
    void bilinearHalvingAveragesColumnPairsAndKeepsConstants() {
        BufferedImage stripes = image(16, 16, (x, y) -> x % 2 == 0 ? 0xFFFFFF : 0);
        float[] p = cfg(8, Preprocess.Filter.BILINEAR, PreprocessConfig.ResizeMode.SQUASH, false).apply(stripes);
        for (int i = 1; i < 7; i++) assertEquals(0.5f, p[4 * 8 + i], 2.5f / 255, "column " + i);
        BufferedImage flat = image(37, 23, (x, y) -> 0x336699);
        for (PreprocessConfig.ResizeMode m : new PreprocessConfig.ResizeMode[]{PreprocessConfig.ResizeMode.SHORTEST,
                PreprocessConfig.ResizeMode.SQUASH}) {
            float[] q = cfg(16, Preprocess.Filter.BILINEAR, m, false).apply(flat);
            for (int i = 0; i < 256; i++) assertEquals(0x33 / 255f, q[i], 1e-6f, m + " pixel " + i);
        }
    }

    @Test
    void longestPadsWithBlackCentred() {
        BufferedImage wide = image(16, 8, (x, y) -> 0xFFFFFF);
        float[] p = cfg(8, Preprocess.Filter.BICUBIC, PreprocessConfig.ResizeMode.LONGEST, false).apply(wide);
        for (int y = 0; y < 8; y++) {
            float want = y >= 2 && y < 6 ? 1f : 0f;                      // 8x4 content at rows 2..5
            for (int x = 0; x < 8; x++) assertEquals(want, p[y * 8 + x], 1e-6f, "(" + x + ", " + y + ")");
        }
    }

    @Test
    void huggingFaceCropFloorsWhereTorchvisionRounds() {
        // 15x8 -> shortest edge 4 gives 7x4; the 4-wide crop starts at 1 (floor) or 2 (round half to even)
        BufferedImage img = image(15, 8, (x, y) -> (x * 17) << 16);
        float[] floor = cfg(4, Preprocess.Filter.BICUBIC, PreprocessConfig.ResizeMode.SHORTEST, true).apply(img);
        float[] round = cfg(4, Preprocess.Filter.BICUBIC, PreprocessConfig.ResizeMode.SHORTEST, false).apply(img);
        for (int y = 0; y < 4; y++) {
            for (int x = 0; x < 3; x++) assertEquals(floor[y * 4 + x + 1], round[y * 4 + x], 1e-6f);
        }
        // the OpenAI default is exactly Preprocess.clip
        assertArrayEquals(Preprocess.clip(img, 4), PreprocessConfig.openai(4).apply(img));
    }

    @Test
    void openClipAndHuggingFaceConfigsParse() throws IOException {
        PreprocessConfig clipa = PreprocessConfig.fromOpenClip(JSON.readTree("{\"mean\": [0.485, 0.456, 0.406], \"std\":"
                + " [0.229, 0.224, 0.225], \"interpolation\": \"bilinear\", \"resize_mode\": \"squash\"}"), 224, "test");
        assertEquals(Preprocess.Filter.BILINEAR, clipa.filter());
        assertEquals(PreprocessConfig.ResizeMode.SQUASH, clipa.mode());
        assertEquals(0.229f, clipa.std()[0]);
        assertTrue(PreprocessConfig.fromOpenClip(JSON.readTree("{}"), 224, "test").isOpenAi());
        assertThrows(InvalidInputException.class, () -> PreprocessConfig.fromOpenClip(JSON.readTree(
                "{\"interpolation\": \"lanczos\"}"), 224, "test"));
        assertThrows(InvalidInputException.class, () -> PreprocessConfig.fromOpenClip(JSON.readTree(
                "{\"size\": 336}"), 224, "test"));
        PreprocessConfig hf = PreprocessConfig.fromHuggingFace(JSON.readTree("{\"crop_size\": {\"height\": 224, \"width\": 224},"
                + " \"size\": {\"shortest_edge\": 256}, \"resample\": 3, \"image_mean\": [0.5, 0.5, 0.5],"
                + " \"image_std\": [0.5, 0.5, 0.5]}"), 224, "test");
        assertEquals(256, hf.resizeTo());
        assertTrue(hf.floorCrop());
        assertEquals(0.5f, hf.mean()[1]);
    }
}
