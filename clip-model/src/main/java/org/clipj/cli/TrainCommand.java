package org.clipj.cli;

import org.clipj.data.CsvDataset;
import org.clipj.data.ImageTextDataset;
import org.clipj.data.SyntheticDataset;
import org.clipj.io.AtomicFiles;
import org.clipj.io.Checkpoints;
import org.clipj.model.ClipConfig;
import org.clipj.model.ClipModel;
import org.clipj.model.Precision;
import org.clipj.model.ResolvedModel;
import org.clipj.runtime.Backend;
import org.clipj.runtime.Backends;
import org.clipj.runtime.Device;
import org.clipj.runtime.InvalidInputException;
import org.clipj.text.BpeTrainer;
import org.clipj.text.ClipTokenizer;
import org.clipj.train.LrSchedule;
import org.clipj.train.MetricsLog;
import org.clipj.train.TrainCheckpoints;
import org.clipj.train.Trainer;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;

/** {@code clip train}: contrastive training from scratch (--model) or from a checkpoint (--init). */
@Command(name = "train", mixinStandardHelpOptions = true, description = "Train or fine-tune CLIP contrastively on image-caption pairs.")
public final class TrainCommand extends CliCommand {

    @Option(names = "--model", description = "Architecture to train from scratch: OpenAI's names (RN50, ViT-B/32, ...), open_clip's"
            + " (ViT-B-32, ViT-M-16-alt, ...: the same names as --arch), or tiny (default).")
    String modelName;

    @Option(names = "--arch", paramLabel = "NAME", description = "With --init: the checkpoint's architecture by name (as"
            + " --arch of the other commands); default: the config beside the checkpoint, else inferred with a warning.")
    String arch;

    @Option(names = "--init", description = "Start from this checkpoint instead (safetensors, .pt, .bin).")
    Path init;

    @Option(names = "--vocab", description = "Tokenizer vocab for --init runs (default: next to the checkpoint, or CLIP_VOCAB).")
    Path vocab;

    @Option(names = "--data", defaultValue = "synthetic", description = "A CSV/TSV of image path + caption, or 'synthetic' (default).")
    String data;

    @Option(names = "--csv-img-key", defaultValue = "filepath", description = "Image path column (default filepath).")
    String csvImageKey;

    @Option(names = "--csv-caption-key", defaultValue = "title", description = "Caption column (default title).")
    String csvCaptionKey;

    @Option(names = "--csv-separator", defaultValue = "\t", description = "Field separator (default tab).")
    String csvSeparator;

    @Option(names = "--synthetic-size", defaultValue = "20000", description = "Examples in the synthetic data set.")
    int syntheticSize;

    @Option(names = "--batch", defaultValue = "64", description = "Images per micro-batch; the contrastive batch is batch * accum.")
    int batch;

    @Option(names = "--accum", defaultValue = "1", description = "Micro-batches per step (GradCache: the contrastive batch stays whole).")
    int accum;

    @Option(names = "--lr", defaultValue = "5e-4")
    double lr;

    @Option(names = "--wd", defaultValue = "0.2", description = "AdamW decoupled weight decay.")
    double wd;

    @Option(names = "--warmup", defaultValue = "100", description = "Linear warmup steps.")
    int warmup;

    @Option(names = "--steps", description = "Optimizer steps (default: from --epochs, else 1000).")
    Integer steps;

    @Option(names = "--epochs", description = "Passes over the data (alternative to --steps).")
    Double epochs;

    @Option(names = "--schedule", defaultValue = "cosine", description = "cosine or const.")
    String schedule;

    @Option(names = "--grad-clip", defaultValue = "0", description = "Max global gradient norm (0: off).")
    double gradClip;

    @Option(names = "--no-augment", description = "Train on the evaluation preprocessing (no random resized crop).")
    boolean noAugment;

    @Option(names = "--no-shuffle", description = "Keep file order.")
    boolean noShuffle;

    @Option(names = "--seed", defaultValue = "0")
    long seed;

    @Option(names = "--out", description = "Output folder: weights, vocab, metrics, checkpoints (default train-out, or the resumed run's).")
    Path out;

    @Option(names = "--resume", description = "Continue the run saved in this folder (OUT, OUT/checkpoints or one step folder).")
    Path resume;

    @Option(names = "--save-every", defaultValue = "500", description = "Checkpoint period in steps (0: only at the end).")
    int saveEvery;

    @Option(names = "--bpe-merges", defaultValue = "2000", description = "BPE merges learned from the captions (from-scratch runs).")
    int bpeMerges;

    @Option(names = "--data-threads", defaultValue = "2", description = "Image decoding threads.")
    int dataThreads;

    @Option(names = "--device", paramLabel = "D", converter = DeviceName.class, description = DeviceName.DESCRIPTION)
    String device;

    @Option(names = "--precision", paramLabel = "P", converter = PrecisionName.class, description = "GEMM precision of"
            + " training: bf16 or f16 (CUDA; autocast: 16-bit copies of the linear weights and their inputs, F32 master"
            + " weights, optimizer, layernorm, attention and loss; f16 adds dynamic loss scaling) or f32. Default: bf16 on"
            + " cuda (F32's exponent range, so no loss scaling and no skipped steps, and tensor-core GEMMs), f32 on cpu.")
    Precision precision;

    @Option(names = "--tf32", description = "Run the F32 GEMMs on TF32 tensor cores (cuda; the f32 precision's GEMMs, and"
            + " the final projections and convolutions at any precision). Off by default: F32 stays exact F32.")
    boolean tf32;

    @Option(names = "--save-on-interrupt", negatable = true, defaultValue = "true", fallbackValue = "true",
            description = "On SIGINT/SIGTERM stop at the next step, save a checkpoint and exit 130/143 (default;"
                    + " --no-save-on-interrupt keeps only the periodic ones). A second signal quits at once.")
    boolean saveOnInterrupt;

    @Override
    public Integer call() throws Exception {
        try (StopSignals signals = StopSignals.install(err())) {
            return train(signals);
        }
    }

    private Integer train(StopSignals signals) throws Exception {
        if (modelName != null && init != null) {
            throw new InvalidInputException("--model and --init exclude each other");
        }
        if (arch != null && init == null) {
            throw new InvalidInputException("--arch names the architecture of --init; to train from scratch use --model NAME");
        }
        ImageTextDataset dataset = openData();
        String dataName = data.equals("synthetic") ? "synthetic:" + syntheticSize : Path.of(data).toAbsolutePath().toString();
        int totalSteps = steps != null ? steps
                : epochs != null ? (int) Math.max(1, Math.ceil(epochs * dataset.size() / ((double) batch * accum))) : 1000;
        Trainer.Options f32Options = new Trainer.Options(batch, accum, lr, wd, warmup, totalSteps,
                LrSchedule.parseKind(schedule), gradClip, !noAugment, !noShuffle, seed, saveEvery,
                dataThreads, 2);
        TrainCheckpoints.Loaded resumed = resume == null ? null : TrainCheckpoints.load(TrainCheckpoints.resolve(resume));
        if (out == null) {
            out = resumed != null && resumed.dir().getParent().getFileName().toString().equals("checkpoints")
                    ? resumed.dir().getParent().getParent() : Path.of("train-out");
        }
        Files.createDirectories(out);
        try (Backend backend = Backends.select(device, "--device " + device, tf32)) {
            if (tf32 && backend.device() != Device.CUDA) {
                throw new InvalidInputException("--tf32 needs the CUDA backend (this run has " + backend.name() + ")");
            }
            Precision trainPrecision = precision != null ? precision
                    : backend.device() == Device.CUDA ? Precision.BF16 : Precision.F32;
            if (trainPrecision != Precision.F32 && backend.device() != Device.CUDA) {
                throw new InvalidInputException("--precision " + trainPrecision.name().toLowerCase(Locale.ROOT)
                        + ": training in 16 bits needs --device cuda (the cpu backend trains in f32)");
            }
            Trainer.Options options = f32Options.withPrecision(trainPrecision);
            ClipModel model;
            ClipTokenizer tokenizer;
            Path vocabFile;
            String modelLabel;
            if (resumed != null) {
                if (resumed.vocab() == null) {
                    throw new InvalidInputException("--resume " + resumed.dir() + ": no " + TrainCheckpoints.VOCAB_FILE + " in the checkpoint");
                }
                vocabFile = out.resolve(TrainCheckpoints.VOCAB_FILE);
                if (!Files.isSameFile(resumed.vocab().getParent(), out)) {
                    AtomicFiles.copy(resumed.vocab(), vocabFile);
                }
                tokenizer = ClipTokenizer.load(vocabFile);
                model = resumed.config() != null ? ClipModel.fromStateDict(resumed.model(), resumed.config(), backend)
                        : ClipModel.fromStateDict(resumed.model(), backend);
                modelLabel = String.valueOf(resumed.state().run().get("model"));
            } else if (init != null) {
                vocabFile = vocab != null ? vocab : findVocab(init);
                if (Files.isDirectory(vocabFile)) {
                    throw new InvalidInputException("--vocab " + vocabFile + ": training needs a BPE merges file"
                            + " (bpe_simple_vocab_16e6.txt.gz), not a folder");
                }
                tokenizer = ClipTokenizer.load(vocabFile);
                ResolvedModel resolved = ResolvedModel.resolve(init, arch);
                resolved.warnings().forEach(w -> err().println("warning: " + w));
                err().println("architecture " + resolved.config().name() + " from " + resolved.configSource());
                model = ClipModel.fromStateDict(resolved.checkpoint().tensors(), resolved.config(), backend);
                modelLabel = "init:" + init.toAbsolutePath();
            } else {
                vocabFile = out.resolve(TrainCheckpoints.VOCAB_FILE);
                BpeTrainer.write(vocabFile, BpeTrainer.learn(dataset.captions(), bpeMerges, 2));
                tokenizer = ClipTokenizer.load(vocabFile);
                String name = modelName == null ? "tiny" : modelName;
                model = ClipModel.initialize(ClipConfig.named(name).withVocabSize(tokenizer.vocabSize()), seed, backend);
                modelLabel = name;
            }
            if (model.config().vocabSize() < tokenizer.vocabSize()) {
                throw new InvalidInputException("vocab " + vocabFile + " has " + tokenizer.vocabSize()
                        + " tokens, the model's embedding only " + model.config().vocabSize());
            }
            err().printf("training %s on %s (%d examples) with %s, %s: %d steps of %d x %d images%n", modelLabel, dataName,
                    dataset.size(), backend.description(), trainPrecision.name().toLowerCase(Locale.ROOT), totalSteps, batch,
                    accum);
            long start = System.nanoTime();
            Map<String, Object> result = new LinkedHashMap<>();
            try (Trainer trainer = new Trainer(model, tokenizer, vocabFile, dataset, dataName, modelLabel, options, out,
                    err(), resumed)) {
                trainer.train(totalSteps, signals::received);
                if (signals.received()) {
                    Path checkpoint = saveOnInterrupt ? trainer.saveCheckpointIfNew() : trainer.lastCheckpoint();
                    err().printf("%s: stopped at step %d of %d; %s%n", signals.signalName(), trainer.step(), totalSteps,
                            checkpoint == null ? "no checkpoint to resume from"
                                    : "last checkpoint " + checkpoint + " (continue with --resume " + out + ")");
                    return signals.exitCode();
                }
                Path weights = trainer.finish();
                List<MetricsLog.Entry> log = trainer.metrics();
                MetricsLog.Entry last = log.getLast();
                result.put("model", weights.toAbsolutePath().toString());
                result.put("vocab", out.resolve(TrainCheckpoints.VOCAB_FILE).toAbsolutePath().toString());
                result.put("steps", trainer.step());
                result.put("final_loss", last.loss());
                result.put("logit_scale", last.logitScale());
                result.put("images_per_s", last.imagesPerSecond());
                result.put("precision", trainPrecision.name().toLowerCase(Locale.ROOT));
                if (trainPrecision == Precision.F16) {
                    result.put("loss_scale", trainer.lossScale());
                    result.put("skipped_steps", trainer.skippedSteps());
                }
                result.put("skipped_images", trainer.skipped());
                result.put("skipped_examples", trainer.skippedReports());
                result.put("metrics", out.resolve("metrics.jsonl").toAbsolutePath().toString());
                result.put("loss_curve", out.resolve("loss.png").toAbsolutePath().toString());
                result.put("checkpoints", trainer.checkpointsDir().toAbsolutePath().toString());
                result.put("seconds", (System.nanoTime() - start) / 1e9);
                if (trainer.skipped() > 0) {
                    err().printf("skipped %d missing or corrupt images (first: %s)%n", trainer.skipped(),
                            trainer.skippedReports().isEmpty() ? "-" : trainer.skippedReports().getFirst());
                }
                err().printf("done: %d steps, final loss %.4f, weights %s%n", trainer.step(), last.loss(), weights);
            }
            emitJson(result);
        }
        return 0;
    }

    private ImageTextDataset openData() {
        if (data.equals("synthetic")) {
            return new SyntheticDataset(seed, syntheticSize, 64, SyntheticDataset.Split.TRAIN);
        }
        if (csvSeparator.length() != 1) {
            throw new InvalidInputException("--csv-separator must be one character, got '" + csvSeparator + "'");
        }
        return new CsvDataset(Path.of(data), csvImageKey, csvCaptionKey, csvSeparator.charAt(0));
    }

    private static Path findVocab(Path checkpoint) {
        Path dir = checkpoint.toAbsolutePath().getParent();
        for (String name : List.of("bpe_simple_vocab_16e6.txt.gz", TrainCheckpoints.VOCAB_FILE)) {
            if (Files.isRegularFile(dir.resolve(name))) {
                return dir.resolve(name);
            }
        }
        String env = System.getenv("CLIP_VOCAB");
        if (env != null && !env.isBlank()) {
            return Path.of(env);
        }
        throw new InvalidInputException("--init " + checkpoint + ": no tokenizer vocab next to it; pass --vocab"
                + " (e.g. bpe_simple_vocab_16e6.txt.gz) or set CLIP_VOCAB");
    }
}
