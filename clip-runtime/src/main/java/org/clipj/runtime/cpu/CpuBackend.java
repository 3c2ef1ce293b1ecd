package org.clipj.runtime.cpu;

import java.util.ArrayDeque;
import java.util.Arrays;
import java.util.Collections;
import java.util.HashMap;
import java.util.Map;
import java.util.WeakHashMap;
import java.util.concurrent.atomic.AtomicInteger;

import org.clipj.runtime.Activation;
import org.clipj.runtime.Backend;
import org.clipj.runtime.DType;
import org.clipj.runtime.Device;
import org.clipj.runtime.InvalidInputException;
import org.clipj.runtime.OpChecks;
import org.clipj.runtime.Tensor;

/**
 * The CPU backend: every op of {@link Backend} on Java arrays. Two paths per op, chosen once per
 * instance: the Vector API fast path (parallel on its own {@link ComputePool}) and a plain serial
 * scalar reference ({@code -Dclip.cpu.vector=false}, or {@code new CpuBackend(threads, false)})
 * that tests use as the oracle. Each op checks its arguments with {@link OpChecks} first; the op-family
 * classes trust them.
 */
public final class CpuBackend implements Backend {
    private static final AtomicInteger POOL_ID = new AtomicInteger();
    private static final String VECTOR_MODULE = "jdk.incubator.vector";

    private final int threads;
    private final boolean vector;
    private final ComputePool pool;
    // prepareWeight's views -> their packed GEMM panels; an entry goes when its view is unreachable
    private final Map<Tensor, PreparedWeight> preparedWeights = Collections.synchronizedMap(new WeakHashMap<>());

    /** Threads from {@code clip.threads} (default: available processors), path from {@code clip.cpu.vector}. */
    public CpuBackend() {
        this(Integer.getInteger("clip.threads", Runtime.getRuntime().availableProcessors()),
                Boolean.parseBoolean(System.getProperty("clip.cpu.vector", "true")));
    }

    public CpuBackend(int threads, boolean vector) {
        if (threads < 1) throw new IllegalArgumentException("CpuBackend: threads must be >= 1, got " + threads);
        // Without the module every op class fails to load (each holds its scalar reference beside its vector
        // path): one clear error here, never a NoClassDefFoundError in the middle of a forward pass.
        if (!vectorApiVisible()) {
            throw new InvalidInputException("the CPU backend needs the Java Vector API, an incubator module the JVM loads "
                    + "only when asked: start java with --add-modules " + VECTOR_MODULE
                    + " (the scalar path, -Dclip.cpu.vector=false, needs it too)");
        }
        this.threads = threads;
        this.vector = vector;
        this.pool = new ComputePool(vector ? threads : 1, "clip-cpu-" + POOL_ID.incrementAndGet());
    }

    private static boolean vectorApiVisible() {
        try {
            Class.forName(VECTOR_MODULE + ".FloatVector", false, CpuBackend.class.getClassLoader());
            return true;
        } catch (ClassNotFoundException e) {
            return false;
        }
    }

    /** The threads ops run on (shared with code that wants to parallelize around the backend). */
    public ComputePool pool() {
        return pool;
    }

    public int threads() {
        return threads;
    }

    /** True on the Vector API fast path, false on the scalar reference path. */
    public boolean vectorized() {
        return vector;
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
        return vector
                ? "CPU, " + threads + " threads; detected: " + CpuFeatures.host().describe() + "; picked: " + Sgemm.blocking()
                : "CPU, scalar reference path (single thread)";
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

    /** F32 storage released for reuse by {@link #empty}, by length; at most RECYCLED_PER_LENGTH of each. */
    private final Map<Integer, ArrayDeque<float[]>> recycled = new HashMap<>();
    private static final int RECYCLED_PER_LENGTH = 8;   // a residual block holds up to 6 activations of one shape

    @Override
    public Tensor empty(DType dtype, int... shape) {
        if (dtype != DType.F32) return Tensor.zeros(dtype, shape);
        int n = Math.toIntExact(Tensor.numel(shape));
        float[] storage;
        synchronized (recycled) {
            ArrayDeque<float[]> free = recycled.get(n);
            storage = free == null ? null : free.pollLast();
        }
        if (storage == null) storage = new float[n];
        if (!vector) Arrays.fill(storage, Float.NaN);
        return Tensor.of(storage, shape);
    }

    @Override
    public void release(Tensor t) {
        if (t == null || t.dtype() != DType.F32 || t.device() != Device.CPU) return;
        float[] storage = t.f32();
        if (t.offset() != 0 || storage.length != t.numel()) return;
        synchronized (recycled) {
            ArrayDeque<float[]> free = recycled.computeIfAbsent(storage.length, k -> new ArrayDeque<>());
            if (free.size() < RECYCLED_PER_LENGTH && !free.contains(storage)) free.addLast(storage);
        }
    }

    @Override
    public Tensor upload(Tensor host) {
        onCpu("upload", "host", host);
        return host;
    }

    @Override
    public Tensor download(Tensor t) {
        onCpu("download", "t", t);
        return t;
    }

    private static void onCpu(String op, String name, Tensor t) {
        if (t == null) throw new IllegalArgumentException(op + ": " + name + " is null");
        if (t.device() != Device.CPU) {
            throw new IllegalArgumentException(op + ": " + name + " " + t.shapeString() + " is on " + t.device()
                    + ", the CPU backend needs CPU tensors");
        }
    }

    @Override
    public void copy(Tensor dst, Tensor src) {
        OpChecks.copy(Device.CPU, dst, src);
        ElementwiseOps.copy(dst, src);
    }

    @Override
    public void fill(Tensor t, float value) {
        OpChecks.fill(Device.CPU, t, value);
        ElementwiseOps.fill(t, value);
    }

    @Override
    public void cast(Tensor dst, Tensor src) {
        OpChecks.cast(Device.CPU, dst, src);
        if (vector) ElementwiseOps.castParallel(dst, src, pool);
        else ElementwiseOps.castScalar(dst, src);
    }

    // ---------------------------------------------------------------- GEMM

    @Override
    public void matmul(Tensor c, Tensor a, boolean transA, Tensor b, boolean transB, float alpha, float beta) {
        OpChecks.matmul(Device.CPU, c, a, transA, b, transB, alpha, beta);
        MatmulOps.matmul(pool, vector, c, a, transA, b, transB, alpha, beta);
    }

    @Override
    public void linearForward(Tensor out, Tensor x, Tensor w, Tensor bias) {
        OpChecks.linearForward(Device.CPU, out, x, w, bias);
        MatmulOps.linearForward(pool, vector, out, x, w, packed(w), bias, null, null);
    }

    @Override
    public void linearActivationForward(Tensor out, Tensor x, Tensor w, Tensor bias, Activation activation) {
        OpChecks.linearActivationForward(Device.CPU, out, x, w, bias, activation);
        MatmulOps.linearForward(pool, vector, out, x, w, packed(w), bias, activation, null);
    }

    @Override
    public void linearResidualForward(Tensor out, Tensor x, Tensor w, Tensor bias, Tensor residual) {
        OpChecks.linearResidualForward(Device.CPU, out, x, w, bias, residual);
        MatmulOps.linearForward(pool, vector, out, x, w, packed(w), bias, null, residual);
    }

    /**
     * Vector path: a new view of w (its identity is the key) whose GEMM panels are packed on its
     * first use; linearForward and patchEmbedForward on that view then skip packing. The scalar
     * reference returns w.
     */
    @Override
    public Tensor prepareWeight(Tensor w) {
        OpChecks.prepareWeight(Device.CPU, w);
        if (!vector) return w;
        Tensor view = w.reshape(w.shape());
        preparedWeights.put(view, new PreparedWeight());
        return view;
    }

    /** w's packed panels when w came from prepareWeight (packing them on first use), else null. */
    private Sgemm.PackedB packed(Tensor w) {
        PreparedWeight prepared = preparedWeights.get(w);
        return prepared == null ? null : prepared.panels(w);
    }

    /** The packed form of one prepared weight, made once by the first call that needs it. */
    private static final class PreparedWeight {
        private volatile Sgemm.PackedB panels;   // (O, I...) as op(B) = w^T (I, O)

        Sgemm.PackedB panels(Tensor w) {
            Sgemm.PackedB p = panels;
            if (p != null) return p;
            synchronized (this) {
                if (panels == null) {
                    int o = w.dim(0), in = (int) (w.numel() / o);
                    panels = Sgemm.pack(true, o, in, w.f32(), w.offset(), in);
                }
                return panels;
            }
        }
    }

    @Override
    public void linearBackward(Tensor dx, Tensor dw, Tensor dbias, Tensor dout, Tensor x, Tensor w) {
        OpChecks.linearBackward(Device.CPU, dx, dw, dbias, dout, x, w);
        MatmulOps.linearBackward(pool, vector, dx, dw, dbias, dout, x, w);
    }

    // ---------------------------------------------------------------- elementwise

    @Override
    public void add(Tensor out, Tensor a, Tensor b) {
        OpChecks.add(Device.CPU, out, a, b);
        if (vector) ElementwiseOps.addVector(out, a, b, pool);
        else ElementwiseOps.addScalar(out, a, b);
    }

    @Override
    public void addScaled(Tensor dst, Tensor src, float alpha) {
        OpChecks.addScaled(Device.CPU, dst, src, alpha);
        if (vector) ElementwiseOps.addScaledVector(dst, src, alpha, pool);
        else ElementwiseOps.addScaledScalar(dst, src, alpha);
    }

    @Override
    public void scale(Tensor t, float s) {
        OpChecks.scale(Device.CPU, t, s);
        if (vector) ElementwiseOps.scaleVector(t, s, pool);
        else ElementwiseOps.scaleScalar(t, s);
    }

    @Override
    public void broadcastAdd(Tensor out, Tensor x, Tensor b) {
        OpChecks.broadcastAdd(Device.CPU, out, x, b);
        if (vector) ElementwiseOps.broadcastAddVector(out, x, b, pool);
        else ElementwiseOps.broadcastAddScalar(out, x, b);
    }

    @Override
    public void broadcastAddBackward(Tensor db, Tensor dout) {
        OpChecks.broadcastAddBackward(Device.CPU, db, dout);
        if (vector) ElementwiseOps.broadcastAddBackwardVector(db, dout, pool);
        else ElementwiseOps.broadcastAddBackwardScalar(db, dout);
    }

    @Override
    public void quickGeluForward(Tensor out, Tensor x) {
        OpChecks.quickGeluForward(Device.CPU, out, x);
        if (vector) ElementwiseOps.quickGeluForwardVector(out, x, pool);
        else ElementwiseOps.quickGeluForwardScalar(out, x);
    }

    @Override
    public void quickGeluBackward(Tensor dx, Tensor dout, Tensor x) {
        OpChecks.quickGeluBackward(Device.CPU, dx, dout, x);
        if (vector) ElementwiseOps.quickGeluBackwardVector(dx, dout, x, pool);
        else ElementwiseOps.quickGeluBackwardScalar(dx, dout, x);
    }

    @Override
    public void geluForward(Tensor out, Tensor x) {
        OpChecks.geluForward(Device.CPU, out, x);
        if (vector) ElementwiseOps.geluForwardVector(out, x, pool);
        else ElementwiseOps.geluForwardScalar(out, x);
    }

    @Override
    public void geluBackward(Tensor dx, Tensor dout, Tensor x) {
        OpChecks.geluBackward(Device.CPU, dx, dout, x);
        if (vector) ElementwiseOps.geluBackwardVector(dx, dout, x, pool);
        else ElementwiseOps.geluBackwardScalar(dx, dout, x);
    }

    @Override
    public void channelScaleForward(Tensor out, Tensor x, Tensor gamma) {
        OpChecks.channelScaleForward(Device.CPU, out, x, gamma);
        if (vector) ElementwiseOps.channelScaleForwardVector(out, x, gamma, pool);
        else ElementwiseOps.channelScaleForwardScalar(out, x, gamma);
    }

    @Override
    public void channelScaleBackward(Tensor dx, Tensor dgamma, Tensor dout, Tensor x, Tensor gamma) {
        OpChecks.channelScaleBackward(Device.CPU, dx, dgamma, dout, x, gamma);
        if (vector) ElementwiseOps.channelScaleBackwardVector(dx, dgamma, dout, x, gamma, pool);
        else ElementwiseOps.channelScaleBackwardScalar(dx, dgamma, dout, x, gamma);
    }

    @Override
    public void reluForward(Tensor out, Tensor x) {
        OpChecks.reluForward(Device.CPU, out, x);
        if (vector) ElementwiseOps.reluForwardVector(out, x, pool);
        else ElementwiseOps.reluForwardScalar(out, x);
    }

    @Override
    public void reluBackward(Tensor dx, Tensor dout, Tensor out) {
        OpChecks.reluBackward(Device.CPU, dx, dout, out);
        if (vector) ElementwiseOps.reluBackwardVector(dx, dout, out, pool);
        else ElementwiseOps.reluBackwardScalar(dx, dout, out);
    }

    @Override
    public void softmaxForward(Tensor out, Tensor x) {
        OpChecks.softmaxForward(Device.CPU, out, x);
        if (vector) ElementwiseOps.softmaxVector(out, x, pool);
        else ElementwiseOps.softmaxScalar(out, x);
    }

    // ---------------------------------------------------------------- normalization

    @Override
    public void layerNormForward(Tensor out, Tensor mean, Tensor rstd, Tensor x, Tensor w, Tensor b, float eps) {
        OpChecks.layerNormForward(Device.CPU, out, mean, rstd, x, w, b, eps);
        if (vector) LayerNormOps.forwardVector(out, mean, rstd, x, w, b, eps, pool);
        else LayerNormOps.forwardScalar(out, mean, rstd, x, w, b, eps);
    }

    @Override
    public void layerNormBackward(Tensor dx, Tensor dw, Tensor db, Tensor dout, Tensor x, Tensor w, Tensor mean, Tensor rstd) {
        OpChecks.layerNormBackward(Device.CPU, dx, dw, db, dout, x, w, mean, rstd);
        if (vector) LayerNormOps.backwardVector(dx, dw, db, dout, x, w, mean, rstd, pool);
        else LayerNormOps.backwardScalar(dx, dw, db, dout, x, w, mean, rstd);
    }

    @Override
    public void batchNormForward(Tensor out, Tensor x, Tensor gamma, Tensor beta, Tensor runningMean, Tensor runningVar,
                                 Tensor saveMean, Tensor saveRstd, boolean train, float momentum, float eps) {
        OpChecks.batchNormForward(Device.CPU, out, x, gamma, beta, runningMean, runningVar, saveMean, saveRstd, train, momentum, eps);
        NormOps.batchNormForward(pool, vector, out, x, gamma, beta, runningMean, runningVar, saveMean, saveRstd, train,
                momentum, eps);
    }

    @Override
    public void batchNormBackward(Tensor dx, Tensor dgamma, Tensor dbeta, Tensor dout, Tensor x, Tensor gamma,
                                  Tensor saveMean, Tensor saveRstd) {
        OpChecks.batchNormBackward(Device.CPU, dx, dgamma, dbeta, dout, x, gamma, saveMean, saveRstd);
        NormOps.batchNormBackward(pool, vector, dx, dgamma, dbeta, dout, x, gamma, saveMean, saveRstd);
    }

    @Override
    public void l2NormalizeForward(Tensor out, Tensor norms, Tensor x) {
        OpChecks.l2NormalizeForward(Device.CPU, out, norms, x);
        NormOps.l2NormalizeForward(pool, vector, out, norms, x);
    }

    @Override
    public void l2NormalizeBackward(Tensor dx, Tensor dout, Tensor out, Tensor norms) {
        OpChecks.l2NormalizeBackward(Device.CPU, dx, dout, out, norms);
        NormOps.l2NormalizeBackward(pool, vector, dx, dout, out, norms);
    }

    // ---------------------------------------------------------------- convolution and pooling

    @Override
    public void conv2dForward(Tensor out, Tensor x, Tensor w, Tensor bias, int stride, int padding) {
        OpChecks.conv2dForward(Device.CPU, out, x, w, bias, stride, padding);
        if (vector) ConvOps.conv2dForwardVector(out, x, w, bias, stride, padding, pool);
        else ConvOps.conv2dForwardScalar(out, x, w, bias, stride, padding);
    }

    @Override
    public void conv2dBackward(Tensor dx, Tensor dw, Tensor dbias, Tensor dout, Tensor x, Tensor w, int stride, int padding) {
        OpChecks.conv2dBackward(Device.CPU, dx, dw, dbias, dout, x, w, stride, padding);
        if (vector) ConvOps.conv2dBackwardVector(dx, dw, dbias, dout, x, w, stride, padding, pool);
        else ConvOps.conv2dBackwardScalar(dx, dw, dbias, dout, x, w, stride, padding);
    }

    @Override
    public void patchEmbedForward(Tensor out, Tensor x, Tensor w) {
        OpChecks.patchEmbedForward(Device.CPU, out, x, w);
        if (vector) ConvOps.patchEmbedForwardVector(out, x, w, packed(w), pool);
        else ConvOps.patchEmbedForwardScalar(out, x, w);
    }

    @Override
    public void patchEmbedBackward(Tensor dx, Tensor dw, Tensor dout, Tensor x, Tensor w) {
        OpChecks.patchEmbedBackward(Device.CPU, dx, dw, dout, x, w);
        if (vector) ConvOps.patchEmbedBackwardVector(dx, dw, dout, x, w, pool);
        else ConvOps.patchEmbedBackwardScalar(dx, dw, dout, x, w);
    }

    @Override
    public void avgPool2dForward(Tensor out, Tensor x, int k) {
        OpChecks.avgPool2dForward(Device.CPU, out, x, k);
        ConvOps.avgPool2dForward(vector ? pool : null, out, x, k);
    }

    @Override
    public void avgPool2dBackward(Tensor dx, Tensor dout, int k) {
        OpChecks.avgPool2dBackward(Device.CPU, dx, dout, k);
        ConvOps.avgPool2dBackward(vector ? pool : null, dx, dout, k);
    }

    @Override
    public void transpose(Tensor out, Tensor x, boolean accumulate) {
        OpChecks.transpose(Device.CPU, out, x, accumulate);
        ConvOps.transpose(vector ? pool : null, out, x, accumulate);
    }

    // ---------------------------------------------------------------- attention

    @Override
    public void attentionForward(Tensor out, Tensor lse, Tensor qkv, int heads, boolean causal) {
        OpChecks.attentionForward(Device.CPU, out, lse, qkv, heads, causal);
        if (vector) AttentionOps.forwardBlocked(pool, out, lse, qkv, heads, causal);
        else AttentionOps.forwardScalar(out, lse, qkv, heads, causal);
    }

    @Override
    public void attentionBackward(Tensor dqkv, Tensor dout, Tensor qkv, Tensor out, Tensor lse, int heads, boolean causal) {
        OpChecks.attentionBackward(Device.CPU, dqkv, dout, qkv, out, lse, heads, causal);
        if (vector) AttentionOps.backwardBlocked(pool, dqkv, dout, qkv, out, lse, heads, causal);
        else AttentionOps.backwardScalar(dqkv, dout, qkv, out, lse, heads, causal);
    }

    @Override
    public void attentionPoolForward(Tensor out, Tensor lse, Tensor q, Tensor k, Tensor v, int heads) {
        OpChecks.attentionPoolForward(Device.CPU, out, lse, q, k, v, heads);
        AttentionOps.poolForward(vector ? pool : null, vector, out, lse, q, k, v, heads);
    }

    @Override
    public void attentionPoolBackward(Tensor dq, Tensor dk, Tensor dv, Tensor dout, Tensor q, Tensor k, Tensor v,
                                      Tensor out, Tensor lse, int heads) {
        OpChecks.attentionPoolBackward(Device.CPU, dq, dk, dv, dout, q, k, v, out, lse, heads);
        AttentionOps.poolBackward(vector ? pool : null, vector, dq, dk, dv, dout, q, k, v, out, lse, heads);
    }

    // ---------------------------------------------------------------- gathers

    @Override
    public void embeddingForward(Tensor out, Tensor ids, Tensor table) {
        OpChecks.embeddingForward(Device.CPU, out, ids, table);
        GatherOps.checkIds("embeddingForward", ids, table.dim(0));
        GatherOps.embeddingForward(vector ? pool : null, out, ids, table);
    }

    @Override
    public void embeddingBackward(Tensor dtable, Tensor dout, Tensor ids) {
        OpChecks.embeddingBackward(Device.CPU, dtable, dout, ids);
        GatherOps.checkIds("embeddingBackward", ids, dtable.dim(0));
        if (vector) GatherOps.embeddingBackwardVector(dtable, dout, ids, pool);
        else GatherOps.embeddingBackwardScalar(dtable, dout, ids);
    }

    @Override
    public void gatherRowsForward(Tensor out, Tensor x, Tensor index) {
        OpChecks.gatherRowsForward(Device.CPU, out, x, index);
        GatherOps.checkIds("gatherRowsForward", index, x.dim(1));
        GatherOps.gatherRowsForward(out, x, index);
    }

    @Override
    public void gatherRowsBackward(Tensor dx, Tensor dout, Tensor index) {
        OpChecks.gatherRowsBackward(Device.CPU, dx, dout, index);
        GatherOps.checkIds("gatherRowsBackward", index, dx.dim(1));
        GatherOps.gatherRowsBackward(vector, dx, dout, index);
    }

    // ---------------------------------------------------------------- objective

    @Override
    public float contrastiveLoss(Tensor img, Tensor txt, Tensor logitScale, Tensor dImg, Tensor dTxt, Tensor dLogitScale,
                                 float gradScale) {
        OpChecks.contrastiveLoss(Device.CPU, img, txt, logitScale, dImg, dTxt, dLogitScale, gradScale);
        return vector
                ? ContrastiveOps.lossTiled(img, txt, logitScale, dImg, dTxt, dLogitScale, gradScale, pool)
                : ContrastiveOps.lossScalar(img, txt, logitScale, dImg, dTxt, dLogitScale, gradScale);
    }

    // ---------------------------------------------------------------- optimizer and reductions

    @Override
    public void adamwUpdate(Tensor param, Tensor grad, Tensor m, Tensor v, float lr, float beta1, float beta2, float eps,
                            float weightDecay, int step, float gradScale) {
        OpChecks.adamwUpdate(Device.CPU, param, grad, m, v, lr, beta1, beta2, eps, weightDecay, step, gradScale);
        if (vector) OptimizerOps.adamwVector(param, grad, m, v, lr, beta1, beta2, eps, weightDecay, step, gradScale, pool);
        else OptimizerOps.adamwScalar(param, grad, m, v, lr, beta1, beta2, eps, weightDecay, step, gradScale);
    }

    @Override
    public double sumOfSquares(Tensor t) {
        OpChecks.sumOfSquares(Device.CPU, t);
        return vector ? OptimizerOps.sumOfSquaresVector(t, pool) : OptimizerOps.sumOfSquaresScalar(t);
    }

    @Override
    public boolean hasNonFinite(Tensor t) {
        OpChecks.hasNonFinite(Device.CPU, t);
        return vector ? OptimizerOps.hasNonFiniteVector(t, pool) : OptimizerOps.hasNonFiniteScalar(t);
    }
}
