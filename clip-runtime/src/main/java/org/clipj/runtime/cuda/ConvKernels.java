package org.clipj.runtime.cuda;

import static org.clipj.runtime.cuda.KernelLauncher.address;

import java.util.List;

import org.clipj.cuda.Blas;
import org.clipj.runtime.DType;
import org.clipj.runtime.Tensor;

/**
 * conv.cu: convolutions as im2col + GEMM (ResNet's convolutions, ViT's patch embedding: stride = kernel, no
 * padding) and average pooling. Square kernels; x (B, Ci, H, W), w (Co, Ci, K, K). The forwards take BF16/F16
 * weights: the F32 columns are cast to the weight's type and the GEMM accumulates in F32.
 */
final class ConvKernels {
    static final String IM2COL_FORWARD = "im2col_forward";
    static final String IM2COL_BACKWARD = "im2col_backward";
    static final String CONV2D_FORWARD_OUTPUT = "conv2d_forward_output";
    static final String AVGPOOL2D_FORWARD = "avgpool2d_forward";
    static final String AVGPOOL2D_BACKWARD = "avgpool2d_backward";
    static final List<String> KERNELS = List.of(IM2COL_FORWARD, IM2COL_BACKWARD, CONV2D_FORWARD_OUTPUT, AVGPOOL2D_FORWARD,
            AVGPOOL2D_BACKWARD);

    private final KernelLauncher launcher;
    private final DeviceMemory memory;
    private final MatmulKernels matmul;
    private final ElementwiseKernels elementwise;
    private final TransposeKernels transpose;

    ConvKernels(KernelLauncher launcher, DeviceMemory memory, MatmulKernels matmul, ElementwiseKernels elementwise,
                TransposeKernels transpose) {
        this.launcher = launcher;
        this.memory = memory;
        this.matmul = matmul;
        this.elementwise = elementwise;
        this.transpose = transpose;
    }

    /** out (B, Co, Ho, Wo) = conv(x, w) + bias (Co, may be null). */
    void conv2dForward(Tensor out, Tensor x, Tensor w, Tensor bias, int stride, int padding) {
        int b = x.dim(0), co = w.dim(0), k = w.dim(2), ho = out.dim(2), wo = out.dim(3);
        int cols = x.dim(1) * k * k, rows = b * ho * wo;
        Tensor col = im2colLike(x, w, k, stride, padding, ho, wo);
        Tensor y = memory.empty(DType.F32, rows, co);
        matmul.gemm("conv2dForward", false, true, rows, co, cols, 1f, col.deviceAddress(), cols, 0, w.deviceAddress(), cols, 0, 0f,
                y.deviceAddress(), co, 0, 0, 1, MatmulKernels.gemmInputType(w));
        conv2dForwardOutput(out, y, bias);
        memory.release(col);
        memory.release(y);
    }

    /** out (B, Co, Ho*Wo) = y (B, Ho*Wo, Co) transposed per image + bias (Co, may be null). */
    void conv2dForwardOutput(Tensor out, Tensor y, Tensor bias) {
        launcher.elementwise(CONV2D_FORWARD_OUTPUT, out.numel(), launcher.args().ptr(out.deviceAddress()).ptr(y.deviceAddress())
                .ptr(address(bias)).i32(out.dim(0)).i32(out.dim(1)).i32(out.dim(2) * out.dim(3)));
    }

    /** dx, dw, dbias += the gradients of conv2dForward (each may be null); F32. */
    void conv2dBackward(Tensor dx, Tensor dw, Tensor dbias, Tensor dout, Tensor x, Tensor w, int stride, int padding) {
        int b = x.dim(0), co = w.dim(0), k = w.dim(2), ho = dout.dim(2), wo = dout.dim(3);
        int rows = b * ho * wo, cols = x.dim(1) * k * k;
        String op = "conv2dBackward";
        Tensor dy = memory.empty(DType.F32, b, ho * wo, co); // dout with channels last: the GEMMs' row layout
        transpose.transpose(dy, dout, b, co, ho * wo, false);
        if (dbias != null) elementwise.broadcastAddBackward(dbias, dy);
        if (dw != null) {
            Tensor col = im2colForward(x, k, stride, padding, ho, wo);
            matmul.gemm(op, true, false, co, cols, rows, 1f, dy.deviceAddress(), co, 0, col.deviceAddress(), cols, 0, 1f,
                    dw.deviceAddress(), cols, 0, 0, 1, Blas.Type.F32);
            memory.release(col);
        }
        if (dx != null) {
            Tensor dcol = memory.empty(DType.F32, rows, cols);
            matmul.gemm(op, false, false, rows, cols, co, 1f, dy.deviceAddress(), co, 0, w.deviceAddress(), cols, 0, 0f,
                    dcol.deviceAddress(), cols, 0, 0, 1, Blas.Type.F32);
            im2colBackward(dx, dcol, k, stride, padding, ho, wo);
            memory.release(dcol);
        }
        memory.release(dy);
    }

    /** out (B, GH*GW, C) = the patches of x (B, Ci, GH*p, GW*p) @ w (C, Ci, p, p) flattened. */
    void patchEmbedForward(Tensor out, Tensor x, Tensor w) {
        int b = x.dim(0), p = w.dim(2), c = w.dim(0), gh = x.dim(2) / p, gw = x.dim(3) / p, cols = x.dim(1) * p * p;
        Tensor col = im2colLike(x, w, p, p, 0, gh, gw);
        matmul.gemm("patchEmbedForward", false, true, b * gh * gw, c, cols, 1f, col.deviceAddress(), cols, 0, w.deviceAddress(),
                cols, 0, 0f, out.deviceAddress(), c, 0, 0, 1, MatmulKernels.gemmInputType(w));
        memory.release(col);
    }

    /** dx, dw += the gradients of patchEmbedForward (each may be null); F32. */
    void patchEmbedBackward(Tensor dx, Tensor dw, Tensor dout, Tensor x, Tensor w) {
        int b = x.dim(0), p = w.dim(2), c = w.dim(0), gh = x.dim(2) / p, gw = x.dim(3) / p;
        int rows = b * gh * gw, cols = x.dim(1) * p * p;
        String op = "patchEmbedBackward";
        if (dw != null) {
            Tensor col = im2colForward(x, p, p, 0, gh, gw);
            matmul.gemm(op, true, false, c, cols, rows, 1f, dout.deviceAddress(), c, 0, col.deviceAddress(), cols, 0, 1f,
                    dw.deviceAddress(), cols, 0, 0, 1, Blas.Type.F32);
            memory.release(col);
        }
        if (dx != null) {
            Tensor dcol = memory.empty(DType.F32, rows, cols);
            matmul.gemm(op, false, false, rows, cols, c, 1f, dout.deviceAddress(), c, 0, w.deviceAddress(), cols, 0, 0f,
                    dcol.deviceAddress(), cols, 0, 0, 1, Blas.Type.F32);
            im2colBackward(dx, dcol, p, p, 0, gh, gw);
            memory.release(dcol);
        }
    }

    /** col (B*Ho*Wo, Ci*K*K) for x (B, Ci, H, W); the caller releases it. */
    Tensor im2colForward(Tensor x, int k, int stride, int padding, int ho, int wo) {
        int b = x.dim(0), ci = x.dim(1);
        Tensor col = memory.empty(DType.F32, b * ho * wo, ci * k * k);
        launcher.elementwise(IM2COL_FORWARD, col.numel(), launcher.args().ptr(col.deviceAddress()).ptr(x.deviceAddress()).i32(b)
                .i32(ci).i32(x.dim(2)).i32(x.dim(3)).i32(k).i32(stride).i32(padding).i32(ho).i32(wo));
        return col;
    }

    /** dx (B, Ci, H, W) += dcol (B*Ho*Wo, Ci*K*K) scattered back. */
    void im2colBackward(Tensor dx, Tensor dcol, int k, int stride, int padding, int ho, int wo) {
        launcher.elementwise(IM2COL_BACKWARD, dcol.numel(), launcher.args().ptr(dx.deviceAddress()).ptr(dcol.deviceAddress())
                .i32(dx.dim(0)).i32(dx.dim(1)).i32(dx.dim(2)).i32(dx.dim(3)).i32(k).i32(stride).i32(padding).i32(ho).i32(wo));
    }

    /** out (B, C, H/k, W/k) = the means of x's k x k windows. */
    void avgpool2dForward(Tensor out, Tensor x, int k) {
        launcher.elementwise(AVGPOOL2D_FORWARD, out.numel(), launcher.args().ptr(out.deviceAddress()).ptr(x.deviceAddress())
                .i32(x.dim(0) * x.dim(1)).i32(x.dim(2)).i32(x.dim(3)).i32(k));
    }

    void avgpool2dBackward(Tensor dx, Tensor dout, int k) {
        launcher.elementwise(AVGPOOL2D_BACKWARD, dx.numel(), launcher.args().ptr(dx.deviceAddress()).ptr(dout.deviceAddress())
                .i32(dx.dim(0) * dx.dim(1)).i32(dx.dim(2)).i32(dx.dim(3)).i32(k));
    }

    /** The im2col columns of x in w's dtype (the GEMM's input type); the caller releases them. */
    private Tensor im2colLike(Tensor x, Tensor w, int k, int stride, int padding, int ho, int wo) {
        Tensor colF32 = im2colForward(x, k, stride, padding, ho, wo);
        Tensor col = elementwise.castLike(colF32, w);
        if (col != colF32) memory.release(colF32);
        return col;
    }
}
