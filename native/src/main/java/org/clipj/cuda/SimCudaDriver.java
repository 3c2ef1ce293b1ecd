package org.clipj.cuda;

import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_BYTE;
import static java.lang.foreign.ValueLayout.JAVA_FLOAT;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;

import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.SymbolLookup;
import java.lang.invoke.MethodHandle;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * {@link CudaDriver} over the simulator library (libclipkernels_sim.so, built by kernels/build.sh from the
 * same .cu sources with g++). Device memory is host memory (sim_malloc), copies are memcpy, every stream
 * is synchronous, events read the host clock, a module is the library's compiled-in kernel registry (the
 * image is not interpreted), a launch is sim_launch (blocks in order, threads as fibers), and a captured
 * graph is the list of recorded operations, replayed in order. Launch arguments are checked against the
 * kernel's parameter sizes, so a marshalling mistake is an exception, never a wild pointer.
 *
 * <p>The library checks every device access (memcheck, initcheck, racecheck: kernels/sim/sim_runtime.cpp);
 * this class enforces what a real driver refuses: dynamic shared memory above 48 KiB without
 * {@link #funcSetMaxDynamicShared} (and above the device's 227 KiB at all), and allocation, free or
 * synchronization while a stream is being captured (the capture is then invalidated, as in CUDA's global
 * capture mode), and a block larger than the kernel allows: its {@code __launch_bounds__}, or what its
 * registers per thread (ptxas -v, per architecture) leave of an SM's 65536 registers; static plus
 * dynamic shared memory above 227 KiB. Those limits come from {@code <library>.limits}
 * beside the library (written by kernels/build.sh); without the file, or without nvcc's figures in it, a
 * warning says what goes unchecked. Settings: {@code clip.sim.memory} (or env CLIP_SIM_MEMORY) caps the device memory, in
 * bytes with an optional k/m/g suffix, so out-of-memory paths can be tested; {@code clip.sim.schedule}
 * (or env CLIP_SIM_SCHEDULE) is {@code fifo} (default), {@code reverse} or {@code random[:seed]}: the order
 * in which a barrier or warp collective releases the threads, and the order of a launch's blocks.
 */
public final class SimCudaDriver implements CudaDriver {
    private static final Linker LINKER = Linker.nativeLinker();
    private static final int MAX_PARAMS = 64;
    private static final int DEFAULT_DYNAMIC_SHARED = 48 * 1024;
    private static final int MAX_DYNAMIC_SHARED = 227 * 1024;
    private static final int MAX_THREADS_PER_BLOCK = 1024;
    private static final int REGISTERS_PER_SM = 65536;   // sm_80 and sm_90: also the most one block may use
    private static final int REGISTER_ALLOCATION_UNIT = 256; // registers are given to a warp in units of 256
    private static final System.Logger LOG = System.getLogger(SimCudaDriver.class.getName());

    private final Path library;
    private final MethodHandle simLaunch;
    private final MethodHandle simMalloc;
    private final MethodHandle simFree;
    private final MethodHandle simCheckRange;
    private final MethodHandle simLastError;
    private final MethodHandle simKernelParams;
    private final MethodHandle simGemm;
    private final MethodHandle simMemUsable;
    private final MethodHandle simMemoryInUse;
    private final MethodHandle simMarkWritten;
    private final long memoryCap; // 0: none
    private final String schedule;
    private final Map<String, Integer> dynamicSharedOptIn = new HashMap<>(); // kernel -> bytes allowed
    private final LaunchLimits limits;
    private boolean captureInvalidated; // an illegal call happened during the current capture
    private final Arena arena = Arena.ofAuto(); // kernel names and captured arguments live as long as the driver
    private final Map<String, MemorySegment> kernelNames = new HashMap<>(); // name -> C string
    private final Map<String, int[]> kernelParams = new HashMap<>();
    private final List<Function> functions = new ArrayList<>();
    private final Map<Long, List<Runnable>> capturing = new HashMap<>(); // stream -> operations recorded so far
    private final Map<Long, List<Runnable>> graphs = new HashMap<>();
    private final Map<Long, Long> eventTimes = new HashMap<>();
    private long nextHandle = 1;
    private boolean closed;

    public SimCudaDriver(Path library) {
        if (library == null || !Files.isRegularFile(library))
            throw new CudaException("CUDA binding 'sim' unavailable: simulator library " + library + " not found");
        this.library = library;
        SymbolLookup lookup;
        try {
            lookup = SymbolLookup.libraryLookup(library, Arena.global());
        } catch (IllegalArgumentException e) {
            throw new CudaException("CUDA binding 'sim' unavailable: cannot load " + library + ": " + e.getMessage(), e);
        }
        simLaunch = handle(lookup, "sim_launch", FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_INT, JAVA_INT, JAVA_INT,
                JAVA_INT, JAVA_INT, JAVA_INT, JAVA_INT, ADDRESS));
        simMalloc = handle(lookup, "sim_malloc", FunctionDescriptor.of(JAVA_LONG, JAVA_LONG));
        simFree = handle(lookup, "sim_free", FunctionDescriptor.of(JAVA_INT, JAVA_LONG));
        simCheckRange = handle(lookup, "sim_check_range", FunctionDescriptor.of(JAVA_INT, JAVA_LONG, JAVA_LONG));
        simLastError = handle(lookup, "sim_last_error", FunctionDescriptor.of(ADDRESS));
        simKernelParams = handle(lookup, "sim_kernel_params", FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS, JAVA_INT));
        simGemm = handle(lookup, "sim_gemm", FunctionDescriptor.of(JAVA_INT, JAVA_INT, JAVA_INT, JAVA_INT, JAVA_INT,
                JAVA_INT, JAVA_FLOAT, JAVA_LONG, JAVA_INT, JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_INT, JAVA_LONG,
                JAVA_LONG, JAVA_FLOAT, JAVA_LONG, JAVA_LONG, JAVA_INT, JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_INT, JAVA_INT));
        simMemUsable = handle(lookup, "sim_mem_usable", FunctionDescriptor.of(JAVA_INT, JAVA_LONG, JAVA_LONG));
        simMemoryInUse = handle(lookup, "sim_memory_in_use", FunctionDescriptor.of(JAVA_LONG));
        simMarkWritten = handle(lookup, "sim_mark_written", FunctionDescriptor.ofVoid(JAVA_LONG, JAVA_LONG));
        limits = LaunchLimits.beside(library);
        memoryCap = parseBytes("clip.sim.memory", setting("clip.sim.memory", "CLIP_SIM_MEMORY", "0"));
        schedule = setting("clip.sim.schedule", "CLIP_SIM_SCHEDULE", "fifo");
        try {
            handle(lookup, "sim_set_memory_limit", FunctionDescriptor.ofVoid(JAVA_LONG)).invokeExact(memoryCap);
            int[] order = parseSchedule(schedule);
            handle(lookup, "sim_set_schedule", FunctionDescriptor.ofVoid(JAVA_INT, JAVA_INT, JAVA_LONG))
                    .invokeExact(order[0], order[0], (long) order[1]);
        } catch (CudaException e) {
            throw e;
        } catch (Throwable t) {
            throw new CudaException("sim settings: " + t, t);
        }
    }

    private static String setting(String property, String env, String fallback) {
        String v = System.getProperty(property);
        if (v == null || v.isBlank()) v = System.getenv(env);
        return v == null || v.isBlank() ? fallback : v.trim();
    }

    /** "4096", "64k", "512m", "2g" -> bytes. */
    static long parseBytes(String what, String text) {
        String t = text.toLowerCase(java.util.Locale.ROOT);
        long unit = switch (t.isEmpty() ? ' ' : t.charAt(t.length() - 1)) {
            case 'k' -> 1L << 10;
            case 'm' -> 1L << 20;
            case 'g' -> 1L << 30;
            default -> 1;
        };
        try {
            long v = Long.parseLong(unit == 1 ? t : t.substring(0, t.length() - 1));
            if (v < 0) throw new NumberFormatException("negative");
            return Math.multiplyExact(v, unit);
        } catch (NumberFormatException | ArithmeticException e) {
            throw new CudaException(what + " must be a byte count such as 4096, 64k, 512m or 2g, got '" + text + "'");
        }
    }

    /** "fifo" | "reverse" | "random[:seed]" -> {order, seed} as sim_set_schedule takes them. */
    static int[] parseSchedule(String text) {
        if (text.equals("fifo")) return new int[] {0, 0};
        if (text.equals("reverse")) return new int[] {1, 0};
        if (text.equals("random")) return new int[] {2, 1};
        if (text.startsWith("random:")) {
            try {
                return new int[] {2, Integer.parseInt(text.substring(7))};
            } catch (NumberFormatException e) {
                // falls through to the error below
            }
        }
        throw new CudaException("clip.sim.schedule must be fifo, reverse or random[:seed], got '" + text + "'");
    }

    /** The scheduling order in use ("fifo", "reverse" or "random[:seed]"). */
    public String schedule() { return schedule; }

    /** The device-memory cap in bytes (clip.sim.memory), or 0 when there is none. */
    public long memoryCap() { return memoryCap; }

    /** Device bytes the simulator has allocated now (every driver of this process together). */
    public long memoryInUse() {
        try {
            return (long) simMemoryInUse.invokeExact();
        } catch (Throwable t) {
            throw new CudaException("sim_memory_in_use: " + t, t);
        }
    }

    private MethodHandle handle(SymbolLookup lookup, String name, FunctionDescriptor descriptor) {
        return LINKER.downcallHandle(lookup.find(name).orElseThrow(() -> new CudaException(
                "CUDA binding 'sim' unavailable: " + library + " has no symbol " + name + " (not a clipj simulator library)")),
                descriptor);
    }

    public Path library() { return library; }

    private String lastError() {
        try {
            return ((MemorySegment) simLastError.invokeExact()).reinterpret(4096).getString(0);
        } catch (Throwable t) {
            return "(no detail: " + t + ")";
        }
    }

    private void open() {
        if (closed) throw new CudaException("CUDA driver (sim) used after close()");
    }

    /** Runs an operation now, or records it when the stream is being captured into a graph. */
    private synchronized void submit(long stream, Runnable op) {
        open();
        List<Runnable> recording = capturing.get(stream);
        if (recording != null) recording.add(op);
        else op.run();
    }

    private static MemorySegment at(long address, long bytes) {
        return MemorySegment.ofAddress(address).reinterpret(bytes);
    }

    @Override public String binding() { return "sim"; }

    @Override public int deviceCount() { return 1; }

    @Override
    public DeviceInfo device() {
        return new DeviceInfo(0, "clipj simulator (" + library.getFileName() + ")", 1, 9, 0,
                memoryCap > 0 ? memoryCap : Runtime.getRuntime().maxMemory(), MAX_DYNAMIC_SHARED);
    }

    /** CUDA's global capture mode: a call that is not capturable fails and invalidates the capture. */
    private synchronized void refuseWhileCapturing(String call, String op) {
        if (capturing.isEmpty()) return;
        captureInvalidated = true;
        throw new CudaException(call, 900, CudaErrors.name(900), op + " (not allowed while a stream is being captured into a graph)");
    }

    @Override
    public long memAlloc(long bytes, String op) {
        open();
        refuseWhileCapturing("cuMemAlloc", op + " (" + bytes + " bytes)");
        long p;
        try {
            p = (long) simMalloc.invokeExact(bytes);
        } catch (Throwable t) {
            throw new CudaException("sim_malloc: " + t, t);
        }
        if (p == 0) throw new CudaException("cuMemAlloc", CudaErrors.CUDA_ERROR_OUT_OF_MEMORY,
                CudaErrors.name(CudaErrors.CUDA_ERROR_OUT_OF_MEMORY), op + " (" + bytes + " bytes; " + lastError() + ")");
        return p;
    }

    @Override
    public void memUsable(long devicePointer, long bytes) {
        open();
        int rc;
        try {
            rc = (int) simMemUsable.invokeExact(devicePointer, bytes);
        } catch (Throwable t) {
            throw new CudaException("sim_mem_usable: " + t, t);
        }
        if (rc != 0) throw new CudaException("sim_mem_usable: " + lastError());
    }

    @Override
    public void memFree(long devicePointer) {
        open();
        refuseWhileCapturing("cuMemFree", "free of 0x" + Long.toHexString(devicePointer));
        int rc;
        try {
            rc = (int) simFree.invokeExact(devicePointer);
        } catch (Throwable t) {
            throw new CudaException("sim_free: " + t, t);
        }
        if (rc != 0) throw new CudaException("cuMemFree", CudaErrors.CUDA_ERROR_INVALID_VALUE,
                CudaErrors.name(CudaErrors.CUDA_ERROR_INVALID_VALUE), lastError());
    }

    /** As a real driver refuses a copy or memset that leaves the allocation (CUDA_ERROR_INVALID_VALUE), at the call. */
    private void checkRange(String call, String op, long address, long bytes) {
        int rc;
        try {
            rc = (int) simCheckRange.invokeExact(address, bytes);
        } catch (Throwable t) {
            throw new CudaException("sim_check_range: " + t, t);
        }
        if (rc != 0) throw new CudaException(call, CudaErrors.CUDA_ERROR_INVALID_VALUE, CudaErrors.name(CudaErrors.CUDA_ERROR_INVALID_VALUE),
                op + ": " + lastError());
    }

    @Override
    public MemorySegment hostAllocPinned(long bytes) {
        return at(memAlloc(bytes, "pinned buffer"), bytes);
    }

    @Override
    public void hostFreePinned(MemorySegment pinned) {
        memFree(pinned.address());
    }

    @Override
    public void memcpyHtoD(long dst, MemorySegment src, long bytes, long stream, String op) {
        if (src.byteSize() < bytes) throw new IllegalArgumentException(op + ": host segment of " + src.byteSize() + " bytes < " + bytes);
        checkRange("cuMemcpyHtoD", op, dst, bytes);
        submit(stream, () -> {
            MemorySegment.copy(src, 0, at(dst, bytes), 0, bytes);
            markWritten(dst, bytes);
        });
    }

    /** Device bytes written by the driver (not by a kernel) count as initialized for the library's initcheck. */
    private void markWritten(long address, long bytes) {
        try {
            simMarkWritten.invokeExact(address, bytes);
        } catch (Throwable t) {
            throw new CudaException("sim_mark_written: " + t, t);
        }
    }

    @Override
    public void memcpyDtoH(MemorySegment dst, long src, long bytes, long stream, String op) {
        if (dst.byteSize() < bytes) throw new IllegalArgumentException(op + ": host segment of " + dst.byteSize() + " bytes < " + bytes);
        checkRange("cuMemcpyDtoH", op, src, bytes);
        submit(stream, () -> MemorySegment.copy(at(src, bytes), 0, dst, 0, bytes));
    }

    @Override
    public void memcpyDtoD(long dst, long src, long bytes, long stream, String op) {
        checkRange("cuMemcpyDtoD", op + " (source)", src, bytes);
        checkRange("cuMemcpyDtoD", op + " (destination)", dst, bytes);
        submit(stream, () -> {
            MemorySegment.copy(at(src, bytes), 0, at(dst, bytes), 0, bytes);
            markWritten(dst, bytes);
        });
    }

    @Override
    public void memsetD8(long dst, byte value, long bytes, long stream, String op) {
        checkRange("cuMemsetD8", op, dst, bytes);
        submit(stream, () -> {
            at(dst, bytes).fill(value);
            markWritten(dst, bytes);
        });
    }

    @Override
    public void memsetD32(long dst, int value, long count, long stream, String op) {
        checkRange("cuMemsetD32", op, dst, count * 4);
        submit(stream, () -> {
            MemorySegment s = at(dst, count * 4);
            for (long i = 0; i < count; i++) s.setAtIndex(JAVA_INT, i, value);
            markWritten(dst, count * 4);
        });
    }

    @Override
    public synchronized long streamCreate() {
        open();
        return nextHandle++;
    }

    @Override
    public synchronized void streamSynchronize(long stream, String op) {
        open();
        if (capturing.containsKey(stream)) {
            captureInvalidated = true;
            throw new CudaException("cuStreamSynchronize", 900, CudaErrors.name(900), op + " (the stream is being captured into a graph)");
        }
    }

    @Override public void streamDestroy(long stream) { open(); }

    @Override
    public synchronized long eventCreate() {
        open();
        return nextHandle++;
    }

    @Override
    public void eventRecord(long event, long stream) {
        submit(stream, () -> {
            synchronized (this) {
                eventTimes.put(event, System.nanoTime());
            }
        });
    }

    @Override public void eventSynchronize(long event) { open(); }

    @Override
    public synchronized float eventElapsedMs(long start, long end) {
        Long t0 = eventTimes.get(start), t1 = eventTimes.get(end);
        if (t0 == null || t1 == null) throw new CudaException("cuEventElapsedTime", 600, CudaErrors.name(600), "event not recorded");
        return (t1 - t0) / 1e6f;
    }

    @Override
    public synchronized void eventDestroy(long event) {
        eventTimes.remove(event);
    }

    @Override
    public synchronized long moduleLoadData(byte[] image) {
        open();
        return nextHandle++;
    }

    @Override public void moduleUnload(long module) { open(); }

    @Override
    public synchronized Function moduleGetFunction(long module, String name) {
        open();
        int[] sizes = kernelParams.get(name);
        if (sizes == null) {
            MemorySegment cName = arena.allocateFrom(name);
            int n;
            try (Arena scratch = Arena.ofConfined()) {
                MemorySegment out = scratch.allocate(JAVA_INT, MAX_PARAMS);
                n = (int) simKernelParams.invokeExact(cName, out, MAX_PARAMS);
                if (n < 0) throw new CudaException("cuModuleGetFunction", CudaErrors.CUDA_ERROR_NOT_FOUND,
                        CudaErrors.name(CudaErrors.CUDA_ERROR_NOT_FOUND), "kernel " + name + " (not in " + library.getFileName() + ")");
                sizes = out.asSlice(0, (long) n * 4).toArray(JAVA_INT);
            } catch (CudaException e) {
                throw e;
            } catch (Throwable t) {
                throw new CudaException("sim_kernel_params: " + t, t);
            }
            kernelNames.put(name, cName);
            kernelParams.put(name, sizes);
        }
        Function f = new Function(functions.size(), name);
        functions.add(f);
        return f;
    }

    @Override
    public synchronized void funcSetMaxDynamicShared(Function function, int bytes) {
        open();
        if (bytes < 0 || bytes > MAX_DYNAMIC_SHARED) throw new CudaException("cuFuncSetAttribute", CudaErrors.CUDA_ERROR_INVALID_VALUE,
                CudaErrors.name(CudaErrors.CUDA_ERROR_INVALID_VALUE), function.name() + ": MAX_DYNAMIC_SHARED_SIZE_BYTES " + bytes
                        + " (the device allows at most " + MAX_DYNAMIC_SHARED + ")");
        dynamicSharedOptIn.put(function.name(), bytes);
    }

    @Override
    public void launchKernel(Function function, int gridX, int gridY, int gridZ, int blockX, int blockY, int blockZ,
                             int sharedBytes, long stream, KernelArgs args) {
        MemorySegment name;
        int[] sizes;
        synchronized (this) {
            name = kernelNames.get(function.name());
            sizes = kernelParams.get(function.name());
        }
        if (name == null) throw new CudaException("cuLaunchKernel", CudaErrors.CUDA_ERROR_INVALID_HANDLE,
                CudaErrors.name(CudaErrors.CUDA_ERROR_INVALID_HANDLE), function.name() + " (not from this driver)");
        String refused = limits.refusal(function.name(), blockX * blockY * blockZ, sharedBytes);
        if (refused != null) throw new CudaException("cuLaunchKernel", CudaErrors.CUDA_ERROR_LAUNCH_OUT_OF_RESOURCES,
                CudaErrors.name(CudaErrors.CUDA_ERROR_LAUNCH_OUT_OF_RESOURCES), "kernel " + function.name() + " block (" + blockX
                        + "," + blockY + "," + blockZ + ") shared " + sharedBytes + ": " + refused);
        boolean matches = sizes.length == args.count();
        for (int i = 0; matches && i < sizes.length; i++) matches = sizes[i] == args.size(i);
        if (!matches) {
            StringBuilder want = new StringBuilder("(");
            for (int i = 0; i < sizes.length; i++) want.append(i == 0 ? "" : ", ").append(sizes[i]);
            throw new CudaException("cuLaunchKernel", CudaErrors.CUDA_ERROR_INVALID_VALUE, CudaErrors.name(CudaErrors.CUDA_ERROR_INVALID_VALUE),
                    function.name() + ": argument sizes " + args.describe() + " but the kernel takes " + want + ")");
        }
        String config = function.name() + " grid (" + gridX + "," + gridY + "," + gridZ + ") block (" + blockX + "," + blockY
                + "," + blockZ + ") shared " + sharedBytes;
        boolean recording;
        int allowed;
        synchronized (this) {
            recording = capturing.containsKey(stream);
            allowed = Math.max(DEFAULT_DYNAMIC_SHARED, dynamicSharedOptIn.getOrDefault(function.name(), 0));
        }
        if (sharedBytes > allowed) throw new CudaException("cuLaunchKernel", CudaErrors.CUDA_ERROR_INVALID_VALUE,
                CudaErrors.name(CudaErrors.CUDA_ERROR_INVALID_VALUE), config + ": " + sharedBytes + " bytes of dynamic shared memory but "
                        + "the kernel allows " + allowed + " (above 48 KiB needs cuFuncSetAttribute(MAX_DYNAMIC_SHARED_SIZE_BYTES) first)");
        if (!recording) {
            open();
            launch(name, gridX, gridY, gridZ, blockX, blockY, blockZ, sharedBytes, args.pointers(), config);
            return;
        }
        // A graph keeps the argument values of capture time: copy them out of the reused KernelArgs.
        int n = args.count();
        MemorySegment values = arena.allocate((long) Math.max(n, 1) * KernelArgs.SLOT_BYTES, 16);
        MemorySegment.copy(args.values(), 0, values, 0, (long) n * KernelArgs.SLOT_BYTES);
        MemorySegment pointers = arena.allocate(ADDRESS, Math.max(n, 1));
        for (int i = 0; i < n; i++) pointers.setAtIndex(ADDRESS, i, values.asSlice((long) i * KernelArgs.SLOT_BYTES));
        submit(stream, () -> launch(name, gridX, gridY, gridZ, blockX, blockY, blockZ, sharedBytes, pointers, config));
    }

    private void launch(MemorySegment name, int gx, int gy, int gz, int bx, int by, int bz, int shared,
                        MemorySegment pointers, String config) {
        int rc;
        try {
            rc = (int) simLaunch.invokeExact(name, gx, gy, gz, bx, by, bz, shared, pointers);
        } catch (Throwable t) {
            throw new CudaException("sim_launch: " + t, t);
        }
        if (rc != 0) {
            int status = switch (rc) {
                case 1 -> CudaErrors.CUDA_ERROR_NOT_FOUND;
                case 2 -> CudaErrors.CUDA_ERROR_INVALID_VALUE;
                default -> CudaErrors.CUDA_ERROR_LAUNCH_FAILED;
            };
            throw new CudaException("cuLaunchKernel", status, CudaErrors.name(status), config + ": " + lastError());
        }
    }

    @Override
    public synchronized void streamBeginCapture(long stream) {
        open();
        if (capturing.containsKey(stream))
            throw new CudaException("cuStreamBeginCapture", 900, CudaErrors.name(900), "stream " + stream + " is already capturing");
        capturing.put(stream, new ArrayList<>());
        captureInvalidated = false;
    }

    @Override
    public synchronized long streamEndCaptureAndInstantiate(long stream) {
        open();
        List<Runnable> ops = capturing.remove(stream);
        if (ops == null) throw new CudaException("cuStreamEndCapture", 901, CudaErrors.name(901), "stream " + stream + " is not capturing");
        if (captureInvalidated) {
            captureInvalidated = false;
            throw new CudaException("cuStreamEndCapture", 901, CudaErrors.name(901),
                    "stream " + stream + " (a call during the capture was not allowed)");
        }
        long graph = nextHandle++;
        graphs.put(graph, List.copyOf(ops));
        return graph;
    }

    @Override
    public void graphLaunch(long graphExec, long stream) {
        List<Runnable> ops;
        synchronized (this) {
            ops = graphs.get(graphExec);
        }
        if (ops == null) throw new CudaException("cuGraphLaunch", CudaErrors.CUDA_ERROR_INVALID_HANDLE,
                CudaErrors.name(CudaErrors.CUDA_ERROR_INVALID_HANDLE), "graph " + graphExec);
        for (Runnable op : ops) submit(stream, op);
    }

    @Override
    public synchronized void graphDestroy(long graphExec) {
        graphs.remove(graphExec);
    }

    @Override public String errorName(int status) { return CudaErrors.name(status); }

    /** Row-major strided-batched GEMM in the simulator library (see {@link SimBlas}), d = ... + beta c; 0 on success. */
    int gemm(int transA, int transB, int m, int n, int k, float alpha, long a, int aType, long lda, long strideA, long b,
             int bType, long ldb, long strideB, float beta, long c, long d, int cType, long ldc, long strideC, long bias,
             int biasType, int batch) {
        try {
            return (int) simGemm.invokeExact(transA, transB, m, n, k, alpha, a, aType, lda, strideA, b, bType, ldb, strideB,
                    beta, c, d, cType, ldc, strideC, bias, biasType, batch);
        } catch (Throwable t) {
            throw new CudaException("sim_gemm: " + t, t);
        }
    }

    String simLastError() { return lastError(); }

    /**
     * What a launch of each kernel may not exceed (kernels/build.sh writes them beside the library as
     * {@code <library>.limits}): launch bounds by kernel, and per architecture the registers per thread and
     * static shared bytes ptxas reported. {@code unchecked} says what is not known (null when all is).
     */
    record LaunchLimits(Map<String, Integer> launchBounds, Map<String, Map<String, int[]>> ptxasByKernel, String unchecked) {
        static LaunchLimits beside(Path library) {
            Path file = library.resolveSibling(library.getFileName() + ".limits");
            Map<String, Integer> bounds = new HashMap<>();
            Map<String, Map<String, int[]>> ptxas = new HashMap<>();
            String unchecked = null;
            if (!Files.isRegularFile(file)) {
                unchecked = "no " + file.getFileName() + " beside the library: launch bounds, registers per thread and static shared "
                        + "memory are not checked";
            } else {
                List<String> lines;
                try {
                    lines = Files.readAllLines(file);
                } catch (java.io.IOException e) {
                    throw new CudaException("CUDA binding 'sim': cannot read " + file + ": " + e.getMessage(), e);
                }
                for (String line : lines) {
                    String[] f = line.strip().split(" ");
                    try {
                        switch (f[0]) {
                            case "bounds" -> bounds.put(f[1], Integer.parseInt(f[2]));
                            case "ptxas" -> ptxas.computeIfAbsent(f[2], k -> new java.util.TreeMap<>())
                                    .put(f[1], new int[] {Integer.parseInt(f[3]), Integer.parseInt(f[4])});
                            case "unknown" -> unchecked = "registers per thread and static shared memory are not checked: "
                                    + line.strip().substring("unknown".length()).strip();
                            default -> {
                                if (!f[0].isEmpty() && !f[0].startsWith("#")) throw new NumberFormatException("unknown record");
                            }
                        }
                    } catch (RuntimeException e) {
                        throw new CudaException("CUDA binding 'sim': " + file + ": malformed line '" + line + "' (" + e.getMessage() + ")");
                    }
                }
            }
            if (unchecked != null) LOG.log(System.Logger.Level.WARNING, "CUDA simulator " + library.getFileName() + ": " + unchecked);
            return new LaunchLimits(Map.copyOf(bounds), Map.copyOf(ptxas), unchecked);
        }

        /** The most threads a block of a kernel with this many registers per thread may have. */
        static int threadsAllowedByRegisters(int registersPerThread) {
            int perWarp = ceilTo(registersPerThread * 32, REGISTER_ALLOCATION_UNIT);
            return Math.min(MAX_THREADS_PER_BLOCK, perWarp == 0 ? MAX_THREADS_PER_BLOCK : REGISTERS_PER_SM / perWarp * 32);
        }

        private static int ceilTo(int x, int unit) {
            return (x + unit - 1) / unit * unit;
        }

        /**
         * Why a real driver refuses this launch for the kernel's resources (CUDA_ERROR_LAUNCH_OUT_OF_RESOURCES), or null
         * when it does not (more than 1024 threads is CUDA_ERROR_INVALID_VALUE, from the library's own launch check).
         */
        String refusal(String kernel, int threads, int dynamicShared) {
            Integer bound = launchBounds.get(kernel);
            if (bound != null && threads > bound)
                return threads + " threads per block, more than its __launch_bounds__(" + bound + ") allows";
            for (Map.Entry<String, int[]> arch : ptxasByKernel.getOrDefault(kernel, Map.of()).entrySet()) {
                int registers = arch.getValue()[0], staticShared = arch.getValue()[1];
                int allowed = threadsAllowedByRegisters(registers);
                int warps = (threads + 31) / 32;
                if (threads > allowed) return threads + " threads per block (" + warps + " warps) need " + warps + " x "
                        + ceilTo(registers * 32, REGISTER_ALLOCATION_UNIT) + " registers, but an SM has " + REGISTERS_PER_SM
                        + ": its " + registers + " registers per thread (ptxas, " + arch.getKey() + ") allow at most " + allowed
                        + " threads per block";
                if ((long) staticShared + dynamicShared > MAX_DYNAMIC_SHARED) return staticShared + " bytes of static shared memory (ptxas, "
                        + arch.getKey() + ") + " + dynamicShared + " dynamic exceed the " + MAX_DYNAMIC_SHARED + " a block may have";
            }
            return null;
        }
    }

    void submitOp(long stream, Runnable op) { submit(stream, op); }

    @Override
    public synchronized void close() {
        if (closed) return;
        closed = true;
        capturing.clear();
        graphs.clear();
    }
}
