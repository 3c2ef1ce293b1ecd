package org.clipj.runtime.cuda;

import java.util.List;
import java.util.Optional;
import java.util.function.Supplier;

import org.clipj.cuda.CudaException;
import org.clipj.runtime.Activation;
import org.clipj.runtime.Backend;
import org.clipj.runtime.DType;
import org.clipj.runtime.Device;
import org.clipj.runtime.OpChecks;
import org.clipj.runtime.Tensor;

/**
 * The CUDA backend: lifecycle, memory, and for each op of {@link Backend} its {@link OpChecks} call and one call into
 * its kernel family's class ({@code <Family>Kernels} for kernels/src/{@code <family>}.cu: the kernel names and the
 * launch arithmetic; {@link MatmulKernels} for cuBLASLt), all held by {@link CudaContext}. F32 forward and backward;
 * attention also takes BF16/F16 qkv (head dims up to 128); the linear layers take BF16/F16 weights forward and
 * backward, and for 16-bit inference with them 16-bit inputs, outputs, biases and residuals; the layernorm forward
 * writes BF16/F16 from F32 or 16-bit rows (F32 accumulation everywhere).
 *
 * <p>Every op is asynchronous on the backend's one stream; {@link #synchronize}, {@link #download},
 * {@link #contrastiveLoss}, {@link #sumOfSquares}, {@link #sumOfSquaresAll} and {@link #hasNonFinite} are the sync
 * points; with
 * {@code -Dclip.cuda.sync=true} every launch is followed by a sync, so that a fault names its op. Thread-safe as
 * {@link Backend} requires: the ops are synchronized on the backend and only enqueue work on the one stream.
 */
public final class CudaBackend implements Backend {
    final CudaContext cx;

    private CudaBackend(CudaContext cx) {
        this.cx = cx;
    }

    /** Why {@link #open} with this binding certainly fails (no kernels, no driver), found without loading native code. */
    public static Optional<String> unavailableWithoutLoading(String binding) {
        return CudaContext.unavailableWithoutLoading(binding);
    }

    /**
     * Opens device 0 through a driver binding: "panama" (FFM on libcuda, the default), "jcuda" (JNI) or "sim" (the
     * same kernels compiled for the host); a {@link CudaException} says why when the driver, GPU or kernels are missing.
     */
    public static CudaBackend open(String binding) {
        return open(binding, false);
    }

    /**
     * As {@link #open(String)}; tf32 = true lets cuBLASLt run the F32 GEMMs on TF32 tensor cores (10-bit mantissa
     * products, F32 accumulation: PyTorch's allow_tf32); off by default, as F32 stays exact F32. The simulator's
     * GEMM ignores it.
     */
    public static CudaBackend open(String binding, boolean tf32) {
        return new CudaBackend(CudaContext.open(binding, tf32));
    }

    @Override
    public String name() {
        return "cuda";
    }

    @Override
    public Device device() {
        return Device.CUDA;
    }

    @Override
    public String description() {
        return cx.description;
    }

    // ---------------------------------------------------------------- memory

    @Override
    public synchronized Tensor empty(DType dtype, int... shape) {
        return cx.memory.empty(dtype, shape);
    }

    @Override
    public synchronized Tensor zeros(DType dtype, int... shape) {
        return cx.memory.zeros(dtype, shape);
    }

    @Override
    public synchronized Tensor upload(Tensor host) {
        return host.device() == Device.CUDA ? host : cx.memory.upload(host);
    }

    @Override
    public synchronized Tensor download(Tensor t) {
        if (t == null) throw new IllegalArgumentException("download: t is null");
        return t.device() == Device.CPU ? t : cx.memory.download(t); // as upload() returns device tensors as they are
    }

    /** Returns a tensor's memory to the allocator now; neither it nor its views may be used afterwards. */
    @Override
    public synchronized void release(Tensor t) {
        cx.memory.release(t);
    }

    @Override
    public synchronized void synchronize() {
        cx.stream.synchronize();
    }

    /**
     * Runs body (a forward) and returns its result, with every other tensor that body allocated on this backend
     * released when it returns, so its memory is back in the allocator's cache at once (a capture that follows
     * finds its temporaries there; no garbage collection needed). body must keep no tensor it allocated but the
     * result (the simulator reports a later use of a released one as a use after free). If body throws, its
     * tensors are left to the collector.
     */
    public synchronized Tensor releasingTemporaries(Supplier<Tensor> body) {
        return cx.memory.releasingTemporaries(body);
    }

    /** Records what body issues into a CUDA graph without running it (see {@link CudaGraph#capture}). */
    public synchronized CudaGraph capture(Runnable body) {
        return CudaGraph.capture(this, cx.stream, cx.memory, body);
    }

    @Override
    public synchronized void close() {
        cx.close();
    }

    // ---------------------------------------------------------------- ops: the checks, then the family's launch

    @Override
    public synchronized void copy(Tensor dst, Tensor src) {
        OpChecks.copy(Device.CUDA, dst, src);
        cx.stream.copyDeviceToDevice(dst.deviceAddress(), src.deviceAddress(), src.byteSize());
    }

    @Override
    public synchronized void fill(Tensor t, float value) {
        OpChecks.fill(Device.CUDA, t, value);
        cx.elementwise.fillAny(t, value);
    }

    @Override
    public synchronized void cast(Tensor dst, Tensor src) {
        OpChecks.cast(Device.CUDA, dst, src);
        cx.elementwise.castAny(dst, src);
    }

    @Override
    public synchronized void matmul(Tensor c, Tensor a, boolean transA, Tensor b, boolean transB, float alpha, float beta) {
        OpChecks.matmul(Device.CUDA, c, a, transA, b, transB, alpha, beta);
        cx.matmul.matmul(c, a, transA, b, transB, alpha, beta);
    }

    /** w itself: cuBLASLt reads weights as stored (16-bit copies are made by the model's precision). */
    @Override
    public Tensor prepareWeight(Tensor w) {
        OpChecks.prepareWeight(Device.CUDA, w);
        return w;
    }

    @Override
    public synchronized void linearForward(Tensor out, Tensor x, Tensor w, Tensor bias) {
        OpChecks.linearForward(Device.CUDA, out, x, w, bias);
        cx.matmul.linearForward(out, x, w, bias);
    }

    @Override
    public synchronized void linearActivationForward(Tensor out, Tensor x, Tensor w, Tensor bias, Activation activation) {
        OpChecks.linearActivationForward(Device.CUDA, out, x, w, bias, activation);
        cx.matmul.linearActivationForward(out, x, w, bias, activation);
    }

    @Override
    public synchronized void linearResidualForward(Tensor out, Tensor x, Tensor w, Tensor bias, Tensor residual) {
        OpChecks.linearResidualForward(Device.CUDA, out, x, w, bias, residual);
        cx.matmul.linearResidualForward(out, x, w, bias, residual);
    }

    @Override
    public synchronized void linearBackward(Tensor dx, Tensor dw, Tensor dbias, Tensor dout, Tensor x, Tensor w) {
        OpChecks.linearBackward(Device.CUDA, dx, dw, dbias, dout, x, w);
        cx.matmul.linearBackward(dx, dw, dbias, dout, x, w);
    }

    @Override
    public synchronized void add(Tensor out, Tensor a, Tensor b) {
        OpChecks.add(Device.CUDA, out, a, b);
        cx.elementwise.add(out, a, b);
    }

    @Override
    public synchronized void addScaled(Tensor dst, Tensor src, float alpha) {
        OpChecks.addScaled(Device.CUDA, dst, src, alpha);
        cx.elementwise.addScaled(dst, src, alpha);
    }

    @Override
    public synchronized void scale(Tensor t, float s) {
        OpChecks.scale(Device.CUDA, t, s);
        cx.elementwise.scale(t, s);
    }

    @Override
    public synchronized void broadcastAdd(Tensor out, Tensor x, Tensor b) {
        OpChecks.broadcastAdd(Device.CUDA, out, x, b);
        cx.elementwise.broadcastAddForward(out, x, b);
    }

    @Override
    public synchronized void broadcastAddBackward(Tensor db, Tensor dout) {
        OpChecks.broadcastAddBackward(Device.CUDA, db, dout);
        cx.elementwise.broadcastAddBackward(db, dout);
    }

    @Override
    public synchronized void quickGeluForward(Tensor out, Tensor x) {
        OpChecks.quickGeluForward(Device.CUDA, out, x);
        cx.elementwise.quickgeluForward(out, x);
    }

    @Override
    public synchronized void quickGeluBackward(Tensor dx, Tensor dout, Tensor x) {
        OpChecks.quickGeluBackward(Device.CUDA, dx, dout, x);
        cx.elementwise.quickgeluBackward(dx, dout, x);
    }

    @Override
    public synchronized void geluForward(Tensor out, Tensor x) {
        OpChecks.geluForward(Device.CUDA, out, x);
        cx.elementwise.geluForward(out, x);
    }

    @Override
    public synchronized void geluBackward(Tensor dx, Tensor dout, Tensor x) {
        OpChecks.geluBackward(Device.CUDA, dx, dout, x);
        cx.elementwise.geluBackward(dx, dout, x);
    }

    @Override
    public synchronized void channelScaleForward(Tensor out, Tensor x, Tensor gamma) {
        OpChecks.channelScaleForward(Device.CUDA, out, x, gamma);
        cx.elementwise.channelScaleForward(out, x, gamma);
    }

    @Override
    public synchronized void channelScaleBackward(Tensor dx, Tensor dgamma, Tensor dout, Tensor x, Tensor gamma) {
        OpChecks.channelScaleBackward(Device.CUDA, dx, dgamma, dout, x, gamma);
        cx.elementwise.channelScaleBackward(dx, dgamma, dout, x, gamma);
    }

    @Override
    public synchronized void reluForward(Tensor out, Tensor x) {
        OpChecks.reluForward(Device.CUDA, out, x);
        cx.elementwise.reluForward(out, x);
    }

    @Override
    public synchronized void reluBackward(Tensor dx, Tensor dout, Tensor out) {
        OpChecks.reluBackward(Device.CUDA, dx, dout, out);
        cx.elementwise.reluBackward(dx, dout, out);
    }

    @Override
    public synchronized void softmaxForward(Tensor out, Tensor x) {
        OpChecks.softmaxForward(Device.CUDA, out, x);
        cx.softmax.softmax(out, x);
    }

    @Override
    public synchronized void layerNormForward(Tensor out, Tensor mean, Tensor rstd, Tensor x, Tensor w, Tensor b, float eps) {
        OpChecks.layerNormForward(Device.CUDA, out, mean, rstd, x, w, b, eps);
        cx.layerNorm.layernormForward(out, mean, rstd, x, w, b, eps);
    }

    @Override
    public synchronized void layerNormBackward(Tensor dx, Tensor dw, Tensor db, Tensor dout, Tensor x, Tensor w, Tensor mean, Tensor rstd) {
        OpChecks.layerNormBackward(Device.CUDA, dx, dw, db, dout, x, w, mean, rstd);
        cx.layerNorm.layerNormBackward(dx, dw, db, dout, x, w, mean, rstd);
    }

    @Override
    public synchronized void batchNormForward(Tensor out, Tensor x, Tensor gamma, Tensor beta, Tensor runningMean, Tensor runningVar,
                                              Tensor saveMean, Tensor saveRstd, boolean train, float momentum, float eps) {
        OpChecks.batchNormForward(Device.CUDA, out, x, gamma, beta, runningMean, runningVar, saveMean, saveRstd, train, momentum, eps);
        cx.batchNorm.batchNormForward(out, x, gamma, beta, runningMean, runningVar, saveMean, saveRstd, train, momentum, eps);
    }

    @Override
    public synchronized void batchNormBackward(Tensor dx, Tensor dgamma, Tensor dbeta, Tensor dout, Tensor x, Tensor gamma,
                                               Tensor saveMean, Tensor saveRstd) {
        OpChecks.batchNormBackward(Device.CUDA, dx, dgamma, dbeta, dout, x, gamma, saveMean, saveRstd);
        cx.batchNorm.batchnormBackward(dx, dgamma, dbeta, dout, x, gamma, saveMean, saveRstd);
    }

    @Override
    public synchronized void l2NormalizeForward(Tensor out, Tensor norms, Tensor x) {
        OpChecks.l2NormalizeForward(Device.CUDA, out, norms, x);
        cx.normalize.l2normalizeForward(out, norms, x);
    }

    @Override
    public synchronized void l2NormalizeBackward(Tensor dx, Tensor dout, Tensor out, Tensor norms) {
        OpChecks.l2NormalizeBackward(Device.CUDA, dx, dout, out, norms);
        cx.normalize.l2normalizeBackward(dx, dout, out, norms);
    }

    @Override
    public synchronized void conv2dForward(Tensor out, Tensor x, Tensor w, Tensor bias, int stride, int padding) {
        OpChecks.conv2dForward(Device.CUDA, out, x, w, bias, stride, padding);
        cx.conv.conv2dForward(out, x, w, bias, stride, padding);
    }

    @Override
    public synchronized void conv2dBackward(Tensor dx, Tensor dw, Tensor dbias, Tensor dout, Tensor x, Tensor w, int stride, int padding) {
        OpChecks.conv2dBackward(Device.CUDA, dx, dw, dbias, dout, x, w, stride, padding);
        cx.conv.conv2dBackward(dx, dw, dbias, dout, x, w, stride, padding);
    }

    @Override
    public synchronized void patchEmbedForward(Tensor out, Tensor x, Tensor w) {
        OpChecks.patchEmbedForward(Device.CUDA, out, x, w);
        cx.conv.patchEmbedForward(out, x, w);
    }

    @Override
    public synchronized void patchEmbedBackward(Tensor dx, Tensor dw, Tensor dout, Tensor x, Tensor w) {
        OpChecks.patchEmbedBackward(Device.CUDA, dx, dw, dout, x, w);
        cx.conv.patchEmbedBackward(dx, dw, dout, x, w);
    }

    @Override
    public synchronized void avgPool2dForward(Tensor out, Tensor x, int k) {
        OpChecks.avgPool2dForward(Device.CUDA, out, x, k);
        cx.conv.avgpool2dForward(out, x, k);
    }

    @Override
    public synchronized void avgPool2dBackward(Tensor dx, Tensor dout, int k) {
        OpChecks.avgPool2dBackward(Device.CUDA, dx, dout, k);
        cx.conv.avgpool2dBackward(dx, dout, k);
    }

    @Override
    public synchronized void transpose(Tensor out, Tensor x, boolean accumulate) {
        OpChecks.transpose(Device.CUDA, out, x, accumulate);
        cx.transpose.transpose(out, x, x.dim(0), x.dim(1), x.dim(2), accumulate);
    }

    @Override
    public synchronized void attentionForward(Tensor out, Tensor lse, Tensor qkv, int heads, boolean causal) {
        OpChecks.attentionForward(Device.CUDA, out, lse, qkv, heads, causal);
        cx.attention.attentionForward(out, lse, qkv, heads, causal);
    }

    @Override
    public synchronized void attentionBackward(Tensor dqkv, Tensor dout, Tensor qkv, Tensor out, Tensor lse, int heads, boolean causal) {
        OpChecks.attentionBackward(Device.CUDA, dqkv, dout, qkv, out, lse, heads, causal);
        cx.attention.attentionBackward(dqkv, dout, qkv, out, lse, heads, causal);
    }

    @Override
    public synchronized void attentionPoolForward(Tensor out, Tensor lse, Tensor q, Tensor k, Tensor v, int heads) {
        OpChecks.attentionPoolForward(Device.CUDA, out, lse, q, k, v, heads);
        cx.attnPool.attentionPoolForward(out, lse, q, k, v, heads);
    }

    @Override
    public synchronized void attentionPoolBackward(Tensor dq, Tensor dk, Tensor dv, Tensor dout, Tensor q, Tensor k, Tensor v,
                                                   Tensor out, Tensor lse, int heads) {
        OpChecks.attentionPoolBackward(Device.CUDA, dq, dk, dv, dout, q, k, v, out, lse, heads);
        cx.attnPool.attentionPoolBackward(dq, dk, dv, dout, q, k, v, out, lse, heads);
    }

    @Override
    public synchronized void embeddingForward(Tensor out, Tensor ids, Tensor table) {
        OpChecks.embeddingForward(Device.CUDA, out, ids, table);
        cx.embedding.embeddingForward(out, ids, table);
    }

    @Override
    public synchronized void embeddingBackward(Tensor dtable, Tensor dout, Tensor ids) {
        OpChecks.embeddingBackward(Device.CUDA, dtable, dout, ids);
        cx.embedding.embeddingBackward(dtable, dout, ids);
    }

    @Override
    public synchronized void gatherRowsForward(Tensor out, Tensor x, Tensor index) {
        OpChecks.gatherRowsForward(Device.CUDA, out, x, index);
        cx.embedding.gatherRowsForward(out, x, index);
    }

    @Override
    public synchronized void gatherRowsBackward(Tensor dx, Tensor dout, Tensor index) {
        OpChecks.gatherRowsBackward(Device.CUDA, dx, dout, index);
        cx.embedding.gatherRowsBackward(dx, dout, index);
    }

    @Override
    public synchronized float contrastiveLoss(Tensor img, Tensor txt, Tensor logitScale, Tensor dImg, Tensor dTxt, Tensor dLogitScale,
                                              float gradScale) {
        OpChecks.contrastiveLoss(Device.CUDA, img, txt, logitScale, dImg, dTxt, dLogitScale, gradScale);
        return cx.contrastive.contrastiveLoss(img, txt, logitScale, dImg, dTxt, dLogitScale, gradScale);
    }

    @Override
    public synchronized void adamwUpdate(Tensor param, Tensor grad, Tensor m, Tensor v, float lr, float beta1, float beta2, float eps,
                                         float weightDecay, int step, float gradScale) {
        OpChecks.adamwUpdate(Device.CUDA, param, grad, m, v, lr, beta1, beta2, eps, weightDecay, step, gradScale);
        cx.adamw.adamwUpdate(param, grad, m, v, lr, beta1, beta2, eps, weightDecay, step, gradScale);
    }

    @Override
    public synchronized void adamwUpdateCopy(Tensor param, Tensor copy, Tensor grad, Tensor m, Tensor v, float lr, float beta1,
                                             float beta2, float eps, float weightDecay, int step, float gradScale) {
        OpChecks.adamwUpdateCopy(Device.CUDA, param, copy, grad, m, v, lr, beta1, beta2, eps, weightDecay, step, gradScale);
        cx.adamw.adamwUpdateCopy(param, copy, grad, m, v, lr, beta1, beta2, eps, weightDecay, step, gradScale);
    }

    @Override
    public synchronized double sumOfSquaresAll(List<Tensor> tensors) {
        OpChecks.sumOfSquaresAll(Device.CUDA, tensors);
        return cx.reduce.sumOfSquaresAll(tensors);
    }

    @Override
    public synchronized double sumOfSquares(Tensor t) {
        OpChecks.sumOfSquares(Device.CUDA, t);
        return cx.reduce.sumOfSquares(t);
    }

    @Override
    public synchronized boolean hasNonFinite(Tensor t) {
        OpChecks.hasNonFinite(Device.CUDA, t);
        return cx.reduce.hasNonFinite(t);
    }

    @Override
    public synchronized void rowArgmax(Tensor index, Tensor x) {
        OpChecks.rowArgmax(Device.CUDA, index, x);
        cx.reduce.rowArgmax(index, x);
    }
}
