package org.clipj.model;

import org.clipj.runtime.InvalidInputException;
import org.clipj.runtime.Tensor;

import java.util.List;
import java.util.Map;
import java.util.TreeSet;

/**
 * The hyper-parameters of a CLIP model, as openai/CLIP's {@code CLIP.__init__} takes them.
 * A ViT has {@code visionPatchSize > 0} and {@code resnetLayers == null}; a ModifiedResNet has
 * {@code visionPatchSize == 0} and its four stage depths in {@code resnetLayers}.
 *
 * @param name            a label ("ViT-B/32", "inferred", ...); not part of the architecture
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
 */
public record ClipConfig(String name, int embedDim, int imageResolution, int visionWidth, int visionLayers,
                         int visionHeads, int visionPatchSize, List<Integer> resnetLayers, int contextLength,
                         int vocabSize, int textWidth, int textHeads, int textLayers) {

    public static final int OPENAI_VOCAB = 49408;
    public static final int OPENAI_CONTEXT = 77;

    public ClipConfig {
        resnetLayers = resnetLayers == null ? null : List.copyOf(resnetLayers);
        boolean vit = resnetLayers == null;
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
                resnetLayers, contextLength, vocab, textWidth, textHeads, textLayers);
    }

    /** A copy with another context length. */
    public ClipConfig withContextLength(int context) {
        return new ClipConfig(name, embedDim, imageResolution, visionWidth, visionLayers, visionHeads, visionPatchSize,
                resnetLayers, context, vocabSize, textWidth, textHeads, textLayers);
    }

    /** Names accepted by {@link #named}. */
    public static List<String> names() {
        return List.of("RN50", "RN101", "RN50x4", "RN50x16", "RN50x64", "ViT-B/32", "ViT-B/16", "ViT-L/14",
                "ViT-L/14@336px", "tiny");
    }

    /** The OpenAI configurations by their release names, and "tiny" (the demo's from-scratch model). */
    public static ClipConfig named(String name) {
        int v = OPENAI_VOCAB;
        int c = OPENAI_CONTEXT;
        return switch (name) {
            case "RN50" -> resnet(name, 1024, 224, 64, List.of(3, 4, 6, 3), c, v, 512, 12);
            case "RN101" -> resnet(name, 512, 224, 64, List.of(3, 4, 23, 3), c, v, 512, 12);
            case "RN50x4" -> resnet(name, 640, 288, 80, List.of(4, 6, 10, 6), c, v, 640, 12);
            case "RN50x16" -> resnet(name, 768, 384, 96, List.of(6, 8, 18, 8), c, v, 768, 12);
            case "RN50x64" -> resnet(name, 1024, 448, 128, List.of(3, 15, 36, 10), c, v, 1024, 12);
            case "ViT-B/32" -> vit(name, 512, 224, 768, 12, 32, c, v, 512, 12);
            case "ViT-B/16" -> vit(name, 512, 224, 768, 12, 16, c, v, 512, 12);
            case "ViT-L/14" -> vit(name, 768, 224, 1024, 24, 14, c, v, 768, 12);
            case "ViT-L/14@336px" -> vit(name, 768, 336, 1024, 24, 14, c, v, 768, 12);
            case "tiny" -> vit(name, 64, 32, 128, 3, 8, 32, v, 128, 3);
            default -> throw new InvalidInputException("unknown model config '" + name + "'; known: " + names());
        };
    }

    /**
     * The configuration of an OpenAI-named state dict, inferred as openai/CLIP's {@code build_model}
     * does: ViT iff {@code visual.proj} is present; block and stage counts from the key names; widths,
     * patch and resolutions from tensor shapes.
     */
    public static ClipConfig infer(Map<String, Tensor> stateDict) {
        int embed = require(stateDict, "text_projection", 2).dim(1);
        int context = require(stateDict, "positional_embedding", 2).dim(0);
        int vocab = require(stateDict, "token_embedding.weight", 2).dim(0);
        int textWidth = require(stateDict, "ln_final.weight", 1).dim(0);
        int textLayers = countIndices(stateDict, "transformer.resblocks.");
        if (stateDict.containsKey("visual.proj")) {
            Tensor conv1 = require(stateDict, "visual.conv1.weight", 4);
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

    private static Tensor require(Map<String, Tensor> sd, String name, int rank) {
        Tensor t = sd.get(name);
        if (t == null) {
            throw new InvalidInputException("state dict lacks tensor '" + name + "' (needed to infer the model config)");
        }
        if (t.rank() != rank) {
            throw new InvalidInputException("tensor '" + name + "' has shape " + t.shapeString() + ", expected rank " + rank);
        }
        return t;
    }

    /** Number of distinct integer components right after {@code prefix} among the keys. */
    private static int countIndices(Map<String, Tensor> sd, String prefix) {
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
