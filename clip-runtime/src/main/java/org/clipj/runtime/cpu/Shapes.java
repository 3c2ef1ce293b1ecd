package org.clipj.runtime.cpu;

import org.clipj.runtime.Tensor;

/** Shape arithmetic the op families share. */
final class Shapes {
    private Shapes() {}

    /** All but the last dimension multiplied: the row count of a (..., C) tensor. */
    static int rows(Tensor t) {
        return t.rank() == 0 ? 1 : Math.toIntExact(t.numel() / Math.max(1, t.dim(-1)));
    }
}
