package org.clipj.io;

import org.clipj.runtime.InvalidInputException;

import java.math.BigInteger;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.function.Function;
import java.util.regex.Pattern;

/**
 * A restricted unpickler for PyTorch checkpoints (pickle protocols 2 to 5). It knows only the
 * opcodes a state dict or a TorchScript module graph needs and resolves only an allow-list of
 * globals; every other global (os.system, builtins.eval, ...) is rejected at the GLOBAL /
 * STACK_GLOBAL opcode, before anything is built. No global is ever "called": the few allowed
 * ones become inert Java values ({@link TensorRef}, maps, {@link TorchObject} records). The
 * allow-list: torch._utils._rebuild_tensor_v2 and _rebuild_parameter, the storage types
 * torch.{Float,Half,BFloat16,Long,Int}Storage, dtype names (torch.float32, ...),
 * collections.OrderedDict, TorchScript's list builders and type tags (torch.jit._pickle), and
 * {@code __torch__.*} classes (TorchScript modules, which become attribute records).
 *
 * Python values map to: int -> Long (BigInteger beyond 64 bits), float -> Double, str -> String,
 * bytes -> byte[], bool -> Boolean, None -> null, tuple -> {@link Tuple}, list -> ArrayList,
 * dict and OrderedDict -> LinkedHashMap, set -> LinkedHashSet.
 */
public final class Unpickler {
    /** Python tuple (immutable, may hold nulls). */
    public record Tuple(List<Object> items) {
        static Tuple of(Object... items) {
            return new Tuple(Collections.unmodifiableList(Arrays.asList(items)));
        }

        public Object get(int i) {
            return items.get(i);
        }

        public int size() {
            return items.size();
        }
    }

    /** An allow-listed global: a storage type, a dtype, a rebuild function or a TorchScript class. */
    public record Global(String module, String name) {
        public String qualifiedName() {
            return module + "." + name;
        }
    }

    /** The storage a persistent id ('storage', type, key, location, numel) names. */
    public record StorageRef(String storageType, String key, String location, long numel) {
    }

    /** A tensor view of a storage, as torch._utils._rebuild_tensor_v2 would build it. */
    public record TensorRef(StorageRef storage, long offset, int[] shape, long[] stride) {
    }

    /** An instance of a TorchScript class ({@code __torch__.*}): inert, just its pickled state. */
    public static final class TorchObject {
        private final String className;
        private final Map<String, Object> attributes = new LinkedHashMap<>();
        private Object state; // a non-dict __setstate__ argument, kept as is

        TorchObject(String className) {
            this.className = className;
        }

        public String className() {
            return className;
        }

        public Map<String, Object> attributes() {
            return attributes;
        }

        public Object state() {
            return state;
        }
    }

    private static final Object MARK = new Object();
    private static final Pattern TORCHSCRIPT_CLASS = Pattern.compile("__torch__(\\.[A-Za-z_][A-Za-z0-9_]*)*");
    private static final Pattern IDENTIFIER = Pattern.compile("[A-Za-z_][A-Za-z0-9_]*");
    private static final Set<String> STORAGE_TYPES = Set.of(
            "FloatStorage", "HalfStorage", "BFloat16Storage", "LongStorage", "IntStorage");
    private static final Set<String> DTYPES = Set.of("float32", "float16", "bfloat16", "int64", "int32");
    // TorchScript's pickler wraps typed lists and tags container types: data constructors, not code.
    private static final String JIT_PICKLE = "torch.jit._pickle";
    private static final Set<String> JIT_LIST_BUILDERS = Set.of("build_intlist", "build_doublelist", "build_boollist", "build_tensorlist");
    private static final String RESTORE_TYPE_TAG = "restore_type_tag";
    private static final Global REBUILD_TENSOR = new Global("torch._utils", "_rebuild_tensor_v2");
    private static final Global REBUILD_PARAMETER = new Global("torch._utils", "_rebuild_parameter");
    private static final Global ORDERED_DICT = new Global("collections", "OrderedDict");
    private static final int MAX_MEMO = 1 << 24;

    private final byte[] data;
    private final String source;
    private final Function<Object, Object> persistentLoad;
    private final List<Object> stack = new ArrayList<>();
    private final List<Integer> marks = new ArrayList<>();
    private final Map<Long, Object> memo = new HashMap<>();
    private int pos;

    private Unpickler(byte[] data, String source, Function<Object, Object> persistentLoad) {
        this.data = data;
        this.source = source;
        this.persistentLoad = persistentLoad;
    }

    /**
     * Unpickles {@code data}. {@code source} names the file (and archive entry) in errors;
     * {@code persistentLoad} turns a BINPERSID id into a value (null: persistent ids are refused).
     */
    public static Object load(byte[] data, String source, Function<Object, Object> persistentLoad) {
        return new Unpickler(data, source, persistentLoad).run();
    }

    /** Whether the allow-list admits the global {@code module.name}. */
    public static boolean isAllowed(String module, String name) {
        if (module.equals("torch")) {
            return STORAGE_TYPES.contains(name) || DTYPES.contains(name);
        }
        if (module.startsWith("__torch__")) {
            return TORCHSCRIPT_CLASS.matcher(module).matches() && IDENTIFIER.matcher(name).matches();
        }
        if (module.equals(JIT_PICKLE)) {
            return JIT_LIST_BUILDERS.contains(name) || name.equals(RESTORE_TYPE_TAG);
        }
        Global g = new Global(module, name);
        return g.equals(REBUILD_TENSOR) || g.equals(REBUILD_PARAMETER) || g.equals(ORDERED_DICT);
    }

    /** Whether {@code value} is an allow-listed storage type global (e.g. torch.HalfStorage). */
    public static boolean isStorageType(Object value) {
        return value instanceof Global g && g.module().equals("torch") && STORAGE_TYPES.contains(g.name());
    }

    private InvalidInputException error(String message) {
        return new InvalidInputException(source + ": " + message);
    }

    private Object run() {
        while (pos < data.length) {
            int at = pos;
            int op = data[pos++] & 0xff;
            switch (op) {
                case 0x80 -> { // PROTO
                    int proto = u8();
                    if (proto < 2 || proto > 5) {
                        throw error("pickle protocol " + proto + " is not supported (2 to 5 are)");
                    }
                }
                case 0x95 -> length(u64(), "FRAME"); // FRAME: a length hint; the framed opcodes follow inline
                case '.' -> { // STOP
                    if (stack.size() != 1 || !marks.isEmpty()) {
                        throw error("malformed pickle: " + stack.size() + " values left at STOP");
                    }
                    return stack.get(0);
                }
                case '(' -> marks.add(stack.size()); // MARK
                case '0' -> pop(); // POP
                case '1' -> popMark(); // POP_MARK
                case '2' -> push(peek()); // DUP
                case 'N' -> push(null);
                case 0x88 -> push(Boolean.TRUE);
                case 0x89 -> push(Boolean.FALSE);
                case 'J' -> push((long) i32le());
                case 'K' -> push((long) u8());
                case 'M' -> push((long) (u8() | (u8() << 8)));
                case 0x8a -> push(longFromBytes(u8())); // LONG1
                case 0x8b -> push(longFromBytes(length(i32le(), "LONG4"))); // LONG4
                case 'G' -> push(Double.longBitsToDouble(i64be())); // BINFLOAT
                case 'X' -> push(utf8(length(u32le(), "BINUNICODE")));
                case 0x8c -> push(utf8(u8())); // SHORT_BINUNICODE
                case 0x8d -> push(utf8(length(u64(), "BINUNICODE8")));
                case 'T' -> push(latin1(length(u32le(), "BINSTRING")));
                case 'U' -> push(latin1(u8())); // SHORT_BINSTRING
                case 'B' -> push(bytes(length(u32le(), "BINBYTES")));
                case 'C' -> push(bytes(u8())); // SHORT_BINBYTES
                case 0x8e -> push(bytes(length(u64(), "BINBYTES8")));
                case ')' -> push(Tuple.of()); // EMPTY_TUPLE
                case 't' -> push(new Tuple(Collections.unmodifiableList(new ArrayList<>(popMark()))));
                case 0x85 -> push(Tuple.of(pop())); // TUPLE1
                case 0x86 -> { // TUPLE2
                    Object b = pop(), a = pop();
                    push(Tuple.of(a, b));
                }
                case 0x87 -> { // TUPLE3
                    Object c = pop(), b = pop(), a = pop();
                    push(Tuple.of(a, b, c));
                }
                case ']' -> push(new ArrayList<>()); // EMPTY_LIST
                case 'l' -> push(new ArrayList<>(popMark())); // LIST
                case 'a' -> { // APPEND
                    Object v = pop();
                    list(peek(), "APPEND").add(v);
                }
                case 'e' -> { // APPENDS
                    List<Object> items = popMark();
                    list(peek(), "APPENDS").addAll(items);
                }
                case '}' -> push(new LinkedHashMap<>()); // EMPTY_DICT
                case 'd' -> push(putPairs(new LinkedHashMap<>(), popMark(), "DICT")); // DICT
                case 's' -> { // SETITEM
                    Object v = pop(), k = pop();
                    dict(peek(), "SETITEM").put(k, v);
                }
                case 'u' -> { // SETITEMS
                    List<Object> items = popMark();
                    putPairs(dict(peek(), "SETITEMS"), items, "SETITEMS");
                }
                case 0x8f -> push(new LinkedHashSet<>()); // EMPTY_SET
                case 0x90 -> { // ADDITEMS
                    List<Object> items = popMark();
                    if (!(peek() instanceof Set<?>)) {
                        throw error("ADDITEMS on a " + typeName(peek()) + " at offset " + at);
                    }
                    @SuppressWarnings("unchecked") Set<Object> set = (Set<Object>) peek();
                    set.addAll(items);
                }
                case 0x91 -> push(Collections.unmodifiableSet(new LinkedHashSet<>(popMark()))); // FROZENSET
                case 'c' -> push(global(line(), line(), at)); // GLOBAL 'module\nname\n'
                case 0x93 -> { // STACK_GLOBAL
                    Object name = pop(), module = pop();
                    if (!(module instanceof String m) || !(name instanceof String n)) {
                        throw error("STACK_GLOBAL needs two strings at offset " + at);
                    }
                    push(global(m, n, at));
                }
                case 'R' -> { // REDUCE
                    Object args = pop(), callable = pop();
                    push(reduce(callable, args, at));
                }
                case 0x81 -> { // NEWOBJ
                    Object args = pop(), cls = pop();
                    push(newObject(cls, args, at));
                }
                case 'b' -> { // BUILD
                    Object state = pop();
                    build(peek(), state, at);
                }
                case 'Q' -> { // BINPERSID
                    Object pid = pop();
                    if (persistentLoad == null) {
                        throw error("persistent id at offset " + at + " where none is expected");
                    }
                    push(persistentLoad.apply(pid));
                }
                case 'q' -> memoPut(u8()); // BINPUT
                case 'r' -> memoPut(u32le()); // LONG_BINPUT
                case 0x94 -> memoPut(memo.size()); // MEMOIZE
                case 'h' -> push(memoGet(u8(), at)); // BINGET
                case 'j' -> push(memoGet(u32le(), at)); // LONG_BINGET
                default -> throw error(String.format("pickle opcode 0x%02x at offset %d is not supported by the restricted unpickler", op, at));
            }
        }
        throw error("pickle ends without STOP (truncated?)");
    }

    // ---- globals and the few objects they make ----

    private Global global(String module, String name, int at) {
        if (!isAllowed(module, name)) {
            throw error("refusing global '" + module + "." + name + "' at offset " + at
                    + " (not a tensor, storage or module record; the checkpoint may be malicious)");
        }
        return new Global(module, name);
    }

    private Object reduce(Object callable, Object args, int at) {
        if (!(callable instanceof Global g)) {
            throw error("REDUCE of a " + typeName(callable) + " at offset " + at + " is not allowed");
        }
        Tuple t = tuple(args, "REDUCE of " + g.qualifiedName());
        if (g.equals(ORDERED_DICT)) {
            if (t.size() == 0) {
                return new LinkedHashMap<>();
            }
            throw error("collections.OrderedDict with arguments at offset " + at + " is not supported");
        }
        if (g.equals(REBUILD_TENSOR)) {
            return rebuildTensor(t, at);
        }
        if (g.equals(REBUILD_PARAMETER)) { // (data, requires_grad, backward_hooks): the data is the tensor
            if (t.size() < 1 || !(t.get(0) instanceof TensorRef ref)) {
                throw error("torch._utils._rebuild_parameter without a tensor at offset " + at);
            }
            return ref;
        }
        if (g.module().equals(JIT_PICKLE)) { // build_intlist(list) -> list; restore_type_tag(value, type) -> value
            if (t.size() < 1 || (JIT_LIST_BUILDERS.contains(g.name()) && !(t.get(0) instanceof ArrayList<?>))) {
                throw error(g.qualifiedName() + " at offset " + at + " without its list");
            }
            return t.get(0);
        }
        throw error("REDUCE of '" + g.qualifiedName() + "' at offset " + at + " is not allowed (not a callable on the allow-list)");
    }

    // _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad, backward_hooks[, metadata])
    private TensorRef rebuildTensor(Tuple t, int at) {
        if (t.size() < 4 || !(t.get(0) instanceof StorageRef storage)) {
            throw error("torch._utils._rebuild_tensor_v2 at offset " + at + " without a storage");
        }
        long offset = integer(t.get(1), "storage offset");
        Tuple size = tuple(t.get(2), "tensor size");
        Tuple stride = tuple(t.get(3), "tensor stride");
        if (size.size() != stride.size()) {
            throw error("tensor at offset " + at + " has " + size.size() + " sizes but " + stride.size() + " strides");
        }
        int[] shape = new int[size.size()];
        long[] strides = new long[stride.size()];
        for (int i = 0; i < shape.length; i++) {
            long d = integer(size.get(i), "tensor size");
            if (d < 0 || d > Integer.MAX_VALUE) {
                throw error("tensor at offset " + at + " has dimension " + d);
            }
            shape[i] = (int) d;
            strides[i] = integer(stride.get(i), "tensor stride");
        }
        return new TensorRef(storage, offset, shape, strides);
    }

    private Object newObject(Object cls, Object args, int at) {
        if (cls instanceof Global g && g.module().startsWith("__torch__")) {
            tuple(args, "NEWOBJ of " + g.qualifiedName());
            return new TorchObject(g.qualifiedName());
        }
        throw error("NEWOBJ of a " + typeName(cls) + " at offset " + at + " is not allowed");
    }

    private void build(Object target, Object state, int at) {
        if (target instanceof TorchObject obj) {
            if (state instanceof Map<?, ?> m) {
                for (Map.Entry<?, ?> e : m.entrySet()) {
                    if (!(e.getKey() instanceof String key)) {
                        throw error("attribute name of " + obj.className() + " is a " + typeName(e.getKey()));
                    }
                    obj.attributes.put(key, e.getValue());
                }
            } else {
                obj.state = state;
            }
            return;
        }
        if (target instanceof Map<?, ?> && state instanceof Map<?, ?> m) {
            @SuppressWarnings("unchecked") Map<Object, Object> dict = (Map<Object, Object>) target;
            dict.putAll(m);
            return;
        }
        throw error("BUILD of a " + typeName(target) + " at offset " + at + " is not allowed");
    }

    // ---- stack, memo, reading ----

    private void push(Object o) {
        stack.add(o);
    }

    private Object pop() {
        if (stack.isEmpty() || (!marks.isEmpty() && marks.getLast() == stack.size())) {
            throw error("malformed pickle: stack underflow at offset " + (pos - 1));
        }
        return stack.removeLast();
    }

    private Object peek() {
        if (stack.isEmpty() || (!marks.isEmpty() && marks.getLast() == stack.size())) {
            throw error("malformed pickle: empty stack at offset " + (pos - 1));
        }
        return stack.getLast();
    }

    private List<Object> popMark() {
        if (marks.isEmpty()) {
            throw error("malformed pickle: no MARK at offset " + (pos - 1));
        }
        int from = marks.removeLast();
        List<Object> top = stack.subList(from, stack.size());
        List<Object> items = new ArrayList<>(top);
        top.clear();
        return items;
    }

    private void memoPut(long index) {
        if (index < 0 || memo.size() >= MAX_MEMO) {
            throw error("malformed pickle: memo index " + index);
        }
        memo.put(index, peek());
    }

    private Object memoGet(long index, int at) {
        if (!memo.containsKey(index)) {
            throw error("malformed pickle: memo entry " + index + " read at offset " + at + " was never stored");
        }
        return memo.get(index);
    }

    private Map<Object, Object> putPairs(Map<Object, Object> dict, List<Object> items, String op) {
        if (items.size() % 2 != 0) {
            throw error("malformed pickle: odd number of items for " + op);
        }
        for (int i = 0; i < items.size(); i += 2) {
            dict.put(items.get(i), items.get(i + 1));
        }
        return dict;
    }

    @SuppressWarnings("unchecked")
    private Map<Object, Object> dict(Object o, String op) {
        if (o instanceof Map<?, ?> m) {
            return (Map<Object, Object>) m;
        }
        throw error(op + " on a " + typeName(o) + " at offset " + (pos - 1));
    }

    @SuppressWarnings("unchecked")
    private List<Object> list(Object o, String op) {
        if (o instanceof ArrayList<?> l) {
            return (List<Object>) l;
        }
        throw error(op + " on a " + typeName(o) + " at offset " + (pos - 1));
    }

    private Tuple tuple(Object o, String what) {
        if (o instanceof Tuple t) {
            return t;
        }
        throw error(what + " expects a tuple, found a " + typeName(o));
    }

    private long integer(Object o, String what) {
        if (o instanceof Long l) {
            return l;
        }
        throw error(what + " is a " + typeName(o) + ", not an integer");
    }

    private static String typeName(Object o) {
        if (o == null) return "None";
        if (o instanceof Global g) return "global " + g.qualifiedName();
        if (o instanceof TorchObject t) return t.className() + " object";
        return o.getClass().getSimpleName();
    }

    private void need(long n) {
        if (n < 0 || n > data.length - pos) {
            throw error("pickle truncated: " + n + " bytes needed at offset " + pos + ", " + (data.length - pos) + " left");
        }
    }

    private int length(long n, String op) {
        if (n < 0 || n > data.length - pos) {
            throw error(op + " length " + n + " at offset " + pos + " runs past the end of the pickle");
        }
        return (int) n;
    }

    private int u8() {
        need(1);
        return data[pos++] & 0xff;
    }

    private long u32le() {
        return i32le() & 0xffffffffL;
    }

    private int i32le() {
        need(4);
        int v = (data[pos] & 0xff) | (data[pos + 1] & 0xff) << 8 | (data[pos + 2] & 0xff) << 16 | (data[pos + 3] & 0xff) << 24;
        pos += 4;
        return v;
    }

    private long u64() {
        need(8);
        long v = 0;
        for (int i = 7; i >= 0; i--) {
            v = (v << 8) | (data[pos + i] & 0xff);
        }
        pos += 8;
        return v;
    }

    private long i64be() {
        need(8);
        long v = 0;
        for (int i = 0; i < 8; i++) {
            v = (v << 8) | (data[pos + i] & 0xff);
        }
        pos += 8;
        return v;
    }

    private Object longFromBytes(int n) {
        need(n);
        if (n == 0) {
            return 0L;
        }
        byte[] be = new byte[n]; // little-endian two's complement -> big-endian for BigInteger
        for (int i = 0; i < n; i++) {
            be[i] = data[pos + n - 1 - i];
        }
        pos += n;
        BigInteger v = new BigInteger(be);
        return v.bitLength() < 64 ? (Object) v.longValue() : v;
    }

    private String utf8(int n) {
        need(n);
        String s = new String(data, pos, n, StandardCharsets.UTF_8);
        pos += n;
        return s;
    }

    private String latin1(int n) {
        need(n);
        String s = new String(data, pos, n, StandardCharsets.ISO_8859_1);
        pos += n;
        return s;
    }

    private byte[] bytes(int n) {
        need(n);
        byte[] b = Arrays.copyOfRange(data, pos, pos + n);
        pos += n;
        return b;
    }

    private String line() {
        int end = pos;
        while (end < data.length && data[end] != '\n') {
            end++;
        }
        if (end == data.length) {
            throw error("pickle truncated inside GLOBAL at offset " + pos);
        }
        String s = new String(data, pos, end - pos, StandardCharsets.UTF_8);
        pos = end + 1;
        return s;
    }
}
