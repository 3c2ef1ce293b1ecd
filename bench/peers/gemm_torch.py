"""PyTorch CPU peer for `scripts/bench gemm`: the same GEMMs as org.clipj.bench.GemmBenchmark.

Usage: gemm_torch.py THREADS LAYOUT:MxNxK ...   (LAYOUT nn: A(M,K) @ B(K,N); nt: A @ B(N,K)^T)
Prints one JSON object per shape: {"layout", "shape", "ms", "gflops"} with the median of five
one-second measurement windows after three one-second warm-up windows (as the JMH run does).
"""
import json
import statistics
import sys
import time

import torch


def window_ms(fn, seconds):
    """Mean time of fn in ms over a window of about `seconds`."""
    reps, start = 0, time.perf_counter()
    while True:
        fn()
        reps += 1
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            return elapsed / reps * 1e3


def main():
    threads = int(sys.argv[1])
    torch.set_num_threads(threads)
    torch.manual_seed(42)
    for spec in sys.argv[2:]:
        layout, shape = spec.split(":")
        m, n, k = (int(x) for x in shape.split("x"))
        a = torch.rand(m, k) * 2 - 1
        b = torch.rand(n, k) * 2 - 1 if layout == "nt" else torch.rand(k, n) * 2 - 1
        c = torch.empty(m, n)
        rhs = b.t() if layout == "nt" else b
        fn = lambda: torch.mm(a, rhs, out=c)
        for _ in range(3):
            window_ms(fn, 1.0)
        ms = statistics.median(window_ms(fn, 1.0) for _ in range(5))
        print(json.dumps({"layout": layout, "shape": shape, "ms": ms, "gflops": 2.0 * m * n * k / ms / 1e6}), flush=True)


if __name__ == "__main__":
    main()
