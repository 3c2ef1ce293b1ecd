package org.clipj.train;

import org.clipj.runtime.Backend;
import org.clipj.runtime.DType;
import org.clipj.runtime.InvalidInputException;
import org.clipj.runtime.Tensor;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * AdamW with decoupled weight decay (torch.optim.AdamW) over two parameter groups, as open_clip:
 * no decay for parameters with fewer than 2 dims or whose name contains bn, ln, bias or
 * logit_scale; {@code weightDecay} for the rest. The update itself is Backend.adamwUpdate (fused).
 */
public final class AdamW {

    /**
     * One trainable tensor and its gradient, both on the backend; copy, when not null, is the 16-bit GEMM copy
     * of the value (mixed-precision training) that every update rewrites in the same pass.
     */
    public record Param(String name, Tensor value, Tensor grad, Tensor copy) {
        public Param(String name, Tensor value, Tensor grad) {
            this(name, value, grad, null);
        }
    }

    private final Backend backend;
    private final List<Param> params;
    private final List<Tensor> m;      // first moments, one per param, same shapes
    private final List<Tensor> v;      // second moments
    private final boolean[] decay;     // per param: in the weight-decay group
    private final float beta1;
    private final float beta2;
    private final float eps;
    private final float weightDecay;
    private int step;                  // updates done so far

    public AdamW(Backend backend, List<Param> params, float beta1, float beta2, float eps, float weightDecay) {
        this.backend = backend;
        this.params = List.copyOf(params);
        this.beta1 = beta1;
        this.beta2 = beta2;
        this.eps = eps;
        this.weightDecay = weightDecay;
        this.m = new ArrayList<>();
        this.v = new ArrayList<>();
        this.decay = new boolean[params.size()];
        for (int i = 0; i < params.size(); i++) {
            Param p = params.get(i);
            m.add(backend.zeros(DType.F32, p.value().shape()));
            v.add(backend.zeros(DType.F32, p.value().shape()));
            decay[i] = decays(p.name(), p.value().rank());
        }
    }

    /** open_clip's exclusion rule: gains, biases, norms and the logit scale are not decayed. */
    public static boolean decays(String name, int rank) {
        return rank >= 2 && !name.contains("bn") && !name.contains("ln") && !name.contains("bias")
                && !name.contains("logit_scale");
    }

    public boolean decays(int paramIndex) {
        return decay[paramIndex];
    }

    public List<Param> params() {
        return params;
    }

    public int step() {
        return step;
    }

    /**
     * One update of every parameter with learning rate lr (and of its 16-bit copy, if any); every gradient is
     * multiplied by gradScale first.
     */
    public void update(float lr, float gradScale) {
        step++;
        for (int i = 0; i < params.size(); i++) {
            Param p = params.get(i);
            float wd = decay[i] ? weightDecay : 0f;
            if (p.copy() != null) {
                backend.adamwUpdateCopy(p.value(), p.copy(), p.grad(), m.get(i), v.get(i), lr, beta1, beta2, eps, wd, step,
                        gradScale);
            } else {
                backend.adamwUpdate(p.value(), p.grad(), m.get(i), v.get(i), lr, beta1, beta2, eps, wd, step, gradScale);
            }
        }
    }

    /** The moments as CPU copies named m.NAME and v.NAME (for the training-state file). */
    public Map<String, Tensor> stateTensors() {
        Map<String, Tensor> out = new LinkedHashMap<>();
        for (int i = 0; i < params.size(); i++) {
            out.put("m." + params.get(i).name(), backend.download(m.get(i)).copy());
        }
        for (int i = 0; i < params.size(); i++) {
            out.put("v." + params.get(i).name(), backend.download(v.get(i)).copy());
        }
        return out;
    }

    /** Restores the moments and step from {@link #stateTensors()}; every moment must be present with its shape. */
    public void loadState(Map<String, Tensor> tensors, int restoredStep, String source) {
        for (int i = 0; i < params.size(); i++) {
            Param p = params.get(i);
            restore(tensors, "m." + p.name(), m.get(i), source);
            restore(tensors, "v." + p.name(), v.get(i), source);
        }
        this.step = restoredStep;
    }

    private void restore(Map<String, Tensor> tensors, String key, Tensor into, String source) {
        Tensor t = tensors.get(key);
        if (t == null) {
            throw new InvalidInputException(source + ": optimizer state lacks tensor " + key);
        }
        if (!Arrays.equals(t.shape(), into.shape())) {
            throw new InvalidInputException(source + ": optimizer tensor " + key + " has shape " + t.shapeString()
                    + ", the model needs " + into.shapeString());
        }
        backend.copy(into, backend.upload(t.toF32()));
    }
}
