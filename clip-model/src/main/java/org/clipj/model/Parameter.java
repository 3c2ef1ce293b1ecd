package org.clipj.model;

import org.clipj.runtime.Tensor;

/**
 * A trainable tensor of a model: its OpenAI name, its value and its gradient, both views into the
 * tower's contiguous parameter and gradient buffers (same shape, on the model's backend).
 */
public record Parameter(String name, Tensor value, Tensor grad) {
}
