package org.clipj.runtime.cpu;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.ArrayList;
import java.util.List;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicIntegerArray;

import org.junit.jupiter.api.Test;

/** ComputePool: every task exactly once, on several threads, failures rethrown, nesting and concurrent callers. */
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
}
