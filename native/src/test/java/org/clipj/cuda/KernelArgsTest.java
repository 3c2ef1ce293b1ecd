package org.clipj.cuda;

import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_DOUBLE;
import static java.lang.foreign.ValueLayout.JAVA_FLOAT;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;

import java.lang.foreign.MemorySegment;

import org.junit.jupiter.api.Test;

class KernelArgsTest {
    @Test
    void eachPointerAddressesItsOwnEightByteSlot() {
        KernelArgs args = new KernelArgs(8);
        args.clear().ptr(0x7f00_1234_5678L).i32(-3).f32(1.5f).i64(1L << 40).f64(0.25);
        assertEquals(5, args.count());
        MemorySegment p = args.pointers(), v = args.values();
        for (int i = 0; i < 8; i++)
            assertEquals(v.address() + 8L * i, p.getAtIndex(ADDRESS, i).address(), "pointer " + i);
        assertEquals(0x7f00_1234_5678L, v.get(JAVA_LONG, 0));
        assertEquals(-3, v.get(JAVA_INT, 8));
        assertEquals(1.5f, v.get(JAVA_FLOAT, 16));
        assertEquals(1L << 40, v.get(JAVA_LONG, 24));
        assertEquals(0.25, v.get(JAVA_DOUBLE, 32));
        assertEquals("(8, 4, 4, 8, 8)", args.describe());
        assertEquals(4, args.size(1));
    }

    @Test
    void reuseRewritesValuesWithoutMovingThePointerArray() {
        KernelArgs args = new KernelArgs(4);
        MemorySegment before = args.pointers();
        args.clear().i32(1).i32(2);
        args.clear().f32(7f);
        assertSame(before, args.pointers());
        assertEquals(1, args.count());
        assertEquals(7f, args.values().get(JAVA_FLOAT, 0));
        assertEquals(args.values().address(), args.pointers().getAtIndex(ADDRESS, 0).address());
    }

    @Test
    void tooManyArgumentsIsAnError() {
        KernelArgs args = new KernelArgs(2);
        args.clear().i32(1).i32(2);
        assertThrows(IllegalStateException.class, () -> args.i32(3));
        assertThrows(IndexOutOfBoundsException.class, () -> args.size(2));
    }
}
