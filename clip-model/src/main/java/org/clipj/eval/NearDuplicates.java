package org.clipj.eval;

import org.clipj.runtime.Backend;
import org.clipj.runtime.DType;
import org.clipj.runtime.Tensor;

import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.PriorityQueue;

/**
 * Near-duplicate detection between two image sets (the paper's data-overlap analysis): pairs whose
 * embedding cosine similarity reaches a threshold. Similarities are computed block by block on the
 * backend ((blockA, D) @ (blockB, D)^T), keeping at most {@code topK} matches per image of A, so
 * 100k x 100k sets never need an Na x Nb matrix.
 */
public final class NearDuplicates {

    /** Image a of the first set matches image b of the second with this cosine similarity. */
    public record Pair(int a, int b, float similarity) {
    }

    private static final int BLOCK_A = 512;
    private static final int BLOCK_B = 2048;

    private NearDuplicates() {
    }

    /**
     * @param a (Na, D) L2-normalized embeddings
     * @param b (Nb, D) L2-normalized embeddings
     * @return pairs with similarity >= threshold, at most topK per image of a, most similar first
     */
    public static List<Pair> find(Backend backend, float[][] a, float[][] b, float threshold, int topK) {
        if (topK < 1) {
            throw new IllegalArgumentException("topK must be >= 1: " + topK);
        }
        if (a.length == 0 || b.length == 0) {
            return List.of();
        }
        int dim = a[0].length;
        if (b[0].length != dim) {
            throw new IllegalArgumentException("embedding sizes differ: " + dim + " vs " + b[0].length);
        }
        List<Pair> pairs = new ArrayList<>();
        Comparator<Pair> bySimilarity = Comparator.comparingDouble(Pair::similarity);
        for (int a0 = 0; a0 < a.length; a0 += BLOCK_A) {
            int na = Math.min(BLOCK_A, a.length - a0);
            Tensor blockA = backend.upload(pack(a, a0, na, dim));
            List<PriorityQueue<Pair>> best = new ArrayList<>(na);
            for (int i = 0; i < na; i++) best.add(new PriorityQueue<>(bySimilarity));
            for (int b0 = 0; b0 < b.length; b0 += BLOCK_B) {
                int nb = Math.min(BLOCK_B, b.length - b0);
                Tensor blockB = backend.upload(pack(b, b0, nb, dim));
                Tensor sim = backend.zeros(DType.F32, na, nb); // (na, nb)
                backend.matmul(sim, blockA, false, blockB, true, 1f, 0f);
                float[] s = backend.download(sim).toFloatArray();
                for (int i = 0; i < na; i++) {
                    PriorityQueue<Pair> heap = best.get(i);
                    for (int j = 0; j < nb; j++) {
                        float v = s[i * nb + j];
                        if (v < threshold) continue;
                        if (heap.size() < topK) {
                            heap.add(new Pair(a0 + i, b0 + j, v));
                        } else if (v > heap.peek().similarity()) {
                            heap.poll();
                            heap.add(new Pair(a0 + i, b0 + j, v));
                        }
                    }
                }
            }
            best.forEach(pairs::addAll);
        }
        pairs.sort(bySimilarity.reversed().thenComparingInt(Pair::a).thenComparingInt(Pair::b));
        return pairs;
    }

    private static Tensor pack(float[][] rows, int from, int count, int dim) {
        float[] data = new float[count * dim];
        for (int i = 0; i < count; i++) {
            float[] r = rows[from + i];
            if (r.length != dim) {
                throw new IllegalArgumentException("embedding " + (from + i) + " has " + r.length + " dims, expected " + dim);
            }
            System.arraycopy(r, 0, data, i * dim, dim);
        }
        return Tensor.of(data, count, dim);
    }
}
