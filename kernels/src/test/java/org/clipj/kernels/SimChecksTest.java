package org.clipj.kernels;

import static java.lang.foreign.ValueLayout.JAVA_FLOAT;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;

import org.clipj.cuda.CudaErrors;
import org.clipj.cuda.CudaException;
import org.clipj.cuda.KernelArgs;
import org.clipj.cuda.SimCudaDriver;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * The simulator's memcheck, initcheck, racecheck and launch rules, each shown catching a bug planted in a
 * test-only kernel (kernels/sim/test/sim_checks.cu): every failure must name the kernel and the offending
 * address or index.
 */
class SimChecksTest {
    private static SimCudaDriver driver;
    private static long module;
    private static final KernelArgs ARGS = new KernelArgs(8);
    private static final Arena ARENA = Arena.ofShared();

    @BeforeAll
    static void open() {
        driver = SimTestLibrary.open();
        module = driver.moduleLoadData(new byte[0]);
    }

    @AfterAll
    static void close() {
        if (driver != null) driver.close();
    }

    private static long upload(float[] data) {
        return SimTestLibrary.upload(driver, ARENA, data);
    }

    private static float[] download(long d, int n) {
        MemorySegment host = ARENA.allocate(JAVA_FLOAT, n);
        driver.memcpyDtoH(host, d, n * 4L, 0, "download");
        return host.toArray(JAVA_FLOAT);
    }

    private static void launch(String kernel, int grid, int block, int shared, KernelArgs args) {
        driver.launchKernel(driver.moduleGetFunction(module, kernel), grid, 1, 1, block, 1, 1, shared, 0, args);
    }

    /** The launch fails with CUDA_ERROR_LAUNCH_FAILED and a message naming the kernel and containing every part. */
    private static String assertFault(String kernel, int grid, int block, int shared, KernelArgs args, String... parts) {
        CudaException e = assertThrows(CudaException.class, () -> launch(kernel, grid, block, shared, args));
        assertEquals(CudaErrors.CUDA_ERROR_LAUNCH_FAILED, e.status(), e.getMessage());
        assertTrue(e.getMessage().contains("kernel " + kernel + ": "), e.getMessage());
        for (String part : parts) assertTrue(e.getMessage().contains(part), "'" + part + "' missing from: " + e.getMessage());
        return e.getMessage();
    }

    @Test
    void globalAccessOnePastTheEndIsReported() {
        int n = 64; // 256 bytes: the next byte is past the allocation's granule, not only past the buffer
        long in = upload(new float[n]), out = driver.memAlloc(n * 4L, "out");
        assertFault("check_global_one_past_end", 1, n + 1, 0, ARGS.clear().ptr(out).ptr(in).i32(n),
                "memcheck: invalid read of 4 bytes at global memory", "byte 256 (index 64 of 4-byte elements) of a 256-byte buffer",
                "thread (64,0,0)");
    }

    @Test
    void theSlackOfTheAllocatorsSizeClassIsOutOfBounds() {
        // The caching allocator serves 100 floats from a 512-byte block and says so (memUsable): float 100 is out of bounds.
        long in = upload(new float[128]), out = driver.memAlloc(512, "out");
        driver.memUsable(out, 400);
        assertFault("check_global_one_past_end", 1, 101, 0, ARGS.clear().ptr(out).ptr(in).i32(100),
                "memcheck: invalid write of 4 bytes", "byte 400 (index 100 of 4-byte elements) of a 400-byte buffer",
                "in the slack of the allocator's 512-byte block");
        driver.memUsable(out, -1); // idle in the cache: any use is a use after free
        assertFault("check_add_one", 1, 1, 0, ARGS.clear().ptr(out).ptr(in).i32(1), "memcheck: invalid write",
                "idle in the caching allocator (released: use after free)");
    }

    @Test
    void freedMemoryIsReported() {
        long in = upload(new float[4]), out = driver.memAlloc(16, "out");
        driver.memFree(in);
        assertFault("check_add_one", 1, 4, 0, ARGS.clear().ptr(out).ptr(in).i32(4), "memcheck: invalid read", "freed memory");
    }

    @Test
    void staticSharedArrayPastItsSize() {
        long out = driver.memAlloc(4, "out");
        assertFault("check_static_shared_past_end", 1, 33, 0, ARGS.clear().ptr(out),
                "memcheck: invalid write of 4 bytes", "static shared array 'tile' (sim_checks.cu:15, 128 bytes) at byte 128 (element 32)",
                "thread (32,0,0)");
        launch("check_static_shared_past_end", 1, 32, 0, ARGS.clear().ptr(out)); // in bounds: runs
    }

    @Test
    void dynamicSharedMemoryPastTheLaunchSize() {
        long out = driver.memAlloc(4, "out");
        assertFault("check_dynamic_shared_past_end", 1, 64, 63 * 4, ARGS.clear().ptr(out),
                "memcheck: invalid write of 4 bytes at dynamic shared memory (extern __shared__, 252 bytes in this launch) at byte 252 (index 63",
                "thread (63,0,0)");
        launch("check_dynamic_shared_past_end", 1, 64, 64 * 4, ARGS.clear().ptr(out));
    }

    @Test
    void aRemovedBarrierIsARace() {
        float[] in = new float[64];
        long dIn = upload(in), out = driver.memAlloc(64 * 4L, "out");
        // FIFO order: thread 0 reads tile[63] first, thread 63 then writes it: write-after-read. (Reversed, the
        // read would come after the write: read-after-write. Either way the same interval.)
        String message = assertFault("check_missing_barrier", 1, 64, 0, ARGS.clear().ptr(out).ptr(dIn),
                "hazard on static shared array 'tile' (sim_checks.cu:", "in the same barrier interval (no __syncthreads");
        assertTrue(message.contains("racecheck: write-after-read") || message.contains("racecheck: read-after-write"), message);
    }

    @Test
    void aReadOfUnwrittenSharedMemoryIsReported() {
        long out = driver.memAlloc(64 * 4L, "out");
        assertFault("check_reads_unwritten_shared", 1, 64, 0, ARGS.clear().ptr(out),
                "initcheck: read of static shared array 'tile'", "at byte 252 (element 63), which no thread of this block has written",
                "thread (0,0,0)");
    }

    @Test
    void aReadOfUnwrittenGlobalMemoryIsReportedAndFreshMemoryIsNaN() {
        long in = driver.memAlloc(8 * 4L, "in"), out = driver.memAlloc(8 * 4L, "out");
        float[] fresh = download(in, 8);
        for (float v : fresh) assertTrue(Float.isNaN(v), "fresh device memory reads as NaN, got " + v);
        assertFault("check_add_one", 1, 8, 0, ARGS.clear().ptr(out).ptr(in).i32(8),
                "initcheck: read of 4 bytes at global memory", "byte 0 (index 0 of 4-byte elements) of a 32-byte buffer",
                "which nothing has written since it was allocated");
        driver.memsetD8(in, (byte) 0, 8 * 4L, 0, "zero");
        launch("check_add_one", 1, 8, 0, ARGS.clear().ptr(out).ptr(in).i32(8));
        assertArrayEquals(new float[] {1, 1, 1, 1, 1, 1, 1, 1}, download(out, 8));
    }

    @Test
    void atomicsAndWarpOrderedExchangesAreNotRaces() {
        long counts = driver.memAlloc(3 * 4L, "counts"), out = driver.memAlloc(32 * 4L, "out");
        launch("check_shared_atomics", 3, 96, 0, ARGS.clear().ptr(counts));
        MemorySegment host = ARENA.allocate(JAVA_INT, 3);
        driver.memcpyDtoH(host, counts, 12, 0, "download");
        assertArrayEquals(new int[] {96, 96, 96}, host.toArray(JAVA_INT));
        launch("check_warp_ordered_exchange", 1, 32, 0, ARGS.clear().ptr(out));
        float[] got = download(out, 32);
        for (int lane = 0; lane < 32; lane++) assertEquals(31 - lane, got[lane]);
    }

    @Test
    void dynamicSharedMemoryAbove48KiBNeedsTheOptIn() {
        long out = driver.memAlloc(4, "out");
        int bytes = 64 * 1024;
        CudaException e = assertThrows(CudaException.class,
                () -> launch("check_dynamic_shared_past_end", 1, 64, bytes, ARGS.clear().ptr(out)));
        assertEquals(CudaErrors.CUDA_ERROR_INVALID_VALUE, e.status());
        assertTrue(e.getMessage().contains("check_dynamic_shared_past_end grid (1,1,1) block (64,1,1) shared 65536: 65536 bytes of "
                + "dynamic shared memory but the kernel allows 49152 (above 48 KiB needs cuFuncSetAttribute"), e.getMessage());
        driver.funcSetMaxDynamicShared(driver.moduleGetFunction(module, "check_dynamic_shared_past_end"), bytes);
        launch("check_dynamic_shared_past_end", 1, 64, bytes, ARGS.clear().ptr(out));
        CudaException tooMuch = assertThrows(CudaException.class, () -> driver.funcSetMaxDynamicShared(
                driver.moduleGetFunction(module, "check_dynamic_shared_past_end"), 228 * 1024));
        assertTrue(tooMuch.getMessage().contains("at most 232448"), tooMuch.getMessage());
    }

    @Test
    void aBlockAboveTheKernelsLaunchBoundsIsRefused() {
        long out = driver.memAlloc(128 * 4L, "out");
        CudaException e = assertThrows(CudaException.class, () -> launch("check_launch_bounds", 1, 128, 0, ARGS.clear().ptr(out)));
        assertEquals(CudaErrors.CUDA_ERROR_LAUNCH_OUT_OF_RESOURCES, e.status(), e.getMessage());
        assertTrue(e.getMessage().contains("kernel check_launch_bounds block (128,1,1) shared 0: 128 threads per block, more than its "
                + "__launch_bounds__(64) allows"), e.getMessage());
        launch("check_launch_bounds", 2, 64, 0, ARGS.clear().ptr(out));
    }

    @Test
    void allocationFreeAndSyncDuringCaptureAreRefusedAndInvalidateIt() {
        long stream = driver.streamCreate();
        long buffer = driver.memAlloc(64, "buffer");
        for (Runnable illegal : new Runnable[] {() -> driver.memAlloc(64, "scratch"), () -> driver.memFree(buffer),
                () -> driver.streamSynchronize(stream, "sync")}) {
            driver.streamBeginCapture(stream);
            CudaException e = assertThrows(CudaException.class, illegal::run);
            assertEquals(900, e.status(), e.getMessage());
            assertTrue(e.getMessage().contains("CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED"), e.getMessage());
            CudaException end = assertThrows(CudaException.class, () -> driver.streamEndCaptureAndInstantiate(stream));
            assertEquals(901, end.status(), end.getMessage());
        }
        driver.memFree(buffer);
        driver.streamDestroy(stream);
    }

    @Test
    void twoBlocksWritingOneAddressWithoutAtomicsIsARace() {
        long out = driver.memAlloc(4, "out");
        assertFault("check_blocks_write_one_address", 3, 32, 0, ARGS.clear().ptr(out).i32(1),
                "racecheck: write-write race between blocks on global memory", "byte 0 (index 0 of 4-byte elements) of a 4-byte buffer",
                "block (1,0,0) thread (0,0,0) and block (0,0,0) of the same launch wrote different values there without an atomic");
        launch("check_blocks_write_one_address", 3, 32, 0, ARGS.clear().ptr(out).i32(0)); // the same value: a benign flag
        assertArrayEquals(new float[] {1}, download(out, 1));
    }

    @Test
    void aDynamicSharedReadOnePastTheLaunchSize() {
        long out = driver.memAlloc(64 * 4L, "out");
        assertFault("check_dynamic_shared_read_past_end", 1, 64, 64 * 4, ARGS.clear().ptr(out),
                "memcheck: invalid read of 4 bytes at dynamic shared memory (extern __shared__, 256 bytes in this launch) at byte 256 (index 64",
                "thread (63,0,0)");
    }

    @Test
    void aShuffleMaskMissingALaneThatTakesPart() {
        long out = driver.memAlloc(32 * 4L, "out");
        // FIFO order: lanes 0..30 complete the shuffle of mask 0x7fffffff and lane 30 reads lane 31; in another order
        // lane 31 first calls the shuffle with a mask that leaves it out. Either is reported.
        String message = assertFault("check_shuffle_mask_missing_lane", 1, 32, 0, ARGS.clear().ptr(out), "mask 0x7fffffff");
        assertTrue(message.contains("lane 30 reads lane 31, which its mask 0x7fffffff does not name")
                || message.contains("which does not name the calling lane 31"), message);
    }

    @Test
    void aSyncthreadsInWarpDivergentCode() {
        long out = driver.memAlloc(64 * 4L, "out");
        assertFault("check_divergent_syncthreads", 1, 64, 0, ARGS.clear().ptr(out),
                "__syncthreads in divergent code: this thread waits at a different __syncthreads", "than thread (0,0,0)",
                "thread (1,0,0))");
    }

    @Test
    void aStalePointerStaysFreedWhenItsMemoryIsAllocatedAgain() {
        long in = upload(new float[64]), out = driver.memAlloc(64 * 4L, "out");
        driver.memFree(in);
        long again = upload(new float[64]); // the same size: without the quarantine it would get in's span back
        assertTrue(again != in, "a freed span is handed out again at once");
        assertFault("check_add_one", 1, 64, 0, ARGS.clear().ptr(out).ptr(in).i32(64), "memcheck: invalid read", "freed memory (use after free)");
        driver.memFree(again);
    }

    @Test
    void aDoubleFreeIsRefused() {
        long buffer = driver.memAlloc(64, "buffer");
        driver.memFree(buffer);
        CudaException e = assertThrows(CudaException.class, () -> driver.memFree(buffer));
        assertEquals(CudaErrors.CUDA_ERROR_INVALID_VALUE, e.status(), e.getMessage());
        assertTrue(e.getMessage().contains("free of 0x" + Long.toHexString(buffer) + ": already freed (double free)"), e.getMessage());
    }

    @Test
    void aCopyOrMemsetBeyondTheAllocationIsRefused() {
        long small = driver.memAlloc(16, "small"), big = upload(new float[8]);
        MemorySegment host = ARENA.allocate(32);
        CudaException up = assertThrows(CudaException.class, () -> driver.memcpyHtoD(small, host, 32, 0, "upload x"));
        assertEquals(CudaErrors.CUDA_ERROR_INVALID_VALUE, up.status(), up.getMessage());
        assertTrue(up.getMessage().contains("upload x: 32 bytes at 0x" + Long.toHexString(small) + " reach global memory"), up.getMessage());
        assertTrue(up.getMessage().contains("byte 16 (index 16 of 1-byte elements) of a 16-byte buffer"), up.getMessage());
        CudaException down = assertThrows(CudaException.class, () -> driver.memcpyDtoH(host, small, 20, 0, "download x"));
        assertTrue(down.getMessage().contains("download x: 20 bytes"), down.getMessage());
        CudaException copy = assertThrows(CudaException.class, () -> driver.memcpyDtoD(small, big, 32, 0, "copy x"));
        assertTrue(copy.getMessage().contains("copy x (destination): 32 bytes"), copy.getMessage());
        CudaException set = assertThrows(CudaException.class, () -> driver.memsetD32(small, 0, 5, 0, "zero x"));
        assertTrue(set.getMessage().contains("zero x: 20 bytes"), set.getMessage());
        driver.memcpyHtoD(small, host, 16, 0, "upload in bounds");
    }

    @Test
    void launchesOverTheDevicesBlockAndGridLimitsAreRefused() {
        long out = driver.memAlloc(4, "out"), in = upload(new float[1]);
        int[][] shapes = {{1, 1, 1, 1025, 1, 1}, {1, 1, 1, 1, 1, 65}, {1, 65536, 1, 1, 1, 1}, {1, 1, 65536, 1, 1, 1}, {0, 1, 1, 1, 1, 1}};
        for (int[] d : shapes) {
            CudaException e = assertThrows(CudaException.class, () -> driver.launchKernel(driver.moduleGetFunction(module, "check_add_one"),
                    d[0], d[1], d[2], d[3], d[4], d[5], 0, 0, ARGS.clear().ptr(out).ptr(in).i32(0)));
            assertEquals(CudaErrors.CUDA_ERROR_INVALID_VALUE, e.status(), e.getMessage());
            assertTrue(e.getMessage().contains("invalid launch of check_add_one: grid (" + d[0] + "," + d[1] + "," + d[2] + "), block ("
                    + d[3] + "," + d[4] + "," + d[5] + ") (the device allows at most 1024 threads per block, a block of (1024,1024,64), "
                    + "a grid of (2147483647,65535,65535), none 0)"), e.getMessage());
        }
    }

    @Test
    void aMisalignedFloat4Access() {
        long in = upload(new float[4 * 32 + 4]), out = driver.memAlloc(32 * 4L, "out");
        assertFault("check_misaligned_float4", 1, 32, 0, ARGS.clear().ptr(out).ptr(in).i32(1),
                "memcheck: misaligned read of 16 bytes at global memory", "byte 4 (index 0 of 16-byte elements)",
                "(address not a multiple of 16)", "thread (0,0,0)");
        launch("check_misaligned_float4", 1, 32, 0, ARGS.clear().ptr(out).ptr(in).i32(4));
    }
}
