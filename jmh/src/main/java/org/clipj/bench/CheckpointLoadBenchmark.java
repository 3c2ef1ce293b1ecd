package org.clipj.bench;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.concurrent.TimeUnit;

import org.clipj.io.Checkpoint;
import org.clipj.io.Checkpoints;
import org.clipj.io.SafeTensors;
import org.clipj.model.ClipConfig;
import org.clipj.model.ClipModel;
import org.clipj.model.Precision;
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
 * Load time of a ~300 MB F16 ViT-B/32 checkpoint: Checkpoints.load + ClipModel.consumeStateDict
 * for inference (F32 on the CPU backend; each tensor read from the file as its weight is built, as
 * Clip.load does). {@code format}: safetensors (setup
 * writes the weights of {@code dir}/model.safetensors, see bench/peers/export_onnx.py, as F16 with
 * SafeTensors.write, so the peer's torch.save'd model-f16.pt holds the same values), torch
 * ({@code dir}/model-f16.pt itself, the file the PyTorch peer loads) or torchscript
 * ({@code dir}/model-f16-torchscript.pt, OpenAI's release format; bench/peers/load_torch.py writes
 * both). {@code read}: lazy (each tensor read from the file as its weight is built, as Clip.load does) or
 * eager (the whole state dict read first, in parallel, as training does, then the model built from it).
 * Single shots; the file is in the page cache after warm-up. Fifteen of them: one load's time on a
 * 2-vCPU VM ranges 180-700 ms, and five shots gave medians of 286 and 490 ms for the same code.
 */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.SingleShotTime)
@OutputTimeUnit(TimeUnit.MILLISECONDS)
@Warmup(iterations = 3)
@Measurement(iterations = 15)
@Fork(value = 1, jvmArgsAppend = {"--add-modules", "jdk.incubator.vector", "--enable-native-access=ALL-UNNAMED",
        "-Djava.awt.headless=true", "-Xmx8g"})
public class CheckpointLoadBenchmark {

    @Param({"2"})
    public int threads;

    @Param({""})
    public String dir;

    @Param({"safetensors"})
    public String format;

    @Param({"lazy"})
    public String read;

    private CpuBackend backend;
    private Path f16File;   // written by setup for format safetensors, deleted by tearDown
    private Path file;      // the checkpoint each shot loads

    @Setup(Level.Trial)
    public void setup() throws IOException {
        if (dir.isEmpty()) throw new IllegalArgumentException("CheckpointLoadBenchmark: pass -p dir=FOLDER (export_onnx.py output)");
        backend = new CpuBackend(threads, true);
        switch (format) {
            case "safetensors" -> {
                Map<String, Tensor> f16 = new LinkedHashMap<>();
                for (var e : Checkpoints.load(Path.of(dir, "model.safetensors")).tensors().entrySet()) {
                    f16.put(e.getKey(), toF16(e.getValue()));
                }
                f16File = Files.createTempFile(Path.of(dir), "model-f16-", ".safetensors");
                SafeTensors.write(f16File, f16, Map.of());
                file = f16File;
            }
            case "torch" -> file = Path.of(dir, "model-f16.pt");
            case "torchscript" -> file = Path.of(dir, "model-f16-torchscript.pt");
            default -> throw new IllegalArgumentException("CheckpointLoadBenchmark: format " + format
                    + " is none of safetensors, torch, torchscript");
        }
        if (!Files.isRegularFile(file)) throw new IllegalArgumentException("CheckpointLoadBenchmark: no " + file);
        if (!read.equals("lazy") && !read.equals("eager")) {
            throw new IllegalArgumentException("CheckpointLoadBenchmark: read " + read + " is neither lazy nor eager");
        }
    }

    /** Collects the previous shot's model first, so a shot times the load, not another model's garbage collection. */
    @Setup(Level.Iteration)
    public void collectPreviousModel() {
        System.gc();
    }

    @TearDown(Level.Trial)
    public void tearDown() throws IOException {
        backend.close();
        if (f16File != null) Files.deleteIfExists(f16File);
    }

    @Benchmark
    public ClipModel load() {
        Checkpoint checkpoint = Checkpoints.load(file);
        if (read.equals("eager")) return ClipModel.fromStateDict(checkpoint.tensors(), backend, Precision.F32);
        return ClipModel.consumeStateDict(new LinkedHashMap<>(checkpoint.stored()), ClipConfig.infer(checkpoint.stored()),
                backend, Precision.F32);
    }

    private static Tensor toF16(Tensor t) {
        float[] x = t.toFloatArray();
        short[] bits = new short[x.length];
        for (int i = 0; i < x.length; i++) bits[i] = Float.floatToFloat16(x[i]);
        return Tensor.ofBits(DType.F16, bits, t.shape());
    }
}
