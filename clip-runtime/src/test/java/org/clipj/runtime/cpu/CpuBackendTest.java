package org.clipj.runtime.cpu;

import static org.clipj.runtime.cpu.OpTesting.FAST;
import static org.clipj.runtime.cpu.OpTesting.assertClose;
import static org.clipj.runtime.cpu.OpTesting.random;
import static org.junit.jupiter.api.Assertions.assertNotSame;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;

import org.clipj.runtime.DType;
import org.clipj.runtime.Device;
import org.clipj.runtime.Tensor;
import org.junit.jupiter.api.Test;

/** Cross-cutting CpuBackend behaviour: concurrent callers, memory ops, non-CPU and non-F32 arguments. */
class CpuBackendTest {

    @Test
    void concurrentCallersOnDistinctOutputsGetSerialResults() throws Exception {
        SplittableRandom rng = new SplittableRandom(1);
        Tensor qkv = random(rng, 1f, 2, 50, 3 * 128), x = random(rng, 2f, 65, 768), w = random(rng, 1f, 768), b = random(rng, 1f, 768);
        Tensor attExpected = Tensor.zeros(DType.F32, 2, 50, 128), lnExpected = Tensor.zeros(DType.F32, 65, 768);
        FAST.attentionForward(attExpected, null, qkv, 2, true);
        FAST.layerNormForward(lnExpected, null, null, x, w, b, 1e-5f);
        ExecutorService callers = Executors.newFixedThreadPool(4);
        try {
            List<Future<Tensor[]>> results = new ArrayList<>();
            for (int i = 0; i < 6; i++) {
                results.add(callers.submit(() -> {
                    Tensor att = Tensor.zeros(DType.F32, 2, 50, 128), ln = Tensor.zeros(DType.F32, 65, 768);
                    for (int rep = 0; rep < 2; rep++) {
                        FAST.attentionForward(att, null, qkv, 2, true);
                        FAST.layerNormForward(ln, null, null, x, w, b, 1e-5f);
                    }
                    return new Tensor[] {att, ln};
                }));
            }
            for (Future<Tensor[]> f : results) {
                Tensor[] r = f.get();
                // Not bit-exact: the interpreter's Vector API fallback (exp, lane reductions) and the
                // C2 intrinsics round differently, and the JIT tier changes between calls.
                assertClose("concurrent attention", attExpected, r[0], 1e-6, 1e-6);
                assertClose("concurrent layernorm", lnExpected, r[1], 1e-6, 1e-6);
            }
        } finally {
            callers.shutdownNow();
        }
    }

    @Test
    void memoryOpsOnTheCpuAreIdentities() {
        Tensor t = Tensor.zeros(DType.F32, 3);
        assertSame(t, FAST.upload(t));
        assertSame(t, FAST.download(t));
        Tensor z = FAST.zeros(DType.BF16, 2, 3);
        assertTrue(z.dtype() == DType.BF16 && z.device() == Device.CPU && z.size() == 6);
    }

    @Test
    void wrongDtypesAreRejectedWithTheOpName() {
        Tensor ints = Tensor.of(new int[] {1, 2, 3}, 3), f = Tensor.zeros(DType.F32, 3);
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> FAST.add(f, ints, f));
        assertTrue(e.getMessage().startsWith("add:") && e.getMessage().contains("I32"), e.getMessage());
        assertThrows(IllegalArgumentException.class, () -> FAST.cast(f, ints));
        assertThrows(IllegalArgumentException.class, () -> FAST.sumOfSquares(ints));
        assertThrows(IllegalArgumentException.class, () -> FAST.adamwUpdate(f, f, f, Tensor.zeros(DType.F32, 4), 1e-3f, 0.9f, 0.99f, 1e-8f, 0f, 1, 1f));
        assertThrows(IllegalArgumentException.class, () -> FAST.adamwUpdate(f, f, f, f, 1e-3f, 0.9f, 0.99f, 1e-8f, 0f, 0, 1f));
    }

    @Test
    void opsRunOnViews() {
        SplittableRandom rng = new SplittableRandom(2);
        Tensor big = random(rng, 1f, 5, 7, 64), out = Tensor.zeros(DType.F32, 3, 7, 64), expected = Tensor.zeros(DType.F32, 3, 7, 64);
        Tensor view = big.slice(1, 4);
        FAST.quickGeluForward(out, view);
        OpTesting.SCALAR.quickGeluForward(expected, view.copy());
        assertClose("quickGelu on a slice", expected, out, 0, 1e-6);
        Tensor w = random(rng, 1f, 64), b = random(rng, 1f, 64);
        FAST.layerNormForward(out, null, null, view, w, b, 1e-5f);
        OpTesting.SCALAR.layerNormForward(expected, null, null, view.copy(), w, b, 1e-5f);
        assertClose("layernorm on a slice", expected, out, 1e-5, 1e-5);
    }

    @Test
    void releasedStorageIsReusedByEmptyAndViewsAreLeftAlone() {
        try (CpuBackend be = new CpuBackend(1, true)) {
            Tensor a = be.empty(DType.F32, 4, 6);
            be.release(a);
            be.release(a);   // a second release of the same storage does not hand it out twice
            Tensor b = be.empty(DType.F32, 6, 4);
            assertSame(a.f32(), b.f32(), "same element count: the released storage");
            assertNotSame(a.f32(), be.empty(DType.F32, 24).f32(), "released once, reused once");
            Tensor whole = be.empty(DType.F32, 2, 12);
            be.release(whole.slice(0, 1));   // a view of part of it: not recycled
            assertNotSame(whole.f32(), be.empty(DType.F32, 12).f32());
            be.release(null);
        }
        try (CpuBackend scalar = new CpuBackend(1, false)) {
            Tensor t = scalar.empty(DType.F32, 5);
            for (float v : t.f32()) assertTrue(Float.isNaN(v), "the reference path marks unwritten elements");
        }
    }
}
