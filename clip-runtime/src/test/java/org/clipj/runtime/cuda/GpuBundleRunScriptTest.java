package org.clipj.runtime.cuda;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.util.List;
import java.util.concurrent.TimeUnit;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * gpu-bundle/run.sh (scripts/gpu-run.sh) on a machine without a GPU: it must stop at once with one line
 * saying so, exit 2, and leave a report.json of the documented shape ({"device": null, "error", "ok": false,
 * "seconds"}), never a report that reads like a run. An nvidia-smi that fails stands in for the missing GPU,
 * so the check is the same on a machine that has one.
 */
class GpuBundleRunScriptTest {
    @TempDir Path tmp;

    @Test
    void withoutAGpuItFailsFastWithOneLineAndAReportSayingSo() throws IOException, InterruptedException {
        Path script = Path.of("..", "scripts", "gpu-run.sh").toAbsolutePath().normalize();
        assertTrue(Files.isRegularFile(script), "no " + script);
        Path bundle = Files.createDirectories(tmp.resolve("gpu-bundle")), bin = Files.createDirectories(tmp.resolve("bin"));
        Files.copy(script, bundle.resolve("run.sh"));
        Path smi = bin.resolve("nvidia-smi");
        Files.writeString(smi, "#!/bin/sh\necho 'NVIDIA-SMI has failed because it could not communicate with the NVIDIA driver' >&2\nexit 9\n");
        Files.setPosixFilePermissions(smi, PosixFilePermissions.fromString("rwxr-xr-x"));
        Path out = tmp.resolve("out"), stderr = tmp.resolve("stderr.txt");
        ProcessBuilder pb = new ProcessBuilder("bash", bundle.resolve("run.sh").toString()).redirectError(stderr.toFile())
                .redirectOutput(tmp.resolve("stdout.txt").toFile());
        pb.environment().put("OUT", out.toString());
        pb.environment().put("PATH", bin + ":" + System.getenv("PATH"));
        Process p = pb.start();
        assertTrue(p.waitFor(30, TimeUnit.SECONDS), "run.sh must fail fast without a GPU");
        assertEquals(2, p.exitValue());
        List<String> lines = Files.readAllLines(stderr, StandardCharsets.UTF_8);
        assertEquals(1, lines.size(), "one line: " + lines);
        assertEquals("gpu-bundle: no NVIDIA GPU here: nvidia-smi failed: NVIDIA-SMI has failed because it could not communicate with "
                + "the NVIDIA driver (report: " + out.resolve("report.json") + ")", lines.get(0));
        String report = Files.readString(out.resolve("report.json")).replaceAll("\\s+", " ").trim();
        assertTrue(report.matches("\\{ \"device\": null, \"error\": \"no NVIDIA GPU here: nvidia-smi failed: NVIDIA-SMI has failed "
                + "because it could not communicate with the NVIDIA driver\", \"ok\": false, \"seconds\": [0-9]+ }"), report);
    }
}
