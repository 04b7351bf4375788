#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-3.0-or-later
#
# test-synth.py — `tessera-cli synth` and `bench llm` (app/tessera-cli-synth.c,
# app/tessera-cli-bench-llm.c).
#
#     test-synth.py TESSERA_CLI
#
# Writes a small synthetic model (full structure, small widths, so the
# test takes seconds) into a temporary folder, then: `info` recognises it
# as synthetic (exit 1, the verdict says so); `bench llm` runs a tiny
# prompt and prints every figure it promises; `ask` and `complete` refuse
# it with one line on stderr; bad options are usage errors. The folder is
# removed at the end, whatever happens.

import os
import shutil
import subprocess
import sys
import tempfile

failures = []


def check(cond, what):
    if not cond:
        failures.append(what)
        print("FAIL", what, file=sys.stderr)
    return cond


def run(*args):
    return subprocess.run([CLI, *args], capture_output=True, text=True, timeout=120)


CLI = sys.argv[1]
SMALL = ["--layers", "2", "--embd", "256", "--ff", "512", "--heads", "4", "--kv-heads", "2",
         "--vocab", "1000", "--v-layers", "1", "--v-embd", "64", "--v-ff", "128", "--v-heads", "2",
         "--ranks", "4,16"]

tmp = tempfile.mkdtemp(prefix="tessera-synth-")
try:
    model = os.path.join(tmp, "synth.gguf")
    r = run("synth", "--type", "q4_0", *SMALL, model)
    check(r.returncode == 0, f"synth exit {r.returncode}: {r.stderr}")
    check(r.stdout == "", "synth printed on stdout")
    check("writing" in r.stderr and "synthetic" in r.stderr, f"synth progress: {r.stderr!r}")
    check(os.path.exists(model) and not os.path.exists(model + ".part"), "synth output")

    r = run("info", model)
    check(r.returncode == 1, f"info exit {r.returncode}")
    check("synthetic model with random weights" in r.stdout, "info verdict")
    check("2 layers, width 256" in r.stdout and "vocabulary 1000" in r.stdout, f"info shapes: {r.stdout}")
    check("q4_0" in r.stdout, "info types")
    check(r.stderr.count("\n") == 1 and "synthetic" in r.stderr, f"info error line: {r.stderr!r}")

    r = run("bench", "llm", "--model", model, "--prompt", "8,32", "--decode", "3", "--threads", "2",
            "--kv", "f16")
    check(r.returncode == 0, f"bench llm exit {r.returncode}: {r.stderr}")
    for word in ("[synthetic]", "read per decoded token", "kv cache   f16", "prefill", "tokens/s",
                 "decode     3 tokens after 8", "peak RSS", "triad", "bound", "of the bandwidth bound",
                 "load", "quoted, not measured here", "27.0", "4.40"):
        check(word in r.stdout, f"bench llm prints {word!r}")
    lines = [l.split() for l in r.stdout.splitlines()]
    # tokens, seconds, tokens/s, GFLOP/s, cores, then where the time went
    rows = [l for l in lines if len(l) >= 5 and l[0] in ("8", "32")]
    check(len(rows) == 2 and all(float(l[2]) > 0 for l in rows), f"prefill rows: {rows}")

    for cmd in (["ask", "--model", model, "What is this?"], ["complete", "--model", model, "Once"]):
        r = run(*cmd)
        check(r.returncode == 1, f"{cmd[0]} exit {r.returncode}")
        check(r.stderr.count("\n") == 1 and "random weights" in r.stderr and r.stdout == "",
              f"{cmd[0]} refusal: {r.stderr!r}")

    for args in (["synth"], ["synth", "--type", "q5_k", model], ["synth", "--vocab", "12", model],
                 ["synth", "--ranks", "8", model], ["bench", "llm"], ["bench", "llm", "--model", model, "--kv", "q8_0"],
                 ["bench", "llm", "--model", model, "--prompt", "0"]):
        r = run(*args)
        check(r.returncode == 2 and r.stderr.count("\n") == 1, f"{args}: exit {r.returncode}, {r.stderr!r}")
    r = run("synth", "--heads", "3", *SMALL[2:4], model + "-bad")
    check(r.returncode == 1 and not os.path.exists(model + "-bad.part"), f"3 heads: {r.stderr!r}")
finally:
    shutil.rmtree(tmp, ignore_errors=True)

if failures:
    print(f"{len(failures)} failures", file=sys.stderr)
    sys.exit(1)
print("synth and bench llm: OK")
