package org.clipj.runtime;

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

    /** The backend named by {@code clip.backend}, else env {@code CLIP_BACKEND}, else {@code auto}. */
    public static Backend fromEnvironment() {
        String property = System.getProperty("clip.backend");
        if (property != null && !property.isBlank()) return create(property, "system property clip.backend=" + property);
        String env = System.getenv("CLIP_BACKEND");
        if (env != null && !env.isBlank()) return create(env, "environment CLIP_BACKEND=" + env);
        return create("auto", "default (neither clip.backend nor CLIP_BACKEND is set)");
    }

    /** A backend by name: "cpu", "cuda" or "auto" (case-insensitive). */
    public static Backend create(String name) {
        return create(name, "requested by name");
    }

    private static Backend create(String name, String source) {
        String key = name == null ? "" : name.trim().toLowerCase(Locale.ROOT);
        return switch (key) {
            case "cpu" -> log(new CpuBackend(), source);
            case "cuda" -> {
                try {
                    yield log(openCuda(), source);
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
                    cuda = openCuda();
                } catch (RuntimeException e) {
                    yield log(new CpuBackend(), source + "; auto chose cpu because CUDA cannot start: " + e.getMessage());
                }
                yield log(cuda, source + "; auto chose cuda: a driver, a GPU and the kernels are present");
            }
            default -> throw new InvalidInputException("unknown backend '" + name + "' (" + source
                    + "): expected cpu, cuda or auto");
        };
    }

    /** CUDA through the driver binding of {@code clip.cuda.binding} (panama, jcuda or sim; default panama). */
    private static Backend openCuda() {
        return CudaBackend.open(CudaDrivers.configuredBinding());
    }

    private static Backend log(Backend backend, String why) {
        String chosen = "backend " + backend.name() + " [" + backend.description() + "]";
        if (LOGGED.add(chosen)) LOG.info("{}: {}", chosen, why);
        else LOG.debug("{}: {}", chosen, why);
        return backend;
    }
}
