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
 * Where the CUDA libraries are: CLIP_CUDA_LIB_PATH, then LD_LIBRARY_PATH, then /usr/local/cuda/lib64,
 * /usr/lib/x86_64-linux-gnu, then the lib folders of pip's nvidia-* packages (site-packages/nvidia/&#42;/lib).
 * The first folder holding a file of one of the sonames, in the order the sonames are given, wins.
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
        return new LibraryDiscovery(searchPath(System.getenv(), List.of(Path.of("/usr/local/cuda/lib64"),
                Path.of("/usr/lib/x86_64-linux-gnu")), pipSitePackages()));
    }

    /** The folders searched, in order, given the environment, the fixed folders and python's site-packages folders. */
    public static List<Path> searchPath(Map<String, String> env, List<Path> fixed, List<Path> sitePackages) {
        LinkedHashSet<Path> out = new LinkedHashSet<>();
        for (String var : List.of("CLIP_CUDA_LIB_PATH", "LD_LIBRARY_PATH")) {
            String value = env.get(var);
            if (value == null) continue;
            for (String part : value.split(":")) if (!part.isBlank()) out.add(Path.of(part));
        }
        out.addAll(fixed);
        for (Path site : sitePackages) {
            Path nvidia = site.resolve("nvidia");
            if (!Files.isDirectory(nvidia)) continue;
            try (Stream<Path> packages = Files.list(nvidia)) {
                packages.sorted().map(p -> p.resolve("lib")).filter(Files::isDirectory).forEach(out::add);
            } catch (IOException e) {
                // an unreadable site-packages folder holds no library we can load
            }
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
        String venv = System.getenv("VIRTUAL_ENV");
        if (venv != null) roots.add(Path.of(venv, "lib"));
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
}
