#!/usr/bin/python3
# SPDX-License-Identifier: GPL-3.0-or-later
#
# hd_reference.py — an independent reference for Tessera's HD planner.
#
# It re-implements the arithmetic of the official InternLM-XComposer2-4KHD
# `HD_transform` + `padding_336` (ixc_utils.py; model.md §6.2) literally —
# float `width/height`, the `while scale*np.ceil(scale/ratio) <= hd_num` loop,
# `int(scale*336)`, `int(new_w/ratio)`, `int(np.ceil(h/336)*336)`,
# `int((tar-h)/2)`, transpose for portrait — and writes the answers to
# tests/fixtures/hd-plans.json, which tests/test-hd.c and
# tests/test-cli-grid.py compare the C planner and `tessera-cli grid` against.
#
# Regenerate the fixture (Debian 12: python3-numpy; python3-pil is optional and
# enables the pixel cross-check below):
#
#     /usr/bin/python3 tests/reference/hd_reference.py tests/fixtures/hd-plans.json
#
# Without an argument it only runs its self-checks and prints a summary.
# The output is deterministic (fixed seed, fixed key order).
#
# Fixture format: {"format": …, "cases": [case, …]}, one case per line:
#   {"width", "height", "hd_num", "transposed", "resized": [w,h],
#    "padded": [w,h], "pad": [x,y], "rows", "cols", "tiles", "tokens",
#    "crops": [[x,y,w,h], …]}
# or, where the official code would resize to a zero-sized image (new_h == 0,
# e.g. 1×60000): {"width", "height", "hd_num", "error": true}.
#
# `pad` is the offset of the resized image on the padded canvas in the
# original orientation (pad_x > 0 only for portrait images). `crops` are the
# tiles (row-major) in original-image pixels, by the convention documented at
# tsr_hd_tile_crop in engine/tessera-engine.h: map the tile's canvas square back
# through the padding offset and the scale resized/original, round the start
# edge down and the end edge up in exact integer arithmetic, clamp to the image.
#
# If python3-pil is installed, small cases are also pushed through the
# official-style pipeline on real pixels (transpose, Image.resize BILINEAR,
# ImageOps.expand white — what torchvision's PIL pad does —, transpose back)
# and the array's shape and the position of the non-white content are checked
# against the arithmetic.

import json
import math
import random
import sys

import numpy as np

try:
    from PIL import Image, ImageOps
except ImportError:  # the pixel cross-check is optional
    Image = None

TILE = 336
TOKENS_PER_VIEW = 144


# ---- The official arithmetic -------------------------------------------------

def hd_transform_sizes(width, height, hd_num):
    """Returns (trans, new_w, new_h, tar, top) in the (possibly transposed)
    frame, exactly as ixc_utils.HD_transform/padding_336 compute them, or None
    where new_h == 0 (the official code would hand a zero-sized image on)."""
    trans = False
    if width < height:
        width, height = height, width
        trans = True
    ratio = (width / height)
    scale = 1
    while scale * np.ceil(scale / ratio) <= hd_num:
        scale += 1
    scale -= 1
    new_w = int(scale * 336)
    new_h = int(new_w / ratio)
    if new_h == 0:
        return None
    # padding_336
    tar = int(np.ceil(new_h / 336) * 336)
    top_padding = int((tar - new_h) / 2)
    return trans, new_w, new_h, tar, top_padding


def floor_div(a, b):
    return a // b


def ceil_div(a, b):
    return -((-a) // b)


def clamp(v, lo, hi):
    return lo if v < lo else hi if v > hi else v


def plan(width, height, hd_num):
    r = hd_transform_sizes(width, height, hd_num)
    if r is None:
        return {"width": width, "height": height, "hd_num": hd_num, "error": True}
    trans, new_w, new_h, tar, top = r
    # Back to the original orientation.
    if trans:
        resized = [new_h, new_w]
        padded = [tar, new_w]
        pad = [top, 0]
    else:
        resized = [new_w, new_h]
        padded = [new_w, tar]
        pad = [0, top]
    cols = padded[0] // TILE
    rows = padded[1] // TILE
    assert cols * TILE == padded[0] and rows * TILE == padded[1]
    tiles = rows * cols
    tokens = (tiles + 1) * TOKENS_PER_VIEW + 1 + (rows + 1) * 12

    crops = []
    for i in range(rows):
        for j in range(cols):
            # canvas → image: u = (c - pad) * size / resized, exactly.
            x0 = floor_div((j * TILE - pad[0]) * width, resized[0])
            x1 = ceil_div((j * TILE + TILE - pad[0]) * width, resized[0])
            y0 = floor_div((i * TILE - pad[1]) * height, resized[1])
            y1 = ceil_div((i * TILE + TILE - pad[1]) * height, resized[1])
            x0, x1 = clamp(x0, 0, width), clamp(x1, 0, width)
            y0, y1 = clamp(y0, 0, height), clamp(y1, 0, height)
            assert x1 > x0 and y1 > y0, (width, height, hd_num, i, j)
            crops.append([x0, y0, x1 - x0, y1 - y0])

    return {
        "width": width, "height": height, "hd_num": hd_num,
        "transposed": trans,
        "resized": resized, "padded": padded, "pad": pad,
        "rows": rows, "cols": cols, "tiles": tiles, "tokens": tokens,
        "crops": crops,
    }


# ---- Self-checks ------------------------------------------------------------

# model.md §6.6, worked numbers: (W, H, hd) → (resized, padded, rows, cols, tokens)
WORKED = [
    ((336, 336, 9), ((1008, 1008), (1008, 1008), 3, 3, 1489)),
    ((336, 336, 16), ((1344, 1344), (1344, 1344), 4, 4, 2509)),
    ((336, 336, 25), ((1680, 1680), (1680, 1680), 5, 5, 3817)),
    ((336, 336, 55), ((2352, 2352), (2352, 2352), 7, 7, 7297)),
    ((1024, 768, 25), ((1680, 1260), (1680, 1344), 4, 5, 3085)),
    ((1024, 768, 55), ((2688, 2016), (2688, 2016), 6, 8, 7141)),
    ((1920, 1080, 16), ((1680, 945), (1680, 1008), 3, 5, 2353)),
    ((1920, 1080, 25), ((2016, 1134), (2016, 1344), 4, 6, 3661)),
    ((1920, 1080, 55), ((3024, 1701), (3024, 2016), 6, 9, 8005)),
    ((3840, 2160, 16), ((1680, 945), (1680, 1008), 3, 5, 2353)),
    ((3840, 2160, 25), ((2016, 1134), (2016, 1344), 4, 6, 3661)),
    ((3840, 2160, 55), ((3024, 1701), (3024, 2016), 6, 9, 8005)),
    ((3840, 1600, 25), ((2352, 980), (2352, 1008), 3, 7, 3217)),
    ((3840, 1600, 55), ((3696, 1540), (3696, 1680), 5, 11, 8137)),
    ((3840, 1600, 65), ((4032, 1680), (4032, 1680), 5, 12, 8857)),
    ((2480, 3508, 25), ((1187, 1680), (1344, 1680), 5, 4, 3097)),
    ((2480, 3508, 55), ((1900, 2688), (2016, 2688), 8, 6, 7165)),
    ((816, 5133, 25), ((640, 4032), (672, 4032), 12, 2, 3757)),
    ((816, 5133, 55), ((961, 6048), (1008, 6048), 18, 3, 8149)),
]


def self_check():
    for (w, h, hd), (resized, padded, rows, cols, tokens) in WORKED:
        p = plan(w, h, hd)
        got = (tuple(p["resized"]), tuple(p["padded"]), p["rows"], p["cols"], p["tokens"])
        assert got == (resized, padded, rows, cols, tokens), ((w, h, hd), got)
    # HD-1: the longer side goes to 336, the canvas is one 336×336 tile, 313 tokens.
    for w, h in [(1, 1), (5, 7), (336, 336), (1000, 10), (10, 1000), (3508, 2480), (4000, 4000)]:
        p = plan(w, h, 1)
        assert max(p["resized"]) == 336 and p["padded"] == [336, 336], (w, h, p)
        assert (p["rows"], p["cols"], p["tokens"]) == (1, 1, 313), (w, h, p)
    # The upper bound at HD-55 is a 55×1 strip (portrait): 8737 tokens.
    assert plan(10, 10000, 55)["tokens"] == 8737
    assert plan(10, 10000, 55)["rows"] == 55
    # model.md §6.2 step 8 and the token formula.
    assert plan(1, 60000, 25)["error"] is True


def check_invariants(p):
    if p.get("error"):
        return
    w, h, hd = p["width"], p["height"], p["hd_num"]
    assert 1 <= p["tiles"] <= hd
    assert p["padded"] == [TILE * p["cols"], TILE * p["rows"]]
    assert 0 < p["resized"][0] <= p["padded"][0] and 0 < p["resized"][1] <= p["padded"][1]
    assert p["pad"][0] + p["resized"][0] <= p["padded"][0]
    assert p["pad"][1] + p["resized"][1] <= p["padded"][1]
    assert p["transposed"] == (w < h)
    if p["transposed"]:
        assert p["pad"][1] == 0 and p["resized"][1] == p["padded"][1]
    else:
        assert p["pad"][0] == 0 and p["resized"][0] == p["padded"][0]
    assert len(p["crops"]) == p["tiles"]
    # The crops cover the image: the column/row extents tile [0,w) and [0,h).
    xs = sorted({(c[0], c[0] + c[2]) for c in p["crops"]})
    ys = sorted({(c[1], c[1] + c[3]) for c in p["crops"]})
    assert xs[0][0] == 0 and xs[-1][1] == w and ys[0][0] == 0 and ys[-1][1] == h
    for a, b in zip(xs, xs[1:]):
        assert b[0] <= a[1], p  # no gap (may share one pixel)
    for a, b in zip(ys, ys[1:]):
        assert b[0] <= a[1], p


# ---- Pixel cross-check (python3-pil) ----------------------------------------

def pil_pipeline_shape(width, height, hd_num):
    """The official pipeline on real pixels. Returns (shape, content bbox)."""
    img = Image.new("RGB", (width, height), (10, 20, 30))
    # HD_transform
    w, h = img.size
    trans = False
    if w < h:
        img = img.transpose(Image.TRANSPOSE)
        trans = True
        w, h = img.size
    ratio = (w / h)
    scale = 1
    while scale * np.ceil(scale / ratio) <= hd_num:
        scale += 1
    scale -= 1
    new_w = int(scale * 336)
    new_h = int(new_w / ratio)
    # torchvision.transforms.functional.resize(img, [new_h, new_w]) on a PIL image
    img = img.resize((new_w, new_h), Image.BILINEAR)
    # padding_336 → torchvision F.pad(fill=[255,255,255]) → ImageOps.expand on PIL
    width2, height2 = img.size
    tar = int(np.ceil(height2 / 336) * 336)
    top_padding = int((tar - height2) / 2)
    bottom_padding = tar - height2 - top_padding
    img = ImageOps.expand(img, border=(0, top_padding, 0, bottom_padding), fill=(255, 255, 255))
    if trans:
        img = img.transpose(Image.TRANSPOSE)
    a = np.asarray(img)
    content = np.nonzero((a != 255).any(axis=2))
    bbox = (int(content[1].min()), int(content[0].min()),
            int(content[1].max()) + 1, int(content[0].max()) + 1)
    return a.shape, bbox


def pil_cross_check(cases, budget_pixels=400_000_000):
    checked = 0
    spent = 0

    def cost(p):
        return p["width"] * p["height"] + p["padded"][0] * p["padded"][1]

    # Cheapest first, within a pixel budget that keeps this to seconds.
    for p in sorted((p for p in cases if not p.get("error")), key=cost):
        w, h = p["width"], p["height"]
        if w * h > 4_000_000 or p["padded"][0] * p["padded"][1] > 12_000_000:
            continue
        if spent + cost(p) > budget_pixels:
            break
        spent += cost(p)
        shape, bbox = pil_pipeline_shape(w, h, p["hd_num"])
        assert shape == (p["padded"][1], p["padded"][0], 3), (p["width"], p["height"], p["hd_num"], shape)
        want = (p["pad"][0], p["pad"][1], p["pad"][0] + p["resized"][0], p["pad"][1] + p["resized"][1])
        assert bbox == want, (w, h, p["hd_num"], bbox, want)
        checked += 1
    return checked


# ---- The cases --------------------------------------------------------------

def truncation_borderline_cases():
    """Shapes where the official float `int(new_w/ratio)` lands one below the
    exact quotient (an exact-integer planner would disagree): W/H = p/q with
    p/q a small fraction, searched here deterministically."""
    out = []
    seen = set()
    for p in range(2, 41):
        for q in range(1, p):
            if math.gcd(p, q) != 1:
                continue
            for hd in (9, 16, 25, 55, 65, 100):
                ratio = p / q
                scale = 1
                while scale * np.ceil(scale / ratio) <= hd:
                    scale += 1
                scale -= 1
                new_w = scale * 336
                if int(new_w / ratio) != (new_w * q) // p and (p, q) not in seen:
                    seen.add((p, q))
                    m = max(1, 2000 // p)  # a realistic size with that ratio
                    out += [(p * m, q * m, hd), (q * m, p * m, hd), (p, q, hd)]
            if len(seen) >= 12:
                return out
    return out


def all_cases():
    cases = []

    def add(w, h, hds):
        for hd in hds:
            cases.append((w, h, hd))

    # Worked numbers of model.md §6.6.
    for (w, h, hd), _ in WORKED:
        add(w, h, [hd])
    add(2480, 3508, [9, 16])
    add(816, 5133, [1, 9, 16, 65, 100])
    # HD-1 on any shape.
    add(1000, 10, [1])
    add(10, 1000, [1])
    add(4000, 4000, [1])
    # The sample document (A4 at 300 dpi, landscape and portrait).
    add(3508, 2480, [9, 16, 25, 55])
    add(2480, 3508, [65, 100])
    # Square, portrait, landscape at every named budget.
    named = [1, 9, 16, 25, 55, 65, 100]
    for w, h in [(336, 336), (1000, 1000), (1, 1), (5, 7), (7, 5), (2, 1), (1, 2),
                 (640, 480), (480, 640), (1280, 720), (720, 1280), (1080, 1920),
                 (3840, 2160), (2160, 3840), (3840, 1600), (1600, 3840), (800, 600),
                 (1024, 768), (768, 1024), (1920, 1080), (2560, 1440), (3440, 1440),
                 (1170, 2532), (4000, 3000), (6000, 4000), (12000, 9000), (1366, 768)]:
        add(w, h, named)
    # Extreme aspect ratios.
    for w, h in [(5000, 10), (10, 5000), (65535, 3), (3, 65535), (816, 5133),
                 (65535, 65535), (65535, 1), (1, 65535), (20000, 1), (1, 20000),
                 (10000, 10), (10, 10000), (33600, 1), (1, 33600), (8400, 1), (1, 8400),
                 (8401, 1), (1, 8401), (16800, 2), (16801, 2), (2, 16801),
                 (1, 60000), (60000, 1), (336, 1), (337, 1), (1, 337), (100, 3)]:
        add(w, h, named)
    # Every budget 1..100 on a few shapes.
    for w, h in [(3508, 2480), (5, 7)]:
        add(w, h, range(1, 101))
    # Ratios exactly equal to integers or simple fractions (float borderlines).
    for w, h in [(672, 336), (336, 672), (1000, 500), (500, 1000), (3, 1), (1, 3),
                 (1344, 1008), (1008, 1344), (4, 3), (3, 4), (1680, 1008), (5, 3),
                 (2352, 336), (7, 1), (1, 7), (1008, 672), (3, 2), (9, 4), (1344, 336),
                 (16, 9), (9, 16), (21, 9), (5040, 2160), (2160, 5040), (2100, 900),
                 (7, 3), (3, 7), (14, 3), (10, 1), (100, 1), (55, 1), (1, 55),
                 (65, 1), (25, 1), (13, 3), (17, 7), (49, 11)]:
        add(w, h, [1, 2, 3, 4, 8, 12, 21, 25, 31, 55, 100])
    for w, h, hd in truncation_borderline_cases():
        add(w, h, [hd])
    # Pseudo-random sizes from a fixed seed: half uniform, half log-uniform.
    rng = random.Random(4096)
    for k in range(300):
        if k % 2 == 0:
            w, h = rng.randint(1, 20000), rng.randint(1, 20000)
        else:
            w = int(round(math.exp(rng.uniform(0, math.log(20000)))))
            h = int(round(math.exp(rng.uniform(0, math.log(20000)))))
        cases.append((w, h, rng.randint(1, 100)))

    # Deduplicate, keeping the first occurrence's order.
    seen = set()
    out = []
    for c in cases:
        if c not in seen:
            seen.add(c)
            out.append(c)
    return out


def main():
    self_check()
    plans = [plan(w, h, hd) for w, h, hd in all_cases()]
    for p in plans:
        check_invariants(p)
    hd55 = [p["tokens"] for p in plans if p["hd_num"] == 55 and not p.get("error")]
    assert max(hd55) <= 8737

    if Image is not None:
        n = pil_cross_check(plans)
        print(f"pixel cross-check (PIL {Image.__version__}): {n} cases", file=sys.stderr)
    else:
        print("pixel cross-check skipped: python3-pil is not installed", file=sys.stderr)

    errors = sum(1 for p in plans if p.get("error"))
    print(f"{len(plans)} cases, {errors} errors", file=sys.stderr)

    if len(sys.argv) > 1:
        lines = [json.dumps(p, separators=(",", ":")) for p in plans]
        with open(sys.argv[1], "w", encoding="utf-8") as f:
            f.write("{\"format\": \"tessera hd-plans 1; made by tests/reference/hd_reference.py; "
                    "crops are [x,y,w,h] in original-image pixels, row-major\",\n")
            f.write(" \"cases\": [\n")
            f.write(",\n".join(lines))
            f.write("\n]}\n")


if __name__ == "__main__":
    main()
