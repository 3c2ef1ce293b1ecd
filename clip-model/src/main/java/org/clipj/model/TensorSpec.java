package org.clipj.model;

import java.util.Arrays;

/**
 * One named tensor of a model: a trainable parameter, or a buffer (BatchNorm running statistics)
 * that belongs to the state dict but has no gradient.
 */
record TensorSpec(String name, int[] shape, boolean buffer) {

    static TensorSpec param(String name, int... shape) {
        return new TensorSpec(name, shape, false);
    }

    static TensorSpec buffer(String name, int... shape) {
        return new TensorSpec(name, shape, true);
    }

    int numel() {
        return Math.toIntExact(org.clipj.runtime.Tensor.numel(shape));
    }

    @Override
    public String toString() {
        return name + Arrays.toString(shape);
    }
}
