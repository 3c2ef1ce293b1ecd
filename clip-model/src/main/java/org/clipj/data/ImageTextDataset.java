package org.clipj.data;

import java.awt.image.BufferedImage;
import java.io.IOException;
import java.util.ArrayList;
import java.util.List;

/** Indexed (image, caption) pairs for contrastive training. */
public interface ImageTextDataset {

    int size();

    /** The decoded image of example i, as stored (Preprocess makes it RGB); IOException (or InvalidInputException) when it is missing or corrupt. */
    BufferedImage image(int i) throws IOException;

    String caption(int i);

    /** Where example i comes from (file path or generator index), for skip reports. */
    String source(int i);

    /** Every caption in index order (for training a BPE vocabulary). */
    default List<String> captions() {
        List<String> out = new ArrayList<>(size());
        for (int i = 0; i < size(); i++) {
            out.add(caption(i));
        }
        return out;
    }
}
