package org.clipj.runtime.cpu;

import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;

import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.SymbolLookup;
import java.lang.invoke.MethodHandle;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import java.util.Set;
import java.util.stream.Collectors;

import org.clipj.runtime.Activation;
import org.clipj.runtime.InvalidInputException;

/**
 * The FFM binding of the CPU's native BF16 GEMM (clip-runtime/src/main/c/bf16_gemm.c, AVX512_BF16),
 * built at build time into the jar as {@code org/clipj/runtime/cpu/<os>-<arch>/libclipcpu_bf16.so}.
 * Nothing native is touched until BF16 is asked for: {@link #unavailableReason()} checks the CPU first
 * and only then extracts and loads the library (once per JVM, in the {@link Native} holder's static
 * initializer), with one static final MethodHandle per function called through invokeExact.
 *
 * <p>The downcalls are critical with heap access: activations and outputs are Java float arrays passed
 * as heap segments without a copy. A call computes one tile of C (a few ms at most at CLIP's sizes);
 * the JVM defers a GC safepoint until it returns.
 */
public final class Bf16Gemm {
    /** Columns per packed weight panel (NR in bf16_gemm.c): tiles start at a multiple of it. */
    static final int PANEL = 48;
    /** Rows per micro-tile (MR in bf16_gemm.c): row tiles start at a multiple of it. */
    static final int ROWS = 8;
    /**
     * Comma-separated CPU flags to treat as absent (e.g. {@code avx512_bf16}): simulates a machine
     * without the instructions, for tests and for comparing against F32 on one machine.
     */
    public static final String MASK_PROPERTY = "clip.cpu.mask";
    static final String LIBRARY = "libclipcpu_bf16.so";
    private static final List<String> REQUIRED_FLAGS = List.of("avx512f", "avx512bw", "avx512vl", "avx512dq", "avx512_bf16");

    private Bf16Gemm() {}

    /**
     * Null when this JVM can run the BF16 kernels (loading them on the first such answer), else why
     * not: an OS/arch without the packaged library, a build machine without gcc, a CPU without
     * AVX512_BF16 (or with it masked by {@value #MASK_PROPERTY}), or a load failure.
     */
    public static String unavailableReason() {
        CpuFeatures cpu = CpuFeatures.host();
        Set<String> masked = Arrays.stream(System.getProperty(MASK_PROPERTY, "").split(","))
                .map(String::trim).filter(s -> !s.isEmpty()).collect(Collectors.toSet());
        List<String> lacking = REQUIRED_FLAGS.stream().filter(f -> !cpu.flags().contains(f) || masked.contains(f)).toList();
        if (!lacking.isEmpty()) {
            return "this CPU (" + cpu.model() + ") lacks " + String.join(", ", lacking)
                    + (lacking.stream().anyMatch(masked::contains) ? " (masked by -D" + MASK_PROPERTY + ")" : "")
                    + ", which the native BF16 kernels need";
        }
        return Native.LOAD_ERROR;
    }

    /** "linux-x86_64" style: the resource folder of this OS/arch's library. */
    static String platform() {
        String os = System.getProperty("os.name", "unknown").toLowerCase(Locale.ROOT);
        String arch = System.getProperty("os.arch", "unknown").toLowerCase(Locale.ROOT);
        if (os.startsWith("linux")) os = "linux";
        else if (os.startsWith("mac")) os = "darwin";
        else if (os.startsWith("windows")) os = "windows";
        if (arch.equals("amd64") || arch.equals("x86_64")) arch = "x86_64";
        return os + "-" + arch;
    }

    /** The library and its functions: initialized on first access, which happens only when BF16 is asked for. */
    private static final class Native {
        private static final Linker LINKER = Linker.nativeLinker();
        /** Why the library or one of its functions could not be loaded; null when all are there. */
        static final String LOAD_ERROR;
        // int64_t clip_bf16_packed_elements(int32_t n, int32_t k)
        static final MethodHandle PACKED_ELEMENTS;
        // void clip_bf16_pack(const uint16_t *w, int64_t ldw, int32_t n, int32_t k, uint16_t *packed)
        static final MethodHandle PACK;
        // int32_t clip_bf16_linear_tile(x, ldx, w, n, k, out, ldo, bias, residual, ldr, activation, i0, i1, j0, j1)
        static final MethodHandle TILE;

        static {
            MethodHandle packedElements = null, pack = null, tile = null;
            String error = null;
            try {
                SymbolLookup lib = SymbolLookup.libraryLookup(extract(), Arena.global());
                packedElements = fn(lib, "clip_bf16_packed_elements", FunctionDescriptor.of(JAVA_LONG, JAVA_INT, JAVA_INT));
                pack = fn(lib, "clip_bf16_pack", FunctionDescriptor.ofVoid(ADDRESS, JAVA_LONG, JAVA_INT, JAVA_INT, ADDRESS));
                tile = fn(lib, "clip_bf16_linear_tile", FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_LONG, ADDRESS, JAVA_INT,
                        JAVA_INT, ADDRESS, JAVA_LONG, ADDRESS, ADDRESS, JAVA_LONG, JAVA_INT, JAVA_INT, JAVA_INT, JAVA_INT, JAVA_INT));
            } catch (IllegalStateException | IllegalArgumentException | UncheckedIOException e) {
                error = e.getMessage();
            }
            LOAD_ERROR = error;
            PACKED_ELEMENTS = packedElements;
            PACK = pack;
            TILE = tile;
        }

        private static Path extract() {
            String dir = "/org/clipj/runtime/cpu/" + platform() + "/";
            try (InputStream in = Bf16Gemm.class.getResourceAsStream(dir + LIBRARY)) {
                if (in == null) throw new IllegalStateException(missingReason(dir));
                Path file = Files.createTempFile("libclipcpu_bf16", ".so");
                file.toFile().deleteOnExit();
                Files.copy(in, file, StandardCopyOption.REPLACE_EXISTING);
                return file;
            } catch (IOException e) {
                throw new UncheckedIOException("extracting resource " + dir + LIBRARY + ": " + e.getMessage(), e);
            }
        }

        /** The build's marker text, or a line saying no library was packaged for this platform. */
        private static String missingReason(String dir) {
            try (InputStream in = Bf16Gemm.class.getResourceAsStream(dir + LIBRARY + ".missing")) {
                if (in == null) return "no native BF16 library is packaged for " + platform() + " (built for linux-x86_64 only)";
                return new String(in.readAllBytes(), StandardCharsets.UTF_8).strip();
            } catch (IOException e) {
                throw new UncheckedIOException("reading resource " + dir + LIBRARY + ".missing: " + e.getMessage(), e);
            }
        }

        /** A critical downcall (no thread-state transition; heap arrays passed in place). */
        private static MethodHandle fn(SymbolLookup lib, String name, FunctionDescriptor descriptor) {
            MemorySegment symbol = lib.find(name).orElseThrow(
                    () -> new IllegalStateException(LIBRARY + " lacks " + name + " (a stale build?)"));
            return LINKER.downcallHandle(symbol, descriptor, Linker.Option.critical(true));
        }
    }

    private static void requireAvailable() {
        String reason = unavailableReason();
        if (reason != null) throw new InvalidInputException("BF16 GEMM on the CPU unavailable: " + reason);
    }

    /** A weight (n, k) as BF16 bits packed into the kernel's panels, in 64-byte aligned native memory. */
    record PackedWeight(int n, int k, MemorySegment panels) {
    }

    /** w (n, k): BF16 bits from bits[off] with row stride k, packed once. */
    static PackedWeight pack(short[] bits, int off, int n, int k) {
        requireAvailable();
        try {
            long elements = (long) Native.PACKED_ELEMENTS.invokeExact(n, k);
            MemorySegment panels = Arena.ofAuto().allocate(elements * Short.BYTES, 64);
            Native.PACK.invokeExact(MemorySegment.ofArray(bits).asSlice((long) off * Short.BYTES), (long) k, n, k, panels);
            return new PackedWeight(n, k, panels);
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    /**
     * out[i0:i1, j0:j1] = epilogue(x[i0:i1, :] @ w^T[:, j0:j1]) on the calling thread: x (m, k) from
     * x[xOff] with row stride k, out (m, n) from out[outOff] with row stride n, bias (n) and residual
     * (m, n, from residual[resOff]) each may be null. j0 is a multiple of {@link #PANEL}.
     */
    static void tile(float[] x, int xOff, PackedWeight w, float[] out, int outOff, float[] bias, int biasOff,
                     float[] residual, int resOff, Activation activation, int i0, int i1, int j0, int j1) {
        int n = w.n(), k = w.k();
        int act = activation == null ? 0 : activation == Activation.QUICK_GELU ? 1 : 2;
        MemorySegment b = bias == null ? MemorySegment.NULL : MemorySegment.ofArray(bias).asSlice((long) biasOff * Float.BYTES);
        MemorySegment r = residual == null ? MemorySegment.NULL
                : MemorySegment.ofArray(residual).asSlice((long) resOff * Float.BYTES);
        int status;
        try {
            status = (int) Native.TILE.invokeExact(MemorySegment.ofArray(x).asSlice((long) xOff * Float.BYTES), (long) k,
                    w.panels(), n, k, MemorySegment.ofArray(out).asSlice((long) outOff * Float.BYTES), (long) n, b, r, (long) n,
                    act, i0, i1, j0, j1);
        } catch (Throwable t) {
            throw rethrow(t);
        }
        if (status != 0) {
            throw new IllegalArgumentException("clip_bf16_linear_tile refused rows " + i0 + ".." + i1 + ", columns " + j0 + ".."
                    + j1 + " of (" + n + ", " + k + ")");
        }
    }

    private static RuntimeException rethrow(Throwable t) {
        if (t instanceof RuntimeException r) return r;
        if (t instanceof Error e) throw e;
        return new IllegalStateException(t);
    }
}
