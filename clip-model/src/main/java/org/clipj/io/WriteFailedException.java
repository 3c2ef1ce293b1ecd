package org.clipj.io;

import org.clipj.runtime.InvalidInputException;

import java.nio.file.Path;

/**
 * A file could not be written for a reason on the user's side (full disk, quota, read-only or
 * vanished folder, permission). Nothing half-written is left behind; the CLI reports the message
 * as one line and exits 2.
 */
public final class WriteFailedException extends InvalidInputException {
    private final Path path;

    public WriteFailedException(Path path, String message, Throwable cause) {
        super(message, cause);
        this.path = path;
    }

    /** The file or folder that could not be written. */
    public Path path() {
        return path;
    }
}
