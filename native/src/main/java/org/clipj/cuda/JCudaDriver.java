package org.clipj.cuda;

import java.lang.foreign.MemorySegment;
import java.lang.reflect.Method;
import java.nio.charset.StandardCharsets;
import java.util.HashMap;
import java.util.Map;

import jcuda.NativePointerObject;
import jcuda.Pointer;
import jcuda.driver.CUcontext;
import jcuda.driver.CUdevice;
import jcuda.driver.CUdeviceptr;
import jcuda.driver.CUevent;
import jcuda.driver.CUfunction;
import jcuda.driver.CUgraph;
import jcuda.driver.CUgraphExec;
import jcuda.driver.CUmodule;
import jcuda.driver.CUresult;
import jcuda.driver.CUstream;

/**
 * {@link CudaDriver} over JCuda 12.6 (JNI), kept only to compare launch overhead with the FFM binding.
 * Device pointers cross as raw addresses (a CUdeviceptr at byte offset = address); streams, events,
 * modules, functions and graphs are JCuda objects kept in tables under long handles.
 */
public final class JCudaDriver implements CudaDriver {
    private static final Method NATIVE_POINTER;

    static {
        try {
            NATIVE_POINTER = NativePointerObject.class.getDeclaredMethod("getNativePointer");
            NATIVE_POINTER.setAccessible(true);
        } catch (ReflectiveOperationException e) {
            throw new ExceptionInInitializerError(e);
        }
    }

    private final CUdevice device = new CUdevice();
    private final CUcontext context = new CUcontext();
    private final DeviceInfo info;
    private final Map<Long, Object> handles = new HashMap<>();
    private final ThreadLocal<Boolean> contextCurrent = ThreadLocal.withInitial(() -> Boolean.FALSE);
    private long nextHandle = 1;
    private KernelArgs lastArgs;
    private Pointer lastArgsPointer;

    public JCudaDriver(int ordinal) {
        try {
            jcuda.driver.JCudaDriver.setExceptionsEnabled(false);
            check(jcuda.driver.JCudaDriver.cuInit(0), "cuInit", "open device " + ordinal);
        } catch (UnsatisfiedLinkError | NoClassDefFoundError e) {
            throw new CudaException("CUDA binding 'jcuda' unavailable: " + e.getMessage(), e);
        }
        int[] count = new int[1];
        check(jcuda.driver.JCudaDriver.cuDeviceGetCount(count), "cuDeviceGetCount", "open device " + ordinal);
        if (ordinal < 0 || ordinal >= count[0])
            throw new CudaException("CUDA device " + ordinal + " does not exist (" + count[0] + " device(s) visible)");
        check(jcuda.driver.JCudaDriver.cuDeviceGet(device, ordinal), "cuDeviceGet", "open device " + ordinal);
        check(jcuda.driver.JCudaDriver.cuDevicePrimaryCtxRetain(context, device), "cuDevicePrimaryCtxRetain", "open device " + ordinal);
        check(jcuda.driver.JCudaDriver.cuCtxSetCurrent(context), "cuCtxSetCurrent", "open device " + ordinal);
        contextCurrent.set(Boolean.TRUE);
        byte[] name = new byte[256];
        check(jcuda.driver.JCudaDriver.cuDeviceGetName(name, name.length, device), "cuDeviceGetName", "device info");
        int len = 0;
        while (len < name.length && name[len] != 0) len++;
        long[] total = new long[1];
        check(jcuda.driver.JCudaDriver.cuDeviceTotalMem(total, device), "cuDeviceTotalMem", "device info");
        info = new DeviceInfo(ordinal, new String(name, 0, len, StandardCharsets.UTF_8), attribute(16), attribute(75),
                attribute(76), total[0], attribute(97));
    }

    private int attribute(int attribute) {
        int[] out = new int[1];
        check(jcuda.driver.JCudaDriver.cuDeviceGetAttribute(out, attribute, device), "cuDeviceGetAttribute", "device info");
        return out[0];
    }

    private void check(int status, String call, String op) {
        if (status != 0) throw new CudaException(call, status, errorName(status), op);
    }

    private void current() {
        if (!contextCurrent.get()) {
            check(jcuda.driver.JCudaDriver.cuCtxSetCurrent(context), "cuCtxSetCurrent", "bind context");
            contextCurrent.set(Boolean.TRUE);
        }
    }

    private static long address(NativePointerObject p) {
        try {
            return (long) NATIVE_POINTER.invoke(p);
        } catch (ReflectiveOperationException e) {
            throw new CudaException("JCuda pointer: " + e, e);
        }
    }

    private static CUdeviceptr devicePointer(long address) {
        return new CUdeviceptr().withByteOffset(address);
    }

    private static Pointer host(MemorySegment segment, long bytes) {
        if (!segment.isNative()) throw new IllegalArgumentException("host memory of a copy must be native (off-heap)");
        return Pointer.to(segment.asSlice(0, bytes).asByteBuffer());
    }

    private synchronized long register(Object handle) {
        long id = nextHandle++;
        handles.put(id, handle);
        return id;
    }

    private synchronized <T> T lookup(long id, Class<T> type) {
        if (id == 0 && type == CUstream.class) return null; // the legacy default stream
        Object o = handles.get(id);
        if (!type.isInstance(o))
            throw new CudaException("unknown " + type.getSimpleName() + " handle " + id + " for the jcuda binding");
        return type.cast(o);
    }

    @Override public String binding() { return "jcuda"; }

    @Override
    public int deviceCount() {
        int[] count = new int[1];
        check(jcuda.driver.JCudaDriver.cuDeviceGetCount(count), "cuDeviceGetCount", "device count");
        return count[0];
    }

    @Override public DeviceInfo device() { return info; }

    @Override
    public long memAlloc(long bytes, String op) {
        current();
        CUdeviceptr p = new CUdeviceptr();
        check(jcuda.driver.JCudaDriver.cuMemAlloc(p, bytes), "cuMemAlloc", op + " (" + bytes + " bytes)");
        return address(p);
    }

    @Override
    public void memFree(long devicePointer) {
        current();
        check(jcuda.driver.JCudaDriver.cuMemFree(devicePointer(devicePointer)), "cuMemFree", "free");
    }

    @Override
    public MemorySegment hostAllocPinned(long bytes) {
        current();
        Pointer p = new Pointer();
        check(jcuda.driver.JCudaDriver.cuMemAllocHost(p, bytes), "cuMemAllocHost", "pinned buffer (" + bytes + " bytes)");
        return MemorySegment.ofAddress(address(p)).reinterpret(bytes);
    }

    @Override
    public void hostFreePinned(MemorySegment pinned) {
        current();
        check(jcuda.driver.JCudaDriver.cuMemFreeHost(new Pointer().withByteOffset(pinned.address())), "cuMemFreeHost", "free pinned buffer");
    }

    @Override
    public void memcpyHtoD(long dst, MemorySegment src, long bytes, long stream, String op) {
        current();
        check(jcuda.driver.JCudaDriver.cuMemcpyHtoDAsync(devicePointer(dst), host(src, bytes), bytes, lookup(stream, CUstream.class)),
                "cuMemcpyHtoDAsync", op);
    }

    @Override
    public void memcpyDtoH(MemorySegment dst, long src, long bytes, long stream, String op) {
        current();
        check(jcuda.driver.JCudaDriver.cuMemcpyDtoHAsync(host(dst, bytes), devicePointer(src), bytes, lookup(stream, CUstream.class)),
                "cuMemcpyDtoHAsync", op);
    }

    @Override
    public void memcpyDtoD(long dst, long src, long bytes, long stream, String op) {
        current();
        check(jcuda.driver.JCudaDriver.cuMemcpyDtoDAsync(devicePointer(dst), devicePointer(src), bytes, lookup(stream, CUstream.class)),
                "cuMemcpyDtoDAsync", op);
    }

    @Override
    public void memsetD8(long dst, byte value, long bytes, long stream, String op) {
        current();
        check(jcuda.driver.JCudaDriver.cuMemsetD8Async(devicePointer(dst), value, bytes, lookup(stream, CUstream.class)), "cuMemsetD8Async", op);
    }

    @Override
    public void memsetD32(long dst, int value, long count, long stream, String op) {
        current();
        check(jcuda.driver.JCudaDriver.cuMemsetD32Async(devicePointer(dst), value, count, lookup(stream, CUstream.class)), "cuMemsetD32Async", op);
    }

    @Override
    public long streamCreate() {
        current();
        CUstream s = new CUstream();
        check(jcuda.driver.JCudaDriver.cuStreamCreate(s, 1), "cuStreamCreate", "create stream");
        return register(s);
    }

    @Override
    public void streamSynchronize(long stream, String op) {
        current();
        check(jcuda.driver.JCudaDriver.cuStreamSynchronize(lookup(stream, CUstream.class)), "cuStreamSynchronize", op);
    }

    @Override
    public void streamDestroy(long stream) {
        current();
        check(jcuda.driver.JCudaDriver.cuStreamDestroy(lookup(stream, CUstream.class)), "cuStreamDestroy", "destroy stream");
        synchronized (this) {
            handles.remove(stream);
        }
    }

    @Override
    public long eventCreate() {
        current();
        CUevent e = new CUevent();
        check(jcuda.driver.JCudaDriver.cuEventCreate(e, 0), "cuEventCreate", "create event");
        return register(e);
    }

    @Override
    public void eventRecord(long event, long stream) {
        current();
        check(jcuda.driver.JCudaDriver.cuEventRecord(lookup(event, CUevent.class), lookup(stream, CUstream.class)), "cuEventRecord", "record event");
    }

    @Override
    public void eventSynchronize(long event) {
        current();
        check(jcuda.driver.JCudaDriver.cuEventSynchronize(lookup(event, CUevent.class)), "cuEventSynchronize", "wait for event");
    }

    @Override
    public float eventElapsedMs(long start, long end) {
        current();
        float[] ms = new float[1];
        check(jcuda.driver.JCudaDriver.cuEventElapsedTime(ms, lookup(start, CUevent.class), lookup(end, CUevent.class)),
                "cuEventElapsedTime", "event timing");
        return ms[0];
    }

    @Override
    public void eventDestroy(long event) {
        current();
        check(jcuda.driver.JCudaDriver.cuEventDestroy(lookup(event, CUevent.class)), "cuEventDestroy", "destroy event");
        synchronized (this) {
            handles.remove(event);
        }
    }

    @Override
    public long moduleLoadData(byte[] image) {
        current();
        CUmodule m = new CUmodule();
        byte[] terminated = java.util.Arrays.copyOf(image, image.length + 1);
        check(jcuda.driver.JCudaDriver.cuModuleLoadData(m, terminated), "cuModuleLoadData", "load module (" + image.length + " bytes)");
        return register(m);
    }

    @Override
    public void moduleUnload(long module) {
        current();
        check(jcuda.driver.JCudaDriver.cuModuleUnload(lookup(module, CUmodule.class)), "cuModuleUnload", "unload module");
        synchronized (this) {
            handles.remove(module);
        }
    }

    @Override
    public Function moduleGetFunction(long module, String name) {
        current();
        CUfunction f = new CUfunction();
        check(jcuda.driver.JCudaDriver.cuModuleGetFunction(f, lookup(module, CUmodule.class), name), "cuModuleGetFunction", "kernel " + name);
        return new Function(register(f), name);
    }

    @Override
    public void funcSetMaxDynamicShared(Function function, int bytes) {
        current();
        check(jcuda.driver.JCudaDriver.cuFuncSetAttribute(lookup(function.handle(), CUfunction.class), 8, bytes),
                "cuFuncSetAttribute", function.name() + " max dynamic shared " + bytes);
    }

    @Override
    public void launchKernel(Function function, int gridX, int gridY, int gridZ, int blockX, int blockY, int blockZ,
                             int sharedBytes, long stream, KernelArgs args) {
        current();
        Pointer params;
        synchronized (this) {
            if (args != lastArgs) { // the void** array of a KernelArgs never moves: wrap it once
                lastArgs = args;
                lastArgsPointer = Pointer.to(args.pointers().asByteBuffer());
            }
            params = lastArgsPointer;
        }
        int status = jcuda.driver.JCudaDriver.cuLaunchKernel(lookup(function.handle(), CUfunction.class), gridX, gridY, gridZ,
                blockX, blockY, blockZ, sharedBytes, lookup(stream, CUstream.class), params, null);
        if (status != 0) check(status, "cuLaunchKernel", function.name());
    }

    @Override
    public void streamBeginCapture(long stream) {
        current();
        check(jcuda.driver.JCudaDriver.cuStreamBeginCapture(lookup(stream, CUstream.class), 1), "cuStreamBeginCapture", "graph capture");
    }

    @Override
    public long streamEndCaptureAndInstantiate(long stream) {
        current();
        CUgraph graph = new CUgraph();
        check(jcuda.driver.JCudaDriver.cuStreamEndCapture(lookup(stream, CUstream.class), graph), "cuStreamEndCapture", "graph capture");
        CUgraphExec exec = new CUgraphExec();
        try {
            check(jcuda.driver.JCudaDriver.cuGraphInstantiate(exec, graph, 0L), "cuGraphInstantiate", "graph capture");
        } finally {
            check(jcuda.driver.JCudaDriver.cuGraphDestroy(graph), "cuGraphDestroy", "graph capture");
        }
        return register(exec);
    }

    @Override
    public void graphLaunch(long graphExec, long stream) {
        current();
        check(jcuda.driver.JCudaDriver.cuGraphLaunch(lookup(graphExec, CUgraphExec.class), lookup(stream, CUstream.class)),
                "cuGraphLaunch", "graph replay");
    }

    @Override
    public void graphDestroy(long graphExec) {
        current();
        check(jcuda.driver.JCudaDriver.cuGraphExecDestroy(lookup(graphExec, CUgraphExec.class)), "cuGraphExecDestroy", "graph destroy");
        synchronized (this) {
            handles.remove(graphExec);
        }
    }

    @Override
    public String errorName(int status) {
        String name = CUresult.stringFor(status);
        return name == null || name.startsWith("INVALID") ? CudaErrors.name(status) : name;
    }

    @Override
    public void close() {
        check(jcuda.driver.JCudaDriver.cuDevicePrimaryCtxRelease(device), "cuDevicePrimaryCtxRelease", "close");
    }
}
