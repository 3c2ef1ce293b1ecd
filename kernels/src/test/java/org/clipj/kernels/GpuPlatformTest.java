package org.clipj.kernels;

import static java.lang.foreign.ValueLayout.JAVA_FLOAT;
import static java.lang.foreign.ValueLayout.JAVA_SHORT;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.lang.foreign.MemorySegment;
import java.util.List;
import java.util.Random;

import org.clipj.cuda.Blas;
import org.clipj.cuda.CuBlasLt;
import org.clipj.cuda.CudaDriver;
import org.clipj.cuda.CudaDrivers;
import org.clipj.cuda.CudaException;
import org.clipj.cuda.KernelArgs;
import org.clipj.cuda.Nvrtc;
import org.clipj.cuda.PanamaCudaDriver;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/** The platform on a real GPU (panama and jcuda bindings): memory, the fatbin, launches, graphs, cuBLASLt, NVRTC. */
@Tag("gpu")
class GpuPlatformTest {
    private static CudaDriver open(String binding) {
        assumeTrue(PanamaCudaDriver.unavailableReason() == null, "no CUDA driver: " + PanamaCudaDriver.unavailableReason());
        return CudaDrivers.open(binding, 0);
    }

    private static long fatbinModule(CudaDriver driver) {
        byte[] fatbin = Kernels.fatbin().orElseThrow(() -> new AssertionError("no fatbin: " + Kernels.fatbinUnavailableReason()));
        return driver.moduleLoadData(fatbin);
    }

    @ParameterizedTest
    @ValueSource(strings = {"panama", "jcuda"})
    void copyLaunchGraphAndEvents(String binding) {
        try (CudaDriver driver = open(binding)) {
            CudaDriver.DeviceInfo info = driver.device();
            assertTrue(info.multiprocessors() > 0 && info.computeMajor() >= 8, info.toString());
            long stream = driver.streamCreate();
            int n = 100_003;
            MemorySegment host = driver.hostAllocPinned(n * 4L);
            long d = driver.memAlloc(n * 4L, "x");
            for (int i = 0; i < n; i++) host.setAtIndex(JAVA_FLOAT, i, i);
            driver.memcpyHtoD(d, host, n * 4L, stream, "upload");
            long module = fatbinModule(driver);
            CudaDriver.Function scale = driver.moduleGetFunction(module, "scale");
            KernelArgs args = new KernelArgs(8);
            long start = driver.eventCreate(), end = driver.eventCreate();
            driver.eventRecord(start, stream);
            driver.launchKernel(scale, (n + 255) / 256, 1, 1, 256, 1, 1, 0, stream, args.clear().ptr(d).f32(2f).i64(n));
            driver.eventRecord(end, stream);
            driver.streamBeginCapture(stream);
            driver.launchKernel(scale, (n + 255) / 256, 1, 1, 256, 1, 1, 0, stream, args.clear().ptr(d).f32(3f).i64(n));
            long graph = driver.streamEndCaptureAndInstantiate(stream);
            driver.graphLaunch(graph, stream);
            driver.graphLaunch(graph, stream);
            driver.memcpyDtoH(host, d, n * 4L, stream, "download");
            driver.streamSynchronize(stream, "test");
            assertTrue(driver.eventElapsedMs(start, end) >= 0f);
            for (int i = 0; i < n; i += 997) assertEquals(i * 18f, host.getAtIndex(JAVA_FLOAT, i), "element " + i);
            driver.graphDestroy(graph);
            driver.eventDestroy(start);
            driver.eventDestroy(end);
            driver.memFree(d);
            driver.hostFreePinned(host);
            driver.streamDestroy(stream);
            driver.moduleUnload(module);
        }
    }

    @org.junit.jupiter.api.Test
    void badLaunchIsACudaExceptionNamingTheKernel() {
        try (CudaDriver driver = open("panama")) {
            long module = fatbinModule(driver);
            CudaDriver.Function fill = driver.moduleGetFunction(module, "fill");
            CudaException e = assertThrows(CudaException.class, () -> driver.launchKernel(fill, 1, 1, 1, 4096, 1, 1, 0, 0,
                    new KernelArgs(4).ptr(0).f32(0).i64(0)));
            assertTrue(e.getMessage().contains("fill") && e.getMessage().startsWith("cuLaunchKernel failed: CUDA_ERROR_"), e.getMessage());
            assertThrows(CudaException.class, () -> driver.moduleGetFunction(module, "no_such_kernel"));
        }
    }

    @ParameterizedTest
    @ValueSource(strings = {"F32", "BF16", "F16"})
    void cublasLtMatchesAPlainLoopWithBias(String type) {
        assumeTrue(CuBlasLt.unavailableReason() == null, "no cuBLASLt: " + CuBlasLt.unavailableReason());
        Blas.Type t = Blas.Type.valueOf(type);
        try (CudaDriver driver = open("panama"); Blas blas = Blas.open(driver, false)) {
            int m = 67, n = 45, k = 129;
            Random r = new Random(5);
            float[] a = new float[m * k], b = new float[n * k], bias = new float[n];
            for (int i = 0; i < a.length; i++) a[i] = r.nextFloat() - 0.5f;
            for (int i = 0; i < b.length; i++) b[i] = r.nextFloat() - 0.5f;
            for (int i = 0; i < n; i++) bias[i] = i * 0.01f;
            long dA = upload(driver, a, t), dB = upload(driver, b, t), dBias = upload(driver, bias, Blas.Type.F32);
            long dC = driver.memAlloc((long) m * n * 4, "c");
            // C = A @ B^T + bias: B stored (n, k), the Linear layer's layout
            blas.matmul(false, true, m, n, k, 1f, dA, k, dB, k, 0f, dC, n, dBias, t, Blas.Type.F32, 0, "linear");
            MemorySegment out = driver.hostAllocPinned((long) m * n * 4);
            driver.memcpyDtoH(out, dC, (long) m * n * 4, 0, "download");
            driver.streamSynchronize(0, "gemm");
            float tol = t == Blas.Type.F32 ? 1e-4f : 3e-2f;
            for (int i = 0; i < m; i++)
                for (int j = 0; j < n; j++) {
                    float acc = bias[j];
                    for (int p = 0; p < k; p++) acc += round(a[i * k + p], t) * round(b[j * k + p], t);
                    assertEquals(acc, out.getAtIndex(JAVA_FLOAT, (long) i * n + j), tol, "C[" + i + "," + j + "]");
                }
            driver.hostFreePinned(out);
        }
    }

    @org.junit.jupiter.api.Test
    void nvrtcCompilesAKernelTheDriverRuns() {
        assumeTrue(Nvrtc.unavailableReason() == null, "no NVRTC: " + Nvrtc.unavailableReason());
        try (CudaDriver driver = open("panama")) {
            String ptx = Nvrtc.compileToPtx("extern \"C\" __global__ void iota(float* x, int n) {"
                    + " int i = blockIdx.x * blockDim.x + threadIdx.x; if (i < n) x[i] = i; }", "iota.cu",
                    List.of("--gpu-architecture=compute_80"));
            long module = driver.moduleLoadData(ptx.getBytes(java.nio.charset.StandardCharsets.UTF_8));
            long d = driver.memAlloc(1000 * 4, "iota");
            driver.launchKernel(driver.moduleGetFunction(module, "iota"), 4, 1, 1, 256, 1, 1, 0, 0, new KernelArgs(2).ptr(d).i32(1000));
            MemorySegment host = driver.hostAllocPinned(4000);
            driver.memcpyDtoH(host, d, 4000, 0, "download");
            driver.streamSynchronize(0, "iota");
            for (int i = 0; i < 1000; i++) assertEquals(i, host.getAtIndex(JAVA_FLOAT, i));
            CudaException e = assertThrows(CudaException.class, () -> Nvrtc.compileToPtx("this is not C++", "bad.cu", List.of()));
            assertTrue(e.getMessage().contains("bad.cu"), e.getMessage());
        }
    }

    private static float round(float v, Blas.Type t) {
        return switch (t) {
            case F32 -> v;
            case F16 -> Float.float16ToFloat(Float.floatToFloat16(v));
            case BF16 -> Float.intBitsToFloat((Float.floatToRawIntBits(v) + 0x7fff + ((Float.floatToRawIntBits(v) >>> 16) & 1)) & 0xffff0000);
        };
    }

    private static long upload(CudaDriver driver, float[] v, Blas.Type t) {
        long bytes = (long) v.length * t.bytes;
        MemorySegment host = driver.hostAllocPinned(bytes);
        for (int i = 0; i < v.length; i++) {
            switch (t) {
                case F32 -> host.setAtIndex(JAVA_FLOAT, i, v[i]);
                case F16 -> host.setAtIndex(JAVA_SHORT, i, Float.floatToFloat16(v[i]));
                case BF16 -> host.setAtIndex(JAVA_SHORT, i, (short) (Float.floatToRawIntBits(round(v[i], t)) >>> 16));
            }
        }
        long d = driver.memAlloc(bytes, "upload");
        driver.memcpyHtoD(d, host, bytes, 0, "upload");
        driver.streamSynchronize(0, "upload");
        driver.hostFreePinned(host);
        return d;
    }
}
