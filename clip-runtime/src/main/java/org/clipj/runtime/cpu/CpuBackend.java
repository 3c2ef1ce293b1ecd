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
import org.clipj.runtime.Tensor;

/**
 * The CPU backend: every op of {@link Backend} on Java arrays. Two paths per op, chosen once per
 * instance: the Vector API fast path (parallel on its own {@link ComputePool}) and a plain serial
 * scalar reference ({@code -Dclip.cpu.vector=false}, or {@code new CpuBackend(threads, false)})
 * that tests use as the oracle. Arguments are checked here; the op-family classes trust them.
 */
public final class CpuBackend implements Backend {
    private static final AtomicInteger POOL_ID = new AtomicInteger();
    private static final String VECTOR_MODULE = "jdk.incubator.vector";

    private final int threads;
    private final boolean vector;
    private final ComputePool pool;
    // prepareWeight's views -> their packed GEMM panels; an entry goes when its view is unreachable
    private final Map<Tensor, PreparedWeight> preparedWeights = Collections.synchronizedMap(new WeakHashMap<>());
    private final Bf16LinearOps bf16 = new Bf16LinearOps();   // linear layers with BF16 weights (native kernel)

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
        Check.cpu("upload", "host", host);
        return host;
    }

    @Override
    public Tensor download(Tensor t) {
        Check.cpu("download", "t", t);
        return t;
    }

    @Override
    public void copy(Tensor dst, Tensor src) {
        Check.cpu("copy", "dst", dst);
        Check.cpu("copy", "src", src);
        if (dst.dtype() != src.dtype() || dst.numel() != src.numel()) {
            throw new IllegalArgumentException("copy: dst " + dst.shapeString() + " " + dst.dtype() + " and src "
                    + src.shapeString() + " " + src.dtype() + " must have the same dtype and number of elements");
        }
        ElementwiseOps.copy(dst, src);
    }

    @Override
    public void fill(Tensor t, float value) {
        Check.cpu("fill", "t", t);
        ElementwiseOps.fill(t, value);
    }

    @Override
    public void cast(Tensor dst, Tensor src) {
        Check.cpu("cast", "dst", dst);
        Check.cpu("cast", "src", src);
        if (!dst.dtype().isFloatingPoint() || !src.dtype().isFloatingPoint() || dst.numel() != src.numel()) {
            throw new IllegalArgumentException("cast: dst " + dst.shapeString() + " " + dst.dtype() + " and src "
                    + src.shapeString() + " " + src.dtype() + " must be floating and have the same number of elements");
        }
        if (vector) ElementwiseOps.castParallel(dst, src, pool);
        else ElementwiseOps.castScalar(dst, src);
    }

    // ---------------------------------------------------------------- GEMM

    @Override
    public void matmul(Tensor c, Tensor a, boolean transA, Tensor b, boolean transB, float alpha, float beta) {
        String op = "matmul";
        Check.f32(op, "c", c);
        Check.f32(op, "a", a);
        Check.f32(op, "b", b);
        int r = c.rank();
        boolean ok = (r == 2 || r == 3) && a.rank() == r && b.rank() == r && (r == 2 || (a.dim(0) == c.dim(0) && b.dim(0) == c.dim(0)));
        if (ok) {
            int m = c.dim(-2), n = c.dim(-1);
            int am = transA ? a.dim(-1) : a.dim(-2), k = transA ? a.dim(-2) : a.dim(-1);
            int bk = transB ? b.dim(-1) : b.dim(-2), bn = transB ? b.dim(-2) : b.dim(-1);
            ok = am == m && bk == k && bn == n;
        }
        if (!ok) {
            throw new IllegalArgumentException("matmul: c " + c.shapeString() + " != op(a " + a.shapeString() + (transA ? "^T" : "")
                    + ") @ op(b " + b.shapeString() + (transB ? "^T" : "") + ")");
        }
        MatmulOps.matmul(pool, vector, c, a, transA, b, transB, alpha, beta);
    }

    @Override
    public void linearForward(Tensor out, Tensor x, Tensor w, Tensor bias) {
        checkLinear("linearForward", out, x, w, bias);
        if (w.dtype() == DType.BF16) bf16.forward(pool, vector, out, x, w, bias, null, null);
        else MatmulOps.linearForward(pool, vector, out, x, w, packed(w), bias, null, null);
    }

    @Override
    public void linearActivationForward(Tensor out, Tensor x, Tensor w, Tensor bias, Activation activation) {
        String op = "linearActivationForward";
        checkLinear(op, out, x, w, bias);
        Check.argument(op, activation != null, "activation is null");
        Check.disjoint(op, "out", out, "x", x);
        if (w.dtype() == DType.BF16) bf16.forward(pool, vector, out, x, w, bias, activation, null);
        else MatmulOps.linearForward(pool, vector, out, x, w, packed(w), bias, activation, null);
    }

    @Override
    public void linearResidualForward(Tensor out, Tensor x, Tensor w, Tensor bias, Tensor residual) {
        String op = "linearResidualForward";
        checkLinear(op, out, x, w, bias);
        Check.sameShape(op, "residual", residual, "out", out);
        Check.disjoint(op, "out", out, "x", x);
        Check.disjoint(op, "out", out, "residual", residual);
        if (w.dtype() == DType.BF16) bf16.forward(pool, vector, out, x, w, bias, null, residual);
        else MatmulOps.linearForward(pool, vector, out, x, w, packed(w), bias, null, residual);
    }

    /** out = x @ w^T (+ bias): shapes and dtypes, as every linear op needs them (w F32, or BF16 from prepareWeight). */
    private static void checkLinear(String op, Tensor out, Tensor x, Tensor w, Tensor bias) {
        Check.cpu(op, "w", w);
        Check.argument(op, (w.dtype() == DType.F32 || w.dtype() == DType.BF16) && w.rank() == 2,
                "w must be an F32 or BF16 matrix (O, I), got " + w.dtype() + " " + w.shapeString());
        Check.f32(op, "x", x);
        Check.argument(op, x.rank() >= 1 && x.dim(-1) == w.dim(1), "x " + x.shapeString() + " does not end in w's input size, w " + w.shapeString());
        int[] expected = x.shape();
        expected[expected.length - 1] = w.dim(0);
        Check.shape(op, "out", out, "x @ w^T for w", w, expected);
        if (bias != null) Check.shape(op, "bias", bias, "w", w, w.dim(0));
    }

    /**
     * Vector path: a new view of w (its identity is the key) whose GEMM panels are packed on its
     * first use; linearForward and patchEmbedForward on that view then skip packing. The scalar
     * reference returns w. A BF16 linear weight (O, I) is packed now for the native BF16 kernel
     * ({@link Bf16Gemm}: an InvalidInputException says why when this machine cannot run it).
     */
    @Override
    public Tensor prepareWeight(Tensor w) {
        String op = "prepareWeight";
        if (w != null && w.dtype() == DType.BF16) return bf16.prepare(w, vector);
        Check.f32(op, "w", w);
        Check.argument(op, w.rank() == 2 || w.rank() == 4, "w " + w.shapeString() + " is neither (O, I) nor (O, Ci, p, p)");
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
        String op = "linearBackward";
        Check.rank(op, "w", w, 2);
        Check.f32(op, "x", x);
        Check.f32(op, "dout", dout);
        Check.argument(op, x.rank() >= 1 && x.dim(-1) == w.dim(1), "x " + x.shapeString() + " does not end in w's input size, w " + w.shapeString());
        int[] expected = x.shape();
        expected[expected.length - 1] = w.dim(0);
        Check.shape(op, "dout", dout, "x @ w^T for w", w, expected);
        if (dx != null) Check.sameShape(op, "dx", dx, "x", x);
        if (dw != null) Check.sameShape(op, "dw", dw, "w", w);
        if (dbias != null) Check.shape(op, "dbias", dbias, "w", w, w.dim(0));
        MatmulOps.linearBackward(pool, vector, dx, dw, dbias, dout, x, w);
    }

    // ---------------------------------------------------------------- elementwise

    @Override
    public void add(Tensor out, Tensor a, Tensor b) {
        Check.sameShape("add", "a", a, "b", b);
        Check.sameShape("add", "out", out, "a", a);
        if (vector) ElementwiseOps.addVector(out, a, b, pool);
        else ElementwiseOps.addScalar(out, a, b);
    }

    @Override
    public void addScaled(Tensor dst, Tensor src, float alpha) {
        Check.sameNumel("addScaled", "dst", dst, "src", src);
        if (vector) ElementwiseOps.addScaledVector(dst, src, alpha, pool);
        else ElementwiseOps.addScaledScalar(dst, src, alpha);
    }

    @Override
    public void scale(Tensor t, float s) {
        Check.f32("scale", "t", t);
        if (vector) ElementwiseOps.scaleVector(t, s, pool);
        else ElementwiseOps.scaleScalar(t, s);
    }

    @Override
    public void broadcastAdd(Tensor out, Tensor x, Tensor b) {
        String op = "broadcastAdd";
        Check.sameShape(op, "out", out, "x", x);
        checkTrailing(op, x, "x", b, "b");
        if (vector) ElementwiseOps.broadcastAddVector(out, x, b, pool);
        else ElementwiseOps.broadcastAddScalar(out, x, b);
    }

    @Override
    public void broadcastAddBackward(Tensor db, Tensor dout) {
        String op = "broadcastAddBackward";
        Check.f32(op, "dout", dout);
        checkTrailing(op, dout, "dout", db, "db");
        if (vector) ElementwiseOps.broadcastAddBackwardVector(db, dout, pool);
        else ElementwiseOps.broadcastAddBackwardScalar(db, dout);
    }

    /** b's shape equals the trailing dims of x (no other broadcasting). */
    private static void checkTrailing(String op, Tensor x, String xName, Tensor b, String bName) {
        Check.f32(op, bName, b);
        boolean ok = b.rank() <= x.rank();
        for (int i = 1; ok && i <= b.rank(); i++) ok = b.dim(-i) == x.dim(-i);
        if (!ok) {
            throw new IllegalArgumentException(op + ": " + bName + " " + b.shapeString() + " must equal the trailing dims of "
                    + xName + " " + x.shapeString());
        }
    }

    @Override
    public void quickGeluForward(Tensor out, Tensor x) {
        Check.sameShape("quickGeluForward", "out", out, "x", x);
        if (vector) ElementwiseOps.quickGeluForwardVector(out, x, pool);
        else ElementwiseOps.quickGeluForwardScalar(out, x);
    }

    @Override
    public void quickGeluBackward(Tensor dx, Tensor dout, Tensor x) {
        Check.sameShape("quickGeluBackward", "dx", dx, "x", x);
        Check.sameShape("quickGeluBackward", "dout", dout, "x", x);
        if (vector) ElementwiseOps.quickGeluBackwardVector(dx, dout, x, pool);
        else ElementwiseOps.quickGeluBackwardScalar(dx, dout, x);
    }

    @Override
    public void geluForward(Tensor out, Tensor x) {
        Check.sameShape("geluForward", "out", out, "x", x);
        if (vector) ElementwiseOps.geluForwardVector(out, x, pool);
        else ElementwiseOps.geluForwardScalar(out, x);
    }

    @Override
    public void geluBackward(Tensor dx, Tensor dout, Tensor x) {
        Check.sameShape("geluBackward", "dx", dx, "x", x);
        Check.sameShape("geluBackward", "dout", dout, "x", x);
        if (vector) ElementwiseOps.geluBackwardVector(dx, dout, x, pool);
        else ElementwiseOps.geluBackwardScalar(dx, dout, x);
    }

    @Override
    public void channelScaleForward(Tensor out, Tensor x, Tensor gamma) {
        Check.sameShape("channelScaleForward", "out", out, "x", x);
        Check.rank("channelScaleForward", "gamma", gamma, 1);
        checkTrailing("channelScaleForward", x, "x", gamma, "gamma");
        if (vector) ElementwiseOps.channelScaleForwardVector(out, x, gamma, pool);
        else ElementwiseOps.channelScaleForwardScalar(out, x, gamma);
    }

    @Override
    public void channelScaleBackward(Tensor dx, Tensor dgamma, Tensor dout, Tensor x, Tensor gamma) {
        String op = "channelScaleBackward";
        Check.rank(op, "gamma", gamma, 1);
        checkTrailing(op, x, "x", gamma, "gamma");
        Check.sameShape(op, "dout", dout, "x", x);
        if (dx != null) Check.sameShape(op, "dx", dx, "x", x);
        if (dgamma != null) Check.sameShape(op, "dgamma", dgamma, "gamma", gamma);
        if (vector) ElementwiseOps.channelScaleBackwardVector(dx, dgamma, dout, x, gamma, pool);
        else ElementwiseOps.channelScaleBackwardScalar(dx, dgamma, dout, x, gamma);
    }

    @Override
    public void reluForward(Tensor out, Tensor x) {
        Check.sameShape("reluForward", "out", out, "x", x);
        if (vector) ElementwiseOps.reluForwardVector(out, x, pool);
        else ElementwiseOps.reluForwardScalar(out, x);
    }

    @Override
    public void reluBackward(Tensor dx, Tensor dout, Tensor out) {
        Check.sameShape("reluBackward", "dx", dx, "out", out);
        Check.sameShape("reluBackward", "dout", dout, "out", out);
        if (vector) ElementwiseOps.reluBackwardVector(dx, dout, out, pool);
        else ElementwiseOps.reluBackwardScalar(dx, dout, out);
    }

    @Override
    public void softmaxForward(Tensor out, Tensor x) {
        Check.sameShape("softmaxForward", "out", out, "x", x);
        Check.argument("softmaxForward", x.rank() >= 1, "x must have at least one dimension, got " + x.shapeString());
        if (vector) ElementwiseOps.softmaxVector(out, x, pool);
        else ElementwiseOps.softmaxScalar(out, x);
    }

    // ---------------------------------------------------------------- normalization

    @Override
    public void layerNormForward(Tensor out, Tensor mean, Tensor rstd, Tensor x, Tensor w, Tensor b, float eps) {
        String op = "layerNormForward";
        Check.sameShape(op, "out", out, "x", x);
        Check.argument(op, x.rank() >= 1, "x must have at least one dimension, got " + x.shapeString());
        int c = x.dim(-1), rows = Check.rows(x);
        Check.shape(op, "w", w, "x", x, c);
        Check.shape(op, "b", b, "x", x, c);
        if (mean != null) Check.shape(op, "mean", mean, "x (N, C)", x, rows);
        if (rstd != null) Check.shape(op, "rstd", rstd, "x (N, C)", x, rows);
        if (vector) LayerNormOps.forwardVector(out, mean, rstd, x, w, b, eps, pool);
        else LayerNormOps.forwardScalar(out, mean, rstd, x, w, b, eps);
    }

    @Override
    public void layerNormBackward(Tensor dx, Tensor dw, Tensor db, Tensor dout, Tensor x, Tensor w, Tensor mean, Tensor rstd) {
        String op = "layerNormBackward";
        Check.sameShape(op, "dout", dout, "x", x);
        Check.argument(op, x.rank() >= 1, "x must have at least one dimension, got " + x.shapeString());
        int c = x.dim(-1), rows = Check.rows(x);
        Check.shape(op, "w", w, "x", x, c);
        Check.shape(op, "mean", mean, "x (N, C)", x, rows);
        Check.shape(op, "rstd", rstd, "x (N, C)", x, rows);
        if (dx != null) Check.sameShape(op, "dx", dx, "x", x);
        if (dw != null) Check.shape(op, "dw", dw, "x", x, c);
        if (db != null) Check.shape(op, "db", db, "x", x, c);
        if (vector) LayerNormOps.backwardVector(dx, dw, db, dout, x, w, mean, rstd, pool);
        else LayerNormOps.backwardScalar(dx, dw, db, dout, x, w, mean, rstd);
    }

    @Override
    public void batchNormForward(Tensor out, Tensor x, Tensor gamma, Tensor beta, Tensor runningMean, Tensor runningVar,
                                 Tensor saveMean, Tensor saveRstd, boolean train, float momentum, float eps) {
        String op = "batchNormForward";
        Check.rank(op, "x", x, 4);
        Check.sameShape(op, "out", out, "x", x);
        int c = x.dim(1);
        Check.shape(op, "gamma", gamma, "x (B, C, H, W)", x, c);
        Check.shape(op, "beta", beta, "x (B, C, H, W)", x, c);
        Check.shape(op, "runningMean", runningMean, "x (B, C, H, W)", x, c);
        Check.shape(op, "runningVar", runningVar, "x (B, C, H, W)", x, c);
        if (saveMean != null) Check.shape(op, "saveMean", saveMean, "x (B, C, H, W)", x, c);
        if (saveRstd != null) Check.shape(op, "saveRstd", saveRstd, "x (B, C, H, W)", x, c);
        NormOps.batchNormForward(pool, vector, out, x, gamma, beta, runningMean, runningVar, saveMean, saveRstd, train,
                momentum, eps);
    }

    @Override
    public void batchNormBackward(Tensor dx, Tensor dgamma, Tensor dbeta, Tensor dout, Tensor x, Tensor gamma,
                                  Tensor saveMean, Tensor saveRstd) {
        String op = "batchNormBackward";
        Check.rank(op, "x", x, 4);
        Check.sameShape(op, "dout", dout, "x", x);
        int c = x.dim(1);
        Check.shape(op, "gamma", gamma, "x (B, C, H, W)", x, c);
        Check.shape(op, "saveMean", saveMean, "x (B, C, H, W)", x, c);
        Check.shape(op, "saveRstd", saveRstd, "x (B, C, H, W)", x, c);
        if (dx != null) Check.sameShape(op, "dx", dx, "x", x);
        if (dgamma != null) Check.shape(op, "dgamma", dgamma, "x (B, C, H, W)", x, c);
        if (dbeta != null) Check.shape(op, "dbeta", dbeta, "x (B, C, H, W)", x, c);
        NormOps.batchNormBackward(pool, vector, dx, dgamma, dbeta, dout, x, gamma, saveMean, saveRstd);
    }

    @Override
    public void l2NormalizeForward(Tensor out, Tensor norms, Tensor x) {
        String op = "l2NormalizeForward";
        Check.rank(op, "x", x, 2);
        Check.sameShape(op, "out", out, "x", x);
        if (norms != null) Check.shape(op, "norms", norms, "x (N, D)", x, x.dim(0));
        NormOps.l2NormalizeForward(pool, vector, out, norms, x);
    }

    @Override
    public void l2NormalizeBackward(Tensor dx, Tensor dout, Tensor out, Tensor norms) {
        String op = "l2NormalizeBackward";
        Check.rank(op, "out", out, 2);
        Check.sameShape(op, "dx", dx, "out", out);
        Check.sameShape(op, "dout", dout, "out", out);
        Check.shape(op, "norms", norms, "out (N, D)", out, out.dim(0));
        NormOps.l2NormalizeBackward(pool, vector, dx, dout, out, norms);
    }

    // ---------------------------------------------------------------- convolution and pooling

    private static void checkConv(String op, Tensor x, Tensor w, Tensor bias, Tensor out, String outName, int stride, int padding) {
        Check.rank(op, "x", x, 4);
        Check.rank(op, "w", w, 4);
        Check.argument(op, stride >= 1 && padding >= 0, "stride " + stride + " and padding " + padding + " must be >= 1 and >= 0");
        Check.argument(op, w.dim(1) == x.dim(1) && w.dim(2) == w.dim(3),
                "w " + w.shapeString() + " must be (Co, Ci, K, K) with Ci of x " + x.shapeString());
        int k = w.dim(2);
        Check.argument(op, x.dim(2) + 2 * padding >= k && x.dim(3) + 2 * padding >= k,
                "kernel " + k + " larger than padded input x " + x.shapeString());
        int ho = ConvOps.outSize(x.dim(2), k, stride, padding), wo = ConvOps.outSize(x.dim(3), k, stride, padding);
        Check.shape(op, outName, out, "conv of x " + x.shapeString() + " with w", w, x.dim(0), w.dim(0), ho, wo);
        if (bias != null) Check.shape(op, "bias", bias, "w", w, w.dim(0));
    }

    @Override
    public void conv2dForward(Tensor out, Tensor x, Tensor w, Tensor bias, int stride, int padding) {
        checkConv("conv2dForward", x, w, bias, out, "out", stride, padding);
        if (vector) ConvOps.conv2dForwardVector(out, x, w, bias, stride, padding, pool);
        else ConvOps.conv2dForwardScalar(out, x, w, bias, stride, padding);
    }

    @Override
    public void conv2dBackward(Tensor dx, Tensor dw, Tensor dbias, Tensor dout, Tensor x, Tensor w, int stride, int padding) {
        String op = "conv2dBackward";
        checkConv(op, x, w, dbias, dout, "dout", stride, padding);
        if (dx != null) Check.sameShape(op, "dx", dx, "x", x);
        if (dw != null) Check.sameShape(op, "dw", dw, "w", w);
        if (vector) ConvOps.conv2dBackwardVector(dx, dw, dbias, dout, x, w, stride, padding, pool);
        else ConvOps.conv2dBackwardScalar(dx, dw, dbias, dout, x, w, stride, padding);
    }

    private static void checkPatch(String op, Tensor x, Tensor w, Tensor out, String outName) {
        Check.rank(op, "x", x, 4);
        Check.rank(op, "w", w, 4);
        int p = w.dim(2);
        Check.argument(op, w.dim(1) == x.dim(1) && w.dim(3) == p && p >= 1 && x.dim(2) % p == 0 && x.dim(3) % p == 0,
                "w " + w.shapeString() + " must be (C, Ci, p, p) with Ci of x " + x.shapeString() + " and p dividing H and W");
        Check.shape(op, outName, out, "patches of x " + x.shapeString() + " with w", w,
                x.dim(0), (x.dim(2) / p) * (x.dim(3) / p), w.dim(0));
    }

    @Override
    public void patchEmbedForward(Tensor out, Tensor x, Tensor w) {
        checkPatch("patchEmbedForward", x, w, out, "out");
        if (vector) ConvOps.patchEmbedForwardVector(out, x, w, packed(w), pool);
        else ConvOps.patchEmbedForwardScalar(out, x, w);
    }

    @Override
    public void patchEmbedBackward(Tensor dx, Tensor dw, Tensor dout, Tensor x, Tensor w) {
        String op = "patchEmbedBackward";
        checkPatch(op, x, w, dout, "dout");
        if (dx != null) Check.sameShape(op, "dx", dx, "x", x);
        if (dw != null) Check.sameShape(op, "dw", dw, "w", w);
        if (vector) ConvOps.patchEmbedBackwardVector(dx, dw, dout, x, w, pool);
        else ConvOps.patchEmbedBackwardScalar(dx, dw, dout, x, w);
    }

    private static void checkPool(String op, Tensor x, String xName, Tensor out, String outName, int k) {
        Check.rank(op, xName, x, 4);
        Check.argument(op, k >= 1 && x.dim(2) % k == 0 && x.dim(3) % k == 0,
                "window " + k + " must divide H and W of " + xName + " " + x.shapeString());
        Check.shape(op, outName, out, xName, x, x.dim(0), x.dim(1), x.dim(2) / k, x.dim(3) / k);
    }

    @Override
    public void avgPool2dForward(Tensor out, Tensor x, int k) {
        checkPool("avgPool2dForward", x, "x", out, "out", k);
        ConvOps.avgPool2dForward(vector ? pool : null, out, x, k);
    }

    @Override
    public void avgPool2dBackward(Tensor dx, Tensor dout, int k) {
        checkPool("avgPool2dBackward", dx, "dx", dout, "dout", k);
        ConvOps.avgPool2dBackward(vector ? pool : null, dx, dout, k);
    }

    @Override
    public void transpose(Tensor out, Tensor x, boolean accumulate) {
        String op = "transpose";
        Check.f32(op, "x", x);
        Check.argument(op, x.rank() == 3 || x.rank() == 2, "x must be (B, M, N) or (M, N), got " + x.shapeString());
        int[] expected = x.shape();
        expected[expected.length - 1] = x.dim(-2);
        expected[expected.length - 2] = x.dim(-1);
        Check.shape(op, "out", out, "x", x, expected);
        ConvOps.transpose(vector ? pool : null, out, x, accumulate);
    }

    // ---------------------------------------------------------------- attention

    private static int checkAttention(String op, Tensor qkv, Tensor lse, int heads) {
        Check.rank(op, "qkv", qkv, 3);
        Check.argument(op, heads >= 1 && qkv.dim(2) % (3 * heads) == 0,
                "qkv " + qkv.shapeString() + " last dim must be 3 * heads * headDim with heads = " + heads);
        if (lse != null) Check.shape(op, "lse", lse, "qkv (B, T, 3C)", qkv, qkv.dim(0), heads, qkv.dim(1));
        return qkv.dim(2) / 3;
    }

    @Override
    public void attentionForward(Tensor out, Tensor lse, Tensor qkv, int heads, boolean causal) {
        String op = "attentionForward";
        int c = checkAttention(op, qkv, lse, heads);
        Check.shape(op, "out", out, "qkv (B, T, 3C)", qkv, qkv.dim(0), qkv.dim(1), c);
        if (vector) AttentionOps.forwardBlocked(pool, out, lse, qkv, heads, causal);
        else AttentionOps.forwardScalar(out, lse, qkv, heads, causal);
    }

    @Override
    public void attentionBackward(Tensor dqkv, Tensor dout, Tensor qkv, Tensor out, Tensor lse, int heads, boolean causal) {
        String op = "attentionBackward";
        int c = checkAttention(op, qkv, lse, heads);
        Check.argument(op, lse != null, "lse from the forward is required");
        Check.sameShape(op, "dqkv", dqkv, "qkv", qkv);
        Check.shape(op, "out", out, "qkv (B, T, 3C)", qkv, qkv.dim(0), qkv.dim(1), c);
        Check.sameShape(op, "dout", dout, "out", out);
        if (vector) AttentionOps.backwardBlocked(pool, dqkv, dout, qkv, out, lse, heads, causal);
        else AttentionOps.backwardScalar(dqkv, dout, qkv, out, lse, heads, causal);
    }

    private static void checkPoolAttention(String op, Tensor q, Tensor k, Tensor v, Tensor lse, int heads) {
        Check.rank(op, "k", k, 3);
        Check.sameShape(op, "v", v, "k", k);
        Check.argument(op, heads >= 1 && k.dim(2) % heads == 0, "k " + k.shapeString() + " channels not divisible by heads = " + heads);
        Check.shape(op, "q", q, "k (B, L, C)", k, k.dim(0), k.dim(2));
        if (lse != null) Check.shape(op, "lse", lse, "k (B, L, C)", k, k.dim(0), heads);
    }

    @Override
    public void attentionPoolForward(Tensor out, Tensor lse, Tensor q, Tensor k, Tensor v, int heads) {
        String op = "attentionPoolForward";
        checkPoolAttention(op, q, k, v, lse, heads);
        Check.sameShape(op, "out", out, "q", q);
        AttentionOps.poolForward(vector ? pool : null, vector, out, lse, q, k, v, heads);
    }

    @Override
    public void attentionPoolBackward(Tensor dq, Tensor dk, Tensor dv, Tensor dout, Tensor q, Tensor k, Tensor v,
                                      Tensor out, Tensor lse, int heads) {
        String op = "attentionPoolBackward";
        checkPoolAttention(op, q, k, v, lse, heads);
        Check.argument(op, lse != null, "lse from the forward is required");
        Check.sameShape(op, "out", out, "q", q);
        Check.sameShape(op, "dout", dout, "q", q);
        if (dq != null) Check.sameShape(op, "dq", dq, "q", q);
        if (dk != null) Check.sameShape(op, "dk", dk, "k", k);
        if (dv != null) Check.sameShape(op, "dv", dv, "v", v);
        AttentionOps.poolBackward(vector ? pool : null, vector, dq, dk, dv, dout, q, k, v, out, lse, heads);
    }

    // ---------------------------------------------------------------- gathers

    private static void checkEmbedding(String op, Tensor rows, String rowsName, Tensor ids, Tensor table, String tableName) {
        Check.i32(op, "ids", ids);
        Check.rank(op, tableName, table, 2);
        int[] expected = new int[ids.rank() + 1];
        System.arraycopy(ids.shape(), 0, expected, 0, ids.rank());
        expected[ids.rank()] = table.dim(1);
        Check.shape(op, rowsName, rows, "ids " + ids.shapeString() + " and " + tableName, table, expected);
        GatherOps.checkIds(op, ids, table.dim(0));
    }

    @Override
    public void embeddingForward(Tensor out, Tensor ids, Tensor table) {
        checkEmbedding("embeddingForward", out, "out", ids, table, "table");
        GatherOps.embeddingForward(vector ? pool : null, out, ids, table);
    }

    @Override
    public void embeddingBackward(Tensor dtable, Tensor dout, Tensor ids) {
        checkEmbedding("embeddingBackward", dout, "dout", ids, dtable, "dtable");
        if (vector) GatherOps.embeddingBackwardVector(dtable, dout, ids, pool);
        else GatherOps.embeddingBackwardScalar(dtable, dout, ids);
    }

    private static void checkGather(String op, Tensor x, String xName, Tensor rows, String rowsName, Tensor index) {
        Check.rank(op, xName, x, 3);
        Check.i32(op, "index", index);
        Check.argument(op, index.rank() == 1 && index.dim(0) == x.dim(0),
                "index " + index.shapeString() + " must be (B) for " + xName + " " + x.shapeString());
        Check.shape(op, rowsName, rows, xName + " (B, T, C)", x, x.dim(0), x.dim(2));
        GatherOps.checkIds(op, index, x.dim(1));
    }

    @Override
    public void gatherRowsForward(Tensor out, Tensor x, Tensor index) {
        checkGather("gatherRowsForward", x, "x", out, "out", index);
        GatherOps.gatherRowsForward(out, x, index);
    }

    @Override
    public void gatherRowsBackward(Tensor dx, Tensor dout, Tensor index) {
        checkGather("gatherRowsBackward", dx, "dx", dout, "dout", index);
        GatherOps.gatherRowsBackward(vector, dx, dout, index);
    }

    // ---------------------------------------------------------------- objective

    @Override
    public float contrastiveLoss(Tensor img, Tensor txt, Tensor logitScale, Tensor dImg, Tensor dTxt, Tensor dLogitScale,
                                 float gradScale) {
        String op = "contrastiveLoss";
        Check.rank(op, "img", img, 2);
        Check.sameShape(op, "txt", txt, "img", img);
        Check.argument(op, img.dim(0) >= 1, "img " + img.shapeString() + " has no rows");
        Check.f32(op, "logitScale", logitScale);
        Check.argument(op, logitScale.numel() == 1 && logitScale.rank() == 1,
                "logitScale must have shape [1], got " + logitScale.shapeString());
        if (dImg != null) Check.sameShape(op, "dImg", dImg, "img", img);
        if (dTxt != null) Check.sameShape(op, "dTxt", dTxt, "txt", txt);
        if (dLogitScale != null) Check.shape(op, "dLogitScale", dLogitScale, "logitScale", logitScale, 1);
        return vector
                ? ContrastiveOps.lossTiled(img, txt, logitScale, dImg, dTxt, dLogitScale, gradScale, pool)
                : ContrastiveOps.lossScalar(img, txt, logitScale, dImg, dTxt, dLogitScale, gradScale);
    }

    // ---------------------------------------------------------------- optimizer and reductions

    @Override
    public void adamwUpdate(Tensor param, Tensor grad, Tensor m, Tensor v, float lr, float beta1, float beta2, float eps,
                            float weightDecay, int step, float gradScale) {
        String op = "adamwUpdate";
        Check.sameNumel(op, "grad", grad, "param", param);
        Check.sameNumel(op, "m", m, "param", param);
        Check.sameNumel(op, "v", v, "param", param);
        Check.argument(op, step >= 1, "step is 1-based, got " + step);
        if (vector) OptimizerOps.adamwVector(param, grad, m, v, lr, beta1, beta2, eps, weightDecay, step, gradScale, pool);
        else OptimizerOps.adamwScalar(param, grad, m, v, lr, beta1, beta2, eps, weightDecay, step, gradScale);
    }

    @Override
    public double sumOfSquares(Tensor t) {
        checkFloating("sumOfSquares", t);
        return vector ? OptimizerOps.sumOfSquaresVector(t, pool) : OptimizerOps.sumOfSquaresScalar(t);
    }

    @Override
    public boolean hasNonFinite(Tensor t) {
        checkFloating("hasNonFinite", t);
        return vector ? OptimizerOps.hasNonFiniteVector(t, pool) : OptimizerOps.hasNonFiniteScalar(t);
    }

    private static void checkFloating(String op, Tensor t) {
        Check.cpu(op, "t", t);
        if (!t.dtype().isFloatingPoint()) {
            throw new IllegalArgumentException(op + ": t must be floating, got " + t.dtype() + " " + t.shapeString());
        }
    }
}
