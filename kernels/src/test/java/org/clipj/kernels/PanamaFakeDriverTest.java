package org.clipj.kernels;

import static java.lang.foreign.ValueLayout.JAVA_FLOAT;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.lang.foreign.MemorySegment;
import java.util.concurrent.CompletableFuture;

import org.clipj.cuda.CudaDriver;
import org.clipj.cuda.CudaDrivers;
import org.clipj.cuda.CudaException;
import org.clipj.cuda.KernelArgs;
import org.clipj.cuda.PanamaCudaDriver;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.condition.EnabledIfSystemProperty;

/**
 * The FFM driver binding's marshalling (descriptors, out-parameters, launch arguments, status -> exception)
 * against kernels/sim/test/fake_libcuda.c: a libcuda.so.1 stand-in over the simulator. Runs in its own
 * surefire execution, whose CLIP_CUDA_LIB_PATH points at the fake (see kernels/pom.xml).
 */
@EnabledIfSystemProperty(named = "clip.fake.cuda", matches = "true")
class PanamaFakeDriverTest {
    private static CudaDriver open() {
        assumeTrue(PanamaCudaDriver.unavailableReason() == null, "fake libcuda not built (no gcc?): " + PanamaCudaDriver.unavailableReason());
        return CudaDrivers.open("panama", 0);
    }

    @Test
    void deviceInfoComesThroughOutParameters() {
        try (CudaDriver driver = open()) {
            CudaDriver.DeviceInfo info = driver.device();
            assertEquals(new CudaDriver.DeviceInfo(0, "clipj fake driver", 2, 9, 0, 80L << 30, 232448), info);
            assertEquals(1, driver.deviceCount());
            CudaException e = assertThrows(CudaException.class, () -> CudaDrivers.open("panama", 1));
            assertTrue(e.getMessage().contains("device 1 does not exist (1 device(s) visible)"), e.getMessage());
        }
    }

    @Test
    void copiesLaunchesAndEventsRoundTrip() throws Exception {
        try (CudaDriver driver = open()) {
            int n = 256;
            long stream = driver.streamCreate();
            MemorySegment host = driver.hostAllocPinned(n * 4L);
            for (int i = 0; i < n; i++) host.setAtIndex(JAVA_FLOAT, i, i * 0.5f);
            long in = driver.memAlloc(n * 4L, "in"), out = driver.memAlloc(n * 4L, "out"), copy = driver.memAlloc(n * 4L, "copy");
            driver.memcpyHtoD(in, host, n * 4L, stream, "upload");
            long module = driver.moduleLoadData(new byte[] {1, 2, 3});
            CudaDriver.Function reverse = driver.moduleGetFunction(module, "smoke_reverse");
            driver.funcSetMaxDynamicShared(reverse, 100_000);
            long start = driver.eventCreate(), end = driver.eventCreate();
            driver.eventRecord(start, stream);
            driver.launchKernel(reverse, 2, 1, 1, n / 2, 1, 1, 0, stream, new KernelArgs(4).ptr(out).ptr(in));
            driver.eventRecord(end, stream);
            driver.memcpyDtoD(copy, out, n * 4L, stream, "copy");
            driver.memcpyDtoH(host, copy, n * 4L, stream, "download");
            driver.streamSynchronize(stream, "test");
            assertTrue(driver.eventElapsedMs(start, end) >= 0f);
            for (int b = 0; b < 2; b++)
                for (int i = 0; i < n / 2; i++)
                    assertEquals((b * n / 2 + n / 2 - 1 - i) * 0.5f, host.getAtIndex(JAVA_FLOAT, b * n / 2 + i));
            driver.memsetD32(copy, 0x01020304, n, stream, "memset32");
            driver.memsetD8(copy, (byte) 0x7f, 4, stream, "memset8");
            driver.memcpyDtoH(host, copy, n * 4L, stream, "download");
            assertEquals(0x7f7f7f7f, host.getAtIndex(JAVA_INT, 0));
            assertEquals(0x01020304, host.getAtIndex(JAVA_INT, n - 1));
            // the context is per thread: another thread's first call binds it
            long other = CompletableFuture.supplyAsync(() -> driver.memAlloc(64, "other thread")).get();
            driver.memFree(other);
            driver.eventDestroy(start);
            driver.eventDestroy(end);
            driver.memFree(in);
            driver.memFree(out);
            driver.memFree(copy);
            driver.hostFreePinned(host);
            driver.streamDestroy(stream);
            driver.moduleUnload(module);
        }
    }

    @Test
    void failingCallsBecomeCudaExceptionsWithTheDriversErrorNames() {
        try (CudaDriver driver = open()) {
            long module = driver.moduleLoadData(new byte[0]);
            CudaException notFound = assertThrows(CudaException.class, () -> driver.moduleGetFunction(module, "no_such_kernel"));
            assertEquals("cuModuleGetFunction failed: CUDA_ERROR_NOT_FOUND (500) in kernel no_such_kernel", notFound.getMessage());
            long x = driver.memAlloc(32 * 4, "x");
            CudaException launch = assertThrows(CudaException.class, () -> driver.launchKernel(
                    driver.moduleGetFunction(module, "smoke_divergent_barrier"), 1, 1, 1, 32, 1, 1, 0, 0, new KernelArgs(1).ptr(x)));
            assertEquals("cuLaunchKernel", launch.call());
            assertEquals("CUDA_ERROR_LAUNCH_FAILED", launch.errorName());
            assertTrue(launch.getMessage().contains("smoke_divergent_barrier grid (1,1,1) block (32,1,1)"), launch.getMessage());
            CudaException capture = assertThrows(CudaException.class, () -> driver.streamBeginCapture(0));
            assertEquals("CUDA_ERROR_NOT_SUPPORTED", capture.errorName());
            assertEquals("CUDA_ERROR_ILLEGAL_ADDRESS", driver.errorName(700)); // unknown to the fake: the built-in table
            driver.memFree(x);
        }
    }

    @Test
    void virtualThreadsFindTheContextCurrentOnWhateverCarrierTheyRun() throws Exception {
        CudaDriver driver = open();
        try (var pool = java.util.concurrent.Executors.newVirtualThreadPerTaskExecutor()) {
            java.util.List<java.util.concurrent.Future<?>> done = new java.util.ArrayList<>();
            for (int t = 0; t < 16; t++) {
                done.add(pool.submit(() -> {
                    for (int i = 0; i < 50; i++) {
                        driver.memFree(driver.memAlloc(256, "virtual thread"));
                        Thread.yield(); // may resume on another carrier, where no one made the context current
                    }
                    return null;
                }));
            }
            for (var f : done) f.get();
        } finally {
            driver.close();
        }
    }
}
