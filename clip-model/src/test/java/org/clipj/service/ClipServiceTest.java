package org.clipj.service;

import org.clipj.Clip;
import org.clipj.TestAssets;
import org.clipj.image.ImageLoader;
import org.clipj.runtime.InvalidInputException;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.RejectedExecutionException;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** ClipService on the golden tiny ViT: batched results equal unbatched ones; deadlines, back-pressure, draining. */
class ClipServiceTest {
    private static final List<String> TEXTS = List.of("a diagram", "a photo of a dog.", "a cat sitting on a red chair",
            "two people", "", "a very long caption ".repeat(30));
    private static final List<String> IMAGES = List.of("CLIP.png", "photo.jpg", "palette.png", "alpha.png");
    private static Clip clip;

    @BeforeAll
    static void load() {
        clip = Clip.load(TestAssets.golden("tiny-vit", "model.safetensors"),
                Clip.Options.defaults().withVocab(TestAssets.vocab()).withDevice("cpu"));
    }

    @AfterAll
    static void close() {
        clip.close();
    }

    private static Path image(String name) {
        return TestAssets.golden("text-image", "images", name);
    }

    @Test
    void tokensTokenizedAheadEmbedAsTheTexts() {
        int ctx = clip.config().contextLength();
        float[][] fromTexts = clip.encodeTexts(TEXTS);
        float[][] fromTokens = clip.encodeTokens(clip.tokenizer().tokenize(TEXTS, ctx, true));
        for (int i = 0; i < TEXTS.size(); i++) assertArrayEquals(fromTexts[i], fromTokens[i], 0f, TEXTS.get(i));
        InvalidInputException e = assertThrows(InvalidInputException.class,
                () -> clip.encodeTokens(new int[][]{new int[ctx], new int[ctx - 1]}));
        assertTrue(e.getMessage().contains("token row 1 has " + (ctx - 1) + " ids"), e.getMessage());
    }

    @ParameterizedTest(name = "{0} batch thread(s)")
    @ValueSource(ints = {1, 2})
    void concurrentCallersGetTheUnbatchedEmbeddingsInBatches(int batchThreads) throws Exception {
        float[][] textRef = new float[TEXTS.size()][];
        for (int i = 0; i < TEXTS.size(); i++) textRef[i] = clip.encodeTexts(List.of(TEXTS.get(i)))[0];
        float[][] imageRef = new float[IMAGES.size()][];
        for (int i = 0; i < IMAGES.size(); i++) imageRef[i] = clip.encodeImages(List.of(image(IMAGES.get(i))))[0];
        ClipService.Options options = new ClipService.Options(8, Duration.ofMillis(50), 64, 2, batchThreads);
        ExecutorService callers = Executors.newFixedThreadPool(6);
        try (ClipService service = new ClipService(clip, options)) {
            List<Future<?>> done = new ArrayList<>();
            for (int t = 0; t < 6; t++) {
                int caller = t;
                done.add(callers.submit(() -> {
                    for (int round = 0; round < 2; round++) {
                        int ti = (caller + round) % TEXTS.size();
                        int ii = (caller + round) % IMAGES.size();
                        CompletableFuture<float[]> text = service.embedText(TEXTS.get(ti));
                        CompletableFuture<float[]> image = caller % 2 == 0
                                ? service.embedImage(Files.readAllBytes(image(IMAGES.get(ii))), IMAGES.get(ii))
                                : service.embedImage(ImageLoader.readOriginal(image(IMAGES.get(ii))));
                        assertArrayEquals(textRef[ti], text.get(), 1e-5f, TEXTS.get(ti));
                        assertArrayEquals(imageRef[ii], image.get(), 1e-5f, IMAGES.get(ii));
                    }
                    return null;
                }));
            }
            for (Future<?> f : done) f.get(60, TimeUnit.SECONDS);
            ServiceMetrics m = service.metrics();
            assertEquals(12, m.count(ClipService.Kind.TEXT, ServiceMetrics.Outcome.OK));
            assertEquals(12, m.count(ClipService.Kind.IMAGE, ServiceMetrics.Outcome.OK));
            assertEquals(12, (long) m.batchSize(ClipService.Kind.TEXT).sum());
            assertTrue(m.batchSize(ClipService.Kind.TEXT).count() < 12, "six callers at once never shared a text batch");
            assertEquals(0, m.queueDepth());
        } finally {
            callers.shutdownNow();
        }
    }

    @Test
    void anUndecodableImageFailsAloneNamingIt() throws Exception {
        try (ClipService service = new ClipService(clip, new ClipService.Options(8, Duration.ofMillis(20), 8, 1))) {
            List<CompletableFuture<float[]>> futures = service.submit(List.of(new ClipService.Text("a dog"),
                    new ClipService.EncodedImage(new byte[]{1, 2, 3}, "upload[1]"),
                    new ClipService.EncodedImage(Files.readAllBytes(image("tiny.png")), "upload[2]")), null);
            assertEquals(64, futures.get(0).get().length);
            ExecutionException e = assertThrows(ExecutionException.class, () -> futures.get(1).get());
            assertInstanceOf(InvalidInputException.class, e.getCause());
            assertTrue(e.getCause().getMessage().contains("upload[1]"), e.getCause().getMessage());
            assertEquals(64, futures.get(2).get().length);
            assertEquals(1, service.metrics().count(ClipService.Kind.IMAGE, ServiceMetrics.Outcome.FAILED));
        }
    }

    @Test
    void aRequestPastItsDeadlineIsNotComputed() throws Exception {
        // the dispatcher waits 300 ms for four texts: the 1 ms deadline has long passed when the batch forms
        try (ClipService service = new ClipService(clip, new ClipService.Options(4, Duration.ofMillis(300), 8, 1))) {
            CompletableFuture<float[]> late = service.submit(List.of(new ClipService.Text("too late")), Duration.ofMillis(1)).getFirst();
            CompletableFuture<float[]> patient = service.submit(List.of(new ClipService.Text("in time")), Duration.ofMinutes(1)).getFirst();
            ExecutionException e = assertThrows(ExecutionException.class, () -> late.get(10, TimeUnit.SECONDS));
            assertInstanceOf(DeadlineExceededException.class, e.getCause());
            assertEquals(64, patient.get(10, TimeUnit.SECONDS).length);
            ServiceMetrics m = service.metrics();
            assertEquals(1, m.count(ClipService.Kind.TEXT, ServiceMetrics.Outcome.EXPIRED));
            assertEquals(1, m.count(ClipService.Kind.TEXT, ServiceMetrics.Outcome.OK));
            assertEquals(1, (long) m.batchSize(ClipService.Kind.TEXT).sum(), "the expired text went into a forward pass");
        }
    }

    @Test
    void aFullQueueRefusesAndCloseAnswersWhatItAccepted() throws Exception {
        // batches of 8 after up to a minute: two texts sit in the queue until close() flushes them
        ClipService service = new ClipService(clip, new ClipService.Options(8, Duration.ofMinutes(1), 2, 1));
        CompletableFuture<float[]> first = service.embedText("a dog");
        CompletableFuture<float[]> second = service.embedText("a cat");
        assertEquals(2, service.metrics().queueDepth());
        assertThrows(QueueFullException.class, () -> service.embedText("one too many"));
        assertThrows(InvalidInputException.class, () -> service.submit(List.of(new ClipService.Text("a"),
                new ClipService.Text("b"), new ClipService.Text("c")), null), "more inputs than the queue holds");
        assertEquals(1, service.metrics().count(ClipService.Kind.TEXT, ServiceMetrics.Outcome.REJECTED));
        assertTrue(!first.isDone() && !second.isDone());
        long start = System.nanoTime();
        service.close();
        assertTrue(System.nanoTime() - start < 20e9, "close waited for the batch timer instead of flushing");
        assertArrayEquals(clip.encodeTexts(List.of("a dog"))[0], first.getNow(null), 1e-5f);
        assertArrayEquals(clip.encodeTexts(List.of("a cat"))[0], second.getNow(null), 1e-5f);
        assertThrows(RejectedExecutionException.class, () -> service.embedText("after close"));
    }

    @Test
    void closeNowFailsTheWaitingRequests() throws Exception {
        ClipService service = new ClipService(clip, new ClipService.Options(8, Duration.ofMinutes(1), 4, 1));
        CompletableFuture<float[]> waiting = service.embedText("a dog");
        CompletableFuture<float[]> decoding = service.embedImage(Files.readAllBytes(image("photo.jpg")), "photo.jpg");
        service.closeNow();
        for (CompletableFuture<float[]> f : List.of(waiting, decoding)) {
            ExecutionException e = assertThrows(ExecutionException.class, f::get);
            assertInstanceOf(RejectedExecutionException.class, e.getCause());
        }
        assertEquals(0, service.metrics().batchSize(ClipService.Kind.TEXT).count());
    }

    @Test
    void histogramBucketsAreCumulativeAndBatchBoundsEndAtMaxBatch() {
        assertArrayEquals(new double[]{1}, Histogram.batchSizes(1).bounds());
        assertArrayEquals(new double[]{1, 2, 4, 8, 16, 24}, Histogram.batchSizes(24).bounds());
        assertArrayEquals(new double[]{1, 2, 4, 8, 16, 32}, Histogram.batchSizes(32).bounds());
        Histogram h = new Histogram(1, 2, 4);
        for (double v : new double[]{0.5, 1, 1.5, 4, 9}) h.observe(v);
        assertArrayEquals(new long[]{2, 3, 4, 5}, h.cumulativeCounts());
        assertEquals(16, h.sum(), 1e-12);
    }
}
