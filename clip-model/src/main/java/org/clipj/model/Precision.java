package org.clipj.model;

import org.clipj.runtime.Backend;
import org.clipj.runtime.DType;
import org.clipj.runtime.Device;
import org.clipj.runtime.InvalidInputException;

import java.util.Locale;

/**
 * The inference precision of a model's GEMM weights. F32: everything in F32. BF16/F16 (CUDA only):
 * the weights of the linear layers and convolutions get a 16-bit copy on the device at load, each
 * of those GEMMs casts its F32 input to the same type and accumulates in F32 with an F32 output;
 * layernorm, softmax, attention, residuals, embeddings and the final projections stay F32.
 */
public enum Precision {
    F32(DType.F32), BF16(DType.BF16), F16(DType.F16);

    private final DType dtype;

    Precision(DType dtype) {
        this.dtype = dtype;
    }

    /** The dtype of the GEMM weights. */
    public DType dtype() {
        return dtype;
    }

    /** "f32", "bf16" or "f16" (any case); anything else is an error naming the value. */
    public static Precision parse(String name) {
        for (Precision p : values()) {
            if (p.name().equalsIgnoreCase(name.trim())) return p;
        }
        throw new InvalidInputException("unknown precision '" + name + "': expected f32, bf16 or f16");
    }

    /** The default for a backend: BF16 on CUDA, F32 on the CPU. */
    public static Precision defaultFor(Backend backend) {
        return backend.device() == Device.CUDA ? BF16 : F32;
    }

    /** Throws when this precision cannot run on the backend (the CPU backend computes in F32 only). */
    public void requireSupportedBy(Backend backend) {
        if (this != F32 && backend.device() == Device.CPU) {
            throw new InvalidInputException("precision " + this.name().toLowerCase(Locale.ROOT) + " on the CPU backend:"
                    + " it computes in F32 only; use f32, or the CUDA backend for bf16/f16");
        }
    }
}
