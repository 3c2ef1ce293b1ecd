package com.example;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;

import org.clipj.Clip;

/**
 * Embeds one image (given as bytes, as a service receives it) and two texts with a CLIP checkpoint, and
 * prints which text is closer to the image. Exits 1 when an embedding is not unit length.
 * Usage: EmbedExample MODEL VOCAB IMAGE
 */
public final class EmbedExample {
    public static void main(String[] args) throws Exception {
        Path model = Path.of(args[0]);
        Path vocab = Path.of(args[1]);
        byte[] image = Files.readAllBytes(Path.of(args[2]));
        List<String> texts = List.of("a photo of a cat", "a diagram");
        try (Clip clip = Clip.load(model, Clip.Options.defaults().withVocab(vocab))) {
            clip.warmUp(List.of(1), List.of(texts.size()));
            float[] img = clip.encodeImageBytes(List.of(image))[0];
            float[][] txt = clip.encodeTexts(texts);
            for (float[] e : List.of(img, txt[0], txt[1])) {
                if (e.length != clip.embeddingSize() || Math.abs(dot(e, e) - 1) > 1e-4) {
                    System.out.println("clip-example: FAILED, an embedding of " + e.length + " values has norm^2 " + dot(e, e));
                    System.exit(1);
                }
            }
            System.out.printf("clip-example: dim %d on %s; cosine(image, \"%s\") = %.4f, cosine(image, \"%s\") = %.4f%n",
                    clip.embeddingSize(), clip.backend().name(), texts.get(0), dot(img, txt[0]), texts.get(1), dot(img, txt[1]));
            System.out.println("clip-example: OK");
        }
    }

    private static float dot(float[] a, float[] b) {
        float s = 0;
        for (int i = 0; i < a.length; i++) s += a[i] * b[i];
        return s;
    }
}
