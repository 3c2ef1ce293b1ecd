package org.clipj.model;

import org.clipj.runtime.Tensor;

import java.util.Map;

/**
 * What {@link ClipModel#forwardImage} keeps for {@link ClipModel#backwardImage}: the features and
 * every activation of the vision tower. Owned by one caller; use it for one backward.
 */
public final class ImageActivations {
    final VisionTower.Activations kept;

    ImageActivations(VisionTower.Activations kept) {
        this.kept = kept;
    }

    /** (B, E) image features, not normalized. */
    public Tensor features() {
        return kept.features();
    }

    public int batchSize() {
        return kept.features().dim(0);
    }

    /**
     * Named intermediate activations, as the golden files name them without the "act." prefix:
     * ViT: {@code visual.ln_pre} and {@code visual.block.<i>} (B, T, W); ResNet: {@code visual.stem}
     * and {@code visual.layer<1..4>} (B, C, H, W).
     */
    public Map<String, Tensor> intermediates() {
        return kept.intermediates();
    }
}
