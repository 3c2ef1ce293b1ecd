package org.clipj.bench;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.TimeUnit;

import org.clipj.Clip;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;
import org.openjdk.jmh.annotations.Warmup;

/**
 * The first request a fresh JVM serves, with and without {@link Clip#warmUp}: each fork loads the model
 * (and, when {@code warm}, warms it up for batch 1), then times exactly one call, the first
 * {@code encodeTexts} of one text or the first {@code encodeImageBytes} of one JPEG. So every measurement
 * is a first request; forks give the spread. scripts/bench warmup runs it.
 */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.SingleShotTime)
@OutputTimeUnit(TimeUnit.MILLISECONDS)
@Warmup(iterations = 0)
@Measurement(iterations = 1)
@Fork(value = 5, jvmArgsAppend = {"--add-modules", "jdk.incubator.vector", "-Djava.awt.headless=true"})
public class FirstRequestBenchmark {

    @Param({"false", "true"})
    public boolean warm;

    @Param({"text", "image"})
    public String input;

    @Param({""})
    public String model;

    @Param({""})
    public String vocab;

    @Param({""})
    public String image;

    private Clip clip;
    private byte[] imageBytes;

    @Setup(Level.Trial)
    public void setup() throws IOException {
        if (model.isEmpty() || vocab.isEmpty() || image.isEmpty()) {
            throw new IllegalArgumentException("FirstRequestBenchmark: pass -p model=FILE -p vocab=FILE -p image=JPEG");
        }
        imageBytes = Files.readAllBytes(Path.of(image));
        clip = Clip.load(Path.of(model), Clip.Options.defaults().withVocab(Path.of(vocab)));
        clip.tokenizer(); // loading the vocabulary is start-up, not the request, in both modes
        if (warm) {
            clip.warmUp(List.of(1), List.of(1));
        }
    }

    @TearDown(Level.Trial)
    public void tearDown() {
        clip.close();
    }

    @Benchmark
    public float[][] firstRequest() {
        return input.equals("text")
                ? clip.encodeTexts(List.of("a photo of a dog on the grass"))
                : clip.encodeImageBytes(List.of(imageBytes));
    }
}
