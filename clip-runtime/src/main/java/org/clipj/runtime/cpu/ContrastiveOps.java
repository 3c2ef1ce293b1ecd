package org.clipj.runtime.cpu;

import java.util.Arrays;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorSpecies;

import org.clipj.runtime.Tensor;

/**
 * The contrastive family (contrastive.cu). CLIP's symmetric contrastive loss: L = s img @ txt^T with s = exp(logitScale),
 * loss = (mean_i(lseRow_i - L_ii) + mean_j(lseCol_j - L_jj)) / 2. With c = gradScale / (2N), the
 * logit gradient is G_ij = c (softmaxRow_ij + softmaxCol_ij - 2 [i == j]); dImg = s G txt,
 * dTxt = s G^T img, dLogitScale = sum_ij G_ij L_ij (the chain rule through exp). Neither path
 * ever holds the N x N matrix: the scalar reference recomputes dot products, the fast path
 * works in TILE x TILE blocks.
 */
final class ContrastiveOps {
    static final int TILE = 128;
    private static final VectorSpecies<Float> S = FloatVector.SPECIES_PREFERRED;
    private static final int L = S.length();

    private ContrastiveOps() {}

    static float contrastiveLoss(OpContext cx, Tensor img, Tensor txt, Tensor logitScale, Tensor dImg, Tensor dTxt,
                                 Tensor dLogitScale, float gradScale) {
        return cx.vector()
                ? lossTiled(img, txt, logitScale, dImg, dTxt, dLogitScale, gradScale, cx.pool())
                : lossScalar(img, txt, logitScale, dImg, dTxt, dLogitScale, gradScale);
    }

    // ---------------------------------------------------------------- scalar reference (double accumulation)

    private static float lossScalar(Tensor img, Tensor txt, Tensor logitScale, Tensor dImg, Tensor dTxt, Tensor dLogitScale,
                            float gradScale) {
        int n = img.dim(0), d = img.dim(1);
        float[] a = img.f32(), b = txt.f32();
        int ao = img.offset(), bo = txt.offset();
        double s = Math.exp(logitScale.f32()[logitScale.offset()]);
        double[] rowLse = new double[n], colLse = new double[n];
        for (int i = 0; i < n; i++) {
            double rowMax = Double.NEGATIVE_INFINITY, colMax = Double.NEGATIVE_INFINITY;
            for (int j = 0; j < n; j++) {
                rowMax = Math.max(rowMax, s * dot(a, ao + i * d, b, bo + j * d, d));
                colMax = Math.max(colMax, s * dot(a, ao + j * d, b, bo + i * d, d));
            }
            double rowSum = 0, colSum = 0;
            for (int j = 0; j < n; j++) {
                rowSum += Math.exp(s * dot(a, ao + i * d, b, bo + j * d, d) - rowMax);
                colSum += Math.exp(s * dot(a, ao + j * d, b, bo + i * d, d) - colMax);
            }
            rowLse[i] = rowMax + Math.log(rowSum);
            colLse[i] = colMax + Math.log(colSum);
        }
        double loss = 0;
        for (int i = 0; i < n; i++) loss += rowLse[i] + colLse[i] - 2 * s * dot(a, ao + i * d, b, bo + i * d, d);
        loss /= 2.0 * n;
        if (dImg == null && dTxt == null && dLogitScale == null) return (float) loss;
        double c = gradScale / (2.0 * n), dScale = 0;
        for (int i = 0; i < n; i++) {
            for (int j = 0; j < n; j++) {
                double l = s * dot(a, ao + i * d, b, bo + j * d, d);
                double g = c * (Math.exp(l - rowLse[i]) + Math.exp(l - colLse[j]) - (i == j ? 2 : 0));
                dScale += g * l;
                for (int k = 0; k < d; k++) {
                    if (dImg != null) dImg.f32()[dImg.offset() + i * d + k] += (float) (s * g * b[bo + j * d + k]);
                    if (dTxt != null) dTxt.f32()[dTxt.offset() + j * d + k] += (float) (s * g * a[ao + i * d + k]);
                }
            }
        }
        if (dLogitScale != null) dLogitScale.f32()[dLogitScale.offset()] += (float) dScale;
        return (float) loss;
    }

    private static double dot(float[] a, int ao, float[] b, int bo, int n) {
        double s = 0;
        for (int i = 0; i < n; i++) s += (double) a[ao + i] * b[bo + i];
        return s;
    }

    // ---------------------------------------------------------------- tiled fast path

    private static float lossTiled(Tensor img, Tensor txt, Tensor logitScale, Tensor dImg, Tensor dTxt, Tensor dLogitScale,
                           float gradScale, ComputePool pool) {
        int n = img.dim(0), d = img.dim(1);
        float[] a = img.f32(), b = txt.f32();
        int ao = img.offset(), bo = txt.offset();
        float s = (float) Math.exp(logitScale.f32()[logitScale.offset()]);
        float[] rowLse = rowLse(pool, a, ao, b, bo, n, d, s);
        float[] colLse = rowLse(pool, b, bo, a, ao, n, d, s);
        double loss = 0;
        for (int i = 0; i < n; i++) {
            loss += (double) rowLse[i] + colLse[i] - 2.0 * s * Vec.dot(a, ao + i * d, b, bo + i * d, d);
        }
        loss /= 2.0 * n;
        float c = (float) (gradScale / (2.0 * n));
        if (dImg != null || dLogitScale != null) {
            double dScale = gradient(pool, a, ao, b, bo, rowLse, colLse, n, d, s, c, dImg);
            if (dLogitScale != null) dLogitScale.f32()[dLogitScale.offset()] += (float) dScale;
        }
        if (dTxt != null) gradient(pool, b, bo, a, ao, colLse, rowLse, n, d, s, c, dTxt);
        return (float) loss;
    }

    /** lse_i = logsumexp_j (s x_i . y_j), by row tiles in parallel, online over column tiles. */
    private static float[] rowLse(ComputePool pool, float[] x, int xo, float[] y, int yo, int n, int d, float s) {
        float[] lse = new float[n];
        int tiles = (n + TILE - 1) / TILE;
        Parallel.range(pool, tiles, 1, (from, to) -> {
            float[] tile = new float[TILE * TILE];
            float[] max = new float[TILE], sum = new float[TILE];
            for (int ti = from; ti < to; ti++) {
                int i0 = ti * TILE, rows = Math.min(TILE, n - i0);
                Arrays.fill(max, Float.NEGATIVE_INFINITY);
                Arrays.fill(sum, 0f);
                for (int j0 = 0; j0 < n; j0 += TILE) {
                    int cols = Math.min(TILE, n - j0);
                    Sgemm.sgemm(false, true, rows, cols, d, s, x, xo + i0 * d, d, y, yo + j0 * d, d, 0f, tile, 0, cols, null);
                    for (int r = 0; r < rows; r++) {
                        float tileMax = Vec.max(tile, r * cols, cols);
                        float newMax = Math.max(max[r], tileMax);
                        float tileSum = Vec.expShiftSum(tile, r * cols, newMax, cols);
                        sum[r] = sum[r] * (float) Math.exp(max[r] - newMax) + tileSum;
                        max[r] = newMax;
                    }
                }
                for (int r = 0; r < rows; r++) lse[i0 + r] = max[r] + (float) Math.log(sum[r]);
            }
        });
        return lse;
    }

    /**
     * For the rows of x: G_ij = c (exp(L_ij - lseX_i) + exp(L_ij - lseY_j) - 2 [i == j]) with
     * L = s x y^T; dx (when non-null) += s G y. Returns sum_ij G_ij L_ij, summed in tile order.
     */
    private static double gradient(ComputePool pool, float[] x, int xo, float[] y, int yo, float[] lseX, float[] lseY,
                                   int n, int d, float s, float c, Tensor dx) {
        int tiles = (n + TILE - 1) / TILE;
        double[] partial = new double[tiles];
        Parallel.range(pool, tiles, 1, (from, to) -> {
            float[] tile = new float[TILE * TILE];
            for (int ti = from; ti < to; ti++) {
                int i0 = ti * TILE, rows = Math.min(TILE, n - i0);
                double dScale = 0;
                for (int j0 = 0; j0 < n; j0 += TILE) {
                    int cols = Math.min(TILE, n - j0);
                    Sgemm.sgemm(false, true, rows, cols, d, s, x, xo + i0 * d, d, y, yo + j0 * d, d, 0f, tile, 0, cols, null);
                    for (int r = 0; r < rows; r++) dScale += gradientRow(tile, r * cols, cols, i0 + r, j0, lseX[i0 + r], lseY, c);
                    if (dx != null) {
                        Sgemm.sgemm(false, false, rows, d, cols, s, tile, 0, cols, y, yo + j0 * d, d, 1f,
                                dx.f32(), dx.offset() + i0 * d, d, null);
                    }
                }
                partial[ti] = dScale;
            }
        });
        double total = 0;
        for (double p : partial) total += p;
        return total;
    }

    /**
     * Overwrites one tile row of logits L_ij (j = j0 .. j0 + cols) with G_ij; returns sum_j G_ij L_ij.
     * A method of its own so that its vector loop is compiled normally, not only on-stack-replaced.
     */
    private static double gradientRow(float[] tile, int base, int cols, int i, int j0, float lx, float[] lseY, float c) {
        int diag = i - j0;
        boolean hasDiag = diag >= 0 && diag < cols;
        float lDiag = hasDiag ? tile[base + diag] : 0f;
        FloatVector vlx = FloatVector.broadcast(S, lx), acc = FloatVector.zero(S);
        int k = 0, upper = S.loopBound(cols);
        for (; k < upper; k += L) {
            FloatVector l = FloatVector.fromArray(S, tile, base + k);
            FloatVector ly = l.sub(FloatVector.fromArray(S, lseY, j0 + k)).lanewise(VectorOperators.EXP);
            FloatVector g = l.sub(vlx).lanewise(VectorOperators.EXP).add(ly).mul(c);
            acc = g.fma(l, acc);
            g.intoArray(tile, base + k);
        }
        float rowDot = acc.reduceLanes(VectorOperators.ADD);
        for (; k < cols; k++) {
            float l = tile[base + k];
            float g = c * ((float) Math.exp(l - lx) + (float) Math.exp(l - lseY[j0 + k]));
            rowDot += g * l;
            tile[base + k] = g;
        }
        if (hasDiag) { // the label term -2c on the diagonal
            tile[base + diag] -= 2f * c;
            rowDot -= 2f * c * lDiag;
        }
        return rowDot;
    }
}
