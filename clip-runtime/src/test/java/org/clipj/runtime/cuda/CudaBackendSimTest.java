package org.clipj.runtime.cuda;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import org.clipj.kernels.Kernels;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * Every kernel and CudaBackend op on the simulator binding: the real .cu sources compiled for the host
 * and run with one fiber per CUDA thread. Runs in every build; skipped (with the reason) only when the
 * build had no g++ to compile the simulator library.
 */
class CudaBackendSimTest extends CudaParityChecks {
    @BeforeAll
    static void open() {
        assumeTrue(Kernels.simLibrary().isPresent(), "simulator library not built: " + Kernels.simLibraryUnavailableReason());
        cuda = CudaBackend.open("sim");
    }

    @Test
    void attentionKeepsAWholeHeadInSharedMemoryWhereItFits() {
        // The simulator reports sm_90's 227 KiB opt-in: at T = 257 (ViT-H/g/bigG/e at 224 px / 14) a whole
        // head fits up to hd 104 in F32 (216 KiB forward, 223 KiB backward) and at every width in BF16.
        for (int hd : new int[] {64, 80, 88, 104}) {
            assertEquals(257, cuda.cx.attention.keyTile("attention_forward", hd, 257), "forward hd " + hd);
            assertEquals(257, cuda.cx.attention.keyTile("attention_backward", hd, 257), "backward hd " + hd);
            assertEquals(257, cuda.cx.attention.keyTile("attention_backward_dkdv", hd, 257), "backward dK/dV hd " + hd);
        }
        assertEquals(64, cuda.cx.attention.keyTile("attention_forward", 112, 257));
        assertEquals(64, cuda.cx.attention.keyTile("attention_backward", 112, 257));
        assertEquals(64, cuda.cx.attention.keyTile("attention_backward_dkdv", 112, 257));
        for (int hd : new int[] {64, 80, 88, 104, 112, 128}) {
            assertEquals(257, cuda.cx.attention.keyTile("attention_forward_mma_bf16", hd, 257), "mma hd " + hd);
            assertEquals(257, cuda.cx.attention.keyTile("attention_backward_dkdv_mma_bf16", hd, 257), "mma dK/dV hd " + hd);
        }
        assertEquals(231_248, AttentionKernels.sharedBytes("attention_backward_dkdv", 104, 257));
        assertEquals(132_736, AttentionKernels.sharedBytes("attention_backward_dkdv_mma_bf16", 112, 257));
        assertEquals(221_508, AttentionKernels.sharedBytes("attention_forward", 104, 257));
        assertEquals(228_164, AttentionKernels.sharedBytes("attention_backward", 104, 257));
        assertEquals(130_560, AttentionKernels.sharedBytes("attention_forward_mma_bf16", 112, 257));
    }
}
