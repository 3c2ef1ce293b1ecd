package org.clipj.runtime.cpu;

/** Range splitting on CpuBackend's own {@link ComputePool}. */
final class Parallel {

    /** The body of a parallel loop: handles indices [from, to). */
    @FunctionalInterface
    interface Range {
        void run(int from, int to);
    }

    @FunctionalInterface
    interface ChunkBody {
        void run(int chunk, int from, int to);
    }

    private Parallel() {}

    /**
     * Runs body over [0, n) in chunks of at least {@code grain} indices on {@code pool}; runs
     * inline when the pool is null, single-threaded, or the range is one chunk.
     */
    static void range(ComputePool pool, int n, int grain, Range body) {
        if (n <= 0) return;
        int g = Math.max(1, grain);
        if (pool == null || pool.parallelism() <= 1 || n <= g) {
            body.run(0, n);
            return;
        }
        // At most 4 chunks per thread: enough to balance, few enough to stay cheap.
        int chunks = Math.min((n + g - 1) / g, 4 * pool.parallelism());
        pool.run(chunks, c -> body.run(bound(n, chunks, c), bound(n, chunks, c + 1)));
    }

    /** Number of chunks {@link #partials} will use for n indices: one per thread, or 1 inline. */
    static int chunks(ComputePool pool, int n, int grain) {
        if (pool == null || pool.parallelism() <= 1 || n <= Math.max(1, grain)) return 1;
        return Math.min((n + grain - 1) / grain, pool.parallelism());
    }

    /**
     * Runs body(chunk, from, to) for exactly {@code chunks} contiguous chunks of [0, n), in
     * parallel: for reductions that give each chunk its own partial buffer (deterministic merge).
     */
    static void partials(ComputePool pool, int n, int chunks, ChunkBody body) {
        if (chunks <= 1) {
            body.run(0, 0, n);
            return;
        }
        pool.run(chunks, c -> body.run(c, bound(n, chunks, c), bound(n, chunks, c + 1)));
    }

    /** First index of chunk c when [0, n) is cut into `chunks` contiguous chunks. */
    private static int bound(int n, int chunks, int c) {
        return (int) ((long) n * c / chunks);
    }
}
