package org.clipj.runtime;

import java.util.Arrays;

/**
 * What is known of a tensor without its elements: its dtype and shape. A {@link Tensor} is one; so is
 * a checkpoint entry whose bytes are read only when a model takes it, which lets configs be inferred
 * and checkpoints checked against a config before any weight is read.
 */
public interface Shaped {
    DType dtype();

    int[] shape();

    default int rank() {
        return shape().length;
    }

    default int dim(int i) {
        int[] shape = shape();
        return shape[i < 0 ? shape.length + i : i];
    }

    default long numel() {
        return Tensor.numel(shape());
    }

    default String shapeString() {
        return Arrays.toString(shape());
    }
}
