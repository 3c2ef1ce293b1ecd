"""PyTorch CPU peer for `scripts/bench encoders`: the ViT-B/32 towers of export_onnx.py, loaded from
the same model.safetensors clipj and ONNX Runtime use, checked against the reference features in
inputs.safetensors, then timed; and the load time of the same weights saved F16 by torch.save.

Usage: encoders_torch.py THREADS DIR [CONFIG CASE...]   (DIR written by export_onnx.py for CONFIG)
CONFIG defaults to ViT-B/32 with every case (image-b1 text-b1 image-b8 text-b8) and the checkpoint
load; given CASEs, only those are timed (names vit-b32-gelu-... for ViT-B-32, open_clip's GELU one).
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
    name = sys.argv[3] if len(sys.argv) > 3 else "ViT-B/32"
    cases = sys.argv[4:] or ["image-b1", "text-b1", "image-b8", "text-b8"]
    prefix = "vit-b32" if name == "ViT-B/32" else "vit-b32-gelu"
    torch.set_num_threads(threads)
    model = build(name, 0)
    model.load_state_dict(read_safetensors(os.path.join(folder, "model.safetensors")))
    ref = read_safetensors(os.path.join(folder, "inputs.safetensors"))
    pixels, tokens = ref["pixels"], ref["tokens"].long()
    with torch.inference_mode():
        for tower, fn, x in (("image", model.encode_image, pixels), ("text", model.encode_text, tokens)):
            cos = F.cosine_similarity(fn(x), ref[tower], dim=-1).min().item()
            if cos < 0.9999:
                sys.exit("encoders_torch: %s features disagree with the reference (min cosine %.6f)" % (tower, cos))
        for case in cases:
            tower, batch = case.split("-b")
            x = (pixels if tower == "image" else tokens)[:int(batch)].contiguous()
            fn = (lambda: model.encode_image(x)) if tower == "image" else (lambda: model.encode_text(x))
            print(json.dumps(dict(summary(sample_ms(fn)), name="%s-%s" % (prefix, case))), flush=True)
    if len(sys.argv) > 4:
        return
    path = os.path.join(folder, "model-f16.pt")
    fresh = build("ViT-B/32", 1)
    load = lambda: fresh.load_state_dict(torch.load(path))
    print(json.dumps({"name": "checkpoint-load-vit-b32-f16", "ms": single_shot_ms(load)}), flush=True)


if __name__ == "__main__":
    main()
