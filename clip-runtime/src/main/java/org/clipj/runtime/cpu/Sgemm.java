package org.clipj.runtime.cpu;

import java.util.Arrays;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorMask;
import jdk.incubator.vector.VectorSpecies;

import org.clipj.runtime.Activation;

/**
 * Single-precision GEMM, row-major: C(m,n) = alpha * op(A) @ op(B) + beta * C.
 * A is stored (m,k) with row stride lda, or (k,m) when transA; B is stored (k,n) with row
 * stride ldb, or (n,k) when transB. beta == 0 ignores C's prior content (NaN included).
 *
 * Goto/BLIS structure: C is cut into tiles that run in parallel on the given pool; each tile
 * walks NC column blocks and KC depth blocks, packs B (KC, NC) into NR-wide panels and A (MC, KC)
 * into MR-row panels, and a register-blocked MR x NR micro-kernel does the FMAs (MR = 8, 16
 * accumulators, where AVX-512 gives 32 vector registers; MR = 4, 8 accumulators, on 16-register
 * AVX2; NC from the L2 size: see {@link #blocking()}). B packed once ({@link #pack}, the layers'
 * weights) has wider panels there, PACKED_NR = 3 vectors, and an MR x PACKED_NR kernel (24 accumulators).
 * An A panel is interleaved, (kc, MR) with the MR values of one depth side by side, so the
 * micro-kernel's broadcasts share one base register and constant displacements (with a row
 * stride, C2 spent as many integer instructions on addresses as the loop has FMAs and spilled).
 * All inner-loop strides are constants, which lets C2 hoist every bounds check out of the loop.
 * Ragged edges go through zero-padded packed panels, a half- and a quarter-height kernel (m = 50
 * ends in 2 rows) and masked stores. The register kernels are in {@link SgemmKernels}.
 */
public final class Sgemm {

    private static final VectorSpecies<Float> S = FloatVector.SPECIES_PREFERRED;
    static final int L = S.length();
    private static final CpuFeatures CPU = CpuFeatures.host();
    // rows of the micro-tile: 8 x 2 vectors = 16 accumulators + 2 B vectors + a broadcast need AVX-512's
    // 32 registers; with 16 (AVX2) that tile spills in the inner loop, 4 x 2 (11 registers) does not
    static final int MR = CPU.vectorRegisters32() ? 8 : 4;
    static final int NR = 2 * L;       // columns of the micro-tile (two vectors)
    // columns of the micro-tile on pre-packed B (the layers' weights, most of an encoder's FLOPs): three
    // vectors where 32 registers hold MR x 3 = 24 accumulators, so each A broadcast feeds three FMAs
    // (8 x 32 left the B loads and broadcasts at 10 per 16 FMAs, 8 x 48 needs 11 per 24). The
    // unpacked products keep NR: attention's n = 50 and 64 would leave ragged 48-wide panels.
    static final int PACKED_NR = MR == 8 ? 3 * L : NR;
    private static final int KC = 512;         // longest depth block: the packed B block (KC, NC) stays in L2
    private static final int KC_TALL = 768;    // longest depth block when A spans several MC blocks (see depthStep)
    private static final int MC = 128;         // packed A block (MC, KC) stays in L2
    // packed B block (KC, NC): as wide as the L2 holds (1 MiB, Zen 4/5: 512), at least four panels
    static final int NC = (int) Math.max(4 * NR, Math.min(512, CPU.l2Bytes() / (KC * Float.BYTES) / NR * NR));
    private static final long SERIAL_FLOPS = 1L << 21; // below this a single thread is faster

    private static final float[] TRANSPOSE_INDEX = transposeIndex();

    // Per-worker scratch, reused across calls: tile() never forks, so a worker runs one at a time.
    private static final ThreadLocal<float[]> PACK_A = ThreadLocal.withInitial(() -> new float[MC * KC_TALL]);  // (MC, kc) as (kc, MR) panels
    private static final ThreadLocal<float[]> PACK_B = ThreadLocal.withInitial(() -> new float[KC_TALL * NC]);  // (kc, NC) as NR-column panels
    private static final ThreadLocal<float[]> TILE = ThreadLocal.withInitial(() -> new float[MR * PACKED_NR]);  // (MR, NR or PACKED_NR)
    private static final ThreadLocal<float[]> ALL_A = ThreadLocal.withInitial(() -> new float[0]);         // packAllA's, on the calling thread
    private static final ThreadLocal<float[]> TRANSPOSE_BLOCK = ThreadLocal.withInitial(() -> new float[L * L]); // (L, L)

    private Sgemm() {}

    /** The blocking picked for this machine, for backend descriptions and benchmark reports. */
    public static String blocking() {
        return "GEMM tile " + MR + " x " + NR + " (" + 2 * MR + " accumulators), on packed weights " + MR + " x " + PACKED_NR
                + " (" + PACKED_NR / L * MR + "), MC " + MC + ", KC " + KC + "/" + KC_TALL + ", NC " + NC;
    }

    /**
     * C = alpha * op(A) @ op(B) + beta * C on the pool's workers (null: on the calling thread).
     * Throws IllegalArgumentException, before writing anything, when a matrix does not fit its array.
     */
    public static void sgemm(boolean transA, boolean transB, int m, int n, int k, float alpha,
                             float[] a, int aOff, int lda, float[] b, int bOff, int ldb,
                             float beta, float[] c, int cOff, int ldc, ComputePool pool) {
        sgemm(transA, transB, m, n, k, alpha, a, aOff, lda, b, bOff, ldb, beta, c, cOff, ldc, pool, null);
    }

    /** As above, with the epilogue (null: none) applied to C after the product. */
    public static void sgemm(boolean transA, boolean transB, int m, int n, int k, float alpha,
                             float[] a, int aOff, int lda, float[] b, int bOff, int ldb,
                             float beta, float[] c, int cOff, int ldc, ComputePool pool, Epilogue epilogue) {
        checkArguments(transA, transB, m, n, k, a, aOff, lda, b, bOff, ldb, c, cOff, ldc);
        if (m == 0 || n == 0) return;
        if (k == 0 || alpha == 0f) {
            scaleC(m, n, beta, c, cOff, ldc);
            if (epilogue != null) epilogue.apply(c, cOff, ldc, 0, 0, m, n);
            return;
        }
        run(new Gemm(transA, transB, m, n, k, alpha, a, aOff, lda, b, bOff, ldb, beta, c, cOff, ldc, null, NR, epilogue), pool);
    }

    /**
     * What a GEMM applies to each finished tile of C while it is in cache, in this order:
     * C[i, j] += bias[j]; C = activation(C); C[i, j] += residual[i, j]. bias (n) at biasOff and
     * residual (m, n) with row stride ldr at residualOff may be null, activation too. The residual
     * must not overlap C (C holds partial sums until the last depth block).
     */
    public record Epilogue(float[] bias, int biasOff, Activation activation, float[] residual, int residualOff, int ldr) {

        /** C[i:i+rows, j:j+cols], stored from c[cIdx] with row stride ldc, through the epilogue. */
        void apply(float[] c, int cIdx, int ldc, int i, int j, int rows, int cols) {
            for (int r = 0; r < rows; r++) {
                int row = cIdx + r * ldc;
                int res = residualOff + (i + r) * ldr + j;
                int q = 0;
                for (; q <= cols - L; q += L) {
                    FloatVector v = FloatVector.fromArray(S, c, row + q);
                    if (bias != null) v = v.add(FloatVector.fromArray(S, bias, biasOff + j + q));
                    v = activate(v);
                    if (residual != null) v = v.add(FloatVector.fromArray(S, residual, res + q));
                    v.intoArray(c, row + q);
                }
                if (q < cols) {
                    VectorMask<Float> mask = S.indexInRange(q, cols);
                    FloatVector v = FloatVector.fromArray(S, c, row + q, mask);
                    if (bias != null) v = v.add(FloatVector.fromArray(S, bias, biasOff + j + q, mask));
                    v = activate(v);
                    if (residual != null) v = v.add(FloatVector.fromArray(S, residual, res + q, mask));
                    v.intoArray(c, row + q, mask);
                }
            }
        }

        private FloatVector activate(FloatVector v) {
            if (activation == null) return v;
            return activation == Activation.QUICK_GELU ? ElementwiseOps.quickGelu(v) : ElementwiseOps.gelu(v);
        }
    }

    /** Cuts C into tiles and runs them on the pool (or on this thread when the product is small). */
    private static void run(Gemm g, ComputePool pool) {
        int m = g.m, n = g.n;
        int threads = pool == null ? 1 : pool.parallelism();
        long flops = 2L * m * n * g.k;
        if (threads <= 1 || flops < SERIAL_FLOPS) {
            g.tile(0, m, 0, n, null);
            return;
        }
        // Cut the longer side so the redundant packing (B per row tile, A per column tile) stays small.
        // With one side much longer, twice as many tiles as threads keeps both cores busy when the
        // machine is shared; with the sides alike, one row tile per thread (2 threads: 400x768x3072 4 %,
        // 616x512x512 11 % faster than 2 x 2 tiles; bench/RESULTS.md).
        int nr = g.nr;
        int rowPanels = (m + MR - 1) / MR, colPanels = (n + nr - 1) / nr;
        int target = 2 * threads;
        int rowTiles = 1, colTiles = 1;
        if (n >= 2 * m) {
            // no tile wider than one column block (a narrow leftover block reuses A poorly), a multiple of the threads
            int tiles = Math.max(target, (n + g.columnBlock() - 1) / g.columnBlock());
            colTiles = Math.min((tiles + threads - 1) / threads * threads, colPanels);
        }
        else if (m >= 2 * n) rowTiles = Math.min(target, rowPanels);
        else rowTiles = Math.min(threads, rowPanels);
        int rows = rowTiles, cols = colTiles;
        // Several column tiles would each pack the same rows of A: pack all of A once, in parallel.
        float[] packedA = cols > 1 ? g.packAllA(pool) : null;
        pool.run(rows * cols, t -> {
            int ti = t / cols, tj = t % cols;
            int i0 = split(rowPanels, rows, ti) * MR, i1 = Math.min(m, split(rowPanels, rows, ti + 1) * MR);
            int j0 = split(colPanels, cols, tj) * nr, j1 = Math.min(n, split(colPanels, cols, tj + 1) * nr);
            if (i0 < i1 && j0 < j1) g.tile(i0, i1, j0, j1, packedA);
        });
    }

    /**
     * op(B) (k, n) packed once for many products with different A (a layer's weight): PACKED_NR-column
     * panels, each (k, PACKED_NR) row-major with its columns zero-padded, panel j at j * k * PACKED_NR. The
     * micro-kernel streams these panels as they are, so a product with a packed B does no packing.
     */
    public static final class PackedB {
        private final int n, k;
        private final float[] panels;   // (ceil(n / PACKED_NR), k, PACKED_NR)

        private PackedB(int n, int k, float[] panels) {
            this.n = n;
            this.k = k;
            this.panels = panels;
        }

        public int n() {
            return n;
        }

        public int k() {
            return k;
        }
    }

    /** Packs op(B) (k, n): B stored (k, n) with row stride ldb, or (n, k) when transB (nn.Linear's weight). */
    public static PackedB pack(boolean transB, int n, int k, float[] b, int bOff, int ldb) {
        if (n <= 0 || k <= 0) throw new IllegalArgumentException("sgemm pack: empty B (" + k + ", " + n + ")");
        if (transB) checkMatrix("B", b, bOff, ldb, n, k);
        else checkMatrix("B", b, bOff, ldb, k, n);
        Gemm g = new Gemm(false, transB, 0, n, k, 1f, null, 0, 0, b, bOff, ldb, 0f, null, 0, 0, null, PACKED_NR, null);
        int panels = (n + PACKED_NR - 1) / PACKED_NR;
        float[] packed = new float[panels * k * PACKED_NR];
        for (int j = 0; j < panels; j++) {
            g.packBPanel(j * PACKED_NR, Math.min(PACKED_NR, n - j * PACKED_NR), 0, k, packed, j * k * PACKED_NR);
        }
        return new PackedB(n, k, packed);
    }

    /** C = alpha * A @ B + beta * C with B packed by {@link #pack}; A stored (m, k) with row stride lda. */
    public static void sgemm(int m, int n, int k, float alpha, float[] a, int aOff, int lda, PackedB b,
                             float beta, float[] c, int cOff, int ldc, ComputePool pool) {
        sgemm(m, n, k, alpha, a, aOff, lda, b, beta, c, cOff, ldc, pool, null);
    }

    /** As above, with the epilogue (null: none) applied to C after the product. */
    public static void sgemm(int m, int n, int k, float alpha, float[] a, int aOff, int lda, PackedB b,
                             float beta, float[] c, int cOff, int ldc, ComputePool pool, Epilogue epilogue) {
        if (b.n != n || b.k != k) {
            throw new IllegalArgumentException("sgemm: packed B is (" + b.k + ", " + b.n + "), expected (" + k + ", " + n + ")");
        }
        checkArguments(false, false, m, n, k, a, aOff, lda, null, 0, 0, c, cOff, ldc);
        if (m == 0 || n == 0) return;
        if (k == 0 || alpha == 0f) {
            scaleC(m, n, beta, c, cOff, ldc);
            if (epilogue != null) epilogue.apply(c, cOff, ldc, 0, 0, m, n);
            return;
        }
        run(new Gemm(false, false, m, n, k, alpha, a, aOff, lda, null, 0, 0, beta, c, cOff, ldc, b.panels, PACKED_NR, epilogue), pool);
    }

    /** Plain triple loop accumulating in double: the test oracle. */
    public static void sgemmReference(boolean transA, boolean transB, int m, int n, int k, float alpha,
                                      float[] a, int aOff, int lda, float[] b, int bOff, int ldb,
                                      float beta, float[] c, int cOff, int ldc) {
        for (int i = 0; i < m; i++) {
            for (int j = 0; j < n; j++) {
                double sum = 0;
                for (int p = 0; p < k; p++) {
                    float av = transA ? a[aOff + p * lda + i] : a[aOff + i * lda + p];
                    float bv = transB ? b[bOff + j * ldb + p] : b[bOff + p * ldb + j];
                    sum += (double) av * bv;
                }
                int ci = cOff + i * ldc + j;
                float prior = beta == 0f ? 0f : beta * c[ci];
                c[ci] = (float) (alpha * sum) + prior;
            }
        }
    }

    /**
     * The depth block: k cut into equal blocks of at most KC (a multiple of L where possible), so no
     * short last block runs the micro-kernel with little depth (k = 512: 1 x 512, 768: 2 x 384,
     * 1100: 3 x 368). When A is taller than one MC block, the packed B block is streamed again for
     * each MC block anyway, and deeper blocks mean fewer passes over C (each one reloads it): up to
     * KC_TALL then (m = 400, k = 768: 1 x 768, 5 % faster; at m = 50 the same depth is 5 % slower).
     */
    private static int depthStep(int m, int k) {
        int longest = m > MC ? KC_TALL : KC;
        int blocks = (k + longest - 1) / longest;
        int step = (k + blocks - 1) / blocks;
        return Math.min(longest, (step + L - 1) / L * L);
    }

    /** First panel index of tile t when `panels` panels are shared among `tiles` tiles. */
    private static int split(int panels, int tiles, int t) {
        return (int) ((long) panels * t / tiles);
    }

    private static void checkArguments(boolean transA, boolean transB, int m, int n, int k,
                                       float[] a, int aOff, int lda, float[] b, int bOff, int ldb,
                                       float[] c, int cOff, int ldc) {
        if (m < 0 || n < 0 || k < 0) {
            throw new IllegalArgumentException("sgemm: negative size m=" + m + " n=" + n + " k=" + k);
        }
        if (m == 0 || n == 0) return;
        checkMatrix("C", c, cOff, ldc, m, n);
        if (k == 0) return;
        if (transA) checkMatrix("A", a, aOff, lda, k, m);
        else checkMatrix("A", a, aOff, lda, m, k);
        if (b == null) return;   // packed: checked by pack()
        if (transB) checkMatrix("B", b, bOff, ldb, n, k);
        else checkMatrix("B", b, bOff, ldb, k, n);
    }

    private static void checkMatrix(String name, float[] x, int off, int ld, int rows, int cols) {
        long last = (long) off + (long) (rows - 1) * ld + cols - 1;
        if (off < 0 || ld < cols || last >= x.length) {
            throw new IllegalArgumentException("sgemm: " + name + " stored (" + rows + ", " + cols
                    + ") with offset " + off + " and row stride " + ld + " does not fit an array of " + x.length);
        }
    }

    /** C = beta * C, with beta == 0 clearing C (NaN included). */
    private static void scaleC(int m, int n, float beta, float[] c, int cOff, int ldc) {
        for (int i = 0; i < m; i++) {
            int row = cOff + i * ldc;
            for (int j = 0; j < n; j++) c[row + j] = beta == 0f ? 0f : beta * c[row + j];
        }
    }

    /**
     * One GEMM call; tile() computes the block C[i0:i1, j0:j1] and may run on any worker. packedB:
     * B's panels from {@link #pack} (then b is null), or null to pack B block by block here. nr: the
     * width of B's panels and of the micro-tile, PACKED_NR with packedB, else NR.
     */
    private record Gemm(boolean transA, boolean transB, int m, int n, int k, float alpha,
                        float[] a, int aOff, int lda, float[] b, int bOff, int ldb,
                        float beta, float[] c, int cOff, int ldc, float[] packedB, int nr, Epilogue epilogue) {

        /** The column block: NC, rounded down to whole panels. */
        int columnBlock() {
            return NC / nr * nr;
        }

        /**
         * All of op(A) packed for tile(): for each depth block pc, its interleaved panels (kc, MR), the
         * block of pc at mPanels * MR * pc, row panel q at q * MR * kc within it. The array is the
         * calling thread's and is valid until its next packAllA.
         */
        float[] packAllA(ComputePool pool) {
            int panels = (m + MR - 1) / MR;
            float[] dst = ALL_A.get();
            if (dst.length < panels * MR * k) {
                dst = new float[panels * MR * k];
                ALL_A.set(dst);
            }
            float[] packed = dst;
            pool.run(panels, q -> {
                for (int pc = 0, step = depthStep(m, k); pc < k; pc += step) {
                    int kc = Math.min(step, k - pc);
                    packAPanel(q * MR, Math.min(MR, m - q * MR), pc, kc, packed, panels * MR * pc + q * MR * kc);
                }
            });
            return packed;
        }

        /** C[i0:i1, j0:j1]; packedA: all of A from packAllA (i0 a multiple of MR), or null to pack A block by block. */
        void tile(int i0, int i1, int j0, int j1, float[] packedA) {
            float[] packA = PACK_A.get(), packB = PACK_B.get(), tile = TILE.get();
            // Rows of one MC block (small M): B is read by a few row panels only, so its packing (a
            // stream from L3) is exposed; the first row panel's micro-kernel packs B's full panels
            // as it reads them from B stored (k, n), hiding that stream behind the FMAs. With more
            // row blocks packing is amortized and a separate pass is faster.
            boolean packInKernel = MR == 8 && packedB == null && !transB && i1 - i0 >= MR && i1 - i0 <= MC;
            for (int jc = j0, block = columnBlock(); jc < j1; jc += block) {
                int nc = Math.min(block, j1 - jc);
                for (int pc = 0, step = depthStep(m, k); pc < k; pc += step) {
                    int kc = Math.min(step, k - pc);
                    float blockBeta = pc == 0 ? beta : 1f;   // later depth blocks accumulate
                    float[] bPanels = packB;
                    int bBase = 0, bPanelStride = kc * NR;
                    if (packedB != null) {
                        bPanels = packedB;
                        bBase = (jc / nr) * k * nr + pc * nr;
                        bPanelStride = k * nr;
                    } else if (packInKernel) {
                        int full = nc / NR * NR;
                        if (full < nc) packBPanel(jc + full, nc - full, pc, kc, packB, (full / NR) * NR * kc);
                    } else {
                        packB(jc, nc, pc, kc, packB);
                    }
                    for (int ic = i0; ic < i1; ic += MC) {
                        int mc = Math.min(MC, i1 - ic);
                        float[] aPanels = packA;
                        int aBase = 0;
                        if (packedA != null) {
                            aPanels = packedA;
                            aBase = ((m + MR - 1) / MR) * MR * pc + (ic / MR) * MR * kc;
                        } else {
                            packA(ic, mc, pc, kc, packA);
                        }
                        blockKernel(ic, mc, jc, nc, pc, kc, aPanels, aBase, bPanels, bBase, bPanelStride, tile, blockBeta,
                                packInKernel && ic == i0, pc + kc == k ? epilogue : null);
                    }
                }
            }
        }

        /**
         * C[ic:ic+mc, jc:jc+nc] (+)= alpha * A-block @ B-block over one depth block of kc. The A panel
         * of rows ic+ir.. is the (kc, MR) block at aPanels[aBase + (ir / MR) * MR * kc]; the B panel of
         * columns jc+jr.. is the (kc, nr) block at bPanels[bBase + (jr / nr) * bPanelStride]. The B
         * panel is reused across the A panels of the block. When packing, the full B panels are not
         * packed yet: the first row panel's kernel reads them from B and writes them there.
         * finish (the last depth block's epilogue, else null) runs on each C tile right after its kernel.
         */
        private void blockKernel(int ic, int mc, int jc, int nc, int pc, int kc, float[] aPanels, int aBase,
                                 float[] bPanels, int bBase, int bPanelStride, float[] tile, float blockBeta, boolean packing,
                                 Epilogue finish) {
            for (int jr = 0; jr < nc; jr += nr) {
                int cols = Math.min(nr, nc - jr);
                int bIdx = bBase + (jr / nr) * bPanelStride;
                for (int ir = 0; ir < mc; ir += MR) {
                    int rows = Math.min(MR, mc - ir);
                    int aIdx = aBase + (ir / MR) * MR * kc;
                    int cIdx = cOff + (ic + ir) * ldc + jc + jr;
                    if (nr != NR) {
                        if (rows <= 2) SgemmKernels.wideKernel2Rows(kc, aPanels, aIdx, bPanels, bIdx, tile, c, cIdx, ldc, rows, cols, alpha, blockBeta);
                        else if (rows <= 4) SgemmKernels.wideKernel4Rows(kc, aPanels, aIdx, bPanels, bIdx, tile, c, cIdx, ldc, rows, cols, alpha, blockBeta);
                        else SgemmKernels.wideKernel(kc, aPanels, aIdx, bPanels, bIdx, tile, c, cIdx, ldc, rows, cols, alpha, blockBeta);
                    } else if (packing && ir == 0 && cols == NR) SgemmKernels.microKernelPackingB(kc, aPanels, aIdx, b, bOff + pc * ldb + jc + jr, ldb, bPanels, bIdx, tile, c, cIdx, ldc, rows, cols, alpha, blockBeta);
                    else if (rows <= 2) SgemmKernels.microKernel2Rows(kc, aPanels, aIdx, bPanels, bIdx, tile, c, cIdx, ldc, rows, cols, alpha, blockBeta);
                    else if (rows <= 4) SgemmKernels.microKernel4Rows(kc, aPanels, aIdx, bPanels, bIdx, tile, c, cIdx, ldc, rows, cols, alpha, blockBeta);
                    else SgemmKernels.microKernel(kc, aPanels, aIdx, bPanels, bIdx, tile, c, cIdx, ldc, rows, cols, alpha, blockBeta);
                    if (finish != null) finish.apply(c, cIdx, ldc, ic + ir, jc + jr, rows, cols);
                }
            }
        }

        /** Packs A[ic:ic+mc, pc:pc+kc] as interleaved panels, each (kc, MR) row-major, rows past mc zero. */
        private void packA(int ic, int mc, int pc, int kc, float[] dst) {
            for (int ir = 0; ir < mc; ir += MR) packAPanel(ic + ir, Math.min(MR, mc - ir), pc, kc, dst, (ir / MR) * MR * kc);
        }

        /** Packs rows [i, i+rows) of op(A), depths [pc, pc+kc), as dst[d + p * MR + r]; rows past `rows` are zero. */
        private void packAPanel(int i, int rows, int pc, int kc, float[] dst, int d) {
            if (transA) {
                for (int p = 0; p < kc; p++) System.arraycopy(a, aOff + (pc + p) * lda + i, dst, d + p * MR, rows);
            } else {
                int p = 0;
                if (L == 16 && MR == 8 && rows == MR) {
                    // 8 rows x 32 depths at a time through registers: the scalar interleave weighed on
                    // small products, attention's q k^T and p v at T = 50 (bench/RESULTS.md)
                    int src = aOff + i * lda + pc;
                    for (; p + 2 * L <= kc; p += 2 * L) transpose16(a, src + p, src + p + L, lda, dst, d + p * MR, L, true);
                }
                for (int r = 0; r < rows; r++) {
                    int src = aOff + (i + r) * lda + pc;
                    for (int q = p; q < kc; q++) dst[d + q * MR + r] = a[src + q];
                }
            }
            if (rows < MR) {
                for (int p = 0; p < kc; p++) Arrays.fill(dst, d + p * MR + rows, d + (p + 1) * MR, 0f);
            }
        }

        /**
         * Packs a full nr-wide panel of B stored (n, k): panel[p, q] = B[j + q, pc + p], as (L, L) blocks
         * loaded row-wise and transposed in registers (a scalar copy here costs more than the FMAs
         * when M is small); the depth tail past a multiple of L is copied element by element.
         */
        private void packTransposedPanel(int j, int pc, int kc, float[] dst, int d) {
            float[] block = L == 16 ? null : TRANSPOSE_BLOCK.get();   // transpose16 needs no scratch
            int blockedDepth = kc - kc % L;
            for (int q0 = 0; q0 < nr; q0 += L) {
                for (int p0 = 0; p0 < blockedDepth; p0 += L) {
                    int src = bOff + (j + q0) * ldb + pc + p0;
                    if (L == 16) {
                        transpose16(b, src, ldb, dst, d + p0 * nr + q0, nr);
                    } else {
                        for (int r = 0; r < L; r++) FloatVector.fromArray(S, b, src + r * ldb).intoArray(block, r * L);
                        transposeBlock(block);
                        for (int r = 0; r < L; r++) FloatVector.fromArray(S, block, r * L).intoArray(dst, d + (p0 + r) * nr + q0);
                    }
                }
            }
            for (int q = 0; q < nr; q++) {
                int src = bOff + (j + q) * ldb + pc;
                for (int p = blockedDepth; p < kc; p++) dst[d + p * nr + q] = b[src + p];
            }
        }

        /** Packs B[pc:pc+kc, jc:jc+nc] as NR-column panels, each (kc, NR) row-major, columns zero-padded (nr == NR here). */
        private void packB(int jc, int nc, int pc, int kc, float[] dst) {
            for (int jr = 0; jr < nc; jr += NR) packBPanel(jc + jr, Math.min(NR, nc - jr), pc, kc, dst, (jr / NR) * NR * kc);
        }

        /** Packs columns [j, j+cols) of op(B), depths [pc, pc+kc), as the (kc, nr) panel at dst[d], columns past cols zero. */
        private void packBPanel(int j, int cols, int pc, int kc, float[] dst, int d) {
            if (transB && cols == nr) {
                packTransposedPanel(j, pc, kc, dst, d);
            } else if (transB) {
                for (int q = 0; q < cols; q++) {
                    int src = bOff + (j + q) * ldb + pc;
                    for (int p = 0; p < kc; p++) dst[d + p * nr + q] = b[src + p];
                }
                for (int q = cols; q < nr; q++) {
                    for (int p = 0; p < kc; p++) dst[d + p * nr + q] = 0f;
                }
            } else if (cols == nr) {
                for (int p = 0; p < kc; p++) {
                    int src = bOff + (pc + p) * ldb + j, row = d + p * nr;
                    for (int q = 0; q < nr; q += L) FloatVector.fromArray(S, b, src + q).intoArray(dst, row + q);
                }
            } else {
                for (int p = 0; p < kc; p++) {
                    int src = bOff + (pc + p) * ldb + j, row = d + p * nr;
                    for (int q = 0; q < cols; q++) dst[row + q] = b[src + q];
                    for (int q = cols; q < nr; q++) dst[row + q] = 0f;
                }
            }
        }
    }

    /**
     * Transposes the (L, L) block in place: block[r * L + c] becomes block[c * L + r]. Stage h swaps
     * the h-wide off-diagonal sub-blocks of row pairs (i, i + h), so log2(L) stages of two-vector
     * permutes (vpermt2ps) do it.
     */
    static void transposeBlock(float[] block) {
        for (int h = L / 2, stage = 0; h >= 1; h /= 2, stage++) {
            FloatVector low = FloatVector.fromArray(S, TRANSPOSE_INDEX, 2 * stage * L);
            FloatVector high = FloatVector.fromArray(S, TRANSPOSE_INDEX, (2 * stage + 1) * L);
            for (int i = 0; i < L; i++) {
                if ((i & h) != 0) continue;
                FloatVector x = FloatVector.fromArray(S, block, i * L);
                FloatVector y = FloatVector.fromArray(S, block, (i + h) * L);
                low.selectFrom(x, y).intoArray(block, i * L);
                high.selectFrom(x, y).intoArray(block, (i + h) * L);
            }
        }
    }

    /**
     * Writes the transpose of the (16, 16) block x[xi + r * ldx + c] to y[yi + c * ldy + r] when
     * L == 16: transposeBlock's four stages on sixteen registers, without its round trips through
     * a scratch block in memory (which made B^T packing 20 % of an nt product with M = 50).
     */
    static void transpose16(float[] x, int xi, int ldx, float[] y, int yi, int ldy) {
        transpose16(x, xi, xi + 8 * ldx, ldx, y, yi, ldy, false);
    }

    /**
     * transpose16 of the (16, 16) block whose rows 0-7 start at x[xi + r * ldx] and rows 8-15 at
     * x[xh + (r - 8) * ldx]. With pairHalves the transposed rows u_q (q < 16) are not stored as they
     * are: y row j gets [u_2j's low half, u_2j+1's low half] and row 8 + j their high halves (stage 0's
     * permute). Rows 8-15 taken 16 columns to the right of rows 0-7 and ldy = 16, that writes 8 rows x
     * 32 depths of A as packed A panels want them, (32, 8) row-major.
     */
    private static void transpose16(float[] x, int xi, int xh, int ldx, float[] y, int yi, int ldy, boolean pairHalves) {
        FloatVector r0 = FloatVector.fromArray(S, x, xi), r1 = FloatVector.fromArray(S, x, xi + ldx);
        FloatVector r2 = FloatVector.fromArray(S, x, xi + 2 * ldx), r3 = FloatVector.fromArray(S, x, xi + 3 * ldx);
        FloatVector r4 = FloatVector.fromArray(S, x, xi + 4 * ldx), r5 = FloatVector.fromArray(S, x, xi + 5 * ldx);
        FloatVector r6 = FloatVector.fromArray(S, x, xi + 6 * ldx), r7 = FloatVector.fromArray(S, x, xi + 7 * ldx);
        FloatVector r8 = FloatVector.fromArray(S, x, xh), r9 = FloatVector.fromArray(S, x, xh + ldx);
        FloatVector r10 = FloatVector.fromArray(S, x, xh + 2 * ldx), r11 = FloatVector.fromArray(S, x, xh + 3 * ldx);
        FloatVector r12 = FloatVector.fromArray(S, x, xh + 4 * ldx), r13 = FloatVector.fromArray(S, x, xh + 5 * ldx);
        FloatVector r14 = FloatVector.fromArray(S, x, xh + 6 * ldx), r15 = FloatVector.fromArray(S, x, xh + 7 * ldx);
        FloatVector lo, hi;
        // stage 0: rows i, i + 8
        lo = FloatVector.fromArray(S, TRANSPOSE_INDEX, 0 * L); hi = FloatVector.fromArray(S, TRANSPOSE_INDEX, 1 * L);
        { FloatVector t = lo.selectFrom(r0, r8); r8 = hi.selectFrom(r0, r8); r0 = t; }
        { FloatVector t = lo.selectFrom(r1, r9); r9 = hi.selectFrom(r1, r9); r1 = t; }
        { FloatVector t = lo.selectFrom(r2, r10); r10 = hi.selectFrom(r2, r10); r2 = t; }
        { FloatVector t = lo.selectFrom(r3, r11); r11 = hi.selectFrom(r3, r11); r3 = t; }
        { FloatVector t = lo.selectFrom(r4, r12); r12 = hi.selectFrom(r4, r12); r4 = t; }
        { FloatVector t = lo.selectFrom(r5, r13); r13 = hi.selectFrom(r5, r13); r5 = t; }
        { FloatVector t = lo.selectFrom(r6, r14); r14 = hi.selectFrom(r6, r14); r6 = t; }
        { FloatVector t = lo.selectFrom(r7, r15); r15 = hi.selectFrom(r7, r15); r7 = t; }
        // stage 1: rows i, i + 4
        lo = FloatVector.fromArray(S, TRANSPOSE_INDEX, 2 * L); hi = FloatVector.fromArray(S, TRANSPOSE_INDEX, 3 * L);
        { FloatVector t = lo.selectFrom(r0, r4); r4 = hi.selectFrom(r0, r4); r0 = t; }
        { FloatVector t = lo.selectFrom(r1, r5); r5 = hi.selectFrom(r1, r5); r1 = t; }
        { FloatVector t = lo.selectFrom(r2, r6); r6 = hi.selectFrom(r2, r6); r2 = t; }
        { FloatVector t = lo.selectFrom(r3, r7); r7 = hi.selectFrom(r3, r7); r3 = t; }
        { FloatVector t = lo.selectFrom(r8, r12); r12 = hi.selectFrom(r8, r12); r8 = t; }
        { FloatVector t = lo.selectFrom(r9, r13); r13 = hi.selectFrom(r9, r13); r9 = t; }
        { FloatVector t = lo.selectFrom(r10, r14); r14 = hi.selectFrom(r10, r14); r10 = t; }
        { FloatVector t = lo.selectFrom(r11, r15); r15 = hi.selectFrom(r11, r15); r11 = t; }
        // stage 2: rows i, i + 2
        lo = FloatVector.fromArray(S, TRANSPOSE_INDEX, 4 * L); hi = FloatVector.fromArray(S, TRANSPOSE_INDEX, 5 * L);
        { FloatVector t = lo.selectFrom(r0, r2); r2 = hi.selectFrom(r0, r2); r0 = t; }
        { FloatVector t = lo.selectFrom(r1, r3); r3 = hi.selectFrom(r1, r3); r1 = t; }
        { FloatVector t = lo.selectFrom(r4, r6); r6 = hi.selectFrom(r4, r6); r4 = t; }
        { FloatVector t = lo.selectFrom(r5, r7); r7 = hi.selectFrom(r5, r7); r5 = t; }
        { FloatVector t = lo.selectFrom(r8, r10); r10 = hi.selectFrom(r8, r10); r8 = t; }
        { FloatVector t = lo.selectFrom(r9, r11); r11 = hi.selectFrom(r9, r11); r9 = t; }
        { FloatVector t = lo.selectFrom(r12, r14); r14 = hi.selectFrom(r12, r14); r12 = t; }
        { FloatVector t = lo.selectFrom(r13, r15); r15 = hi.selectFrom(r13, r15); r13 = t; }
        // stage 3: rows i, i + 1
        lo = FloatVector.fromArray(S, TRANSPOSE_INDEX, 6 * L); hi = FloatVector.fromArray(S, TRANSPOSE_INDEX, 7 * L);
        { FloatVector t = lo.selectFrom(r0, r1); r1 = hi.selectFrom(r0, r1); r0 = t; }
        { FloatVector t = lo.selectFrom(r2, r3); r3 = hi.selectFrom(r2, r3); r2 = t; }
        { FloatVector t = lo.selectFrom(r4, r5); r5 = hi.selectFrom(r4, r5); r4 = t; }
        { FloatVector t = lo.selectFrom(r6, r7); r7 = hi.selectFrom(r6, r7); r6 = t; }
        { FloatVector t = lo.selectFrom(r8, r9); r9 = hi.selectFrom(r8, r9); r8 = t; }
        { FloatVector t = lo.selectFrom(r10, r11); r11 = hi.selectFrom(r10, r11); r10 = t; }
        { FloatVector t = lo.selectFrom(r12, r13); r13 = hi.selectFrom(r12, r13); r12 = t; }
        { FloatVector t = lo.selectFrom(r14, r15); r15 = hi.selectFrom(r14, r15); r14 = t; }
        if (pairHalves) {   // written out: the same with a helper method taking the vectors measured slower
            lo = FloatVector.fromArray(S, TRANSPOSE_INDEX, 0 * L); hi = FloatVector.fromArray(S, TRANSPOSE_INDEX, 1 * L);
            lo.selectFrom(r0, r1).intoArray(y, yi); hi.selectFrom(r0, r1).intoArray(y, yi + 8 * ldy);
            lo.selectFrom(r2, r3).intoArray(y, yi + ldy); hi.selectFrom(r2, r3).intoArray(y, yi + 9 * ldy);
            lo.selectFrom(r4, r5).intoArray(y, yi + 2 * ldy); hi.selectFrom(r4, r5).intoArray(y, yi + 10 * ldy);
            lo.selectFrom(r6, r7).intoArray(y, yi + 3 * ldy); hi.selectFrom(r6, r7).intoArray(y, yi + 11 * ldy);
            lo.selectFrom(r8, r9).intoArray(y, yi + 4 * ldy); hi.selectFrom(r8, r9).intoArray(y, yi + 12 * ldy);
            lo.selectFrom(r10, r11).intoArray(y, yi + 5 * ldy); hi.selectFrom(r10, r11).intoArray(y, yi + 13 * ldy);
            lo.selectFrom(r12, r13).intoArray(y, yi + 6 * ldy); hi.selectFrom(r12, r13).intoArray(y, yi + 14 * ldy);
            lo.selectFrom(r14, r15).intoArray(y, yi + 7 * ldy); hi.selectFrom(r14, r15).intoArray(y, yi + 15 * ldy);
            return;
        }
        r0.intoArray(y, yi); r1.intoArray(y, yi + ldy);
        r2.intoArray(y, yi + 2 * ldy); r3.intoArray(y, yi + 3 * ldy);
        r4.intoArray(y, yi + 4 * ldy); r5.intoArray(y, yi + 5 * ldy);
        r6.intoArray(y, yi + 6 * ldy); r7.intoArray(y, yi + 7 * ldy);
        r8.intoArray(y, yi + 8 * ldy); r9.intoArray(y, yi + 9 * ldy);
        r10.intoArray(y, yi + 10 * ldy); r11.intoArray(y, yi + 11 * ldy);
        r12.intoArray(y, yi + 12 * ldy); r13.intoArray(y, yi + 13 * ldy);
        r14.intoArray(y, yi + 14 * ldy); r15.intoArray(y, yi + 15 * ldy);
    }

    /** Lane indices for transposeBlock and transpose16, two vectors per stage: selectFrom(x, y) takes x[l] for l < L, y[l - L] above. */
    private static float[] transposeIndex() {
        int stages = Integer.numberOfTrailingZeros(L);
        float[] index = new float[2 * stages * L];
        for (int h = L / 2, stage = 0; h >= 1; h /= 2, stage++) {
            for (int l = 0; l < L; l++) {
                index[2 * stage * L + l] = (l & h) == 0 ? l : L + l - h;          // row i:     x's low part, y's low part
                index[(2 * stage + 1) * L + l] = (l & h) == 0 ? l + h : L + l;    // row i + h: x's high part, y's high part
            }
        }
        return index;
    }
}
