package org.clipj.runtime.cpu;

import java.util.concurrent.ForkJoinPool;
import java.util.concurrent.ForkJoinTask;
import java.util.concurrent.RecursiveAction;

/** Range splitting on CpuBackend's own pool (never the common pool). */
final class Parallel {

    /** The body of a parallel loop: handles indices [from, to). */
    @FunctionalInterface
    interface Range {
        void run(int from, int to);
    }

    private Parallel() {}

    /**
     * Runs body over [0, n) in chunks of at least {@code grain} indices on {@code pool}; runs
     * inline when the pool is null, single-threaded, or the range is one chunk.
     */
    static void range(ForkJoinPool pool, int n, int grain, Range body) {
        if (n <= 0) return;
        int g = Math.max(1, grain);
        if (pool == null || pool.getParallelism() <= 1 || n <= g) {
            body.run(0, n);
            return;
        }
        // At most 4 chunks per thread: enough to balance, few enough to stay cheap.
        int chunks = Math.min((n + g - 1) / g, 4 * pool.getParallelism());
        Split task = new Split(body, n, chunks, 0, chunks);
        if (ForkJoinTask.inForkJoinPool() && ForkJoinTask.getPool() == pool) task.invoke();
        else pool.invoke(task);
    }

    /** Number of chunks {@link #partials} will use for n indices: one per thread, or 1 inline. */
    static int chunks(ForkJoinPool pool, int n, int grain) {
        if (pool == null || pool.getParallelism() <= 1 || n <= Math.max(1, grain)) return 1;
        return Math.min((n + grain - 1) / grain, pool.getParallelism());
    }

    /**
     * Runs body(chunk, from, to) for exactly {@code chunks} contiguous chunks of [0, n), in
     * parallel: for reductions that give each chunk its own partial buffer (deterministic merge).
     */
    static void partials(ForkJoinPool pool, int n, int chunks, ChunkBody body) {
        if (chunks <= 1) {
            body.run(0, 0, n);
            return;
        }
        RecursiveAction[] tasks = new RecursiveAction[chunks];
        for (int c = 0; c < chunks; c++) {
            int chunk = c, from = (int) ((long) n * c / chunks), to = (int) ((long) n * (c + 1) / chunks);
            tasks[c] = new RecursiveAction() {
                @Override protected void compute() { body.run(chunk, from, to); }
            };
        }
        RecursiveAction all = new RecursiveAction() {
            @Override protected void compute() { ForkJoinTask.invokeAll(tasks); }
        };
        if (ForkJoinTask.inForkJoinPool() && ForkJoinTask.getPool() == pool) all.invoke();
        else pool.invoke(all);
    }

    @FunctionalInterface
    interface ChunkBody {
        void run(int chunk, int from, int to);
    }

    private static final class Split extends RecursiveAction {
        private final Range body;
        private final int n, chunks, c0, c1;

        Split(Range body, int n, int chunks, int c0, int c1) {
            this.body = body;
            this.n = n;
            this.chunks = chunks;
            this.c0 = c0;
            this.c1 = c1;
        }

        @Override
        protected void compute() {
            if (c1 - c0 == 1) {
                body.run((int) ((long) n * c0 / chunks), (int) ((long) n * c1 / chunks));
                return;
            }
            int mid = (c0 + c1) >>> 1;
            invokeAll(new Split(body, n, chunks, c0, mid), new Split(body, n, chunks, mid, c1));
        }
    }
}
