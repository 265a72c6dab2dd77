// A hopper worker in Java, stream mode: one JSON line in, one JSON line out.
//
// The payload is a string (count its words), {"text": "..."} (count those) or
// {"path": "..."} (count the words in that file); the result is {"words": N}.
// Anything else is a permanent failure. Words are runs of anything but ASCII
// whitespace, as in every example. No third-party jars: the JSON reader at
// the bottom knows just enough JSON for an envelope.
import java.io.*;
import java.nio.charset.StandardCharsets;
import java.nio.file.*;
import java.util.*;
import java.util.regex.Pattern;

public class WordCount {
    // In Java regular expressions \S is exactly "not ASCII whitespace".
    private static final Pattern WORD = Pattern.compile("\\S+");

    static long countWords(String text) {
        return WORD.matcher(text).results().count();
    }

    // Throws IllegalArgumentException, saying why, for a payload it cannot count.
    static long wordCount(Object payload) {
        Map<?, ?> obj = payload instanceof Map ? (Map<?, ?>) payload : Map.of();
        if (payload instanceof String text) return countWords(text);
        if (obj.get("text") instanceof String text) return countWords(text);
        if (obj.get("path") instanceof String path) {
            try {
                return countWords(new String(Files.readAllBytes(Path.of(path)), StandardCharsets.UTF_8));
            } catch (IOException | InvalidPathException e) {
                throw new IllegalArgumentException("cannot read " + path + ": " + e, e);
            }
        }
        throw new IllegalArgumentException(
            "payload must be a string, or an object with a \"text\" or \"path\" string");
    }

    public static void main(String[] args) throws IOException {
        InputStream in = new BufferedInputStream(System.in);
        PrintStream out = new PrintStream(new FileOutputStream(FileDescriptor.out), false, "UTF-8");
        for (String line; (line = readLine(in)) != null; ) { // null at EOF: exit now
            Map<?, ?> item = (Map<?, ?>) new Json(line).parse();
            String id = quote((String) item.get("id"));
            try {
                long words = wordCount(item.get("payload"));
                out.print("{\"id\":" + id + ",\"ok\":true,\"result\":{\"words\":" + words + "}}\n");
            } catch (IllegalArgumentException e) {
                out.print("{\"id\":" + id + ",\"ok\":false,\"error\":" + quote(e.getMessage()) + ",\"retry\":false}\n");
            }
            out.flush();
        }
    }

    // Lines end at \n only: a \r is JSON whitespace, not a line end.
    static String readLine(InputStream in) throws IOException {
        ByteArrayOutputStream line = new ByteArrayOutputStream();
        for (int b; (b = in.read()) != '\n'; line.write(b))
            if (b < 0) return line.size() > 0 ? line.toString(StandardCharsets.UTF_8) : null;
        return line.toString(StandardCharsets.UTF_8);
    }

    static String quote(String s) {
        StringBuilder b = new StringBuilder("\"");
        for (char c : s.toCharArray()) {
            if (c == '"' || c == '\\') b.append('\\').append(c);
            else if (c < 0x20) b.append(String.format("\\u%04x", (int) c));
            else b.append(c);
        }
        return b.append('"').toString();
    }

    // Objects become Maps, arrays Lists, numbers Doubles; enough for an envelope.
    static final class Json {
        private final String s;
        private int i;

        Json(String s) { this.s = s; }

        Object parse() {
            Object v = value();
            skipSpace();
            if (i != s.length()) throw new IllegalStateException("not JSON: junk at " + i);
            return v;
        }

        private Object value() {
            skipSpace();
            char c = s.charAt(i);
            if (c == '{') {
                Map<String, Object> map = new HashMap<>();
                if (!close('{', '}')) do {
                    skipSpace();
                    String key = string();
                    expect(':');
                    map.put(key, value());
                } while (next(',', '}'));
                return map;
            } else if (c == '[') {
                List<Object> list = new ArrayList<>();
                if (!close('[', ']')) do list.add(value()); while (next(',', ']'));
                return list;
            } else if (c == '"') {
                return string();
            }
            for (Object word : new Object[] {true, false, null})
                if (s.startsWith(String.valueOf(word), i)) {
                    i += String.valueOf(word).length();
                    return word;
                }
            int start = i;
            while (i < s.length() && "+-0123456789.eE".indexOf(s.charAt(i)) >= 0) i++;
            return Double.parseDouble(s.substring(start, i));
        }

        private String string() {
            expect('"');
            StringBuilder b = new StringBuilder();
            for (char c; (c = s.charAt(i++)) != '"'; ) {
                if (c != '\\') {
                    b.append(c);
                } else if ((c = s.charAt(i++)) == 'u') {
                    b.append((char) Integer.parseInt(s.substring(i, i + 4), 16));
                    i += 4;
                } else {
                    b.append(switch (c) {
                        case 'b' -> '\b'; case 'f' -> '\f'; case 'n' -> '\n';
                        case 'r' -> '\r'; case 't' -> '\t'; default -> c;
                    });
                }
            }
            return b.toString();
        }

        // After an opening bracket: true (and consumed) if the closing one follows.
        private boolean close(char open, char closing) {
            expect(open);
            skipSpace();
            if (s.charAt(i) != closing) return false;
            i++;
            return true;
        }

        // After a member: true for a comma, false (and consumed) for the end.
        private boolean next(char comma, char closing) {
            skipSpace();
            char c = s.charAt(i++);
            if (c == comma) return true;
            if (c == closing) return false;
            throw new IllegalStateException("not JSON: '" + c + "' at " + (i - 1));
        }

        private void expect(char c) {
            skipSpace();
            if (s.charAt(i++) != c) throw new IllegalStateException("not JSON: expected '" + c + "' at " + (i - 1));
        }

        private void skipSpace() {
            while (i < s.length() && " \t\r\n".indexOf(s.charAt(i)) >= 0) i++;
        }
    }
}
