package org.clipj.image;

import com.fasterxml.jackson.databind.JsonNode;
import org.clipj.runtime.InvalidInputException;

import java.awt.image.BufferedImage;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.Locale;

/**
 * How images become a model's input pixels: open_clip's {@code preprocess_cfg} (mean, std,
 * interpolation, resize_mode) at the model's image size, or a Hugging Face
 * {@code preprocessor_config.json}; OpenAI's clip._transform by default.
 *
 * @param size       the (size, size) input side
 * @param resizeTo   shortest-edge mode: the side the shorter edge is resized to before the central crop (= size
 *                   for open_clip and OpenAI; Hugging Face may resize larger than it crops)
 * @param mean       per-channel mean (RGB), after /255
 * @param std        per-channel std (RGB)
 * @param filter     PIL's resampling filter
 * @param mode       open_clip's resize_mode
 * @param floorCrop  the central crop offset as (size - n) // 2 (Hugging Face) instead of round((size - n) / 2)
 * @param source     where these settings came from, for logs and {@code clip info}
 */
public record PreprocessConfig(int size, int resizeTo, float[] mean, float[] std, Preprocess.Filter filter,
                               ResizeMode mode, boolean floorCrop, String source) {

    /** open_clip's resize modes. */
    public enum ResizeMode {
        /** shorter side to size, central crop (OpenAI, most of open_clip) */
        SHORTEST,
        /** longer side to size, padded with black (open_clip 'longest') */
        LONGEST,
        /** both sides to size, aspect not kept (open_clip 'squash': CLIPA, DFN, SigLIP) */
        SQUASH
    }

    public PreprocessConfig {
        if (size <= 0 || resizeTo < size) {
            throw new InvalidInputException("preprocessing (" + source + "): image size " + size + " and resize size "
                    + resizeTo + " must be positive with resize >= size");
        }
        if (mean == null || std == null || mean.length != 3 || std.length != 3) {
            throw new InvalidInputException("preprocessing (" + source + "): mean and std need 3 values each");
        }
        for (float s : std) {
            if (!(s > 0)) throw new InvalidInputException("preprocessing (" + source + "): std must be positive");
        }
        mean = mean.clone();
        std = std.clone();
    }

    /** OpenAI's clip._transform(size): bicubic, shortest edge, central crop, OpenAI's mean and std. */
    public static PreprocessConfig openai(int size) {
        return new PreprocessConfig(size, size, Preprocess.MEAN, Preprocess.STD, Preprocess.Filter.BICUBIC,
                ResizeMode.SHORTEST, false, "OpenAI's clip._transform");
    }

    /**
     * open_clip's preprocess_cfg: mean, std, interpolation (bicubic, bilinear), resize_mode (shortest,
     * longest, squash); a missing field takes open_clip's default (OpenAI's values, bicubic, shortest).
     * size is the model's image size (a preprocess_cfg "size" must agree with it).
     */
    public static PreprocessConfig fromOpenClip(JsonNode cfg, int size, String source) {
        if (cfg.has("size")) {
            JsonNode s = cfg.get("size");
            int declared = s.isArray() ? s.get(0).asInt() : s.asInt();
            if (declared != size || (s.isArray() && s.get(s.size() - 1).asInt() != size)) {
                throw new InvalidInputException(source + ": preprocess_cfg size " + s + " contradicts the model's image size "
                        + size);
            }
        }
        float[] mean = triple(cfg.path("mean"), Preprocess.MEAN, source, "mean");
        float[] std = triple(cfg.path("std"), Preprocess.STD, source, "std");
        String interpolation = cfg.path("interpolation").asText("bicubic");
        Preprocess.Filter filter = switch (interpolation) {
            case "bicubic", "random" -> Preprocess.Filter.BICUBIC; // open_clip: 'random' is bicubic at inference
            case "bilinear" -> Preprocess.Filter.BILINEAR;
            default -> throw new InvalidInputException(source + ": preprocess_cfg interpolation '" + interpolation
                    + "' is not supported (bicubic, bilinear)");
        };
        String mode = cfg.path("resize_mode").asText("shortest");
        ResizeMode resize = switch (mode) {
            case "shortest" -> ResizeMode.SHORTEST;
            case "longest" -> ResizeMode.LONGEST;
            case "squash" -> ResizeMode.SQUASH;
            default -> throw new InvalidInputException(source + ": preprocess_cfg resize_mode '" + mode
                    + "' is not supported (shortest, longest, squash)");
        };
        if (cfg.path("fill_color").asInt(0) != 0) {
            throw new InvalidInputException(source + ": preprocess_cfg fill_color " + cfg.get("fill_color")
                    + " is not supported (0)");
        }
        return new PreprocessConfig(size, size, mean, std, filter, resize, false, source);
    }

    /**
     * A Hugging Face CLIPImageProcessor's preprocessor_config.json: resize the shortest edge to
     * size.shortest_edge, crop crop_size at (size - n) // 2, rescale and normalize with image_mean/std.
     */
    public static PreprocessConfig fromHuggingFace(JsonNode cfg, int modelSize, String source) {
        int crop = side(cfg.path("crop_size"), modelSize);
        if (crop != modelSize) {
            throw new InvalidInputException(source + ": crop_size " + crop + " contradicts the model's image size " + modelSize);
        }
        int resize = side(cfg.path("size"), crop);
        if (!cfg.path("do_center_crop").asBoolean(true) || !cfg.path("do_resize").asBoolean(true)
                || !cfg.path("do_normalize").asBoolean(true) || !cfg.path("do_rescale").asBoolean(true)
                || Math.abs(cfg.path("rescale_factor").asDouble(1 / 255.0) - 1 / 255.0) > 1e-9) {
            throw new InvalidInputException(source + ": only the standard resize, center crop, rescale 1/255 and"
                    + " normalize pipeline of CLIPImageProcessor is supported");
        }
        int resample = cfg.path("resample").asInt(3);
        Preprocess.Filter filter = switch (resample) {
            case 3 -> Preprocess.Filter.BICUBIC;
            case 2 -> Preprocess.Filter.BILINEAR;
            default -> throw new InvalidInputException(source + ": resample " + resample
                    + " is not supported (2 bilinear, 3 bicubic)");
        };
        return new PreprocessConfig(crop, resize, triple(cfg.path("image_mean"), Preprocess.MEAN, source, "image_mean"),
                triple(cfg.path("image_std"), Preprocess.STD, source, "image_std"), filter, ResizeMode.SHORTEST, true, source);
    }

    /** (3, size, size) normalized CHW pixels of a decoded image. */
    public float[] apply(BufferedImage image) {
        return switch (mode) {
            case SHORTEST -> Preprocess.shortestEdge(image, resizeTo, size, filter, floorCrop, mean, std);
            case LONGEST -> Preprocess.longestEdge(image, size, filter, mean, std);
            case SQUASH -> Preprocess.squash(image, size, filter, mean, std);
        };
    }

    /** (3, size, size) normalized CHW pixels of an image file. */
    public float[] apply(Path file) {
        return apply(ImageLoader.readOriginal(file));
    }

    /** Whether this is exactly OpenAI's clip._transform at its size. */
    public boolean isOpenAi() {
        return resizeTo == size && Arrays.equals(mean, Preprocess.MEAN) && Arrays.equals(std, Preprocess.STD)
                && filter == Preprocess.Filter.BICUBIC && mode == ResizeMode.SHORTEST && !floorCrop;
    }

    /** One line for logs: "224 px, bicubic, shortest, mean [...], std [...] (source)". */
    public String describe() {
        return size + " px" + (resizeTo != size ? " (resize " + resizeTo + ")" : "") + ", "
                + filter.name().toLowerCase(Locale.ROOT) + ", " + mode.name().toLowerCase(Locale.ROOT)
                + (floorCrop ? " (floor crop)" : "") + ", mean " + Arrays.toString(mean) + ", std " + Arrays.toString(std)
                + " (" + source + ")";
    }

    private static float[] triple(JsonNode n, float[] fallback, String source, String field) {
        if (n.isMissingNode() || n.isNull()) return fallback;
        if (!n.isArray() || n.size() != 3) {
            throw new InvalidInputException(source + ": " + field + " must hold 3 numbers, got " + n);
        }
        return new float[]{(float) n.get(0).asDouble(), (float) n.get(1).asDouble(), (float) n.get(2).asDouble()};
    }

    private static int side(JsonNode n, int fallback) {
        if (n.isMissingNode() || n.isNull()) return fallback;
        if (n.isInt()) return n.asInt();
        if (n.has("shortest_edge")) return n.get("shortest_edge").asInt();
        if (n.has("height")) {
            if (n.path("width").asInt(n.get("height").asInt()) != n.get("height").asInt()) {
                throw new InvalidInputException("non-square " + n + " is not supported");
            }
            return n.get("height").asInt();
        }
        throw new InvalidInputException("image size " + n + " is not understood");
    }
}
