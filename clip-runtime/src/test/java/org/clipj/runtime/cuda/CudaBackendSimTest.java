package org.clipj.runtime.cuda;

import static org.junit.jupiter.api.Assumptions.assumeTrue;

import org.clipj.kernels.Kernels;
import org.junit.jupiter.api.BeforeAll;

/**
 * Every kernel and CudaBackend op on the simulator binding: the real .cu sources compiled for the host
 * and run with one fiber per CUDA thread. Runs in every build; skipped (with the reason) only when the
 * build had no g++ to compile the simulator library.
 */
class CudaBackendSimTest extends CudaParityChecks {
    @BeforeAll
    static void open() {
        assumeTrue(Kernels.simLibrary().isPresent(), "simulator library not built: " + Kernels.simLibraryUnavailableReason());
        cuda = CudaBackend.open("sim");
    }
}
