package org.clipj.text;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStream;
import java.io.InputStreamReader;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.util.HashMap;
import java.util.Map;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * Python's {@code html.unescape}: named references from the full HTML5 list (2231 names, those
 * without a trailing ';' included, longest-prefix fallback as the standard says) and numeric
 * references with the same replacements for invalid code points (Windows-1252 for 0x80..0x9F,
 * U+FFFD for surrogates and out of range, nothing for the other invalid code points).
 */
final class HtmlUnescape {
    private static final Pattern CHARREF = Pattern.compile(
            "&(#[0-9]+;?|#[xX][0-9a-fA-F]+;?|[^\\t\\n\\f <&#;]{1,32};?)");
    private static final Map<String, String> ENTITIES = loadEntities();
    private static final Map<Integer, String> INVALID_CHARREFS = invalidCharrefs();

    private HtmlUnescape() {
    }

    static String unescape(String s) {
        if (s.indexOf('&') < 0) {
            return s;
        }
        Matcher m = CHARREF.matcher(s);
        StringBuilder out = new StringBuilder(s.length());
        int last = 0;
        while (m.find()) {
            out.append(s, last, m.start()).append(replace(m.group(1)));
            last = m.end();
        }
        return out.append(s, last, s.length()).toString();
    }

    private static String replace(String ref) {
        if (ref.charAt(0) == '#') {
            boolean hex = ref.charAt(1) == 'x' || ref.charAt(1) == 'X';
            String digits = ref.substring(hex ? 2 : 1, ref.endsWith(";") ? ref.length() - 1 : ref.length());
            return numeric(parseCodePoint(digits, hex ? 16 : 10));
        }
        String value = ENTITIES.get(ref);
        if (value != null) {
            return value;
        }
        // the longest name that prefixes the reference wins; the rest stays as text
        for (int x = ref.length() - 1; x > 1; x--) {
            value = ENTITIES.get(ref.substring(0, x));
            if (value != null) {
                return value + ref.substring(x);
            }
        }
        return "&" + ref;
    }

    /** The number, or Integer.MAX_VALUE when it exceeds the code point range (Python has big ints). */
    private static int parseCodePoint(String digits, int radix) {
        long v = 0;
        for (int i = 0; i < digits.length(); i++) {
            v = v * radix + Character.digit(digits.charAt(i), radix);
            if (v > Character.MAX_CODE_POINT) {
                return Integer.MAX_VALUE;
            }
        }
        return (int) v;
    }

    private static String numeric(int cp) {
        String fixed = INVALID_CHARREFS.get(cp);
        if (fixed != null) {
            return fixed;
        }
        if ((cp >= 0xD800 && cp <= 0xDFFF) || cp > Character.MAX_CODE_POINT) {
            return "\uFFFD";
        }
        if (isInvalidCodePoint(cp)) {
            return "";
        }
        return Character.toString(cp);
    }

    private static boolean isInvalidCodePoint(int cp) {
        return (cp >= 0x1 && cp <= 0x8) || cp == 0xB || (cp >= 0xE && cp <= 0x1F) || (cp >= 0x7F && cp <= 0x9F)
                || (cp >= 0xFDD0 && cp <= 0xFDEF) || (cp & 0xFFFE) == 0xFFFE;
    }

    private static Map<Integer, String> invalidCharrefs() {
        Map<Integer, String> m = new HashMap<>();
        m.put(0x00, "\uFFFD");
        m.put(0x0D, "\r");
        // Windows-1252 interpretation of the C1 range, as browsers (and Python) do
        String cp1252 = "\u20AC\u0081\u201A\u0192\u201E\u2026\u2020\u2021\u02C6\u2030\u0160\u2039\u0152\u008D\u017D\u008F"
                + "\u0090\u2018\u2019\u201C\u201D\u2022\u2013\u2014\u02DC\u2122\u0161\u203A\u0153\u009D\u017E\u0178";
        for (int i = 0; i < 32; i++) {
            m.put(0x80 + i, String.valueOf(cp1252.charAt(i)));
        }
        return Map.copyOf(m);
    }

    private static Map<String, String> loadEntities() {
        Map<String, String> m = new HashMap<>(4096);
        try (InputStream in = HtmlUnescape.class.getResourceAsStream("html5-entities.tsv")) {
            if (in == null) {
                throw new IllegalStateException("resource org/clipj/text/html5-entities.tsv missing from the classpath");
            }
            BufferedReader r = new BufferedReader(new InputStreamReader(in, StandardCharsets.UTF_8));
            for (String line; (line = r.readLine()) != null; ) {
                if (line.isEmpty() || line.startsWith("#")) {
                    continue;
                }
                int tab = line.indexOf('\t');
                StringBuilder value = new StringBuilder(2);
                for (String hex : line.substring(tab + 1).split(" ")) {
                    value.appendCodePoint(Integer.parseInt(hex, 16));
                }
                m.put(line.substring(0, tab), value.toString());
            }
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
        return Map.copyOf(m);
    }
}
