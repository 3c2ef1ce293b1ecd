package org.clipj.runtime;

import java.lang.foreign.MemorySegment;
import java.util.Arrays;

/**
 * A dense, row-major, contiguous tensor. CPU tensors are backed by a Java array of the dtype's
 * carrier type (F32: float[], F16/BF16: short[] bits, I32: int[], I64: long[]) starting at
 * {@link #offset()} elements; CUDA tensors by a device address owned by their backend.
 * Views are free only along dimension 0 ({@link #slice}) and by {@link #reshape}. A prepared CPU
 * weight ({@link #prepared}) holds only a backend's own form of its elements (packed GEMM panels):
 * its shape and dtype are the weight's, but it has no host array to read.
 */
public final class Tensor implements Shaped {
    private final int[] shape;
    private final DType dtype;
    private final Device device;
    private final Object array;      // CPU carrier array, null on CUDA and for a prepared CPU weight
    private final long deviceAddress; // CUDA: byte address of element 0 of this view
    private final Object owner;       // CUDA: the allocation (kept reachable by views); CPU: a prepared weight's form
    private final int offset;         // CPU: element offset into array
    private final long numel;

    private Tensor(int[] shape, DType dtype, Device device, Object array, int offset, long deviceAddress, Object owner) {
        this.shape = shape.clone();
        this.dtype = dtype;
        this.device = device;
        this.array = array;
        this.offset = offset;
        this.deviceAddress = deviceAddress;
        this.owner = owner;
        this.numel = numel(shape);
    }

    // ---- construction (CPU) ----

    /** A zero-filled CPU tensor. */
    public static Tensor zeros(DType dtype, int... shape) {
        long n = numel(shape);
        if (n > Integer.MAX_VALUE - 8) {
            throw new IllegalArgumentException("tensor too large for a CPU array: " + Arrays.toString(shape));
        }
        int size = (int) n;
        Object array = switch (dtype) {
            case F32 -> new float[size];
            case F16, BF16 -> new short[size];
            case I32 -> new int[size];
            case I64 -> new long[size];
        };
        return new Tensor(shape, dtype, Device.CPU, array, 0, 0, null);
    }

    /** Wraps (does not copy) a float array as an F32 CPU tensor. */
    public static Tensor of(float[] data, int... shape) {
        checkLength(data.length, shape);
        return new Tensor(shape, DType.F32, Device.CPU, data, 0, 0, null);
    }

    /** Wraps (does not copy) an int array as an I32 CPU tensor. */
    public static Tensor of(int[] data, int... shape) {
        checkLength(data.length, shape);
        return new Tensor(shape, DType.I32, Device.CPU, data, 0, 0, null);
    }

    /** Wraps (does not copy) a long array as an I64 CPU tensor. */
    public static Tensor of(long[] data, int... shape) {
        checkLength(data.length, shape);
        return new Tensor(shape, DType.I64, Device.CPU, data, 0, 0, null);
    }

    /** Wraps (does not copy) 16-bit float bits (F16 or BF16) as a CPU tensor. */
    public static Tensor ofBits(DType dtype, short[] bits, int... shape) {
        if (dtype != DType.F16 && dtype != DType.BF16) {
            throw new IllegalArgumentException("ofBits takes F16 or BF16, not " + dtype);
        }
        checkLength(bits.length, shape);
        return new Tensor(shape, dtype, Device.CPU, bits, 0, 0, null);
    }

    /**
     * A CPU weight held only in a backend's prepared form (its {@code prepareWeight}: e.g. packed GEMM
     * panels), for backends: it has the weight's dtype and shape but no host array, so host access to
     * its elements throws; {@link #preparedForm()} gives {@code form} back.
     */
    public static Tensor prepared(DType dtype, Object form, int... shape) {
        if (form == null) throw new IllegalArgumentException("prepared: the form is null");
        return new Tensor(shape, dtype, Device.CPU, null, 0, 0, form);
    }

    /** A tensor on a device, for backends: {@code owner} keeps the allocation reachable. */
    public static Tensor onDevice(Device device, DType dtype, long address, Object owner, int... shape) {
        if (device == Device.CPU) {
            throw new IllegalArgumentException("onDevice is for device memory");
        }
        return new Tensor(shape, dtype, device, null, 0, address, owner);
    }

    private static void checkLength(int length, int[] shape) {
        if (numel(shape) != length) {
            throw new IllegalArgumentException("array of " + length + " elements does not match shape " + Arrays.toString(shape));
        }
    }

    public static long numel(int... shape) {
        long n = 1;
        for (int d : shape) {
            if (d < 0) {
                throw new IllegalArgumentException("negative dimension in shape " + Arrays.toString(shape));
            }
            n *= d;
        }
        return n;
    }

    // ---- metadata ----

    public int[] shape() {
        return shape.clone();
    }

    public int dim(int i) {
        return shape[i < 0 ? shape.length + i : i];
    }

    public int rank() {
        return shape.length;
    }

    public long numel() {
        return numel;
    }

    /** numel as an int, for CPU loops. */
    public int size() {
        return Math.toIntExact(numel);
    }

    public DType dtype() {
        return dtype;
    }

    public Device device() {
        return device;
    }

    public long byteSize() {
        return numel * dtype.byteSize();
    }

    public boolean sameShape(Tensor other) {
        return Arrays.equals(shape, other.shape);
    }

    public String shapeString() {
        return Arrays.toString(shape);
    }

    @Override
    public String toString() {
        return "Tensor" + Arrays.toString(shape) + " " + dtype + " " + device;
    }

    // ---- CPU storage access ----

    /** Element offset of this view into its carrier array (CPU). */
    public int offset() {
        requireCpu();
        return offset;
    }

    /** The F32 carrier array (CPU, F32); elements start at {@link #offset()}. */
    public float[] f32() {
        requireCpu();
        require(DType.F32);
        return (float[]) array;
    }

    /** The I32 carrier array (CPU, I32); elements start at {@link #offset()}. */
    public int[] i32() {
        requireCpu();
        require(DType.I32);
        return (int[]) array;
    }

    /** The I64 carrier array (CPU, I64); elements start at {@link #offset()}. */
    public long[] i64() {
        requireCpu();
        require(DType.I64);
        return (long[]) array;
    }

    /** The 16-bit float carrier array (CPU, F16 or BF16); elements start at {@link #offset()}. */
    public short[] bits16() {
        requireCpu();
        if (dtype != DType.F16 && dtype != DType.BF16) {
            throw new IllegalStateException("bits16() on a " + dtype + " tensor");
        }
        return (short[]) array;
    }

    /** This CPU view as a heap memory segment (for copies to and from native memory). */
    public MemorySegment segment() {
        requireCpu();
        MemorySegment whole = switch (dtype) {
            case F32 -> MemorySegment.ofArray((float[]) array);
            case F16, BF16 -> MemorySegment.ofArray((short[]) array);
            case I32 -> MemorySegment.ofArray((int[]) array);
            case I64 -> MemorySegment.ofArray((long[]) array);
        };
        return whole.asSlice((long) offset * dtype.byteSize(), byteSize());
    }

    /** Device address of element 0 of this view (CUDA). */
    public long deviceAddress() {
        if (device == Device.CPU) {
            throw new IllegalStateException("deviceAddress() on a CPU tensor");
        }
        return deviceAddress;
    }

    /** The allocation behind a device tensor (for its backend). */
    public Object owner() {
        return owner;
    }

    /** The form a CPU weight was prepared into ({@link #prepared}); null for every other tensor. */
    public Object preparedForm() {
        return device == Device.CPU && array == null ? owner : null;
    }

    /** A copy of the elements as floats (CPU; any floating dtype or integer type). */
    public float[] toFloatArray() {
        requireCpu();
        int n = size();
        float[] out = new float[n];
        switch (dtype) {
            case F32 -> System.arraycopy(array, offset, out, 0, n);
            case F16 -> {
                short[] a = (short[]) array;
                for (int i = 0; i < n; i++) out[i] = DType.f16ToFloat(a[offset + i]);
            }
            case BF16 -> {
                short[] a = (short[]) array;
                for (int i = 0; i < n; i++) out[i] = DType.bf16ToFloat(a[offset + i]);
            }
            case I32 -> {
                int[] a = (int[]) array;
                for (int i = 0; i < n; i++) out[i] = a[offset + i];
            }
            case I64 -> {
                long[] a = (long[]) array;
                for (int i = 0; i < n; i++) out[i] = a[offset + i];
            }
        }
        return out;
    }

    /** This CPU tensor converted to F32 (the same object if it already is). */
    public Tensor toF32() {
        requireCpu();
        return dtype == DType.F32 ? this : of(toFloatArray(), shape);
    }

    /** A deep copy (CPU). */
    public Tensor copy() {
        requireCpu();
        Tensor t = zeros(dtype, shape);
        System.arraycopy(array, offset, t.array, 0, size());
        return t;
    }

    // ---- views ----

    /** Rows [from, to) along dimension 0, sharing storage. */
    public Tensor slice(int from, int to) {
        if (shape.length == 0 || from < 0 || to > shape[0] || from > to) {
            throw new IllegalArgumentException("slice [" + from + ", " + to + ") out of range for " + shapeString());
        }
        requireHostArray();
        int[] s = shape.clone();
        s[0] = to - from;
        long rowElements = shape[0] == 0 ? 0 : numel / shape[0];
        long skip = rowElements * from;
        if (device == Device.CPU) {
            return new Tensor(s, dtype, device, array, Math.toIntExact(offset + skip), 0, null);
        }
        return new Tensor(s, dtype, device, null, 0, deviceAddress + skip * dtype.byteSize(), owner);
    }

    /** Row {@code i} along dimension 0, without that dimension. */
    public Tensor get(int i) {
        int[] s = Arrays.copyOfRange(shape, 1, shape.length);
        return slice(i, i + 1).reshape(s);
    }

    /** The same storage seen with another shape of the same number of elements (-1 infers one dim). */
    public Tensor reshape(int... newShape) {
        int[] s = newShape.clone();
        int infer = -1;
        long known = 1;
        for (int i = 0; i < s.length; i++) {
            if (s[i] == -1) {
                if (infer >= 0) throw new IllegalArgumentException("only one -1 allowed in reshape " + Arrays.toString(newShape));
                infer = i;
            } else {
                known *= s[i];
            }
        }
        if (infer >= 0) {
            if (known == 0 || numel % known != 0) {
                throw new IllegalArgumentException("cannot reshape " + shapeString() + " to " + Arrays.toString(newShape));
            }
            s[infer] = (int) (numel / known);
        }
        if (numel(s) != numel) {
            throw new IllegalArgumentException("cannot reshape " + shapeString() + " to " + Arrays.toString(newShape));
        }
        if (device == Device.CPU) {
            return new Tensor(s, dtype, device, array, offset, 0, array == null ? owner : null);
        }
        return new Tensor(s, dtype, device, null, 0, deviceAddress, owner);
    }

    private void requireCpu() {
        if (device != Device.CPU) {
            throw new IllegalStateException("host access to a " + device + " tensor; copy it to the CPU first");
        }
        requireHostArray();
    }

    private void requireHostArray() {
        if (device == Device.CPU && array == null) {
            throw new IllegalStateException("host access to " + this + ", a weight prepared for its backend's kernels:"
                    + " only the prepared form of its elements is kept");
        }
    }

    private void require(DType expected) {
        if (dtype != expected) {
            throw new IllegalStateException("expected a " + expected + " tensor, got " + dtype);
        }
    }
}
