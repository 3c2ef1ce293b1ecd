package org.clipj.service;

import java.util.concurrent.TimeoutException;

/** A request's deadline passed while it waited in {@link ClipService}'s queue; it was not computed. */
public final class DeadlineExceededException extends TimeoutException {
    public DeadlineExceededException(String message) {
        super(message);
    }
}
