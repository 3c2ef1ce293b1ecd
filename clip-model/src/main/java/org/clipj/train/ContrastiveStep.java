package org.clipj.train;

import org.clipj.model.ClipModel;
import org.clipj.model.Precision;
import org.clipj.runtime.Backend;
import org.clipj.runtime.DType;
import org.clipj.runtime.Tensor;

import java.util.List;

/**
 * The loss and gradients of one contrastive batch given as k micro-batches (GradCache, open_clip's
 * accum-freq): embed every micro-batch without keeping its activations, compute the symmetric
 * loss and d(features) over the whole batch, then re-run each micro-batch forward with
 * activations and backward with its rows of the feature gradient. The gradients are those of one
 * batch of all k micro-batches together; with k = 1 the first forward's activations are reused.
 * (A ResNet's BatchNorm uses per-micro-batch statistics, as open_clip's accumulation does, and its
 * running statistics see each micro-batch twice when k > 1.)
 */
public final class ContrastiveStep {
    private ContrastiveStep() {
    }

    /**
     * Accumulates into the model's gradients (call zeroGrad first) and returns the loss.
     *
     * @param pixels per micro-batch (b_j, 3, R, R) on the model's backend
     * @param tokens per micro-batch (b_j, ctx) I32 on the model's backend
     */
    public static float lossAndGradients(ClipModel model, List<Tensor> pixels, List<Tensor> tokens) {
        return lossAndGradients(model, pixels, tokens, 1f);
    }

    /**
     * As {@link #lossAndGradients(ClipModel, List, List)}, with every gradient that of {@code lossScale * loss}
     * (F16 loss scaling: the caller divides them back); the loss returned is not scaled.
     */
    public static float lossAndGradients(ClipModel model, List<Tensor> pixels, List<Tensor> tokens, float lossScale) {
        Backend be = model.backend();
        Tensor dLogitScale = model.logitScaleGrad();
        int k = pixels.size();
        if (k == 1) {
            var img = model.forwardImage(pixels.getFirst(), true);
            var txt = model.forwardText(tokens.getFirst());
            Tensor imgFeatures = img.features(); // (B, E)
            Tensor txtFeatures = txt.features(); // (B, E)
            Tensor dImg = be.zeros(DType.F32, imgFeatures.shape());
            Tensor dTxt = be.zeros(DType.F32, txtFeatures.shape());
            float loss = lossAndFeatureGradients(be, imgFeatures, txtFeatures, model.logitScale(), dImg, dTxt, dLogitScale,
                    lossScale, logitsType(model));
            model.backwardImage(img, dImg);
            model.backwardText(txt, dTxt);
            return loss;
        }
        int n = 0;
        for (Tensor p : pixels) {
            n += p.dim(0);
        }
        int e = model.config().embedDim();
        Tensor imgAll = be.zeros(DType.F32, n, e); // (N, E)
        Tensor txtAll = be.zeros(DType.F32, n, e); // (N, E)
        int row = 0;
        for (int j = 0; j < k; j++) {
            int b = pixels.get(j).dim(0);
            be.copy(imgAll.slice(row, row + b), model.forwardImage(pixels.get(j), true).features());
            be.copy(txtAll.slice(row, row + b), model.forwardText(tokens.get(j)).features());
            row += b;
        }
        Tensor dImgAll = be.zeros(DType.F32, n, e);
        Tensor dTxtAll = be.zeros(DType.F32, n, e);
        float loss = lossAndFeatureGradients(be, imgAll, txtAll, model.logitScale(), dImgAll, dTxtAll, dLogitScale,
                lossScale, logitsType(model));
        row = 0;
        for (int j = 0; j < k; j++) {
            int b = pixels.get(j).dim(0);
            var img = model.forwardImage(pixels.get(j), true);
            model.backwardImage(img, dImgAll.slice(row, row + b));
            var txt = model.forwardText(tokens.get(j));
            model.backwardText(txt, dTxtAll.slice(row, row + b));
            row += b;
        }
        return loss;
    }

    /**
     * The input type of the loss's logits GEMM: BF16 when the model trains in BF16 (PyTorch autocast runs
     * {@code scale * img @ txt^T} in BF16: the CUDA backend's tensor-core loss), else F32 (F16 training keeps
     * the F32 loss, as the backend has no F16 loss).
     */
    static DType logitsType(ClipModel model) {
        return model.trainingPrecision() == Precision.BF16 ? DType.BF16 : DType.F32;
    }

    /**
     * Symmetric CE on L2-normalized features; dImg/dTxt (N, E) and dLogitScale (1) accumulate the
     * gradients of {@code lossScale * loss} with respect to the unnormalized features and the log scale.
     * logitsIn BF16: the normalized features are cast to BF16 once and the loss takes them (F32 gradients).
     */
    static float lossAndFeatureGradients(Backend be, Tensor img, Tensor txt, Tensor logitScale,
                                         Tensor dImg, Tensor dTxt, Tensor dLogitScale, float lossScale, DType logitsIn) {
        int n = img.dim(0);
        int e = img.dim(1);
        Tensor imgNorm = be.zeros(DType.F32, n, e);  // (N, E)
        Tensor txtNorm = be.zeros(DType.F32, n, e);  // (N, E)
        Tensor imgLen = be.zeros(DType.F32, n);      // (N)
        Tensor txtLen = be.zeros(DType.F32, n);      // (N)
        be.l2NormalizeForward(imgNorm, imgLen, img);
        be.l2NormalizeForward(txtNorm, txtLen, txt);
        Tensor dImgNorm = be.zeros(DType.F32, n, e);
        Tensor dTxtNorm = be.zeros(DType.F32, n, e);
        Tensor imgIn = imgNorm, txtIn = txtNorm;
        if (logitsIn != DType.F32) {
            imgIn = be.empty(logitsIn, n, e);
            txtIn = be.empty(logitsIn, n, e);
            be.cast(imgIn, imgNorm);
            be.cast(txtIn, txtNorm);
        }
        float loss = be.contrastiveLoss(imgIn, txtIn, logitScale, dImgNorm, dTxtNorm, dLogitScale, lossScale);
        if (imgIn != imgNorm) {
            be.release(imgIn);
            be.release(txtIn);
        }
        be.l2NormalizeBackward(dImg, dImgNorm, imgNorm, imgLen);
        be.l2NormalizeBackward(dTxt, dTxtNorm, txtNorm, txtLen);
        return loss;
    }
}
