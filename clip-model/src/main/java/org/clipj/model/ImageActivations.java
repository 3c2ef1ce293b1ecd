package org.clipj.model;

import org.clipj.runtime.Tensor;

import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * What {@link ClipModel#forwardImage} keeps for {@link ClipModel#backwardImage}: the features and
 * every activation of the vision tower. Owned by one caller; use it for one backward.
 */
public final class ImageActivations {
    final VisionTransformer.Cache vit;       // null for a ResNet
    final ModifiedResNet.Cache resnet;       // null for a ViT
    private final Tensor features;           // (B, E) unnormalized

    ImageActivations(VisionTransformer.Cache vit, ModifiedResNet.Cache resnet) {
        this.vit = vit;
        this.resnet = resnet;
        this.features = vit != null ? vit.features : resnet.features;
    }

    /** (B, E) image features, not normalized. */
    public Tensor features() {
        return features;
    }

    public int batchSize() {
        return features.dim(0);
    }

    /**
     * Named intermediate activations, as the golden files name them without the "act." prefix:
     * ViT: {@code visual.ln_pre} and {@code visual.block.<i>} (B, T, W); ResNet: {@code visual.stem}
     * and {@code visual.layer<1..4>} (B, C, H, W).
     */
    public Map<String, Tensor> intermediates() {
        Map<String, Tensor> m = new LinkedHashMap<>();
        if (vit != null) {
            m.put("visual.ln_pre", vit.lnPre);
            for (int i = 0; i < vit.blocks.size(); i++) {
                m.put("visual.block." + i, vit.blocks.get(i).out);
            }
        } else {
            m.put("visual.stem", resnet.stem);
            for (int i = 0; i < resnet.stageOutputs.size(); i++) {
                m.put("visual.layer" + (i + 1), resnet.stageOutputs.get(i));
            }
        }
        return Collections.unmodifiableMap(m);
    }
}
