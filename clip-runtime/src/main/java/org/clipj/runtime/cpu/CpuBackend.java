package org.clipj.runtime.cpu;

import java.util.Arrays;
import java.util.concurrent.atomic.AtomicInteger;

import org.clipj.runtime.Activation;
import org.clipj.runtime.Backend;
import org.clipj.runtime.DType;
import org.clipj.runtime.Device;
import org.clipj.runtime.OpChecks;
import org.clipj.runtime.Tensor;

/**
 * The CPU backend: every op of {@link Backend} on Java arrays. Two paths per op, chosen once per
 * instance: the Vector API fast path (parallel on its own {@link ComputePool}) and a plain serial
 * scalar reference ({@code -Dclip.cpu.vector=false}, or {@code new CpuBackend(threads, false)})
 * that tests use as the oracle. This class is lifecycle and memory; each op checks its arguments with
 * {@link OpChecks} and hands them to its family's class, named like its kernels/src file
 * (ElementwiseOps for elementwise.cu...), which holds both paths and picks one from the {@link OpContext}.
 */
public final class CpuBackend implements Backend {
    private static final AtomicInteger POOL_ID = new AtomicInteger();

    private final boolean vector;
    private final ComputePool pool;
    private final OpContext cx;   // what every op-family call gets: the pool and the path
    private final F32Recycler recycled = new F32Recycler();

    /** Threads from {@code clip.threads} (default: available processors), path from {@code clip.cpu.vector}. */
    public CpuBackend() {
        this(Integer.getInteger("clip.threads", Runtime.getRuntime().availableProcessors()),
                Boolean.parseBoolean(System.getProperty("clip.cpu.vector", "true")));
    }

    public CpuBackend(int threads, boolean vector) {
        if (threads < 1) throw new IllegalArgumentException("CpuBackend: threads must be >= 1, got " + threads);
        CpuFeatures.requireVectorApi();
        this.vector = vector;
        this.pool = new ComputePool(vector ? threads : 1, "clip-cpu-" + POOL_ID.incrementAndGet());
        this.cx = new OpContext(pool, vector);
    }

    @Override
    public String name() {
        return "cpu";
    }

    @Override
    public Device device() {
        return Device.CPU;
    }

    @Override
    public String description() {
        return vector ? "CPU, " + pool.parallelism() + " threads; detected: " + CpuFeatures.host().describe() + "; picked: "
                + Sgemm.blocking() : "CPU, scalar reference path (single thread)";
    }

    @Override
    public void close() {
        pool.close();
    }

    // ---------------------------------------------------------------- memory

    @Override
    public Tensor zeros(DType dtype, int... shape) {
        return Tensor.zeros(dtype, shape);
    }

    @Override
    public Tensor empty(DType dtype, int... shape) {
        if (dtype != DType.F32) return Tensor.zeros(dtype, shape);
        float[] storage = recycled.take(Math.toIntExact(Tensor.numel(shape)));
        if (!vector) Arrays.fill(storage, Float.NaN);
        return Tensor.of(storage, shape);
    }

    /** Keeps t's array for a later {@link #empty} when t is a whole F32 array (not a view of part of one). */
    @Override
    public void release(Tensor t) {
        if (t == null || t.dtype() != DType.F32 || t.device() != Device.CPU) return;
        if (t.offset() == 0 && t.f32().length == t.numel()) recycled.give(t.f32());
    }

    @Override
    public Tensor upload(Tensor host) {
        return OpChecks.onHost("upload", "host", host);
    }

    @Override
    public Tensor download(Tensor t) {
        return OpChecks.onHost("download", "t", t);
    }

    /**
     * Vector path: a tensor holding only w's packed panels (F32: Sgemm's; BF16: {@link Bf16LinearOps}'),
     * packed now, which references nothing of w. Scalar path: w itself (the reference reads rows).
     */
    @Override
    public Tensor prepareWeight(Tensor w) {
        OpChecks.prepareWeight(Device.CPU, w);
        if (!vector) return w;
        return w.dtype() == DType.BF16 ? Bf16LinearOps.prepare(w) : MatmulOps.prepare(w);
    }

    // ---------------------------------------------------------------- ops: OpChecks, then the family's class

    @Override
    public void copy(Tensor dst, Tensor src) {
        OpChecks.copy(Device.CPU, dst, src);
        ElementwiseOps.copy(cx, dst, src);
    }

    @Override
    public void fill(Tensor t, float value) {
        OpChecks.fill(Device.CPU, t, value);
        ElementwiseOps.fill(cx, t, value);
    }

    @Override
    public void cast(Tensor dst, Tensor src) {
        OpChecks.cast(Device.CPU, dst, src);
        ElementwiseOps.cast(cx, dst, src);
    }

    @Override
    public void matmul(Tensor c, Tensor a, boolean transA, Tensor b, boolean transB, float alpha, float beta) {
        OpChecks.matmul(Device.CPU, c, a, transA, b, transB, alpha, beta);
        MatmulOps.matmul(cx, c, a, transA, b, transB, alpha, beta);
    }

    @Override
    public void linearForward(Tensor out, Tensor x, Tensor w, Tensor bias) {
        OpChecks.linearForward(Device.CPU, out, x, w, bias);
        if (w.dtype() == DType.BF16) Bf16LinearOps.forward(cx, out, x, w, bias, null, null);
        else MatmulOps.linearForward(cx, out, x, w, MatmulOps.panels(w), bias, null, null);
    }

    @Override
    public void linearActivationForward(Tensor out, Tensor x, Tensor w, Tensor bias, Activation activation) {
        OpChecks.linearActivationForward(Device.CPU, out, x, w, bias, activation);
        if (w.dtype() == DType.BF16) Bf16LinearOps.forward(cx, out, x, w, bias, activation, null);
        else MatmulOps.linearForward(cx, out, x, w, MatmulOps.panels(w), bias, activation, null);
    }

    @Override
    public void linearResidualForward(Tensor out, Tensor x, Tensor w, Tensor bias, Tensor residual) {
        OpChecks.linearResidualForward(Device.CPU, out, x, w, bias, residual);
        if (w.dtype() == DType.BF16) Bf16LinearOps.forward(cx, out, x, w, bias, null, residual);
        else MatmulOps.linearForward(cx, out, x, w, MatmulOps.panels(w), bias, null, residual);
    }

    @Override
    public void linearBackward(Tensor dx, Tensor dw, Tensor dbias, Tensor dout, Tensor x, Tensor w) {
        OpChecks.linearBackward(Device.CPU, dx, dw, dbias, dout, x, w);
        MatmulOps.linearBackward(cx, dx, dw, dbias, dout, x, w);
    }

    @Override
    public void add(Tensor out, Tensor a, Tensor b) {
        OpChecks.add(Device.CPU, out, a, b);
        ElementwiseOps.add(cx, out, a, b);
    }

    @Override
    public void addScaled(Tensor dst, Tensor src, float alpha) {
        OpChecks.addScaled(Device.CPU, dst, src, alpha);
        ElementwiseOps.addScaled(cx, dst, src, alpha);
    }

    @Override
    public void scale(Tensor t, float s) {
        OpChecks.scale(Device.CPU, t, s);
        ElementwiseOps.scale(cx, t, s);
    }

    @Override
    public void broadcastAdd(Tensor out, Tensor x, Tensor b) {
        OpChecks.broadcastAdd(Device.CPU, out, x, b);
        ElementwiseOps.broadcastAdd(cx, out, x, b);
    }

    @Override
    public void broadcastAddBackward(Tensor db, Tensor dout) {
        OpChecks.broadcastAddBackward(Device.CPU, db, dout);
        ElementwiseOps.broadcastAddBackward(cx, db, dout);
    }

    @Override
    public void quickGeluForward(Tensor out, Tensor x) {
        OpChecks.quickGeluForward(Device.CPU, out, x);
        ElementwiseOps.quickGeluForward(cx, out, x);
    }

    @Override
    public void quickGeluBackward(Tensor dx, Tensor dout, Tensor x) {
        OpChecks.quickGeluBackward(Device.CPU, dx, dout, x);
        ElementwiseOps.quickGeluBackward(cx, dx, dout, x);
    }

    @Override
    public void geluForward(Tensor out, Tensor x) {
        OpChecks.geluForward(Device.CPU, out, x);
        ElementwiseOps.geluForward(cx, out, x);
    }

    @Override
    public void geluBackward(Tensor dx, Tensor dout, Tensor x) {
        OpChecks.geluBackward(Device.CPU, dx, dout, x);
        ElementwiseOps.geluBackward(cx, dx, dout, x);
    }

    @Override
    public void channelScaleForward(Tensor out, Tensor x, Tensor gamma) {
        OpChecks.channelScaleForward(Device.CPU, out, x, gamma);
        ElementwiseOps.channelScaleForward(cx, out, x, gamma);
    }

    @Override
    public void channelScaleBackward(Tensor dx, Tensor dgamma, Tensor dout, Tensor x, Tensor gamma) {
        OpChecks.channelScaleBackward(Device.CPU, dx, dgamma, dout, x, gamma);
        ElementwiseOps.channelScaleBackward(cx, dx, dgamma, dout, x, gamma);
    }

    @Override
    public void reluForward(Tensor out, Tensor x) {
        OpChecks.reluForward(Device.CPU, out, x);
        ElementwiseOps.reluForward(cx, out, x);
    }

    @Override
    public void reluBackward(Tensor dx, Tensor dout, Tensor out) {
        OpChecks.reluBackward(Device.CPU, dx, dout, out);
        ElementwiseOps.reluBackward(cx, dx, dout, out);
    }

    @Override
    public void softmaxForward(Tensor out, Tensor x) {
        OpChecks.softmaxForward(Device.CPU, out, x);
        SoftmaxOps.softmaxForward(cx, out, x);
    }

    @Override
    public void layerNormForward(Tensor out, Tensor mean, Tensor rstd, Tensor x, Tensor w, Tensor b, float eps) {
        OpChecks.layerNormForward(Device.CPU, out, mean, rstd, x, w, b, eps);
        LayerNormOps.layerNormForward(cx, out, mean, rstd, x, w, b, eps);
    }

    @Override
    public void layerNormBackward(Tensor dx, Tensor dw, Tensor db, Tensor dout, Tensor x, Tensor w, Tensor mean, Tensor rstd) {
        OpChecks.layerNormBackward(Device.CPU, dx, dw, db, dout, x, w, mean, rstd);
        LayerNormOps.layerNormBackward(cx, dx, dw, db, dout, x, w, mean, rstd);
    }

    @Override
    public void batchNormForward(Tensor out, Tensor x, Tensor gamma, Tensor beta, Tensor runningMean, Tensor runningVar,
                                 Tensor saveMean, Tensor saveRstd, boolean train, float momentum, float eps) {
        OpChecks.batchNormForward(Device.CPU, out, x, gamma, beta, runningMean, runningVar, saveMean, saveRstd, train, momentum, eps);
        BatchNormOps.batchNormForward(cx, out, x, gamma, beta, runningMean, runningVar, saveMean, saveRstd, train, momentum, eps);
    }

    @Override
    public void batchNormBackward(Tensor dx, Tensor dgamma, Tensor dbeta, Tensor dout, Tensor x, Tensor gamma,
                                  Tensor saveMean, Tensor saveRstd) {
        OpChecks.batchNormBackward(Device.CPU, dx, dgamma, dbeta, dout, x, gamma, saveMean, saveRstd);
        BatchNormOps.batchNormBackward(cx, dx, dgamma, dbeta, dout, x, gamma, saveMean, saveRstd);
    }

    @Override
    public void l2NormalizeForward(Tensor out, Tensor norms, Tensor x) {
        OpChecks.l2NormalizeForward(Device.CPU, out, norms, x);
        NormalizeOps.l2NormalizeForward(cx, out, norms, x);
    }

    @Override
    public void l2NormalizeBackward(Tensor dx, Tensor dout, Tensor out, Tensor norms) {
        OpChecks.l2NormalizeBackward(Device.CPU, dx, dout, out, norms);
        NormalizeOps.l2NormalizeBackward(cx, dx, dout, out, norms);
    }

    @Override
    public void conv2dForward(Tensor out, Tensor x, Tensor w, Tensor bias, int stride, int padding) {
        OpChecks.conv2dForward(Device.CPU, out, x, w, bias, stride, padding);
        ConvOps.conv2dForward(cx, out, x, w, bias, stride, padding);
    }

    @Override
    public void conv2dBackward(Tensor dx, Tensor dw, Tensor dbias, Tensor dout, Tensor x, Tensor w, int stride, int padding) {
        OpChecks.conv2dBackward(Device.CPU, dx, dw, dbias, dout, x, w, stride, padding);
        ConvOps.conv2dBackward(cx, dx, dw, dbias, dout, x, w, stride, padding);
    }

    @Override
    public void patchEmbedForward(Tensor out, Tensor x, Tensor w) {
        OpChecks.patchEmbedForward(Device.CPU, out, x, w);
        if (w.dtype() == DType.BF16) ConvOps.patchEmbedForwardBf16(cx, out, x, w);
        else ConvOps.patchEmbedForward(cx, out, x, w, MatmulOps.panels(w));
    }

    @Override
    public void patchEmbedBackward(Tensor dx, Tensor dw, Tensor dout, Tensor x, Tensor w) {
        OpChecks.patchEmbedBackward(Device.CPU, dx, dw, dout, x, w);
        ConvOps.patchEmbedBackward(cx, dx, dw, dout, x, w);
    }

    @Override
    public void avgPool2dForward(Tensor out, Tensor x, int k) {
        OpChecks.avgPool2dForward(Device.CPU, out, x, k);
        ConvOps.avgPool2dForward(cx, out, x, k);
    }

    @Override
    public void avgPool2dBackward(Tensor dx, Tensor dout, int k) {
        OpChecks.avgPool2dBackward(Device.CPU, dx, dout, k);
        ConvOps.avgPool2dBackward(cx, dx, dout, k);
    }

    @Override
    public void transpose(Tensor out, Tensor x, boolean accumulate) {
        OpChecks.transpose(Device.CPU, out, x, accumulate);
        TransposeOps.transpose(cx, out, x, accumulate);
    }

    @Override
    public void attentionForward(Tensor out, Tensor lse, Tensor qkv, int heads, boolean causal) {
        OpChecks.attentionForward(Device.CPU, out, lse, qkv, heads, causal);
        AttentionOps.attentionForward(cx, out, lse, qkv, heads, causal);
    }

    @Override
    public void attentionBackward(Tensor dqkv, Tensor dout, Tensor qkv, Tensor out, Tensor lse, int heads, boolean causal) {
        OpChecks.attentionBackward(Device.CPU, dqkv, dout, qkv, out, lse, heads, causal);
        AttentionOps.attentionBackward(cx, dqkv, dout, qkv, out, lse, heads, causal);
    }

    @Override
    public void attentionPoolForward(Tensor out, Tensor lse, Tensor q, Tensor k, Tensor v, int heads) {
        OpChecks.attentionPoolForward(Device.CPU, out, lse, q, k, v, heads);
        AttnPoolOps.attentionPoolForward(cx, out, lse, q, k, v, heads);
    }

    @Override
    public void attentionPoolBackward(Tensor dq, Tensor dk, Tensor dv, Tensor dout, Tensor q, Tensor k, Tensor v,
                                      Tensor out, Tensor lse, int heads) {
        OpChecks.attentionPoolBackward(Device.CPU, dq, dk, dv, dout, q, k, v, out, lse, heads);
        AttnPoolOps.attentionPoolBackward(cx, dq, dk, dv, dout, q, k, v, out, lse, heads);
    }

    @Override
    public void embeddingForward(Tensor out, Tensor ids, Tensor table) {
        OpChecks.embeddingForward(Device.CPU, out, ids, table);
        EmbeddingOps.embeddingForward(cx, out, ids, table);
    }

    @Override
    public void embeddingBackward(Tensor dtable, Tensor dout, Tensor ids) {
        OpChecks.embeddingBackward(Device.CPU, dtable, dout, ids);
        EmbeddingOps.embeddingBackward(cx, dtable, dout, ids);
    }

    @Override
    public void gatherRowsForward(Tensor out, Tensor x, Tensor index) {
        OpChecks.gatherRowsForward(Device.CPU, out, x, index);
        EmbeddingOps.gatherRowsForward(cx, out, x, index);
    }

    @Override
    public void gatherRowsBackward(Tensor dx, Tensor dout, Tensor index) {
        OpChecks.gatherRowsBackward(Device.CPU, dx, dout, index);
        EmbeddingOps.gatherRowsBackward(cx, dx, dout, index);
    }

    @Override
    public float contrastiveLoss(Tensor img, Tensor txt, Tensor logitScale, Tensor dImg, Tensor dTxt, Tensor dLogitScale,
                                 float gradScale) {
        OpChecks.contrastiveLoss(Device.CPU, img, txt, logitScale, dImg, dTxt, dLogitScale, gradScale);
        return ContrastiveOps.contrastiveLoss(cx, img, txt, logitScale, dImg, dTxt, dLogitScale, gradScale);
    }

    @Override
    public void adamwUpdate(Tensor param, Tensor grad, Tensor m, Tensor v, float lr, float beta1, float beta2, float eps,
                            float weightDecay, int step, float gradScale) {
        OpChecks.adamwUpdate(Device.CPU, param, grad, m, v, lr, beta1, beta2, eps, weightDecay, step, gradScale);
        AdamwOps.adamwUpdate(cx, param, grad, m, v, lr, beta1, beta2, eps, weightDecay, step, gradScale);
    }

    @Override
    public double sumOfSquares(Tensor t) {
        OpChecks.sumOfSquares(Device.CPU, t);
        return ReduceOps.sumOfSquares(cx, t);
    }

    @Override
    public boolean hasNonFinite(Tensor t) {
        OpChecks.hasNonFinite(Device.CPU, t);
        return ReduceOps.hasNonFinite(cx, t);
    }

    @Override
    public void rowArgmax(Tensor index, Tensor x) {
        OpChecks.rowArgmax(Device.CPU, index, x);
        ReduceOps.rowArgmax(index, x);
    }
}
