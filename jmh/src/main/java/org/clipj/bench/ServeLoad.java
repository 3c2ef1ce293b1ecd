package org.clipj.bench;

import com.fasterxml.jackson.databind.ObjectMapper;
import org.clipj.Clip;
import org.clipj.image.ImageLoader;
import org.clipj.service.ClipService;

import javax.imageio.ImageIO;
import java.awt.image.BufferedImage;
import java.io.BufferedReader;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStreamReader;
import java.io.UncheckedIOException;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Base64;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * {@code scripts/bench serve}: closed-loop load (N clients, each sends its next request when the last
 * is answered) of single texts and single images, (1) over HTTP against {@code clip serve} started on
 * a free loopback port in a child JVM, with batching (--max-batch B) and without (--max-batch 1), and
 * (2) in this JVM, {@link ClipService} against the same client threads calling {@link Clip} directly.
 * Over HTTP each client keeps one blocking keep-alive connection ({@link KeepAliveConnection}, as wrk
 * does), so the load generator's own cost stays small beside the server's on the shared cores.
 * Each phase warms up, then measures for a bounded time or number of requests. Prints one JSON record
 * per comparison on stdout (bench/emit.py adds speedup etc.); progress on stderr.
 *
 * <p>Options: --model M --vocab V [--clients 16] [--seconds 10] [--warmup-seconds 3] [--max-requests 20000]
 * [--max-batch CLIENTS] [--max-wait-ms 5] [--device cpu|cuda]
 */
public final class ServeLoad {
    private static final ObjectMapper JSON = new ObjectMapper();
    private static final List<String> JVM_FLAGS = List.of("--add-modules", "jdk.incubator.vector",
            "--enable-native-access=ALL-UNNAMED", "-Djava.awt.headless=true");

    /** One closed-loop request: returns normally when it succeeded. */
    @FunctionalInterface
    interface Call {
        void run(int client, long sequence) throws Exception;
    }

    /** Throughput and latency of one measured phase. */
    record Result(double perSecond, double p50Ms, double p99Ms, long requests, long errors) {
    }

    private final Map<String, String> args;
    private final int clients;
    private final int maxBatch;
    private final int maxWaitMs;
    private final List<String> texts = new ArrayList<>();
    private final List<BufferedImage> images = new ArrayList<>();
    private final List<String> imagesBase64 = new ArrayList<>();

    private ServeLoad(Map<String, String> args) throws IOException {
        this.args = args;
        this.clients = Integer.parseInt(args.getOrDefault("clients", "16"));
        // a batch waits up to max-wait for max-batch inputs, and a closed loop never has more than `clients`
        // outstanding: a larger max-batch would make every batch wait the full max-wait
        this.maxBatch = Integer.parseInt(args.getOrDefault("max-batch", Integer.toString(clients)));
        this.maxWaitMs = Integer.parseInt(args.getOrDefault("max-wait-ms", "5"));
        String[] subjects = {"dog", "cat", "red car", "bowl of soup", "mountain lake", "city street at night", "diagram", "bird"};
        String[] forms = {"a photo of a %s.", "a blurry photo of the %s", "a drawing of a %s in the style of an old book",
                "%s", "an origami %s on a wooden table next to a window"};
        for (String s : subjects) {
            for (String f : forms) texts.add(String.format(f, s));
        }
        Random rng = new Random(7);
        for (int i = 0; i < 8; i++) {   // 320x240 JPEGs: smooth gradients plus noise, like small photos
            BufferedImage img = new BufferedImage(320, 240, BufferedImage.TYPE_INT_RGB);
            int phase = rng.nextInt(256);
            for (int y = 0; y < img.getHeight(); y++) {
                for (int x = 0; x < img.getWidth(); x++) {
                    int r = (x + phase + rng.nextInt(24)) & 0xff;
                    int g = (y * 2 + phase + rng.nextInt(24)) & 0xff;
                    int b = (x + y + rng.nextInt(24)) & 0xff;
                    img.setRGB(x, y, r << 16 | g << 8 | b);
                }
            }
            ByteArrayOutputStream jpeg = new ByteArrayOutputStream();
            ImageIO.write(img, "jpeg", jpeg);
            imagesBase64.add(Base64.getEncoder().encodeToString(jpeg.toByteArray()));
            images.add(ImageLoader.readOriginal(jpeg.toByteArray(), "synthetic-" + i + ".jpg"));
        }
    }

    public static void main(String[] argv) throws Exception {
        Map<String, String> args = new LinkedHashMap<>();
        for (int i = 0; i < argv.length; i++) {
            if (!argv[i].startsWith("--") || i + 1 >= argv.length) {
                throw new IllegalArgumentException("expected --name value pairs, got '" + argv[i] + "'");
            }
            args.put(argv[i].substring(2), argv[++i]);   // the last of a repeated option wins
        }
        for (String required : List.of("model", "vocab")) {
            if (!args.containsKey(required)) {
                throw new IllegalArgumentException("--" + required + " is required");
            }
        }
        new ServeLoad(args).run();
    }

    private void run() throws Exception {
        String model = Path.of(args.get("model")).getFileName().toString();
        Map<String, Result[]> http = new LinkedHashMap<>();
        Map<String, double[]> meanBatch = new LinkedHashMap<>();
        // both servers up at once, measured in turn twice; the second round counts, so neither side pays
        // for the other's (or this JVM's) first JIT compiles
        try (ChildServer batched = ChildServer.start(args, maxBatch, maxWaitMs, Math.max(256, 4 * clients));
             ChildServer single = ChildServer.start(args, 1, maxWaitMs, Math.max(256, 4 * clients))) {
            ChildServer[] servers = {batched, single};
            for (String kind : List.of("text", "image")) {
                for (int round = 0; round < 2; round++) {
                    for (int config = 0; config < 2; config++) {
                        ChildServer server = servers[config];
                        log("http %s, --max-batch %d, %d clients, round %d of 2", kind, config == 0 ? maxBatch : 1, clients, round + 1);
                        double[] before = server.batchSizeSumAndCount(kind);
                        Result r = measure(kind.equals("text") ? httpText(server) : httpImage(server));
                        double[] after = server.batchSizeSumAndCount(kind);
                        http.computeIfAbsent(kind, k -> new Result[2])[config] = r;
                        meanBatch.computeIfAbsent(kind, k -> new double[2])[config] = (after[0] - before[0]) / Math.max(1, after[1] - before[1]);
                    }
                }
            }
        }
        for (String kind : http.keySet()) {
            Result on = http.get(kind)[0];
            Result off = http.get(kind)[1];
            Map<String, Object> rec = record("http-" + kind + "-c" + clients, on, off, "clip serve --max-batch 1", model);
            rec.put("clipj_mean_batch", round(meanBatch.get(kind)[0]));
            rec.put("peer_mean_batch", round(meanBatch.get(kind)[1]));
            System.out.println(JSON.writeValueAsString(rec));
        }

        Clip.Options options = Clip.Options.defaults().withVocab(Path.of(args.get("vocab"))).withDevice(device(args)).withBatchSize(maxBatch);
        try (Clip clip = Clip.load(Path.of(args.get("model")), options)) {
            for (String kind : List.of("text", "image")) {
                Result service;
                try (ClipService s = new ClipService(clip, ClipService.Options.defaults().withMaxBatch(maxBatch)
                        .withMaxWait(Duration.ofMillis(maxWaitMs)).withMaxQueue(Math.max(256, 4 * clients)))) {
                    log("in-process %s, ClipService --max-batch %d, %d clients", kind, maxBatch, clients);
                    service = measure(kind.equals("text")
                            ? (c, i) -> s.embedText(texts.get(pick(c, i, texts.size()))).get()
                            : (c, i) -> s.embedImage(images.get(pick(c, i, images.size()))).get());
                }
                log("in-process %s, direct Clip calls, %d clients", kind, clients);
                Result direct = measure(kind.equals("text")
                        ? (c, i) -> clip.encodeTexts(List.of(texts.get(pick(c, i, texts.size()))))
                        : (c, i) -> clip.encodeImagesFrom(List.of(images.get(pick(c, i, images.size())))));
                String peer = kind.equals("text") ? "Clip.encodeTexts per caller" : "Clip.encodeImagesFrom per caller";
                System.out.println(JSON.writeValueAsString(record("inprocess-" + kind + "-c" + clients, service, direct, peer, model)));
            }
        }
    }

    /** The backend both sides run on: cpu unless --device says otherwise. */
    static String device(Map<String, String> args) {
        return args.getOrDefault("device", "cpu");
    }

    private Map<String, Object> record(String name, Result clipj, Result peer, String peerName, String model) {
        Map<String, Object> rec = new LinkedHashMap<>();
        rec.put("suite", "serve");
        rec.put("name", name);
        rec.put("unit", "req/s");
        rec.put("clipj", clipj.perSecond());
        rec.put("peer", peer.perSecond());
        rec.put("peer_name", peerName);
        rec.put("clipj_p50_ms", round(clipj.p50Ms()));
        rec.put("clipj_p99_ms", round(clipj.p99Ms()));
        rec.put("peer_p50_ms", round(peer.p50Ms()));
        rec.put("peer_p99_ms", round(peer.p99Ms()));
        rec.put("clipj_requests", clipj.requests());
        rec.put("peer_requests", peer.requests());
        rec.put("errors", clipj.errors() + peer.errors());
        rec.put("clients", clients);
        rec.put("max_batch", maxBatch);
        rec.put("max_wait_ms", maxWaitMs);
        rec.put("model", model);
        if (!device(args).equals("cpu")) {
            rec.put("device", device(args));   // replaces the script's "cpu N cores"
        }
        return rec;
    }

    private static double round(double v) {
        return Math.round(v * 1000) / 1000.0;
    }

    /** Which input client c sends as its i-th request: the clients walk the inputs out of step. */
    private static int pick(int client, long i, int n) {
        return (int) ((client * 7L + i) % n);
    }

    private Call httpText(ChildServer server) {
        return (c, i) -> server.embed(c, "{\"input\": " + JSON.writeValueAsString(texts.get(pick(c, i, texts.size()))) + "}");
    }

    private Call httpImage(ChildServer server) {
        return (c, i) -> server.embed(c, "{\"input\": [{\"image\": \"" + imagesBase64.get(pick(c, i, imagesBase64.size())) + "\"}]}");
    }

    /** Warm-up, then the measured closed loop; bounded by --seconds and --max-requests. */
    private Result measure(Call call) throws InterruptedException {
        double warmup = Double.parseDouble(args.getOrDefault("warmup-seconds", "3"));
        double seconds = Double.parseDouble(args.getOrDefault("seconds", "10"));
        long maxRequests = Long.parseLong(args.getOrDefault("max-requests", "20000"));
        loop(call, warmup, Long.MAX_VALUE, null);
        long[] latencies = new long[(int) Math.min(maxRequests + clients, Integer.MAX_VALUE - 8)];
        AtomicLong next = new AtomicLong();
        long start = System.nanoTime();
        long errors = loop(call, seconds, maxRequests, (slot, nanos) -> latencies[slot] = nanos, next);
        double elapsed = (System.nanoTime() - start) / 1e9;
        int n = (int) Math.min(next.get(), latencies.length);
        long[] done = Arrays.stream(Arrays.copyOf(latencies, n)).filter(v -> v > 0).sorted().toArray();
        if (done.length == 0) {
            throw new IllegalStateException("no request succeeded (" + errors + " errors)");
        }
        return new Result(done.length / elapsed, done[(int) (0.50 * (done.length - 1))] / 1e6,
                done[(int) Math.ceil(0.99 * (done.length - 1))] / 1e6, done.length, errors);
    }

    interface Recorder {
        void record(int slot, long nanos);
    }

    private long loop(Call call, double seconds, long maxRequests, Recorder recorder) throws InterruptedException {
        return loop(call, seconds, maxRequests, recorder, new AtomicLong());
    }

    /** N client threads, each calling until the time or the request budget is spent; returns the number of errors. */
    private long loop(Call call, double seconds, long maxRequests, Recorder recorder, AtomicLong next) throws InterruptedException {
        long stopAt = System.nanoTime() + (long) (seconds * 1e9);
        AtomicLong errors = new AtomicLong();
        List<Thread> threads = new ArrayList<>();
        for (int c = 0; c < clients; c++) {
            int client = c;
            threads.add(Thread.ofPlatform().name("load-" + c).start(() -> {
                for (long i = 0; System.nanoTime() < stopAt; i++) {
                    long slot = next.getAndIncrement();
                    if (slot >= maxRequests) {
                        return;
                    }
                    long t0 = System.nanoTime();
                    try {
                        call.run(client, i);
                        if (recorder != null) {
                            recorder.record((int) slot, Math.max(1, System.nanoTime() - t0));
                        }
                    } catch (Exception e) {
                        if (errors.incrementAndGet() <= 3) {
                            log("request failed: %s", e);
                        }
                    }
                }
            }));
        }
        for (Thread t : threads) t.join();
        return errors.get();
    }

    static void log(String format, Object... a) {
        System.err.println("bench serve: " + String.format(format, a));
    }

    /** {@code clip serve} in a child JVM on a free loopback port. */
    static final class ChildServer implements AutoCloseable {
        private final Process process;
        private final String base;
        private final HttpClient http = HttpClient.newBuilder().version(HttpClient.Version.HTTP_1_1).build();
        // the measured requests: one keep-alive connection per client (health and metrics go through http)
        private final Map<Integer, KeepAliveConnection> connections = new ConcurrentHashMap<>();
        private final int port;

        private ChildServer(Process process, int port) {
            this.process = process;
            this.base = "http://127.0.0.1:" + port;
            this.port = port;
        }

        static ChildServer start(Map<String, String> args, int maxBatch, int maxWaitMs, int maxQueue) throws Exception {
            List<String> command = new ArrayList<>();
            command.add(ProcessHandle.current().info().command().orElse("java"));
            command.addAll(JVM_FLAGS);
            command.addAll(List.of("-cp", System.getProperty("java.class.path"), "org.clipj.cli.Main", "serve",
                    "--model", args.get("model"), "--vocab", args.get("vocab"), "--device", device(args), "--port", "0",
                    "--max-batch", Integer.toString(maxBatch), "--max-wait-ms", Integer.toString(maxWaitMs),
                    "--max-queue", Integer.toString(maxQueue)));
            Process process = new ProcessBuilder(command).redirectErrorStream(true).start();
            BufferedReader out = new BufferedReader(new InputStreamReader(process.getInputStream(), StandardCharsets.UTF_8));
            Pattern listening = Pattern.compile("listening on http://127\\.0\\.0\\.1:(\\d+)");
            int port = -1;
            for (String line; port < 0 && (line = out.readLine()) != null; ) {
                System.err.println("  server: " + line);
                Matcher m = listening.matcher(line);
                if (m.find()) {
                    port = Integer.parseInt(m.group(1));
                }
            }
            if (port < 0) {
                process.destroyForcibly();
                throw new IllegalStateException("clip serve exited before listening (status " + process.waitFor() + ")");
            }
            Thread.ofPlatform().daemon().start(() -> {
                try {
                    out.lines().forEach(l -> System.err.println("  server: " + l));
                } catch (UncheckedIOException e) {
                    // the stream closes when the server exits
                }
            });
            ChildServer server = new ChildServer(process, port);
            long deadline = System.nanoTime() + TimeUnit.MINUTES.toNanos(5);
            while (server.get("/health").statusCode() != 200) {
                if (System.nanoTime() > deadline || !process.isAlive()) {
                    server.close();
                    throw new IllegalStateException("clip serve never became healthy");
                }
                Thread.sleep(50);
            }
            return server;
        }

        HttpResponse<String> get(String path) throws IOException, InterruptedException {
            return http.send(HttpRequest.newBuilder(URI.create(base + path)).build(), HttpResponse.BodyHandlers.ofString());
        }

        /** One request on client {@code client}'s own connection (a client sends one request at a time). */
        void embed(int client, String body) throws IOException {
            KeepAliveConnection.Response r = connections.computeIfAbsent(client, c -> new KeepAliveConnection("127.0.0.1", port)).exchange("POST", "/v1/embeddings", body.getBytes(StandardCharsets.UTF_8));
            if (r.status() != 200) {
                throw new IOException("HTTP " + r.status() + ": " + r.text());
            }
        }

        /** clip_batch_size_sum and _count of a kind, from /metrics. */
        double[] batchSizeSumAndCount(String kind) {
            try {
                String metrics = get("/metrics").body();
                double[] out = new double[2];
                String[] suffix = {"_sum", "_count"};
                for (int i = 0; i < 2; i++) {
                    Matcher m = Pattern.compile("(?m)^clip_batch_size" + suffix[i] + "\\{kind=\"" + kind + "\"} (\\S+)$").matcher(metrics);
                    out[i] = m.find() ? Double.parseDouble(m.group(1)) : Double.NaN;
                }
                return out;
            } catch (IOException e) {
                throw new UncheckedIOException(e);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw new IllegalStateException(e);
            }
        }

        /** SIGTERM: the server drains and must exit 0. */
        @Override
        public void close() throws InterruptedException {
            connections.values().forEach(KeepAliveConnection::close);
            process.destroy();
            if (!process.waitFor(60, TimeUnit.SECONDS)) {
                process.destroyForcibly();
                throw new IllegalStateException("clip serve did not stop within 60 s of SIGTERM");
            }
            if (process.exitValue() != 0) {
                throw new IllegalStateException("clip serve exited with status " + process.exitValue() + " after SIGTERM");
            }
        }
    }
}
