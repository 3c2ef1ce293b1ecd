package org.clipj.cli;

import picocli.CommandLine.Option;

import java.nio.file.Path;

/** Mixin: {@code --out FILE} for commands whose result is one JSON document (stdout otherwise). */
final class JsonOutput {
    @Option(names = "--out", paramLabel = "FILE", description = "Write the JSON result here instead of stdout.")
    Path file;
}
