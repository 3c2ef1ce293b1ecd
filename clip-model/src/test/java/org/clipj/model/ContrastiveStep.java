package org.clipj.model;

import org.clipj.runtime.Backend;
import org.clipj.runtime.DType;
import org.clipj.runtime.Tensor;

/**
 * One training step's forward and backward as the golden files compute it: CLIP's symmetric
 * cross-entropy over the L2-normalized features, gradients accumulated into the (zeroed) model.
 *
 * @param loss   the loss
 * @param image  the vision tower's activations (features unnormalized)
 * @param text   the text tower's activations
 */
record ContrastiveStep(float loss, ImageActivations image, TextActivations text) {

    static ContrastiveStep run(ClipModel model, Tensor pixels, Tensor tokens) {
        Backend backend = model.backend();
        model.zeroGrad();
        ImageActivations ia = model.forwardImage(pixels, true);
        TextActivations ta = model.forwardText(tokens);
        int n = ia.batchSize();
        int e = model.config().embedDim();
        Tensor img = backend.zeros(DType.F32, n, e);
        Tensor imgNorms = backend.zeros(DType.F32, n);
        backend.l2NormalizeForward(img, imgNorms, ia.features());
        Tensor txt = backend.zeros(DType.F32, n, e);
        Tensor txtNorms = backend.zeros(DType.F32, n);
        backend.l2NormalizeForward(txt, txtNorms, ta.features());
        Tensor dImg = backend.zeros(DType.F32, n, e);
        Tensor dTxt = backend.zeros(DType.F32, n, e);
        float loss = backend.contrastiveLoss(img, txt, model.logitScale(), dImg, dTxt, model.logitScaleGrad(), 1f);
        Tensor dImgFeatures = backend.zeros(DType.F32, n, e);
        backend.l2NormalizeBackward(dImgFeatures, dImg, img, imgNorms);
        Tensor dTxtFeatures = backend.zeros(DType.F32, n, e);
        backend.l2NormalizeBackward(dTxtFeatures, dTxt, txt, txtNorms);
        model.backwardImage(ia, dImgFeatures);
        model.backwardText(ta, dTxtFeatures);
        return new ContrastiveStep(loss, ia, ta);
    }
}
