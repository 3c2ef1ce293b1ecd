package org.clipj.spark;

import org.apache.hadoop.conf.Configuration;

import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.DataInputStream;
import java.io.DataOutputStream;
import java.io.IOException;
import java.io.Serializable;
import java.io.UncheckedIOException;

/** The driver's Hadoop configuration (credentials, filesystems) carried to the executors as its Writable bytes. */
final class HadoopConf implements Serializable {
    private static final long serialVersionUID = 1L;
    private final byte[] bytes;
    private transient Configuration conf;

    HadoopConf(Configuration conf) {
        try (ByteArrayOutputStream out = new ByteArrayOutputStream(); DataOutputStream data = new DataOutputStream(out)) {
            conf.write(data);
            data.flush();
            this.bytes = out.toByteArray();
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
        this.conf = conf;
    }

    Configuration get() {
        Configuration c = conf;
        if (c == null) {
            c = new Configuration(false);
            try (DataInputStream in = new DataInputStream(new ByteArrayInputStream(bytes))) {
                c.readFields(in);
            } catch (IOException e) {
                throw new UncheckedIOException(e);
            }
            conf = c;
        }
        return c;
    }
}
