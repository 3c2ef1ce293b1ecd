package org.clipj.model;

import org.clipj.runtime.Backend;
import org.clipj.runtime.DType;
import org.clipj.runtime.Device;
import org.clipj.runtime.InvalidInputException;
import org.clipj.runtime.cpu.Bf16Gemm;

import java.util.Locale;

/**
 * The inference precision of a model's GEMM weights. F32: everything in F32. BF16/F16 (CUDA): the
 * weights of the linear layers and convolutions get a 16-bit copy on the device at load, each of
 * those GEMMs casts its F32 input to the same type and accumulates in F32 with an F32 output;
 * layernorm, softmax, attention, residuals, embeddings and the final projections stay F32. BF16 on the
 * CPU (a machine with AVX512_BF16): the same for the linear layers and the ViT patch embedding, through
 * the native kernels of {@link Bf16Gemm}; ResNet convolutions stay F32 there.
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

    /**
     * Throws when this precision cannot run on the backend: F16 on the CPU, and BF16 on a CPU without
     * AVX512_BF16 or without the packaged native library (the error says which).
     */
    public void requireSupportedBy(Backend backend) {
        if (this == BF16 && backend.device() == Device.CPU) {
            String reason = Bf16Gemm.unavailableReason();
            if (reason != null) {
                throw new InvalidInputException("precision bf16 on the CPU backend: " + reason
                        + "; use f32 (the CPU's default), or the CUDA backend");
            }
            return;
        }
        if (this != F32 && backend.device() == Device.CPU) {
            throw new InvalidInputException("precision " + this.name().toLowerCase(Locale.ROOT) + " on the CPU backend:"
                    + " it computes in F32 and BF16 only; use f32 or bf16, or the CUDA backend for f16");
        }
    }
}
