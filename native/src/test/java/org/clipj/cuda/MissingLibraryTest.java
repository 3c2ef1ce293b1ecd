package org.clipj.cuda;

import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.nio.file.Path;

import org.junit.jupiter.api.Test;

/** Absent CUDA pieces are clear CudaExceptions, never a JVM crash. */
class MissingLibraryTest {
    @Test
    void panamaWithoutADriverSaysSo() {
        assumeTrue(PanamaCudaDriver.unavailableReason() != null, "libcuda is present here; the missing-driver path cannot be shown");
        CudaException e = assertThrows(CudaException.class, () -> CudaDrivers.open("panama", 0));
        assertTrue(e.getMessage().contains("CUDA binding 'panama' unavailable"), e.getMessage());
        assertTrue(e.getMessage().contains("libcuda.so.1"), e.getMessage());
    }

    @Test
    void jcudaWithoutADriverSaysSo() {
        assumeTrue(PanamaCudaDriver.unavailableReason() != null, "libcuda is present here; the missing-driver path cannot be shown");
        CudaException e = assertThrows(CudaException.class, () -> CudaDrivers.open("jcuda", 0));
        assertTrue(e.getMessage().contains("jcuda"), e.getMessage());
    }

    @Test
    void cublasLtAndNvrtcReportWhyTheyAreMissing() {
        String blas = CuBlasLt.unavailableReason();
        if (blas != null) assertTrue(blas.contains("libcublasLt.so.13") && blas.contains("libcublasLt.so.12"), blas);
        String nvrtc = Nvrtc.unavailableReason();
        if (nvrtc != null) {
            assertTrue(nvrtc.contains("libnvrtc.so.13"), nvrtc);
            CudaException e = assertThrows(CudaException.class, () -> Nvrtc.compileToPtx("", "x.cu", java.util.List.of()));
            assertTrue(e.getMessage().startsWith("NVRTC unavailable"), e.getMessage());
        }
    }

    @Test
    void simWithoutItsLibrarySaysSo() {
        CudaException e = assertThrows(CudaException.class, () -> new SimCudaDriver(Path.of("/nonexistent/libclipkernels_sim.so")));
        assertTrue(e.getMessage().contains("simulator library /nonexistent/libclipkernels_sim.so not found"), e.getMessage());
    }

    @Test
    void simRejectsALibraryThatIsNotTheSimulator() {
        Path libc = Path.of("/lib/x86_64-linux-gnu/libc.so.6");
        assumeTrue(libc.toFile().exists(), "no glibc at " + libc);
        CudaException e = assertThrows(CudaException.class, () -> new SimCudaDriver(libc));
        assertTrue(e.getMessage().contains("has no symbol sim_launch"), e.getMessage());
    }

    @Test
    void unknownBindingIsAnError() {
        CudaException e = assertThrows(CudaException.class, () -> CudaDrivers.open("opencl", 0));
        assertTrue(e.getMessage().contains("panama|jcuda|sim"), e.getMessage());
    }
}
