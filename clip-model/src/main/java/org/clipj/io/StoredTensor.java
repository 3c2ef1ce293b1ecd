package org.clipj.io;

import org.clipj.runtime.DType;
import org.clipj.runtime.Shaped;
import org.clipj.runtime.Tensor;

import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.function.Supplier;
import java.util.stream.IntStream;

/**
 * A checkpoint tensor known by its dtype and shape, whose elements are read from its file only when
 * {@link #read()} is called, into a fresh CPU tensor each time (nothing is cached: a model built from
 * a checkpoint takes its tensors one at a time and each dies as soon as its weight is built, so the
 * checkpoint never sits whole in memory beside the model). The file was validated when the checkpoint
 * was opened; a read fails with an InvalidInputException naming the file and the tensor if the file
 * changed since (see {@link CheckedFile}).
 */
public final class StoredTensor implements Shaped {
    private final DType dtype;
    private final int[] shape;
    private final Supplier<Tensor> reader;

    private StoredTensor(DType dtype, int[] shape, Supplier<Tensor> reader) {
        this.dtype = dtype;
        this.shape = shape.clone();
        this.reader = reader;
    }

    /** A tensor of this dtype and shape that {@code reader} reads (a new CPU tensor of exactly that dtype and shape per call). */
    public static StoredTensor of(DType dtype, int[] shape, Supplier<Tensor> reader) {
        Tensor.numel(shape); // rejects negative dimensions
        return new StoredTensor(dtype, shape, reader);
    }

    @Override
    public DType dtype() {
        return dtype;
    }

    @Override
    public int[] shape() {
        return shape.clone();
    }

    /** Reads the elements now, into a new CPU tensor. */
    public Tensor read() {
        Tensor t = reader.get();
        if (t.dtype() != dtype || !Arrays.equals(t.shape(), shape)) {
            throw new IllegalStateException("a stored " + dtype + " " + shapeString() + " tensor was read as " + t);
        }
        return t;
    }

    /** The same elements seen with another shape of as many elements (read as the reshaped tensor). */
    StoredTensor reshaped(int... newShape) {
        if (Tensor.numel(newShape) != numel()) {
            throw new IllegalArgumentException("cannot reshape " + shapeString() + " to " + Arrays.toString(newShape));
        }
        return new StoredTensor(dtype, newShape, () -> read().reshape(newShape));
    }

    /** Reads every tensor (in parallel), in the map's order. */
    public static Map<String, Tensor> readAll(Map<String, StoredTensor> stored) {
        List<Map.Entry<String, StoredTensor>> entries = List.copyOf(stored.entrySet());
        Tensor[] tensors = new Tensor[entries.size()];
        IntStream.range(0, tensors.length).parallel().forEach(i -> tensors[i] = entries.get(i).getValue().read());
        Map<String, Tensor> out = new LinkedHashMap<>();
        for (int i = 0; i < tensors.length; i++) {
            out.put(entries.get(i).getKey(), tensors[i]);
        }
        return out;
    }

    @Override
    public String toString() {
        return "StoredTensor" + shapeString() + " " + dtype;
    }
}
