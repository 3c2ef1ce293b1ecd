package org.clipj.server;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import org.clipj.Clip;
import org.clipj.TestAssets;
import org.clipj.service.ClipService;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

import java.io.IOException;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.file.Files;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Base64;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The HTTP server end to end on a free loopback port, with the golden tiny ViT. */
class EmbeddingServerTest {
    private static final ObjectMapper JSON = new ObjectMapper();
    private static final HttpClient HTTP = HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(10)).build();
    private static final List<String> TEXTS = List.of("a diagram", "a photo of a dog.", "a cat on a chair", "two birds");
    private static final List<String> IMAGES = List.of("CLIP.png", "photo.jpg", "wide.png");
    private static Clip clip;
    private static float[][] textRef;
    private static float[][] imageRef;
    private static String[] imageBase64;

    @BeforeAll
    static void load() throws IOException {
        clip = Clip.load(TestAssets.golden("tiny-vit", "model.safetensors"),
                Clip.Options.defaults().withVocab(TestAssets.vocab()).withDevice("cpu"));
        textRef = new float[TEXTS.size()][];
        for (int i = 0; i < TEXTS.size(); i++) textRef[i] = clip.encodeTexts(List.of(TEXTS.get(i)))[0];
        imageRef = new float[IMAGES.size()][];
        imageBase64 = new String[IMAGES.size()];
        for (int i = 0; i < IMAGES.size(); i++) {
            imageRef[i] = clip.encodeImages(List.of(TestAssets.golden("text-image", "images", IMAGES.get(i))))[0];
            imageBase64[i] = Base64.getEncoder().encodeToString(Files.readAllBytes(TestAssets.golden("text-image", "images", IMAGES.get(i))));
        }
    }

    @AfterAll
    static void close() {
        clip.close();
    }

    private static EmbeddingServer start(ClipService.Options service, long maxBodyBytes) throws IOException {
        EmbeddingServer server = EmbeddingServer.start(new EmbeddingServer.Options("127.0.0.1", 0, maxBodyBytes, Duration.ofSeconds(30)));
        server.ready(new EmbeddingServer.Model(clip, new ClipService(clip, service), "tiny-vit"));
        return server;
    }

    private static HttpRequest post(EmbeddingServer server, String path, String body) {
        return HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + server.address().getPort() + path))
                .POST(HttpRequest.BodyPublishers.ofString(body)).header("Content-Type", "application/json").build();
    }

    private static HttpResponse<String> send(HttpRequest request) throws IOException, InterruptedException {
        return HTTP.send(request, HttpResponse.BodyHandlers.ofString());
    }

    private static HttpResponse<String> get(EmbeddingServer server, String path) throws IOException, InterruptedException {
        return send(HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + server.address().getPort() + path)).GET().build());
    }

    private static double cosine(JsonNode embedding, float[] ref) {
        assertEquals(ref.length, embedding.size());
        double dot = 0, a = 0, b = 0;
        for (int d = 0; d < ref.length; d++) {
            double v = embedding.get(d).asDouble();
            dot += v * ref[d];
            a += v * v;
            b += (double) ref[d] * ref[d];
        }
        return dot / Math.sqrt(a * b);
    }

    /** A sample of the Prometheus text, e.g. metric("clip_batch_size_count{kind=\"text\"}"). */
    private static double metric(String metrics, String series) {
        Matcher m = Pattern.compile("(?m)^" + Pattern.quote(series) + " (\\S+)$").matcher(metrics);
        assertTrue(m.find(), series + " missing from /metrics:\n" + metrics);
        return Double.parseDouble(m.group(1));
    }

    @Test
    void concurrentRequestsGetTheDirectEmbeddingsInBatches() throws Exception {
        EmbeddingServer server = start(new ClipService.Options(8, Duration.ofMillis(50), 64, 2), 1 << 20);
        ExecutorService clients = Executors.newFixedThreadPool(6);
        try {
            CountDownLatch go = new CountDownLatch(1);
            List<Future<?>> done = new ArrayList<>();
            for (int c = 0; c < 6; c++) {
                int client = c;
                done.add(clients.submit(() -> {
                    go.await();
                    for (int round = 0; round < 2; round++) {
                        int t = (client + round) % TEXTS.size();
                        int i = (client + round) % IMAGES.size();
                        String body = client % 3 == 0
                                ? JSON.writeValueAsString(java.util.Map.of("input", TEXTS.get(t)))
                                : "{\"input\": [" + JSON.writeValueAsString(TEXTS.get(t)) + ", {\"image\": \"" + imageBase64[i]
                                + "\"}, {\"text\": " + JSON.writeValueAsString(TEXTS.get(t)) + "}]}";
                        HttpResponse<String> r = send(post(server, "/v1/embeddings", body));
                        assertEquals(200, r.statusCode(), r.body());
                        JsonNode json = JSON.readTree(r.body());
                        assertEquals("list", json.get("object").asText());
                        assertEquals("tiny-vit", json.get("model").asText());
                        JsonNode data = json.get("data");
                        assertEquals(client % 3 == 0 ? 1 : 3, data.size());
                        for (int k = 0; k < data.size(); k++) {
                            assertEquals(k, data.get(k).get("index").asInt());
                            float[] ref = k == 1 ? imageRef[i] : textRef[t];
                            double cos = cosine(data.get(k).get("embedding"), ref);
                            assertTrue(cos >= 0.99999, "input " + k + " of client " + client + ": cosine " + cos);
                        }
                        assertTrue(json.get("usage").get("prompt_tokens").asInt() > 0);
                    }
                    return null;
                }));
            }
            go.countDown();
            for (Future<?> f : done) f.get(120, TimeUnit.SECONDS);
            String metrics = get(server, "/metrics").body();
            double batches = metric(metrics, "clip_batch_size_count{kind=\"text\"}");
            double singles = metric(metrics, "clip_batch_size_bucket{kind=\"text\",le=\"1\"}");
            assertEquals(4 * 2 * 2 + 2 * 2, metric(metrics, "clip_batch_size_sum{kind=\"text\"}"), "texts computed");
            assertTrue(batches - singles > 0, "no text batch larger than one formed:\n" + metrics);
            assertEquals(12, metric(metrics, "clip_http_requests_total{endpoint=\"/v1/embeddings\",status=\"200\"}"));
            assertEquals(0, metric(metrics, "clip_queue_depth"));
        } finally {
            clients.shutdownNow();
            server.close();
        }
    }

    @Test
    void zeroShotGivesAProbabilityPerLabelAsTheCliDoes() throws Exception {
        EmbeddingServer server = start(new ClipService.Options(8, Duration.ofMillis(5), 64, 1), 1 << 20);
        try {
            HttpResponse<String> r = send(post(server, "/v1/zero-shot", "{\"images\": [\"" + imageBase64[0] + "\", \"" + imageBase64[1]
                    + "\"], \"labels\": [\"diagram\", \"dog\", \"cat\"], \"templates\": [\"a photo of a {}.\", \"a drawing of a {}.\"]}"));
            assertEquals(200, r.statusCode(), r.body());
            JsonNode results = JSON.readTree(r.body()).get("results");
            List<Clip.ZeroShotResult> expected = clip.classify(imageRef,
                    clip.classifier(List.of("diagram", "dog", "cat"), List.of("a photo of a {}.", "a drawing of a {}.")));
            for (int i = 0; i < 2; i++) {
                JsonNode probs = results.get(i).get("probs");
                String[] labels = {"diagram", "dog", "cat"};
                for (int c = 0; c < 3; c++) {
                    assertEquals(expected.get(i).probabilities()[c], probs.get(labels[c]).asDouble(), 1e-5, labels[c]);
                }
                assertEquals(labels[expected.get(i).top()], results.get(i).get("top").asText());
            }
            HttpResponse<String> noBraces = send(post(server, "/v1/zero-shot", "{\"images\": [\"" + imageBase64[0]
                    + "\"], \"labels\": [\"dog\"], \"templates\": [\"a dog\"]}"));
            assertEquals(400, noBraces.statusCode(), noBraces.body());
            assertTrue(noBraces.body().contains("has no {}"), noBraces.body());
        } finally {
            server.close();
        }
    }

    @Test
    void badInputGets400NamingTheInputAndTooLargeGets413() throws Exception {
        EmbeddingServer server = start(new ClipService.Options(8, Duration.ofMillis(5), 64, 1), 512 << 10);
        try {
            HttpResponse<String> malformed = send(post(server, "/v1/embeddings", "{\"input\": [\"a dog\","));
            assertEquals(400, malformed.statusCode());
            assertTrue(JSON.readTree(malformed.body()).get("error").get("message").asText().startsWith("malformed JSON"), malformed.body());

            String notAnImage = Base64.getEncoder().encodeToString("certainly not a PNG".getBytes());
            HttpResponse<String> undecodable = send(post(server, "/v1/embeddings", "{\"input\": [\"a dog\", {\"image\": \""
                    + imageBase64[0] + "\"}, {\"image\": \"" + notAnImage + "\"}]}"));
            assertEquals(400, undecodable.statusCode());
            JsonNode error = JSON.readTree(undecodable.body()).get("error");
            assertEquals(2, error.get("index").asInt(), undecodable.body());
            assertTrue(error.get("message").asText().contains("input[2]"), undecodable.body());

            HttpResponse<String> path = send(post(server, "/v1/embeddings", "{\"input\": [{\"image\": \"file:///etc/passwd\"}]}"));
            assertEquals(400, path.statusCode());
            assertEquals(0, JSON.readTree(path.body()).get("error").get("index").asInt());

            HttpResponse<String> tooLarge = send(post(server, "/v1/embeddings", "{\"input\": \"" + "a".repeat(600 << 10) + "\"}"));
            assertEquals(413, tooLarge.statusCode(), tooLarge.body());

            HttpResponse<String> fine = send(post(server, "/v1/embeddings", "{\"input\": \"a dog\"}"));
            assertEquals(200, fine.statusCode(), "the server stopped serving after bad requests: " + fine.body());
        } finally {
            server.close();
        }
    }

    @Test
    void aFullQueueGets503WithRetryAfterAndClosingAnswersTheAccepted() throws Exception {
        EmbeddingServer server = EmbeddingServer.start(new EmbeddingServer.Options("127.0.0.1", 0, 1 << 20, Duration.ofSeconds(30)));
        try {
            assertEquals(503, get(server, "/health").statusCode(), "healthy before the model is ready");
            // batches of 8 after up to a minute, two waiting at most: the first two requests stay queued
            server.ready(new EmbeddingServer.Model(clip, new ClipService(clip, new ClipService.Options(8, Duration.ofMinutes(1), 2, 1)), "tiny-vit"));
            assertEquals(200, get(server, "/health").statusCode());
            List<CompletableFuture<HttpResponse<String>>> accepted = new ArrayList<>();
            for (int i = 0; i < 2; i++) {
                accepted.add(HTTP.sendAsync(post(server, "/v1/embeddings", "{\"input\": \"" + TEXTS.get(i) + "\"}"),
                        HttpResponse.BodyHandlers.ofString()));
            }
            long deadline = System.nanoTime() + 30_000_000_000L;
            while (metric(get(server, "/metrics").body(), "clip_queue_depth") < 2) {
                assertTrue(System.nanoTime() < deadline, "the two requests never queued");
                Thread.sleep(10);
            }
            HttpResponse<String> refused = send(post(server, "/v1/embeddings", "{\"input\": \"one too many\"}"));
            assertEquals(503, refused.statusCode(), refused.body());
            assertEquals("1", refused.headers().firstValue("Retry-After").orElse(null));
            assertTrue(refused.body().contains("queue full"), refused.body());
            assertTrue(accepted.stream().noneMatch(CompletableFuture::isDone));

            server.close();
            for (int i = 0; i < 2; i++) {
                HttpResponse<String> r = accepted.get(i).get(30, TimeUnit.SECONDS);
                assertEquals(200, r.statusCode(), r.body());
                assertTrue(cosine(JSON.readTree(r.body()).get("data").get(0).get("embedding"), textRef[i]) >= 0.99999);
            }
        } finally {
            server.close();
        }
    }
}
