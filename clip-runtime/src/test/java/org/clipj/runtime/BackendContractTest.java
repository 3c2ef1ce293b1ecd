package org.clipj.runtime;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.lang.reflect.Method;
import java.lang.reflect.Modifier;
import java.util.ArrayList;
import java.util.EnumSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import java.util.TreeSet;
import java.util.stream.Stream;

import org.clipj.kernels.Kernels;
import org.clipj.runtime.cpu.CpuBackend;
import org.clipj.runtime.cuda.CudaBackend;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.DynamicTest;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestFactory;

/**
 * The {@link Backend} contract, held on both backends at once: every op called with bad shapes, a
 * wrong dtype and forbidden aliasing must be rejected by the CPU backend and by the CUDA backend (on
 * the simulator: the real .cu files compiled for the host) with the same exception type and the same
 * message, naming the op. Every op of Backend must have its cases here (found by reflection), so a
 * new op cannot skip the contract, and a check removed from one backend fails its cases.
 */
class BackendContractTest {
    /** Backend methods that are lifecycle and memory, not ops with an argument contract. */
    private static final Set<String> NOT_OPS = Set.of("name", "device", "description", "zeros", "empty", "release", "upload",
            "download", "synchronize", "close");
    /** Ops whose contract has no shape rule: one tensor, any shape. */
    private static final Set<String> SHAPELESS = Set.of("fill", "scale", "sumOfSquares", "sumOfSquaresAll",
            "hasNonFinite");
    /** Ops whose Backend documentation forbids an overlap. */
    private static final Set<String> NO_OVERLAP = Set.of("linearActivationForward", "linearResidualForward");

    private static CpuBackend cpu;
    private static CudaBackend cuda; // null when the build has no simulator library

    enum Kind { SHAPE, DTYPE, ALIAS, ARGUMENT }

    /** One bad call of one op; it makes its tensors on the backend it is given. */
    record Case(String op, Kind kind, String what, Call call) {}

    @FunctionalInterface
    interface Call {
        void on(Backend be, Tensors t);
    }

    /** Zero-filled tensors on one backend. */
    record Tensors(Backend be) {
        Tensor f32(int... shape) {
            return be.zeros(DType.F32, shape);
        }

        Tensor i32(int... shape) {
            return be.zeros(DType.I32, shape);
        }

        Tensor bf16(int... shape) {
            return be.zeros(DType.BF16, shape);
        }
    }

    @BeforeAll
    static void open() {
        cpu = new CpuBackend(1, false);
        if (Kernels.simLibrary().isPresent()) cuda = CudaBackend.open("sim");
    }

    @AfterAll
    static void close() {
        cpu.close();
        if (cuda != null) cuda.close();
    }

    @Test
    void everyOpOfBackendHasItsCheckAndItsContractCases() throws NoSuchMethodException {
        Map<String, Set<Kind>> kinds = new TreeMap<>();
        for (Case c : cases()) kinds.computeIfAbsent(c.op(), k -> EnumSet.noneOf(Kind.class)).add(c.kind());
        Set<String> ops = new TreeSet<>();
        for (Method m : Backend.class.getMethods()) {
            if (NOT_OPS.contains(m.getName())) continue;
            ops.add(m.getName());
            Class<?>[] params = new Class<?>[m.getParameterCount() + 1];
            params[0] = Device.class;
            System.arraycopy(m.getParameterTypes(), 0, params, 1, m.getParameterCount());
            Method check = OpChecks.class.getMethod(m.getName(), params);
            assertTrue(Modifier.isStatic(check.getModifiers()), "OpChecks." + m.getName() + " must be static");
        }
        List<String> missing = new ArrayList<>();
        for (String op : ops) {
            Set<Kind> have = kinds.getOrDefault(op, EnumSet.noneOf(Kind.class));
            Set<Kind> need = EnumSet.of(Kind.DTYPE);
            if (!SHAPELESS.contains(op)) need.add(Kind.SHAPE);
            if (NO_OVERLAP.contains(op)) need.add(Kind.ALIAS);
            for (Kind k : need) {
                if (!have.contains(k)) missing.add(op + " " + k);
            }
        }
        assertEquals(List.of(), missing, "ops of Backend without contract cases");
        Set<String> unknown = new TreeSet<>(kinds.keySet());
        unknown.removeAll(ops);
        assertEquals(Set.of(), unknown, "contract cases for methods that are not ops of Backend");
    }

    @TestFactory
    Stream<DynamicTest> bothBackendsRejectEachBadCallAlike() {
        return cases().stream().map(c -> DynamicTest.dynamicTest(c.op() + " " + c.kind() + ": " + c.what(), () -> {
            IllegalArgumentException onCpu = rejection(cpu, c);
            assertTrue(onCpu.getMessage().startsWith(c.op() + ": "), "the message names the op: " + onCpu.getMessage());
            assumeTrue(cuda != null, "simulator library not built: " + Kernels.simLibraryUnavailableReason());
            IllegalArgumentException onCuda = rejection(cuda, c);
            assertEquals(onCpu.getMessage(), onCuda.getMessage(), "CPU and CUDA reject " + c.op() + " alike");
        }));
    }

    private static IllegalArgumentException rejection(Backend be, Case c) {
        try {
            c.call().on(be, new Tensors(be));
        } catch (IllegalArgumentException e) {
            assertEquals(IllegalArgumentException.class, e.getClass(), be.name() + ": " + e);
            return e;
        }
        return fail(be.name() + " accepted " + c.op() + " with " + c.what());
    }

    @Test
    void aTensorOnTheOtherDeviceIsRejectedNamingBothDevices() {
        Tensor onCuda = Tensor.onDevice(Device.CUDA, DType.F32, 0L, null, 2, 3);
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> cpu.add(cpu.zeros(DType.F32, 2, 3), onCuda,
                cpu.zeros(DType.F32, 2, 3)));
        assertEquals("add: a [2, 3] is on CUDA, the CPU backend needs CPU tensors", e.getMessage());
        assumeTrue(cuda != null, "simulator library not built: " + Kernels.simLibraryUnavailableReason());
        e = assertThrows(IllegalArgumentException.class, () -> cuda.add(cuda.zeros(DType.F32, 2, 3), Tensor.zeros(DType.F32, 2, 3),
                cuda.zeros(DType.F32, 2, 3)));
        assertEquals("add: a [2, 3] is on CPU, the CUDA backend needs CUDA tensors (upload it first)", e.getMessage());
    }

    @Test
    void sixteenBitWeightsAreACudaCapabilityThatTheCpuRejectsSayingSo() {
        // BF16 linear and patch embedding weights are the exception: the CPU multiplies them with its native
        // kernels (Bf16LinearOpsTest); its other convolutions take F32 weights only
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> cpu.linearForward(cpu.zeros(DType.F32, 4, 5), cpu.zeros(DType.F32, 4, 6), cpu.zeros(DType.F16, 5, 6), null));
        assertEquals("linearForward: w must be F32 or BF16 (or F16 on CUDA), got F16 [5, 6]", e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> cpu.prepareWeight(cpu.zeros(DType.F16, 4, 3, 2, 2)));
        assertEquals("prepareWeight: w must be F32 or BF16 (or F16 on CUDA), got F16 [4, 3, 2, 2]", e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> cpu.conv2dForward(cpu.zeros(DType.F32, 1, 4, 2, 2),
                cpu.zeros(DType.F32, 1, 3, 4, 4), cpu.zeros(DType.BF16, 4, 3, 3, 3), null, 1, 0));
        assertEquals("conv2dForward: w must be F32 (or BF16, F16 on CUDA), got BF16 [4, 3, 3, 3]", e.getMessage());
        e = assertThrows(IllegalArgumentException.class,
                () -> cpu.attentionForward(cpu.zeros(DType.BF16, 1, 3, 4), null, cpu.zeros(DType.BF16, 1, 3, 12), 2, false));
        assertEquals("attentionForward: qkv must be F32 (or BF16, F16 on CUDA), got BF16 [1, 3, 12]", e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> cpu.attentionBackward(cpu.zeros(DType.BF16, 1, 3, 12),
                cpu.zeros(DType.BF16, 1, 3, 4), cpu.zeros(DType.BF16, 1, 3, 12), cpu.zeros(DType.BF16, 1, 3, 4), cpu.zeros(DType.F32, 1, 2, 3),
                2, false));
        assertEquals("attentionBackward: qkv must be F32 (or BF16 on CUDA; the CPU backward is F32 only), got BF16 [1, 3, 12]",
                e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> cpu.attentionPoolForward(cpu.zeros(DType.BF16, 1, 4), null,
                cpu.zeros(DType.BF16, 1, 4), cpu.zeros(DType.BF16, 1, 3, 4), cpu.zeros(DType.BF16, 1, 3, 4), 2));
        assertEquals("attentionPoolForward: k must be F32 (or BF16 on CUDA), got BF16 [1, 3, 4]", e.getMessage());
        // BF16 features are refused, not widened: the CPU loss is the F32 reference the CUDA BF16 loss is checked against
        e = assertThrows(IllegalArgumentException.class, () -> cpu.contrastiveLoss(cpu.zeros(DType.BF16, 3, 5), cpu.zeros(DType.BF16, 3, 5),
                cpu.zeros(DType.F32, 1), null, null, null, 1f));
        assertEquals("contrastiveLoss: img must be F32 (or BF16 on CUDA; the CPU loss is F32 only), got BF16 [3, 5]", e.getMessage());
    }

    private static Case c(String op, Kind kind, String what, Call call) {
        return new Case(op, kind, what, call);
    }

    /** The bad calls, grouped as Backend declares the ops. */
    static List<Case> cases() {
        List<Case> l = new ArrayList<>();
        Kind shape = Kind.SHAPE, dtype = Kind.DTYPE, alias = Kind.ALIAS, argument = Kind.ARGUMENT;
        // memory
        l.add(c("copy", shape, "numel 6 into 7", (be, t) -> be.copy(t.f32(7), t.f32(2, 3))));
        l.add(c("copy", dtype, "I32 into F32", (be, t) -> be.copy(t.f32(6), t.i32(6))));
        l.add(c("fill", dtype, "I32", (be, t) -> be.fill(t.i32(3), 1f)));
        l.add(c("cast", shape, "numel 6 into 5", (be, t) -> be.cast(t.bf16(5), t.f32(6))));
        l.add(c("cast", dtype, "I32 source", (be, t) -> be.cast(t.f32(3), t.i32(3))));
        // GEMM
        l.add(c("matmul", shape, "inner dims 5 and 6", (be, t) -> be.matmul(t.f32(3, 4), t.f32(3, 5), false, t.f32(6, 4), false, 1f, 0f)));
        l.add(c("matmul", shape, "rank 4", (be, t) -> be.matmul(t.f32(1, 1, 3, 4), t.f32(1, 1, 3, 5), false, t.f32(1, 1, 5, 4), false, 1f, 0f)));
        l.add(c("matmul", shape, "batch 2 and 3", (be, t) -> be.matmul(t.f32(2, 3, 4), t.f32(3, 3, 5), false, t.f32(2, 5, 4), false, 1f, 0f)));
        l.add(c("matmul", dtype, "I32 b", (be, t) -> be.matmul(t.f32(3, 4), t.f32(3, 5), false, t.i32(5, 4), false, 1f, 0f)));
        l.add(c("linearForward", shape, "out (2, 10) has the numel of (4, 5) only",
                (be, t) -> be.linearForward(t.f32(2, 10), t.f32(4, 6), t.f32(5, 6), null)));
        l.add(c("linearForward", shape, "x ends in 7, w takes 6", (be, t) -> be.linearForward(t.f32(4, 5), t.f32(4, 7), t.f32(5, 6), null)));
        l.add(c("linearForward", shape, "w of rank 3", (be, t) -> be.linearForward(t.f32(4, 5), t.f32(4, 6), t.f32(5, 6, 1), null)));
        l.add(c("linearForward", dtype, "I32 x", (be, t) -> be.linearForward(t.f32(4, 5), t.i32(4, 6), t.f32(5, 6), null)));
        l.add(c("linearForward", dtype, "I32 w", (be, t) -> be.linearForward(t.f32(4, 5), t.f32(4, 6), t.i32(5, 6), null)));
        l.add(c("linearForward", dtype, "BF16 x for an F32 w", (be, t) -> be.linearForward(t.f32(4, 5), t.bf16(4, 6), t.f32(5, 6), null)));
        l.add(c("linearForward", dtype, "BF16 bias for an F32 out",
                (be, t) -> be.linearForward(t.f32(4, 5), t.f32(4, 6), t.f32(5, 6), t.bf16(5))));
        l.add(c("linearActivationForward", shape, "bias (4) for w (5, 6)",
                (be, t) -> be.linearActivationForward(t.f32(4, 5), t.f32(4, 6), t.f32(5, 6), t.f32(4), Activation.GELU)));
        l.add(c("linearActivationForward", dtype, "I32 out",
                (be, t) -> be.linearActivationForward(t.i32(4, 5), t.f32(4, 6), t.f32(5, 6), null, Activation.GELU)));
        l.add(c("linearActivationForward", alias, "out is x", (be, t) -> {
            Tensor x = t.f32(4, 5);
            be.linearActivationForward(x, x, t.f32(5, 5), null, Activation.QUICK_GELU);
        }));
        l.add(c("linearActivationForward", argument, "no activation",
                (be, t) -> be.linearActivationForward(t.f32(4, 5), t.f32(4, 6), t.f32(5, 6), null, null)));
        l.add(c("linearResidualForward", shape, "residual (4, 6) for out (4, 5)",
                (be, t) -> be.linearResidualForward(t.f32(4, 5), t.f32(4, 6), t.f32(5, 6), null, t.f32(4, 6))));
        l.add(c("linearResidualForward", dtype, "I32 residual",
                (be, t) -> be.linearResidualForward(t.f32(4, 5), t.f32(4, 6), t.f32(5, 6), null, t.i32(4, 5))));
        l.add(c("linearResidualForward", dtype, "BF16 residual for an F32 out",
                (be, t) -> be.linearResidualForward(t.f32(4, 5), t.f32(4, 6), t.f32(5, 6), null, t.bf16(4, 5))));
        l.add(c("linearResidualForward", alias, "out is residual", (be, t) -> {
            Tensor out = t.f32(4, 5);
            be.linearResidualForward(out, t.f32(4, 6), t.f32(5, 6), null, out);
        }));
        l.add(c("linearResidualForward", alias, "out is x", (be, t) -> {
            Tensor x = t.f32(4, 5);
            be.linearResidualForward(x, x, t.f32(5, 5), null, t.f32(4, 5));
        }));
        l.add(c("prepareWeight", shape, "rank 3", (be, t) -> be.prepareWeight(t.f32(2, 3, 4))));
        l.add(c("prepareWeight", dtype, "I32", (be, t) -> be.prepareWeight(t.i32(2, 3))));
        l.add(c("linearBackward", shape, "dx (24) has the numel of x (4, 6) only",
                (be, t) -> be.linearBackward(t.f32(24), null, null, t.f32(4, 5), t.f32(4, 6), t.f32(5, 6))));
        l.add(c("linearBackward", shape, "dout (4, 4) for w (5, 6)",
                (be, t) -> be.linearBackward(null, t.f32(5, 6), null, t.f32(4, 4), t.f32(4, 6), t.f32(5, 6))));
        l.add(c("linearBackward", shape, "dw (6, 5) for w (5, 6)",
                (be, t) -> be.linearBackward(null, t.f32(6, 5), null, t.f32(4, 5), t.f32(4, 6), t.f32(5, 6))));
        l.add(c("linearBackward", dtype, "I32 dout",
                (be, t) -> be.linearBackward(null, null, t.f32(5), t.i32(4, 5), t.f32(4, 6), t.f32(5, 6))));
        // elementwise
        l.add(c("add", shape, "(3, 7) + (7, 3)", (be, t) -> be.add(t.f32(3, 7), t.f32(3, 7), t.f32(7, 3))));
        l.add(c("add", dtype, "I32 out", (be, t) -> be.add(t.i32(3, 7), t.f32(3, 7), t.f32(3, 7))));
        l.add(c("addScaled", shape, "numel 6 and 7", (be, t) -> be.addScaled(t.f32(6), t.f32(7), 2f)));
        l.add(c("addScaled", dtype, "BF16 src", (be, t) -> be.addScaled(t.f32(6), t.bf16(6), 2f)));
        l.add(c("scale", dtype, "I32", (be, t) -> be.scale(t.i32(6), 2f)));
        l.add(c("broadcastAdd", shape, "b (4) for x (3, 5)", (be, t) -> be.broadcastAdd(t.f32(3, 5), t.f32(3, 5), t.f32(4))));
        l.add(c("broadcastAdd", dtype, "I32 b", (be, t) -> be.broadcastAdd(t.f32(3, 5), t.f32(3, 5), t.i32(5))));
        l.add(c("broadcastAddBackward", shape, "db (5) divides dout (2, 10) but is not its trailing shape",
                (be, t) -> be.broadcastAddBackward(t.f32(5), t.f32(2, 10))));
        l.add(c("broadcastAddBackward", dtype, "I32 db", (be, t) -> be.broadcastAddBackward(t.i32(10), t.f32(2, 10))));
        for (String op : List.of("quickGeluForward", "geluForward", "reluForward", "softmaxForward")) {
            l.add(c(op, shape, "out (3, 4) for x (4, 3)", (be, t) -> unary(be, op, t.f32(3, 4), t.f32(4, 3))));
            l.add(c(op, dtype, "I32 x", (be, t) -> unary(be, op, t.f32(3, 4), t.i32(3, 4))));
        }
        l.add(c("softmaxForward", shape, "rank 0", (be, t) -> be.softmaxForward(t.f32(), t.f32())));
        for (String op : List.of("quickGeluBackward", "geluBackward", "reluBackward")) {
            l.add(c(op, shape, "dout (12) for (3, 4)", (be, t) -> unaryBackward(be, op, t.f32(3, 4), t.f32(12), t.f32(3, 4))));
            l.add(c(op, dtype, "BF16 dx", (be, t) -> unaryBackward(be, op, t.bf16(3, 4), t.f32(3, 4), t.f32(3, 4))));
        }
        l.add(c("channelScaleForward", shape, "gamma (4) for x (2, 5)",
                (be, t) -> be.channelScaleForward(t.f32(2, 5), t.f32(2, 5), t.f32(4))));
        l.add(c("channelScaleForward", shape, "gamma (1, 5) for x (2, 5)",
                (be, t) -> be.channelScaleForward(t.f32(2, 5), t.f32(2, 5), t.f32(1, 5))));
        l.add(c("channelScaleForward", dtype, "I32 gamma", (be, t) -> be.channelScaleForward(t.f32(2, 5), t.f32(2, 5), t.i32(5))));
        l.add(c("channelScaleBackward", shape, "dgamma (4) for gamma (5)",
                (be, t) -> be.channelScaleBackward(null, t.f32(4), t.f32(2, 5), t.f32(2, 5), t.f32(5))));
        l.add(c("channelScaleBackward", dtype, "I32 dout",
                (be, t) -> be.channelScaleBackward(t.f32(2, 5), null, t.i32(2, 5), t.f32(2, 5), t.f32(5))));
        // normalization
        l.add(c("layerNormForward", shape, "mean (3) for x (4, 5)",
                (be, t) -> be.layerNormForward(t.f32(4, 5), t.f32(3), null, t.f32(4, 5), t.f32(5), t.f32(5), 1e-5f)));
        l.add(c("layerNormForward", shape, "b (4) for x (4, 5)",
                (be, t) -> be.layerNormForward(t.f32(4, 5), null, null, t.f32(4, 5), t.f32(5), t.f32(4), 1e-5f)));
        l.add(c("layerNormForward", dtype, "I32 w",
                (be, t) -> be.layerNormForward(t.f32(4, 5), null, null, t.f32(4, 5), t.i32(5), t.f32(5), 1e-5f)));
        l.add(c("layerNormForward", dtype, "BF16 x into an F32 out",
                (be, t) -> be.layerNormForward(t.f32(4, 5), null, null, t.bf16(4, 5), t.f32(5), t.f32(5), 1e-5f)));
        l.add(c("layerNormBackward", shape, "rstd (5) for x (4, 5)",
                (be, t) -> be.layerNormBackward(t.f32(4, 5), null, null, t.f32(4, 5), t.f32(4, 5), t.f32(5), t.f32(4), t.f32(5))));
        l.add(c("layerNormBackward", dtype, "I32 dw",
                (be, t) -> be.layerNormBackward(null, t.i32(5), null, t.f32(4, 5), t.f32(4, 5), t.f32(5), t.f32(4), t.f32(4))));
        l.add(c("layerNormBackward", argument, "no mean",
                (be, t) -> be.layerNormBackward(t.f32(4, 5), null, null, t.f32(4, 5), t.f32(4, 5), t.f32(5), null, t.f32(4))));
        l.add(c("batchNormForward", shape, "gamma (2) for x (2, 3, 4, 4)", (be, t) -> be.batchNormForward(t.f32(2, 3, 4, 4),
                t.f32(2, 3, 4, 4), t.f32(2), t.f32(3), t.f32(3), t.f32(3), null, null, false, 0.1f, 1e-5f)));
        l.add(c("batchNormForward", shape, "x of rank 3", (be, t) -> be.batchNormForward(t.f32(3, 4, 4),
                t.f32(3, 4, 4), t.f32(3), t.f32(3), t.f32(3), t.f32(3), null, null, false, 0.1f, 1e-5f)));
        l.add(c("batchNormForward", dtype, "I32 runningVar", (be, t) -> be.batchNormForward(t.f32(2, 3, 4, 4),
                t.f32(2, 3, 4, 4), t.f32(3), t.f32(3), t.f32(3), t.i32(3), t.f32(3), t.f32(3), true, 0.1f, 1e-5f)));
        l.add(c("batchNormBackward", shape, "dx (2, 3, 4, 5) for x (2, 3, 4, 4)", (be, t) -> be.batchNormBackward(t.f32(2, 3, 4, 5),
                null, null, t.f32(2, 3, 4, 4), t.f32(2, 3, 4, 4), t.f32(3), t.f32(3), t.f32(3))));
        l.add(c("batchNormBackward", dtype, "I32 saveRstd", (be, t) -> be.batchNormBackward(null, t.f32(3), t.f32(3),
                t.f32(2, 3, 4, 4), t.f32(2, 3, 4, 4), t.f32(3), t.f32(3), t.i32(3))));
        l.add(c("l2NormalizeForward", shape, "norms (4) for x (3, 5)", (be, t) -> be.l2NormalizeForward(t.f32(3, 5), t.f32(4), t.f32(3, 5))));
        l.add(c("l2NormalizeForward", shape, "x of rank 3", (be, t) -> be.l2NormalizeForward(t.f32(1, 3, 5), null, t.f32(1, 3, 5))));
        l.add(c("l2NormalizeForward", dtype, "I32 out", (be, t) -> be.l2NormalizeForward(t.i32(3, 5), null, t.f32(3, 5))));
        l.add(c("l2NormalizeBackward", shape, "dout (5, 3) for out (3, 5)",
                (be, t) -> be.l2NormalizeBackward(t.f32(3, 5), t.f32(5, 3), t.f32(3, 5), t.f32(3))));
        l.add(c("l2NormalizeBackward", dtype, "I32 norms",
                (be, t) -> be.l2NormalizeBackward(t.f32(3, 5), t.f32(3, 5), t.f32(3, 5), t.i32(3))));
        // convolution and pooling
        l.add(c("conv2dForward", shape, "out (1, 4, 5, 5) for a 3x3 stride-1 unpadded conv of 6x6",
                (be, t) -> be.conv2dForward(t.f32(1, 4, 5, 5), t.f32(1, 2, 6, 6), t.f32(4, 2, 3, 3), null, 1, 0)));
        l.add(c("conv2dForward", shape, "w (4, 3, 3, 3) for x with 2 channels",
                (be, t) -> be.conv2dForward(t.f32(1, 4, 4, 4), t.f32(1, 2, 6, 6), t.f32(4, 3, 3, 3), null, 1, 0)));
        l.add(c("conv2dForward", argument, "stride 0",
                (be, t) -> be.conv2dForward(t.f32(1, 4, 4, 4), t.f32(1, 2, 6, 6), t.f32(4, 2, 3, 3), null, 0, 0)));
        l.add(c("conv2dForward", dtype, "I32 x",
                (be, t) -> be.conv2dForward(t.f32(1, 4, 4, 4), t.i32(1, 2, 6, 6), t.f32(4, 2, 3, 3), null, 1, 0)));
        l.add(c("conv2dBackward", shape, "dw (4, 2, 3, 2) for w (4, 2, 3, 3)", (be, t) -> be.conv2dBackward(null, t.f32(4, 2, 3, 2), null,
                t.f32(1, 4, 4, 4), t.f32(1, 2, 6, 6), t.f32(4, 2, 3, 3), 1, 0)));
        l.add(c("conv2dBackward", dtype, "I32 dbias", (be, t) -> be.conv2dBackward(null, null, t.i32(4),
                t.f32(1, 4, 4, 4), t.f32(1, 2, 6, 6), t.f32(4, 2, 3, 3), 1, 0)));
        l.add(c("patchEmbedForward", shape, "patch 4 does not divide 6",
                (be, t) -> be.patchEmbedForward(t.f32(1, 1, 5), t.f32(1, 3, 6, 6), t.f32(5, 3, 4, 4))));
        l.add(c("patchEmbedForward", shape, "out (1, 4, 4) for 4 patches of width 5",
                (be, t) -> be.patchEmbedForward(t.f32(1, 4, 4), t.f32(1, 3, 8, 8), t.f32(5, 3, 4, 4))));
        l.add(c("patchEmbedForward", dtype, "I32 x", (be, t) -> be.patchEmbedForward(t.f32(1, 4, 5), t.i32(1, 3, 8, 8), t.f32(5, 3, 4, 4))));
        l.add(c("patchEmbedBackward", shape, "patch 4 does not divide 6",
                (be, t) -> be.patchEmbedBackward(null, t.f32(5, 3, 4, 4), t.f32(1, 1, 5), t.f32(1, 3, 6, 6), t.f32(5, 3, 4, 4))));
        l.add(c("patchEmbedBackward", dtype, "I32 dout",
                (be, t) -> be.patchEmbedBackward(null, t.f32(5, 3, 4, 4), t.i32(1, 4, 5), t.f32(1, 3, 8, 8), t.f32(5, 3, 4, 4))));
        l.add(c("avgPool2dForward", shape, "window 3 for 4x4", (be, t) -> be.avgPool2dForward(t.f32(1, 2, 1, 1), t.f32(1, 2, 4, 4), 3)));
        l.add(c("avgPool2dForward", shape, "out (1, 2, 2, 1)", (be, t) -> be.avgPool2dForward(t.f32(1, 2, 2, 1), t.f32(1, 2, 4, 4), 2)));
        l.add(c("avgPool2dForward", dtype, "I32 x", (be, t) -> be.avgPool2dForward(t.f32(1, 2, 2, 2), t.i32(1, 2, 4, 4), 2)));
        l.add(c("avgPool2dBackward", shape, "dout (1, 2, 2, 1)", (be, t) -> be.avgPool2dBackward(t.f32(1, 2, 4, 4), t.f32(1, 2, 2, 1), 2)));
        l.add(c("avgPool2dBackward", dtype, "I32 dout", (be, t) -> be.avgPool2dBackward(t.f32(1, 2, 4, 4), t.i32(1, 2, 2, 2), 2)));
        l.add(c("transpose", shape, "rank 2", (be, t) -> be.transpose(t.f32(4, 3), t.f32(3, 4), false)));
        l.add(c("transpose", shape, "out not transposed", (be, t) -> be.transpose(t.f32(2, 3, 4), t.f32(2, 3, 4), true)));
        l.add(c("transpose", dtype, "I32 out", (be, t) -> be.transpose(t.i32(2, 4, 3), t.f32(2, 3, 4), false)));
        // attention
        l.add(c("attentionForward", shape, "out (1, 3, 5) for qkv (1, 3, 12)",
                (be, t) -> be.attentionForward(t.f32(1, 3, 5), null, t.f32(1, 3, 12), 2, true)));
        l.add(c("attentionForward", shape, "3 heads do not divide qkv (1, 3, 12)",
                (be, t) -> be.attentionForward(t.f32(1, 3, 4), null, t.f32(1, 3, 12), 3, true)));
        l.add(c("attentionForward", shape, "lse (1, 3, 2) for 2 heads of T 3",
                (be, t) -> be.attentionForward(t.f32(1, 3, 4), t.f32(1, 3, 2), t.f32(1, 3, 12), 2, false)));
        l.add(c("attentionForward", dtype, "I32 qkv", (be, t) -> be.attentionForward(t.f32(1, 3, 4), null, t.i32(1, 3, 12), 2, true)));
        l.add(c("attentionForward", dtype, "F32 qkv, BF16 out", (be, t) -> be.attentionForward(t.bf16(1, 3, 4), null, t.f32(1, 3, 12), 2, true)));
        l.add(c("attentionBackward", shape, "dqkv (1, 3, 4) for qkv (1, 3, 12)", (be, t) -> be.attentionBackward(t.f32(1, 3, 4),
                t.f32(1, 3, 4), t.f32(1, 3, 12), t.f32(1, 3, 4), t.f32(1, 2, 3), 2, true)));
        l.add(c("attentionBackward", dtype, "I32 dout", (be, t) -> be.attentionBackward(t.f32(1, 3, 12),
                t.i32(1, 3, 4), t.f32(1, 3, 12), t.f32(1, 3, 4), t.f32(1, 2, 3), 2, true)));
        l.add(c("attentionBackward", argument, "no lse", (be, t) -> be.attentionBackward(t.f32(1, 3, 12),
                t.f32(1, 3, 4), t.f32(1, 3, 12), t.f32(1, 3, 4), null, 2, true)));
        l.add(c("attentionPoolForward", shape, "q (2, 5) for k (2, 3, 4)",
                (be, t) -> be.attentionPoolForward(t.f32(2, 4), null, t.f32(2, 5), t.f32(2, 3, 4), t.f32(2, 3, 4), 2)));
        l.add(c("attentionPoolForward", shape, "v (2, 4, 4) for k (2, 3, 4)",
                (be, t) -> be.attentionPoolForward(t.f32(2, 4), null, t.f32(2, 4), t.f32(2, 3, 4), t.f32(2, 4, 4), 2)));
        l.add(c("attentionPoolForward", dtype, "I32 lse",
                (be, t) -> be.attentionPoolForward(t.f32(2, 4), t.i32(2, 2), t.f32(2, 4), t.f32(2, 3, 4), t.f32(2, 3, 4), 2)));
        l.add(c("attentionPoolBackward", shape, "dk (2, 3, 5) for k (2, 3, 4)", (be, t) -> be.attentionPoolBackward(null,
                t.f32(2, 3, 5), null, t.f32(2, 4), t.f32(2, 4), t.f32(2, 3, 4), t.f32(2, 3, 4), t.f32(2, 4), t.f32(2, 2), 2)));
        l.add(c("attentionPoolBackward", dtype, "I32 out", (be, t) -> be.attentionPoolBackward(t.f32(2, 4),
                null, null, t.f32(2, 4), t.f32(2, 4), t.f32(2, 3, 4), t.f32(2, 3, 4), t.i32(2, 4), t.f32(2, 2), 2)));
        // gathers
        l.add(c("embeddingForward", shape, "out (2, 3, 4) for ids (2, 3) and table (10, 5)",
                (be, t) -> be.embeddingForward(t.f32(2, 3, 4), t.i32(2, 3), t.f32(10, 5))));
        l.add(c("embeddingForward", dtype, "F32 ids", (be, t) -> be.embeddingForward(t.f32(2, 3, 5), t.f32(2, 3), t.f32(10, 5))));
        l.add(c("embeddingBackward", shape, "dout (3, 2, 5) has the numel of (2, 3, 5) only",
                (be, t) -> be.embeddingBackward(t.f32(10, 5), t.f32(3, 2, 5), t.i32(2, 3))));
        l.add(c("embeddingBackward", dtype, "I32 dtable", (be, t) -> be.embeddingBackward(t.i32(10, 5), t.f32(2, 3, 5), t.i32(2, 3))));
        l.add(c("gatherRowsForward", shape, "index (3) for x (2, 4, 5)", (be, t) -> be.gatherRowsForward(t.f32(2, 5), t.f32(2, 4, 5), t.i32(3))));
        l.add(c("gatherRowsForward", shape, "index (2, 1) for x (2, 4, 5)",
                (be, t) -> be.gatherRowsForward(t.f32(2, 5), t.f32(2, 4, 5), t.i32(2, 1))));
        l.add(c("gatherRowsForward", dtype, "F32 index", (be, t) -> be.gatherRowsForward(t.f32(2, 5), t.f32(2, 4, 5), t.f32(2))));
        l.add(c("gatherRowsBackward", shape, "dout (2, 4) for dx (2, 4, 5)", (be, t) -> be.gatherRowsBackward(t.f32(2, 4, 5), t.f32(2, 4), t.i32(2))));
        l.add(c("gatherRowsBackward", dtype, "I32 dx", (be, t) -> be.gatherRowsBackward(t.i32(2, 4, 5), t.f32(2, 5), t.i32(2))));
        // objective
        l.add(c("contrastiveLoss", shape, "txt (3, 4) for img (3, 5)",
                (be, t) -> be.contrastiveLoss(t.f32(3, 5), t.f32(3, 4), t.f32(1), null, null, null, 1f)));
        l.add(c("contrastiveLoss", shape, "logitScale (2)",
                (be, t) -> be.contrastiveLoss(t.f32(3, 5), t.f32(3, 5), t.f32(2), null, null, null, 1f)));
        l.add(c("contrastiveLoss", shape, "no rows", (be, t) -> be.contrastiveLoss(t.f32(0, 5), t.f32(0, 5), t.f32(1), null, null, null, 1f)));
        l.add(c("contrastiveLoss", dtype, "BF16 txt for F32 img",
                (be, t) -> be.contrastiveLoss(t.f32(3, 5), t.bf16(3, 5), t.f32(1), null, null, null, 1f)));
        l.add(c("contrastiveLoss", dtype, "BF16 dImg (gradients are F32)",
                (be, t) -> be.contrastiveLoss(t.f32(3, 5), t.f32(3, 5), t.f32(1), t.bf16(3, 5), null, null, 1f)));
        l.add(c("contrastiveLoss", dtype, "I32 dTxt",
                (be, t) -> be.contrastiveLoss(t.f32(3, 5), t.f32(3, 5), t.f32(1), null, t.i32(3, 5), null, 1f)));
        // optimizer and reductions
        l.add(c("adamwUpdate", shape, "m of 5 for param of 6",
                (be, t) -> be.adamwUpdate(t.f32(6), t.f32(6), t.f32(5), t.f32(6), 1e-3f, 0.9f, 0.999f, 1e-8f, 0f, 1, 1f)));
        l.add(c("adamwUpdate", dtype, "BF16 grad",
                (be, t) -> be.adamwUpdate(t.f32(6), t.bf16(6), t.f32(6), t.f32(6), 1e-3f, 0.9f, 0.999f, 1e-8f, 0f, 1, 1f)));
        l.add(c("adamwUpdate", argument, "step 0",
                (be, t) -> be.adamwUpdate(t.f32(6), t.f32(6), t.f32(6), t.f32(6), 1e-3f, 0.9f, 0.999f, 1e-8f, 0f, 0, 1f)));
        l.add(c("adamwUpdateCopy", shape, "copy of 5 for param of 6",
                (be, t) -> be.adamwUpdateCopy(t.f32(6), t.bf16(5), t.f32(6), t.f32(6), t.f32(6), 1e-3f, 0.9f, 0.999f, 1e-8f, 0f, 1, 1f)));
        l.add(c("adamwUpdateCopy", dtype, "F32 copy",
                (be, t) -> be.adamwUpdateCopy(t.f32(6), t.f32(6), t.f32(6), t.f32(6), t.f32(6), 1e-3f, 0.9f, 0.999f, 1e-8f, 0f, 1, 1f)));
        l.add(c("adamwUpdateCopy", dtype, "BF16 m",
                (be, t) -> be.adamwUpdateCopy(t.f32(6), t.bf16(6), t.f32(6), t.bf16(6), t.f32(6), 1e-3f, 0.9f, 0.999f, 1e-8f, 0f, 1, 1f)));
        l.add(c("sumOfSquares", dtype, "BF16", (be, t) -> be.sumOfSquares(t.bf16(6))));
        l.add(c("sumOfSquaresAll", dtype, "BF16 second tensor",
                (be, t) -> be.sumOfSquaresAll(java.util.List.of(t.f32(3), t.bf16(6)))));
        l.add(c("sumOfSquaresAll", argument, "null list", (be, t) -> be.sumOfSquaresAll(null)));
        l.add(c("hasNonFinite", dtype, "BF16", (be, t) -> be.hasNonFinite(t.bf16(6))));
        l.add(c("rowArgmax", shape, "index (3) for x (2, 4)", (be, t) -> be.rowArgmax(t.i32(3), t.i32(2, 4))));
        l.add(c("rowArgmax", shape, "x (2, 0)", (be, t) -> be.rowArgmax(t.i32(2), t.i32(2, 0))));
        l.add(c("rowArgmax", shape, "x (8)", (be, t) -> be.rowArgmax(t.i32(8), t.i32(8))));
        l.add(c("rowArgmax", dtype, "F32 x", (be, t) -> be.rowArgmax(t.i32(2), t.f32(2, 4))));
        l.add(c("rowArgmax", dtype, "F32 index", (be, t) -> be.rowArgmax(t.f32(2), t.i32(2, 4))));
        l.add(c("rowArgmax", alias, "index inside x", (be, t) -> {
            Tensor x = t.i32(2, 4);
            be.rowArgmax(x.reshape(8).slice(0, 2), x);
        }));
        return l;
    }

    private static void unary(Backend be, String op, Tensor out, Tensor x) {
        switch (op) {
            case "quickGeluForward" -> be.quickGeluForward(out, x);
            case "geluForward" -> be.geluForward(out, x);
            case "reluForward" -> be.reluForward(out, x);
            case "softmaxForward" -> be.softmaxForward(out, x);
            default -> throw new IllegalStateException(op);
        }
    }

    private static void unaryBackward(Backend be, String op, Tensor dx, Tensor dout, Tensor x) {
        switch (op) {
            case "quickGeluBackward" -> be.quickGeluBackward(dx, dout, x);
            case "geluBackward" -> be.geluBackward(dx, dout, x);
            case "reluBackward" -> be.reluBackward(dx, dout, x);
            default -> throw new IllegalStateException(op);
        }
    }
}
