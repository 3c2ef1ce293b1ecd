"""Builds the PyTorch twin of a clipj CLIP ViT from standard torch modules (nn.MultiheadAttention,
LayerNorm, QuickGELU; parameter names are OpenAI's), and writes what the encoder benchmarks share:

  model.safetensors   F32 state dict in OpenAI naming (clipj loads it with ClipModel.fromStateDict)
  model-f16.pt        the same weights as F16, torch.save (peer of the checkpoint-load benchmark)
  image.onnx, text.onnx  torch.onnx.export of the two towers, dynamic batch (ONNX Runtime peer)
  inputs.safetensors  pixels (8,3,R,R) F32, tokens (8,ctx) I32 and the PyTorch features of both
                      towers on them (image, text: (8,E) F32): the reference every peer must match

Usage: export_onnx.py OUT_DIR [CONFIG] [SEED]   (CONFIG: ViT-B/32, ViT-B-32 or tiny; vocab as clipj's ClipConfig)
ViT-B-32 is open_clip's name for the same architecture with exact GELU (nn.GELU) in the MLPs.
"""
import json
import os
import struct
import sys

import torch
from torch import nn

CONFIGS = {  # embed, resolution, width, layers, patch, context, vocab, text width, text layers
    "ViT-B/32": (512, 224, 768, 12, 32, 77, 49408, 512, 12),
    "ViT-B-32": (512, 224, 768, 12, 32, 77, 49408, 512, 12),
}
GELU_CONFIGS = {"ViT-B-32"}  # exact GELU in the MLPs; the others use OpenAI's QuickGELU


def config(name, vocab=None):
    if name.startswith("tiny"):
        # clipj's ClipConfig.named("tiny"), optionally with the demo's smaller BPE vocabulary ("tiny:914")
        v = int(name.split(":")[1]) if ":" in name else 49408
        return (64, 32, 128, 3, 8, 32, v, 128, 3)
    return CONFIGS[name]


class QuickGELU(nn.Module):
    def forward(self, x):
        return x * torch.sigmoid(1.702 * x)


class ResidualAttentionBlock(nn.Module):
    def __init__(self, width, heads, attn_mask=None, gelu=False):
        super().__init__()
        self.attn = nn.MultiheadAttention(width, heads)
        self.ln_1 = nn.LayerNorm(width)
        self.mlp = nn.Sequential()
        self.mlp.add_module("c_fc", nn.Linear(width, width * 4))
        self.mlp.add_module("gelu", nn.GELU() if gelu else QuickGELU())
        self.mlp.add_module("c_proj", nn.Linear(width * 4, width))
        self.ln_2 = nn.LayerNorm(width)
        self.attn_mask = attn_mask

    def forward(self, x):  # (T, B, C)
        y = self.ln_1(x)
        x = x + self.attn(y, y, y, need_weights=False, attn_mask=self.attn_mask)[0]
        return x + self.mlp(self.ln_2(x))


class Transformer(nn.Module):
    def __init__(self, width, layers, heads, attn_mask=None, gelu=False):
        super().__init__()
        self.resblocks = nn.Sequential(*[ResidualAttentionBlock(width, heads, attn_mask, gelu) for _ in range(layers)])

    def forward(self, x):
        return self.resblocks(x)


class VisionTransformer(nn.Module):
    def __init__(self, resolution, patch, width, layers, heads, embed, gelu=False):
        super().__init__()
        scale = width ** -0.5
        self.conv1 = nn.Conv2d(3, width, kernel_size=patch, stride=patch, bias=False)
        self.class_embedding = nn.Parameter(scale * torch.randn(width))
        self.positional_embedding = nn.Parameter(scale * torch.randn((resolution // patch) ** 2 + 1, width))
        self.ln_pre = nn.LayerNorm(width)
        self.transformer = Transformer(width, layers, heads, gelu=gelu)
        self.ln_post = nn.LayerNorm(width)
        self.proj = nn.Parameter(scale * torch.randn(width, embed))

    def forward(self, x):  # (B, 3, R, R) -> (B, E)
        x = self.conv1(x)
        x = x.reshape(x.shape[0], x.shape[1], -1).permute(0, 2, 1)  # (B, P, C)
        cls = self.class_embedding.to(x.dtype) + torch.zeros(x.shape[0], 1, x.shape[-1], dtype=x.dtype)
        x = torch.cat([cls, x], dim=1) + self.positional_embedding.to(x.dtype)
        x = self.ln_pre(x).permute(1, 0, 2)
        x = self.transformer(x).permute(1, 0, 2)
        return self.ln_post(x[:, 0, :]) @ self.proj


class Clip(nn.Module):
    """openai/CLIP's CLIP for a ViT, with its initialize_parameters."""

    def __init__(self, embed, resolution, vision_width, vision_layers, patch, context, vocab, width, layers, gelu=False):
        super().__init__()
        self.visual = VisionTransformer(resolution, patch, vision_width, vision_layers, max(1, vision_width // 64), embed, gelu)
        mask = torch.full((context, context), float("-inf")).triu_(1)
        self.transformer = Transformer(width, layers, max(1, width // 64), mask, gelu)
        self.token_embedding = nn.Embedding(vocab, width)
        self.positional_embedding = nn.Parameter(torch.empty(context, width))
        self.ln_final = nn.LayerNorm(width)
        self.text_projection = nn.Parameter(torch.empty(width, embed))
        self.logit_scale = nn.Parameter(torch.ones([]) * torch.log(torch.tensor(1 / 0.07)))
        nn.init.normal_(self.token_embedding.weight, std=0.02)
        nn.init.normal_(self.positional_embedding, std=0.01)
        proj_std = (width ** -0.5) * ((2 * layers) ** -0.5)
        for block in self.transformer.resblocks:
            nn.init.normal_(block.attn.in_proj_weight, std=width ** -0.5)
            nn.init.normal_(block.attn.out_proj.weight, std=proj_std)
            nn.init.normal_(block.mlp.c_fc.weight, std=(2 * width) ** -0.5)
            nn.init.normal_(block.mlp.c_proj.weight, std=proj_std)
        nn.init.normal_(self.text_projection, std=width ** -0.5)

    def encode_image(self, pixels):
        return self.visual(pixels)

    def encode_text(self, tokens):  # (B, T) -> (B, E); the EOT token has the largest id
        x = self.token_embedding(tokens) + self.positional_embedding
        x = self.transformer(x.permute(1, 0, 2)).permute(1, 0, 2)
        x = self.ln_final(x)
        return x[torch.arange(x.shape[0]), tokens.argmax(dim=-1)] @ self.text_projection


class ImageTower(nn.Module):
    def __init__(self, clip):
        super().__init__()
        self.clip = clip

    def forward(self, pixels):
        return self.clip.encode_image(pixels)


class TextTower(nn.Module):
    def __init__(self, clip):
        super().__init__()
        self.clip = clip

    def forward(self, tokens):
        return self.clip.encode_text(tokens)


def build(name, seed):
    torch.manual_seed(seed)
    return Clip(*config(name), gelu=name in GELU_CONFIGS).eval()


def random_inputs(model, batch, seed):
    """Pixels ~ N(0,1) and token rows SOT, random ids, EOT at a random length, zero padding."""
    g = torch.Generator().manual_seed(seed)
    res = model.visual.conv1.kernel_size[0] * int(round((model.visual.positional_embedding.shape[0] - 1) ** 0.5))
    context, vocab = model.positional_embedding.shape[0], model.token_embedding.weight.shape[0]
    pixels = torch.randn(batch, 3, res, res, generator=g)
    tokens = torch.zeros(batch, context, dtype=torch.int64)
    for b in range(batch):
        n = int(torch.randint(1, context - 1, (1,), generator=g))
        tokens[b, 0] = vocab - 2
        tokens[b, 1:n + 1] = torch.randint(1, vocab - 2, (n,), generator=g)
        tokens[b, n + 1] = vocab - 1
    return pixels, tokens


DTYPES = {torch.float32: "F32", torch.float16: "F16", torch.int32: "I32", torch.int64: "I64"}


def write_safetensors(path, tensors):
    header, blobs, offset = {}, [], 0
    for name, t in tensors.items():
        data = t.detach().contiguous().cpu().numpy().tobytes()
        header[name] = {"dtype": DTYPES[t.dtype], "shape": list(t.shape), "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(raw)))
        f.write(raw)
        for blob in blobs:
            f.write(blob)


def read_safetensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        body = f.read()
    torch_types = {v: k for k, v in DTYPES.items()}
    out = {}
    for name, h in header.items():
        if name == "__metadata__":
            continue
        a, b = h["data_offsets"]
        out[name] = torch.frombuffer(bytearray(body[a:b]), dtype=torch_types[h["dtype"]]).reshape(h["shape"])
    return out


def main():
    out, name = sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else "ViT-B/32"
    seed = int(sys.argv[3]) if len(sys.argv) > 3 else 0
    os.makedirs(out, exist_ok=True)
    model = build(name, seed)
    state = {k: v for k, v in model.state_dict().items()}
    write_safetensors(os.path.join(out, "model.safetensors"), state)
    torch.save({k: v.half() for k, v in state.items()}, os.path.join(out, "model-f16.pt"))
    pixels, tokens = random_inputs(model, 8, seed + 1)
    with torch.no_grad():
        image, text = model.encode_image(pixels), model.encode_text(tokens)
    write_safetensors(os.path.join(out, "inputs.safetensors"),
                      {"pixels": pixels, "tokens": tokens.int(), "image": image, "text": text})
    kw = dict(opset_version=14, do_constant_folding=True, dynamic_axes={"input": {0: "batch"}, "features": {0: "batch"}},
              input_names=["input"], output_names=["features"])
    torch.onnx.export(ImageTower(model), (pixels,), os.path.join(out, "image.onnx"), **kw)
    torch.onnx.export(TextTower(model), (tokens,), os.path.join(out, "text.onnx"), **kw)
    print("export_onnx: wrote %s for %s seed %d" % (out, name, seed), file=sys.stderr)


if __name__ == "__main__":
    main()
