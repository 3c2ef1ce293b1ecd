package org.clipj.bench;

import java.util.SplittableRandom;
import java.util.concurrent.TimeUnit;

import org.clipj.runtime.DType;
import org.clipj.runtime.Tensor;
import org.clipj.runtime.cpu.CpuBackend;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;
import org.openjdk.jmh.annotations.Warmup;

/**
 * A linear layer out (M, N) = x (M, K) @ w (N, K)^T through the CPU backend with a prepared weight:
 * BF16 (the native AVX512_BF16 kernel, x rounded to BF16 while packed) or F32 (Sgemm), on CLIP's
 * ViT-B/32 shapes at batch 1 (M = 50) and 8 (M = 400: in_proj, out_proj, c_fc, c_proj; 392: the patch
 * embedding's GEMM). GFLOP/s = 2 M N K / time. BF16 needs a CPU with AVX512_BF16 (setup fails otherwise).
 */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.SampleTime)
@OutputTimeUnit(TimeUnit.MILLISECONDS)
@Warmup(iterations = 3, time = 1)
@Measurement(iterations = 5, time = 1)
@Fork(value = 1, jvmArgsAppend = {"--add-modules", "jdk.incubator.vector", "--enable-native-access=ALL-UNNAMED",
        "-Djava.awt.headless=true"})
public class Bf16GemmBenchmark {

    @Param({"400x2304x768", "400x768x768", "400x3072x768", "400x768x3072", "392x768x3072", "50x2304x768", "50x768x3072"})
    public String shape; // MxNxK

    @Param({"bf16", "f32"})
    public String precision;

    @Param({"2"})
    public int threads;

    private CpuBackend cpu;
    private Tensor x, w, out;

    @Setup(Level.Trial)
    public void setup() {
        String[] dims = shape.split("x");
        int m = Integer.parseInt(dims[0]), n = Integer.parseInt(dims[1]), k = Integer.parseInt(dims[2]);
        cpu = new CpuBackend(threads, true);
        SplittableRandom rng = new SplittableRandom(42);
        x = Tensor.of(random(rng, m * k, 1), m, k);
        Tensor w32 = Tensor.of(random(rng, n * k, 0.05), n, k);
        DType dtype = switch (precision) {
            case "bf16" -> DType.BF16;
            case "f32" -> DType.F32;
            default -> throw new IllegalArgumentException("precision " + precision + ": expected bf16 or f32");
        };
        Tensor weight = w32;
        if (dtype == DType.BF16) {
            weight = Tensor.zeros(DType.BF16, n, k);
            cpu.cast(weight, w32);
        }
        w = cpu.prepareWeight(weight);
        out = Tensor.zeros(DType.F32, m, n);
    }

    @TearDown(Level.Trial)
    public void tearDown() {
        cpu.close();
    }

    @Benchmark
    public Tensor linear() {
        cpu.linearForward(out, x, w, null);
        return out;
    }

    private static float[] random(SplittableRandom rng, int length, double scale) {
        float[] v = new float[length];
        for (int i = 0; i < length; i++) v[i] = (float) ((rng.nextDouble() * 2 - 1) * scale);
        return v;
    }
}
