package org.clipj.cli;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import org.clipj.io.AtomicFiles;
import picocli.CommandLine;

import java.io.IOException;
import java.io.PrintWriter;
import java.io.UncheckedIOException;
import java.nio.file.Path;
import java.util.concurrent.Callable;

/**
 * Base of every subcommand: {@code --debug} and the two output channels (JSON on stdout or a
 * file, the human summary on stderr).
 */
public abstract class CliCommand implements Callable<Integer> {
    static final ObjectMapper JSON = new ObjectMapper().disable(SerializationFeature.FAIL_ON_EMPTY_BEANS);

    @CommandLine.Spec
    protected CommandLine.Model.CommandSpec spec;

    @CommandLine.Option(names = "--debug", description = "Print stack traces on errors.")
    protected boolean debug;

    /** Where the JSON result goes instead of stdout: the {@link JsonOutput} mixin's file, if the command has one. */
    protected Path jsonOutFile() {
        for (CommandLine.Model.CommandSpec mixin : spec.mixins().values()) {
            if (mixin.userObject() instanceof JsonOutput json) {
                return json.file;
            }
        }
        return null;
    }

    /** The human channel (stderr). */
    protected PrintWriter err() {
        return spec.commandLine().getErr();
    }

    /** Writes the machine-readable result: one JSON document on stdout, or to --out. */
    protected void emitJson(Object result) {
        String text;
        try {
            text = JSON.writeValueAsString(result);
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
        Path jsonOut = jsonOutFile();
        if (jsonOut != null) {
            AtomicFiles.writeString(jsonOut, text + "\n");
        } else {
            PrintWriter out = spec.commandLine().getOut();
            out.println(text);
            out.flush();
        }
    }
}
