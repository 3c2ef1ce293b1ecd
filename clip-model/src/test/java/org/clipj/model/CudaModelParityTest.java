package org.clipj.model;

import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.util.List;
import java.util.Map;

import org.clipj.kernels.Kernels;
import org.clipj.runtime.Tensor;
import org.clipj.runtime.cuda.CudaBackend;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * The whole tiny golden models (F32) run end to end through CudaBackend on the simulator binding
 * (the real kernels, compiled for the host): every activation, the features and the logits within
 * 1e-3 of openai/CLIP's PyTorch outputs.
 */
class CudaModelParityTest {
    private static final float TOL = 1e-3f;
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
    void tinyVitMatchesGoldenOnTheSimulator() {
        check("tiny-vit");
    }

    @Test
    void tinyResNetMatchesGoldenOnTheSimulator() {
        check("tiny-rn");
    }

    private void check(String name) {
        Map<String, Tensor> golden = GoldenData.golden(name);
        ClipModel model = ClipModel.fromStateDict(GoldenData.model(name), cuda);
        Tensor image = GoldenData.get(golden, "input.image");
        Tensor text = GoldenData.get(golden, "input.text");
        ImageActivations ia = model.forwardImage(image, false);
        TextActivations ta = model.forwardText(text, false);   // all 77 positions, as the golden activations
        int compared = 0;
        for (Map<String, Tensor> acts : List.of(ia.intermediates(), ta.intermediates())) {
            for (Map.Entry<String, Tensor> e : acts.entrySet()) {
                assertWithin(name + " act." + e.getKey(), GoldenData.get(golden, "act." + e.getKey()), e.getValue());
                compared++;
            }
        }
        assertTrue(compared > 0, name + ": no activations compared");
        assertWithin(name + " image_features", GoldenData.get(golden, "output.image_features"), ia.features());
        assertWithin(name + " text_features", GoldenData.get(golden, "output.text_features"), ta.features());
        assertWithin(name + " encodeImage", GoldenData.get(golden, "output.image_features"), model.encodeImage(image));
        assertWithin(name + " encodeText", GoldenData.get(golden, "output.text_features"), model.encodeText(text));
    }

    private static void assertWithin(String what, Tensor expected, Tensor actualOnDevice) {
        Tensor actual = cuda.download(actualOnDevice);
        float err = GoldenData.maxDiff(what, expected, actual);
        System.out.printf("cuda-sim golden max error %-36s %.3e%n", what, err);
        assertTrue(err <= TOL, what + ": max abs error " + err + " > " + TOL);
    }
}
