package org.clipj.model;

import org.clipj.runtime.Backend;
import org.clipj.runtime.DType;
import org.clipj.runtime.Tensor;

import java.util.List;
import java.util.function.Function;

/**
 * openai/CLIP's ResidualAttentionBlock: x + out_proj(attn(in_proj(ln_1(x)))), then
 * x + c_proj(QuickGELU(c_fc(ln_2(x)))). One instance over the parameter views runs the forward;
 * a second instance over the gradient views receives the backward's accumulations.
 */
final class ResidualAttentionBlock {
    static final float LN_EPS = 1e-5f;

    private final Backend backend;
    private final int width;         // C
    private final int heads;
    private final boolean causal;     // the text tower's additive causal mask
    final Tensor ln1Weight;           // (C)
    final Tensor ln1Bias;             // (C)
    final Tensor inProjWeight;        // (3C, C) q | k | v rows
    final Tensor inProjBias;          // (3C)
    final Tensor outProjWeight;       // (C, C)
    final Tensor outProjBias;         // (C)
    final Tensor ln2Weight;           // (C)
    final Tensor ln2Bias;             // (C)
    final Tensor fcWeight;            // (4C, C)
    final Tensor fcBias;              // (4C)
    final Tensor projWeight;          // (C, 4C)
    final Tensor projBias;            // (C)

    /** Activations one block keeps for its backward. */
    static final class Cache {
        Tensor x;        // (B, T, C) block input
        Tensor ln1;      // (B, T, C)
        Tensor ln1Mean;  // (B*T)
        Tensor ln1Rstd;  // (B*T)
        Tensor qkv;      // (B, T, 3C)
        Tensor attn;     // (B, T, C) attention output before out_proj
        Tensor lse;      // (B, heads, T)
        Tensor x1;       // (B, T, C) after the attention residual
        Tensor ln2;      // (B, T, C)
        Tensor ln2Mean;  // (B*T)
        Tensor ln2Rstd;  // (B*T)
        Tensor fc;       // (B, T, 4C) c_fc output
        Tensor gelu;     // (B, T, 4C) QuickGELU(fc)
        Tensor out;      // (B, T, C) block output
    }

    ResidualAttentionBlock(Backend backend, Function<String, Tensor> lookup, String prefix, int width, int heads,
                           boolean causal) {
        this.backend = backend;
        this.width = width;
        this.heads = heads;
        this.causal = causal;
        ln1Weight = lookup.apply(prefix + "ln_1.weight");
        ln1Bias = lookup.apply(prefix + "ln_1.bias");
        inProjWeight = lookup.apply(prefix + "attn.in_proj_weight");
        inProjBias = lookup.apply(prefix + "attn.in_proj_bias");
        outProjWeight = lookup.apply(prefix + "attn.out_proj.weight");
        outProjBias = lookup.apply(prefix + "attn.out_proj.bias");
        ln2Weight = lookup.apply(prefix + "ln_2.weight");
        ln2Bias = lookup.apply(prefix + "ln_2.bias");
        fcWeight = lookup.apply(prefix + "mlp.c_fc.weight");
        fcBias = lookup.apply(prefix + "mlp.c_fc.bias");
        projWeight = lookup.apply(prefix + "mlp.c_proj.weight");
        projBias = lookup.apply(prefix + "mlp.c_proj.bias");
    }

    /** The block's tensors in OpenAI's state-dict order. */
    static void specs(String prefix, int width, List<TensorSpec> out) {
        out.add(TensorSpec.param(prefix + "attn.in_proj_weight", 3 * width, width));
        out.add(TensorSpec.param(prefix + "attn.in_proj_bias", 3 * width));
        out.add(TensorSpec.param(prefix + "attn.out_proj.weight", width, width));
        out.add(TensorSpec.param(prefix + "attn.out_proj.bias", width));
        out.add(TensorSpec.param(prefix + "ln_1.weight", width));
        out.add(TensorSpec.param(prefix + "ln_1.bias", width));
        out.add(TensorSpec.param(prefix + "mlp.c_fc.weight", 4 * width, width));
        out.add(TensorSpec.param(prefix + "mlp.c_fc.bias", 4 * width));
        out.add(TensorSpec.param(prefix + "mlp.c_proj.weight", width, 4 * width));
        out.add(TensorSpec.param(prefix + "mlp.c_proj.bias", width));
        out.add(TensorSpec.param(prefix + "ln_2.weight", width));
        out.add(TensorSpec.param(prefix + "ln_2.bias", width));
    }

    /**
     * x (B, T, C) -> (B, T, C). With a cache, keeps every activation the backward needs; without,
     * the intermediates are dropped when this returns.
     */
    Tensor forward(Tensor x, Cache cache) {
        int b = x.dim(0);
        int t = x.dim(1);
        int n = b * t;
        boolean keep = cache != null;
        Tensor ln1 = backend.zeros(DType.F32, b, t, width);
        Tensor ln1Mean = keep ? backend.zeros(DType.F32, n) : null;
        Tensor ln1Rstd = keep ? backend.zeros(DType.F32, n) : null;
        backend.layerNormForward(ln1.reshape(n, width), ln1Mean, ln1Rstd, x.reshape(n, width), ln1Weight, ln1Bias, LN_EPS);
        Tensor qkv = backend.zeros(DType.F32, b, t, 3 * width);
        backend.linearForward(qkv, ln1, inProjWeight, inProjBias);
        Tensor attn = backend.zeros(DType.F32, b, t, width);
        Tensor lse = keep ? backend.zeros(DType.F32, b, heads, t) : null;
        backend.attentionForward(attn, lse, qkv, heads, causal);
        Tensor x1 = backend.zeros(DType.F32, b, t, width);
        backend.linearForward(x1, attn, outProjWeight, outProjBias);
        backend.add(x1, x1, x);
        Tensor ln2 = backend.zeros(DType.F32, b, t, width);
        Tensor ln2Mean = keep ? backend.zeros(DType.F32, n) : null;
        Tensor ln2Rstd = keep ? backend.zeros(DType.F32, n) : null;
        backend.layerNormForward(ln2.reshape(n, width), ln2Mean, ln2Rstd, x1.reshape(n, width), ln2Weight, ln2Bias, LN_EPS);
        Tensor fc = backend.zeros(DType.F32, b, t, 4 * width);
        backend.linearForward(fc, ln2, fcWeight, fcBias);
        Tensor gelu = keep ? backend.zeros(DType.F32, b, t, 4 * width) : fc;
        backend.quickGeluForward(gelu, fc);
        Tensor out = backend.zeros(DType.F32, b, t, width);
        backend.linearForward(out, gelu, projWeight, projBias);
        backend.add(out, out, x1);
        if (keep) {
            cache.x = x;
            cache.ln1 = ln1;
            cache.ln1Mean = ln1Mean;
            cache.ln1Rstd = ln1Rstd;
            cache.qkv = qkv;
            cache.attn = attn;
            cache.lse = lse;
            cache.x1 = x1;
            cache.ln2 = ln2;
            cache.ln2Mean = ln2Mean;
            cache.ln2Rstd = ln2Rstd;
            cache.fc = fc;
            cache.gelu = gelu;
            cache.out = out;
        }
        return out;
    }

    /** dout (B, T, C) -> dx (B, T, C); parameter gradients accumulate into {@code grads}' views. */
    Tensor backward(Tensor dout, Cache cache, ResidualAttentionBlock grads) {
        int b = dout.dim(0);
        int t = dout.dim(1);
        int n = b * t;
        // MLP branch: out = x1 + c_proj(gelu(c_fc(ln_2(x1))))
        Tensor dx1 = backend.zeros(DType.F32, b, t, width);
        backend.copy(dx1, dout);
        Tensor dgelu = backend.zeros(DType.F32, b, t, 4 * width);
        backend.linearBackward(dgelu, grads.projWeight, grads.projBias, dout, cache.gelu, projWeight);
        Tensor dfc = backend.zeros(DType.F32, b, t, 4 * width);
        backend.quickGeluBackward(dfc, dgelu, cache.fc);
        Tensor dln2 = backend.zeros(DType.F32, b, t, width);
        backend.linearBackward(dln2, grads.fcWeight, grads.fcBias, dfc, cache.ln2, fcWeight);
        backend.layerNormBackward(dx1.reshape(n, width), grads.ln2Weight, grads.ln2Bias, dln2.reshape(n, width),
                cache.x1.reshape(n, width), ln2Weight, cache.ln2Mean, cache.ln2Rstd);
        // attention branch: x1 = x + out_proj(attn(in_proj(ln_1(x))))
        Tensor dx = backend.zeros(DType.F32, b, t, width);
        backend.copy(dx, dx1);
        Tensor dattn = backend.zeros(DType.F32, b, t, width);
        backend.linearBackward(dattn, grads.outProjWeight, grads.outProjBias, dx1, cache.attn, outProjWeight);
        Tensor dqkv = backend.zeros(DType.F32, b, t, 3 * width);
        backend.attentionBackward(dqkv, dattn, cache.qkv, cache.attn, cache.lse, heads, causal);
        Tensor dln1 = backend.zeros(DType.F32, b, t, width);
        backend.linearBackward(dln1, grads.inProjWeight, grads.inProjBias, dqkv, cache.ln1, inProjWeight);
        backend.layerNormBackward(dx.reshape(n, width), grads.ln1Weight, grads.ln1Bias, dln1.reshape(n, width),
                cache.x.reshape(n, width), ln1Weight, cache.ln1Mean, cache.ln1Rstd);
        return dx;
    }
}
