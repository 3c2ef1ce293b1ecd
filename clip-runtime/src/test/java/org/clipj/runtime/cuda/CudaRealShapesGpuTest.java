package org.clipj.runtime.cuda;

import static org.junit.jupiter.api.Assumptions.assumeTrue;

import org.clipj.cuda.CudaException;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Tag;

/** {@link CudaRealShapeChecks} on a real GPU (its own backend); skipped, with the reason, without one. */
@Tag("gpu")
class CudaRealShapesGpuTest extends CudaRealShapeChecks {
    @BeforeAll
    static void open() {
        String binding = System.getProperty("clip.cuda.binding", "panama");
        try {
            cuda = CudaBackend.open(binding);
        } catch (CudaException e) {
            assumeTrue(false, "no CUDA device for the gpu tests (" + binding + "): " + e.getMessage());
        }
    }

    @Override
    int contrastiveBatch() {
        return 4096;
    }
}
