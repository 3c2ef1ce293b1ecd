package org.clipj;

import org.clipj.runtime.InvalidInputException;

import java.util.ArrayList;
import java.util.List;

/**
 * Zero-shot classifier weights computed from prompt embeddings: {@link Clip#classifier}, and callers that
 * embed the prompts themselves (through {@link org.clipj.service.ClipService}, batched with other requests): for each label the mean of the normalized embeddings of every template filled
 * with it ({} marks the place), renormalized.
 */
public final class PromptEnsemble {
    private PromptEnsemble() {
    }

    /** The prompts, label-major: label 0 with every template, then label 1, ...; the one validation of labels and templates. */
    public static List<String> prompts(List<String> labels, List<String> templates) {
        if (labels.isEmpty()) {
            throw new InvalidInputException("zero-shot needs at least one label");
        }
        if (templates.isEmpty()) {
            throw new InvalidInputException("zero-shot needs at least one template");
        }
        for (String t : templates) {
            if (!t.contains("{}")) {
                throw new InvalidInputException("template '" + t + "' has no {} for the label");
            }
        }
        List<String> prompts = new ArrayList<>(labels.size() * templates.size());
        for (String label : labels) {
            for (String t : templates) prompts.add(t.replace("{}", label));
        }
        return prompts;
    }

    /** Classifier weights (C, E) from the normalized embeddings of {@link #prompts} (C * T rows, in that order). */
    public static float[][] weights(float[][] promptEmbeddings, int labels, int templates) {
        if (promptEmbeddings.length != labels * templates) {
            throw new IllegalArgumentException("expected " + labels + " x " + templates + " prompt embeddings, got "
                    + promptEmbeddings.length);
        }
        int dim = promptEmbeddings[0].length;
        float[][] weights = new float[labels][dim];
        for (int c = 0; c < labels; c++) {
            for (int t = 0; t < templates; t++) {
                float[] row = promptEmbeddings[c * templates + t];
                for (int d = 0; d < dim; d++) weights[c][d] += row[d];
            }
            Clip.normalize(weights[c]);
        }
        return weights;
    }
}
