package org.clipj.kernels;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Optional;

import org.clipj.cuda.CudaDriver;
import org.clipj.cuda.CudaErrors;
import org.clipj.cuda.CudaException;
import org.clipj.cuda.KernelArgs;
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

    @Test
    void aBlockTheRegistersOfAShippedKernelCannotHoldIsRefused() throws Exception {
        Optional<Path> lib = Kernels.simLibrary();
        assumeTrue(lib.isPresent() && Kernels.fatbin().isPresent(), "needs the simulator and nvcc's ptxas figures: "
                + Kernels.simLibraryUnavailableReason() + " / " + Kernels.fatbinUnavailableReason());
        Path limits = lib.get().resolveSibling(lib.get().getFileName() + ".limits");
        // The kernel with the most registers per thread on sm_90a, as ptxas reported them at build time.
        String heaviest = null;
        int registers = 0;
        for (String line : Files.readAllLines(limits)) {
            String[] f = line.split(" ");
            if (f[0].equals("ptxas") && f[1].equals("sm_90a") && Integer.parseInt(f[3]) > registers) {
                heaviest = f[2];
                registers = Integer.parseInt(f[3]);
            }
        }
        assertNotNull(heaviest, "no sm_90a figures in " + limits);
        int allowed = Math.min(1024, 65536 / ((registers * 32 + 255) / 256 * 256) * 32);
        assumeTrue(allowed < 1024, "every kernel fits a block of 1024 threads (" + heaviest + ": " + registers + " registers)");
        int threads = allowed + 32;
        try (SimCudaDriver driver = new SimCudaDriver(lib.get())) {
            CudaDriver.Function kernel = driver.moduleGetFunction(driver.moduleLoadData(new byte[0]), heaviest);
            CudaException e = assertThrows(CudaException.class,
                    () -> driver.launchKernel(kernel, 1, 1, 1, threads, 1, 1, 0, 0, new KernelArgs(1)));
            assertEquals(CudaErrors.CUDA_ERROR_LAUNCH_OUT_OF_RESOURCES, e.status(), e.getMessage());
            assertTrue(e.getMessage().contains("kernel " + heaviest + " block (" + threads + ",1,1) shared 0: " + threads + " threads per block"),
                    e.getMessage());
            assertTrue(e.getMessage().contains("registers per thread (ptxas, sm_"), e.getMessage());
        }
    }
}
