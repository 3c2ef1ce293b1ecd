package org.clipj.runtime.cuda;

import org.clipj.cuda.KernelArgs;

/**
 * The launch of the first stage of a two-stage column reduction over (rows, C) (bias and layernorm parameter
 * gradients): P chunks of rows, a block of 32 columns x 8 row lanes per (column tile, chunk), each writing one
 * partial row; the second stage adds the P partials of each column in order. About 64 rows per chunk and at most
 * 1024 chunks keep the grid thousands of blocks wide at training shapes and the partials small.
 */
record ColumnChunks(int parts, int rowsPerPart) {
    static final int COLUMN_TILE = 32; // COLUMN_TILE in elementwise.cu and layernorm.cu
    static final int ROW_LANES = 8;    // ROW_LANES there
    private static final int TARGET_ROWS = 64;
    private static final int MAX_PARTS = 1024;

    /** The chunks of {@code rows} rows (one empty chunk for no rows, so the second stage still adds zeros). */
    static ColumnChunks of(int rows) {
        int parts = Math.max(1, Math.min(MAX_PARTS, KernelLauncher.ceilDiv(rows, TARGET_ROWS)));
        return new ColumnChunks(parts, Math.max(1, KernelLauncher.ceilDiv(rows, parts)));
    }

    /** Launches a first-stage kernel over {@code columns} columns. */
    void launch(KernelLauncher launcher, String kernel, int columns, KernelArgs args) {
        launcher.launch(kernel, KernelLauncher.ceilDiv(columns, COLUMN_TILE), parts, 1, COLUMN_TILE, ROW_LANES, 1, 0, args);
    }
}
