package org.clipj.model;

import org.clipj.runtime.Backend;
import org.clipj.runtime.DType;
import org.clipj.runtime.Tensor;

import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.function.Function;
import java.util.function.Predicate;

/**
 * The tensors of one tower (vision or text) in contiguous storage, as llm.c's ParameterTensors:
 * every parameter is a view (slice + reshape) into ONE flat F32 buffer, every gradient a view into
 * a second flat buffer of the same layout, and the buffers (BatchNorm running statistics) views
 * into a third. The gradient buffer is allocated by the first call that needs it, so a model that
 * only runs inference never holds it. An inference model keeps its GEMM weights apart, in the form its
 * kernels read (prepared, maybe 16-bit): those tensors have no place in these buffers.
 */
final class TowerStorage {
    final List<TensorSpec> specs;          // in state-dict order
    final Tensor parameters;               // (P) every parameter of the tower
    final Tensor buffers;                  // (Q) running statistics; (1) when the tower has none
    private final Backend backend;
    private final Map<String, Tensor> values = new LinkedHashMap<>();   // name -> view into parameters or buffers
    private final Map<String, Integer> parameterOffsets = new LinkedHashMap<>();   // name -> offset in parameters
    private Tensor gradients;              // (P) same layout as parameters; null until first needed
    private Map<String, Tensor> grads;     // name -> view into gradients
    private List<Parameter> parameterList;

    /** heldApart: the tensors kept elsewhere (an inference model's prepared weights), given no storage here. */
    TowerStorage(Backend backend, List<TensorSpec> specs, Predicate<TensorSpec> heldApart) {
        this.specs = List.copyOf(specs);
        int p = 0;
        int q = 0;
        for (TensorSpec s : specs) {
            if (heldApart.test(s)) {
                continue;
            }
            if (s.buffer()) {
                q += s.numel();
            } else {
                p += s.numel();
            }
        }
        this.backend = backend;
        parameters = backend.zeros(DType.F32, Math.max(p, 1));
        buffers = backend.zeros(DType.F32, Math.max(q, 1));
        int pOff = 0;
        int qOff = 0;
        for (TensorSpec s : specs) {
            int n = s.numel();
            if (heldApart.test(s)) {
                continue;
            }
            if (s.buffer()) {
                values.put(s.name(), buffers.slice(qOff, qOff + n).reshape(s.shape()));
                qOff += n;
            } else {
                values.put(s.name(), parameters.slice(pOff, pOff + n).reshape(s.shape()));
                parameterOffsets.put(s.name(), pOff);
                pOff += n;
            }
        }
    }

    /** The value view of a parameter or buffer. */
    Tensor value(String name) {
        Tensor t = values.get(name);
        if (t == null) {
            throw new IllegalStateException("no tensor '" + name + "' in this tower");
        }
        return t;
    }

    /** The gradient view of a parameter; null for a buffer (no gradient). */
    Tensor grad(String name) {
        if (!values.containsKey(name)) {
            throw new IllegalStateException("no tensor '" + name + "' in this tower");
        }
        allocateGradients();
        return grads.get(name);
    }

    /** (P) every gradient of the tower, zero when first allocated. */
    synchronized Tensor gradients() {
        allocateGradients();
        return gradients;
    }

    private synchronized void allocateGradients() {
        if (gradients != null) return;
        Tensor all = backend.zeros(DType.F32, Math.max(1, parameters.size()));
        Map<String, Tensor> views = new LinkedHashMap<>();
        List<Parameter> list = new ArrayList<>();
        parameterOffsets.forEach((name, off) -> {
            Tensor value = values.get(name);
            Tensor grad = all.slice(off, off + value.size()).reshape(value.shape());
            views.put(name, grad);
            list.add(new Parameter(name, value, grad));
        });
        grads = views;
        parameterList = Collections.unmodifiableList(list);
        gradients = all;
    }

    /**
     * Copies of the parameters that {@code feedsGemm} selects, cast to {@code dtype} (F16 or BF16) into
     * one new buffer on the backend (mixed-precision training's GEMM weights); each copy starts at a
     * multiple of 8 elements (16 bytes) for the GEMM library. Returns a lookup that gives the copy for
     * those names and the F32 view otherwise. The copies do not follow later updates of the parameters.
     */
    Function<String, Tensor> castCopies(Backend backend, DType dtype, Predicate<TensorSpec> feedsGemm) {
        List<TensorSpec> selected = specs.stream().filter(s -> !s.buffer() && feedsGemm.test(s)).toList();
        int total = 0;
        for (TensorSpec s : selected) {
            total += align(s.numel());
        }
        Tensor storage = backend.zeros(dtype, Math.max(total, 1));   // (total) every copy of the tower
        Map<String, Tensor> copies = new LinkedHashMap<>();
        int off = 0;
        for (TensorSpec s : selected) {
            Tensor copy = storage.slice(off, off + s.numel()).reshape(s.shape());
            backend.cast(copy, value(s.name()));
            copies.put(s.name(), copy);
            off += align(s.numel());
        }
        return name -> copies.containsKey(name) ? copies.get(name) : value(name);
    }

    private static int align(int n) {
        return (n + 7) & ~7;
    }

    synchronized List<Parameter> parameterList() {
        allocateGradients();
        return parameterList;
    }
}
