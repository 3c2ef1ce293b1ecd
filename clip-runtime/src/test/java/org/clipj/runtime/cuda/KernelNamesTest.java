package org.clipj.runtime.cuda;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.io.IOException;
import java.lang.reflect.Method;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.Collection;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;

import org.clipj.cuda.CudaDriver;
import org.clipj.cuda.SimCudaDriver;
import org.clipj.kernels.Kernels;
import org.junit.jupiter.api.Test;

/**
 * The kernel names the Java side launches (the constants of the {@code <Family>Kernels} classes) are exactly the
 * {@code __global__} kernels of kernels/src, of the fatbin and of the simulator's registry: a rename on one side, a
 * typo or a dead kernel fails here, not on the first GPU run. Also the naming rule of kernels/README.md: each
 * kernel's wrapper is its name in camelCase, without the variant suffix, in the class of its .cu file.
 */
class KernelNamesTest {
    private static final Path SOURCES = Path.of("..", "kernels", "src");
    // kernels/build.sh's kernel_names: every `extern "C" __global__ void NAME(` (optionally with __launch_bounds__)
    private static final Pattern GLOBAL = Pattern.compile(
            "extern \"C\" +__global__ +(?:__launch_bounds__\\([^)]*\\) +)?void +(?:__launch_bounds__\\([^)]*\\) +)?([A-Za-z_][A-Za-z0-9_]*) *\\(");
    // a cubin names each kernel's code section .text.<kernel>
    private static final Pattern CUBIN_TEXT = Pattern.compile("\\.text\\.([A-Za-z_][A-Za-z0-9_]*)\0");
    // variants of one wrapper: the tensor-core version, the dtypes, the head width
    private static final Pattern VARIANT = Pattern.compile("(_mma)?(_(f32|bf16|f16))*(_hd[0-9]+|_hdany)?$");

    /** Family (the .cu file's name) -> its Java class and the kernels it launches. */
    private static final Map<String, Family> FAMILIES = families(
            new Family("adamw", AdamwKernels.class, AdamwKernels.KERNELS),
            new Family("attention", AttentionKernels.class, AttentionKernels.KERNELS),
            new Family("attnpool", AttnPoolKernels.class, AttnPoolKernels.KERNELS),
            new Family("batchnorm", BatchNormKernels.class, BatchNormKernels.KERNELS),
            new Family("contrastive", ContrastiveKernels.class, ContrastiveKernels.KERNELS),
            new Family("conv", ConvKernels.class, ConvKernels.KERNELS),
            new Family("elementwise", ElementwiseKernels.class, ElementwiseKernels.KERNELS),
            new Family("embedding", EmbeddingKernels.class, EmbeddingKernels.KERNELS),
            new Family("layernorm", LayerNormKernels.class, LayerNormKernels.KERNELS),
            new Family("normalize", NormalizeKernels.class, NormalizeKernels.KERNELS),
            new Family("reduce", ReduceKernels.class, ReduceKernels.KERNELS),
            new Family("similarity", SimilarityKernels.class, SimilarityKernels.KERNELS),
            new Family("softmax", SoftmaxKernels.class, SoftmaxKernels.KERNELS),
            new Family("transpose", TransposeKernels.class, TransposeKernels.KERNELS));

    private record Family(String file, Class<?> kernels, List<String> names) {}

    @Test
    void eachCuFileHasItsClassAndTheyLaunchExactlyItsKernels() throws IOException {
        Set<String> files = new TreeSet<>();
        try (Stream<Path> cu = Files.list(SOURCES)) {
            cu.map(p -> p.getFileName().toString()).filter(n -> n.endsWith(".cu")).forEach(n -> files.add(n.replace(".cu", "")));
        }
        assertEquals(files, new TreeSet<>(FAMILIES.keySet()), "kernels/src/*.cu and the <Family>Kernels classes");
        for (Family family : FAMILIES.values()) {
            assertSameNames(family.file + ".cu", globals(Files.readString(SOURCES.resolve(family.file + ".cu"))),
                    family.kernels.getSimpleName(), family.names);
        }
    }

    @Test
    void theFatbinHoldsExactlyTheKernelsJavaLaunches() {
        byte[] fatbin = Kernels.fatbin().orElse(null);
        assumeTrue(fatbin != null, "no fatbin: " + Kernels.fatbinUnavailableReason());
        Set<String> inFatbin = new TreeSet<>();
        Matcher m = CUBIN_TEXT.matcher(new String(fatbin, StandardCharsets.ISO_8859_1));
        while (m.find()) inFatbin.add(m.group(1));
        assertSameNames("the fatbin", inFatbin, "the <Family>Kernels classes", javaNames());
    }

    @Test
    void theSimulatorRegistersEveryKernelJavaLaunches() {
        Path library = Kernels.simLibrary().orElse(null);
        assumeTrue(library != null, "no simulator: " + Kernels.simLibraryUnavailableReason());
        try (CudaDriver driver = new SimCudaDriver(library)) {
            long module = driver.moduleLoadData(new byte[0]);
            for (String name : javaNames()) assertEquals(name, driver.moduleGetFunction(module, name).name());
        }
    }

    @Test
    void eachKernelHasAWrapperNamedAsItInCamelCase() {
        for (Family family : FAMILIES.values()) {
            Set<String> methods = new TreeSet<>();
            for (Method method : family.kernels.getDeclaredMethods()) methods.add(method.getName());
            for (String kernel : family.names) {
                String wrapper = camelCase(VARIANT.matcher(kernel).replaceFirst(""));
                assertTrue(methods.contains(wrapper), family.kernels.getSimpleName() + " has no wrapper " + wrapper + " for kernel " + kernel);
            }
        }
    }

    /** Fails naming what only one side has. */
    private static void assertSameNames(String aName, Collection<String> a, String bName, Collection<String> b) {
        Set<String> onlyA = new TreeSet<>(a), onlyB = new TreeSet<>(b);
        onlyA.removeAll(b);
        onlyB.removeAll(a);
        if (!onlyA.isEmpty() || !onlyB.isEmpty()) {
            fail("kernel names differ: only in " + aName + ": " + onlyA + "; only in " + bName + ": " + onlyB);
        }
    }

    private static Set<String> javaNames() {
        Set<String> names = new TreeSet<>();
        for (Family family : FAMILIES.values()) {
            for (String name : family.names) {
                if (!names.add(name)) fail(name + " is launched by two families");
            }
        }
        return names;
    }

    private static List<String> globals(String source) {
        Matcher m = GLOBAL.matcher(source);
        return m.results().map(r -> r.group(1)).toList();
    }

    private static String camelCase(String snake) {
        String[] words = snake.split("_");
        StringBuilder s = new StringBuilder(words[0]);
        for (String w : Arrays.copyOfRange(words, 1, words.length)) s.append(Character.toUpperCase(w.charAt(0))).append(w.substring(1));
        return s.toString();
    }

    private static Map<String, Family> families(Family... families) {
        Map<String, Family> byFile = new LinkedHashMap<>();
        for (Family f : families) byFile.put(f.file, f);
        return byFile;
    }
}
