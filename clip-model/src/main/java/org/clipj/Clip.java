package org.clipj;

import org.clipj.image.PreprocessConfig;
import org.clipj.model.ClipConfig;
import org.clipj.model.ClipModel;
import org.clipj.model.Precision;
import org.clipj.model.ResolvedModel;
import org.clipj.runtime.Backend;
import org.clipj.runtime.Backends;
import org.clipj.runtime.InvalidInputException;
import org.clipj.runtime.Tensor;
import org.clipj.text.ClipTokenizer;

import java.awt.image.BufferedImage;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Deque;
import java.util.List;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.function.IntConsumer;
import java.util.logging.Logger;

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

    /**
     * @param vocab     the BPE vocabulary (bpe_simple_vocab_16e6.txt.gz, or a folder with it or with a
     *                  Hugging Face vocab.json + merges.txt); null: look next to the checkpoint, then $CLIP_VOCAB
     * @param device    cpu | cuda | auto
     * @param batchSize images or texts per forward pass
     * @param precision the GEMM weights' precision (see {@link Precision}); null: BF16 on CUDA, F32 on
     *                  the CPU. BF16/F16 with the CPU backend is an error (it computes in F32)
     * @param arch      the architecture by name (open_clip's ViT-B-32, ViT-H-14-quickgelu, ..., or OpenAI's
     *                  ViT-B/32, ...); null: from the config beside the weights (see {@link ResolvedModel})
     */
    public record Options(Path vocab, String device, int batchSize, Precision precision, String arch) {
        public Options {
            if (batchSize < 1) {
                throw new InvalidInputException("batch size must be >= 1, got " + batchSize);
            }
        }

        /** The default precision for the device, the architecture from the checkpoint. */
        public Options(Path vocab, String device, int batchSize) {
            this(vocab, device, batchSize, null, null);
        }

        /** The architecture from the checkpoint. */
        public Options(Path vocab, String device, int batchSize, Precision precision) {
            this(vocab, device, batchSize, precision, null);
        }

        public static Options defaults() {
            return new Options(null, "auto", 32);
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

    private static final Logger LOG = Logger.getLogger(Clip.class.getName());

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
        resolved.warnings().forEach(LOG::warning);
        LOG.info(() -> "architecture " + resolved.config().name() + " from " + resolved.configSource()
                + "; preprocessing " + resolved.preprocess().describe());
        Backend backend = Backends.create(options.device());
        try {
            Precision precision = options.precision() != null ? options.precision() : Precision.defaultFor(backend);
            ClipModel clipModel = ClipModel.fromStateDict(resolved.checkpoint().tensors(), resolved.config(), backend, precision);
            return new Clip(model, options, backend, clipModel, resolved.preprocess(), resolved.configSource());
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
        int n = files.size();
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
                    Path file = files.get(submitted);
                    pending.add(decodePool.submit(() -> preprocess.apply(file)));
                }
                float[] batch = new float[count * pixelsPerImage];
                int[] rows = new int[count];
                int kept = 0;
                for (int i = 0; i < count; i++) {
                    Path file = files.get(start + i);
                    try {
                        System.arraycopy(await(pending.poll()), 0, batch, kept * pixelsPerImage, pixelsPerImage);
                        rows[kept++] = start + i;
                    } catch (InvalidInputException e) {
                        if (skipped == null) {
                            throw e;
                        }
                        String reason = e.getMessage() == null ? "unreadable" : e.getMessage();
                        skipped.add(reason.contains(file.toString()) ? reason : file + ": " + reason);
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

    /** L2-normalized embeddings (N, E) of decoded images. */
    public float[][] encodeImagesFrom(List<BufferedImage> images) {
        int n = images.size();
        int res = imageResolution();
        float[][] out = new float[n][];
        for (int start = 0; start < n; start += options.batchSize()) {
            int count = Math.min(options.batchSize(), n - start);
            float[] batch = new float[count * 3 * res * res];
            for (int i = 0; i < count; i++) {
                System.arraycopy(preprocess.apply(images.get(start + i)), 0, batch, i * 3 * res * res, 3 * res * res);
            }
            encodeImageBatch(batch, count, out, start);
        }
        return out;
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
        int n = texts.size();
        int ctx = model.config().contextLength();
        float[][] out = new float[n][];
        ClipTokenizer tok = tokenizer();
        for (int start = 0; start < n; start += options.batchSize()) {
            int count = Math.min(options.batchSize(), n - start);
            int[][] ids = tok.tokenize(texts.subList(start, start + count), ctx, true);
            int[] flat = new int[count * ctx];
            for (int i = 0; i < count; i++) System.arraycopy(ids[i], 0, flat, i * ctx, ctx);
            Tensor features = model.encodeText(backend.upload(Tensor.of(flat, count, ctx)));
            copyNormalizedRows(backend.download(features), out, start);
        }
        return out;
    }

    /**
     * Zero-shot classifier weights (C, E): for each label the mean of the normalized embeddings of
     * every template filled with it ({} marks the place), renormalized (prompt ensembling).
     */
    public float[][] classifier(List<String> labels, List<String> templates) {
        if (labels.isEmpty()) {
            throw new InvalidInputException("zero-shot needs at least one label");
        }
        if (templates.isEmpty()) {
            throw new InvalidInputException("zero-shot needs at least one template");
        }
        for (String t : templates) {
            if (!t.contains("{}")) {
                throw new InvalidInputException("template '" + t + "' has no {} for the label");
            }
        }
        List<String> prompts = new ArrayList<>(labels.size() * templates.size());
        for (String label : labels) {
            for (String t : templates) prompts.add(t.replace("{}", label));
        }
        float[][] e = encodeTexts(prompts);
        int dim = embeddingSize();
        float[][] weights = new float[labels.size()][dim];
        for (int c = 0; c < labels.size(); c++) {
            for (int t = 0; t < templates.size(); t++) {
                float[] row = e[c * templates.size() + t];
                for (int d = 0; d < dim; d++) weights[c][d] += row[d];
            }
            normalize(weights[c]);
        }
        return weights;
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
