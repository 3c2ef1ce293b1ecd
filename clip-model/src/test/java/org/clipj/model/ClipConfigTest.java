package org.clipj.model;

import org.clipj.runtime.InvalidInputException;
import org.clipj.runtime.Tensor;
import org.junit.jupiter.api.Test;

import java.util.HashMap;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class ClipConfigTest {

    @Test
    void infersTinyVit() {
        ClipConfig c = ClipConfig.infer(GoldenData.model("tiny-vit"));
        assertTrue(c.isVit());
        assertEquals(64, c.embedDim());
        assertEquals(32, c.imageResolution());
        assertEquals(128, c.visionWidth());
        assertEquals(2, c.visionLayers());
        assertEquals(2, c.visionHeads());
        assertEquals(8, c.visionPatchSize());
        assertEquals(4, c.grid());
        assertNull(c.resnetLayers());
        assertEquals(77, c.contextLength());
        assertEquals(49408, c.vocabSize());
        assertEquals(64, c.textWidth());
        assertEquals(1, c.textHeads());
        assertEquals(2, c.textLayers());
    }

    @Test
    void infersTinyResNet() {
        ClipConfig c = ClipConfig.infer(GoldenData.model("tiny-rn"));
        assertFalse(c.isVit());
        assertEquals(List.of(1, 1, 1, 1), c.resnetLayers());
        assertEquals(16, c.visionWidth());
        assertEquals(64, c.imageResolution());
        assertEquals(8, c.visionHeads());
        assertEquals(512, c.visionAttentionWidth());
        assertEquals(0, c.visionPatchSize());
        assertEquals(64, c.embedDim());
        assertEquals(64, c.textWidth());
        assertEquals(1, c.textHeads());
        assertEquals(2, c.textLayers());
        assertEquals(77, c.contextLength());
    }

    @Test
    void namedConfigsHaveOpenAiValues() {
        ClipConfig b32 = ClipConfig.named("ViT-B/32");
        assertEquals(List.of(512, 224, 768, 12, 12, 32, 512, 8, 12),
                List.of(b32.embedDim(), b32.imageResolution(), b32.visionWidth(), b32.visionLayers(), b32.visionHeads(),
                        b32.visionPatchSize(), b32.textWidth(), b32.textHeads(), b32.textLayers()));
        ClipConfig l336 = ClipConfig.named("ViT-L/14@336px");
        assertEquals(List.of(768, 336, 1024, 24, 16, 14, 24, 768, 12),
                List.of(l336.embedDim(), l336.imageResolution(), l336.visionWidth(), l336.visionLayers(),
                        l336.visionHeads(), l336.visionPatchSize(), l336.grid(), l336.textWidth(), l336.textHeads()));
        ClipConfig rn50 = ClipConfig.named("RN50");
        assertEquals(List.of(3, 4, 6, 3), rn50.resnetLayers());
        assertEquals(List.of(1024, 224, 64, 32, 7), List.of(rn50.embedDim(), rn50.imageResolution(), rn50.visionWidth(),
                rn50.visionHeads(), rn50.grid()));
        ClipConfig x64 = ClipConfig.named("RN50x64");
        assertEquals(List.of(3, 15, 36, 10), x64.resnetLayers());
        assertEquals(List.of(1024, 448, 128, 64, 1024, 16), List.of(x64.embedDim(), x64.imageResolution(),
                x64.visionWidth(), x64.visionHeads(), x64.textWidth(), x64.textHeads()));
        for (String name : ClipConfig.names()) {
            assertEquals(name, ClipConfig.named(name).name());
        }
        ClipConfig tiny = ClipConfig.named("tiny");
        assertEquals(List.of(64, 32, 8, 128, 3, 2, 32, 128, 2, 3), List.of(tiny.embedDim(), tiny.imageResolution(),
                tiny.visionPatchSize(), tiny.visionWidth(), tiny.visionLayers(), tiny.visionHeads(), tiny.contextLength(),
                tiny.textWidth(), tiny.textHeads(), tiny.textLayers()));
        assertEquals(1000, tiny.withVocabSize(1000).vocabSize());
        assertThrows(InvalidInputException.class, () -> ClipConfig.named("ViT-H/99"));
    }

    @Test
    void inferenceNamesAMissingTensor() {
        Map<String, Tensor> sd = new HashMap<>(GoldenData.model("tiny-vit"));
        sd.remove("ln_final.weight");
        InvalidInputException e = assertThrows(InvalidInputException.class, () -> ClipConfig.infer(sd));
        assertTrue(e.getMessage().contains("ln_final.weight"), e.getMessage());
    }
}
