package org.clipj.data;

import org.clipj.image.ImageLoader;
import org.clipj.runtime.InvalidInputException;

import java.awt.image.BufferedImage;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Set;
import java.util.stream.Stream;

/**
 * torchvision's ImageFolder: ROOT/CLASS/.../IMAGE, classes are the sub-folder names in sorted
 * order (label = index), images every file with an image extension below them, sorted by path.
 */
public final class ImageFolder {
    private static final Set<String> EXTENSIONS = Set.of("jpg", "jpeg", "png", "ppm", "bmp", "pgm", "tif", "tiff",
            "webp", "gif");

    private final Path root;
    private final List<String> classes = new ArrayList<>();
    private final List<Path> files = new ArrayList<>();
    private final List<Integer> labels = new ArrayList<>();

    public ImageFolder(Path root) {
        this.root = root;
        if (!Files.isDirectory(root)) {
            throw new InvalidInputException(root + ": not a folder (an image folder holds one sub-folder per class)");
        }
        try (Stream<Path> dirs = Files.list(root)) {
            dirs.filter(Files::isDirectory).map(p -> p.getFileName().toString()).sorted().forEach(classes::add);
            for (int c = 0; c < classes.size(); c++) {
                try (Stream<Path> walk = Files.walk(root.resolve(classes.get(c)))) {
                    for (Path f : walk.filter(Files::isRegularFile).filter(ImageFolder::isImage).sorted().toList()) {
                        files.add(f);
                        labels.add(c);
                    }
                }
            }
        } catch (IOException e) {
            throw new InvalidInputException(root + ": cannot list: " + e.getMessage(), e);
        }
        if (files.isEmpty()) {
            throw new InvalidInputException(root + ": no images found in class sub-folders");
        }
    }

    static boolean isImage(Path p) {
        String name = p.getFileName().toString();
        int dot = name.lastIndexOf('.');
        return dot > 0 && EXTENSIONS.contains(name.substring(dot + 1).toLowerCase(Locale.ROOT));
    }

    /** Class folder names, sorted; a label is an index into this list. */
    public List<String> classes() {
        return List.copyOf(classes);
    }

    public int size() {
        return files.size();
    }

    public Path path(int i) {
        return files.get(i);
    }

    public int label(int i) {
        return labels.get(i);
    }

    /**
     * The decoded image as stored (alpha and palette kept, so {@code Preprocess} resizes it as PIL
     * does); InvalidInputException naming the file when it is not readable.
     */
    public BufferedImage image(int i) {
        return ImageLoader.readOriginal(files.get(i));
    }

    public Path root() {
        return root;
    }
}
