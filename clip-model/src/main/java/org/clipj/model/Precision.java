package org.clipj.model;

import org.clipj.runtime.Backend;
import org.clipj.runtime.DType;
import org.clipj.runtime.Device;
import org.clipj.runtime.InvalidInputException;
import org.clipj.runtime.cpu.Bf16Gemm;

import java.util.Locale;

/**
 * The inference precision of a model: what its weights and activations are stored in.
 * <ul>
 * <li>F32: everything F32.</li>
 * <li>BF16/F16 on CUDA: the weights of the linear layers and convolutions get a 16-bit copy on the
 * device at load (as do the in_proj and c_fc biases, added in the GEMM's epilogue), and the
 * transformer blocks keep their activations in that type between kernels: layernorm reads the F32
 * residual stream and writes 16 bits, qkv, the attention output and the MLP hidden layer are 16-bit,
 * every GEMM and kernel accumulates in F32, attention runs the tensor-core kernel (BF16), and the
 * out_proj/c_proj GEMMs add the residual and write it F32. The residual stream, embeddings, ln_pre,
 * ln_post/ln_final, the final projections, a ResNet's activations and the features stay F32; a
 * ResNet's convolutions and attention-pool projections multiply 16-bit weights by their F32 input
 * cast to 16 bits.</li>
 * <li>BF16 on the CPU (a machine with AVX512_BF16): the weights of the linear layers and the ViT patch
 * embedding are BF16, their F32 input is cast to BF16 and they accumulate in F32 with an F32 output,
 * through the native kernels of {@link Bf16Gemm}; activations, ResNet convolutions and everything else
 * stay F32.</li>
 * </ul>
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
