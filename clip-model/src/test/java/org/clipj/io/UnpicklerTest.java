package org.clipj.io;

import org.clipj.io.Unpickler.TorchObject;
import org.clipj.io.Unpickler.Tuple;
import org.clipj.runtime.InvalidInputException;
import org.junit.jupiter.api.Test;

import java.math.BigInteger;
import java.nio.charset.StandardCharsets;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.Set;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class UnpicklerTest {
    // CPython 3 pickle.dumps(d, protocol=2) of
    // {"int": 1, "neg": -5, "int2": 300, "int4": 70000, "big": 2**40, "huge": -2**70, "f": 1.5, "s": "h\u00e9llo",
    //  "t": (1, 2, 3), "t1": (None,), "t4": (1, 2, 3, 4), "l": [True, False, None], "nested": {"x": [1.0, -2.25]},
    //  "a": shared, "b": shared, "empty": ()}  with shared = [7, 8]
    private static final String PROTOCOL_2 = "80027d7100285803000000696e7471014b0158030000006e656771024afbffffff5804000000696e743271034d2c015804000000696e743471044a70110100580300000062696771058a0600000000000158040000006875676571068a090000000000000000c05801000000667107473ff80000000000005801000000737108580600000068c3a96c6c6f7109580100000074710a4b014b024b0387710b58020000007431710c4e85710d58020000007434710e284b014b024b034b0474710f58010000006c71105d71112888894e6558060000006e657374656471127d711358010000007871145d711528473ff000000000000047c002000000000000657358010000006171165d7117284b074b0865580100000062711868175805000000656d707479711929752e";
    // protocol=4 of the same dict plus "bytes": b"\x00\x01\xff", "set": {3}, "fs": frozenset([4]), "long": "x" * 300
    private static final String PROTOCOL_4 = "80049535020000000000007d94288c03696e74944b018c036e6567944afbffffff8c04696e7432944d2c018c04696e7434944a701101008c03626967948a060000000000018c0468756765948a090000000000000000c08c016694473ff80000000000008c0173948c0668c3a96c6c6f948c0174944b014b024b0387948c027431944e85948c02743494284b014b024b034b0474948c016c945d942888894e658c066e6573746564947d948c0178945d9428473ff000000000000047c00200000000000065738c0161945d94284b074b08658c01629468178c05656d70747994298c0562797465739443030001ff948c03736574948f94284b03908c02667394284b0491948c046c6f6e6794582c01000078787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787894752e";
    // protocol=4 of collections.OrderedDict([("a", 1), ("b", (2.5,))]): STACK_GLOBAL, REDUCE, SETITEMS
    private static final String ORDERED_DICT_4 = "80049539000000000000008c0b636f6c6c656374696f6e73948c0b4f72646572656444696374949394295294288c0161944b018c0162944740040000000000008594752e";

    private static Object load(byte[] pickle) {
        return Unpickler.load(pickle, "test.pkl", null);
    }

    private static void checkCommon(Map<?, ?> d) {
        assertEquals(1L, d.get("int"));
        assertEquals(-5L, d.get("neg"));
        assertEquals(300L, d.get("int2"));
        assertEquals(70000L, d.get("int4"));
        assertEquals(1L << 40, d.get("big"));
        assertEquals(BigInteger.TWO.pow(70).negate(), d.get("huge"));
        assertEquals(1.5, d.get("f"));
        assertEquals("h\u00e9llo", d.get("s"));
        assertEquals(List.of(1L, 2L, 3L), ((Tuple) d.get("t")).items());
        assertEquals(1, ((Tuple) d.get("t1")).size());
        assertNull(((Tuple) d.get("t1")).get(0));
        assertEquals(List.of(1L, 2L, 3L, 4L), ((Tuple) d.get("t4")).items());
        assertEquals(Arrays.asList(true, false, null), d.get("l"));
        assertEquals(List.of(1.0, -2.25), ((Map<?, ?>) d.get("nested")).get("x"));
        assertEquals(List.of(7L, 8L), d.get("a"));
        assertSame(d.get("a"), d.get("b"), "memo must return the same object");
        assertEquals(0, ((Tuple) d.get("empty")).size());
    }

    @Test
    void readsCPythonProtocol2() {
        Map<?, ?> d = assertInstanceOf(Map.class, load(TestFiles.hex(PROTOCOL_2)));
        assertEquals(16, d.size());
        checkCommon(d);
    }

    @Test
    void readsCPythonProtocol4WithFramesMemoizeBytesAndSets() {
        Map<?, ?> d = assertInstanceOf(Map.class, load(TestFiles.hex(PROTOCOL_4)));
        assertEquals(20, d.size());
        checkCommon(d);
        assertArrayEquals(new byte[]{0, 1, (byte) 0xff}, (byte[]) d.get("bytes"));
        assertEquals(Set.of(3L), d.get("set"));
        assertEquals(Set.of(4L), d.get("fs"));
        assertEquals("x".repeat(300), d.get("long"));
    }

    @Test
    void readsOrderedDictThroughStackGlobal() {
        Map<?, ?> d = assertInstanceOf(Map.class, load(TestFiles.hex(ORDERED_DICT_4)));
        assertEquals(List.of("a", "b"), List.copyOf(d.keySet()));
        assertEquals(List.of(2.5), ((Tuple) d.get("b")).items());
    }

    @Test
    void torchScriptClassesBecomeInertRecords() {
        byte[] pickle = new TestFiles.Pickle().proto(2)
                .global("__torch__.model", "Block").op(')').op(0x81)
                .op('}').op('(').string("training").op(0x89).string("width").integer(64).op('u')
                .op('b').op('.').bytes();
        TorchObject obj = assertInstanceOf(TorchObject.class, load(pickle));
        assertEquals("__torch__.model.Block", obj.className());
        assertEquals(Map.of("training", false, "width", 64L), obj.attributes());
    }

    @Test
    void torchScriptListBuildersTypeTagsAndParametersYieldPlainValues() {
        byte[] pickle = new TestFiles.Pickle().proto(2).op('}').op('(')
                .string("pad").global("torch.jit._pickle", "build_intlist")
                .op('(').op(']').op('(').integer(1).integer(2).op('e').op('t').op('R')
                .string("tagged").global("torch.jit._pickle", "restore_type_tag")
                .op('(').op('}').string("Dict[str, int]").op('t').op('R')
                .string("weight").global("torch._utils", "_rebuild_parameter")
                .op('(').tensorValue("HalfStorage", "3", 8, 2, new int[]{2, 3}, new int[]{3, 1}).op(0x88)
                .global("collections", "OrderedDict").op(')').op('R').op('t').op('R')
                .op('u').op('.').bytes();
        Map<?, ?> d = assertInstanceOf(Map.class, Unpickler.load(pickle, "test.pkl", pid -> {
            Tuple t = (Tuple) pid;
            return new Unpickler.StorageRef(((Unpickler.Global) t.get(1)).name(), (String) t.get(2), (String) t.get(3), (Long) t.get(4));
        }));
        assertEquals(List.of(1L, 2L), d.get("pad"));
        assertEquals(Map.of(), d.get("tagged"));
        Unpickler.TensorRef w = assertInstanceOf(Unpickler.TensorRef.class, d.get("weight"));
        assertEquals(new Unpickler.StorageRef("HalfStorage", "3", "cpu", 8), w.storage());
        assertEquals(2, w.offset());
        assertArrayEquals(new int[]{2, 3}, w.shape());
        assertArrayEquals(new long[]{3, 1}, w.stride());
    }

    private static void assertRejected(byte[] pickle, String global) {
        InvalidInputException e = assertThrows(InvalidInputException.class, () -> load(pickle));
        assertTrue(e.getMessage().contains("test.pkl"), e.getMessage());
        assertTrue(e.getMessage().contains(global), e.getMessage());
    }

    @Test
    void rejectsGlobalOsSystem() {
        // what pickle.dumps of an object whose __reduce__ returns (os.system, ("ls",)) looks like
        assertRejected(new TestFiles.Pickle().proto(2).global("os", "system").string("ls").op(0x85).op('R').op('.').bytes(),
                "'os.system'");
        assertRejected(new TestFiles.Pickle().proto(2).global("posix", "system").string("ls").op(0x85).op('R').op('.').bytes(),
                "'posix.system'");
        assertRejected(new TestFiles.Pickle().proto(2).global("subprocess", "Popen").string("ls").op(0x85).op('R').op('.').bytes(),
                "'subprocess.Popen'");
    }

    @Test
    void rejectsStackGlobalBuiltinsEval() {
        byte[] pickle = ("\u0080\u0004\u008c\u0008builtins\u008c\u0004eval\u0093\u008c\u0003" + "1+1" + "\u0085R.")
                .getBytes(StandardCharsets.ISO_8859_1);
        assertRejected(pickle, "'builtins.eval'");
    }

    @Test
    void rejectsGlobalsThatOnlyLookLikeTorch() {
        assertRejected(new TestFiles.Pickle().proto(2).global("torch", "load").op('.').bytes(), "'torch.load'");
        assertRejected(new TestFiles.Pickle().proto(2).global("torch._utils", "_rebuild_qtensor").op('.').bytes(),
                "'torch._utils._rebuild_qtensor'");
        assertRejected(new TestFiles.Pickle().proto(2).global("__torch__.m", "os.system").op('.').bytes(),
                "'__torch__.m.os.system'");
    }

    @Test
    void rejectsReduceOfAnAllowedNonCallable() {
        // a storage type is on the allow-list as a marker, but calling it is not
        assertRejected(new TestFiles.Pickle().proto(2).global("torch", "FloatStorage").op(')').op('R').op('.').bytes(),
                "REDUCE of 'torch.FloatStorage'");
        // NEWOBJ only builds TorchScript records
        assertRejected(new TestFiles.Pickle().proto(2).global("collections", "OrderedDict").op(')').op(0x81).op('.').bytes(),
                "NEWOBJ of a global collections.OrderedDict");
    }

    @Test
    void rejectsMalformedPickles() {
        assertRejected(new byte[]{(byte) 0x80, 2, 'N'}, "without STOP");
        assertRejected(new byte[]{(byte) 0x80, 2, 'i', '.'}, "opcode 0x69");
        assertRejected(new byte[]{(byte) 0x80, 2, 'h', 9, '.'}, "memo entry 9");
        assertRejected(new byte[]{(byte) 0x80, 2, 'X', (byte) 0xff, (byte) 0xff, (byte) 0xff, 0x7f, 'a', '.'}, "runs past the end");
        assertRejected(new byte[]{(byte) 0x80, 2, 'R', '.'}, "stack underflow");
        assertRejected(new byte[]{(byte) 0x80, 2, 'N', 'N', '.'}, "2 values left at STOP");
        assertRejected(new byte[]{(byte) 0x80, 2, 'Q', '.'}, "stack underflow");
        assertRejected(new byte[]{(byte) 0x80, 2, 'N', 'Q', '.'}, "persistent id");
    }
}
