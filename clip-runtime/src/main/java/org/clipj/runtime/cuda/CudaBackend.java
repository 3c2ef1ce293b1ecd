package org.clipj.runtime.cuda;

import java.nio.file.Path;
import java.util.Arrays;
import java.util.Optional;

import org.clipj.cuda.Blas;
import org.clipj.cuda.CudaDriver;
import org.clipj.cuda.CudaDrivers;
import org.clipj.cuda.CudaException;
import org.clipj.cuda.SimCudaDriver;
import org.clipj.kernels.Kernels;
import org.clipj.runtime.Activation;
import org.clipj.runtime.Backend;
import org.clipj.runtime.DType;
import org.clipj.runtime.Device;
import org.clipj.runtime.Tensor;

/**
 * The CUDA backend: lifecycle, memory, and one delegation per op to the class of its kernel family
 * ({@code <Family>Kernels} for kernels/src/{@code <family>}.cu, {@link MatmulKernels} for cuBLASLt), which
 * holds the kernel names and the launch arithmetic. One stream per backend ({@link CudaStream}), a caching
 * device allocator and pinned staging ({@link DeviceMemory}), CUDA-graph capture ({@link #capture}).
 *
 * <p>Every op is asynchronous on the backend's stream; {@link #synchronize}, {@link #download},
 * {@link #contrastiveLoss}, {@link #sumOfSquares} and {@link #hasNonFinite} are the sync points.
 * Every op of {@link Backend} is implemented, forward and backward (F32; attention also takes
 * BF16/F16 inputs, {@link #similarityForward} is the mixed-precision similarity matrix, and the forwards
 * {@link #linearForward}, {@link #conv2dForward} and {@link #patchEmbedForward} take BF16/F16 weights for
 * mixed-precision inference: the F32 input is cast to the weight's type, the GEMM accumulates in F32 and
 * writes F32 (+ F32 bias)). Attention takes any head dim up to 128 (every CLIP model: 64, and 80/88/104/112
 * for open_clip's ViT-H/g/bigG/e); a wider one is an {@link IllegalArgumentException} naming the op and the width.
 *
 * <p>Debug mode: with {@code -Dclip.cuda.sync=true} the backend synchronizes after every kernel launch and
 * GEMM, so an asynchronous fault is reported under the op that caused it, not at the next sync point.
 *
 * <p>Thread-safe as {@link Backend} requires: the ops are synchronized on the backend (they only
 * enqueue work, so the lock is held briefly except at the sync points), the driver binds its context
 * to each calling thread, and all work runs in order on the one stream.
 */
public final class CudaBackend implements Backend {
    private final CudaDriver driver;
    private final String description;
    private final CudaStream stream;
    final DeviceMemory memory;
    private final KernelLauncher launcher;
    final AdamwKernels adamw;
    final AttentionKernels attention;
    final AttnPoolKernels attnPool;
    final BatchNormKernels batchNorm;
    final ContrastiveKernels contrastive;
    final ConvKernels conv;
    final ElementwiseKernels elementwise;
    final EmbeddingKernels embedding;
    final LayerNormKernels layerNorm;
    final MatmulKernels matmul;
    final NormalizeKernels normalize;
    final ReduceKernels reduce;
    final SimilarityKernels similarity;
    final SoftmaxKernels softmax;
    final TransposeKernels transpose;
    private boolean closed;

    private CudaBackend(CudaDriver driver, Blas blas, byte[] image, String description) {
        this.driver = driver;
        this.description = description;
        this.stream = new CudaStream(driver);
        this.launcher = new KernelLauncher(stream, image);
        this.memory = new DeviceMemory(stream);
        this.adamw = new AdamwKernels(launcher);
        this.attention = new AttentionKernels(launcher);
        this.attnPool = new AttnPoolKernels(launcher);
        this.batchNorm = new BatchNormKernels(launcher, memory);
        this.contrastive = new ContrastiveKernels(launcher, memory);
        this.elementwise = new ElementwiseKernels(launcher, memory, stream);
        this.embedding = new EmbeddingKernels(launcher, memory, stream);
        this.layerNorm = new LayerNormKernels(launcher);
        this.matmul = new MatmulKernels(stream, blas, memory, elementwise);
        this.normalize = new NormalizeKernels(launcher);
        this.reduce = new ReduceKernels(launcher, memory);
        this.similarity = new SimilarityKernels(launcher);
        this.softmax = new SoftmaxKernels(launcher);
        this.transpose = new TransposeKernels(launcher);
        this.conv = new ConvKernels(launcher, memory, matmul, elementwise, transpose);
    }

    /**
     * Why {@link #open} with this binding certainly fails, decided without loading any native library
     * (no restricted method is called): the kernels or the driver library are absent. Empty when it may open.
     */
    public static Optional<String> unavailableWithoutLoading(String binding) {
        Optional<String> driver = CudaDrivers.unavailableWithoutLoading(binding);
        if (driver.isPresent() || "sim".equals(binding)) return driver;
        String kernels = Kernels.fatbinUnavailableReason();
        return kernels == null ? Optional.empty() : Optional.of("CUDA kernels not available: " + kernels);
    }

    /**
     * Opens device 0 through the given driver binding: "panama" (FFM on libcuda, the default),
     * "jcuda" (JNI, for comparison) or "sim" (the simulator: the same kernels compiled for the host).
     * Fails with a {@link CudaException} saying why when the driver, a GPU or the kernels are missing.
     */
    public static CudaBackend open(String binding) {
        byte[] image;
        CudaDriver driver;
        if ("sim".equals(binding)) {
            Path library = Kernels.simLibrary().orElseThrow(() -> new CudaException(
                    "CUDA simulator not available: " + Kernels.simLibraryUnavailableReason()));
            driver = new SimCudaDriver(library);
            image = new byte[0]; // the simulator's kernels are compiled into its library
        } else {
            image = Kernels.fatbin().orElseThrow(() -> new CudaException(
                    "CUDA kernels not available: " + Kernels.fatbinUnavailableReason()));
            driver = CudaDrivers.open(binding, 0);
        }
        try {
            Blas blas = Blas.open(driver, false);
            CudaDriver.DeviceInfo info = driver.device();
            String description = "cuda (" + binding + "): " + info.name() + ", sm_" + info.computeMajor() + info.computeMinor()
                    + ", " + info.multiprocessors() + " SMs, " + (info.totalMemoryBytes() >> 20) + " MiB";
            return new CudaBackend(driver, blas, image, description);
        } catch (RuntimeException e) {
            driver.close();
            throw e;
        }
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
        return description;
    }

    // ---------------------------------------------------------------- memory

    /** An uninitialized tensor on the device, from the caching allocator. */
    @Override
    public synchronized Tensor empty(DType dtype, int... shape) {
        return memory.empty(dtype, shape);
    }

    @Override
    public synchronized Tensor zeros(DType dtype, int... shape) {
        return memory.zeros(dtype, shape);
    }

    @Override
    public synchronized Tensor upload(Tensor host) {
        return host.device() == Device.CUDA ? host : memory.upload(host);
    }

    @Override
    public synchronized Tensor download(Tensor t) {
        if (t == null) throw new IllegalArgumentException("download: t is null");
        return t.device() == Device.CPU ? t : memory.download(t); // as upload() returns device tensors as they are
    }

    /** Returns a tensor's memory to the allocator now; neither it nor its views may be used afterwards. */
    @Override
    public synchronized void release(Tensor t) {
        memory.release(t);
    }

    @Override
    public synchronized void synchronize() {
        stream.synchronize();
    }

    /**
     * Records every launch and copy that {@code body} issues on this backend's stream into a CUDA graph
     * (the simulator records the launch list) without running them; {@link CudaGraph#replay} runs them
     * again with the same shapes and device addresses. For fixed-shape inference: allocate the
     * inputs and outputs first, capture the forward once, then upload new inputs into the same
     * tensors (with {@link #copy}) and replay. Ops with a sync point (download, the loss, sums)
     * cannot be captured; gathers skip their index check while capturing. Run the body once
     * before capturing it so the allocator's cache already holds its temporaries (a driver
     * allocation inside a capture is not allowed by CUDA). Every block allocated during the capture
     * stays reserved for the graph (even if released) until the graph is closed.
     */
    public synchronized CudaGraph capture(Runnable body) {
        return CudaGraph.capture(this, stream, memory, body);
    }

    @Override
    public synchronized void close() {
        if (closed) return;
        try {
            stream.close();
        } finally {
            closed = true;
            memory.close();
            stream.destroy();
            launcher.close();
            matmul.close();
            driver.close();
        }
    }

    // ---------------------------------------------------------------- ops: the checks, then the family's launch

    @Override
    public synchronized void copy(Tensor dst, Tensor src) {
        CudaChecks.copy(dst, src);
        stream.copyDeviceToDevice(dst.deviceAddress(), src.deviceAddress(), src.byteSize());
    }

    @Override
    public synchronized void fill(Tensor t, float value) {
        CudaChecks.fill(t);
        elementwise.fillAny(t, value);
    }

    @Override
    public synchronized void cast(Tensor dst, Tensor src) {
        CudaChecks.cast(dst, src);
        elementwise.castAny(dst, src);
    }

    @Override
    public synchronized void matmul(Tensor c, Tensor a, boolean transA, Tensor b, boolean transB, float alpha, float beta) {
        CudaChecks.matmul(c, a, transA, b, transB);
        matmul.matmul(c, a, transA, b, transB, alpha, beta);
    }

    /** w itself: cuBLASLt reads weights as stored (16-bit copies are made by the model's precision). */
    @Override
    public Tensor prepareWeight(Tensor w) {
        if (w.rank() != 2 && w.rank() != 4) {
            throw new IllegalArgumentException("prepareWeight: w " + w.shapeString() + " is neither (O, I) nor (O, Ci, p, p)");
        }
        return w;
    }

    @Override
    public synchronized void linearForward(Tensor out, Tensor x, Tensor w, Tensor bias) {
        CudaChecks.linearForward("linearForward", out, x, w, bias);
        matmul.linearForward(out, x, w, bias);
    }

    @Override
    public synchronized void linearActivationForward(Tensor out, Tensor x, Tensor w, Tensor bias, Activation activation) {
        CudaChecks.linearActivationForward(out, x, w, bias, activation);
        matmul.linearActivationForward(out, x, w, bias, activation);
    }

    /** linearForward, then out += residual. */
    @Override
    public synchronized void linearResidualForward(Tensor out, Tensor x, Tensor w, Tensor bias, Tensor residual) {
        CudaChecks.linearResidualForward(out, x, w, bias, residual);
        matmul.linearForward(out, x, w, bias);
        elementwise.add(out, out, residual);
    }

    @Override
    public synchronized void linearBackward(Tensor dx, Tensor dw, Tensor dbias, Tensor dout, Tensor x, Tensor w) {
        CudaChecks.linearBackward(dx, dw, dbias, dout, x, w);
        matmul.linearBackward(dx, dw, dbias, dout, x, w);
    }

    @Override
    public synchronized void add(Tensor out, Tensor a, Tensor b) {
        CudaChecks.add(out, a, b);
        elementwise.add(out, a, b);
    }

    @Override
    public synchronized void addScaled(Tensor dst, Tensor src, float alpha) {
        CudaChecks.sameNumel("addScaled", "dst", dst, "src", src);
        elementwise.addScaled(dst, src, alpha);
    }

    @Override
    public synchronized void scale(Tensor t, float s) {
        CudaChecks.f32("scale", "t", t);
        elementwise.scale(t, s);
    }

    @Override
    public synchronized void broadcastAdd(Tensor out, Tensor x, Tensor b) {
        CudaChecks.broadcastAdd(out, x, b);
        elementwise.broadcastAddForward(out, x, b);
    }

    @Override
    public synchronized void broadcastAddBackward(Tensor db, Tensor dout) {
        CudaChecks.broadcastAddBackward(db, dout);
        elementwise.broadcastAddBackward(db, dout, Math.toIntExact(dout.numel() / db.numel()), Math.toIntExact(db.numel()));
    }

    @Override
    public synchronized void quickGeluForward(Tensor out, Tensor x) {
        CudaChecks.unary("quickGeluForward", out, x);
        elementwise.quickgeluForward(out, x);
    }

    @Override
    public synchronized void quickGeluBackward(Tensor dx, Tensor dout, Tensor x) {
        CudaChecks.unaryBackward("quickGeluBackward", dx, dout, "x", x);
        elementwise.quickgeluBackward(dx, dout, x);
    }

    @Override
    public synchronized void geluForward(Tensor out, Tensor x) {
        CudaChecks.unary("geluForward", out, x);
        elementwise.geluForward(out, x);
    }

    @Override
    public synchronized void geluBackward(Tensor dx, Tensor dout, Tensor x) {
        CudaChecks.unaryBackward("geluBackward", dx, dout, "x", x);
        elementwise.geluBackward(dx, dout, x);
    }

    @Override
    public synchronized void channelScaleForward(Tensor out, Tensor x, Tensor gamma) {
        CudaChecks.channelScaleForward(out, x, gamma);
        elementwise.channelScaleForward(out, x, gamma);
    }

    @Override
    public synchronized void channelScaleBackward(Tensor dx, Tensor dgamma, Tensor dout, Tensor x, Tensor gamma) {
        CudaChecks.channelScaleBackward(dx, dgamma, dout, x, gamma);
        if (dx != null) elementwise.channelScaleBackwardInput(dx, dout, gamma);
        if (dgamma != null) elementwise.channelScaleBackwardGamma(dgamma, dout, x);
    }

    @Override
    public synchronized void reluForward(Tensor out, Tensor x) {
        CudaChecks.unary("reluForward", out, x);
        elementwise.reluForward(out, x);
    }

    @Override
    public synchronized void reluBackward(Tensor dx, Tensor dout, Tensor out) {
        CudaChecks.unaryBackward("reluBackward", dx, dout, "out", out);
        elementwise.reluBackward(dx, dout, out);
    }

    @Override
    public synchronized void softmaxForward(Tensor out, Tensor x) {
        CudaChecks.unary("softmaxForward", out, x);
        softmax.softmax(out, x);
    }

    @Override
    public synchronized void layerNormForward(Tensor out, Tensor mean, Tensor rstd, Tensor x, Tensor w, Tensor b, float eps) {
        CudaChecks.layerNormForward(out, mean, rstd, x, w, b);
        layerNorm.layernormForward(out, mean, rstd, x, w, b, eps);
    }

    @Override
    public synchronized void layerNormBackward(Tensor dx, Tensor dw, Tensor db, Tensor dout, Tensor x, Tensor w, Tensor mean, Tensor rstd) {
        CudaChecks.layerNormBackward(dx, dw, db, dout, x, w, mean, rstd);
        if (dx != null) layerNorm.layernormBackward(dx, dout, x, w, mean, rstd);
        if (dw != null || db != null) layerNorm.layernormBackwardParams(dw, db, dout, x, mean, rstd);
    }

    @Override
    public synchronized void batchNormForward(Tensor out, Tensor x, Tensor gamma, Tensor beta, Tensor runningMean, Tensor runningVar,
                                              Tensor saveMean, Tensor saveRstd, boolean train, float momentum, float eps) {
        CudaChecks.batchNormForward(out, x, gamma, beta, runningMean, runningVar, saveMean, saveRstd, train);
        batchNorm.batchNormForward(out, x, gamma, beta, runningMean, runningVar, saveMean, saveRstd, train, momentum, eps);
    }

    @Override
    public synchronized void batchNormBackward(Tensor dx, Tensor dgamma, Tensor dbeta, Tensor dout, Tensor x, Tensor gamma,
                                               Tensor saveMean, Tensor saveRstd) {
        CudaChecks.batchNormBackward(dx, dgamma, dbeta, dout, x, gamma, saveMean, saveRstd);
        batchNorm.batchnormBackward(dx, dgamma, dbeta, dout, x, gamma, saveMean, saveRstd);
    }

    @Override
    public synchronized void l2NormalizeForward(Tensor out, Tensor norms, Tensor x) {
        CudaChecks.l2NormalizeForward(out, norms, x);
        normalize.l2normalizeForward(out, norms, x);
    }

    @Override
    public synchronized void l2NormalizeBackward(Tensor dx, Tensor dout, Tensor out, Tensor norms) {
        CudaChecks.l2NormalizeBackward(dx, dout, out, norms);
        normalize.l2normalizeBackward(dx, dout, out, norms);
    }

    @Override
    public synchronized void conv2dForward(Tensor out, Tensor x, Tensor w, Tensor bias, int stride, int padding) {
        CudaChecks.conv2dForward(out, x, w, bias, stride, padding);
        conv.conv2dForward(out, x, w, bias, stride, padding);
    }

    @Override
    public synchronized void conv2dBackward(Tensor dx, Tensor dw, Tensor dbias, Tensor dout, Tensor x, Tensor w, int stride, int padding) {
        CudaChecks.conv2dBackward(dx, dw, dbias, dout, x, w, stride, padding);
        conv.conv2dBackward(dx, dw, dbias, dout, x, w, stride, padding);
    }

    @Override
    public synchronized void patchEmbedForward(Tensor out, Tensor x, Tensor w) {
        CudaChecks.patchEmbedForward(out, x, w);
        conv.patchEmbedForward(out, x, w);
    }

    @Override
    public synchronized void patchEmbedBackward(Tensor dx, Tensor dw, Tensor dout, Tensor x, Tensor w) {
        CudaChecks.patchEmbedBackward(dx, dw, dout, x, w);
        conv.patchEmbedBackward(dx, dw, dout, x, w);
    }

    @Override
    public synchronized void avgPool2dForward(Tensor out, Tensor x, int k) {
        CudaChecks.avgPool2dForward(out, x, k);
        conv.avgpool2dForward(out, x, k);
    }

    @Override
    public synchronized void avgPool2dBackward(Tensor dx, Tensor dout, int k) {
        CudaChecks.avgPool2dBackward(dx, dout, k);
        conv.avgpool2dBackward(dx, dout, k);
    }

    @Override
    public synchronized void transpose(Tensor out, Tensor x, boolean accumulate) {
        CudaChecks.transpose(out, x);
        transpose.transpose(out, x, x.dim(0), x.dim(1), x.dim(2), accumulate);
    }

    @Override
    public synchronized void attentionForward(Tensor out, Tensor lse, Tensor qkv, int heads, boolean causal) {
        CudaChecks.attentionForward(out, lse, qkv, heads);
        attention.attentionForward(out, lse, qkv, heads, causal);
    }

    @Override
    public synchronized void attentionBackward(Tensor dqkv, Tensor dout, Tensor qkv, Tensor out, Tensor lse, int heads, boolean causal) {
        CudaChecks.attentionBackward(dqkv, dout, qkv, out, lse, heads);
        attention.attentionBackward(dqkv, dout, qkv, out, lse, heads, causal);
    }

    @Override
    public synchronized void attentionPoolForward(Tensor out, Tensor lse, Tensor q, Tensor k, Tensor v, int heads) {
        CudaChecks.attentionPoolForward(out, lse, q, k, v, heads);
        attnPool.attentionPoolForward(out, lse, q, k, v, heads);
    }

    @Override
    public synchronized void attentionPoolBackward(Tensor dq, Tensor dk, Tensor dv, Tensor dout, Tensor q, Tensor k, Tensor v,
                                                   Tensor out, Tensor lse, int heads) {
        CudaChecks.attentionPoolBackward(dq, dk, dv, dout, q, k, v, out, lse, heads);
        attnPool.attentionPoolBackward(dq, dk, dv, dout, q, k, v, out, lse, heads);
    }

    @Override
    public synchronized void embeddingForward(Tensor out, Tensor ids, Tensor table) {
        CudaChecks.embeddingForward(out, ids, table);
        embedding.embeddingForward(out, ids, table);
    }

    @Override
    public synchronized void embeddingBackward(Tensor dtable, Tensor dout, Tensor ids) {
        CudaChecks.embeddingBackward(dtable, dout, ids);
        embedding.embeddingBackward(dtable, dout, ids);
    }

    @Override
    public synchronized void gatherRowsForward(Tensor out, Tensor x, Tensor index) {
        CudaChecks.gatherRows("gatherRowsForward", "x", x, "out", out, index);
        embedding.gatherRowsForward(out, x, index);
    }

    @Override
    public synchronized void gatherRowsBackward(Tensor dx, Tensor dout, Tensor index) {
        CudaChecks.gatherRows("gatherRowsBackward", "dx", dx, "dout", dout, index);
        embedding.gatherRowsBackward(dx, dout, index);
    }

    /**
     * out (N, M) F32 = scale * normalize(a (N, D)) @ normalize(b (M, D))^T (or without the normalization); a and b
     * F32, BF16 or F16 (one dtype), products accumulated in F32. Not in {@link Backend} yet: issue 19 wires it in.
     */
    public synchronized void similarityForward(Tensor out, Tensor a, Tensor b, float scale, boolean normalize) {
        CudaChecks.similarityForward(out, a, b);
        similarity.similarity(out, a, b, scale, normalize);
    }

    @Override
    public synchronized float contrastiveLoss(Tensor img, Tensor txt, Tensor logitScale, Tensor dImg, Tensor dTxt, Tensor dLogitScale,
                                              float gradScale) {
        CudaChecks.contrastiveLoss(img, txt, logitScale, dImg, dTxt, dLogitScale);
        return contrastive.contrastiveLoss(img, txt, logitScale, dImg, dTxt, dLogitScale, gradScale);
    }

    @Override
    public synchronized void adamwUpdate(Tensor param, Tensor grad, Tensor m, Tensor v, float lr, float beta1, float beta2, float eps,
                                         float weightDecay, int step, float gradScale) {
        CudaChecks.adamwUpdate(param, grad, m, v, step);
        adamw.adamwUpdate(param, grad, m, v, lr, beta1, beta2, eps, weightDecay, step, gradScale);
    }

    @Override
    public synchronized double sumOfSquares(Tensor t) {
        CudaChecks.f32("sumOfSquares", "t", t);
        return reduce.sumOfSquares(t);
    }

    @Override
    public synchronized boolean hasNonFinite(Tensor t) {
        CudaChecks.f32("hasNonFinite", "t", t);
        return reduce.hasNonFinite(t);
    }
}
