package org.clipj.kernels;

import static java.lang.foreign.ValueLayout.JAVA_FLOAT;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.file.Files;
import java.nio.file.Path;

import org.clipj.cuda.SimCudaDriver;

/** The simulator built over the test-only kernels (kernels/sim/test), as the sim test classes open and feed it. */
final class SimTestLibrary {
    private SimTestLibrary() {
    }

    /** A driver over the test kernel library; the calling test class is skipped where it was not built. */
    static SimCudaDriver open() {
        String library = System.getProperty("clip.sim.test.library");
        assumeTrue(library != null && Files.isRegularFile(Path.of(library)),
                "simulator test library not built (no g++?): " + library + "; " + Kernels.simLibraryUnavailableReason());
        return new SimCudaDriver(Path.of(library));
    }

    /** A fresh device buffer holding data. */
    static long upload(SimCudaDriver driver, Arena arena, float[] data) {
        long d = driver.memAlloc(data.length * 4L, "test");
        MemorySegment host = arena.allocate(JAVA_FLOAT, data.length);
        MemorySegment.copy(data, 0, host, JAVA_FLOAT, 0, data.length);
        driver.memcpyHtoD(d, host, data.length * 4L, 0, "upload");
        return d;
    }
}
