package org.clipj.runtime.cuda;

import static org.clipj.runtime.cuda.KernelLauncher.ROW_THREADS;
import static org.clipj.runtime.cuda.KernelLauncher.address;
import static org.clipj.runtime.cuda.KernelLauncher.ceilDiv;

import java.util.List;

import org.clipj.cuda.Blas;
import org.clipj.runtime.DType;
import org.clipj.runtime.Tensor;

/**
 * contrastive.cu: CLIP's symmetric cross-entropy over S = scale * img @ txt^T. F32 features: without the N x N matrix
 * (row and column log-sum-exps, the loss, a backward that recomputes the rows). BF16 features (mixed-precision
 * training): the logits img @ txt^T (N, N) F32 from a BF16 GEMM on tensor cores, row and column log-sum-exps over them,
 * dS (N, N) BF16, and the feature gradients as two more BF16 GEMMs, while the N x N buffers fit
 * a memory budget ({@link #LOGITS_BUDGET_PROPERTY}); beyond it the F32 kernels on F32 copies of the features (see contrastive.cu).
 */
final class ContrastiveKernels {
    static final String CONTRASTIVE_FORWARD_LSE = "contrastive_forward_lse";
    static final String CONTRASTIVE_FORWARD_LOSS = "contrastive_forward_loss";
    static final String CONTRASTIVE_BACKWARD = "contrastive_backward";
    static final String CONTRASTIVE_ROWS_LSE = "contrastive_rows_lse";
    static final String CONTRASTIVE_COLS_LSE = "contrastive_cols_lse";
    static final String CONTRASTIVE_LOGIT_GRAD_BF16 = "contrastive_logit_grad_bf16";
    static final List<String> KERNELS = List.of(CONTRASTIVE_FORWARD_LSE, CONTRASTIVE_FORWARD_LOSS, CONTRASTIVE_BACKWARD,
            CONTRASTIVE_ROWS_LSE, CONTRASTIVE_COLS_LSE, CONTRASTIVE_LOGIT_GRAD_BF16);
    /**
     * The system property with the most device memory, in MiB, the BF16 path's N x N buffers (F32 logits + BF16 dS:
     * 6 N^2 bytes) may take; 256 by default (N <= 6688).
     */
    static final String LOGITS_BUDGET_PROPERTY = "clip.cuda.contrastiveLogitsMiB";
    private static final int COLUMN_TILE = 32, COLUMN_SLICES = 8;

    private final KernelLauncher launcher;
    private final DeviceMemory memory;
    private final MatmulKernels matmul;
    private final ElementwiseKernels elementwise;

    ContrastiveKernels(KernelLauncher launcher, DeviceMemory memory, MatmulKernels matmul, ElementwiseKernels elementwise) {
        this.launcher = launcher;
        this.memory = memory;
        this.matmul = matmul;
        this.elementwise = elementwise;
    }

    /** Whether BF16 features of batch n take the materialized tensor-core path (else the F32 kernels on widened copies). */
    static boolean materializes(int n) {
        return 6L * n * n <= Long.getLong(LOGITS_BUDGET_PROPERTY, 256L) << 20;
    }

    /**
     * The loss (waits for it); dImg, dTxt, dLogitScale (F32) += the gradients times gradScale (each may be null).
     * img and txt both F32 or both BF16.
     */
    float contrastiveLoss(Tensor img, Tensor txt, Tensor logitScale, Tensor dImg, Tensor dTxt, Tensor dLogitScale, float gradScale) {
        if (img.dtype() == DType.F32) return streamingLoss(img, txt, logitScale, dImg, dTxt, dLogitScale, gradScale);
        if (materializes(img.dim(0))) return materializedLoss(img, txt, logitScale, dImg, dTxt, dLogitScale, gradScale);
        Tensor img32 = memory.empty(DType.F32, img.shape()), txt32 = memory.empty(DType.F32, txt.shape());
        try {
            elementwise.cast(img32, img);
            elementwise.cast(txt32, txt);
            return streamingLoss(img32, txt32, logitScale, dImg, dTxt, dLogitScale, gradScale);
        } finally {
            memory.release(img32);
            memory.release(txt32);
        }
    }

    /** The F32 kernels: never the N x N matrix. */
    private float streamingLoss(Tensor img, Tensor txt, Tensor logitScale, Tensor dImg, Tensor dTxt, Tensor dLogitScale, float gradScale) {
        int n = img.dim(0), d = img.dim(1);
        Tensor lseRow = memory.empty(DType.F32, n), lseCol = memory.empty(DType.F32, n), diag = memory.empty(DType.F32, n);
        Tensor loss = memory.empty(DType.F32, 1);
        contrastiveForwardLse(lseRow, diag, img, txt, logitScale);
        contrastiveForwardLse(lseCol, diag, txt, img, logitScale);
        contrastiveForwardLoss(loss, lseRow, lseCol, diag);
        if (dImg != null || dLogitScale != null) {
            Tensor da = dImg != null ? dImg : memory.zeros(DType.F32, n, d); // dLogitScale alone still needs a row sweep (da += ...)
            contrastiveBackward(da, dLogitScale, img, txt, lseRow, lseCol, logitScale, gradScale);
            if (da != dImg) memory.release(da);
        }
        if (dTxt != null) contrastiveBackward(dTxt, null, txt, img, lseCol, lseRow, logitScale, gradScale);
        float value = memory.download(loss).f32()[0];
        memory.release(lseRow);
        memory.release(lseCol);
        memory.release(diag);
        memory.release(loss);
        return value;
    }

    /** BF16 features: logits, dS and the feature gradients through BF16 GEMMs (F32 accumulation), lse and loss F32. */
    private float materializedLoss(Tensor img, Tensor txt, Tensor logitScale, Tensor dImg, Tensor dTxt, Tensor dLogitScale,
                                   float gradScale) {
        String op = "contrastiveLoss";
        int n = img.dim(0), d = img.dim(1);
        Tensor logits = memory.empty(DType.F32, n, n); // img @ txt^T, unscaled: the scale stays on the device
        Tensor lseRow = memory.empty(DType.F32, n), lseCol = memory.empty(DType.F32, n), diag = memory.empty(DType.F32, n);
        Tensor loss = memory.empty(DType.F32, 1);
        Tensor ds = null;
        try {
            matmul.gemm(op, false, true, n, n, d, 1f, img.deviceAddress(), d, 0, txt.deviceAddress(), d, 0, 0f, logits.deviceAddress(),
                    n, 0, 0, 1, Blas.Type.BF16);
            contrastiveRowsLse(lseRow, diag, logits, logitScale);
            contrastiveColsLse(lseCol, logits, logitScale);
            contrastiveForwardLoss(loss, lseRow, lseCol, diag);
            if (dImg != null || dTxt != null || dLogitScale != null) {
                if (dImg != null || dTxt != null) ds = memory.empty(DType.BF16, n, n); // scale * dS
                contrastiveLogitGrad(ds, dLogitScale, logits, lseRow, lseCol, logitScale, gradScale);
                if (dImg != null) { // dImg += (scale dS) @ txt
                    matmul.gemm(op, false, false, n, d, n, 1f, ds.deviceAddress(), n, 0, txt.deviceAddress(), d, 0, 1f,
                            dImg.deviceAddress(), d, 0, 0, 1, Blas.Type.BF16);
                }
                if (dTxt != null) { // dTxt += (scale dS)^T @ img
                    matmul.gemm(op, true, false, n, d, n, 1f, ds.deviceAddress(), n, 0, img.deviceAddress(), d, 0, 1f,
                            dTxt.deviceAddress(), d, 0, 0, 1, Blas.Type.BF16);
                }
            }
            return memory.download(loss).f32()[0];
        } finally {
            memory.release(logits);
            memory.release(lseRow);
            memory.release(lseCol);
            memory.release(diag);
            memory.release(loss);
            if (ds != null) memory.release(ds);
        }
    }

    /** lse (N) = the log-sum-exps of the rows of S = scale * a @ b^T, diag (N) = its diagonal (contrastive.cu). */
    void contrastiveForwardLse(Tensor lse, Tensor diag, Tensor a, Tensor b, Tensor logScale) {
        int n = a.dim(0), d = a.dim(1);
        launcher.launch(CONTRASTIVE_FORWARD_LSE, n, 1, 1, ROW_THREADS, 1, 1, d * Float.BYTES, launcher.args().ptr(lse.deviceAddress())
                .ptr(diag.deviceAddress()).ptr(a.deviceAddress()).ptr(b.deviceAddress()).i32(n).i32(d).ptr(logScale.deviceAddress()));
    }

    /** lse (N), diag (N) of the rows of S = exp(logScale) * logits, logits (N, N) F32: one block per row. */
    void contrastiveRowsLse(Tensor lse, Tensor diag, Tensor logits, Tensor logScale) {
        int n = logits.dim(0);
        launcher.launch(CONTRASTIVE_ROWS_LSE, n, 1, 1, ROW_THREADS, 1, 1, 0, launcher.args().ptr(lse.deviceAddress())
                .ptr(diag.deviceAddress()).ptr(logits.deviceAddress()).i32(n).ptr(logScale.deviceAddress()));
    }

    /** lse (N) of the columns of S = exp(logScale) * logits: 32 columns a block, 8 row slices merged. */
    void contrastiveColsLse(Tensor lse, Tensor logits, Tensor logScale) {
        int n = logits.dim(0);
        launcher.launch(CONTRASTIVE_COLS_LSE, ceilDiv(n, COLUMN_TILE), 1, 1, COLUMN_TILE, COLUMN_SLICES, 1, 0, launcher.args()
                .ptr(lse.deviceAddress()).ptr(logits.deviceAddress()).i32(n).ptr(logScale.deviceAddress()));
    }

    /** ds (N, N) BF16 (null: not written) = scale * dS of the loss times gradScale; dLogScale (may be null) += its gradient. */
    void contrastiveLogitGrad(Tensor ds, Tensor dLogScale, Tensor logits, Tensor lseRow, Tensor lseCol, Tensor logScale,
                                  float gradScale) {
        int n = logits.dim(0);
        launcher.elementwise(CONTRASTIVE_LOGIT_GRAD_BF16, (long) n * n, launcher.args().ptr(address(ds))
                .ptr(address(dLogScale)).ptr(logits.deviceAddress()).ptr(lseRow.deviceAddress()).ptr(lseCol.deviceAddress())
                .i32(n).ptr(logScale.deviceAddress()).f32(gradScale));
    }

    /** loss (1) = sum of (lseRow + lseCol - 2 diag) / (2N), one block. */
    void contrastiveForwardLoss(Tensor loss, Tensor lseRow, Tensor lseCol, Tensor diag) {
        launcher.launch(CONTRASTIVE_FORWARD_LOSS, 1, 1, 1, 256, 1, 1, 0, launcher.args().ptr(loss.deviceAddress())
                .ptr(lseRow.deviceAddress()).ptr(lseCol.deviceAddress()).ptr(diag.deviceAddress()).i32(lseRow.dim(0)));
    }

    /** da += the gradient for the rows of a; dLogScale (may be null) += its gradient. */
    void contrastiveBackward(Tensor da, Tensor dLogScale, Tensor a, Tensor b, Tensor lseRow, Tensor lseCol, Tensor logScale,
                             float gradScale) {
        int n = a.dim(0), d = a.dim(1);
        int shared = (1 + ROW_THREADS / 32) * d * Float.BYTES;
        launcher.launch(CONTRASTIVE_BACKWARD, n, 1, 1, ROW_THREADS, 1, 1, shared, launcher.args().ptr(da.deviceAddress())
                .ptr(address(dLogScale)).ptr(a.deviceAddress()).ptr(b.deviceAddress()).ptr(lseRow.deviceAddress())
                .ptr(lseCol.deviceAddress()).i32(n).i32(d).ptr(logScale.deviceAddress()).f32(gradScale));
    }
}
