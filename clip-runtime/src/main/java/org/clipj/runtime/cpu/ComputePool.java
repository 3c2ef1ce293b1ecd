package org.clipj.runtime.cpu;

import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicReference;
import java.util.concurrent.locks.LockSupport;

/**
 * CpuBackend's threads: the calling thread plus {@code parallelism - 1} daemon workers that run the
 * numbered tasks of one op at a time. Built for ops of 20 us to a few ms, back to back, as a
 * forward pass issues them: a worker spins for {@link #SPIN_NANOS} after its last task before it
 * parks, so the next op starts on every thread at once. (A ForkJoinPool woke its second worker
 * 100-250 us late on this 2-core VM, so half the batch-1 GEMMs of 1 ms ran on one thread.)
 * Tasks are claimed from a shared counter, which balances uneven tiles. A second op submitted while
 * one runs (another caller thread), and any op submitted from inside a task, runs on its caller alone.
 */
public final class ComputePool implements AutoCloseable {

    /** The body of a parallel op: task index in [0, tasks). */
    @FunctionalInterface
    public interface Tasks {
        void run(int task);
    }

    private static final long SPIN_NANOS = 200_000;   // covers the gaps between the ops of a forward pass
    private static final ThreadLocal<ComputePool> RUNNING = new ThreadLocal<>();   // the pool whose task this thread runs

    private final int parallelism;
    private final Thread[] workers;                     // parallelism - 1
    private final AtomicBoolean busy = new AtomicBoolean();
    private final AtomicReference<Job> current = new AtomicReference<>();
    private final AtomicInteger parked = new AtomicInteger();
    private volatile long generation;                   // bumped once per dispatched job
    private volatile boolean closed;

    /** One op: tasks claimed through next, counted in done; the first failure is kept and rethrown. */
    private static final class Job {
        final int tasks;
        final Tasks body;
        final AtomicInteger next = new AtomicInteger();
        final AtomicInteger done = new AtomicInteger();
        final AtomicReference<Throwable> failure = new AtomicReference<>();

        Job(int tasks, Tasks body) {
            this.tasks = tasks;
            this.body = body;
        }

        /** Runs tasks until none is left to claim. */
        void work() {
            for (int t = next.getAndIncrement(); t < tasks; t = next.getAndIncrement()) {
                try {
                    if (failure.get() == null) body.run(t);
                } catch (Throwable e) {
                    failure.compareAndSet(null, e);
                } finally {
                    done.incrementAndGet();
                }
            }
        }
    }

    public ComputePool(int parallelism, String name) {
        if (parallelism < 1) throw new IllegalArgumentException("ComputePool: parallelism must be >= 1, got " + parallelism);
        this.parallelism = parallelism;
        this.workers = new Thread[parallelism - 1];
        for (int i = 0; i < workers.length; i++) {
            workers[i] = Thread.ofPlatform().name(name + "-" + (i + 1)).daemon(true).unstarted(this::workerLoop);
            workers[i].start();
        }
    }

    /** True on a thread that is running a task of some pool (a worker always is). */
    static boolean inTask() {
        return RUNNING.get() != null;
    }

    /** Threads an op runs on: the caller and the workers. */
    public int parallelism() {
        return parallelism;
    }

    /**
     * Runs body(0) .. body(tasks - 1) on the caller and the workers and returns when all are done.
     * A task's exception is rethrown here (after the op's other tasks finished or were skipped).
     */
    public void run(int tasks, Tasks body) {
        if (tasks <= 0) return;
        if (tasks == 1 || parallelism == 1 || closed || RUNNING.get() == this || !busy.compareAndSet(false, true)) {
            runInline(tasks, body);
            return;
        }
        Job job = new Job(tasks, body);
        try {
            current.set(job);
            generation++;   // volatile write after the job is published: a worker that sees it finds the job
            if (parked.get() > 0) {
                for (Thread w : workers) LockSupport.unpark(w);
            }
            RUNNING.set(this);
            try {
                job.work();
            } finally {
                RUNNING.remove();
            }
            for (int spins = 0; job.done.get() < tasks; spins++) {
                if (spins < 1 << 16) Thread.onSpinWait();
                else Thread.yield();
            }
        } finally {
            current.set(null);
            busy.set(false);
        }
        rethrow(job.failure.get());
    }

    private void runInline(int tasks, Tasks body) {
        ComputePool outer = RUNNING.get();
        RUNNING.set(this);
        try {
            for (int t = 0; t < tasks; t++) body.run(t);
        } finally {
            if (outer == null) RUNNING.remove();
            else RUNNING.set(outer);
        }
    }

    private void workerLoop() {
        RUNNING.set(this);
        long seen = generation;
        while (!closed) {
            long spinUntil = System.nanoTime() + SPIN_NANOS;
            while (generation == seen && !closed && System.nanoTime() < spinUntil) Thread.onSpinWait();
            if (generation == seen && !closed) {
                parked.incrementAndGet();
                while (generation == seen && !closed) LockSupport.park(this);
                parked.decrementAndGet();
            }
            seen = generation;
            Job job = current.get();
            if (job != null) job.work();
        }
    }

    private static void rethrow(Throwable e) {
        if (e == null) return;
        if (e instanceof RuntimeException r) throw r;
        if (e instanceof Error err) throw err;
        throw new IllegalStateException(e);
    }

    /** Stops the workers (they exit after their current task); later ops run on their caller. */
    @Override
    public void close() {
        closed = true;
        for (Thread w : workers) LockSupport.unpark(w);
    }
}
