package org.clipj.kernels;

import static java.lang.foreign.ValueLayout.JAVA_FLOAT;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_SHORT;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.Random;

import org.clipj.cuda.Blas;
import org.clipj.cuda.CudaDriver;
import org.clipj.cuda.CudaErrors;
import org.clipj.cuda.CudaException;
import org.clipj.cuda.KernelArgs;
import org.clipj.cuda.SimBlas;
import org.clipj.cuda.SimCudaDriver;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/** The simulator's mechanisms, through the sim driver, on kernels/sim/test/sim_smoke.cu. */
class SimSmokeTest {
    private static SimCudaDriver driver;
    private static long module;
    private static final KernelArgs ARGS = new KernelArgs(16);
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

    private static long upload(int[] data) {
        long d = driver.memAlloc(data.length * 4L, "test");
        MemorySegment host = ARENA.allocate(JAVA_INT, data.length);
        MemorySegment.copy(data, 0, host, JAVA_INT, 0, data.length);
        driver.memcpyHtoD(d, host, data.length * 4L, 0, "upload");
        return d;
    }

    private static float[] downloadFloats(long d, int n) {
        MemorySegment host = ARENA.allocate(JAVA_FLOAT, n);
        driver.memcpyDtoH(host, d, n * 4L, 0, "download");
        return host.toArray(JAVA_FLOAT);
    }

    private static int[] downloadInts(long d, int n) {
        MemorySegment host = ARENA.allocate(JAVA_INT, n);
        driver.memcpyDtoH(host, d, n * 4L, 0, "download");
        return host.toArray(JAVA_INT);
    }

    private static void launch(String kernel, int grid, int block, int shared, KernelArgs args) {
        driver.launchKernel(driver.moduleGetFunction(module, kernel), grid, 1, 1, block, 1, 1, shared, 0, args);
    }

    @Test
    void barrierMakesSharedMemoryWritesVisible() {
        int blocks = 3, n = 200;
        float[] in = new float[blocks * n];
        for (int i = 0; i < in.length; i++) in[i] = i;
        long dIn = upload(in), dOut = driver.memAlloc(in.length * 4L, "out");
        launch("smoke_reverse", blocks, n, 0, ARGS.clear().ptr(dOut).ptr(dIn));
        float[] out = downloadFloats(dOut, in.length);
        for (int b = 0; b < blocks; b++)
            for (int i = 0; i < n; i++) assertEquals(in[b * n + n - 1 - i], out[b * n + i], "block " + b + " i " + i);
    }

    @Test
    void shuffleBlockReductionOnARaggedTail() {
        int n = 1000, block = 256, blocks = (n + block - 1) / block;
        float[] in = new float[n];
        for (int i = 0; i < n; i++) in[i] = (i % 17) - 8;
        long dIn = upload(in), dSums = driver.memAlloc(blocks * 4L, "sums");
        launch("smoke_block_sum", blocks, block, 0, ARGS.clear().ptr(dSums).ptr(dIn).i32(n));
        float[] sums = downloadFloats(dSums, blocks);
        for (int b = 0; b < blocks; b++) {
            float expect = 0;
            for (int i = b * block; i < Math.min(n, (b + 1) * block); i++) expect += in[i];
            assertEquals(expect, sums[b], "block " + b);
        }
    }

    @Test
    void everyShuffleAndVoteMatchesCudaSemantics() {
        int threads = 64;
        long d = driver.memAlloc(threads * 7 * 4L, "warp ops");
        launch("smoke_warp_ops", 1, threads, 0, ARGS.clear().ptr(d));
        int[] o = downloadInts(d, threads * 7);
        int ballot = 0;
        for (int l = 0; l < 32; l++) if (l % 3 == 0) ballot |= 1 << l;
        for (int t = 0; t < threads; t++) {
            int lane = t % 32;
            assertEquals(30, o[t * 7], "shfl idx lane " + lane);
            assertEquals((lane ^ 5) * 10, o[t * 7 + 1], "shfl xor lane " + lane);
            assertEquals((lane + 4 < 32 ? lane + 4 : lane) * 10, o[t * 7 + 2], "shfl down lane " + lane);
            assertEquals((lane % 16 >= 4 ? lane - 4 : lane) * 10, o[t * 7 + 3], "shfl up width 16 lane " + lane);
            assertEquals(ballot, o[t * 7 + 4], "ballot lane " + lane);
            assertEquals(1, o[t * 7 + 5], "any lane " + lane);
            assertEquals(0, o[t * 7 + 6], "all lane " + lane);
        }
    }

    @Test
    void atomicsAcrossBlocks() {
        int n = 777, bins = 10;
        int[] values = new int[n];
        Random r = new Random(1);
        for (int i = 0; i < n; i++) values[i] = r.nextInt(5000);
        long dValues = upload(values), dHist = upload(new int[bins]), dMax = upload(new int[] {-1}), dCas = upload(new int[1]);
        launch("smoke_atomics", (n + 127) / 128, 128, 0, ARGS.clear().ptr(dHist).ptr(dMax).ptr(dCas).ptr(dValues).i32(n).i32(bins));
        int[] hist = new int[bins];
        int max = -1;
        for (int v : values) {
            hist[v % bins]++;
            max = Math.max(max, v);
        }
        assertArrayEquals(hist, downloadInts(dHist, bins));
        assertEquals(max, downloadInts(dMax, 1)[0]);
        assertEquals(n, downloadInts(dCas, 1)[0]);
    }

    @Test
    void dynamicSharedMemoryOfTheLaunchSize() {
        int rows = 3, n = 300;
        float[] x = new float[rows * n];
        Random r = new Random(2);
        for (int i = 0; i < x.length; i++) x[i] = 1 + r.nextFloat();
        long dX = upload(x), dOut = driver.memAlloc(x.length * 4L, "out");
        launch("smoke_dynamic_shared", rows, 64, n * 4, ARGS.clear().ptr(dOut).ptr(dX).i32(n));
        float[] out = downloadFloats(dOut, x.length);
        for (int row = 0; row < rows; row++) {
            float m = Float.NEGATIVE_INFINITY;
            for (int j = 0; j < n; j++) m = Math.max(m, x[row * n + j]);
            for (int j = 0; j < n; j++) assertEquals(x[row * n + j] / m, out[row * n + j], "row " + row + " col " + j);
        }
    }

    /** Round to nearest even to bf16, as torch and CUDA do. */
    private static short bf16(float f) {
        int u = Float.floatToRawIntBits(f);
        if (Float.isNaN(f)) return (short) ((u >>> 16) | 0x40);
        return (short) ((u + 0x7fff + ((u >>> 16) & 1)) >>> 16);
    }

    @Test
    void bf16AndF16ConversionsAreBitExact() {
        float[] x = {0f, -0f, 1f, 1.00390625f, 1.01171875f, 3.14159265f, -2.5e-3f, 65504f, 65519f, 65520f, 1e6f, 6.0e-8f,
                2.98e-8f, 2.99e-8f, 5.96e-8f * 3.5f, 1e-40f, Float.MIN_NORMAL, Float.MAX_VALUE, Float.POSITIVE_INFINITY,
                Float.NEGATIVE_INFINITY, Float.NaN, 0.333333f, -1234.5678f, 6.1035156e-5f, 6.097555e-5f};
        Random r = new Random(3);
        float[] all = new float[x.length + 2000];
        System.arraycopy(x, 0, all, 0, x.length);
        for (int i = x.length; i < all.length; i++)
            all[i] = Float.intBitsToFloat(r.nextInt()) * (i % 2 == 0 ? 1 : 0x1p-100f);
        int n = all.length;
        long dX = upload(all);
        long dBf = driver.memAlloc(n * 2L, "bf"), dHf = driver.memAlloc(n * 2L, "hf");
        long dBfBack = driver.memAlloc(n * 4L, "bfback"), dHfBack = driver.memAlloc(n * 4L, "hfback");
        launch("smoke_convert", (n + 255) / 256, 256, 0, ARGS.clear().ptr(dBf).ptr(dHf).ptr(dBfBack).ptr(dHfBack).ptr(dX).i32(n));
        MemorySegment bf = ARENA.allocate(JAVA_SHORT, n), hf = ARENA.allocate(JAVA_SHORT, n);
        driver.memcpyDtoH(bf, dBf, n * 2L, 0, "bf");
        driver.memcpyDtoH(hf, dHf, n * 2L, 0, "hf");
        float[] bfBack = downloadFloats(dBfBack, n), hfBack = downloadFloats(dHfBack, n);
        for (int i = 0; i < n; i++) {
            float v = all[i];
            short h = Float.floatToFloat16(v);
            if (Float.isNaN(v)) {
                assertTrue(Float.isNaN(Float.float16ToFloat(hf.getAtIndex(JAVA_SHORT, i))), "f16 NaN");
                assertTrue(Float.isNaN(bfBack[i]), "bf16 NaN");
                continue;
            }
            assertEquals(h, hf.getAtIndex(JAVA_SHORT, i), "f16 bits of " + v);
            assertEquals(Float.float16ToFloat(h), hfBack[i], "f16 value of " + v);
            assertEquals(bf16(v), bf.getAtIndex(JAVA_SHORT, i), "bf16 bits of " + v);
            assertEquals(Float.intBitsToFloat(bf16(v) << 16), bfBack[i], "bf16 value of " + v);
        }
    }

    @Test
    void threeDimensionalIndices() {
        int gx = 2, gy = 3, gz = 2, bx = 4, by = 2, bz = 3, threads = bx * by * bz, total = gx * gy * gz * threads;
        long d = driver.memAlloc(total * 4L, "indices");
        driver.launchKernel(driver.moduleGetFunction(module, "smoke_indices"), gx, gy, gz, bx, by, bz, 0, 0, ARGS.clear().ptr(d));
        int[] out = downloadInts(d, total);
        for (int z = 0; z < gz; z++)
            for (int y = 0; y < gy; y++)
                for (int x = 0; x < gx; x++)
                    for (int tz = 0; tz < bz; tz++)
                        for (int ty = 0; ty < by; ty++)
                            for (int tx = 0; tx < bx; tx++) {
                                int block = (z * gy + y) * gx + x, thread = (tz * by + ty) * bx + tx;
                                int expect = x | y << 4 | z << 8 | tx << 12 | ty << 16 | tz << 20;
                                assertEquals(expect, out[block * threads + thread]);
                            }
    }

    @Test
    void faultsAreExceptionsNotHangs() {
        long d = driver.memAlloc(32 * 4L, "x");
        CudaException divergent = assertThrows(CudaException.class,
                () -> launch("smoke_divergent_barrier", 1, 32, 0, ARGS.clear().ptr(d)));
        assertEquals(CudaErrors.CUDA_ERROR_LAUNCH_FAILED, divergent.status());
        assertTrue(divergent.getMessage().contains("__syncthreads reached by 16 of 32 threads"), divergent.getMessage());

        CudaException unknown = assertThrows(CudaException.class, () -> driver.moduleGetFunction(module, "no_such_kernel"));
        assertEquals(CudaErrors.CUDA_ERROR_NOT_FOUND, unknown.status());

        CudaException arity = assertThrows(CudaException.class, () -> launch("smoke_block_sum", 1, 32, 0, ARGS.clear().ptr(d).ptr(d)));
        assertTrue(arity.getMessage().contains("argument sizes (8, 8) but the kernel takes (8, 8, 4)"), arity.getMessage());

        CudaException config = assertThrows(CudaException.class, () -> launch("smoke_reverse", 1, 2048, 0, ARGS.clear().ptr(d).ptr(d)));
        assertEquals(CudaErrors.CUDA_ERROR_INVALID_VALUE, config.status());
    }

    @Test
    void capturedGraphReplaysWithCaptureTimeArguments() {
        long stream = driver.streamCreate();
        float[] in = new float[64];
        for (int i = 0; i < in.length; i++) in[i] = i;
        long dIn = upload(in), dOut = driver.memAlloc(64 * 4L, "out"), dOut2 = driver.memAlloc(64 * 4L, "out2");
        driver.memsetD8(dOut, (byte) 0, 64 * 4L, 0, "zero");
        driver.streamBeginCapture(stream);
        driver.launchKernel(driver.moduleGetFunction(module, "smoke_reverse"), 1, 1, 1, 64, 1, 1, 0, stream, ARGS.clear().ptr(dOut).ptr(dIn));
        driver.memcpyDtoD(dOut2, dOut, 64 * 4L, stream, "copy");
        ARGS.clear().ptr(0).ptr(0); // the graph must not see later changes to the reused argument list
        long graph = driver.streamEndCaptureAndInstantiate(stream);
        assertEquals(0f, downloadFloats(dOut, 64)[0], "capture must not execute");
        driver.graphLaunch(graph, stream);
        driver.streamSynchronize(stream, "replay");
        float[] out = downloadFloats(dOut2, 64);
        for (int i = 0; i < 64; i++) assertEquals(63 - i, out[i]);
        driver.graphDestroy(graph);
        driver.streamDestroy(stream);
    }

    @Test
    void simGemmMatchesAPlainLoopForEveryTransposeAndBias() {
        Random r = new Random(4);
        int m = 5, n = 7, k = 3;
        try (Blas blas = new SimBlas(driver)) {
            for (boolean ta : new boolean[] {false, true})
                for (boolean tb : new boolean[] {false, true}) {
                    float[] a = new float[m * k], b = new float[k * n], c = new float[m * n], bias = new float[n];
                    for (int i = 0; i < a.length; i++) a[i] = r.nextFloat() - 0.5f;
                    for (int i = 0; i < b.length; i++) b[i] = r.nextFloat() - 0.5f;
                    for (int i = 0; i < c.length; i++) c[i] = r.nextFloat();
                    for (int i = 0; i < n; i++) bias[i] = i;
                    long dA = upload(a), dB = upload(b), dC = upload(c), dBias = upload(bias);
                    int lda = ta ? m : k, ldb = tb ? k : n;
                    blas.matmul(ta, tb, m, n, k, 2f, dA, lda, dB, ldb, 0.5f, dC, n, dBias, Blas.Type.F32, Blas.Type.F32, 0, "gemm");
                    float[] got = downloadFloats(dC, m * n);
                    for (int i = 0; i < m; i++)
                        for (int j = 0; j < n; j++) {
                            float acc = 0;
                            for (int p = 0; p < k; p++)
                                acc += (ta ? a[p * lda + i] : a[i * lda + p]) * (tb ? b[j * ldb + p] : b[p * ldb + j]);
                            assertEquals(2f * acc + 0.5f * c[i * n + j] + bias[j], got[i * n + j], 1e-5f, "ta " + ta + " tb " + tb);
                        }
                }
        }
    }

    @Test
    void deviceReportsALargeSharedMemoryOptIn() {
        CudaDriver.DeviceInfo info = driver.device();
        assertEquals(227 * 1024, info.maxSharedPerBlockOptin());
        assertEquals("sim", driver.binding());
    }
}
