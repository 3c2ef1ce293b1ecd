package org.clipj.cli;

import org.clipj.io.AtomicFiles;
import sun.misc.Signal;
import sun.misc.SignalHandler;

import java.io.PrintWriter;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * SIGINT (Ctrl-C) and SIGTERM during {@code clip train}: the first one only asks the run to stop
 * at its next step boundary (the command then saves a final checkpoint and exits 128 + the signal
 * number: 130 or 143); a second one removes the partial files being written and halts at once.
 * The handlers installed here are restored by {@link #close}.
 *
 * <p>Why {@code sun.misc.Signal} (module jdk.unsupported, on every JDK) and not a shutdown hook:
 * a hook runs only once the JVM is already exiting, so the run cannot finish its step and write
 * its checkpoint on the main thread with a chosen exit status, the hook would have to guess how
 * long to wait for it, and a second Ctrl-C could not cut that wait short (the JVM ignores further
 * signals while hooks run).
 */
final class StopSignals implements AutoCloseable {
    private final PrintWriter err;
    private final Map<Signal, SignalHandler> previous = new LinkedHashMap<>();
    private volatile Signal first;

    private StopSignals(PrintWriter err) {
        this.err = err;
    }

    /** Handles SIGINT and SIGTERM until closed; a signal the JVM reserves (-Xrs) keeps its default, with a warning. */
    static StopSignals install(PrintWriter err) {
        StopSignals signals = new StopSignals(err);
        for (String name : List.of("INT", "TERM")) {
            try {
                Signal signal = new Signal(name);
                signals.previous.put(signal, Signal.handle(signal, signals::handle));
            } catch (IllegalArgumentException e) {
                err.println("warning: cannot handle SIG" + name + " (" + e.getMessage()
                        + "): it will end the run without a final checkpoint");
            }
        }
        return signals;
    }

    private void handle(Signal signal) {
        if (first == null) {
            first = signal;
            err.println();
            err.println("SIG" + signal.getName() + ": stopping after the current step (send it again to quit at once)");
            err.flush();
            return;
        }
        AtomicFiles.removeInFlight();
        err.println("SIG" + signal.getName() + " again: quitting now, without a final checkpoint");
        err.flush();
        Runtime.getRuntime().halt(128 + signal.getNumber());
    }

    /** Whether a stop was asked for. */
    boolean received() {
        return first != null;
    }

    /** SIGINT or SIGTERM: the first signal received. */
    String signalName() {
        return "SIG" + first.getName();
    }

    /** 128 + the first signal's number: 130 for SIGINT, 143 for SIGTERM. */
    int exitCode() {
        return 128 + first.getNumber();
    }

    @Override
    public void close() {
        previous.forEach(Signal::handle);
    }
}
