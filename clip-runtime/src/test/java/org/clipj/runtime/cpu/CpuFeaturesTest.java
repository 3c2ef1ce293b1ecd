package org.clipj.runtime.cpu;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.Test;

class CpuFeaturesTest {
    @Test
    void parsesCacheSizesAsSysfsAndCpuinfoWriteThem() {
        assertEquals(1L << 20, CpuFeatures.kib("1024K"));
        assertEquals(1L << 20, CpuFeatures.kib("1024 KB"));
        assertEquals(2L << 20, CpuFeatures.kib("2M"));
        assertEquals(-1, CpuFeatures.kib(""));
        assertEquals(-1, CpuFeatures.kib("large"));
    }

    @Test
    void tileFitsTheRegisterFileTheJvmUses() {
        CpuFeatures cpu = CpuFeatures.host();
        assertEquals(Vec.S.vectorBitSize(), cpu.vectorBits());
        // accumulators (MR x 2 vectors) + 2 B vectors + 1 broadcast within the architectural registers
        int registers = cpu.vectorRegisters32() ? 32 : 16;
        assertTrue(2 * Sgemm.MR + 3 <= registers, Sgemm.blocking() + " on " + cpu.describe());
        assertTrue(Sgemm.NC % (2 * Sgemm.L) == 0 && Sgemm.NC >= 8 * Sgemm.L, Sgemm.blocking());
        assertTrue(cpu.describe().contains(cpu.fmaDatapath()));
    }
}
