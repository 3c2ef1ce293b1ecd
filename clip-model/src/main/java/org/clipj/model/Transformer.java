package org.clipj.model;

import org.clipj.runtime.Backend;
import org.clipj.runtime.DType;
import org.clipj.runtime.Tensor;

import java.util.ArrayList;
import java.util.List;
import java.util.function.Function;

/** openai/CLIP's Transformer: a stack of {@link ResidualAttentionBlock}s named {@code <prefix>resblocks.<i>.}. */
final class Transformer {
    final List<ResidualAttentionBlock> blocks;
    private final Backend backend;

    Transformer(Backend backend, Function<String, Tensor> lookup, String prefix, int layers,
                ResidualAttentionBlock.Shape shape, DType activations) {
        this.backend = backend;
        List<ResidualAttentionBlock> list = new ArrayList<>(layers);
        for (int i = 0; i < layers; i++) {
            list.add(new ResidualAttentionBlock(backend, lookup, prefix + "resblocks." + i + ".", shape, activations));
        }
        blocks = List.copyOf(list);
    }

    static void specs(String prefix, int layers, ResidualAttentionBlock.Shape shape, List<TensorSpec> out) {
        for (int i = 0; i < layers; i++) {
            ResidualAttentionBlock.specs(prefix + "resblocks." + i + ".", shape, out);
        }
    }

    /**
     * x (B, T, C) -> (B, T, C); caches (one per block, filled in order) when non-null. Without caches
     * (inference) a block's output goes back to the backend once the next block has read it, so the
     * blocks take turns with the same few buffers (x itself is the caller's and is left alone).
     */
    Tensor forward(Tensor x, List<ResidualAttentionBlock.Cache> caches) {
        Tensor input = x;
        for (ResidualAttentionBlock block : blocks) {
            ResidualAttentionBlock.Cache cache = null;
            if (caches != null) {
                cache = new ResidualAttentionBlock.Cache();
                caches.add(cache);
            }
            Tensor next = block.forward(x, cache);
            if (caches == null && x != input) backend.release(x);
            x = next;
        }
        return x;
    }

    /** dout (B, T, C) of the last block's output -> gradient of the first block's input. */
    Tensor backward(Tensor dout, List<ResidualAttentionBlock.Cache> caches, Transformer grads) {
        for (int i = blocks.size() - 1; i >= 0; i--) {
            dout = blocks.get(i).backward(dout, caches.get(i), grads.blocks.get(i));
        }
        return dout;
    }
}
