package org.clipj.model;

import java.util.Arrays;
import java.util.SplittableRandom;

/**
 * Initial values of a from-scratch model: openai/CLIP's {@code initialize_parameters} where it sets
 * a tensor, PyTorch's module defaults elsewhere (Linear/Conv2d: kaiming-uniform with a = sqrt(5),
 * i.e. U(+-1/sqrt(fan_in)) for weight and bias; MultiheadAttention: xavier-uniform in_proj, zero
 * biases; LayerNorm/BatchNorm: weight 1, bias 0; running mean 0, var 1). Each tensor draws from
 * its own generator seeded by (seed, name), so values do not depend on the order tensors are made.
 */
final class Initializer {
    static final float LOGIT_SCALE_INIT = (float) Math.log(1 / 0.07);

    private final ClipConfig config;
    private final long seed;

    Initializer(ClipConfig config, long seed) {
        this.config = config;
        this.seed = seed;
    }

    float[] values(TensorSpec spec) {
        String name = spec.name();
        int[] shape = spec.shape();
        float[] v = new float[spec.numel()];
        SplittableRandom rng = new SplittableRandom(seed * 0x9E3779B97F4A7C15L + name.hashCode());
        String[] parts = name.split("\\.");
        String last = parts[parts.length - 1];
        String owner = parts.length > 1 ? parts[parts.length - 2] : "";
        if (spec.buffer()) {
            Arrays.fill(v, last.equals("running_var") ? 1f : 0f);
            return v;
        }
        if (name.equals("logit_scale")) {
            v[0] = LOGIT_SCALE_INIT;
            return v;
        }
        if (owner.startsWith("ln_") || owner.matches("bn\\d") || name.endsWith("downsample.1.weight")
                || name.endsWith("downsample.1.bias")) {
            boolean zeroGain = name.matches("visual\\.layer\\d+\\.\\d+\\.bn3\\.weight");   // OpenAI zero-inits bn3
            Arrays.fill(v, last.equals("weight") && !zeroGain ? 1f : 0f);
            return v;
        }
        int textWidth = config.textWidth();
        if (last.equals("gamma")) { // open_clip's LayerScale starts at ls_init_value
            Arrays.fill(v, name.startsWith("visual.") ? config.variant().visionLayerScale() : config.variant().textLayerScale());
            return v;
        }
        switch (name) {
            case "text_projection.weight" -> normal(v, rng, Math.pow(textWidth, -0.5));
            case "text_projection.bias" -> Arrays.fill(v, 0f);
            case "token_embedding.weight" -> normal(v, rng, 0.02);
            case "positional_embedding" -> normal(v, rng, 0.01);
            case "text_projection" -> normal(v, rng, Math.pow(textWidth, -0.5));
            case "visual.class_embedding", "visual.positional_embedding", "visual.proj" ->
                    normal(v, rng, Math.pow(config.visionWidth(), -0.5));
            case "visual.attnpool.positional_embedding" -> normal(v, rng, Math.pow(config.visionAttentionWidth(), -0.5));
            default -> initOther(name, last, shape, v, rng);
        }
        return v;
    }

    private void initOther(String name, String last, int[] shape, float[] v, SplittableRandom rng) {
        if (name.startsWith("transformer.resblocks.")) {
            int width = config.textWidth();
            double attnStd = Math.pow(width, -0.5);
            double projStd = attnStd * Math.pow(2.0 * config.textLayers(), -0.5);
            double fcStd = Math.pow(2.0 * width, -0.5);
            if (name.endsWith("attn.in_proj_weight")) {
                normal(v, rng, attnStd);
            } else if (name.endsWith("attn.out_proj.weight") || name.endsWith("mlp.c_proj.weight")) {
                normal(v, rng, projStd);
            } else if (name.endsWith("mlp.c_fc.weight")) {
                normal(v, rng, fcStd);
            } else {
                blockBias(name, width, config.variant().textMlpWidth(), v, rng);
            }
        } else if (name.startsWith("visual.transformer.resblocks.")) {
            int width = config.visionWidth();
            if (name.endsWith("attn.in_proj_weight")) {
                uniform(v, rng, Math.sqrt(6.0 / (width + 3.0 * width)));
            } else if (last.equals("weight")) {
                uniform(v, rng, 1 / Math.sqrt(shape[1]));
            } else {
                blockBias(name, width, config.variant().visionMlpWidth(), v, rng);
            }
        } else if (name.startsWith("visual.attnpool.")) {
            int channels = config.visionAttentionWidth();
            if (last.equals("weight")) {
                normal(v, rng, Math.pow(channels, -0.5));
            } else {
                uniform(v, rng, 1 / Math.sqrt(channels));
            }
        } else if (name.startsWith("visual.") && shape.length == 4) {
            uniform(v, rng, 1 / Math.sqrt((double) shape[1] * shape[2] * shape[3]));
        } else {
            throw new IllegalStateException("no initialization rule for tensor '" + name + "'");
        }
    }

    /** Attention biases start at zero; Linear biases U(+-1/sqrt(fan_in)). */
    private static void blockBias(String name, int width, int mlpWidth, float[] v, SplittableRandom rng) {
        if (name.endsWith("attn.in_proj_bias") || name.endsWith("attn.out_proj.bias")) {
            Arrays.fill(v, 0f);
        } else if (name.endsWith("mlp.c_fc.bias")) {
            uniform(v, rng, 1 / Math.sqrt(width));
        } else if (name.endsWith("mlp.c_proj.bias")) {
            uniform(v, rng, 1 / Math.sqrt(mlpWidth));
        } else {
            throw new IllegalStateException("no initialization rule for tensor '" + name + "'");
        }
    }

    private static void normal(float[] v, SplittableRandom rng, double std) {
        for (int i = 0; i < v.length; i++) {
            v[i] = (float) (rng.nextGaussian() * std);
        }
    }

    private static void uniform(float[] v, SplittableRandom rng, double bound) {
        for (int i = 0; i < v.length; i++) {
            v[i] = (float) ((rng.nextDouble() * 2 - 1) * bound);
        }
    }
}
