package org.clipj.server;

/**
 * A request the server answers with an error status and a JSON body
 * {@code {"error":{"message":..,"type":..,"param":..,"index":..}}} (param and index when an input is to blame).
 */
final class HttpError extends RuntimeException {
    final int status;
    final String type;
    final String param;          // e.g. "input[2]", or null
    final Integer index;         // the input's index, or null
    final Integer retryAfterSeconds;

    HttpError(int status, String type, String message, String param, Integer index, Integer retryAfterSeconds) {
        super(message);
        this.status = status;
        this.type = type;
        this.param = param;
        this.index = index;
        this.retryAfterSeconds = retryAfterSeconds;
    }

    static HttpError badRequest(String message) {
        return new HttpError(400, "invalid_request_error", message, null, null, null);
    }

    static HttpError badInput(String param, int index, String message) {
        return new HttpError(400, "invalid_request_error", message, param, index, null);
    }

    static HttpError unavailable(String message) {
        return new HttpError(503, "overloaded", message, null, null, 1);
    }
}
