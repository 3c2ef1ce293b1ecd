package org.clipj.kernels;

import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.Optional;

/**
 * The compiled kernels of kernels/src/*.cu, as the build packaged them: the CUDA fatbin (sm_80, sm_90a,
 * compute_90 PTX) for cuModuleLoadData and the simulator library for the sim binding. When the build
 * machine lacked nvcc or g++, the resource is absent and a marker says why; the *UnavailableReason
 * methods return that text.
 */
public final class Kernels {
    private static final String DIR = "/org/clipj/kernels/";
    public static final String FATBIN = "clipkernels.fatbin";
    public static final String SIM_LIBRARY = "libclipkernels_sim.so";

    private static volatile Path simLibrary;

    private Kernels() {}

    /** The fatbin's bytes, or empty when the build had no nvcc (see {@link #fatbinUnavailableReason()}). */
    public static Optional<byte[]> fatbin() {
        try (InputStream in = Kernels.class.getResourceAsStream(DIR + FATBIN)) {
            return in == null ? Optional.empty() : Optional.of(in.readAllBytes());
        } catch (IOException e) {
            throw new UncheckedIOException("reading resource " + DIR + FATBIN, e);
        }
    }

    /** Why {@link #fatbin()} is empty; null when it is present. */
    public static String fatbinUnavailableReason() {
        return unavailableReason(FATBIN);
    }

    /**
     * The simulator library extracted to a temporary file (once per JVM; deleted on exit) with its launch
     * limits beside it ({@code <file>.limits}), or empty when
     * the build had no g++ (see {@link #simLibraryUnavailableReason()}).
     */
    public static Optional<Path> simLibrary() {
        Path p = simLibrary;
        if (p != null) return Optional.of(p);
        synchronized (Kernels.class) {
            if (simLibrary != null) return Optional.of(simLibrary);
            try (InputStream in = Kernels.class.getResourceAsStream(DIR + SIM_LIBRARY)) {
                if (in == null) return Optional.empty();
                Path file = Files.createTempFile("libclipkernels_sim", ".so");
                file.toFile().deleteOnExit();
                Files.copy(in, file, StandardCopyOption.REPLACE_EXISTING);
                // The launch limits the simulator's driver reads beside its library (kernels/build.sh).
                try (InputStream limits = Kernels.class.getResourceAsStream(DIR + SIM_LIBRARY + ".limits")) {
                    if (limits != null) {
                        Path limitsFile = file.resolveSibling(file.getFileName() + ".limits");
                        limitsFile.toFile().deleteOnExit();
                        Files.copy(limits, limitsFile, StandardCopyOption.REPLACE_EXISTING);
                    }
                }
                simLibrary = file;
                return Optional.of(file);
            } catch (IOException e) {
                throw new UncheckedIOException("extracting resource " + DIR + SIM_LIBRARY, e);
            }
        }
    }

    /** Why {@link #simLibrary()} is empty; null when it is present. */
    public static String simLibraryUnavailableReason() {
        return unavailableReason(SIM_LIBRARY);
    }

    private static String unavailableReason(String resource) {
        if (Kernels.class.getResource(DIR + resource) != null) return null;
        try (InputStream in = Kernels.class.getResourceAsStream(DIR + resource + ".missing")) {
            if (in == null) return resource + " is not in the clip-kernels jar (and no marker says why)";
            return new String(in.readAllBytes(), StandardCharsets.UTF_8).strip();
        } catch (IOException e) {
            throw new UncheckedIOException("reading resource " + DIR + resource + ".missing", e);
        }
    }
}
