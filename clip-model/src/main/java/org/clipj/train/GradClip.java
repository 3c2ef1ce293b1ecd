package org.clipj.train;

import org.clipj.runtime.Backend;
import org.clipj.runtime.Tensor;

import java.util.List;

/** Global gradient-norm clipping (torch.nn.utils.clip_grad_norm_ over all parameters). */
public final class GradClip {
    private GradClip() {
    }

    /**
     * sqrt of the sum of squares of every gradient, by {@link Backend#sumOfSquaresAll} (on CUDA one reduction and
     * one read back for all of them); NaN or infinite when any gradient element is.
     */
    public static double globalNorm(Backend backend, List<Tensor> grads) {
        return Math.sqrt(backend.sumOfSquaresAll(grads));
    }

    /**
     * The factor to multiply every gradient by so that the global norm is at most maxNorm
     * (1 when maxNorm <= 0, i.e. clipping off, or the norm is already within it).
     */
    public static float scaleFor(double norm, double maxNorm) {
        if (maxNorm <= 0 || !(norm > maxNorm)) {
            return 1f;
        }
        return (float) (maxNorm / (norm + 1e-6));
    }
}
