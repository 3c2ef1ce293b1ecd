package org.clipj.model;

import com.fasterxml.jackson.databind.JsonNode;
import org.clipj.model.ClipConfig.Activation;
import org.clipj.model.ClipConfig.TextPool;
import org.clipj.model.ClipConfig.Variant;
import org.clipj.model.ClipConfig.VisionPool;
import org.clipj.runtime.InvalidInputException;

/**
 * A Hugging Face {@code config.json} of a {@code CLIPModel} as a {@link ClipConfig}. Fields the file
 * omits take the defaults of transformers' {@code CLIPTextConfig}/{@code CLIPVisionConfig}
 * ({@code hidden_act} quick_gelu, 8 text and 12 vision heads, widths 512/768, MLPs 2048/3072, ...);
 * the older {@code text_config_dict}/{@code vision_config_dict} spellings are read too. Other model
 * types (SigLIP, Chinese-CLIP, AltCLIP, ...) and activations other than GELU/QuickGELU are refused by name.
 */
public final class HuggingFaceConfig {
    private HuggingFaceConfig() {
    }

    /** Whether a parsed config.json describes a CLIP model (model_type "clip" or a CLIPModel architecture). */
    public static boolean isClip(JsonNode root) {
        if (root.path("model_type").asText("").equals("clip")) return true;
        for (JsonNode a : root.path("architectures")) {
            if (a.asText().equals("CLIPModel")) return true;
        }
        return false;
    }

    public static ClipConfig parse(String name, JsonNode root, String where) {
        String type = root.path("model_type").asText("");
        if (!isClip(root)) {
            throw new InvalidInputException(where + ": Hugging Face model_type '" + type + "' "
                    + root.path("architectures") + " is not a CLIPModel; clipj does not support it yet");
        }
        JsonNode text = tower(root, "text_config", where);
        JsonNode vision = tower(root, "vision_config", where);
        int embed = root.path("projection_dim").asInt(text.path("projection_dim").asInt(512));
        int textWidth = text.path("hidden_size").asInt(512);
        int visionWidth = vision.path("hidden_size").asInt(768);
        int textHeads = text.path("num_attention_heads").asInt(8);
        int visionHeads = vision.path("num_attention_heads").asInt(12);
        int eos = text.path("eos_token_id").asInt(2);
        if (vision.path("num_channels").asInt(3) != 3) {
            throw new InvalidInputException(where + ": vision num_channels " + vision.path("num_channels").asInt()
                    + " is not supported (3)");
        }
        // transformers pools the EOS position; with the legacy eos_token_id 2 it takes the argmax of the ids
        TextPool pool = eos == 2 ? TextPool.ARGMAX : TextPool.EOS;
        Variant variant = new Variant(activation(vision, where, "vision"), activation(text, where, "text"),
                vision.path("intermediate_size").asInt(3072), text.path("intermediate_size").asInt(2048), 0f, 0f, true,
                VisionPool.TOKEN, false, pool, pool == TextPool.EOS ? eos : -1, true, false,
                (float) vision.path("layer_norm_eps").asDouble(1e-5), (float) text.path("layer_norm_eps").asDouble(1e-5),
                ClipConfig.CLIP_TOKENIZER);
        return new ClipConfig(name, embed, vision.path("image_size").asInt(224), visionWidth,
                vision.path("num_hidden_layers").asInt(12), visionHeads, vision.path("patch_size").asInt(32), null,
                text.path("max_position_embeddings").asInt(77), text.path("vocab_size").asInt(ClipConfig.OPENAI_VOCAB),
                textWidth, textHeads, text.path("num_hidden_layers").asInt(12), variant);
    }

    private static JsonNode tower(JsonNode root, String key, String where) {
        JsonNode t = root.path(key);
        if (t.isMissingNode() || t.isNull()) t = root.path(key + "_dict");
        if (t.isMissingNode() || t.isNull()) {
            return com.fasterxml.jackson.databind.node.JsonNodeFactory.instance.objectNode();
        }
        if (!t.isObject()) {
            throw new InvalidInputException(where + ": " + key + " is not a JSON object");
        }
        return t;
    }

    private static Activation activation(JsonNode tower, String where, String which) {
        String act = tower.path("hidden_act").asText("quick_gelu");
        return switch (act) {
            case "quick_gelu" -> Activation.QUICK_GELU;
            case "gelu" -> Activation.GELU;
            default -> throw new InvalidInputException(where + ": " + which + " hidden_act '" + act
                    + "' is not supported (quick_gelu, gelu)");
        };
    }
}
