"""Reads one JMH result (an element of its -rf json output) as scripts/bench reports timings.

SampleTime runs time every call: p50 and p99 come from JMH's percentiles, samples from its raw
histogram. SingleShotTime runs (one call per iteration) give the same from their iterations.
"""


def stats(run):
    """{"ms": p50, "p50_ms", "p99_ms", "samples"} in the run's unit (ms in every clipj benchmark)."""
    metric = run["primaryMetric"]
    pct = metric["scorePercentiles"]
    if "rawDataHistogram" in metric:
        samples = sum(count for fork in metric["rawDataHistogram"] for it in fork for _, count in it)
    else:
        samples = sum(len(fork) for fork in metric["rawData"])
    return {"ms": pct["50.0"], "p50_ms": pct["50.0"], "p99_ms": pct["99.0"], "samples": samples}
