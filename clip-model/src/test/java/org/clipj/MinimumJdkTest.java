package org.clipj;

import org.junit.jupiter.api.Test;

import java.io.DataInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * One minimum JDK: the release the classes were compiled for (their class-file version), the one
 * README.md states, the one scripts/env.sh looks for and the example project's release are the same.
 */
class MinimumJdkTest {
    /** Class-file major version of release N is N + 44. */
    private static final int CLASS_FILE_OFFSET = 44;

    private static int number(Path file, String regex) throws IOException {
        Matcher m = Pattern.compile(regex).matcher(Files.readString(file));
        assertTrue(m.find(), file + " does not match " + regex);
        return Integer.parseInt(m.group(1));
    }

    @Test
    void readmeScriptsExampleAndCompiledClassesAgree() throws IOException {
        int compiled;
        try (InputStream in = Clip.class.getResourceAsStream("Clip.class")) {
            assertNotNull(in);
            DataInputStream data = new DataInputStream(in);
            assertEquals(0xCAFEBABE, data.readInt());
            data.readUnsignedShort(); // minor
            compiled = data.readUnsignedShort() - CLASS_FILE_OFFSET;
        }
        String property = System.getProperty("clip.root");
        assertNotNull(property, "system property clip.root (the checkout) is not set");
        Path root = Path.of(property);
        assertEquals(compiled, number(root.resolve("README.md"), "A JDK (\\d+) or newer"), "README.md");
        assertEquals(compiled, number(root.resolve("scripts/env.sh"), "(?m)^CLIP_MIN_JDK=(\\d+)$"), "scripts/env.sh");
        assertEquals(compiled, number(root.resolve("clip-model/src/example/pom.xml"),
                "<maven.compiler.release>(\\d+)</maven.compiler.release>"), "the example project");
    }
}
