package org.clipj.model;

import org.clipj.runtime.Backend;
import org.clipj.runtime.DType;
import org.clipj.runtime.Tensor;

import java.util.ArrayList;
import java.util.List;
import java.util.function.Function;

/**
 * openai/CLIP's text tower, with open_clip's options: token_embedding + positional_embedding,
 * residual blocks (causal unless open_clip's no_causal_mask), ln_final, the row at the pooled
 * position (the EOT token, i.e. the argmax of the ids; or first/last/eos, given by the caller as
 * an index per sequence), @ text_projection (a (C, E) parameter, or an nn.Linear with bias).
 */
final class TextTransformer {
    private final Backend backend;
    private final int width;                 // C
    private final int embed;                 // E
    private final float lnEps;
    final Tensor tokenEmbedding;             // (V, C)
    final Tensor positionalEmbedding;        // (ctx, C)
    final Transformer transformer;
    final Tensor lnFinalWeight;              // (C)
    final Tensor lnFinalBias;                // (C)
    final Tensor textProjection;             // (C, E), or (E, C) as nn.Linear's weight when projectionBias != null
    final Tensor projectionBias;             // (E) or null

    /** Activations kept for the backward. */
    static final class Cache {
        Tensor ids;                          // (B, T) I32
        Tensor eotIndex;                     // (B) I32 the pooled position
        Tensor embedded;                     // (B, T, C) token + positional embedding
        final List<ResidualAttentionBlock.Cache> blocks = new ArrayList<>();
        Tensor encoded;                      // (B, T, C) last block output
        Tensor lnFinal;                      // (B, T, C)
        Tensor lnFinalMean;                  // (B*T)
        Tensor lnFinalRstd;                  // (B*T)
        Tensor eot;                          // (B, C) ln_final at the pooled position
        Tensor features;                     // (B, E)
    }

    /** The tower over lookup's tensors; activations: the residual blocks' (F32, or BF16/F16 for 16-bit inference on CUDA). */
    TextTransformer(Backend backend, Function<String, Tensor> lookup, ClipConfig config, DType activations) {
        this.backend = backend;
        this.width = config.textWidth();
        this.embed = config.embedDim();
        this.lnEps = config.variant().textLnEps();
        tokenEmbedding = lookup.apply("token_embedding.weight");
        positionalEmbedding = lookup.apply("positional_embedding");
        transformer = new Transformer(backend, lookup, "transformer.", config.textLayers(), blockShape(config), activations);
        lnFinalWeight = lookup.apply("ln_final.weight");
        lnFinalBias = lookup.apply("ln_final.bias");
        boolean bias = config.variant().textProjectionBias();
        textProjection = lookup.apply(bias ? "text_projection.weight" : "text_projection");
        projectionBias = bias ? lookup.apply("text_projection.bias") : null;
    }

    static ResidualAttentionBlock.Shape blockShape(ClipConfig c) {
        ClipConfig.Variant v = c.variant();
        return new ResidualAttentionBlock.Shape(c.textWidth(), c.textHeads(), v.textMlpWidth(), v.textCausal(),
                v.textActivation(), v.hasTextLayerScale(), v.textLnEps());
    }

    static void specs(ClipConfig c, List<TensorSpec> out) {
        int w = c.textWidth();
        out.add(TensorSpec.param("positional_embedding", c.contextLength(), w));
        if (c.variant().textProjectionBias()) {
            out.add(TensorSpec.param("text_projection.weight", c.embedDim(), w));
            out.add(TensorSpec.param("text_projection.bias", c.embedDim()));
        } else {
            out.add(TensorSpec.param("text_projection", w, c.embedDim()));
        }
        out.add(TensorSpec.param("token_embedding.weight", c.vocabSize(), w));
        Transformer.specs("transformer.", c.textLayers(), blockShape(c), out);
        out.add(TensorSpec.param("ln_final.weight", w));
        out.add(TensorSpec.param("ln_final.bias", w));
    }

    /** ids (B, T) I32 with T <= ctx, eotIndex (B) I32 -> features (B, E); cache (filled) when non-null. */
    Tensor forward(Tensor ids, Tensor eotIndex, Cache cache) {
        int b = ids.dim(0);
        int t = ids.dim(1);
        int n = b * t;
        boolean keep = cache != null;
        // Activations written in full come from backend.empty (no zero-fill); without a cache
        // (inference) each goes back to the backend once read, for the blocks' next empty.
        Tensor x = backend.empty(DType.F32, b, t, width);
        backend.embeddingForward(x, ids, tokenEmbedding);
        backend.broadcastAdd(x, x, positionalEmbedding.slice(0, t));
        Tensor encoded = transformer.forward(x, keep ? cache.blocks : null);
        if (!keep && encoded != x) backend.release(x);
        Tensor lnFinal = backend.empty(DType.F32, b, t, width);
        Tensor mean = keep ? backend.empty(DType.F32, n) : null;
        Tensor rstd = keep ? backend.empty(DType.F32, n) : null;
        backend.layerNormForward(lnFinal.reshape(n, width), mean, rstd, encoded.reshape(n, width), lnFinalWeight,
                lnFinalBias, lnEps);
        if (!keep) backend.release(encoded);
        Tensor eot = backend.empty(DType.F32, b, width);
        backend.gatherRowsForward(eot, lnFinal, eotIndex);
        if (!keep) backend.release(lnFinal);
        Tensor features = backend.empty(DType.F32, b, embed);
        if (projectionBias != null) backend.linearForward(features, eot, textProjection, projectionBias);
        else backend.matmul(features, eot, false, textProjection, false, 1f, 0f);
        if (keep) {
            cache.ids = ids;
            cache.eotIndex = eotIndex;
            cache.embedded = x;
            cache.encoded = encoded;
            cache.lnFinal = lnFinal;
            cache.lnFinalMean = mean;
            cache.lnFinalRstd = rstd;
            cache.eot = eot;
            cache.features = features;
        }
        return features;
    }

    /** Accumulates the gradients of every parameter into {@code grads}' views for dFeatures (B, E). */
    void backward(Tensor dFeatures, Cache cache, TextTransformer grads) {
        int b = cache.ids.dim(0);
        int t = cache.ids.dim(1);
        int n = b * t;
        Tensor dEot = backend.zeros(DType.F32, b, width);
        if (projectionBias != null) {
            backend.linearBackward(dEot, grads.textProjection, grads.projectionBias, dFeatures, cache.eot, textProjection);
        } else {
            backend.matmul(dEot, dFeatures, false, textProjection, true, 1f, 1f);
            backend.matmul(grads.textProjection, cache.eot, true, dFeatures, false, 1f, 1f);
        }
        Tensor dLnFinal = backend.zeros(DType.F32, b, t, width);
        backend.gatherRowsBackward(dLnFinal, dEot, cache.eotIndex);
        Tensor dEncoded = backend.zeros(DType.F32, b, t, width);
        backend.layerNormBackward(dEncoded.reshape(n, width), grads.lnFinalWeight, grads.lnFinalBias,
                dLnFinal.reshape(n, width), cache.encoded.reshape(n, width), lnFinalWeight, cache.lnFinalMean,
                cache.lnFinalRstd);
        Tensor dx = transformer.backward(dEncoded, cache.blocks, grads.transformer);
        backend.broadcastAddBackward(grads.positionalEmbedding.slice(0, t), dx);
        backend.embeddingBackward(grads.tokenEmbedding, dx, cache.ids);
    }
}
