package org.clipj.runtime.cpu;

import java.util.Arrays;

import org.clipj.runtime.DType;
import org.clipj.runtime.Device;
import org.clipj.runtime.Tensor;

/** Argument checks shared by the op families: IllegalArgumentException naming the op and the shapes. */
final class Check {
    private Check() {}

    /** t is a non-null CPU F32 tensor. */
    static void f32(String op, String name, Tensor t) {
        cpu(op, name, t);
        if (t.dtype() != DType.F32) {
            throw new IllegalArgumentException(op + ": " + name + " must be F32, got " + t.dtype() + " " + t.shapeString());
        }
    }

    /** t is a non-null CPU I32 tensor. */
    static void i32(String op, String name, Tensor t) {
        cpu(op, name, t);
        if (t.dtype() != DType.I32) {
            throw new IllegalArgumentException(op + ": " + name + " must be I32, got " + t.dtype() + " " + t.shapeString());
        }
    }

    static void cpu(String op, String name, Tensor t) {
        if (t == null) throw new IllegalArgumentException(op + ": " + name + " is null");
        if (t.device() != Device.CPU) {
            throw new IllegalArgumentException(op + ": " + name + " is on " + t.device() + ", the CPU backend needs CPU tensors");
        }
    }

    /** t (F32) has exactly the expected shape, which was derived from tensor {@code refName}. */
    static void shape(String op, String name, Tensor t, String refName, Tensor ref, int... expected) {
        f32(op, name, t);
        if (!Arrays.equals(t.shape(), expected)) {
            throw new IllegalArgumentException(op + ": " + name + " has shape " + t.shapeString() + " but "
                    + refName + " " + ref.shapeString() + " needs " + Arrays.toString(expected));
        }
    }

    /** Same shape (both F32). */
    static void sameShape(String op, String aName, Tensor a, String bName, Tensor b) {
        f32(op, aName, a);
        f32(op, bName, b);
        if (!a.sameShape(b)) {
            throw new IllegalArgumentException(op + ": " + aName + " " + a.shapeString() + " and " + bName + " "
                    + b.shapeString() + " must have the same shape");
        }
    }

    /** Same number of elements (both F32). */
    static void sameNumel(String op, String aName, Tensor a, String bName, Tensor b) {
        f32(op, aName, a);
        f32(op, bName, b);
        if (a.numel() != b.numel()) {
            throw new IllegalArgumentException(op + ": " + aName + " " + a.shapeString() + " and " + bName + " "
                    + b.shapeString() + " must have the same number of elements");
        }
    }

    static void rank(String op, String name, Tensor t, int rank) {
        f32(op, name, t);
        if (t.rank() != rank) {
            throw new IllegalArgumentException(op + ": " + name + " must have rank " + rank + ", got " + t.shapeString());
        }
    }

    /** a and b do not share any element (F32 tensors are contiguous ranges of their arrays). */
    static void disjoint(String op, String aName, Tensor a, String bName, Tensor b) {
        boolean overlap = a.f32() == b.f32() && a.offset() < b.offset() + b.size() && b.offset() < a.offset() + a.size();
        if (overlap) throw new IllegalArgumentException(op + ": " + aName + " and " + bName + " must not overlap");
    }

    static void argument(String op, boolean ok, String message) {
        if (!ok) throw new IllegalArgumentException(op + ": " + message);
    }

    /** All but the last dimension multiplied: the row count of a (..., C) tensor. */
    static int rows(Tensor t) {
        return t.rank() == 0 ? 1 : Math.toIntExact(t.numel() / Math.max(1, t.dim(-1)));
    }
}
