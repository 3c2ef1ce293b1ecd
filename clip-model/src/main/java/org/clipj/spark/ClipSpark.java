package org.clipj.spark;

import org.apache.spark.api.java.function.MapPartitionsFunction;
import org.apache.spark.sql.Dataset;
import org.apache.spark.sql.Encoders;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.RowFactory;
import org.apache.spark.sql.SparkSession;
import org.apache.spark.sql.api.java.UDF1;
import org.apache.spark.sql.types.DataTypes;
import org.apache.spark.sql.types.StructType;

import java.util.Iterator;
import java.util.List;

/**
 * CLIP embeddings of Spark tables, computed inside the executors: each executor JVM loads the model once
 * (on its first task) and shares it between its tasks; batches are formed inside each partition.
 *
 * <pre>{@code
 * ClipSpark clip = ClipSpark.create(spark, ClipModelSpec.of("/shared/ViT-B-32.safetensors"));
 * Dataset<Row> emb = clip.embedImages(spark.read().parquet("images"), "path");  // path, image_embedding, error
 * clip.registerUdf();  // SELECT clip_embed_text(title) FROM captions
 * }</pre>
 *
 * Output rows: {@code path} (the image path, or the id column), {@code image_embedding} and/or
 * {@code text_embedding} (array&lt;float&gt;, L2-normalized; null on error), {@code error} (null, or why
 * the row has no embedding: unreadable or corrupt image, null caption). Bad rows never fail the job.
 */
public final class ClipSpark {
    /** The name of the SQL function {@link #registerUdf()} registers. */
    public static final String TEXT_UDF = "clip_embed_text";

    private final SparkSession spark;
    private final ClipModelSpec model;
    private final HadoopConf hadoopConf;
    private final Counters counters;

    private ClipSpark(SparkSession spark, ClipModelSpec model) {
        this.spark = spark;
        this.model = model;
        this.hadoopConf = new HadoopConf(spark.sparkContext().hadoopConfiguration());
        this.counters = new Counters(spark.sparkContext());
    }

    public static ClipSpark create(SparkSession spark, ClipModelSpec model) {
        return new ClipSpark(spark, model);
    }

    public ClipModelSpec model() {
        return model;
    }

    /** The counters (also in the Spark UI) of every Dataset this instance made, once they have been computed. */
    public Counters counters() {
        return counters;
    }

    /** path, image_embedding, error for each row; the image column holds paths/URIs (string) or encoded bytes (binary). */
    public Dataset<Row> embedImages(Dataset<Row> input, String imageColumn) {
        return embed(input, InputColumns.images(imageColumn));
    }

    /** path (the id column's value), text_embedding, error for each row. */
    public Dataset<Row> embedTexts(Dataset<Row> input, String textColumn, String idColumn) {
        return embed(input, new InputColumns(idColumn, null, textColumn));
    }

    /** path (null), text_embedding, error for each row. */
    public Dataset<Row> embedTexts(Dataset<Row> input, String textColumn) {
        return embed(input, InputColumns.texts(textColumn));
    }

    /** One output row per input row, lazily (a transformation): see the class comment for the columns. */
    public Dataset<Row> embed(Dataset<Row> input, InputColumns columns) {
        StructType schema = columns.outputSchema();
        boolean images = columns.image() != null;
        boolean texts = columns.text() != null;
        PartitionEmbedder embedder = embedder(input.schema(), columns);
        MapPartitionsFunction<Row, Row> toRows = rows -> rows(embedder.embed(rows), images, texts);
        return input.mapPartitions(toRows, Encoders.row(schema));
    }

    /**
     * Registers {@code clip_embed_text(caption)}: array&lt;float&gt;, the L2-normalized embedding (null for a
     * null caption). One forward pass per row: for whole columns {@link #embedTexts} batches and is faster.
     */
    public void registerUdf() {
        ClipModelSpec spec = model;
        UDF1<String, float[]> embed = caption -> caption == null ? null
                : ExecutorClip.get(spec).encodeTexts(List.of(caption))[0];
        spark.udf().register(TEXT_UDF, embed, DataTypes.createArrayType(DataTypes.FloatType, false));
    }

    /** Output rows: path, then image_embedding and/or text_embedding, then error. */
    private static Iterator<Row> rows(Iterator<PartitionEmbedder.Embedded> embedded, boolean images, boolean texts) {
        return new Iterator<>() {
            @Override
            public boolean hasNext() {
                return embedded.hasNext();
            }

            @Override
            public Row next() {
                PartitionEmbedder.Embedded e = embedded.next();
                if (images && texts) {
                    return RowFactory.create(e.path(), e.image(), e.text(), e.error());
                }
                return RowFactory.create(e.path(), images ? e.image() : e.text(), e.error());
            }
        };
    }

    PartitionEmbedder embedder(StructType inputSchema, InputColumns columns) {
        return new PartitionEmbedder(model, columns.resolve(inputSchema), hadoopConf, counters);
    }
}
