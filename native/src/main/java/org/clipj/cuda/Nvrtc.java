package org.clipj.cuda;

import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;

import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemoryLayout;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.SymbolLookup;
import java.lang.invoke.MethodHandle;
import java.nio.charset.StandardCharsets;
import java.util.List;

/**
 * NVRTC (libnvrtc.so.13, else .12) through FFM: compiles CUDA C++ source text to PTX at run time, which
 * {@link CudaDriver#moduleLoadData} then loads. Compile errors come back as a CudaException with the log.
 * Only GpuPlatformTest uses it today; issue 19's kernel experiments compile variants with it on the device.
 */
public final class Nvrtc {
    private static final Linker LINKER = Linker.nativeLinker();
    private static final SymbolLookup LIB;
    private static final String LOAD_ERROR;

    static {
        SymbolLookup lib = null;
        String error = null;
        try {
            lib = LibraryDiscovery.system().load("NVRTC", "libnvrtc.so.13", "libnvrtc.so.12");
        } catch (CudaException e) {
            error = e.getMessage();
        }
        LIB = lib;
        LOAD_ERROR = error;
    }

    private static MethodHandle fn(String name, MemoryLayout result, MemoryLayout... args) {
        if (LIB == null) return null;
        return LIB.find(name).map(s -> LINKER.downcallHandle(s, FunctionDescriptor.of(result, args))).orElse(null);
    }

    private static final MethodHandle nvrtcCreateProgram = fn("nvrtcCreateProgram", JAVA_INT, ADDRESS, ADDRESS, ADDRESS, JAVA_INT, ADDRESS, ADDRESS);
    private static final MethodHandle nvrtcCompileProgram = fn("nvrtcCompileProgram", JAVA_INT, JAVA_LONG, JAVA_INT, ADDRESS);
    private static final MethodHandle nvrtcGetPTXSize = fn("nvrtcGetPTXSize", JAVA_INT, JAVA_LONG, ADDRESS);
    private static final MethodHandle nvrtcGetPTX = fn("nvrtcGetPTX", JAVA_INT, JAVA_LONG, ADDRESS);
    private static final MethodHandle nvrtcGetProgramLogSize = fn("nvrtcGetProgramLogSize", JAVA_INT, JAVA_LONG, ADDRESS);
    private static final MethodHandle nvrtcGetProgramLog = fn("nvrtcGetProgramLog", JAVA_INT, JAVA_LONG, ADDRESS);
    private static final MethodHandle nvrtcDestroyProgram = fn("nvrtcDestroyProgram", JAVA_INT, ADDRESS);
    private static final MethodHandle nvrtcGetErrorString = fn("nvrtcGetErrorString", ADDRESS, JAVA_INT);

    private Nvrtc() {}

    /** Null when NVRTC can be used, else why not. */
    public static String unavailableReason() {
        if (LOAD_ERROR != null) return LOAD_ERROR;
        if (nvrtcCreateProgram == null || nvrtcCompileProgram == null || nvrtcGetPTX == null || nvrtcGetErrorString == null
                || nvrtcDestroyProgram == null || nvrtcGetPTXSize == null || nvrtcGetProgramLog == null || nvrtcGetProgramLogSize == null)
            return "the NVRTC library lacks an nvrtc* entry point this binding needs";
        return null;
    }

    /** Compiles {@code source} (named {@code name} in messages) with the given options, e.g. "--gpu-architecture=compute_90". */
    public static String compileToPtx(String source, String name, List<String> options) {
        String reason = unavailableReason();
        if (reason != null) throw new CudaException("NVRTC unavailable: " + reason);
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment out = arena.allocate(JAVA_LONG);
            check((int) nvrtcCreateProgram.invokeExact(out, arena.allocateFrom(source), arena.allocateFrom(name), 0,
                    MemorySegment.NULL, MemorySegment.NULL), "nvrtcCreateProgram", name);
            long program = out.get(JAVA_LONG, 0);
            try {
                MemorySegment opts = arena.allocate(ADDRESS, Math.max(1, options.size()));
                for (int i = 0; i < options.size(); i++) opts.setAtIndex(ADDRESS, i, arena.allocateFrom(options.get(i)));
                int rc = (int) nvrtcCompileProgram.invokeExact(program, options.size(), opts);
                if (rc != 0) throw new CudaException("nvrtcCompileProgram", rc, errorName(rc), name + ":\n" + log(arena, program));
                check((int) nvrtcGetPTXSize.invokeExact(program, out), "nvrtcGetPTXSize", name);
                long size = out.get(JAVA_LONG, 0);
                MemorySegment ptx = arena.allocate(size + 1);
                check((int) nvrtcGetPTX.invokeExact(program, ptx), "nvrtcGetPTX", name);
                return ptx.getString(0, StandardCharsets.UTF_8);
            } finally {
                out.set(JAVA_LONG, 0, program);
                check((int) nvrtcDestroyProgram.invokeExact(out), "nvrtcDestroyProgram", name);
            }
        } catch (CudaException e) {
            throw e;
        } catch (Throwable t) {
            throw new CudaException("NVRTC compile of " + name + ": " + t, t);
        }
    }

    private static String log(Arena arena, long program) throws Throwable {
        MemorySegment size = arena.allocate(JAVA_LONG);
        if ((int) nvrtcGetProgramLogSize.invokeExact(program, size) != 0) return "(no log)";
        MemorySegment text = arena.allocate(size.get(JAVA_LONG, 0) + 1);
        if ((int) nvrtcGetProgramLog.invokeExact(program, text) != 0) return "(no log)";
        return text.getString(0, StandardCharsets.UTF_8);
    }

    private static void check(int status, String call, String op) {
        if (status != 0) throw new CudaException(call, status, errorName(status), op);
    }

    /** NVRTC's name for a result code (nvrtcGetErrorString). */
    public static String errorName(int status) {
        try {
            return ((MemorySegment) nvrtcGetErrorString.invokeExact(status)).reinterpret(256).getString(0);
        } catch (Throwable t) {
            return "nvrtcResult_" + status;
        }
    }
}
