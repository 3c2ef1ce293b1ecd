package org.clipj.model;

import org.clipj.runtime.Backend;
import org.clipj.runtime.DType;
import org.clipj.runtime.Tensor;

import java.util.List;
import java.util.function.Function;

/**
 * ModifiedResNet's AttentionPool2d: the feature map (B, C, H, W) becomes HW tokens, their mean is
 * prepended, the positional embedding is added, and one query (the mean token) attends over all
 * HW + 1 tokens with separate q/k/v projections; c_proj maps to the embedding width.
 */
final class AttentionPool2d {
    private final Backend backend;
    private final int channels;              // C = vision width * 32
    private final int heads;
    private final int outDim;                // E
    final Tensor positionalEmbedding;        // (L, C), L = HW + 1
    final Tensor qWeight;                    // (C, C)
    final Tensor qBias;                      // (C)
    final Tensor kWeight;                    // (C, C)
    final Tensor kBias;                      // (C)
    final Tensor vWeight;                    // (C, C)
    final Tensor vBias;                      // (C)
    final Tensor cWeight;                    // (E, C)
    final Tensor cBias;                      // (E)

    /** Activations kept for the backward. */
    static final class Cache {
        Tensor x;                            // (B, C, H, W)
        Tensor tokens;                       // (B, L, C) mean token + HW tokens + positional embedding
        Tensor query;                        // (B, C) token 0
        Tensor q;                            // (B, C)
        Tensor k;                            // (B, L, C)
        Tensor v;                            // (B, L, C)
        Tensor attn;                         // (B, C)
        Tensor lse;                          // (B, heads)
    }

    AttentionPool2d(Backend backend, Function<String, Tensor> lookup, String prefix, int channels, int heads, int outDim) {
        this.backend = backend;
        this.channels = channels;
        this.heads = heads;
        this.outDim = outDim;
        positionalEmbedding = lookup.apply(prefix + "positional_embedding");
        kWeight = lookup.apply(prefix + "k_proj.weight");
        kBias = lookup.apply(prefix + "k_proj.bias");
        qWeight = lookup.apply(prefix + "q_proj.weight");
        qBias = lookup.apply(prefix + "q_proj.bias");
        vWeight = lookup.apply(prefix + "v_proj.weight");
        vBias = lookup.apply(prefix + "v_proj.bias");
        cWeight = lookup.apply(prefix + "c_proj.weight");
        cBias = lookup.apply(prefix + "c_proj.bias");
    }

    static void specs(String prefix, int spatial, int channels, int outDim, List<TensorSpec> out) {
        out.add(TensorSpec.param(prefix + "positional_embedding", spatial * spatial + 1, channels));
        out.add(TensorSpec.param(prefix + "k_proj.weight", channels, channels));
        out.add(TensorSpec.param(prefix + "k_proj.bias", channels));
        out.add(TensorSpec.param(prefix + "q_proj.weight", channels, channels));
        out.add(TensorSpec.param(prefix + "q_proj.bias", channels));
        out.add(TensorSpec.param(prefix + "v_proj.weight", channels, channels));
        out.add(TensorSpec.param(prefix + "v_proj.bias", channels));
        out.add(TensorSpec.param(prefix + "c_proj.weight", outDim, channels));
        out.add(TensorSpec.param(prefix + "c_proj.bias", outDim));
    }

    /** x (B, C, H, W) -> (B, E). */
    Tensor forward(Tensor x, Cache cache) {
        int b = x.dim(0);
        int hw = x.dim(2) * x.dim(3);
        int len = hw + 1;
        Tensor mean = backend.empty(DType.F32, b, channels);
        backend.matmul(mean.reshape(b * channels, 1), x.reshape(b * channels, hw), false, ones(hw, 1), false,
                1f / hw, 0f);
        Tensor tokens = backend.empty(DType.F32, b, len, channels);          // every row written below
        for (int i = 0; i < b; i++) {
            Tensor seq = tokens.get(i);                              // (L, C)
            backend.copy(seq.get(0), mean.get(i));
            backend.transpose(seq.slice(1, len).reshape(1, hw, channels), x.get(i).reshape(1, channels, hw), false);
        }
        backend.broadcastAdd(tokens, tokens, positionalEmbedding);
        Tensor query = backend.empty(DType.F32, b, channels);
        backend.gatherRowsForward(query, tokens, backend.zeros(DType.I32, b));
        Tensor q = backend.empty(DType.F32, b, channels);
        backend.linearForward(q, query, qWeight, qBias);
        Tensor k = backend.empty(DType.F32, b, len, channels);
        backend.linearForward(k, tokens, kWeight, kBias);
        Tensor v = backend.empty(DType.F32, b, len, channels);
        backend.linearForward(v, tokens, vWeight, vBias);
        Tensor attn = backend.empty(DType.F32, b, channels);
        Tensor lse = cache != null ? backend.empty(DType.F32, b, heads) : null;
        backend.attentionPoolForward(attn, lse, q, k, v, heads);
        Tensor out = backend.empty(DType.F32, b, outDim);
        backend.linearForward(out, attn, cWeight, cBias);
        if (cache != null) {
            cache.x = x;
            cache.tokens = tokens;
            cache.query = query;
            cache.q = q;
            cache.k = k;
            cache.v = v;
            cache.attn = attn;
            cache.lse = lse;
        }
        return out;
    }

    /** dout (B, E) -> dx (B, C, H, W); parameter gradients accumulate into {@code grads}. */
    Tensor backward(Tensor dout, Cache cache, AttentionPool2d grads) {
        int b = dout.dim(0);
        int hw = cache.x.dim(2) * cache.x.dim(3);
        int len = hw + 1;
        Tensor dAttn = backend.zeros(DType.F32, b, channels);
        backend.linearBackward(dAttn, grads.cWeight, grads.cBias, dout, cache.attn, cWeight);
        Tensor dq = backend.zeros(DType.F32, b, channels);
        Tensor dk = backend.zeros(DType.F32, b, len, channels);
        Tensor dv = backend.zeros(DType.F32, b, len, channels);
        backend.attentionPoolBackward(dq, dk, dv, dAttn, cache.q, cache.k, cache.v, cache.attn, cache.lse, heads);
        Tensor dTokens = backend.zeros(DType.F32, b, len, channels);
        backend.linearBackward(dTokens, grads.kWeight, grads.kBias, dk, cache.tokens, kWeight);
        backend.linearBackward(dTokens, grads.vWeight, grads.vBias, dv, cache.tokens, vWeight);
        Tensor dQuery = backend.zeros(DType.F32, b, channels);
        backend.linearBackward(dQuery, grads.qWeight, grads.qBias, dq, cache.query, qWeight);
        backend.gatherRowsBackward(dTokens, dQuery, backend.zeros(DType.I32, b));
        backend.broadcastAddBackward(grads.positionalEmbedding, dTokens);
        Tensor dx = backend.zeros(DType.F32, cache.x.shape());
        Tensor dMean = backend.zeros(DType.F32, b, channels);
        for (int i = 0; i < b; i++) {
            Tensor seq = dTokens.get(i);                             // (L, C)
            backend.copy(dMean.get(i), seq.get(0));
            backend.transpose(dx.get(i).reshape(1, channels, hw), seq.slice(1, len).reshape(1, hw, channels), true);
        }
        backend.matmul(dx.reshape(b * channels, hw), dMean.reshape(b * channels, 1), false, ones(1, hw), false,
                1f / hw, 1f);
        return dx;
    }

    private Tensor ones(int rows, int cols) {
        Tensor t = backend.empty(DType.F32, rows, cols);
        backend.fill(t, 1f);
        return t;
    }
}
