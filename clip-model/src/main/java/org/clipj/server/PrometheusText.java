package org.clipj.server;

import org.clipj.service.ClipService;
import org.clipj.service.Histogram;
import org.clipj.service.ServiceMetrics;

import java.util.Locale;
import java.util.Map;
import java.util.function.Function;

/** Writes metrics in the Prometheus text exposition format (version 0.0.4). */
final class PrometheusText {
    static final String CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8";

    private final StringBuilder out = new StringBuilder(8192);

    void header(String name, String type, String help) {
        out.append("# HELP ").append(name).append(' ').append(help).append('\n');
        out.append("# TYPE ").append(name).append(' ').append(type).append('\n');
    }

    void sample(String name, String labels, double value) {
        out.append(name);
        if (!labels.isEmpty()) {
            out.append('{').append(labels).append('}');
        }
        out.append(' ').append(number(value)).append('\n');
    }

    /** The _bucket, _sum and _count samples of one histogram (the header is the caller's). */
    void histogram(String name, String labels, Histogram h) {
        double[] bounds = h.bounds();
        long[] cumulative = h.cumulativeCounts();
        String prefix = labels.isEmpty() ? "" : labels + ",";
        for (int i = 0; i < bounds.length; i++) {
            sample(name + "_bucket", prefix + "le=\"" + number(bounds[i]) + "\"", cumulative[i]);
        }
        sample(name + "_bucket", prefix + "le=\"+Inf\"", cumulative[bounds.length]);
        sample(name + "_sum", labels, h.sum());
        sample(name + "_count", labels, cumulative[bounds.length]);
    }

    /** One histogram per kind of request. */
    void histogramPerKind(String name, String help, Function<ClipService.Kind, Histogram> of) {
        header(name, "histogram", help);
        for (ClipService.Kind kind : ClipService.Kind.values()) {
            histogram(name, kindLabel(kind), of.apply(kind));
        }
    }

    /** The service's counters, histograms and queue gauges. */
    void service(ServiceMetrics m) {
        header("clip_inputs_total", "counter", "Inputs (single texts or images) by kind and outcome.");
        for (ClipService.Kind kind : ClipService.Kind.values()) {
            for (ServiceMetrics.Outcome o : ServiceMetrics.Outcome.values()) {
                sample("clip_inputs_total", kindLabel(kind) + ",outcome=\"" + o.name().toLowerCase(Locale.ROOT) + "\"",
                        m.count(kind, o));
            }
        }
        histogramPerKind("clip_batch_size", "Inputs per forward pass.", m::batchSize);
        histogramPerKind("clip_queue_wait_seconds", "Time an input waited in the queue before its batch started.", m::queueWait);
        histogramPerKind("clip_inference_seconds", "Time of one forward pass (a whole batch).", m::inference);
        histogramPerKind("clip_input_latency_seconds", "Time from submission to a computed embedding.", m::latency);
        header("clip_queue_depth", "gauge", "Inputs accepted and not yet in a batch (decoding or queued).");
        sample("clip_queue_depth", "", m.queueDepth());
        header("clip_queue_capacity", "gauge", "Inputs that may wait before requests are refused (--max-queue).");
        sample("clip_queue_capacity", "", m.queueCapacity());
    }

    /** Requests by endpoint and status. */
    void requests(Map<String, Map<Integer, Long>> counts) {
        header("clip_http_requests_total", "counter", "HTTP requests by endpoint and status.");
        counts.forEach((endpoint, byStatus) -> byStatus.forEach((status, n) ->
                sample("clip_http_requests_total", "endpoint=\"" + endpoint + "\",status=\"" + status + "\"", n)));
    }

    static String kindLabel(ClipService.Kind kind) {
        return "kind=\"" + kind.name().toLowerCase(Locale.ROOT) + "\"";
    }

    /** Integers without a fraction, others as Java prints doubles (both valid Prometheus floats). */
    static String number(double v) {
        if (v == Math.rint(v) && Math.abs(v) < 1e15) {
            return Long.toString((long) v);
        }
        return Double.toString(v);
    }

    @Override
    public String toString() {
        return out.toString();
    }
}
