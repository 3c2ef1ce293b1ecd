package org.clipj.io;

import org.junit.jupiter.api.Assumptions;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.TimeUnit;

/**
 * A small tmpfs mounted for one test, to meet a real full or read-only file system. Needs root on
 * Linux (as here and in CI); where mounting fails the test is skipped with the reason.
 */
public final class Tmpfs implements AutoCloseable {
    private final Path dir;

    private Tmpfs(Path dir) {
        this.dir = dir;
    }

    /** Mounts a tmpfs with these mount options ("size=3m", "size=1m,ro") on dir (created if needed). */
    public static Tmpfs mount(Path dir, String options) throws IOException, InterruptedException {
        Files.createDirectories(dir);
        String output;
        boolean mounted;
        try {
            Process p = new ProcessBuilder("mount", "-t", "tmpfs", "-o", options, "tmpfs", dir.toString())
                    .redirectErrorStream(true).start();
            mounted = p.waitFor(20, TimeUnit.SECONDS) && p.exitValue() == 0;
            output = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8).strip();
        } catch (IOException e) {
            mounted = false;
            output = e.getMessage();
        }
        Assumptions.assumeTrue(mounted, "cannot mount a tmpfs on " + dir + " (needs root on Linux): " + output);
        return new Tmpfs(dir);
    }

    public Path dir() {
        return dir;
    }

    @Override
    public void close() throws IOException {
        try {
            for (List<String> command : List.of(List.of("umount", dir.toString()), List.of("umount", "-l", dir.toString()))) {
                Process p = new ProcessBuilder(command).redirectErrorStream(true).start();
                if (p.waitFor(20, TimeUnit.SECONDS) && p.exitValue() == 0) {
                    return;
                }
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
        throw new IOException("cannot unmount the test tmpfs " + dir);
    }
}
