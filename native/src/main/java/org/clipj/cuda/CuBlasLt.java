package org.clipj.cuda;

import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_FLOAT;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;

import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemoryLayout;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.SymbolLookup;
import java.lang.invoke.MethodHandle;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * {@link Blas} over cuBLASLt (libcublasLt.so.13, else .12) with FFM. Row-major C = op(A) @ op(B) is issued
 * as the column-major C^T = op(B)^T @ op(A)^T, so B goes first and the bias epilogue (a vector over the
 * rows of the column-major D) is a vector over the row-major columns n; C and D share one layout (cuBLASLt reads
 * C and writes D, so a separate C adds a residual in the GEMM). One plan per distinct shape and
 * type (matmul descriptor, three layouts, the heuristic's best algorithm) is cached; a call sets the bias
 * pointer and runs cublasLtMatmul with a 32 MiB workspace.
 */
public final class CuBlasLt implements Blas {
    private static final Linker LINKER = Linker.nativeLinker();
    private static final SymbolLookup LIB;
    private static final String LOAD_ERROR;
    private static final List<String> MISSING = new ArrayList<>();

    static {
        SymbolLookup lib = null;
        String error = null;
        try {
            lib = LibraryDiscovery.system().load("cuBLASLt", "libcublasLt.so.13", "libcublasLt.so.12");
        } catch (CudaException e) {
            error = e.getMessage();
        }
        LIB = lib;
        LOAD_ERROR = error;
    }

    private static MethodHandle fn(String name, MemoryLayout... args) {
        if (LIB == null) return null;
        var symbol = LIB.find(name);
        if (symbol.isEmpty()) {
            MISSING.add(name);
            return null;
        }
        return LINKER.downcallHandle(symbol.get(), FunctionDescriptor.of(JAVA_INT, args));
    }

    private static final MethodHandle cublasLtCreate = fn("cublasLtCreate", ADDRESS);
    private static final MethodHandle cublasLtDestroy = fn("cublasLtDestroy", JAVA_LONG);
    private static final MethodHandle cublasLtMatmulDescCreate = fn("cublasLtMatmulDescCreate", ADDRESS, JAVA_INT, JAVA_INT);
    private static final MethodHandle cublasLtMatmulDescDestroy = fn("cublasLtMatmulDescDestroy", JAVA_LONG);
    private static final MethodHandle cublasLtMatmulDescSetAttribute = fn("cublasLtMatmulDescSetAttribute", JAVA_LONG, JAVA_INT, ADDRESS, JAVA_LONG);
    private static final MethodHandle cublasLtMatrixLayoutCreate = fn("cublasLtMatrixLayoutCreate", ADDRESS, JAVA_INT, JAVA_LONG, JAVA_LONG, JAVA_LONG);
    private static final MethodHandle cublasLtMatrixLayoutDestroy = fn("cublasLtMatrixLayoutDestroy", JAVA_LONG);
    private static final MethodHandle cublasLtMatrixLayoutSetAttribute = fn("cublasLtMatrixLayoutSetAttribute", JAVA_LONG, JAVA_INT, ADDRESS, JAVA_LONG);
    private static final MethodHandle cublasLtMatmulPreferenceCreate = fn("cublasLtMatmulPreferenceCreate", ADDRESS);
    private static final MethodHandle cublasLtMatmulPreferenceDestroy = fn("cublasLtMatmulPreferenceDestroy", JAVA_LONG);
    private static final MethodHandle cublasLtMatmulPreferenceSetAttribute = fn("cublasLtMatmulPreferenceSetAttribute", JAVA_LONG, JAVA_INT, ADDRESS, JAVA_LONG);
    private static final MethodHandle cublasLtMatmulAlgoGetHeuristic = fn("cublasLtMatmulAlgoGetHeuristic", JAVA_LONG, JAVA_LONG,
            JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_INT, ADDRESS, ADDRESS);
    private static final MethodHandle cublasLtMatmul = fn("cublasLtMatmul", JAVA_LONG, JAVA_LONG, ADDRESS, JAVA_LONG, JAVA_LONG,
            JAVA_LONG, JAVA_LONG, ADDRESS, JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG, ADDRESS, JAVA_LONG, JAVA_LONG, JAVA_LONG);

    // cublasLt.h / library_types.h constants
    private static final int CUDA_R_32F = 0, CUDA_R_16F = 2, CUDA_R_16BF = 14;
    private static final int COMPUTE_32F = 68, COMPUTE_32F_FAST_TF32 = 77;
    private static final int DESC_TRANSA = 3, DESC_TRANSB = 4, DESC_EPILOGUE = 7, DESC_BIAS_POINTER = 8;
    private static final int EPILOGUE_DEFAULT = 1, EPILOGUE_BIAS = 4;
    private static final int LAYOUT_BATCH_COUNT = 5, LAYOUT_STRIDED_BATCH_OFFSET = 6;
    private static final int PREF_MAX_WORKSPACE_BYTES = 1;
    private static final int PREF_MIN_ALIGNMENT_A = 5, PREF_MIN_ALIGNMENT_B = 6, PREF_MIN_ALIGNMENT_C = 7, PREF_MIN_ALIGNMENT_D = 8;
    private static final long HEURISTIC_RESULT_BYTES = 96; // cublasLtMatmulHeuristicResult_t: algo (64) + size_t + status + float + int[4]
    private static final long WORKSPACE_BYTES = 32L << 20;

    private static final Map<Integer, String> STATUS = Map.of(0, "CUBLAS_STATUS_SUCCESS", 1, "CUBLAS_STATUS_NOT_INITIALIZED",
            3, "CUBLAS_STATUS_ALLOC_FAILED", 7, "CUBLAS_STATUS_INVALID_VALUE", 8, "CUBLAS_STATUS_ARCH_MISMATCH",
            11, "CUBLAS_STATUS_MAPPING_ERROR", 13, "CUBLAS_STATUS_EXECUTION_FAILED", 14, "CUBLAS_STATUS_INTERNAL_ERROR",
            15, "CUBLAS_STATUS_NOT_SUPPORTED", 16, "CUBLAS_STATUS_LICENSE_ERROR");

    /** Name of a cublasStatus_t, e.g. 15 -> CUBLAS_STATUS_NOT_SUPPORTED. */
    public static String statusName(int status) {
        return STATUS.getOrDefault(status, "cublasStatus_" + status);
    }

    /** Null when cuBLASLt can be used, else why not. */
    public static String unavailableReason() {
        if (LOAD_ERROR != null) return LOAD_ERROR;
        if (!MISSING.isEmpty()) return "cuBLASLt lacks " + MISSING;
        return null;
    }

    private record Key(boolean transA, boolean transB, int m, int n, int k, int lda, int ldb, int ldc, boolean bias,
                       Type in, Type out, int batch, long strideA, long strideB, long strideC, int alignA, int alignB,
                       int alignC) {}

    /** The pointer's alignment in bytes, capped at 256 (cuBLASLt assumes 256 unless told otherwise). */
    private static int alignment(long pointer) {
        return pointer == 0 ? 256 : (int) Math.min(256, Long.lowestOneBit(pointer));
    }

    private record Plan(long desc, long layoutA, long layoutB, long layoutC, MemorySegment algo) {}

    private final CudaDriver driver;
    private final boolean allowTf32;
    private final long handle;
    private final long workspace;
    private final Arena arena = Arena.ofShared();
    private final MemorySegment scalars;  // alpha, beta (host pointer mode)
    private final MemorySegment biasPtr;  // the bias pointer attribute's value
    private final Map<Key, Plan> plans = new HashMap<>();

    public CuBlasLt(CudaDriver driver, boolean allowTf32) {
        String reason = unavailableReason();
        if (reason != null) throw new CudaException("cuBLASLt unavailable: " + reason);
        this.driver = driver;
        this.allowTf32 = allowTf32;
        try (Arena scratch = Arena.ofConfined()) {
            MemorySegment out = scratch.allocate(JAVA_LONG);
            check((int) cublasLtCreate.invokeExact(out), "cublasLtCreate", "open cuBLASLt");
            handle = out.get(JAVA_LONG, 0);
        } catch (Throwable t) {
            throw wrap(t, "cublasLtCreate");
        }
        workspace = driver.memAlloc(WORKSPACE_BYTES, "cuBLASLt workspace");
        scalars = arena.allocate(JAVA_FLOAT, 2);
        biasPtr = arena.allocate(JAVA_LONG);
    }

    private static void check(int status, String call, String op) {
        if (status != 0) throw new CudaException(call, status, statusName(status), op);
    }

    private static CudaException wrap(Throwable t, String call) {
        if (t instanceof RuntimeException r) throw r;
        if (t instanceof Error e) throw e;
        return new CudaException(call + ": " + t, t);
    }

    private static int dataType(Type t) {
        return switch (t) {
            case F32 -> CUDA_R_32F;
            case F16 -> CUDA_R_16F;
            case BF16 -> CUDA_R_16BF;
        };
    }

    private long layout(Arena scratch, Type type, long rows, long cols, long ld, int batch, long stride, String op) throws Throwable {
        MemorySegment out = scratch.allocate(JAVA_LONG);
        check((int) cublasLtMatrixLayoutCreate.invokeExact(out, dataType(type), rows, cols, ld), "cublasLtMatrixLayoutCreate", op);
        long layout = out.get(JAVA_LONG, 0);
        if (batch > 1) {
            MemorySegment v = scratch.allocate(JAVA_LONG);
            v.set(JAVA_INT, 0, batch);
            check((int) cublasLtMatrixLayoutSetAttribute.invokeExact(layout, LAYOUT_BATCH_COUNT, v, 4L), "cublasLtMatrixLayoutSetAttribute", op);
            v.set(JAVA_LONG, 0, stride);
            check((int) cublasLtMatrixLayoutSetAttribute.invokeExact(layout, LAYOUT_STRIDED_BATCH_OFFSET, v, 8L), "cublasLtMatrixLayoutSetAttribute", op);
        }
        return layout;
    }

    private Plan plan(Key key, String op) throws Throwable {
        Plan plan = plans.get(key);
        if (plan != null) return plan;
        try (Arena scratch = Arena.ofConfined()) {
            MemorySegment out = scratch.allocate(JAVA_LONG);
            int compute = key.in() == Type.F32 && allowTf32 ? COMPUTE_32F_FAST_TF32 : COMPUTE_32F;
            check((int) cublasLtMatmulDescCreate.invokeExact(out, compute, CUDA_R_32F), "cublasLtMatmulDescCreate", op);
            long desc = out.get(JAVA_LONG, 0);
            MemorySegment v = scratch.allocate(JAVA_LONG);
            // column-major problem: D' (n, m) = op(B') (n, k) @ op(A') (k, m), with B' = B and A' = A as stored
            v.set(JAVA_INT, 0, key.transB() ? 1 : 0);
            check((int) cublasLtMatmulDescSetAttribute.invokeExact(desc, DESC_TRANSA, v, 4L), "cublasLtMatmulDescSetAttribute", op);
            v.set(JAVA_INT, 0, key.transA() ? 1 : 0);
            check((int) cublasLtMatmulDescSetAttribute.invokeExact(desc, DESC_TRANSB, v, 4L), "cublasLtMatmulDescSetAttribute", op);
            v.set(JAVA_INT, 0, key.bias() ? EPILOGUE_BIAS : EPILOGUE_DEFAULT);
            check((int) cublasLtMatmulDescSetAttribute.invokeExact(desc, DESC_EPILOGUE, v, 4L), "cublasLtMatmulDescSetAttribute", op);
            long layoutB = key.transB()
                    ? layout(scratch, key.in(), key.k(), key.n(), key.ldb(), key.batch(), key.strideB(), op)
                    : layout(scratch, key.in(), key.n(), key.k(), key.ldb(), key.batch(), key.strideB(), op);
            long layoutA = key.transA()
                    ? layout(scratch, key.in(), key.m(), key.k(), key.lda(), key.batch(), key.strideA(), op)
                    : layout(scratch, key.in(), key.k(), key.m(), key.lda(), key.batch(), key.strideA(), op);
            long layoutC = layout(scratch, key.out(), key.n(), key.m(), key.ldc(), key.batch(), key.strideC(), op);
            check((int) cublasLtMatmulPreferenceCreate.invokeExact(out), "cublasLtMatmulPreferenceCreate", op);
            long preference = out.get(JAVA_LONG, 0);
            MemorySegment results = scratch.allocate(HEURISTIC_RESULT_BYTES, 16);
            MemorySegment count = scratch.allocate(JAVA_INT);
            try {
                v.set(JAVA_LONG, 0, WORKSPACE_BYTES);
                check((int) cublasLtMatmulPreferenceSetAttribute.invokeExact(preference, PREF_MAX_WORKSPACE_BYTES, v, 8L),
                        "cublasLtMatmulPreferenceSetAttribute", op);
                // offset views may be less aligned than fresh allocations: only algorithms that accept them
                // (cuBLASLt's A is our B and its B our A)
                int[][] alignments = {{PREF_MIN_ALIGNMENT_A, key.alignB()}, {PREF_MIN_ALIGNMENT_B, key.alignA()},
                        {PREF_MIN_ALIGNMENT_C, key.alignC()}, {PREF_MIN_ALIGNMENT_D, key.alignC()}};
                for (int[] attribute : alignments) {
                    v.set(JAVA_INT, 0, attribute[1]);
                    check((int) cublasLtMatmulPreferenceSetAttribute.invokeExact(preference, attribute[0], v, 4L),
                            "cublasLtMatmulPreferenceSetAttribute", op);
                }
                check((int) cublasLtMatmulAlgoGetHeuristic.invokeExact(handle, desc, layoutB, layoutA, layoutC, layoutC,
                        preference, 1, results, count), "cublasLtMatmulAlgoGetHeuristic", op);
            } finally {
                check((int) cublasLtMatmulPreferenceDestroy.invokeExact(preference), "cublasLtMatmulPreferenceDestroy", op);
            }
            if (count.get(JAVA_INT, 0) == 0)
                throw new CudaException("cublasLtMatmulAlgoGetHeuristic", 15, statusName(15), op + ": no algorithm for " + key);
            MemorySegment algo = arena.allocate(64, 16);
            MemorySegment.copy(results, 0, algo, 0, 64);
            plan = new Plan(desc, layoutA, layoutB, layoutC, algo);
            plans.put(key, plan);
            return plan;
        }
    }

    @Override
    public synchronized void matmul(boolean transA, boolean transB, int m, int n, int k, float alpha, long a, int lda,
                                    long b, int ldb, float beta, long c, long d, int ldc, long bias, Type in, Type out, int batch,
                                    long strideA, long strideB, long strideC, long stream, String op) {
        if (in == Type.F32 && out != Type.F32)
            throw new IllegalArgumentException(op + ": F32 inputs need an F32 output (got " + out + ")");
        Key key = new Key(transA, transB, m, n, k, lda, ldb, ldc, bias != 0, in, out, batch, strideA, strideB, strideC,
                alignment(a), alignment(b), Math.min(alignment(c), alignment(d)));
        try {
            Plan plan = plan(key, op);
            if (bias != 0) {
                biasPtr.set(JAVA_LONG, 0, bias);
                check((int) cublasLtMatmulDescSetAttribute.invokeExact(plan.desc(), DESC_BIAS_POINTER, biasPtr, 8L),
                        "cublasLtMatmulDescSetAttribute", op);
            }
            scalars.setAtIndex(JAVA_FLOAT, 0, alpha);
            scalars.setAtIndex(JAVA_FLOAT, 1, beta);
            check((int) cublasLtMatmul.invokeExact(handle, plan.desc(), scalars, b, plan.layoutB(), a, plan.layoutA(),
                    scalars.asSlice(4), c, plan.layoutC(), d, plan.layoutC(), plan.algo(), workspace, WORKSPACE_BYTES, stream),
                    "cublasLtMatmul", op);
        } catch (Throwable t) {
            throw wrap(t, "cublasLtMatmul");
        }
    }

    @Override
    public synchronized void close() {
        try {
            for (Plan p : plans.values()) {
                check((int) cublasLtMatmulDescDestroy.invokeExact(p.desc()), "cublasLtMatmulDescDestroy", "close");
                check((int) cublasLtMatrixLayoutDestroy.invokeExact(p.layoutA()), "cublasLtMatrixLayoutDestroy", "close");
                check((int) cublasLtMatrixLayoutDestroy.invokeExact(p.layoutB()), "cublasLtMatrixLayoutDestroy", "close");
                check((int) cublasLtMatrixLayoutDestroy.invokeExact(p.layoutC()), "cublasLtMatrixLayoutDestroy", "close");
            }
            plans.clear();
            check((int) cublasLtDestroy.invokeExact(handle), "cublasLtDestroy", "close");
        } catch (Throwable t) {
            throw wrap(t, "cublasLtDestroy");
        } finally {
            driver.memFree(workspace);
            arena.close();
        }
    }
}
