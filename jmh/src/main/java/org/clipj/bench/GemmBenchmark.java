package org.clipj.bench;

import java.util.SplittableRandom;
import java.util.concurrent.TimeUnit;

import org.clipj.runtime.cpu.ComputePool;
import org.clipj.runtime.cpu.Sgemm;
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
 * Sgemm.sgemm: C(M,N) = A(M,K) @ B, with B stored (K,N), or (N,K) when transB (nn.Linear's
 * weight layout). GFLOP/s = 2*M*N*K / time; scripts/bench gemm turns the times into rates.
 * packed = true packs B once at setup ({@link Sgemm#pack}), as the encoders' prepared weights are;
 * cold = true cycles through enough packed copies of B (at least 96 MB) that each call reads its B
 * from memory, not from a cache, as an encoder forward reads each layer's weights once.
 */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.SampleTime)
@OutputTimeUnit(TimeUnit.MILLISECONDS)
@Warmup(iterations = 3, time = 1)
@Measurement(iterations = 5, time = 1)
@Fork(value = 1, jvmArgsAppend = {"--add-modules", "jdk.incubator.vector", "--enable-native-access=ALL-UNNAMED",
        "-Djava.awt.headless=true"})
public class GemmBenchmark {

    @Param({"1024x1024x1024", "50x2304x768", "50x768x768", "50x3072x768", "50x768x3072",
            "400x2304x768", "77x1536x512", "616x2048x512"})
    public String shape; // MxNxK

    @Param({"false"})
    public boolean transB;

    @Param({"false"})
    public boolean packed;

    @Param({"false"})
    public boolean cold;

    @Param({"2"})
    public int threads;

    private int m, n, k;
    private float[] a; // (M, K)
    private float[] b; // (K, N), or (N, K) when transB
    private float[] c; // (M, N)
    private Sgemm.PackedB[] packedB; // when packed: one, or enough copies to be cold
    private int next;
    private ComputePool pool;

    @Setup(Level.Trial)
    public void setup() {
        String[] dims = shape.split("x");
        m = Integer.parseInt(dims[0]);
        n = Integer.parseInt(dims[1]);
        k = Integer.parseInt(dims[2]);
        SplittableRandom rng = new SplittableRandom(42);
        a = random(rng, m * k);
        b = random(rng, k * n);
        c = new float[m * n];
        if (cold && !packed) throw new IllegalArgumentException("cold=true needs packed=true");
        int copies = cold ? (int) Math.max(2, (96L << 20) / (4L * k * n) + 1) : 1;
        packedB = packed ? new Sgemm.PackedB[copies] : null;
        for (int i = 0; packed && i < copies; i++) packedB[i] = Sgemm.pack(transB, n, k, b, 0, transB ? k : n);
        pool = new ComputePool(threads, "gemm-bench");
    }

    @TearDown(Level.Trial)
    public void tearDown() {
        pool.close();
    }

    @Benchmark
    public float[] sgemm() {
        if (packedB != null) {
            Sgemm.PackedB weights = packedB[next];
            next = (next + 1) % packedB.length;
            Sgemm.sgemm(m, n, k, 1f, a, 0, k, weights, 0f, c, 0, n, pool);
        }
        else Sgemm.sgemm(false, transB, m, n, k, 1f, a, 0, k, b, 0, transB ? k : n, 0f, c, 0, n, pool);
        return c;
    }

    private static float[] random(SplittableRandom rng, int length) {
        float[] x = new float[length];
        for (int i = 0; i < length; i++) x[i] = (float) (rng.nextDouble() * 2 - 1);
        return x;
    }
}
