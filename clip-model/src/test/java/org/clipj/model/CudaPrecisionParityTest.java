package org.clipj.model;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.lang.reflect.InvocationTargetException;
import java.lang.reflect.Proxy;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;
import java.util.stream.Collectors;

import org.clipj.kernels.Kernels;
import org.clipj.runtime.Backend;
import org.clipj.runtime.DType;
import org.clipj.runtime.InvalidInputException;
import org.clipj.runtime.Tensor;
import org.clipj.runtime.cpu.Bf16Gemm;
import org.clipj.runtime.cpu.CpuBackend;
import org.clipj.runtime.cuda.CudaBackend;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * Mixed-precision inference on the simulator binding: the tiny golden models with BF16 and F16 GEMM
 * weights give image and text features with cosine similarity >= 0.999 to openai/CLIP's F32 outputs
 * (per row), F32 stays within 1e-3; BF16 on the CPU backend and training on a 16-bit model are errors.
 * A 16-bit model's blocks run on 16-bit activations around the F32 residual stream, and its forward
 * zero-fills no buffer it then overwrites.
 */
class CudaPrecisionParityTest {
    private static final double MIN_COSINE = 0.999;
    private static CudaBackend cuda;

    @BeforeAll
    static void open() {
        assumeTrue(Kernels.simLibrary().isPresent(), "simulator library not built: " + Kernels.simLibraryUnavailableReason());
        cuda = CudaBackend.open("sim");
    }

    @AfterAll
    static void close() {
        if (cuda != null) cuda.close();
    }

    @Test
    void tinyVitBf16() {
        check("tiny-vit", Precision.BF16);
    }

    @Test
    void tinyVitF16() {
        check("tiny-vit", Precision.F16);
    }

    @Test
    void tinyResNetBf16() {
        check("tiny-rn", Precision.BF16);
    }

    @Test
    void tinyResNetF16() {
        check("tiny-rn", Precision.F16);
    }

    @Test
    void f32StaysWithin1e3() {
        for (String name : new String[]{"tiny-vit", "tiny-rn"}) {
            Map<String, Tensor> golden = GoldenData.golden(name);
            ClipModel model = ClipModel.fromStateDict(GoldenData.model(name), cuda, Precision.F32);
            float img = GoldenData.maxDiff(name + " image", GoldenData.get(golden, "output.image_features"),
                    cuda.download(model.encodeImage(GoldenData.get(golden, "input.image"))));
            float txt = GoldenData.maxDiff(name + " text", GoldenData.get(golden, "output.text_features"),
                    cuda.download(model.encodeText(GoldenData.get(golden, "input.text"))));
            System.out.printf("cuda-sim F32 %-8s max error image %.3e text %.3e%n", name, img, txt);
            assertTrue(img <= 1e-3f && txt <= 1e-3f, name + ": F32 max errors " + img + ", " + txt);
        }
    }

    @Test
    void sixteenBitBlocksRunOn16BitActivationsAndNothingIsZeroFilled() {
        Set<String> calls = Collections.synchronizedSet(new TreeSet<>());
        Backend recording = (Backend) Proxy.newProxyInstance(Backend.class.getClassLoader(), new Class<?>[]{Backend.class},
                (proxy, method, args) -> {
                    String op = method.getName();
                    switch (op) {
                        case "zeros" -> calls.add("zeros " + args[0]);
                        case "attentionForward" -> calls.add(op + " " + dtype(args[2]));
                        case "layerNormForward" -> calls.add(op + " " + dtype(args[3]) + " -> " + dtype(args[0]));
                        case "linearForward", "linearActivationForward", "linearResidualForward" ->
                                calls.add(op + " " + dtype(args[1]) + " -> " + dtype(args[0]));
                        default -> { }
                    }
                    try {
                        return method.invoke(cuda, args);
                    } catch (InvocationTargetException e) {
                        throw e.getCause();
                    }
                });
        for (String name : new String[]{"tiny-vit", "tiny-rn"}) {   // a ResNet's text tower is a transformer too
            Map<String, Tensor> golden = GoldenData.golden(name);
            ClipModel model = ClipModel.fromStateDict(GoldenData.model(name), recording, Precision.BF16);
            calls.clear();
            Tensor image = cuda.download(model.encodeImage(GoldenData.get(golden, "input.image")));
            Tensor text = cuda.download(model.encodeText(GoldenData.get(golden, "input.text")));
            assertEquals(DType.F32, image.dtype());
            assertEquals(DType.F32, text.dtype());
            List<String> expected = List.of("attentionForward BF16", "layerNormForward F32 -> BF16", "linearForward BF16 -> BF16",
                    "linearActivationForward BF16 -> BF16", "linearResidualForward BF16 -> F32");
            assertTrue(calls.containsAll(expected), name + ": 16-bit block ops " + expected + " among " + calls);
            List<String> f32Activations = new ArrayList<>(List.of("attentionForward F32", "linearActivationForward F32 -> F32",
                    "linearResidualForward F32 -> F32"));
            f32Activations.retainAll(calls);
            assertEquals(List.of(), f32Activations, name + ": F32 block activations in a BF16 model");
            // the one zero-fill left: the class-token / attention-pool query's row index 0 (I32)
            assertEquals(Set.of("zeros I32"), calls.stream().filter(c -> c.startsWith("zeros")).collect(Collectors.toSet()), name);
        }
    }

    private static DType dtype(Object tensor) {
        return ((Tensor) tensor).dtype();
    }

    @Test
    void sixteenBitModelsDoNotTrain() {
        ClipModel model = ClipModel.fromStateDict(GoldenData.model("tiny-vit"), cuda, Precision.BF16);
        assertEquals(Precision.BF16, model.precision());
        Tensor image = GoldenData.get(GoldenData.golden("tiny-vit"), "input.image");
        assertThrows(IllegalStateException.class, () -> model.forwardImage(image, true));
    }

    @Test
    void cpuRejectsF16AndBf16WithoutAvx512Bf16() {
        try (CpuBackend cpu = new CpuBackend()) {
            InvalidInputException e = assertThrows(InvalidInputException.class,
                    () -> ClipModel.fromStateDict(GoldenData.model("tiny-vit"), cpu, Precision.F16));
            assertTrue(e.getMessage().contains("F32"), e.getMessage());
            String previous = System.getProperty(Bf16Gemm.MASK_PROPERTY);
            System.setProperty(Bf16Gemm.MASK_PROPERTY, "avx512_bf16");
            try {
                e = assertThrows(InvalidInputException.class,
                        () -> ClipModel.fromStateDict(GoldenData.model("tiny-vit"), cpu, Precision.BF16));
                assertTrue(e.getMessage().contains("avx512_bf16") && e.getMessage().contains("f32"), e.getMessage());
            } finally {
                if (previous == null) System.clearProperty(Bf16Gemm.MASK_PROPERTY);
                else System.setProperty(Bf16Gemm.MASK_PROPERTY, previous);
            }
            assertEquals(Precision.F32, ClipModel.fromStateDict(GoldenData.model("tiny-vit"), cpu).precision());
        }
    }

    private static void check(String name, Precision precision) {
        Map<String, Tensor> golden = GoldenData.golden(name);
        ClipModel model = ClipModel.fromStateDict(GoldenData.model(name), cuda, precision);
        Tensor image = cuda.download(model.encodeImage(GoldenData.get(golden, "input.image")));
        Tensor text = cuda.download(model.encodeText(GoldenData.get(golden, "input.text")));
        double imgCos = minCosine(GoldenData.get(golden, "output.image_features"), image);
        double txtCos = minCosine(GoldenData.get(golden, "output.text_features"), text);
        System.out.printf("cuda-sim %s %-8s min cosine image %.6f text %.6f%n", precision, name, imgCos, txtCos);
        assertTrue(imgCos >= MIN_COSINE, name + " " + precision + " image cosine " + imgCos);
        assertTrue(txtCos >= MIN_COSINE, name + " " + precision + " text cosine " + txtCos);
        // the 16-bit path really ran: F32 reproduces golden to ~1e-6, 16-bit weights cannot
        float err = Math.max(GoldenData.maxDiff(name, GoldenData.get(golden, "output.image_features"), image),
                GoldenData.maxDiff(name, GoldenData.get(golden, "output.text_features"), text));
        assertTrue(err > 1e-5f, name + " " + precision + ": max error " + err + " is F32-exact");
    }

    /** The smallest per-row cosine similarity of two (N, E) tensors. */
    static double minCosine(Tensor expected, Tensor actual) {
        float[] a = expected.toFloatArray(), b = actual.toFloatArray();
        assertEquals(a.length, b.length);
        int rows = expected.dim(0), e = a.length / rows;
        double worst = 1;
        for (int r = 0; r < rows; r++) {
            double dot = 0, na = 0, nb = 0;
            for (int i = r * e; i < (r + 1) * e; i++) {
                dot += (double) a[i] * b[i];
                na += (double) a[i] * a[i];
                nb += (double) b[i] * b[i];
            }
            worst = Math.min(worst, dot / Math.sqrt(na * nb));
        }
        return worst;
    }
}
