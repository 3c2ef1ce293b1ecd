package org.clipj.cuda;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.SymbolLookup;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.stream.Stream;

/**
 * Where the CUDA libraries are: CLIP_CUDA_LIB_PATH, then LD_LIBRARY_PATH, then a conda environment's
 * $CONDA_PREFIX/lib, then /usr/local/cuda/lib64, /usr/lib/x86_64-linux-gnu, then the lib folders of pip's
 * nvidia-* packages (site-packages/nvidia/&#42;/lib) and of a torch wheel (site-packages/torch/lib), in the
 * site-packages of $VIRTUAL_ENV, $CONDA_PREFIX, ./.venv and ./venv (not activated), ~/.local, /usr/local,
 * /usr, and every folder of the sys.path of the python3 on PATH (so an importable torch or nvidia-* wheel
 * is found wherever it lives). The first folder holding a file of one of the sonames, in the order the
 * sonames are given, wins.
 */
public final class LibraryDiscovery {
    /** The dynamic loader's cache of sonames -> files (glibc's ldconfig writes it; absent elsewhere). */
    private static final Path LOADER_CACHE = Path.of("/etc/ld.so.cache");
    /** The folders the dynamic loader searches when a soname is not in its cache (ld.so(8) trusted directories). */
    private static final List<Path> LOADER_DEFAULT_DIRS = List.of(Path.of("/lib64"), Path.of("/usr/lib64"),
            Path.of("/lib"), Path.of("/usr/lib"));

    private final List<Path> dirs;

    public LibraryDiscovery(List<Path> dirs) {
        this.dirs = List.copyOf(dirs);
    }

    /** The search path of this process (environment and the standard folders). */
    public static LibraryDiscovery system() {
        List<Path> sites = new ArrayList<>(pipSitePackages());
        sites.addAll(pythonSysPath());
        return new LibraryDiscovery(searchPath(System.getenv(), List.of(Path.of("/usr/local/cuda/lib64"),
                Path.of("/usr/lib/x86_64-linux-gnu")), sites));
    }

    /** The folders searched, in order, given the environment, the fixed folders and python's site-packages folders. */
    public static List<Path> searchPath(Map<String, String> env, List<Path> fixed, List<Path> sitePackages) {
        LinkedHashSet<Path> out = new LinkedHashSet<>();
        for (String var : List.of("CLIP_CUDA_LIB_PATH", "LD_LIBRARY_PATH")) {
            String value = env.get(var);
            if (value == null) continue;
            for (String part : value.split(":")) if (!part.isBlank()) out.add(Path.of(part));
        }
        String conda = env.get("CONDA_PREFIX");
        if (conda != null && !conda.isBlank()) out.add(Path.of(conda, "lib"));
        out.addAll(fixed);
        for (Path site : sitePackages) {
            Path nvidia = site.resolve("nvidia");
            if (Files.isDirectory(nvidia)) {
                try (Stream<Path> packages = Files.list(nvidia)) {
                    packages.sorted().map(p -> p.resolve("lib")).filter(Files::isDirectory).forEach(out::add);
                } catch (IOException e) {
                    // an unreadable site-packages folder holds no library we can load
                }
            }
            Path torch = site.resolve("torch").resolve("lib");
            if (Files.isDirectory(torch)) out.add(torch);
        }
        return new ArrayList<>(out);
    }

    public List<Path> dirs() { return dirs; }

    /** The first existing file named by one of {@code sonames} (tried in order) in the search path. */
    public Optional<Path> find(String... sonames) {
        for (String soname : sonames)
            for (Path dir : dirs) {
                Path candidate = dir.resolve(soname);
                if (Files.isRegularFile(candidate)) return Optional.of(candidate);
            }
        return Optional.empty();
    }

    /**
     * Where the library would be found, decided without loading anything (so no restricted method is
     * called): {@link #find} in the search path, then the dynamic loader's cache and its default folders,
     * which {@link #load} reaches through the loader's own search by soname. Empty on systems without
     * the library (and on non-Linux systems, which have no such files).
     */
    public Optional<Path> locate(String... sonames) {
        Optional<Path> file = find(sonames);
        if (file.isPresent()) return file;
        byte[] cache = new byte[0];
        try {
            if (Files.isRegularFile(LOADER_CACHE)) cache = Files.readAllBytes(LOADER_CACHE);
        } catch (IOException e) {
            // an unreadable cache names no library; the default folders are still looked at
        }
        for (String soname : sonames) {
            Optional<Path> cached = inLoaderCache(cache, soname);
            if (cached.isPresent()) return cached;
        }
        return new LibraryDiscovery(LOADER_DEFAULT_DIRS).find(sonames);
    }

    /**
     * The file the loader cache maps {@code soname} to: the cache's string table holds each entry's soname
     * and file path as NUL-terminated strings, so an absolute path ending in "/soname" is that file.
     */
    static Optional<Path> inLoaderCache(byte[] cache, String soname) {
        String suffix = "/" + soname;
        int start = 0;
        for (int i = 0; i <= cache.length; i++) {
            if (i == cache.length || cache[i] == 0) {
                if (i - start > suffix.length() && cache[start] == '/') {
                    String s = new String(cache, start, i - start, StandardCharsets.ISO_8859_1);
                    if (s.endsWith(suffix) && Files.isRegularFile(Path.of(s))) return Optional.of(Path.of(s));
                }
                start = i + 1;
            }
        }
        return Optional.empty();
    }

    /**
     * A lookup over the first library found; when the search path has none, the dynamic loader's own
     * search by soname (ld.so.cache) is tried. Fails with a CudaException naming what was searched.
     */
    public SymbolLookup load(String what, String... sonames) {
        Optional<Path> file = find(sonames);
        if (file.isPresent()) {
            try {
                return SymbolLookup.libraryLookup(file.get(), Arena.global());
            } catch (IllegalArgumentException e) {
                throw new CudaException("cannot load " + what + " from " + file.get() + ": " + e.getMessage(), e);
            }
        }
        for (String soname : sonames) {
            try {
                return SymbolLookup.libraryLookup(soname, Arena.global());
            } catch (IllegalArgumentException e) {
                // not known to the dynamic loader either; try the next soname
            }
        }
        throw new CudaException(what + " not found: none of " + String.join(", ", sonames) + " in " + dirs
                + " (set CLIP_CUDA_LIB_PATH) nor known to the dynamic loader");
    }

    private static List<Path> pipSitePackages() {
        List<Path> roots = new ArrayList<>();
        for (String var : List.of("VIRTUAL_ENV", "CONDA_PREFIX")) {
            String prefix = System.getenv(var);
            if (prefix != null && !prefix.isBlank()) roots.add(Path.of(prefix, "lib"));
        }
        roots.add(Path.of(".venv", "lib").toAbsolutePath());
        roots.add(Path.of("venv", "lib").toAbsolutePath());
        roots.add(Path.of(System.getProperty("user.home"), ".local", "lib"));
        roots.add(Path.of("/usr/local/lib"));
        roots.add(Path.of("/usr/lib"));
        List<Path> sites = new ArrayList<>();
        for (Path root : roots) {
            if (!Files.isDirectory(root)) continue;
            try (Stream<Path> pythons = Files.list(root)) {
                pythons.filter(p -> p.getFileName().toString().startsWith("python3")).sorted().forEach(p -> {
                    sites.add(p.resolve("site-packages"));
                    sites.add(p.resolve("dist-packages"));
                });
            } catch (IOException e) {
                // unreadable: no python here
            }
        }
        return sites;
    }

    /** The folders of sys.path of the python3 on PATH (empty when there is none or it does not answer in 5 s). */
    private static List<Path> pythonSysPath() {
        try {
            Process p = new ProcessBuilder("python3", "-I", "-c", "import sys; print('\\n'.join(x for x in sys.path if x))")
                    .redirectErrorStream(true).start();
            p.getOutputStream().close();
            byte[] out = p.getInputStream().readAllBytes();
            if (!p.waitFor(5, java.util.concurrent.TimeUnit.SECONDS) || p.exitValue() != 0) {
                p.destroyForcibly();
                return List.of();
            }
            List<Path> dirs = new ArrayList<>();
            for (String line : new String(out, java.nio.charset.StandardCharsets.UTF_8).split("\n")) {
                if (!line.isBlank() && line.startsWith("/")) dirs.add(Path.of(line.trim()));
            }
            return dirs;
        } catch (IOException e) {
            return List.of(); // no python3: nothing to add
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            return List.of();
        }
    }
}
