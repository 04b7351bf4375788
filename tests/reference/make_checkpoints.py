#!/usr/bin/python3
# SPDX-License-Identifier: GPL-3.0-or-later
#
# make_checkpoints.py — tiny random InternLM-XComposer2-4KHD checkpoints.
#
# Writes Hugging Face checkpoint folders with the REAL tensor names and the
# real layout (model.md §1.3) at toy sizes, in the two formats a user may
# download: PyTorch zip shards written by torch.save itself, and safetensors
# written by a small writer below (Debian has no python3-safetensors). Next to
# each folder goes NAME.expected.json, which tests/test-checkpoint.c compares
# every tensor against. The folders also serve the converter's round trips.
#
#     /usr/bin/python3 tests/reference/make_checkpoints.py tests/fixtures/checkpoints
#
# Needs Debian 12's python3-torch (1.13), python3-numpy, python3-sentencepiece.
# Deterministic: fixed seeds, fixed order; re-running rewrites identical files
# (torch.save's zip has no timestamps; sentencepiece trains single-threaded).
#
# Sizes (the real model in brackets):
#   LLM     2 layers [32], hidden 64 [4096], 4 q-heads [32], 2 kv-heads [8],
#           head_dim 16 [128] → wqkv [128, 64] [6144, 4096], FFN 128 [14336],
#           vocab 384 [92544]: a sentencepiece BPE model trained here with
#           byte fallback (256 byte pieces + a few merges), so tokenizer.model
#           and vocab_size agree; the real 1.4 MB tokenizer would need a
#           92544-row embedding. Like the real one: BPE, identity normaliser,
#           no dummy prefix; [UNUSED_TOKEN_146]/[UNUSED_TOKEN_145] are
#           user-defined pieces (ids 3 and 4 here, 92543/92542 in the real).
#   PLoRA   rank 8 on wqkv [8], rank 16 elsewhere [256]; config.json carries
#           "plora_alpha" with 16 everywhere, so the scales are the real
#           ones: 2.0 for wqkv, 1.0 for the rest.
#   ViT     2 layers [24], hidden 32 [1024], 4 heads [16], MLP 64 [4096],
#           patch 14, image 336 → 577 positions (the tile size is fixed by
#           the HD pipeline, so the position table keeps its real length);
#           described by "vision_config" in config.json.
#   Proj    vision_proj.0 [64, 128] (4·32 after the 2×2 merge), .2 [64, 64].
#
# Checkpoints (each dtype in both formats, each format single and sharded):
#   bin-f32           pytorch_model.bin, an OrderedDict with _metadata (BUILD),
#                     the two norms of each layer sharing one storage (views)
#   bin-f16           pytorch_model.bin
#   bin-bf16-sharded  2 shards + pytorch_model.bin.index.json, plain dicts as
#                     transformers' save_pretrained writes them
#   st-f32-sharded    2 shards + model.safetensors.index.json
#   st-f16-sharded    2 shards + index
#   st-bf16           model.safetensors
#
# Also written: bad/ (damaged and hostile files with the error each must give,
# listed in bad/expected.json) and seeds/ (tiny inputs for the fuzzers).
#
# NAME.expected.json: {"format", "tensors": {name: {"dtype", "shape",
#   "fnv1a64" (hex of the raw little-endian bytes), "sum" (float64, summed in
#   flat order, first to last), "samples": [[flat_index, value], …]}}}.

import collections
import io
import json
import os
import random
import shutil
import struct
import sys
import zipfile

import numpy as np
import torch

HIDDEN, LAYERS, HEADS, KV_HEADS, FFN, VOCAB = 64, 2, 4, 2, 128, 384
HEAD_DIM = HIDDEN // HEADS
R_QKV, R_OTHER = 8, 16
VIT_HIDDEN, VIT_LAYERS, VIT_HEADS, VIT_MLP, PATCH, IMAGE = 32, 2, 4, 64, 14, 336
VIT_POS = (IMAGE // PATCH) ** 2 + 1

DTYPES = {"f32": torch.float32, "f16": torch.float16, "bf16": torch.bfloat16}
ST_NAMES = {torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16"}


# ---- the state dict ------------------------------------------------------

def tensor_specs():
    """(name, shape, kind) in the order the real model's state_dict lists them."""
    q = (HEADS + 2 * KV_HEADS) * HEAD_DIM
    s = [("model.tok_embeddings.weight", (VOCAB, HIDDEN), "w")]
    for n in range(LAYERS):
        p = f"model.layers.{n}."
        s += [
            (p + "attention.wqkv.weight", (q, HIDDEN), "w"),
            (p + "attention.wqkv.Plora_A.weight", (R_QKV, HIDDEN), "w"),
            (p + "attention.wqkv.Plora_B.weight", (q, R_QKV), "w"),
            (p + "attention.wo.weight", (HIDDEN, HIDDEN), "w"),
            (p + "attention.wo.Plora_A.weight", (R_OTHER, HIDDEN), "w"),
            (p + "attention.wo.Plora_B.weight", (HIDDEN, R_OTHER), "w"),
            (p + "feed_forward.w1.weight", (FFN, HIDDEN), "w"),
            (p + "feed_forward.w1.Plora_A.weight", (R_OTHER, HIDDEN), "w"),
            (p + "feed_forward.w1.Plora_B.weight", (FFN, R_OTHER), "w"),
            (p + "feed_forward.w3.weight", (FFN, HIDDEN), "w"),
            (p + "feed_forward.w3.Plora_A.weight", (R_OTHER, HIDDEN), "w"),
            (p + "feed_forward.w3.Plora_B.weight", (FFN, R_OTHER), "w"),
            (p + "feed_forward.w2.weight", (HIDDEN, FFN), "w"),
            (p + "feed_forward.w2.Plora_A.weight", (R_OTHER, FFN), "w"),
            (p + "feed_forward.w2.Plora_B.weight", (HIDDEN, R_OTHER), "w"),
            (p + "attention_norm.weight", (HIDDEN,), "norm"),
            (p + "ffn_norm.weight", (HIDDEN,), "norm"),
        ]
    s += [("model.norm.weight", (HIDDEN,), "norm"), ("output.weight", (VOCAB, HIDDEN), "w")]
    v = "vit.vision_tower.vision_model."
    s += [
        (v + "embeddings.class_embedding", (VIT_HIDDEN,), "w"),
        (v + "embeddings.patch_embedding.weight", (VIT_HIDDEN, 3, PATCH, PATCH), "w"),
        (v + "embeddings.position_embedding.weight", (VIT_POS, VIT_HIDDEN), "w"),
        (v + "pre_layrnorm.weight", (VIT_HIDDEN,), "norm"),
        (v + "pre_layrnorm.bias", (VIT_HIDDEN,), "bias"),
    ]
    for m in range(VIT_LAYERS):
        p = f"{v}encoder.layers.{m}."
        for proj in ("k_proj", "v_proj", "q_proj", "out_proj"):
            s += [(p + f"self_attn.{proj}.weight", (VIT_HIDDEN, VIT_HIDDEN), "w"),
                  (p + f"self_attn.{proj}.bias", (VIT_HIDDEN,), "bias")]
        s += [
            (p + "layer_norm1.weight", (VIT_HIDDEN,), "norm"),
            (p + "layer_norm1.bias", (VIT_HIDDEN,), "bias"),
            (p + "mlp.fc1.weight", (VIT_MLP, VIT_HIDDEN), "w"),
            (p + "mlp.fc1.bias", (VIT_MLP,), "bias"),
            (p + "mlp.fc2.weight", (VIT_HIDDEN, VIT_MLP), "w"),
            (p + "mlp.fc2.bias", (VIT_HIDDEN,), "bias"),
            (p + "layer_norm2.weight", (VIT_HIDDEN,), "norm"),
            (p + "layer_norm2.bias", (VIT_HIDDEN,), "bias"),
        ]
    s += [
        ("vision_proj.0.weight", (HIDDEN, 4 * VIT_HIDDEN), "w"),
        ("vision_proj.0.bias", (HIDDEN,), "bias"),
        ("vision_proj.2.weight", (HIDDEN, HIDDEN), "w"),
        ("vision_proj.2.bias", (HIDDEN,), "bias"),
        # The separator tokens join the merged 2×2 vision features, before the
        # projector: 4 × the vision width (model.md §6.5), not the LLM width.
        ("plora_glb_GN", (1, 1, 4 * VIT_HIDDEN), "w"),
        ("plora_sub_GN", (1, 1, 1, 4 * VIT_HIDDEN), "w"),
    ]
    return s


def state_dict(seed, dtype):
    """Random values in float32, rounded once to `dtype`: the same seed gives
    the same numbers up to that rounding in every format."""
    g = torch.Generator().manual_seed(seed)
    sd = collections.OrderedDict()
    for name, shape, kind in tensor_specs():
        x = torch.randn(shape, generator=g, dtype=torch.float32)
        if kind == "w":
            x = x * (1.0 / (shape[-1] ** 0.5))
        elif kind == "norm":
            x = 1.0 + 0.1 * x
        else:
            x = 0.02 * x
        sd[name] = x.to(dtype).contiguous()
    return sd


def share_norm_storage(sd):
    """Makes each layer's two norms views of one [2, hidden] tensor, so the
    pickle holds storage offsets other than 0 and a storage used twice."""
    for n in range(LAYERS):
        a, b = f"model.layers.{n}.attention_norm.weight", f"model.layers.{n}.ffn_norm.weight"
        both = torch.stack([sd[a], sd[b]])
        sd[a], sd[b] = both[0], both[1]
    return sd


def config():
    return {
        "architectures": ["InternLM2ForCausalLM"],
        "auto_map": {
            "AutoConfig": "configuration_internlm_xcomposer2.InternLMXcomposer2Config",
            "AutoModel": "modeling_internlm_xcomposer2.InternLMXComposer2ForCausalLM",
            "AutoModelForCausalLM": "modeling_internlm_xcomposer2.InternLMXComposer2ForCausalLM",
        },
        "model_type": "internlm2",
        "hidden_size": HIDDEN,
        "num_hidden_layers": LAYERS,
        "num_attention_heads": HEADS,
        "num_key_value_heads": KV_HEADS,
        "intermediate_size": FFN,
        "vocab_size": VOCAB,
        "rms_norm_eps": 1e-05,
        "rope_theta": 1000000,
        "rope_scaling": {"type": "dynamic", "factor": 1.0},
        "max_position_embeddings": 32768,
        "max_length": 16384,
        "bias": False,
        "hidden_act": "silu",
        "bos_token_id": 1,
        "eos_token_id": 2,
        "pad_token_id": 2,
        "tie_word_embeddings": False,
        "torch_dtype": "bfloat16",
        "vision_config": {
            "hidden_size": VIT_HIDDEN,
            "num_hidden_layers": VIT_LAYERS,
            "num_attention_heads": VIT_HEADS,
            "intermediate_size": VIT_MLP,
            "layer_norm_eps": 1e-05,
            "patch_size": PATCH,
            "image_size": IMAGE,
        },
        "plora_alpha": {"wqkv": 16, "wo": 16, "w1": 16, "w2": 16, "w3": 16},
        "tessera_fixture": "tiny random weights from tests/reference/make_checkpoints.py",
    }


# ---- the tokenizer -------------------------------------------------------

WORDS = ("the a chart shows sales revenue in of and to for with table figure page total year "
         "month growth percent value market share document text image screenshot scan "
         "what is are how many which where when first second third answer question "
         "increase decrease compared report data column row left right top bottom").split()


def train_tokenizer(path):
    import sentencepiece as spm
    rng = random.Random(4)
    lines = []
    for _ in range(3000):
        words = [rng.choice(WORDS) for _ in range(rng.randint(4, 14))]
        s = " ".join(words)
        if rng.random() < 0.3:
            s = s.capitalize() + rng.choice(["?", ".", "!", ", 2024.", " (42%)."])
        lines.append(s)
    # From memory to memory: a file path would be recorded in the model.
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(lines), model_writer=model, model_type="bpe",
        vocab_size=VOCAB, byte_fallback=True, character_coverage=1.0,
        unk_id=0, bos_id=1, eos_id=2, pad_id=-1,
        user_defined_symbols=["[UNUSED_TOKEN_146]", "[UNUSED_TOKEN_145]"],
        num_threads=1, shuffle_input_sentence=False, input_sentence_size=0,
        split_digits=True, allow_whitespace_only_pieces=True, minloglevel=2,
        # As in the real InternLM2 tokenizer.model: identity normaliser
        # (which also keeps the file small), no dummy prefix, spaces kept.
        normalization_rule_name="identity", add_dummy_prefix=False,
        remove_extra_whitespaces=False)
    with open(path, "wb") as f:
        f.write(model.getvalue())


# ---- writers -------------------------------------------------------------

def raw_bytes(t):
    t = t.contiguous()
    if t.dtype == torch.bfloat16:
        return t.view(torch.int16).numpy().tobytes()
    return t.numpy().tobytes()


def write_safetensors(path, tensors):
    """The format as the safetensors library writes it: u64 header length,
    JSON padded with spaces to a multiple of 8, then the data in order."""
    header = {"__metadata__": {"format": "pt"}}
    blobs, offset = [], 0
    for name, t in tensors.items():
        b = raw_bytes(t)
        header[name] = {"dtype": ST_NAMES[t.dtype], "shape": list(t.shape),
                        "data_offsets": [offset, offset + len(b)]}
        blobs.append(b)
        offset += len(b)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def split_shards(sd):
    """The LLM in the first shard, the rest in the second, like HF's size
    split puts the embedding and early layers first."""
    names = list(sd)
    cut = names.index("model.norm.weight")
    return [collections.OrderedDict((k, sd[k]) for k in names[:cut]),
            collections.OrderedDict((k, sd[k]) for k in names[cut:])]


def write_index(path, shards, files):
    weight_map, total = {}, 0
    for shard, fname in zip(shards, files):
        for k, t in shard.items():
            weight_map[k] = fname
            total += t.numel() * t.element_size()
    with open(path, "w") as f:
        json.dump({"metadata": {"total_size": total}, "weight_map": weight_map}, f, indent=2)
        f.write("\n")


def torch_save(obj, path):
    # torch 1.13 names the zip's folder after the file's stem.
    torch.save(obj, path)


def fnv1a64(b):
    h = 0xcbf29ce484222325
    for c in b:
        h = ((h ^ c) * 0x100000001b3) & 0xFFFFFFFFFFFFFFFF
    return f"{h:016x}"


def expected(sd, fmt):
    out = {"format": fmt, "tensors": {}}
    for name, t in sd.items():
        v = t.to(torch.float64).reshape(-1).numpy()
        n = v.size
        idx = sorted({0, n - 1, n // 2, n // 3, (7 * n) // 11}) if n else []
        out["tensors"][name] = {
            "dtype": ST_NAMES[t.dtype],
            "shape": list(t.shape),
            "fnv1a64": fnv1a64(raw_bytes(t)),
            # cumsum adds strictly left to right, as the C test does.
            "sum": float(np.cumsum(v)[-1]) if n else 0.0,
            "samples": [[int(i), float(v[i])] for i in idx],
        }
    return out


def write_checkpoint(root, name, fmt, dtype, sharded, seed, tokenizer):
    d = os.path.join(root, name)
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    sd = state_dict(seed, dtype)
    if name == "bin-f32":
        sd = share_norm_storage(sd)
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(config(), f, indent=2)
        f.write("\n")
    shutil.copy(tokenizer, os.path.join(d, "tokenizer.model"))
    if fmt == "pytorch":
        if sharded:
            shards = split_shards(sd)
            files = [f"pytorch_model-0000{i + 1}-of-00002.bin" for i in range(2)]
            for shard, fname in zip(shards, files):
                torch_save(dict(shard), os.path.join(d, fname))
            write_index(os.path.join(d, "pytorch_model.bin.index.json"), shards, files)
        else:
            # What torch.save(model.state_dict()) writes: an OrderedDict
            # carrying the module versions in _metadata.
            od = collections.OrderedDict(sd)
            od._metadata = collections.OrderedDict([("", {"version": 1}), ("model", {"version": 1})])
            torch_save(od, os.path.join(d, "pytorch_model.bin"))
    else:
        if sharded:
            shards = split_shards(sd)
            files = [f"model-0000{i + 1}-of-00002.safetensors" for i in range(2)]
            for shard, fname in zip(shards, files):
                write_safetensors(os.path.join(d, fname), shard)
            write_index(os.path.join(d, "model.safetensors.index.json"), shards, files)
        else:
            write_safetensors(os.path.join(d, "model.safetensors"), sd)
    with open(os.path.join(root, name + ".expected.json"), "w") as f:
        json.dump(expected(sd, fmt), f, indent=1, sort_keys=True)
        f.write("\n")


# ---- damaged and hostile inputs -----------------------------------------
#
# Pickles here are assembled opcode by opcode. Nothing is ever unpickled:
# the hostile ones exist to be refused.

class P:
    """A tiny pickle assembler with torch.save's opcode choices."""

    def __init__(self):
        self.b = bytearray(b"\x80\x02")
        self.memo = 0

    def op(self, raw):
        self.b += raw
        return self

    def put(self):
        self.b += b"q" + bytes([self.memo])
        self.memo += 1
        return self

    def s(self, text):
        t = text.encode()
        self.b += b"X" + struct.pack("<I", len(t)) + t
        return self.put()

    def i(self, v):
        if 0 <= v < 256:
            self.b += b"K" + bytes([v])
        elif 0 <= v < 65536:
            self.b += b"M" + struct.pack("<H", v)
        else:
            self.b += b"J" + struct.pack("<i", v)
        return self

    def g(self, module, name):
        self.b += b"c" + module.encode() + b"\n" + name.encode() + b"\n"
        return self.put()

    def tup(self, items):
        if len(items) == 0:
            self.b += b")"
            return self
        if len(items) <= 3:
            for it in items:
                self.i(it)
            self.b += bytes([0x84 + len(items)])
            return self.put()
        self.b += b"("
        for it in items:
            self.i(it)
        self.b += b"t"
        return self.put()

    def tensor(self, name, storage_cls, key, numel, offset, size, stride):
        self.s(name)
        self.g("torch._utils", "_rebuild_tensor_v2")
        self.op(b"((")
        self.s("storage")
        self.g("torch", storage_cls)
        self.s(key)
        self.s("cpu")
        self.i(numel)
        self.op(b"t").put().op(b"Q")
        self.i(offset)
        self.tup(size)
        self.tup(stride)
        self.op(b"\x89")
        self.g("collections", "OrderedDict").op(b")R").put()
        self.op(b"t").put().op(b"R").put()
        return self

    def dict_of(self, tensors):
        self.op(b"}").put().op(b"(")
        for t in tensors:
            self.tensor(*t)
        self.op(b"u.")
        return bytes(self.b)


def torch_like_zip(path, prefix, entries, compress_pickle=False):
    """A zip with torch's layout (written by zipfile, so without torch's
    64-byte alignment: the reader must not depend on it)."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as z:
        for name, data in entries:
            method = zipfile.ZIP_DEFLATED if (compress_pickle and name.endswith("data.pkl")) else zipfile.ZIP_STORED
            info = zipfile.ZipInfo(prefix + "/" + name, date_time=(2024, 1, 1, 0, 0, 0))
            info.compress_type = method
            z.writestr(info, data)


def write_bad(root, good_sd):
    d = os.path.join(root, "bad")
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    manifest = {}
    f32 = np.arange(12, dtype=np.float32).tobytes()     # storage '0': 12 floats
    f16 = np.arange(4, dtype=np.float16).tobytes()      # storage '1': 4 halves
    ok = [("a", "FloatStorage", "0", 12, 0, [3, 4], [4, 1]),
          ("b", "HalfStorage", "1", 4, 0, [4], [1])]
    storages = [("data/0", f32), ("data/1", f16), ("version", b"3\n")]

    def add(name, pkl, expect, status="bad format", extra=None, compress=False, prefix="archive"):
        entries = [("data.pkl", pkl)] + (extra if extra is not None else storages)
        torch_like_zip(os.path.join(d, name), prefix, entries, compress_pickle=compress)
        manifest[name] = {"status": status, "contains": expect}

    # A valid file in this hand-made form, so the bad ones below differ from
    # something that opens by exactly one thing.
    add("good-handmade.bin", P().dict_of(ok), "")
    manifest["good-handmade.bin"] = {"status": "ok", "tensors": 2}

    evil = P()
    evil.g("os", "system").s("echo pwned").op(b"\x85").put().op(b"R.")
    add("global-os-system.bin", bytes(evil.b), "'os.system'")

    p = P()
    p.g("builtins", "eval").s("1").op(b"\x85R.")
    add("global-builtins-eval.bin", bytes(p.b), "'builtins.eval'")

    # Real torch globals that are still not allowed.
    add("global-qtensor.bin", P().dict_of(ok).replace(b"_rebuild_tensor_v2", b"_rebuild_qtensor"),
        "'torch._utils._rebuild_qtensor'")
    add("global-longstorage.bin", P().dict_of(ok).replace(b"HalfStorage", b"LongStorage"),
        "'torch.LongStorage'")

    add("inst-opcode.bin", bytes(P().op(b"i" + b"os\nsystem\n" + b".").b), "INST")
    add("newobj-opcode.bin", bytes(P().op(b"}(\x81.").b), "NEWOBJ")
    add("unknown-opcode.bin", bytes(P().op(b"}\xfe.").b), "0xfe")
    add("binfloat-opcode.bin", bytes(P().op(b"G" + struct.pack(">d", 1.5) + b".").b), "BINFLOAT")
    add("memo-out-of-range.bin", bytes(P().op(b"h\xc8.").b), "memo index 200")
    add("long-memo-huge.bin", bytes(P().op(b"}r\xff\xff\xff\x7f.").b), "memo index", status="too large")
    add("stack-underflow.bin", bytes(P().op(b"R.").b), "stack underflow")
    add("stack-underflow-mark.bin", bytes(P().op(b"}(\x86.").b), "stack underflow")
    add("setitem-on-list.bin", bytes(P().op(b"]K\x01K\x02s.").b), "not a dict")
    add("no-stop.bin", P().dict_of(ok)[:-1], "without STOP")
    add("protocol-0.bin", b"(dp0\n.", "unsupported opcode")
    add("protocol-6.bin", b"\x80\x06}.", "protocol 6")
    add("not-a-dict.bin", bytes(P().op(b"K\x05.").b), "not hold a dict")
    add("value-not-tensor.bin", bytes(P().op(b"}").s("x").op(b"K\x05s.").b), "not a tensor")
    add("storage-missing.bin", P().dict_of([("a", "FloatStorage", "7", 12, 0, [3, 4], [4, 1])]),
        "storage '7', which the archive lacks")
    add("numel-past-storage.bin", P().dict_of([("a", "FloatStorage", "0", 12, 4, [3, 4], [4, 1])]),
        "needs elements 4..16 of a storage that has 12")
    add("storage-size-lie.bin", P().dict_of([("a", "FloatStorage", "0", 13, 0, [3, 4], [4, 1])]),
        "but the pickle says 13 elements")
    add("non-contiguous.bin", P().dict_of([("a", "FloatStorage", "0", 12, 0, [4, 3], [1, 4])]),
        "non-contiguous tensor 'a'")
    add("five-dims.bin", P().dict_of([("a", "FloatStorage", "0", 12, 0, [1, 1, 3, 4, 1], [12, 12, 4, 1, 1])]),
        "5 dimensions")
    add("deflated-pickle.bin", P().dict_of(ok), "compressed", compress=True)
    torch_like_zip(os.path.join(d, "no-data-pkl.bin"), "archive", storages)
    manifest["no-data-pkl.bin"] = {"status": "bad format", "contains": "no <folder>/data.pkl"}

    # The index names a shard that is not there.
    ms = os.path.join(d, "missing-shard")
    os.makedirs(ms)
    torch_save({"model.norm.weight": good_sd["model.norm.weight"]},
               os.path.join(ms, "pytorch_model-00001-of-00002.bin"))
    with open(os.path.join(ms, "pytorch_model.bin.index.json"), "w") as f:
        json.dump({"metadata": {}, "weight_map": {
            "model.norm.weight": "pytorch_model-00001-of-00002.bin",
            "output.weight": "pytorch_model-00002-of-00002.bin"}}, f, indent=1)
    manifest["missing-shard"] = {"status": "input/output error", "contains": "pytorch_model-00002-of-00002.bin"}

    # The index promises a tensor its shard does not hold.
    ms = os.path.join(d, "index-lies")
    os.makedirs(ms)
    write_safetensors(os.path.join(ms, "model-00001-of-00001.safetensors"),
                      {"model.norm.weight": good_sd["model.norm.weight"]})
    with open(os.path.join(ms, "model.safetensors.index.json"), "w") as f:
        json.dump({"weight_map": {"model.norm.weight": "model-00001-of-00001.safetensors",
                                  "output.weight": "model-00001-of-00001.safetensors"}}, f, indent=1)
    manifest["index-lies"] = {"status": "bad format", "contains": "'output.weight'"}

    ms = os.path.join(d, "index-escapes")
    os.makedirs(ms)
    with open(os.path.join(ms, "model.safetensors.index.json"), "w") as f:
        json.dump({"weight_map": {"x": "../st-bf16/model.safetensors"}}, f)
    manifest["index-escapes"] = {"status": "bad format", "contains": "not a plain file name"}

    # safetensors
    def st_raw(name, header_bytes, data, expect, hlen=None):
        with open(os.path.join(d, name), "wb") as f:
            f.write(struct.pack("<Q", len(header_bytes) if hlen is None else hlen))
            f.write(header_bytes)
            f.write(data)
        manifest[name] = {"status": "bad format", "contains": expect}

    def st(name, header, data, expect):
        st_raw(name, json.dumps(header).encode(), data, expect)

    data = bytes(range(64))
    st_raw("st-header-absurd.safetensors", b"{}", data, "above the format's 100 MB limit", hlen=1 << 40)
    st_raw("st-header-past-end.safetensors", b"{}", data, "only", hlen=5000)
    st_raw("st-header-not-json.safetensors", b"{\"a\": [1, 2", data, "not valid JSON")
    st_raw("st-duplicate-name.safetensors",
           b'{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},'
           b'"a":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}}', data, "'a' is listed twice")
    st("st-overlap.safetensors", {"a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]},
                                  "b": {"dtype": "F32", "shape": [4], "data_offsets": [8, 24]}},
       data, "overlap")
    st("st-dtype-i64.safetensors", {"a": {"dtype": "I64", "shape": [2], "data_offsets": [0, 16]}},
       data, "dtype I64")
    st("st-past-end.safetensors", {"a": {"dtype": "F32", "shape": [32], "data_offsets": [0, 128]}},
       data, "only 64 bytes")
    st("st-reversed.safetensors", {"a": {"dtype": "F32", "shape": [2], "data_offsets": [16, 8]}},
       data, "before it begins")
    st("st-size-mismatch.safetensors", {"a": {"dtype": "F16", "shape": [3, 3], "data_offsets": [0, 16]}},
       data, "need 18")
    st("st-five-dims.safetensors", {"a": {"dtype": "F32", "shape": [1, 1, 1, 1, 2], "data_offsets": [0, 8]}},
       data, "5 dimensions")
    st("st-negative-dim.safetensors", {"a": {"dtype": "F32", "shape": [-2], "data_offsets": [0, 8]}},
       data, "not a whole number")
    st("st-fraction.safetensors", {"a": {"dtype": "F32", "shape": [2], "data_offsets": [0.5, 8]}},
       data, "data_offsets")
    st("st-no-offsets.safetensors", {"a": {"dtype": "F32", "shape": [2]}}, data, "lacks")
    with open(os.path.join(d, "st-short.safetensors"), "wb") as f:
        f.write(b"\x02\x00\x00")
    manifest["st-short.safetensors"] = {"status": "bad format", "contains": "too short"}

    with open(os.path.join(d, "expected.json"), "w") as f:
        json.dump(manifest, f, indent=1, sort_keys=True)
        f.write("\n")


def write_seeds(root):
    """Small, valid inputs for the fuzzers to mutate from."""
    d = os.path.join(root, "seeds")
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(os.path.join(d, "pickle"))
    os.makedirs(os.path.join(d, "safetensors"))
    g = torch.Generator().manual_seed(7)
    base = torch.randn(10, generator=g)
    sd = collections.OrderedDict([
        ("model.norm.weight", torch.randn(4, generator=g)),
        ("w", torch.randn(2, 3, generator=g).half()),
        ("v", base[2:6].bfloat16()),
        ("plora_sub_GN", torch.randn(1, 1, 1, 2, generator=g)),
    ])
    sd._metadata = collections.OrderedDict([("", {"version": 1})])
    path = os.path.join(d, "pickle", "state-dict.bin")
    torch_save(sd, path)
    with zipfile.ZipFile(path) as z:
        name = [n for n in z.namelist() if n.endswith("data.pkl")][0]
        with open(os.path.join(d, "pickle", "data.pkl"), "wb") as f:
            f.write(z.read(name))
    # Protocol 4 brings FRAME, SHORT_BINUNICODE, MEMOIZE and STACK_GLOBAL.
    torch.save(sd, os.path.join(d, "pickle", "protocol4.bin"), pickle_protocol=4)
    shared = torch.arange(6, dtype=torch.float32)
    torch_save({"a": shared[0:3], "b": shared[3:6].view(1, 3)}, os.path.join(d, "pickle", "views.bin"))
    with open(os.path.join(d, "pickle", "handmade.pkl"), "wb") as f:
        f.write(P().dict_of([("a", "FloatStorage", "0", 12, 0, [3, 4], [4, 1])]))
    write_safetensors(os.path.join(d, "safetensors", "mixed.safetensors"),
                      collections.OrderedDict((k, v.contiguous()) for k, v in sd.items()))
    write_safetensors(os.path.join(d, "safetensors", "one.safetensors"),
                      {"x": torch.ones(2, 2, dtype=torch.bfloat16)})


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: make_checkpoints.py OUT_DIR")
    root = sys.argv[1]
    os.makedirs(root, exist_ok=True)
    torch.manual_seed(0)
    tok = os.path.join(root, "tokenizer.model.tmp")
    train_tokenizer(tok)
    plan = [
        ("bin-f32", "pytorch", "f32", False),
        ("bin-f16", "pytorch", "f16", False),
        ("bin-bf16-sharded", "pytorch", "bf16", True),
        ("st-f32-sharded", "safetensors", "f32", True),
        ("st-f16-sharded", "safetensors", "f16", True),
        ("st-bf16", "safetensors", "bf16", False),
    ]
    for name, fmt, dt, sharded in plan:
        write_checkpoint(root, name, fmt, DTYPES[dt], sharded, 1234, tok)
    os.remove(tok)
    write_bad(root, state_dict(1234, torch.float32))
    write_seeds(root)
    total = 0
    for dp, _, fs in os.walk(root):
        total += sum(os.path.getsize(os.path.join(dp, f)) for f in fs)
    print(f"wrote {root}: {total} bytes")


if __name__ == "__main__":
    main()
