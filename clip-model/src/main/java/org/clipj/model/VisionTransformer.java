package org.clipj.model;

import org.clipj.runtime.Backend;
import org.clipj.runtime.DType;
import org.clipj.runtime.Tensor;

import java.util.ArrayList;
import java.util.List;
import java.util.function.Function;

/**
 * openai/CLIP's VisionTransformer: patch embedding (conv1, no bias), class token prepended,
 * positional embedding, ln_pre, residual blocks, ln_post on the class token, @ proj.
 */
final class VisionTransformer {
    private final Backend backend;
    private final int width;                 // W
    private final int tokens;                // T = grid^2 + 1
    private final int embed;                 // E
    final Tensor conv1;                      // (W, 3, P, P)
    final Tensor classEmbedding;             // (W)
    final Tensor positionalEmbedding;        // (T, W)
    final Tensor lnPreWeight;                // (W)
    final Tensor lnPreBias;                  // (W)
    final Transformer transformer;
    final Tensor lnPostWeight;               // (W)
    final Tensor lnPostBias;                 // (W)
    final Tensor proj;                       // (W, E)

    /** Activations kept for the backward. */
    static final class Cache {
        Tensor pixels;                       // (B, 3, R, R)
        Tensor tokens;                       // (B, T, W) class token + patches + positional embedding
        Tensor lnPre;                        // (B, T, W)
        Tensor lnPreMean;                    // (B*T)
        Tensor lnPreRstd;                    // (B*T)
        final List<ResidualAttentionBlock.Cache> blocks = new ArrayList<>();
        Tensor encoded;                      // (B, T, W) last block output
        Tensor classToken;                   // (B, W) token 0 of encoded
        Tensor lnPost;                       // (B, W)
        Tensor lnPostMean;                   // (B)
        Tensor lnPostRstd;                   // (B)
        Tensor features;                     // (B, E)
    }

    VisionTransformer(Backend backend, Function<String, Tensor> lookup, ClipConfig config) {
        this.backend = backend;
        this.width = config.visionWidth();
        this.tokens = config.grid() * config.grid() + 1;
        this.embed = config.embedDim();
        conv1 = lookup.apply("visual.conv1.weight");
        classEmbedding = lookup.apply("visual.class_embedding");
        positionalEmbedding = lookup.apply("visual.positional_embedding");
        lnPreWeight = lookup.apply("visual.ln_pre.weight");
        lnPreBias = lookup.apply("visual.ln_pre.bias");
        transformer = new Transformer(backend, lookup, "visual.transformer.", width, config.visionLayers(),
                config.visionHeads(), false);
        lnPostWeight = lookup.apply("visual.ln_post.weight");
        lnPostBias = lookup.apply("visual.ln_post.bias");
        proj = lookup.apply("visual.proj");
    }

    static void specs(ClipConfig c, List<TensorSpec> out) {
        int w = c.visionWidth();
        out.add(TensorSpec.param("visual.class_embedding", w));
        out.add(TensorSpec.param("visual.positional_embedding", c.grid() * c.grid() + 1, w));
        out.add(TensorSpec.param("visual.proj", w, c.embedDim()));
        out.add(TensorSpec.param("visual.conv1.weight", w, 3, c.visionPatchSize(), c.visionPatchSize()));
        out.add(TensorSpec.param("visual.ln_pre.weight", w));
        out.add(TensorSpec.param("visual.ln_pre.bias", w));
        Transformer.specs("visual.transformer.", w, c.visionLayers(), out);
        out.add(TensorSpec.param("visual.ln_post.weight", w));
        out.add(TensorSpec.param("visual.ln_post.bias", w));
    }

    /** pixels (B, 3, R, R) -> features (B, E); cache (filled) when non-null. */
    Tensor forward(Tensor pixels, Cache cache) {
        int b = pixels.dim(0);
        boolean keep = cache != null;
        Tensor patches = backend.zeros(DType.F32, b, tokens - 1, width);
        backend.patchEmbedForward(patches, pixels, conv1);
        Tensor x = backend.zeros(DType.F32, b, tokens, width);
        for (int i = 0; i < b; i++) {
            Tensor row = x.get(i);                                   // (T, W)
            backend.copy(row.get(0), classEmbedding);
            backend.copy(row.slice(1, tokens), patches.get(i));
        }
        backend.broadcastAdd(x, x, positionalEmbedding);
        int n = b * tokens;
        Tensor lnPre = backend.zeros(DType.F32, b, tokens, width);
        Tensor lnPreMean = keep ? backend.zeros(DType.F32, n) : null;
        Tensor lnPreRstd = keep ? backend.zeros(DType.F32, n) : null;
        backend.layerNormForward(lnPre.reshape(n, width), lnPreMean, lnPreRstd, x.reshape(n, width),
                lnPreWeight, lnPreBias, ResidualAttentionBlock.LN_EPS);
        Tensor encoded = transformer.forward(lnPre, keep ? cache.blocks : null);
        Tensor classIndex = backend.zeros(DType.I32, b);
        Tensor classToken = backend.zeros(DType.F32, b, width);
        backend.gatherRowsForward(classToken, encoded, classIndex);
        Tensor lnPost = backend.zeros(DType.F32, b, width);
        Tensor lnPostMean = keep ? backend.zeros(DType.F32, b) : null;
        Tensor lnPostRstd = keep ? backend.zeros(DType.F32, b) : null;
        backend.layerNormForward(lnPost, lnPostMean, lnPostRstd, classToken, lnPostWeight, lnPostBias,
                ResidualAttentionBlock.LN_EPS);
        Tensor features = backend.zeros(DType.F32, b, embed);
        backend.matmul(features, lnPost, false, proj, false, 1f, 0f);
        if (keep) {
            cache.pixels = pixels;
            cache.tokens = x;
            cache.lnPre = lnPre;
            cache.lnPreMean = lnPreMean;
            cache.lnPreRstd = lnPreRstd;
            cache.encoded = encoded;
            cache.classToken = classToken;
            cache.lnPost = lnPost;
            cache.lnPostMean = lnPostMean;
            cache.lnPostRstd = lnPostRstd;
            cache.features = features;
        }
        return features;
    }

    /** Accumulates the gradients of every parameter into {@code grads}' views for dFeatures (B, E). */
    void backward(Tensor dFeatures, Cache cache, VisionTransformer grads) {
        int b = dFeatures.dim(0);
        int n = b * tokens;
        Tensor dLnPost = backend.zeros(DType.F32, b, width);
        backend.matmul(dLnPost, dFeatures, false, proj, true, 1f, 1f);
        backend.matmul(grads.proj, cache.lnPost, true, dFeatures, false, 1f, 1f);
        Tensor dClassToken = backend.zeros(DType.F32, b, width);
        backend.layerNormBackward(dClassToken, grads.lnPostWeight, grads.lnPostBias, dLnPost, cache.classToken,
                lnPostWeight, cache.lnPostMean, cache.lnPostRstd);
        Tensor dEncoded = backend.zeros(DType.F32, b, tokens, width);
        backend.gatherRowsBackward(dEncoded, dClassToken, backend.zeros(DType.I32, b));
        Tensor dLnPre = transformer.backward(dEncoded, cache.blocks, grads.transformer);
        Tensor dx = backend.zeros(DType.F32, b, tokens, width);
        backend.layerNormBackward(dx.reshape(n, width), grads.lnPreWeight, grads.lnPreBias, dLnPre.reshape(n, width),
                cache.tokens.reshape(n, width), lnPreWeight, cache.lnPreMean, cache.lnPreRstd);
        backend.broadcastAddBackward(grads.positionalEmbedding, dx);
        Tensor dPatches = backend.zeros(DType.F32, b, tokens - 1, width);
        for (int i = 0; i < b; i++) {
            Tensor row = dx.get(i);                                  // (T, W)
            backend.addScaled(grads.classEmbedding, row.get(0), 1f);
            backend.copy(dPatches.get(i), row.slice(1, tokens));
        }
        backend.patchEmbedBackward(null, grads.conv1, dPatches, cache.pixels, conv1);
    }
}
