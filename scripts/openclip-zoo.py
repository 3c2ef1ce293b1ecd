#!/usr/bin/env python3
"""Regenerates clip-model/src/main/resources/org/clipj/model/openclip-zoo.json from a checkout of
mlfoundations/open_clip: the hyper-parameters of every architecture in src/open_clip/model_configs/
that clipj builds natively, the reason for every one it refuses, and open_clip's preprocessing
defaults where a family's differ from OpenAI's (CLIPA: ImageNet mean/std, bilinear, squash).
Usage: scripts/openclip-zoo.py OPEN_CLIP_CHECKOUT [COMMIT]"""
import glob, json, os, sys

root, commit = sys.argv[1], (sys.argv[2] if len(sys.argv) > 2 else "unknown")
KEEP_V = ["image_size", "layers", "width", "head_width", "mlp_ratio", "patch_size", "ls_init_value", "no_ln_pre",
          "pool_type", "final_ln_after_pool", "patch_dropout"]
KEEP_T = ["context_length", "vocab_size", "width", "heads", "layers", "mlp_ratio", "ls_init_value", "pool_type",
          "no_causal_mask", "proj_bias", "eos_id", "hf_tokenizer_name"]
IMAGENET = {"mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225], "interpolation": "bilinear", "resize_mode": "squash"}

def refusal(c):
    v, t = c.get("vision_cfg", {}), c.get("text_cfg", {})
    if v.get("timm_model_name"): return "timm vision tower '%s'" % v["timm_model_name"]
    if t.get("hf_model_name"): return "Hugging Face text tower '%s'" % t["hf_model_name"]
    if t.get("text_arch") == "modern": return "open_clip's modern text transformer (RoPE/SwiGLU)"
    if "multimodal_cfg" in c: return "CoCa (captioning decoder)"
    for k in ("audio_cfg", "audio_naflex_cfg"):
        if k in c: return "audio tower (CLAP)"
    for k in ("genlap_cfg", "genlip_cfg"):
        if k in c: return "generative (GenLIP/GenLAP) model"
    if "init_logit_bias" in c: return "SigLIP (sigmoid loss with logit bias)"
    if v.get("attentional_pool"): return "attentional pooler"
    return None

out = {"_source": "hyper-parameters of open_clip src/open_clip/model_configs/*.json at commit " + commit}
for f in sorted(glob.glob(os.path.join(root, "src/open_clip/model_configs/*.json"))):
    name = os.path.basename(f)[:-5]
    c = json.load(open(f))
    why = refusal(c)
    if why:
        out[name] = {"unsupported": why}
        continue
    e = {"embed_dim": c["embed_dim"]}
    if c.get("quick_gelu"): e["quick_gelu"] = True
    e["vision_cfg"] = {k: c["vision_cfg"][k] for k in KEEP_V if k in c["vision_cfg"]}
    e["text_cfg"] = {k: c["text_cfg"][k] for k in KEEP_T if k in c["text_cfg"]}
    if "CLIPA" in name: e["preprocess_cfg"] = IMAGENET
    out[name] = e
with open(os.path.join(os.path.dirname(__file__), "..", "clip-model/src/main/resources/org/clipj/model/openclip-zoo.json"), "w") as w:
    w.write("{\n" + ",\n".join("  %s: %s" % (json.dumps(k), json.dumps(v)) for k, v in out.items()) + "\n}\n")
