package org.clipj.runtime.cuda;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import org.clipj.cuda.CudaErrors;
import org.clipj.runtime.DType;
import org.clipj.runtime.Tensor;
import org.clipj.kernels.Kernels;
import org.junit.jupiter.api.Test;

/**
 * Out of device memory on the simulator with a 16 MiB cap (clip.sim.memory, set by this test's own surefire
 * execution in clip-runtime/pom.xml): the caching allocator releases its idle blocks and retries once; a second
 * failure is a {@link CudaOutOfMemoryException} naming the op, the bytes asked and the pool's state, and the
 * backend goes on working.
 */
class CudaOutOfMemorySimTest {
    private static final long MIB = 1 << 20;

    @Test
    void theCacheIsReleasedAndRetriedOnceThenTheErrorNamesOpBytesAndPool() {
        assumeTrue(Kernels.simLibrary().isPresent(), "simulator library not built: " + Kernels.simLibraryUnavailableReason());
        assumeTrue("16m".equals(System.getProperty("clip.sim.memory")),
                "runs in its own JVM with -Dclip.sim.memory=16m: the sim-memory-cap execution of clip-runtime/pom.xml");
        try (CudaBackend cuda = CudaBackend.open("sim")) {
            // 12 MiB idle in the cache, then 6 MiB of another size class: only fits once the cache is given back.
            Tensor[] held = new Tensor[4];
            for (int i = 0; i < held.length; i++) held[i] = cuda.empty(DType.F32, (int) (3 * MIB / 4));
            for (Tensor t : held) cuda.release(t);
            assertEquals(12 * MIB, cuda.cx.memory.cachedBytes());
            Tensor six = cuda.zeros(DType.F32, (int) (6 * MIB / 4));
            assertEquals(0, cuda.cx.memory.cachedBytes(), "the cache was released for the retry");

            CudaOutOfMemoryException e = assertThrows(CudaOutOfMemoryException.class,
                    () -> cuda.upload(Tensor.zeros(DType.F32, (int) (12 * MIB / 4))));
            assertEquals("upload", e.op());
            assertEquals(12 * MIB, e.requestedBytes());
            assertEquals(CudaErrors.CUDA_ERROR_OUT_OF_MEMORY, e.status());
            assertTrue(e.getMessage().startsWith("CUDA out of memory in upload: 12582912 bytes asked (12582912-byte size class); "
                    + "the pool holds 6.0 MiB from the driver, all in use (0.0 MiB idle after its cache was released and the "
                    + "allocation retried once), of the device's 16.0 MiB"), e.getMessage());
            assertTrue(e.getMessage().contains("out of memory: 12582912 bytes asked"), "the driver's own words: " + e.getMessage());

            // The backend lives on: what fits still runs.
            Tensor x = cuda.upload(Tensor.of(new float[] {1, 2, 3}, 3));
            cuda.add(x, x, x);
            assertEquals(6f, cuda.download(x).f32()[2]);
            cuda.release(six);
        }
    }
}
