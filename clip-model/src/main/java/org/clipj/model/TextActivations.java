package org.clipj.model;

import org.clipj.runtime.Tensor;

import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * What {@link ClipModel#forwardText} keeps for {@link ClipModel#backwardText}: the features and
 * every activation of the text tower. Owned by one caller; use it for one backward.
 */
public final class TextActivations {
    final TextTransformer.Cache cache;

    TextActivations(TextTransformer.Cache cache) {
        this.cache = cache;
    }

    /** (B, E) text features, not normalized. */
    public Tensor features() {
        return cache.features;
    }

    public int batchSize() {
        return cache.features.dim(0);
    }

    /** (B) I32 position of each sequence's EOT token (the first maximal id). */
    public Tensor eotIndex() {
        return cache.eotIndex;
    }

    /** {@code text.block.<i>} (B, T, C) and {@code text.ln_final} (B, T, C), as the golden files name them. */
    public Map<String, Tensor> intermediates() {
        Map<String, Tensor> m = new LinkedHashMap<>();
        for (int i = 0; i < cache.blocks.size(); i++) {
            m.put("text.block." + i, cache.blocks.get(i).out);
        }
        m.put("text.ln_final", cache.lnFinal);
        return Collections.unmodifiableMap(m);
    }
}
