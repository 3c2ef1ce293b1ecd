"""PyTorch CPU peer for `scripts/bench load`: the F16 ViT-B/32 checkpoints, their load time and the
peak memory of one embedding.

  load_torch.py write DIR             writes DIR/model-f16.pt (torch.save of the F16 state dict) and
                                      DIR/model-f16-torchscript.pt (torch.jit.script of the F16 model:
                                      OpenAI's release format) of export_onnx.py's ViT-B/32, seed 0
  load_torch.py time THREADS DIR      prints {"name", "ms"} for checkpoint-load-vit-b32-f16-torch
                                      (torch.load + load_state_dict into a built F32 model) and
                                      checkpoint-load-vit-b32-f16-torchscript (torch.jit.load, its
                                      state_dict, load_state_dict): the median of five single loads
                                      after two warm-up loads
  load_torch.py embed THREADS FILE    what openai/CLIP's clip.load(jit=False) does on the CPU, then one
                                      image and one text embedded: the TorchScript archive loaded, an
                                      F32 model built from its state dict, the archive dropped; one
                                      (1, 3, 224, 224) image (no PIL here: random pixels instead of a
                                      decoded JPEG, which costs clipj under 2 MB) and one token row
                                      (SOT, 8 ids, EOT: the peer has no BPE tokenizer)
"""
import json
import os
import statistics
import sys
import time

import torch

from export_onnx import build


def single_shot_ms(fn, warmup=2, measure=5):
    times = []
    for i in range(warmup + measure):
        start = time.perf_counter()
        fn()
        if i >= warmup:
            times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def write(folder):
    os.makedirs(folder, exist_ok=True)
    model = build("ViT-B/32", 0).half()
    torch.save(model.state_dict(), os.path.join(folder, "model-f16.pt"))
    torch.jit.script(model).save(os.path.join(folder, "model-f16-torchscript.pt"))


def time_loads(folder):
    fresh = build("ViT-B/32", 1)
    torch_file = os.path.join(folder, "model-f16.pt")
    script_file = os.path.join(folder, "model-f16-torchscript.pt")
    print(json.dumps({"name": "checkpoint-load-vit-b32-f16-torch",
                      "ms": single_shot_ms(lambda: fresh.load_state_dict(torch.load(torch_file)))}), flush=True)
    print(json.dumps({"name": "checkpoint-load-vit-b32-f16-torchscript",
                      "ms": single_shot_ms(lambda: fresh.load_state_dict(
                          torch.jit.load(script_file, map_location="cpu").state_dict()))}), flush=True)


def embed(path):
    archive = torch.jit.load(path, map_location="cpu").eval()
    model = build("ViT-B/32", 0)
    model.load_state_dict(archive.state_dict())
    del archive
    model = model.float().eval()
    tokens = torch.zeros(1, 77, dtype=torch.int64)
    tokens[0, :10] = torch.tensor([49406, 320, 1125, 539, 320, 2368, 530, 518, 4932, 49407])
    with torch.inference_mode():
        image = model.encode_image(torch.randn(1, 3, 224, 224))
        text = model.encode_text(tokens)
    assert image.shape == (1, 512) and text.shape == (1, 512)


def main():
    mode = sys.argv[1]
    if mode == "write":
        write(sys.argv[2])
        return
    torch.set_num_threads(int(sys.argv[2]))
    if mode == "time":
        time_loads(sys.argv[3])
    elif mode == "embed":
        embed(sys.argv[3])
    else:
        sys.exit("load_torch.py: unknown mode " + mode)


if __name__ == "__main__":
    main()
