package org.clipj.runtime.cuda;

import static org.junit.jupiter.api.Assumptions.assumeTrue;

import org.clipj.kernels.Kernels;
import org.junit.jupiter.api.BeforeAll;

/** {@link CudaRealShapeChecks} on the simulator (memcheck, initcheck and racecheck on), in every build. */
class CudaRealShapesSimTest extends CudaRealShapeChecks {
    @BeforeAll
    static void open() {
        assumeTrue(Kernels.simLibrary().isPresent(), "simulator library not built: " + Kernels.simLibraryUnavailableReason());
        cuda = CudaBackend.open("sim");
    }

    @Override
    int contrastiveBatch() {
        return 256;
    }
}
