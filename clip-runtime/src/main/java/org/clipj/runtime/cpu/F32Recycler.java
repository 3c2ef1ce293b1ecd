package org.clipj.runtime.cpu;

import java.util.ArrayDeque;
import java.util.HashMap;
import java.util.Map;

/**
 * F32 arrays given back by {@link CpuBackend#release}, kept by length for a later
 * {@link CpuBackend#empty} (no allocation, no GC, no page faults on fresh memory); at most
 * {@value #PER_LENGTH} of each length.
 */
final class F32Recycler {
    private static final int PER_LENGTH = 8;   // a residual block holds up to 6 activations of one shape
    private final Map<Integer, ArrayDeque<float[]>> free = new HashMap<>();

    /** A kept array of n floats (contents unspecified), or a new one. */
    synchronized float[] take(int n) {
        ArrayDeque<float[]> kept = free.get(n);
        float[] storage = kept == null ? null : kept.pollLast();
        return storage != null ? storage : new float[n];
    }

    /** Keeps storage unless it is kept already or {@value #PER_LENGTH} of its length are. */
    synchronized void give(float[] storage) {
        ArrayDeque<float[]> kept = free.computeIfAbsent(storage.length, k -> new ArrayDeque<>());
        if (kept.size() < PER_LENGTH && !kept.contains(storage)) kept.addLast(storage);
    }
}
