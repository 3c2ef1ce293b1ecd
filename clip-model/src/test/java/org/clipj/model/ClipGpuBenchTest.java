package org.clipj.model;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import org.clipj.kernels.Kernels;
import org.clipj.runtime.cuda.CudaBackend;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * ClipGpuBench, the bundle's timing harness, run on the simulator at its tiny shapes: every row runs (ops through
 * the CUDA backend, the encoders, the image and text encoders' CUDA graphs checked against the eager forward, a
 * training step) and has the documented fields; then gpu-bundle/run.sh (scripts/gpu-run.sh) on a stand-in GPU machine
 * (nvidia-smi, java and python3 replaced by scripts that print the harness's rows, a JUnit summary and peer rows)
 * writes a report.json that pairs every row with the peer's and computes speedup as DESIGN.md section 13 says.
 */
class ClipGpuBenchTest {
    private static final ObjectMapper JSON = new ObjectMapper();
    private static final ClipGpuBench.Peak H100 = ClipGpuBench.Peak.of("NVIDIA H100 80GB HBM3");
    private static List<String> lines;

    @TempDir Path tmp;

    @BeforeAll
    static void runOnTheSimulator() {
        assumeTrue(Kernels.simLibrary().isPresent(), "simulator library not built: " + Kernels.simLibraryUnavailableReason());
        ByteArrayOutputStream bytes = new ByteArrayOutputStream();
        try (CudaBackend cuda = CudaBackend.open("sim"); PrintStream out = new PrintStream(bytes, true, StandardCharsets.UTF_8)) {
            new ClipGpuBench(cuda, "sim", ClipGpuBench.Sizes.named("tiny"), H100, out).runAll();
        }
        lines = bytes.toString(StandardCharsets.UTF_8).lines().toList();
    }

    /** The rows of the tiny shapes, in order (ClipGpuBench names each by op and shape). */
    private static List<String> expectedNames() {
        List<String> names = new ArrayList<>();
        for (int b : new int[] {1, 2}) {
            int rows = 5 * b;
            names.add("layernorm-fwd-f32-" + rows + "x128");
            names.add("layernorm-bwd-f32-" + rows + "x128");
            for (String shape : new String[] {"b" + b + "-t5-h2x64", "causal-b" + b + "-t7-h2x64"}) {
                names.add("attention-fwd-f32-" + shape);
                names.add("attention-bwd-f32-" + shape);
                names.add("attention-fwd-bf16-" + shape);
                names.add("attention-bwd-bf16-" + shape);
            }
            names.add("attention-pool-fwd-f32-b" + b + "-l5-c128-h2");
            for (String io : new String[] {"128x384", "128x512", "512x128"}) {
                names.add("linear-f32-" + rows + "x" + io);
                names.add("linear-bf16-" + rows + "x" + io);
            }
            names.add("cast-f32-bf16-" + rows + "x128");
            names.add("cast-bf16-f32-" + rows + "x128");
            names.add("quickgelu-fwd-f32-" + rows + "x512");
            names.add("softmax-f32-" + b + "x10");
        }
        for (int n : new int[] {16, 64}) {
            names.add("contrastive-fwd-bwd-f32-n" + n + "-d64");
            names.add("contrastive-fwd-bwd-bf16-n" + n + "-d64");
        }
        names.addAll(List.of("tiny-image-b1-graph", "tiny-text-b1-graph", "tiny-image-b2", "tiny-text-b2",
                "tiny-train-step-f32-b2", "tiny-train-step-b2"));
        return names;
    }

    @Test
    void everyRowRunsWithItsRateTimeAndFractionOfPeak() throws Exception {
        List<String> names = new ArrayList<>();
        for (String line : lines) {
            JsonNode row = JSON.readTree(line);
            String name = row.path("name").asText();
            names.add(name);
            assertNull(row.get("error"), line);
            assertEquals("gpu", row.path("suite").asText(), line);
            assertEquals("sim", row.path("binding").asText(), line);
            assertTrue(row.path("device").asText().startsWith("cuda (sim): clipj simulator"), line);
            double value = row.path("clipj").asDouble();
            assertTrue(value > 0 && Double.isFinite(value), line);
            String unit = row.path("unit").asText();
            if (unit.equals("ms")) {
                assertTrue(name.startsWith("tiny-"), line);
                assertNull(row.get("peak_fraction"), line);
                continue;
            }
            double ms = row.path("ms").asDouble();
            assertTrue(ms > 0, line);
            boolean memory = unit.equals("GB/s");
            assertTrue(memory || unit.equals("TFLOP/s"), line);
            double peak = memory ? 3350 : name.contains("bf16") && !name.startsWith("cast") ? 989 : 67;
            assertEquals(peak, row.path("peak").asDouble(), line);
            assertEquals(value / peak, row.path("peak_fraction").asDouble(), 1e-4, line);
        }
        assertEquals(expectedNames(), names);
        // The nominal work: attention forward over 1 x 2 heads x 5 x 5 x 64 is 4 * 3200 FLOPs; rate = work / time.
        JsonNode attention = JSON.readTree(lines.get(names.indexOf("attention-fwd-f32-b1-t5-h2x64")));
        assertEquals(4.0 * 2 * 5 * 5 * 64 / (attention.path("ms").asDouble() * 1e-3) / 1e12, attention.path("clipj").asDouble(), 1e-4);
    }

    @Test
    void peaksAreKnownForTheH100AndH200Only() {
        assertEquals(new ClipGpuBench.Peak(989, 67, 3350), ClipGpuBench.Peak.of("cuda (panama): NVIDIA H100 80GB HBM3, sm_90, 132 SMs"));
        assertEquals(4800, ClipGpuBench.Peak.of("cuda (panama): NVIDIA H200, sm_90, 132 SMs").gbPerSecond());
        assertNull(ClipGpuBench.Peak.of("cuda (panama): NVIDIA H100 PCIe, sm_90"));
        assertNull(ClipGpuBench.Peak.of("cuda (sim): clipj simulator (libclipkernels_sim.so)"));
    }

    @Test
    void theBundleReportPairsEveryRowWithThePeerOfTheSameName() throws Exception {
        Path script = Path.of("..", "scripts", "gpu-run.sh").toAbsolutePath().normalize();
        Path bundle = Files.createDirectories(tmp.resolve("gpu-bundle")), bin = Files.createDirectories(tmp.resolve("bin"));
        Files.createDirectories(bundle.resolve("lib"));
        Files.createDirectories(bundle.resolve("tests"));
        Files.copy(script, bundle.resolve("run.sh"));
        Files.writeString(bundle.resolve("benches.txt"), "org.clipj.model.ClipGpuBench\n");
        Files.writeString(bundle.resolve("VERSION"), "abc1234 2026-12-06T22:00Z\n");
        Files.writeString(bundle.resolve("peer.py"), "");
        // The rows that ran (an error row of a BF16 attention backward the backend does not take yet is left out).
        List<String> rows = lines.stream().filter(line -> !line.contains("\"error\":")).toList();
        Files.write(tmp.resolve("clipj.jsonl"), rows);
        // The peer: twice clipj's time on every row (rate rows: half the rate), one row clipj lacks, one that failed.
        List<String> peer = new ArrayList<>();
        for (String line : rows) {
            JsonNode row = JSON.readTree(line);
            double v = row.path("clipj").asDouble();
            Map<String, Object> p = new LinkedHashMap<>();
            p.put("suite", "gpu");
            p.put("name", row.path("name").asText());
            p.put("unit", row.path("unit").asText());
            p.put("peer", row.path("unit").asText().equals("ms") ? 2 * v : v / 2);
            p.put("peer_name", "pytorch 2.9 cuda 13.0");
            peer.add(JSON.writeValueAsString(p));
        }
        peer.add("{\"suite\":\"gpu\",\"name\":\"launch-panama\",\"unit\":\"us\",\"peer\":2.5,\"peer_name\":\"pytorch 2.9 cuda 13.0\"}");
        peer.add("{\"suite\":\"gpu\",\"name\":\"vit-b32-train-step-b256\",\"peer_name\":\"pytorch 2.9 cuda 13.0\",\"error\":\"OOM\"}");
        Files.write(tmp.resolve("peer.jsonl"), peer);
        String python = java.util.Arrays.stream(System.getenv("PATH").split(":")).map(d -> Path.of(d, "python3"))
                .filter(Files::isExecutable).map(Path::toString).findFirst().orElse(null);
        assumeTrue(python != null, "no python3 on PATH to assemble the report with");
        script(bin.resolve("nvidia-smi"), "echo 'NVIDIA H100 80GB HBM3, 570.86.15, 81559 MiB'");
        script(bin.resolve("java"), """
                case "$*" in
                  *junit-platform-console-standalone.jar*)
                    printf '[        30 tests found           ]\\n[        29 tests successful      ]\\n[         1 tests skipped         ]\\n'
                    printf '[         0 tests failed          ]\\n[         0 tests aborted         ]\\n[         0 containers failed     ]\\n' ;;
                  *org.clipj.model.ClipGpuBench) cat '%s' ;;
                  *) echo "unexpected java $*" >&2; exit 3 ;;
                esac""".formatted(tmp.resolve("clipj.jsonl")));
        script(bin.resolve("python3"), """
                case "$1" in
                  -c) exit 0 ;;
                  */peer.py) cat '%s' ;;
                  *) exec '%s' "$@" ;;
                esac""".formatted(tmp.resolve("peer.jsonl"), python));
        Path out = tmp.resolve("out");
        ProcessBuilder pb = new ProcessBuilder("bash", bundle.resolve("run.sh").toString())
                .redirectError(tmp.resolve("stderr.txt").toFile()).redirectOutput(tmp.resolve("stdout.txt").toFile());
        pb.environment().put("OUT", out.toString());
        pb.environment().put("PATH", bin + ":" + System.getenv("PATH"));
        Process p = pb.start();
        assertTrue(p.waitFor(60, TimeUnit.SECONDS), "run.sh did not finish");
        assertEquals(0, p.exitValue(), Files.readString(tmp.resolve("stderr.txt")));

        JsonNode report = JSON.readTree(out.resolve("report.json").toFile());
        assertEquals("NVIDIA H100 80GB HBM3, 570.86.15, 81559 MiB", report.path("device").asText());
        assertEquals("abc1234 2026-12-06T22:00Z", report.path("bundle").asText());
        assertTrue(report.path("ok").asBoolean(), report.toString());
        assertEquals(30, report.path("junit").path("found").asInt());
        assertEquals(1, report.path("junit").path("skipped").asInt());
        assertTrue(report.path("seconds").asInt() >= 0);
        int n = rows.size();
        assertEquals(n, report.path("clipj").size());
        assertEquals(n + 2, report.path("peer").size()); // every row, launch-panama, and the failed one
        ObjectNode counts = (ObjectNode) report.path("benchmarks");
        assertEquals(n, counts.path("clipj").asInt());
        assertEquals(n + 1, counts.path("peer").asInt());
        assertEquals(n, counts.path("paired").asInt());
        assertEquals(1, counts.path("errors").asInt());
        for (JsonNode row : report.path("clipj")) {
            // time: peer / clipj = 2; rate: clipj / peer = 2 (the peer took twice as long either way)
            assertEquals(2.0, row.path("speedup").asDouble(), 1e-9, row.toString());
            assertEquals("pytorch 2.9 cuda 13.0", row.path("peer_name").asText(), row.toString());
            assertFalse(row.has("error"), row.toString());
        }
    }

    private static void script(Path file, String body) throws Exception {
        Files.writeString(file, "#!/usr/bin/env bash\n" + body + "\n");
        Files.setPosixFilePermissions(file, PosixFilePermissions.fromString("rwxr-xr-x"));
    }
}
