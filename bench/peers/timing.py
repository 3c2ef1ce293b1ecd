"""Timing and BLAS helpers shared by the PyTorch peers of `scripts/bench`.

Every timed call is one sample, as JMH's SampleTime mode does for clipj, so the peers report the
same p50 and p99 from at least MIN_SAMPLES calls (a p99 needs about a hundred).
"""
import ctypes
import time

MIN_SAMPLES = 100


def sample_ms(fn, warmup_s=3.0, measure_s=5.0, min_samples=MIN_SAMPLES):
    """Per-call times in ms of fn after warmup_s of warm-up, for measure_s and at least min_samples calls."""
    start = time.perf_counter()
    while time.perf_counter() - start < warmup_s:
        fn()
    times, start = [], time.perf_counter()
    while len(times) < min_samples or time.perf_counter() - start < measure_s:
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
    return times


def percentile(times, q):
    """The q-th percentile (0..100) of times, linearly interpolated between the closest ranks."""
    xs = sorted(times)
    pos = (len(xs) - 1) * q / 100.0
    lo = int(pos)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def summary(times):
    """{"ms": p50, "p50_ms", "p99_ms", "samples"} of per-call times."""
    p50 = percentile(times, 50)
    return {"ms": p50, "p50_ms": p50, "p99_ms": percentile(times, 99), "samples": len(times)}


def blas_kernel():
    """The BLAS this process loaded and the kernel it runs, e.g. "OpenBLAS 0.3.21 DYNAMIC_ARCH ... (core SkylakeX)".

    Read from the loaded libraries themselves (OpenBLAS's openblas_get_config/openblas_get_corename;
    call after importing torch), so an OPENBLAS_CORETYPE override shows in the core name.
    """
    paths = []
    with open("/proc/self/maps") as maps:
        for line in maps:
            path = line.split()[-1]
            if "blas" in path.rsplit("/", 1)[-1] and path not in paths:
                paths.append(path)
    for path in paths:
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        config = getattr(lib, "openblas_get_config", None)
        if config is None:
            continue
        config.restype = ctypes.c_char_p
        text = config().decode()
        core = getattr(lib, "openblas_get_corename", None)
        if core is not None:
            core.restype = ctypes.c_char_p
            text += " (core %s)" % core().decode()
        return text
    return "no OpenBLAS loaded (%s)" % (", ".join(paths) or "no BLAS library in the process maps")
