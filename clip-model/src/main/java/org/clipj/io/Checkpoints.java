package org.clipj.io;

import org.clipj.io.Checkpoint.Format;
import org.clipj.runtime.InvalidInputException;

import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Collections;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;

/**
 * Loads CLIP weights from any supported file: safetensors, a torch.save zip archive or a
 * TorchScript archive, told apart by content (not by extension), in OpenAI or Hugging Face naming.
 * The whole file is parsed and checked first (container, names, dtypes, shapes, every tensor's bytes
 * inside the file): a bad file fails here with an {@link InvalidInputException} naming it. The tensors
 * are read later, each when it is asked for ({@link StoredTensor}), so that a model built from the
 * checkpoint never holds the whole checkpoint in memory beside its own weights.
 */
public final class Checkpoints {
    /** Well-known weight file names in a model folder, in order of preference. */
    private static final List<String> FOLDER_FILES = List.of(
            "model.safetensors", "open_clip_model.safetensors", "open_clip_pytorch_model.bin", "pytorch_model.bin");
    private static final List<String> FOLDER_EXTENSIONS = List.of(".safetensors", ".pt", ".bin");

    private Checkpoints() {
    }

    /** Opens a checkpoint file, or the weights file of a model folder (see {@link #resolve}). */
    public static Checkpoint load(Path path) {
        Path file = resolve(path);
        try {
            Format format = detect(file);
            Map<String, StoredTensor> raw;
            Map<String, String> metadata = Map.of();
            if (format == Format.SAFETENSORS) {
                SafeTensors.Opened contents = SafeTensors.open(file, name -> !StateDictNames.isIgnored(name));
                raw = contents.tensors();
                metadata = Collections.unmodifiableMap(contents.metadata());
            } else {
                TorchArchive.Contents contents = TorchArchive.read(file, name -> !StateDictNames.isIgnored(name));
                raw = contents.tensors();
                format = contents.torchScript() ? Format.TORCHSCRIPT : Format.TORCH_ZIP;
            }
            if (raw.isEmpty()) {
                throw new InvalidInputException(file + ": holds no tensors");
            }
            String unsupported = StateDictNames.unsupportedTower(raw.keySet());
            if (unsupported != null) {
                throw new InvalidInputException(file + ": the model uses " + unsupported + ", which clipj does not support yet");
            }
            Checkpoint.Naming naming = StateDictNames.detect(raw.keySet());
            Map<String, StoredTensor> tensors = StateDictNames.toOpenAi(raw, file.toString());
            return new Checkpoint(file, format, naming, Collections.unmodifiableMap(tensors), metadata);
        } catch (InvalidInputException e) {
            throw e;
        } catch (RuntimeException e) {
            throw new InvalidInputException(file + ": malformed checkpoint: " + e, e);
        }
    }

    /**
     * A file is itself; a folder gives, in order: model.safetensors, open_clip_model.safetensors,
     * open_clip_pytorch_model.bin, pytorch_model.bin, else its only *.safetensors, *.pt or *.bin file.
     */
    public static Path resolve(Path path) {
        if (!Files.exists(path)) {
            throw new InvalidInputException(path + ": no such file or folder");
        }
        if (!Files.isDirectory(path)) {
            return path;
        }
        for (String name : FOLDER_FILES) {
            Path candidate = path.resolve(name);
            if (Files.isRegularFile(candidate)) {
                return candidate;
            }
        }
        for (String extension : FOLDER_EXTENSIONS) {
            List<Path> found;
            try (Stream<Path> files = Files.list(path)) {
                found = files.filter(f -> Files.isRegularFile(f) && f.getFileName().toString().endsWith(extension)).sorted().toList();
            } catch (IOException e) {
                throw new InvalidInputException(path + ": cannot list the folder: " + e.getMessage(), e);
            }
            if (found.size() == 1) {
                return found.getFirst();
            }
            if (found.size() > 1) {
                throw new InvalidInputException(path + ": several *" + extension + " files " + found.stream().map(p -> p.getFileName().toString()).toList()
                        + "; name the one to load");
            }
        }
        throw new InvalidInputException(path + ": no checkpoint in this folder (looked for " + FOLDER_FILES
                + " and *.safetensors, *.pt, *.bin)");
    }

    /** The container format, from the first bytes: zip magic or a plausible safetensors header. */
    static Format detect(Path file) {
        byte[] head = new byte[9];
        long size;
        int n;
        try (InputStream in = Files.newInputStream(file)) {
            size = Files.size(file);
            n = in.readNBytes(head, 0, head.length);
        } catch (IOException e) {
            throw new InvalidInputException(file + ": cannot read: " + e.getMessage(), e);
        }
        if (n >= 4 && head[0] == 'P' && head[1] == 'K' && head[2] == 3 && head[3] == 4) {
            return Format.TORCH_ZIP; // TorchArchive tells TorchScript apart from its entries
        }
        if (n == 9 && head[8] == '{') {
            return Format.SAFETENSORS; // 8-byte header length, then the JSON header; SafeTensors validates the rest
        }
        if (n >= 2 && (head[0] & 0xff) == 0x80 && head[1] >= 2 && head[1] <= 5) {
            throw new InvalidInputException(file + ": a legacy (pre-1.6, non-zip) torch.save file, which is not supported;"
                    + " re-save it with a recent PyTorch or convert it to safetensors");
        }
        throw new InvalidInputException(file + ": not a checkpoint (neither safetensors nor a PyTorch zip archive"
                + (size < 9 ? "; only " + size + " bytes" : "") + ")");
    }
}
