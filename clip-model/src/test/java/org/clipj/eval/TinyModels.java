package org.clipj.eval;

import org.clipj.data.SyntheticDataset;
import org.clipj.io.SafeTensors;
import org.clipj.model.ClipConfig;
import org.clipj.model.ClipModel;
import org.clipj.runtime.cpu.CpuBackend;
import org.clipj.text.BpeTrainer;

import javax.imageio.ImageIO;
import java.awt.image.BufferedImage;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;

/** Untrained models and generated image sets for the evaluation tests (no training needed). */
public final class TinyModels {
    private TinyModels() {
    }

    /**
     * A freshly initialized small ViT CLIP saved as DIR/model.safetensors, with a BPE vocabulary
     * learned from synthetic captions next to it (bpe_simple_vocab_16e6.txt.gz). Returns the model file.
     */
    public static Path write(Path dir, long seed) {
        SyntheticDataset captions = new SyntheticDataset(1, 200, 16, SyntheticDataset.Split.ALL);
        List<String> text = new ArrayList<>(captions.captions());
        text.addAll(SyntheticDataset.allLabels());
        List<String[]> merges = BpeTrainer.learn(text, 80, 2);
        BpeTrainer.write(dir.resolve("bpe_simple_vocab_16e6.txt.gz"), merges);
        ClipConfig config = ClipConfig.vit("eval-tiny", 32, 32, 64, 2, 8, 16, BpeTrainer.vocabSize(merges.size()), 32, 1);
        Path file = dir.resolve("model.safetensors");
        try (CpuBackend backend = new CpuBackend()) {
            SafeTensors.write(file, ClipModel.initialize(config, seed, backend).stateDict(), Map.of("format", "pt"));
        }
        return file;
    }

    /**
     * ROOT/CLASS/IMAGE.png from the synthetic generator, class folders named by the colour-shape label
     * with _ for spaces. Returns the number of images per class folder name.
     */
    public static Map<String, Integer> writeImageFolder(Path root, long seed, int count, int size,
                                                        SyntheticDataset.Split split) throws IOException {
        SyntheticDataset data = new SyntheticDataset(seed, count, size, split);
        Map<String, Integer> perClass = new java.util.TreeMap<>();
        for (int i = 0; i < count; i++) {
            String label = data.item(i).label().replace(' ', '_');
            Path dir = root.resolve(label);
            Files.createDirectories(dir);
            ImageIO.write(data.image(i), "png", dir.resolve(String.format("img%04d.png", i)).toFile());
            perClass.merge(label, 1, Integer::sum);
        }
        return perClass;
    }

    /** A file with an image extension that is not an image. */
    public static void writeCorrupt(Path file) throws IOException {
        Files.createDirectories(file.toAbsolutePath().getParent());
        Files.write(file, new byte[]{(byte) 0x89, 'P', 'N', 'G', 1, 2, 3, 4, 5});
    }

    public static BufferedImage copy(BufferedImage img) {
        BufferedImage out = new BufferedImage(img.getWidth(), img.getHeight(), BufferedImage.TYPE_INT_RGB);
        out.getGraphics().drawImage(img, 0, 0, null);
        return out;
    }
}
