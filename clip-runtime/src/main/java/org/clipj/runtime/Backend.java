package org.clipj.runtime;

import java.util.List;

/**
 * The op set. Every tensor argument lives on this backend's device. Unless stated otherwise,
 * tensors are F32 and contiguous; shapes are given as comments ({@code (B, T, C)}).
 *
 * <p>Conventions:
 * <ul>
 * <li>Forward ops overwrite their output. Backward ops ACCUMULATE ({@code +=}) into their gradient
 *     outputs, as in llm.c; a null gradient output means "not needed" and is skipped.</li>
 * <li>Shape or dtype mismatches throw {@link IllegalArgumentException} naming the op and the
 *     shapes involved. Nothing silently broadcasts. The rules are written once, in {@link OpChecks},
 *     which every backend calls first in every op.</li>
 * <li>An op may be called concurrently from several threads on distinct output tensors.</li>
 * </ul>
 */
public interface Backend extends AutoCloseable {

    /** "cpu" or "cuda". */
    String name();

    Device device();

    /** A human description (threads and vector width, or GPU name), for logs and reports. */
    String description();

    // ---------------------------------------------------------------- memory

    /** A zero-filled tensor on this backend. */
    Tensor zeros(DType dtype, int... shape);

    /**
     * A tensor whose contents are unspecified, for an output the caller writes in full before
     * reading it: storage given back by {@link #release} is reused (CPU: no allocation, no GC, no
     * page faults on fresh memory; CUDA: no memset). The CPU scalar reference path fills it with NaN
     * so that a read before the write shows.
     */
    Tensor empty(DType dtype, int... shape);

    /**
     * Gives t's storage back to this backend for a later {@link #empty}: neither t nor any view of it
     * may be used afterwards. A view of part of a storage, or null, is left alone.
     */
    void release(Tensor t);

    /** {@code host} (a CPU tensor) copied to this backend; the same object on the CPU backend. */
    Tensor upload(Tensor host);

    /** {@code t} copied to a CPU tensor of the same dtype; the same object on the CPU backend. */
    Tensor download(Tensor t);

    /** dst = src (same numel and dtype). */
    void copy(Tensor dst, Tensor src);

    /** Every element of t = value (floating dtypes). */
    void fill(Tensor t, float value);

    /** dst = src converted (F32 <-> F16/BF16, round to nearest even; same numel). */
    void cast(Tensor dst, Tensor src);

    /** Waits until every op issued so far has finished (a no-op on the CPU). */
    default void synchronize() {
    }

    @Override
    default void close() {
    }

    // ---------------------------------------------------------------- GEMM

    /**
     * c = alpha * op(a) @ op(b) + beta * c, where op(x) is x or its transpose.
     * 2-D: a (M, K) or (K, M) when transA; b (K, N) or (N, K) when transB; c (M, N).
     * 3-D: the same per batch, a leading batch dim shared by all three.
     * beta = 0 ignores c's prior content (NaN included).
     */
    void matmul(Tensor c, Tensor a, boolean transA, Tensor b, boolean transB, float alpha, float beta);

    /**
     * out (N, O) = x (N, I) @ w (O, I)^T + bias (O); bias may be null. x and out may have any
     * leading shape that flattens to N rows (e.g. (B, T, I)). w F32 or BF16 (F16 on CUDA); x and out
     * F32, and on CUDA with a 16-bit w either may also be w's dtype (16-bit activations, F32
     * accumulation); bias has out's dtype.
     */
    void linearForward(Tensor out, Tensor x, Tensor w, Tensor bias);

    /**
     * out (N, O) = activation(x (N, I) @ w (O, I)^T + bias (O)): {@link #linearForward} then
     * {@link #quickGeluForward} or {@link #geluForward} in one op (the MLP's c_fc in inference; the
     * CPU applies them to each GEMM tile while it is in cache). bias may be null; out must not
     * overlap x. Dtypes as {@link #linearForward}.
     */
    void linearActivationForward(Tensor out, Tensor x, Tensor w, Tensor bias, Activation activation);

    /**
     * out (N, O) = x (N, I) @ w (O, I)^T + bias (O) + residual (N, O): {@link #linearForward} then
     * {@link #add} in one op (a residual block's out_proj and c_proj). bias may be null; out must
     * overlap neither x nor residual (a GEMM with several depth blocks keeps partial sums in out).
     * Dtypes as {@link #linearForward}; residual has out's dtype.
     */
    void linearResidualForward(Tensor out, Tensor x, Tensor w, Tensor bias, Tensor residual);

    /**
     * A weight that stays constant from now on, for {@link #linearForward} and its fused variants
     * (w (O, I)) or {@link #patchEmbedForward} (w (O, Ci, p, p)), in the form this backend multiplies
     * fastest. The result may be w itself (CUDA; the CPU's scalar reference) or a tensor holding only
     * that form (the CPU's vector path: GEMM panels packed now, so a call does no packing), which keeps
     * nothing of w (the caller may drop w: the prepared weight is then the one copy) and does not
     * follow later writes to it; such a tensor serves only as the weight of those forward ops (host
     * reads and other ops refuse it). A BF16 copy of a linear or patch embedding weight is prepared for
     * BF16 GEMMs (CUDA; the CPU where it has AVX512_BF16).
     */
    Tensor prepareWeight(Tensor w);

    /**
     * dx (N, I) += dout (N, O) @ w (O, I); dw (O, I) += dout^T @ x (N, I); dbias (O) += sum_rows(dout).
     * Each of dx, dw, dbias may be null. w is F32, or on CUDA the BF16/F16 copy of an F32 master weight
     * (mixed-precision training): dout and x are then rounded to w's type for the GEMMs, which accumulate in
     * F32 into the F32 dx and dw (shaped as x and w).
     */
    void linearBackward(Tensor dx, Tensor dw, Tensor dbias, Tensor dout, Tensor x, Tensor w);

    // ---------------------------------------------------------------- elementwise

    /** out = a + b (same shape; out may alias a or b). */
    void add(Tensor out, Tensor a, Tensor b);

    /** dst += alpha * src (same numel). Used to accumulate gradients and residual branches. */
    void addScaled(Tensor dst, Tensor src, float alpha);

    /** t *= s. */
    void scale(Tensor t, float s);

    /** out (..., *S) = x (..., *S) + b (*S): b's shape equals the trailing dims of x. out may alias x. */
    void broadcastAdd(Tensor out, Tensor x, Tensor b);

    /** db (*S) += sum over the leading dims of dout (..., *S): the backward of {@link #broadcastAdd} for b. */
    void broadcastAddBackward(Tensor db, Tensor dout);

    /** out = x * sigmoid(1.702 * x). out may alias x only when backward is not needed. */
    void quickGeluForward(Tensor out, Tensor x);

    /** dx += dout * d/dx[x * sigmoid(1.702 x)]. */
    void quickGeluBackward(Tensor dx, Tensor dout, Tensor x);

    /**
     * Exact GELU, as torch's nn.GELU() (approximate='none'): out = x * (1 + erf(x / sqrt(2))) / 2.
     * out may alias x only when backward is not needed.
     */
    void geluForward(Tensor out, Tensor x);

    /** dx += dout * d/dx[x * Phi(x)] = dout * (Phi(x) + x * phi(x)), Phi/phi the normal CDF/PDF. */
    void geluBackward(Tensor dx, Tensor dout, Tensor x);

    /**
     * open_clip's LayerScale: out (N, C) = x (N, C) * gamma (C) per channel (x may have any leading
     * shape that flattens to N rows). out may alias x only when backward is not needed.
     */
    void channelScaleForward(Tensor out, Tensor x, Tensor gamma);

    /** dx (N, C) += dout * gamma; dgamma (C) += sum over rows of dout * x. Either may be null. */
    void channelScaleBackward(Tensor dx, Tensor dgamma, Tensor dout, Tensor x, Tensor gamma);

    /** out = max(x, 0). */
    void reluForward(Tensor out, Tensor x);

    /** dx += dout where out > 0 (out is the forward's output). */
    void reluBackward(Tensor dx, Tensor dout, Tensor out);

    /** out (N, C) = softmax over the last dim of x (N, C). */
    void softmaxForward(Tensor out, Tensor x);

    // ---------------------------------------------------------------- normalization

    /**
     * out (N, C) = (x - mean) * rstd * w (C) + b (C) over the last dim, in F32.
     * mean (N) and rstd (N) receive the statistics for backward; both may be null in inference.
     * x and out F32; on CUDA out may be BF16 or F16, with x F32 or out's dtype (F32 statistics,
     * one rounding at the store); w, b, mean and rstd F32.
     */
    void layerNormForward(Tensor out, Tensor mean, Tensor rstd, Tensor x, Tensor w, Tensor b, float eps);

    /** dx (N, C) +=, dw (C) +=, db (C) += the layernorm gradients; mean/rstd from the forward. */
    void layerNormBackward(Tensor dx, Tensor dw, Tensor db, Tensor dout, Tensor x, Tensor w, Tensor mean, Tensor rstd);

    /**
     * BatchNorm2d on x (B, C, H, W) -> out. train = false: uses runningMean/runningVar (C).
     * train = true: batch statistics with biased variance for normalization; runningMean/runningVar
     * updated in place with momentum (new = (1 - m) * old + m * stat, unbiased variance);
     * saveMean (C) and saveRstd (C) receive the batch mean and 1/sqrt(var + eps) for backward.
     */
    void batchNormForward(Tensor out, Tensor x, Tensor gamma, Tensor beta, Tensor runningMean, Tensor runningVar,
                          Tensor saveMean, Tensor saveRstd, boolean train, float momentum, float eps);

    /** Train-mode BatchNorm backward: dx (B, C, H, W) +=, dgamma (C) +=, dbeta (C) +=. */
    void batchNormBackward(Tensor dx, Tensor dgamma, Tensor dbeta, Tensor dout, Tensor x, Tensor gamma,
                           Tensor saveMean, Tensor saveRstd);

    /** out (N, D) = x / max(||x||, 1e-12) per row; norms (N) receives ||x|| (may be null). */
    void l2NormalizeForward(Tensor out, Tensor norms, Tensor x);

    /** dx (N, D) += the gradient of row-wise L2 normalization; out and norms from the forward. */
    void l2NormalizeBackward(Tensor dx, Tensor dout, Tensor out, Tensor norms);

    // ---------------------------------------------------------------- convolution and pooling

    /**
     * out (B, Co, Ho, Wo) = conv2d(x (B, Ci, H, W), w (Co, Ci, K, K)) + bias (Co) (bias may be null),
     * square kernel K, given stride and zero padding; Ho = (H + 2 pad - K) / stride + 1.
     */
    void conv2dForward(Tensor out, Tensor x, Tensor w, Tensor bias, int stride, int padding);

    /** dx +=, dw +=, dbias += for {@link #conv2dForward}; each may be null. */
    void conv2dBackward(Tensor dx, Tensor dw, Tensor dbias, Tensor dout, Tensor x, Tensor w, int stride, int padding);

    /**
     * ViT patch embedding without bias: out (B, P, C) where P = (H/p) * (W/p) patches in row-major
     * order, out[b, i, c] = sum over (ci, ky, kx) of w (C, Ci, p, p) * x (B, Ci, H, W) at patch i.
     */
    void patchEmbedForward(Tensor out, Tensor x, Tensor w);

    /** dw (C, Ci, p, p) += and dx (B, Ci, H, W) += (dx may be null: pixels need no gradient). */
    void patchEmbedBackward(Tensor dx, Tensor dw, Tensor dout, Tensor x, Tensor w);

    /** out (B, C, H/k, W/k) = mean over k x k windows with stride k (nn.AvgPool2d(k)). */
    void avgPool2dForward(Tensor out, Tensor x, int k);

    /** dx (B, C, H, W) += dout spread evenly over each window. */
    void avgPool2dBackward(Tensor dx, Tensor dout, int k);

    /** out (B, N, M) = x (B, M, N) transposed per batch; accumulate adds instead of overwriting. */
    void transpose(Tensor out, Tensor x, boolean accumulate);

    // ---------------------------------------------------------------- attention

    /**
     * Fused multi-head self-attention on packed projections, as nn.MultiheadAttention after
     * in_proj and before out_proj: qkv (B, T, 3C) holds q | k | v, each C = heads * headDim;
     * out (B, T, C) = concat over heads of softmax(q k^T / sqrt(headDim) + mask) v, with the
     * additive causal mask when causal. lse (B, heads, T) receives each row's log-sum-exp of the
     * scaled scores (for backward; may be null in inference). Never holds more than one head's
     * (T, T) scores at a time.
     */
    void attentionForward(Tensor out, Tensor lse, Tensor qkv, int heads, boolean causal);

    /**
     * dqkv (B, T, 3C) += the gradient of {@link #attentionForward}; out and lse (F32) from the forward. dqkv, dout,
     * qkv and out are F32, or all BF16 on CUDA (F32 accumulation inside; the CPU backward is F32 only).
     */
    void attentionBackward(Tensor dqkv, Tensor dout, Tensor qkv, Tensor out, Tensor lse, int heads, boolean causal);

    /**
     * One-query attention (ModifiedResNet's AttentionPool2d after its q/k/v projections):
     * q (B, C), k (B, L, C), v (B, L, C) -> out (B, C), per head softmax(q k^T / sqrt(headDim)) v;
     * lse (B, heads) may be null in inference. q, k, v, out F32, or all BF16 on CUDA (lse F32).
     */
    void attentionPoolForward(Tensor out, Tensor lse, Tensor q, Tensor k, Tensor v, int heads);

    /** dq (B, C) +=, dk (B, L, C) +=, dv (B, L, C) += for {@link #attentionPoolForward}. */
    void attentionPoolBackward(Tensor dq, Tensor dk, Tensor dv, Tensor dout, Tensor q, Tensor k, Tensor v,
                               Tensor out, Tensor lse, int heads);

    // ---------------------------------------------------------------- gathers

    /** out (B, T, C) = table (V, C) rows at ids (B, T) (I32). An id outside [0, V) is an error. */
    void embeddingForward(Tensor out, Tensor ids, Tensor table);

    /** dtable (V, C) += dout (B, T, C) scattered to the rows at ids (B, T). */
    void embeddingBackward(Tensor dtable, Tensor dout, Tensor ids);

    /** out (B, C) = x (B, T, C) at row index[b] (I32, (B)) of each batch item (EOT / class token). */
    void gatherRowsForward(Tensor out, Tensor x, Tensor index);

    /** dx (B, T, C) += dout (B, C) at row index[b]. */
    void gatherRowsBackward(Tensor dx, Tensor dout, Tensor index);

    // ---------------------------------------------------------------- objective

    /**
     * CLIP's symmetric contrastive loss for L2-normalized img (N, D) and txt (N, D):
     * S = exp(logitScale[0]) * img @ txt^T; loss = (CE(S, arange) + CE(S^T, arange)) / 2.
     * logitScale (1) holds the log of the scale, as CLIP's parameter. When dImg/dTxt/dLogitScale are
     * non-null they ACCUMULATE the gradient of {@code gradScale * loss} (F32). img and txt F32 (computed in row and
     * column tiles, never holding the N x N matrix at once), or BF16 on CUDA (mixed-precision training: the logits
     * GEMMs on tensor cores with F32 accumulation, the N x N logits materialized up to a memory budget).
     *
     * @return the loss (not multiplied by gradScale)
     */
    float contrastiveLoss(Tensor img, Tensor txt, Tensor logitScale, Tensor dImg, Tensor dTxt, Tensor dLogitScale,
                          float gradScale);

    // ---------------------------------------------------------------- optimizer and reductions

    /**
     * One AdamW step over a flat parameter range (fused): with g = grad * gradScale,
     * exactly torch.optim.AdamW: p *= 1 - lr * weightDecay (decoupled decay, applied first);
     * m = b1 m + (1 - b1) g; v = b2 v + (1 - b2) g^2; p -= (lr / bc1) * m / (sqrt(v) / sqrt(bc2) + eps),
     * with bias corrections bc1 = 1 - b1^step, bc2 = 1 - b2^step for the 1-based {@code step}.
     * param, grad, m, v have the same numel.
     */
    void adamwUpdate(Tensor param, Tensor grad, Tensor m, Tensor v, float lr, float beta1, float beta2, float eps,
                     float weightDecay, int step, float gradScale);

    /**
     * {@link #adamwUpdate}, then copy = param rounded to copy's dtype (BF16 or F16, param's numel): the 16-bit GEMM
     * copy of an F32 master weight in mixed-precision training. CUDA writes both in one pass.
     */
    default void adamwUpdateCopy(Tensor param, Tensor copy, Tensor grad, Tensor m, Tensor v, float lr, float beta1,
                                 float beta2, float eps, float weightDecay, int step, float gradScale) {
        OpChecks.adamwUpdateCopy(device(), param, copy, grad, m, v, lr, beta1, beta2, eps, weightDecay, step, gradScale);
        adamwUpdate(param, grad, m, v, lr, beta1, beta2, eps, weightDecay, step, gradScale);
        cast(copy, param);
    }

    /** Sum of squares of all elements, in double (for the global gradient norm). */
    double sumOfSquares(Tensor t);

    /**
     * The sum of {@link #sumOfSquares} over every tensor (F32) of the list, in double: the global gradient
     * norm squared, NaN or infinite when any element is (loss scaling's overflow check comes with it). CUDA
     * reduces every tensor in one launch and reads one number back (one sync per step, not one per tensor).
     */
    default double sumOfSquaresAll(List<Tensor> tensors) {
        OpChecks.sumOfSquaresAll(device(), tensors);
        double sum = 0;
        for (Tensor t : tensors) sum += sumOfSquares(t);
        return sum;
    }

    /** True when any element is NaN or infinite (loss scaling). */
    boolean hasNonFinite(Tensor t);

    /**
     * index[r] = the first position of the largest value in row r of x (R, T) I32, T >= 1; index (R) I32. A text
     * tower's EOT position (the largest token id) found on the device, so a text forward needs no sync point.
     */
    void rowArgmax(Tensor index, Tensor x);
}
