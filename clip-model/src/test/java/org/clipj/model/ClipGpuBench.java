package org.clipj.model;

import java.io.PrintStream;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import java.util.SplittableRandom;
import java.util.function.Supplier;

import org.clipj.runtime.DType;
import org.clipj.runtime.Tensor;
import org.clipj.runtime.cuda.CudaBackend;
import org.clipj.runtime.cuda.CudaGraph;
import org.clipj.train.AdamW;
import org.clipj.train.ContrastiveStep;

/**
 * clipj's own GPU work for gpu-bundle/run.sh (a main, not a test; GpuLaunchBench times the platform): every
 * op through its {@link org.clipj.runtime.Backend} method at ViT-B/32's shapes (batch 1 and 256: 50 image
 * tokens, 77 causal text tokens, width 768, 12 heads of 64, MLP 3072; RN50's attention pool; the contrastive
 * loss at N = 256 and 4096), then the ViT-B/32 image and text encoders (BF16 weights, the CUDA default) at
 * batch 1 and 256, both at batch 1 as replayed CUDA graphs (the text one from token ids on the device, its EOT
 * found there), and one training step at batch 256 (forward, backward, AdamW) in F32 and in BF16 autocast (16-bit
 * linear-weight copies, F32 masters; the row named as PyTorch's autocast step). scripts/gpu-peer.py runs the same
 * rows in PyTorch under the same names.
 *
 * <p>One JSON object per line (suite "gpu", DESIGN.md section 13): a rate row has {@code unit} TFLOP/s or
 * GB/s, {@code clipj} the rate from the nominal FLOPs or bytes of {@link #main}'s comments, {@code ms} the
 * median time per call and, on an H100 or H200, {@code peak} and {@code peak_fraction} (989 TFLOP/s BF16
 * dense, 67 F32, 3.35 TB/s HBM3; the H200's 4.8 TB/s); a time row has unit ms. A row that fails is
 * {@code {"name", "error"}} and the next row runs. Medians of 5 timed runs after 2 warm-up runs, each run
 * repeating the call until it lasts about 2 ms, with the stream synchronized around it.
 *
 * <p>Usage: {@code ClipGpuBench [--binding panama|jcuda|sim] [--shapes clip|tiny]}; {@code --shapes tiny}
 * (the "tiny" model, a few tokens, one run per row) is what the simulator test runs.
 */
public final class ClipGpuBench {
    /** The shapes of one run: ViT-B/32's on a GPU, tiny ones on the simulator. */
    record Sizes(String model, String config, int[] batches, int imageTokens, int textTokens, int width, int heads, int mlp,
                 int poolTokens, int poolWidth, int poolHeads, int[] contrastiveN, int embed, int classes, int trainBatch,
                 int warmups, int runs, double runMs) {
        static Sizes named(String shapes) {
            return switch (shapes) {
                case "clip" -> new Sizes("vit-b32", "ViT-B/32", new int[] {1, 256}, 50, 77, 768, 12, 3072, 50, 2048, 32,
                        new int[] {256, 4096}, 512, 1000, 256, 2, 5, 2.0);
                case "tiny" -> new Sizes("tiny", "tiny", new int[] {1, 2}, 5, 7, 128, 2, 512, 5, 128, 2,
                        new int[] {16, 64}, 64, 10, 2, 1, 1, 0.0);
                default -> throw new IllegalArgumentException("--shapes must be clip or tiny, got '" + shapes + "'");
            };
        }
    }

    /** The device's peaks (dense), or null where the device is not one whose figures are known here. */
    record Peak(double bf16Tflops, double f32Tflops, double gbPerSecond) {
        static Peak of(String device) {
            if (device.contains("H100") && !device.contains("PCIe")) return new Peak(989, 67, 3350);
            if (device.contains("H200")) return new Peak(989, 67, 4800);
            return null;
        }
    }

    private enum Bound { BF16, F32, MEMORY }

    private final CudaBackend cuda;
    private final Sizes sizes;
    private final PrintStream out;
    private final String binding;
    private final String device;
    private final Peak peak;
    private final SplittableRandom random = new SplittableRandom(7);

    /** peak: the device's (see {@link Peak#of}), or null for rows without peak_fraction. */
    ClipGpuBench(CudaBackend cuda, String binding, Sizes sizes, Peak peak, PrintStream out) {
        this.cuda = cuda;
        this.binding = binding;
        this.sizes = sizes;
        this.out = out;
        this.device = cuda.description();
        this.peak = peak;
    }

    public static void main(String[] args) {
        String binding = "panama", shapes = "clip";
        for (int i = 0; i < args.length; i++) {
            switch (args[i]) {
                case "--binding" -> binding = args[++i];
                case "--shapes" -> shapes = args[++i];
                default -> throw new IllegalArgumentException("unknown argument '" + args[i] + "' (--binding B --shapes clip|tiny)");
            }
        }
        Sizes sizes = Sizes.named(shapes);
        try (CudaBackend cuda = CudaBackend.open(binding)) {
            new ClipGpuBench(cuda, binding, sizes, Peak.of(cuda.description()), System.out).runAll();
        } catch (RuntimeException e) {
            System.out.println(json("ClipGpuBench", null, binding, null) + ",\"error\":" + quote(String.valueOf(e)) + "}");
            System.exit(1);
        }
    }

    /** Every row; a section whose setup fails (out of memory, a device fault) is one error row, and the next runs. */
    void runAll() {
        for (int b : sizes.batches) section("ops-b" + b, () -> ops(b));
        for (int n : sizes.contrastiveN) section("contrastive-n" + n, () -> contrastive(n));
        section(sizes.model + "-models", this::models);
    }

    private void section(String name, Runnable body) {
        try {
            body.run();
        } catch (RuntimeException e) {
            error(name, e);
        }
    }

    // ---------------------------------------------------------------- ops

    private void ops(int b) {
        int c = sizes.width, h = sizes.heads, hd = c / h, ti = sizes.imageTokens, tt = sizes.textTokens;
        int rows = b * ti;
        // layernorm over (B*50, 768): forward reads x, writes out; backward reads dout and x, reads and writes dx.
        Tensor x = random(DType.F32, rows, c), y = cuda.empty(DType.F32, rows, c), w = random(DType.F32, c), bias = random(DType.F32, c);
        Tensor mean = cuda.empty(DType.F32, rows), rstd = cuda.empty(DType.F32, rows);
        cuda.layerNormForward(y, mean, rstd, x, w, bias, 1e-5f);
        rate("layernorm-fwd-f32-" + rows + "x" + c, Bound.MEMORY, 2.0 * rows * c * 4,
                () -> cuda.layerNormForward(y, mean, rstd, x, w, bias, 1e-5f));
        Tensor dx = cuda.zeros(DType.F32, rows, c), dw = cuda.zeros(DType.F32, c), db = cuda.zeros(DType.F32, c);
        rate("layernorm-bwd-f32-" + rows + "x" + c, Bound.MEMORY, 4.0 * rows * c * 4,
                () -> cuda.layerNormBackward(dx, dw, db, y, x, w, mean, rstd));
        release(x, y, w, bias, mean, rstd, dx, dw, db);

        // attention: QK^T and PV are 2 * T * T * hd FLOPs each per head (forward 4 T^2 hd, backward 2.5 times that);
        // causal rows count half.
        attention(b, ti, h, hd, false);
        attention(b, tt, h, hd, true);

        // RN50's AttentionPool2d: one query over 7 x 7 + 1 keys of width 2048, 32 heads: reads q, k and v once.
        int l = sizes.poolTokens, pc = sizes.poolWidth;
        Tensor q = random(DType.F32, b, pc), k = random(DType.F32, b, l, pc), v = random(DType.F32, b, l, pc);
        Tensor pooled = cuda.empty(DType.F32, b, pc);
        rate("attention-pool-fwd-f32-b" + b + "-l" + l + "-c" + pc + "-h" + sizes.poolHeads, Bound.MEMORY,
                (2.0 * b * l * pc + 2.0 * b * pc) * 4, () -> cuda.attentionPoolForward(pooled, null, q, k, v, sizes.poolHeads));
        release(q, k, v, pooled);

        // The residual block's GEMMs (cuBLASLt): in_proj, c_fc, c_proj; 2 * N * I * O FLOPs. The BF16 rows take F32
        // activations and BF16 weights, as a BF16 model does (the cast of x is part of the op).
        int[][] gemms = {{c, 3 * c}, {c, sizes.mlp}, {sizes.mlp, c}};
        for (int[] io : gemms) {
            Tensor in = random(DType.F32, rows, io[0]), o = cuda.empty(DType.F32, rows, io[1]);
            Tensor w32 = random(DType.F32, io[1], io[0]), b32 = random(DType.F32, io[1]);
            Tensor w16 = cuda.empty(DType.BF16, io[1], io[0]);
            cuda.cast(w16, w32);
            double flops = 2.0 * rows * io[0] * io[1];
            String shape = rows + "x" + io[0] + "x" + io[1];
            rate("linear-f32-" + shape, Bound.F32, flops, () -> cuda.linearForward(o, in, w32, b32));
            rate("linear-bf16-" + shape, Bound.BF16, flops, () -> cuda.linearForward(o, in, w16, b32));
            release(in, o, w32, b32, w16);
        }

        // Casts of the image tower's activations and the MLP's QuickGELU: 4 + 2 and 4 + 4 bytes per element.
        Tensor act = random(DType.F32, rows, c), act16 = cuda.empty(DType.BF16, rows, c);
        rate("cast-f32-bf16-" + rows + "x" + c, Bound.MEMORY, 6.0 * rows * c, () -> cuda.cast(act16, act));
        rate("cast-bf16-f32-" + rows + "x" + c, Bound.MEMORY, 6.0 * rows * c, () -> cuda.cast(act, act16));
        release(act, act16);
        Tensor hidden = random(DType.F32, rows, sizes.mlp), gelu = cuda.empty(DType.F32, rows, sizes.mlp);
        rate("quickgelu-fwd-f32-" + rows + "x" + sizes.mlp, Bound.MEMORY, 8.0 * rows * sizes.mlp,
                () -> cuda.quickGeluForward(gelu, hidden));
        release(hidden, gelu);

        // Zero-shot probabilities over 1000 classes.
        Tensor logits = random(DType.F32, b, sizes.classes), probs = cuda.empty(DType.F32, b, sizes.classes);
        rate("softmax-f32-" + b + "x" + sizes.classes, Bound.MEMORY, 8.0 * b * sizes.classes, () -> cuda.softmaxForward(probs, logits));
        release(logits, probs);
    }

    private void attention(int b, int t, int h, int hd, boolean causal) {
        int c = h * hd;
        String shape = (causal ? "causal-" : "") + "b" + b + "-t" + t + "-h" + h + "x" + hd;
        double forwardFlops = 4.0 * b * h * t * t * hd * (causal ? 0.5 : 1.0);
        Tensor qkv = random(DType.F32, b, t, 3 * c), o = cuda.empty(DType.F32, b, t, c), lse = cuda.empty(DType.F32, b, h, t);
        rate("attention-fwd-f32-" + shape, Bound.F32, forwardFlops, () -> cuda.attentionForward(o, lse, qkv, h, causal));
        Tensor dqkv = cuda.zeros(DType.F32, b, t, 3 * c), dout = random(DType.F32, b, t, c);
        cuda.attentionForward(o, lse, qkv, h, causal);
        rate("attention-bwd-f32-" + shape, Bound.F32, 2.5 * forwardFlops,
                () -> cuda.attentionBackward(dqkv, dout, qkv, o, lse, h, causal));
        Tensor qkv16 = cuda.empty(DType.BF16, b, t, 3 * c), o16 = cuda.empty(DType.BF16, b, t, c);
        cuda.cast(qkv16, qkv);
        rate("attention-fwd-bf16-" + shape, Bound.BF16, forwardFlops, () -> cuda.attentionForward(o16, null, qkv16, h, causal));
        // BF16 backward (BF16 activations and gradients, the forward's F32 log-sum-exp): FlashAttention-2 style
        Tensor dqkv16 = cuda.zeros(DType.BF16, b, t, 3 * c), dout16 = cuda.empty(DType.BF16, b, t, c);
        cuda.cast(dout16, dout);
        cuda.attentionForward(o16, lse, qkv16, h, causal);
        rate("attention-bwd-bf16-" + shape, Bound.BF16, 2.5 * forwardFlops,
                () -> cuda.attentionBackward(dqkv16, dout16, qkv16, o16, lse, h, causal));
        release(qkv, o, lse, dqkv, dout, qkv16, o16, dqkv16, dout16);
    }

    /** Forward and backward of the loss over N pairs of D-wide features: S, dImg and dTxt are 2 N^2 D FLOPs each. */
    private void contrastive(int n) {
        int d = sizes.embed;
        Tensor img = unitRows(n, d), txt = unitRows(n, d);
        Tensor logitScale = cuda.upload(Tensor.of(new float[] {(float) Math.log(1 / 0.07)}, 1));
        Tensor dImg = cuda.zeros(DType.F32, n, d), dTxt = cuda.zeros(DType.F32, n, d), dScale = cuda.zeros(DType.F32, 1);
        rate("contrastive-fwd-bwd-f32-n" + n + "-d" + d, Bound.F32, 6.0 * n * n * d,
                () -> cuda.contrastiveLoss(img, txt, logitScale, dImg, dTxt, dScale, 1f));
        Tensor img16 = cuda.empty(DType.BF16, n, d), txt16 = cuda.empty(DType.BF16, n, d); // BF16 training's features
        cuda.cast(img16, img);
        cuda.cast(txt16, txt);
        rate("contrastive-fwd-bwd-bf16-n" + n + "-d" + d, Bound.BF16, 6.0 * n * n * d,
                () -> cuda.contrastiveLoss(img16, txt16, logitScale, dImg, dTxt, dScale, 1f));
        release(img, txt, logitScale, dImg, dTxt, dScale, img16, txt16);
    }

    // ---------------------------------------------------------------- encoders and training

    private void models() {
        ClipConfig config = ClipConfig.named(sizes.config);
        ClipModel trainable = ClipModel.initialize(config, 0, cuda);
        ClipModel inference = ClipModel.fromStateDict(trainable.stateDict(), config, cuda, Precision.BF16);
        for (int b : sizes.batches) {
            Tensor pixels = pixels(b, config);
            Tensor tokens = tokens(b, config);
            if (b == 1) {
                graph(sizes.model + "-image-b1-graph", () -> inference.encodeImage(pixels));
                Tensor ids = inference.uploadTokenIds(tokens);
                graph(sizes.model + "-text-b1-graph", () -> inference.encodeTextIds(ids));
            } else {
                time(sizes.model + "-image-b" + b, () -> finite(inference.encodeImage(pixels)));
                time(sizes.model + "-text-b" + b, () -> finite(inference.encodeText(tokens)));
            }
        }
        int b = sizes.trainBatch;
        List<Tensor> pixels = List.of(pixels(b, config)), tokens = List.of(tokens(b, config));
        trainStep(sizes.model + "-train-step-f32-b" + b, trainable, pixels, tokens);
        ClipModel mixed = ClipModel.initialize(config, 0, cuda);
        mixed.trainIn(Precision.BF16);
        // the default training precision on CUDA, under the name of gpu-peer.py's autocast step
        trainStep(sizes.model + "-train-step-b" + b, mixed, pixels, tokens);
    }

    /** One training step (forward, backward, AdamW; no clipping) of a model at its training precision. */
    private void trainStep(String name, ClipModel trainable, List<Tensor> pixels, List<Tensor> tokens) {
        List<AdamW.Param> params = new ArrayList<>();
        for (Parameter p : trainable.parameters()) {
            params.add(new AdamW.Param(p.name(), p.value(), p.grad(), trainable.trainingCopy(p.name())));
        }
        AdamW optimizer = new AdamW(cuda, params, 0.9f, 0.98f, 1e-6f, 0.1f);
        time(name, () -> {
            trainable.zeroGrad();
            float loss = ContrastiveStep.lossAndGradients(trainable, pixels, tokens);
            if (!Float.isFinite(loss)) throw new IllegalStateException("training step: loss " + loss);
            optimizer.update(1e-5f, 1f);
        });
    }

    /**
     * A forward with no sync point captured once and replayed; the replay's output must equal the eager forward's.
     * The eager run releases its temporaries as it returns, so the capture finds them in the allocator's cache.
     */
    private void graph(String name, Supplier<Tensor> forward) {
        try {
            Tensor eagerOut = cuda.releasingTemporaries(forward);
            float[] eager = cuda.download(eagerOut).f32();
            cuda.release(eagerOut);
            Tensor[] captured = new Tensor[1];
            try (CudaGraph graph = cuda.capture(() -> captured[0] = forward.get())) {
                graph.replay();
                float[] replayed = cuda.download(captured[0]).f32();
                if (!Arrays.equals(eager, replayed)) {
                    throw new IllegalStateException("the replayed graph's features differ from the eager forward's (max abs "
                            + maxAbsDifference(eager, replayed) + ")");
                }
                time(name, graph::replay);
            }
        } catch (RuntimeException e) {
            error(name, e);
        }
    }

    private Tensor finite(Tensor features) {
        if (cuda.hasNonFinite(features)) throw new IllegalStateException("encoder output has NaN or Inf");
        return features;
    }

    // ---------------------------------------------------------------- timing and output

    private void rate(String name, Bound bound, double work, Runnable call) {
        double ms;
        try {
            ms = medianMs(call);
        } catch (RuntimeException e) {
            error(name, e);
            return;
        }
        boolean flops = bound != Bound.MEMORY;
        double value = work / (ms * 1e-3) / (flops ? 1e12 : 1e9);
        StringBuilder row = new StringBuilder(json(name, flops ? "TFLOP/s" : "GB/s"))
                .append(String.format(Locale.ROOT, ",\"clipj\":%.6g,\"ms\":%.6g", value, ms));
        if (peak != null) {
            double p = switch (bound) {
                case BF16 -> peak.bf16Tflops;
                case F32 -> peak.f32Tflops;
                case MEMORY -> peak.gbPerSecond;
            };
            row.append(String.format(Locale.ROOT, ",\"peak\":%.0f,\"peak_fraction\":%.6g", p, value / p));
        }
        out.println(row.append('}'));
    }

    private void time(String name, Runnable call) {
        try {
            double ms = medianMs(call);
            out.println(json(name, "ms") + String.format(Locale.ROOT, ",\"clipj\":%.6g}", ms));
        } catch (RuntimeException e) {
            error(name, e);
        }
    }

    /** Median over the timed runs of the time per call, the stream synchronized before and after each run. */
    private double medianMs(Runnable call) {
        cuda.synchronize();
        int reps = 1;
        if (sizes.runMs > 0) {
            double one = elapsedMs(call, 1);
            reps = (int) Math.max(1, Math.min(1000, Math.ceil(sizes.runMs / Math.max(one, 1e-3))));
        }
        for (int i = 0; i < sizes.warmups; i++) elapsedMs(call, reps);
        double[] runs = new double[sizes.runs];
        for (int i = 0; i < runs.length; i++) runs[i] = elapsedMs(call, reps) / reps;
        Arrays.sort(runs);
        return runs[runs.length / 2];
    }

    private double elapsedMs(Runnable call, int reps) {
        long t0 = System.nanoTime();
        for (int i = 0; i < reps; i++) call.run();
        cuda.synchronize();
        return (System.nanoTime() - t0) / 1e6;
    }

    private String json(String name, String unit) {
        return json(name, unit, binding, device);
    }

    private static String json(String name, String unit, String binding, String device) {
        return "{\"suite\":\"gpu\",\"name\":" + quote(name) + (unit == null ? "" : ",\"unit\":" + quote(unit))
                + (binding == null ? "" : ",\"binding\":" + quote(binding)) + (device == null ? "" : ",\"device\":" + quote(device));
    }

    private void error(String name, RuntimeException e) {
        out.println(json(name, null) + ",\"error\":" + quote(String.valueOf(e)) + "}");
    }

    static String quote(String s) {
        StringBuilder b = new StringBuilder("\"");
        for (char ch : s.toCharArray()) {
            switch (ch) {
                case '"' -> b.append("\\\"");
                case '\\' -> b.append("\\\\");
                case '\n' -> b.append("\\n");
                default -> {
                    if (ch < 0x20) b.append(String.format(Locale.ROOT, "\\u%04x", (int) ch));
                    else b.append(ch);
                }
            }
        }
        return b.append('"').toString();
    }

    // ---------------------------------------------------------------- inputs

    private Tensor random(DType dtype, int... shape) {
        float[] v = new float[Math.toIntExact(Tensor.numel(shape))];
        for (int i = 0; i < v.length; i++) v[i] = (float) (random.nextDouble() - 0.5);
        Tensor t = cuda.upload(Tensor.of(v, shape));
        if (dtype == DType.F32) return t;
        Tensor cast = cuda.empty(dtype, shape);
        cuda.cast(cast, t);
        cuda.release(t);
        return cast;
    }

    private Tensor unitRows(int n, int d) {
        float[] v = new float[n * d];
        for (int i = 0; i < n; i++) {
            double norm = 0;
            for (int j = 0; j < d; j++) {
                v[i * d + j] = (float) random.nextGaussian();
                norm += v[i * d + j] * v[i * d + j];
            }
            for (int j = 0; j < d; j++) v[i * d + j] /= (float) Math.sqrt(norm);
        }
        return cuda.upload(Tensor.of(v, n, d));
    }

    private Tensor pixels(int b, ClipConfig config) {
        int r = config.imageResolution();
        return random(DType.F32, b, 3, r, r);
    }

    /**
     * Captions that fill the context (EOT last), on the host (encodeText validates ids there): every position
     * runs, as in the peer (clipj would otherwise stop at the batch's last EOT).
     */
    private Tensor tokens(int b, ClipConfig config) {
        int ctx = config.contextLength(), vocab = config.vocabSize();
        int[] ids = new int[b * ctx];
        for (int i = 0; i < b; i++) {
            int n = ctx - 2;
            ids[i * ctx] = vocab - 2;
            for (int j = 1; j <= n; j++) ids[i * ctx + j] = random.nextInt(1, vocab - 2);
            ids[i * ctx + n + 1] = vocab - 1;
        }
        return Tensor.of(ids, b, ctx);
    }

    private void release(Tensor... tensors) {
        for (Tensor t : tensors) cuda.release(t);
    }

    private static double maxAbsDifference(float[] a, float[] b) {
        double m = 0;
        for (int i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
        return m;
    }
}
