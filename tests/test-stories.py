#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-3.0-or-later
"""The published llama2.c golden: stories260K.gguf, greedy, through
tessera-cli tokenize and complete (GGUF reader, tokenizer, decoder, kernels).

    test-stories.py TESSERA_CLI STORIES.gguf EXPECTED.json
"""
import json
import subprocess
import sys

cli, model, expected_path = sys.argv[1:4]
expected = json.load(open(expected_path, encoding="utf-8"))
failures = 0


def check(cond, msg):
    global failures
    if not cond:
        failures += 1
        print("FAIL:", msg, file=sys.stderr)


for case in expected["expected"]:
    prompt = case["prompt"]
    ids = case["prompt_ids"]
    emitted = case.get("emitted_ids_pos0_to_63") or case.get("emitted_ids")
    # llama2.c counts emitted tokens: every position after BOS, prompt included.
    n_new = case["steps_total_positions"] - (len(ids) - 1)
    if prompt:
        r = subprocess.run([cli, "tokenize", "--model", model, "--bos", prompt],
                           capture_output=True, text=True)
        check(r.returncode == 0, f"tokenize exited {r.returncode}: {r.stderr}")
        check(r.stdout.split() == [str(i) for i in ids], f"tokenize {prompt!r}: {r.stdout.strip()} != {ids}")
    # f16 keys and values round each one; on this model greedy ids do not move.
    for threads, kv in (("1", []), ("2", []), ("2", ["--kv-f16"])):
        r = subprocess.run([cli, "complete", "--model", model, "--threads", threads,
                            "--max-new-tokens", str(n_new), prompt] + kv,
                           capture_output=True, text=True)
        check(r.returncode == 0, f"complete exited {r.returncode}: {r.stderr}")
        out = r.stdout[:-1] if r.stdout.endswith("\n") else r.stdout
        got = prompt + out
        check(got == case["text"], f"{threads} threads, prompt {prompt!r}:\n got  {got!r}\n want {case['text']!r}")
        check("tokens/s" in r.stderr, "complete prints no timings on stderr")
    del emitted

# Errors are one line and exit 1 or 2.
for args, code in [(["complete", "--model", "/nonexistent.gguf", "x"], 1),
                   (["complete", "--model", expected_path, "x"], 1),
                   (["complete", "x"], 2),
                   (["complete", "--model", model, "--max-new-tokens", "-3", "x"], 2),
                   (["tokenize", "--tokenizer", expected_path, "x"], 1)]:
    r = subprocess.run([cli] + args, capture_output=True, text=True)
    lines = r.stderr.strip().splitlines()
    check(r.returncode == code, f"{args}: exit {r.returncode}, want {code}")
    check(len(lines) == 1 and lines[0].startswith("tessera-cli: error: "), f"{args}: stderr {r.stderr!r}")

print(f"test-stories: {failures} failures")
sys.exit(1 if failures else 0)
