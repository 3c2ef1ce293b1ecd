package org.clipj.service;

import org.clipj.Clip;
import org.clipj.image.ImageLoader;
import org.clipj.runtime.InvalidInputException;

import java.awt.image.BufferedImage;
import java.time.Duration;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Objects;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.RejectedExecutionException;
import java.util.concurrent.Semaphore;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.locks.Condition;
import java.util.concurrent.locks.ReentrantLock;
import java.util.function.Supplier;

/**
 * Dynamic batching in front of a {@link Clip}: many threads submit single texts or images and get a
 * {@link CompletableFuture} of the L2-normalized embedding, the same as an unbatched {@code Clip} call
 * gives; dispatcher threads per kind (texts, images; {@code batchThreads} of each) run what has queued
 * as forward passes.
 *
 * <p>A free dispatcher takes the first waiting request, waits at most {@code maxWait} from its arrival for
 * {@code maxBatch} requests of its kind, and runs them; requests that arrive while batches run make
 * the next one. The queue is bounded: {@code maxQueue} requests (both kinds together, those still
 * decoding included) may wait; a submission that does not fit is refused whole with a
 * {@link QueueFullException}, never buffered. A request whose deadline has passed when its batch is
 * formed completes with a {@link DeadlineExceededException} and is not computed; one cancelled by its
 * caller is skipped. Images (encoded bytes or decoded) are decoded and preprocessed on a small pool of
 * {@code decodeThreads} before they queue, so decoding overlaps the model and never blocks the caller.
 *
 * <p>{@link #close()} refuses new submissions, answers every accepted request, then stops the
 * dispatchers; {@link #closeNow()} fails the waiting ones instead. The {@code Clip} stays open (the
 * caller owns it).
 */
public final class ClipService implements AutoCloseable {

    /** The two request kinds; each has its own queue, dispatcher and metrics. */
    public enum Kind { TEXT, IMAGE }

    /**
     * @param maxBatch      requests per forward pass, at most
     * @param maxWait       how long a dispatcher waits, from the first request's arrival, for a full batch
     * @param maxQueue      requests that may wait (both kinds together); more is refused
     * @param decodeThreads threads that decode and preprocess images
     * @param batchThreads  batches of one kind that may run at once, each on its own dispatcher thread: on a
     *                      CPU, two batches side by side (the second on its own thread, the first on the
     *                      backend's pool) keep the cores busier than one batch whose serial parts leave
     *                      a core idle
     */
    public record Options(int maxBatch, Duration maxWait, int maxQueue, int decodeThreads, int batchThreads) {
        public Options {
            if (maxBatch < 1) {
                throw new InvalidInputException("max batch must be >= 1, got " + maxBatch);
            }
            if (maxWait == null || maxWait.isNegative() || maxWait.compareTo(Duration.ofMinutes(1)) > 0) {
                throw new InvalidInputException("max wait must be between 0 and 1 minute, got " + maxWait);
            }
            if (maxQueue < 1) {
                throw new InvalidInputException("max queue must be >= 1, got " + maxQueue);
            }
            if (decodeThreads < 1) {
                throw new InvalidInputException("decode threads must be >= 1, got " + decodeThreads);
            }
            if (batchThreads < 1) {
                throw new InvalidInputException("batch threads must be >= 1, got " + batchThreads);
            }
        }

        /** One batch of each kind at a time. */
        public Options(int maxBatch, Duration maxWait, int maxQueue, int decodeThreads) {
            this(maxBatch, maxWait, maxQueue, decodeThreads, 1);
        }

        /**
         * Batches of up to 32 after at most 5 ms, 256 waiting requests, min(4, cores) decode threads,
         * min(2, cores) batches of a kind at once.
         */
        public static Options defaults() {
            int cores = Runtime.getRuntime().availableProcessors();
            return new Options(32, Duration.ofMillis(5), 256, Math.max(1, Math.min(4, cores)), Math.max(1, Math.min(2, cores)));
        }

        public Options withMaxBatch(int n) {
            return new Options(n, maxWait, maxQueue, decodeThreads, batchThreads);
        }

        public Options withMaxWait(Duration d) {
            return new Options(maxBatch, d, maxQueue, decodeThreads, batchThreads);
        }

        public Options withMaxQueue(int n) {
            return new Options(maxBatch, maxWait, n, decodeThreads, batchThreads);
        }

        public Options withDecodeThreads(int n) {
            return new Options(maxBatch, maxWait, maxQueue, n, batchThreads);
        }

        public Options withBatchThreads(int n) {
            return new Options(maxBatch, maxWait, maxQueue, decodeThreads, n);
        }
    }

    /** One thing to embed. */
    public sealed interface Input permits Text, Image, EncodedImage {
    }

    /** A text (truncated to the model's context length, as {@link Clip#encodeTexts} does). */
    public record Text(String text) implements Input {
        public Text {
            Objects.requireNonNull(text, "text");
        }
    }

    /** A decoded image; {@code name} names it in errors. */
    public record Image(BufferedImage image, String name) implements Input {
        public Image {
            Objects.requireNonNull(image, "image");
            Objects.requireNonNull(name, "name");
        }
    }

    /** PNG/JPEG/GIF/BMP/WebP bytes, decoded as {@link ImageLoader} decodes files; {@code name} names it in errors. */
    public record EncodedImage(byte[] bytes, String name) implements Input {
        public EncodedImage {
            Objects.requireNonNull(bytes, "bytes");
            Objects.requireNonNull(name, "name");
        }
    }

    /** One accepted input on its way through the service. */
    private static final class Request {
        final CompletableFuture<float[]> future = new CompletableFuture<>();
        final long submitNanos;
        final long timeoutNanos;       // not computed once this long after submission; Long.MAX_VALUE: never
        int[] tokens;                  // TEXT: (contextLength) ids, tokenized on the caller's thread
        float[] pixels;                // IMAGE: (3, R, R), once decoded
        long enqueuedNanos;            // when it entered its lane

        Request(long submitNanos, long timeoutNanos) {
            this.submitNanos = submitNanos;
            this.timeoutNanos = timeoutNanos;
        }
    }

    private final Clip clip;
    private final Options options;
    private final Semaphore slots;
    private final ExecutorService decodePool;
    private final Lane textLane;
    private final Lane imageLane;
    private final ServiceMetrics metrics;
    private volatile boolean accepting = true;
    private volatile boolean dropQueued;

    public ClipService(Clip clip, Options options) {
        this.clip = Objects.requireNonNull(clip, "clip");
        this.options = options;
        this.slots = new Semaphore(options.maxQueue());
        this.metrics = new ServiceMetrics(options.maxBatch(), options.maxQueue(), () -> options.maxQueue() - slots.availablePermits());
        this.decodePool = Executors.newFixedThreadPool(options.decodeThreads(), r -> {
            Thread t = new Thread(r, "clip-service-decode");
            t.setDaemon(true);
            return t;
        });
        this.textLane = new Lane(Kind.TEXT);
        this.imageLane = new Lane(Kind.IMAGE);
    }

    public Options options() {
        return options;
    }

    public ServiceMetrics metrics() {
        return metrics;
    }

    /** The embedding of one text, batched with other callers' texts. */
    public CompletableFuture<float[]> embedText(String text) {
        return submit(List.of(new Text(text)), null).getFirst();
    }

    /** The embedding of one decoded image, batched with other callers' images. */
    public CompletableFuture<float[]> embedImage(BufferedImage image) {
        return submit(List.of(new Image(image, "image")), null).getFirst();
    }

    /** The embedding of one encoded image; a decoding failure completes the future with an InvalidInputException naming it. */
    public CompletableFuture<float[]> embedImage(byte[] encoded, String name) {
        return submit(List.of(new EncodedImage(encoded, name)), null).getFirst();
    }

    /**
     * Submits several inputs at once, all or none: either every one is queued (futures in input order)
     * or the call throws and none is.
     *
     * @param timeout null: no deadline; else a request still waiting this long after submission is
     *                not computed and completes with a {@link DeadlineExceededException}
     * @throws QueueFullException          the queue has no room for them all now (retry later)
     * @throws RejectedExecutionException  the service is closed
     * @throws InvalidInputException       more inputs than the queue can ever hold
     */
    public List<CompletableFuture<float[]>> submit(List<? extends Input> inputs, Duration timeout) {
        int n = inputs.size();
        if (n > options.maxQueue()) {
            throw new InvalidInputException(n + " inputs in one submission exceed the queue capacity of "
                    + options.maxQueue());
        }
        if (!accepting) {
            throw new RejectedExecutionException("ClipService is closed");
        }
        if (!slots.tryAcquire(n)) {
            for (Input in : inputs) metrics.count(kindOf(in), ServiceMetrics.Outcome.REJECTED, 1);
            throw new QueueFullException("queue full: " + metrics.queueDepth() + " of " + options.maxQueue()
                    + " requests waiting, no room for " + n + " more; retry later");
        }
        long now = System.nanoTime();
        long timeoutNanos = timeout == null ? Long.MAX_VALUE : timeout.toNanos();
        List<CompletableFuture<float[]>> futures = new ArrayList<>(n);
        try {
            for (Input in : inputs) {
                Request r = new Request(now, timeoutNanos);
                switch (in) {
                    case Text t -> tokenize(r, t.text());
                    case Image i -> decodePool.execute(() -> decode(r, i.name(), () -> clip.preprocess().apply(i.image())));
                    case EncodedImage e -> decodePool.execute(() -> decode(r, e.name(),
                            () -> clip.preprocess().apply(ImageLoader.readOriginal(e.bytes(), e.name()))));
                }
                futures.add(r.future);
            }
        } catch (RejectedExecutionException e) {
            // closed meanwhile: the requests handed over are cancelled (skipped, their slots come back when
            // their batch forms), the others give their slots back now
            futures.forEach(f -> f.cancel(false));
            slots.release(n - futures.size());
            throw new RejectedExecutionException("ClipService is closed", e);
        }
        return futures;
    }

    private static Kind kindOf(Input in) {
        return in instanceof Text ? Kind.TEXT : Kind.IMAGE;
    }

    /**
     * On the caller's thread, so the dispatcher's thread runs forward passes only: tokenizes one text and
     * queues it, or fails its request (a model without a tokenizer, say) as a decoding failure fails an image's.
     */
    private void tokenize(Request r, String text) {
        try {
            r.tokens = clip.tokenizer().tokenize(List.of(text), clip.config().contextLength(), true)[0];
        } catch (RuntimeException e) {
            slots.release();
            metrics.count(Kind.TEXT, ServiceMetrics.Outcome.FAILED, 1);
            r.future.completeExceptionally(e);
            return;
        }
        textLane.add(r);
    }

    /** On a decode thread: preprocesses one image and queues it, or fails its request. */
    private void decode(Request r, String name, Supplier<float[]> preprocess) {
        if (dropQueued || r.future.isDone()) {
            slots.release();
            metrics.count(Kind.IMAGE, ServiceMetrics.Outcome.CANCELLED, 1);
            r.future.completeExceptionally(new RejectedExecutionException("ClipService closed before " + name + " was computed"));
            return;
        }
        long waited = System.nanoTime() - r.submitNanos;
        if (waited > r.timeoutNanos) {
            slots.release();
            metrics.count(Kind.IMAGE, ServiceMetrics.Outcome.EXPIRED, 1);
            r.future.completeExceptionally(new DeadlineExceededException("image request waited " + waited / 1_000_000
                    + " ms for decoding, past its deadline; not computed"));
            return;
        }
        try {
            r.pixels = preprocess.get();
        } catch (Throwable t) {   // an OutOfMemoryError included: the future must complete, the slot come back
            slots.release();
            metrics.count(Kind.IMAGE, ServiceMetrics.Outcome.FAILED, 1);
            if (t instanceof RuntimeException e) {
                String message = e.getMessage() == null ? e.getClass().getSimpleName() : e.getMessage();
                r.future.completeExceptionally(e instanceof InvalidInputException && message.contains(name) ? e
                        : new InvalidInputException(name + ": " + message, e));
            } else {
                r.future.completeExceptionally(t);
            }
            return;
        }
        imageLane.add(r);   // open until the decode pool has finished (see shutdown)
    }

    /** Runs one batch of live requests and completes them. */
    private void run(Kind kind, List<Request> batch) {
        long start = System.nanoTime();
        List<Request> live = new ArrayList<>(batch.size());
        for (Request r : batch) {
            if (r.future.isDone()) {
                metrics.count(kind, ServiceMetrics.Outcome.CANCELLED, 1);
            } else if (dropQueued) {
                metrics.count(kind, ServiceMetrics.Outcome.CANCELLED, 1);
                r.future.completeExceptionally(new RejectedExecutionException("ClipService closed before this request was computed"));
            } else if (start - r.submitNanos > r.timeoutNanos) {
                metrics.count(kind, ServiceMetrics.Outcome.EXPIRED, 1);
                r.future.completeExceptionally(new DeadlineExceededException(kind.name().toLowerCase(Locale.ROOT) + " request waited "
                        + (start - r.submitNanos) / 1_000_000 + " ms, past its deadline; not computed"));
            } else {
                metrics.queueWait(kind).observe((start - r.enqueuedNanos) / 1e9);
                live.add(r);
            }
        }
        if (live.isEmpty()) {
            return;
        }
        metrics.batchSize(kind).observe(live.size());
        float[][] out;
        try {
            out = kind == Kind.TEXT ? clip.encodeTokens(live.stream().map(r -> r.tokens).toArray(int[][]::new)) : encodePixels(live);
        } catch (Throwable t) {   // the dispatcher lives on, so every accepted request is still answered
            metrics.count(kind, ServiceMetrics.Outcome.FAILED, live.size());
            for (Request r : live) r.future.completeExceptionally(t);
            return;
        }
        // metrics first, so a caller that has its result also finds it counted
        long end = System.nanoTime();
        metrics.inference(kind).observe((end - start) / 1e9);
        for (int i = 0; i < live.size(); i++) {
            Request r = live.get(i);
            if (r.future.isDone()) {
                metrics.count(kind, ServiceMetrics.Outcome.CANCELLED, 1);
            } else {
                metrics.latency(kind).observe((end - r.submitNanos) / 1e9);
                metrics.count(kind, ServiceMetrics.Outcome.OK, 1);
                r.future.complete(out[i]);
            }
        }
    }

    private float[][] encodePixels(List<Request> batch) {
        int per = batch.getFirst().pixels.length;   // 3 * R * R
        float[] pixels = new float[batch.size() * per];
        for (int i = 0; i < batch.size(); i++) System.arraycopy(batch.get(i).pixels, 0, pixels, i * per, per);
        return clip.encodePixels(pixels, batch.size());
    }

    /** Answers every accepted request, then stops; new submissions are refused from the start. */
    @Override
    public void close() {
        shutdown(false);
    }

    /** Stops: the requests still waiting fail with a RejectedExecutionException; a batch already running completes. */
    public void closeNow() {
        shutdown(true);
    }

    private void shutdown(boolean drop) {
        if (drop) {
            dropQueued = true;
        }
        accepting = false;
        decodePool.shutdown();
        boolean interrupted = false;
        while (true) {
            try {
                if (decodePool.awaitTermination(1, TimeUnit.DAYS)) {
                    break;
                }
            } catch (InterruptedException e) {
                interrupted = true;
            }
        }
        textLane.close();
        imageLane.close();
        for (Lane lane : List.of(textLane, imageLane)) {
            for (Thread worker : lane.workers) {
                while (true) {
                    try {
                        worker.join();
                        break;
                    } catch (InterruptedException e) {
                        interrupted = true;
                    }
                }
            }
        }
        if (interrupted) {
            Thread.currentThread().interrupt();
        }
    }

    /** The queue and the dispatcher thread of one kind. */
    private final class Lane {
        final Kind kind;
        final ArrayDeque<Request> queue = new ArrayDeque<>();
        final ReentrantLock lock = new ReentrantLock();
        final Condition changed = lock.newCondition();
        final List<Thread> workers = new ArrayList<>();
        boolean closed;
        boolean collecting;   // a dispatcher is waiting for a batch to fill

        Lane(Kind kind) {
            this.kind = kind;
            for (int i = 0; i < options.batchThreads(); i++) {
                Thread worker = new Thread(this::dispatch, "clip-service-" + kind.name().toLowerCase(Locale.ROOT) + "-" + (i + 1));
                worker.setDaemon(true);
                worker.start();
                workers.add(worker);
            }
        }

        void add(Request r) {
            lock.lock();
            try {
                if (closed) {
                    throw new RejectedExecutionException("ClipService is closed");
                }
                r.enqueuedNanos = System.nanoTime();
                queue.addLast(r);
                changed.signalAll();   // the collecting dispatcher, whichever thread waits
            } finally {
                lock.unlock();
            }
        }

        void close() {
            lock.lock();
            try {
                closed = true;
                changed.signalAll();
            } finally {
                lock.unlock();
            }
        }

        private void dispatch() {
            for (List<Request> batch; (batch = next()) != null; ) {
                slots.release(batch.size());
                run(kind, batch);
            }
        }

        /**
         * The next batch; null once closed and empty. Closing flushes a partial batch at once. One dispatcher
         * at a time collects (waits for a batch to fill); the others wait for it to take its batch.
         */
        private List<Request> next() {
            lock.lock();
            try {
                while (queue.isEmpty() || collecting) {
                    if (closed && queue.isEmpty()) {
                        return null;
                    }
                    changed.awaitUninterruptibly();
                }
                collecting = true;
                try {
                    long flushAt = queue.peekFirst().enqueuedNanos + options.maxWait().toNanos();
                    while (queue.size() < options.maxBatch() && !closed) {
                        long left = flushAt - System.nanoTime();
                        if (left <= 0) {
                            break;
                        }
                        try {
                            changed.awaitNanos(left);
                        } catch (InterruptedException e) {
                            break;   // nobody interrupts the dispatcher; run what is there
                        }
                    }
                    int n = Math.min(options.maxBatch(), queue.size());
                    List<Request> batch = new ArrayList<>(n);
                    for (int i = 0; i < n; i++) batch.add(queue.pollFirst());
                    return batch;
                } finally {
                    collecting = false;
                    changed.signalAll();   // the next dispatcher may collect what is left or arrives
                }
            } finally {
                lock.unlock();
            }
        }
    }
}
