#!/usr/bin/python3
# SPDX-License-Identifier: GPL-3.0-or-later
#
# test-convert.py — the converter through its two doors (standard library only):
#
#   test-convert.py TEST_CONVERT TESSERA_CLI CHECKPOINT_FIXTURES
#       1. copies every fixture checkpoint (tests/fixtures/checkpoints/NAME,
#          the folders with a NAME.expected.json) to a temporary folder and
#          runs `test-convert` on the copies: every type, every tensor,
#          the metadata (tests/test-convert.c);
#       2. `tessera-cli convert`: success (and `tessera-cli info` accepts
#          the file), progress on a terminal and in a log, skipped tensors,
#          and each error as one line `tessera-cli: error: …` with exit 1
#          (2 for usage) and no OUT.gguf or OUT.gguf.part left behind:
#          missing folder, no config.json, config.json not JSON, a missing
#          or invalid field, an index naming a missing shard, a missing
#          tensor, a wrong shape, no tokenizer.model, an unsupported --type,
#          an output folder that cannot be written, a full disk.
#   test-convert.py --rss TEST_CONVERT CHECKPOINT_FIXTURES HIDDEN LAYERS VOCAB TYPE
#       writes a synthetic checkpoint of that size and measures the peak
#       resident memory of converting it (see test-convert.c --rss).


import collections
import json
import os
import pickle
import pty
import select
import shutil
import struct
import subprocess
import sys
import tempfile
import types
import zipfile

failures = 0


def check(cond, what):
    global failures
    if not cond:
        failures += 1
        print("FAIL:", what)
    return cond


# ---- safetensors ---------------------------------------------------------

ST_SIZE = {"F32": 4, "F16": 2, "BF16": 2}


def st_read(path):
    with open(path, "rb") as f:
        b = f.read()
    n = struct.unpack("<Q", b[:8])[0]
    header = json.loads(b[8:8 + n])
    meta = header.pop("__metadata__", None)
    base = 8 + n
    items = sorted(header.items(), key=lambda kv: kv[1]["data_offsets"][0])
    tensors = collections.OrderedDict()
    for name, h in items:
        lo, hi = h["data_offsets"]
        tensors[name] = [h["dtype"], list(h["shape"]), b[base + lo:base + hi]]
    return meta, tensors


def st_write(path, meta, tensors):
    header = {}
    if meta is not None:
        header["__metadata__"] = meta
    off = 0
    for name, (dtype, shape, data) in tensors.items():
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [off, off + len(data)]}
        off += len(data)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for _, _, data in tensors.values():
            f.write(data)


# ---- torch.save's zip, without torch ------------------------------------
# A stand-in torch module lets the standard pickle module load a state dict
# (tensors become records of their _rebuild_tensor_v2 arguments) and write
# it back with the same globals, persistent ids and protocol torch.save uses.

# ---- running the CLI -----------------------------------------------------

def run(cli, args, **kw):
    return subprocess.run([cli] + args, capture_output=True, text=True, **kw)


def error_lines(stderr):
    return [l for l in stderr.splitlines() if l.startswith("tessera-cli: error: ")]


def expect_error(cli, args, code, contains, out=None, what=""):
    p = run(cli, args)
    errs = error_lines(p.stderr)
    ok = check(p.returncode == code, f"{what}: exit {p.returncode}, want {code}; stderr: {p.stderr!r}")
    ok &= check(len(errs) == 1 and contains in errs[0],
                f"{what}: want one error line containing {contains!r}; stderr: {p.stderr!r}")
    if out:
        ok &= check(not os.path.exists(out) and not os.path.exists(out + ".part"),
                    f"{what}: {out} or its .part was left behind")
    print(f"  {'ok  ' if ok else 'FAIL'} {what}: {errs[0] if errs else p.stderr.strip()}")
    return p


def can_unshare():
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        return False
    p = subprocess.run(["unshare", "--mount", "--propagation", "private", "true"], capture_output=True)
    return p.returncode == 0


def in_tmpfs(cli, opts, good, typ):
    """`tessera-cli convert --type typ good $T/out.gguf` with a fresh tmpfs
    (mount options opts) at $T, in a private mount namespace; stdout is
    `ls -A $T` afterwards."""
    script = ('T=$(mktemp -d) || exit 77; mount -t tmpfs -o "$1" tmpfs "$T" || exit 77; '
              '"$2" convert --type "$4" "$3" "$T/out.gguf" >/dev/null; rc=$?; '
              'ls -A "$T"; umount "$T"; rmdir "$T"; exit $rc')
    return subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c", script, "sh",
                           opts, cli, good, typ], capture_output=True, text=True)


def terminal_progress(cli, good, out):
    """On a terminal: one line rewritten in place."""
    master, slave = pty.openpty()
    proc = subprocess.Popen([cli, "convert", "--type", "f16", good, out], stdout=subprocess.DEVNULL,
                            stderr=slave, stdin=subprocess.DEVNULL)
    os.close(slave)
    data = b""
    while True:
        r, _, _ = select.select([master], [], [], 0.2)
        if r:
            try:
                chunk = os.read(master, 65536)
            except OSError:
                chunk = b""
            if not chunk:
                if proc.poll() is not None:
                    break
                continue
            data += chunk
        elif proc.poll() is not None:
            break
    os.close(master)
    check(proc.wait() == 0, "convert on a terminal failed")
    text = data.decode(errors="replace")
    check("\r\x1b[Kconvert: " in text and text.count("\n") == 0,
          f"a terminal gets one updating line: {text[-300:]!r}")
    print("  ok   progress on a terminal: one updating line" if "\r" in text else "  FAIL terminal progress")
    os.unlink(out)


def cli_tests(cli, fx, tmp):
    print("tessera-cli convert")
    good = os.path.join(fx, "st-bf16")
    out = os.path.join(tmp, "out.gguf")

    # Success, a log-style progress, and `info` accepting the result.
    p = run(cli, ["convert", "--type", "q4_0", "--threads", "2", good, out])
    check(p.returncode == 0, f"convert: exit {p.returncode}: {p.stderr}")
    check(p.stdout.startswith("wrote " + out), f"summary line: {p.stdout!r}")
    check("\r" not in p.stderr and "convert: converting 100%" in p.stderr and "convert: finishing" in p.stderr,
          f"plain progress lines when stderr is no terminal: {p.stderr!r}")
    check(not os.path.exists(out + ".part"), "a .part was left behind")
    i = run(cli, ["info", out])
    check(i.returncode == 0 and "architecture  internlm2-4khd" in i.stdout and
          "InternLM-XComposer2-4KHD model" in i.stdout, f"info: exit {i.returncode}: {i.stdout}{i.stderr}")
    print(f"  ok   convert + info: {p.stdout.strip()}")
    # The vocabulary in the file tokenizes exactly as tokenizer.model does
    # (pieces, scores, types and add_space_prefix all take part).
    for text in ["The chart shows sales revenue.", " leading space", "[UNUSED_TOKEN_146]user\nWhat is 42%?"]:
        a = run(cli, ["tokenize", "--model", out, "--bos", text])
        b = run(cli, ["tokenize", "--tokenizer", os.path.join(good, "tokenizer.model"), "--bos", text])
        check(a.returncode == 0 and a.stdout == b.stdout and a.stdout.strip(),
              f"tokenize {text!r}: file {a.stdout.strip()!r}{a.stderr}, tokenizer.model {b.stdout.strip()!r}")
    os.unlink(out)

    # On a terminal: one line rewritten in place. A machine without
    # pseudo-terminals (a bare chroot) cannot show one; say so and go on.
    try:
        master, slave = pty.openpty()
    except OSError as e:
        print(f"  skip progress on a terminal: no pseudo-terminal here ({e})")
    else:
        os.close(master)
        os.close(slave)
        terminal_progress(cli, good, out)

    # Tensors the model does not use are skipped, with a note per kind.
    extra = os.path.join(tmp, "extra")
    shutil.copytree(good, extra)
    st = os.path.join(extra, "model.safetensors")
    meta, tensors = st_read(st)
    for n in range(2):
        tensors[f"model.layers.{n}.attention.rotary_emb.inv_freq"] = ["F32", [8], struct.pack("<8f", *range(8))]
    for part in ("weight", "bias"):
        tensors[f"vit.vision_tower.vision_model.post_layernorm.{part}"] = ["BF16", [32], bytes(64)]
    tensors["something.else"] = ["F16", [2], bytes(4)]
    st_write(st, meta, tensors)
    p = run(cli, ["convert", "--type", "bf16", extra, out])
    notes = [l for l in p.stderr.splitlines() if l.startswith("tessera-cli: note: skipped")]
    check(p.returncode == 0 and len(notes) == 4 and
          any("rotary_emb.inv_freq (2 tensors)" in n for n in notes) and
          any("post_layernorm.weight" in n for n in notes) and any("something.else" in n for n in notes),
          f"skipped tensors: exit {p.returncode}, {p.stderr!r}")
    print(f"  {'ok  ' if p.returncode == 0 else 'FAIL'} skipped with notes: {len(notes)} notes")
    if os.path.exists(out):
        os.unlink(out)

    print("errors")
    expect_error(cli, ["convert", os.path.join(tmp, "no-such-folder"), out], 1, "no-such-folder", out,
                 "missing folder")

    d = os.path.join(tmp, "no-config")
    shutil.copytree(good, d)
    os.unlink(os.path.join(d, "config.json"))
    expect_error(cli, ["convert", d, out], 1, "has no config.json", out, "folder without config.json")

    d = os.path.join(tmp, "bad-json")
    shutil.copytree(good, d)
    with open(os.path.join(d, "config.json"), "w") as f:
        f.write('{"hidden_size": 64, "num_hidden_layers": \n')
    expect_error(cli, ["convert", d, out], 1, "not valid JSON", out, "config.json not JSON")

    def with_config(name, edit):
        d = os.path.join(tmp, name)
        shutil.copytree(good, d)
        with open(os.path.join(d, "config.json")) as f:
            cfg = json.load(f)
        edit(cfg)
        with open(os.path.join(d, "config.json"), "w") as f:
            json.dump(cfg, f)
        return d

    d = with_config("no-hidden", lambda c: c.pop("hidden_size"))
    expect_error(cli, ["convert", d, out], 1, '"hidden_size"', out, "config.json lacks a field")
    d = with_config("bad-heads", lambda c: c.update(num_attention_heads="four"))
    expect_error(cli, ["convert", d, out], 1, '"num_attention_heads" must be a whole number', out,
                 "config.json field of the wrong kind")
    d = with_config("bad-vision", lambda c: c["vision_config"].pop("intermediate_size"))
    expect_error(cli, ["convert", d, out], 1, '"vision_config.intermediate_size"', out,
                 "vision_config lacks a field")
    d = with_config("bad-alpha", lambda c: c["plora_alpha"].update(wo=-1))
    expect_error(cli, ["convert", d, out], 1, '"plora_alpha.wo"', out, "plora_alpha not positive")

    d = os.path.join(tmp, "missing-shard")
    shutil.copytree(os.path.join(fx, "bin-bf16-sharded"), d)
    os.unlink(os.path.join(d, "pytorch_model-00002-of-00002.bin"))
    expect_error(cli, ["convert", d, out], 1, "pytorch_model-00002-of-00002.bin", out,
                 "index naming a missing shard")

    d = os.path.join(tmp, "missing-tensor")
    shutil.copytree(good, d)
    meta, tensors = st_read(os.path.join(d, "model.safetensors"))
    del tensors["model.layers.1.feed_forward.w2.Plora_B.weight"]
    st_write(os.path.join(d, "model.safetensors"), meta, tensors)
    expect_error(cli, ["convert", d, out], 1, "'model.layers.1.feed_forward.w2.Plora_B.weight'", out,
                 "missing tensor")

    d = os.path.join(tmp, "wrong-shape")
    shutil.copytree(good, d)
    meta, tensors = st_read(os.path.join(d, "model.safetensors"))
    tensors["model.layers.0.feed_forward.w1.weight"][1].reverse()     # same bytes, transposed
    st_write(os.path.join(d, "model.safetensors"), meta, tensors)
    expect_error(cli, ["convert", d, out], 1, "'model.layers.0.feed_forward.w1.weight' has shape [64, 128]",
                 out, "wrong shape")

    # Values the chosen type cannot hold, and damage, name the tensor.
    d = os.path.join(tmp, "bad-values")
    shutil.copytree(good, d)
    meta, tensors = st_read(os.path.join(d, "model.safetensors"))
    w1 = bytearray(tensors["model.layers.1.feed_forward.w1.weight"][2])
    w1[2 * 100:2 * 100 + 2] = struct.pack("<H", 0x4974)          # 999424 in bf16
    tensors["model.layers.1.feed_forward.w1.weight"][2] = bytes(w1)
    w3 = bytearray(tensors["model.layers.0.feed_forward.w3.weight"][2])
    w3[2 * 7:2 * 7 + 2] = struct.pack("<H", 0x7fc0)              # NaN
    tensors["model.layers.0.feed_forward.w3.weight"][2] = bytes(w3)
    st_write(os.path.join(d, "model.safetensors"), meta, tensors)
    expect_error(cli, ["convert", "--type", "bf16", d, out], 1,
                 "'blk.0.ffn_up.weight' (from 'model.layers.0.feed_forward.w3.weight') as bf16", out,
                 "a NaN in the checkpoint")
    w3[2 * 7:2 * 7 + 2] = struct.pack("<H", 0x3f80)              # 1.0
    tensors["model.layers.0.feed_forward.w3.weight"][2] = bytes(w3)
    st_write(os.path.join(d, "model.safetensors"), meta, tensors)
    expect_error(cli, ["convert", "--type", "f16", d, out], 1, "beyond the f16 range", out,
                 "a value beyond f16")
    p = run(cli, ["convert", "--type", "q8_0", d, out])
    check(p.returncode == 0, f"the same value fits q8_0 and bf16: {p.stderr}")
    if os.path.exists(out):
        os.unlink(out)

    d = os.path.join(tmp, "no-tokenizer")
    shutil.copytree(good, d)
    os.unlink(os.path.join(d, "tokenizer.model"))
    expect_error(cli, ["convert", d, out], 1, "tokenizer.model", out, "no tokenizer.model")

    expect_error(cli, ["convert", "--type", "q4_K", good, out], 2, "unsupported --type 'q4_K'", out,
                 "unsupported --type")
    expect_error(cli, ["convert", good], 2, "usage: tessera-cli convert", out, "missing OUT")
    expect_error(cli, ["convert", good, out, "more"], 2, "got also 'more'", out, "extra argument")
    expect_error(cli, ["convert", "--threads", "0", good, out], 2, "--threads", out, "--threads 0")

    # An existing OUT survives a failed conversion.
    with open(out, "w") as f:
        f.write("keep me\n")
    expect_error(cli, ["convert", os.path.join(tmp, "missing-tensor"), out], 1, "Plora_B", None,
                 "failure with an existing OUT")
    with open(out) as f:
        check(f.read() == "keep me\n", "the existing OUT was changed")
    os.unlink(out)

    unshare = can_unshare()
    if unshare:
        p = in_tmpfs(cli, "ro,size=64k", good, "f32")
        errs = error_lines(p.stderr)
        ok = check(p.returncode == 1 and len(errs) == 1 and "Read-only file system" in errs[0] and p.stdout == "",
                   f"read-only output folder: exit {p.returncode}, {p.stderr!r}, left {p.stdout!r}")
        print(f"  {'ok  ' if ok else 'FAIL'} output folder not writable (read-only tmpfs): {errs}")

        p = in_tmpfs(cli, "size=64k", good, "f32")
        errs = error_lines(p.stderr)
        ok = check(p.returncode == 1 and len(errs) == 1 and "disk is full" in errs[0] and p.stdout == "",
                   f"full disk: exit {p.returncode}, {p.stderr!r}, left {p.stdout!r}")
        print(f"  {'ok  ' if ok else 'FAIL'} full disk (64 KiB tmpfs): {errs}")
    else:
        print("  (not root or no unshare: a 0555 folder and a file size limit stand in)")
        ro = os.path.join(tmp, "ro")
        os.mkdir(ro, 0o555)
        expect_error(cli, ["convert", good, os.path.join(ro, "out.gguf")], 1, "cannot create",
                     os.path.join(ro, "out.gguf"), "output folder not writable")
        import resource
        import signal

        def limit():
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
            resource.setrlimit(resource.RLIMIT_FSIZE, (65536, 65536))
        p = subprocess.run([cli, "convert", "--type", "f32", good, out], capture_output=True, text=True,
                           preexec_fn=limit)
        errs = error_lines(p.stderr)
        ok = check(p.returncode == 1 and len(errs) == 1 and "partial file was removed" in errs[0] and
                   not os.path.exists(out) and not os.path.exists(out + ".part"), f"file size limit: {p.stderr!r}")
        print(f"  {'ok  ' if ok else 'FAIL'} file size limit for a full disk: {errs}")


def main():
    if len(sys.argv) == 8 and sys.argv[1] == "--rss":
        _, _, exe, fx, hidden, layers, vocab, typ = sys.argv
        tmp = tempfile.mkdtemp(prefix="test-convert-rss-")
        try:
            d = os.path.join(tmp, "large")
            env = dict(os.environ, TSR_TEST_TOKENIZER=os.path.join(fx, "st-bf16", "tokenizer.model"))
            r = subprocess.run([exe, "--make-large", d, hidden, layers, vocab], env=env)
            if r.returncode != 0:
                print("FAIL: --make-large")
                return 1
            r = subprocess.run([exe, "--rss", d, typ, "2"])
            return r.returncode
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    if len(sys.argv) != 4:
        sys.exit("usage: test-convert.py TEST_CONVERT TESSERA_CLI CHECKPOINT_FIXTURES")
    exe, cli, fixtures = sys.argv[1:]
    tmp = tempfile.mkdtemp(prefix="test-convert-")
    try:
        fx = os.path.join(tmp, "fixtures")
        os.mkdir(fx)
        names = sorted(n[:-len(".expected.json")] for n in os.listdir(fixtures) if n.endswith(".expected.json"))
        check(len(names) == 6, f"{len(names)} fixture checkpoints")
        for n in names:
            shutil.copytree(os.path.join(fixtures, n), os.path.join(fx, n))
        r = subprocess.run([exe] + [os.path.join(fx, n) for n in names])
        check(r.returncode == 0, f"test-convert exit {r.returncode}")
        cli_tests(cli, fx, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"{failures} failures")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
