package org.clipj.spark;

import org.apache.spark.sql.types.BinaryType;
import org.apache.spark.sql.types.DataTypes;
import org.apache.spark.sql.types.StringType;
import org.apache.spark.sql.types.StructField;
import org.apache.spark.sql.types.StructType;
import org.clipj.runtime.InvalidInputException;

import java.io.Serializable;
import java.util.Arrays;

/**
 * Where a row's inputs are: the image (a string path or URI, or binary encoded bytes), the caption, and
 * the row id written as {@code path} (default: the image path). At least one of image and text.
 *
 * @param id    column whose value (as a string) names the row in the output; null: the image path, if any
 * @param image image column, string (path or URI) or binary (encoded image); null: none
 * @param text  caption column (string); null: none
 */
public record InputColumns(String id, String image, String text) implements Serializable {
    public InputColumns {
        if (image == null && text == null) {
            throw new InvalidInputException("nothing to embed: name an image column and/or a text column");
        }
    }

    public static InputColumns images(String image) {
        return new InputColumns(null, image, null);
    }

    public static InputColumns texts(String text) {
        return new InputColumns(null, null, text);
    }

    /** Column indices in a schema, checked: the image column string or binary, the text column string. */
    Resolved resolve(StructType schema) {
        int imageIndex = index(schema, image, "image");
        boolean binary = false;
        if (imageIndex >= 0) {
            StructField f = schema.fields()[imageIndex];
            binary = f.dataType() instanceof BinaryType;
            if (!binary && !(f.dataType() instanceof StringType)) {
                throw new InvalidInputException("image column '" + image + "' is " + f.dataType().simpleString()
                        + "; expected a string (path or URI) or binary (encoded image bytes)");
            }
        }
        int textIndex = index(schema, text, "text");
        if (textIndex >= 0 && !(schema.fields()[textIndex].dataType() instanceof StringType)) {
            throw new InvalidInputException("text column '" + text + "' is "
                    + schema.fields()[textIndex].dataType().simpleString() + "; expected a string");
        }
        int idIndex = index(schema, id, "id");
        return new Resolved(idIndex, imageIndex, binary, textIndex);
    }

    /** The output schema: path, image_embedding and/or text_embedding (array of float), error. */
    StructType outputSchema() {
        StructType schema = new StructType().add("path", DataTypes.StringType, true);
        if (image != null) {
            schema = schema.add("image_embedding", DataTypes.createArrayType(DataTypes.FloatType, false), true);
        }
        if (text != null) {
            schema = schema.add("text_embedding", DataTypes.createArrayType(DataTypes.FloatType, false), true);
        }
        return schema.add("error", DataTypes.StringType, true);
    }

    private static int index(StructType schema, String name, String role) {
        if (name == null) {
            return -1;
        }
        for (int i = 0; i < schema.fields().length; i++) {
            if (schema.fields()[i].name().equals(name)) {
                return i;
            }
        }
        throw new InvalidInputException(role + " column '" + name + "' is not in the input; its columns are "
                + Arrays.toString(schema.fieldNames()));
    }

    /** Indices into the row (-1: absent); {@code binary}: the image column holds encoded bytes. */
    record Resolved(int id, int image, boolean binary, int text) implements Serializable {
    }
}
