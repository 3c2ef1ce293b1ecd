package org.clipj.train;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import javax.imageio.ImageIO;
import java.awt.image.BufferedImage;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

class TrainUtilitiesTest {

    @Test
    void openClipDecayRule() {
        assertTrue(AdamW.decays("visual.transformer.resblocks.0.attn.in_proj_weight", 2));
        assertTrue(AdamW.decays("token_embedding.weight", 2));
        assertTrue(AdamW.decays("visual.proj", 2));
        assertFalse(AdamW.decays("visual.transformer.resblocks.0.ln_1.weight", 1));
        assertFalse(AdamW.decays("ln_final.weight", 1));
        assertFalse(AdamW.decays("visual.class_embedding", 1));
        assertFalse(AdamW.decays("visual.bn1.weight", 1));
        assertFalse(AdamW.decays("visual.transformer.resblocks.0.mlp.c_fc.bias", 1));
        assertFalse(AdamW.decays("logit_scale", 0));
        assertFalse(AdamW.decays("visual.layer1.0.bn2.weight", 4), "names with bn are excluded whatever the rank");
    }

    @Test
    void clipScaleOnlyShrinks() {
        assertEquals(1f, GradClip.scaleFor(0.5, 1.0));
        assertEquals(1f, GradClip.scaleFor(5.0, 0.0), "0 turns clipping off");
        assertEquals(0.2f, GradClip.scaleFor(5.0, 1.0), 1e-6f);
    }

    @Test
    void metricsLogKeepsStepsUpToTheResumePointAndSkipsATornLine(@TempDir Path dir) throws Exception {
        Path file = dir.resolve("metrics.jsonl");
        try (MetricsLog log = new MetricsLog(file, -1)) {
            for (int s = 1; s <= 5; s++) {
                log.append(new MetricsLog.Entry(s, 10 - s, 1e-3, 14.3, 100));
            }
        }
        Files.writeString(file, Files.readString(file) + "{\"step\":6,\"lo", java.nio.file.StandardOpenOption.WRITE);
        assertEquals(5, MetricsLog.read(file).size());
        try (MetricsLog log = new MetricsLog(file, 3)) {
            log.append(new MetricsLog.Entry(4, 1.5, 1e-3, 14.3, 100));
            assertEquals(4, log.entries().size());
        }
        List<MetricsLog.Entry> back = MetricsLog.read(file);
        assertEquals(List.of(1, 2, 3, 4), back.stream().map(MetricsLog.Entry::step).toList());
        assertEquals(1.5, back.get(3).loss());
        assertEquals(7.0, back.get(2).loss());
    }

    @Test
    void lossCurveIsAPngWithTheCurveDrawn(@TempDir Path dir) throws Exception {
        List<MetricsLog.Entry> entries = new ArrayList<>();
        for (int s = 1; s <= 200; s++) {
            entries.add(new MetricsLog.Entry(s, 4.0 * Math.exp(-s / 50.0) + 0.1 * Math.sin(s), 1e-3, 14, 50));
        }
        Path png = dir.resolve("loss.png");
        LossCurve.write(png, entries, "test");
        BufferedImage img = ImageIO.read(png.toFile());
        assertEquals(800, img.getWidth());
        int red = 0;
        for (int y = 0; y < img.getHeight(); y++) {
            for (int x = 0; x < img.getWidth(); x++) {
                int rgb = img.getRGB(x, y);
                if ((rgb >> 16 & 255) > 150 && (rgb >> 8 & 255) < 100) {
                    red++;
                }
            }
        }
        assertTrue(red > 500, "smoothed curve pixels: " + red);
        assertFalse(Files.exists(dir.resolve("loss.png.tmp")));
    }

    @Test
    void progressLineShowsEveryField() {
        StringWriter sink = new StringWriter();
        ProgressBar bar = new ProgressBar(new PrintWriter(sink), 100, 0);
        String line = bar.line(50, 1.2345, 5e-4, 14.29, 321.5, 75);
        assertTrue(line.contains("step 50/100"), line);
        assertTrue(line.contains("loss 1.2345"), line);
        assertTrue(line.contains("lr 5.00e-04"), line);
        assertTrue(line.contains("scale 14.29"), line);
        assertTrue(line.contains("321.5 img/s"), line);
        assertTrue(line.contains("ETA 01:15"), line);
        bar.update(100, 1, 1e-4, 10, 10, 0);
        assertTrue(sink.toString().endsWith(System.lineSeparator()));
        assertNotEquals("--:--", ProgressBar.formatDuration(3725));
        assertEquals("1:02:05", ProgressBar.formatDuration(3725));
    }
}
