package org.clipj.model;

import org.clipj.runtime.Activation;
import org.clipj.runtime.Backend;
import org.clipj.runtime.DType;
import org.clipj.runtime.Tensor;

import java.util.List;
import java.util.function.Function;

/**
 * openai/CLIP's (and open_clip's) ResidualAttentionBlock: x + ls_1(out_proj(attn(in_proj(ln_1(x))))),
 * then x + ls_2(c_proj(act(c_fc(ln_2(x))))), act QuickGELU or exact GELU, ls_* open_clip's optional
 * LayerScale (identity when absent). One instance over the parameter views runs the forward; a second
 * instance over the gradient views receives the backward's accumulations.
 *
 * <p>Activations: F32, or (16-bit inference on CUDA) BF16/F16 between the kernels: ln_1/ln_2 read the F32
 * residual stream and write 16 bits, in_proj writes 16-bit qkv (its bias, 16-bit, in the GEMM's epilogue),
 * attention runs on it (the tensor-core kernel for BF16), c_fc writes 16 bits and the activation runs in
 * place, and out_proj/c_proj read 16 bits and write the F32 residual stream with the residual added in the
 * GEMM. The residual stream stays F32, as under PyTorch's autocast of an F32 input (a BF16 linear output
 * added to an F32 residual promotes to F32): it accumulates two updates per block, and rounding it to
 * BF16's 8 mantissa bits after each would compound over the depth; F32 costs 2 more bytes per element on
 * its six (B, T, C) passes per block (two layernorm reads, two GEMM C reads, two GEMM writes), next to the
 * 16-bit (B, T, 3C) qkv and (B, T, H) hidden layer.
 */
final class ResidualAttentionBlock {
    /**
     * The shape of every block of one tower.
     *
     * @param width      C
     * @param heads      attention heads (head width C / heads)
     * @param mlpWidth   hidden width H of the MLP
     * @param causal     the text tower's additive causal mask
     * @param activation the MLP nonlinearity
     * @param layerScale whether ls_1.gamma and ls_2.gamma (C) exist
     * @param lnEps      LayerNorm eps
     */
    record Shape(int width, int heads, int mlpWidth, boolean causal, ClipConfig.Activation activation,
                 boolean layerScale, float lnEps) {
    }

    private final Backend backend;
    private final Shape shape;
    private final int width;         // C
    private final int mlp;           // H
    private final int heads;
    private final boolean causal;     // the text tower's additive causal mask
    private final DType activations;  // F32, or BF16/F16 for 16-bit inference on CUDA (see the class comment)
    final Tensor ln1Weight;           // (C)
    final Tensor ln1Bias;             // (C)
    final Tensor inProjWeight;        // (3C, C) q | k | v rows
    final Tensor inProjBias;          // (3C)
    final Tensor outProjWeight;       // (C, C)
    final Tensor outProjBias;         // (C)
    final Tensor ln2Weight;           // (C)
    final Tensor ln2Bias;             // (C)
    final Tensor fcWeight;            // (H, C)
    final Tensor fcBias;              // (H)
    final Tensor projWeight;          // (C, H)
    final Tensor projBias;            // (C)
    final Tensor ls1Gamma;            // (C) or null without layer scale
    final Tensor ls2Gamma;            // (C) or null without layer scale

    /** Activations one block keeps for its backward. */
    static final class Cache {
        Tensor x;        // (B, T, C) block input
        Tensor ln1;      // (B, T, C)
        Tensor ln1Mean;  // (B*T)
        Tensor ln1Rstd;  // (B*T)
        Tensor qkv;      // (B, T, 3C)
        Tensor attn;     // (B, T, C) attention output before out_proj
        Tensor lse;      // (B, heads, T)
        Tensor attnOut;  // (B, T, C) out_proj output before ls_1 (layer scale only)
        Tensor x1;       // (B, T, C) after the attention residual
        Tensor ln2;      // (B, T, C)
        Tensor ln2Mean;  // (B*T)
        Tensor ln2Rstd;  // (B*T)
        Tensor fc;       // (B, T, H) c_fc output
        Tensor gelu;     // (B, T, H) act(fc)
        Tensor mlpOut;   // (B, T, C) c_proj output before ls_2 (layer scale only)
        Tensor out;      // (B, T, C) block output
    }

    /**
     * The block over the tensors lookup gives; with 16-bit activations, in_proj_bias and c_fc's bias must come
     * in that dtype ({@link #hasActivationDtype}) and the linear weights too.
     */
    ResidualAttentionBlock(Backend backend, Function<String, Tensor> lookup, String prefix, Shape shape, DType activations) {
        this.backend = backend;
        this.activations = activations;
        this.shape = shape;
        this.width = shape.width();
        this.mlp = shape.mlpWidth();
        this.heads = shape.heads();
        this.causal = shape.causal();
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
        ls1Gamma = shape.layerScale() ? lookup.apply(prefix + "ls_1.gamma") : null;
        ls2Gamma = shape.layerScale() ? lookup.apply(prefix + "ls_2.gamma") : null;
    }

    /**
     * Whether a block tensor is a bias of a linear layer whose output is an activation (in_proj's qkv, c_fc's
     * hidden layer), so a block with 16-bit activations takes it in that dtype; out_proj's and c_proj's
     * write the F32 residual stream and keep F32 biases.
     */
    static boolean hasActivationDtype(String name) {
        return name.endsWith(".attn.in_proj_bias") || name.endsWith(".mlp.c_fc.bias");
    }

    /** The block's tensors in OpenAI's state-dict order (open_clip's layer scale after them). */
    static void specs(String prefix, Shape shape, List<TensorSpec> out) {
        int width = shape.width();
        int mlp = shape.mlpWidth();
        out.add(TensorSpec.param(prefix + "attn.in_proj_weight", 3 * width, width));
        out.add(TensorSpec.param(prefix + "attn.in_proj_bias", 3 * width));
        out.add(TensorSpec.param(prefix + "attn.out_proj.weight", width, width));
        out.add(TensorSpec.param(prefix + "attn.out_proj.bias", width));
        out.add(TensorSpec.param(prefix + "ln_1.weight", width));
        out.add(TensorSpec.param(prefix + "ln_1.bias", width));
        out.add(TensorSpec.param(prefix + "mlp.c_fc.weight", mlp, width));
        out.add(TensorSpec.param(prefix + "mlp.c_fc.bias", mlp));
        out.add(TensorSpec.param(prefix + "mlp.c_proj.weight", width, mlp));
        out.add(TensorSpec.param(prefix + "mlp.c_proj.bias", width));
        out.add(TensorSpec.param(prefix + "ln_2.weight", width));
        out.add(TensorSpec.param(prefix + "ln_2.bias", width));
        if (shape.layerScale()) {
            out.add(TensorSpec.param(prefix + "ls_1.gamma", width));
            out.add(TensorSpec.param(prefix + "ls_2.gamma", width));
        }
    }

    /**
     * x (B, T, C) -> (B, T, C). With a cache, keeps every activation the backward needs; without,
     * runs {@link #infer} (fused ops, intermediates given back to the backend when this returns).
     */
    Tensor forward(Tensor x, Cache cache) {
        if (cache == null) return infer(x);
        int b = x.dim(0);
        int t = x.dim(1);
        int n = b * t;
        Tensor ln1 = backend.zeros(DType.F32, b, t, width);
        Tensor ln1Mean = backend.zeros(DType.F32, n);
        Tensor ln1Rstd = backend.zeros(DType.F32, n);
        backend.layerNormForward(ln1.reshape(n, width), ln1Mean, ln1Rstd, x.reshape(n, width), ln1Weight, ln1Bias,
                shape.lnEps());
        Tensor qkv = backend.zeros(DType.F32, b, t, 3 * width);
        backend.linearForward(qkv, ln1, inProjWeight, inProjBias);
        Tensor attn = backend.zeros(DType.F32, b, t, width);
        Tensor lse = backend.zeros(DType.F32, b, heads, t);
        backend.attentionForward(attn, lse, qkv, heads, causal);
        Tensor x1 = backend.zeros(DType.F32, b, t, width);
        backend.linearForward(x1, attn, outProjWeight, outProjBias);
        Tensor attnOut = ls1Gamma != null ? x1 : null;
        if (ls1Gamma != null) {
            x1 = backend.zeros(DType.F32, b, t, width);
            backend.channelScaleForward(x1, attnOut, ls1Gamma);
        }
        backend.add(x1, x1, x);
        Tensor ln2 = backend.zeros(DType.F32, b, t, width);
        Tensor ln2Mean = backend.zeros(DType.F32, n);
        Tensor ln2Rstd = backend.zeros(DType.F32, n);
        backend.layerNormForward(ln2.reshape(n, width), ln2Mean, ln2Rstd, x1.reshape(n, width), ln2Weight, ln2Bias,
                shape.lnEps());
        Tensor fc = backend.zeros(DType.F32, b, t, mlp);
        backend.linearForward(fc, ln2, fcWeight, fcBias);
        Tensor gelu = backend.zeros(DType.F32, b, t, mlp);
        if (shape.activation() == ClipConfig.Activation.GELU) backend.geluForward(gelu, fc);
        else backend.quickGeluForward(gelu, fc);
        Tensor out = backend.zeros(DType.F32, b, t, width);
        backend.linearForward(out, gelu, projWeight, projBias);
        Tensor mlpOut = ls2Gamma != null ? out : null;
        if (ls2Gamma != null) {
            out = backend.zeros(DType.F32, b, t, width);
            backend.channelScaleForward(out, mlpOut, ls2Gamma);
        }
        backend.add(out, out, x1);
        cache.x = x;
        cache.ln1 = ln1;
        cache.ln1Mean = ln1Mean;
        cache.ln1Rstd = ln1Rstd;
        cache.qkv = qkv;
        cache.attn = attn;
        cache.lse = lse;
        cache.attnOut = attnOut;
        cache.x1 = x1;
        cache.ln2 = ln2;
        cache.ln2Mean = ln2Mean;
        cache.ln2Rstd = ln2Rstd;
        cache.fc = fc;
        cache.gelu = gelu;
        cache.mlpOut = mlpOut;
        cache.out = out;
        return out;
    }

    /**
     * The forward without a cache: bias, activation and (without layer scale) the residual add done
     * inside the GEMMs (linearActivationForward, linearResidualForward), and every intermediate taken
     * with backend.empty and released before returning; in F32 the output reuses the attention buffer.
     * x and the output are F32, ln, qkv, attn and fc of the block's activation dtype.
     */
    private Tensor infer(Tensor x) {
        int b = x.dim(0);
        int t = x.dim(1);
        int n = b * t;
        Tensor ln = backend.empty(activations, b, t, width);
        backend.layerNormForward(ln.reshape(n, width), null, null, x.reshape(n, width), ln1Weight, ln1Bias, shape.lnEps());
        Tensor qkv = backend.empty(activations, b, t, 3 * width);
        backend.linearForward(qkv, ln, inProjWeight, inProjBias);
        Tensor attn = backend.empty(activations, b, t, width);
        backend.attentionForward(attn, null, qkv, heads, causal);
        backend.release(qkv);
        Tensor x1 = backend.empty(DType.F32, b, t, width);
        residualLinear(x1, attn, outProjWeight, outProjBias, ls1Gamma, x);
        backend.layerNormForward(ln.reshape(n, width), null, null, x1.reshape(n, width), ln2Weight, ln2Bias, shape.lnEps());
        Tensor fc = backend.empty(activations, b, t, mlp);
        backend.linearActivationForward(fc, ln, fcWeight, fcBias,
                shape.activation() == ClipConfig.Activation.GELU ? Activation.GELU : Activation.QUICK_GELU);
        backend.release(ln);
        Tensor out = attn;   // read by out_proj above, free now
        if (activations != DType.F32) {
            backend.release(attn);
            out = backend.empty(DType.F32, b, t, width);
        }
        residualLinear(out, fc, projWeight, projBias, ls2Gamma, x1);
        backend.release(fc);
        backend.release(x1);
        return out;
    }

    /** out = residual + gamma * (x @ w^T + bias), gamma (C) the layer scale or null: then one fused GEMM. */
    private void residualLinear(Tensor out, Tensor x, Tensor w, Tensor bias, Tensor gamma, Tensor residual) {
        if (gamma == null) {
            backend.linearResidualForward(out, x, w, bias, residual);
            return;
        }
        backend.linearForward(out, x, w, bias);
        backend.channelScaleForward(out, out, gamma);
        backend.add(out, out, residual);
    }

    /** dout (B, T, C) -> dx (B, T, C); parameter gradients accumulate into {@code grads}' views. */
    Tensor backward(Tensor dout, Cache cache, ResidualAttentionBlock grads) {
        int b = dout.dim(0);
        int t = dout.dim(1);
        int n = b * t;
        // MLP branch: out = x1 + ls_2(c_proj(act(c_fc(ln_2(x1)))))
        Tensor dx1 = backend.zeros(DType.F32, b, t, width);
        backend.copy(dx1, dout);
        Tensor dMlpOut = dout;
        if (ls2Gamma != null) {
            dMlpOut = backend.zeros(DType.F32, b, t, width);
            backend.channelScaleBackward(dMlpOut, grads.ls2Gamma, dout, cache.mlpOut, ls2Gamma);
        }
        Tensor dgelu = backend.zeros(DType.F32, b, t, mlp);
        backend.linearBackward(dgelu, grads.projWeight, grads.projBias, dMlpOut, cache.gelu, projWeight);
        Tensor dfc = backend.zeros(DType.F32, b, t, mlp);
        if (shape.activation() == ClipConfig.Activation.GELU) backend.geluBackward(dfc, dgelu, cache.fc);
        else backend.quickGeluBackward(dfc, dgelu, cache.fc);
        Tensor dln2 = backend.zeros(DType.F32, b, t, width);
        backend.linearBackward(dln2, grads.fcWeight, grads.fcBias, dfc, cache.ln2, fcWeight);
        backend.layerNormBackward(dx1.reshape(n, width), grads.ln2Weight, grads.ln2Bias, dln2.reshape(n, width),
                cache.x1.reshape(n, width), ln2Weight, cache.ln2Mean, cache.ln2Rstd);
        // attention branch: x1 = x + ls_1(out_proj(attn(in_proj(ln_1(x)))))
        Tensor dx = backend.zeros(DType.F32, b, t, width);
        backend.copy(dx, dx1);
        Tensor dAttnOut = dx1;
        if (ls1Gamma != null) {
            dAttnOut = backend.zeros(DType.F32, b, t, width);
            backend.channelScaleBackward(dAttnOut, grads.ls1Gamma, dx1, cache.attnOut, ls1Gamma);
        }
        Tensor dattn = backend.zeros(DType.F32, b, t, width);
        backend.linearBackward(dattn, grads.outProjWeight, grads.outProjBias, dAttnOut, cache.attn, outProjWeight);
        Tensor dqkv = backend.zeros(DType.F32, b, t, 3 * width);
        backend.attentionBackward(dqkv, dattn, cache.qkv, cache.attn, cache.lse, heads, causal);
        Tensor dln1 = backend.zeros(DType.F32, b, t, width);
        backend.linearBackward(dln1, grads.inProjWeight, grads.inProjBias, dqkv, cache.ln1, inProjWeight);
        backend.layerNormBackward(dx.reshape(n, width), grads.ln1Weight, grads.ln1Bias, dln1.reshape(n, width),
                cache.x.reshape(n, width), ln1Weight, cache.ln1Mean, cache.ln1Rstd);
        return dx;
    }
}
