package org.clipj.io;

import org.clipj.runtime.Tensor;

import java.nio.file.Path;
import java.util.Collections;
import java.util.Map;

/**
 * An opened checkpoint: its tensors in OpenAI naming as {@link StoredTensor}s, whose dtypes and shapes
 * are known and checked and whose elements are read from the file only when asked (F16/BF16 kept as
 * stored; the model decides whether to widen), the container format and the naming scheme the file used.
 *
 * @param path     the file that was read (a folder argument resolves to the file inside it)
 * @param stored   OpenAI-named tensors, unmodifiable, in file order; logit_scale has shape (1)
 * @param metadata safetensors {@code __metadata__} (empty for PyTorch archives)
 */
public record Checkpoint(Path path, Format format, Naming naming, Map<String, StoredTensor> stored,
                         Map<String, String> metadata) {

    /**
     * Reads every tensor now (in parallel) into CPU tensors, in file order: a full state dict in memory,
     * as training needs; building an inference model takes {@link #stored()} one tensor at a time instead.
     */
    public Map<String, Tensor> tensors() {
        return Collections.unmodifiableMap(StoredTensor.readAll(stored));
    }

    public enum Format {
        /** safetensors */
        SAFETENSORS,
        /** torch.save zip archive (.bin/.pt) holding a state dict */
        TORCH_ZIP,
        /** TorchScript archive (OpenAI's released .pt files) */
        TORCHSCRIPT
    }

    public enum Naming {
        /** openai/CLIP and open_clip names (visual.transformer.resblocks.0.attn.in_proj_weight) */
        OPENAI,
        /** Hugging Face transformers CLIPModel names (vision_model.encoder.layers.0.self_attn.q_proj.weight) */
        HUGGINGFACE
    }
}
