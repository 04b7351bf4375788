#!/usr/bin/python3
# SPDX-License-Identifier: GPL-3.0-or-later
#
# preprocess_reference.py — fixtures for Tessera's image preprocessing
# (engine/tsr-image.c), made by running the official InternLM-XComposer2-4KHD
# image path literally (model.md §6): Image.open(path).convert('RGB'),
# HD_transform (PIL transpose, torchvision resize — i.e. PIL BILINEAR —,
# padding_336 with white, transpose back), ToTensor + Normalize(CLIP mean,
# std), and the global view F.interpolate(img[None].float(), size=(336,336),
# mode='bicubic').
#
# Regenerate (Debian 12, as root or with sudo for the packages):
#
#     apt-get install -y python3-torch python3-torchvision python3-pil python3-numpy
#     /usr/bin/python3 tests/reference/preprocess_reference.py tests/fixtures/preprocess
#
# The output is deterministic (fixed seeds; PIL's default bitmap font). The
# tests themselves need none of these packages: they read the files below.
#
# What it writes into the output folder:
#   cases.json            the cases: name, hd_num, input file, input size,
#                         padded size, and the files below for each case
#   NAME.png              the input image, as the case's PIL mode (RGB, RGBA,
#                         P, L, or 16-bit RGB written by hand)
#   NAME-canvas.png       the padded uint8 canvas HD_transform returns (RGB, lossless)
#   NAME-hd-sub.npy       the normalised canvas [3,H,W] sampled at rows and
#                         columns HD_SUB_START::HD_SUB_STEP, float32
#   NAME-global-sub.npy   the global view [3,336,336] sampled at
#                         GLOBAL_SUB_START::GLOBAL_SUB_STEP, float32
#   NAME-hd.npy, NAME-global.npy   the whole tensors, for the cases that
#                         list them ("hd_full", "global_full") — only a few,
#                         to keep the fixtures small
#   norm-lut.npy          ToTensor + Normalize of every byte value, [3,256]:
#                         with the canvas exact, this makes the hd tensor
#                         check exhaustive without storing it whole
#
# Sampling the float tensors keeps the fixtures at a few MB; the C test
# compares everything else through the canvas (bit-exact) and the table.

import json
import os
import struct
import sys
import zlib

import numpy as np
import torch
import torchvision
from PIL import Image, ImageDraw, ImageFont
from torchvision import transforms

HD_SUB_START, HD_SUB_STEP = 3, 13
GLOBAL_SUB_START, GLOBAL_SUB_STEP = 0, 7
MEAN = (0.48145466, 0.4578275, 0.40821073)
STD = (0.26862954, 0.26130258, 0.27577711)


# ---- The official image path (ixc_utils.py; model.md §6.2–6.4) -------------

def padding_336(b):
    width, height = b.size
    tar = int(np.ceil(height / 336) * 336)
    top_padding = int((tar - height) / 2)
    bottom_padding = tar - height - top_padding
    left_padding = 0
    right_padding = 0
    b = transforms.functional.pad(b, [left_padding, top_padding, right_padding, bottom_padding],
                                  fill=[255, 255, 255])
    return b


def HD_transform(img, hd_num=25):
    width, height = img.size
    trans = False
    if width < height:
        img = img.transpose(Image.TRANSPOSE)
        trans = True
        width, height = img.size
    ratio = (width / height)
    scale = 1
    while scale * np.ceil(scale / ratio) <= hd_num:
        scale += 1
    scale -= 1
    new_w = int(scale * 336)
    new_h = int(new_w / ratio)
    img = transforms.functional.resize(img, [new_h, new_w])
    img = padding_336(img)
    width, height = img.size
    if trans:
        img = img.transpose(Image.TRANSPOSE)
    return img


vis_processor = transforms.Compose([
    transforms.ToTensor(),
    transforms.Normalize(MEAN, STD),
])


def encode_img(path, hd_num):
    image = Image.open(path).convert('RGB')
    image = HD_transform(image, hd_num=hd_num)
    canvas = np.array(image)
    img = vis_processor(image).unsqueeze(0)
    glb_img = torch.nn.functional.interpolate(img.float(), size=(336, 336), mode='bicubic')
    return canvas, img[0].numpy().astype(np.float32), glb_img[0].numpy().astype(np.float32)


# ---- Test images --------------------------------------------------------------

def smooth_scene(w, h, seed):
    """Gradients, discs, lines and fine texture: content that has edges at
    every scale but still compresses well as PNG."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    r = 127 + 120 * np.sin(x / max(w, 1) * 6.3 + rng.uniform(0, 6))
    g = 127 + 120 * np.cos(y / max(h, 1) * 4.1 + rng.uniform(0, 6))
    b = 255 * (x + y) / max(w + h - 2, 1)
    img = Image.fromarray(np.stack([r, g, b], -1).clip(0, 255).astype(np.uint8), 'RGB')
    d = ImageDraw.Draw(img)
    for _ in range(12):
        cx, cy = rng.integers(0, w), rng.integers(0, h)
        rad = int(rng.integers(2, max(3, min(w, h) // 4)))
        col = tuple(int(c) for c in rng.integers(0, 256, 3))
        d.ellipse([cx - rad, cy - rad, cx + rad, cy + rad], fill=col)
    for _ in range(10):
        pts = [(int(rng.integers(0, w)), int(rng.integers(0, h))) for _ in range(2)]
        d.line(pts, fill=tuple(int(c) for c in rng.integers(0, 256, 3)), width=int(rng.integers(1, 4)))
    # A checkerboard patch: the hardest case for a resampler to get exactly right.
    cw, ch = max(1, w // 6), max(1, h // 6)
    a = np.array(img)
    yy, xx = np.mgrid[0:ch, 0:cw]
    a[:ch, :cw] = np.where(((yy + xx) % 2 == 0)[..., None], 0, 255)
    return Image.fromarray(a, 'RGB')


def noise(w, h, seed):
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8), 'RGB')


def text_image(w, h):
    img = Image.new('RGB', (w, h), (255, 255, 255))
    d = ImageDraw.Draw(img)
    font = ImageFont.load_default()
    lines = ["InternLM-XComposer2-4KHD reads 336x336 tiles.",
             "Total: 1,234.56 EUR  |  Invoice #00042  |  2024-04-09",
             "The quick brown fox jumps over the lazy dog 0123456789",
             "ABCDEFGHIJKLMNOPQRSTUVWXYZ abcdefghijklmnopqrstuvwxyz"]
    for i, line in enumerate(lines):
        d.text((4, 4 + 14 * i), line, fill=(0, 0, 0), font=font)
    d.text((4, 4 + 14 * len(lines)), "red text on white", fill=(200, 0, 0), font=font)
    return img


def rgba_image(w, h, seed):
    rng = np.random.default_rng(seed)
    base = np.array(smooth_scene(w, h, seed))
    y, x = np.mgrid[0:h, 0:w]
    alpha = ((x * 255) // max(w - 1, 1)).astype(np.uint8)
    alpha[: h // 4] = 0                      # fully transparent rows still carry colour
    alpha[h // 4: h // 2] = rng.integers(0, 256, (h // 2 - h // 4, w), dtype=np.uint8)
    return Image.fromarray(np.dstack([base, alpha]), 'RGBA')


def palette_image(w, h, seed):
    img = smooth_scene(w, h, seed).quantize(colors=16, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    # A transparent palette entry: convert('RGB') ignores it, and so must we.
    img.info['transparency'] = 3
    return img


def gray_image(w, h, seed):
    return smooth_scene(w, h, seed).convert('L')


def png16_rgb(path, w, h, seed):
    """A 16-bit RGB PNG (PIL cannot write one): Pillow reads it as 8-bit RGB
    keeping the high byte, as GdkPixbuf does."""
    rng = np.random.default_rng(seed)
    base = np.array(smooth_scene(w, h, seed)).astype(np.uint16) * 257
    base ^= rng.integers(0, 256, base.shape, dtype=np.uint16)   # low bytes must not matter
    raw = b''.join(b'\x00' + base[y].astype('>u2').tobytes() for y in range(h))

    def chunk(kind, data):
        return struct.pack('>I', len(data)) + kind + data + struct.pack('>I', zlib.crc32(kind + data) & 0xffffffff)
    with open(path, 'wb') as f:
        f.write(b'\x89PNG\r\n\x1a\n' + chunk(b'IHDR', struct.pack('>IIBBBBB', w, h, 16, 2, 0, 0, 0)) +
                chunk(b'IDAT', zlib.compress(raw, 9)) + chunk(b'IEND', b''))


def width_kept_height():
    """A height H for which a 336×H image at HD-1 keeps its width but loses
    a row to int(new_w/ratio): only the vertical pass runs."""
    for h in range(200, 336):
        if int(336 / (336 / h)) == h - 1:
            return h
    raise SystemExit('no width-kept case found')


def cases():
    wk = width_kept_height()
    return [
        # name, hd_num, maker (path -> None), notes, full tensors
        ('landscape', 4, lambda p: smooth_scene(640, 400, 1).save(p), 'landscape, both passes', ('global',)),
        ('portrait', 6, lambda p: smooth_scene(300, 520, 2).save(p), 'portrait: passes in the transposed frame', ()),
        ('square', 4, lambda p: smooth_scene(500, 500, 3).save(p), 'square, upscaled', ()),
        ('tiny', 1, lambda p: smooth_scene(5, 7, 4).save(p), 'tiny 5x7 portrait, 48x upscale', ()),
        ('upscaled', 9, lambda p: smooth_scene(120, 90, 5).save(p), '8.4x upscale at HD-9', ()),
        ('downscaled', 1, lambda p: smooth_scene(1600, 1000, 6).save(p), '4.8x downscale', ()),
        ('noise', 2, lambda p: noise(300, 120, 7).save(p), 'uniform noise', ()),
        ('text', 2, lambda p: text_image(400, 120).save(p), 'sharp small text, default PIL font', ()),
        ('rgba', 2, lambda p: rgba_image(256, 160, 8).save(p), 'RGBA with varying alpha: alpha dropped', ()),
        ('palette', 4, lambda p: palette_image(180, 240, 9).save(p, transparency=3), 'palette PNG with a transparent entry', ()),
        ('strip', 9, lambda p: smooth_scene(900, 60, 10).save(p), '15:1 strip, 9 tiles in a row', ()),
        ('portrait-down', 6, lambda p: smooth_scene(600, 1400, 11).save(p), 'portrait, downscaled', ()),
        ('exact', 2, lambda p: smooth_scene(672, 336, 12).save(p), 'already 672x336: both passes skipped', ()),
        ('width-kept', 1, lambda p: smooth_scene(336, wk, 13).save(p), 'width kept, only the vertical pass', ()),
        ('height-kept', 1, lambda p: smooth_scene(wk, 336, 14).save(p), 'portrait mirror: only the horizontal pass', ()),
        ('gray', 1, lambda p: gray_image(150, 100, 15).save(p), '8-bit grayscale PNG', ()),
        ('rgb16', 1, lambda p: png16_rgb(p, 96, 64, 16), '16-bit RGB PNG: high byte kept', ()),
    ]


def norm_lut():
    ramp = np.repeat(np.arange(256, dtype=np.uint8)[None, :, None], 3, axis=2)
    t = vis_processor(Image.fromarray(ramp, 'RGB'))
    return t[:, 0, :].numpy().astype(np.float32)


def main():
    if len(sys.argv) != 2:
        print('usage: preprocess_reference.py OUTDIR', file=sys.stderr)
        return 2
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    lut = norm_lut()
    np.save(os.path.join(out, 'norm-lut.npy'), lut)

    manifest = {
        'format': 1,
        'generator': 'tests/reference/preprocess_reference.py',
        'versions': {'torch': torch.__version__, 'torchvision': torchvision.__version__,
                     'pillow': Image.__version__, 'numpy': np.__version__},
        'hd_sub': [HD_SUB_START, HD_SUB_STEP],
        'global_sub': [GLOBAL_SUB_START, GLOBAL_SUB_STEP],
        'norm_lut': 'norm-lut.npy',
        'cases': [],
    }
    for name, hd_num, make, notes, full in cases():
        src = os.path.join(out, name + '.png')
        make(src)
        with Image.open(src) as im:
            mode, (w, h) = im.mode, im.size
        canvas, hd, glb = encode_img(src, hd_num)
        H, W = canvas.shape[:2]
        assert H % 336 == 0 and W % 336 == 0, name
        assert hd.shape == (3, H, W) and glb.shape == (3, 336, 336), name
        # The hd tensor is the table applied to the canvas, exactly.
        assert np.array_equal(hd, lut[np.arange(3)[:, None, None], canvas.transpose(2, 0, 1)]), name

        case = {'name': name, 'hd_num': hd_num, 'notes': notes, 'mode': mode,
                'input': name + '.png', 'width': w, 'height': h, 'padded': [W, H],
                'canvas': name + '-canvas.png',
                'hd_sub': name + '-hd-sub.npy', 'global_sub': name + '-global-sub.npy'}
        Image.fromarray(canvas, 'RGB').save(os.path.join(out, case['canvas']), optimize=True)
        np.save(os.path.join(out, case['hd_sub']),
                np.ascontiguousarray(hd[:, HD_SUB_START::HD_SUB_STEP, HD_SUB_START::HD_SUB_STEP]))
        np.save(os.path.join(out, case['global_sub']),
                np.ascontiguousarray(glb[:, GLOBAL_SUB_START::GLOBAL_SUB_STEP, GLOBAL_SUB_START::GLOBAL_SUB_STEP]))
        if 'hd' in full:
            case['hd_full'] = name + '-hd.npy'
            np.save(os.path.join(out, case['hd_full']), hd)
        if 'global' in full:
            case['global_full'] = name + '-global.npy'
            np.save(os.path.join(out, case['global_full']), glb)
        manifest['cases'].append(case)
        print(f'{name:14s} {mode:4s} {w}x{h} HD-{hd_num} -> {W}x{H}')

    with open(os.path.join(out, 'cases.json'), 'w') as f:
        f.write('{\n')
        for k in ('format', 'generator', 'versions', 'hd_sub', 'global_sub', 'norm_lut'):
            f.write(f'  {json.dumps(k)}: {json.dumps(manifest[k])},\n')
        f.write('  "cases": [\n')
        f.write(',\n'.join('    ' + json.dumps(c) for c in manifest['cases']))
        f.write('\n  ]\n}\n')
    total = sum(os.path.getsize(os.path.join(out, n)) for n in os.listdir(out))
    print(f'{len(manifest["cases"])} cases, {total / 1e6:.2f} MB in {out}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
