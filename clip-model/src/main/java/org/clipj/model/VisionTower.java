package org.clipj.model;

import org.clipj.runtime.Backend;
import org.clipj.runtime.DType;
import org.clipj.runtime.Tensor;

import java.util.List;
import java.util.Map;
import java.util.function.Function;

/**
 * A CLIP image encoder, {@link VisionTransformer} or {@link ModifiedResNet}: pixels (B, 3, R, R) to
 * features (B, E), and the backward of that. A tower reads its tensors through a lookup by OpenAI name,
 * so one architecture is built over the parameters, over their gradients (the tower a backward
 * accumulates into) or over prepared inference copies.
 */
interface VisionTower {

    /** The activations {@link #forward} keeps for {@link #backward}, and the features. */
    interface Activations {
        /** (B, E) unnormalized. */
        Tensor features();

        /** Named intermediate activations, as the golden files name them without the "act." prefix. */
        Map<String, Tensor> intermediates();
    }

    /**
     * The tower of the config's architecture over the tensors {@code lookup} gives; activations: those of a ViT's
     * residual blocks (F32, or BF16/F16 for 16-bit inference on CUDA); a ResNet's stay F32.
     */
    static VisionTower of(Backend backend, Function<String, Tensor> lookup, ClipConfig config, DType activations) {
        return config.isVit() ? new VisionTransformer(backend, lookup, config, activations) : new ModifiedResNet(backend, lookup, config);
    }

    /** Every visual.* tensor of the config's tower, in buffer order. */
    static void specs(ClipConfig config, List<TensorSpec> out) {
        if (config.isVit()) {
            VisionTransformer.specs(config, out);
        } else {
            ModifiedResNet.specs(config, out);
        }
    }

    /**
     * Whether the tower multiplies this rank-4 weight in {@link Backend#patchEmbedForward} (the ViT's
     * patch embedding), so an inference model hands it to {@link Backend#prepareWeight}; a ResNet's
     * convolutions run through im2col and are not prepared.
     */
    static boolean isPatchEmbedding(ClipConfig config, String name) {
        return config.isVit() && name.equals(VisionTransformer.PATCH_EMBEDDING);
    }

    /** Empty activations for one {@link #forward} of this tower. */
    Activations newActivations();

    /**
     * pixels (B, 3, R, R) -> features (B, E); {@code keep} (filled) when non-null. train: a ResNet's
     * BatchNorm uses batch statistics and updates its running statistics; a ViT has no train mode.
     */
    Tensor forward(Tensor pixels, Activations keep, boolean train);

    /**
     * Accumulates into {@code grads} (this architecture over the gradient views) the gradient of every
     * parameter for dFeatures (B, E), from the activations of a forward of this tower.
     */
    void backward(Tensor dFeatures, Activations kept, VisionTower grads);
}
