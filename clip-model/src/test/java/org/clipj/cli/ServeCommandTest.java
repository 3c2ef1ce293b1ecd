package org.clipj.cli;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import org.clipj.TestAssets;
import org.junit.jupiter.api.Test;

import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** `clip serve` in its own JVM: SIGTERM answers the requests already queued, then the process exits 0. */
class ServeCommandTest {
    private static final HttpClient HTTP = HttpClient.newHttpClient();

    @Test
    void sigtermDrainsTheQueueAndExitsZero() throws Exception {
        // batches of 8 after up to a minute: the three requests below stay queued until the drain flushes them
        List<String> command = List.of(ProcessHandle.current().info().command().orElse("java"),
                "--add-modules", "jdk.incubator.vector", "--enable-native-access=ALL-UNNAMED", "-Djava.awt.headless=true",
                "-cp", System.getProperty("java.class.path"), Main.class.getName(), "serve",
                "--model", TestAssets.golden("tiny-vit", "model.safetensors").toString(), "--vocab", TestAssets.vocab().toString(),
                "--device", "cpu", "--port", "0", "--max-batch", "8", "--max-wait-ms", "60000", "--max-queue", "16");
        Process server = new ProcessBuilder(command).redirectErrorStream(true).start();
        try {
            BufferedReader log = new BufferedReader(new InputStreamReader(server.getInputStream(), StandardCharsets.UTF_8));
            StringBuilder seen = new StringBuilder();
            int port = -1;
            for (String line; port < 0 && (line = log.readLine()) != null; ) {
                seen.append(line).append('\n');
                Matcher m = Pattern.compile("listening on http://127\\.0\\.0\\.1:(\\d+)").matcher(line);
                if (m.find()) {
                    port = Integer.parseInt(m.group(1));
                }
            }
            assertTrue(port > 0, "no 'listening on' line:\n" + seen);
            String base = "http://127.0.0.1:" + port;
            long deadline = System.nanoTime() + 120_000_000_000L;
            while (HTTP.send(HttpRequest.newBuilder(URI.create(base + "/health")).build(), HttpResponse.BodyHandlers.ofString()).statusCode() != 200) {
                assertTrue(System.nanoTime() < deadline && server.isAlive(), "never healthy");
                Thread.sleep(50);
            }
            List<CompletableFuture<HttpResponse<String>>> accepted = new ArrayList<>();
            for (String text : List.of("a dog", "a cat", "a diagram")) {
                accepted.add(HTTP.sendAsync(HttpRequest.newBuilder(URI.create(base + "/v1/embeddings"))
                        .POST(HttpRequest.BodyPublishers.ofString("{\"input\": \"" + text + "\"}")).build(), HttpResponse.BodyHandlers.ofString()));
            }
            while (!HTTP.send(HttpRequest.newBuilder(URI.create(base + "/metrics")).build(), HttpResponse.BodyHandlers.ofString())
                    .body().contains("\nclip_queue_depth 3\n")) {
                assertTrue(System.nanoTime() < deadline, "the requests never queued");
                Thread.sleep(20);
            }
            server.destroy();   // SIGTERM
            for (CompletableFuture<HttpResponse<String>> f : accepted) {
                HttpResponse<String> r = f.get(60, TimeUnit.SECONDS);
                assertEquals(200, r.statusCode(), r.body());
                JsonNode data = new ObjectMapper().readTree(r.body()).get("data");
                assertEquals(64, data.get(0).get("embedding").size());
            }
            assertTrue(server.waitFor(60, TimeUnit.SECONDS), "still running after SIGTERM");
            assertEquals(0, server.exitValue(), "exit status after a drained SIGTERM");
        } finally {
            server.destroyForcibly();
        }
    }
}
