package org.clipj.runtime.cuda;

import java.util.List;

import org.clipj.runtime.DType;
import org.clipj.runtime.Tensor;

/**
 * elementwise.cu: pointwise ops over flat buffers, grid-stride, and the F32 <-> BF16/F16 casts. Shapes are
 * checked by the caller; the per-column kernels take the column count from the trailing operand.
 */
final class ElementwiseKernels {
    static final String FILL = "fill";
    static final String ADD = "add";
    static final String ADD_SCALED = "add_scaled";
    static final String SCALE = "scale";
    static final String BROADCAST_ADD_FORWARD = "broadcast_add_forward";
    static final String BROADCAST_ADD_BACKWARD_PARTIALS = "broadcast_add_backward_partials";
    static final String BROADCAST_ADD_BACKWARD_TOTAL = "broadcast_add_backward_total";
    static final String QUICKGELU_FORWARD = "quickgelu_forward";
    static final String QUICKGELU_FORWARD_BF16 = "quickgelu_forward_bf16";
    static final String QUICKGELU_FORWARD_F16 = "quickgelu_forward_f16";
    static final String QUICKGELU_FORWARD_BIAS = "quickgelu_forward_bias";
    static final String QUICKGELU_BACKWARD = "quickgelu_backward";
    static final String GELU_FORWARD = "gelu_forward";
    static final String GELU_FORWARD_BF16 = "gelu_forward_bf16";
    static final String GELU_FORWARD_F16 = "gelu_forward_f16";
    static final String GELU_FORWARD_BIAS = "gelu_forward_bias";
    static final String GELU_BACKWARD = "gelu_backward";
    static final String RELU_FORWARD = "relu_forward";
    static final String RELU_BACKWARD = "relu_backward";
    static final String CHANNEL_SCALE_FORWARD = "channel_scale_forward";
    static final String CHANNEL_SCALE_BACKWARD_INPUT = "channel_scale_backward_input";
    static final String CHANNEL_SCALE_BACKWARD_GAMMA = "channel_scale_backward_gamma";
    static final String CAST_F32_BF16 = "cast_f32_bf16";
    static final String CAST_BF16_F32 = "cast_bf16_f32";
    static final String CAST_F32_F16 = "cast_f32_f16";
    static final String CAST_F16_F32 = "cast_f16_f32";
    static final List<String> KERNELS = List.of(FILL, ADD, ADD_SCALED, SCALE, BROADCAST_ADD_FORWARD,
            BROADCAST_ADD_BACKWARD_PARTIALS, BROADCAST_ADD_BACKWARD_TOTAL,
            QUICKGELU_FORWARD, QUICKGELU_FORWARD_BF16, QUICKGELU_FORWARD_F16, QUICKGELU_FORWARD_BIAS, QUICKGELU_BACKWARD,
            GELU_FORWARD, GELU_FORWARD_BF16, GELU_FORWARD_F16, GELU_FORWARD_BIAS, GELU_BACKWARD,
            RELU_FORWARD, RELU_BACKWARD, CHANNEL_SCALE_FORWARD, CHANNEL_SCALE_BACKWARD_INPUT, CHANNEL_SCALE_BACKWARD_GAMMA,
            CAST_F32_BF16, CAST_BF16_F32, CAST_F32_F16, CAST_F16_F32);

    private final KernelLauncher launcher;
    private final DeviceMemory memory;
    private final CudaStream stream;

    ElementwiseKernels(KernelLauncher launcher, DeviceMemory memory, CudaStream stream) {
        this.launcher = launcher;
        this.memory = memory;
        this.stream = stream;
    }

    /** t = value for any floating dtype: the fill kernel in F32, then a cast for BF16/F16. */
    void fillAny(Tensor t, float value) {
        if (t.dtype() == DType.F32) {
            fill(t, value);
            return;
        }
        Tensor tmp = memory.empty(DType.F32, t.shape());
        fill(tmp, value);
        castAny(t, tmp);
        memory.release(tmp);
    }

    /** dst = src between any floating dtypes: a copy, one cast kernel, or two through F32 (BF16 <-> F16). */
    void castAny(Tensor dst, Tensor src) {
        DType from = src.dtype(), to = dst.dtype();
        if (from == to) {
            stream.copyDeviceToDevice(dst.deviceAddress(), src.deviceAddress(), src.byteSize());
        } else if (from == DType.F32 || to == DType.F32) {
            cast(dst, src);
        } else {
            Tensor tmp = memory.empty(DType.F32, src.shape());
            cast(tmp, src);
            cast(dst, tmp);
            memory.release(tmp);
        }
    }

    /** t = value, F32. */
    void fill(Tensor t, float value) {
        launcher.elementwise(FILL, t.numel(), launcher.args().ptr(t.deviceAddress()).f32(value).i64(t.numel()));
    }

    void add(Tensor out, Tensor a, Tensor b) {
        launcher.elementwise(ADD, out.numel(), launcher.args().ptr(out.deviceAddress()).ptr(a.deviceAddress())
                .ptr(b.deviceAddress()).i64(out.numel()));
    }

    void addScaled(Tensor dst, Tensor src, float alpha) {
        launcher.elementwise(ADD_SCALED, dst.numel(), launcher.args().ptr(dst.deviceAddress()).ptr(src.deviceAddress())
                .f32(alpha).i64(dst.numel()));
    }

    void scale(Tensor t, float s) {
        launcher.elementwise(SCALE, t.numel(), launcher.args().ptr(t.deviceAddress()).f32(s).i64(t.numel()));
    }

    /** out = x + b, b the trailing shape of x. */
    void broadcastAddForward(Tensor out, Tensor x, Tensor b) {
        launcher.elementwise(BROADCAST_ADD_FORWARD, x.numel(), launcher.args().ptr(out.deviceAddress()).ptr(x.deviceAddress())
                .ptr(b.deviceAddress()).i64(x.numel()).i32(Math.toIntExact(Math.max(b.numel(), 1))));
    }

    /**
     * db (M) += sum over the rows of dout (..., M): bias gradients in two stages (per-chunk partial sums, then
     * their sum per column, see {@link ColumnChunks}); an empty db has nothing to accumulate.
     */
    void broadcastAddBackward(Tensor db, Tensor dout) {
        int m = Math.toIntExact(db.numel());
        if (m == 0) return;
        int rows = Math.toIntExact(dout.numel() / m);
        ColumnChunks chunks = ColumnChunks.of(rows);
        Tensor partial = memory.empty(DType.F32, chunks.parts(), m); // (P, M)
        broadcastAddBackwardPartials(partial, dout, rows, m, chunks);
        broadcastAddBackwardTotal(db, partial, chunks.parts(), m);
        memory.release(partial);
    }

    /** partial (P, M) = the column sums of dout (rows, M) over each chunk of rows. */
    void broadcastAddBackwardPartials(Tensor partial, Tensor dout, int rows, int m, ColumnChunks chunks) {
        chunks.launch(launcher, BROADCAST_ADD_BACKWARD_PARTIALS, m, launcher.args().ptr(partial.deviceAddress())
                .ptr(dout.deviceAddress()).i32(rows).i32(m).i32(chunks.rowsPerPart()));
    }

    /** db (M) += the sum of the P partial rows. */
    void broadcastAddBackwardTotal(Tensor db, Tensor partial, int parts, int m) {
        launcher.elementwise(BROADCAST_ADD_BACKWARD_TOTAL, m, launcher.args().ptr(db.deviceAddress())
                .ptr(partial.deviceAddress()).i32(parts).i32(m));
    }

    /** out = quickgelu(x), out and x of one dtype: F32, BF16 or F16 (16-bit in place after a 16-bit GEMM). */
    void quickgeluForward(Tensor out, Tensor x) {
        unary(byDType(x, QUICKGELU_FORWARD, QUICKGELU_FORWARD_BF16, QUICKGELU_FORWARD_F16), out, x);
    }

    /** out = quickgelu(x + bias), bias (C) over the last dim of x (the MLP's c_fc bias fused in). */
    void quickgeluForwardBias(Tensor out, Tensor x, Tensor bias) {
        unaryBias(QUICKGELU_FORWARD_BIAS, out, x, bias);
    }

    void quickgeluBackward(Tensor dx, Tensor dout, Tensor x) {
        backward(QUICKGELU_BACKWARD, dx, dout, x);
    }

    /** out = gelu(x), out and x of one dtype: F32, BF16 or F16. */
    void geluForward(Tensor out, Tensor x) {
        unary(byDType(x, GELU_FORWARD, GELU_FORWARD_BF16, GELU_FORWARD_F16), out, x);
    }

    /** out = gelu(x + bias), bias (C) over the last dim of x. */
    void geluForwardBias(Tensor out, Tensor x, Tensor bias) {
        unaryBias(GELU_FORWARD_BIAS, out, x, bias);
    }

    void geluBackward(Tensor dx, Tensor dout, Tensor x) {
        backward(GELU_BACKWARD, dx, dout, x);
    }

    void reluForward(Tensor out, Tensor x) {
        unary(RELU_FORWARD, out, x);
    }

    void reluBackward(Tensor dx, Tensor dout, Tensor out) {
        backward(RELU_BACKWARD, dx, dout, out);
    }

    /** out = x * gamma, gamma (C) over the last dim of x. */
    void channelScaleForward(Tensor out, Tensor x, Tensor gamma) {
        launcher.elementwise(CHANNEL_SCALE_FORWARD, x.numel(), launcher.args().ptr(out.deviceAddress()).ptr(x.deviceAddress())
                .ptr(gamma.deviceAddress()).i64(x.numel()).i32(gamma.dim(0)));
    }

    /** dx += dout * gamma, dgamma += the column sums of dout * x (either may be null). */
    void channelScaleBackward(Tensor dx, Tensor dgamma, Tensor dout, Tensor x, Tensor gamma) {
        if (dx != null) channelScaleBackwardInput(dx, dout, gamma);
        if (dgamma != null) channelScaleBackwardGamma(dgamma, dout, x);
    }

    void channelScaleBackwardInput(Tensor dx, Tensor dout, Tensor gamma) {
        launcher.elementwise(CHANNEL_SCALE_BACKWARD_INPUT, dout.numel(), launcher.args().ptr(dx.deviceAddress())
                .ptr(dout.deviceAddress()).ptr(gamma.deviceAddress()).i64(dout.numel()).i32(gamma.dim(0)));
    }

    /** dgamma (C) += sum over the rows of dout * x. */
    void channelScaleBackwardGamma(Tensor dgamma, Tensor dout, Tensor x) {
        int c = dgamma.dim(0);
        launcher.elementwise(CHANNEL_SCALE_BACKWARD_GAMMA, c, launcher.args().ptr(dgamma.deviceAddress())
                .ptr(dout.deviceAddress()).ptr(x.deviceAddress()).i32(Math.toIntExact(x.numel() / c)).i32(c));
    }

    /** dst = src converted: F32 to or from BF16/F16 (one kernel per direction); dst and src are different dtypes. */
    void cast(Tensor dst, Tensor src) {
        launcher.elementwise(castKernel(src.dtype(), dst.dtype()), src.numel(), launcher.args().ptr(dst.deviceAddress()).ptr(src.deviceAddress()).i64(src.numel()));
    }

    /**
     * x itself when like is x's dtype; otherwise a scratch copy of x cast to like's dtype, which the caller
     * releases (the caching allocator hands the same block back on the next call of that size).
     */
    Tensor castLike(Tensor x, Tensor like) {
        if (like.dtype() == x.dtype()) return x;
        Tensor cast = memory.empty(like.dtype(), x.shape());
        cast(cast, x);
        return cast;
    }

    private void unary(String kernel, Tensor out, Tensor x) {
        launcher.elementwise(kernel, x.numel(), launcher.args().ptr(out.deviceAddress()).ptr(x.deviceAddress()).i64(x.numel()));
    }

    private void unaryBias(String kernel, Tensor out, Tensor x, Tensor bias) {
        launcher.elementwise(kernel, x.numel(), launcher.args().ptr(out.deviceAddress()).ptr(x.deviceAddress())
                .ptr(bias.deviceAddress()).i64(x.numel()).i32(x.dim(-1)));
    }

    private void backward(String kernel, Tensor dx, Tensor dout, Tensor saved) {
        launcher.elementwise(kernel, saved.numel(), launcher.args().ptr(dx.deviceAddress()).ptr(dout.deviceAddress())
                .ptr(saved.deviceAddress()).i64(saved.numel()));
    }

    /** The variant of a kernel for t's dtype. */
    private static String byDType(Tensor t, String f32, String bf16, String f16) {
        return switch (t.dtype()) {
            case F32 -> f32;
            case BF16 -> bf16;
            case F16 -> f16;
            default -> throw new IllegalArgumentException(f32 + ": no kernel for " + t.dtype() + " " + t.shapeString());
        };
    }

    private static String castKernel(DType from, DType to) {
        if (from == DType.F32 && to == DType.BF16) return CAST_F32_BF16;
        if (from == DType.BF16 && to == DType.F32) return CAST_BF16_F32;
        if (from == DType.F32 && to == DType.F16) return CAST_F32_F16;
        if (from == DType.F16 && to == DType.F32) return CAST_F16_F32;
        throw new IllegalArgumentException("cast: no kernel from " + from + " to " + to);
    }
}
