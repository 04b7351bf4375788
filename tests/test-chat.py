#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-3.0-or-later
#
# test-chat.py — chat sessions (engine/tsr-chat.c, tsr-sampler.c) and
# `tessera-cli ask` / `logits` against tests/fixtures/chat, the fixtures of
# tests/reference/model_reference.py (a float64 PyTorch reference written
# from model.md).
#
#     test-chat.py TESSERA_CLI TEST_CHAT CHECKPOINT_DIR FIXTURE_DIR SYNTHETIC.gguf
#
# 1. Converts the tiny checkpoint (tests/fixtures/checkpoints/st-f32-sharded)
#    with `tessera-cli convert --type f32` into a temporary folder, so no
#    model file is ever committed.
# 2. Runs TEST_CHAT on it: the engine-level checks (prompts, logits within
#    1e-4, greedy and beam ids, the cache against full recomputation, abort
#    and ask again, sampling, the sampler and the clean-up by hand).
# 3. Checks the command line: `logits` (text, and an image through the
#    vision tower) within 1e-4 of the reference, `ask` prints the reference
#    answers (greedy and 3 beams) and its timings, and refuses what it must.
#
# Standard library only (CI has no NumPy).

import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile

TOLERANCE = 1e-4
failures = []


def check(cond, what):
    if not cond:
        failures.append(what)
        print("FAIL", what, file=sys.stderr)
    return cond


def copy_checkpoint(src, dst):
    shutil.copytree(src, dst)


def read_npy_f32(path):
    with open(path, "rb") as f:
        blob = f.read()
    assert blob[:6] == b"\x93NUMPY", path
    major = blob[6]
    hlen = struct.unpack("<H" if major == 1 else "<I", blob[8:10] if major == 1 else blob[8:12])[0]
    start = (10 if major == 1 else 12) + hlen
    header = blob[start - hlen:start].decode("latin1")
    assert "'<f4'" in header and "'fortran_order': False" in header, header
    n = (len(blob) - start) // 4
    return list(struct.unpack("<%df" % n, blob[start:start + 4 * n]))


def rel_err(a, b):
    if len(a) != len(b):
        return float("inf")
    return max(abs(x - y) for x, y in zip(a, b)) / max(abs(y) for y in b)


def run(args, **kw):
    return subprocess.run(args, capture_output=True, **kw)


def main():
    cli, test_chat, ckpt, fixtures, synthetic = sys.argv[1:6]
    cases = json.load(open(os.path.join(fixtures, "cases.json"), encoding="utf-8"))
    by_name = {c["name"]: c for c in cases["cases"]}
    with tempfile.TemporaryDirectory(prefix="tessera-chat-") as tmp:
        copy_checkpoint(ckpt, os.path.join(tmp, "hf"))
        gguf = os.path.join(tmp, "tiny.gguf")
        r = run([cli, "convert", "--type", "f32", os.path.join(tmp, "hf"), gguf], text=True)
        if not check(r.returncode == 0, f"convert exited {r.returncode}: {r.stderr.strip()}"):
            return 1

        # The engine-level checks.
        r = run([test_chat, gguf, fixtures, synthetic], text=True)
        sys.stdout.write(r.stdout)
        sys.stderr.write(r.stderr)
        check(r.returncode == 0, f"test-chat exited {r.returncode}")

        # logits: the text case, and the image case through the vision tower.
        image = os.path.join(fixtures, cases["image"]["png"])
        hd = str(cases["image"]["hd"])
        for name, extra in (("text", []), ("image", ["--image", image, "--hd", hd])):
            turn = by_name[name]["turns"][-1]
            out = os.path.join(tmp, name + ".npy")
            r = run([cli, "logits", "--model", gguf, "--threads", "1", "--question", turn["question"], "--out", out]
                    + extra, text=True)
            if check(r.returncode == 0, f"logits {name} exited {r.returncode}: {r.stderr.strip()}"):
                e = rel_err(read_npy_f32(out), read_npy_f32(os.path.join(fixtures, turn["logits"])))
                print(f"cli logits {name}: max relative error {e:.3g}")
                check(e <= TOLERANCE, f"logits {name}: relative error {e:.3g} > {TOLERANCE}")

        # ask: greedy answers, and 3 beams; a question about an image gets
        # <ImageHere> in front when it has none.
        q_img = by_name["image"]["turns"][-1]["question"]
        bare = q_img.replace("<ImageHere>", "", 1) if q_img.startswith("<ImageHere>") else None
        for name, extra, key in (("text", [], "answer"), ("image", ["--image", image, "--hd", hd], "answer"),
                                 ("text", ["--beams", "3"], "beam3_answer"),
                                 ("image", ["--image", image, "--hd", hd, "--beams", "3"], "beam3_answer")):
            turn = by_name[name]["turns"][-1]
            q = bare if (name == "image" and bare is not None) else turn["question"]
            r = run([cli, "ask", "--model", gguf, "--threads", "1", "--max-new-tokens", str(cases["max_new_tokens"])]
                    + extra + [q])
            if check(r.returncode == 0, f"ask {name} {extra} exited {r.returncode}: {r.stderr!r}"):
                got = r.stdout.decode("utf-8")
                check(got == turn[key] + "\n", f"ask {name} {extra}: {got!r} != {turn[key]!r}")
                check(b"tokens/s" in r.stderr, f"ask {name}: no timings on stderr: {r.stderr!r}")
        r = run([cli, "ask", "--model", gguf, "--threads", "1", "--max-new-tokens", "8", "--temperature", "0.7",
                 "--seed", "5", "Hi"])
        r2 = run([cli, "ask", "--model", gguf, "--threads", "1", "--max-new-tokens", "8", "--temperature", "0.7",
                  "--seed", "5", "Hi"])
        check(r.returncode == 0 and r.stdout == r2.stdout, "ask --temperature with one seed differs between runs")

        # Refusals: one line on stderr, exit 1 (runtime) or 2 (usage).
        for args, code in (([cli, "ask", "--model", synthetic, "Hi"], 1),
                           ([cli, "logits", "--model", synthetic, "--question", "Hi", "--out",
                             os.path.join(tmp, "x.npy")], 1),
                           ([cli, "ask", "--model", os.path.join(tmp, "missing.gguf"), "Hi"], 1),
                           ([cli, "ask", "--model", gguf, "<ImageHere>Hi"], 2),
                           ([cli, "ask", "--model", gguf, "--image", image, "<ImageHere>a<ImageHere>b"], 2),
                           ([cli, "ask", "--model", gguf, "--beams", "3", "--temperature", "1", "Hi"], 2),
                           ([cli, "ask", "--model", gguf, "--temperature", "-1", "Hi"], 2),
                           ([cli, "ask", "--model", gguf], 2),
                           ([cli, "logits", "--model", gguf, "--question", "Hi"], 2),
                           ([cli, "ask", "--model", gguf, "--image", os.path.join(tmp, "missing.png"), "Hi"], 1)):
            r = run(args, text=True)
            lines = r.stderr.strip().splitlines()
            check(r.returncode == code and len(lines) == 1 and lines[0].startswith("tessera-cli: error: "),
                  f"{args[1:]}: exit {r.returncode} (want {code}), stderr {r.stderr!r}")
        r = run([cli, "ask", "--help"], text=True)
        check(r.returncode == 0 and "<ImageHere>" in r.stdout, "ask --help")

    if failures:
        print(f"{len(failures)} failure(s)", file=sys.stderr)
        return 1
    print("test-chat.py: all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
