package org.clipj.model;

import org.clipj.runtime.Backend;
import org.clipj.runtime.DType;
import org.clipj.runtime.Tensor;

import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.function.Function;

/**
 * openai/CLIP's VisionTransformer, with open_clip's options: patch embedding (conv1, no bias), class
 * token prepended, positional embedding, ln_pre (absent with open_clip's no_ln_pre), residual blocks,
 * pooling (the class token; or, as CLIPA, the mean of the patch tokens with ln_post before or after
 * it), ln_post, @ proj.
 */
final class VisionTransformer implements VisionTower {
    /** The patch embedding convolution's weight (W, 3, P, P). */
    static final String PATCH_EMBEDDING = "visual.conv1.weight";

    private final Backend backend;
    private final int width;                 // W
    private final int tokens;                // T = grid^2 + 1
    private final int embed;                 // E
    private final float lnEps;
    private final ClipConfig.VisionPool pool;
    private final boolean lnAfterPool;       // AVG: ln_post on the pooled row instead of every token
    final Tensor conv1;                      // (W, 3, P, P)
    final Tensor classEmbedding;             // (W)
    final Tensor positionalEmbedding;        // (T, W)
    final Tensor lnPreWeight;                // (W) or null without ln_pre
    final Tensor lnPreBias;                  // (W) or null without ln_pre
    final Transformer transformer;
    final Tensor lnPostWeight;               // (W)
    final Tensor lnPostBias;                 // (W)
    final Tensor proj;                       // (W, E)

    /** Activations kept for the backward. */
    static final class Cache implements Activations {
        Tensor pixels;                       // (B, 3, R, R)
        Tensor tokens;                       // (B, T, W) class token + patches + positional embedding
        Tensor lnPre;                        // (B, T, W) (tokens without ln_pre)
        Tensor lnPreMean;                    // (B*T)
        Tensor lnPreRstd;                    // (B*T)
        final List<ResidualAttentionBlock.Cache> blocks = new ArrayList<>();
        Tensor encoded;                      // (B, T, W) last block output
        Tensor lnPostInput;                  // (B, W) token 0 or the token mean; (B, T, W) encoded for AVG before ln
        Tensor lnPost;                       // ln_post of lnPostInput, same shape
        Tensor lnPostMean;                   // (rows of lnPostInput)
        Tensor lnPostRstd;                   // (rows of lnPostInput)
        Tensor pooled;                       // (B, W) what proj multiplies
        Tensor features;                     // (B, E)

        @Override
        public Tensor features() {
            return features;
        }

        /** {@code visual.ln_pre} and {@code visual.block.<i>} (B, T, W). */
        @Override
        public Map<String, Tensor> intermediates() {
            Map<String, Tensor> m = new LinkedHashMap<>();
            m.put("visual.ln_pre", lnPre);
            for (int i = 0; i < blocks.size(); i++) {
                m.put("visual.block." + i, blocks.get(i).out);
            }
            return Collections.unmodifiableMap(m);
        }
    }

    /** The tower over lookup's tensors; activations: the residual blocks' (F32, or BF16/F16 for 16-bit inference on CUDA). */
    VisionTransformer(Backend backend, Function<String, Tensor> lookup, ClipConfig config, DType activations) {
        this.backend = backend;
        this.width = config.visionWidth();
        this.tokens = config.grid() * config.grid() + 1;
        this.embed = config.embedDim();
        ClipConfig.Variant v = config.variant();
        this.lnEps = v.visionLnEps();
        this.pool = v.visionPool();
        this.lnAfterPool = v.visionLnAfterPool() && pool == ClipConfig.VisionPool.AVG;
        conv1 = lookup.apply(PATCH_EMBEDDING);
        classEmbedding = lookup.apply("visual.class_embedding");
        positionalEmbedding = lookup.apply("visual.positional_embedding");
        lnPreWeight = v.visionLnPre() ? lookup.apply("visual.ln_pre.weight") : null;
        lnPreBias = v.visionLnPre() ? lookup.apply("visual.ln_pre.bias") : null;
        transformer = new Transformer(backend, lookup, "visual.transformer.", config.visionLayers(), blockShape(config),
                activations);
        lnPostWeight = lookup.apply("visual.ln_post.weight");
        lnPostBias = lookup.apply("visual.ln_post.bias");
        proj = lookup.apply("visual.proj");
    }

    static ResidualAttentionBlock.Shape blockShape(ClipConfig c) {
        ClipConfig.Variant v = c.variant();
        return new ResidualAttentionBlock.Shape(c.visionWidth(), c.visionHeads(), v.visionMlpWidth(), false,
                v.visionActivation(), v.hasVisionLayerScale(), v.visionLnEps());
    }

    static void specs(ClipConfig c, List<TensorSpec> out) {
        int w = c.visionWidth();
        out.add(TensorSpec.param("visual.class_embedding", w));
        out.add(TensorSpec.param("visual.positional_embedding", c.grid() * c.grid() + 1, w));
        out.add(TensorSpec.param("visual.proj", w, c.embedDim()));
        out.add(TensorSpec.param(PATCH_EMBEDDING, w, 3, c.visionPatchSize(), c.visionPatchSize()));
        if (c.variant().visionLnPre()) {
            out.add(TensorSpec.param("visual.ln_pre.weight", w));
            out.add(TensorSpec.param("visual.ln_pre.bias", w));
        }
        Transformer.specs("visual.transformer.", c.visionLayers(), blockShape(c), out);
        out.add(TensorSpec.param("visual.ln_post.weight", w));
        out.add(TensorSpec.param("visual.ln_post.bias", w));
    }

    @Override
    public Activations newActivations() {
        return new Cache();
    }

    /** pixels (B, 3, R, R) -> features (B, E); kept (filled) when non-null; no train mode. */
    @Override
    public Tensor forward(Tensor pixels, Activations kept, boolean train) {
        Cache cache = (Cache) kept;
        int b = pixels.dim(0);
        boolean keep = cache != null;
        // Activations written in full come from backend.empty (no zero-fill); without a cache
        // (inference) each goes back to the backend once read, for the blocks' next empty.
        Tensor patches = backend.empty(DType.F32, b, tokens - 1, width);
        backend.patchEmbedForward(patches, pixels, conv1);
        Tensor x = backend.empty(DType.F32, b, tokens, width);                  // every row written below
        for (int i = 0; i < b; i++) {
            Tensor row = x.get(i);                                   // (T, W): the class token, then the patches
            backend.copy(row.get(0), classEmbedding);
            backend.copy(row.slice(1, tokens), patches.get(i));
        }
        backend.release(patches);
        backend.broadcastAdd(x, x, positionalEmbedding);
        int n = b * tokens;
        Tensor lnPre = x;
        Tensor lnPreMean = null;
        Tensor lnPreRstd = null;
        if (lnPreWeight != null) {
            lnPre = backend.empty(DType.F32, b, tokens, width);
            lnPreMean = keep ? backend.empty(DType.F32, n) : null;
            lnPreRstd = keep ? backend.empty(DType.F32, n) : null;
            backend.layerNormForward(lnPre.reshape(n, width), lnPreMean, lnPreRstd, x.reshape(n, width),
                    lnPreWeight, lnPreBias, lnEps);
            if (!keep) backend.release(x);
        }
        Tensor encoded = transformer.forward(lnPre, keep ? cache.blocks : null);
        if (!keep && encoded != lnPre) backend.release(lnPre);
        // ln_post over what is pooled (token 0, or the token mean when AVG pools first), or over every token
        boolean lnEveryToken = pool == ClipConfig.VisionPool.AVG && !lnAfterPool;
        Tensor lnPostInput;
        if (pool == ClipConfig.VisionPool.TOKEN) {
            lnPostInput = backend.empty(DType.F32, b, width);
            backend.gatherRowsForward(lnPostInput, encoded, backend.zeros(DType.I32, b));   // row 0 of each image
        } else if (lnAfterPool) {
            lnPostInput = backend.empty(DType.F32, b, width);
            meanPatchTokens(lnPostInput, encoded);
        } else {
            lnPostInput = encoded;
        }
        int rows = lnEveryToken ? n : b;
        Tensor lnPost = backend.empty(DType.F32, lnPostInput.shape());
        Tensor lnPostMean = keep ? backend.empty(DType.F32, rows) : null;
        Tensor lnPostRstd = keep ? backend.empty(DType.F32, rows) : null;
        backend.layerNormForward(lnPost.reshape(rows, width), lnPostMean, lnPostRstd, lnPostInput.reshape(rows, width),
                lnPostWeight, lnPostBias, lnEps);
        Tensor pooled = lnPost;
        if (lnEveryToken) {
            pooled = backend.empty(DType.F32, b, width);
            meanPatchTokens(pooled, lnPost);
        }
        Tensor features = backend.empty(DType.F32, b, embed);
        backend.matmul(features, pooled, false, proj, false, 1f, 0f);
        if (!keep) {
            if (lnEveryToken) backend.release(lnPost);   // (B, T, W); otherwise (B, W), small
            backend.release(encoded);
        }
        if (keep) {
            cache.pixels = pixels;
            cache.tokens = x;
            cache.lnPre = lnPre;
            cache.lnPreMean = lnPreMean;
            cache.lnPreRstd = lnPreRstd;
            cache.encoded = encoded;
            cache.lnPostInput = lnPostInput;
            cache.lnPost = lnPost;
            cache.lnPostMean = lnPostMean;
            cache.lnPostRstd = lnPostRstd;
            cache.pooled = pooled;
            cache.features = features;
        }
        return features;
    }

    /** Accumulates the gradients of every parameter into {@code gradTower}'s views for dFeatures (B, E). */
    @Override
    public void backward(Tensor dFeatures, Activations kept, VisionTower gradTower) {
        Cache cache = (Cache) kept;
        VisionTransformer grads = (VisionTransformer) gradTower;
        int b = dFeatures.dim(0);
        int n = b * tokens;
        Tensor dPooled = backend.zeros(DType.F32, b, width);
        backend.matmul(dPooled, dFeatures, false, proj, true, 1f, 1f);
        backend.matmul(grads.proj, cache.pooled, true, dFeatures, false, 1f, 1f);
        boolean lnEveryToken = pool == ClipConfig.VisionPool.AVG && !lnAfterPool;
        int rows = lnEveryToken ? n : b;
        Tensor dLnPost = dPooled;
        if (lnEveryToken) {
            dLnPost = backend.zeros(DType.F32, b, tokens, width);
            meanPatchTokensBackward(dLnPost, dPooled);
        }
        Tensor dLnPostInput = backend.zeros(DType.F32, cache.lnPostInput.shape());
        backend.layerNormBackward(dLnPostInput.reshape(rows, width), grads.lnPostWeight, grads.lnPostBias,
                dLnPost.reshape(rows, width), cache.lnPostInput.reshape(rows, width), lnPostWeight, cache.lnPostMean,
                cache.lnPostRstd);
        Tensor dEncoded;
        if (pool == ClipConfig.VisionPool.TOKEN) {
            dEncoded = backend.zeros(DType.F32, b, tokens, width);
            backend.gatherRowsBackward(dEncoded, dLnPostInput, backend.zeros(DType.I32, b));
        } else if (lnAfterPool) {
            dEncoded = backend.zeros(DType.F32, b, tokens, width);
            meanPatchTokensBackward(dEncoded, dLnPostInput);
        } else {
            dEncoded = dLnPostInput;
        }
        Tensor dLnPre = transformer.backward(dEncoded, cache.blocks, grads.transformer);
        Tensor dx = dLnPre;
        if (lnPreWeight != null) {
            dx = backend.zeros(DType.F32, b, tokens, width);
            backend.layerNormBackward(dx.reshape(n, width), grads.lnPreWeight, grads.lnPreBias, dLnPre.reshape(n, width),
                    cache.tokens.reshape(n, width), lnPreWeight, cache.lnPreMean, cache.lnPreRstd);
        }
        backend.broadcastAddBackward(grads.positionalEmbedding, dx);
        Tensor dPatches = backend.zeros(DType.F32, b, tokens - 1, width);
        for (int i = 0; i < b; i++) {
            Tensor row = dx.get(i);                                  // (T, W)
            backend.addScaled(grads.classEmbedding, row.get(0), 1f);
            backend.copy(dPatches.get(i), row.slice(1, tokens));
        }
        backend.patchEmbedBackward(null, grads.conv1, dPatches, cache.pixels, conv1);
    }

    /** out (B, W) = mean of x (B, T, W) over tokens 1..T-1 (open_clip's 'avg' pool), as (B, 1, T) @ (B, T, W). */
    private void meanPatchTokens(Tensor out, Tensor x) {
        int b = x.dim(0);
        backend.matmul(out.reshape(b, 1, width), patchMeanWeights(b), false, x, false, 1f, 0f);
    }

    /** dx (B, T, W) += the gradient of {@link #meanPatchTokens} for dout (B, W). */
    private void meanPatchTokensBackward(Tensor dx, Tensor dout) {
        int b = dout.dim(0);
        backend.matmul(dx, patchMeanWeights(b), true, dout.reshape(b, 1, width), false, 1f, 1f);
    }

    /** (B, 1, T): 0 for the class token, 1 / (T - 1) for each patch token. */
    private Tensor patchMeanWeights(int b) {
        float[] w = new float[b * tokens];
        for (int i = 0; i < b; i++) {
            java.util.Arrays.fill(w, i * tokens + 1, (i + 1) * tokens, 1f / (tokens - 1));
        }
        return backend.upload(Tensor.of(w, b, 1, tokens));
    }
}
