package org.clipj.io;

import org.clipj.runtime.Tensor;

import java.nio.file.Path;
import java.util.Map;

/**
 * A loaded checkpoint: its CPU tensors in OpenAI naming (F16/BF16 kept as stored; the model decides
 * whether to widen), the container format and the naming scheme the file used.
 *
 * @param path     the file that was read (a folder argument resolves to the file inside it)
 * @param tensors  OpenAI-named tensors, unmodifiable, in file order; logit_scale has shape (1)
 * @param metadata safetensors {@code __metadata__} (empty for PyTorch archives)
 */
public record Checkpoint(Path path, Format format, Naming naming, Map<String, Tensor> tensors,
                         Map<String, String> metadata) {

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
