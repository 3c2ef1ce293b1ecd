package org.clipj;

import org.clipj.image.ImageLoader;
import org.clipj.image.PreprocessConfig;
import org.clipj.io.StoredTensor;
import org.clipj.model.ClipConfig;
import org.clipj.model.ClipModel;
import org.clipj.model.Precision;
import org.clipj.model.ResolvedModel;
import org.clipj.runtime.Backend;
import org.clipj.runtime.Backends;
import org.clipj.runtime.InvalidInputException;
import org.clipj.runtime.Tensor;
import org.clipj.text.ClipTokenizer;

import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import javax.imageio.ImageIO;
import java.awt.image.BufferedImage;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.lang.management.CompilationMXBean;
import java.lang.management.ManagementFactory;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.Deque;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.function.IntConsumer;
import java.util.function.IntFunction;

/**
 * The front door for library users: load a CLIP checkpoint (OpenAI/open_clip/Hugging Face;
 * safetensors, torch.save or TorchScript), embed images and texts (L2-normalized), classify
 * zero-shot with prompt ensembling. Safe to call from many threads at once; {@link #close()}
 * releases the backend and the decode threads.
 *
 * <pre>{@code
 * try (Clip clip = Clip.load(Path.of("ViT-B-32.pt"))) {
 *     float[][] img = clip.encodeImages(List.of(Path.of("cat.jpg")));
 *     float[][] txt = clip.encodeTexts(List.of("a photo of a cat"));
 * }
 * }</pre>
 */
public final class Clip implements AutoCloseable {
    private static final Logger LOG = LoggerFactory.getLogger(Clip.class);
    private static final int WARM_MIN_ROUNDS = 3;
    private static final int WARM_MAX_ROUNDS = 30;
    private static final double WARM_COMPILE_FRACTION = 0.05;
    // calls per tower the warm-up makes at most to bring the per-request methods to C2 (JitThresholds)
    private static final int WARM_MAX_C2_CALLS = 250;

    /**
     * @param vocab     the BPE vocabulary (bpe_simple_vocab_16e6.txt.gz, or a folder with it or with a
     *                  Hugging Face vocab.json + merges.txt); null: look next to the checkpoint, then $CLIP_VOCAB
     * @param device    cpu | cuda | auto; null: system property clip.backend, else env CLIP_BACKEND, else auto
     * @param batchSize images or texts per forward pass
     * @param precision the model's precision (see {@link Precision}: what it stores in 16 bits on each backend); null: BF16 on CUDA, F32 on
     *                  the CPU. F16 with the CPU backend is an error, and so is BF16 on a CPU without
     *                  AVX512_BF16 (where it has them, BF16 runs the linear layers through native kernels)
     * @param arch      the architecture by name (open_clip's ViT-B-32, ViT-H-14-quickgelu, ..., or OpenAI's
     *                  ViT-B/32, ...); null: from the config beside the weights (see {@link ResolvedModel})
     */
    public record Options(Path vocab, String device, int batchSize, Precision precision, String arch) {
        public Options {
            if (batchSize < 1) {
                throw new InvalidInputException("batch size must be >= 1, got " + batchSize);
            }
        }

        /** The default precision for the backend, the architecture from the checkpoint. */
        public Options(Path vocab, String device, int batchSize) {
            this(vocab, device, batchSize, null, null);
        }

        /** The architecture from the checkpoint. */
        public Options(Path vocab, String device, int batchSize, Precision precision) {
            this(vocab, device, batchSize, precision, null);
        }

        /** The backend from clip.backend / CLIP_BACKEND (else auto), batches of 32, the backend's precision. */
        public static Options defaults() {
            return new Options(null, null, 32);
        }

        public Options withVocab(Path v) {
            return new Options(v, device, batchSize, precision, arch);
        }

        public Options withDevice(String d) {
            return new Options(vocab, d, batchSize, precision, arch);
        }

        public Options withBatchSize(int b) {
            return new Options(vocab, device, b, precision, arch);
        }

        public Options withPrecision(Precision p) {
            return new Options(vocab, device, batchSize, p, arch);
        }

        public Options withArch(String a) {
            return new Options(vocab, device, batchSize, precision, a);
        }
    }

    /** Zero-shot class probabilities of one image, in label order. */
    public record ZeroShotResult(float[] probabilities, int top) {
    }

    private final Path source;
    private final Options options;
    private final Backend backend;
    private final ClipModel model;
    private final PreprocessConfig preprocess;
    private final String configSource;
    private final ExecutorService decodePool;
    private volatile ClipTokenizer tokenizer;

    private Clip(Path source, Options options, Backend backend, ClipModel model, PreprocessConfig preprocess,
                 String configSource) {
        this.source = source;
        this.options = options;
        this.backend = backend;
        this.model = model;
        this.preprocess = preprocess;
        this.configSource = configSource;
        int threads = Math.max(1, Math.min(4, Runtime.getRuntime().availableProcessors()));
        this.decodePool = Executors.newFixedThreadPool(threads, r -> {
            Thread t = new Thread(r, "clip-decode");
            t.setDaemon(true);
            return t;
        });
    }

    public static Clip load(Path model) {
        return load(model, Options.defaults());
    }

    /**
     * Loads a checkpoint file or folder with the architecture and preprocessing that belong to it
     * ({@link ResolvedModel}: options.arch(), a config beside the weights, ...); what was assumed is
     * logged as a warning, where the architecture came from as info.
     */
    public static Clip load(Path model, Options options) {
        ResolvedModel resolved = ResolvedModel.resolve(model, options.arch());
        resolved.warnings().forEach(LOG::warn);
        LOG.info("architecture {} from {}; preprocessing {}", resolved.config().name(), resolved.configSource(),
                resolved.preprocess().describe());
        ClipConfig config = resolved.config();
        PreprocessConfig preprocess = resolved.preprocess();
        String configSource = resolved.configSource();
        // the checkpoint's tensors are handed over, each read from the file and dropped as its weight is
        // built: nothing here may keep the checkpoint, so that the peak stays near one model
        Map<String, StoredTensor> weights = new LinkedHashMap<>(resolved.checkpoint().stored());
        resolved = null;
        Backend backend = Backends.select(options.device(), "requested device " + options.device());
        try {
            Precision precision = options.precision() != null ? options.precision() : Precision.defaultFor(backend);
            ClipModel clipModel = ClipModel.consumeStateDict(weights, config, backend, precision);
            return new Clip(model, options, backend, clipModel, preprocess, configSource);
        } catch (RuntimeException e) {
            backend.close();
            throw e;
        }
    }

    /** Wraps a model already in memory (e.g. just trained), with its tokenizer; OpenAI's preprocessing. */
    public static Clip of(ClipModel model, ClipTokenizer tokenizer, Options options) {
        Clip clip = new Clip(null, options, model.backend(), model,
                PreprocessConfig.openai(model.config().imageResolution()), "in memory");
        clip.tokenizer = tokenizer;
        return clip;
    }

    /** The architecture. */
    public ClipConfig config() {
        return model.config();
    }

    /** Where the architecture came from (an --arch name, a config file beside the weights, ...). */
    public String configSource() {
        return configSource;
    }

    /** How images are turned into this model's input pixels. */
    public PreprocessConfig preprocess() {
        return preprocess;
    }

    public ClipModel model() {
        return model;
    }

    public Backend backend() {
        return backend;
    }

    public int imageResolution() {
        return model.config().imageResolution();
    }

    public int embeddingSize() {
        return model.config().embedDim();
    }

    /** The tokenizer, loaded on first use (image-only use needs no vocabulary). */
    public ClipTokenizer tokenizer() {
        if (!model.config().hasClipTokenizer()) {
            throw new InvalidInputException("the text tower of " + model.config().name() + " was trained with the "
                    + model.config().variant().tokenizer() + ", which clipj does not have yet: texts cannot be"
                    + " tokenized for it (image embeddings work; token ids can be passed to ClipModel.encodeText)");
        }
        ClipTokenizer t = tokenizer;
        if (t == null) {
            synchronized (this) {
                if (tokenizer == null) {
                    tokenizer = ClipTokenizer.load(findVocab());
                }
                t = tokenizer;
            }
        }
        return t;
    }

    private Path findVocab() {
        if (options.vocab() != null) {
            return options.vocab();
        }
        if (source != null) {
            Path dir = Files.isDirectory(source) ? source : source.toAbsolutePath().getParent();
            if (dir != null && hasVocabulary(dir)) {
                return dir;
            }
        }
        String env = System.getenv("CLIP_VOCAB");
        if (env != null && !env.isBlank()) {
            return Path.of(env);
        }
        throw new InvalidInputException("no tokenizer vocabulary for " + source + ": none next to the checkpoint and "
                + "CLIP_VOCAB is not set; pass --vocab FILE (bpe_simple_vocab_16e6.txt.gz from openai/CLIP, "
                + "or a folder with a Hugging Face vocab.json + merges.txt)");
    }

    /** The file names {@link ClipTokenizer#load(Path)} looks for in a folder. */
    private static boolean hasVocabulary(Path dir) {
        if (Files.isRegularFile(dir.resolve("vocab.json")) && Files.isRegularFile(dir.resolve("merges.txt"))) {
            return true;
        }
        for (String name : new String[]{"bpe_simple_vocab_16e6.txt.gz", "bpe_simple_vocab_16e6.txt", "vocab.bpe.txt.gz", "bpe.txt.gz"}) {
            if (Files.isRegularFile(dir.resolve(name))) {
                return true;
            }
        }
        return false;
    }

    /** L2-normalized embeddings (N, E) of image files; an unreadable file fails the call, naming it. */
    public float[][] encodeImages(List<Path> files) {
        return encodeImages(files, null, null);
    }

    /**
     * L2-normalized embeddings (N, E) of image files, decoded and preprocessed on a bounded pool at
     * most two batches ahead of the model, so memory stays bounded for any number of files.
     *
     * @param skipped  null: an unreadable file fails the call; else it gets a null row and
     *                 "file: reason" is added here
     * @param progress null, or told the number of files done after each batch
     */
    public float[][] encodeImages(List<Path> files, List<String> skipped, IntConsumer progress) {
        return encodeImageInputs(files.size(), i -> preprocess.apply(files.get(i)), i -> files.get(i).toString(),
                skipped, progress);
    }

    /**
     * L2-normalized embeddings (N, E) of encoded images (PNG, JPEG, GIF, BMP or WebP bytes, as a file would
     * hold them), decoded as {@link #encodeImages(List)} decodes files: on the decode pool, overlapped with the
     * model. Bytes that are not a decodable image fail the call with an error naming their index ("image 3: ...").
     */
    public float[][] encodeImageBytes(List<byte[]> images) {
        return encodeImageBytes(images, null, null);
    }

    /**
     * {@link #encodeImageBytes(List)}; {@code skipped} and {@code progress} as in
     * {@link #encodeImages(List, List, IntConsumer)}, a skipped image named by its index ("image 3: reason").
     */
    public float[][] encodeImageBytes(List<byte[]> images, List<String> skipped, IntConsumer progress) {
        return encodeImageInputs(images.size(), i -> preprocess.apply(ImageLoader.readOriginal(
                present(images.get(i), i), inputName(i))), Clip::inputName, skipped, progress);
    }

    /**
     * L2-normalized embeddings (N, E) of encoded images read from streams, each read to its end on the decode
     * pool (not closed: the caller owns them), otherwise as {@link #encodeImageBytes(List)}; a read or decode
     * failure names the stream's index.
     */
    public float[][] encodeImageStreams(List<? extends InputStream> images) {
        return encodeImageInputs(images.size(), i -> preprocess.apply(ImageLoader.readOriginal(
                present(images.get(i), i), inputName(i))), Clip::inputName, null, null);
    }

    /**
     * L2-normalized embeddings (N, E) of decoded images, preprocessed on the decode pool as
     * {@link #encodeImages(List)} does. An image Java decoded itself may differ slightly from the same file
     * given as a path or bytes: those keep palette and alpha as PIL does (see {@link ImageLoader#readOriginal}).
     */
    public float[][] encodeImagesFrom(List<BufferedImage> images) {
        return encodeImageInputs(images.size(), i -> preprocess.apply(present(images.get(i), i)), Clip::inputName,
                null, null);
    }

    /**
     * The one image pipeline of every encodeImage* method: input i is preprocessed by {@code pixelsOf} on the
     * decode pool, at most two batches ahead of the model, and named by {@code name} in errors.
     */
    private float[][] encodeImageInputs(int n, IntFunction<float[]> pixelsOf, IntFunction<String> name,
                                        List<String> skipped, IntConsumer progress) {
        int res = imageResolution();
        int pixelsPerImage = 3 * res * res;
        int batchSize = options.batchSize();
        float[][] out = new float[n][];
        Deque<Future<float[]>> pending = new ArrayDeque<>();
        int submitted = 0;
        try {
            for (int start = 0; start < n; start += batchSize) {
                int count = Math.min(batchSize, n - start);
                for (; submitted < Math.min(n, start + 2 * batchSize); submitted++) {
                    int index = submitted;
                    pending.add(decodePool.submit(() -> pixelsOf.apply(index)));
                }
                float[] batch = new float[count * pixelsPerImage];
                int[] rows = new int[count];
                int kept = 0;
                for (int i = 0; i < count; i++) {
                    try {
                        System.arraycopy(await(pending.poll()), 0, batch, kept * pixelsPerImage, pixelsPerImage);
                        rows[kept++] = start + i;
                    } catch (InvalidInputException e) {
                        if (skipped == null) {
                            throw e;
                        }
                        String input = name.apply(start + i);
                        String reason = e.getMessage() == null ? "unreadable" : e.getMessage();
                        skipped.add(reason.contains(input) ? reason : input + ": " + reason);
                    }
                }
                if (kept > 0) {
                    float[][] emb = encodePixels(kept == count ? batch : Arrays.copyOf(batch, kept * pixelsPerImage), kept);
                    for (int k = 0; k < kept; k++) out[rows[k]] = emb[k];
                }
                if (progress != null) {
                    progress.accept(start + count);
                }
            }
        } finally {
            pending.forEach(f -> f.cancel(true));
        }
        return out;
    }

    /** How errors name in-memory input {@code index} (files are named by their path). */
    private static String inputName(int index) {
        return "image " + index;
    }

    private static <T> T present(T input, int index) {
        if (input == null) {
            throw new InvalidInputException(inputName(index) + ": null instead of an image");
        }
        return input;
    }

    /** L2-normalized embeddings (N, E) of already preprocessed pixels (N, 3, R, R). */
    public float[][] encodePixels(float[] pixels, int count) {
        float[][] out = new float[count][];
        encodeImageBatch(pixels, count, out, 0);
        return out;
    }

    private void encodeImageBatch(float[] pixels, int count, float[][] out, int at) {
        int res = imageResolution();
        Tensor features = model.encodeImage(backend.upload(Tensor.of(pixels, count, 3, res, res)));
        copyNormalizedRows(backend.download(features), out, at);
    }

    /** L2-normalized embeddings (N, E) of texts (truncated to the context length). */
    public float[][] encodeTexts(List<String> texts) {
        return encodeTokens(tokenizer().tokenize(texts, model.config().contextLength(), true));
    }

    /**
     * L2-normalized embeddings (N, E) of already tokenized texts: rows of the context length, as
     * {@code tokenizer().tokenize(texts, config().contextLength(), true)} gives them (a service tokenizes on its
     * callers' threads and batches the ids).
     */
    public float[][] encodeTokens(int[][] tokens) {
        int n = tokens.length;
        int ctx = model.config().contextLength();
        for (int i = 0; i < n; i++) {
            if (tokens[i].length != ctx) {
                throw new InvalidInputException("token row " + i + " has " + tokens[i].length + " ids; " + model.config().name()
                        + " takes rows of its context length " + ctx);
            }
        }
        float[][] out = new float[n][];
        for (int start = 0; start < n; start += options.batchSize()) {
            int count = Math.min(options.batchSize(), n - start);
            int[] flat = new int[count * ctx];
            for (int i = 0; i < count; i++) System.arraycopy(tokens[start + i], 0, flat, i * ctx, ctx);
            Tensor features = model.encodeText(backend.upload(Tensor.of(flat, count, ctx)));
            copyNormalizedRows(backend.download(features), out, start);
        }
        return out;
    }

    /**
     * Compiles the hot paths for the shapes a service will see, so that its first request runs at the speed
     * of later ones rather than paying for JIT compilation (cold, the tiny test model's first text took
     * 1.1 s, its second 144 ms). A round embeds, for each size b given, b images from memory (a PNG and a
     * JPEG, so decoding and preprocessing are compiled too) and b short texts (the tokenizer too); rounds
     * repeat until one spends under 5% of its time in the JIT compiler, at least {@value #WARM_MIN_ROUNDS} rounds
     * and at least as many calls per tower as C2 needs to compile the per-request methods
     * ({@link JitThresholds#warmUpCalls()}), at most {@value #WARM_MAX_ROUNDS} rounds or twice
     * that minimum. On a JVM without {@link JitThresholds#LATENCY_FLAGS} C2 wants thousands of calls: the warm-up then
     * logs a warning instead of running that long, and live requests pay for those compilations (slower
     * p99 until then). Results are discarded. Call it once after {@link #load}, before taking traffic.
     *
     * @param imageBatchSizes images per call the service will make, e.g. 1 and its batch limit (empty: none)
     * @param textBatchSizes  texts per call (empty: no text warm-up, so an image-only service needs no vocabulary)
     * @return the rounds run
     */
    public int warmUp(List<Integer> imageBatchSizes, List<Integer> textBatchSizes) {
        for (List<Integer> sizes : List.of(imageBatchSizes, textBatchSizes)) {
            for (int b : sizes) {
                if (b < 1) {
                    throw new InvalidInputException("warm-up batch sizes must be >= 1, got " + sizes);
                }
            }
        }
        List<byte[]> samples = warmUpImages(imageResolution());
        CompilationMXBean jit = ManagementFactory.getCompilationMXBean();
        boolean jitTimed = jit != null && jit.isCompilationTimeMonitoringSupported();
        int minRounds = Math.max(WARM_MIN_ROUNDS, c2Rounds(imageBatchSizes, textBatchSizes));
        long begin = System.nanoTime();
        int rounds = 0;
        while (rounds < Math.max(WARM_MAX_ROUNDS, 2 * minRounds)) {
            long compiledBefore = jitTimed ? jit.getTotalCompilationTime() : 0;
            long roundStart = System.nanoTime();
            for (int b : imageBatchSizes) {
                List<byte[]> images = new ArrayList<>(b);
                for (int i = 0; i < b; i++) images.add(samples.get(i % samples.size()));
                encodeImageBytes(images);
            }
            for (int b : textBatchSizes) {
                encodeTexts(Collections.nCopies(b, "a photo of a cat, warming up the text tower"));
            }
            rounds++;
            double roundMillis = (System.nanoTime() - roundStart) / 1e6;
            // without a JIT timer (e.g. -Xint) there is nothing to wait for beyond the minimum rounds
            double compileMillis = jitTimed ? jit.getTotalCompilationTime() - compiledBefore : 0;
            if (rounds >= minRounds && compileMillis < WARM_COMPILE_FRACTION * roundMillis) {
                break;
            }
        }
        LOG.info("warm-up: {} round(s) in {} ms (image batches {}, text batches {})", rounds,
                (System.nanoTime() - begin) / 1_000_000, imageBatchSizes, textBatchSizes);
        return rounds;
    }

    /**
     * Rounds after which the methods called once per encode call have been called often enough for C2
     * ({@link JitThresholds#warmUpCalls()} calls per tower); 0 with a warning where that exceeds
     * {@value #WARM_MAX_C2_CALLS} calls.
     */
    private static int c2Rounds(List<Integer> imageBatchSizes, List<Integer> textBatchSizes) {
        int calls = JitThresholds.warmUpCalls();
        int callsPerRound = Integer.MAX_VALUE;   // per tower: one encode call per batch size
        for (List<Integer> sizes : List.of(imageBatchSizes, textBatchSizes)) {
            if (!sizes.isEmpty()) callsPerRound = Math.min(callsPerRound, sizes.size());
        }
        if (calls == 0 || callsPerRound == Integer.MAX_VALUE) return 0;
        if (calls > WARM_MAX_C2_CALLS) {
            LOG.warn("warm-up: this JVM compiles clipj's per-request methods with C2 only after {} calls; the warm-up"
                    + " stops long before, so live requests will pay for those compilations (slow p99 until then)."
                    + " Start the JVM with {} (scripts/clip serve does).", JitThresholds.callsToC2(), JitThresholds.LATENCY_FLAGS);
            return 0;
        }
        return (calls + callsPerRound - 1) / callsPerRound;
    }

    /**
     * A PNG and a JPEG of a photo's size (640 x 480, or larger than the model's input so that preprocessing
     * downsamples): decoding and resizing loops compiled on small images run cold on real ones.
     */
    private static List<byte[]> warmUpImages(int res) {
        int w = Math.max(640, 2 * res + 3);
        int h = Math.max(480, 3 * res / 2 + 1);
        BufferedImage image = new BufferedImage(w, h, BufferedImage.TYPE_INT_RGB);
        for (int y = 0; y < h; y++) {
            for (int x = 0; x < w; x++) {
                image.setRGB(x, y, ((x * 7 + y) & 0xFF) << 16 | ((y * 5) & 0xFF) << 8 | ((x ^ y) & 0xFF));
            }
        }
        List<byte[]> encoded = new ArrayList<>(2);
        for (String format : new String[]{"png", "jpeg"}) {
            ByteArrayOutputStream out = new ByteArrayOutputStream();
            try {
                if (!ImageIO.write(image, format, out)) {
                    throw new IllegalStateException("no ImageIO writer for " + format);
                }
            } catch (IOException e) {
                throw new UncheckedIOException(e);
            }
            encoded.add(out.toByteArray());
        }
        return encoded;
    }

    /**
     * Zero-shot classifier weights (C, E): for each label the mean of the normalized embeddings of
     * every template filled with it ({} marks the place), renormalized (prompt ensembling).
     */
    public float[][] classifier(List<String> labels, List<String> templates) {
        List<String> prompts = PromptEnsemble.prompts(labels, templates);
        return PromptEnsemble.weights(encodeTexts(prompts), labels.size(), templates.size());
    }

    /** exp(logit_scale): the temperature the model was trained with. */
    public float logitScale() {
        return (float) Math.exp(backend.download(model.logitScale()).toFloatArray()[0]);
    }

    /** Class probabilities softmax(exp(logit_scale) * image @ classifier^T) for each image embedding. */
    public List<ZeroShotResult> classify(float[][] imageEmbeddings, float[][] classifier) {
        float scale = logitScale();
        List<ZeroShotResult> results = new ArrayList<>(imageEmbeddings.length);
        for (float[] img : imageEmbeddings) {
            double[] logits = new double[classifier.length];
            double max = Double.NEGATIVE_INFINITY;
            for (int c = 0; c < classifier.length; c++) {
                double s = 0;
                for (int d = 0; d < img.length; d++) s += img[d] * classifier[c][d];
                logits[c] = scale * s;
                max = Math.max(max, logits[c]);
            }
            double sum = 0;
            for (int c = 0; c < logits.length; c++) {
                logits[c] = Math.exp(logits[c] - max);
                sum += logits[c];
            }
            float[] p = new float[logits.length];
            int top = 0;
            for (int c = 0; c < p.length; c++) {
                p[c] = (float) (logits[c] / sum);
                if (p[c] > p[top]) top = c;
            }
            results.add(new ZeroShotResult(p, top));
        }
        return results;
    }

    /** Zero-shot classification of image files among labels, with prompt ensembling over templates. */
    public List<ZeroShotResult> zeroShot(List<Path> images, List<String> labels, List<String> templates) {
        return classify(encodeImages(images), classifier(labels, templates));
    }

    private static void copyNormalizedRows(Tensor features, float[][] out, int at) {
        float[] f = features.toFloatArray();
        int rows = features.dim(0);
        int dim = features.dim(1);
        for (int i = 0; i < rows; i++) {
            float[] row = new float[dim];
            System.arraycopy(f, i * dim, row, 0, dim);
            normalize(row);
            out[at + i] = row;
        }
    }

    static void normalize(float[] v) {
        double s = 0;
        for (float x : v) s += (double) x * x;
        float inv = (float) (1 / Math.max(Math.sqrt(s), 1e-12));
        for (int i = 0; i < v.length; i++) v[i] *= inv;
    }

    private static float[] await(Future<float[]> f) {
        try {
            return f.get();
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IllegalStateException("interrupted while decoding images", e);
        } catch (ExecutionException e) {
            if (e.getCause() instanceof RuntimeException re) {
                throw re;
            }
            throw new IllegalStateException(e.getCause());
        }
    }

    @Override
    public void close() {
        decodePool.shutdownNow();
        backend.close();
    }
}
