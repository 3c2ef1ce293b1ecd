package org.clipj.bench;

import org.clipj.runtime.cpu.CpuFeatures;
import org.clipj.runtime.cpu.Sgemm;

/**
 * Prints what scripts/bench records with every run, one JSON object: the CPU model, the vector
 * width the JVM uses, the FMA datapath and pipe width (from which the script computes the peak),
 * AVX512_BF16, the L2 size, and the GEMM blocking clipj picked for it.
 */
public final class MachineInfo {
    private MachineInfo() {}

    public static void main(String[] args) {
        CpuFeatures cpu = CpuFeatures.host();
        System.out.println("{\"cpu_model\": " + quote(cpu.model()) + ", \"vector_bits\": " + cpu.vectorBits()
                + ", \"fma_datapath\": " + quote(cpu.fmaDatapath()) + ", \"fma_pipe_bits\": " + cpu.fmaPipeBits()
                + ", \"avx512_bf16\": " + cpu.flags().contains("avx512_bf16") + ", \"l2_kib\": " + (cpu.l2Bytes() >> 10)
                + ", \"blocking\": " + quote(Sgemm.blocking()) + "}");
    }

    private static String quote(String s) {
        return "\"" + s.replace("\\", "\\\\").replace("\"", "\\\"") + "\"";
    }
}
