package org.clipj.text;

import org.clipj.runtime.InvalidInputException;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;
import java.util.HashSet;
import java.util.List;
import java.util.Set;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class BpeTrainerTest {
    private static final List<String> CORPUS = List.of(
            "A photo of a dog.", "a photo of a cat", "A photo of two dogs on the grass.",
            "a black cat sleeping on a sofa", "the dog runs after the ball", "Two cats and a dog!",
            "a close-up photo of a red flower", "café au lait, s'il vous plaît", "a photo of the number 7",
            "emoji 🐶 and a dog", "the quick brown fox jumps over the lazy dog");

    @Test
    void handComputedFirstMerges() {
        // "aaab" x2 and "ab" x1: pairs (a,a)=4, (a,b</w>)=3 -> (a,a) first; then (aa, a) vs (a, b</w>) ...
        List<String[]> merges = BpeTrainer.learn(List.of("aaab aaab ab"), 10, 1);
        assertArrayEquals(new String[]{"a", "a"}, merges.get(0));
        assertArrayEquals(new String[]{"a", "b</w>"}, merges.get(1));
        assertArrayEquals(new String[]{"aa", "ab</w>"}, merges.get(2));
        assertEquals(3, merges.size());
        // a tie (every pair once) goes to the smallest strings
        assertArrayEquals(new String[]{"x", "y</w>"}, BpeTrainer.learn(List.of("zy xy"), 1, 1).get(0));
    }

    @Test
    void trainedMergesRoundTripThroughTheGzFormat(@TempDir Path dir) {
        List<String[]> merges = BpeTrainer.learn(CORPUS, 300, 2);
        assertTrue(merges.size() > 20 && merges.size() <= 300, "learned " + merges.size());
        Set<String> results = new HashSet<>();
        for (String[] m : merges) {
            assertTrue(results.add(m[0] + m[1]), "merge result repeated: " + m[0] + m[1]);
        }
        Path file = dir.resolve("trained-bpe.txt.gz");
        BpeTrainer.write(file, merges);
        ClipTokenizer loaded = ClipTokenizer.load(file);
        assertEquals(merges.size(), loaded.mergeCount());
        assertEquals(BpeTrainer.vocabSize(merges.size()), loaded.vocabSize());
        assertEquals(loaded.vocabSize() - 2, loaded.sotToken());
        assertEquals(loaded.vocabSize() - 1, loaded.eotToken());
        ClipTokenizer direct = ClipTokenizer.fromMerges(merges);
        for (String caption : CORPUS) {
            int[] ids = loaded.encode(caption);
            assertArrayEquals(direct.encode(caption), ids, caption);
            assertEquals(spacedPreTokens(caption), loaded.decode(ids), caption);
        }
        // frequent words became single tokens
        assertEquals(1, loaded.encode("photo").length);
        assertEquals(1, loaded.encode("dog").length);
        // unseen text still encodes losslessly through the byte alphabet
        String unseen = "zebra crossing 42 ñ";
        assertEquals(spacedPreTokens(unseen), loaded.decode(loaded.encode(unseen)));
        int[] row = loaded.tokenize(List.of("a photo of a dog"), 16, false)[0];
        assertEquals(loaded.sotToken(), row[0]);
    }

    @Test
    void rejectsBadArguments() {
        assertThrows(InvalidInputException.class, () -> BpeTrainer.learn(CORPUS, -1, 1));
        assertThrows(InvalidInputException.class, () -> BpeTrainer.learn(CORPUS, ClipTokenizer.MAX_MERGES + 1, 1));
        assertThrows(InvalidInputException.class, () -> BpeTrainer.learn(CORPUS, 10, 0));
    }

    /** What decode gives back: the cleaned, lower-cased pre-tokens, each followed by a space. */
    private static String spacedPreTokens(String text) {
        StringBuilder sb = new StringBuilder();
        for (String t : ClipTokenizer.preTokenize(text)) {
            sb.append(t).append(' ');
        }
        return sb.toString();
    }
}
