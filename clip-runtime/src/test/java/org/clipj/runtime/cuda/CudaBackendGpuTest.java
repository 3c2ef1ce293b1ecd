package org.clipj.runtime.cuda;

import static org.junit.jupiter.api.Assumptions.assumeTrue;

import org.clipj.cuda.CudaException;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Tag;

/**
 * The same checks on a real GPU through the default (Panama) driver binding. Skipped, with the reason,
 * where there is no CUDA driver, no GPU or no fatbin (no nvcc at build time).
 */
@Tag("gpu")
class CudaBackendGpuTest extends CudaParityChecks {
    @BeforeAll
    static void open() {
        String binding = System.getProperty("clip.cuda.binding", "panama");
        try {
            cuda = CudaBackend.open(binding);
        } catch (CudaException e) {
            assumeTrue(false, "no CUDA device for the gpu tests (" + binding + "): " + e.getMessage());
        }
    }
}
