package org.clipj.kernels;

import java.lang.foreign.MemorySegment;
import java.util.Arrays;
import java.util.Locale;

import org.clipj.cuda.Blas;
import org.clipj.cuda.CuBlasLt;
import org.clipj.cuda.CudaDriver;
import org.clipj.cuda.CudaDrivers;
import org.clipj.cuda.KernelArgs;

/**
 * GPU platform benchmarks for gpu-bundle/run.sh (a main, not a test): kernel launch cost through FFM
 * (panama) and JNI (jcuda), launch cost inside a replayed CUDA graph, cuBLASLt GEMM rates and pinned
 * upload bandwidth. Prints one JSON object per line (suite "gpu", DESIGN.md section 13); medians of 5 runs.
 */
public final class GpuLaunchBench {
    private static final int LAUNCHES = 20_000;

    public static void main(String[] args) {
        for (String binding : new String[] {"panama", "jcuda"}) {
            try (CudaDriver driver = CudaDrivers.open(binding, 0)) {
                launchOverhead(driver);
                if (binding.equals("panama")) {
                    graphOverhead(driver);
                    if (CuBlasLt.unavailableReason() == null) {
                        gemm(driver, Blas.Type.BF16, false);
                        gemm(driver, Blas.Type.F16, false);
                        gemm(driver, Blas.Type.F32, false);
                        gemm(driver, Blas.Type.F32, true);
                    }
                    uploadBandwidth(driver);
                }
            } catch (RuntimeException e) {
                System.out.printf(Locale.ROOT, "{\"suite\":\"gpu\",\"name\":\"%s\",\"error\":\"%s\"}%n", binding,
                        String.valueOf(e.getMessage()).replace('\\', '/').replace('"', '\'').replaceAll("\\s+", " "));
            }
        }
    }

    private static void emit(String name, String unit, double value, String binding, String device) {
        System.out.printf(Locale.ROOT, "{\"suite\":\"gpu\",\"name\":\"%s\",\"unit\":\"%s\",\"clipj\":%.4f,\"binding\":\"%s\",\"device\":\"%s\"}%n",
                name, unit, value, binding, device);
    }

    private static double median(double[] v) {
        double[] s = v.clone();
        Arrays.sort(s);
        return s[s.length / 2];
    }

    private static void launchOverhead(CudaDriver driver) {
        long module = driver.moduleLoadData(Kernels.fatbin().orElseThrow(() -> new IllegalStateException(Kernels.fatbinUnavailableReason())));
        CudaDriver.Function fill = driver.moduleGetFunction(module, "fill");
        long stream = driver.streamCreate();
        long d = driver.memAlloc(4, "x");
        KernelArgs args = new KernelArgs(4);
        double[] runs = new double[5];
        for (int r = -2; r < runs.length; r++) {
            long t0 = System.nanoTime();
            for (int i = 0; i < LAUNCHES; i++) driver.launchKernel(fill, 1, 1, 1, 32, 1, 1, 0, stream, args.clear().ptr(d).f32(i).i64(1));
            driver.streamSynchronize(stream, "bench");
            if (r >= 0) runs[r] = (System.nanoTime() - t0) / 1e3 / LAUNCHES;
        }
        emit("launch-" + driver.binding(), "us", median(runs), driver.binding(), driver.device().name());
        driver.memFree(d);
        driver.streamDestroy(stream);
        driver.moduleUnload(module);
    }

    private static void graphOverhead(CudaDriver driver) {
        long module = driver.moduleLoadData(Kernels.fatbin().orElseThrow());
        CudaDriver.Function fill = driver.moduleGetFunction(module, "fill");
        long stream = driver.streamCreate();
        long d = driver.memAlloc(4, "x");
        KernelArgs args = new KernelArgs(4);
        int perGraph = 100;
        driver.streamBeginCapture(stream);
        for (int i = 0; i < perGraph; i++) driver.launchKernel(fill, 1, 1, 1, 32, 1, 1, 0, stream, args.clear().ptr(d).f32(i).i64(1));
        long graph = driver.streamEndCaptureAndInstantiate(stream);
        double[] runs = new double[5];
        for (int r = -2; r < runs.length; r++) {
            long t0 = System.nanoTime();
            for (int i = 0; i < LAUNCHES / perGraph; i++) driver.graphLaunch(graph, stream);
            driver.streamSynchronize(stream, "bench");
            if (r >= 0) runs[r] = (System.nanoTime() - t0) / 1e3 / LAUNCHES;
        }
        emit("graph-kernel-" + driver.binding(), "us", median(runs), driver.binding(), driver.device().name());
        driver.graphDestroy(graph);
        driver.memFree(d);
        driver.streamDestroy(stream);
        driver.moduleUnload(module);
    }

    private static void gemm(CudaDriver driver, Blas.Type type, boolean tf32) {
        int n = 4096;
        long a = driver.memAlloc((long) n * n * type.bytes, "a"), b = driver.memAlloc((long) n * n * type.bytes, "b");
        long c = driver.memAlloc((long) n * n * 4, "c");
        driver.memsetD8(a, (byte) 0x3c, (long) n * n * type.bytes, 0, "init");
        driver.memsetD8(b, (byte) 0x3c, (long) n * n * type.bytes, 0, "init");
        long start = driver.eventCreate(), end = driver.eventCreate();
        try (Blas blas = Blas.open(driver, tf32)) {
            double[] runs = new double[5];
            for (int r = -2; r < runs.length; r++) {
                driver.eventRecord(start, 0);
                for (int i = 0; i < 10; i++) blas.matmul(false, true, n, n, n, 1f, a, n, b, n, 0f, c, n, 0, type, Blas.Type.F32, 0, "gemm");
                driver.eventRecord(end, 0);
                driver.eventSynchronize(end);
                if (r >= 0) runs[r] = 10 * 2.0 * n * n * n / (driver.eventElapsedMs(start, end) * 1e-3) / 1e12;
            }
            emit("gemm-" + n + "-" + type.name().toLowerCase(Locale.ROOT) + (tf32 ? "-tf32" : ""), "TFLOP/s", median(runs),
                    driver.binding(), driver.device().name());
        }
        driver.eventDestroy(start);
        driver.eventDestroy(end);
        driver.memFree(a);
        driver.memFree(b);
        driver.memFree(c);
    }

    private static void uploadBandwidth(CudaDriver driver) {
        long bytes = 256L << 20;
        MemorySegment host = driver.hostAllocPinned(bytes);
        long d = driver.memAlloc(bytes, "bw");
        long start = driver.eventCreate(), end = driver.eventCreate();
        double[] runs = new double[5];
        for (int r = -1; r < runs.length; r++) {
            driver.eventRecord(start, 0);
            driver.memcpyHtoD(d, host, bytes, 0, "upload");
            driver.eventRecord(end, 0);
            driver.eventSynchronize(end);
            if (r >= 0) runs[r] = bytes / (driver.eventElapsedMs(start, end) * 1e-3) / 1e9;
        }
        emit("upload-pinned-256MiB", "GB/s", median(runs), driver.binding(), driver.device().name());
        driver.eventDestroy(start);
        driver.eventDestroy(end);
        driver.memFree(d);
        driver.hostFreePinned(host);
    }
}
