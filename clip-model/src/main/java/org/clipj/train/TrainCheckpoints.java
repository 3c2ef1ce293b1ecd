package org.clipj.train;

import com.fasterxml.jackson.core.type.TypeReference;
import com.fasterxml.jackson.databind.ObjectMapper;
import org.clipj.io.AtomicFiles;
import org.clipj.io.SafeTensors;
import org.clipj.io.WriteFailedException;
import org.clipj.model.ClipConfig;
import org.clipj.runtime.InvalidInputException;
import org.clipj.runtime.Tensor;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;

/**
 * Training checkpoints under {@code OUT/checkpoints/step-NNNNNNNN/}: model.safetensors (OpenAI
 * naming, loadable by {@code clip embed}), state.safetensors (AdamW moments as tensors, the
 * training state as JSON metadata) and the BPE vocab. A checkpoint is written into a hidden
 * partial folder and renamed into place only when complete, so a SIGKILL at any moment leaves
 * the previous checkpoints intact and never a half-written one under a step name.
 */
public final class TrainCheckpoints {
    public static final String MODEL_FILE = "model.safetensors";
    public static final String STATE_FILE = "state.safetensors";
    public static final String VOCAB_FILE = "bpe.txt.gz";
    private static final String STATE_KEY = "clipj.train_state";
    private static final Pattern STEP_DIR = Pattern.compile("step-(\\d{8})");
    private static final ObjectMapper JSON = new ObjectMapper();

    /**
     * Everything besides tensors that resume needs: the optimizer step, the data stream position
     * (the random streams are pure functions of seed and position, so this is also the RNG state),
     * images skipped so far, and the run's options (validated on resume); with mixed precision also the
     * AdamW step (behind {@code step} by the steps F16 loss scaling skipped) and the loss scaler (null
     * without F16).
     */
    public record TrainState(int step, long dataPosition, long skipped, Map<String, Object> run, int optimizerStep,
                             LossScaler.State lossScale) {
        /** A state without skipped optimizer steps or loss scaling. */
        public TrainState(int step, long dataPosition, long skipped, Map<String, Object> run) {
            this(step, dataPosition, skipped, run, step, null);
        }
    }

    /** A checkpoint read back. */
    public record Loaded(Path dir, TrainState state, Map<String, Tensor> model, ClipConfig config,
                         Map<String, Tensor> optimizer, Path vocab) {
    }

    private TrainCheckpoints() {
    }

    public static Path stepDir(Path checkpointsDir, int step) {
        return checkpointsDir.resolve(String.format("step-%08d", step));
    }

    /**
     * Writes one checkpoint atomically and keeps only the newest {@code keep} complete ones; the model's
     * config (nullable) goes into the weights' metadata so the checkpoint loads with its architecture.
     * On a failure the partial folder is removed and the earlier checkpoints stay as they were; a full
     * disk or an unwritable folder is a {@link org.clipj.io.WriteFailedException}.
     */
    public static Path save(Path checkpointsDir, TrainState state, Map<String, Tensor> model, ClipConfig config,
                            Map<String, Tensor> optimizer, Path vocab, int keep) {
        Path target = stepDir(checkpointsDir, state.step());
        Path partial = checkpointsDir.resolve("." + target.getFileName() + AtomicFiles.PARTIAL_SUFFIX);
        Map<String, String> meta = new LinkedHashMap<>();
        try {
            meta.put(STATE_KEY, JSON.writeValueAsString(toJson(state)));
        } catch (IOException e) {
            throw new IllegalStateException("cannot encode the training state", e);
        }
        boolean complete = false;
        try {
            Files.createDirectories(checkpointsDir);
            AtomicFiles.createPartialDirectory(partial);
            SafeTensors.write(partial.resolve(MODEL_FILE), model, modelMetadata(config));
            SafeTensors.write(partial.resolve(STATE_FILE), optimizer, meta);
            if (vocab != null) {
                AtomicFiles.copy(vocab, partial.resolve(VOCAB_FILE));
            }
            AtomicFiles.syncDirectory(partial);
            AtomicFiles.commitDirectory(partial, target);
            complete = true;
            AtomicFiles.syncDirectory(checkpointsDir);
            List<Path> all = complete(checkpointsDir);
            for (int i = 0; i < all.size() - keep; i++) {
                AtomicFiles.deleteTree(all.get(i));
            }
            return target;
        } catch (IOException e) {
            AtomicFiles.abandonDirectory(partial);
            throw AtomicFiles.failure(complete ? checkpointsDir : target, bytesNeeded(model, config, optimizer, meta, vocab), e);
        } catch (WriteFailedException e) {
            // name the checkpoint and its whole size, not the partial file inside it
            AtomicFiles.abandonDirectory(partial);
            throw e.getCause() instanceof IOException io
                    ? AtomicFiles.failure(target, bytesNeeded(model, config, optimizer, meta, vocab), io) : e;
        } finally {
            if (!complete) {
                AtomicFiles.abandonDirectory(partial); // a leftover (folder vanished) is removed as stale on the next start
            }
        }
    }

    /** Bytes one checkpoint of these tensors takes on disk (both safetensors files and the vocab). */
    public static long bytesNeeded(Map<String, Tensor> model, ClipConfig config, Map<String, Tensor> optimizer, Path vocab) {
        return bytesNeeded(model, config, optimizer, Map.of(STATE_KEY, "{}".repeat(512)), vocab);
    }

    private static long bytesNeeded(Map<String, Tensor> model, ClipConfig config, Map<String, Tensor> optimizer,
                                    Map<String, String> meta, Path vocab) {
        long vocabBytes = 0;
        try {
            vocabBytes = vocab == null ? 0 : Files.size(vocab);
        } catch (IOException ignored) {
            // the copy itself reports a missing vocab
        }
        return SafeTensors.fileSize(model, modelMetadata(config)) + SafeTensors.fileSize(optimizer, meta) + vocabBytes;
    }

    private static Map<String, Object> toJson(TrainState s) {
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("format", "clipj-train-state-1");
        m.put("step", s.step());
        m.put("data_position", s.dataPosition());
        m.put("skipped", s.skipped());
        m.put("run", s.run());
        if (s.optimizerStep() != s.step()) {
            m.put("optimizer_step", s.optimizerStep()); // behind step by the steps loss scaling skipped
        }
        if (s.lossScale() != null) {
            m.put("loss_scale", s.lossScale().scale());
            m.put("loss_scale_good_steps", s.lossScale().goodSteps());
        }
        return m;
    }

    /** Complete checkpoint folders (both safetensors present), oldest first. */
    public static List<Path> complete(Path checkpointsDir) throws IOException {
        if (!Files.isDirectory(checkpointsDir)) {
            return List.of();
        }
        List<Path> out = new ArrayList<>();
        try (Stream<Path> s = Files.list(checkpointsDir)) {
            for (Path p : s.toList()) {
                if (STEP_DIR.matcher(p.getFileName().toString()).matches()
                        && Files.isRegularFile(p.resolve(MODEL_FILE)) && Files.isRegularFile(p.resolve(STATE_FILE))) {
                    out.add(p);
                }
            }
        }
        out.sort(Comparator.comparing(p -> p.getFileName().toString()));
        return out;
    }

    /**
     * The checkpoint folder that {@code --resume DIR} means: DIR itself when it holds a state file,
     * else the newest complete checkpoint in DIR/checkpoints or in DIR.
     */
    public static Path resolve(Path dir) {
        if (Files.isRegularFile(dir.resolve(STATE_FILE))) {
            return dir;
        }
        try {
            List<Path> found = complete(dir.resolve("checkpoints"));
            if (found.isEmpty()) {
                found = complete(dir);
            }
            if (found.isEmpty()) {
                throw new InvalidInputException("--resume " + dir + ": no complete checkpoint (step-NNNNNNNN/ with "
                        + MODEL_FILE + " and " + STATE_FILE + ") found there or in its checkpoints/ folder");
            }
            return found.getLast();
        } catch (IOException e) {
            throw new InvalidInputException("--resume " + dir + ": cannot list: " + e.getMessage(), e);
        }
    }

    /** Reads a checkpoint folder written by {@link #save}. */
    public static Loaded load(Path dir) {
        SafeTensors.Contents state = SafeTensors.readContents(dir.resolve(STATE_FILE));
        String json = state.metadata().get(STATE_KEY);
        if (json == null) {
            throw new InvalidInputException(dir.resolve(STATE_FILE) + ": not a clipj training state (no " + STATE_KEY + " metadata)");
        }
        Map<String, Object> m;
        try {
            m = JSON.readValue(json, new TypeReference<>() {
            });
        } catch (IOException e) {
            throw new InvalidInputException(dir.resolve(STATE_FILE) + ": unreadable training state JSON: " + e.getMessage(), e);
        }
        if (!"clipj-train-state-1".equals(m.get("format")) || !(m.get("step") instanceof Number)
                || !(m.get("data_position") instanceof Number) || !(m.get("run") instanceof Map)) {
            throw new InvalidInputException(dir.resolve(STATE_FILE) + ": training state lacks format/step/data_position/run");
        }
        @SuppressWarnings("unchecked")
        Map<String, Object> run = (Map<String, Object>) m.get("run");
        int step = ((Number) m.get("step")).intValue();
        LossScaler.State lossScale = null;
        if (m.containsKey("loss_scale")) {
            if (!(m.get("loss_scale") instanceof Number scale) || !(m.get("loss_scale_good_steps") instanceof Number good)) {
                throw new InvalidInputException(dir.resolve(STATE_FILE) + ": training state has loss_scale " + m.get("loss_scale")
                        + " with loss_scale_good_steps " + m.get("loss_scale_good_steps") + " (expected two numbers)");
            }
            lossScale = new LossScaler.State(scale.floatValue(), good.intValue());
        }
        TrainState s = new TrainState(step, ((Number) m.get("data_position")).longValue(),
                m.get("skipped") instanceof Number n ? n.longValue() : 0, run,
                m.get("optimizer_step") instanceof Number o ? o.intValue() : step, lossScale);
        Path vocab = dir.resolve(VOCAB_FILE);
        SafeTensors.Contents model = SafeTensors.readContents(dir.resolve(MODEL_FILE));
        String config = model.metadata().get(ClipConfig.METADATA_KEY);
        return new Loaded(dir, s, model.tensors(),
                config == null ? null : ClipConfig.fromJson(config, dir.resolve(MODEL_FILE).toString()),
                state.tensors(), Files.isRegularFile(vocab) ? vocab : null);
    }

    /** safetensors metadata of model weights clipj writes: the torch format marker and the full config. */
    public static Map<String, String> modelMetadata(ClipConfig config) {
        Map<String, String> meta = new LinkedHashMap<>();
        meta.put("format", "pt");
        if (config != null) meta.put(ClipConfig.METADATA_KEY, config.toJson());
        return meta;
    }

    /** The step number of a checkpoint folder name, or -1. */
    public static int stepOf(Path dir) {
        Matcher m = STEP_DIR.matcher(dir.getFileName().toString());
        return m.matches() ? Integer.parseInt(m.group(1)) : -1;
    }
}
