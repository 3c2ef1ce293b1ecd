package org.clipj.cli;

import org.clipj.Clip;
import org.clipj.TestAssets;
import org.clipj.runtime.InvalidInputException;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Path;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * clip.backend / CLIP_BACKEND reach the library's defaults and the commands: an explicit --device or
 * Options device wins over the property, a bad name is an error naming where it came from.
 * (The property-over-env precedence is BackendsTest's.)
 */
class BackendSelectionTest {
    private String saved;

    @BeforeEach
    void save() {
        saved = System.getProperty("clip.backend");
    }

    @AfterEach
    void restore() {
        if (saved == null) System.clearProperty("clip.backend");
        else System.setProperty("clip.backend", saved);
    }

    private static Path model() {
        return TestAssets.golden("tiny-vit", "model.safetensors");
    }

    private static InferenceCommandsTest.Run embed(String... device) {
        String[] common = {"embed", "--model", model().toString(), "--vocab", TestAssets.vocab().toString(), "--text", "a dog"};
        String[] args = new String[common.length + device.length];
        System.arraycopy(common, 0, args, 0, common.length);
        System.arraycopy(device, 0, args, common.length, device.length);
        return InferenceCommandsTest.clip(args);
    }

    @Test
    void libraryDefaultsFollowTheProperty() {
        assertNull(Clip.Options.defaults().device());
        System.setProperty("clip.backend", "cpu");
        try (Clip clip = Clip.load(model(), Clip.Options.defaults().withVocab(TestAssets.vocab()))) {
            assertEquals("cpu", clip.backend().name());
        }
        System.setProperty("clip.backend", "tpu");
        InvalidInputException e = assertThrows(InvalidInputException.class, () -> Clip.load(model(), Clip.Options.defaults()));
        assertTrue(e.getMessage().contains("system property clip.backend=tpu"), e.getMessage());
        try (Clip clip = Clip.load(model(), Clip.Options.defaults().withDevice("cpu"))) {
            assertEquals("cpu", clip.backend().name());
        }
        InvalidInputException named = assertThrows(InvalidInputException.class,
                () -> Clip.load(model(), Clip.Options.defaults().withDevice("gpu")));
        assertTrue(named.getMessage().contains("unknown backend 'gpu' (requested device gpu)"), named.getMessage());
    }

    @Test
    void commandsFollowThePropertyUnlessDeviceIsGiven() throws IOException {
        System.setProperty("clip.backend", "cpu");
        InferenceCommandsTest.Run fromProperty = embed();
        assertEquals(0, fromProperty.status(), fromProperty.err());
        assertEquals("cpu", fromProperty.json().get("device").asText());

        System.setProperty("clip.backend", "tpu");
        InferenceCommandsTest.Run bad = embed();
        assertEquals(2, bad.status(), bad.err());
        assertTrue(bad.err().contains("system property clip.backend=tpu"), bad.err());
        InferenceCommandsTest.Run explicit = embed("--device", "CPU");
        assertEquals(0, explicit.status(), explicit.err());
        assertEquals("cpu", explicit.json().get("device").asText());

        InferenceCommandsTest.Run badFlag = embed("--device", "gpu");
        assertEquals(2, badFlag.status(), badFlag.err());
        assertTrue(badFlag.err().contains("--device") && badFlag.err().contains("'gpu': expected cpu, cuda or auto"),
                badFlag.err());
    }

    @Test
    void trainFollowsTheProperty(@TempDir Path out) {
        System.setProperty("clip.backend", "tpu");
        InferenceCommandsTest.Run r = InferenceCommandsTest.clip("train", "--model", "tiny", "--synthetic-size", "8",
                "--batch", "4", "--steps", "1", "--bpe-merges", "20", "--out", out.toString());
        assertEquals(2, r.status(), r.err());
        assertTrue(r.err().contains("unknown backend 'tpu' (system property clip.backend=tpu)"), r.err());
    }
}
