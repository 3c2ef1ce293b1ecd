package org.clipj.io;

import org.clipj.io.Checkpoint.Naming;
import org.clipj.runtime.InvalidInputException;
import org.clipj.runtime.Shaped;
import org.clipj.runtime.Tensor;

import java.lang.foreign.MemorySegment;
import java.util.Arrays;
import java.util.Collection;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * Tensor names. The model speaks OpenAI naming (openai/CLIP, open_clip:
 * {@code visual.transformer.resblocks.0.attn.in_proj_weight}); Hugging Face {@code CLIPModel}
 * names are mapped to it (q/k/v projections concatenated into in_proj, the two projections
 * transposed) and back. {@code module.} prefixes (DataParallel) are stripped, tensors that are
 * not parameters are dropped by name (see {@link #isIgnored}), and {@code logit_scale} always has
 * shape (1): PyTorch stores it 0-d, safetensors writers often as (1).
 */
public final class StateDictNames {
    /** Top-level non-parameter tensors of OpenAI's TorchScript models. */
    private static final Set<String> IGNORED_TOP_LEVEL = Set.of("input_resolution", "context_length", "vocab_size");
    /**
     * Non-parameter tensors ignored wherever they appear: Hugging Face's position_ids buffers and
     * the causal attention masks TorchScript modules (and some open_clip versions) carry.
     */
    private static final Set<String> IGNORED_LEAVES = Set.of("position_ids", "attn_mask");

    /** Stored as () by PyTorch and Hugging Face, as (1) by safetensors writers; always (1) here. */
    private static final String LOGIT_SCALE = "logit_scale";
    private static final String HF_TEXT = "text_model.";
    private static final String HF_VISION = "vision_model.";
    private static final Pattern HF_LAYER = Pattern.compile("(text_model|vision_model)\\.encoder\\.layers\\.(\\d+)\\.(.+)");
    private static final Pattern OPENAI_LAYER = Pattern.compile("(visual\\.)?transformer\\.resblocks\\.(\\d+)\\.(.+)");
    private static final Pattern HF_QKV = Pattern.compile("self_attn\\.([qkv])_proj\\.(weight|bias)");

    // Hugging Face name -> OpenAI name, outside the layers (projections handled apart: transposed).
    private static final Map<String, String> HF_TOP = Map.ofEntries(
            Map.entry("text_model.embeddings.token_embedding.weight", "token_embedding.weight"),
            Map.entry("text_model.embeddings.position_embedding.weight", "positional_embedding"),
            Map.entry("text_model.final_layer_norm.weight", "ln_final.weight"),
            Map.entry("text_model.final_layer_norm.bias", "ln_final.bias"),
            Map.entry("vision_model.embeddings.class_embedding", "visual.class_embedding"),
            Map.entry("vision_model.embeddings.patch_embedding.weight", "visual.conv1.weight"),
            Map.entry("vision_model.embeddings.position_embedding.weight", "visual.positional_embedding"),
            Map.entry("vision_model.pre_layrnorm.weight", "visual.ln_pre.weight"), // "layrnorm" (sic) is HF's name
            Map.entry("vision_model.pre_layrnorm.bias", "visual.ln_pre.bias"),
            Map.entry("vision_model.post_layernorm.weight", "visual.ln_post.weight"),
            Map.entry("vision_model.post_layernorm.bias", "visual.ln_post.bias"),
            Map.entry(LOGIT_SCALE, LOGIT_SCALE));
    private static final Map<String, String> HF_PROJECTIONS = Map.of(
            "visual_projection.weight", "visual.proj",
            "text_projection.weight", "text_projection");
    // Inside a layer: Hugging Face suffix -> OpenAI suffix (q/k/v handled apart: concatenated).
    private static final Map<String, String> HF_LAYER_PARTS = Map.ofEntries(
            Map.entry("self_attn.out_proj.weight", "attn.out_proj.weight"),
            Map.entry("self_attn.out_proj.bias", "attn.out_proj.bias"),
            Map.entry("layer_norm1.weight", "ln_1.weight"),
            Map.entry("layer_norm1.bias", "ln_1.bias"),
            Map.entry("layer_norm2.weight", "ln_2.weight"),
            Map.entry("layer_norm2.bias", "ln_2.bias"),
            Map.entry("mlp.fc1.weight", "mlp.c_fc.weight"),
            Map.entry("mlp.fc1.bias", "mlp.c_fc.bias"),
            Map.entry("mlp.fc2.weight", "mlp.c_proj.weight"),
            Map.entry("mlp.fc2.bias", "mlp.c_proj.bias"));

    private StateDictNames() {
    }

    /** {@code name} without leading {@code module.} prefixes. */
    public static String stripModulePrefix(String name) {
        String n = name;
        while (n.startsWith("module.")) {
            n = n.substring("module.".length());
        }
        return n;
    }

    /** Whether a (prefix-stripped) name is a non-parameter tensor the loader drops. */
    public static boolean isIgnored(String name) {
        String n = stripModulePrefix(name);
        return IGNORED_TOP_LEVEL.contains(n) || IGNORED_LEAVES.contains(n.substring(n.lastIndexOf('.') + 1));
    }

    /**
     * Why the towers these (prefix-stripped) names describe are not supported, or null: timm vision
     * towers (open_clip's ConvNeXt, EVA, SigLIP ViT: {@code visual.trunk.*}), Hugging Face text towers
     * (XLM-R, mT5, RoBERTa: {@code text.transformer.embeddings|encoder.*}, {@code text.proj}), CoCa's
     * decoder, attentional poolers, SigLIP's logit bias.
     */
    public static String unsupportedTower(Collection<String> names) {
        for (String name : names) {
            String n = stripModulePrefix(name);
            if (n.startsWith("visual.trunk.")) return "a timm vision tower (ConvNeXt, EVA, SigLIP's ViT, ...: 'visual.trunk.*')";
            if (n.startsWith("text.transformer.embeddings.") || n.startsWith("text.transformer.encoder.")
                    || n.startsWith("text.transformer.shared.") || n.startsWith("text.proj.")) {
                return "a Hugging Face text tower (XLM-R, mT5, RoBERTa, ...: '" + n + "')";
            }
            if (n.startsWith("text_decoder.")) return "CoCa's captioning decoder ('text_decoder.*')";
            if (n.startsWith("visual.attn_pool")) return "an attentional pooler ('visual.attn_pool*')";
            if (n.equals("logit_bias")) return "SigLIP's sigmoid loss ('logit_bias')";
        }
        return null;
    }

    /** Hugging Face if any name lives under text_model. / vision_model., OpenAI otherwise. */
    public static Naming detect(Collection<String> names) {
        for (String name : names) {
            String n = stripModulePrefix(name);
            if (n.startsWith(HF_TEXT) || n.startsWith(HF_VISION)) {
                return Naming.HUGGINGFACE;
            }
        }
        return Naming.OPENAI;
    }

    /**
     * Raw checkpoint tensors to OpenAI naming: prefixes stripped, ignored tensors dropped, Hugging
     * Face names mapped. {@code source} names the file in errors (an unknown Hugging Face name, a
     * name that appears twice after stripping, a q/k/v triple with a part missing). Nothing is read:
     * a mapped tensor that is transposed or concatenated reads its sources when it is read.
     */
    public static Map<String, StoredTensor> toOpenAi(Map<String, StoredTensor> raw, String source) {
        Map<String, StoredTensor> stripped = new LinkedHashMap<>();
        for (Map.Entry<String, StoredTensor> e : raw.entrySet()) {
            String name = stripModulePrefix(e.getKey());
            if (isIgnored(name)) {
                continue;
            }
            if (stripped.put(name, e.getValue()) != null) {
                throw new InvalidInputException(source + ": tensor '" + name + "' appears twice (with and without 'module.')");
            }
        }
        Map<String, StoredTensor> out = detect(stripped.keySet()) == Naming.HUGGINGFACE ? fromHuggingFace(stripped, source)
                : withoutTextPrefix(stripped, source);
        StoredTensor scale = out.get(LOGIT_SCALE);
        if (scale != null && scale.rank() == 0) {
            out.put(LOGIT_SCALE, scale.reshaped(1));
        }
        return out;
    }

    /**
     * open_clip's CustomTextCLIP with its native text transformer keeps the text tower under {@code text.}
     * ({@code text.token_embedding.weight}, {@code text.transformer.resblocks.*}, {@code text.text_projection}):
     * the same tensors as CLIP's top-level ones.
     */
    private static Map<String, StoredTensor> withoutTextPrefix(Map<String, StoredTensor> named, String source) {
        if (!named.containsKey("text.token_embedding.weight")) {
            return named;
        }
        Map<String, StoredTensor> out = new LinkedHashMap<>();
        for (Map.Entry<String, StoredTensor> e : named.entrySet()) {
            String name = e.getKey().startsWith("text.") ? e.getKey().substring("text.".length()) : e.getKey();
            if (out.put(name, e.getValue()) != null) {
                throw new InvalidInputException(source + ": tensor '" + name + "' appears both with and without 'text.'");
            }
        }
        return out;
    }

    private static Map<String, StoredTensor> fromHuggingFace(Map<String, StoredTensor> hf, String source) {
        Map<String, StoredTensor> out = new LinkedHashMap<>();
        Map<String, StoredTensor[]> qkv = new LinkedHashMap<>(); // OpenAI in_proj name -> {q, k, v}
        for (Map.Entry<String, StoredTensor> e : hf.entrySet()) {
            String name = e.getKey();
            StoredTensor t = e.getValue();
            String target;
            Matcher layer = HF_LAYER.matcher(name);
            if (HF_TOP.containsKey(name)) {
                target = HF_TOP.get(name);
            } else if (HF_PROJECTIONS.containsKey(name)) {
                target = HF_PROJECTIONS.get(name);
                t = transposed(t, source + ": tensor '" + name + "'");
            } else if (layer.matches()) {
                String block = (layer.group(1).equals("vision_model") ? "visual." : "") + "transformer.resblocks." + layer.group(2) + ".";
                Matcher part = HF_QKV.matcher(layer.group(3));
                if (part.matches()) {
                    StoredTensor[] triple = qkv.computeIfAbsent(block + "attn.in_proj_" + part.group(2), k -> new StoredTensor[3]);
                    triple["qkv".indexOf(part.group(1))] = t;
                    continue;
                }
                String suffix = HF_LAYER_PARTS.get(layer.group(3));
                if (suffix == null) {
                    throw unknown(source, name);
                }
                target = block + suffix;
            } else {
                throw unknown(source, name);
            }
            out.put(target, t);
        }
        for (Map.Entry<String, StoredTensor[]> e : qkv.entrySet()) {
            out.put(e.getKey(), concatRows(e.getValue(), e.getKey(), source));
        }
        return out;
    }

    private static InvalidInputException unknown(String source, String name) {
        return new InvalidInputException(source + ": tensor '" + name + "' is not part of a Hugging Face CLIPModel");
    }

    /**
     * OpenAI-named tensors to Hugging Face CLIPModel names (in_proj split into q/k/v, the projections
     * transposed). Only ViT towers exist there: a ResNet tensor is an error.
     */
    public static Map<String, Tensor> toHuggingFace(Map<String, Tensor> openAi) {
        Map<String, String> top = new LinkedHashMap<>();
        HF_TOP.forEach((hf, oa) -> top.put(oa, hf));
        Map<String, String> projections = new LinkedHashMap<>();
        HF_PROJECTIONS.forEach((hf, oa) -> projections.put(oa, hf));
        Map<String, String> layerParts = new LinkedHashMap<>();
        HF_LAYER_PARTS.forEach((hf, oa) -> layerParts.put(oa, hf));

        Map<String, Tensor> out = new LinkedHashMap<>();
        for (Map.Entry<String, Tensor> e : openAi.entrySet()) {
            String name = e.getKey();
            Tensor t = e.getValue();
            Matcher layer = OPENAI_LAYER.matcher(name);
            if (name.equals(LOGIT_SCALE)) {
                out.put(LOGIT_SCALE, t.reshape()); // CLIPModel's logit_scale is a 0-d parameter
            } else if (top.containsKey(name)) {
                out.put(top.get(name), t);
            } else if (projections.containsKey(name)) {
                out.put(projections.get(name), transpose(t, "tensor '" + name + "'"));
            } else if (layer.matches()) {
                String block = (layer.group(1) == null ? HF_TEXT : HF_VISION) + "encoder.layers." + layer.group(2) + ".";
                String part = layer.group(3);
                if (part.equals("attn.in_proj_weight") || part.equals("attn.in_proj_bias")) {
                    String kind = part.substring("attn.in_proj_".length());
                    if (t.rank() == 0 || t.dim(0) % 3 != 0) {
                        throw new InvalidInputException("tensor '" + name + "' of shape " + t.shapeString()
                                + " cannot be split into q, k, v");
                    }
                    int c = t.dim(0) / 3;
                    for (int i = 0; i < 3; i++) {
                        out.put(block + "self_attn." + "qkv".charAt(i) + "_proj." + kind, t.slice(i * c, (i + 1) * c).copy());
                    }
                } else if (layerParts.containsKey(part)) {
                    out.put(block + layerParts.get(part), t);
                } else {
                    throw new InvalidInputException("tensor '" + name + "' has no Hugging Face CLIPModel name");
                }
            } else {
                throw new InvalidInputException("tensor '" + name + "' has no Hugging Face CLIPModel name"
                        + (name.startsWith("visual.") ? " (Hugging Face CLIPModel has no ResNet image tower)" : ""));
            }
        }
        return out;
    }

    /** A stored 2-D tensor, read transposed. */
    private static StoredTensor transposed(StoredTensor t, String where) {
        requireProjection(t, where);
        return StoredTensor.of(t.dtype(), new int[] {t.dim(1), t.dim(0)}, () -> transpose(t.read(), where));
    }

    private static void requireProjection(Shaped t, String where) {
        if (t.rank() != 2) {
            throw new InvalidInputException(where + ": expected a 2-D projection, found shape " + t.shapeString());
        }
    }

    /** A 2-D tensor transposed into a new contiguous tensor of the same dtype. */
    static Tensor transpose(Tensor t, String where) {
        requireProjection(t, where);
        int rows = t.dim(0), cols = t.dim(1);
        long size = t.dtype().byteSize();
        Tensor out = Tensor.zeros(t.dtype(), cols, rows);
        MemorySegment src = t.segment(), dst = out.segment();
        for (int i = 0; i < rows; i++) {
            for (int j = 0; j < cols; j++) {
                MemorySegment.copy(src, ((long) i * cols + j) * size, dst, ((long) j * rows + i) * size, size);
            }
        }
        return out;
    }

    // q, k, v (C, ...) stacked along dimension 0 into (3C, ...): checked now, read when the result is read.
    private static StoredTensor concatRows(StoredTensor[] qkv, String target, String source) {
        for (int i = 0; i < 3; i++) {
            if (qkv[i] == null) {
                throw new InvalidInputException(source + ": the " + "qkv".charAt(i) + "_proj tensor for '" + target
                        + "' is missing (q, k and v are merged into it)");
            }
        }
        StoredTensor q = qkv[0];
        for (StoredTensor other : List.of(qkv[1], qkv[2])) {
            if (!Arrays.equals(other.shape(), q.shape()) || other.dtype() != q.dtype()) {
                throw new InvalidInputException(source + ": q/k/v projections for '" + target + "' differ: "
                        + q.shapeString() + " " + q.dtype() + " vs " + other.shapeString() + " " + other.dtype());
            }
        }
        if (q.rank() == 0) {
            throw new InvalidInputException(source + ": q/k/v projections for '" + target + "' are scalars");
        }
        int[] shape = q.shape();
        shape[0] *= 3;
        return StoredTensor.of(q.dtype(), shape, () -> {
            Tensor out = Tensor.zeros(q.dtype(), shape);
            long partBytes = out.byteSize() / 3;
            for (int i = 0; i < 3; i++) {
                MemorySegment.copy(qkv[i].read().segment(), 0, out.segment(), i * partBytes, partBytes);
            }
            return out;
        });
    }
}
