#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-3.0-or-later
#
# test-vision-cli.py — `tessera-cli encode` against the contract in
# design.md (F.npy holds the projected embeddings [T, hidden], '<f4', C
# order, T = the planner's tokens) and the fixtures of
# tests/reference/vision_reference.py; its usage and runtime errors.
#
# Usage: test-vision-cli.py TESSERA_CLI VISION_FIXTURE_DIR GGUF_FIXTURE_DIR
#
# Standard library only (CI has no NumPy).

import ast
import json
import os
import struct
import subprocess
import sys
import tempfile

ERROR_PREFIX = "tessera-cli: error: "
TOLERANCE = 1e-4

failures = []
n_checks = 0


def check(cond, what, run=None):
    global n_checks
    n_checks += 1
    if not cond:
        msg = "FAIL " + what
        if run is not None:
            msg += "\n     command: " + " ".join(run.args)
            msg += "\n     exit %d; stdout: %.300r; stderr: %.300r" % (run.returncode, run.stdout, run.stderr)
        failures.append(msg)
        print(msg, file=sys.stderr)
    return cond


def cli(*args):
    env = dict(os.environ)
    env["LC_ALL"] = "C.UTF-8"
    return subprocess.run([CLI, *args], capture_output=True, text=True, encoding="utf-8",
                          errors="replace", timeout=100, env=env)


def read_npy(path):
    """(shape, floats) of a little-endian float32 C-order .npy."""
    with open(path, "rb") as f:
        data = f.read()
    if data[:6] != b"\x93NUMPY":
        raise ValueError("no .npy magic")
    if data[6] == 1:
        hlen, start = struct.unpack("<H", data[8:10])[0], 10
    else:
        hlen, start = struct.unpack("<I", data[8:12])[0], 12
    header = ast.literal_eval(data[start:start + hlen].decode("latin-1"))
    if header["descr"] != "<f4" or header["fortran_order"]:
        raise ValueError("not '<f4' C order: %r" % header)
    shape = tuple(header["shape"])
    count = 1
    for d in shape:
        count *= d
    body = data[start + hlen:]
    if len(body) != 4 * count:
        raise ValueError("%d data bytes for shape %r" % (len(body), shape))
    return shape, struct.unpack("<%df" % count, body)


def one_line_error(run, code, what):
    lines = run.stderr.splitlines()
    check(run.returncode == code and len(lines) >= 1 and lines[0].startswith(ERROR_PREFIX),
          what + ": exit %d with one error line" % code, run)


def main():
    global CLI
    if len(sys.argv) != 4:
        sys.exit("usage: test-vision-cli.py TESSERA_CLI VISION_FIXTURE_DIR GGUF_FIXTURE_DIR")
    CLI, fixtures, gguf_dir = sys.argv[1:]
    model = os.path.join(fixtures, "tiny-4khd.gguf")
    with open(os.path.join(fixtures, "cases.json")) as f:
        cases = json.load(f)

    with tempfile.TemporaryDirectory() as tmp:
        for case in cases:
            out = os.path.join(tmp, case["name"] + ".npy")
            image = os.path.join(fixtures, case["name"] + ".ppm")
            run = cli("encode", "--model", model, "--image", image, "--hd", str(case["hd"]),
                      "--threads", "2", "--out", out)
            if not check(run.returncode == 0, "encode %s" % case["name"], run):
                continue
            check("tokens" in run.stderr and "views" in run.stderr, "timings on stderr", run)
            shape, got = read_npy(out)
            want_shape, want = read_npy(os.path.join(fixtures, case["name"] + "-embd.npy"))
            check(shape == (case["tokens"], 64) and shape == want_shape,
                  "%s: shape %r, want %r" % (case["name"], shape, want_shape))
            if len(got) == len(want):
                err = max(abs(a - b) for a, b in zip(got, want)) / max(abs(b) for b in want)
                check(err <= TOLERANCE, "%s: relative error %.3e" % (case["name"], err))
                print("%-14s HD-%d: %d tokens, relative error %.2e" %
                      (case["name"], case["hd"], shape[0], err))

        # The planner's token count at another budget, and --batch.
        out = os.path.join(tmp, "hd3.npy")
        run = cli("encode", "--model", model, "--image", os.path.join(fixtures, "wide-hd6.ppm"),
                  "--hd", "3", "--batch", "1", "--out", out)
        if check(run.returncode == 0, "encode --hd 3 --batch 1", run):
            grid = cli("grid", "--hd", "3", "--json", os.path.join(fixtures, "wide-hd6.ppm"))
            tokens = json.loads(grid.stdout)["tokens"] if grid.returncode == 0 else -1
            check(read_npy(out)[0] == (tokens, 64), "HD-3: %r rows, grid says %d" % (read_npy(out)[0], tokens))

        image = os.path.join(fixtures, "landscape-hd1.ppm")
        out = os.path.join(tmp, "x.npy")
        # Usage errors: exit 2.
        for args, what in ((["encode"], "no arguments"),
                           (["encode", "--model", model, "--image", image], "no --out"),
                           (["encode", "--model", model, "--out", out], "no --image"),
                           (["encode", "--image", image, "--out", out], "no --model"),
                           (["encode", "--model", model, "--image", image, "--out", out, "--hd", "0"], "--hd 0"),
                           (["encode", "--model", model, "--image", image, "--out", out, "--hd", "x"], "--hd x"),
                           (["encode", "--model", model, "--image", image, "--out", out, "--threads", "0"],
                            "--threads 0"),
                           (["encode", "--model", model, "--image", image, "--out", out, "--bogus"], "--bogus"),
                           (["encode", "--model", model, "--image", image, "--out"], "--out without a value")):
            one_line_error(cli(*args), 2, what)
        # Runtime errors: exit 1, no output file.
        for args, what in ((["--model", os.path.join(tmp, "none.gguf"), "--image", image], "a missing model"),
                           (["--model", model, "--image", os.path.join(tmp, "none.png")], "a missing image"),
                           (["--model", os.path.join(gguf_dir, "tiny-4khd-synthetic.gguf"), "--image", image],
                            "a tower of another geometry"),
                           (["--model", os.path.join(gguf_dir, "small.gguf"), "--image", image],
                            "a file without a model"),
                           (["--model", model, "--image", model], "a model file as the image")):
            run = cli("encode", *args, "--out", out)
            one_line_error(run, 1, what)
            check(not os.path.exists(out), what + ": no output file")

    print("%d checks, %d failures" % (n_checks, len(failures)))
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
