package org.clipj.model;

import com.fasterxml.jackson.annotation.JsonAutoDetect;
import com.fasterxml.jackson.annotation.PropertyAccessor;
import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.DeserializationFeature;
import com.fasterxml.jackson.databind.ObjectMapper;
import org.clipj.runtime.InvalidInputException;
import org.clipj.runtime.Shaped;

import java.util.List;
import java.util.Map;
import java.util.TreeSet;

/**
 * The hyper-parameters of a CLIP model: openai/CLIP's {@code CLIP.__init__} arguments, plus the
 * {@link Variant} fields in which open_clip's zoo and Hugging Face configs differ from OpenAI's code
 * (activation, MLP widths, layer scale, pooling, layer-norm eps, the text tokenizer). A ViT has
 * {@code visionPatchSize > 0} and {@code resnetLayers == null}; a ModifiedResNet has
 * {@code visionPatchSize == 0} and its four stage depths in {@code resnetLayers}.
 *
 * @param name            a label ("ViT-B-32", "ViT-B/32", "inferred", ...); not part of the architecture
 * @param embedDim        joint embedding width E
 * @param imageResolution input side R in pixels
 * @param visionWidth     ViT: transformer width; ResNet: stem/stage-1 width (embed of attnpool = 32x)
 * @param visionLayers    ViT: number of residual attention blocks; ResNet: total bottlenecks
 * @param visionHeads     ViT: attention heads; ResNet: AttentionPool2d heads
 * @param visionPatchSize ViT patch side; 0 for a ResNet
 * @param resnetLayers    bottlenecks per ResNet stage (4 entries); null for a ViT
 * @param contextLength   text positions (77 for OpenAI models)
 * @param vocabSize       token embedding rows
 * @param textWidth       text transformer width
 * @param textHeads       text attention heads
 * @param textLayers      text residual attention blocks
 * @param variant         everything beyond openai/CLIP's arguments; {@link Variant#openai} for OpenAI's models
 */
public record ClipConfig(String name, int embedDim, int imageResolution, int visionWidth, int visionLayers,
                         int visionHeads, int visionPatchSize, List<Integer> resnetLayers, int contextLength,
                         int vocabSize, int textWidth, int textHeads, int textLayers, Variant variant) {

    public static final int OPENAI_VOCAB = 49408;
    public static final int OPENAI_CONTEXT = 77;
    /** The tokenizer clipj has: CLIP's byte-level BPE (openai/CLIP's vocabulary or a Hugging Face pair). */
    public static final String CLIP_TOKENIZER = "clip-bpe";

    /** The MLP nonlinearity of the residual blocks. */
    public enum Activation {
        /** x * sigmoid(1.702 x): OpenAI's models and open_clip's {@code -quickgelu} names */
        QUICK_GELU,
        /** exact (erf) GELU, nn.GELU(): open_clip's default, LAION/DataComp/DFN weights */
        GELU
    }

    /** What the vision transformer's output is read from. */
    public enum VisionPool {
        /** the class token (OpenAI, open_clip 'tok') */
        TOKEN,
        /** the mean of the patch tokens, class token excluded (open_clip 'avg': CLIPA) */
        AVG
    }

    /** Which text position the features are read from. */
    public enum TextPool {
        /** the position of the largest token id (CLIP's EOT; OpenAI, open_clip 'argmax') */
        ARGMAX,
        /** the first position */
        FIRST,
        /** the last position of the (full-length) sequence (CLIPA) */
        LAST,
        /** the first position holding {@link Variant#textEosId} (Hugging Face, open_clip 'eos') */
        EOS
    }

    /**
     * The fields in which open_clip and Hugging Face architectures differ from openai/CLIP's code.
     *
     * @param visionActivation   MLP activation of the vision blocks (ViT only)
     * @param textActivation     MLP activation of the text blocks
     * @param visionMlpWidth     hidden width of the vision MLPs (ViT; 4 x width in OpenAI's models); 0 for a ResNet
     * @param textMlpWidth       hidden width of the text MLPs
     * @param visionLayerScale   initial LayerScale gamma of the vision blocks ({@code ls_1/ls_2.gamma}); 0: none
     * @param textLayerScale     the same for the text blocks
     * @param visionLnPre        whether the ViT has ln_pre (open_clip's {@code no_ln_pre} removes it)
     * @param visionPool         class token or average of the patch tokens
     * @param visionLnAfterPool  ln_post after pooling instead of over every token (only differs for AVG)
     * @param textPool           the text position pooled
     * @param textEosId          the token id {@link TextPool#EOS} looks for (-1 otherwise)
     * @param textCausal         whether the text attention is causal (open_clip's {@code no_causal_mask} turns it off)
     * @param textProjectionBias a text projection nn.Linear with bias ({@code text_projection.weight (E, W)}, {@code .bias})
     *                           instead of the (W, E) parameter
     * @param visionLnEps        LayerNorm eps of the vision tower
     * @param textLnEps          LayerNorm eps of the text tower
     * @param tokenizer          {@link #CLIP_TOKENIZER}, or the name of the tokenizer the text tower was trained with
     *                           (e.g. a Hugging Face name): texts are refused by that name, token ids still work
     */
    public record Variant(Activation visionActivation, Activation textActivation, int visionMlpWidth, int textMlpWidth,
                          float visionLayerScale, float textLayerScale, boolean visionLnPre, VisionPool visionPool,
                          boolean visionLnAfterPool, TextPool textPool, int textEosId, boolean textCausal,
                          boolean textProjectionBias, float visionLnEps, float textLnEps, String tokenizer) {
        public Variant {
            java.util.Objects.requireNonNull(visionActivation, "visionActivation");
            java.util.Objects.requireNonNull(textActivation, "textActivation");
            java.util.Objects.requireNonNull(visionPool, "visionPool");
            java.util.Objects.requireNonNull(textPool, "textPool");
            java.util.Objects.requireNonNull(tokenizer, "tokenizer");
            if (visionMlpWidth < 0 || textMlpWidth <= 0 || !(visionLnEps > 0) || !(textLnEps > 0)) {
                throw new InvalidInputException("config variant: MLP widths and layer-norm eps must be positive, got "
                        + visionMlpWidth + "/" + textMlpWidth + ", " + visionLnEps + "/" + textLnEps);
            }
            if (!Float.isFinite(visionLayerScale) || !Float.isFinite(textLayerScale)) {
                throw new InvalidInputException("config variant: layer scale init must be finite");
            }
            if (textPool == TextPool.EOS && textEosId < 0) {
                throw new InvalidInputException("config variant: text pooling at EOS needs an eos token id");
            }
        }

        /** openai/CLIP's architecture: QuickGELU, 4x MLPs, no layer scale, class token, causal argmax text, eps 1e-5. */
        public static Variant openai(int visionWidth, boolean vit, int textWidth) {
            return new Variant(Activation.QUICK_GELU, Activation.QUICK_GELU, vit ? 4 * visionWidth : 0, 4 * textWidth,
                    0f, 0f, true, VisionPool.TOKEN, false, TextPool.ARGMAX, -1, true, false, 1e-5f, 1e-5f, CLIP_TOKENIZER);
        }

        public Variant withActivation(Activation a) {
            return new Variant(a, a, visionMlpWidth, textMlpWidth, visionLayerScale, textLayerScale, visionLnPre,
                    visionPool, visionLnAfterPool, textPool, textEosId, textCausal, textProjectionBias, visionLnEps,
                    textLnEps, tokenizer);
        }

        public boolean hasVisionLayerScale() {
            return visionLayerScale != 0f;
        }

        public boolean hasTextLayerScale() {
            return textLayerScale != 0f;
        }
    }

    public ClipConfig {
        resnetLayers = resnetLayers == null ? null : List.copyOf(resnetLayers);
        boolean vit = resnetLayers == null;
        if (variant == null) {
            throw new InvalidInputException("config " + name + ": no variant");
        }
        if (vit && (visionPatchSize <= 0 || imageResolution % visionPatchSize != 0)) {
            throw new InvalidInputException("config " + name + ": image resolution " + imageResolution
                    + " is not a multiple of the patch size " + visionPatchSize);
        }
        if (!vit && (resnetLayers.size() != 4 || imageResolution % 32 != 0 || visionPatchSize != 0)) {
            throw new InvalidInputException("config " + name + ": a ResNet needs 4 stages, patch size 0 and a"
                    + " resolution divisible by 32, got " + resnetLayers + ", " + visionPatchSize + ", " + imageResolution);
        }
        if (embedDim <= 0 || visionWidth <= 0 || textWidth <= 0 || contextLength <= 0 || vocabSize <= 0
                || visionHeads <= 0 || textHeads <= 0 || textLayers < 0 || visionLayers < 0) {
            throw new InvalidInputException("config " + name + ": every size must be positive");
        }
        int attnWidth = vit ? visionWidth : visionWidth * 32;
        if (attnWidth % visionHeads != 0 || textWidth % textHeads != 0) {
            throw new InvalidInputException("config " + name + ": widths " + attnWidth + "/" + textWidth
                    + " are not divisible by heads " + visionHeads + "/" + textHeads);
        }
        if (vit && variant.visionMlpWidth() <= 0) {
            throw new InvalidInputException("config " + name + ": a ViT needs a positive MLP width");
        }
    }

    /** An openai/CLIP architecture ({@link Variant#openai}). */
    public ClipConfig(String name, int embedDim, int imageResolution, int visionWidth, int visionLayers,
                      int visionHeads, int visionPatchSize, List<Integer> resnetLayers, int contextLength,
                      int vocabSize, int textWidth, int textHeads, int textLayers) {
        this(name, embedDim, imageResolution, visionWidth, visionLayers, visionHeads, visionPatchSize, resnetLayers,
                contextLength, vocabSize, textWidth, textHeads, textLayers,
                Variant.openai(visionWidth, resnetLayers == null, textWidth));
    }

    /** The safetensors metadata key under which clipj's own checkpoints carry their config. */
    public static final String METADATA_KEY = "clipj.config";
    private static final ObjectMapper JSON = new ObjectMapper()
            .setVisibility(PropertyAccessor.IS_GETTER, JsonAutoDetect.Visibility.NONE)
            .configure(DeserializationFeature.FAIL_ON_NULL_FOR_PRIMITIVES, true);

    /** This config as JSON (every field, the variant included), for {@link #METADATA_KEY}. */
    public String toJson() {
        try {
            return JSON.writeValueAsString(this);
        } catch (JsonProcessingException e) {
            throw new IllegalStateException("config " + name + " cannot be written as JSON", e);
        }
    }

    /** The config {@link #toJson} wrote; {@code where} names the source in errors. */
    public static ClipConfig fromJson(String json, String where) {
        try {
            return JSON.readValue(json, ClipConfig.class);
        } catch (JsonProcessingException e) {
            throw new InvalidInputException(where + ": unreadable clipj config: " + e.getOriginalMessage(), e);
        }
    }

    /** OpenAI's head rule: width / 64, at least 1. */
    public static int headsFor(int width) {
        return Math.max(1, width / 64);
    }

    public static ClipConfig vit(String name, int embedDim, int resolution, int width, int layers, int patch,
                                 int contextLength, int vocabSize, int textWidth, int textLayers) {
        return new ClipConfig(name, embedDim, resolution, width, layers, headsFor(width), patch, null,
                contextLength, vocabSize, textWidth, headsFor(textWidth), textLayers);
    }

    public static ClipConfig resnet(String name, int embedDim, int resolution, int width, List<Integer> layers,
                                    int contextLength, int vocabSize, int textWidth, int textLayers) {
        int total = layers.stream().mapToInt(Integer::intValue).sum();
        return new ClipConfig(name, embedDim, resolution, width, total, width * 32 / 64, 0, layers,
                contextLength, vocabSize, textWidth, headsFor(textWidth), textLayers);
    }

    public boolean isVit() {
        return resnetLayers == null;
    }

    /** ViT: patches per side; ResNet: side of the final feature map (resolution / 32). */
    public int grid() {
        return isVit() ? imageResolution / visionPatchSize : imageResolution / 32;
    }

    /** Width the visual attention runs at: the ViT width or the AttentionPool2d embed (width * 32). */
    public int visionAttentionWidth() {
        return isVit() ? visionWidth : visionWidth * 32;
    }

    /** A copy with another vocabulary size (a BPE trained on the training captions). */
    public ClipConfig withVocabSize(int vocab) {
        return new ClipConfig(name, embedDim, imageResolution, visionWidth, visionLayers, visionHeads, visionPatchSize,
                resnetLayers, contextLength, vocab, textWidth, textHeads, textLayers, variant);
    }

    /** A copy with another context length. */
    public ClipConfig withContextLength(int context) {
        return new ClipConfig(name, embedDim, imageResolution, visionWidth, visionLayers, visionHeads, visionPatchSize,
                resnetLayers, context, vocabSize, textWidth, textHeads, textLayers, variant);
    }

    /** A copy with another label. */
    public ClipConfig withName(String label) {
        return new ClipConfig(label, embedDim, imageResolution, visionWidth, visionLayers, visionHeads, visionPatchSize,
                resnetLayers, contextLength, vocabSize, textWidth, textHeads, textLayers, variant);
    }

    /** A copy with another variant. */
    public ClipConfig withVariant(Variant v) {
        return new ClipConfig(name, embedDim, imageResolution, visionWidth, visionLayers, visionHeads, visionPatchSize,
                resnetLayers, contextLength, vocabSize, textWidth, textHeads, textLayers, v);
    }

    /** Whether texts can be tokenized by clipj (CLIP's BPE); otherwise only token ids reach the text tower. */
    public boolean hasClipTokenizer() {
        return variant.tokenizer().equals(CLIP_TOKENIZER);
    }

    /**
     * Whether running only the positions up to the batch's last EOT gives the full-length features:
     * true for causal attention pooled at the EOT (nothing later reaches it), false otherwise.
     */
    public boolean textTruncatable() {
        return variant.textCausal() && variant.textPool() != TextPool.LAST;
    }

    /**
     * OpenAI's ViT release names accepted by {@link #named} (openai/CLIP's code, QuickGELU) and "tiny".
     * The ResNet names (RN50, ..., RN50x64) are open_clip's as well, where they mean exact GELU, so they
     * resolve through {@link OpenClipZoo} like every other open_clip name: OpenAI's ResNet weights are
     * RN50-quickgelu, ... (and load as OpenAI's architecture without any name from their TorchScript files).
     */
    public static List<String> names() {
        return List.of("ViT-B/32", "ViT-B/16", "ViT-L/14", "ViT-L/14@336px", "tiny");
    }

    /**
     * An architecture by name: OpenAI's ViT release names (ViT-B/32, ...: openai/CLIP's code, QuickGELU),
     * "tiny" (the demo's from-scratch model), or any open_clip name ({@link OpenClipZoo}: ViT-B-32 and RN50 are
     * exact GELU, ViT-B-32-quickgelu and RN50-quickgelu are OpenAI's).
     */
    public static ClipConfig named(String name) {
        int v = OPENAI_VOCAB;
        int c = OPENAI_CONTEXT;
        return switch (name) {
            case "ViT-B/32" -> vit(name, 512, 224, 768, 12, 32, c, v, 512, 12);
            case "ViT-B/16" -> vit(name, 512, 224, 768, 12, 16, c, v, 512, 12);
            case "ViT-L/14" -> vit(name, 768, 224, 1024, 24, 14, c, v, 768, 12);
            case "ViT-L/14@336px" -> vit(name, 768, 336, 1024, 24, 14, c, v, 768, 12);
            case "tiny" -> vit(name, 64, 32, 128, 3, 8, 32, v, 128, 3);
            default -> OpenClipZoo.config(name);
        };
    }

    /**
     * The configuration of an OpenAI-named state dict, inferred as openai/CLIP's {@code build_model}
     * does: ViT iff {@code visual.proj} is present; block and stage counts from the key names; widths,
     * patch and resolutions from tensor shapes.
     */
    public static ClipConfig infer(Map<String, ? extends Shaped> stateDict) {
        int embed = require(stateDict, "text_projection", 2).dim(1);
        int context = require(stateDict, "positional_embedding", 2).dim(0);
        int vocab = require(stateDict, "token_embedding.weight", 2).dim(0);
        int textWidth = require(stateDict, "ln_final.weight", 1).dim(0);
        int textLayers = countIndices(stateDict, "transformer.resblocks.");
        if (stateDict.containsKey("visual.proj")) {
            Shaped conv1 = require(stateDict, "visual.conv1.weight", 4);
            int width = conv1.dim(0);
            int patch = conv1.dim(3);
            int layers = 0;
            for (String k : stateDict.keySet()) {
                if (k.startsWith("visual.") && k.endsWith(".attn.in_proj_weight")) {
                    layers++;
                }
            }
            int positions = require(stateDict, "visual.positional_embedding", 2).dim(0);
            int grid = (int) Math.round(Math.sqrt(positions - 1));
            if (grid * grid + 1 != positions) {
                throw new InvalidInputException("tensor 'visual.positional_embedding' has " + positions
                        + " rows, not a square grid plus one class token");
            }
            return vit("inferred", embed, patch * grid, width, layers, patch, context, vocab, textWidth, textLayers);
        }
        List<Integer> counts = new java.util.ArrayList<>();
        for (int b = 1; b <= 4; b++) {
            int n = countIndices(stateDict, "visual.layer" + b + ".");
            if (n == 0) {
                throw new InvalidInputException("state dict has neither 'visual.proj' (ViT) nor 'visual.layer" + b
                        + ".*' (ModifiedResNet) tensors");
            }
            counts.add(n);
        }
        int width = require(stateDict, "visual.layer1.0.conv1.weight", 4).dim(0);
        int positions = require(stateDict, "visual.attnpool.positional_embedding", 2).dim(0);
        int outputWidth = (int) Math.round(Math.sqrt(positions - 1));
        if (outputWidth * outputWidth + 1 != positions) {
            throw new InvalidInputException("tensor 'visual.attnpool.positional_embedding' has " + positions
                    + " rows, not a square grid plus one mean token");
        }
        return resnet("inferred", embed, outputWidth * 32, width, counts, context, vocab, textWidth, textLayers);
    }

    private static Shaped require(Map<String, ? extends Shaped> sd, String name, int rank) {
        Shaped t = sd.get(name);
        if (t == null) {
            throw new InvalidInputException("state dict lacks tensor '" + name + "' (needed to infer the model config)");
        }
        if (t.rank() != rank) {
            throw new InvalidInputException("tensor '" + name + "' has shape " + t.shapeString() + ", expected rank " + rank);
        }
        return t;
    }

    /** Number of distinct integer components right after {@code prefix} among the keys. */
    private static int countIndices(Map<String, ? extends Shaped> sd, String prefix) {
        TreeSet<String> indices = new TreeSet<>();
        for (String k : sd.keySet()) {
            if (k.startsWith(prefix)) {
                String rest = k.substring(prefix.length());
                int dot = rest.indexOf('.');
                indices.add(dot < 0 ? rest : rest.substring(0, dot));
            }
        }
        return indices.size();
    }
}
