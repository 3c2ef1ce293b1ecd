"""gpu-bundle/peer.py (template: scripts/gpu-peer.py): the GPU benchmarks of org.clipj.kernels.GpuLaunchBench
in PyTorch, same names and units, one JSON object per line (medians of 5 runs after warm-up)."""
import json
import statistics
import time

import torch

dev = torch.device("cuda")
NAME = "pytorch %s cuda %s" % (torch.__version__.split("+")[0], torch.version.cuda)


def emit(name, unit, value):
    print(json.dumps({"suite": "gpu", "name": name, "unit": unit, "peer": round(value, 4), "peer_name": NAME,
                      "device": torch.cuda.get_device_name(0)}), flush=True)


def median_of(fn, runs=5, warmup=2):
    for _ in range(warmup):
        fn()
    return statistics.median(fn() for _ in range(runs))


def launch():
    x = torch.empty(1, device=dev)
    n = 20000

    def run():
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        for i in range(n):
            x.fill_(i)
        torch.cuda.synchronize()
        return (time.perf_counter() - t0) * 1e6 / n
    emit("launch-panama", "us", median_of(run))


def graph():
    x = torch.empty(1, device=dev)
    s = torch.cuda.Stream()
    s.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(s):
        x.fill_(0)
    torch.cuda.current_stream().wait_stream(s)
    g = torch.cuda.CUDAGraph()
    with torch.cuda.graph(g):
        for i in range(100):
            x.fill_(i)

    def run():
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        for _ in range(200):
            g.replay()
        torch.cuda.synchronize()
        return (time.perf_counter() - t0) * 1e6 / 20000
    emit("graph-kernel-panama", "us", median_of(run))


def gemm(dtype, tf32, label):
    n = 4096
    torch.backends.cuda.matmul.allow_tf32 = tf32
    a = torch.full((n, n), 0.01, device=dev, dtype=dtype)
    b = torch.full((n, n), 0.01, device=dev, dtype=dtype)

    def run():
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(10):
            torch.matmul(a, b.t())
        end.record()
        end.synchronize()
        return 10 * 2.0 * n ** 3 / (start.elapsed_time(end) * 1e-3) / 1e12
    emit("gemm-%d-%s" % (n, label), "TFLOP/s", median_of(run))


def upload():
    nbytes = 256 << 20
    host = torch.empty(nbytes, dtype=torch.uint8).pin_memory()
    d = torch.empty(nbytes, dtype=torch.uint8, device=dev)

    def run():
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        d.copy_(host, non_blocking=True)
        end.record()
        end.synchronize()
        return nbytes / (start.elapsed_time(end) * 1e-3) / 1e9
    emit("upload-pinned-256MiB", "GB/s", median_of(run))


launch()
graph()
gemm(torch.bfloat16, False, "bf16")
gemm(torch.float16, False, "f16")
gemm(torch.float32, False, "f32")
gemm(torch.float32, True, "f32-tf32")
upload()
