package org.clipj.cuda;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Files;
import java.nio.file.Path;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The simulator's launch limits (SimCudaDriver.LaunchLimits) from a limits file as kernels/build.sh writes it. */
class SimLaunchLimitsTest {
    @TempDir Path dir;

    private SimCudaDriver.LaunchLimits limits(String... lines) throws Exception {
        Path library = dir.resolve("libsim.so");
        Files.write(dir.resolve("libsim.so.limits"), java.util.List.of(lines));
        return SimCudaDriver.LaunchLimits.beside(library);
    }

    @Test
    void registersLimitTheBlockAsTheHardwareAllocatesThem() {
        // Per warp: registers x 32 rounded up to 256; 65536 per SM (and per block); at most 1024 threads.
        assertEquals(1024, SimCudaDriver.LaunchLimits.threadsAllowedByRegisters(32));
        assertEquals(1024, SimCudaDriver.LaunchLimits.threadsAllowedByRegisters(64));
        assertEquals(896, SimCudaDriver.LaunchLimits.threadsAllowedByRegisters(72));   // 2304 per warp: 28 warps
        assertEquals(512, SimCudaDriver.LaunchLimits.threadsAllowedByRegisters(128));
        assertEquals(448, SimCudaDriver.LaunchLimits.threadsAllowedByRegisters(138));  // 138 -> 144 per thread: 14 warps
        assertEquals(256, SimCudaDriver.LaunchLimits.threadsAllowedByRegisters(255));
    }

    @Test
    void aLaunchBeyondRegistersBoundsOrSharedMemoryIsRefusedWithTheReason() throws Exception {
        SimCudaDriver.LaunchLimits l = limits("# generated", "bounds bounded 64", "ptxas sm_80 heavy 120 0", "ptxas sm_90a heavy 138 0",
                "ptxas sm_90a tiled 32 8192");
        assertNull(l.unchecked());
        assertNull(l.refusal("heavy", 448, 0));
        String heavy = l.refusal("heavy", 449, 0);
        assertTrue(heavy.contains("449 threads per block (15 warps) need 15 x 4608 registers, but an SM has 65536: its 138 registers "
                + "per thread (ptxas, sm_90a) allow at most 448 threads per block"), heavy);
        assertNull(l.refusal("bounded", 64, 0));
        assertEquals("65 threads per block, more than its __launch_bounds__(64) allows", l.refusal("bounded", 65, 0));
        assertNull(l.refusal("tiled", 256, 227 * 1024 - 8192));
        assertTrue(l.refusal("tiled", 256, 227 * 1024 - 8191).startsWith("8192 bytes of static shared memory (ptxas, sm_90a) + 224257 dynamic"));
    }

    @Test
    void missingFiguresAreSaidAndAMalformedFileIsAnError() throws Exception {
        SimCudaDriver.LaunchLimits noNvcc = limits("bounds bounded 64", "unknown the kernels were not compiled by nvcc (nvcc not found)");
        assertEquals("registers per thread and static shared memory are not checked: the kernels were not compiled by nvcc (nvcc not found)",
                noNvcc.unchecked());
        assertTrue(noNvcc.refusal("bounded", 65, 0) != null);
        SimCudaDriver.LaunchLimits none = SimCudaDriver.LaunchLimits.beside(dir.resolve("other.so"));
        assertTrue(none.unchecked().startsWith("no other.so.limits beside the library"), none.unchecked());
        CudaException e = assertThrows(CudaException.class, () -> limits("ptxas sm_90a heavy many 0"));
        assertTrue(e.getMessage().contains("libsim.so.limits: malformed line 'ptxas sm_90a heavy many 0'"), e.getMessage());
    }
}
