package org.clipj.runtime.cuda;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.file.Path;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;

import org.clipj.cuda.Blas;
import org.clipj.cuda.CudaDriver;
import org.clipj.cuda.CudaDrivers;
import org.clipj.cuda.CudaException;
import org.clipj.cuda.KernelArgs;
import org.clipj.cuda.SimCudaDriver;
import org.clipj.kernels.Kernels;
import org.clipj.runtime.Activation;
import org.clipj.runtime.Backend;
import org.clipj.runtime.DType;
import org.clipj.runtime.Device;
import org.clipj.runtime.InvalidInputException;
import org.clipj.runtime.Tensor;

/**
 * The CUDA backend: the kernels of kernels/src (one Java wrapper per kernel, same name in camelCase),
 * GEMMs through {@link Blas} (cuBLASLt; a plain C GEMM on the simulator), one stream per backend,
 * a caching device allocator, pinned staging buffers for upload/download, and CUDA-graph capture
 * and replay for fixed-shape inference ({@link #capture}).
 *
 * <p>Every op is asynchronous on the backend's stream; {@link #synchronize}, {@link #download},
 * {@link #contrastiveLoss}, {@link #sumOfSquares} and {@link #hasNonFinite} are the sync points.
 * Every op of {@link Backend} is implemented, forward and backward (F32; attention also takes
 * BF16/F16 inputs, {@link #similarityForward} is the mixed-precision similarity matrix, and the forwards
 * {@link #linearForward}, {@link #conv2dForward} and {@link #patchEmbedForward} take BF16/F16 weights for
 * mixed-precision inference: the F32 input is cast to the weight's type, the GEMM accumulates in F32 and
 * writes F32 (+ F32 bias)). Attention
 * takes any head dim up to 128 (every CLIP model: 64, and 80/88/104/112 for open_clip's ViT-H/g/bigG/e);
 * a wider one is an {@link IllegalArgumentException} naming the op and the width.
 *
 * <p>Debug mode: with {@code -Dclip.cuda.sync=true} the backend synchronizes after every kernel launch and
 * GEMM, so an asynchronous fault is reported under the op that caused it, not at the next sync point.
 *
 * <p>Thread-safe as {@link Backend} requires: the ops are synchronized on the backend (they only
 * enqueue work, so the lock is held briefly except at the sync points), the driver binds its context
 * to each calling thread, and all work runs in order on the one stream.
 */
public final class CudaBackend implements Backend {
    private static final int ELEMENTWISE_THREADS = 256;
    private static final int ELEMENTWISE_MAX_BLOCKS = 4096;
    private static final int ROW_THREADS = 128; // 4 warps: one row per warp
    private static final int ATTENTION_ROWS = 16;     // query rows per block, SIMT kernels
    private static final int ATTENTION_MMA_ROWS = 64; // query rows per block, tensor-core kernel
    private static final int ATTENTION_MAX_HEAD_DIM = 128;
    private static final int ATTENTION_STREAM_TILE = 64;
    private static final int REDUCE_BLOCKS = 256;

    private final CudaDriver driver;
    private final Blas blas;
    private final long stream;
    private final long module;
    private final Map<String, CudaDriver.Function> functions = new HashMap<>();
    private final DeviceAllocator allocator;
    private final KernelArgs args = new KernelArgs(16);
    private final String description;
    private final int maxDynamicShared;
    private final DeviceAllocator.Block scratchFlag; // 8 bytes: error flags of gathers, nonfinite check
    private MemorySegment staging;                  // pinned host buffer for upload/download
    private boolean capturing;
    private List<DeviceAllocator.Block> captureBlocks; // allocated while capturing: owned by the graph
    private Map<DeviceAllocator.Block, Long> captureUsable; // of those, the most bytes any use in the capture asked
    private Map<Long, ArrayDeque<DeviceAllocator.Block>> captureIdle; // released in the capture, by size class
    private final Map<String, Integer> sharedLimits = new HashMap<>(); // dynamic shared memory opted into, per kernel
    private final boolean syncEveryLaunch; // clip.cuda.sync: debug mode, a fault names its kernel
    private boolean closed;

    private CudaBackend(CudaDriver driver, Blas blas, byte[] image, String description) {
        this.driver = driver;
        this.blas = blas;
        this.description = description;
        this.stream = driver.streamCreate();
        this.module = driver.moduleLoadData(image);
        this.maxDynamicShared = driver.device().maxSharedPerBlockOptin();
        this.allocator = new DeviceAllocator(bytes -> driver.memAlloc(bytes, "CudaBackend allocation"), driver::memFree,
                driver::memUsable, driver.device().totalMemoryBytes());
        this.scratchFlag = allocator.allocate(8, () -> "open");
        this.syncEveryLaunch = Boolean.getBoolean("clip.cuda.sync");
        this.staging = driver.hostAllocPinned(1 << 20);
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

    // ================================================================ Backend

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
        long bytes = Tensor.numel(shape) * dtype.byteSize();
        DeviceAllocator.Block block;
        ArrayDeque<DeviceAllocator.Block> idle = capturing ? captureIdle.get(DeviceAllocator.sizeClass(bytes)) : null;
        if (idle != null && !idle.isEmpty()) {
            // Released earlier in this capture: reused as in eager mode (one stream, so the graph runs in order).
            block = idle.pop();
            long usable = Math.max(captureUsable.get(block), bytes);
            captureUsable.put(block, usable);
            driver.memUsable(block.address, usable);
            return Tensor.onDevice(Device.CUDA, dtype, block.address, block, shape);
        }
        try {
            block = allocator.allocate(bytes, CudaBackend::publicOp);
        } catch (CudaException e) {
            if (capturing && !(e instanceof CudaOutOfMemoryException)) {
                throw new IllegalStateException("capture: " + publicOp() + " needs " + bytes + " bytes that the allocator's cache "
                        + "does not hold, and CUDA forbids allocating during a capture: run the body once before capturing it", e);
            }
            throw e;
        }
        if (capturing) {
            captureBlocks.add(block);
            captureUsable.put(block, bytes);
        }
        return Tensor.onDevice(Device.CUDA, dtype, block.address, block, shape);
    }

    @Override
    public synchronized Tensor zeros(DType dtype, int... shape) {
        Tensor t = empty(dtype, shape);
        memsetZero(t.deviceAddress(), t.byteSize());
        return t;
    }

    @Override
    public synchronized Tensor upload(Tensor host) {
        if (host.device() == Device.CUDA) return host;
        Tensor t = empty(host.dtype(), host.shape());
        long bytes = host.byteSize();
        MemorySegment src = host.segment();
        for (long done = 0; done < bytes; ) {
            long n = Math.min(bytes - done, stagingBytes());
            MemorySegment.copy(src, done, staging, 0, n);
            copyHostToDevice(t.deviceAddress() + done, staging, n);
            synchronizeStream(); // the staging buffer is reused by the next chunk
            done += n;
        }
        return t;
    }

    @Override
    public synchronized Tensor download(Tensor t) {
        if (t == null) throw new IllegalArgumentException("download: t is null");
        if (t.device() == Device.CPU) return t; // already on the host, as upload() returns device tensors as they are
        Tensor host = Tensor.zeros(t.dtype(), t.shape());
        long bytes = t.byteSize();
        MemorySegment dst = host.segment();
        for (long done = 0; done < bytes; ) {
            long n = Math.min(bytes - done, stagingBytes());
            copyDeviceToHost(staging, t.deviceAddress() + done, n);
            synchronizeStream();
            MemorySegment.copy(staging, 0, dst, done, n);
            done += n;
        }
        return host;
    }

    @Override
    public synchronized void copy(Tensor dst, Tensor src) {
        String op = "copy";
        requireDevice(op, "dst", dst);
        requireDevice(op, "src", src);
        if (dst.dtype() != src.dtype() || dst.numel() != src.numel()) {
            throw new IllegalArgumentException(op + ": dst " + dst.dtype() + " " + dst.shapeString() + " and src "
                    + src.dtype() + " " + src.shapeString() + " differ");
        }
        copyDeviceToDevice(dst.deviceAddress(), src.deviceAddress(), src.byteSize());
    }

    @Override
    public synchronized void fill(Tensor t, float value) {
        String op = "fill";
        requireDevice(op, "t", t);
        if (t.dtype() == DType.F32) {
            fillForward(t, value);
            return;
        }
        if (!t.dtype().isFloatingPoint()) throw new IllegalArgumentException(op + ": t must be floating point, got " + t.dtype());
        Tensor tmp = empty(DType.F32, t.shape());
        fillForward(tmp, value);
        cast(t, tmp);
    }

    @Override
    public synchronized void cast(Tensor dst, Tensor src) {
        String op = "cast";
        requireDevice(op, "dst", dst);
        requireDevice(op, "src", src);
        if (dst.numel() != src.numel()) {
            throw new IllegalArgumentException(op + ": dst " + dst.shapeString() + " and src " + src.shapeString() + " differ in size");
        }
        DType from = src.dtype(), to = dst.dtype();
        if (from == to) {
            copy(dst, src);
        } else if (from == DType.F32 && (to == DType.BF16 || to == DType.F16)) {
            castForward(dst, src);
        } else if ((from == DType.BF16 || from == DType.F16) && to == DType.F32) {
            castForward(dst, src);
        } else if (from.isFloatingPoint() && to.isFloatingPoint()) {
            Tensor tmp = empty(DType.F32, src.shape());
            castForward(tmp, src);
            castForward(dst, tmp);
        } else {
            throw new IllegalArgumentException(op + ": cannot cast " + from + " to " + to);
        }
    }

    @Override
    public synchronized void synchronize() {
        synchronizeStream();
    }

    /**
     * The public op of this backend that the current allocation serves (the outermost CudaBackend frame of the
     * caller's stack), for error messages; "empty" when a caller allocated directly.
     */
    private static String publicOp() {
        return StackWalker.getInstance(StackWalker.Option.RETAIN_CLASS_REFERENCE).walk(frames -> {
            String op = null;
            for (StackWalker.StackFrame f : (Iterable<StackWalker.StackFrame>) frames::iterator) {
                Class<?> c = f.getDeclaringClass();
                if (c == CudaBackend.class || c.getEnclosingClass() == CudaBackend.class) {
                    String name = f.getMethodName();
                    if (!name.equals("publicOp") && !name.startsWith("lambda$")) op = name;
                } else if (op != null) {
                    break; // the caller of the outermost backend frame
                }
            }
            return op == null ? "empty" : op;
        });
    }

    /** Returns a tensor's memory to the allocator now; neither it nor its views may be used afterwards. */
    @Override
    public synchronized void release(Tensor t) {
        if (t == null || !(t.owner() instanceof DeviceAllocator.Block block)) return;
        if (capturing && captureUsable.containsKey(block)) {
            ArrayDeque<DeviceAllocator.Block> idle = captureIdle.computeIfAbsent(block.bytes, k -> new ArrayDeque<>());
            if (!idle.contains(block)) idle.push(block); // for later allocations of this capture only
        } else {
            allocator.release(block);
        }
    }

    /** Bytes held from the driver by the caching allocator (in use + cached). */
    public synchronized long allocatedBytes() {
        return allocator.allocatedBytes();
    }

    /** Bytes idle in the allocator's free lists. */
    public synchronized long cachedBytes() {
        return allocator.cachedBytes();
    }

    /** How many times the allocator went to the driver (cache misses). */
    public synchronized long driverAllocations() {
        return allocator.driverAllocations();
    }

    // ---------------------------------------------------------------- GEMM

    @Override
    public synchronized void matmul(Tensor c, Tensor a, boolean transA, Tensor b, boolean transB, float alpha, float beta) {
        String op = "matmul";
        requireF32(op, "c", c);
        requireF32(op, "a", a);
        requireF32(op, "b", b);
        int rank = c.rank();
        if (rank < 2 || rank > 3 || a.rank() != rank || b.rank() != rank) {
            throw new IllegalArgumentException(op + ": a " + a.shapeString() + ", b " + b.shapeString() + ", c "
                    + c.shapeString() + " must all be 2-D or all 3-D");
        }
        int batch = rank == 3 ? c.dim(0) : 1;
        int m = transA ? a.dim(-1) : a.dim(-2);
        int k = transA ? a.dim(-2) : a.dim(-1);
        int kb = transB ? b.dim(-1) : b.dim(-2);
        int n = transB ? b.dim(-2) : b.dim(-1);
        if (k != kb || c.dim(-2) != m || c.dim(-1) != n || (rank == 3 && (a.dim(0) != batch || b.dim(0) != batch))) {
            throw new IllegalArgumentException(op + ": c " + c.shapeString() + " != op(a " + a.shapeString() + (transA ? "^T" : "")
                    + ") @ op(b " + b.shapeString() + (transB ? "^T" : "") + ")");
        }
        gemm(op, transA, transB, m, n, k, alpha, a.deviceAddress(), a.dim(-1), (long) a.dim(-2) * a.dim(-1),
                b.deviceAddress(), b.dim(-1), (long) b.dim(-2) * b.dim(-1), beta, c.deviceAddress(), n, (long) m * n, 0, batch);
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
        String op = "linearForward";
        requireF32(op, "out", out);
        requireF32(op, "x", x);
        Blas.Type type = gemmInputType(op, w);
        if (w.rank() != 2) throw new IllegalArgumentException(op + ": w must be (O, I), got " + w.shapeString());
        int o = w.dim(0), in = w.dim(1);
        if (x.dim(-1) != in || out.dim(-1) != o || x.numel() / in != out.numel() / o) {
            throw new IllegalArgumentException(op + ": x " + x.shapeString() + " @ w " + w.shapeString() + "^T does not fit out " + out.shapeString());
        }
        if (bias != null) {
            requireF32(op, "bias", bias);
            requireShape(op, "bias", bias, o);
        }
        int n = Math.toIntExact(x.numel() / in);
        Tensor xw = castLike(x, w);
        gemm(op, false, true, n, o, in, 1f, xw.deviceAddress(), in, 0, w.deviceAddress(), in, 0, 0f, out.deviceAddress(), o, 0,
                bias == null ? 0 : bias.deviceAddress(), 1, type);
        if (xw != x) release(xw);
    }

    /** linearForward, then the activation over out in place (the bias is already fused into the GEMM). */
    @Override
    public synchronized void linearActivationForward(Tensor out, Tensor x, Tensor w, Tensor bias, Activation activation) {
        String op = "linearActivationForward";
        if (activation == null) throw new IllegalArgumentException(op + ": activation is null");
        requireDisjoint(op, "out", out, "x", x);
        linearForward(out, x, w, bias);
        if (activation == Activation.QUICK_GELU) quickGeluForward(out, out);
        else geluForward(out, out);
    }

    /** linearForward, then out += residual. */
    @Override
    public synchronized void linearResidualForward(Tensor out, Tensor x, Tensor w, Tensor bias, Tensor residual) {
        String op = "linearResidualForward";
        requireSameShape(op, "residual", residual, "out", out);
        requireDisjoint(op, "out", out, "x", x);
        requireDisjoint(op, "out", out, "residual", residual);
        linearForward(out, x, w, bias);
        add(out, out, residual);
    }

    private static void requireDisjoint(String op, String aName, Tensor a, String bName, Tensor b) {
        long a0 = a.deviceAddress(), b0 = b.deviceAddress();
        if (a0 < b0 + b.byteSize() && b0 < a0 + a.byteSize()) {
            throw new IllegalArgumentException(op + ": " + aName + " and " + bName + " must not overlap");
        }
    }

    @Override
    public synchronized void linearBackward(Tensor dx, Tensor dw, Tensor dbias, Tensor dout, Tensor x, Tensor w) {
        String op = "linearBackward";
        requireF32(op, "dout", dout);
        requireF32(op, "x", x);
        requireF32(op, "w", w);
        if (w.rank() != 2) throw new IllegalArgumentException(op + ": w must be (O, I), got " + w.shapeString());
        int o = w.dim(0), in = w.dim(1);
        if (x.dim(-1) != in || dout.dim(-1) != o || x.numel() / in != dout.numel() / o) {
            throw new IllegalArgumentException(op + ": dout " + dout.shapeString() + ", x " + x.shapeString() + " and w "
                    + w.shapeString() + " do not fit");
        }
        int n = Math.toIntExact(x.numel() / in);
        if (dx != null) {
            requireSameNumel(op, "dx", dx, "x", x);
            gemm(op, false, false, n, in, o, 1f, dout.deviceAddress(), o, 0, w.deviceAddress(), in, 0, 1f, dx.deviceAddress(), in, 0, 0, 1);
        }
        if (dw != null) {
            requireShape(op, "dw", dw, o, in);
            gemm(op, true, false, o, in, n, 1f, dout.deviceAddress(), o, 0, x.deviceAddress(), in, 0, 1f, dw.deviceAddress(), in, 0, 0, 1);
        }
        if (dbias != null) {
            requireShape(op, "dbias", dbias, o);
            columnSums(dbias, dout, n, o);
        }
    }

    // ---------------------------------------------------------------- elementwise

    @Override
    public synchronized void add(Tensor out, Tensor a, Tensor b) {
        String op = "add";
        requireSameShape(op, "out", out, "a", a);
        requireSameShape(op, "b", b, "a", a);
        addForward(out, a, b);
    }

    @Override
    public synchronized void addScaled(Tensor dst, Tensor src, float alpha) {
        String op = "addScaled";
        requireSameNumel(op, "dst", dst, "src", src);
        addScaledForward(dst, src, alpha);
    }

    @Override
    public synchronized void scale(Tensor t, float s) {
        requireF32("scale", "t", t);
        scaleForward(t, s);
    }

    @Override
    public synchronized void broadcastAdd(Tensor out, Tensor x, Tensor b) {
        String op = "broadcastAdd";
        requireSameShape(op, "out", out, "x", x);
        requireF32(op, "b", b);
        int[] xs = x.shape(), bs = b.shape();
        boolean trailing = bs.length <= xs.length;
        for (int i = 0; trailing && i < bs.length; i++) trailing = bs[i] == xs[xs.length - bs.length + i];
        if (!trailing) throw new IllegalArgumentException(op + ": b " + b.shapeString() + " is not the trailing shape of x " + x.shapeString());
        broadcastAddForward(out, x, b);
    }

    @Override
    public synchronized void broadcastAddBackward(Tensor db, Tensor dout) {
        String op = "broadcastAddBackward";
        requireF32(op, "db", db);
        requireF32(op, "dout", dout);
        long m = db.numel();
        if (m == 0 || dout.numel() % m != 0) {
            throw new IllegalArgumentException(op + ": db " + db.shapeString() + " is not the trailing shape of dout " + dout.shapeString());
        }
        columnSums(db, dout, Math.toIntExact(dout.numel() / m), Math.toIntExact(m));
    }

    /** db (M) += sum over the rows of x (rows, M). */
    private void columnSums(Tensor db, Tensor x, int rows, int m) {
        launchElementwise("broadcast_add_backward", m, args().ptr(db.deviceAddress()).ptr(x.deviceAddress()).i32(rows).i32(m));
    }

    @Override
    public synchronized void quickGeluForward(Tensor out, Tensor x) {
        requireSameShape("quickGeluForward", "out", out, "x", x);
        launchElementwise("quickgelu_forward", x.numel(), args().ptr(out.deviceAddress()).ptr(x.deviceAddress()).i64(x.numel()));
    }

    /** out = quickgelu(x + bias) with bias (C) over the last dim of x (the MLP's c_fc bias fused in). */
    public synchronized void quickGeluForwardBias(Tensor out, Tensor x, Tensor bias) {
        String op = "quickGeluForwardBias";
        requireSameShape(op, "out", out, "x", x);
        requireShape(op, "bias", bias, x.dim(-1));
        launchElementwise("quickgelu_forward_bias", x.numel(),
                args().ptr(out.deviceAddress()).ptr(x.deviceAddress()).ptr(bias.deviceAddress()).i64(x.numel()).i32(x.dim(-1)));
    }

    @Override
    public synchronized void quickGeluBackward(Tensor dx, Tensor dout, Tensor x) {
        String op = "quickGeluBackward";
        requireSameShape(op, "dx", dx, "x", x);
        requireSameShape(op, "dout", dout, "x", x);
        launchElementwise("quickgelu_backward", x.numel(), args().ptr(dx.deviceAddress()).ptr(dout.deviceAddress())
                .ptr(x.deviceAddress()).i64(x.numel()));
    }

    @Override
    public synchronized void geluForward(Tensor out, Tensor x) {
        requireSameShape("geluForward", "out", out, "x", x);
        launchElementwise("gelu_forward", x.numel(), args().ptr(out.deviceAddress()).ptr(x.deviceAddress()).i64(x.numel()));
    }

    @Override
    public synchronized void geluBackward(Tensor dx, Tensor dout, Tensor x) {
        String op = "geluBackward";
        requireSameShape(op, "dx", dx, "x", x);
        requireSameShape(op, "dout", dout, "x", x);
        launchElementwise("gelu_backward", x.numel(), args().ptr(dx.deviceAddress()).ptr(dout.deviceAddress())
                .ptr(x.deviceAddress()).i64(x.numel()));
    }

    @Override
    public synchronized void channelScaleForward(Tensor out, Tensor x, Tensor gamma) {
        String op = "channelScaleForward";
        requireSameShape(op, "out", out, "x", x);
        requireShape(op, "gamma", gamma, x.dim(-1));
        launchElementwise("channel_scale_forward", x.numel(), args().ptr(out.deviceAddress()).ptr(x.deviceAddress())
                .ptr(gamma.deviceAddress()).i64(x.numel()).i32(gamma.dim(0)));
    }

    @Override
    public synchronized void channelScaleBackward(Tensor dx, Tensor dgamma, Tensor dout, Tensor x, Tensor gamma) {
        String op = "channelScaleBackward";
        requireShape(op, "gamma", gamma, x.dim(-1));
        requireSameShape(op, "dout", dout, "x", x);
        int c = gamma.dim(0);
        if (dx != null) {
            requireSameShape(op, "dx", dx, "x", x);
            launchElementwise("channel_scale_backward_input", x.numel(), args().ptr(dx.deviceAddress())
                    .ptr(dout.deviceAddress()).ptr(gamma.deviceAddress()).i64(x.numel()).i32(c));
        }
        if (dgamma != null) {
            requireShape(op, "dgamma", dgamma, c);
            launchElementwise("channel_scale_backward_gamma", c, args().ptr(dgamma.deviceAddress())
                    .ptr(dout.deviceAddress()).ptr(x.deviceAddress()).i32(Math.toIntExact(x.numel() / c)).i32(c));
        }
    }

    @Override
    public synchronized void reluForward(Tensor out, Tensor x) {
        requireSameShape("reluForward", "out", out, "x", x);
        launchElementwise("relu_forward", x.numel(), args().ptr(out.deviceAddress()).ptr(x.deviceAddress()).i64(x.numel()));
    }

    @Override
    public synchronized void reluBackward(Tensor dx, Tensor dout, Tensor out) {
        String op = "reluBackward";
        requireSameShape(op, "dx", dx, "out", out);
        requireSameShape(op, "dout", dout, "out", out);
        launchElementwise("relu_backward", out.numel(), args().ptr(dx.deviceAddress()).ptr(dout.deviceAddress())
                .ptr(out.deviceAddress()).i64(out.numel()));
    }

    @Override
    public synchronized void softmaxForward(Tensor out, Tensor x) {
        String op = "softmaxForward";
        requireSameShape(op, "out", out, "x", x);
        int c = x.dim(-1), n = Math.toIntExact(x.numel() / Math.max(c, 1));
        launchRows("softmax_forward", n, args().ptr(out.deviceAddress()).ptr(x.deviceAddress()).i32(n).i32(c));
    }

    // ---------------------------------------------------------------- normalization

    @Override
    public synchronized void layerNormForward(Tensor out, Tensor mean, Tensor rstd, Tensor x, Tensor w, Tensor b, float eps) {
        String op = "layerNormForward";
        requireSameShape(op, "out", out, "x", x);
        int c = x.dim(-1), n = Math.toIntExact(x.numel() / Math.max(c, 1));
        requireShape(op, "w", w, c);
        requireShape(op, "b", b, c);
        if (mean != null) requireShape(op, "mean", mean, n);
        if (rstd != null) requireShape(op, "rstd", rstd, n);
        launchRows("layernorm_forward", n, args().ptr(out.deviceAddress()).ptr(address(mean)).ptr(address(rstd))
                .ptr(x.deviceAddress()).ptr(w.deviceAddress()).ptr(b.deviceAddress()).i32(n).i32(c).f32(eps));
    }

    @Override
    public synchronized void layerNormBackward(Tensor dx, Tensor dw, Tensor db, Tensor dout, Tensor x, Tensor w, Tensor mean, Tensor rstd) {
        String op = "layerNormBackward";
        requireSameShape(op, "dout", dout, "x", x);
        int c = x.dim(-1), n = Math.toIntExact(x.numel() / Math.max(c, 1));
        requireShape(op, "w", w, c);
        requireShape(op, "mean", mean, n);
        requireShape(op, "rstd", rstd, n);
        if (dx != null) {
            requireSameShape(op, "dx", dx, "x", x);
            launchRows("layernorm_backward", n, args().ptr(dx.deviceAddress()).ptr(dout.deviceAddress()).ptr(x.deviceAddress())
                    .ptr(w.deviceAddress()).ptr(mean.deviceAddress()).ptr(rstd.deviceAddress()).i32(n).i32(c));
        }
        if (dw != null) requireShape(op, "dw", dw, c);
        if (db != null) requireShape(op, "db", db, c);
        if (dw != null || db != null) {
            launchElementwise("layernorm_backward_params", c, args().ptr(address(dw)).ptr(address(db)).ptr(dout.deviceAddress())
                    .ptr(x.deviceAddress()).ptr(mean.deviceAddress()).ptr(rstd.deviceAddress()).i32(n).i32(c));
        }
    }

    @Override
    public synchronized void batchNormForward(Tensor out, Tensor x, Tensor gamma, Tensor beta, Tensor runningMean, Tensor runningVar,
                                 Tensor saveMean, Tensor saveRstd, boolean train, float momentum, float eps) {
        String op = "batchNormForward";
        requireSameShape(op, "out", out, "x", x);
        if (x.rank() != 4) throw new IllegalArgumentException(op + ": x must be (B, C, H, W), got " + x.shapeString());
        int c = x.dim(1);
        requireShape(op, "gamma", gamma, c);
        requireShape(op, "beta", beta, c);
        requireShape(op, "runningMean", runningMean, c);
        requireShape(op, "runningVar", runningVar, c);
        if (!train) {
            batchNormForwardEval(out, x, gamma, beta, runningMean, runningVar, eps);
            return;
        }
        Tensor mean = saveMean != null ? saveMean : empty(DType.F32, c), rstd = saveRstd != null ? saveRstd : empty(DType.F32, c);
        requireShape(op, "saveMean", mean, c);
        requireShape(op, "saveRstd", rstd, c);
        int b = x.dim(0), hw = x.dim(2) * x.dim(3);
        launch("batchnorm_forward_stats", c, 1, 1, ELEMENTWISE_THREADS, 1, 1, 0, args().ptr(mean.deviceAddress())
                .ptr(rstd.deviceAddress()).ptr(runningMean.deviceAddress()).ptr(runningVar.deviceAddress()).ptr(x.deviceAddress())
                .i32(b).i32(c).i32(hw).f32(momentum).f32(eps));
        launchElementwise("batchnorm_forward_apply", x.numel(), args().ptr(out.deviceAddress()).ptr(x.deviceAddress())
                .ptr(gamma.deviceAddress()).ptr(beta.deviceAddress()).ptr(mean.deviceAddress()).ptr(rstd.deviceAddress())
                .i32(b).i32(c).i32(hw));
        if (mean != saveMean) release(mean);
        if (rstd != saveRstd) release(rstd);
    }

    @Override
    public synchronized void batchNormBackward(Tensor dx, Tensor dgamma, Tensor dbeta, Tensor dout, Tensor x, Tensor gamma,
                                  Tensor saveMean, Tensor saveRstd) {
        String op = "batchNormBackward";
        requireSameShape(op, "dout", dout, "x", x);
        if (x.rank() != 4) throw new IllegalArgumentException(op + ": x must be (B, C, H, W), got " + x.shapeString());
        int b = x.dim(0), c = x.dim(1), hw = x.dim(2) * x.dim(3);
        requireShape(op, "gamma", gamma, c);
        requireShape(op, "saveMean", saveMean, c);
        requireShape(op, "saveRstd", saveRstd, c);
        if (dx != null) requireSameShape(op, "dx", dx, "x", x);
        if (dgamma != null) requireShape(op, "dgamma", dgamma, c);
        if (dbeta != null) requireShape(op, "dbeta", dbeta, c);
        launch("batchnorm_backward", c, 1, 1, ELEMENTWISE_THREADS, 1, 1, 0, args().ptr(address(dx)).ptr(address(dgamma))
                .ptr(address(dbeta)).ptr(dout.deviceAddress()).ptr(x.deviceAddress()).ptr(gamma.deviceAddress())
                .ptr(saveMean.deviceAddress()).ptr(saveRstd.deviceAddress()).i32(b).i32(c).i32(hw));
    }

    @Override
    public synchronized void l2NormalizeForward(Tensor out, Tensor norms, Tensor x) {
        String op = "l2NormalizeForward";
        requireSameShape(op, "out", out, "x", x);
        if (x.rank() != 2) throw new IllegalArgumentException(op + ": x must be (N, D), got " + x.shapeString());
        int n = x.dim(0), d = x.dim(1);
        if (norms != null) requireShape(op, "norms", norms, n);
        launchRows("l2normalize_forward", n, args().ptr(out.deviceAddress()).ptr(address(norms)).ptr(x.deviceAddress()).i32(n).i32(d));
    }

    @Override
    public synchronized void l2NormalizeBackward(Tensor dx, Tensor dout, Tensor out, Tensor norms) {
        String op = "l2NormalizeBackward";
        requireSameShape(op, "dx", dx, "out", out);
        requireSameShape(op, "dout", dout, "out", out);
        if (out.rank() != 2) throw new IllegalArgumentException(op + ": out must be (N, D), got " + out.shapeString());
        int n = out.dim(0), d = out.dim(1);
        requireShape(op, "norms", norms, n);
        launchRows("l2normalize_backward", n, args().ptr(dx.deviceAddress()).ptr(dout.deviceAddress()).ptr(out.deviceAddress())
                .ptr(norms.deviceAddress()).i32(n).i32(d));
    }

    // ---------------------------------------------------------------- convolution and pooling

    @Override
    public synchronized void conv2dForward(Tensor out, Tensor x, Tensor w, Tensor bias, int stride, int padding) {
        String op = "conv2dForward";
        requireF32(op, "out", out);
        requireF32(op, "x", x);
        Blas.Type type = gemmInputType(op, w);
        if (x.rank() != 4 || w.rank() != 4 || out.rank() != 4 || w.dim(2) != w.dim(3) || w.dim(1) != x.dim(1)) {
            throw new IllegalArgumentException(op + ": x " + x.shapeString() + " (B, Ci, H, W) and w " + w.shapeString() + " (Co, Ci, K, K) do not fit");
        }
        int b = x.dim(0), ci = x.dim(1), h = x.dim(2), wd = x.dim(3), co = w.dim(0), k = w.dim(2);
        if (stride < 1 || padding < 0) throw new IllegalArgumentException(op + ": stride " + stride + ", padding " + padding);
        int ho = (h + 2 * padding - k) / stride + 1, wo = (wd + 2 * padding - k) / stride + 1;
        requireShape(op, "out", out, b, co, ho, wo);
        if (bias != null) requireShape(op, "bias", bias, co);
        int cols = ci * k * k, rows = b * ho * wo;
        Tensor colF32 = im2colForward(x, k, stride, padding, ho, wo);
        Tensor col = castLike(colF32, w);
        if (col != colF32) release(colF32);
        Tensor y = empty(DType.F32, rows, co);
        gemm(op, false, true, rows, co, cols, 1f, col.deviceAddress(), cols, 0, w.deviceAddress(), cols, 0, 0f,
                y.deviceAddress(), co, 0, 0, 1, type);
        launchElementwise("conv_output_forward", out.numel(), args().ptr(out.deviceAddress()).ptr(y.deviceAddress())
                .ptr(address(bias)).i32(b).i32(co).i32(ho * wo));
        release(col);
        release(y);
    }

    @Override
    public synchronized void conv2dBackward(Tensor dx, Tensor dw, Tensor dbias, Tensor dout, Tensor x, Tensor w, int stride, int padding) {
        String op = "conv2dBackward";
        requireF32(op, "x", x);
        requireF32(op, "w", w);
        if (x.rank() != 4 || w.rank() != 4 || w.dim(2) != w.dim(3) || w.dim(1) != x.dim(1) || stride < 1 || padding < 0) {
            throw new IllegalArgumentException(op + ": x " + x.shapeString() + " (B, Ci, H, W) and w " + w.shapeString() + " (Co, Ci, K, K) do not fit");
        }
        int b = x.dim(0), ci = x.dim(1), h = x.dim(2), wd = x.dim(3), co = w.dim(0), k = w.dim(2);
        int ho = (h + 2 * padding - k) / stride + 1, wo = (wd + 2 * padding - k) / stride + 1;
        requireShape(op, "dout", dout, b, co, ho, wo);
        int rows = b * ho * wo, cols = ci * k * k;
        Tensor dy = empty(DType.F32, b, ho * wo, co); // dout with channels last: the GEMMs' row layout
        launch("transpose_forward", ceilDiv(ho * wo, 32), ceilDiv(co, 32), b, 32, 8, 1, 0,
                args().ptr(dy.deviceAddress()).ptr(dout.deviceAddress()).i32(co).i32(ho * wo).i32(0));
        if (dbias != null) {
            requireShape(op, "dbias", dbias, co);
            columnSums(dbias, dy, rows, co);
        }
        if (dw != null) {
            requireSameShape(op, "dw", dw, "w", w);
            Tensor col = im2colForward(x, k, stride, padding, ho, wo);
            gemm(op, true, false, co, cols, rows, 1f, dy.deviceAddress(), co, 0, col.deviceAddress(), cols, 0, 1f,
                    dw.deviceAddress(), cols, 0, 0, 1);
            release(col);
        }
        if (dx != null) {
            requireSameShape(op, "dx", dx, "x", x);
            Tensor dcol = empty(DType.F32, rows, cols);
            gemm(op, false, false, rows, cols, co, 1f, dy.deviceAddress(), co, 0, w.deviceAddress(), cols, 0, 0f,
                    dcol.deviceAddress(), cols, 0, 0, 1);
            launchElementwise("im2col_backward", dcol.numel(), args().ptr(dx.deviceAddress()).ptr(dcol.deviceAddress()).i32(b)
                    .i32(ci).i32(h).i32(wd).i32(k).i32(stride).i32(padding).i32(ho).i32(wo));
            release(dcol);
        }
        release(dy);
    }

    @Override
    public synchronized void patchEmbedForward(Tensor out, Tensor x, Tensor w) {
        String op = "patchEmbedForward";
        requireF32(op, "out", out);
        requireF32(op, "x", x);
        Blas.Type type = gemmInputType(op, w);
        if (x.rank() != 4 || w.rank() != 4 || w.dim(2) != w.dim(3) || w.dim(1) != x.dim(1)) {
            throw new IllegalArgumentException(op + ": x " + x.shapeString() + " (B, Ci, H, W) and w " + w.shapeString() + " (C, Ci, p, p) do not fit");
        }
        int b = x.dim(0), ci = x.dim(1), p = w.dim(2), c = w.dim(0);
        int gh = x.dim(2) / p, gw = x.dim(3) / p;
        if (gh * p != x.dim(2) || gw * p != x.dim(3)) {
            throw new IllegalArgumentException(op + ": image " + x.shapeString() + " is not a whole number of " + p + "x" + p + " patches");
        }
        requireShape(op, "out", out, b, gh * gw, c);
        int cols = ci * p * p;
        Tensor colF32 = im2colForward(x, p, p, 0, gh, gw);
        Tensor col = castLike(colF32, w);
        if (col != colF32) release(colF32);
        gemm(op, false, true, b * gh * gw, c, cols, 1f, col.deviceAddress(), cols, 0, w.deviceAddress(), cols, 0, 0f,
                out.deviceAddress(), c, 0, 0, 1, type);
        release(col);
    }

    @Override
    public synchronized void patchEmbedBackward(Tensor dx, Tensor dw, Tensor dout, Tensor x, Tensor w) {
        String op = "patchEmbedBackward";
        requireF32(op, "x", x);
        requireF32(op, "w", w);
        if (x.rank() != 4 || w.rank() != 4 || w.dim(2) != w.dim(3) || w.dim(1) != x.dim(1)) {
            throw new IllegalArgumentException(op + ": x " + x.shapeString() + " (B, Ci, H, W) and w " + w.shapeString() + " (C, Ci, p, p) do not fit");
        }
        int b = x.dim(0), ci = x.dim(1), p = w.dim(2), c = w.dim(0), gh = x.dim(2) / p, gw = x.dim(3) / p;
        requireShape(op, "dout", dout, b, gh * gw, c);
        int rows = b * gh * gw, cols = ci * p * p;
        if (dw != null) {
            requireSameShape(op, "dw", dw, "w", w);
            Tensor col = im2colForward(x, p, p, 0, gh, gw);
            gemm(op, true, false, c, cols, rows, 1f, dout.deviceAddress(), c, 0, col.deviceAddress(), cols, 0, 1f,
                    dw.deviceAddress(), cols, 0, 0, 1);
            release(col);
        }
        if (dx != null) {
            requireSameShape(op, "dx", dx, "x", x);
            Tensor dcol = empty(DType.F32, rows, cols);
            gemm(op, false, false, rows, cols, c, 1f, dout.deviceAddress(), c, 0, w.deviceAddress(), cols, 0, 0f,
                    dcol.deviceAddress(), cols, 0, 0, 1);
            launchElementwise("im2col_backward", dcol.numel(), args().ptr(dx.deviceAddress()).ptr(dcol.deviceAddress()).i32(b)
                    .i32(ci).i32(x.dim(2)).i32(x.dim(3)).i32(p).i32(p).i32(0).i32(gh).i32(gw));
            release(dcol);
        }
    }

    @Override
    public synchronized void avgPool2dForward(Tensor out, Tensor x, int k) {
        String op = "avgPool2dForward";
        requireF32(op, "x", x);
        if (x.rank() != 4 || k < 1) throw new IllegalArgumentException(op + ": x must be (B, C, H, W) and k >= 1, got " + x.shapeString() + ", k " + k);
        int planes = x.dim(0) * x.dim(1), h = x.dim(2), w = x.dim(3);
        if (h % k != 0 || w % k != 0) throw new IllegalArgumentException(op + ": window " + k + " must divide H and W of x " + x.shapeString());
        requireShape(op, "out", out, x.dim(0), x.dim(1), h / k, w / k);
        launchElementwise("avgpool2d_forward", out.numel(), args().ptr(out.deviceAddress()).ptr(x.deviceAddress())
                .i32(planes).i32(h).i32(w).i32(k));
    }

    @Override
    public synchronized void avgPool2dBackward(Tensor dx, Tensor dout, int k) {
        String op = "avgPool2dBackward";
        requireF32(op, "dx", dx);
        if (dx.rank() != 4 || k < 1 || dx.dim(2) % k != 0 || dx.dim(3) % k != 0) {
            throw new IllegalArgumentException(op + ": dx must be (B, C, H, W) with H and W divisible by k " + k + ", got " + dx.shapeString());
        }
        requireShape(op, "dout", dout, dx.dim(0), dx.dim(1), dx.dim(2) / k, dx.dim(3) / k);
        launchElementwise("avgpool2d_backward", dx.numel(), args().ptr(dx.deviceAddress()).ptr(dout.deviceAddress())
                .i32(dx.dim(0) * dx.dim(1)).i32(dx.dim(2)).i32(dx.dim(3)).i32(k));
    }

    @Override
    public synchronized void transpose(Tensor out, Tensor x, boolean accumulate) {
        String op = "transpose";
        requireF32(op, "x", x);
        requireF32(op, "out", out);
        if (x.rank() != 3) throw new IllegalArgumentException(op + ": x must be (B, M, N), got " + x.shapeString());
        int b = x.dim(0), m = x.dim(1), n = x.dim(2);
        requireShape(op, "out", out, b, n, m);
        launch("transpose_forward", ceilDiv(n, 32), ceilDiv(m, 32), b, 32, 8, 1, 0,
                args().ptr(out.deviceAddress()).ptr(x.deviceAddress()).i32(m).i32(n).i32(accumulate ? 1 : 0));
    }

    // ---------------------------------------------------------------- attention

    @Override
    public synchronized void attentionForward(Tensor out, Tensor lse, Tensor qkv, int heads, boolean causal) {
        String op = "attentionForward";
        requireDevice(op, "qkv", qkv);
        requireDevice(op, "out", out);
        int hd = attentionHeadDim(op, qkv, heads);
        int b = qkv.dim(0), t = qkv.dim(1), c = heads * hd;
        if (out.dtype() != qkv.dtype() || !Arrays.equals(out.shape(), new int[] {b, t, c})) {
            throw new IllegalArgumentException(op + ": out " + out.dtype() + " " + out.shapeString() + " must be " + qkv.dtype() + " [" + b + ", " + t + ", " + c + "]");
        }
        if (lse != null) requireShape(op, "lse", lse, b, heads, t);
        String family = switch (qkv.dtype()) {
            case F32 -> "attention_forward";
            case BF16 -> "attention_forward_mma_bf16";
            case F16 -> "attention_forward_f16";
            default -> throw new IllegalArgumentException(op + ": qkv must be F32, BF16 or F16, got " + qkv.dtype());
        };
        attentionForwardKernel(family, out, lse, qkv, heads, causal, attentionKeyTile(family, hd, t));
    }

    /**
     * The head dim of qkv (B, T, 3 * heads * hd); the kernels take any hd up to
     * {@value #ATTENTION_MAX_HEAD_DIM} (every CLIP model: 64, 80, 88, 104, 112).
     */
    private static int attentionHeadDim(String op, Tensor qkv, int heads) {
        if (qkv.rank() != 3 || heads < 1 || qkv.dim(2) % (3 * heads) != 0) {
            throw new IllegalArgumentException(op + ": qkv must be (B, T, 3 * heads * headDim), got " + qkv.shapeString() + " with " + heads + " heads");
        }
        int hd = qkv.dim(2) / (3 * heads);
        if (hd > ATTENTION_MAX_HEAD_DIM) {
            throw new IllegalArgumentException(op + ": head dim " + hd + " (qkv " + qkv.shapeString() + ", " + heads
                    + " heads) is wider than the CUDA attention kernels' " + ATTENTION_MAX_HEAD_DIM);
        }
        return hd;
    }

    /**
     * The kernel of a family (attention_forward, attention_forward_bf16, attention_forward_f16,
     * attention_forward_mma_bf16, attention_backward) for head dim hd: the family's own name is the hd-64
     * kernel, _hd80/_hd88/_hd104/_hd112 the other zoo widths (F32, tensor-core and backward families only),
     * _hdany every other hd (attention.cu's header).
     */
    static String attentionKernel(String family, int hd) {
        if (hd == 64) return family;
        boolean perWidth = family.equals("attention_forward") || family.equals("attention_forward_mma_bf16")
                || family.equals("attention_backward");
        return perWidth && (hd == 80 || hd == 88 || hd == 104 || hd == 112) ? family + "_hd" + hd : family + "_hdany";
    }

    /**
     * Runs one attention forward kernel family with an explicit key tile (tests use it to cover the
     * streaming path and to cross-check the tensor-core kernel against the SIMT one).
     */
    void attentionForwardKernel(String family, Tensor out, Tensor lse, Tensor qkv, int heads, boolean causal, int keyTile) {
        int hd = attentionHeadDim(family, qkv, heads);
        int b = qkv.dim(0), t = qkv.dim(1);
        int rowsPerBlock = family.contains("mma") ? ATTENTION_MMA_ROWS : ATTENTION_ROWS;
        launch(attentionKernel(family, hd), ceilDiv(t, rowsPerBlock), heads, b, ROW_THREADS, 1, 1,
                attentionSharedBytes(family, hd, keyTile),
                args().ptr(out.deviceAddress()).ptr(address(lse)).ptr(qkv.deviceAddress()).i32(b).i32(t).i32(heads).i32(hd)
                        .i32(causal ? 1 : 0).i32(keyTile));
    }

    /**
     * Keys per shared-memory tile: the whole sequence (one head's K and V resident) when it fits the
     * device's opt-in shared memory, else {@value #ATTENTION_STREAM_TILE}-key tiles streamed through it.
     */
    int attentionKeyTile(String family, int hd, int t) {
        return attentionSharedBytes(family, hd, t) <= maxDynamicShared ? Math.max(t, 1) : ATTENTION_STREAM_TILE;
    }

    /** Dynamic shared memory of an attention kernel family at a key tile (attention.cu's header). */
    static int attentionSharedBytes(String family, int hd, int keyTile) {
        if (family.contains("mma")) {
            int rows = (keyTile + 15) / 16 * 16;
            int rowElements = (hd + 15) / 16 * 16 + 8;
            return 2 * rows * rowElements * 2; // K and V as BF16
        }
        int queryRows = family.equals("attention_backward") ? 2 * ATTENTION_ROWS : ATTENTION_ROWS; // Q (and dout) rows
        return (keyTile * (hd | 1) + keyTile * hd + queryRows * hd) * Float.BYTES;
    }

    @Override
    public synchronized void attentionBackward(Tensor dqkv, Tensor dout, Tensor qkv, Tensor out, Tensor lse, int heads, boolean causal) {
        String op = "attentionBackward";
        requireF32(op, "qkv", qkv);
        int hd = attentionHeadDim(op, qkv, heads);
        int b = qkv.dim(0), t = qkv.dim(1), c = heads * hd;
        requireSameShape(op, "dqkv", dqkv, "qkv", qkv);
        requireShape(op, "dout", dout, b, t, c);
        requireShape(op, "out", out, b, t, c);
        requireShape(op, "lse", lse, b, heads, t);
        attentionBackwardKernel(dqkv, dout, qkv, out, lse, heads, causal, attentionKeyTile("attention_backward", hd, t));
    }

    /** Runs the attention backward kernel with an explicit key tile (tests use it to cover the streaming path). */
    void attentionBackwardKernel(Tensor dqkv, Tensor dout, Tensor qkv, Tensor out, Tensor lse, int heads, boolean causal, int keyTile) {
        String family = "attention_backward";
        int hd = attentionHeadDim(family, qkv, heads);
        int b = qkv.dim(0), t = qkv.dim(1);
        launch(attentionKernel(family, hd), ceilDiv(t, ATTENTION_ROWS), heads, b, ROW_THREADS, 1, 1,
                attentionSharedBytes(family, hd, keyTile),
                args().ptr(dqkv.deviceAddress()).ptr(dout.deviceAddress()).ptr(qkv.deviceAddress()).ptr(out.deviceAddress())
                        .ptr(lse.deviceAddress()).i32(b).i32(t).i32(heads).i32(hd).i32(causal ? 1 : 0).i32(keyTile));
    }

    @Override
    public synchronized void attentionPoolForward(Tensor out, Tensor lse, Tensor q, Tensor k, Tensor v, int heads) {
        String op = "attentionPoolForward";
        requireF32(op, "q", q);
        if (q.rank() != 2 || heads < 1 || q.dim(1) % heads != 0) {
            throw new IllegalArgumentException(op + ": q must be (B, C) with C divisible by " + heads + " heads, got " + q.shapeString());
        }
        int b = q.dim(0), c = q.dim(1);
        requireF32(op, "k", k);
        if (k.rank() != 3) throw new IllegalArgumentException(op + ": k must be (B, L, C), got " + k.shapeString());
        int l = k.dim(1);
        requireShape(op, "k", k, b, l, c);
        requireShape(op, "v", v, b, l, c);
        requireShape(op, "out", out, b, c);
        if (lse != null) requireShape(op, "lse", lse, b, heads);
        launch("attention_pool_forward", heads, b, 1, ROW_THREADS, 1, 1, (l + c / heads) * Float.BYTES,
                args().ptr(out.deviceAddress()).ptr(address(lse)).ptr(q.deviceAddress()).ptr(k.deviceAddress())
                        .ptr(v.deviceAddress()).i32(b).i32(l).i32(c).i32(heads));
    }

    @Override
    public synchronized void attentionPoolBackward(Tensor dq, Tensor dk, Tensor dv, Tensor dout, Tensor q, Tensor k, Tensor v,
                                      Tensor out, Tensor lse, int heads) {
        String op = "attentionPoolBackward";
        requireF32(op, "q", q);
        requireF32(op, "k", k);
        if (q.rank() != 2 || k.rank() != 3 || heads < 1 || q.dim(1) % heads != 0) {
            throw new IllegalArgumentException(op + ": q (B, C) and k (B, L, C) with C divisible by " + heads + " heads, got "
                    + q.shapeString() + " and " + k.shapeString());
        }
        int b = q.dim(0), c = q.dim(1), l = k.dim(1);
        requireShape(op, "k", k, b, l, c);
        requireShape(op, "v", v, b, l, c);
        requireShape(op, "out", out, b, c);
        requireShape(op, "dout", dout, b, c);
        requireShape(op, "lse", lse, b, heads);
        if (dq != null) requireShape(op, "dq", dq, b, c);
        if (dk != null) requireShape(op, "dk", dk, b, l, c);
        if (dv != null) requireShape(op, "dv", dv, b, l, c);
        launch("attention_pool_backward", heads, b, 1, ROW_THREADS, 1, 1, (2 * l + 2 * (c / heads)) * Float.BYTES,
                args().ptr(address(dq)).ptr(address(dk)).ptr(address(dv)).ptr(dout.deviceAddress()).ptr(q.deviceAddress())
                        .ptr(k.deviceAddress()).ptr(v.deviceAddress()).ptr(out.deviceAddress()).ptr(lse.deviceAddress())
                        .i32(b).i32(l).i32(c).i32(heads));
    }

    // ---------------------------------------------------------------- gathers

    @Override
    public synchronized void embeddingForward(Tensor out, Tensor ids, Tensor table) {
        String op = "embeddingForward";
        requireI32(op, "ids", ids);
        requireF32(op, "table", table);
        if (table.rank() != 2) throw new IllegalArgumentException(op + ": table must be (V, C), got " + table.shapeString());
        int rows = Math.toIntExact(ids.numel()), v = table.dim(0), c = table.dim(1);
        requireF32(op, "out", out);
        if (out.numel() != (long) rows * c || out.dim(-1) != c) {
            throw new IllegalArgumentException(op + ": out " + out.shapeString() + " must be ids " + ids.shapeString() + " x " + c);
        }
        if (!capturing) clearFlag();
        launch("embedding_forward", Math.max(rows, 1), 1, 1, ROW_THREADS, 1, 1, 0, args().ptr(out.deviceAddress())
                .ptr(ids.deviceAddress()).ptr(table.deviceAddress()).i32(rows).i32(c).i32(v).ptr(scratchFlag.address));
        if (!capturing && readFlag() != 0) {
            throw new InvalidInputException(op + ": ids " + ids.shapeString() + " holds a token id outside [0, " + v + ")");
        }
    }

    @Override
    public synchronized void embeddingBackward(Tensor dtable, Tensor dout, Tensor ids) {
        String op = "embeddingBackward";
        requireI32(op, "ids", ids);
        requireF32(op, "dtable", dtable);
        requireF32(op, "dout", dout);
        if (dtable.rank() != 2) throw new IllegalArgumentException(op + ": dtable must be (V, C), got " + dtable.shapeString());
        int rows = Math.toIntExact(ids.numel()), v = dtable.dim(0), c = dtable.dim(1);
        if (dout.numel() != (long) rows * c) throw new IllegalArgumentException(op + ": dout " + dout.shapeString() + " must be ids " + ids.shapeString() + " x " + c);
        launch("embedding_backward", Math.max(rows, 1), 1, 1, ROW_THREADS, 1, 1, 0, args().ptr(dtable.deviceAddress())
                .ptr(dout.deviceAddress()).ptr(ids.deviceAddress()).i32(rows).i32(c).i32(v));
    }

    @Override
    public synchronized void gatherRowsForward(Tensor out, Tensor x, Tensor index) {
        String op = "gatherRowsForward";
        requireF32(op, "x", x);
        if (x.rank() != 3) throw new IllegalArgumentException(op + ": x must be (B, T, C), got " + x.shapeString());
        int b = x.dim(0), t = x.dim(1), c = x.dim(2);
        requireI32(op, "index", index);
        if (index.numel() != b) throw new IllegalArgumentException(op + ": index " + index.shapeString() + " must hold " + b + " rows");
        requireShape(op, "out", out, b, c);
        if (!capturing) clearFlag();
        launch("gather_rows_forward", Math.max(b, 1), 1, 1, ROW_THREADS, 1, 1, 0, args().ptr(out.deviceAddress())
                .ptr(x.deviceAddress()).ptr(index.deviceAddress()).i32(b).i32(t).i32(c).ptr(scratchFlag.address));
        if (!capturing && readFlag() != 0) throw new InvalidInputException(op + ": index holds a row outside [0, " + t + ")");
    }

    @Override
    public synchronized void gatherRowsBackward(Tensor dx, Tensor dout, Tensor index) {
        String op = "gatherRowsBackward";
        requireF32(op, "dx", dx);
        if (dx.rank() != 3) throw new IllegalArgumentException(op + ": dx must be (B, T, C), got " + dx.shapeString());
        int b = dx.dim(0), t = dx.dim(1), c = dx.dim(2);
        requireI32(op, "index", index);
        if (index.numel() != b) throw new IllegalArgumentException(op + ": index " + index.shapeString() + " must hold " + b + " rows");
        requireShape(op, "dout", dout, b, c);
        launch("gather_rows_backward", Math.max(b, 1), 1, 1, ROW_THREADS, 1, 1, 0, args().ptr(dx.deviceAddress())
                .ptr(dout.deviceAddress()).ptr(index.deviceAddress()).i32(b).i32(t).i32(c));
    }

    // ---------------------------------------------------------------- similarity and objective

    /**
     * out (N, M) F32 = scale * normalize(a (N, D)) @ normalize(b (M, D))^T (or without the
     * normalization); a and b F32, BF16 or F16 (the same dtype), products accumulated in F32.
     */
    public synchronized void similarityForward(Tensor out, Tensor a, Tensor b, float scale, boolean normalize) {
        String op = "similarityForward";
        requireDevice(op, "a", a);
        requireDevice(op, "b", b);
        if (a.rank() != 2 || b.rank() != 2 || a.dim(1) != b.dim(1) || a.dtype() != b.dtype()) {
            throw new IllegalArgumentException(op + ": a " + a.dtype() + " " + a.shapeString() + " and b " + b.dtype() + " "
                    + b.shapeString() + " must be (N, D) and (M, D) of one dtype");
        }
        int n = a.dim(0), m = b.dim(0), d = a.dim(1);
        requireShape(op, "out", out, n, m);
        String kernel = switch (a.dtype()) {
            case F32 -> "similarity_forward";
            case BF16 -> "similarity_forward_bf16";
            case F16 -> "similarity_forward_f16";
            default -> throw new IllegalArgumentException(op + ": a must be F32, BF16 or F16, got " + a.dtype());
        };
        launch(kernel, ceilDiv(m, 16), ceilDiv(n, 16), 1, 16, 16, 1, 0, args().ptr(out.deviceAddress()).ptr(a.deviceAddress())
                .ptr(b.deviceAddress()).i32(n).i32(m).i32(d).f32(scale).i32(normalize ? 1 : 0));
    }

    @Override
    public synchronized float contrastiveLoss(Tensor img, Tensor txt, Tensor logitScale, Tensor dImg, Tensor dTxt, Tensor dLogitScale,
                                 float gradScale) {
        String op = "contrastiveLoss";
        requireSameShape(op, "txt", txt, "img", img);
        if (img.rank() != 2 || img.dim(0) < 1) throw new IllegalArgumentException(op + ": img must be (N, D) with N >= 1, got " + img.shapeString());
        requireShape(op, "logitScale", logitScale, 1);
        if (dImg != null) requireSameShape(op, "dImg", dImg, "img", img);
        if (dTxt != null) requireSameShape(op, "dTxt", dTxt, "txt", txt);
        if (dLogitScale != null) requireShape(op, "dLogitScale", dLogitScale, 1);
        int n = img.dim(0), d = img.dim(1);
        Tensor lseRow = empty(DType.F32, n), lseCol = empty(DType.F32, n), diag = empty(DType.F32, n), loss = empty(DType.F32, 1);
        launch("contrastive_forward_lse", n, 1, 1, ROW_THREADS, 1, 1, d * Float.BYTES, args().ptr(lseRow.deviceAddress())
                .ptr(diag.deviceAddress()).ptr(img.deviceAddress()).ptr(txt.deviceAddress()).i32(n).i32(d).ptr(logitScale.deviceAddress()));
        launch("contrastive_forward_lse", n, 1, 1, ROW_THREADS, 1, 1, d * Float.BYTES, args().ptr(lseCol.deviceAddress())
                .ptr(diag.deviceAddress()).ptr(txt.deviceAddress()).ptr(img.deviceAddress()).i32(n).i32(d).ptr(logitScale.deviceAddress()));
        launch("contrastive_loss_forward", 1, 1, 1, 256, 1, 1, 0, args().ptr(loss.deviceAddress()).ptr(lseRow.deviceAddress())
                .ptr(lseCol.deviceAddress()).ptr(diag.deviceAddress()).i32(n));
        if (dImg != null || dLogitScale != null) {
            Tensor da = dImg != null ? dImg : zeros(DType.F32, n, d); // dLogitScale alone still needs a row sweep (da += ...)
            contrastiveBackward(da, dLogitScale, img, txt, lseRow, lseCol, logitScale, gradScale);
            if (da != dImg) release(da);
        }
        if (dTxt != null) contrastiveBackward(dTxt, null, txt, img, lseCol, lseRow, logitScale, gradScale);
        float value = download(loss).f32()[0];
        release(lseRow);
        release(lseCol);
        release(diag);
        release(loss);
        return value;
    }

    /** da += the gradient for the rows of a; dLogScale (may be null) += its gradient (see contrastive.cu). */
    void contrastiveBackward(Tensor da, Tensor dLogScale, Tensor a, Tensor b, Tensor lseRow, Tensor lseCol, Tensor logScale,
                             float gradScale) {
        int n = a.dim(0), d = a.dim(1);
        int shared = (1 + ROW_THREADS / 32) * d * Float.BYTES;
        launch("contrastive_backward", n, 1, 1, ROW_THREADS, 1, 1, shared, args().ptr(da.deviceAddress()).ptr(address(dLogScale))
                .ptr(a.deviceAddress()).ptr(b.deviceAddress()).ptr(lseRow.deviceAddress()).ptr(lseCol.deviceAddress()).i32(n)
                .i32(d).ptr(logScale.deviceAddress()).f32(gradScale));
    }

    // ---------------------------------------------------------------- optimizer and reductions

    @Override
    public synchronized void adamwUpdate(Tensor param, Tensor grad, Tensor m, Tensor v, float lr, float beta1, float beta2, float eps,
                            float weightDecay, int step, float gradScale) {
        String op = "adamwUpdate";
        requireSameNumel(op, "grad", grad, "param", param);
        requireSameNumel(op, "m", m, "param", param);
        requireSameNumel(op, "v", v, "param", param);
        if (step < 1) throw new IllegalArgumentException(op + ": step is 1-based, got " + step);
        float c1 = (float) (1.0 - Math.pow(beta1, step)), c2 = (float) (1.0 - Math.pow(beta2, step));
        launchElementwise("adamw_forward", param.numel(), args().ptr(param.deviceAddress()).ptr(grad.deviceAddress())
                .ptr(m.deviceAddress()).ptr(v.deviceAddress()).f32(lr).f32(beta1).f32(beta2).f32(eps).f32(weightDecay)
                .f32(c1).f32(c2).f32(gradScale).i64(param.numel()));
    }

    @Override
    public synchronized double sumOfSquares(Tensor t) {
        requireF32("sumOfSquares", "t", t);
        int blocks = (int) Math.max(1, Math.min(REDUCE_BLOCKS, ceilDiv(t.numel(), ELEMENTWISE_THREADS)));
        Tensor partial = empty(DType.I64, blocks); // 8-byte doubles, read back as raw bits
        launch("sum_of_squares_forward", blocks, 1, 1, ELEMENTWISE_THREADS, 1, 1, 0,
                args().ptr(partial.deviceAddress()).ptr(t.deviceAddress()).i64(t.numel()));
        long[] bits = download(partial).i64();
        release(partial);
        double sum = 0;
        for (long b : bits) sum += Double.longBitsToDouble(b);
        return sum;
    }

    @Override
    public synchronized boolean hasNonFinite(Tensor t) {
        requireF32("hasNonFinite", "t", t);
        clearFlag();
        int blocks = (int) Math.max(1, Math.min(REDUCE_BLOCKS, ceilDiv(t.numel(), ELEMENTWISE_THREADS)));
        launch("nonfinite_forward", blocks, 1, 1, ELEMENTWISE_THREADS, 1, 1, 0,
                args().ptr(scratchFlag.address).ptr(t.deviceAddress()).i64(t.numel()));
        return readFlag() != 0;
    }

    // ================================================================ kernel wrappers (same names as the kernels)

    void fillForward(Tensor t, float value) {
        launchElementwise("fill_forward", t.numel(), args().ptr(t.deviceAddress()).f32(value).i64(t.numel()));
    }

    void addForward(Tensor out, Tensor a, Tensor b) {
        launchElementwise("add_forward", out.numel(), args().ptr(out.deviceAddress()).ptr(a.deviceAddress())
                .ptr(b.deviceAddress()).i64(out.numel()));
    }

    void addScaledForward(Tensor dst, Tensor src, float alpha) {
        launchElementwise("add_scaled_forward", dst.numel(), args().ptr(dst.deviceAddress()).ptr(src.deviceAddress())
                .f32(alpha).i64(dst.numel()));
    }

    void scaleForward(Tensor t, float s) {
        launchElementwise("scale_forward", t.numel(), args().ptr(t.deviceAddress()).f32(s).i64(t.numel()));
    }

    void broadcastAddForward(Tensor out, Tensor x, Tensor b) {
        launchElementwise("broadcast_add_forward", x.numel(), args().ptr(out.deviceAddress()).ptr(x.deviceAddress())
                .ptr(b.deviceAddress()).i64(x.numel()).i32(Math.toIntExact(Math.max(b.numel(), 1))));
    }

    void castForward(Tensor dst, Tensor src) {
        String kernel = "cast_forward_" + dtypeName(src.dtype()) + "_" + dtypeName(dst.dtype());
        launchElementwise(kernel, src.numel(), args().ptr(dst.deviceAddress()).ptr(src.deviceAddress()).i64(src.numel()));
    }

    void batchNormForwardEval(Tensor out, Tensor x, Tensor gamma, Tensor beta, Tensor runningMean, Tensor runningVar, float eps) {
        launchElementwise("batchnorm_forward_eval", x.numel(), args().ptr(out.deviceAddress()).ptr(x.deviceAddress())
                .ptr(gamma.deviceAddress()).ptr(beta.deviceAddress()).ptr(runningMean.deviceAddress())
                .ptr(runningVar.deviceAddress()).i32(x.dim(0)).i32(x.dim(1)).i32(x.dim(2) * x.dim(3)).f32(eps));
    }

    /** col (B*Ho*Wo, Ci*K*K) for x (B, Ci, H, W); the caller releases it. */
    Tensor im2colForward(Tensor x, int k, int stride, int padding, int ho, int wo) {
        int b = x.dim(0), ci = x.dim(1);
        Tensor col = empty(DType.F32, b * ho * wo, ci * k * k);
        launchElementwise("im2col_forward", col.numel(), args().ptr(col.deviceAddress()).ptr(x.deviceAddress()).i32(b)
                .i32(ci).i32(x.dim(2)).i32(x.dim(3)).i32(k).i32(stride).i32(padding).i32(ho).i32(wo));
        return col;
    }

    /**
     * The GEMM input type of a forward weight: F32, or BF16/F16 for the weight copies of mixed-precision
     * inference (the activations are cast to the same type and the GEMM accumulates in F32).
     */
    private static Blas.Type gemmInputType(String op, Tensor w) {
        requireDevice(op, "w", w);
        return switch (w.dtype()) {
            case F32 -> Blas.Type.F32;
            case BF16 -> Blas.Type.BF16;
            case F16 -> Blas.Type.F16;
            default -> throw new IllegalArgumentException(op + ": w must be F32, BF16 or F16, got " + w.dtype());
        };
    }

    /**
     * x itself when w is F32; otherwise a scratch copy of x cast to w's 16-bit type, which the caller
     * releases (the caching allocator hands the same block back on the next call of that size).
     */
    private Tensor castLike(Tensor x, Tensor w) {
        if (w.dtype() == x.dtype()) return x;
        Tensor cast = empty(w.dtype(), x.shape());
        castForward(cast, x);
        return cast;
    }

    private static String dtypeName(DType t) {
        return switch (t) {
            case F32 -> "f32";
            case BF16 -> "bf16";
            case F16 -> "f16";
            default -> throw new IllegalArgumentException("no cast kernel for " + t);
        };
    }

    // ================================================================ CUDA graphs

    /**
     * Records every launch and copy that {@code body} issues on this backend's stream into a CUDA graph
     * (the simulator records the launch list) without running them; {@link Graph#replay} runs them
     * again with the same shapes and device addresses. For fixed-shape inference: allocate the
     * inputs and outputs first, capture the forward once, then upload new inputs into the same
     * tensors (with {@link #copy}) and replay. Ops with a sync point (download, the loss, sums)
     * cannot be captured; gathers skip their index check while capturing. Run the body once
     * before capturing it so the allocator's cache already holds its temporaries (a driver
     * allocation inside a capture is not allowed by CUDA). A block released during the capture serves
     * the capture's later allocations (as in eager mode: one stream, in order); every block allocated
     * during the capture stays reserved for the graph until the graph is closed.
     */
    public synchronized Graph capture(Runnable body) {
        checkOpen();
        if (capturing) throw new IllegalStateException("capture: already capturing");
        captureBlocks = new ArrayList<>();
        captureUsable = new HashMap<>();
        captureIdle = new HashMap<>();
        capturing = true;
        driver.streamBeginCapture(stream);
        try {
            body.run();
        } catch (RuntimeException | Error failure) {
            // End the capture so the stream is usable again, but throw what went wrong in the body: the
            // driver's "capture invalidated" that follows is only a consequence.
            capturing = false;
            captureBlocks = null;
            captureUsable = null;
            captureIdle = null;
            try {
                driver.graphDestroy(driver.streamEndCaptureAndInstantiate(stream));
            } catch (RuntimeException end) {
                failure.addSuppressed(end);
            }
            throw failure;
        }
        capturing = false;
        long exec = driver.streamEndCaptureAndInstantiate(stream);
        Graph graph = new Graph(exec, captureBlocks);
        captureBlocks = null;
        captureUsable = null;
        captureIdle = null;
        return graph;
    }

    /** An instantiated CUDA graph of this backend (see {@link #capture}). */
    public final class Graph implements AutoCloseable {
        private final long exec;
        private final List<DeviceAllocator.Block> blocks; // allocated during capture: reused by nothing else
        private boolean closed;

        private Graph(long exec, List<DeviceAllocator.Block> blocks) {
            this.exec = exec;
            this.blocks = blocks;
        }

        /** Launches the recorded work on the backend's stream (asynchronous). */
        public void replay() {
            synchronized (CudaBackend.this) {
                if (closed) throw new IllegalStateException("graph already closed");
                checkOpen();
                driver.graphLaunch(exec, stream);
            }
        }

        @Override
        public void close() {
            synchronized (CudaBackend.this) {
                closeGraph();
            }
        }

        private void closeGraph() {
            if (!closed) {
                closed = true;
                driver.graphDestroy(exec);
                blocks.clear(); // the blocks return to the allocator once their tensors are unreachable too
            }
        }
    }

    // ================================================================ launching

    private KernelArgs args() {
        return args.clear();
    }

    private CudaDriver.Function function(String kernel) {
        CudaDriver.Function f = functions.get(kernel);
        if (f == null) {
            f = driver.moduleGetFunction(module, kernel);
            functions.put(kernel, f);
        }
        return f;
    }

    private void launch(String kernel, long gx, int gy, int gz, int bx, int by, int bz, int sharedBytes, KernelArgs a) {
        checkOpen();
        if (gx < 1 || gy < 1 || gz < 1) return; // empty tensors: nothing to do
        if (sharedBytes > maxDynamicShared) {
            throw new IllegalArgumentException(kernel + ": needs " + sharedBytes + " bytes of shared memory per block, the device allows "
                    + maxDynamicShared);
        }
        CudaDriver.Function f = function(kernel);
        if (sharedBytes > 48 * 1024 && sharedLimits.getOrDefault(kernel, 0) < sharedBytes) {
            driver.funcSetMaxDynamicShared(f, sharedBytes);
            sharedLimits.put(kernel, sharedBytes);
        }
        try {
            driver.launchKernel(f, Math.toIntExact(gx), gy, gz, bx, by, bz, sharedBytes, stream, a);
        } catch (CudaException e) {
            throw new CudaException(kernel + ": " + e.getMessage(), e);
        }
        if (syncEveryLaunch && !capturing) synchronizeAfter(kernel);
    }

    /** clip.cuda.sync: waits for the op just issued, so that a fault is reported under its own name. */
    private void synchronizeAfter(String op) {
        try {
            driver.streamSynchronize(stream, op);
        } catch (CudaException e) {
            throw new CudaException(op + " (clip.cuda.sync: checked right after its launch): " + e.getMessage(), e);
        }
    }

    /** Grid-stride kernels over n elements. */
    private void launchElementwise(String kernel, long n, KernelArgs a) {
        long blocks = Math.min(ceilDiv(n, ELEMENTWISE_THREADS), ELEMENTWISE_MAX_BLOCKS);
        launch(kernel, blocks, 1, 1, ELEMENTWISE_THREADS, 1, 1, 0, a);
    }

    /** One warp per row, 4 rows per block. */
    private void launchRows(String kernel, int rows, KernelArgs a) {
        launch(kernel, ceilDiv(rows, ROW_THREADS / 32), 1, 1, ROW_THREADS, 1, 1, 0, a);
    }

    /**
     * Row-major F32 GEMM: c = alpha op(a) op(b) + beta c (+ bias (N) on every row when bias != 0),
     * lda/ldb/ldc are row strides, strides the per-batch element strides.
     */
    private void gemm(String op, boolean transA, boolean transB, int m, int n, int k, float alpha, long a, int lda, long strideA,
                      long b, int ldb, long strideB, float beta, long c, int ldc, long strideC, long bias, int batch) {
        gemm(op, transA, transB, m, n, k, alpha, a, lda, strideA, b, ldb, strideB, beta, c, ldc, strideC, bias, batch, Blas.Type.F32);
    }

    /** As the F32 GEMM with a and b of type {@code in} (F32 accumulate); c and bias stay F32. */
    private void gemm(String op, boolean transA, boolean transB, int m, int n, int k, float alpha, long a, int lda, long strideA,
                      long b, int ldb, long strideB, float beta, long c, int ldc, long strideC, long bias, int batch,
                      Blas.Type in) {
        checkOpen();
        if (m == 0 || n == 0) return;
        try {
            blas.matmul(transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc, bias, in, Blas.Type.F32, batch,
                    strideA, strideB, strideC, stream, op);
        } catch (CudaException e) {
            throw new CudaException(op + ": " + e.getMessage(), e);
        }
        if (syncEveryLaunch && !capturing) synchronizeAfter(op + " (GEMM)");
    }

    private void memsetZero(long address, long bytes) {
        checkOpen();
        if (bytes > 0) driver.memsetD8(address, (byte) 0, bytes, stream, "memset");
    }

    private void copyHostToDevice(long dst, MemorySegment src, long bytes) {
        checkOpen();
        driver.memcpyHtoD(dst, src, bytes, stream, "upload");
    }

    private void copyDeviceToHost(MemorySegment dst, long src, long bytes) {
        checkOpen();
        driver.memcpyDtoH(dst, src, bytes, stream, "download");
    }

    private void copyDeviceToDevice(long dst, long src, long bytes) {
        checkOpen();
        if (bytes > 0) driver.memcpyDtoD(dst, src, bytes, stream, "copy");
    }

    private void synchronizeStream() {
        checkOpen();
        driver.streamSynchronize(stream, "synchronize");
    }

    private long stagingBytes() {
        return staging.byteSize();
    }

    private void clearFlag() {
        memsetZero(scratchFlag.address, 8);
    }

    private int readFlag() {
        copyDeviceToHost(staging, scratchFlag.address, 4);
        synchronizeStream();
        return staging.get(ValueLayout.JAVA_INT, 0);
    }

    private void checkOpen() {
        if (closed) throw new IllegalStateException("CudaBackend is closed");
    }

    @Override
    public synchronized void close() {
        if (closed) return;
        try {
            driver.streamSynchronize(stream, "close");
        } finally {
            closed = true;
            allocator.close();
            driver.hostFreePinned(staging);
            driver.streamDestroy(stream);
            driver.moduleUnload(module);
            blas.close();
            driver.close();
        }
    }

    // ================================================================ checks

    private static long ceilDiv(long a, long b) {
        return (a + b - 1) / b;
    }

    private static int ceilDiv(int a, int b) {
        return (a + b - 1) / b;
    }

    private static long address(Tensor t) {
        return t == null ? 0L : t.deviceAddress();
    }

    private static void requireDevice(String op, String name, Tensor t) {
        if (t == null) throw new IllegalArgumentException(op + ": " + name + " is null");
        if (t.device() != Device.CUDA) {
            throw new IllegalArgumentException(op + ": " + name + " " + t.shapeString() + " is on " + t.device() + "; upload it to the CUDA backend first");
        }
    }

    private static void requireF32(String op, String name, Tensor t) {
        requireDevice(op, name, t);
        if (t.dtype() != DType.F32) throw new IllegalArgumentException(op + ": " + name + " must be F32, got " + t.dtype() + " " + t.shapeString());
    }

    private static void requireI32(String op, String name, Tensor t) {
        requireDevice(op, name, t);
        if (t.dtype() != DType.I32) throw new IllegalArgumentException(op + ": " + name + " must be I32, got " + t.dtype() + " " + t.shapeString());
    }

    private static void requireShape(String op, String name, Tensor t, int... expected) {
        requireF32(op, name, t);
        if (!Arrays.equals(t.shape(), expected)) {
            throw new IllegalArgumentException(op + ": " + name + " has shape " + t.shapeString() + ", expected " + Arrays.toString(expected));
        }
    }

    private static void requireSameShape(String op, String aName, Tensor a, String bName, Tensor b) {
        requireF32(op, aName, a);
        requireF32(op, bName, b);
        if (!a.sameShape(b)) {
            throw new IllegalArgumentException(op + ": " + aName + " " + a.shapeString() + " and " + bName + " " + b.shapeString() + " must have the same shape");
        }
    }

    private static void requireSameNumel(String op, String aName, Tensor a, String bName, Tensor b) {
        requireF32(op, aName, a);
        requireF32(op, bName, b);
        if (a.numel() != b.numel()) {
            throw new IllegalArgumentException(op + ": " + aName + " " + a.shapeString() + " and " + bName + " " + b.shapeString() + " differ in size");
        }
    }
}
