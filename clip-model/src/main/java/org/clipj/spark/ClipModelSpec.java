package org.clipj.spark;

import org.clipj.Clip;
import org.clipj.model.Precision;
import org.clipj.runtime.Backends;
import org.clipj.runtime.InvalidInputException;

import java.io.Serializable;

/**
 * What each executor loads: a checkpoint and the options of {@link Clip.Options}, as plain strings so
 * the spec travels to executors and keys the one {@link Clip} each executor JVM shares.
 *
 * @param model     checkpoint path as every executor sees it (a shared filesystem), or the file name of a
 *                  file shipped with {@code --files} / {@code SparkContext.addFile} (found through SparkFiles)
 * @param vocab     BPE vocabulary, resolved the same way; null: next to the checkpoint, then $CLIP_VOCAB
 * @param device    cpu | cuda | auto; null: each executor's clip.backend, else its CLIP_BACKEND, else auto
 * @param batch     images or texts per forward pass
 * @param precision f32 | bf16 | f16; null: the device's default
 */
public record ClipModelSpec(String model, String vocab, String device, int batch, String precision, String arch)
        implements Serializable {
    public ClipModelSpec {
        if (model == null || model.isBlank()) {
            throw new InvalidInputException("no model: give the checkpoint path (or the name of a file shipped with --files)");
        }
        if (batch < 1) {
            throw new InvalidInputException("batch size must be >= 1, got " + batch);
        }
        if (precision != null) {
            Precision.parse(precision);
        }
        if (device != null) {
            new Backends.Request(device, "ClipModelSpec device").checkedName();
        }
    }

    /** The architecture from the checkpoint (see Clip.Options#arch). */
    public ClipModelSpec(String model, String vocab, String device, int batch, String precision) {
        this(model, vocab, device, batch, precision, null);
    }

    public static ClipModelSpec of(String model) {
        return new ClipModelSpec(model, null, null, 32, null, null);
    }

    /** The architecture by name (open_clip's or OpenAI's), as --arch. */
    public ClipModelSpec withArch(String a) {
        return new ClipModelSpec(model, vocab, device, batch, precision, a);
    }

    public ClipModelSpec withVocab(String v) {
        return new ClipModelSpec(model, v, device, batch, precision, arch);
    }

    public ClipModelSpec withDevice(String d) {
        return new ClipModelSpec(model, vocab, d, batch, precision, arch);
    }

    public ClipModelSpec withBatch(int b) {
        return new ClipModelSpec(model, vocab, device, b, precision, arch);
    }

    public ClipModelSpec withPrecision(String p) {
        return new ClipModelSpec(model, vocab, device, batch, p, arch);
    }
}
