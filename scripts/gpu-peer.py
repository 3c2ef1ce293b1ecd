"""gpu-bundle/peer.py (template: scripts/gpu-peer.py): the GPU benchmarks of org.clipj.kernels.GpuLaunchBench and
org.clipj.model.ClipGpuBench in PyTorch, same names, units and nominal FLOPs/bytes, one JSON object per line.
Ops in F32 with TF32 off (as clipj's cuBLASLt F32), BF16 rows in BF16; the encoders under BF16 autocast with SDPA
(both encoders at batch 1 as replayed CUDA graphs, as clipj's rows), the training step in F32 weights under
BF16 autocast with AdamW. Timing as ClipGpuBench: medians of 5 runs after 2 warm-up runs, each run repeating the call
until it lasts about 2 ms, the device synchronized around it.
Usage: peer.py [--device cuda|cpu] [--shapes clip|tiny]   (cpu and tiny: a quick check of this script off the GPU)"""
import argparse
import json
import math
import statistics
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

ap = argparse.ArgumentParser()
ap.add_argument("--device", default="cuda")
ap.add_argument("--shapes", default="clip", choices=["clip", "tiny"])
cli = ap.parse_args()
dev = torch.device(cli.device)
CUDA = dev.type == "cuda"
NAME = "pytorch %s %s" % (torch.__version__.split("+")[0], ("cuda %s" % torch.version.cuda) if CUDA else "cpu")
DEVICE = torch.cuda.get_device_name(0) if CUDA else "cpu"
SDPA = getattr(F, "scaled_dot_product_attention", None)  # torch >= 2.0

# As ClipGpuBench.Sizes: model label, batches, tokens, width, heads, MLP, attention pool (L, C, heads), contrastive N,
# embed, classes, training batch, warm-ups, runs, ms per run; then the CLIP config (embed, resolution, width, layers,
# patch, context, vocab, text width, text layers; heads are width / 64).
SIZES = {
    "clip": dict(model="vit-b32", batches=[1, 256], ti=50, tt=77, width=768, heads=12, mlp=3072, pool=(50, 2048, 32),
                 contrastive=[256, 4096], embed=512, classes=1000, train_batch=256, warmups=2, runs=5, run_ms=2.0,
                 config=(512, 224, 768, 12, 32, 77, 49408, 512, 12)),
    "tiny": dict(model="tiny", batches=[1, 2], ti=5, tt=7, width=128, heads=2, mlp=512, pool=(5, 128, 2),
                 contrastive=[16, 64], embed=64, classes=10, train_batch=2, warmups=1, runs=1, run_ms=0.0,
                 config=(64, 32, 128, 3, 8, 32, 49408, 128, 3)),
}[cli.shapes]


def emit(name, unit, value, **extra):
    row = {"suite": "gpu", "name": name, "unit": unit, "peer": round(value, 5), "peer_name": NAME, "device": DEVICE}
    row.update(extra)
    print(json.dumps(row), flush=True)


def sync():
    if CUDA:
        torch.cuda.synchronize()


def elapsed_ms(fn, reps):
    t0 = time.perf_counter()
    for _ in range(reps):
        fn()
    sync()
    return (time.perf_counter() - t0) * 1e3


def median_ms(fn):
    sync()
    reps = 1
    if SIZES["run_ms"] > 0:
        one = elapsed_ms(fn, 1)
        reps = int(max(1, min(1000, math.ceil(SIZES["run_ms"] / max(one, 1e-3)))))
    for _ in range(SIZES["warmups"]):
        elapsed_ms(fn, reps)
    return statistics.median(elapsed_ms(fn, reps) / reps for _ in range(SIZES["runs"]))


def rate(name, flops, work, fn):
    try:
        ms = median_ms(fn)
        emit(name, "TFLOP/s" if flops else "GB/s", work / (ms * 1e-3) / (1e12 if flops else 1e9), ms=round(ms, 5))
    except Exception as e:  # one failing row must not hide the others
        print(json.dumps({"suite": "gpu", "name": name, "peer_name": NAME, "error": repr(e)}), flush=True)


def timed(name, fn, **extra):
    try:
        emit(name, "ms", median_ms(fn), **extra)
    except Exception as e:
        print(json.dumps({"suite": "gpu", "name": name, "peer_name": NAME, "error": repr(e)}), flush=True)


def rnd(*shape, dtype=torch.float32):
    return (torch.rand(*shape, device=dev) - 0.5).to(dtype)


def attend(q, k, v, causal):
    """q, k, v (B, H, T, hd) -> (B, H, T, hd): SDPA where torch has it, else the same math."""
    if SDPA is not None:
        return SDPA(q, k, v, is_causal=causal)
    s = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])
    if causal:
        t = q.shape[-2]
        s = s.masked_fill(torch.ones(t, t, dtype=torch.bool, device=q.device).triu(1), float("-inf"))
    return torch.softmax(s.float(), -1).to(q.dtype) @ v


# ------------------------------------------------------------------ the platform rows (GpuLaunchBench)

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
    emit("launch-panama", "us", statistics.median(run() for _ in range(7)))


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
    emit("graph-kernel-panama", "us", statistics.median(run() for _ in range(7)))


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
    run()
    emit("gemm-%d-%s" % (n, label), "TFLOP/s", statistics.median(run() for _ in range(5)))
    torch.backends.cuda.matmul.allow_tf32 = False


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
    run()
    emit("upload-pinned-256MiB", "GB/s", statistics.median(run() for _ in range(5)))


# ------------------------------------------------------------------ ClipGpuBench's op rows

def ops(b):
    c, h, ti, tt, mlp = SIZES["width"], SIZES["heads"], SIZES["ti"], SIZES["tt"], SIZES["mlp"]
    hd, rows = c // h, b * ti
    x, w, bias = rnd(rows, c), rnd(c), rnd(c)
    y, mean, rstd = torch.ops.aten.native_layer_norm(x, [c], w, bias, 1e-5)
    rate("layernorm-fwd-f32-%dx%d" % (rows, c), False, 2.0 * rows * c * 4,
         lambda: torch.ops.aten.native_layer_norm(x, [c], w, bias, 1e-5))
    rate("layernorm-bwd-f32-%dx%d" % (rows, c), False, 4.0 * rows * c * 4,
         lambda: torch.ops.aten.native_layer_norm_backward(y, x, [c], mean, rstd, w, bias, [True, True, True]))
    attention(b, ti, h, hd, False)
    attention(b, tt, h, hd, True)
    pl, pc, ph = SIZES["pool"]
    q, k, v = rnd(b, ph, 1, pc // ph), rnd(b, pl, pc), rnd(b, pl, pc)
    kh, vh = (t.view(b, pl, ph, pc // ph).transpose(1, 2) for t in (k, v))
    rate("attention-pool-fwd-f32-b%d-l%d-c%d-h%d" % (b, pl, pc, ph), False, (2.0 * b * pl * pc + 2.0 * b * pc) * 4,
         lambda: attend(q, kh, vh, False))
    for i, o in ((c, 3 * c), (c, mlp), (mlp, c)):
        xin, w32, b32 = rnd(rows, i), rnd(o, i), rnd(o)
        w16, b16 = w32.to(torch.bfloat16), b32.to(torch.bfloat16)
        flops, shape = 2.0 * rows * i * o, "%dx%dx%d" % (rows, i, o)
        rate("linear-f32-" + shape, True, flops, lambda: F.linear(xin, w32, b32))
        rate("linear-bf16-" + shape, True, flops, lambda: F.linear(xin.to(torch.bfloat16), w16, b16))
    act, act16 = rnd(rows, c), torch.empty(rows, c, device=dev, dtype=torch.bfloat16)
    rate("cast-f32-bf16-%dx%d" % (rows, c), False, 6.0 * rows * c, lambda: act16.copy_(act))
    rate("cast-bf16-f32-%dx%d" % (rows, c), False, 6.0 * rows * c, lambda: act.copy_(act16))
    hidden = rnd(rows, mlp)
    rate("quickgelu-fwd-f32-%dx%d" % (rows, mlp), False, 8.0 * rows * mlp, lambda: hidden * torch.sigmoid(1.702 * hidden))
    logits = rnd(b, SIZES["classes"])
    rate("softmax-f32-%dx%d" % (b, SIZES["classes"]), False, 8.0 * b * SIZES["classes"], lambda: torch.softmax(logits, -1))


def attention(b, t, h, hd, causal):
    shape = "%sb%d-t%d-h%dx%d" % ("causal-" if causal else "", b, t, h, hd)
    flops = 4.0 * b * h * t * t * hd * (0.5 if causal else 1.0)
    qkv = rnd(b, t, 3, h, hd).permute(2, 0, 3, 1, 4)  # (3, B, H, T, hd) views of the packed (B, T, 3C)
    q, k, v = (z.detach().requires_grad_() for z in qkv)
    def forward():
        with torch.no_grad():  # q, k and v require grad for the backward row only
            return attend(q, k, v, causal)
    rate("attention-fwd-f32-" + shape, True, flops, forward)
    out = attend(q, k, v, causal)
    dout = torch.rand_like(out)
    rate("attention-bwd-f32-" + shape, True, 2.5 * flops,
         lambda: torch.autograd.grad(out, (q, k, v), dout, retain_graph=True))
    q16, k16, v16 = (z.detach().to(torch.bfloat16).requires_grad_() for z in qkv)
    def forward16():
        with torch.no_grad():
            return attend(q16, k16, v16, causal)
    rate("attention-fwd-bf16-" + shape, True, flops, forward16)
    out16 = attend(q16, k16, v16, causal)
    dout16 = dout.to(torch.bfloat16)
    rate("attention-bwd-bf16-" + shape, True, 2.5 * flops,
         lambda: torch.autograd.grad(out16, (q16, k16, v16), dout16, retain_graph=True))


def contrastive(n):
    d = SIZES["embed"]
    img = F.normalize(torch.randn(n, d, device=dev), dim=-1).requires_grad_()
    txt = F.normalize(torch.randn(n, d, device=dev), dim=-1).requires_grad_()
    scale = torch.tensor(math.log(1 / 0.07), device=dev, requires_grad=True)
    labels = torch.arange(n, device=dev)

    def step():
        s = scale.exp() * img @ txt.t()
        loss = (F.cross_entropy(s, labels) + F.cross_entropy(s.t(), labels)) / 2
        return torch.autograd.grad(loss, (img, txt, scale))
    rate("contrastive-fwd-bwd-f32-n%d-d%d" % (n, d), True, 6.0 * n * n * d, step)

    def step_bf16():  # BF16 autocast, as clipj's BF16 training: the logits GEMM in BF16, cross_entropy in F32
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=CUDA, cache_enabled=False):
            s = scale.exp() * img @ txt.t()
            loss = (F.cross_entropy(s, labels) + F.cross_entropy(s.t(), labels)) / 2
        return torch.autograd.grad(loss, (img, txt, scale))
    rate("contrastive-fwd-bwd-bf16-n%d-d%d" % (n, d), True, 6.0 * n * n * d, step_bf16)


# ------------------------------------------------------------------ CLIP (openai/CLIP's ViT model, SDPA attention)

class Block(nn.Module):
    def __init__(self, width, causal):
        super().__init__()
        self.heads, self.causal = width // 64, causal
        self.ln_1, self.ln_2 = nn.LayerNorm(width), nn.LayerNorm(width)
        self.in_proj, self.out_proj = nn.Linear(width, 3 * width), nn.Linear(width, width)
        self.c_fc, self.c_proj = nn.Linear(width, 4 * width), nn.Linear(4 * width, width)

    def forward(self, x):
        b, t, c = x.shape
        q, k, v = self.in_proj(self.ln_1(x)).view(b, t, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        x = x + self.out_proj(attend(q, k, v, self.causal).transpose(1, 2).reshape(b, t, c))
        h = self.c_fc(self.ln_2(x))
        return x + self.c_proj(h * torch.sigmoid(1.702 * h))


class Clip(nn.Module):
    def __init__(self, embed, res, width, layers, patch, ctx, vocab, twidth, tlayers):
        super().__init__()
        self.conv1 = nn.Conv2d(3, width, patch, patch, bias=False)
        self.cls = nn.Parameter(torch.randn(width) * width ** -0.5)
        self.pos = nn.Parameter(torch.randn((res // patch) ** 2 + 1, width) * width ** -0.5)
        self.ln_pre, self.ln_post = nn.LayerNorm(width), nn.LayerNorm(width)
        self.visual = nn.Sequential(*[Block(width, False) for _ in range(layers)])
        self.proj = nn.Parameter(torch.randn(width, embed) * width ** -0.5)
        self.tok = nn.Embedding(vocab, twidth)
        self.tpos = nn.Parameter(torch.randn(ctx, twidth) * 0.01)
        self.text = nn.Sequential(*[Block(twidth, True) for _ in range(tlayers)])
        self.ln_final = nn.LayerNorm(twidth)
        self.tproj = nn.Parameter(torch.randn(twidth, embed) * twidth ** -0.5)
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1 / 0.07)))

    def encode_image(self, px):
        x = self.conv1(px).flatten(2).transpose(1, 2)
        x = torch.cat([self.cls.to(x.dtype).expand(x.shape[0], 1, -1), x], 1) + self.pos.to(x.dtype)
        x = self.visual(self.ln_pre(x))
        return self.ln_post(x[:, 0]) @ self.proj

    def encode_text(self, ids):
        x = self.text(self.tok(ids) + self.tpos[: ids.shape[1]])
        x = self.ln_final(x)
        return x[torch.arange(ids.shape[0], device=ids.device), ids.argmax(-1)] @ self.tproj


def tokens(b, ctx, vocab):
    ids = torch.randint(1, vocab - 2, (b, ctx), device=dev)
    ids[:, 0], ids[:, -1] = vocab - 2, vocab - 1  # captions that fill the context, as ClipGpuBench's
    return ids


def models():
    embed, res, width, layers, patch, ctx, vocab, twidth, tlayers = SIZES["config"]
    label = SIZES["model"]
    model = Clip(*SIZES["config"]).to(dev)
    # (off on the CPU, whose autocast in older torch leaves LayerNorm's weights F32 beside BF16 inputs; no cast cache,
    # which CUDA graph capture does not allow, so every call casts the weights as the replayed graph does)
    autocast = lambda: torch.autocast(dev.type, dtype=torch.bfloat16, enabled=CUDA, cache_enabled=False)  # noqa: E731
    model.eval()
    with torch.inference_mode():
        for b in SIZES["batches"]:
            px, ids = rnd(b, 3, res, res), tokens(b, ctx, vocab)
            def image():
                with autocast():
                    return model.encode_image(px)

            def text():
                with autocast():
                    return model.encode_text(ids)
            for tower, forward in (("image", image), ("text", text)):
                if b == 1 and CUDA:
                    side = torch.cuda.Stream()
                    side.wait_stream(torch.cuda.current_stream())
                    with torch.cuda.stream(side):
                        for _ in range(3):
                            forward()
                    torch.cuda.current_stream().wait_stream(side)
                    g = torch.cuda.CUDAGraph()
                    with torch.cuda.graph(g):
                        forward()
                    timed("%s-%s-b1-graph" % (label, tower), g.replay)
                else:
                    timed("%s-%s-b%d%s" % (label, tower, b, "-graph" if b == 1 else ""), forward,
                          **({"graph": False} if b == 1 else {}))
    model.train()
    b = SIZES["train_batch"]
    px, ids, labels = rnd(b, 3, res, res), tokens(b, ctx, vocab), torch.arange(b, device=dev)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-5, betas=(0.9, 0.98), eps=1e-6, weight_decay=0.1)

    def step():
        with autocast():
            i = F.normalize(model.encode_image(px).float(), dim=-1)
            t = F.normalize(model.encode_text(ids).float(), dim=-1)
            s = model.logit_scale.exp() * i @ t.t()
            loss = (F.cross_entropy(s, labels) + F.cross_entropy(s.t(), labels)) / 2
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
    timed("%s-train-step-b%d" % (label, b), step)


torch.backends.cuda.matmul.allow_tf32 = False
torch.backends.cudnn.allow_tf32 = False
if CUDA:
    launch()
    graph()
    gemm(torch.bfloat16, False, "bf16")
    gemm(torch.float16, False, "f16")
    gemm(torch.float32, False, "f32")
    gemm(torch.float32, True, "f32-tf32")
    upload()
for b in SIZES["batches"]:
    ops(b)
for n in SIZES["contrastive"]:
    contrastive(n)
models()
