"""PyTorch CPU peer for `scripts/bench gemm`: the same GEMMs as org.clipj.bench.GemmBenchmark.

Usage: gemm_torch.py THREADS LAYOUT:MxNxK ...   (LAYOUT nn: A(M,K) @ B(K,N); nt: A @ B(N,K)^T)
Prints one JSON object per shape: {"layout", "shape", "ms", "p50_ms", "p99_ms", "samples", "gflops"}:
per-call times over five seconds (and at least 100 calls) after three seconds of warm-up, as the
JMH run samples them; ms is the median.
"""
import json
import sys

import torch

from timing import sample_ms, summary


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
        stats = summary(sample_ms(fn))
        stats.update(layout=layout, shape=shape, gflops=2.0 * m * n * k / stats["ms"] / 1e6)
        print(json.dumps(stats), flush=True)


if __name__ == "__main__":
    main()
