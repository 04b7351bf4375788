#!/usr/bin/python3
# SPDX-License-Identifier: GPL-3.0-or-later
"""Encode/decode cases for Tessera's tokenizer, made by sentencepiece itself.

Regenerate with Debian's python3-sentencepiece (0.1.97):
    /usr/bin/python3 tests/reference/tokenizer_reference.py \
        ../shared/data/internlm2-tokenizer.model tests/fixtures/tokenizer-cases.json

The strings are generated here from a fixed seed: mixed scripts, runs of
spaces, tabs and newlines, digits, emoji, control characters, the chat
special tokens, and pieces of the real chat prompt.
"""
import json
import random
import sys

import sentencepiece as spm

ALPHABETS = [
    "abcdefghijklmnopqrstuvwxyz", "ABCDEFGHIJKLMNOPQRSTUVWXYZ", "0123456789",
    " ", "  ", "\t", "\n", "\n\n", "\r\n", ".,;:!?'\"()[]{}<>-_=+*/\\|@#$%^&~`",
    "浦语灵笔上海人工智能实验室中文", "한국어문서표차트", "日本語のテキスト", "Привет мир",
    "مرحبا", "שלום", "Ελληνικά", "ñéüçßøå", "😀🎉👍🏽🇰🇷", "\u00a0\u2009\u200b", "\u2581",
    "\x00\x01\x07\x1b\x7f", "ＡＢＣｘｙｚ", "——……",
]
SPECIAL = ["[UNUSED_TOKEN_145]", "[UNUSED_TOKEN_146]", "<s>", "</s>", "<unk>", "[UNUSED_TOKEN_0]",
           "<ImageHere>", "[UNUSED_TOKEN_14", "<0x41>"]
FIXED = [
    "", " ", "  ", "a", " a", "a ", "Hello world", "The quick brown fox jumps over the lazy dog.",
    "What is the total in the third row of the table?", "1234567890", "3.14159 and 2,718",
    "[UNUSED_TOKEN_146]user\nDescribe the chart.[UNUSED_TOKEN_145]\n[UNUSED_TOKEN_146]assistant\n",
    "▁▁leading marks", "tab\tseparated\tvalues", "line one\nline two\n\n\nline five",
    " " * 40, "\n" * 7, "x" * 300, "😀" * 5, "e\u0301", "\ufeffBOM",
]


def main():
    model, out = sys.argv[1], sys.argv[2]
    sp = spm.SentencePieceProcessor(model_file=model)
    rng = random.Random(20261128)
    texts = list(FIXED)
    while len(texts) < 420:
        parts = []
        for _ in range(rng.randint(1, 12)):
            if rng.random() < 0.12:
                parts.append(rng.choice(SPECIAL))
            else:
                alpha = rng.choice(ALPHABETS)
                parts.append("".join(rng.choice(alpha) for _ in range(rng.randint(1, 8))))
        texts.append("".join(parts))
    cases = []
    for t in texts:
        ids = sp.encode(t)
        # Hex too: the C side reads JSON with cJSON, whose strings end at a NUL.
        cases.append({"text": t, "hex": t.encode("utf-8").hex(), "ids": ids,
                      "decoded_hex": sp.decode(ids).encode("utf-8").hex()})
    with open(out, "w", encoding="utf-8") as f:
        f.write('{"generator": "sentencepiece %s; tests/reference/tokenizer_reference.py",\n' % spm.__version__)
        f.write(' "cases": [\n')
        f.write(",\n".join(json.dumps(c, ensure_ascii=False) for c in cases))
        f.write("\n]}\n")
    print(f"{len(cases)} cases")


if __name__ == "__main__":
    main()
