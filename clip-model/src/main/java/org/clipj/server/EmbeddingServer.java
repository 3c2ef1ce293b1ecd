package org.clipj.server;

import com.fasterxml.jackson.core.JsonFactory;
import com.fasterxml.jackson.core.JsonGenerator;
import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.sun.net.httpserver.HttpExchange;
import com.sun.net.httpserver.HttpServer;
import org.clipj.Clip;
import org.clipj.runtime.InvalidInputException;
import org.clipj.service.ClipService;
import org.clipj.service.DeadlineExceededException;
import org.clipj.service.Histogram;
import org.clipj.PromptEnsemble;
import org.clipj.service.QueueFullException;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.InetSocketAddress;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Base64;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import java.util.concurrent.CancellationException;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.Executors;
import java.util.concurrent.RejectedExecutionException;
import java.util.concurrent.Semaphore;
import java.util.concurrent.atomic.LongAdder;
import java.util.function.IntFunction;

/**
 * The HTTP front of {@link ClipService} ({@code clip serve}), on the JDK's HttpServer with one virtual
 * thread per exchange (a handler blocks on its futures while the dispatchers batch across requests):
 * <ul>
 * <li>{@code POST /v1/embeddings}: OpenAI's embeddings request and response, with images as the Jina
 *     embeddings API takes them: {@code {"input": ["text", {"text": ".."}, {"image": "<base64>"}]}};
 *     {@code encoding_format} float (default) or base64 (little-endian float32).</li>
 * <li>{@code POST /v1/zero-shot}: {@code {"images": ["<base64>"], "labels": [..], "templates": [..]}} ->
 *     per image {@code probs} (label -> p) and {@code top}, as {@code clip zero-shot} prints them.</li>
 * <li>{@code GET /health}: 200 once the model is loaded and warm, 503 before and while draining.</li>
 * <li>{@code GET /metrics}: Prometheus text format.</li>
 * </ul>
 * Images come only as bytes in the request: no file path or URL is ever read. Errors: 400 for malformed
 * JSON or an undecodable input (naming its index), 413 for a body over the limit or more inputs than
 * the queue holds, 503 with Retry-After when the queue is full or the server is loading or draining,
 * 504 when an input's deadline passed in the queue. Memory stays bounded: at most 2 x maxQueue POST
 * requests are in progress at a time (more get 503), each body at most maxBodyBytes. {@link #close()} drains: it refuses new requests,
 * answers every accepted one, then stops. The server owns the service; the Clip stays the caller's.
 */
public final class EmbeddingServer implements AutoCloseable {
    /**
     * @param host           the address to bind (127.0.0.1 keeps it on this machine)
     * @param port           0: any free port (see {@link #address()})
     * @param maxBodyBytes   larger request bodies get 413
     * @param requestTimeout an input still queued this long after its request arrived gets 504, uncomputed
     */
    public record Options(String host, int port, long maxBodyBytes, Duration requestTimeout) {
        public Options {
            if (port < 0 || port > 65535) {
                throw new InvalidInputException("port must be in 0..65535, got " + port);
            }
            if (maxBodyBytes < 1 || maxBodyBytes > Integer.MAX_VALUE - 16) {
                throw new InvalidInputException("max body size must be between 1 byte and 2 GiB, got " + maxBodyBytes);
            }
            if (requestTimeout == null || requestTimeout.isNegative() || requestTimeout.isZero()) {
                throw new InvalidInputException("request timeout must be positive, got " + requestTimeout);
            }
        }
    }

    /** What the server serves: the model, the batching service in front of it, and the name responses carry. */
    public record Model(Clip clip, ClipService service, String name) {
    }

    private static final String[] ENDPOINTS = {"/v1/embeddings", "/v1/zero-shot", "/health", "/metrics"};
    private static final int STOP_GRACE_SECONDS = 30;
    private static final long DISCARD_LIMIT = 64L << 20;   // bytes of an over-limit body read and dropped before the 413
    private static final ObjectMapper JSON = new ObjectMapper();
    private static final JsonFactory JSON_FACTORY = JSON.getFactory();

    private final Options options;
    private final HttpServer http;
    private final ExecutorService handlers = Executors.newVirtualThreadPerTaskExecutor();
    // the requests being handled: the endpoint each counts under, when it arrived, whether it was counted
    // (not exchange attributes: the JDK's HttpServer keeps those per context, shared by every exchange)
    private record InFlight(String endpoint, long startNanos, AtomicBoolean counted) {
    }

    private final Map<HttpExchange, InFlight> inFlight = new ConcurrentHashMap<>();
    private final Map<String, Map<Integer, LongAdder>> requestCounts = new ConcurrentHashMap<>();
    private final Map<String, Histogram> requestSeconds = new ConcurrentHashMap<>();
    private volatile Model model;          // null until ready
    private volatile Semaphore bodies;     // POST requests in progress: 2 x maxQueue (as many queued as read or answered)
    private volatile boolean draining;

    private EmbeddingServer(Options options) throws IOException {
        this.options = options;
        this.http = HttpServer.create(new InetSocketAddress(options.host(), options.port()), 0);
        for (String endpoint : ENDPOINTS) requestSeconds.put(endpoint, Histogram.seconds());
        requestSeconds.put("other", Histogram.seconds());
        http.setExecutor(handlers);
        http.createContext("/", this::handle);
        http.start();
    }

    /** Binds and starts answering: /health says 503 and requests are refused until {@link #ready}. */
    public static EmbeddingServer start(Options options) throws IOException {
        return new EmbeddingServer(options);
    }

    /** The bound address (the actual port when the options asked for 0). */
    public InetSocketAddress address() {
        return http.getAddress();
    }

    /** Starts serving the model (loaded and warmed up by the caller); /health turns 200. */
    public void ready(Model model) {
        this.bodies = new Semaphore(2 * model.service().options().maxQueue());
        this.model = model;
    }

    /** Drains: new requests get 503, every accepted input is answered, then the listener stops. */
    @Override
    public void close() {
        if (draining) {
            return;
        }
        draining = true;
        Model m = model;
        if (m != null) {
            m.service().close();
        }
        http.stop(STOP_GRACE_SECONDS);   // returns once the handlers still writing responses are done
        handlers.close();
    }

    private void handle(HttpExchange exchange) {
        String path = exchange.getRequestURI().getPath();
        inFlight.put(exchange, new InFlight(List.of(ENDPOINTS).contains(path) ? path : "other", System.nanoTime(), new AtomicBoolean()));
        try (exchange) {
            try {
                switch (path) {
                    case "/v1/embeddings" -> withBodySlot(exchange, this::embeddings);
                    case "/v1/zero-shot" -> withBodySlot(exchange, this::zeroShot);
                    case "/health" -> health(exchange);
                    case "/metrics" -> metrics(exchange);
                    default -> throw new HttpError(404, "not_found", "no endpoint " + path + " (POST /v1/embeddings, "
                            + "POST /v1/zero-shot, GET /health, GET /metrics)", null, null, null);
                }
            } catch (HttpError e) {
                sendError(exchange, e);
            } catch (RuntimeException e) {
                sendError(exchange, new HttpError(500, "internal_error", "internal: " + describe(e), null, null, null));
            }
        } catch (IOException e) {
            count(exchange, 499);   // the client went away before a response was begun
        } finally {
            inFlight.remove(exchange);
        }
    }

    /**
     * Counts a request once, by endpoint and status, with its time so far: before its response is written,
     * so a client that has its answer finds it in /metrics.
     */
    private void count(HttpExchange exchange, int status) {
        InFlight request = inFlight.get(exchange);
        if (request == null || !request.counted().compareAndSet(false, true)) {
            return;
        }
        requestCounts.computeIfAbsent(request.endpoint(), k -> new ConcurrentHashMap<>())
                .computeIfAbsent(status, k -> new LongAdder()).increment();
        requestSeconds.get(request.endpoint()).observe((System.nanoTime() - request.startNanos()) / 1e9);
    }

    /** A POST handler that reads a body and holds its results in memory. */
    @FunctionalInterface
    private interface BodyHandler {
        int handle(HttpExchange exchange) throws IOException;
    }

    /**
     * Runs a POST handler while holding one of 2 x maxQueue slots, so the request bodies held in memory
     * are bounded with the queue (as many being read or answered as can wait in it): 503 without one.
     */
    private int withBodySlot(HttpExchange exchange, BodyHandler handler) throws IOException {
        requireMethod(exchange, "POST");
        requireReady();
        Semaphore slots = bodies;
        if (!slots.tryAcquire()) {
            throw HttpError.unavailable("too many requests in progress (" + 2 * model.service().options().maxQueue()
                    + ", twice --max-queue); retry later");
        }
        try {
            return handler.handle(exchange);
        } finally {
            slots.release();
        }
    }

    // ---------------------------------------------------------------- endpoints

    private int embeddings(HttpExchange exchange) throws IOException {
        Model m = requireReady();
        JsonNode body = readJson(exchange);
        String format = body.hasNonNull("encoding_format") ? body.get("encoding_format").asText() : "float";
        if (!format.equals("float") && !format.equals("base64")) {
            throw HttpError.badRequest("encoding_format must be \"float\" or \"base64\", got \"" + format + "\"");
        }
        JsonNode dimensions = body.get("dimensions");
        if (dimensions != null && !dimensions.isNull() && dimensions.asInt() != m.clip().embeddingSize()) {
            throw HttpError.badRequest("dimensions " + dimensions + " is not supported: the model's embeddings have "
                    + m.clip().embeddingSize() + " (leave it out)");
        }
        List<ClipService.Input> inputs = parseInputs(body.get("input"));
        float[][] embeddings = await(submit(m, inputs), i -> "input[" + i + "]");
        int tokens = 0;
        int context = m.clip().model().config().contextLength();
        for (ClipService.Input in : inputs) {
            if (in instanceof ClipService.Text t) {
                tokens += Math.min(context, m.clip().tokenizer().encode(t.text()).length + 2);
            }
        }
        ByteArrayOutputStream buffer = new ByteArrayOutputStream(1024 + embeddings.length * embeddings[0].length * 12);
        try (JsonGenerator g = JSON_FACTORY.createGenerator(buffer)) {
            g.writeStartObject();
            g.writeStringField("object", "list");
            g.writeStringField("model", m.name());
            g.writeArrayFieldStart("data");
            for (int i = 0; i < embeddings.length; i++) {
                g.writeStartObject();
                g.writeStringField("object", "embedding");
                g.writeNumberField("index", i);
                g.writeFieldName("embedding");
                if (format.equals("base64")) {
                    ByteBuffer bytes = ByteBuffer.allocate(4 * embeddings[i].length).order(ByteOrder.LITTLE_ENDIAN);
                    for (float v : embeddings[i]) bytes.putFloat(v);
                    g.writeString(Base64.getEncoder().encodeToString(bytes.array()));
                } else {
                    g.writeStartArray();
                    for (float v : embeddings[i]) g.writeNumber(v);
                    g.writeEndArray();
                }
                g.writeEndObject();
            }
            g.writeEndArray();
            g.writeObjectFieldStart("usage");
            g.writeNumberField("prompt_tokens", tokens);
            g.writeNumberField("total_tokens", tokens);
            g.writeEndObject();
            g.writeEndObject();
        }
        return send(exchange, 200, "application/json", buffer.toByteArray());
    }

    private int zeroShot(HttpExchange exchange) throws IOException {
        Model m = requireReady();
        JsonNode body = readJson(exchange);
        List<String> images = strings(body, "images", true);
        List<String> labels = strings(body, "labels", true);
        List<String> templates = body.has("templates") ? strings(body, "templates", true) : List.of("a photo of a {}.");
        Set<String> seen = new HashSet<>();
        for (String label : labels) {
            if (label.isBlank() || !seen.add(label)) {
                throw HttpError.badRequest("labels must be distinct and not blank; got \"" + label + "\" "
                        + (label.isBlank() ? "blank" : "twice"));
            }
        }
        List<String> prompts;
        try {
            prompts = PromptEnsemble.prompts(labels, templates);
        } catch (InvalidInputException e) {
            throw HttpError.badRequest(e.getMessage());
        }
        List<ClipService.Input> inputs = new ArrayList<>(images.size() + prompts.size());
        for (int i = 0; i < images.size(); i++) {
            inputs.add(new ClipService.EncodedImage(base64(images.get(i), "images[" + i + "]", i), "images[" + i + "]"));
        }
        for (String p : prompts) inputs.add(new ClipService.Text(p));
        float[][] out = await(submit(m, inputs), i -> i < images.size() ? "images[" + i + "]" : "prompt " + (i - images.size()));
        float[][] imageEmbeddings = Arrays.copyOfRange(out, 0, images.size());
        float[][] promptEmbeddings = Arrays.copyOfRange(out, images.size(), out.length);
        List<Clip.ZeroShotResult> results = m.clip().classify(imageEmbeddings,
                PromptEnsemble.weights(promptEmbeddings, labels.size(), templates.size()));
        List<Map<String, Object>> rows = new ArrayList<>();
        for (int i = 0; i < results.size(); i++) {
            Clip.ZeroShotResult r = results.get(i);
            Map<String, Object> probs = new LinkedHashMap<>();
            for (int c = 0; c < labels.size(); c++) probs.put(labels.get(c), r.probabilities()[c]);
            Map<String, Object> row = new LinkedHashMap<>();
            row.put("index", i);
            row.put("probs", probs);
            row.put("top", labels.get(r.top()));
            rows.add(row);
        }
        Map<String, Object> result = new LinkedHashMap<>();
        result.put("model", m.name());
        result.put("results", rows);
        return send(exchange, 200, "application/json", JSON.writeValueAsBytes(result));
    }

    private int health(HttpExchange exchange) throws IOException {
        requireMethod(exchange, "GET");
        Model m = model;
        String state = draining ? "draining" : m == null ? "loading" : "ok";
        Map<String, Object> body = new LinkedHashMap<>();
        body.put("status", state);
        if (m != null) {
            body.put("model", m.name());
        }
        int status = state.equals("ok") ? 200 : 503;
        if (status == 503) {
            exchange.getResponseHeaders().set("Retry-After", "1");
        }
        return send(exchange, status, "application/json", JSON.writeValueAsBytes(body));
    }

    private int metrics(HttpExchange exchange) throws IOException {
        requireMethod(exchange, "GET");
        PrometheusText text = new PrometheusText();
        Map<String, Map<Integer, Long>> counts = new TreeMap<>();
        requestCounts.forEach((endpoint, byStatus) -> {
            Map<Integer, Long> snapshot = new TreeMap<>();
            byStatus.forEach((status, n) -> snapshot.put(status, n.sum()));
            counts.put(endpoint, snapshot);
        });
        text.requests(counts);
        text.header("clip_http_request_duration_seconds", "histogram", "HTTP request time by endpoint, reading to writing.");
        new TreeMap<>(requestSeconds).forEach((endpoint, h) ->
                text.histogram("clip_http_request_duration_seconds", "endpoint=\"" + endpoint + "\"", h));
        text.header("clip_ready", "gauge", "1 once the model is loaded and warm, 0 while loading or draining.");
        text.sample("clip_ready", "", model != null && !draining ? 1 : 0);
        Model m = model;
        if (m != null) {
            text.service(m.service().metrics());
        }
        return send(exchange, 200, PrometheusText.CONTENT_TYPE, text.toString().getBytes(StandardCharsets.UTF_8));
    }

    // ---------------------------------------------------------------- request parsing

    private static void requireMethod(HttpExchange exchange, String method) {
        if (!exchange.getRequestMethod().equals(method)) {
            exchange.getResponseHeaders().set("Allow", method);
            throw new HttpError(405, "method_not_allowed", exchange.getRequestURI().getPath() + " takes " + method
                    + ", not " + exchange.getRequestMethod(), null, null, null);
        }
    }

    private Model requireReady() {
        if (draining) {
            throw HttpError.unavailable("the server is shutting down");
        }
        Model m = model;
        if (m == null) {
            throw HttpError.unavailable("the model is still loading");
        }
        return m;
    }

    private JsonNode readJson(HttpExchange exchange) throws IOException {
        long limit = options.maxBodyBytes();
        String length = exchange.getRequestHeaders().getFirst("Content-Length");
        byte[] body;
        try (InputStream in = exchange.getRequestBody()) {
            if (length != null) {
                long declared;
                try {
                    declared = Long.parseLong(length.strip());
                } catch (NumberFormatException e) {
                    throw HttpError.badRequest("Content-Length '" + length + "' is not a number");
                }
                if (declared > limit) {
                    throw tooLarge(exchange, in, length.strip());
                }
            }
            body = in.readNBytes((int) limit + 1);
            if (body.length > limit) {
                throw tooLarge(exchange, in, "more than " + limit);
            }
        }
        try {
            JsonNode node = JSON.readTree(body);
            if (node == null || !node.isObject()) {
                throw HttpError.badRequest("the request body must be a JSON object");
            }
            return node;
        } catch (JsonProcessingException e) {
            throw HttpError.badRequest("malformed JSON: " + e.getOriginalMessage());
        }
    }

    /**
     * 413 for a body over the limit. The body is read and dropped first (up to {@link #DISCARD_LIMIT}):
     * a server that answers and closes while the client still sends makes TCP reset the connection,
     * and the client never sees the 413. Beyond that the connection is closed after the answer.
     */
    private HttpError tooLarge(HttpExchange exchange, InputStream in, String size) throws IOException {
        byte[] sink = new byte[1 << 16];
        long dropped = 0;
        int n = 0;
        while (dropped < DISCARD_LIMIT && (n = in.read(sink)) >= 0) {
            dropped += n;
        }
        if (n >= 0) {
            exchange.getResponseHeaders().set("Connection", "close");
        }
        return new HttpError(413, "request_too_large", "request body of " + size + " bytes exceeds the limit of "
                + options.maxBodyBytes() + " bytes (--max-body-mb)", null, null, null);
    }

    /** "input": a string, or an array of strings, {"text": ..} and {"image": "<base64>"}. */
    private static List<ClipService.Input> parseInputs(JsonNode input) {
        if (input == null || input.isNull()) {
            throw HttpError.badRequest("missing \"input\": a string or an array of strings, {\"text\": ..} or {\"image\": \"<base64>\"}");
        }
        if (input.isTextual()) {
            return List.of(new ClipService.Text(input.asText()));
        }
        if (!input.isArray()) {
            throw HttpError.badRequest("\"input\" must be a string or an array, got " + input.getNodeType().name().toLowerCase(Locale.ROOT));
        }
        if (input.isEmpty()) {
            throw HttpError.badRequest("\"input\" is empty");
        }
        List<ClipService.Input> inputs = new ArrayList<>(input.size());
        for (int i = 0; i < input.size(); i++) {
            JsonNode item = input.get(i);
            String param = "input[" + i + "]";
            if (item.isTextual()) {
                inputs.add(new ClipService.Text(item.asText()));
            } else if (item.isObject() && item.size() == 1 && item.has("text") && item.get("text").isTextual()) {
                inputs.add(new ClipService.Text(item.get("text").asText()));
            } else if (item.isObject() && item.size() == 1 && item.has("image") && item.get("image").isTextual()) {
                inputs.add(new ClipService.EncodedImage(base64(item.get("image").asText(), param, i), param));
            } else {
                throw HttpError.badInput(param, i, param + " must be a string, {\"text\": \"..\"} or {\"image\": \"<base64>\"}"
                        + (item.isNumber() || item.isArray() ? " (token id arrays are not supported)" : ""));
            }
        }
        return inputs;
    }

    /** Image bytes from base64, optionally as a data: URL; anything else (a path, an http URL) is an error. */
    private static byte[] base64(String value, String param, int index) {
        String data = value;
        if (data.startsWith("data:")) {
            int comma = data.indexOf(',');
            if (comma < 0 || !data.substring(0, comma).endsWith(";base64")) {
                throw HttpError.badInput(param, index, param + ": a data: URL must be base64 (data:image/png;base64,...)");
            }
            data = data.substring(comma + 1);
        }
        try {
            return Base64.getDecoder().decode(data.strip());
        } catch (IllegalArgumentException e) {
            throw HttpError.badInput(param, index, param + ": image is not base64 (" + e.getMessage()
                    + "); send the image bytes, base64-encoded: file paths and URLs are never read");
        }
    }

    private static List<String> strings(JsonNode body, String field, boolean nonEmpty) {
        JsonNode node = body.get(field);
        if (node == null || !node.isArray()) {
            throw HttpError.badRequest("\"" + field + "\" must be an array of strings");
        }
        List<String> out = new ArrayList<>(node.size());
        for (int i = 0; i < node.size(); i++) {
            if (!node.get(i).isTextual()) {
                throw HttpError.badInput(field + "[" + i + "]", i, field + "[" + i + "] must be a string");
            }
            out.add(node.get(i).asText());
        }
        if (nonEmpty && out.isEmpty()) {
            throw HttpError.badRequest("\"" + field + "\" is empty");
        }
        return out;
    }

    // ---------------------------------------------------------------- service calls

    private List<CompletableFuture<float[]>> submit(Model m, List<ClipService.Input> inputs) {
        try {
            return m.service().submit(inputs, options.requestTimeout());
        } catch (QueueFullException e) {
            throw HttpError.unavailable(e.getMessage());
        } catch (RejectedExecutionException e) {
            throw HttpError.unavailable("the server is shutting down");
        } catch (InvalidInputException e) {
            throw new HttpError(413, "request_too_large", e.getMessage() + " (--max-queue)", null, null, null);
        }
    }

    /** The results in order; the first failure cancels the rest and becomes the response. */
    private static float[][] await(List<CompletableFuture<float[]>> futures, IntFunction<String> param) {
        float[][] out = new float[futures.size()][];
        for (int i = 0; i < futures.size(); i++) {
            try {
                out[i] = futures.get(i).get();
            } catch (ExecutionException | InterruptedException | CancellationException e) {
                futures.forEach(f -> f.cancel(false));
                if (e instanceof InterruptedException) {
                    Thread.currentThread().interrupt();
                }
                Throwable cause = e instanceof ExecutionException ? e.getCause() : e;
                String name = param.apply(i);
                throw switch (cause) {
                    case InvalidInputException bad -> HttpError.badInput(name, i,
                            bad.getMessage() != null && bad.getMessage().contains(name) ? bad.getMessage() : name + ": " + bad.getMessage());
                    case DeadlineExceededException late -> new HttpError(504, "timeout", name + ": " + late.getMessage()
                            + " (--request-timeout-ms)", name, i, null);
                    case RejectedExecutionException closed -> HttpError.unavailable("the server is shutting down");
                    default -> new HttpError(500, "internal_error", name + ": internal: " + describe(cause), name, i, null);
                };
            }
        }
        return out;
    }

    // ---------------------------------------------------------------- responses

    private int send(HttpExchange exchange, int status, String contentType, byte[] body) throws IOException {
        count(exchange, status);
        exchange.getResponseHeaders().set("Content-Type", contentType);
        exchange.sendResponseHeaders(status, body.length == 0 ? -1 : body.length);
        try (OutputStream out = exchange.getResponseBody()) {
            out.write(body);
        }
        return status;
    }

    private int sendError(HttpExchange exchange, HttpError e) {
        Map<String, Object> error = new LinkedHashMap<>();
        error.put("message", e.getMessage());
        error.put("type", e.type);
        if (e.param != null) {
            error.put("param", e.param);
        }
        if (e.index != null) {
            error.put("index", e.index);
        }
        if (e.retryAfterSeconds != null) {
            exchange.getResponseHeaders().set("Retry-After", Integer.toString(e.retryAfterSeconds));
        }
        try {
            return send(exchange, e.status, "application/json", JSON.writeValueAsBytes(Map.of("error", error)));
        } catch (IOException io) {
            return 499;
        }
    }

    private static String describe(Throwable t) {
        return t.getClass().getSimpleName() + (t.getMessage() == null ? "" : ": " + t.getMessage());
    }
}
