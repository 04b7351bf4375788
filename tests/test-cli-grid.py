#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-3.0-or-later
#
# test-cli-grid.py — `tessera-cli grid` against the contract in design.md and
# the planner fixture made by tests/reference/hd_reference.py.
#
# Usage: test-cli-grid.py TESSERA_CLI FIXTURE.json
#
# Standard library only. Exits 0 when every check passes, 1 otherwise, and
# prints each failure with the command that produced it.

import json
import os
import random
import struct
import subprocess
import sys
import tempfile
import zlib

CONTRACT_KEYS = {"width", "height", "hd_num", "transposed", "resized", "padded",
                 "rows", "cols", "tiles", "tokens", "crops"}
ERROR_PREFIX = "tessera-cli: error: "

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


def cli(*args, cwd=None):
    env = dict(os.environ)
    env["LC_ALL"] = "C.UTF-8"
    return subprocess.run([CLI, *args], capture_output=True, text=True, encoding="utf-8",
                          errors="replace", timeout=60, env=env, cwd=cwd)


# ---- PNG writing (zlib + struct) --------------------------------------------

def png_chunk(kind, data):
    return (struct.pack(">I", len(data)) + kind + data +
            struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))


def png_bytes(width, height, seed=1):
    rng = random.Random(seed)
    rows = []
    for _ in range(height):
        # Filter type 0, then RGB noise (so the IDAT is large enough to cut).
        rows.append(b"\x00" + rng.randbytes(3 * width))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) +
            png_chunk(b"IDAT", zlib.compress(b"".join(rows), 9)) + png_chunk(b"IEND", b""))


def write(path, data):
    with open(path, "wb") as f:
        f.write(data)
    return path


# ---- Checks -----------------------------------------------------------------

def expected_json(case):
    return {
        "width": case["width"], "height": case["height"], "hd_num": case["hd_num"],
        "transposed": case["transposed"], "resized": case["resized"], "padded": case["padded"],
        "rows": case["rows"], "cols": case["cols"], "tiles": case["tiles"], "tokens": case["tokens"],
        "crops": [{"x": x, "y": y, "w": w, "h": h} for x, y, w, h in case["crops"]],
    }


def check_json_output(run, case, label):
    if not check(run.returncode == 0, f"{label}: exit {run.returncode}, want 0", run):
        return
    check(run.stderr == "", f"{label}: stderr not empty on success", run)
    try:
        got = json.loads(run.stdout)
    except ValueError as e:
        check(False, f"{label}: stdout is not JSON ({e})", run)
        return
    if not check(isinstance(got, dict), f"{label}: JSON is not an object", run):
        return
    check(set(got) == CONTRACT_KEYS,
          f"{label}: keys {sorted(got)} differ from the contract's {sorted(CONTRACT_KEYS)}", run)
    crops = got.get("crops")
    check(isinstance(crops, list) and all(isinstance(c, dict) and set(c) == {"x", "y", "w", "h"}
                                          for c in crops),
          f"{label}: crops is not a list of {{x,y,w,h}}", run)
    check(isinstance(got.get("transposed"), bool), f"{label}: transposed is not a JSON boolean", run)
    want = expected_json(case)
    for key in sorted(CONTRACT_KEYS):
        if key in got and got[key] != want[key]:
            if key == "crops" and isinstance(crops, list) and len(crops) == len(want["crops"]):
                bad = [i for i, (a, b) in enumerate(zip(crops, want["crops"])) if a != b]
                i = bad[0]
                check(False, f"{label}: {len(bad)} crops differ, first #{i}: {crops[i]} want {want['crops'][i]}")
            else:
                check(False, f"{label}: {key} = {got[key]!r}, want {want[key]!r}")


def check_error(run, code, label):
    check(run.returncode == code, f"{label}: exit {run.returncode}, want {code}", run)
    lines = run.stderr.splitlines()
    check(len(lines) == 1 and lines[0].startswith(ERROR_PREFIX) and len(lines[0]) > len(ERROR_PREFIX),
          f"{label}: stderr is not exactly one line '{ERROR_PREFIX}…'", run)
    check(run.stdout == "", f"{label}: stdout not empty on error", run)


def select_cases(cases):
    """Every error case (cheap), the worked budgets, and an even sample."""
    chosen = []
    for i, c in enumerate(cases):
        if c.get("error") or i % 9 == 0 or (c["hd_num"] in (1, 25, 55) and i % 3 == 0):
            chosen.append(c)
    return chosen


def main():
    global CLI
    if len(sys.argv) != 3:
        print("usage: test-cli-grid.py TESSERA_CLI FIXTURE.json", file=sys.stderr)
        return 2
    CLI = os.path.abspath(sys.argv[1])
    with open(sys.argv[2], encoding="utf-8") as f:
        cases = json.load(f)["cases"]
    index = {(c["width"], c["height"], c["hd_num"]): c for c in cases}
    truncated_outcomes = []

    # 1. WxH against the fixture.
    n_size = 0
    for c in select_cases(cases):
        size = f"{c['width']}x{c['height']}"
        run = cli("grid", "--json", "--hd", str(c["hd_num"]), size)
        label = f"grid --json --hd {c['hd_num']} {size}"
        if c.get("error"):
            check_error(run, 1, label)
        else:
            check_json_output(run, c, label)
        n_size += 1

    # Option order does not matter; --threads is accepted.
    c = index[(3840, 1600, 55)]
    check_json_output(cli("grid", "3840x1600", "--hd", "55", "--json"), c, "grid 3840x1600 --hd 55 --json")
    check_json_output(cli("grid", "--threads", "2", "--json", "--hd", "55", "3840x1600"), c,
                      "grid --threads 2 --json --hd 55 3840x1600")
    # The default budget is HD-25.
    check_json_output(cli("grid", "--json", "1024x768"), index[(1024, 768, 25)], "grid --json 1024x768")

    # 2. Text output.
    c = index[(1920, 1080, 16)]
    run = cli("grid", "--hd", "16", "1920x1080")
    if check(run.returncode == 0, "grid --hd 16 1920x1080: exit status", run):
        out = run.stdout
        check("rows" in out and "cols" in out and "tokens" in out,
              "text output does not mention rows, cols and tokens", run)
        check(str(c["tokens"]) in out and str(c["rows"]) in out and str(c["cols"]) in out,
              "text output lacks the numbers (3 rows, 5 cols, 2353 tokens)", run)
        check(not out.lstrip().startswith("{"), "text output looks like JSON", run)
        check(run.stderr == "", "text output: stderr not empty", run)
    run = cli("grid", "--threads", "2", "--hd", "16", "1920x1080")
    check(run.returncode == 0 and "tokens" in run.stdout, "grid --threads 2 (text): not accepted", run)

    with tempfile.TemporaryDirectory(prefix="tessera-test-grid-") as tmp:
        # 3. Real PNG files of known sizes (all sizes present in the fixture).
        for (w, h), hd in [((5, 7), 25), ((5, 7), 3), ((7, 3), 25), ((640, 480), 9), ((480, 640), 55),
                           ((1, 1), 100)]:
            path = write(os.path.join(tmp, f"img-{w}x{h}.png"), png_bytes(w, h, seed=w * 7919 + h))
            args = ["grid", "--json"] + (["--hd", str(hd)] if hd != 25 else []) + [path]
            check_json_output(cli(*args), index[(w, h, hd)], " ".join(args[:-1]) + f" {w}x{h}.png")
        # A file named like a size is read as a file, not parsed as a size.
        path = write(os.path.join(tmp, "7x5"), png_bytes(5, 7, seed=3))
        check_json_output(cli("grid", "--json", "--hd", "9", "7x5", cwd=tmp), index[(5, 7, 9)],
                          "grid --json --hd 9 <PNG file named 7x5, 5×7 inside>")

        # 4. Errors at run time: exit 1, one line.
        check_error(cli("grid", "1x60000"), 1, "grid 1x60000")
        check_error(cli("grid", "--json", "1x60000"), 1, "grid --json 1x60000")
        check_error(cli("grid", os.path.join(tmp, "does-not-exist.png")), 1, "grid <missing file>")
        garbage = write(os.path.join(tmp, "garbage.png"), random.Random(7).randbytes(4096))
        check_error(cli("grid", garbage), 1, "grid <garbage file>")
        empty = write(os.path.join(tmp, "empty.png"), b"")
        check_error(cli("grid", empty), 1, "grid <empty file>")
        check_error(cli("grid", "70000x10"), 1, "grid 70000x10")
        big = write(os.path.join(tmp, "big.png"),
                    b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", struct.pack(">IIBBBBB", 70000, 10, 8, 2, 0, 0, 0)))
        check_error(cli("grid", big), 1, "grid <PNG header saying 70000×10>")

        # A truncated file whose header is intact: grid only needs the size, so
        # it may answer from the header (exit 0, the header's size) or refuse
        # with one error line (exit 1) — never anything else.
        full = png_bytes(640, 480, seed=11)
        for label, data in [("cut in the middle of IDAT", full[:len(full) // 2]),
                            ("header only (signature + IHDR)", full[:8 + 25])]:
            path = write(os.path.join(tmp, "truncated.png"), data)
            run = cli("grid", "--json", "--hd", "25", path)
            if run.returncode == 0:
                check_json_output(run, index[(640, 480, 25)], f"grid --json <truncated PNG, {label}>")
            else:
                check_error(run, 1, f"grid --json <truncated PNG, {label}>")
            truncated_outcomes.append(f"{label}: exit {run.returncode}")

        # 5. Usage errors: exit 2, one line.
        check_error(cli("grid", "--hd", "0", "10x10"), 2, "grid --hd 0 10x10")
        check_error(cli("grid", "--hd", "101", "10x10"), 2, "grid --hd 101 10x10")
        check_error(cli("grid", "--hd", "abc", "10x10"), 2, "grid --hd abc 10x10")
        check_error(cli("grid", "--hd", "10x10"), 2, "grid --hd 10x10 (value taken, no target)")
        check_error(cli("grid", "10x10", "--hd"), 2, "grid 10x10 --hd (no value)")
        check_error(cli("grid"), 2, "grid (no argument)")
        check_error(cli("grid", "--frobnicate", "10x10"), 2, "grid --frobnicate 10x10")
        check_error(cli("grid", "10x10", "20x20"), 2, "grid 10x10 20x20")
        check_error(cli("grid", "--threads", "0", "10x10"), 2, "grid --threads 0 10x10")

    print("truncated PNG: " + "; ".join(truncated_outcomes))
    print(f"test-cli-grid: {n_size} fixture sizes, {n_checks} checks, {len(failures)} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
