package org.clipj.bench;

import java.nio.FloatBuffer;
import java.nio.LongBuffer;
import java.nio.file.Path;
import java.util.Map;
import java.util.concurrent.TimeUnit;

import ai.onnxruntime.OnnxTensor;
import ai.onnxruntime.OrtEnvironment;
import ai.onnxruntime.OrtException;
import ai.onnxruntime.OrtSession;
import org.clipj.io.Checkpoints;
import org.clipj.io.SafeTensors;
import org.clipj.model.ClipConfig;
import org.clipj.model.ClipModel;
import org.clipj.model.Precision;
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
 * One CLIP tower (image or text) at batch 1 or 8, run by clipj's CpuBackend or by ONNX Runtime
 * Java on the torch.onnx.export of the same weights. {@code dir} is a folder written by
 * bench/peers/export_onnx.py: model.safetensors, image.onnx, text.onnx and inputs.safetensors
 * (inputs and the PyTorch features on them). Setup fails unless every output row has cosine
 * >= 0.9999 with the PyTorch reference (>= 0.999 for clipj's BF16 linear layers, {@code -p
 * precision=bf16}, on a CPU with AVX512_BF16), so only agreeing implementations are timed. Setup
 * then warms the case up until the JIT is quiet ({@link JitQuiet}), before JMH's own warm-up.
 */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.SampleTime)
@OutputTimeUnit(TimeUnit.MILLISECONDS)
@Warmup(iterations = 3, time = 1)
@Measurement(iterations = 10, time = 4)   // >= 100 calls at b8 for a p99
@Fork(value = 1, jvmArgsAppend = {"--add-modules", "jdk.incubator.vector", "--enable-native-access=ALL-UNNAMED",
        "-Djava.awt.headless=true", "-Xmx8g"})
public class EncoderBenchmark {
    static final double MIN_COSINE = 0.9999;
    static final double MIN_COSINE_BF16 = 0.999;   // the BF16 path's quality bar (issue 15): BF16 keeps 8 bits

    @Param({"clipj", "onnxruntime"})
    public String impl;

    @Param({"image", "text"})
    public String tower;

    @Param({"1", "8"})
    public int batch;

    @Param({"2"})
    public int threads;

    /** The architecture the weights in dir have: ViT-B/32 (OpenAI, QuickGELU) or ViT-B-32 (open_clip, exact GELU). */
    @Param({"ViT-B/32"})
    public String config;

    /** clipj's GEMM weights: f32, or bf16 (the native AVX512_BF16 linear layers; ONNX Runtime stays F32). */
    @Param({"f32"})
    public String precision;

    @Param({""})
    public String dir;

    private CpuBackend backend;
    private ClipModel model;
    private Tensor input;          // pixels (B, 3, R, R) F32 or tokens (B, T) I32
    private OrtEnvironment env;
    private OrtSession session;
    private OnnxTensor ortInput;   // the same input for ONNX Runtime (tokens as I64)

    @Setup(Level.Trial)
    public void setup() throws OrtException {
        if (dir.isEmpty()) throw new IllegalArgumentException("EncoderBenchmark: pass -p dir=FOLDER (export_onnx.py output)");
        Path folder = Path.of(dir);
        Map<String, Tensor> ref = SafeTensors.read(folder.resolve("inputs.safetensors"));
        Tensor all = ref.get(tower.equals("image") ? "pixels" : "tokens");
        Tensor expected = ref.get(tower); // (8, E)
        if (!impl.equals("clipj") && !precision.equals("f32")) {
            throw new IllegalArgumentException("EncoderBenchmark: -p precision=" + precision + " is clipj's; " + impl + " runs F32");
        }
        if (impl.equals("clipj")) {
            backend = new CpuBackend(threads, true);
            model = ClipModel.fromStateDict(Checkpoints.load(folder.resolve("model.safetensors")).tensors(),
                    ClipConfig.named(config), backend, Precision.parse(precision));
            checkAgreement(run(all), expected, model.precision() == Precision.BF16 ? MIN_COSINE_BF16 : MIN_COSINE);
            input = all.slice(0, batch).copy();
            JitQuiet.warmUp("clipj " + tower + " b" + batch, () -> run(input), JitQuiet.clipjMinCalls("clipj", 20), 10, 120_000);
        } else {
            env = OrtEnvironment.getEnvironment();
            OrtSession.SessionOptions options = new OrtSession.SessionOptions();
            options.setIntraOpNumThreads(threads);
            options.setInterOpNumThreads(1);
            options.setOptimizationLevel(OrtSession.SessionOptions.OptLevel.ALL_OPT);
            session = env.createSession(folder.resolve(tower + ".onnx").toString(), options);
            ortInput = ortTensor(all, all.dim(0));
            checkAgreement(runOrt(), expected, MIN_COSINE);
            ortInput.close();
            ortInput = ortTensor(all, batch);
            JitQuiet.warmUp("onnxruntime " + tower + " b" + batch, this::runOrtUnchecked, 20, 10, 120_000);
        }
    }

    @TearDown(Level.Trial)
    public void tearDown() throws OrtException {
        if (backend != null) backend.close();
        if (ortInput != null) ortInput.close();
        if (session != null) session.close();
    }

    @Benchmark
    public Object encode() throws OrtException {
        return impl.equals("clipj") ? run(input) : runOrt();
    }

    private Tensor run(Tensor x) {
        return tower.equals("image") ? model.encodeImage(x) : model.encodeText(x);
    }

    private Tensor runOrt() throws OrtException {
        try (OrtSession.Result result = session.run(Map.of("input", ortInput))) {
            float[][] features = (float[][]) result.get(0).getValue();
            int e = features[0].length;
            float[] flat = new float[features.length * e];
            for (int i = 0; i < features.length; i++) System.arraycopy(features[i], 0, flat, i * e, e);
            return Tensor.of(flat, features.length, e);
        }
    }

    private void runOrtUnchecked() {
        try {
            runOrt();
        } catch (OrtException e) {
            throw new IllegalStateException("onnxruntime failed during warm-up", e);
        }
    }

    /** The first rows of x (pixels F32 or tokens I32, widened to I64 as the exported graph takes them). */
    private OnnxTensor ortTensor(Tensor x, int rows) throws OrtException {
        int[] shape = x.shape().clone();
        shape[0] = rows;
        long[] dims = new long[shape.length];
        int n = 1;
        for (int i = 0; i < shape.length; i++) {
            dims[i] = shape[i];
            n *= shape[i];
        }
        if (tower.equals("image")) {
            return OnnxTensor.createTensor(env, FloatBuffer.wrap(x.f32(), x.offset(), n).slice(), dims);
        }
        long[] ids = new long[n];
        int[] src = x.i32();
        for (int i = 0; i < n; i++) ids[i] = src[x.offset() + i];
        return OnnxTensor.createTensor(env, LongBuffer.wrap(ids), dims);
    }

    /** Fails unless every row of actual has cosine >= minCosine with the same row of expected. */
    static void checkAgreement(Tensor actual, Tensor expected, double minCosine) {
        float[] a = actual.toFloatArray();
        float[] b = expected.toFloatArray();
        int rows = expected.dim(0);
        int e = expected.dim(1);
        for (int r = 0; r < rows; r++) {
            double dot = 0, na = 0, nb = 0;
            for (int i = r * e; i < (r + 1) * e; i++) {
                dot += (double) a[i] * b[i];
                na += (double) a[i] * a[i];
                nb += (double) b[i] * b[i];
            }
            double cos = dot / Math.sqrt(na * nb);
            if (!(cos >= minCosine)) {
                throw new IllegalStateException("features of row " + r + " disagree with PyTorch's: cosine " + cos);
            }
        }
        System.err.println("bench: outputs agree with PyTorch's on " + rows + " rows (cosine >= " + minCosine + ")");
    }
}
