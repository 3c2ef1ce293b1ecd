package org.clipj;

import org.clipj.cuda.CudaDrivers;
import org.clipj.cuda.CudaException;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The library as a user's process meets it, each run in a JVM of its own without clipj's usual flags:
 * a CPU-only run (no --enable-native-access) loads no CUDA binding class, calls no restricted method and
 * logs the backend once for two models; without --add-modules jdk.incubator.vector the CPU backend is one
 * clear error, never a NoClassDefFoundError.
 */
class LibraryRunTest {

    /** The child process: two Clips on args[0] (cpu or auto), each embedding an image and a text. */
    public static final class TwoModels {
        public static void main(String[] args) throws IOException {
            Clip.Options options = Clip.Options.defaults().withDevice(args[0]).withVocab(Path.of(args[2]));
            byte[] image = Files.readAllBytes(Path.of(args[3]));
            for (int i = 0; i < 2; i++) {
                try (Clip clip = Clip.load(Path.of(args[1]), options)) {
                    float[][] img = clip.encodeImageBytes(List.of(image));
                    float[][] txt = clip.encodeTexts(List.of("a photo of a cat"));
                    System.out.println("embedded " + img[0].length + " " + txt[0].length + " on " + clip.backend().name());
                }
            }
        }
    }

    private record Run(int status, String out, String err, String classes) {
    }

    private static Run child(Path dir, List<String> jvmFlags, String device) throws Exception {
        List<String> command = new ArrayList<>(List.of(ProcessHandle.current().info().command().orElse("java"),
                "-Djava.awt.headless=true", "-Xlog:class+load=info:file=" + dir.resolve("classes.txt")));
        command.addAll(jvmFlags);
        command.addAll(List.of("-cp", System.getProperty("java.class.path"), TwoModels.class.getName(), device,
                TestAssets.golden("tiny-vit", "model.safetensors").toString(), TestAssets.vocab().toString(),
                TestAssets.golden("text-image", "images", "photo.jpg").toString()));
        Process p = new ProcessBuilder(command).redirectOutput(dir.resolve("out.txt").toFile())
                .redirectError(dir.resolve("err.txt").toFile()).start();
        assertTrue(p.waitFor(240, TimeUnit.SECONDS), "the child did not finish in 240 s");
        return new Run(p.exitValue(), Files.readString(dir.resolve("out.txt")), Files.readString(dir.resolve("err.txt")),
                Files.readString(dir.resolve("classes.txt")));
    }

    @Test
    void cpuOnlyRunNeedsNoNativeAccessAndLogsTheBackendOnce(@TempDir Path dir) throws Exception {
        // auto where this machine has no CUDA driver (it must then decide without loading native code), else cpu
        String device = CudaDrivers.unavailableWithoutLoading("panama").isPresent() ? "auto" : "cpu";
        Run run = child(dir, List.of("--add-modules", "jdk.incubator.vector"), device);
        assertEquals(0, run.status(), run.err());
        assertEquals(2, run.out().lines().filter(l -> l.equals("embedded 64 64 on cpu")).count(), run.out());
        assertFalse(run.err().contains("restricted method"), run.err());
        assertFalse(run.err().contains("--enable-native-access"), run.err());
        assertEquals(1, run.err().lines().filter(l -> l.contains("org.clipj.runtime.Backends - backend cpu")).count(), run.err());
        for (String binding : List.of("org.clipj.cuda.PanamaCudaDriver", "org.clipj.cuda.JCudaDriver", "org.clipj.cuda.SimCudaDriver", " jcuda.")) {
            assertFalse(run.classes().contains(binding), device + " run loaded " + binding);
        }
    }

    @Test
    void withoutTheVectorModuleTheCpuBackendIsOneClearError(@TempDir Path dir) throws Exception {
        Run run = child(dir, List.of(), "cpu");
        assertEquals(1, run.status(), run.err());
        assertTrue(run.err().contains("InvalidInputException: the CPU backend needs the Java Vector API"), run.err());
        assertTrue(run.err().contains("--add-modules jdk.incubator.vector"), run.err());
        assertFalse(run.err().contains("NoClassDefFoundError"), run.err());
        assertFalse(run.out().contains("embedded"), run.out());
    }

    @Test
    void jcudaIsOptionalAndItsBindingSaysWhatIsMissing() {
        // clip-native declares JCuda optional, so it is not on this module's class path
        assertThrows(ClassNotFoundException.class, () -> Class.forName("jcuda.driver.JCudaDriver"));
        Optional<String> why = CudaDrivers.unavailableWithoutLoading("jcuda");
        assertTrue(why.isPresent() && why.get().contains("org.jcuda:jcuda is not on the class path"), why.toString());
        CudaException e = assertThrows(CudaException.class, () -> CudaDrivers.open("jcuda", 0));
        assertTrue(e.getMessage().contains("org.jcuda:jcuda is not on the class path"), e.getMessage());
    }
}
