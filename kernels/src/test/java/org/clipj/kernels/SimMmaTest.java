package org.clipj.kernels;

import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_SHORT;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;

import org.clipj.cuda.CudaException;
import org.clipj.cuda.KernelArgs;
import org.clipj.cuda.SimCudaDriver;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * clip_mma.cuh's ldmatrix and cp.async emulations (kernels/sim/test/sim_mma.cu) against the PTX ISA's fragment
 * layout, written out here as scalar code: for matrix i, lane l = 4 group + quad receives
 * M_i[group][2 quad, 2 quad + 1] (ldmatrix.x4) or M_i[2 quad, 2 quad + 1][group] (.trans), where row j of M_i is
 * the 8 elements at the address lane 8 i + j gave; the lower index sits in the low 16 bits.
 */
class SimMmaTest {
    private static final int ROWS = 16, STRIDE = 24;
    private static SimCudaDriver driver;
    private static long module;
    private static final Arena ARENA = Arena.ofShared();

    @BeforeAll
    static void open() {
        driver = SimTestLibrary.open();
        module = driver.moduleLoadData(new byte[0]);
    }

    @AfterAll
    static void close() {
        if (driver != null) driver.close();
    }

    private static int value(int row, int col) {
        return row * 256 + col;
    }

    private static int[] launch(int shift) {
        MemorySegment host = ARENA.allocate(JAVA_SHORT, ROWS * STRIDE);
        for (int r = 0; r < ROWS; r++)
            for (int c = 0; c < STRIDE; c++) host.setAtIndex(JAVA_SHORT, r * STRIDE + c, (short) value(r, c));
        long tile = driver.memAlloc(ROWS * STRIDE * 2L, "tile"), out = driver.memAlloc(32 * 8 * 4L, "out");
        driver.memcpyHtoD(tile, host, ROWS * STRIDE * 2L, 0, "upload");
        driver.launchKernel(driver.moduleGetFunction(module, "mma_ldmatrix_layout"), 1, 1, 1, 32, 1, 1, ROWS * STRIDE * 2, 0,
                new KernelArgs(4).ptr(out).ptr(tile).i32(shift));
        MemorySegment result = ARENA.allocate(JAVA_INT, 32 * 8);
        driver.memcpyDtoH(result, out, 32 * 8 * 4L, 0, "download");
        return result.toArray(JAVA_INT);
    }

    @Test
    void ldmatrixFragmentsFollowThePtxLayout() {
        int[] out = launch(0);
        for (int lane = 0; lane < 32; lane++) {
            int group = lane / 4, quad = lane % 4;
            for (int i = 0; i < 4; i++) {
                // row j of matrix i: the address of lane 8 i + j, i.e. row (8 i + j) % 16, column 8 ((8 i + j) / 16)
                int giver = 8 * i + group;
                int expected = value(giver % 16, 8 * (giver / 16) + 2 * quad) | value(giver % 16, 8 * (giver / 16) + 2 * quad + 1) << 16;
                assertEquals(expected, out[lane * 8 + i], "ldmatrix_x4 lane " + lane + " matrix " + i);
                int lo = 8 * i + 2 * quad, hi = lo + 1;
                int expectedTrans = value(lo % 16, 8 * (lo / 16) + group) | value(hi % 16, 8 * (hi / 16) + group) << 16;
                assertEquals(expectedTrans, out[lane * 8 + 4 + i], "ldmatrix_x4_trans lane " + lane + " matrix " + i);
            }
        }
    }

    @Test
    void misalignedRowAddressTraps() {
        CudaException e = assertThrows(CudaException.class, () -> launch(1));
        assertTrue(e.getMessage().contains("ldmatrix: row address not 16-byte aligned"), e.getMessage());
    }
}
