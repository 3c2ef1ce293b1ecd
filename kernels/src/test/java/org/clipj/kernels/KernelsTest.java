package org.clipj.kernels;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Optional;

import org.clipj.cuda.CudaDriver;
import org.clipj.cuda.SimCudaDriver;
import org.junit.jupiter.api.Test;

class KernelsTest {
    @Test
    void fatbinIsPresentWithItsMagicOrAbsentWithAReason() {
        Optional<byte[]> fatbin = Kernels.fatbin();
        if (fatbin.isPresent()) {
            byte[] b = fatbin.get();
            // fatbin header magic 0xBA55ED50, little-endian
            assertEquals(0x50, b[0] & 0xff);
            assertEquals(0xED, b[1] & 0xff);
            assertEquals(0x55, b[2] & 0xff);
            assertEquals(0xBA, b[3] & 0xff);
            assertNull(Kernels.fatbinUnavailableReason());
        } else {
            String reason = Kernels.fatbinUnavailableReason();
            assertNotNull(reason);
            assertTrue(reason.startsWith("fatbin not built"), reason);
        }
    }

    @Test
    void simLibraryIsExtractedOnceAndHoldsTheKernels() throws Exception {
        Optional<Path> lib = Kernels.simLibrary();
        if (lib.isEmpty()) {
            assertTrue(Kernels.simLibraryUnavailableReason().startsWith("simulator not built"), Kernels.simLibraryUnavailableReason());
            return;
        }
        assertTrue(Files.size(lib.get()) > 0);
        assertSame(lib.get(), Kernels.simLibrary().get());
        try (CudaDriver driver = new SimCudaDriver(lib.get())) {
            long module = driver.moduleLoadData(new byte[0]);
            assertEquals("fill", driver.moduleGetFunction(module, "fill").name());
        }
    }
}
