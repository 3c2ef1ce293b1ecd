package org.clipj.cuda;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;

/**
 * The argument list of one kernel launch in cuLaunchKernel's form: {@code void** kernelParams}, one
 * pointer per argument, each pointing at the argument's value. Values sit in 8-byte slots of one
 * segment, and the pointer array is filled once, at construction: a launch writes values only, and
 * nothing is allocated per call. Reuse one instance per stream (not thread-safe):
 * {@code args.clear().ptr(out).ptr(x).i64(n)}.
 */
public final class KernelArgs {
    public static final int SLOT_BYTES = 8;

    private final int capacity;
    private final MemorySegment values;   // (capacity) 8-byte slots
    private final MemorySegment pointers; // (capacity) void*, pointers[i] = &values[i]
    private final int[] sizes;
    private int count;

    public KernelArgs(int capacity) {
        this.capacity = capacity;
        Arena arena = Arena.ofAuto();
        values = arena.allocate((long) capacity * SLOT_BYTES, 16);
        pointers = arena.allocate((long) capacity * ValueLayout.ADDRESS.byteSize(), 16);
        for (int i = 0; i < capacity; i++)
            pointers.setAtIndex(ValueLayout.ADDRESS, i, values.asSlice((long) i * SLOT_BYTES, SLOT_BYTES));
        sizes = new int[capacity];
    }

    public KernelArgs clear() {
        count = 0;
        return this;
    }

    private long next(int size) {
        if (count == capacity) throw new IllegalStateException("more than " + capacity + " kernel arguments");
        sizes[count] = size;
        return (long) count++ * SLOT_BYTES;
    }

    /** A device pointer (CUdeviceptr, 8 bytes). */
    public KernelArgs ptr(long devicePointer) {
        values.set(ValueLayout.JAVA_LONG, next(8), devicePointer);
        return this;
    }

    public KernelArgs i32(int v) {
        values.set(ValueLayout.JAVA_INT, next(4), v);
        return this;
    }

    /** A C {@code long} / {@code long long} (8 bytes on LP64 hosts and in device code). */
    public KernelArgs i64(long v) {
        values.set(ValueLayout.JAVA_LONG, next(8), v);
        return this;
    }

    public KernelArgs f32(float v) {
        values.set(ValueLayout.JAVA_FLOAT, next(4), v);
        return this;
    }

    public KernelArgs f64(double v) {
        values.set(ValueLayout.JAVA_DOUBLE, next(8), v);
        return this;
    }

    public int count() { return count; }

    /** Byte size of argument i as declared by the call that added it. */
    public int size(int i) {
        if (i < 0 || i >= count) throw new IndexOutOfBoundsException(i);
        return sizes[i];
    }

    /** The {@code void**} array for cuLaunchKernel (only the first {@link #count()} entries are meaningful). */
    public MemorySegment pointers() { return pointers; }

    /** The value slots (argument i at byte offset 8 * i). */
    public MemorySegment values() { return values; }

    /** Argument list for messages: sizes only, e.g. "(8, 8, 4)". */
    public String describe() {
        StringBuilder sb = new StringBuilder("(");
        for (int i = 0; i < count; i++) sb.append(i == 0 ? "" : ", ").append(sizes[i]);
        return sb.append(")").toString();
    }
}
