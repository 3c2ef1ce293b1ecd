package org.clipj.runtime.cpu;

/**
 * What every op-family call gets from {@link CpuBackend}, as its first argument: the pool the
 * backend's ops run on and which path to take (the Vector API fast path, or the plain serial scalar
 * reference that tests use as the oracle). Each family class holds both paths side by side and
 * picks one from this.
 */
record OpContext(ComputePool pool, boolean vector) {
    /** The pool on the vector path; null on the scalar reference path (Parallel runs the loop inline). */
    ComputePool parallel() {
        return vector ? pool : null;
    }
}
