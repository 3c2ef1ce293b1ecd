package org.clipj.runtime.cpu;

import static org.clipj.runtime.cpu.OpTesting.FAST;
import static org.clipj.runtime.cpu.OpTesting.ROWS;
import static org.clipj.runtime.cpu.OpTesting.SCALAR;
import static org.clipj.runtime.cpu.OpTesting.WIDTHS;
import static org.clipj.runtime.cpu.OpTesting.assertClose;
import static org.clipj.runtime.cpu.OpTesting.assertGradient;
import static org.clipj.runtime.cpu.OpTesting.project;
import static org.clipj.runtime.cpu.OpTesting.random;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.SplittableRandom;

import org.clipj.runtime.Backend;
import org.clipj.runtime.DType;
import org.clipj.runtime.Tensor;
import org.junit.jupiter.api.Test;

/** ElementwiseOps: fast path vs scalar reference on ragged shapes, gradients, and exact 16-bit casts. */
class ElementwiseOpsTest {

    /** Runs op on both backends with fresh copies of the inputs and compares the first argument. */
    private interface Op {
        void run(Backend be, Tensor out, Tensor a, Tensor b);
    }

    private static void compare(String name, Op op, float scale, double rtol) {
        SplittableRandom rng = new SplittableRandom(name.hashCode());
        for (int rows : ROWS) {
            for (int width : WIDTHS) {
                Tensor a = random(rng, scale, rows, width), b = random(rng, scale, rows, width);
                Tensor init = random(rng, 1f, rows, width);
                Tensor expected = init.copy(), actual = init.copy();
                op.run(SCALAR, expected, a.copy(), b.copy());
                op.run(FAST, actual, a.copy(), b.copy());
                assertClose(name + " " + rows + "x" + width, expected, actual, 0, rtol);
            }
        }
    }

    @Test
    void addAndScaleMatchScalar() {
        compare("add", (be, out, a, b) -> be.add(out, a, b), 1f, 0);
        compare("addScaled", (be, out, a, b) -> be.addScaled(out, a, 0.37f), 1f, 1e-7);
        compare("scale", (be, out, a, b) -> be.scale(out, -1.25f), 1f, 0);
        compare("add aliasing a", (be, out, a, b) -> {
            be.add(a, a, b);
            be.copy(out, a);
        }, 1f, 0);
    }

    @Test
    void activationsMatchScalar() {
        compare("quickGeluForward", (be, out, a, b) -> be.quickGeluForward(out, a), 6f, 1e-6);
        compare("quickGeluBackward", (be, out, a, b) -> be.quickGeluBackward(out, b, a), 6f, 1e-6);
        compare("geluForward", (be, out, a, b) -> be.geluForward(out, a), 6f, 1e-6);
        compare("geluBackward", (be, out, a, b) -> be.geluBackward(out, b, a), 6f, 1e-6);
        compare("reluForward", (be, out, a, b) -> be.reluForward(out, a), 1f, 0);
        compare("reluBackward", (be, out, a, b) -> be.reluBackward(out, b, a), 1f, 0);
    }

    @Test
    void erfAndGeluMatchKnownValues() {
        // erf and x * (1 + erf(x / sqrt 2)) / 2 from Python math.erf (double)
        double[][] erf = {{0.1, 0.1124629160182849}, {0.5, 0.5204998778130465}, {1.0, 0.8427007929497149},
                {2.0, 0.9953222650189527}, {3.5, 0.9999992569016276}, {-1.3, -0.9340079449406524}};
        for (double[] c : erf) assertEquals(c[1], ElementwiseOps.erf(c[0]), 1e-14, "erf(" + c[0] + ")");
        for (double[] c : erf) assertEquals(c[1], ElementwiseOps.erf((float) c[0]), 2e-7, "float erf(" + c[0] + ")");
        Tensor x = Tensor.of(new float[] {-3f, -1f, -0.25f, 0f, 0.5f, 1f, 2f, 7f}, 8);
        double[] gelu = {-0.00404969409, -0.15865525393, -0.10032341858, 0, 0.34573123064, 0.84134474607, 1.95449973610, 7};
        for (Backend be : new Backend[] {SCALAR, FAST}) {
            Tensor out = Tensor.zeros(DType.F32, 8);
            be.geluForward(out, x);
            for (int i = 0; i < 8; i++) assertEquals(gelu[i], out.f32()[i], 1e-6, be.description() + " gelu(" + x.f32()[i] + ")");
        }
    }

    @Test
    void channelScaleMatchesScalarAndGradients() {
        compare("channelScaleForward", (be, out, a, b) -> be.channelScaleForward(out, a, b.slice(0, 1).reshape(a.dim(1))), 1f, 0);
        compare("channelScaleBackward dx", (be, out, a, b) ->
                be.channelScaleBackward(out, null, a, b, b.slice(0, 1).reshape(a.dim(1))), 1f, 1e-6);
        compare("channelScaleBackward dgamma", (be, out, a, b) ->
                be.channelScaleBackward(null, out.slice(0, 1).reshape(a.dim(1)), a, b, b.slice(0, 1).reshape(a.dim(1))), 1f, 1e-5);
        SplittableRandom rng = new SplittableRandom(13);
        Tensor x = random(rng, 1f, 2, 3, 5), w = random(rng, 1f, 2, 3, 5), gamma = random(rng, 1f, 5);
        Tensor out = Tensor.zeros(DType.F32, 2, 3, 5);
        for (Backend be : new Backend[] {SCALAR, FAST}) {
            Tensor dx = Tensor.zeros(DType.F32, 2, 3, 5), dgamma = Tensor.zeros(DType.F32, 5);
            be.channelScaleBackward(dx, dgamma, w, x, gamma);
            assertGradient("channelScale dx " + be.description(), x, dx, () -> {
                be.channelScaleForward(out, x, gamma);
                return project(out, w);
            }, 1e-2, 1e-3);
            assertGradient("channelScale dgamma " + be.description(), gamma, dgamma, () -> {
                be.channelScaleForward(out, x, gamma);
                return project(out, w);
            }, 1e-2, 1e-3);
        }
        assertThrows(IllegalArgumentException.class, () -> FAST.channelScaleForward(out, x, random(rng, 1f, 3)));
    }

    @Test
    void broadcastAddMatchesScalar() {
        compare("broadcastAdd", (be, out, a, b) -> be.broadcastAdd(out, a, b.slice(0, 1).reshape(a.dim(1))), 1f, 0);
        compare("broadcastAddBackward", (be, out, a, b) -> be.broadcastAddBackward(out.slice(0, 1).reshape(a.dim(1)), a), 1f, 1e-5);
        SplittableRandom rng = new SplittableRandom(3);
        Tensor x = random(rng, 1f, 2, 3, 4), b = random(rng, 1f, 3, 4);
        Tensor out = Tensor.zeros(DType.F32, 2, 3, 4);
        SCALAR.broadcastAdd(out, x, b);
        assertEquals(x.f32()[17] + b.f32()[5], out.f32()[17]);
        assertThrows(IllegalArgumentException.class, () -> FAST.broadcastAdd(out, x, random(rng, 1f, 4, 3)));
    }

    @Test
    void gradientsMatchFiniteDifferences() {
        SplittableRandom rng = new SplittableRandom(11);
        Tensor x = random(rng, 3f, 3, 5), w = random(rng, 1f, 3, 5), out = Tensor.zeros(DType.F32, 3, 5);
        for (Backend be : new Backend[] {SCALAR, FAST}) {
            Tensor dx = Tensor.zeros(DType.F32, 3, 5);
            be.quickGeluBackward(dx, w, x);
            assertGradient("quickGelu " + be.description(), x, dx, () -> {
                be.quickGeluForward(out, x);
                return project(out, w);
            }, 1e-3, 1e-2);

            Tensor dg = Tensor.zeros(DType.F32, 3, 5);
            be.geluBackward(dg, w, x);
            assertGradient("gelu " + be.description(), x, dg, () -> {
                be.geluForward(out, x);
                return project(out, w);
            }, 1e-3, 1e-2);

            Tensor y = Tensor.zeros(DType.F32, 3, 5), dr = Tensor.zeros(DType.F32, 3, 5);
            Tensor xr = x.copy();
            for (int i = 0; i < xr.size(); i++) if (Math.abs(xr.f32()[i]) < 0.05f) xr.f32()[i] = 0.5f; // away from the kink
            be.reluForward(y, xr);
            be.reluBackward(dr, w, y);
            assertGradient("relu " + be.description(), xr, dr, () -> {
                be.reluForward(out, xr);
                return project(out, w);
            }, 1e-3, 1e-2);

            Tensor bias = random(rng, 1f, 5), db = Tensor.zeros(DType.F32, 5);
            be.broadcastAddBackward(db, w);
            assertGradient("broadcastAdd " + be.description(), bias, db, () -> {
                be.broadcastAdd(out, x, bias);
                return project(out, w);
            }, 1e-2, 1e-3);
        }
    }

    @Test
    void backwardAccumulates() {
        SplittableRandom rng = new SplittableRandom(5);
        Tensor x = random(rng, 2f, 4, 9), g = random(rng, 1f, 4, 9);
        for (Backend be : new Backend[] {SCALAR, FAST}) {
            Tensor once = Tensor.zeros(DType.F32, 4, 9), twice = Tensor.zeros(DType.F32, 4, 9);
            be.quickGeluBackward(once, g, x);
            be.quickGeluBackward(twice, g, x);
            be.quickGeluBackward(twice, g, x);
            be.scale(once, 2f);
            assertClose("accumulate " + be.description(), once, twice, 1e-6, 1e-6);
        }
    }

    @Test
    void fillCopyAndShapeErrors() {
        for (Backend be : new Backend[] {SCALAR, FAST}) {
            Tensor t = Tensor.zeros(DType.F32, 3, 7);
            be.fill(t.slice(1, 2), 2.5f);
            assertEquals(0f, t.f32()[6]);
            assertEquals(2.5f, t.f32()[7]);
            assertEquals(2.5f, t.f32()[13]);
            assertEquals(0f, t.f32()[14]);
            Tensor h = Tensor.zeros(DType.BF16, 4);
            be.fill(h, 1f);
            assertEquals((short) 0x3f80, h.bits16()[3]);
            Tensor c = Tensor.zeros(DType.F32, 21);
            be.copy(c, t);
            assertEquals(2.5f, c.f32()[10]);
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                    () -> be.add(Tensor.zeros(DType.F32, 3, 7), t, Tensor.zeros(DType.F32, 7, 3)));
            assertTrue(e.getMessage().contains("add") && e.getMessage().contains("[3, 7]") && e.getMessage().contains("[7, 3]"),
                    e.getMessage());
            assertThrows(IllegalArgumentException.class, () -> be.copy(Tensor.zeros(DType.F32, 5), t));
            assertThrows(IllegalArgumentException.class, () -> be.quickGeluForward(Tensor.zeros(DType.BF16, 3, 7), t));
        }
    }

    // ---------------------------------------------------------------- 16-bit casts, bit-exact

    private static final int[] F32_BITS = {
        0x3f800000, // 1.0
        0x80000000, // -0.0
        0x7fc00000, // quiet NaN
        0x7f800001, // signalling NaN: must stay NaN, not become Inf
        0x7f800000, 0xff800000, // +-Inf
        0x7f7fffff, // max finite F32: BF16 rounds to Inf
        0x7f7f0000, // max finite BF16
        0x3f808000, // tie between 0x3f80 and 0x3f81: to even (down)
        0x3f818000, // tie between 0x3f81 and 0x3f82: to even (up)
        0x3f808001, // just above the tie: up
        0x00000001, // smallest F32 subnormal: BF16 rounds to +0
        0x00010000, // a BF16 subnormal, exact
        0x00018000, // subnormal tie: to even (0x0002)
        0xc0490fdb, // -pi
    };
    private static final short[] BF16_EXPECTED = {
        0x3f80, (short) 0x8000, 0x7fc0, 0x7fc0, 0x7f80, (short) 0xff80, 0x7f80, 0x7f7f, 0x3f80, 0x3f82, 0x3f81,
        0x0000, 0x0001, 0x0002, (short) 0xc049,
    };

    private static final float[] F16_INPUTS = {
        1f, -0f, Float.NaN, Float.POSITIVE_INFINITY, Float.NEGATIVE_INFINITY,
        65504f,          // max finite half
        65519f,          // below the tie: stays max finite
        65520f,          // tie between 65504 and 65536 (Inf): to even -> Inf
        1e6f,            // overflow -> Inf
        0x1p-14f,        // min normal half
        0x1p-24f,        // min subnormal half
        0x1p-25f,        // tie between 0 and 2^-24: to even -> 0
        0x1.8p-24f,      // tie between 1 and 2 ulps of subnormal: to even -> 2
        0x1.000002p-25f, // just above the tie -> 2^-24
        1e-8f,           // underflow -> +0
        1f + 0x1p-11f,   // tie between 1 and 1 + 2^-10: to even -> 1
        1f + 0x1.8p-10f, // tie between 1 + 2^-10 and 1 + 2^-9: to even -> 1 + 2^-9
        -2f,
    };
    private static final short[] F16_EXPECTED = {
        0x3c00, (short) 0x8000, 0x7e00, 0x7c00, (short) 0xfc00, 0x7bff, 0x7bff, 0x7c00, 0x7c00, 0x0400, 0x0001,
        0x0000, 0x0002, 0x0001, 0x0000, 0x3c00, 0x3c02, (short) 0xc000,
    };

    @Test
    void bf16CastIsBitExactOnEdgeValues() {
        float[] in = new float[F32_BITS.length];
        for (int i = 0; i < in.length; i++) in[i] = Float.intBitsToFloat(F32_BITS[i]);
        for (Backend be : new Backend[] {SCALAR, FAST}) {
            Tensor bf = Tensor.zeros(DType.BF16, in.length);
            be.cast(bf, Tensor.of(in.clone(), in.length));
            for (int i = 0; i < in.length; i++) {
                int index = i;
                assertEquals(BF16_EXPECTED[i], bf.bits16()[i], () -> be.description() + " bf16 of 0x" + Integer.toHexString(F32_BITS[index]));
            }
            Tensor back = Tensor.zeros(DType.F32, in.length);
            be.cast(back, bf);
            for (int i = 0; i < in.length; i++) {
                assertEquals((BF16_EXPECTED[i] & 0xffff) << 16, Float.floatToRawIntBits(back.f32()[i]), "bf16 -> f32 is exact");
            }
        }
    }

    @Test
    void f16CastIsBitExactOnEdgeValues() {
        for (Backend be : new Backend[] {SCALAR, FAST}) {
            Tensor h = Tensor.zeros(DType.F16, F16_INPUTS.length);
            be.cast(h, Tensor.of(F16_INPUTS.clone(), F16_INPUTS.length));
            for (int i = 0; i < F16_INPUTS.length; i++) {
                int index = i;
                assertEquals(F16_EXPECTED[i], h.bits16()[i], () -> be.description() + " f16 of " + F16_INPUTS[index]);
            }
            Tensor back = Tensor.zeros(DType.F32, F16_INPUTS.length);
            be.cast(back, h);
            assertEquals(65504f, back.f32()[5]);
            assertEquals(0x1p-24f, back.f32()[10]);
            assertTrue(Float.isNaN(back.f32()[2]));
            assertEquals(Float.POSITIVE_INFINITY, back.f32()[7]);
            Tensor bf = Tensor.zeros(DType.BF16, F16_INPUTS.length);
            be.cast(bf, h);
            assertEquals((short) 0x3f80, bf.bits16()[0]);
            Tensor bfBack = Tensor.zeros(DType.F32, F16_INPUTS.length);
            be.cast(bfBack, bf);
            assertFalse(be.hasNonFinite(bfBack.slice(0, 2)));
            assertTrue(be.hasNonFinite(bfBack), "f16 -> bf16 keeps the NaN and the infinity");
        }
    }

    @Test
    void largeCastMatchesScalar() {
        SplittableRandom rng = new SplittableRandom(9);
        Tensor x = random(rng, 100f, 257, 768);
        for (DType dt : new DType[] {DType.BF16, DType.F16}) {
            Tensor a = Tensor.zeros(dt, 257, 768), b = Tensor.zeros(dt, 257, 768);
            SCALAR.cast(a, x);
            FAST.cast(b, x);
            for (int i = 0; i < a.size(); i++) assertEquals(a.bits16()[i], b.bits16()[i]);
        }
    }

    /**
     * Every F16 and BF16 bit pattern (and F32 values around every BF16 rounding case) cast on the vector
     * path equals the scalar reference, on ragged lengths and offsets that leave partial vectors at both
     * ends of a chunk: widening to F32, F16 -> BF16 and F32 -> BF16. NaN stays NaN (payload aside).
     */
    @Test
    void sixteenBitCastsMatchScalarOnRaggedLengths() {
        short[] every = new short[1 << 16];
        for (int i = 0; i < every.length; i++) every[i] = (short) i;
        SplittableRandom rng = new SplittableRandom(11);
        float[] around = new float[1 << 16];
        for (int i = 0; i < around.length; i++) around[i] = Float.intBitsToFloat((i << 16) + rng.nextInt(-2, 0x10002));
        for (int length : new int[] {1, 7, 15, 16, 17, 33, 100, 1000, (1 << 16) - 3}) {
            int from = Math.min(3, (1 << 16) - length);
            for (DType src : new DType[] {DType.F16, DType.BF16}) {
                Tensor bits = Tensor.ofBits(src, every.clone(), every.length).slice(from, from + length);
                assertSameCast(src + " -> F32, length " + length, bits, DType.F32);
                if (src == DType.F16) assertSameCast("F16 -> BF16, length " + length, bits, DType.BF16);
            }
            assertSameCast("F32 -> BF16, length " + length, Tensor.of(around.clone(), around.length).slice(from, from + length),
                    DType.BF16);
        }
    }

    private static void assertSameCast(String what, Tensor src, DType to) {
        Tensor expected = Tensor.zeros(to, src.size()), actual = Tensor.zeros(to, src.size());
        SCALAR.cast(expected, src);
        FAST.cast(actual, src);
        float[] e = expected.toFloatArray(), a = actual.toFloatArray();
        for (int i = 0; i < e.length; i++) {
            if (Float.isNaN(e[i]) && Float.isNaN(a[i])) continue;
            int index = i;
            assertEquals(Float.floatToRawIntBits(e[i]), Float.floatToRawIntBits(a[i]), () -> what + " at " + index);
        }
    }
}
