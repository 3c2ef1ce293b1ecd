package org.clipj.cuda;

import java.lang.reflect.InvocationTargetException;
import java.nio.file.Path;
import java.util.Optional;

/**
 * Opens a {@link CudaDriver} by binding name: system property {@code clip.cuda.binding} =
 * panama (default) | jcuda | sim. The sim binding loads the simulator library from the system property
 * {@code clip.sim.library} when set, else from org.clipj.kernels.Kernels.simLibrary() (the clip-kernels jar)
 * when that class is on the class path. Each binding fails with a CudaException saying what is missing.
 */
public final class CudaDrivers {
    public static final String BINDING_PROPERTY = "clip.cuda.binding";
    public static final String SIM_LIBRARY_PROPERTY = "clip.sim.library";
    /** The CUDA driver library's names, tried in order. */
    static final String[] DRIVER_SONAMES = {"libcuda.so.1", "libcuda.so"};
    private static final String JCUDA_MISSING = "org.jcuda:jcuda is not on the class path (an optional dependency of clip-native)";

    private CudaDrivers() {}

    /** The binding named by {@code clip.cuda.binding}, default panama. */
    public static String configuredBinding() {
        return System.getProperty(BINDING_PROPERTY, "panama");
    }

    public static CudaDriver open(String binding, int deviceOrdinal) {
        return switch (binding) {
            case "panama" -> new PanamaCudaDriver(deviceOrdinal);
            case "jcuda" -> {
                if (!jcudaOnClassPath()) throw new CudaException("CUDA binding 'jcuda' unavailable: " + JCUDA_MISSING);
                yield new JCudaDriver(deviceOrdinal);
            }
            case "sim" -> new SimCudaDriver(simLibrary().orElseThrow(() -> new CudaException(
                    "CUDA binding 'sim' unavailable: " + simLibraryUnavailableReason())));
            default -> throw new CudaException("unknown CUDA binding '" + binding + "' (" + BINDING_PROPERTY + "=panama|jcuda|sim)");
        };
    }

    public static CudaDriver open() {
        return open(configuredBinding(), 0);
    }

    /**
     * Why {@code binding} certainly cannot open a device, decided without loading any native library (no
     * restricted method is called, so a CPU-only process needs no native access): the CUDA driver library
     * is nowhere the binding would look, or JCuda is not on the class path. Empty when opening may work.
     */
    public static Optional<String> unavailableWithoutLoading(String binding) {
        if ("jcuda".equals(binding) && !jcudaOnClassPath()) return Optional.of("CUDA binding 'jcuda' unavailable: " + JCUDA_MISSING);
        if (!"panama".equals(binding) && !"jcuda".equals(binding)) return Optional.empty();
        LibraryDiscovery discovery = LibraryDiscovery.system();
        if (discovery.locate(DRIVER_SONAMES).isPresent()) return Optional.empty();
        return Optional.of("no CUDA driver library (" + String.join(", ", DRIVER_SONAMES) + ") in "
                + discovery.dirs() + ", the dynamic loader's cache or its default folders");
    }

    // Without initializing it: JCuda's classes load its JNI library only when used.
    private static boolean jcudaOnClassPath() {
        try {
            Class.forName("jcuda.driver.JCudaDriver", false, CudaDrivers.class.getClassLoader());
            return true;
        } catch (ClassNotFoundException e) {
            return false;
        }
    }

    /** The simulator library: {@code clip.sim.library}, else the one packaged in the clip-kernels jar. */
    public static Optional<Path> simLibrary() {
        String property = System.getProperty(SIM_LIBRARY_PROPERTY);
        if (property != null) return Optional.of(Path.of(property));
        Object result = kernelsCall("simLibrary");
        if (result instanceof Optional<?> o && o.isPresent() && o.get() instanceof Path p) return Optional.of(p);
        return Optional.empty();
    }

    private static String simLibraryUnavailableReason() {
        Object reason = kernelsCall("simLibraryUnavailableReason");
        if (reason instanceof String s) return s;
        return "the clip-kernels jar (org.clipj.kernels.Kernels) is not on the class path and " + SIM_LIBRARY_PROPERTY + " is not set";
    }

    // clip-kernels depends on this module for its tests, so Kernels is reached reflectively.
    private static Object kernelsCall(String method) {
        try {
            Class<?> kernels = Class.forName("org.clipj.kernels.Kernels");
            return kernels.getMethod(method).invoke(null);
        } catch (ClassNotFoundException e) {
            return null;
        } catch (InvocationTargetException e) {
            throw new CudaException("org.clipj.kernels.Kernels." + method + " failed: " + e.getCause(), e.getCause());
        } catch (ReflectiveOperationException e) {
            throw new CudaException("org.clipj.kernels.Kernels." + method + ": " + e, e);
        }
    }
}
