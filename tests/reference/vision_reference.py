#!/usr/bin/python3
# SPDX-License-Identifier: GPL-3.0-or-later
#
# vision_reference.py — fixtures for Tessera's vision path (engine/tsr-vit.c,
# engine/tsr-projector.c), from a PyTorch reference written from
# ../shared/spec/model.md §5–6 alone (never from the C code):
#
#   HD_transform (PIL transpose, torchvision resize = PIL BILINEAR, white
#   padding_336, transpose back), ToTensor + Normalize, the bicubic global
#   view; the CLIP ViT (conv patch embedding without bias, class token,
#   positions, pre_layrnorm, pre-LN blocks with biased q/k/v/out, softmax
#   attention scaled by head_dim^-0.5, quick_gelu MLP; the last block's
#   output without post_layernorm, CLS dropped); the 2×2 merge (TL, TR, BL,
#   BR); the layout with sub_GN/glb_GN; the projector (Linear, erf GELU,
#   Linear).
#
# The ViT and projector run in float64, so the fixtures are the exact answer
# for the float32 inputs and the C code's error is its own.
#
# Regenerate (Debian 12):
#
#     apt-get install -y python3-torch python3-torchvision python3-pil python3-numpy
#     /usr/bin/python3 tests/reference/vision_reference.py tests/fixtures/vision
#
# Deterministic (fixed seeds). Writes into the output folder:
#   tiny-4khd.gguf      a complete tiny internlm2-4khd model (GGUF v3, all
#                       f32, written by the small writer below): the ViT and
#                       projector used here, plus a one-layer decoder and an
#                       8-token vocabulary so that tsr_gguf_model_info
#                       accepts it. Marked tessera.synthetic (random weights).
#   NAME.ppm            the input image (binary PPM, RGB8)
#   NAME-embd.npy       the projected embeddings [T, 64], float32
#   global-features.npy the ViT features of the first case's global view
#                       [576, 32], float32 — to tell a ViT error from a
#                       layout error
#   cases.json          [{"name", "hd", "width", "height", "rows", "cols",
#                         "tokens"}]
#
# Sizes (the real model in brackets): ViT hidden 32 [1024], 2 blocks [24],
# 4 heads of 8 [16 of 64], MLP 64 [4096], patch 14 and image 336 as the real
# one (577 positions); projector 128 → 64 [4096 → 4096].

import json
import os
import struct
import sys

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torchvision import transforms

MEAN = (0.48145466, 0.4578275, 0.40821073)
STD = (0.26862954, 0.26130258, 0.27577711)

IMAGE, PATCH = 336, 14
SIDE = IMAGE // PATCH                      # 24
VE, V_LAYERS, V_HEADS, V_FF = 32, 2, 4, 64
V_EPS = 1e-5
E = 64                                     # decoder width = projector output
MERGE = 4 * VE
# The decoder only has to exist (tsr_gguf_model_info checks it).
D_LAYERS, D_HEADS, D_KV, D_FF = 1, 4, 2, 128
VOCAB = ["<unk>", "<s>", "</s>", "[UNUSED_TOKEN_146]", "[UNUSED_TOKEN_145]", "a", "b", "c"]
RANKS = {"attn_qkv": 8, "attn_output": 16, "ffn_gate": 16, "ffn_up": 16, "ffn_down": 16}
SCALES = {"attn_qkv": 2.0, "attn_output": 1.0, "ffn_gate": 1.0, "ffn_up": 1.0, "ffn_down": 1.0}
ARCH = "internlm2-4khd"

# (name, width, height, hd_num): landscape at HD-1, a 2×2 grid, a wide 2×3
# grid and a portrait 3×2 grid (rows ≠ cols both ways, so a grid stitched
# tile by tile instead of row by row cannot pass).
CASES = [
    ("landscape-hd1", 120, 90, 1),
    ("square-hd4", 200, 180, 4),
    ("wide-hd6", 180, 120, 6),
    ("portrait-hd6", 120, 180, 6),
]


# ---- The image path (model.md §6.2–6.4) ---------------------------------------

def hd_transform(img, hd_num):
    width, height = img.size
    trans = False
    if width < height:
        img = img.transpose(Image.TRANSPOSE)
        trans = True
        width, height = img.size
    ratio = width / height
    scale = 1
    while scale * np.ceil(scale / ratio) <= hd_num:
        scale += 1
    scale -= 1
    new_w = int(scale * 336)
    new_h = int(new_w / ratio)
    img = transforms.functional.resize(img, [new_h, new_w])
    tar = int(np.ceil(new_h / 336) * 336)
    top = int((tar - new_h) / 2)
    img = transforms.functional.pad(img, [0, top, 0, tar - new_h - top], fill=[255, 255, 255])
    if trans:
        img = img.transpose(Image.TRANSPOSE)
    return img


def views_of(img, hd_num):
    """[1 + h·w, 3, 336, 336] float32: the global view, then the tiles
    row-major; and the grid (h, w)."""
    canvas = hd_transform(img, hd_num)
    x = transforms.Compose([transforms.ToTensor(), transforms.Normalize(MEAN, STD)])(canvas)
    glb = F.interpolate(x[None].float(), size=(336, 336), mode="bicubic")[0]
    h, w = x.shape[1] // 336, x.shape[2] // 336
    tiles = [x[:, 336 * i:336 * i + 336, 336 * j:336 * j + 336] for i in range(h) for j in range(w)]
    return torch.stack([glb] + tiles).float(), h, w


# ---- The ViT (model.md §5) -----------------------------------------------------

def vit(p, views):
    """views [n, 3, 336, 336] → features [n, 576, VE] (float64)."""
    x = views.double()
    n = x.shape[0]
    hd = VE // V_HEADS
    t = F.conv2d(x, p["v.patch_embd.weight"], stride=PATCH)            # [n, VE, 24, 24]
    t = t.flatten(2).transpose(1, 2)                                    # raster order r·24 + c
    cls = p["v.class_embd.weight"].expand(n, 1, VE)
    t = torch.cat([cls, t], 1) + p["v.pos_embd.weight"][None]
    t = F.layer_norm(t, (VE,), p["v.pre_ln.weight"], p["v.pre_ln.bias"], V_EPS)
    for m in range(V_LAYERS):
        b = "v.blk.%d." % m
        h = F.layer_norm(t, (VE,), p[b + "ln1.weight"], p[b + "ln1.bias"], V_EPS)
        q = F.linear(h, p[b + "attn_q.weight"], p[b + "attn_q.bias"]) * hd ** -0.5
        k = F.linear(h, p[b + "attn_k.weight"], p[b + "attn_k.bias"])
        v = F.linear(h, p[b + "attn_v.weight"], p[b + "attn_v.bias"])
        q, k, v = (z.view(n, -1, V_HEADS, hd).transpose(1, 2) for z in (q, k, v))
        a = torch.softmax(q @ k.transpose(-1, -2), -1) @ v             # no mask
        a = a.transpose(1, 2).reshape(n, -1, VE)
        t = t + F.linear(a, p[b + "attn_out.weight"], p[b + "attn_out.bias"])
        h = F.layer_norm(t, (VE,), p[b + "ln2.weight"], p[b + "ln2.bias"], V_EPS)
        h = F.linear(h, p[b + "ffn_up.weight"], p[b + "ffn_up.bias"])
        h = h * torch.sigmoid(1.702 * h)                                # quick_gelu
        t = t + F.linear(h, p[b + "ffn_down.weight"], p[b + "ffn_down.bias"])
    return t[:, 1:]                                                     # no post_layernorm; CLS dropped


# ---- Merge, layout, projector (model.md §6.5) ---------------------------------

def merge(f):
    """[576, C] → [12, 12, 4C]: concat of (2r,2c), (2r,2c+1), (2r+1,2c), (2r+1,2c+1)."""
    g = f.view(SIDE, SIDE, -1)
    return torch.cat([g[0::2, 0::2], g[0::2, 1::2], g[1::2, 0::2], g[1::2, 1::2]], -1)


def layout(feats, h, w, sub, glb):
    m = [merge(f) for f in feats]
    seq = []
    for r in range(12):                        # global view: each row, then sub_GN
        seq += list(m[0][r]) + [sub]
    seq.append(glb)
    for i in range(h):                         # tile grid, row by row across tiles
        for r in range(12):
            for j in range(w):
                seq += list(m[1 + i * w + j][r])
            seq.append(sub)
    return torch.stack(seq)


def projector(p, x):
    y = F.linear(x, p["mm.0.weight"], p["mm.0.bias"])
    y = F.gelu(y)                              # exact erf form (nn.GELU() default)
    return F.linear(y, p["mm.2.weight"], p["mm.2.bias"])


def n_img(h, w):
    return (h * w + 1) * 144 + 1 + (h + 1) * 12


# ---- Weights -------------------------------------------------------------------

def make_weights():
    """name → float64 tensor in PyTorch layout; vision and projector first, as
    DESIGN.md's table lists them, then the decoder the file needs to load."""
    g = torch.Generator().manual_seed(20240409)

    def rnd(*shape, scale=1.0, mean=0.0):
        return (mean + scale * torch.randn(*shape, generator=g, dtype=torch.float64))

    def lin(o, i):
        return rnd(o, i, scale=i ** -0.5)

    p = {}
    p["v.patch_embd.weight"] = rnd(VE, 3, PATCH, PATCH, scale=(3 * PATCH * PATCH) ** -0.5)
    p["v.class_embd.weight"] = rnd(VE, scale=0.5)
    p["v.pos_embd.weight"] = rnd(SIDE * SIDE + 1, VE, scale=0.5)
    p["v.pre_ln.weight"] = rnd(VE, scale=0.1, mean=1.0)
    p["v.pre_ln.bias"] = rnd(VE, scale=0.1)
    for m in range(V_LAYERS):
        b = "v.blk.%d." % m
        for n in ("attn_q", "attn_k", "attn_v", "attn_out"):
            p[b + n + ".weight"] = lin(VE, VE)
            p[b + n + ".bias"] = rnd(VE, scale=0.1)
        p[b + "ln1.weight"] = rnd(VE, scale=0.1, mean=1.0)
        p[b + "ln1.bias"] = rnd(VE, scale=0.1)
        p[b + "ln2.weight"] = rnd(VE, scale=0.1, mean=1.0)
        p[b + "ln2.bias"] = rnd(VE, scale=0.1)
        p[b + "ffn_up.weight"] = lin(V_FF, VE)
        p[b + "ffn_up.bias"] = rnd(V_FF, scale=0.1)
        p[b + "ffn_down.weight"] = lin(VE, V_FF)
        p[b + "ffn_down.bias"] = rnd(VE, scale=0.1)
    p["mm.0.weight"] = lin(E, MERGE)
    p["mm.0.bias"] = rnd(E, scale=0.1)
    p["mm.2.weight"] = lin(E, E)
    p["mm.2.bias"] = rnd(E, scale=0.1)
    p["mm.glb_gn.weight"] = rnd(MERGE)
    p["mm.sub_gn.weight"] = rnd(MERGE)

    hd = E // D_HEADS
    Q, KV = D_HEADS * hd, D_KV * hd
    p["token_embd.weight"] = rnd(len(VOCAB), E, scale=0.1)
    p["output_norm.weight"] = rnd(E, scale=0.1, mean=1.0)
    p["output.weight"] = lin(len(VOCAB), E)
    for n in range(D_LAYERS):
        b = "blk.%d." % n
        p[b + "attn_norm.weight"] = rnd(E, scale=0.1, mean=1.0)
        p[b + "attn_q.weight"] = lin(Q, E)
        p[b + "attn_k.weight"] = lin(KV, E)
        p[b + "attn_v.weight"] = lin(KV, E)
        p[b + "attn_output.weight"] = lin(E, Q)
        p[b + "ffn_norm.weight"] = rnd(E, scale=0.1, mean=1.0)
        p[b + "ffn_gate.weight"] = lin(D_FF, E)
        p[b + "ffn_up.weight"] = lin(D_FF, E)
        p[b + "ffn_down.weight"] = lin(E, D_FF)
        p[b + "attn_qkv.lora_a.weight"] = lin(RANKS["attn_qkv"], E)
        p[b + "attn_q.lora_b.weight"] = lin(Q, RANKS["attn_qkv"])
        p[b + "attn_k.lora_b.weight"] = lin(KV, RANKS["attn_qkv"])
        p[b + "attn_v.lora_b.weight"] = lin(KV, RANKS["attn_qkv"])
        for name, i, o in (("attn_output", Q, E), ("ffn_gate", E, D_FF), ("ffn_up", E, D_FF),
                           ("ffn_down", D_FF, E)):
            p[b + name + ".lora_a.weight"] = lin(RANKS[name], i)
            p[b + name + ".lora_b.weight"] = lin(o, RANKS[name])
    return p


# ---- A minimal GGUF v3 writer (all tensors f32) --------------------------------

GGUF_U32, GGUF_I32, GGUF_F32, GGUF_BOOL, GGUF_STRING, GGUF_ARRAY = 4, 5, 6, 7, 8, 9
ALIGN = 32


def gguf_str(s):
    b = s.encode("utf-8")
    return struct.pack("<Q", len(b)) + b


def gguf_value(kind, v):
    if kind == GGUF_U32:
        return struct.pack("<I", v)
    if kind == GGUF_I32:
        return struct.pack("<i", v)
    if kind == GGUF_F32:
        return struct.pack("<f", v)
    if kind == GGUF_BOOL:
        return struct.pack("<B", 1 if v else 0)
    if kind == GGUF_STRING:
        return gguf_str(v)
    raise ValueError(kind)


def write_gguf(path, kvs, tensors):
    """kvs: [(key, kind, value)] with kind GGUF_ARRAY values as (elem, list);
    tensors: [(name, float32 array in PyTorch layout)]."""
    out = bytearray(b"GGUF" + struct.pack("<IQQ", 3, len(tensors), len(kvs)))
    for key, kind, value in kvs:
        out += gguf_str(key) + struct.pack("<I", kind)
        if kind == GGUF_ARRAY:
            elem, items = value
            out += struct.pack("<IQ", elem, len(items))
            for it in items:
                out += gguf_value(elem, it)
        else:
            out += gguf_value(kind, value)
    offset = 0
    blobs = []
    for name, a in tensors:
        ne = list(reversed(a.shape))            # ggml order: fastest dimension first
        out += gguf_str(name) + struct.pack("<I", len(ne)) + b"".join(struct.pack("<Q", d) for d in ne)
        out += struct.pack("<IQ", 0, offset)    # type 0 = f32
        data = np.ascontiguousarray(a, dtype="<f4").tobytes()
        blobs.append(data)
        offset += (len(data) + ALIGN - 1) // ALIGN * ALIGN
    out += b"\0" * (-len(out) % ALIGN)
    for i, data in enumerate(blobs):
        out += data
        if i + 1 < len(blobs):
            out += b"\0" * (-len(data) % ALIGN)
    with open(path, "wb") as f:
        f.write(out)


def model_kvs():
    a = ARCH + "."
    kvs = [
        ("general.architecture", GGUF_STRING, ARCH),
        ("general.name", GGUF_STRING, "tiny vision fixture (random weights)"),
        ("tessera.synthetic", GGUF_BOOL, True),
        (a + "context_length", GGUF_U32, 2048),
        (a + "embedding_length", GGUF_U32, E),
        (a + "block_count", GGUF_U32, D_LAYERS),
        (a + "feed_forward_length", GGUF_U32, D_FF),
        (a + "attention.head_count", GGUF_U32, D_HEADS),
        (a + "attention.head_count_kv", GGUF_U32, D_KV),
        (a + "attention.layer_norm_rms_epsilon", GGUF_F32, 1e-5),
        (a + "rope.freq_base", GGUF_F32, 1e6),
    ]
    for name in RANKS:
        kvs.append((a + "plora.%s.rank" % name, GGUF_U32, RANKS[name]))
        kvs.append((a + "plora.%s.scale" % name, GGUF_F32, SCALES[name]))
    kvs += [
        (a + "vision.image_size", GGUF_U32, IMAGE),
        (a + "vision.patch_size", GGUF_U32, PATCH),
        (a + "vision.embedding_length", GGUF_U32, VE),
        (a + "vision.block_count", GGUF_U32, V_LAYERS),
        (a + "vision.feed_forward_length", GGUF_U32, V_FF),
        (a + "vision.attention.head_count", GGUF_U32, V_HEADS),
        (a + "vision.attention.layer_norm_epsilon", GGUF_F32, V_EPS),
        ("tokenizer.ggml.model", GGUF_STRING, "llama"),
        ("tokenizer.ggml.tokens", GGUF_ARRAY, (GGUF_STRING, VOCAB)),
        ("tokenizer.ggml.scores", GGUF_ARRAY, (GGUF_F32, [0.0] * 5 + [-1.0, -2.0, -3.0])),
        ("tokenizer.ggml.token_type", GGUF_ARRAY, (GGUF_I32, [2, 3, 3, 4, 4, 1, 1, 1])),
        ("tokenizer.ggml.bos_token_id", GGUF_U32, 1),
        ("tokenizer.ggml.eos_token_id", GGUF_U32, 2),
        ("tessera.chat.im_start_id", GGUF_U32, 3),
        ("tessera.chat.im_end_id", GGUF_U32, 4),
    ]
    return kvs


# ---- Files ---------------------------------------------------------------------

def write_npy(path, a):
    a = np.ascontiguousarray(a, dtype="<f4")
    header = "{'descr': '<f4', 'fortran_order': False, 'shape': %s, }" % (tuple(a.shape),)
    header += " " * (-(10 + len(header) + 1) % 64) + "\n"
    with open(path, "wb") as f:
        f.write(b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode("latin-1"))
        f.write(a.tobytes())


def test_image(w, h, seed):
    """Gradients, discs and noise: every patch different, so a token out of
    place changes the output."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    img = np.stack([127 + 120 * np.sin(x / w * 6.3 + rng.uniform(0, 6)),
                    127 + 120 * np.cos(y / h * 4.1 + rng.uniform(0, 6)),
                    255 * (x + y) / (w + h - 2)], -1)
    for _ in range(6):
        cx, cy, r = rng.uniform(0, w), rng.uniform(0, h), rng.uniform(4, min(w, h) / 3)
        img[(x - cx) ** 2 + (y - cy) ** 2 < r * r] = rng.uniform(0, 255, 3)
    img += rng.normal(0, 12, img.shape)
    return Image.fromarray(img.clip(0, 255).astype(np.uint8), "RGB")


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: vision_reference.py OUT_DIR")
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    torch.set_num_threads(1)

    p = make_weights()
    write_gguf(os.path.join(out, "tiny-4khd.gguf"), model_kvs(),
               [(k, v.float().numpy()) for k, v in p.items()])
    # The model as the C code reads it: the f32 values, computed in float64.
    p = {k: v.float().double() for k, v in p.items()}

    cases = []
    for idx, (name, w, h, hd) in enumerate(CASES):
        img = test_image(w, h, 100 + idx)
        with open(os.path.join(out, name + ".ppm"), "wb") as f:
            f.write(b"P6\n%d %d\n255\n" % (w, h) + np.asarray(img).tobytes())
        views, rows, cols = views_of(img, hd)
        with torch.no_grad():
            feats = vit(p, views)
            seq = layout(feats, rows, cols, p["mm.sub_gn.weight"], p["mm.glb_gn.weight"])
            emb = projector(p, seq)
        assert emb.shape == (n_img(rows, cols), E), emb.shape
        write_npy(os.path.join(out, name + "-embd.npy"), emb.numpy())
        if idx == 0:
            write_npy(os.path.join(out, "global-features.npy"), feats[0].numpy())
        cases.append({"name": name, "hd": hd, "width": w, "height": h, "rows": rows, "cols": cols,
                      "tokens": emb.shape[0]})
        print("%-14s %3d×%-3d HD-%d → %d×%d tiles, %d tokens, |embd| max %.3f" %
              (name, w, h, hd, rows, cols, emb.shape[0], emb.abs().max()))
    with open(os.path.join(out, "cases.json"), "w") as f:
        json.dump(cases, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
