package org.clipj.bench;

import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import java.util.concurrent.TimeUnit;

import org.clipj.model.ClipConfig;
import org.clipj.model.ClipModel;
import org.clipj.model.Parameter;
import org.clipj.runtime.Tensor;
import org.clipj.runtime.cpu.CpuBackend;
import org.clipj.train.AdamW;
import org.clipj.train.ContrastiveStep;
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
 * One training step of a freshly initialized CLIP on random pixels and tokens: zeroGrad, forward
 * and backward of both towers with the symmetric contrastive loss (ContrastiveStep, one
 * micro-batch), AdamW update (betas 0.9/0.98, eps 1e-6, wd 0.1 on open_clip's decay group).
 * {@code spec} is CONFIG@BATCH; CONFIG is a ClipConfig name, "tiny:V" for tiny with vocabulary V
 * (the demo's learned BPE). scripts/bench train turns the step time into images/s. Setup warms
 * the step up until the JIT is quiet ({@link JitQuiet}): JMH's 3 warm-up steps left C2 compiling
 * into the timed ones.
 */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.SingleShotTime)
@OutputTimeUnit(TimeUnit.MILLISECONDS)
@Warmup(iterations = 3)
@Measurement(iterations = 100)   // a p99 needs about a hundred steps
@Fork(value = 1, jvmArgsAppend = {"--add-modules", "jdk.incubator.vector", "--enable-native-access=ALL-UNNAMED",
        "-Djava.awt.headless=true", "-Xmx8g"})
public class TrainStepBenchmark {

    @Param({"ViT-B/32@8", "tiny@64"})
    public String spec;

    @Param({"2"})
    public int threads;

    private CpuBackend backend;
    private ClipModel model;
    private AdamW optimizer;
    private List<Tensor> pixels; // one micro-batch (B, 3, R, R)
    private List<Tensor> tokens; // one micro-batch (B, T) I32

    @Setup(Level.Trial)
    public void setup() {
        String[] parts = spec.split("@");
        int batch = Integer.parseInt(parts[1]);
        ClipConfig config = parts[0].startsWith("tiny:")
                ? ClipConfig.named("tiny").withVocabSize(Integer.parseInt(parts[0].substring(5)))
                : ClipConfig.named(parts[0]);
        backend = new CpuBackend(threads, true);
        model = ClipModel.initialize(config, 0, backend);
        List<AdamW.Param> params = new ArrayList<>();
        for (Parameter p : model.parameters()) params.add(new AdamW.Param(p.name(), p.value(), p.grad()));
        optimizer = new AdamW(backend, params, 0.9f, 0.98f, 1e-6f, 0.1f);
        SplittableRandom rng = new SplittableRandom(1);
        int r = config.imageResolution();
        float[] px = new float[batch * 3 * r * r];
        for (int i = 0; i < px.length; i++) px[i] = (float) (rng.nextDouble() * 2 - 1);
        int ctx = config.contextLength();
        int vocab = config.vocabSize();
        int[] ids = new int[batch * ctx];
        for (int b = 0; b < batch; b++) {
            int n = rng.nextInt(1, ctx - 1);   // caption tokens between SOT and EOT
            ids[b * ctx] = vocab - 2;
            for (int i = 1; i <= n; i++) ids[b * ctx + i] = rng.nextInt(1, vocab - 2);
            ids[b * ctx + n + 1] = vocab - 1;
        }
        pixels = List.of(Tensor.of(px, batch, 3, r, r));
        tokens = List.of(Tensor.of(ids, batch, ctx));
        JitQuiet.warmUp("train " + spec, this::step, JitQuiet.clipjMinCalls("train " + spec, 10), 3, 180_000);
    }

    @TearDown(Level.Trial)
    public void tearDown() {
        backend.close();
    }

    @Benchmark
    public float step() {
        model.zeroGrad();
        float loss = ContrastiveStep.lossAndGradients(model, pixels, tokens);
        optimizer.update(1e-4f, 1f);
        return loss;
    }
}
