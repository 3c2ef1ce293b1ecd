"""PyTorch CPU peer for `scripts/bench train`: one training step of the CLIP of export_onnx.py
(same architecture as clipj's), as org.clipj.bench.TrainStepBenchmark does it: zero_grad, both
towers forward, symmetric cross-entropy on L2-normalized features scaled by exp(logit_scale),
backward, AdamW (betas 0.9/0.98, eps 1e-6, weight decay 0.1 on open_clip's decay group).

Usage: train_torch.py THREADS CONFIG@BATCH ...   (CONFIG: ViT-B/32, tiny or tiny:VOCAB)
Prints one JSON object per spec: {"spec", "ms", "p50_ms", "p99_ms", "samples", "images_per_s"}:
STEPS single steps after three warm-up steps (as the JMH run does), ms the median.
"""
import json
import sys

import torch
import torch.nn.functional as F

from export_onnx import build, random_inputs
from timing import MIN_SAMPLES, sample_ms, summary

STEPS = MIN_SAMPLES   # as TrainStepBenchmark's measurement iterations


def decays(name, p):
    return p.ndim >= 2 and not any(s in name for s in ("bn", "ln", "bias", "logit_scale"))


def main():
    threads = int(sys.argv[1])
    torch.set_num_threads(threads)
    for spec in sys.argv[2:]:
        name, batch = spec.split("@")
        batch = int(batch)
        model = build(name, 0).train()
        params = list(model.named_parameters())
        optimizer = torch.optim.AdamW([
            {"params": [p for n, p in params if decays(n, p)], "weight_decay": 0.1},
            {"params": [p for n, p in params if not decays(n, p)], "weight_decay": 0.0}],
            lr=1e-4, betas=(0.9, 0.98), eps=1e-6)
        pixels, tokens = random_inputs(model, batch, 1)
        labels = torch.arange(batch)

        def step():
            optimizer.zero_grad(set_to_none=False)
            img = F.normalize(model.encode_image(pixels), dim=-1)
            txt = F.normalize(model.encode_text(tokens), dim=-1)
            logits = model.logit_scale.exp() * img @ txt.t()
            loss = (F.cross_entropy(logits, labels) + F.cross_entropy(logits.t(), labels)) / 2
            loss.backward()
            optimizer.step()

        stats = summary(sample_ms(step, warmup_s=0, measure_s=0, min_samples=STEPS + 3)[3:])
        stats.update(spec=spec, images_per_s=batch / stats["ms"] * 1e3)
        print(json.dumps(stats), flush=True)


if __name__ == "__main__":
    main()
