"""PyTorch CPU peer for `scripts/bench encoders`: the ViT-B/32 towers of export_onnx.py, loaded from
the same model.safetensors clipj and ONNX Runtime use, checked against the reference features in
inputs.safetensors, then timed; and the load time of the same weights saved F16 by torch.save.

Usage: encoders_torch.py THREADS DIR   (DIR written by export_onnx.py)
Prints one JSON object per benchmark: {"name", "ms", "p50_ms", "p99_ms", "samples"}: per-call
times over five seconds and at least 100 calls after three seconds of warm-up (as the JMH run
samples them), ms the median; for checkpoint-load-vit-b32-f16 the median of five single loads
after two warm-up loads.
"""
import json
import os
import statistics
import sys
import time

import torch
import torch.nn.functional as F

from export_onnx import build, read_safetensors
from timing import sample_ms, summary


def single_shot_ms(fn, warmup=2, measure=5):
    times = []
    for i in range(warmup + measure):
        start = time.perf_counter()
        fn()
        if i >= warmup:
            times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def main():
    threads, folder = int(sys.argv[1]), sys.argv[2]
    torch.set_num_threads(threads)
    model = build("ViT-B/32", 0)
    model.load_state_dict(read_safetensors(os.path.join(folder, "model.safetensors")))
    ref = read_safetensors(os.path.join(folder, "inputs.safetensors"))
    pixels, tokens = ref["pixels"], ref["tokens"].long()
    with torch.inference_mode():
        for tower, fn, x in (("image", model.encode_image, pixels), ("text", model.encode_text, tokens)):
            cos = F.cosine_similarity(fn(x), ref[tower], dim=-1).min().item()
            if cos < 0.9999:
                sys.exit("encoders_torch: %s features disagree with the reference (min cosine %.6f)" % (tower, cos))
        for batch in (1, 8):
            p, t = pixels[:batch].contiguous(), tokens[:batch].contiguous()
            for name, fn in (("vit-b32-image-b%d" % batch, lambda: model.encode_image(p)),
                             ("vit-b32-text-b%d" % batch, lambda: model.encode_text(t))):
                print(json.dumps(dict(summary(sample_ms(fn)), name=name)), flush=True)
    path = os.path.join(folder, "model-f16.pt")
    fresh = build("ViT-B/32", 1)
    load = lambda: fresh.load_state_dict(torch.load(path))
    print(json.dumps({"name": "checkpoint-load-vit-b32-f16", "ms": single_shot_ms(load)}), flush=True)


if __name__ == "__main__":
    main()
