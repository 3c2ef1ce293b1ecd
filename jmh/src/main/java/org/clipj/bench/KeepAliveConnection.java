package org.clipj.bench;

import java.io.BufferedInputStream;
import java.io.BufferedOutputStream;
import java.io.ByteArrayOutputStream;
import java.io.EOFException;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.nio.charset.StandardCharsets;
import java.util.Locale;

/**
 * One blocking HTTP/1.1 keep-alive connection of a load-generator client, as wrk keeps one per
 * connection: a request is a write and a read on the client's own thread, with no selector thread and no
 * hand-offs, so the load generator costs little beside the server it shares the cores with (the JDK's
 * {@code HttpClient} spends several times the server's own per-request time on a loopback). Understands
 * exactly what {@code clip serve} answers: a status line, headers, a {@code Content-Length} body.
 */
final class KeepAliveConnection implements AutoCloseable {
    private final String host;
    private final int port;
    private Socket socket;
    private OutputStream out;
    private InputStream in;

    KeepAliveConnection(String host, int port) {
        this.host = host;
        this.port = port;
    }

    /** Sends one request and reads the whole answer; returns its status and body. */
    Response exchange(String method, String path, byte[] body) throws IOException {
        if (socket == null) {
            connect();
        }
        try {
            return roundTrip(method, path, body);
        } catch (IOException e) {
            close();   // the server may have closed an idle connection: one retry on a fresh one
            connect();
            return roundTrip(method, path, body);
        }
    }

    record Response(int status, byte[] body, boolean close) {
        String text() {
            return new String(body, StandardCharsets.UTF_8);
        }
    }

    private void connect() throws IOException {
        socket = new Socket();
        socket.setTcpNoDelay(true);
        socket.connect(new InetSocketAddress(host, port), 10_000);
        out = new BufferedOutputStream(socket.getOutputStream(), 64 * 1024);
        in = new BufferedInputStream(socket.getInputStream(), 64 * 1024);
    }

    private Response roundTrip(String method, String path, byte[] body) throws IOException {
        String head = method + " " + path + " HTTP/1.1\r\nHost: " + host + ":" + port + "\r\n"
                + (body == null ? "" : "Content-Type: application/json\r\nContent-Length: " + body.length + "\r\n") + "\r\n";
        out.write(head.getBytes(StandardCharsets.US_ASCII));
        if (body != null) {
            out.write(body);
        }
        out.flush();
        String status = line();
        String[] parts = status.split(" ", 3);
        if (parts.length < 2 || !parts[0].startsWith("HTTP/1.")) {
            throw new IOException("not an HTTP response: " + status);
        }
        int code = Integer.parseInt(parts[1]);
        int length = -1;
        boolean close = false;
        for (String h; !(h = line()).isEmpty(); ) {
            String lower = h.toLowerCase(Locale.ROOT);
            if (lower.startsWith("content-length:")) {
                length = Integer.parseInt(lower.substring(15).trim());
            } else if (lower.startsWith("connection:") && lower.contains("close")) {
                close = true;
            } else if (lower.startsWith("transfer-encoding:")) {
                throw new IOException("chunked answers are not expected from clip serve: " + h);
            }
        }
        byte[] data = length < 0 ? new byte[0] : in.readNBytes(length);
        if (data.length != Math.max(length, 0)) {
            throw new EOFException("answer ended after " + data.length + " of " + length + " bytes");
        }
        if (close) {
            close();
        }
        return new Response(code, data, close);
    }

    private String line() throws IOException {
        ByteArrayOutputStream b = new ByteArrayOutputStream(128);
        for (int c; (c = in.read()) != '\n'; ) {
            if (c < 0) {
                throw new EOFException("connection closed by the server");
            }
            if (c != '\r') {
                b.write(c);
            }
        }
        return b.toString(StandardCharsets.US_ASCII);
    }

    @Override
    public void close() {
        if (socket != null) {
            try {
                socket.close();
            } catch (IOException e) {
                // closing a broken connection: nothing left to do with it
            }
            socket = null;
        }
    }
}
