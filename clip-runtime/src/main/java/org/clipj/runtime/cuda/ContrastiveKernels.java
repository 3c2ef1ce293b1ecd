package org.clipj.runtime.cuda;

import static org.clipj.runtime.cuda.KernelLauncher.ROW_THREADS;
import static org.clipj.runtime.cuda.KernelLauncher.address;

import java.util.List;

import org.clipj.runtime.DType;
import org.clipj.runtime.Tensor;

/**
 * contrastive.cu: CLIP's symmetric cross-entropy over S = scale * img @ txt^T without the N x N matrix:
 * row and column log-sum-exps, the loss, and a backward that recomputes the rows (see contrastive.cu).
 */
final class ContrastiveKernels {
    static final String CONTRASTIVE_FORWARD_LSE = "contrastive_forward_lse";
    static final String CONTRASTIVE_FORWARD_LOSS = "contrastive_forward_loss";
    static final String CONTRASTIVE_BACKWARD = "contrastive_backward";
    static final List<String> KERNELS = List.of(CONTRASTIVE_FORWARD_LSE, CONTRASTIVE_FORWARD_LOSS, CONTRASTIVE_BACKWARD);

    private final KernelLauncher launcher;
    private final DeviceMemory memory;

    ContrastiveKernels(KernelLauncher launcher, DeviceMemory memory) {
        this.launcher = launcher;
        this.memory = memory;
    }

    /** The loss (waits for it); dImg, dTxt, dLogitScale += the gradients times gradScale (each may be null). */
    float contrastiveLoss(Tensor img, Tensor txt, Tensor logitScale, Tensor dImg, Tensor dTxt, Tensor dLogitScale, float gradScale) {
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

    /** lse (N) = the log-sum-exps of the rows of S = scale * a @ b^T, diag (N) = its diagonal (contrastive.cu). */
    void contrastiveForwardLse(Tensor lse, Tensor diag, Tensor a, Tensor b, Tensor logScale) {
        int n = a.dim(0), d = a.dim(1);
        launcher.launch(CONTRASTIVE_FORWARD_LSE, n, 1, 1, ROW_THREADS, 1, 1, d * Float.BYTES, launcher.args().ptr(lse.deviceAddress())
                .ptr(diag.deviceAddress()).ptr(a.deviceAddress()).ptr(b.deviceAddress()).i32(n).i32(d).ptr(logScale.deviceAddress()));
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
