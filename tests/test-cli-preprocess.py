#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-3.0-or-later
#
# test-cli-preprocess.py — `tessera-cli preprocess` against the contract in
# design.md (DIR/global.npy [3,336,336] and DIR/hd.npy [3,H,W], NumPy .npy,
# '<f4', C order) and the fixtures of tests/reference/preprocess_reference.py;
# its usage and runtime errors; and that `tessera-cli bench preprocess` runs.
#
# Usage: test-cli-preprocess.py TESSERA_CLI FIXTURE_DIR
#
# Standard library only (CI has no NumPy).

import ast
import json
import os
import subprocess
import sys
import tempfile
from array import array

ERROR_PREFIX = "tessera-cli: error: "
TOLERANCE = 1e-5

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
                          errors="replace", timeout=120, env=env)


def read_npy(path):
    """(shape, floats) of a little-endian float32 C-order .npy; raises on anything else."""
    with open(path, "rb") as f:
        data = f.read()
    if data[:6] != b"\x93NUMPY":
        raise ValueError("no .npy magic")
    major, minor = data[6], data[7]
    if (major, minor) != (1, 0):
        raise ValueError("format %d.%d, want 1.0" % (major, minor))
    hlen = int.from_bytes(data[8:10], "little")
    if (10 + hlen) % 64 != 0:
        raise ValueError("header of %d bytes does not align the data to 64" % hlen)
    header = data[10:10 + hlen].decode("latin-1")
    if not header.endswith("\n"):
        raise ValueError("header does not end with a newline")
    d = ast.literal_eval(header.strip())
    if d.get("descr") != "<f4" or d.get("fortran_order") is not False or not isinstance(d.get("shape"), tuple):
        raise ValueError("header %r" % header)
    count = 1
    for n in d["shape"]:
        count *= n
    body = data[10 + hlen:]
    if len(body) != 4 * count:
        raise ValueError("%d data bytes for %d floats" % (len(body), count))
    values = array("f")
    values.frombytes(body)
    if sys.byteorder != "little":
        values.byteswap()
    return d["shape"], values


def compare(shape, values, ref_shape, ref, sampling, what):
    """values has shape [3,H,W]; ref is it sampled at start::step (both axes)."""
    start, step = sampling
    _, h, w = shape
    rows = range(start, h, step)
    cols = range(start, w, step)
    if not check(tuple(ref_shape) == (3, len(rows), len(cols)),
                 "%s: fixture shape %s does not fit %s sampled %s" % (what, ref_shape, shape, sampling)):
        return
    worst, bad, i = 0.0, 0, 0
    for c in range(3):
        for y in rows:
            base = (c * h + y) * w
            for x in cols:
                d = abs(values[base + x] - ref[i])
                i += 1
                if not d <= TOLERANCE:
                    bad += 1
                worst = max(worst, d)
    check(bad == 0, "%s: %d values beyond %g of the reference (worst %g)" % (what, bad, TOLERANCE, worst))


def check_error(run, code, what):
    lines = run.stderr.splitlines()
    check(run.returncode == code and len(lines) == 1 and lines[0].startswith(ERROR_PREFIX),
          "%s: want exit %d and one '%s…' line" % (what, code, ERROR_PREFIX), run)


def main():
    global CLI
    if len(sys.argv) != 3:
        print("usage: test-cli-preprocess.py TESSERA_CLI FIXTURE_DIR", file=sys.stderr)
        return 2
    CLI, fixtures = sys.argv[1], sys.argv[2]
    with open(os.path.join(fixtures, "cases.json")) as f:
        manifest = json.load(f)
    cases = {c["name"]: c for c in manifest["cases"]}

    with tempfile.TemporaryDirectory() as tmp:
        # A landscape, a portrait, one with alpha, a strip, and the cases
        # that carry whole tensors.
        chosen = ["landscape", "portrait-down", "rgba", "strip"]
        chosen += [n for n, c in cases.items() if ("hd_full" in c or "global_full" in c) and n not in chosen]
        for name in chosen:
            c = cases[name]
            out = os.path.join(tmp, name, "nested")   # DIR is created, parents too
            run = cli("preprocess", "--hd", str(c["hd_num"]), "--threads", "2",
                      os.path.join(fixtures, c["input"]), "--out", out)
            if not check(run.returncode == 0 and run.stderr == "", "%s: preprocess failed" % name, run):
                continue
            W, H = c["padded"]
            try:
                gshape, glb = read_npy(os.path.join(out, "global.npy"))
                hshape, hd = read_npy(os.path.join(out, "hd.npy"))
            except (OSError, ValueError, SyntaxError) as e:
                check(False, "%s: unreadable .npy: %s" % (name, e))
                continue
            check(gshape == (3, 336, 336), "%s: global.npy shape %s" % (name, gshape))
            check(hshape == (3, H, W), "%s: hd.npy shape %s, want (3, %d, %d)" % (name, hshape, H, W))
            for key, shape, values, sampling in (
                    ("global_sub", gshape, glb, manifest["global_sub"]),
                    ("global_full", gshape, glb, [0, 1]),
                    ("hd_sub", hshape, hd, manifest["hd_sub"]),
                    ("hd_full", hshape, hd, [0, 1])):
                if key in c:
                    rshape, ref = read_npy(os.path.join(fixtures, c[key]))
                    compare(shape, values, rshape, ref, sampling, "%s %s" % (name, key))

        # Usage errors: exit 2.
        img = os.path.join(fixtures, cases["tiny"]["input"])
        out = os.path.join(tmp, "err")
        check_error(cli("preprocess", img), 2, "no --out")
        check_error(cli("preprocess", "--out", out), 2, "no IMAGE")
        check_error(cli("preprocess", "--hd", "0", img, "--out", out), 2, "--hd 0")
        check_error(cli("preprocess", "--hd", "x", img, "--out", out), 2, "--hd x")
        check_error(cli("preprocess", "--threads", "0", img, "--out", out), 2, "--threads 0")
        check_error(cli("preprocess", img, "--out"), 2, "--out without a value")
        check_error(cli("preprocess", "--frobnicate", img, "--out", out), 2, "unknown option")
        check_error(cli("preprocess", img, img, "--out", out), 2, "two images")
        # Runtime errors: exit 1.
        check_error(cli("preprocess", os.path.join(tmp, "missing.png"), "--out", out), 1, "missing image")
        junk = os.path.join(tmp, "junk.png")
        with open(junk, "wb") as f:
            f.write(b"not an image at all")
        check_error(cli("preprocess", junk, "--out", out), 1, "not an image")
        check_error(cli("preprocess", img, "--out", junk), 1, "--out is a file")
        check(not os.path.exists(out), "a failed run left %s behind" % out)

        # The benchmark runs and reports each stage.
        run = cli("bench", "preprocess", "--hd", "4", "--repeat", "2", "--threads", "1", "640x480")
        check(run.returncode == 0 and all(s in run.stdout for s in
                                          ("canvas resize", "normalise", "global view", "tiles", "total")),
              "bench preprocess", run)
        run = cli("bench", "preprocess", "--repeat", "1", img)
        check(run.returncode == 0 and "HD-55" in run.stdout, "bench preprocess IMAGE", run)
        check_error(cli("bench"), 2, "bench without a mode")
        check_error(cli("bench", "nosuch"), 2, "bench with an unknown mode")
        check_error(cli("bench", "preprocess", "--repeat", "0"), 2, "bench --repeat 0")

    print("test-cli-preprocess: %d checks, %d failed" % (n_checks, len(failures)))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
