package org.clipj.cli;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

class TokenizeCommandTest {
    private final StringWriter out = new StringWriter();
    private final StringWriter err = new StringWriter();

    private static String vocab() {
        String prop = System.getProperty("clip.shared");
        Path dir = prop != null ? Path.of(prop) : Path.of("..", "..", "shared");
        if (!Files.isDirectory(dir) && prop == null) {
            dir = Path.of("..", "shared");
        }
        Path gz = dir.resolve("vocab/bpe_simple_vocab_16e6.txt.gz");
        assertTrue(Files.isRegularFile(gz), "vocab missing: " + gz.toAbsolutePath());
        return gz.toString();
    }

    private int run(String... args) {
        return Main.run(new PrintWriter(out), new PrintWriter(err), args);
    }

    @AfterEach
    void restoreEnvironment() {
        TokenizeCommand.environment = System::getenv;
    }

    @Test
    void tokenizesEachTextInOrder() throws Exception {
        assertEquals(0, run("tokenize", "--vocab", vocab(), "--context", "8", "--", "a dog", "-a cat"), err.toString());
        JsonNode tokens = new ObjectMapper().readTree(out.toString()).get("tokens");
        assertEquals(2, tokens.size());
        assertEquals("[49406,320,1929,49407,0,0,0,0]", tokens.get(0).toString());
        assertEquals(8, tokens.get(1).size());
        assertEquals(49406, tokens.get(1).get(0).intValue());
        assertEquals(268, tokens.get(1).get(1).intValue());   // "-"
    }

    @Test
    void truncatesUnlessToldNot() throws Exception {
        String longText = "word ".repeat(20);
        assertEquals(0, run("tokenize", "--vocab", vocab(), "--context", "6", longText));
        JsonNode row = new ObjectMapper().readTree(out.toString()).get("tokens").get(0);
        assertEquals(49407, row.get(5).intValue());
        assertEquals(2, run("tokenize", "--vocab", vocab(), "--context", "6", "--no-truncate", longText));
        assertTrue(err.toString().contains("error: ") && err.toString().contains("too long"), err.toString());
    }

    @Test
    void vocabFromEnvironmentOrAClearError() throws Exception {
        String gz = vocab();
        TokenizeCommand.environment = Map.of("CLIP_VOCAB", gz)::get;
        assertEquals(0, run("tokenize", "a cat"), err.toString());
        assertEquals("[49406,320,2368,49407]", new ObjectMapper().readTree(out.toString()).get("tokens").get(0)
                .toString().replace(",0", ""));

        TokenizeCommand.environment = name -> null;
        assertEquals(2, run("tokenize", "a cat"));
        assertTrue(err.toString().contains("error: the CLIP BPE vocab is needed"), err.toString());
        assertTrue(err.toString().contains("bpe_simple_vocab_16e6.txt.gz"), err.toString());
    }
}
