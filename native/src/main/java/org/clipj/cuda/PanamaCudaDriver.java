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
import java.util.ArrayList;
import java.util.List;

/**
 * {@link CudaDriver} over libcuda.so.1 with the Foreign Function & Memory API: one static lookup, one
 * static final MethodHandle per driver function, invokeExact. Handles (CUdeviceptr, CUstream, CUfunction,
 * ...) are passed as 64-bit integers, which the x86-64 and AArch64 C ABIs pass exactly as pointers.
 * Launch arguments come from the caller's reused {@link KernelArgs}: a launch allocates nothing.
 */
public final class PanamaCudaDriver implements CudaDriver {
    private static final Linker LINKER = Linker.nativeLinker();
    private static final String LOAD_ERROR;
    private static final SymbolLookup LIB;
    private static final List<String> MISSING = new ArrayList<>();

    static {
        SymbolLookup lib = null;
        String error = null;
        try {
            lib = LibraryDiscovery.system().load("the CUDA driver library", CudaDrivers.DRIVER_SONAMES);
        } catch (CudaException e) {
            error = e.getMessage();
        }
        LIB = lib;
        LOAD_ERROR = error;
    }

    private static MethodHandle fn(String name, FunctionDescriptor descriptor, Linker.Option... options) {
        if (LIB == null) return null;
        var symbol = LIB.find(name);
        if (symbol.isEmpty()) {
            MISSING.add(name);
            return null;
        }
        return LINKER.downcallHandle(symbol.get(), descriptor, options);
    }

    /** The first of the names the driver exports (newer entry points first). */
    private static MethodHandle fnAny(String name, String fallback, FunctionDescriptor descriptor) {
        if (LIB != null && LIB.find(name).isPresent()) return fn(name, descriptor);
        return fn(fallback, descriptor);
    }

    private static FunctionDescriptor ints(java.lang.foreign.MemoryLayout... args) {
        return FunctionDescriptor.of(JAVA_INT, args);
    }

    private static final MethodHandle cuInit = fn("cuInit", ints(JAVA_INT));
    private static final MethodHandle cuGetErrorName = fn("cuGetErrorName", ints(JAVA_INT, ADDRESS));
    private static final MethodHandle cuDeviceGetCount = fn("cuDeviceGetCount", ints(ADDRESS));
    private static final MethodHandle cuDeviceGet = fn("cuDeviceGet", ints(ADDRESS, JAVA_INT));
    private static final MethodHandle cuDeviceGetName = fn("cuDeviceGetName", ints(ADDRESS, JAVA_INT, JAVA_INT));
    private static final MethodHandle cuDeviceGetAttribute = fn("cuDeviceGetAttribute", ints(ADDRESS, JAVA_INT, JAVA_INT));
    private static final MethodHandle cuDeviceTotalMem = fn("cuDeviceTotalMem_v2", ints(ADDRESS, JAVA_INT));
    private static final MethodHandle cuDevicePrimaryCtxRetain = fn("cuDevicePrimaryCtxRetain", ints(ADDRESS, JAVA_INT));
    private static final MethodHandle cuDevicePrimaryCtxRelease = fn("cuDevicePrimaryCtxRelease_v2", ints(JAVA_INT));
    private static final MethodHandle cuCtxSetCurrent = fn("cuCtxSetCurrent", ints(JAVA_LONG));
    private static final MethodHandle cuCtxGetCurrent = fn("cuCtxGetCurrent", ints(ADDRESS));
    private static final MethodHandle cuMemAlloc = fn("cuMemAlloc_v2", ints(ADDRESS, JAVA_LONG));
    private static final MethodHandle cuMemFree = fn("cuMemFree_v2", ints(JAVA_LONG));
    private static final MethodHandle cuMemAllocHost = fn("cuMemAllocHost_v2", ints(ADDRESS, JAVA_LONG));
    private static final MethodHandle cuMemFreeHost = fn("cuMemFreeHost", ints(ADDRESS));
    private static final MethodHandle cuMemcpyHtoDAsync = fn("cuMemcpyHtoDAsync_v2", ints(JAVA_LONG, ADDRESS, JAVA_LONG, JAVA_LONG));
    private static final MethodHandle cuMemcpyDtoHAsync = fn("cuMemcpyDtoHAsync_v2", ints(ADDRESS, JAVA_LONG, JAVA_LONG, JAVA_LONG));
    private static final MethodHandle cuMemcpyDtoDAsync = fn("cuMemcpyDtoDAsync_v2", ints(JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG));
    private static final MethodHandle cuMemsetD8Async = fn("cuMemsetD8Async", ints(JAVA_LONG, JAVA_BYTE, JAVA_LONG, JAVA_LONG));
    private static final MethodHandle cuMemsetD32Async = fn("cuMemsetD32Async", ints(JAVA_LONG, JAVA_INT, JAVA_LONG, JAVA_LONG));
    private static final MethodHandle cuStreamCreate = fn("cuStreamCreate", ints(ADDRESS, JAVA_INT));
    private static final MethodHandle cuStreamSynchronize = fn("cuStreamSynchronize", ints(JAVA_LONG));
    private static final MethodHandle cuStreamDestroy = fn("cuStreamDestroy_v2", ints(JAVA_LONG));
    private static final MethodHandle cuEventCreate = fn("cuEventCreate", ints(ADDRESS, JAVA_INT));
    private static final MethodHandle cuEventRecord = fn("cuEventRecord", ints(JAVA_LONG, JAVA_LONG));
    private static final MethodHandle cuEventSynchronize = fn("cuEventSynchronize", ints(JAVA_LONG));
    private static final MethodHandle cuEventElapsedTime = fnAny("cuEventElapsedTime_v2", "cuEventElapsedTime", ints(ADDRESS, JAVA_LONG, JAVA_LONG));
    private static final MethodHandle cuEventDestroy = fn("cuEventDestroy_v2", ints(JAVA_LONG));
    private static final MethodHandle cuModuleLoadData = fn("cuModuleLoadData", ints(ADDRESS, ADDRESS));
    private static final MethodHandle cuModuleUnload = fn("cuModuleUnload", ints(JAVA_LONG));
    private static final MethodHandle cuModuleGetFunction = fn("cuModuleGetFunction", ints(ADDRESS, JAVA_LONG, ADDRESS));
    private static final MethodHandle cuFuncSetAttribute = fn("cuFuncSetAttribute", ints(JAVA_LONG, JAVA_INT, JAVA_INT));
    // The launch is short and never calls back into Java: a critical downcall skips the thread-state transition.
    private static final MethodHandle cuLaunchKernel = fn("cuLaunchKernel", ints(JAVA_LONG, JAVA_INT, JAVA_INT, JAVA_INT,
            JAVA_INT, JAVA_INT, JAVA_INT, JAVA_INT, JAVA_LONG, ADDRESS, ADDRESS), Linker.Option.critical(false));
    private static final MethodHandle cuStreamBeginCapture = fn("cuStreamBeginCapture_v2", ints(JAVA_LONG, JAVA_INT));
    private static final MethodHandle cuStreamEndCapture = fn("cuStreamEndCapture", ints(JAVA_LONG, ADDRESS));
    private static final MethodHandle cuGraphInstantiate = fn("cuGraphInstantiateWithFlags", ints(ADDRESS, JAVA_LONG, JAVA_LONG));
    private static final MethodHandle cuGraphDestroy = fn("cuGraphDestroy", ints(JAVA_LONG));
    private static final MethodHandle cuGraphLaunch = fn("cuGraphLaunch", ints(JAVA_LONG, JAVA_LONG));
    private static final MethodHandle cuGraphExecDestroy = fn("cuGraphExecDestroy", ints(JAVA_LONG));

    private static final int ATTR_MULTIPROCESSOR_COUNT = 16;
    private static final int ATTR_CC_MAJOR = 75;
    private static final int ATTR_CC_MINOR = 76;
    private static final int ATTR_MAX_SHARED_PER_BLOCK_OPTIN = 97;
    private static final int FUNC_ATTR_MAX_DYNAMIC_SHARED = 8;
    private static final int CAPTURE_MODE_THREAD_LOCAL = 1;
    private static final int STREAM_NON_BLOCKING = 1;

    private final int device;
    private final long context;
    private final DeviceInfo info;
    // cuCtxGetCurrent's out-parameter, one per (virtual or platform) thread.
    private static final ThreadLocal<MemorySegment> CONTEXT_SLOT = ThreadLocal.withInitial(() -> Arena.ofAuto().allocate(JAVA_LONG));
    private volatile boolean closed;

    /** Whether libcuda could be loaded with every function this binding needs; null if so, else why not. */
    public static String unavailableReason() {
        if (LOAD_ERROR != null) return LOAD_ERROR;
        if (!MISSING.isEmpty()) return "the CUDA driver library lacks " + MISSING + " (driver too old for CUDA 12.x/13.x)";
        return null;
    }

    /** Initializes the driver and makes device {@code ordinal}'s primary context current on this thread. */
    public PanamaCudaDriver(int ordinal) {
        String reason = unavailableReason();
        if (reason != null) throw new CudaException("CUDA binding 'panama' unavailable: " + reason);
        try (Arena arena = Arena.ofConfined()) {
            check((int) cuInit.invokeExact(0), "cuInit", "open device " + ordinal);
            MemorySegment out = arena.allocate(JAVA_LONG);
            check((int) cuDeviceGetCount.invokeExact(out), "cuDeviceGetCount", "open device " + ordinal);
            int count = out.get(JAVA_INT, 0);
            if (ordinal < 0 || ordinal >= count)
                throw new CudaException("CUDA device " + ordinal + " does not exist (" + count + " device(s) visible)");
            check((int) cuDeviceGet.invokeExact(out, ordinal), "cuDeviceGet", "open device " + ordinal);
            device = out.get(JAVA_INT, 0);
            check((int) cuDevicePrimaryCtxRetain.invokeExact(out, device), "cuDevicePrimaryCtxRetain", "open device " + ordinal);
            context = out.get(JAVA_LONG, 0);
            check((int) cuCtxSetCurrent.invokeExact(context), "cuCtxSetCurrent", "open device " + ordinal);
            MemorySegment name = arena.allocate(256);
            check((int) cuDeviceGetName.invokeExact(name, 256, device), "cuDeviceGetName", "open device " + ordinal);
            check((int) cuDeviceTotalMem.invokeExact(out, device), "cuDeviceTotalMem", "open device " + ordinal);
            long total = out.get(JAVA_LONG, 0);
            info = new DeviceInfo(ordinal, name.getString(0), attribute(arena, ATTR_MULTIPROCESSOR_COUNT),
                    attribute(arena, ATTR_CC_MAJOR), attribute(arena, ATTR_CC_MINOR), total,
                    attribute(arena, ATTR_MAX_SHARED_PER_BLOCK_OPTIN));
        } catch (CudaException e) {
            throw e;
        } catch (Throwable t) {
            throw new CudaException("CUDA binding 'panama': opening device " + ordinal + " failed: " + t, t);
        }
    }

    private int attribute(Arena arena, int attribute) throws Throwable {
        MemorySegment out = arena.allocate(JAVA_INT);
        check((int) cuDeviceGetAttribute.invokeExact(out, attribute, device), "cuDeviceGetAttribute", "device info");
        return out.get(JAVA_INT, 0);
    }

    private void check(int status, String call, String op) {
        if (status != 0) throw new CudaException(call, status, errorName(status), op);
    }

    private static CudaException wrap(Throwable t, String call) {
        if (t instanceof CudaException e) return e;
        if (t instanceof RuntimeException r) throw r;
        if (t instanceof Error e) throw e;
        return new CudaException(call + ": " + t, t);
    }

    /**
     * The driver's context is current per OS thread; a virtual thread may run on a different carrier from one
     * call to the next, so each call asks the driver (cuCtxGetCurrent: a thread-local read) and binds when needed.
     */
    private void current() {
        if (closed) throw new CudaException("CUDA driver (panama) used after close()");
        try {
            MemorySegment slot = CONTEXT_SLOT.get();
            check((int) cuCtxGetCurrent.invokeExact(slot), "cuCtxGetCurrent", "bind context");
            if (slot.get(JAVA_LONG, 0) != context) {
                check((int) cuCtxSetCurrent.invokeExact(context), "cuCtxSetCurrent", "bind context to " + Thread.currentThread());
            }
        } catch (Throwable t) {
            throw wrap(t, "cuCtxSetCurrent");
        }
    }

    @Override public String binding() { return "panama"; }

    @Override
    public int deviceCount() {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment out = arena.allocate(JAVA_INT);
            check((int) cuDeviceGetCount.invokeExact(out), "cuDeviceGetCount", "device count");
            return out.get(JAVA_INT, 0);
        } catch (Throwable t) {
            throw wrap(t, "cuDeviceGetCount");
        }
    }

    @Override public DeviceInfo device() { return info; }

    @Override
    public long memAlloc(long bytes, String op) {
        current();
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment out = arena.allocate(JAVA_LONG);
            check((int) cuMemAlloc.invokeExact(out, bytes), "cuMemAlloc", op + " (" + bytes + " bytes)");
            return out.get(JAVA_LONG, 0);
        } catch (Throwable t) {
            throw wrap(t, "cuMemAlloc");
        }
    }

    @Override
    public void memFree(long devicePointer) {
        current();
        try {
            check((int) cuMemFree.invokeExact(devicePointer), "cuMemFree", "free");
        } catch (Throwable t) {
            throw wrap(t, "cuMemFree");
        }
    }

    @Override
    public MemorySegment hostAllocPinned(long bytes) {
        current();
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment out = arena.allocate(ADDRESS);
            check((int) cuMemAllocHost.invokeExact(out, bytes), "cuMemAllocHost", "pinned buffer (" + bytes + " bytes)");
            return out.get(ADDRESS, 0).reinterpret(bytes);
        } catch (Throwable t) {
            throw wrap(t, "cuMemAllocHost");
        }
    }

    @Override
    public void hostFreePinned(MemorySegment pinned) {
        current();
        try {
            check((int) cuMemFreeHost.invokeExact(pinned), "cuMemFreeHost", "free pinned buffer");
        } catch (Throwable t) {
            throw wrap(t, "cuMemFreeHost");
        }
    }

    private static void requireNative(MemorySegment host, long bytes, String op) {
        if (!host.isNative()) throw new IllegalArgumentException(op + ": host memory of a copy must be native (off-heap)");
        if (host.byteSize() < bytes) throw new IllegalArgumentException(op + ": host segment of " + host.byteSize() + " bytes < " + bytes);
    }

    @Override
    public void memcpyHtoD(long dst, MemorySegment src, long bytes, long stream, String op) {
        requireNative(src, bytes, op);
        current();
        try {
            check((int) cuMemcpyHtoDAsync.invokeExact(dst, src, bytes, stream), "cuMemcpyHtoDAsync", op);
        } catch (Throwable t) {
            throw wrap(t, "cuMemcpyHtoDAsync");
        }
    }

    @Override
    public void memcpyDtoH(MemorySegment dst, long src, long bytes, long stream, String op) {
        requireNative(dst, bytes, op);
        current();
        try {
            check((int) cuMemcpyDtoHAsync.invokeExact(dst, src, bytes, stream), "cuMemcpyDtoHAsync", op);
        } catch (Throwable t) {
            throw wrap(t, "cuMemcpyDtoHAsync");
        }
    }

    @Override
    public void memcpyDtoD(long dst, long src, long bytes, long stream, String op) {
        current();
        try {
            check((int) cuMemcpyDtoDAsync.invokeExact(dst, src, bytes, stream), "cuMemcpyDtoDAsync", op);
        } catch (Throwable t) {
            throw wrap(t, "cuMemcpyDtoDAsync");
        }
    }

    @Override
    public void memsetD8(long dst, byte value, long bytes, long stream, String op) {
        current();
        try {
            check((int) cuMemsetD8Async.invokeExact(dst, value, bytes, stream), "cuMemsetD8Async", op);
        } catch (Throwable t) {
            throw wrap(t, "cuMemsetD8Async");
        }
    }

    @Override
    public void memsetD32(long dst, int value, long count, long stream, String op) {
        current();
        try {
            check((int) cuMemsetD32Async.invokeExact(dst, value, count, stream), "cuMemsetD32Async", op);
        } catch (Throwable t) {
            throw wrap(t, "cuMemsetD32Async");
        }
    }

    @Override
    public long streamCreate() {
        current();
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment out = arena.allocate(JAVA_LONG);
            check((int) cuStreamCreate.invokeExact(out, STREAM_NON_BLOCKING), "cuStreamCreate", "create stream");
            return out.get(JAVA_LONG, 0);
        } catch (Throwable t) {
            throw wrap(t, "cuStreamCreate");
        }
    }

    @Override
    public void streamSynchronize(long stream, String op) {
        current();
        try {
            check((int) cuStreamSynchronize.invokeExact(stream), "cuStreamSynchronize", op);
        } catch (Throwable t) {
            throw wrap(t, "cuStreamSynchronize");
        }
    }

    @Override
    public void streamDestroy(long stream) {
        current();
        try {
            check((int) cuStreamDestroy.invokeExact(stream), "cuStreamDestroy", "destroy stream");
        } catch (Throwable t) {
            throw wrap(t, "cuStreamDestroy");
        }
    }

    @Override
    public long eventCreate() {
        current();
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment out = arena.allocate(JAVA_LONG);
            check((int) cuEventCreate.invokeExact(out, 0), "cuEventCreate", "create event");
            return out.get(JAVA_LONG, 0);
        } catch (Throwable t) {
            throw wrap(t, "cuEventCreate");
        }
    }

    @Override
    public void eventRecord(long event, long stream) {
        current();
        try {
            check((int) cuEventRecord.invokeExact(event, stream), "cuEventRecord", "record event");
        } catch (Throwable t) {
            throw wrap(t, "cuEventRecord");
        }
    }

    @Override
    public void eventSynchronize(long event) {
        current();
        try {
            check((int) cuEventSynchronize.invokeExact(event), "cuEventSynchronize", "wait for event");
        } catch (Throwable t) {
            throw wrap(t, "cuEventSynchronize");
        }
    }

    @Override
    public float eventElapsedMs(long start, long end) {
        current();
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment out = arena.allocate(JAVA_FLOAT);
            check((int) cuEventElapsedTime.invokeExact(out, start, end), "cuEventElapsedTime", "event timing");
            return out.get(JAVA_FLOAT, 0);
        } catch (Throwable t) {
            throw wrap(t, "cuEventElapsedTime");
        }
    }

    @Override
    public void eventDestroy(long event) {
        current();
        try {
            check((int) cuEventDestroy.invokeExact(event), "cuEventDestroy", "destroy event");
        } catch (Throwable t) {
            throw wrap(t, "cuEventDestroy");
        }
    }

    @Override
    public long moduleLoadData(byte[] image) {
        current();
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment data = arena.allocate(image.length + 1L, 16);
            MemorySegment.copy(image, 0, data, JAVA_BYTE, 0, image.length); // trailing 0 terminates PTX text
            MemorySegment out = arena.allocate(JAVA_LONG);
            check((int) cuModuleLoadData.invokeExact(out, data), "cuModuleLoadData", "load module (" + image.length + " bytes)");
            return out.get(JAVA_LONG, 0);
        } catch (Throwable t) {
            throw wrap(t, "cuModuleLoadData");
        }
    }

    @Override
    public void moduleUnload(long module) {
        current();
        try {
            check((int) cuModuleUnload.invokeExact(module), "cuModuleUnload", "unload module");
        } catch (Throwable t) {
            throw wrap(t, "cuModuleUnload");
        }
    }

    @Override
    public Function moduleGetFunction(long module, String name) {
        current();
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment out = arena.allocate(JAVA_LONG);
            check((int) cuModuleGetFunction.invokeExact(out, module, arena.allocateFrom(name)), "cuModuleGetFunction", "kernel " + name);
            return new Function(out.get(JAVA_LONG, 0), name);
        } catch (Throwable t) {
            throw wrap(t, "cuModuleGetFunction");
        }
    }

    @Override
    public void funcSetMaxDynamicShared(Function function, int bytes) {
        current();
        try {
            check((int) cuFuncSetAttribute.invokeExact(function.handle(), FUNC_ATTR_MAX_DYNAMIC_SHARED, bytes),
                    "cuFuncSetAttribute", function.name() + " max dynamic shared " + bytes);
        } catch (Throwable t) {
            throw wrap(t, "cuFuncSetAttribute");
        }
    }

    @Override
    public void launchKernel(Function function, int gridX, int gridY, int gridZ, int blockX, int blockY, int blockZ,
                             int sharedBytes, long stream, KernelArgs args) {
        current();
        int status;
        try {
            status = (int) cuLaunchKernel.invokeExact(function.handle(), gridX, gridY, gridZ, blockX, blockY, blockZ,
                    sharedBytes, stream, args.pointers(), MemorySegment.NULL);
        } catch (Throwable t) {
            throw wrap(t, "cuLaunchKernel");
        }
        if (status != 0)
            check(status, "cuLaunchKernel", function.name() + " grid (" + gridX + "," + gridY + "," + gridZ + ") block ("
                    + blockX + "," + blockY + "," + blockZ + ") shared " + sharedBytes);
    }

    @Override
    public void streamBeginCapture(long stream) {
        current();
        try {
            check((int) cuStreamBeginCapture.invokeExact(stream, CAPTURE_MODE_THREAD_LOCAL), "cuStreamBeginCapture", "graph capture");
        } catch (Throwable t) {
            throw wrap(t, "cuStreamBeginCapture");
        }
    }

    @Override
    public long streamEndCaptureAndInstantiate(long stream) {
        current();
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment out = arena.allocate(JAVA_LONG);
            check((int) cuStreamEndCapture.invokeExact(stream, out), "cuStreamEndCapture", "graph capture");
            long graph = out.get(JAVA_LONG, 0);
            try {
                check((int) cuGraphInstantiate.invokeExact(out, graph, 0L), "cuGraphInstantiate", "graph capture");
                return out.get(JAVA_LONG, 0);
            } finally {
                check((int) cuGraphDestroy.invokeExact(graph), "cuGraphDestroy", "graph capture");
            }
        } catch (Throwable t) {
            throw wrap(t, "cuStreamEndCapture");
        }
    }

    @Override
    public void graphLaunch(long graphExec, long stream) {
        current();
        try {
            check((int) cuGraphLaunch.invokeExact(graphExec, stream), "cuGraphLaunch", "graph replay");
        } catch (Throwable t) {
            throw wrap(t, "cuGraphLaunch");
        }
    }

    @Override
    public void graphDestroy(long graphExec) {
        current();
        try {
            check((int) cuGraphExecDestroy.invokeExact(graphExec), "cuGraphExecDestroy", "graph destroy");
        } catch (Throwable t) {
            throw wrap(t, "cuGraphExecDestroy");
        }
    }

    @Override
    public String errorName(int status) {
        if (cuGetErrorName == null) return CudaErrors.name(status);
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment out = arena.allocate(ADDRESS);
            int rc = (int) cuGetErrorName.invokeExact(status, out);
            MemorySegment name = out.get(ADDRESS, 0);
            if (rc != 0 || name.equals(MemorySegment.NULL)) return CudaErrors.name(status);
            return name.reinterpret(256).getString(0);
        } catch (Throwable t) {
            return CudaErrors.name(status);
        }
    }

    @Override
    public void close() {
        if (closed) return;
        closed = true;
        try {
            check((int) cuDevicePrimaryCtxRelease.invokeExact(device), "cuDevicePrimaryCtxRelease", "close");
        } catch (Throwable t) {
            throw wrap(t, "cuDevicePrimaryCtxRelease");
        }
    }
}
