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
 */
public final class SimCudaDriver implements CudaDriver {
    private static final Linker LINKER = Linker.nativeLinker();
    private static final int MAX_PARAMS = 64;

    private final Path library;
    private final MethodHandle simLaunch;
    private final MethodHandle simMalloc;
    private final MethodHandle simFree;
    private final MethodHandle simLastError;
    private final MethodHandle simKernelParams;
    private final MethodHandle simGemm;
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
        simFree = handle(lookup, "sim_free", FunctionDescriptor.ofVoid(JAVA_LONG));
        simLastError = handle(lookup, "sim_last_error", FunctionDescriptor.of(ADDRESS));
        simKernelParams = handle(lookup, "sim_kernel_params", FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS, JAVA_INT));
        simGemm = handle(lookup, "sim_gemm", FunctionDescriptor.of(JAVA_INT, JAVA_INT, JAVA_INT, JAVA_INT, JAVA_INT,
                JAVA_INT, JAVA_FLOAT, JAVA_LONG, JAVA_INT, JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_INT, JAVA_LONG,
                JAVA_LONG, JAVA_FLOAT, JAVA_LONG, JAVA_INT, JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_INT, JAVA_INT));
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
        return new DeviceInfo(0, "clipj simulator (" + library.getFileName() + ")", 1, 9, 0, Runtime.getRuntime().maxMemory(), 227 * 1024);
    }

    @Override
    public long memAlloc(long bytes, String op) {
        open();
        long p;
        try {
            p = (long) simMalloc.invokeExact(bytes);
        } catch (Throwable t) {
            throw new CudaException("sim_malloc: " + t, t);
        }
        if (p == 0) throw new CudaException("cuMemAlloc", CudaErrors.CUDA_ERROR_OUT_OF_MEMORY,
                CudaErrors.name(CudaErrors.CUDA_ERROR_OUT_OF_MEMORY), op + " (" + bytes + " bytes)");
        return p;
    }

    @Override
    public void memFree(long devicePointer) {
        open();
        try {
            simFree.invokeExact(devicePointer);
        } catch (Throwable t) {
            throw new CudaException("sim_free: " + t, t);
        }
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
        submit(stream, () -> MemorySegment.copy(src, 0, at(dst, bytes), 0, bytes));
    }

    @Override
    public void memcpyDtoH(MemorySegment dst, long src, long bytes, long stream, String op) {
        if (dst.byteSize() < bytes) throw new IllegalArgumentException(op + ": host segment of " + dst.byteSize() + " bytes < " + bytes);
        submit(stream, () -> MemorySegment.copy(at(src, bytes), 0, dst, 0, bytes));
    }

    @Override
    public void memcpyDtoD(long dst, long src, long bytes, long stream, String op) {
        submit(stream, () -> MemorySegment.copy(at(src, bytes), 0, at(dst, bytes), 0, bytes));
    }

    @Override
    public void memsetD8(long dst, byte value, long bytes, long stream, String op) {
        submit(stream, () -> at(dst, bytes).fill(value));
    }

    @Override
    public void memsetD32(long dst, int value, long count, long stream, String op) {
        submit(stream, () -> {
            MemorySegment s = at(dst, count * 4);
            for (long i = 0; i < count; i++) s.setAtIndex(JAVA_INT, i, value);
        });
    }

    @Override
    public synchronized long streamCreate() {
        open();
        return nextHandle++;
    }

    @Override public void streamSynchronize(long stream, String op) { open(); }

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

    @Override public void funcSetMaxDynamicShared(Function function, int bytes) { open(); }

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
        synchronized (this) {
            recording = capturing.containsKey(stream);
        }
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
    }

    @Override
    public synchronized long streamEndCaptureAndInstantiate(long stream) {
        open();
        List<Runnable> ops = capturing.remove(stream);
        if (ops == null) throw new CudaException("cuStreamEndCapture", 901, CudaErrors.name(901), "stream " + stream + " is not capturing");
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

    /** Row-major strided-batched GEMM in the simulator library (see {@link SimBlas}); 0 on success. */
    int gemm(int transA, int transB, int m, int n, int k, float alpha, long a, int aType, long lda, long strideA, long b,
             int bType, long ldb, long strideB, float beta, long c, int cType, long ldc, long strideC, long bias,
             int biasType, int batch) {
        try {
            return (int) simGemm.invokeExact(transA, transB, m, n, k, alpha, a, aType, lda, strideA, b, bType, ldb, strideB,
                    beta, c, cType, ldc, strideC, bias, biasType, batch);
        } catch (Throwable t) {
            throw new CudaException("sim_gemm: " + t, t);
        }
    }

    String simLastError() { return lastError(); }

    void submitOp(long stream, Runnable op) { submit(stream, op); }

    @Override
    public synchronized void close() {
        if (closed) return;
        closed = true;
        capturing.clear();
        graphs.clear();
    }
}
