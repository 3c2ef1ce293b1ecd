package org.clipj.runtime.cpu;

import java.lang.ref.Cleaner;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicReference;
import java.util.concurrent.locks.LockSupport;

/**
 * CpuBackend's threads: the calling thread plus {@code parallelism - 1} daemon workers that run the
 * numbered tasks of one op at a time. Built for ops of 20 us to a few ms, back to back, as a
 * forward pass issues them: a worker spins for {@link #SPIN_NANOS} after its last task before it
 * parks, so the next op starts on every thread at once (a ForkJoinPool woke its second worker
 * 100-250 us late on this 2-core VM, so half the batch-1 GEMMs of 1 ms ran on one thread); not when
 * the pool has more threads than the JVM has processors, where a spinning worker only takes a core
 * from a thread with work.
 * Tasks are claimed from a shared counter, which balances uneven tiles. The caller, its share done,
 * spins for the workers' last tasks only as long as a running worker could still need (twice its
 * own mean task time), then parks: a worker later than that has lost its CPU (to a JIT or GC thread
 * on a 2-core machine), and a parked caller lets the scheduler run it on the freed core at once,
 * where a spinning one kept that core busy until the worker's next time slice (bench/RESULTS.md,
 * tail latency). Such waits are JFR events (org.clipj.ComputePoolWait, off unless a recording
 * enables them). A second op submitted while one runs (another caller thread), and any op
 * submitted from inside a task, runs on its caller alone.
 * The workers stop at {@link #close()}, or when the pool becomes unreachable without it.
 */
public final class ComputePool implements AutoCloseable {

    /** The body of a parallel op: task index in [0, tasks). */
    @FunctionalInterface
    public interface Tasks {
        void run(int task);
    }

    private static final long SPIN_NANOS = 200_000;   // covers the gaps between the ops of a forward pass
    // The caller's spin for the workers' last tasks before it parks: at least what waking it costs
    // (100-250 us on a 2-vCPU VM), at most 1 ms.
    private static final long MIN_WAIT_SPIN_NANOS = 100_000;
    private static final long MAX_WAIT_SPIN_NANOS = 1_000_000;
    private static final Cleaner CLEANER = Cleaner.create();
    private static final ThreadLocal<Shared> RUNNING = new ThreadLocal<>();   // the pool whose task this thread runs

    private final int parallelism;
    private final Shared shared;          // all the workers see: they hold no reference to the pool itself
    private final Cleaner.Cleanable cleanable;

    /** The dispatch state the caller and the workers share. */
    private static final class Shared implements Runnable {
        final Thread[] workers;
        final AtomicBoolean busy = new AtomicBoolean();
        final AtomicReference<Job> current = new AtomicReference<>();
        final AtomicInteger parked = new AtomicInteger();
        final long spinNanos;            // SPIN_NANOS, or 0 when the pool's threads outnumber the processors
        volatile long generation;        // bumped once per dispatched job
        volatile boolean closed;

        Shared(int workers, long spinNanos) {
            this.workers = new Thread[workers];
            this.spinNanos = spinNanos;
        }

        /** Closes: the workers exit after their current task. */
        @Override
        public void run() {
            closed = true;
            for (Thread w : workers) LockSupport.unpark(w);
        }

        void workerLoop() {
            RUNNING.set(this);
            long seen = generation;
            while (!closed) {
                long spinUntil = System.nanoTime() + spinNanos;
                while (generation == seen && !closed && System.nanoTime() < spinUntil) Thread.onSpinWait();
                if (generation == seen && !closed) {
                    parked.incrementAndGet();   // before the re-check: a dispatcher that misses it sees the new generation here
                    while (generation == seen && !closed) LockSupport.park(this);
                    parked.decrementAndGet();
                }
                seen = generation;
                Job job = current.get();
                if (job != null) job.work();
            }
        }
    }

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

        volatile Thread waiter;   // the caller, once it parks for the last tasks

        /** Runs tasks until none is left to claim; returns how many this thread ran. */
        int work() {
            int ran = 0;
            for (int t = next.getAndIncrement(); t < tasks; t = next.getAndIncrement(), ran++) {
                try {
                    if (failure.get() == null) body.run(t);
                } catch (Throwable e) {
                    failure.compareAndSet(null, e);
                } finally {
                    if (done.incrementAndGet() == tasks) {
                        Thread w = waiter;   // read after the increment: a caller that set it re-checks done before parking
                        if (w != null) LockSupport.unpark(w);
                    }
                }
            }
            return ran;
        }

        /**
         * The caller, no task left to claim, waits for the rest: spins for spinNanos, then parks until
         * the last one ends. Returns whether it parked.
         */
        boolean awaitRest(long spinNanos) {
            long spinUntil = System.nanoTime() + spinNanos;
            while (done.get() < tasks && System.nanoTime() < spinUntil) Thread.onSpinWait();
            if (done.get() == tasks) return false;
            waiter = Thread.currentThread();
            while (done.get() < tasks) LockSupport.park(this);
            return true;
        }
    }

    /** JFR event: the caller waited for the workers to finish an op's last tasks (scripts/bench tail reads it). */
    @jdk.jfr.Name("org.clipj.ComputePoolWait")
    @jdk.jfr.Label("Compute pool wait")
    @jdk.jfr.Category("clipj")
    @jdk.jfr.Enabled(false)
    static final class WaitEvent extends jdk.jfr.Event {
        @jdk.jfr.Label("Tasks")
        int tasks;
        @jdk.jfr.Label("Workers parked at dispatch")
        int parkedWorkers;
        @jdk.jfr.Label("Caller parked")
        boolean parked;
    }

    public ComputePool(int parallelism, String name) {
        if (parallelism < 1) throw new IllegalArgumentException("ComputePool: parallelism must be >= 1, got " + parallelism);
        this.parallelism = parallelism;
        this.shared = new Shared(parallelism - 1, parallelism > Runtime.getRuntime().availableProcessors() ? 0 : SPIN_NANOS);
        Shared s = shared;
        for (int i = 0; i < s.workers.length; i++) {
            s.workers[i] = Thread.ofPlatform().name(name + "-" + (i + 1)).daemon(true).unstarted(s::workerLoop);
            s.workers[i].start();
        }
        cleanable = CLEANER.register(this, s);
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
        Shared s = shared;
        if (tasks == 1 || parallelism == 1 || s.closed || RUNNING.get() == s || !s.busy.compareAndSet(false, true)) {
            runInline(tasks, body);
            return;
        }
        Job job = new Job(tasks, body);
        try {
            s.current.set(job);
            s.generation++;   // volatile write after the job is published: a worker that sees it finds the job
            int parked = s.parked.get();
            if (parked > 0) {
                for (Thread w : s.workers) LockSupport.unpark(w);
            }
            RUNNING.set(s);
            long start = System.nanoTime();
            int ran;
            try {
                ran = job.work();
            } finally {
                RUNNING.remove();
            }
            if (job.done.get() < tasks) {
                WaitEvent wait = new WaitEvent();
                wait.begin();
                long perTask = (System.nanoTime() - start) / Math.max(1, ran);
                wait.parked = job.awaitRest(Math.min(MAX_WAIT_SPIN_NANOS, Math.max(MIN_WAIT_SPIN_NANOS, 2 * perTask)));
                wait.tasks = tasks;
                wait.parkedWorkers = parked;
                wait.commit();
            }
        } finally {
            s.current.set(null);
            s.busy.set(false);
        }
        rethrow(job.failure.get());
    }

    private void runInline(int tasks, Tasks body) {
        Shared outer = RUNNING.get();
        RUNNING.set(shared);
        try {
            for (int t = 0; t < tasks; t++) body.run(t);
        } finally {
            if (outer == null) RUNNING.remove();
            else RUNNING.set(outer);
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
        cleanable.clean();
    }
}
