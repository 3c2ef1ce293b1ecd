package org.clipj.cuda;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.Optional;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class LibraryDiscoveryTest {
    @TempDir Path tmp;

    private Path dir(String name, String... files) throws IOException {
        Path d = Files.createDirectories(tmp.resolve(name));
        for (String f : files) Files.writeString(d.resolve(f), "not really a library");
        return d;
    }

    @Test
    void searchOrderIsClipPathThenLdLibraryPathThenFixedThenPip() throws IOException {
        Path clip = dir("clip"), ld1 = dir("ld1"), ld2 = dir("ld2"), fixed = dir("fixed");
        Path site = dir("site");
        Path cublasLib = Files.createDirectories(site.resolve("nvidia/cublas/lib"));
        Path nvrtcLib = Files.createDirectories(site.resolve("nvidia/cuda_nvrtc/lib"));
        Files.createDirectories(site.resolve("nvidia/no_lib_folder"));
        List<Path> path = LibraryDiscovery.searchPath(
                Map.of("CLIP_CUDA_LIB_PATH", clip.toString(), "LD_LIBRARY_PATH", ld1 + "::" + ld2 + ":" + clip),
                List.of(fixed), List.of(site, tmp.resolve("no-such-site")));
        assertEquals(List.of(clip, ld1, ld2, fixed, cublasLib, nvrtcLib), path);
    }

    @Test
    void condaPrefixAndTorchWheelLibFoldersAreSearched() throws IOException {
        Path conda = dir("conda"), condaLib = dir("conda/lib"), fixed = dir("fixed"), site = dir("site");
        Path torchLib = Files.createDirectories(site.resolve("torch/lib"));
        Path cublasLib = Files.createDirectories(site.resolve("nvidia/cublas/lib"));
        List<Path> path = LibraryDiscovery.searchPath(Map.of("CONDA_PREFIX", conda.toString()), List.of(fixed), List.of(site));
        assertEquals(List.of(condaLib, fixed, cublasLib, torchLib), path);
    }

    @Test
    void firstFolderWithTheFileWinsAndSonamesAreTriedInOrder() throws IOException {
        Path first = dir("first", "libcublasLt.so.12");
        Path second = dir("second", "libcublasLt.so.13", "libcublasLt.so.12");
        LibraryDiscovery discovery = new LibraryDiscovery(List.of(first, second));
        assertEquals(Optional.of(second.resolve("libcublasLt.so.13")), discovery.find("libcublasLt.so.13", "libcublasLt.so.12"));
        assertEquals(Optional.of(first.resolve("libcublasLt.so.12")), discovery.find("libcublasLt.so.12"));
        assertEquals(Optional.empty(), discovery.find("libnvrtc.so.13"));
    }

    @Test
    void aMissingLibraryIsACudaExceptionNamingWhatWasSearched() throws IOException {
        Path empty = dir("empty");
        LibraryDiscovery discovery = new LibraryDiscovery(List.of(empty));
        CudaException e = assertThrows(CudaException.class, () -> discovery.load("cuBLASLt", "libclipj-no-such-lib.so.13"));
        assertTrue(e.getMessage().contains("cuBLASLt not found"), e.getMessage());
        assertTrue(e.getMessage().contains("libclipj-no-such-lib.so.13"), e.getMessage());
        assertTrue(e.getMessage().contains(empty.toString()), e.getMessage());
        assertTrue(e.getMessage().contains("CLIP_CUDA_LIB_PATH"), e.getMessage());
    }

    @Test
    void aFileThatIsNotALibraryFailsWithItsPath() throws IOException {
        Path fake = dir("fake", "libcuda.so.1");
        CudaException e = assertThrows(CudaException.class,
                () -> new LibraryDiscovery(List.of(fake)).load("the CUDA driver library", "libcuda.so.1"));
        assertTrue(e.getMessage().contains(fake.resolve("libcuda.so.1").toString()), e.getMessage());
    }

    @Test
    void locateFindsTheSearchPathThenTheLoaderCacheWithoutLoading() throws IOException {
        Path lib = dir("lib", "libcuda.so.1");
        assertEquals(Optional.of(lib.resolve("libcuda.so.1")), new LibraryDiscovery(List.of(lib)).locate("libcuda.so.1"));
        // the cache's string table: NUL-terminated sonames and paths among binary fields
        String table = "glibc-ld.so.cache1.1\0\1\2libfoo.so.1\0" + lib.resolve("libcuda.so.1") + "\0/usr/lib/libbar.so.2\0";
        byte[] cache = table.getBytes(java.nio.charset.StandardCharsets.ISO_8859_1);
        assertEquals(Optional.of(lib.resolve("libcuda.so.1")), LibraryDiscovery.inLoaderCache(cache, "libcuda.so.1"));
        assertEquals(Optional.empty(), LibraryDiscovery.inLoaderCache(cache, "libcuda.so"), "a soname is matched whole");
        assertEquals(Optional.empty(), LibraryDiscovery.inLoaderCache(cache, "libbar.so.2"), "a cached path that is not a file");
        assertEquals(Optional.empty(), new LibraryDiscovery(List.of(dir("empty"))).locate("libclipj-no-such-lib.so.7"));
    }
}
