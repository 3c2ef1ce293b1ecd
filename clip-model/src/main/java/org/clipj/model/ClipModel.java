package org.clipj.model;

import org.clipj.io.StoredTensor;
import org.clipj.runtime.Backend;
import org.clipj.runtime.DType;
import org.clipj.runtime.Device;
import org.clipj.runtime.InvalidInputException;
import org.clipj.runtime.Shaped;
import org.clipj.runtime.Tensor;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.function.Function;
import java.util.function.Predicate;

/**
 * CLIP (openai/CLIP {@code clip/model.py}): a vision tower (ViT or ModifiedResNet), a text
 * transformer and the learned log logit scale, with a hand-written backward for training.
 *
 * <p>Storage: each tower's parameters live in one contiguous F32 buffer on the backend and its
 * gradients in a second one of the same layout (the text tower's also holds logit_scale);
 * BatchNorm running statistics in a third. {@link #encodeImage} and {@link #encodeText} allocate
 * their own activations and may run from many threads at once; the training calls
 * ({@link #forwardImage}, {@link #backwardImage}, ...) are for one thread.
 *
 * <p>Inference models: a model loaded with a {@link Precision} ({@link #fromStateDict(Map, Backend,
 * Precision)}) is for inference only and holds ONE copy of each GEMM weight, in the form its kernel
 * reads: its linear and patch-embedding weights are handed to {@link Backend#prepareWeight} (CPU: GEMM
 * panels packed once, and nothing else of them kept), and with {@link Precision#BF16} or
 * {@link Precision#F16} (CUDA; BF16 also on a CPU with AVX512_BF16, linear layers and the ViT patch
 * embedding only) its linear and convolution weights are cast to that type first, so
 * {@link #encodeImage}/{@link #encodeText} run those GEMMs in it with F32 accumulation; on CUDA the
 * transformer blocks' activations are 16-bit too, around an F32 residual stream ({@link Precision} says
 * what each precision stores). No F32 copy of those weights is kept beside them; the other tensors
 * (norms, biases, embeddings, projections) stay in the towers' F32 buffers. The training calls need a
 * model from {@link #fromStateDict(Map, Backend)} or {@link #initialize}.
 */
public final class ClipModel {
    /** Checkpoint entries that carry no weights (constants, counters, cached masks). */
    private static final Set<String> IGNORABLE = Set.of("attn_mask", "num_batches_tracked", "input_resolution",
            "context_length", "vocab_size", "position_ids");

    private final ClipConfig config;
    private final Backend backend;
    private final TowerStorage visual;           // visual.* parameters, gradients, BatchNorm statistics
    private final TowerStorage text;             // text tower parameters, gradients and logit_scale
    private final Tensor logitScale;             // (1) log of the logit scale
    private final Precision precision;           // of encodeImage/encodeText's GEMMs
    private final boolean inferenceOnly;
    // An inference model's GEMM weights (name -> the one copy, prepared and maybe 16-bit), filled by
    // the factory before the model is returned; empty for a model that trains.
    private final Map<String, Tensor> gemmWeights = new LinkedHashMap<>();
    private VisionTower vision;                  // the trainable towers over parameter views (null for inference)
    private TextTransformer textTower;
    private Gradients gradients;                 // made by the first call that needs gradients
    private Precision trainingPrecision = Precision.F32;
    private Function<String, Tensor> visualCopies;   // mixed-precision training: name -> 16-bit copy or F32 value
    private Function<String, Tensor> textCopies;
    // The towers encodeImage/encodeText run: the trainable ones, or ones over the inference weights
    // (set once by the factory, before the model is returned).
    private VisionTower inferenceVision;
    private TextTransformer inferenceText;

    private ClipModel(ClipConfig config, Backend backend, Precision precision, boolean inferenceOnly) {
        this.config = config;
        this.backend = backend;
        this.precision = precision;
        this.inferenceOnly = inferenceOnly;
        Predicate<TensorSpec> heldApart = inferenceOnly ? this::heldApart : s -> false;
        this.visual = new TowerStorage(backend, visualSpecs(config), heldApart);
        this.text = new TowerStorage(backend, textSpecs(config), heldApart);
        logitScale = text.value("logit_scale");
        if (!inferenceOnly) {
            vision = VisionTower.of(backend, visual::value, config, DType.F32);
            textTower = new TextTransformer(backend, text::value, config, DType.F32);
            inferenceVision = vision;
            inferenceText = textTower;
        }
    }

    /** The towers over the gradient views and the parameter list. */
    private record Gradients(VisionTower vision, TextTransformer text, List<Parameter> parameters) {
    }

    /** The gradient towers, allocating the gradient buffers (zeros) on first use. */
    private synchronized Gradients gradients() {
        requireTrainable("gradients");
        if (gradients == null) {
            List<Parameter> all = new ArrayList<>(visual.parameterList());
            all.addAll(text.parameterList());
            gradients = new Gradients(VisionTower.of(backend, visual::grad, config, DType.F32),
                    new TextTransformer(backend, text::grad, config, DType.F32), Collections.unmodifiableList(all));
        }
        return gradients;
    }

    /**
     * Points encodeImage/encodeText at towers over the GEMM weights and the F32 buffers, once every weight is loaded.
     * On CUDA a 16-bit precision also makes the transformer blocks' activations 16-bit (see {@link Precision}), with
     * 16-bit copies of the biases added to them.
     */
    private void buildInferenceTowers() {
        DType activations = backend.device() == Device.CUDA ? precision.dtype() : DType.F32;
        inferenceVision = VisionTower.of(backend, this::inferenceWeight, config, activations);
        inferenceText = new TextTransformer(backend, this::inferenceWeight, config, activations);
    }

    /**
     * Mixed-precision training (PyTorch autocast's semantics for the linear layers, with F32 master weights): the
     * weights of the linear layers get a 16-bit copy (BF16 or F16) made now from the current values, and
     * {@link #forwardImage}/{@link #forwardText} and their backwards multiply those copies (inputs and output
     * gradients rounded to the same type, F32 accumulation, F32 gradients of the master weights); layernorm,
     * attention, softmax, embeddings, convolutions and the final projections stay F32; in BF16 the contrastive loss
     * takes BF16 features (its logits GEMMs, as autocast: {@link org.clipj.train.ContrastiveStep}). The copies follow
     * the master weights only through the optimizer's {@link Backend#adamwUpdateCopy} with {@link #trainingCopy}:
     * set this after the weights are loaded and write them no other way. CUDA only; once set, it stays
     * (F32 on an F32 model does nothing).
     */
    public void trainIn(Precision p) {
        requireTrainable("trainIn");
        if (p == trainingPrecision) return;
        if (trainingPrecision != Precision.F32) {
            throw new IllegalStateException("trainIn(" + p + "): this model already trains in " + trainingPrecision);
        }
        if (backend.device() != Device.CUDA) {
            throw new InvalidInputException("precision " + p.name().toLowerCase(java.util.Locale.ROOT)
                    + " training needs the CUDA backend (the CPU backend trains in f32)");
        }
        Predicate<TensorSpec> linear = s -> feedsGemm(s) && s.shape().length == 2;
        visualCopies = visual.castCopies(backend, p.dtype(), linear);
        textCopies = text.castCopies(backend, p.dtype(), linear);
        vision = VisionTower.of(backend, visualCopies, config, DType.F32);
        textTower = new TextTransformer(backend, textCopies, config, DType.F32);
        trainingPrecision = p;
    }

    /** The precision of the training GEMMs ({@link #trainIn}); F32 unless set. */
    public Precision trainingPrecision() {
        return trainingPrecision;
    }

    /** The 16-bit copy of parameter {@code name} that mixed-precision training multiplies, or null (none). */
    public Tensor trainingCopy(String name) {
        if (trainingPrecision == Precision.F32) return null;
        Tensor t = (name.startsWith("visual.") ? visualCopies : textCopies).apply(name);
        return t.dtype() == trainingPrecision.dtype() ? t : null;
    }

    private Tensor inferenceWeight(String name) {
        Tensor w = gemmWeights.get(name);
        return w != null ? w : value(name);
    }

    /** Whether an inference model of this precision keeps s apart from the F32 buffers: prepared or 16-bit. */
    private boolean heldApart(TensorSpec s) {
        return prepared(s) || sixteenBit(s);
    }

    /** The weights linearForward or patchEmbedForward multiply by: passed through prepareWeight. */
    private boolean prepared(TensorSpec s) {
        boolean linear = s.shape().length == 2 && feedsGemm(s);
        return !s.buffer() && (linear || VisionTower.isPatchEmbedding(config, s.name()));
    }

    /**
     * The tensors stored in 16 bits below F32: on CUDA every GEMM weight and the biases added to 16-bit activations;
     * on the CPU the linear layers and the ViT patch embedding only (ResNet convolutions and activations stay F32).
     */
    private boolean sixteenBit(TensorSpec s) {
        if (precision == Precision.F32 || s.buffer()) return false;
        if (backend.device() == Device.CPU) {
            return feedsGemm(s) && (s.shape().length == 2 || VisionTower.isPatchEmbedding(config, s.name()));
        }
        return feedsGemm(s) || ResidualAttentionBlock.hasActivationDtype(s.name());
    }

    /**
     * The one copy of an inference GEMM weight: stored (a CPU tensor of the checkpoint, any floating
     * dtype) cast to F32 or to the precision's type on the backend, then prepared where it is multiplied
     * by linearForward or patchEmbedForward. A prepared form that holds its own copy (the CPU's packed
     * panels) leaves the cast tensor in {@code scratch} for the next weight of its dtype and shape, so
     * a load allocates one such tensor per shape instead of one per weight.
     */
    private Tensor gemmWeight(TensorSpec s, Tensor stored, Map<String, Tensor> scratch) {
        DType dtype = sixteenBit(s) ? precision.dtype() : DType.F32;
        String key = dtype + Arrays.toString(s.shape());
        Tensor source = backend.upload(stored.reshape(s.shape()));
        Tensor w = scratch.remove(key);
        if (w == null) w = backend.empty(dtype, s.shape());
        if (source.dtype() == dtype) backend.copy(w, source);
        else backend.cast(w, source);
        if (!prepared(s)) return w;
        Tensor form = backend.prepareWeight(w);
        if (form != w) scratch.put(key, w);
        return form;
    }

    /**
     * The weights of the linear layers (attention in/out projections, MLP, AttentionPool2d projections)
     * and of the convolutions (ViT patch embedding, ResNet convs). Embedding tables, positional
     * embeddings, norms and the final projections (visual.proj, text_projection) are not among them.
     */
    static boolean feedsGemm(TensorSpec s) {
        return feedsGemm(s.name(), s.shape().length);
    }

    private static boolean feedsGemm(String name, int rank) {
        return rank >= 2 && (name.endsWith(".weight") || name.endsWith(".in_proj_weight"))
                && !name.equals("token_embedding.weight");
    }

    /** Every tensor of a model of this config: the vision tower's, then the text tower's and logit_scale. */
    static List<TensorSpec> specs(ClipConfig c) {
        List<TensorSpec> specs = new ArrayList<>(visualSpecs(c));
        specs.addAll(textSpecs(c));
        return specs;
    }

    /** Checkpoint entries that carry no weights (constants, counters, cached masks), by their last name part. */
    static boolean isWeightless(String name) {
        return IGNORABLE.contains(name.substring(name.lastIndexOf('.') + 1));
    }

    /** logit_scale stored 0-d, as torch saves it. */
    static boolean isScalarLogitScale(TensorSpec s, Shaped t) {
        return s.name().equals("logit_scale") && t.rank() == 0;
    }

    static List<TensorSpec> visualSpecs(ClipConfig c) {
        List<TensorSpec> specs = new ArrayList<>();
        VisionTower.specs(c, specs);
        return specs;
    }

    static List<TensorSpec> textSpecs(ClipConfig c) {
        List<TensorSpec> specs = new ArrayList<>();
        TextTransformer.specs(c, specs);
        specs.add(TensorSpec.param("logit_scale", 1));
        return specs;
    }

    // ------------------------------------------------------------------ construction

    /**
     * A model from an OpenAI-named state dict (CPU tensors; F32, F16 or BF16, widened to F32 once).
     * The config is inferred as openai/CLIP's build_model does; every expected tensor must be
     * present with the expected shape, and any other tensor is rejected unless it is one of the
     * weightless entries (attn_mask, num_batches_tracked, ...).
     */
    public static ClipModel fromStateDict(Map<String, Tensor> openAiNamed, Backend backend) {
        return fromStateDict(openAiNamed, ClipConfig.infer(openAiNamed), backend);
    }

    /**
     * As {@link #fromStateDict(Map, Backend)}, for inference only at the given precision (see the class
     * comment); F16 needs the CUDA backend and BF16 the CUDA backend or a CPU with AVX512_BF16 (an
     * InvalidInputException says why not).
     */
    public static ClipModel fromStateDict(Map<String, Tensor> openAiNamed, Backend backend, Precision precision) {
        return fromStateDict(openAiNamed, ClipConfig.infer(openAiNamed), backend, precision);
    }

    /** As {@link #fromStateDict(Map, Backend)} with a given config (its shapes must match the tensors). */
    public static ClipModel fromStateDict(Map<String, Tensor> openAiNamed, ClipConfig config, Backend backend) {
        return load(openAiNamed, config, backend, Precision.F32, false);
    }

    /** As {@link #fromStateDict(Map, Backend, Precision)} with a given config. */
    public static ClipModel fromStateDict(Map<String, Tensor> openAiNamed, ClipConfig config, Backend backend,
                                          Precision precision) {
        return load(openAiNamed, config, backend, precision, true);
    }

    /**
     * As {@link #fromStateDict(Map, ClipConfig, Backend, Precision)} from a checkpoint's stored tensors,
     * each read from its file and taken out of {@code openAiNamed} (a mutable map the caller gives up; it
     * ends empty but for the weightless entries) only as its weight is built, and collectable as soon as
     * it is: the peak stays near one model instead of the checkpoint plus the model.
     */
    public static ClipModel consumeStateDict(Map<String, StoredTensor> openAiNamed, ClipConfig config, Backend backend,
                                             Precision precision) {
        return load(openAiNamed, StoredTensor::read, config, backend, precision, true, true);
    }

    private static ClipModel load(Map<String, Tensor> openAiNamed, ClipConfig config, Backend backend,
                                  Precision precision, boolean inference) {
        return load(openAiNamed, t -> t, config, backend, precision, inference, false);
    }

    private static <T extends Shaped> ClipModel load(Map<String, T> openAiNamed, Function<T, Tensor> read, ClipConfig config,
                                                     Backend backend, Precision precision, boolean inference, boolean consume) {
        precision.requireSupportedBy(backend);
        List<TensorSpec> specs = specs(config);
        verifyTensors(openAiNamed, config);
        ClipModel model = new ClipModel(config, backend, precision, inference);
        Map<String, Tensor> scratch = new LinkedHashMap<>();   // cast tensors free for reuse, by dtype and shape
        // consumed tensors are read from their file one ahead, on a reader thread: the next one's read overlaps
        // this one's cast and packing, and at most two are held
        ExecutorService reader = consume
                ? Executors.newSingleThreadExecutor(Thread.ofPlatform().daemon().name("clip-checkpoint-reader").factory()) : null;
        try {
            Future<Tensor> next = readNext(reader, read, openAiNamed, specs.getFirst().name(), consume);
            for (int i = 0; i < specs.size(); i++) {
                TensorSpec s = specs.get(i);
                Tensor stored = await(next);
                next = i + 1 < specs.size() ? readNext(reader, read, openAiNamed, specs.get(i + 1).name(), consume) : null;
                if (inference && model.heldApart(s)) {
                    model.gemmWeights.put(s.name(), model.gemmWeight(s, stored, scratch));
                    continue;
                }
                // 16-bit weights are widened straight into the parameter buffer (no F32 copy on the heap)
                Tensor source = backend.upload(stored.reshape(s.shape()));
                if (source.dtype() == DType.F32) backend.copy(model.value(s.name()), source);
                else backend.cast(model.value(s.name()), source);
            }
        } finally {
            if (reader != null) reader.shutdownNow();
        }
        if (inference) model.buildInferenceTowers();
        return model;
    }

    /** The named tensor, taken out of the map when consumed, read on {@code reader} (null: here, now). */
    private static <T extends Shaped> Future<Tensor> readNext(ExecutorService reader, Function<T, Tensor> read,
                                                              Map<String, T> openAiNamed, String name, boolean consume) {
        T stored = consume ? openAiNamed.remove(name) : openAiNamed.get(name);
        return reader == null ? CompletableFuture.completedFuture(read.apply(stored)) : reader.submit(() -> read.apply(stored));
    }

    private static Tensor await(Future<Tensor> read) {
        try {
            return read.get();
        } catch (ExecutionException e) {
            if (e.getCause() instanceof RuntimeException r) throw r;
            if (e.getCause() instanceof Error error) throw error;
            throw new IllegalStateException("reading a checkpoint tensor failed", e.getCause());
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IllegalStateException("interrupted while reading the checkpoint", e);
        }
    }

    /**
     * Every tensor of the config present in {@code openAiNamed} with its shape and a floating-point
     * dtype, and no tensor beyond them (weightless entries such as attn_mask aside); else an
     * InvalidInputException naming the tensor and the config.
     */
    public static void verifyTensors(Map<String, ? extends Shaped> openAiNamed, ClipConfig config) {
        List<TensorSpec> specs = specs(config);
        Set<String> expected = new TreeSet<>();
        for (TensorSpec s : specs) {
            expected.add(s.name());
            Shaped t = openAiNamed.get(s.name());
            if (t == null) {
                throw new InvalidInputException("checkpoint lacks tensor '" + s.name() + "' (expected shape "
                        + Arrays.toString(s.shape()) + " for config " + config.name() + ")");
            }
            if (!Arrays.equals(t.shape(), s.shape()) && !isScalarLogitScale(s, t)) {
                throw new InvalidInputException("tensor '" + s.name() + "' has shape " + t.shapeString()
                        + ", but config " + config.name() + " expects " + Arrays.toString(s.shape()));
            }
            if (!t.dtype().isFloatingPoint()) {
                throw new InvalidInputException("tensor '" + s.name() + "' has dtype " + t.dtype()
                        + ", expected a floating-point type");
            }
        }
        List<String> unknown = new ArrayList<>();
        for (String k : openAiNamed.keySet()) {
            if (!expected.contains(k) && !isWeightless(k)) {
                unknown.add(k);
            }
        }
        if (!unknown.isEmpty()) {
            throw new InvalidInputException("checkpoint has " + unknown.size() + " unexpected tensor(s) for config "
                    + config.name() + ": " + (unknown.size() > 8 ? unknown.subList(0, 8) + " ..." : unknown));
        }
    }

    /** A freshly initialized model (OpenAI's initialize_parameters), deterministic for a seed. */
    public static ClipModel initialize(ClipConfig config, long seed, Backend backend) {
        ClipModel model = new ClipModel(config, backend, Precision.F32, false);
        Initializer init = new Initializer(config, seed);
        for (TensorSpec s : specs(config)) {
            Tensor host = Tensor.of(init.values(s), s.shape());
            backend.copy(model.value(s.name()), backend.upload(host));
        }
        return model;
    }

    /** The parameter or buffer view of a name. */
    private Tensor value(String name) {
        return name.startsWith("visual.") ? visual.value(name) : text.value(name);
    }

    // ------------------------------------------------------------------ accessors

    public ClipConfig config() {
        return config;
    }

    public Backend backend() {
        return backend;
    }

    /** The precision of encodeImage/encodeText's GEMMs (F32 for a model made for training). */
    public Precision precision() {
        return precision;
    }

    /** (1) the log of the logit scale (a parameter; exp of it multiplies the cosine similarities). */
    public Tensor logitScale() {
        return logitScale;
    }

    /**
     * Every trainable tensor with its gradient, vision tower first, then text (logit_scale last).
     * The gradient buffers are allocated by the first call of this or another training method.
     */
    public List<Parameter> parameters() {
        return gradients().parameters();
    }

    /**
     * The gradient storage: one flat F32 tensor per tower (vision, then text with logit_scale), together every
     * parameter's gradient and nothing else (for whole-model reductions such as the global gradient norm).
     */
    public List<Tensor> gradientBuffers() {
        return List.of(visual.gradients(), text.gradients());
    }

    /** Zeroes every gradient. */
    public void zeroGrad() {
        requireTrainable("zeroGrad");
        backend.fill(visual.gradients(), 0f);
        backend.fill(text.gradients(), 0f);
    }

    /**
     * CPU F32 copies of every parameter and buffer (BatchNorm running statistics), OpenAI naming; a
     * model that trains only (an inference model keeps its GEMM weights in their kernels' form alone).
     */
    public Map<String, Tensor> stateDict() {
        requireTrainable("stateDict");
        Map<String, Tensor> out = new LinkedHashMap<>();
        for (TowerStorage tower : List.of(visual, text)) {
            for (TensorSpec s : tower.specs) {
                out.put(s.name(), backend.download(tower.value(s.name())).copy());
            }
        }
        return out;
    }

    // ------------------------------------------------------------------ inference

    /** pixels (B, 3, R, R) F32 -> (B, E) unnormalized image features; keeps no activations. */
    public Tensor encodeImage(Tensor pixels) {
        return encodeImage(pixels, false);
    }

    /**
     * As {@link #encodeImage(Tensor)}; train = true runs a ResNet's BatchNorm on batch statistics
     * and updates its running statistics (one thread only), as the forward of a training step does
     * (the embedding pass of gradient caching). A ViT ignores the flag.
     */
    public Tensor encodeImage(Tensor pixels, boolean train) {
        if (train) requireTrainable("encodeImage(pixels, train = true)");
        Tensor x = checkPixels(pixels);
        return inferenceVision.forward(x, null, train);
    }

    /**
     * tokens (B, T) I32 or I64, T <= context length -> (B, E) unnormalized text features. Runs only
     * the positions up to the last EOT of the batch: under the causal mask nothing after a
     * sequence's EOT reaches its EOT row, so the result is the full-length one.
     */
    public Tensor encodeText(Tensor tokens) {
        Tensor[] ids = checkTokens(tokens, true);
        return inferenceText.forward(ids[0], ids[1], null);
    }

    /**
     * tokens (B, T) I32 or I64, T <= context length, validated on the host (as {@link #encodeText}) and uploaded as
     * (B, T) I32 ids for {@link #encodeTextIds}: all T positions, none cut, so the same tensor can take the next
     * batch's ids (copied in with the backend's copy) for a replayed graph.
     */
    public Tensor uploadTokenIds(Tensor tokens) {
        Tensor[] ids = checkTokens(tokens, false);
        backend.release(ids[1]);
        return ids[0];
    }

    /**
     * ids (B, T) I32 on this model's backend, validated before upload ({@link #uploadTokenIds}) -> (B, E) unnormalized
     * text features, with no sync point, so the forward can be captured into a CUDA graph: the pooled position (the
     * EOT, the largest id of each row) is found on the device ({@link Backend#rowArgmax}) and all T positions run.
     * The ids are not read on the host: eagerly the embedding still checks their range, a captured graph does not.
     * Only for a tower pooled at the argmax of the ids (OpenAI CLIP's); other pools need the host: {@link #encodeText}.
     */
    public Tensor encodeTextIds(Tensor ids) {
        ClipConfig.TextPool pool = config.variant().textPool();
        if (pool != ClipConfig.TextPool.ARGMAX) {
            throw new InvalidInputException("encodeTextIds pools at the argmax of the ids (the EOT), but this model pools by "
                    + pool + ": use encodeText");
        }
        if (ids.device() != backend.device() || ids.dtype() != DType.I32 || ids.rank() != 2 || ids.dim(0) == 0
                || ids.dim(1) == 0 || ids.dim(1) > config.contextLength()) {
            throw new InvalidInputException("ids are " + ids.dtype() + " " + ids.shapeString() + " on " + ids.device()
                    + ", expected (B, T) I32 on " + backend.device() + " with B >= 1 and 1 <= T <= " + config.contextLength()
                    + " (uploadTokenIds makes them)");
        }
        Tensor eot = backend.empty(DType.I32, ids.dim(0));
        backend.rowArgmax(eot, ids);
        return inferenceText.forward(ids, eot, null);
    }

    // ------------------------------------------------------------------ training

    /**
     * Forward keeping the activations for {@link #backwardImage}. train: BatchNorm uses batch
     * statistics and updates its running statistics (ResNet only; a ViT has no train-mode difference).
     */
    public ImageActivations forwardImage(Tensor pixels, boolean train) {
        requireTrainable("forwardImage");
        Tensor x = checkPixels(pixels);
        VisionTower.Activations kept = vision.newActivations();
        vision.forward(x, kept, train);
        return new ImageActivations(kept);
    }

    /** Accumulates into the gradients the backward of the vision tower for dFeatures (B, E). */
    public void backwardImage(ImageActivations acts, Tensor dFeatures) {
        checkGradient(dFeatures, acts.features(), "dFeatures");
        vision.backward(dFeatures, acts.kept, gradients().vision());
    }

    /**
     * Forward keeping the activations for {@link #backwardText}. Like {@link #encodeText} it runs
     * only the positions up to the batch's last EOT: the loss sees nothing later, so every gradient
     * is the full-length one (zero for the positions left out).
     */
    public TextActivations forwardText(Tensor tokens) {
        return forwardText(tokens, true);
    }

    /** As {@link #forwardText(Tensor)}; truncate = false keeps all T positions (to inspect activations). */
    TextActivations forwardText(Tensor tokens, boolean truncate) {
        requireTrainable("forwardText");
        Tensor[] ids = checkTokens(tokens, truncate);
        TextTransformer.Cache cache = new TextTransformer.Cache();
        textTower.forward(ids[0], ids[1], cache);
        return new TextActivations(cache);
    }

    /** Accumulates into the gradients the backward of the text tower for dFeatures (B, E). */
    public void backwardText(TextActivations acts, Tensor dFeatures) {
        checkGradient(dFeatures, acts.features(), "dFeatures");
        textTower.backward(dFeatures, acts.cache, gradients().text());
    }

    /** The gradient of {@link #logitScale()} (1). */
    public Tensor logitScaleGrad() {
        requireTrainable("logitScaleGrad");
        return text.grad("logit_scale");
    }

    // ------------------------------------------------------------------ input checks

    private void requireTrainable(String what) {
        if (inferenceOnly) {
            throw new IllegalStateException(what + ": this model was loaded for " + precision
                    + " inference (its GEMM weights are kept only in their kernels' form); training runs on a model from"
                    + " fromStateDict(weights, backend) or initialize");
        }
    }

    private Tensor checkPixels(Tensor pixels) {
        int r = config.imageResolution();
        if (pixels.rank() != 4 || pixels.dim(1) != 3 || pixels.dim(2) != r || pixels.dim(3) != r || pixels.dim(0) == 0) {
            throw new InvalidInputException("pixels have shape " + pixels.shapeString() + ", expected (B, 3, " + r + ", "
                    + r + ") with B >= 1");
        }
        if (pixels.dtype() != DType.F32) {
            throw new InvalidInputException("pixels have dtype " + pixels.dtype() + ", expected F32");
        }
        return pixels.device() == backend.device() ? pixels : backend.upload(pixels);
    }

    /**
     * Validates token ids on the host; returns {ids (B, T') I32, pooled position (B) I32} on the
     * backend. The pooled position is the config's text pool (the EOT = argmax of the ids, the first
     * or last position, or the first eos id). T' = T, or with {@code truncate} (and a causal tower
     * pooled at or before the EOT) the positions up to the batch's last pooled one.
     */
    private Tensor[] checkTokens(Tensor tokens, boolean truncate) {
        if (tokens.rank() != 2 || tokens.dim(0) == 0 || tokens.dim(1) == 0 || tokens.dim(1) > config.contextLength()) {
            throw new InvalidInputException("tokens have shape " + tokens.shapeString() + ", expected (B, T) with B >= 1"
                    + " and 1 <= T <= " + config.contextLength());
        }
        if (tokens.dtype() != DType.I32 && tokens.dtype() != DType.I64) {
            throw new InvalidInputException("tokens have dtype " + tokens.dtype() + ", expected I32 or I64");
        }
        Tensor host = backend.download(tokens);
        int b = tokens.dim(0);
        int t = tokens.dim(1);
        int[] ids = new int[b * t];
        int[] pooled = new int[b];
        int vocab = config.vocabSize();
        ClipConfig.TextPool pool = config.variant().textPool();
        int eosId = config.variant().textEosId();
        for (int i = 0; i < b; i++) {
            long best = Long.MIN_VALUE;
            int firstEos = -1;
            for (int j = 0; j < t; j++) {
                int k = i * t + j;
                long id = host.dtype() == DType.I32 ? host.i32()[host.offset() + k] : host.i64()[host.offset() + k];
                if (id < 0 || id >= vocab) {
                    throw new InvalidInputException("token id " + id + " at [" + i + ", " + j
                            + "] is outside the vocabulary [0, " + vocab + ")");
                }
                ids[k] = (int) id;
                if (id > best) {
                    best = id;
                    if (pool == ClipConfig.TextPool.ARGMAX) pooled[i] = j;
                }
                if (id == eosId && firstEos < 0) firstEos = j;
            }
            switch (pool) {
                case FIRST -> pooled[i] = 0;
                case LAST -> pooled[i] = t - 1;
                case EOS -> pooled[i] = Math.max(firstEos, 0); // as open_clip/transformers: position 0 without an eos
                default -> { }
            }
        }
        int keep = t;
        if (truncate && config.textTruncatable()) {
            keep = 0;
            for (int e : pooled) {
                keep = Math.max(keep, e + 1);
            }
        }
        int[] kept = ids;
        if (keep < t) {
            kept = new int[b * keep];
            for (int i = 0; i < b; i++) {
                System.arraycopy(ids, i * t, kept, i * keep, keep);
            }
        }
        return new Tensor[]{backend.upload(Tensor.of(kept, b, keep)), backend.upload(Tensor.of(pooled, b))};
    }

    private static void checkGradient(Tensor grad, Tensor features, String what) {
        if (!grad.sameShape(features) || grad.dtype() != DType.F32) {
            throw new IllegalArgumentException(what + " has shape " + grad.shapeString() + " " + grad.dtype()
                    + ", expected " + features.shapeString() + " F32");
        }
    }
}
