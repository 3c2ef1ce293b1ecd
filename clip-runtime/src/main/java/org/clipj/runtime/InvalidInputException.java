package org.clipj.runtime;

/**
 * Input that cannot be used: a malformed checkpoint, a tensor of the wrong shape, a bad argument,
 * an unreadable image. The CLI reports it as one line and exits with status 2.
 */
public class InvalidInputException extends RuntimeException {
    public InvalidInputException(String message) {
        super(message);
    }

    public InvalidInputException(String message, Throwable cause) {
        super(message, cause);
    }
}
