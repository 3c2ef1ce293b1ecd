package org.clipj.train;

import org.clipj.data.BatchLoader;
import org.clipj.data.ImageTextDataset;
import org.clipj.image.Preprocess;
import org.clipj.io.AtomicFiles;
import org.clipj.io.SafeTensors;
import org.clipj.io.WriteFailedException;
import org.clipj.model.ClipModel;
import org.clipj.model.Parameter;
import org.clipj.model.Precision;
import org.clipj.runtime.Backend;
import org.clipj.runtime.InvalidInputException;
import org.clipj.runtime.Tensor;
import org.clipj.text.ClipTokenizer;

import java.io.IOException;
import java.io.PrintWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.function.BooleanSupplier;

/**
 * The training loop: batches from a {@link BatchLoader}, loss and gradients by
 * {@link ContrastiveStep} (GradCache over --accum micro-batches) at the options' precision (F32, or on CUDA
 * BF16/F16 autocast of the linear layers, see {@link ClipModel#trainIn}; F16 with dynamic loss scaling, which
 * skips a step whose gradients overflow), global-norm clipping (one reduction over all gradients), AdamW
 * with the warmup + cosine schedule, logit scale clamped to [0, ln 100] after every step,
 * metrics.jsonl, a progress line, checkpoints every saveEvery steps and at the end. Before the
 * first step and before each save it checks that a checkpoint fits the free space (an error
 * naming both sizes if not, a warning when only one more fits); on start it removes the partial
 * files of a run that crashed or was killed; {@link #train(int, BooleanSupplier)} stops at a step
 * boundary when asked.
 */
public final class Trainer implements AutoCloseable {
    public static final float MAX_LOGIT_SCALE = (float) Math.log(100);

    /**
     * @param batch     images per micro-batch; the contrastive batch is batch * accum
     * @param gradClip  max global gradient norm; <= 0 turns clipping off
     * @param saveEvery checkpoint period in steps; <= 0 saves only at the end
     */
    public record Options(int batch, int accum, double lr, double weightDecay, int warmup, int steps,
                          LrSchedule.Kind schedule, double gradClip, boolean augment, boolean shuffle, long seed,
                          int saveEvery, int dataThreads, int keepCheckpoints, Precision precision) {
        /** F32 training. */
        public Options(int batch, int accum, double lr, double weightDecay, int warmup, int steps,
                       LrSchedule.Kind schedule, double gradClip, boolean augment, boolean shuffle, long seed,
                       int saveEvery, int dataThreads, int keepCheckpoints) {
            this(batch, accum, lr, weightDecay, warmup, steps, schedule, gradClip, augment, shuffle, seed, saveEvery,
                    dataThreads, keepCheckpoints, Precision.F32);
        }

        public Options {
            Objects.requireNonNull(precision, "precision");
            if (batch < 1) {
                throw new InvalidInputException("--batch must be >= 1, got " + batch);
            }
            if (accum < 1) {
                throw new InvalidInputException("--accum must be >= 1, got " + accum);
            }
            if (!(weightDecay >= 0)) {
                throw new InvalidInputException("--wd must be >= 0, got " + weightDecay);
            }
            if (steps < 1) {
                throw new InvalidInputException("--steps must be >= 1, got " + steps);
            }
        }

        /** These options with another training precision. */
        public Options withPrecision(Precision p) {
            return new Options(batch, accum, lr, weightDecay, warmup, steps, schedule, gradClip, augment, shuffle, seed,
                    saveEvery, dataThreads, keepCheckpoints, p);
        }

        /** The options that must match when resuming (the steps may grow). */
        Map<String, Object> toRun(String data, String model) {
            Map<String, Object> m = new LinkedHashMap<>();
            m.put("data", data);
            m.put("model", model);
            m.put("batch", batch);
            m.put("accum", accum);
            m.put("lr", lr);
            m.put("wd", weightDecay);
            m.put("warmup", warmup);
            m.put("steps", steps);
            m.put("schedule", schedule.name().toLowerCase(java.util.Locale.ROOT));
            m.put("grad_clip", gradClip);
            m.put("augment", augment);
            m.put("shuffle", shuffle);
            m.put("seed", seed);
            m.put("precision", precision.name().toLowerCase(java.util.Locale.ROOT));
            return m;
        }
    }

    /**
     * What one optimizer step did. gradNorm is the unscaled global norm; lossScale the F16 loss scale the step ran
     * at (1 without F16); skipped: its gradients overflowed, so the optimizer did not step (F16 only).
     */
    public record StepResult(int step, float loss, double lr, double logitScale, double gradNorm, double imagesPerSecond,
                             float lossScale, boolean skipped) {
    }

    private final ClipModel model;
    private final Backend backend;
    private final ClipTokenizer tokenizer;
    private final Path vocabFile;
    private final Options options;
    private final Path outDir;
    private final Map<String, Object> run;
    private final LrSchedule schedule;
    private final AdamW optimizer;
    private final List<Tensor> grads;                 // the model's flat gradient buffers
    private final LossScaler scaler;                  // F16 only, else null
    private int skippedSteps;                         // optimizer steps F16 loss scaling skipped in this process
    private final BatchLoader loader;
    private final MetricsLog metrics;
    private final ProgressBar progress;
    private final int resolution;
    private final int context;
    private final long skippedBefore;
    private final PrintWriter err;
    private int step;               // optimizer steps completed
    private Path lastCheckpoint;    // the newest complete checkpoint of this run, or null
    private boolean warnedSpace;
    private double secondsPerStep;  // running mean, for images/s and ETA
    private int timedSteps;

    /**
     * @param resume a checkpoint to continue from (its weights must already be in model), or null
     */
    public Trainer(ClipModel model, ClipTokenizer tokenizer, Path vocabFile, ImageTextDataset data, String dataName,
                   String modelName, Options options, Path outDir, PrintWriter err, TrainCheckpoints.Loaded resume) {
        this.model = model;
        this.backend = model.backend();
        this.tokenizer = tokenizer;
        this.vocabFile = vocabFile;
        this.options = options;
        this.outDir = outDir;
        this.err = err;
        this.run = options.toRun(dataName, modelName);
        this.schedule = new LrSchedule(options.schedule(), options.lr(), options.warmup(), options.steps());
        this.resolution = model.config().imageResolution();
        this.context = model.config().contextLength();
        model.trainIn(options.precision());
        List<AdamW.Param> params = new ArrayList<>();
        for (Parameter p : model.parameters()) {
            params.add(new AdamW.Param(p.name(), p.value(), p.grad(), model.trainingCopy(p.name())));
        }
        this.grads = model.gradientBuffers();
        this.optimizer = new AdamW(backend, params, 0.9f, 0.98f, 1e-6f, (float) options.weightDecay());
        this.scaler = options.precision() == Precision.F16
                ? new LossScaler(resume == null ? null : resume.state().lossScale()) : null;
        long startPosition = 0;
        if (resume != null) {
            checkSameRun(resume);
            optimizer.loadState(resume.optimizer(), resume.state().optimizerStep(), resume.dir().toString());
            step = resume.state().step();
            startPosition = resume.state().dataPosition();
            skippedBefore = resume.state().skipped();
            lastCheckpoint = resume.dir();
        } else {
            skippedBefore = 0;
        }
        if (step >= options.steps()) {
            throw new InvalidInputException("--resume: the checkpoint is at step " + step + ", nothing to do for --steps "
                    + options.steps());
        }
        int n = resolution;
        BatchLoader.ImageTransform transform = options.augment()
                ? (img, rng) -> Preprocess.randomResizedCrop(img, n, rng, 0.9, 1.0)
                : (img, rng) -> Preprocess.clip(img, n);
        this.loader = new BatchLoader(data, options.batch(), 3 * n * n, transform, options.shuffle(), options.seed(),
                startPosition, options.dataThreads(), 2 * options.accum());
        try {
            Files.createDirectories(outDir);
        } catch (IOException e) {
            throw AtomicFiles.failure(outDir, -1, e);
        }
        removeStalePartials();
        checkSpace(checkpointBytesEstimate(), true);
        this.metrics = new MetricsLog(outDir.resolve("metrics.jsonl"), resume == null ? -1 : step);
        this.progress = err == null ? null : new ProgressBar(err, options.steps(), 250_000_000L);
    }

    private void checkSameRun(TrainCheckpoints.Loaded resume) {
        Map<String, Object> saved = resume.state().run();
        for (String key : List.of("data", "batch", "accum", "lr", "wd", "warmup", "schedule", "grad_clip", "augment",
                "shuffle", "seed")) {
            Object now = run.get(key);
            Object then = saved.get(key);
            boolean same = now instanceof Number a && then instanceof Number b
                    ? a.doubleValue() == b.doubleValue() : Objects.equals(now, then);
            if (!same) {
                throw new InvalidInputException("--resume " + resume.dir() + ": the checkpoint was trained with " + key
                        + " = " + then + ", this run has " + now + " (resume continues the same run)");
            }
        }
    }

    public int step() {
        return step;
    }

    /** The newest complete checkpoint of this run (the resumed one before the first save), or null. */
    public Path lastCheckpoint() {
        return lastCheckpoint;
    }

    // Leftovers of a crashed or killed run: partial checkpoint folders and partial files.
    private void removeStalePartials() {
        for (Path dir : List.of(outDir, checkpointsDir())) {
            for (Path p : AtomicFiles.removeStalePartials(dir)) {
                if (err != null) {
                    err.println("removed " + p + " (left half-written by an interrupted run)");
                }
            }
        }
    }

    // Both safetensors files of a checkpoint (weights, two AdamW moments in F32) plus headers and the vocab.
    private long checkpointBytesEstimate() {
        long bytes = 0;
        for (Parameter p : model.parameters()) {
            bytes += p.value().byteSize() + 2 * 4 * p.value().numel() + 3 * 256;
        }
        try {
            bytes += vocabFile == null || !Files.isRegularFile(vocabFile) ? 0 : Files.size(vocabFile);
        } catch (IOException ignored) {
            // the checkpoint's copy of the vocab reports an unreadable one
        }
        return bytes;
    }

    /**
     * Fails before writing when one checkpoint of {@code bytes} cannot fit the free space of the
     * checkpoints folder; warns (once) when fewer than two fit. {@code announce} prints the sizes.
     */
    private void checkSpace(long bytes, boolean announce) {
        Path dir = checkpointsDir();
        long free = AtomicFiles.usableSpace(dir);
        if (free < 0) {
            return;
        }
        String sizes = "a checkpoint needs ~" + AtomicFiles.formatBytes(bytes) + ", " + AtomicFiles.formatBytes(free)
                + " free in " + dir.toAbsolutePath().getParent();
        if (free < bytes) {
            throw new WriteFailedException(dir, "cannot write checkpoints in " + dir.toAbsolutePath() + ": " + sizes
                    + " (free some space or choose another --out)" + resumeHint(), null);
        }
        if (free < 2 * bytes && !warnedSpace && err != null) {
            err.println("warning: " + sizes + ": room for only one more");
            warnedSpace = true;
        } else if (announce && err != null) {
            err.println("checkpoints: " + sizes);
        }
    }

    private String resumeHint() {
        return lastCheckpoint == null ? "" : "; the last complete checkpoint is " + lastCheckpoint
                + " (--resume continues from it)";
    }

    public BatchLoader loader() {
        return loader;
    }

    /** One optimizer step over batch * accum examples. */
    public StepResult trainStep() {
        long start = System.nanoTime();
        List<Tensor> pixels = new ArrayList<>(options.accum());
        List<Tensor> tokens = new ArrayList<>(options.accum());
        for (int j = 0; j < options.accum(); j++) {
            BatchLoader.Batch b = loader.next();
            pixels.add(backend.upload(Tensor.of(b.pixels(), b.size(), 3, resolution, resolution)));
            tokens.add(backend.upload(tokenize(b.captions())));
        }
        model.zeroGrad();
        float lossScale = scaler == null ? 1f : scaler.scale();
        float loss = ContrastiveStep.lossAndGradients(model, pixels, tokens, lossScale);
        if (!Float.isFinite(loss)) {
            throw new IllegalStateException("loss is " + loss + " at step " + (step + 1) + "; lower --lr or set --grad-clip");
        }
        // one reduction and one read back; an inf or NaN anywhere in the gradients makes the norm non-finite
        double norm = GradClip.globalNorm(backend, grads) / lossScale;
        boolean finite = Double.isFinite(norm);
        if (scaler == null && !finite) {
            throw new IllegalStateException("gradient norm is " + norm + " at step " + (step + 1) + " (loss " + loss
                    + "); lower --lr or set --grad-clip");
        }
        double lr = schedule.lr(step);
        boolean apply = scaler == null || scaler.update(finite);
        if (apply) {
            optimizer.update((float) lr, GradClip.scaleFor(norm, options.gradClip()) / lossScale);
        } else {
            skippedSteps++;
        }
        clampLogitScale();
        step++;
        double seconds = (System.nanoTime() - start) / 1e9;
        timedSteps++;
        secondsPerStep += (seconds - secondsPerStep) / timedSteps;
        double imagesPerSecond = options.batch() * options.accum() / secondsPerStep;
        double scale = Math.exp(logitScaleValue());
        metrics.append(new MetricsLog.Entry(step, loss, lr, scale, imagesPerSecond));
        if (progress != null) {
            progress.update(step, loss, lr, scale, imagesPerSecond, secondsPerStep * (options.steps() - step));
        }
        if (step == options.steps() || (options.saveEvery() > 0 && step % options.saveEvery() == 0)) {
            saveCheckpoint();
        }
        return new StepResult(step, loss, lr, scale, norm, imagesPerSecond, lossScale, !apply);
    }

    /** Steps until {@code untilStep} (at most the configured total); returns every step's result. */
    public List<StepResult> train(int untilStep) {
        return train(untilStep, () -> false);
    }

    /** As {@link #train(int)}, but stops at the first step boundary where {@code stop} says so. */
    public List<StepResult> train(int untilStep, BooleanSupplier stop) {
        List<StepResult> out = new ArrayList<>();
        while (step < Math.min(untilStep, options.steps()) && !stop.getAsBoolean()) {
            out.add(trainStep());
        }
        if (progress != null && step < options.steps()) {
            progress.endLine();
        }
        return out;
    }

    /** (B, ctx) I32 tokens of the captions, truncated to the model's context. */
    private Tensor tokenize(List<String> captions) {
        int[][] ids = tokenizer.tokenize(captions, context, true);
        int[] flat = new int[captions.size() * context];
        for (int i = 0; i < ids.length; i++) {
            System.arraycopy(ids[i], 0, flat, i * context, context);
        }
        return Tensor.of(flat, captions.size(), context);
    }

    private float logitScaleValue() {
        Tensor host = backend.download(model.logitScale());
        return host.f32()[host.offset()];
    }

    private void clampLogitScale() {
        float v = logitScaleValue();
        float clamped = Math.clamp(v, 0f, MAX_LOGIT_SCALE);
        if (clamped != v) {
            backend.fill(model.logitScale(), clamped);
        }
    }

    public Path checkpointsDir() {
        return outDir.resolve("checkpoints");
    }

    /**
     * Saves a checkpoint of the current step unless the newest one already is of this step (or no
     * step was taken); returns the newest complete checkpoint, or null when there is none.
     */
    public Path saveCheckpointIfNew() {
        if (lastCheckpoint == null ? step > 0 : TrainCheckpoints.stepOf(lastCheckpoint) != step) {
            saveCheckpoint();
        }
        return lastCheckpoint;
    }

    private void saveCheckpoint() {
        TrainCheckpoints.TrainState state = new TrainCheckpoints.TrainState(step, loader.position(),
                skippedBefore + loader.skipped(), run, optimizer.step(), scaler == null ? null : scaler.state());
        Map<String, Tensor> weights = model.stateDict();
        Map<String, Tensor> moments = optimizer.stateTensors();
        checkSpace(TrainCheckpoints.bytesNeeded(weights, model.config(), moments, vocabFile), false);
        try {
            lastCheckpoint = TrainCheckpoints.save(checkpointsDir().toAbsolutePath(), state, weights, model.config(),
                    moments, vocabFile, Math.max(1, options.keepCheckpoints()));
        } catch (WriteFailedException e) {
            throw new WriteFailedException(e.path(), e.getMessage() + resumeHint(), e.getCause());
        }
    }

    /** Writes OUT/model.safetensors (with the vocab next to it) and the loss curve. */
    public Path finish() {
        Path weights = outDir.resolve("model.safetensors");
        Map<String, String> meta = TrainCheckpoints.modelMetadata(model.config());
        meta.put("clipj.step", String.valueOf(step));
        try {
            SafeTensors.write(weights, model.stateDict(), meta);
        } catch (WriteFailedException e) {
            boolean saved = lastCheckpoint != null && TrainCheckpoints.stepOf(lastCheckpoint) == step;
            throw new WriteFailedException(e.path(), e.getMessage() + (saved
                    ? "; the same weights are in " + lastCheckpoint.resolve(TrainCheckpoints.MODEL_FILE) : ""), e.getCause());
        }
        if (vocabFile != null && !vocabFile.toAbsolutePath().equals(outDir.resolve(TrainCheckpoints.VOCAB_FILE).toAbsolutePath())) {
            AtomicFiles.copy(vocabFile, outDir.resolve(TrainCheckpoints.VOCAB_FILE));
        }
        LossCurve.write(outDir.resolve("loss.png"), metrics.entries(), "training loss");
        return weights;
    }

    /** Optimizer steps that F16 loss scaling skipped (gradient overflow) in this process. */
    public int skippedSteps() {
        return skippedSteps;
    }

    /** The current F16 loss scale, or 1 without F16. */
    public float lossScale() {
        return scaler == null ? 1f : scaler.scale();
    }

    public long skipped() {
        return skippedBefore + loader.skipped();
    }

    public List<String> skippedReports() {
        return loader.skippedReports();
    }

    public List<MetricsLog.Entry> metrics() {
        return metrics.entries();
    }

    @Override
    public void close() {
        if (progress != null) {
            progress.endLine();
        }
        loader.close();
        metrics.close();
    }
}
