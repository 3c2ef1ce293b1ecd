package org.clipj.model;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import org.clipj.image.PreprocessConfig;
import org.clipj.io.Checkpoint;
import org.clipj.io.Checkpoints;
import org.clipj.runtime.InvalidInputException;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.stream.Stream;

/**
 * A checkpoint with the architecture and preprocessing that go with it, and where each came from.
 * The architecture comes, in this order, from: an explicit name ({@code --arch}); clipj's own config
 * in the checkpoint's metadata; the config beside the weights that belongs to them (OpenAI/open_clip
 * naming: {@code open_clip_config.json}; Hugging Face naming: a CLIPModel {@code config.json}: never
 * the other pair's); an OpenAI TorchScript archive (OpenAI's architecture by definition); else the
 * tensor shapes as openai/CLIP's build_model reads them, with one warning that names {@code --arch}.
 *
 * @param checkpoint     the weights
 * @param config         the architecture
 * @param configSource   where it came from ("arch ViT-B-32 (given)", "open_clip_config.json beside ...", ...)
 * @param preprocess     how images are prepared for it
 * @param zooMatches     open_clip names whose tensors have exactly these shapes
 * @param warnings       what was assumed (each also logged once by the caller)
 */
public record ResolvedModel(Checkpoint checkpoint, ClipConfig config, String configSource, PreprocessConfig preprocess,
                            List<String> zooMatches, List<String> warnings) {

    public static final String OPEN_CLIP_CONFIG = "open_clip_config.json";
    public static final String HF_CONFIG = "config.json";
    public static final String HF_PREPROCESSOR = "preprocessor_config.json";
    private static final List<String> OPEN_CLIP_WEIGHTS = List.of("open_clip_model.safetensors", "open_clip_pytorch_model.bin");
    private static final List<String> HF_WEIGHTS = List.of("model.safetensors", "pytorch_model.bin");
    private static final ObjectMapper JSON = new ObjectMapper();
    private static final String INFERRED = "the tensor shapes, read as openai/CLIP's build_model does (QuickGELU, heads of 64)";

    public ResolvedModel {
        zooMatches = List.copyOf(zooMatches);
        warnings = List.copyOf(warnings);
    }

    /**
     * Resolves a model file or folder (a Hugging Face hub cache folder {@code models--ORG--NAME} or one
     * of its {@code snapshots/REV} works offline too); {@code arch} (nullable) is an explicit
     * architecture name, OpenAI's (ViT-B/32) or open_clip's (ViT-B-32, ViT-H-14-quickgelu, ...).
     */
    public static ResolvedModel resolve(Path model, String arch) {
        Path weights = weightsFile(model);
        Path folder = weights.toAbsolutePath().getParent();
        Checkpoint ckpt = Checkpoints.load(weights);
        List<String> warnings = new ArrayList<>();
        ClipConfig config;
        String source;
        PreprocessConfig preprocess = null;
        Path openClipConfig = folder.resolve(OPEN_CLIP_CONFIG);
        Path hfConfig = folder.resolve(HF_CONFIG);
        boolean hfNaming = ckpt.naming() == Checkpoint.Naming.HUGGINGFACE;
        String metadataConfig = ckpt.metadata().get(ClipConfig.METADATA_KEY);
        if (arch != null && !arch.isBlank()) {
            config = ClipConfig.named(arch.strip());
            source = "arch " + arch.strip() + " (given)";
            if (ckpt.format() == Checkpoint.Format.TORCHSCRIPT
                    && config.variant().visionActivation() == ClipConfig.Activation.GELU) {
                warnings.add(weights + " is an OpenAI TorchScript archive, trained with QuickGELU, but the arch given, " + arch.strip() + ","
                        + " uses exact GELU: its embeddings will be slightly off (use the -quickgelu name)");
            }
        } else if (metadataConfig != null) {
            config = ClipConfig.fromJson(metadataConfig, weights.toString());
            source = "clipj config in " + weights.getFileName();
        } else if (!hfNaming && Files.isRegularFile(openClipConfig)) {
            JsonNode root = readJson(openClipConfig);
            JsonNode cfg = root.has("model_cfg") ? root.get("model_cfg") : root;
            String name = root.path("model_name").asText(folder.getFileName() == null ? "open_clip" : folder.getFileName().toString());
            config = OpenClipConfig.parse(name, cfg, openClipConfig.toString());
            source = OPEN_CLIP_CONFIG + " beside the weights (" + openClipConfig + ")";
            if (root.has("preprocess_cfg")) {
                preprocess = PreprocessConfig.fromOpenClip(root.get("preprocess_cfg"), config.imageResolution(),
                        "preprocess_cfg of " + openClipConfig);
            }
        } else if (hfNaming && Files.isRegularFile(hfConfig) && HuggingFaceConfig.isClip(readJson(hfConfig))) {
            config = HuggingFaceConfig.parse(folder.getFileName() == null ? "huggingface" : folder.getFileName().toString(),
                    readJson(hfConfig), hfConfig.toString());
            source = "Hugging Face " + HF_CONFIG + " beside the weights (" + hfConfig + ")";
        } else {
            config = inferred(ckpt);
            if (ckpt.format() == Checkpoint.Format.TORCHSCRIPT) {
                source = "OpenAI TorchScript archive (OpenAI's architecture, read from the tensor shapes)";
            } else {
                List<String> matches = OpenClipZoo.matching(ckpt.stored());
                source = INFERRED;
                warnings.add("no architecture config for " + weights + " (no arch given, no " + OPEN_CLIP_CONFIG + " or "
                        + HF_CONFIG + " beside it): assuming openai/CLIP's architecture (QuickGELU, heads of 64);"
                        + " open_clip/LAION weights need their arch (an open_clip model name)"
                        + (matches.isEmpty() ? "" : " (open_clip names matching these tensors: " + String.join(", ", matches) + ")"));
            }
        }
        checkTensors(config, source, ckpt, source.equals(INFERRED));
        if (preprocess == null) {
            preprocess = defaultPreprocess(config, hfNaming ? folder.resolve(HF_PREPROCESSOR) : null, arch);
            if (arch != null && !arch.isBlank() && OpenClipZoo.knows(arch.strip())) {
                warnings.add("no preprocess_cfg for arch " + arch.strip() + ": using " + preprocess.describe()
                        + "; some pretrained weights of this architecture were trained otherwise (DFN: resize_mode squash):"
                        + " put their " + OPEN_CLIP_CONFIG + " beside them to be exact");
            }
        }
        if (!config.hasClipTokenizer()) {
            warnings.add("the text tower of " + config.name() + " needs the " + config.variant().tokenizer()
                    + ", which clipj does not have: image embeddings work, texts are refused (token ids still work)");
        }
        return new ResolvedModel(ckpt, config, source, preprocess, OpenClipZoo.matching(ckpt.stored()), warnings);
    }

    /** openai/CLIP's build_model reading of the shapes, with an error that points at the arch option when it cannot. */
    private static ClipConfig inferred(Checkpoint ckpt) {
        try {
            return ClipConfig.infer(ckpt.stored());
        } catch (InvalidInputException e) {
            throw new InvalidInputException(ckpt.path() + ": " + e.getMessage() + "; if this is an open_clip model, give"
                    + " its arch (an open_clip model name) or put its " + OPEN_CLIP_CONFIG + " beside it", e);
        }
    }

    /** The tensors must be exactly the config's: a config that contradicts them is an error naming both. */
    private static void checkTensors(ClipConfig config, String source, Checkpoint ckpt, boolean inferred) {
        try {
            ClipModel.verifyTensors(ckpt.stored(), config);
        } catch (InvalidInputException e) {
            List<String> matches = OpenClipZoo.matching(ckpt.stored());
            throw new InvalidInputException(ckpt.path() + " does not fit the architecture " + config.name() + " (" + source
                    + "): " + e.getMessage() + (matches.isEmpty() ? "" : "; open_clip names matching these tensors: "
                    + String.join(", ", matches)) + (inferred ? "; for open_clip/LAION weights give their arch (an open_clip model name) or put"
                    + " their " + OPEN_CLIP_CONFIG + " beside them" : ""), e);
        }
    }

    private static PreprocessConfig defaultPreprocess(ClipConfig config, Path hfPreprocessor, String arch) {
        if (hfPreprocessor != null && Files.isRegularFile(hfPreprocessor)) {
            return PreprocessConfig.fromHuggingFace(readJson(hfPreprocessor), config.imageResolution(), hfPreprocessor.toString());
        }
        JsonNode zoo = arch == null ? null : OpenClipZoo.preprocess(arch.strip());
        if (zoo != null) {
            return PreprocessConfig.fromOpenClip(zoo, config.imageResolution(), "open_clip's default for " + arch.strip());
        }
        return PreprocessConfig.openai(config.imageResolution());
    }

    /**
     * The weights file of a path: a file is itself; a folder gives its open_clip pair's weights
     * (beside open_clip_config.json), else its Hugging Face pair's (beside config.json), else
     * {@link Checkpoints#resolve}; a hub cache folder resolves to its snapshot first.
     */
    static Path weightsFile(Path model) {
        if (!Files.isDirectory(model)) {
            return Checkpoints.resolve(model);
        }
        Path folder = snapshot(model);
        if (Files.isRegularFile(folder.resolve(OPEN_CLIP_CONFIG))) {
            for (String name : OPEN_CLIP_WEIGHTS) {
                if (Files.isRegularFile(folder.resolve(name))) return folder.resolve(name);
            }
        }
        if (Files.isRegularFile(folder.resolve(HF_CONFIG))) {
            for (String name : HF_WEIGHTS) {
                if (Files.isRegularFile(folder.resolve(name))) return folder.resolve(name);
            }
        }
        return Checkpoints.resolve(folder);
    }

    /** A Hugging Face hub cache repository folder (models--ORG--NAME) -> snapshots/REV (refs/main, or the only one). */
    private static Path snapshot(Path folder) {
        Path snapshots = folder.resolve("snapshots");
        if (!Files.isDirectory(snapshots)) {
            return folder;
        }
        Path ref = folder.resolve("refs").resolve("main");
        if (Files.isRegularFile(ref)) {
            try {
                Path rev = snapshots.resolve(Files.readString(ref).strip());
                if (Files.isDirectory(rev)) return rev;
            } catch (IOException e) {
                throw new InvalidInputException(ref + ": cannot read: " + e.getMessage(), e);
            }
        }
        List<Path> revs;
        try (Stream<Path> list = Files.list(snapshots)) {
            revs = list.filter(Files::isDirectory).sorted().toList();
        } catch (IOException e) {
            throw new InvalidInputException(snapshots + ": cannot list: " + e.getMessage(), e);
        }
        if (revs.size() != 1) {
            throw new InvalidInputException(folder + ": a Hugging Face cache folder with " + revs.size()
                    + " snapshots and no refs/main; pass one of " + revs);
        }
        return revs.getFirst();
    }

    private static JsonNode readJson(Path file) {
        try {
            JsonNode n = JSON.readTree(file.toFile());
            if (n == null || !n.isObject()) {
                throw new InvalidInputException(file + ": not a JSON object");
            }
            return n;
        } catch (IOException e) {
            throw new InvalidInputException(file + ": unreadable JSON: " + e.getMessage(), e);
        }
    }
}
