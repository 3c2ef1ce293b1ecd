package org.clipj.runtime.cpu;

import static org.clipj.runtime.cpu.OpTesting.FAST;
import static org.clipj.runtime.cpu.OpTesting.SCALAR;
import static org.clipj.runtime.cpu.OpTesting.WIDTHS;
import static org.clipj.runtime.cpu.OpTesting.assertClose;
import static org.clipj.runtime.cpu.OpTesting.random;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Arrays;
import java.util.SplittableRandom;

import org.clipj.runtime.Backend;
import org.clipj.runtime.DType;
import org.clipj.runtime.Tensor;
import org.junit.jupiter.api.Test;

/** The embedding family: embedding gather / scatter-add and per-batch row gather. */
class EmbeddingOpsTest {

    @Test
    void embeddingFastMatchesScalarWithRepeatedIds() {
        SplittableRandom rng = new SplittableRandom(1);
        int vocab = 300;
        for (int tokens : new int[] {1, 7, 77, 257}) {
            for (int c : WIDTHS) {
                int[] idArray = new int[2 * tokens];
                for (int i = 0; i < idArray.length; i++) idArray[i] = rng.nextInt(i % 3 == 0 ? 5 : vocab); // many repeats
                Tensor ids = Tensor.of(idArray, 2, tokens), table = random(rng, 1f, vocab, c), g = random(rng, 1f, 2, tokens, c);
                Tensor[] r = new Tensor[4];
                int n = 0;
                for (Backend be : new Backend[] {SCALAR, FAST}) {
                    Tensor out = Tensor.zeros(DType.F32, 2, tokens, c), dt = random(new SplittableRandom(2), 1f, vocab, c);
                    be.embeddingForward(out, ids, table);
                    be.embeddingBackward(dt, g, ids);
                    r[n++] = out;
                    r[n++] = dt;
                }
                assertClose("embedding out", r[0], r[2], 0, 0);
                assertClose("embedding dtable", r[1], r[3], 1e-5, 1e-5);
                int last = idArray[idArray.length - 1];
                assertArrayEquals(Arrays.copyOfRange(table.f32(), last * c, last * c + c),
                        Arrays.copyOfRange(r[0].f32(), (2 * tokens - 1) * c, 2 * tokens * c));
            }
        }
    }

    @Test
    void embeddingBackwardSumsRepeatedRows() {
        Tensor ids = Tensor.of(new int[] {2, 0, 2}, 3), g = Tensor.of(new float[] {1, 2, 3, 4, 5, 6}, 3, 2);
        for (Backend be : new Backend[] {SCALAR, FAST}) {
            Tensor dt = Tensor.zeros(DType.F32, 3, 2);
            be.embeddingBackward(dt, g, ids);
            assertArrayEquals(new float[] {3, 4, 0, 0, 6, 8}, dt.f32());
        }
    }

    @Test
    void outOfRangeIdIsRejectedBeforeWriting() {
        Tensor table = Tensor.zeros(DType.F32, 4, 3), out = Tensor.zeros(DType.F32, 3, 3);
        Arrays.fill(out.f32(), 7f);
        for (Backend be : new Backend[] {SCALAR, FAST}) {
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                    () -> be.embeddingForward(out, Tensor.of(new int[] {0, 1, 4}, 3), table));
            assertTrue(e.getMessage().contains("embeddingForward") && e.getMessage().contains("4"), e.getMessage());
            assertEquals(7f, out.f32()[0]);
            assertThrows(IllegalArgumentException.class, () -> be.embeddingForward(out, Tensor.of(new int[] {0, -1, 2}, 3), table));
            assertThrows(IllegalArgumentException.class, () -> be.embeddingForward(out, Tensor.of(new long[] {0, 1, 2}, 3), table));
        }
    }

    @Test
    void gatherRowsForwardAndBackward() {
        SplittableRandom rng = new SplittableRandom(3);
        Tensor x = random(rng, 1f, 3, 77, 64), index = Tensor.of(new int[] {76, 0, 12}, 3), g = random(rng, 1f, 3, 64);
        for (Backend be : new Backend[] {SCALAR, FAST}) {
            Tensor out = Tensor.zeros(DType.F32, 3, 64);
            be.gatherRowsForward(out, x, index);
            assertArrayEquals(Arrays.copyOfRange(x.f32(), (2 * 77 + 12) * 64, (2 * 77 + 13) * 64), Arrays.copyOfRange(out.f32(), 128, 192));
            Tensor dx = Tensor.zeros(DType.F32, 3, 77, 64);
            be.gatherRowsBackward(dx, g, index);
            be.gatherRowsBackward(dx, g, index);
            assertEquals(2 * g.f32()[5], dx.f32()[76 * 64 + 5]);
            assertEquals(2 * g.f32()[64 + 9], dx.f32()[77 * 64 + 9]);
            assertEquals(0f, dx.f32()[77 * 64 + 64 + 9]);
            assertThrows(IllegalArgumentException.class, () -> be.gatherRowsForward(out, x, Tensor.of(new int[] {1, 77, 0}, 3)));
        }
    }
}
