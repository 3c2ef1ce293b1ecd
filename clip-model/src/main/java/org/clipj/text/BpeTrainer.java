
package org.clipj.text;

import org.clipj.io.AtomicFiles;
import org.clipj.runtime.InvalidInputException;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.OutputStreamWriter;
import java.io.UncheckedIOException;
import java.io.Writer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.PriorityQueue;
import java.util.Set;
import java.util.zip.GZIPOutputStream;

/**
 * Learns CLIP-style byte-level BPE merges from a caption corpus, so a model can be trained from
 * scratch without OpenAI's vocab. Words are the tokenizer's own pre-tokens (same cleaning, regex
 * and byte alphabet, "</w>" on the last symbol); each step merges the adjacent pair with the
 * highest corpus frequency, ties going to the lexicographically smallest (left, right) pair.
 * {@link #write} produces the bpe_simple_vocab format (a header line, then one "left right" per
 * line, gzip), which {@link ClipTokenizer#load} reads back; vocab size = 512 + merges + 2.
 */
public final class BpeTrainer {
    private BpeTrainer() {
    }

    /** Vocab size of a tokenizer with this many merges: 256 byte tokens, 256 end-of-word byte tokens, merges, SOT, EOT. */
    public static int vocabSize(int merges) {
        return 512 + merges + 2;
    }

    /**
     * Up to {@code maxMerges} merges learned from the captions; stops early when no adjacent pair
     * occurs at least {@code minPairCount} times.
     */
    public static List<String[]> learn(Iterable<String> captions, int maxMerges, int minPairCount) {
        if (maxMerges < 0 || maxMerges > ClipTokenizer.MAX_MERGES) {
            throw new InvalidInputException("number of BPE merges must be in [0, " + ClipTokenizer.MAX_MERGES
                    + "], got " + maxMerges);
        }
        if (minPairCount < 1) {
            throw new InvalidInputException("minimum pair count must be at least 1, got " + minPairCount);
        }
        Map<String, Integer> wordCounts = new LinkedHashMap<>();
        for (String caption : captions) {
            for (String preToken : ClipTokenizer.preTokenize(caption)) {
                if (!preToken.equals(ClipTokenizer.SOT) && !preToken.equals(ClipTokenizer.EOT)) {
                    wordCounts.merge(ClipTokenizer.toByteChars(preToken), 1, Integer::sum);
                }
            }
        }
        return new Learner(wordCounts).run(maxMerges, minPairCount);
    }

    /** Writes merges in the bpe_simple_vocab format, gzip-compressed, atomically. */
    public static void write(Path file, List<String[]> merges) {
        ByteArrayOutputStream bytes = new ByteArrayOutputStream();
        try (Writer out = new OutputStreamWriter(new GZIPOutputStream(bytes), StandardCharsets.UTF_8)) {
            out.write("#version: 0.2 - trained by clipj BpeTrainer, " + merges.size() + " merges\n");
            for (String[] m : merges) {
                out.write(m[0] + " " + m[1] + "\n");
            }
        } catch (IOException e) {
            throw new UncheckedIOException("cannot compress BPE merges for " + file, e);
        }
        AtomicFiles.writeBytes(file, bytes.toByteArray());
    }

    /** Incremental BPE: pair counts and the words holding each pair are updated per merge, not recounted. */
    private static final class Learner {
        private final List<String> symbols = new ArrayList<>();
        private final Map<String, Integer> symbolIds = new HashMap<>();
        private final int[][] words;                                 // word -> symbol ids
        private final int[] lengths;                                 // live symbols per word
        private final int[] freqs;                                   // occurrences in the corpus
        private final Map<Long, Long> pairCounts = new HashMap<>();
        private final Map<Long, Set<Integer>> pairWords = new HashMap<>();
        private final PriorityQueue<long[]> queue;                   // {pair, count}, stale entries skipped

        Learner(Map<String, Integer> wordCounts) {
            words = new int[wordCounts.size()][];
            lengths = new int[wordCounts.size()];
            freqs = new int[wordCounts.size()];
            int w = 0;
            for (Map.Entry<String, Integer> e : wordCounts.entrySet()) {
                String word = e.getKey();
                int[] ids = new int[word.length()];
                for (int i = 0; i < ids.length; i++) {
                    String symbol = String.valueOf(word.charAt(i));
                    ids[i] = symbol(i == ids.length - 1 ? symbol + "</w>" : symbol);
                }
                words[w] = ids;
                lengths[w] = ids.length;
                freqs[w] = e.getValue();
                w++;
            }
            queue = new PriorityQueue<>(this::compare);
            for (w = 0; w < words.length; w++) {
                for (int i = 0; i + 1 < lengths[w]; i++) {
                    long pair = pair(words[w][i], words[w][i + 1]);
                    pairCounts.merge(pair, (long) freqs[w], Long::sum);
                    pairWords.computeIfAbsent(pair, k -> new HashSet<>()).add(w);
                }
            }
            pairCounts.forEach((pair, count) -> queue.add(new long[]{pair, count}));
        }

        List<String[]> run(int maxMerges, int minPairCount) {
            List<String[]> merges = new ArrayList<>(maxMerges);
            while (merges.size() < maxMerges && !queue.isEmpty()) {
                long[] top = queue.poll();
                long current = pairCounts.getOrDefault(top[0], 0L);
                if (current != top[1]) {
                    continue;   // stale entry
                }
                if (current < minPairCount) {
                    break;
                }
                int left = (int) (top[0] >>> 32);
                int right = (int) top[0];
                merges.add(new String[]{symbols.get(left), symbols.get(right)});
                apply(top[0], left, right, symbol(symbols.get(left) + symbols.get(right)));
            }
            return merges;
        }

        private void apply(long merged, int left, int right, int joined) {
            Set<Long> changed = new HashSet<>();
            for (int w : pairWords.remove(merged)) {
                int[] word = words[w];
                int n = lengths[w];
                if (!contains(word, n, left, right)) {
                    continue;
                }
                for (int i = 0; i + 1 < n; i++) {
                    long pair = pair(word[i], word[i + 1]);
                    pairCounts.merge(pair, (long) -freqs[w], Long::sum);
                    changed.add(pair);
                }
                int out = 0;
                for (int i = 0; i < n; ) {
                    if (i + 1 < n && word[i] == left && word[i + 1] == right) {
                        word[out++] = joined;
                        i += 2;
                    } else {
                        word[out++] = word[i++];
                    }
                }
                lengths[w] = out;
                for (int i = 0; i + 1 < out; i++) {
                    long pair = pair(word[i], word[i + 1]);
                    pairCounts.merge(pair, (long) freqs[w], Long::sum);
                    pairWords.computeIfAbsent(pair, k -> new HashSet<>()).add(w);
                    changed.add(pair);
                }
            }
            pairCounts.remove(merged);
            for (long pair : changed) {
                long count = pairCounts.getOrDefault(pair, 0L);
                if (count > 0) {
                    queue.add(new long[]{pair, count});
                } else {
                    pairCounts.remove(pair);
                }
            }
        }

        private static boolean contains(int[] word, int n, int left, int right) {
            for (int i = 0; i + 1 < n; i++) {
                if (word[i] == left && word[i + 1] == right) {
                    return true;
                }
            }
            return false;
        }

        /** Higher count first, then the smaller (left, right) strings: a total, deterministic order. */
        private int compare(long[] a, long[] b) {
            if (a[1] != b[1]) {
                return Long.compare(b[1], a[1]);
            }
            int c = symbols.get((int) (a[0] >>> 32)).compareTo(symbols.get((int) (b[0] >>> 32)));
            return c != 0 ? c : symbols.get((int) a[0]).compareTo(symbols.get((int) b[0]));
        }

        private int symbol(String text) {
            Integer id = symbolIds.get(text);
            if (id == null) {
                id = symbols.size();
                symbols.add(text);
                symbolIds.put(text, id);
            }
            return id;
        }

        private static long pair(int left, int right) {
            return ((long) left << 32) | (right & 0xffffffffL);
        }
    }
}
