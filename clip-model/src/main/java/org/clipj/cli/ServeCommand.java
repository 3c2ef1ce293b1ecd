package org.clipj.cli;

import org.clipj.Clip;
import org.clipj.runtime.InvalidInputException;
import org.clipj.server.EmbeddingServer;
import org.clipj.service.ClipService;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

import java.io.IOException;
import java.io.PrintWriter;
import java.io.UncheckedIOException;
import java.net.InetSocketAddress;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Locale;
import java.util.concurrent.CountDownLatch;

/**
 * {@code clip serve}: an HTTP embedding server ({@link EmbeddingServer}) over a {@link ClipService}.
 * Runs until SIGTERM or SIGINT, then drains (answers every accepted request) and exits 0.
 */
@Command(name = "serve", mixinStandardHelpOptions = true,
        description = {"Serve embeddings and zero-shot over HTTP with dynamic batching across requests:",
                "POST /v1/embeddings (OpenAI-compatible; images as {\"image\": \"<base64>\"}), POST /v1/zero-shot,",
                "GET /health, GET /metrics (Prometheus). SIGTERM drains the queue and exits 0."})
public final class ServeCommand extends CliCommand {
    @Mixin
    ModelOptions modelOptions;

    @Option(names = "--host", defaultValue = "127.0.0.1", paramLabel = "H", description = "Address to bind (default: ${DEFAULT-VALUE}).")
    String host;

    @Option(names = "--port", defaultValue = "8080", paramLabel = "P", description = "Port (0: any free one; default: ${DEFAULT-VALUE}).")
    int port;

    @Option(names = "--max-batch", defaultValue = "32", paramLabel = "N", description = "Inputs per forward pass, at most (default: ${DEFAULT-VALUE}).")
    int maxBatch;

    @Option(names = "--max-wait-ms", defaultValue = "5", paramLabel = "T",
            description = "How long a batch waits for more inputs after its first arrived (default: ${DEFAULT-VALUE}).")
    long maxWaitMs;

    @Option(names = "--max-queue", defaultValue = "256", paramLabel = "Q",
            description = "Inputs that may wait; a request that does not fit gets 503 (default: ${DEFAULT-VALUE}).")
    int maxQueue;

    @Option(names = "--max-body-mb", defaultValue = "16", paramLabel = "MB", description = "Largest request body; larger gets 413 (default: ${DEFAULT-VALUE}).")
    int maxBodyMb;

    @Option(names = "--request-timeout-ms", defaultValue = "30000", paramLabel = "T",
            description = "An input still queued this long is not computed; its request gets 504 (default: ${DEFAULT-VALUE}).")
    long requestTimeoutMs;

    @Option(names = "--decode-threads", paramLabel = "N", description = "Threads that decode images (default: min(4, cores)).")
    Integer decodeThreads;

    @Option(names = "--batch-threads", paramLabel = "N",
            description = "Batches of texts (and of images) that may run at once (default: min(2, cores)).")
    Integer batchThreads;

    @Override
    public Integer call() throws InterruptedException {
        if (spec.commandLine().getParseResult().hasMatchedOption("--batch")) {
            throw new InvalidInputException("clip serve takes --max-batch, not --batch: each batch the service forms is one forward pass");
        }
        if (maxBodyMb < 1 || maxBodyMb > 1024) {
            throw new InvalidInputException("--max-body-mb must be between 1 and 1024, got " + maxBodyMb);
        }
        ClipService.Options defaults = ClipService.Options.defaults();
        ClipService.Options serviceOptions = new ClipService.Options(maxBatch, Duration.ofMillis(maxWaitMs), maxQueue,
                decodeThreads != null ? decodeThreads : defaults.decodeThreads(),
                batchThreads != null ? batchThreads : defaults.batchThreads());
        EmbeddingServer.Options serverOptions = new EmbeddingServer.Options(host, port, (long) maxBodyMb << 20,
                Duration.ofMillis(requestTimeoutMs));
        PrintWriter err = err();
        EmbeddingServer server;
        try {
            server = EmbeddingServer.start(serverOptions);
        } catch (IOException e) {
            throw new UncheckedIOException("cannot listen on " + host + ":" + port + ": " + e.getMessage(), e);
        }
        InetSocketAddress address = server.address();
        err.printf("clip serve: listening on http://%s:%d (loading %s)%n", address.getHostString(), address.getPort(), modelOptions.model);
        err.flush();
        Clip clip;
        modelOptions.batch = maxBatch;
        try {
            clip = modelOptions.open();
        } catch (RuntimeException e) {
            server.close();
            throw e;
        }
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            err.println("clip serve: draining: answering every accepted request, refusing new ones");
            err.flush();
            server.close();
            clip.close();
            err.println("clip serve: stopped");
            err.flush();
            Runtime.getRuntime().halt(0);   // a drained stop is a clean exit, whatever signal asked for it
        }, "clip-serve-drain"));
        warmUp(clip);
        String name = modelName(modelOptions.model, clip);
        server.ready(new EmbeddingServer.Model(clip, new ClipService(clip, serviceOptions), name));
        err.printf("clip serve: ready: %s on %s; max batch %d, max wait %d ms, queue %d%n", name, clip.backend().description(),
                maxBatch, maxWaitMs, maxQueue);
        err.flush();
        new CountDownLatch(1).await();   // serves until a signal runs the shutdown hook
        return 0;
    }

    /**
     * Clip.warmUp at batches of 1 and 2 (the JIT's code does not depend on the batch size; 2 reaches the
     * batched paths), so the first requests do not pay for class loading and compilation; texts only where
     * the model's texts can be tokenized.
     */
    private static void warmUp(Clip clip) {
        clip.warmUp(List.of(1, 2), clip.config().hasClipTokenizer() ? List.of(1, 2) : List.of());
    }

    /** What responses name the model by: the checkpoint file, its configuration and architecture, the precision. */
    static String modelName(Path checkpoint, Clip clip) {
        var config = clip.model().config();
        return checkpoint.getFileName() + " [" + config.name() + " " + (config.isVit() ? "VisionTransformer" : "ModifiedResNet")
                + ", " + clip.model().precision().name().toLowerCase(Locale.ROOT) + "]";
    }
}
