package org.clipj.bench;

import java.lang.reflect.InvocationTargetException;
import java.lang.reflect.Proxy;
import java.util.Map;
import java.util.TreeMap;

import org.clipj.runtime.Backend;

/**
 * A Backend that runs every op on a delegate and adds the op's wall time to a per-op total
 * (a java.lang.reflect.Proxy: every Backend method, present and future, is timed without a
 * hand-written delegate). Ops are synchronous on the CPU, so the time of a call is the op's.
 * Not thread-safe: the model calls ops from one thread (an op's own workers are inside the call).
 */
final class ProfilingBackend {
    /** Calls and nanoseconds of one op name. */
    static final class OpTime {
        long calls;
        long nanos;
    }

    private final Map<String, OpTime> times = new TreeMap<>();
    private final Backend backend;

    ProfilingBackend(Backend delegate) {
        backend = (Backend) Proxy.newProxyInstance(Backend.class.getClassLoader(), new Class<?>[] {Backend.class},
                (proxy, method, args) -> {
                    long start = System.nanoTime();
                    try {
                        return method.invoke(delegate, args);
                    } catch (InvocationTargetException e) {
                        throw e.getCause();
                    } finally {
                        OpTime t = times.computeIfAbsent(method.getName(), k -> new OpTime());
                        t.calls++;
                        t.nanos += System.nanoTime() - start;
                    }
                });
    }

    /** The timed backend to build the model on. */
    Backend backend() {
        return backend;
    }

    /** The totals since the last reset, by op name. */
    Map<String, OpTime> times() {
        return times;
    }

    void reset() {
        times.clear();
    }
}
