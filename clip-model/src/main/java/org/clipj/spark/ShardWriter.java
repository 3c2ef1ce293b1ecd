package org.clipj.spark;

import com.fasterxml.jackson.core.JsonFactory;
import com.fasterxml.jackson.core.JsonGenerator;
import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.FSDataOutputStream;
import org.apache.hadoop.fs.FileSystem;
import org.apache.hadoop.fs.Path;
import org.apache.parquet.example.data.Group;
import org.apache.parquet.example.data.simple.SimpleGroupFactory;
import org.apache.parquet.hadoop.ParquetFileWriter;
import org.apache.parquet.hadoop.ParquetWriter;
import org.apache.parquet.hadoop.example.ExampleParquetWriter;
import org.apache.parquet.hadoop.metadata.CompressionCodecName;
import org.apache.parquet.hadoop.util.HadoopOutputFile;
import org.apache.parquet.schema.LogicalTypeAnnotation;
import org.apache.parquet.schema.MessageType;
import org.apache.parquet.schema.PrimitiveType.PrimitiveTypeName;
import org.apache.parquet.schema.Type;
import org.apache.parquet.schema.Types;

import java.io.IOException;
import java.io.OutputStream;
import java.util.Iterator;
import java.util.Map;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * Writes one shard of the job's output as one file, atomically: into a hidden temporary file (Spark and
 * Hadoop readers skip names starting with '.'), renamed to {@code part-NNNNN.parquet|json} once complete.
 * A part file that exists is therefore a finished shard, which a rerun skips.
 * Parquet: path, image_embedding and/or text_embedding (LIST of FLOAT, read by Spark as array&lt;float&gt;),
 * error, Snappy; the model, config and precision in the footer's key-value metadata (keys clipj.*).
 * JSON: one object per line with the same fields (Spark's JSON Lines).
 */
final class ShardWriter {
    enum Format {
        PARQUET("parquet"), JSON("json");

        final String extension;

        Format(String extension) {
            this.extension = extension;
        }
    }

    private static final Pattern PART = Pattern.compile("part-(\\d{5})\\.(parquet|json)");

    private ShardWriter() {
    }

    static String partName(int shard, Format format) {
        return String.format("part-%05d.%s", shard, format.extension);
    }

    /** The shard a finished part file holds, or -1 for any other name. */
    static int shardOf(String fileName, Format format) {
        Matcher m = PART.matcher(fileName);
        return m.matches() && m.group(2).equals(format.extension) ? Integer.parseInt(m.group(1)) : -1;
    }

    /** Writes the rows as the shard's part file; returns false (and writes nothing) when there are none. */
    static boolean write(Iterator<PartitionEmbedder.Embedded> rows, Path dir, int shard, long attempt, Format format,
                         boolean images, boolean texts, Map<String, String> metadata, Configuration conf) throws IOException {
        if (!rows.hasNext()) {
            return false;
        }
        FileSystem fs = dir.getFileSystem(conf);
        Path target = new Path(dir, partName(shard, format));
        Path temp = new Path(dir, "." + partName(shard, format) + "." + attempt + ".tmp");
        try {
            if (format == Format.PARQUET) {
                writeParquet(rows, temp, images, texts, metadata, conf);
            } else {
                writeJson(rows, fs, temp, images, texts);
            }
            fs.delete(target, false); // a rerun of a shard whose earlier attempt finished: same rows, same model
            if (!fs.rename(temp, target)) {
                throw new IOException("cannot rename " + temp + " to " + target);
            }
            return true;
        } finally {
            fs.delete(temp, false);
        }
    }

    static MessageType parquetSchema(boolean images, boolean texts) {
        Types.MessageTypeBuilder b = Types.buildMessage();
        b.optional(PrimitiveTypeName.BINARY).as(LogicalTypeAnnotation.stringType()).named("path");
        if (images) {
            b.addField(floatList("image_embedding"));
        }
        if (texts) {
            b.addField(floatList("text_embedding"));
        }
        b.optional(PrimitiveTypeName.BINARY).as(LogicalTypeAnnotation.stringType()).named("error");
        return b.named("clipj");
    }

    /** The three-level LIST Spark writes for array&lt;float&gt; without nulls. */
    private static Type floatList(String name) {
        return Types.optionalGroup().as(LogicalTypeAnnotation.listType())
                .repeatedGroup().required(PrimitiveTypeName.FLOAT).named("element").named("list")
                .named(name);
    }

    private static void writeParquet(Iterator<PartitionEmbedder.Embedded> rows, Path file, boolean images, boolean texts,
                                     Map<String, String> metadata, Configuration conf) throws IOException {
        MessageType schema = parquetSchema(images, texts);
        SimpleGroupFactory groups = new SimpleGroupFactory(schema);
        try (ParquetWriter<Group> writer = ExampleParquetWriter.builder(HadoopOutputFile.fromPath(file, conf)).withConf(conf).withType(schema)
                .withCompressionCodec(CompressionCodecName.SNAPPY).withWriteMode(ParquetFileWriter.Mode.OVERWRITE)
                .withExtraMetaData(metadata).build()) {
            while (rows.hasNext()) {
                PartitionEmbedder.Embedded e = rows.next();
                Group g = groups.newGroup();
                if (e.path() != null) g.append("path", e.path());
                if (images) appendList(g, "image_embedding", e.image());
                if (texts) appendList(g, "text_embedding", e.text());
                if (e.error() != null) g.append("error", e.error());
                writer.write(g);
            }
        }
    }

    private static void appendList(Group g, String field, float[] values) {
        if (values == null) {
            return;
        }
        Group list = g.addGroup(field);
        for (float v : values) {
            list.addGroup("list").append("element", v);
        }
    }

    private static void writeJson(Iterator<PartitionEmbedder.Embedded> rows, FileSystem fs, Path file, boolean images,
                                  boolean texts) throws IOException {
        JsonFactory json = new JsonFactory();
        try (FSDataOutputStream out = fs.create(file, true);
             JsonGenerator g = json.createGenerator((OutputStream) out).configure(JsonGenerator.Feature.AUTO_CLOSE_TARGET, false)) {
            while (rows.hasNext()) {
                PartitionEmbedder.Embedded e = rows.next();
                g.writeStartObject();
                g.writeStringField("path", e.path());
                if (images) writeArray(g, "image_embedding", e.image());
                if (texts) writeArray(g, "text_embedding", e.text());
                g.writeStringField("error", e.error());
                g.writeEndObject();
                g.writeRaw('\n');
            }
        }
    }

    private static void writeArray(JsonGenerator g, String field, float[] values) throws IOException {
        if (values == null) {
            g.writeNullField(field);
            return;
        }
        g.writeArrayFieldStart(field);
        for (float v : values) g.writeNumber(v);
        g.writeEndArray();
    }
}
