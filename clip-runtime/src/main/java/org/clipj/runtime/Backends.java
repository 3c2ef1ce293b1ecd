package org.clipj.runtime;

import java.util.List;
import java.util.Locale;
import java.util.Optional;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;

import org.clipj.cuda.CudaDrivers;
import org.clipj.runtime.cpu.CpuBackend;
import org.clipj.runtime.cuda.CudaBackend;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Backend selection: {@code cpu}, {@code cuda} or {@code auto}. {@code auto} picks CUDA when it
 * can start and the CPU otherwise, and logs which and why; an explicit {@code cuda} that cannot
 * start is an error, never a silent fallback. On a machine without a CUDA driver library {@code auto} decides
 * without loading any native library, so a CPU-only process calls no restricted method and needs no
 * {@code --enable-native-access}. The choice is logged at INFO once per process (later identical choices
 * at DEBUG), so a process that loads several models says it once.
 */
public final class Backends {
    private static final Logger LOG = LoggerFactory.getLogger(Backends.class);
    private static final Set<String> LOGGED = ConcurrentHashMap.newKeySet();

    private Backends() {}

    /** The names {@link #create(String)} accepts (any case). */
    public static final List<String> NAMES = List.of("auto", "cpu", "cuda");

    /** A backend name and where it came from (said in the log line and in the error for a bad name). */
    public record Request(String name, String source) {
        /** The name, checked: an unknown one is an error naming its source. */
        public String checkedName() {
            String key = key(name);
            if (!NAMES.contains(key)) throw unknown(name, source);
            return key;
        }
    }

    /**
     * The backend that was asked for by name, where one was given (a --device flag, an option); else the one
     * the environment names (see {@link #fromEnvironment()}). {@code source} says where the name came from.
     */
    public static Backend select(String requested, String source) {
        return select(requested, source, false);
    }

    /**
     * As {@link #select(String, String)}; tf32 = true opens a CUDA backend whose F32 GEMMs run on TF32 tensor cores
     * (see {@link CudaBackend#open(String, boolean)}); the CPU backend ignores it.
     */
    public static Backend select(String requested, String source, boolean tf32) {
        Request request = requested == null ? requestFromEnvironment() : new Request(requested, source);
        return create(request.name(), request.source(), tf32);
    }

    /** The backend named by {@code clip.backend}, else env {@code CLIP_BACKEND}, else {@code auto}. */
    public static Backend fromEnvironment() {
        Request request = requestFromEnvironment();
        return create(request.name(), request.source(), false);
    }

    /** What {@link #fromEnvironment()} would create, unchecked (a process that hands the name on, e.g. to Spark executors). */
    public static Request requestFromEnvironment() {
        return request(System.getProperty("clip.backend"), System.getenv("CLIP_BACKEND"));
    }

    /** The precedence of {@link #fromEnvironment()}: a non-blank property, then a non-blank env var, then auto. */
    static Request request(String property, String env) {
        if (property != null && !property.isBlank()) return new Request(property, "system property clip.backend=" + property);
        if (env != null && !env.isBlank()) return new Request(env, "environment CLIP_BACKEND=" + env);
        return new Request("auto", "default (neither clip.backend nor CLIP_BACKEND is set)");
    }

    /** A backend by name: "cpu", "cuda" or "auto" (case-insensitive). */
    public static Backend create(String name) {
        return create(name, "requested by name", false);
    }

    private static Backend create(String name, String source, boolean tf32) {
        return switch (key(name)) {
            case "cpu" -> log(new CpuBackend(), source);
            case "cuda" -> {
                try {
                    yield log(openCuda(tf32), source);
                } catch (RuntimeException e) {
                    throw new InvalidInputException("CUDA backend not available: " + e.getMessage()
                            + " (backend 'cuda' " + source + ")", e);
                }
            }
            case "auto" -> {
                Optional<String> absent = CudaBackend.unavailableWithoutLoading(CudaDrivers.configuredBinding());
                if (absent.isPresent()) {
                    yield log(new CpuBackend(), source + "; auto chose cpu because CUDA cannot start: " + absent.get());
                }
                Backend cuda;
                try {
                    cuda = openCuda(tf32);
                } catch (RuntimeException e) {
                    yield log(new CpuBackend(), source + "; auto chose cpu because CUDA cannot start: " + e.getMessage());
                }
                yield log(cuda, source + "; auto chose cuda: a driver, a GPU and the kernels are present");
            }
            default -> throw unknown(name, source);
        };
    }

    private static String key(String name) {
        return name == null ? "" : name.trim().toLowerCase(Locale.ROOT);
    }

    private static InvalidInputException unknown(String name, String source) {
        return new InvalidInputException("unknown backend '" + name + "' (" + source + "): expected cpu, cuda or auto");
    }

    /** CUDA through the driver binding of {@code clip.cuda.binding} (panama, jcuda or sim; default panama). */
    private static Backend openCuda(boolean tf32) {
        return CudaBackend.open(CudaDrivers.configuredBinding(), tf32);
    }

    private static Backend log(Backend backend, String why) {
        String chosen = "backend " + backend.name() + " [" + backend.description() + "]";
        if (LOGGED.add(chosen)) LOG.info("{}: {}", chosen, why);
        else LOG.debug("{}: {}", chosen, why);
        return backend;
    }
}
