package org.clipj.runtime;

import java.lang.System.Logger.Level;
import java.util.Locale;

import org.clipj.runtime.cpu.CpuBackend;
import org.clipj.runtime.cuda.CudaBackend;

/**
 * Backend selection: {@code cpu}, {@code cuda} or {@code auto}. {@code auto} picks CUDA when it
 * can start and the CPU otherwise, and logs which and why; an explicit {@code cuda} that cannot
 * start is an error, never a silent fallback.
 */
public final class Backends {
    private static final System.Logger LOG = System.getLogger(Backends.class.getName());

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
        return CudaBackend.open(System.getProperty("clip.cuda.binding", "panama"));
    }

    private static Backend log(Backend backend, String why) {
        LOG.log(Level.INFO, () -> "backend " + backend.name() + " [" + backend.description() + "]: " + why);
        return backend;
    }
}
