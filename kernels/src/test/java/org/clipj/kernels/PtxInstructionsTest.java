package org.clipj.kernels;

import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * What the sm_90a PTX of the kernels shows (kernels/build.sh keeps it as target/ptx/clipkernels.sm_90a.ptx; no GPU
 * needed, skipped where nvcc is absent): the tensor-core kernels contain mma.sync, fed by ldmatrix from shared memory
 * filled by cp.async; no other kernel contains mma.sync. Prints the table of every kernel that uses one of them.
 */
class PtxInstructionsTest {
    private static final Path PTX = Path.of("target", "ptx", "clipkernels.sm_90a.ptx");
    private static final Pattern ENTRY = Pattern.compile("^\\.visible \\.entry ([A-Za-z_][A-Za-z0-9_]*)\\(");
    private static final List<String> INSTRUCTIONS = List.of("mma.sync", "ldmatrix", "cp.async");
    /** Kernel -> count of each of INSTRUCTIONS in its body. */
    private static final Map<String, int[]> COUNTS = new LinkedHashMap<>();

    @BeforeAll
    static void read() throws IOException {
        assumeTrue(Files.isRegularFile(PTX), "no sm_90a PTX at " + PTX.toAbsolutePath() + ": " + Kernels.fatbinUnavailableReason());
        int[] current = null;
        for (String line : Files.readAllLines(PTX)) {
            Matcher m = ENTRY.matcher(line);
            if (m.find()) {
                current = new int[INSTRUCTIONS.size()];
                COUNTS.put(m.group(1), current);
            } else if (current != null) {
                String code = line.strip();
                for (int i = 0; i < INSTRUCTIONS.size(); i++) {
                    if (code.startsWith(INSTRUCTIONS.get(i))) current[i]++;
                }
            }
        }
        System.out.printf("%-45s %9s %9s %9s%n", "kernel (sm_90a PTX)", "mma.sync", "ldmatrix", "cp.async");
        COUNTS.forEach((kernel, c) -> {
            if (c[0] + c[1] + c[2] > 0) System.out.printf("%-45s %9d %9d %9d%n", kernel, c[0], c[1], c[2]);
        });
    }

    @Test
    void attentionAndSimilarityTensorCoreKernelsUseMmaLdmatrixAndCpAsync() {
        int seen = 0;
        for (var e : COUNTS.entrySet()) {
            String kernel = e.getKey();
            if (!kernel.startsWith("attention_forward_mma_bf16") && !kernel.startsWith("attention_backward_dkdv_mma_bf16")
                    && !kernel.startsWith("attention_backward_dq_mma_bf16") && !kernel.equals("similarity_mma_bf16")) {
                continue;
            }
            seen++;
            for (int i = 0; i < INSTRUCTIONS.size(); i++) {
                assertTrue(e.getValue()[i] > 0, kernel + " has no " + INSTRUCTIONS.get(i) + " in its PTX");
            }
        }
        assertTrue(seen == 19, "6 head-width variants of 3 tensor-core attention kernels and similarity_mma_bf16, found " + seen);
    }

    @Test
    void onlyKernelsNamedMmaUseTensorCores() {
        assertFalse(COUNTS.isEmpty(), "no .entry in " + PTX);
        COUNTS.forEach((kernel, c) -> {
            boolean named = kernel.contains("_mma");
            assertTrue(named == c[0] > 0, kernel + (named ? " is named _mma but has no mma.sync" : " has mma.sync but no _mma in its name"));
        });
    }
}
