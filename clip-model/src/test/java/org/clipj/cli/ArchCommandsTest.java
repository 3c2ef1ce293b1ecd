package org.clipj.cli;

import com.fasterxml.jackson.databind.JsonNode;
import org.clipj.TestAssets;
import org.junit.jupiter.api.Test;

import static org.clipj.cli.InferenceCommandsTest.clip;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** clip info and --arch: where the architecture comes from, said on stdout and stderr; contradictions exit 2. */
class ArchCommandsTest {

    @Test
    void infoSaysWhereTheArchitectureCameFrom() throws java.io.IOException {
        String folder = TestAssets.golden("openclip", "B-32-gelu-openclip").toString();
        InferenceCommandsTest.Run r = clip("info", "--model", folder);
        assertEquals(0, r.status(), r.err());
        JsonNode info = r.json();
        assertTrue(info.get("config_source").asText().startsWith("open_clip_config.json"), info.toString());
        assertEquals("GELU", info.get("config").get("variant").get("visionActivation").asText());
        assertTrue(info.get("weights").asText().endsWith("open_clip_pytorch_model.bin"));
        assertTrue(r.err().contains("architecture: "), r.err());

        InferenceCommandsTest.Run bare = clip("info", "--model", TestAssets.golden("tiny-vit", "model.safetensors").toString());
        assertEquals(0, bare.status(), bare.err());
        assertTrue(bare.err().contains("warning: no architecture config") && bare.err().contains("no arch given"), bare.err());
        assertFalse(bare.json().get("warnings").isEmpty());
    }

    @Test
    void archThatContradictsTheTensorsExitsTwoNamingBoth() throws java.io.IOException {
        InferenceCommandsTest.Run r = clip("embed", "--model", TestAssets.golden("tiny-vit", "model.safetensors").toString(),
                "--arch", "ViT-B-32", "--device", "cpu", "--text", "a dog");
        assertEquals(2, r.status(), r.err());
        assertTrue(r.err().startsWith("error: ") && r.err().contains("ViT-B-32") && r.err().contains("expects"), r.err());
        InferenceCommandsTest.Run refused = clip("info", "--model", TestAssets.golden("tiny-vit", "model.safetensors").toString(),
                "--arch", "convnext_base");
        assertEquals(2, refused.status());
        assertTrue(refused.err().contains("timm"), refused.err());
        InferenceCommandsTest.Run list = clip("info", "--arch-list");
        assertEquals(0, list.status(), list.err());
        assertTrue(list.json().get("open_clip").toString().contains("ViT-bigG-14"));
    }
}
