#!/usr/bin/python3
# SPDX-License-Identifier: GPL-3.0-or-later
#
# model_reference.py — the whole InternLM-XComposer2-4KHD model in PyTorch,
# written from ../shared/spec/model.md (not from Tessera's C code), and the
# chat fixtures tests/test-chat.c compares the engine with.
#
#     /usr/bin/python3 tests/reference/model_reference.py \
#         tests/fixtures/checkpoints/bin-f32 tests/fixtures/chat
#
# Needs Debian 12's python3-torch, python3-torchvision, python3-pil,
# python3-numpy and python3-sentencepiece. Deterministic.
#
# What is modelled (model.md sections in brackets):
#   decoder    InternLM2 with the fused wqkv split per kv group [§2], Partial
#              LoRA on image rows with scale alpha/r [§3], rotate_half RoPE
#              with HF's f32 inv_freq and angles, causal GQA, SwiGLU [§4]
#   vision     CLIP ViT (pre-LN, quick_gelu, last layer without
#              post_layernorm, CLS dropped) [§5], HD_transform and the global
#              bicubic view [§6.2–6.4, via preprocess_reference.py], 2×2
#              merge, sub_GN/glb_GN layout, projector with erf GELU [§6.5]
#   prompt     §8.2: the image path splits the prompt on <ImageHere> and
#              gives every non-empty text part its own BOS; the text-only
#              path (no image) is build_inputs: a literal "<s>" that the HF
#              tokenizer turns into id 1, after the BOS it adds itself
#   generate   §8.3 as transformers 4.33 does it (the version IXC2 pins):
#              repetition penalty over the ids in input_ids (the prompt on
#              the text path; on the image path, where generation starts
#              from inputs_embeds, only the generated ids), greedy argmax,
#              and beam search (BeamSearchScorer/BeamHypotheses: log-softmax
#              scores, the penalty applied to them, top 2·B candidates, an
#              end id ranked below B is dropped, hypothesis score =
#              sum / len(input_ids), early_stopping False, the best
#              hypothesis at the end)
#   decode     skip ids 0/1/2, sentencepiece decode, cut at the first
#              "[UNUSED_TOKEN_145]", the clean-up of §7 / §13.11
# Everything runs in float64, so the fixtures are the model's exact values
# to ~1e-12 and the engine's f32 error is what the test measures.
#
# Written into OUT_DIR:
#   cases.json            prompts (ids, and {"image": k, "rows": n} blocks),
#                         answers, greedy and beam ids, files below; a
#                         case's "meta" is null for the default (§8.1)
#   image.png             the test image (200×100, RGB)
#   image-embd.npy        its embeddings at HD-2 [457, 64] f32: the rows the
#                         decoder reads, so the chat can be tested apart from
#                         the vision encoder
#   CASE-logits.npy       logits of the first answer token [vocab] f32

import json
import os
import struct
import sys

import numpy as np
import sentencepiece as spm
import torch
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import preprocess_reference as pre  # noqa: E402  (HD_transform, vis_processor, smooth_scene)

torch.set_default_dtype(torch.float64)

META = "\n".join([
    "You are an AI assistant whose name is InternLM-XComposer (浦语·灵笔).",
    "- InternLM-XComposer (浦语·灵笔) is a multi-modality conversational language model that is developed by "
    "Shanghai AI Laboratory (上海人工智能实验室). It is designed to be helpful, honest, and harmless.",
    "- InternLM-XComposer (浦语·灵笔) can understand and communicate fluently in the language chosen by the user "
    "such as English and 中文.",
    "- InternLM-XComposer (浦语·灵笔) is capable of comprehending and articulating responses effectively based on "
    "the provided image.",
])
IM_START, IM_END = "[UNUSED_TOKEN_146]", "[UNUSED_TOKEN_145]"
IMAGE_TAG = "<ImageHere>"
REPETITION_PENALTY = 1.005
MAX_NEW = 20


# ---- checkpoint ---------------------------------------------------------------

def load_safetensors(path):
    """A safetensors file without the safetensors package: 8-byte header
    length, JSON header, raw little-endian data."""
    with open(path, "rb") as f:
        blob = f.read()
    n = struct.unpack("<Q", blob[:8])[0]
    header = json.loads(blob[8:8 + n])
    base = 8 + n
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        a, b = info["data_offsets"]
        raw = blob[base + a:base + b]
        if info["dtype"] == "F32":
            t = torch.from_numpy(np.frombuffer(raw, dtype="<f4").copy())
        elif info["dtype"] == "F16":
            t = torch.from_numpy(np.frombuffer(raw, dtype="<f2").astype(np.float32))
        elif info["dtype"] == "BF16":
            u = np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16
            t = torch.from_numpy(u.view(np.float32).copy())
        else:
            raise ValueError(f"{name}: dtype {info['dtype']}")
        out[name] = t.reshape(info["shape"])
    return out


def load_checkpoint(d):
    files = sorted(os.listdir(d))
    sd = {}
    if "pytorch_model.bin" in files:
        sd = dict(torch.load(os.path.join(d, "pytorch_model.bin"), map_location="cpu"))
    elif "model.safetensors" in files:
        sd = load_safetensors(os.path.join(d, "model.safetensors"))
    else:
        for f in files:
            if f.endswith(".safetensors"):
                sd.update(load_safetensors(os.path.join(d, f)))
            elif f.endswith(".bin"):
                sd.update(torch.load(os.path.join(d, f), map_location="cpu"))
    return {k: v.to(torch.float64) for k, v in sd.items()}


# ---- the model ------------------------------------------------------------------

def rmsnorm(x, w, eps):
    return x * torch.rsqrt((x * x).mean(-1, keepdim=True) + eps) * w


def layernorm(x, w, b, eps):
    return torch.nn.functional.layer_norm(x, (x.shape[-1],), w, b, eps)


def rotate_half(x):
    h = x.shape[-1] // 2
    return torch.cat([-x[..., h:], x[..., :h]], -1)


class Model:
    def __init__(self, ckpt_dir):
        self.cfg = json.load(open(os.path.join(ckpt_dir, "config.json")))
        self.w = load_checkpoint(ckpt_dir)
        c = self.cfg
        self.E, self.L = c["hidden_size"], c["num_hidden_layers"]
        self.H, self.Hkv = c["num_attention_heads"], c.get("num_key_value_heads", c["num_attention_heads"])
        self.hd = self.E // self.H
        self.eps, self.theta = c["rms_norm_eps"], float(c.get("rope_theta", 10000))
        # PLoRA scale = alpha / r, r from the A matrix (§3); the tiny
        # checkpoints say their alphas in "plora_alpha".
        alpha = c.get("plora_alpha", {"wqkv": 16, "wo": 256, "w1": 256, "w2": 256, "w3": 256})
        self.scale = {}
        for key, name in (("wqkv", "attention.wqkv"), ("wo", "attention.wo"), ("w1", "feed_forward.w1"),
                          ("w2", "feed_forward.w2"), ("w3", "feed_forward.w3")):
            r = self.w[f"model.layers.0.{name}.Plora_A.weight"].shape[0]
            self.scale[key] = alpha[key] / r
        v = c.get("vision_config", {})
        self.v_eps = v.get("layer_norm_eps", 1e-5)
        self.v_heads = v.get("num_attention_heads", 16)
        self.v_patch = v.get("patch_size", 14)
        self.v_width = self.w["vit.vision_tower.vision_model.embeddings.class_embedding"].shape[0]

    # §3: y = x·Wᵀ, plus s·(x·Aᵀ)·Bᵀ on image rows.
    def plora(self, x, prefix, key, mask):
        y = x @ self.w[prefix + ".weight"].T
        if mask.any():
            a, b = self.w[prefix + ".Plora_A.weight"], self.w[prefix + ".Plora_B.weight"]
            y[mask] = y[mask] + self.scale[key] * ((x[mask] @ a.T) @ b.T)
        return y

    def embed_tokens(self, ids):
        return self.w["model.tok_embeddings.weight"][torch.tensor(ids, dtype=torch.long)]

    def forward(self, h, mask):
        """h [T, E] input rows, mask [T] bool (image rows) → logits [T, V]."""
        T, H, Hkv, hd = h.shape[0], self.H, self.Hkv, self.hd
        g = H // Hkv + 2
        # HF: inv_freq and the angles in f32, cos/sin of them (here in f64).
        inv_freq = 1.0 / (self.theta ** (torch.arange(0, hd, 2, dtype=torch.float32) / hd))
        freqs = torch.outer(torch.arange(T, dtype=torch.float32), inv_freq)
        ang = torch.cat([freqs, freqs], -1).to(torch.float64)
        cos, sin = ang.cos()[:, None, :], ang.sin()[:, None, :]
        causal = torch.triu(torch.ones(T, T, dtype=torch.bool), 1)
        for i in range(self.L):
            p = f"model.layers.{i}."
            x = rmsnorm(h, self.w[p + "attention_norm.weight"], self.eps)
            qkv = self.plora(x, p + "attention.wqkv", "wqkv", mask).view(T, Hkv, g, hd)
            q = qkv[:, :, :g - 2].reshape(T, H, hd)      # head j = 4g + s (§2)
            k = qkv[:, :, g - 2]
            v = qkv[:, :, g - 1]
            q = q * cos + rotate_half(q) * sin
            k = k * cos + rotate_half(k) * sin
            k = k.repeat_interleave(H // Hkv, dim=1)      # query head j reads kv head j // (H/Hkv)
            v = v.repeat_interleave(H // Hkv, dim=1)
            s = torch.einsum("thd,shd->hts", q, k) / (hd ** 0.5)
            s = s.masked_fill(causal, float("-inf")).softmax(-1)
            a = torch.einsum("hts,shd->thd", s, v).reshape(T, H * hd)
            h = h + self.plora(a, p + "attention.wo", "wo", mask)
            x = rmsnorm(h, self.w[p + "ffn_norm.weight"], self.eps)
            gate = self.plora(x, p + "feed_forward.w1", "w1", mask)
            up = self.plora(x, p + "feed_forward.w3", "w3", mask)
            h = h + self.plora(torch.nn.functional.silu(gate) * up, p + "feed_forward.w2", "w2", mask)
        return rmsnorm(h, self.w["model.norm.weight"], self.eps) @ self.w["output.weight"].T

    # ---- vision (§5, §6) ----

    def vit(self, views):
        """views [n, 3, S, S] → features [n, (S/P)², VE] of the last layer, CLS dropped."""
        v = "vit.vision_tower.vision_model."
        w = self.w
        x = torch.nn.functional.conv2d(views, w[v + "embeddings.patch_embedding.weight"], stride=self.v_patch)
        n, VE = x.shape[0], x.shape[1]
        x = x.flatten(2).transpose(1, 2)
        x = torch.cat([w[v + "embeddings.class_embedding"].expand(n, 1, VE), x], 1)
        x = x + w[v + "embeddings.position_embedding.weight"][None]
        x = layernorm(x, w[v + "pre_layrnorm.weight"], w[v + "pre_layrnorm.bias"], self.v_eps)
        nh = self.v_heads
        hd = VE // nh
        m = 0
        while f"{v}encoder.layers.{m}.layer_norm1.weight" in w:
            p = f"{v}encoder.layers.{m}."

            def lin(t, name):
                return t @ w[p + name + ".weight"].T + w[p + name + ".bias"]

            r = x
            y = layernorm(x, w[p + "layer_norm1.weight"], w[p + "layer_norm1.bias"], self.v_eps)
            T = y.shape[1]
            q = (lin(y, "self_attn.q_proj") * hd ** -0.5).view(n, T, nh, hd).transpose(1, 2)
            k = lin(y, "self_attn.k_proj").view(n, T, nh, hd).transpose(1, 2)
            vv = lin(y, "self_attn.v_proj").view(n, T, nh, hd).transpose(1, 2)
            a = (q @ k.transpose(-1, -2)).softmax(-1) @ vv
            x = r + lin(a.transpose(1, 2).reshape(n, T, VE), "self_attn.out_proj")
            r = x
            y = layernorm(x, w[p + "layer_norm2.weight"], w[p + "layer_norm2.bias"], self.v_eps)
            y = lin(y, "mlp.fc1")
            y = y * torch.sigmoid(1.702 * y)               # quick_gelu
            x = r + lin(y, "mlp.fc2")
            m += 1
        return x[:, 1:]

    @staticmethod
    def merge(f, side):
        """[side², C] raster → [side/2, side/2, 4C]: TL, TR, BL, BR (§6.5)."""
        f = f.view(side, side, -1)
        return torch.cat([f[0::2, 0::2], f[0::2, 1::2], f[1::2, 0::2], f[1::2, 1::2]], -1)

    def image_rows(self, img, hd_num):
        """An RGB PIL image → its [N_img, E] embeddings (§6)."""
        canvas = pre.HD_transform(img, hd_num=hd_num)
        t = pre.vis_processor(canvas).unsqueeze(0)                    # f32 [1, 3, H', W']
        glb = torch.nn.functional.interpolate(t.float(), size=(336, 336), mode="bicubic")
        Hp, Wp = t.shape[2], t.shape[3]
        rows, cols = Hp // 336, Wp // 336
        views = [glb[0]]
        for i in range(rows):
            for j in range(cols):
                views.append(t[0, :, 336 * i:336 * (i + 1), 336 * j:336 * (j + 1)])
        feats = self.vit(torch.stack(views).to(torch.float64))
        side = 336 // self.v_patch
        merged = [self.merge(f, side) for f in feats]                 # each [g, g, 4VE]
        g = side // 2
        sub = self.w["plora_sub_GN"].reshape(-1)
        glb_gn = self.w["plora_glb_GN"].reshape(-1)
        if sub.numel() != 4 * self.v_width or glb_gn.numel() != 4 * self.v_width:
            sys.exit(f"plora_sub_GN/plora_glb_GN hold {sub.numel()}/{glb_gn.numel()} values; model.md §6.5 "
                     f"puts them before the projector, so they must be 4·{self.v_width} wide")
        seq = []
        for r in range(g):
            seq += [merged[0][r, c] for c in range(g)] + [sub]
        seq.append(glb_gn)
        for R in range(g * rows):
            i, r = divmod(R, g)
            for j in range(cols):
                seq += [merged[1 + i * cols + j][r, c] for c in range(g)]
            seq.append(sub)
        x = torch.stack(seq)
        assert x.shape[0] == (rows * cols + 1) * g * g + 1 + (rows + 1) * g
        y = x @ self.w["vision_proj.0.weight"].T + self.w["vision_proj.0.bias"]
        y = torch.nn.functional.gelu(y)                                # exact erf form
        return y @ self.w["vision_proj.2.weight"].T + self.w["vision_proj.2.bias"]


# ---- tokenizer, prompt, decode (§7, §8) -------------------------------------------

class Tok:
    def __init__(self, path):
        self.sp = spm.SentencePieceProcessor(model_file=path)
        self.bos, self.eos, self.unk = 1, 2, 0
        self.im_end = self.sp.piece_to_id(IM_END)

    def hf(self, text):
        """tokenizer(text).input_ids: BOS, then sentencepiece; a literal
        "<s>" is split off as the special token it is for HF."""
        ids = [self.bos]
        for k, part in enumerate(text.split("<s>")):
            if k > 0:
                ids.append(self.bos)
            if part:
                ids += self.sp.encode(part)
        return ids

    def decode(self, ids):
        keep = [i for i in ids if i not in (self.unk, self.bos, self.eos)]
        text = self.sp.decode(keep).split(IM_END)[0]
        for a, b in ((" .", "."), (" ?", "?"), (" !", "!"), (" ,", ","), (" ' ", "'"), (" n't", "n't"),
                     (" 'm", "'m"), (" 's", "'s"), (" 've", "'ve"), (" 're", "'re")):
            text = text.replace(a, b)
        return text


def prompt_text(meta, history, query):
    p = f"{IM_START}system\n{meta}{IM_END}\n" if meta else ""
    for q, a in history:
        p += f"{IM_START}user\n{q}{IM_END}\n{IM_START}assistant\n{a}{IM_END}\n"
    return p + f"{IM_START}user\n{query}{IM_END}\n{IM_START}assistant\n"


def build_prompt(tok, meta, history, query, images):
    """→ (rows, text_ids, image_path): rows is a list of ints and
    ("image", k) blocks; text_ids the input_ids HF generation starts from."""
    p = prompt_text(meta, history, query)
    if not images:
        ids = tok.hf("<s>" + p)
        return list(ids), list(ids), False
    parts = p.split(IMAGE_TAG)
    assert len(parts) == len(images) + 1, "one <ImageHere> per image"
    rows = []
    for k, part in enumerate(parts):
        if part:
            rows += tok.hf(part)
        if k < len(images):
            rows.append(("image", k))
    return rows, [], True


def embed_rows(model, rows, image_embd):
    xs, mask = [], []
    for r in rows:
        if isinstance(r, tuple):
            e = image_embd[r[1]]
            xs.append(e)
            mask += [True] * e.shape[0]
        else:
            xs.append(model.embed_tokens([r]))
            mask.append(False)
    return torch.cat(xs), torch.tensor(mask)


def repetition_penalty(scores, ids, penalty):
    """HF RepetitionPenaltyLogitsProcessor: each id in input_ids, once."""
    if not ids or penalty == 1.0:
        return scores
    idx = torch.tensor(sorted(set(ids)), dtype=torch.long)
    s = scores[idx]
    scores = scores.clone()
    scores[idx] = torch.where(s < 0, s * penalty, s / penalty)
    return scores


def greedy(model, tok, h, mask, prompt_ids, max_new):
    out, margins = [], []
    for _ in range(max_new):
        logits = model.forward(h, mask)[-1]
        s = repetition_penalty(logits, prompt_ids + out, REPETITION_PENALTY)
        top = torch.topk(s, 2).values
        margins.append(float(top[0] - top[1]))
        nxt = int(torch.argmax(s))
        if nxt in (tok.eos, tok.im_end):
            break
        out.append(nxt)
        h = torch.cat([h, model.embed_tokens([nxt])])
        mask = torch.cat([mask, torch.tensor([False])])
    return out, min(margins)


def beam_search(model, tok, h, mask, prompt_ids, max_new, B):
    """transformers 4.33 beam_search + BeamSearchScorer for one batch item
    (length_penalty 1.0, do_early_stopping False, one hypothesis kept)."""
    eos = (tok.eos, tok.im_end)
    V = model.w["output.weight"].shape[0]
    seqs = [list(prompt_ids) for _ in range(B)]        # input_ids per beam
    gens = [[] for _ in range(B)]                      # rows fed after the prompt
    scores = torch.zeros(B)
    scores[1:] = -1e9
    hyps, worst = [], 1e9
    done = False

    def add(hyp, s, ended):
        nonlocal worst
        # HF divides by len(input_ids), which is 0 when an image-path
        # answer ends at its first token (a ZeroDivisionError there); 1 here.
        score = s / (max(len(hyp), 1) ** 1.0)
        if len(hyps) < B or score > worst:
            hyps.append((score, hyp, ended))
            if len(hyps) > B:
                order = sorted((sc, i) for i, (sc, _, _) in enumerate(hyps))
                del hyps[order[0][1]]
                worst = order[1][0]
            else:
                worst = min(score, worst)

    for _ in range(max_new):
        cur_len = len(seqs[0])
        rows = []
        for b in range(B):
            hb = torch.cat([h] + [model.embed_tokens([t]) for t in gens[b]])
            mb = torch.cat([mask, torch.zeros(len(gens[b]), dtype=torch.bool)])
            lp = torch.log_softmax(model.forward(hb, mb)[-1], -1)
            rows.append(repetition_penalty(lp, seqs[b], REPETITION_PENALTY) + scores[b])
        flat = torch.cat(rows)
        top_s, top_i = torch.topk(flat, 2 * B)
        nxt_seqs, nxt_gens, nxt_scores = [], [], []
        for rank, (s, i) in enumerate(zip(top_s.tolist(), top_i.tolist())):
            b, t = divmod(i, V)
            if t in eos:
                if rank >= B:
                    continue
                add(list(seqs[b]), s, True)
            else:
                nxt_seqs.append(seqs[b] + [t])
                nxt_gens.append(gens[b] + [t])
                nxt_scores.append(s)
            if len(nxt_seqs) == B:
                break
        assert len(nxt_seqs) == B
        if len(hyps) >= B and worst >= float(top_s.max()) / max(cur_len, 1):
            done = True
        seqs, gens, scores = nxt_seqs, nxt_gens, torch.tensor(nxt_scores)
        if done:
            break
    if not done:
        for b in range(B):
            add(list(seqs[b]), float(scores[b]), False)
    best = sorted(hyps, key=lambda x: x[0])[-1]
    return best[1][len(prompt_ids):], best[0], best[2]


# ---- fixtures -----------------------------------------------------------------------

def save_npy(path, a):
    np.save(path, np.ascontiguousarray(a, dtype=np.float32))


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: model_reference.py CHECKPOINT_DIR OUT_DIR")
    ckpt, out = sys.argv[1:3]
    os.makedirs(out, exist_ok=True)
    model = Model(ckpt)
    tok = Tok(os.path.join(ckpt, "tokenizer.model"))

    img = pre.smooth_scene(200, 100, 7)
    img.save(os.path.join(out, "image.png"), optimize=True)
    img = Image.open(os.path.join(out, "image.png")).convert("RGB")
    hd = 2
    embd = model.image_rows(img, hd)
    save_npy(os.path.join(out, "image-embd.npy"), embd.numpy())

    q_text = "What is the total revenue in the table?"
    q_img = IMAGE_TAG + "What does the chart show?"
    q_follow = "Which column is the first?"
    # "short": no meta instruction, and a question whose greedy answer and
    # best beam both end at a stop id (found by trying a few).
    plan = [
        ("text", [q_text], False, META),
        ("image", [q_img], True, META),
        ("text-2turn", [q_text, q_follow], False, META),
        ("image-2turn", [q_img, q_follow], True, META),
        ("short", ["page percent the many?"], False, ""),
    ]
    cases = []
    for name, questions, with_image, meta in plan:
        history, turns = [], []
        images = [embd] if with_image else []
        for k, q in enumerate(questions):
            rows, text_ids, image_path = build_prompt(tok, meta, history, q, images)
            h, mask = embed_rows(model, rows, images)
            logits = model.forward(h, mask)[-1]
            pen_ids = [] if image_path else text_ids
            ids, margin = greedy(model, tok, h, mask, pen_ids, MAX_NEW)
            answer = tok.decode(ids)
            turn = {"question": q, "images": 1 if (with_image and k == 0) else 0,
                    "greedy": ids, "greedy_stop": "end" if len(ids) < MAX_NEW else "length", "answer": answer}
            if k == len(questions) - 1:
                save_npy(os.path.join(out, f"{name}-logits.npy"), logits.numpy())
                beam_ids, beam_score, beam_ended = beam_search(model, tok, h, mask, pen_ids, MAX_NEW, 3)
                turn.update({
                    "prompt": [r if isinstance(r, int) else {"image": r[1], "rows": int(images[r[1]].shape[0])}
                               for r in rows],
                    "logits": f"{name}-logits.npy",
                    "beam3": beam_ids, "beam3_answer": tok.decode(beam_ids), "beam3_score": beam_score,
                    "beam3_stop": "end" if beam_ended else "length",
                    "greedy_min_margin": margin,
                })
            print(f"{name} turn {k + 1}: {len(h)} rows, {len(ids)} greedy ids (min top-2 margin "
                  f"{margin:.2e}) {answer!r}")
            turns.append(turn)
            history.append((q, answer))
        cases.append({"name": name, "meta": None if meta == META else meta, "turns": turns})

    manifest = {
        "generator": "tests/reference/model_reference.py",
        "checkpoint": os.path.basename(os.path.normpath(ckpt)),
        "meta": "default (model.md §8.1)",
        "max_new_tokens": MAX_NEW,
        "repetition_penalty": REPETITION_PENALTY,
        "stop_ids": [tok.eos, tok.im_end],
        "image": {"png": "image.png", "hd": hd, "rows": int(embd.shape[0]), "embd": "image-embd.npy"},
        "cases": cases,
    }
    # Lists of ids on one line each: readable, and a tenth of the size.
    flat = {}

    def compact(x):
        if isinstance(x, list):
            key = f"@@{len(flat)}@@"
            flat[key] = json.dumps(x, ensure_ascii=False)
            return key
        if isinstance(x, dict):
            return {k: compact(v) for k, v in x.items()}
        return x

    text = json.dumps({k: (v if k != "cases" else [dict(c, turns=[compact(t) for t in c["turns"]]) for c in v])
                       for k, v in manifest.items()}, indent=1, ensure_ascii=False)
    for key, val in flat.items():
        text = text.replace(f'"{key}"', val)
    with open(os.path.join(out, "cases.json"), "w") as f:
        f.write(text + "\n")


if __name__ == "__main__":
    main()
