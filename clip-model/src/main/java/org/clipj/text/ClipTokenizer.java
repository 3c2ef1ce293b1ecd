package org.clipj.text;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import org.clipj.runtime.InvalidInputException;

import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.nio.ByteBuffer;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.nio.file.DirectoryStream;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.text.Normalizer;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.Iterator;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.zip.GZIPInputStream;

/**
 * CLIP's byte-level BPE tokenizer, token for token as openai/CLIP {@code simple_tokenizer.py}:
 * basic_clean (NFC, HTML unescape twice, strip; ftfy's mojibake repair is not reproduced),
 * whitespace_clean, lower-casing, the pre-tokenizing regex, bytes mapped to printable characters,
 * then merges applied by rank. Thread-safe; BPE results per pre-token are cached.
 */
public final class ClipTokenizer {
    public static final String SOT = "<|startoftext|>";
    public static final String EOT = "<|endoftext|>";
    /** Merges the reference reads from the gz file: lines 1 .. 49152-256-2 after the header. */
    public static final int MAX_MERGES = 49152 - 256 - 2;
    public static final int DEFAULT_CONTEXT = 77;
    private static final String END_OF_WORD = "</w>";
    private static final int CACHE_LIMIT = 1 << 17;
    private static final Pattern PRE_TOKEN = Pattern.compile(
            "<\\|startoftext\\|>|<\\|endoftext\\|>|'s|'t|'re|'ve|'m|'ll|'d|[\\p{L}]+|[\\p{N}]|[^\\s\\p{L}\\p{N}]+",
            Pattern.UNICODE_CHARACTER_CLASS);
    private static final char[] BYTE_TO_CHAR = bytesToUnicode();
    private static final int[] CHAR_TO_BYTE = charToByte();

    private final String[] decoder;            // id -> token string (byte characters, maybe ending in </w>)
    private final int[] byteId;                // byte -> id of its character inside a word
    private final int[] byteEndId;             // byte -> id of its character + </w> (last of a word)
    private final PairRanks ranks;             // (left id, right id) -> merge rank
    private final int[] mergedId;              // rank -> id of the merged token
    private final int sot;
    private final int eot;
    private final int mergeCount;
    private final Map<String, int[]> cache = new ConcurrentHashMap<>();

    private ClipTokenizer(Map<String, Integer> encoder, List<String[]> merges) {
        int size = 0;
        for (int id : encoder.values()) {
            if (id < 0) {
                throw new InvalidInputException("tokenizer vocab: negative id " + id);
            }
            size = Math.max(size, id + 1);
        }
        decoder = new String[size];
        encoder.forEach((token, id) -> decoder[id] = token);
        byteId = new int[256];
        byteEndId = new int[256];
        for (int b = 0; b < 256; b++) {
            String c = String.valueOf(BYTE_TO_CHAR[b]);
            byteId[b] = require(encoder, c, "byte token");
            byteEndId[b] = require(encoder, c + END_OF_WORD, "byte token");
        }
        mergeCount = merges.size();
        ranks = new PairRanks(merges.size());
        mergedId = new int[merges.size()];
        for (int r = 0; r < merges.size(); r++) {
            String[] m = merges.get(r);
            int left = require(encoder, m[0], "merge " + (r + 1) + " left part");
            int right = require(encoder, m[1], "merge " + (r + 1) + " right part");
            mergedId[r] = require(encoder, m[0] + m[1], "merge " + (r + 1) + " result");
            ranks.put(left, right, r);   // as the reference's dict: a repeated pair keeps its last rank
        }
        sot = require(encoder, SOT, "special token");
        eot = require(encoder, EOT, "special token");
        cache.put(SOT, new int[]{sot});
        cache.put(EOT, new int[]{eot});
    }

    private static int require(Map<String, Integer> encoder, String token, String what) {
        Integer id = encoder.get(token);
        if (id == null) {
            throw new InvalidInputException("tokenizer vocab lacks the " + what + " '" + token + "'");
        }
        return id;
    }

    // ---------------------------------------------------------------- loading

    /**
     * Loads CLIP's {@code bpe_simple_vocab_16e6.txt.gz} (or the same text uncompressed, or a trained
     * file from {@link BpeTrainer}), or a folder holding one of them or a Hugging Face
     * {@code vocab.json} + {@code merges.txt} pair.
     */
    public static ClipTokenizer load(Path path) {
        if (Files.isDirectory(path)) {
            Path vocabJson = path.resolve("vocab.json");
            Path mergesTxt = path.resolve("merges.txt");
            if (Files.isRegularFile(vocabJson) && Files.isRegularFile(mergesTxt)) {
                return fromHuggingFace(vocabJson, mergesTxt);
            }
            for (String name : new String[]{"bpe_simple_vocab_16e6.txt.gz", "bpe_simple_vocab_16e6.txt"}) {
                if (Files.isRegularFile(path.resolve(name))) {
                    return load(path.resolve(name));
                }
            }
            List<Path> gz = new ArrayList<>();
            try (DirectoryStream<Path> files = Files.newDirectoryStream(path, "*.txt.gz")) {
                files.forEach(gz::add);
            } catch (IOException e) {
                throw new InvalidInputException(path + ": cannot list the folder: " + e.getMessage(), e);
            }
            if (gz.size() == 1) {
                return load(gz.get(0));
            }
            throw new InvalidInputException(path + ": folder holds no single tokenizer vocab (bpe_simple_vocab_16e6.txt.gz,"
                    + " one other *.txt.gz merges file, or vocab.json + merges.txt)");
        }
        String text = readText(path);
        // the reference: merges = lines[1 : 49152-256-2+1]; trained files are shorter and end with "\n"
        List<String[]> merges = new ArrayList<>(MAX_MERGES);
        int lineStart = text.indexOf('\n') + 1;
        for (int line = 2; lineStart > 0 && lineStart < text.length() && merges.size() < MAX_MERGES; line++) {
            int lineEnd = text.indexOf('\n', lineStart);
            if (lineEnd < 0) {
                lineEnd = text.length();
            }
            if (lineEnd > lineStart) {
                merges.add(parseMerge(path, line, text.substring(lineStart, lineEnd)));
            }
            lineStart = lineEnd + 1;
        }
        if (merges.isEmpty()) {
            throw new InvalidInputException(path + ": no BPE merges found (expected a header line, then 'a b' pairs)");
        }
        return fromMerges(merges);
    }

    /** Hugging Face CLIPTokenizer files: vocab.json (token -> id) and merges.txt ("#version" header, then pairs). */
    public static ClipTokenizer fromHuggingFace(Path vocabJson, Path mergesTxt) {
        Map<String, Integer> encoder = new HashMap<>();
        try {
            JsonNode root = new ObjectMapper().readTree(Files.readAllBytes(vocabJson));
            if (root == null || !root.isObject()) {
                throw new InvalidInputException(vocabJson + ": not a JSON object of token -> id");
            }
            for (Iterator<Map.Entry<String, JsonNode>> it = root.fields(); it.hasNext(); ) {
                Map.Entry<String, JsonNode> e = it.next();
                if (!e.getValue().canConvertToInt()) {
                    throw new InvalidInputException(vocabJson + ": id of '" + e.getKey() + "' is not an integer");
                }
                encoder.put(e.getKey(), e.getValue().intValue());
            }
        } catch (NoSuchFileException e) {
            throw new InvalidInputException("no such file: " + vocabJson, e);
        } catch (IOException e) {
            throw new InvalidInputException(vocabJson + ": cannot read vocab.json: " + e.getMessage(), e);
        }
        String[] lines = readText(mergesTxt).split("\n", -1);
        List<String[]> merges = new ArrayList<>(lines.length);
        for (int i = 0; i < lines.length; i++) {
            String line = lines[i].strip();
            if (line.isEmpty() || (i == 0 && line.startsWith("#version"))) {
                continue;
            }
            merges.add(parseMerge(mergesTxt, i + 1, line));
        }
        try {
            return new ClipTokenizer(encoder, merges);
        } catch (InvalidInputException e) {
            throw new InvalidInputException(vocabJson + " + " + mergesTxt + ": " + e.getMessage(), e);
        }
    }

    /** A tokenizer from merges alone (as trained by {@link BpeTrainer}): vocab size 512 + merges + 2. */
    public static ClipTokenizer fromMerges(List<String[]> merges) {
        Map<String, Integer> encoder = new HashMap<>();
        int id = 0;
        for (int pass = 0; pass < 2; pass++) {
            for (char c : byteOrderChars()) {
                encoder.put(pass == 0 ? String.valueOf(c) : c + END_OF_WORD, id++);
            }
        }
        for (String[] m : merges) {
            encoder.put(m[0] + m[1], id++);   // as the reference: a duplicate string keeps its last id
        }
        encoder.put(SOT, id++);
        encoder.put(EOT, id);
        return new ClipTokenizer(encoder, merges);
    }

    private static String[] parseMerge(Path file, int lineNumber, String line) {
        int space = line.indexOf(' ');
        if (space <= 0 || space == line.length() - 1 || line.indexOf(' ', space + 1) >= 0
                || Character.isWhitespace(line.charAt(line.length() - 1))) {
            String[] parts = line.strip().split("\\s+");
            if (parts.length != 2) {
                throw new InvalidInputException(file + ": line " + lineNumber + " is not a BPE merge 'a b': '" + line + "'");
            }
            return parts;
        }
        return new String[]{line.substring(0, space), line.substring(space + 1)};
    }

    private static String readText(Path path) {
        try (InputStream raw = Files.newInputStream(path)) {
            byte[] bytes = raw.readAllBytes();
            if (bytes.length >= 2 && (bytes[0] & 0xff) == 0x1f && (bytes[1] & 0xff) == 0x8b) {
                try (InputStream gz = new GZIPInputStream(new ByteArrayInputStream(bytes))) {
                    bytes = gz.readAllBytes();
                }
            }
            return new String(bytes, StandardCharsets.UTF_8);
        } catch (NoSuchFileException e) {
            throw new InvalidInputException("no such file: " + path, e);
        } catch (IOException e) {
            throw new InvalidInputException(path + ": cannot read tokenizer vocab: " + e.getMessage(), e);
        }
    }

    // ---------------------------------------------------------------- encoding

    public int sotToken() {
        return sot;
    }

    public int eotToken() {
        return eot;
    }

    public int vocabSize() {
        return decoder.length;
    }

    public int mergeCount() {
        return mergeCount;
    }

    /** The vocab entry of an id: byte-alphabet characters, "</w>" closing a word, or a special token. */
    public String tokenText(int id) {
        if (id < 0 || id >= decoder.length || decoder[id] == null) {
            throw new InvalidInputException("token id " + id + " is not in the vocab (size " + decoder.length + ")");
        }
        return decoder[id];
    }

    /** Token ids of a text, without SOT/EOT. */
    public int[] encode(String text) {
        IntList ids = new IntList(text.length() + 4);
        for (String preToken : preTokenize(text)) {
            ids.addAll(bpe(preToken));
        }
        return ids.toArray();
    }

    /** The pre-tokens of a text after basic_clean, whitespace_clean and lower-casing (special tokens included). */
    static List<String> preTokenize(String text) {
        String clean = whitespaceClean(basicClean(text)).toLowerCase(Locale.ROOT);
        List<String> tokens = new ArrayList<>();
        Matcher m = PRE_TOKEN.matcher(clean);
        while (m.find()) {
            tokens.add(m.group());
        }
        return tokens;
    }

    /** A pre-token's UTF-8 bytes as byte-alphabet characters, the unit BPE works on. */
    static String toByteChars(String preToken) {
        byte[] utf8 = preToken.getBytes(StandardCharsets.UTF_8);
        char[] chars = new char[utf8.length];
        for (int i = 0; i < utf8.length; i++) {
            chars[i] = BYTE_TO_CHAR[utf8[i] & 0xff];
        }
        return new String(chars);
    }

    /** SOT + ids + EOT per text, zero-padded to {@code context}; too long: truncated with EOT last, or an error. */
    public int[][] tokenize(List<String> texts, int context, boolean truncate) {
        if (context < 2) {
            throw new InvalidInputException("context length must be at least 2, got " + context);
        }
        int[][] result = new int[texts.size()][context];
        for (int i = 0; i < texts.size(); i++) {
            int[] ids = encode(texts.get(i));
            int n = ids.length + 2;
            if (n > context && !truncate) {
                throw new InvalidInputException("text " + (i + 1) + " is too long for context length " + context
                        + " (" + n + " tokens): \"" + texts.get(i) + "\"");
            }
            int[] row = result[i];
            row[0] = sot;
            System.arraycopy(ids, 0, row, 1, Math.min(ids.length, context - 2));
            row[Math.min(n, context) - 1] = eot;
        }
        return result;
    }

    /** The text of ids as the reference decodes: bytes back to UTF-8 (bad bytes as U+FFFD), "</w>" -> " ". */
    public String decode(int[] ids) {
        ByteArrayOutputStream bytes = new ByteArrayOutputStream(ids.length * 4);
        for (int id : ids) {
            if (id < 0 || id >= decoder.length || decoder[id] == null) {
                throw new InvalidInputException("token id " + id + " is not in the vocab (size " + decoder.length + ")");
            }
            String token = decoder[id];
            for (int i = 0; i < token.length(); i++) {
                char c = token.charAt(i);
                int b = c < CHAR_TO_BYTE.length ? CHAR_TO_BYTE[c] : -1;
                if (b < 0) {
                    throw new IllegalStateException("token " + id + " holds a character outside the byte alphabet");
                }
                bytes.write(b);
            }
        }
        try {
            String text = StandardCharsets.UTF_8.newDecoder()
                    .onMalformedInput(CodingErrorAction.REPLACE)
                    .onUnmappableCharacter(CodingErrorAction.REPLACE)
                    .decode(ByteBuffer.wrap(bytes.toByteArray())).toString();
            return text.replace(END_OF_WORD, " ");
        } catch (CharacterCodingException e) {
            throw new IllegalStateException(e);   // cannot happen with REPLACE
        }
    }

    /** Ids of one pre-token (raw text, before the byte mapping). */
    private int[] bpe(String preToken) {
        int[] cached = cache.get(preToken);
        if (cached != null) {
            return cached;
        }
        byte[] utf8 = preToken.getBytes(StandardCharsets.UTF_8);
        int[] word = new int[utf8.length];
        for (int i = 0; i < utf8.length; i++) {
            word[i] = (i == utf8.length - 1 ? byteEndId : byteId)[utf8[i] & 0xff];
        }
        int n = word.length;
        while (n > 1) {
            int bestRank = Integer.MAX_VALUE;
            int left = 0;
            int right = 0;
            for (int i = 0; i + 1 < n; i++) {
                int r = ranks.get(word[i], word[i + 1]);
                if (r < bestRank) {
                    bestRank = r;
                    left = word[i];
                    right = word[i + 1];
                }
            }
            if (bestRank == Integer.MAX_VALUE) {
                break;
            }
            // merge every non-overlapping occurrence, left to right
            int out = 0;
            for (int i = 0; i < n; ) {
                if (i + 1 < n && word[i] == left && word[i + 1] == right) {
                    word[out++] = mergedId[bestRank];
                    i += 2;
                } else {
                    word[out++] = word[i++];
                }
            }
            n = out;
        }
        int[] ids = Arrays.copyOf(word, n);
        if (cache.size() < CACHE_LIMIT) {
            cache.put(preToken, ids);
        }
        return ids;
    }

    static String basicClean(String text) {
        String s = Normalizer.normalize(text, Normalizer.Form.NFC);
        s = HtmlUnescape.unescape(HtmlUnescape.unescape(s));
        return pythonStrip(s);
    }

    /** Collapses runs of (Python) whitespace to one space, then strips. */
    static String whitespaceClean(String text) {
        StringBuilder out = new StringBuilder(text.length());
        boolean inSpace = false;
        for (int i = 0; i < text.length(); i++) {
            char c = text.charAt(i);
            if (isPythonSpace(c)) {
                if (!inSpace) {
                    out.append(' ');
                    inSpace = true;
                }
            } else {
                out.append(c);
                inSpace = false;
            }
        }
        return pythonStrip(out.toString());
    }

    private static String pythonStrip(String s) {
        int begin = 0;
        int end = s.length();
        while (begin < end && isPythonSpace(s.charAt(begin))) {
            begin++;
        }
        while (end > begin && isPythonSpace(s.charAt(end - 1))) {
            end--;
        }
        return s.substring(begin, end);
    }

    /** Python's str.isspace (and re's \s): Unicode White_Space plus the separators U+001C..U+001F. (All are BMP.) */
    static boolean isPythonSpace(char c) {
        return (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x20) || c == 0x85 || c == 0xA0 || c == 0x1680
                || (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F
                || c == 0x3000;
    }

    // ---------------------------------------------------------------- byte alphabet

    /** GPT-2's map of the 256 byte values onto printable characters (bytes_to_unicode). */
    private static char[] bytesToUnicode() {
        char[] map = new char[256];
        int n = 0;
        for (int b = 0; b < 256; b++) {
            map[b] = isPrintableByte(b) ? (char) b : (char) (256 + n++);
        }
        return map;
    }

    private static boolean isPrintableByte(int b) {
        return (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
    }

    /** The byte characters in the reference's vocab order: printable bytes first, then the rest. */
    private static char[] byteOrderChars() {
        char[] order = new char[256];
        int i = 0;
        for (int b = 0; b < 256; b++) {
            if (isPrintableByte(b)) {
                order[i++] = BYTE_TO_CHAR[b];
            }
        }
        for (int b = 0; b < 256; b++) {
            if (!isPrintableByte(b)) {
                order[i++] = BYTE_TO_CHAR[b];
            }
        }
        return order;
    }

    private static int[] charToByte() {
        int[] inverse = new int[512];   // the byte characters all lie below U+0200
        Arrays.fill(inverse, -1);
        for (int b = 0; b < 256; b++) {
            inverse[BYTE_TO_CHAR[b]] = b;
        }
        return inverse;
    }

    /** Open-addressing map from an id pair to its merge rank (no boxing in the BPE loop). */
    private static final class PairRanks {
        private final long[] keys;
        private final int[] values;
        private final int mask;

        PairRanks(int entries) {
            int capacity = Integer.highestOneBit(Math.max(4, entries * 2 - 1)) << 1;
            keys = new long[capacity];
            values = new int[capacity];
            Arrays.fill(keys, -1L);
            mask = capacity - 1;
        }

        void put(int left, int right, int rank) {
            long key = ((long) left << 32) | (right & 0xffffffffL);
            int slot = slot(key);
            keys[slot] = key;
            values[slot] = rank;
        }

        int get(int left, int right) {
            long key = ((long) left << 32) | (right & 0xffffffffL);
            int slot = slot(key);
            return keys[slot] == key ? values[slot] : Integer.MAX_VALUE;
        }

        private int slot(long key) {
            int slot = (int) (mix(key) & mask);
            while (keys[slot] != -1L && keys[slot] != key) {
                slot = (slot + 1) & mask;
            }
            return slot;
        }

        private static long mix(long key) {
            key *= 0x9E3779B97F4A7C15L;
            return key ^ (key >>> 29);
        }
    }

    /** A growable int list for encode. */
    private static final class IntList {
        private int[] data;
        private int size;

        IntList(int capacity) {
            data = new int[Math.max(4, capacity)];
        }

        void addAll(int[] values) {
            if (size + values.length > data.length) {
                data = Arrays.copyOf(data, Math.max(data.length * 2, size + values.length));
            }
            System.arraycopy(values, 0, data, size, values.length);
            size += values.length;
        }

        int[] toArray() {
            return Arrays.copyOf(data, size);
        }
    }
}
