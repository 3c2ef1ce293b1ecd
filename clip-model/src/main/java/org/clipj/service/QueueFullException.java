package org.clipj.service;

import java.util.concurrent.RejectedExecutionException;

/** {@link ClipService} refused a submission because its bounded queue has no room for it (back-pressure: retry later). */
public final class QueueFullException extends RejectedExecutionException {
    public QueueFullException(String message) {
        super(message);
    }
}
