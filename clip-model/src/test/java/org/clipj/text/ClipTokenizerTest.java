package org.clipj.text;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import org.clipj.runtime.InvalidInputException;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.zip.GZIPInputStream;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class ClipTokenizerTest {
    private static ClipTokenizer tokenizer;

    static Path shared() {
        String prop = System.getProperty("clip.shared");
        Path dir = prop != null ? Path.of(prop) : Path.of("..", "..", "shared");
        if (!Files.isDirectory(dir) && prop == null) {
            dir = Path.of("..", "shared");
        }
        assertTrue(Files.isDirectory(dir.resolve("golden")), "golden data missing under " + dir.toAbsolutePath());
        return dir;
    }

    static Path vocabGz() {
        return shared().resolve("vocab/bpe_simple_vocab_16e6.txt.gz");
    }

    @BeforeAll
    static void load() {
        tokenizer = ClipTokenizer.load(vocabGz());
    }

    private static List<JsonNode> goldenLines() throws IOException {
        ObjectMapper json = new ObjectMapper();
        List<JsonNode> lines = new ArrayList<>();
        for (String line : Files.readAllLines(shared().resolve("golden/text-image/tokenizer.jsonl"))) {
            if (!line.isBlank()) {
                lines.add(json.readTree(line));
            }
        }
        assertTrue(lines.size() >= 30, "tokenizer.jsonl has " + lines.size() + " lines");
        return lines;
    }

    private static int[] ints(JsonNode array) {
        int[] v = new int[array.size()];
        for (int i = 0; i < v.length; i++) {
            v[i] = array.get(i).intValue();
        }
        return v;
    }

    @Test
    void vocabShape() {
        assertEquals(49408, tokenizer.vocabSize());
        assertEquals(49406, tokenizer.sotToken());
        assertEquals(49407, tokenizer.eotToken());
        assertEquals(ClipTokenizer.MAX_MERGES, tokenizer.mergeCount());
    }

    @Test
    void everyGoldenLineExact() throws IOException {
        for (JsonNode line : goldenLines()) {
            String text = line.get("text").asText();
            int[] bpe = tokenizer.encode(text);
            assertArrayEquals(ints(line.get("bpe")), bpe, () -> "bpe of " + text);
            assertArrayEquals(ints(line.get("tokens77")), tokenizer.tokenize(List.of(text), 77, true)[0],
                    () -> "tokens77 of " + text);
            assertEquals(line.get("decoded").asText(), tokenizer.decode(bpe), () -> "decoded of " + text);
        }
    }

    @Test
    void tooLongWithoutTruncationNamesTheText() {
        String text = "word ".repeat(100);
        InvalidInputException e = assertThrows(InvalidInputException.class,
                () -> tokenizer.tokenize(List.of("ok", text), 77, false));
        assertTrue(e.getMessage().contains("word word"), e.getMessage());
        int[] truncated = tokenizer.tokenize(List.of(text), 77, true)[0];
        assertEquals(tokenizer.eotToken(), truncated[76]);
        assertEquals(tokenizer.sotToken(), truncated[0]);
    }

    @Test
    void htmlUnescapeMatchesPython() {
        // expectations printed by Python 3 html.unescape on the same inputs
        assertEquals("& < > \" ' \u00a0\u00e9", HtmlUnescape.unescape("&amp; &lt; &gt; &quot; &#39; &nbsp;&eacute;"));
        assertEquals("\u00a9 2024 \u00acaname; \u00acit;", HtmlUnescape.unescape("&copy 2024 &notaname; &notit;"));
        assertEquals("\u20ac \ufffd \ufffd A \u2019", HtmlUnescape.unescape("&#128; &#0; &#x110000; &#x41 &rsquo;"));
        assertEquals("x", HtmlUnescape.unescape("&#1;x"));
        assertEquals("\u2233 \uD835\uDD04", HtmlUnescape.unescape("&CounterClockwiseContourIntegral; &Afr;"));
    }

    @Test
    void concurrentEncodingAgrees() throws Exception {
        List<JsonNode> lines = goldenLines();
        ClipTokenizer fresh = ClipTokenizer.load(vocabGz());
        Thread[] threads = new Thread[4];
        List<Throwable> failures = java.util.Collections.synchronizedList(new ArrayList<>());
        for (int t = 0; t < threads.length; t++) {
            threads[t] = new Thread(() -> {
                for (JsonNode line : lines) {
                    if (!java.util.Arrays.equals(ints(line.get("bpe")), fresh.encode(line.get("text").asText()))) {
                        failures.add(new AssertionError(line.get("text").asText()));
                    }
                }
            });
            threads[t].start();
        }
        for (Thread t : threads) {
            t.join();
        }
        assertTrue(failures.isEmpty(), failures.toString());
    }

    @Test
    void huggingFacePairTokenizesIdentically(@TempDir Path dir) throws IOException {
        List<String> merges;
        try (GZIPInputStream in = new GZIPInputStream(Files.newInputStream(vocabGz()))) {
            String[] lines = new String(in.readAllBytes(), StandardCharsets.UTF_8).split("\n");
            merges = List.of(lines).subList(1, ClipTokenizer.MAX_MERGES + 1);
        }
        // vocab.json as Hugging Face ships it: the reference's vocab order, written as token -> id
        ObjectNode vocab = new ObjectMapper().createObjectNode();
        for (int id = 0; id < tokenizer.vocabSize(); id++) {
            vocab.put(tokenString(id), id);
        }
        Files.writeString(dir.resolve("vocab.json"), vocab.toString());
        Files.writeString(dir.resolve("merges.txt"), "#version: 0.2\n" + String.join("\n", merges) + "\n");
        ClipTokenizer hf = ClipTokenizer.load(dir);
        assertEquals(tokenizer.vocabSize(), hf.vocabSize());
        for (JsonNode line : goldenLines()) {
            String text = line.get("text").asText();
            assertArrayEquals(ints(line.get("bpe")), hf.encode(text), () -> "HF bpe of " + text);
        }
    }

    @Test
    void plainTextVocabInAFolderLoads(@TempDir Path dir) throws IOException {
        try (GZIPInputStream in = new GZIPInputStream(Files.newInputStream(vocabGz()))) {
            Files.write(dir.resolve("bpe_simple_vocab_16e6.txt"), in.readAllBytes());
        }
        ClipTokenizer plain = ClipTokenizer.load(dir);
        assertEquals(49408, plain.vocabSize());
        for (JsonNode line : goldenLines()) {
            String text = line.get("text").asText();
            assertArrayEquals(ints(line.get("bpe")), plain.encode(text), () -> "plain-text vocab, bpe of " + text);
        }
    }

    @Test
    void badVocabFilesAreNamed(@TempDir Path dir) throws IOException {
        Path broken = dir.resolve("broken.txt");
        Files.writeString(broken, "#version: 0.2\nt h\nthis line has three\n");
        InvalidInputException e = assertThrows(InvalidInputException.class, () -> ClipTokenizer.load(broken));
        assertTrue(e.getMessage().contains("broken.txt") && e.getMessage().contains("line 3"), e.getMessage());
        e = assertThrows(InvalidInputException.class, () -> ClipTokenizer.load(dir.resolve("missing.txt.gz")));
        assertTrue(e.getMessage().contains("missing.txt.gz"), e.getMessage());
        Path empty = Files.createDirectory(dir.resolve("empty"));
        e = assertThrows(InvalidInputException.class, () -> ClipTokenizer.load(empty));
        assertTrue(e.getMessage().contains("empty"), e.getMessage());
    }

    /** The vocab string of an id, as vocab.json holds it. */
    private static String tokenString(int id) {
        if (id == tokenizer.sotToken()) {
            return ClipTokenizer.SOT;
        }
        if (id == tokenizer.eotToken()) {
            return ClipTokenizer.EOT;
        }
        return tokenizer.tokenText(id);
    }
}
