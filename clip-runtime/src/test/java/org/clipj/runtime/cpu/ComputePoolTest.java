package org.clipj.runtime.cpu;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTimeoutPreemptively;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.lang.management.ManagementFactory;
import java.lang.management.ThreadMXBean;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicIntegerArray;
import java.util.concurrent.locks.LockSupport;

import jdk.jfr.Recording;
import jdk.jfr.consumer.RecordedEvent;
import jdk.jfr.consumer.RecordingFile;
import org.junit.jupiter.api.Test;

/**
 * ComputePool: every task exactly once, on several threads, failures rethrown, nesting and
 * concurrent callers; the caller parks (not spins) while a worker finishes a long last task, and
 * wakes whichever side of its spin budget the last task ends on.
 */
class ComputePoolTest {

    @Test
    void runsEveryTaskOnceAndUsesTheWorkers() throws InterruptedException {
        try (ComputePool pool = new ComputePool(3, "test-pool")) {
            for (int round = 0; round < 200; round++) {
                if (round % 50 == 0) Thread.sleep(2);   // let the workers park, then wake them
                int tasks = 1 + round % 37;
                AtomicIntegerArray counts = new AtomicIntegerArray(tasks);
                pool.run(tasks, t -> counts.incrementAndGet(t));
                for (int t = 0; t < tasks; t++) assertEquals(1, counts.get(t), "round " + round + " task " + t);
            }
            Set<String> threads = ConcurrentHashMap.newKeySet();
            for (int round = 0; round < 50 && threads.size() < 2; round++) {
                pool.run(8, t -> {
                    threads.add(Thread.currentThread().getName());
                    long until = System.nanoTime() + 200_000;
                    while (System.nanoTime() < until) Thread.onSpinWait();
                });
            }
            assertTrue(threads.size() >= 2, "tasks ran on one thread only: " + threads);
        }
    }

    @Test
    void aTaskFailureIsRethrownAndThePoolStaysUsable() {
        try (ComputePool pool = new ComputePool(2, "test-pool")) {
            IllegalStateException boom = new IllegalStateException("task 5 failed");
            IllegalStateException thrown = assertThrows(IllegalStateException.class, () -> pool.run(16, t -> {
                if (t == 5) throw boom;
            }));
            assertSame(boom, thrown);
            AtomicIntegerArray counts = new AtomicIntegerArray(4);
            pool.run(4, counts::incrementAndGet);
            for (int t = 0; t < 4; t++) assertEquals(1, counts.get(t));
        }
    }

    @Test
    void nestedAndConcurrentOpsComplete() throws InterruptedException {
        try (ComputePool pool = new ComputePool(2, "test-pool")) {
            AtomicIntegerArray inner = new AtomicIntegerArray(6 * 5);
            pool.run(6, outer -> pool.run(5, t -> inner.incrementAndGet(outer * 5 + t)));
            for (int i = 0; i < inner.length(); i++) assertEquals(1, inner.get(i), "nested task " + i);

            int callers = 4, tasks = 64;
            AtomicIntegerArray counts = new AtomicIntegerArray(callers * tasks);
            List<Thread> threads = new ArrayList<>();
            for (int c = 0; c < callers; c++) {
                int caller = c;
                threads.add(Thread.ofPlatform().start(() -> {
                    for (int round = 0; round < 20; round++) pool.run(tasks, t -> counts.incrementAndGet(caller * tasks + t));
                }));
            }
            for (Thread t : threads) t.join();
            for (int i = 0; i < counts.length(); i++) assertEquals(20, counts.get(i), "concurrent task " + i);
        }
    }

    @Test
    void theWorkersOfAnUnreachablePoolStop() throws InterruptedException {
        String name = "unreachable-pool-" + System.nanoTime();
        startAndDrop(name);
        long deadline = System.nanoTime() + 20_000_000_000L;
        while (workersNamed(name) > 0 && System.nanoTime() < deadline) {
            System.gc();
            Thread.sleep(50);
        }
        assertEquals(0, workersNamed(name), "workers of a pool nobody references are still alive");
    }

    private static void startAndDrop(String name) {
        ComputePool pool = new ComputePool(3, name);
        AtomicIntegerArray counts = new AtomicIntegerArray(8);
        pool.run(8, counts::incrementAndGet);
        assertEquals(2, workersNamed(name));
    }

    private static long workersNamed(String prefix) {
        return Thread.getAllStackTraces().keySet().stream().filter(t -> t.getName().startsWith(prefix) && t.isAlive()).count();
    }

    @Test
    void aClosedPoolRunsOnTheCaller() {
        ComputePool pool = new ComputePool(2, "test-pool");
        pool.close();
        Set<Thread> threads = ConcurrentHashMap.newKeySet();
        pool.run(8, t -> threads.add(Thread.currentThread()));
        assertEquals(Set.of(Thread.currentThread()), threads);
        assertThrows(IllegalArgumentException.class, () -> new ComputePool(0, "none"));
    }

    @Test
    void theCallerParksWhileAWorkerFinishesALongTask() throws Exception {
        ThreadMXBean threads = ManagementFactory.getThreadMXBean();
        try (ComputePool pool = new ComputePool(2, "test-pool")) {
            Thread caller = Thread.currentThread();
            for (int round = 0; round < 50; round++) {
                boolean warm = round >= 3;   // the first rounds load and link the wait path's classes on the caller
                AtomicBoolean workerSlept = new AtomicBoolean();
                AtomicIntegerArray counts = new AtomicIntegerArray(2);
                long cpu0 = threads.getCurrentThreadCpuTime(), wall0 = System.nanoTime();
                pool.run(2, t -> {
                    counts.incrementAndGet(t);
                    if (Thread.currentThread() == caller) {
                        busy(1_000_000);   // long enough for the spinning worker to claim the other task
                    } else {
                        workerSlept.set(warm);
                        LockSupport.parkNanos(warm ? 40_000_000 : 2_000_000);   // a worker off its CPU for 40 ms, as a JIT thread can make it
                    }
                });
                long cpu = threads.getCurrentThreadCpuTime() - cpu0, wall = System.nanoTime() - wall0;
                assertEquals(1, counts.get(0));
                assertEquals(1, counts.get(1));
                if (!workerSlept.get()) continue;   // warming up, or the caller ran both tasks: the worker was late
                assertTrue(wall >= 40_000_000, "run returned before the worker's task ended: " + wall + " ns");
                assertTrue(cpu < 20_000_000, "the caller used " + cpu / 1_000_000 + " ms of CPU waiting 40 ms for a worker");
                return;
            }
            throw new AssertionError("no worker took a task in 50 rounds");
        }
    }

    @Test
    void lastTasksEndingAroundTheSpinBudgetAlwaysWakeTheCaller() {
        assertTimeoutPreemptively(Duration.ofSeconds(60), () -> {
            try (ComputePool pool = new ComputePool(3, "test-pool")) {
                for (int round = 0; round < 3000; round++) {
                    long workerNanos = (round * 7919L) % 300_000;   // 0-300 us: either side of the caller's 100 us minimum spin
                    int tasks = 2 + round % 5;
                    AtomicIntegerArray counts = new AtomicIntegerArray(tasks);
                    Thread caller = Thread.currentThread();
                    pool.run(tasks, t -> {
                        if (Thread.currentThread() != caller) LockSupport.parkNanos(workerNanos);
                        counts.incrementAndGet(t);
                    });
                    for (int t = 0; t < tasks; t++) assertEquals(1, counts.get(t), "round " + round + " task " + t);
                }
            }
        });
    }

    @Test
    void aWaitForTheWorkersIsAJfrEvent() throws Exception {
        Path file = Files.createTempFile("compute-pool", ".jfr");
        try (Recording recording = new Recording(); ComputePool pool = new ComputePool(2, "test-pool")) {
            recording.enable("org.clipj.ComputePoolWait").withThreshold(Duration.ZERO);
            recording.start();
            Thread caller = Thread.currentThread();
            for (int round = 0; round < 20; round++) {
                pool.run(4, t -> {
                    if (Thread.currentThread() != caller) LockSupport.parkNanos(2_000_000);
                    else busy(200_000);
                });
            }
            recording.stop();
            recording.dump(file);
            List<RecordedEvent> waits = RecordingFile.readAllEvents(file).stream()
                    .filter(e -> e.getEventType().getName().equals("org.clipj.ComputePoolWait")).toList();
            assertTrue(!waits.isEmpty(), "no ComputePoolWait event in 20 ops whose worker tasks take 2 ms");
            for (RecordedEvent e : waits) assertEquals(4, e.getInt("tasks"));
            assertTrue(waits.stream().anyMatch(e -> e.getBoolean("parked")), "the caller never parked for a 2 ms task");
        } finally {
            Files.deleteIfExists(file);
        }
    }

    private static void busy(long nanos) {
        long until = System.nanoTime() + nanos;
        while (System.nanoTime() < until) Thread.onSpinWait();
    }

    @Test
    void workersOfAPoolLargerThanTheMachineDoNotSpin() {
        ThreadMXBean threads = ManagementFactory.getThreadMXBean();
        String name = "oversubscribed-pool-" + System.nanoTime();
        try (ComputePool pool = new ComputePool(Runtime.getRuntime().availableProcessors() + 2, name)) {
            pool.run(64, t -> { });
            List<Long> workers = Thread.getAllStackTraces().keySet().stream()
                    .filter(t -> t.getName().startsWith(name)).map(Thread::threadId).toList();
            long cpu0 = workers.stream().mapToLong(threads::getThreadCpuTime).sum();
            for (int op = 0; op < 200; op++) {
                pool.run(64, t -> { });
                busy(500_000);   // a gap a spinning worker fills with 200 us of CPU
            }
            long cpu = workers.stream().mapToLong(threads::getThreadCpuTime).sum() - cpu0;
            assertTrue(cpu < 25_000_000, workers.size() + " workers used " + cpu / 1_000_000
                    + " ms of CPU over 200 gaps of 500 us: they spin although the pool outnumbers the processors");
        }
    }
}
