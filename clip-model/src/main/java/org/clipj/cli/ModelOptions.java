package org.clipj.cli;

import org.clipj.Clip;
import org.clipj.model.Precision;
import picocli.CommandLine.Option;

import java.nio.file.Path;

/** Options shared by the commands that load a model: --model, --arch, --vocab, --device, --precision, --batch. */
final class ModelOptions {
    @Option(names = "--model", required = true, paramLabel = "M",
            description = "Checkpoint file or folder (safetensors, torch.save .bin/.pt, TorchScript .pt; OpenAI, open_clip or Hugging Face naming).")
    Path model;

    @Option(names = "--arch", paramLabel = "NAME",
            description = "Architecture by name: open_clip's (ViT-B-32, ViT-H-14-quickgelu, RN50, ...: `clip info --arch-list`) or"
                    + " OpenAI's (ViT-B/32, ...). Default: open_clip_config.json or config.json beside the weights, the config"
                    + " in a clipj checkpoint, OpenAI's architecture for OpenAI's .pt files, else inferred with a warning.")
    String arch;

    @Option(names = "--vocab", paramLabel = "V",
            description = "BPE vocabulary (bpe_simple_vocab_16e6.txt.gz, or a folder with it or with vocab.json + merges.txt). Default: next to the model, then $CLIP_VOCAB.")
    Path vocab;

    @Option(names = "--device", paramLabel = "D", converter = DeviceName.class, description = DeviceName.DESCRIPTION)
    String device;

    @Option(names = "--precision", paramLabel = "P", converter = PrecisionName.class,
            description = "Precision: f32, bf16 or f16. On cuda bf16/f16 keep the GEMM weights and the transformer blocks' activations in 16 bits"
                    + " (F32 accumulation, F32 residual stream and features); on the cpu bf16 keeps the linear layers' weights in BF16"
                    + " (needs AVX512_BF16) and f16 is refused. Default: bf16 on cuda, f32 on cpu.")
    Precision precision;

    @Option(names = "--batch", defaultValue = "32", paramLabel = "N", description = "Images or texts per forward pass (default: ${DEFAULT-VALUE}).")
    int batch;

    Clip open() {
        return Clip.load(model, new Clip.Options(vocab, device, batch, precision, arch));
    }
}
