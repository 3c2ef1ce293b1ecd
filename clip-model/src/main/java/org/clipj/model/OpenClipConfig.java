package org.clipj.model;

import com.fasterxml.jackson.databind.JsonNode;
import org.clipj.model.ClipConfig.Activation;
import org.clipj.model.ClipConfig.TextPool;
import org.clipj.model.ClipConfig.Variant;
import org.clipj.model.ClipConfig.VisionPool;
import org.clipj.runtime.InvalidInputException;

import java.util.ArrayList;
import java.util.Iterator;
import java.util.List;
import java.util.Set;

/**
 * open_clip's {@code model_cfg} (the JSON of {@code model_configs/NAME.json}, and the {@code model_cfg}
 * of an {@code open_clip_config.json} beside hub weights) as a {@link ClipConfig}, with open_clip's
 * defaults ({@code CLIPVisionCfg}/{@code CLIPTextCfg}) for every field the JSON omits: exact GELU
 * unless {@code quick_gelu}, heads = width / head_width (64), MLP width int(width * mlp_ratio),
 * LayerScale where {@code ls_init_value} is set, 8 text heads.
 *
 * <p>Never a guess: a field that changes the math in a way clipj does not implement (timm or Hugging
 * Face towers, attentional pooling, custom attention blocks, ...) is refused by name, and a field
 * this parser does not know is an error rather than silently ignored.
 */
public final class OpenClipConfig {
    /** Fields that do not change an inference forward pass. */
    private static final Set<String> INERT_VISION = Set.of("output_tokens", "image_seq_len", "timm_model_pretrained",
            "timm_pool", "timm_proj", "timm_proj_bias", "timm_drop", "timm_drop_path", "attn_pooler_queries",
            "attn_pooler_heads");
    private static final Set<String> INERT_TEXT = Set.of("output_tokens", "variable_text", "tokenizer_kwargs",
            "pad_id", "bos_id", "hf_model_pretrained", "hf_proj_type", "hf_pooler_type", "hf_model_config",
            "tokenizer_mode", "tiktoken_name");
    private static final Set<String> VISION_FIELDS = Set.of("image_size", "layers", "width", "head_width", "mlp_ratio",
            "patch_size", "ls_init_value", "no_ln_pre", "pool_type", "final_ln_after_pool", "patch_dropout", "in_chans",
            "norm_kwargs", "act_kwargs", "pos_embed_type", "attentional_pool", "timm_model_name", "block_type",
            "qk_norm", "scaled_cosine_attn", "scale_heads", "scale_attn_inner", "scale_attn", "scale_fc",
            "timm_model_kwargs");
    private static final Set<String> TEXT_FIELDS = Set.of("context_length", "vocab_size", "width", "heads", "layers",
            "mlp_ratio", "ls_init_value", "pool_type", "no_causal_mask", "proj_bias", "proj_type", "eos_id",
            "hf_tokenizer_name", "hf_model_name", "text_arch", "embed_cls", "use_pad_mask", "norm_kwargs",
            "act_kwargs", "tokenizer_type", "block_type", "qk_norm", "scaled_cosine_attn", "scale_heads",
            "scale_attn_inner", "scale_attn", "scale_fc", "final_ln_after_pool", "attention_mode", "pos_embed",
            "mlp_type", "norm_type", "norm_eps", "attn_gated", "pre_norm", "correct_cls_mask");
    private static final Set<String> TOP_FIELDS = Set.of("embed_dim", "quick_gelu", "vision_cfg", "text_cfg",
            "custom_text", "init_logit_bias", "multimodal_cfg", "cast_dtype", "init_logit_scale", "nonscalar_logit_scale",
            "audio_cfg", "genlap_cfg", "genlip_cfg");
    private static final List<String> CUSTOM_BLOCK = List.of("qk_norm", "scaled_cosine_attn", "scale_heads",
            "scale_attn_inner", "scale_attn", "scale_fc");

    private OpenClipConfig() {
    }

    /**
     * The config of model_cfg {@code cfg}; {@code name} labels it, {@code where} names its origin in
     * errors (a file, or "open_clip architecture NAME").
     */
    public static ClipConfig parse(String name, JsonNode cfg, String where) {
        if (cfg == null || !cfg.isObject()) {
            throw new InvalidInputException(where + ": model_cfg is not a JSON object");
        }
        checkFields(cfg, TOP_FIELDS, where, "");
        refuseIf(cfg.has("multimodal_cfg"), where, "CoCa (a captioning decoder)");
        refuseIf(cfg.has("audio_cfg") || cfg.has("genlap_cfg") || cfg.has("genlip_cfg"), where, "an audio or generative model");
        refuseIf(cfg.has("init_logit_bias") && !cfg.get("init_logit_bias").isNull(), where,
                "SigLIP-style sigmoid loss with a logit bias");
        int embed = requiredInt(cfg, "embed_dim", where);
        Activation act = cfg.path("quick_gelu").asBoolean(false) ? Activation.QUICK_GELU : Activation.GELU;
        JsonNode v = cfg.path("vision_cfg");
        JsonNode t = cfg.path("text_cfg");
        if (!v.isObject() || !t.isObject()) {
            throw new InvalidInputException(where + ": model_cfg needs vision_cfg and text_cfg objects");
        }
        checkFields(v, VISION_FIELDS, where, "vision_cfg.");
        checkFields(t, TEXT_FIELDS, where, "text_cfg.");
        refuseIf(!v.path("timm_model_name").asText("").isEmpty(), where,
                "a timm vision tower ('" + v.path("timm_model_name").asText() + "': ConvNeXt, EVA, SigLIP's ViT, ...)");
        refuseIf(v.path("attentional_pool").asBoolean(false) || v.path("attentional_pool").isTextual(), where,
                "an attentional pooler in the vision tower");
        refuseIf(!t.path("hf_model_name").asText("").isEmpty(), where,
                "a Hugging Face text tower ('" + t.path("hf_model_name").asText() + "': XLM-R, mT5, RoBERTa, ...)");
        refuseIf(t.path("text_arch").asText("clip").equals("modern"), where, "open_clip's modern text transformer");
        refuseIf(t.path("embed_cls").asBoolean(false), where, "a text class token (CoCa)");
        refuseIf(t.path("use_pad_mask").asBoolean(false), where, "a text padding mask");
        refuseIf(t.path("proj_type").asText("linear").equals("none"), where, "a text tower without projection");
        for (JsonNode tower : List.of(v, t)) {
            String which = tower == v ? "vision" : "text";
            refuseIf(!tower.path("block_type").asText("default").equals("default") && !tower.path("block_type").isNull(),
                    where, "custom attention blocks (" + which + " block_type " + tower.path("block_type").asText() + ")");
            for (String flag : CUSTOM_BLOCK) {
                refuseIf(tower.path(flag).asBoolean(false), where, "custom attention blocks (" + which + " " + flag + ")");
            }
            JsonNode actKwargs = tower.path("act_kwargs");
            refuseIf(actKwargs.isObject() && !actKwargs.isEmpty(), where, which + " act_kwargs " + actKwargs);
        }
        refuseIf(!v.path("pos_embed_type").asText("learnable").equals("learnable"), where,
                "vision pos_embed_type " + v.path("pos_embed_type").asText());
        refuseIf(v.path("in_chans").asInt(3) != 3, where, "vision in_chans " + v.path("in_chans").asInt());
        refuseIf(t.path("final_ln_after_pool").asBoolean(false), where, "text final_ln_after_pool");

        int imageSize = imageSize(v.path("image_size"), where);
        int visionWidth = v.path("width").asInt(768);
        int headWidth = v.path("head_width").asInt(64);
        int textWidth = t.path("width").asInt(512);
        int textHeads = t.path("heads").asInt(8);
        int context = t.path("context_length").asInt(ClipConfig.OPENAI_CONTEXT);
        int vocab = t.path("vocab_size").asInt(ClipConfig.OPENAI_VOCAB);
        int textLayers = t.path("layers").asInt(12);
        int textMlp = (int) (textWidth * t.path("mlp_ratio").asDouble(4.0));
        float textLs = layerScale(t.path("ls_init_value"));
        TextPool textPool = textPool(t.path("pool_type").asText("argmax"), where);
        int eosId = t.path("eos_id").isInt() ? t.get("eos_id").asInt() : -1;
        if (textPool == TextPool.EOS && eosId < 0) {
            throw new InvalidInputException(where + ": text pool_type 'eos' needs text_cfg.eos_id");
        }
        String tokenizer = tokenizer(t);
        float visionEps = eps(v.path("norm_kwargs"), where);
        float textEps = eps(t.path("norm_kwargs"), where);
        boolean causal = !t.path("no_causal_mask").asBoolean(false);
        boolean projBias = t.path("proj_bias").asBoolean(false);

        JsonNode layers = v.path("layers");
        if (layers.isArray()) {
            List<Integer> stages = new ArrayList<>();
            layers.forEach(n -> stages.add(n.asInt()));
            if (visionWidth * 32 % headWidth != 0) {
                throw new InvalidInputException(where + ": ResNet attention width " + visionWidth * 32
                        + " is not a multiple of head_width " + headWidth);
            }
            Variant variant = new Variant(act, act, 0, textMlp, 0f, textLs, true, VisionPool.TOKEN, false, textPool,
                    eosId, causal, projBias, visionEps, textEps, tokenizer);
            int total = stages.stream().mapToInt(Integer::intValue).sum();
            return new ClipConfig(name, embed, imageSize, visionWidth, total, visionWidth * 32 / headWidth, 0, stages,
                    context, vocab, textWidth, textHeads, textLayers, variant);
        }
        int visionLayers = layers.asInt(12);
        if (visionWidth % headWidth != 0) {
            throw new InvalidInputException(where + ": vision width " + visionWidth + " is not a multiple of head_width "
                    + headWidth);
        }
        String pool = v.path("pool_type").asText("tok");
        if (!pool.equals("tok") && !pool.equals("avg")) {
            throw new InvalidInputException(where + ": vision pool_type '" + pool + "' is not supported (tok, avg)");
        }
        Variant variant = new Variant(act, act, (int) (visionWidth * v.path("mlp_ratio").asDouble(4.0)), textMlp,
                layerScale(v.path("ls_init_value")), textLs, !v.path("no_ln_pre").asBoolean(false),
                pool.equals("avg") ? VisionPool.AVG : VisionPool.TOKEN, v.path("final_ln_after_pool").asBoolean(false),
                textPool, eosId, causal, projBias, visionEps, textEps, tokenizer);
        return new ClipConfig(name, embed, imageSize, visionWidth, visionLayers, visionWidth / headWidth,
                v.path("patch_size").asInt(16), null, context, vocab, textWidth, textHeads, textLayers, variant);
    }

    private static void checkFields(JsonNode node, Set<String> known, String where, String prefix) {
        for (Iterator<String> it = node.fieldNames(); it.hasNext(); ) {
            String f = it.next();
            boolean inert = prefix.equals("vision_cfg.") ? INERT_VISION.contains(f) : prefix.equals("text_cfg.") && INERT_TEXT.contains(f);
            if (!known.contains(f) && !inert) {
                throw new InvalidInputException(where + ": unknown open_clip config field '" + prefix + f
                        + "' (clipj cannot tell whether it changes the model; refusing rather than guessing)");
            }
        }
    }

    private static void refuseIf(boolean unsupported, String where, String what) {
        if (unsupported) {
            throw new InvalidInputException(where + ": " + what + " is not supported by clipj yet");
        }
    }

    private static int requiredInt(JsonNode cfg, String field, String where) {
        if (!cfg.path(field).canConvertToInt()) {
            throw new InvalidInputException(where + ": model_cfg lacks an integer '" + field + "'");
        }
        return cfg.get(field).asInt();
    }

    private static int imageSize(JsonNode n, String where) {
        if (n.isMissingNode() || n.isNull()) return 224;
        if (n.isArray()) {
            if (n.size() != 2 || n.get(0).asInt() != n.get(1).asInt()) {
                throw new InvalidInputException(where + ": non-square image_size " + n + " is not supported");
            }
            return n.get(0).asInt();
        }
        return n.asInt();
    }

    private static float layerScale(JsonNode n) {
        return n.isNumber() ? (float) n.asDouble() : 0f;
    }

    private static float eps(JsonNode normKwargs, String where) {
        if (!normKwargs.isObject()) return 1e-5f;
        for (Iterator<String> it = normKwargs.fieldNames(); it.hasNext(); ) {
            String f = it.next();
            if (!f.equals("eps")) {
                throw new InvalidInputException(where + ": norm_kwargs field '" + f + "' is not supported (only eps)");
            }
        }
        return (float) normKwargs.path("eps").asDouble(1e-5);
    }

    private static TextPool textPool(String pool, String where) {
        return switch (pool) {
            case "argmax" -> TextPool.ARGMAX;
            case "first" -> TextPool.FIRST;
            case "last" -> TextPool.LAST;
            case "eos" -> TextPool.EOS;
            default -> throw new InvalidInputException(where + ": text pool_type '" + pool + "' is not supported");
        };
    }

    private static String tokenizer(JsonNode t) {
        String hf = t.path("hf_tokenizer_name").asText("");
        if (!hf.isEmpty()) return "Hugging Face tokenizer '" + hf + "'";
        String type = t.path("tokenizer_type").asText("");
        return type.isEmpty() || type.equals("clip") ? ClipConfig.CLIP_TOKENIZER : "tokenizer type '" + type + "'";
    }
}
