/* SPDX-License-Identifier: GPL-3.0-or-later
 *
 * test-gguf.c — the model file and the element types:
 *   - stories260K.gguf (a llama GGUF v3 from llama.cpp) opens, with its
 *     known metadata and shapes, and passes the model-layout check;
 *   - writer → reader round trips of every metadata type and every dtype;
 *   - f16/bf16 conversions on edge values, q8_0/q4_0 error bounds and
 *     block bytes fixed by hand or by ggml's published formula;
 *   - damaged files, each refused with TSR_EFORMAT and a message;
 *   - the writer on a full disk (a small tmpfs, and a file size limit).
 *
 *   test-gguf STORIES260K.gguf [FIXTURE_DIR]
 *
 * With FIXTURE_DIR, the small files this test builds are also written
 * there (that is how tests/fixtures/gguf/ was made; the fuzzer uses them
 * as seeds).
 */
#define _GNU_SOURCE 1   /* unshare(), CLONE_NEWNS */

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tessera-engine.h"

static int n_checks, n_failed, verbose;

#define CHECK(cond, ...)                                                   \
  do {                                                                     \
    n_checks++;                                                            \
    if (!(cond))                                                           \
      {                                                                    \
        n_failed++;                                                        \
        fprintf (stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);   \
        fprintf (stderr, __VA_ARGS__);                                     \
        fputc ('\n', stderr);                                              \
      }                                                                    \
  } while (0)

static char tmpdir[256];

/* ==== A byte builder for hand-made files =============================== *
 * Independent of the writer under test, so a bug shared by the writer and
 * the reader cannot hide. */

typedef struct {
  unsigned char *p;
  size_t         len, cap;
} Buf;

static void
b_bytes (Buf *b, const void *p, size_t n)
{
  if (b->len + n > b->cap)
    {
      b->cap = (b->len + n) * 2 + 64;
      b->p = realloc (b->p, b->cap);
      if (b->p == NULL)
        abort ();
    }
  memcpy (b->p + b->len, p, n);
  b->len += n;
}

static void
b_u8 (Buf *b, uint8_t v)
{
  b_bytes (b, &v, 1);
}

static void
b_u32 (Buf *b, uint32_t v)
{
  unsigned char x[4] = { v & 0xff, (v >> 8) & 0xff, (v >> 16) & 0xff, v >> 24 };
  b_bytes (b, x, 4);
}

static void
b_u64 (Buf *b, uint64_t v)
{
  b_u32 (b, (uint32_t) v);
  b_u32 (b, (uint32_t) (v >> 32));
}

static void
b_str (Buf *b, const char *s)
{
  b_u64 (b, strlen (s));
  b_bytes (b, s, strlen (s));
}

static void
b_pad (Buf *b, size_t align)
{
  while (b->len % align)
    b_u8 (b, 0);
}

static void
b_header (Buf *b, uint32_t version, uint64_t n_tensors, uint64_t n_kv)
{
  b_bytes (b, "GGUF", 4);
  b_u32 (b, version);
  b_u64 (b, n_tensors);
  b_u64 (b, n_kv);
}

static void
b_kv_u32 (Buf *b, const char *key, uint32_t v)
{
  b_str (b, key);
  b_u32 (b, 4);
  b_u32 (b, v);
}

static void
b_tensor (Buf *b, const char *name, uint32_t n_dims, const uint64_t *ne, uint32_t type, uint64_t off)
{
  b_str (b, name);
  b_u32 (b, n_dims);
  for (uint32_t d = 0; d < n_dims; d++)
    b_u64 (b, ne[d]);
  b_u32 (b, type);
  b_u64 (b, off);
}

/* A small valid file: two KVs (one a string array), two f32 tensors
 * (4 and 8 values) at offsets 0 and 32, alignment 32. Its last tensor
 * ends the file, so every shorter prefix is damaged. */
static Buf
small_valid_file (void)
{
  Buf b = { 0 };
  const uint64_t ne_a[] = { 4 }, ne_b[] = { 4, 2 };
  b_header (&b, 3, 2, 2);
  b_kv_u32 (&b, "test.count", 7);
  b_str (&b, "test.names");
  b_u32 (&b, 9);          /* array */
  b_u32 (&b, 8);          /* of strings */
  b_u64 (&b, 2);
  b_str (&b, "alpha");
  b_str (&b, "");
  b_tensor (&b, "a", 1, ne_a, 0, 0);
  b_tensor (&b, "b", 2, ne_b, 0, 32);
  b_pad (&b, 32);
  for (int i = 0; i < 4; i++)
    {
      float f = (float) i;
      b_bytes (&b, &f, 4);
    }
  b_pad (&b, 32);
  for (int i = 0; i < 8; i++)
    {
      float f = (float) -i;
      b_bytes (&b, &f, 4);
    }
  return b;
}

static const char *fixture_dir;

static void
save_fixture (const char *name, const void *p, size_t n)
{
  char path[512];
  FILE *f;
  if (fixture_dir == NULL)
    return;
  snprintf (path, sizeof path, "%s/%s", fixture_dir, name);
  f = fopen (path, "wb");
  if (f == NULL || fwrite (p, 1, n, f) != n || fclose (f) != 0)
    fprintf (stderr, "cannot write fixture %s\n", path);
}

static void
copy_fixture (const char *path, const char *name)
{
  char cmd[1200];
  if (fixture_dir == NULL)
    return;
  snprintf (cmd, sizeof cmd, "cp '%s' '%s/%s'", path, fixture_dir, name);
  if (system (cmd) != 0)
    fprintf (stderr, "cannot copy %s to %s\n", path, fixture_dir);
}

/* Opens bytes from memory and expects TSR_EFORMAT with a message. */
static void
expect_bad (const char *label, const void *p, size_t n, const char *must_mention)
{
  TsrGguf *g = (TsrGguf *) 1;
  TsrError err;
  TsrStatus st;

  tsr_error_clear (&err);
  st = tsr_gguf_open_memory (p, n, &g, &err);
  CHECK (st == TSR_EFORMAT, "%s: status %s (%s)", label, tsr_status_name (st), err.message);
  CHECK (g == NULL, "%s: handle not NULL on failure", label);
  CHECK (err.status == st && err.message[0] != '\0', "%s: no message", label);
  if (must_mention)
    CHECK (strstr (err.message, must_mention) != NULL, "%s: message '%s' does not mention '%s'",
           label, err.message, must_mention);
  if (verbose)
    printf ("  %-28s %s\n", label, err.message);
  if (st == TSR_OK)
    tsr_gguf_close (g);
}

/* ==== stories260K.gguf ================================================== */

static void
test_stories (const char *path)
{
  TsrGguf *g = NULL;
  TsrError err;
  TsrStatus st;
  uint32_t u;
  float f;
  TsrGgufStr s;
  const TsrGgufStr *toks;
  uint64_t n;

  st = tsr_gguf_open (path, &g, &err);
  if (st != TSR_OK)
    {
      CHECK (st == TSR_OK, "cannot open %s, which CI keeps in ../shared/data beside the checkout: %s",
             path, err.message);
      return;
    }
  CHECK (tsr_gguf_version (g) == 3, "version %u", tsr_gguf_version (g));
  CHECK (tsr_gguf_alignment (g) == 32, "alignment %u", tsr_gguf_alignment (g));
  CHECK (tsr_gguf_size (g) == 1185376, "size %llu", (unsigned long long) tsr_gguf_size (g));
  CHECK (tsr_gguf_n_kv (g) == 19, "n_kv %zu", tsr_gguf_n_kv (g));
  CHECK (tsr_gguf_n_tensors (g) == 48, "n_tensors %zu", tsr_gguf_n_tensors (g));
  CHECK (tsr_gguf_data_offset (g) == 14176, "data offset %llu",
         (unsigned long long) tsr_gguf_data_offset (g));

  CHECK (tsr_gguf_get_str (g, "general.architecture", &s, &err) == TSR_OK &&
         tsr_gguf_str_eq (s, "llama"), "architecture");
  struct { const char *key; uint32_t v; } u32s[] = {
    { "llama.embedding_length", 64 }, { "llama.block_count", 5 },
    { "llama.attention.head_count", 8 }, { "llama.attention.head_count_kv", 4 },
    { "llama.feed_forward_length", 172 }, { "llama.context_length", 2048 },
    { "llama.rope.dimension_count", 8 }, { "tokenizer.ggml.bos_token_id", 1 },
    { "tokenizer.ggml.eos_token_id", 2 },
  };
  for (size_t i = 0; i < sizeof u32s / sizeof u32s[0]; i++)
    {
      st = tsr_gguf_get_u32 (g, u32s[i].key, &u, &err);
      CHECK (st == TSR_OK && u == u32s[i].v, "%s = %u (%s)", u32s[i].key, u, err.message);
    }
  CHECK (tsr_gguf_get_f32 (g, "llama.attention.layer_norm_rms_epsilon", &f, &err) == TSR_OK &&
         f == 1e-5f, "rms eps %g", (double) f);
  CHECK (tsr_gguf_get_arr_str (g, "tokenizer.ggml.tokens", &toks, &n, &err) == TSR_OK && n == 512,
         "tokens %llu", (unsigned long long) n);
  if (n == 512)
    {
      CHECK (tsr_gguf_str_eq (toks[0], "<unk>") && tsr_gguf_str_eq (toks[1], "<s>") &&
             tsr_gguf_str_eq (toks[2], "</s>") && tsr_gguf_str_eq (toks[3], "<0x00>"), "first tokens");
    }
  {
    float scores[512];
    int32_t types[512];
    CHECK (tsr_gguf_get_arr_f32 (g, "tokenizer.ggml.scores", scores, 512, &err) == TSR_OK, "%s", err.message);
    CHECK (tsr_gguf_get_arr_i32 (g, "tokenizer.ggml.token_type", types, 512, &err) == TSR_OK &&
           types[0] == 2 && types[1] == 3 && types[3] == 6, "token types");
    CHECK (tsr_gguf_get_arr_f32 (g, "tokenizer.ggml.scores", scores, 511, &err) == TSR_EFORMAT,
           "a wrong length is refused");
  }
  /* Wrong kinds and missing keys are refused with the key in the message. */
  CHECK (tsr_gguf_get_u32 (g, "general.architecture", &u, &err) == TSR_EFORMAT &&
         strstr (err.message, "general.architecture") != NULL, "string as u32: %s", err.message);
  CHECK (tsr_gguf_get_u32 (g, "no.such.key", &u, &err) == TSR_EFORMAT &&
         strstr (err.message, "no.such.key") != NULL, "missing key: %s", err.message);
  CHECK (tsr_gguf_get_str (g, "tokenizer.ggml.tokens", &s, &err) == TSR_EFORMAT, "array as string");
  {
    int32_t i32;
    /* 0xffffffff does not fit an i32. */
    CHECK (tsr_gguf_get_i32 (g, "tokenizer.ggml.padding_token_id", &i32, &err) == TSR_EFORMAT,
           "u32 max as i32");
  }

  struct { const char *name; int64_t ne0, ne1; } shapes[] = {
    { "token_embd.weight", 64, 512 }, { "output.weight", 64, 512 }, { "output_norm.weight", 64, 1 },
    { "blk.0.attn_q.weight", 64, 64 }, { "blk.0.attn_k.weight", 64, 32 },
    { "blk.4.attn_v.weight", 64, 32 }, { "blk.2.ffn_gate.weight", 64, 172 },
    { "blk.3.ffn_down.weight", 172, 64 }, { "blk.4.ffn_norm.weight", 64, 1 },
  };
  for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++)
    {
      const TsrGgufTensor *t = tsr_gguf_find_tensor (g, shapes[i].name);
      CHECK (t != NULL, "tensor %s missing", shapes[i].name);
      if (t == NULL)
        continue;
      CHECK (t->type == TSR_DTYPE_F32 && t->ne[0] == shapes[i].ne0 && t->ne[1] == shapes[i].ne1 &&
             t->size == (uint64_t) (shapes[i].ne0 * shapes[i].ne1 * 4),
             "%s: type %d ne {%lld, %lld}", t->name, (int) t->type, (long long) t->ne[0], (long long) t->ne[1]);
      CHECK (t->offset % 32 == 0 && (uintptr_t) t->data % 32 == 0, "%s not aligned", t->name);
      CHECK (t->offset + t->size <= tsr_gguf_size (g), "%s past the end", t->name);
    }
  CHECK (tsr_gguf_find_tensor (g, "blk.5.attn_q.weight") == NULL, "no sixth layer");
  {
    /* llama2.c's export ties the output to the embedding: the same floats. */
    const TsrGgufTensor *e = tsr_gguf_find_tensor (g, "token_embd.weight");
    const TsrGgufTensor *o = tsr_gguf_find_tensor (g, "output.weight");
    if (e && o)
      CHECK (memcmp (e->data, o->data, (size_t) e->size) == 0, "output.weight == token_embd.weight");
  }
  {
    TsrGgufModelInfo mi;
    st = tsr_gguf_model_info (g, &mi, &err);
    CHECK (st == TSR_OK, "model info: %s", err.message);
    CHECK (mi.arch == TSR_ARCH_LLAMA && mi.n_embd == 64 && mi.n_layer == 5 && mi.n_head == 8 &&
           mi.n_head_kv == 4 && mi.n_head_dim == 8 && mi.n_ff == 172 && mi.n_vocab == 512 &&
           mi.n_ctx == 2048 && mi.rope_freq_base == 10000.0f && !mi.tied_output && !mi.synthetic &&
           mi.tok_n == 512 && mi.bos_id == 1 && mi.eos_id == 2 && strcmp (mi.tok_model, "llama") == 0,
           "model info values");
  }
  tsr_gguf_close (g);

  /* The whole file through the memory entry point too. */
  {
    FILE *fp = fopen (path, "rb");
    unsigned char *buf = malloc (1185376);
    size_t got = fp && buf ? fread (buf, 1, 1185376, fp) : 0;
    if (fp)
      fclose (fp);
    CHECK (got == 1185376, "read stories into memory");
    CHECK (tsr_gguf_open_memory (buf, got, &g, &err) == TSR_OK, "%s", err.message);
    tsr_gguf_close (g);
    free (buf);
  }
}

/* ==== Element types ===================================================== */

static uint32_t
bits (float f)
{
  uint32_t u;
  memcpy (&u, &f, 4);
  return u;
}

static float
from_bits (uint32_t u)
{
  float f;
  memcpy (&f, &u, 4);
  return f;
}

static void
test_f16 (void)
{
  /* Expected halves worked out by hand from IEEE 754 binary16:
   * bias 15, 10 mantissa bits, subnormal unit 2^-24, max 65504. */
  static const struct { uint32_t f; uint16_t h; const char *why; } cases[] = {
    { 0x00000000, 0x0000, "+0" },
    { 0x80000000, 0x8000, "-0" },
    { 0x3f800000, 0x3c00, "1" },
    { 0xc0000000, 0xc000, "-2" },
    { 0x477fe000, 0x7bff, "65504, the largest half" },
    { 0x477fefff, 0x7bff, "just below 65520 rounds down to 65504" },
    { 0x477ff000, 0x7c00, "65520: tie between 65504 and 65536 goes to the even one, infinity" },
    { 0x7f800000, 0x7c00, "+inf" },
    { 0xff800000, 0xfc00, "-inf" },
    { 0x7f7fffff, 0x7c00, "FLT_MAX overflows to inf" },
    { 0x38800000, 0x0400, "2^-14, the smallest normal" },
    { 0x387fc000, 0x03ff, "the largest subnormal, 1023·2^-24" },
    { 0x33800000, 0x0001, "2^-24, the smallest subnormal" },
    { 0x33000000, 0x0000, "2^-25: tie between 0 and 2^-24 goes to even 0" },
    { 0x33000001, 0x0001, "just above 2^-25 rounds up" },
    { 0x33c00000, 0x0002, "1.5·2^-24 = 1.5 units: tie goes to even 2" },
    { 0x33a00000, 0x0001, "1.25·2^-24 rounds to 1 unit" },
    { 0x34200000, 0x0002, "2.5·2^-24: tie goes to even 2" },
    { 0x34400000, 0x0003, "3·2^-24 is exact" },
    { 0x3f801000, 0x3c00, "1 + 2^-11: tie goes to even 0x3c00" },
    { 0x3f803000, 0x3c02, "1 + 3·2^-11: tie goes to even 0x3c02" },
    { 0x3f801001, 0x3c01, "just above the tie rounds up" },
    { 0x3dcccccd, 0x2e66, "0.1" },
    { 0x3eaaaaab, 0x3555, "1/3" },
    { 0x387fe000, 0x0400, "rounding up out of the subnormals gives 2^-14" },
    { 0x00000001, 0x0000, "the smallest f32 subnormal is 0" },
    { 0x80000001, 0x8000, "and keeps its sign" },
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
    {
      uint16_t h = tsr_f32_to_f16 (from_bits (cases[i].f));
      CHECK (h == cases[i].h, "f16(%08x) = %04x, want %04x: %s", cases[i].f, h, cases[i].h, cases[i].why);
    }
  /* NaN stays NaN (either sign, quiet or signalling). */
  static const uint32_t nans[] = { 0x7fc00000, 0xffc00000, 0x7f800001, 0x7fa00000, 0xff800001 };
  for (size_t i = 0; i < sizeof nans / sizeof nans[0]; i++)
    {
      uint16_t h = tsr_f32_to_f16 (from_bits (nans[i]));
      CHECK ((h & 0x7c00) == 0x7c00 && (h & 0x3ff) != 0, "f16(NaN %08x) = %04x", nans[i], h);
      CHECK ((h >> 15) == (nans[i] >> 31), "NaN sign");
    }
  /* Every half widens exactly and narrows back to itself. */
  int bad = 0;
  for (uint32_t h = 0; h < 0x10000; h++)
    {
      float f = tsr_f16_to_f32 ((uint16_t) h);
      int is_nan = (h & 0x7c00) == 0x7c00 && (h & 0x3ff);
      if (is_nan ? !isnan (f) : tsr_f32_to_f16 (f) != h)
        bad++;
    }
  CHECK (bad == 0, "%d halves do not round-trip", bad);
  CHECK (tsr_f16_to_f32 (0x0001) == 0x1p-24f && tsr_f16_to_f32 (0x03ff) == 1023 * 0x1p-24f &&
         tsr_f16_to_f32 (0x7bff) == 65504.0f && tsr_f16_to_f32 (0xfc00) == -INFINITY &&
         isnan (tsr_f16_to_f32 (0x7e00)) && bits (tsr_f16_to_f32 (0x8000)) == 0x80000000u,
         "f16 → f32 specials");
  /* Round to nearest: the half chosen is never further than the other
   * neighbour, over a sweep of f32 values in the normal and subnormal range. */
  bad = 0;
  for (uint32_t u = 0x33000000u; u < 0x477ff000u; u += 0x1357)
    {
      float x = from_bits (u);
      uint16_t h = tsr_f32_to_f16 (x);
      double got = tsr_f16_to_f32 (h);
      double up = tsr_f16_to_f32 ((uint16_t) (h + 1)), dn = h ? tsr_f16_to_f32 ((uint16_t) (h - 1)) : 0;
      if (fabs (got - x) > fabs (up - x) || fabs (got - x) > fabs (dn - x))
        bad++;
    }
  CHECK (bad == 0, "%d values not rounded to the nearest half", bad);
}

static void
test_bf16 (void)
{
  /* bf16 = the high 16 bits of the f32, rounded to nearest even, as
   * PyTorch's c10::BFloat16 does; every NaN becomes 0x7fc0. */
  static const struct { uint32_t f; uint16_t h; const char *why; } cases[] = {
    { 0x3f800000, 0x3f80, "1" },
    { 0x3f808000, 0x3f80, "1 + 2^-8: tie goes to even 0x3f80" },
    { 0x3f818000, 0x3f82, "tie from an odd mantissa goes up to even" },
    { 0x3f808001, 0x3f81, "just above the tie rounds up" },
    { 0x3f807fff, 0x3f80, "just below the tie rounds down" },
    { 0x80000000, 0x8000, "-0" },
    { 0x7f800000, 0x7f80, "+inf" },
    { 0xff800000, 0xff80, "-inf" },
    { 0x7f7fffff, 0x7f80, "FLT_MAX rounds up to inf" },
    { 0x7f7f7fff, 0x7f7f, "below the tie stays finite" },
    { 0x00010000, 0x0001, "a subnormal keeps its bits" },
    { 0x00008000, 0x0000, "half of the smallest bf16 subnormal: tie to even 0" },
    { 0x00018000, 0x0002, "1.5 units: tie to even 2" },
    { 0x7fc00000, 0x7fc0, "quiet NaN" },
    { 0xffc00000, 0x7fc0, "negative NaN loses its sign, as in PyTorch" },
    { 0x7f800001, 0x7fc0, "a signalling NaN whose payload would truncate to inf stays NaN" },
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
    {
      uint16_t h = tsr_f32_to_bf16 (from_bits (cases[i].f));
      CHECK (h == cases[i].h, "bf16(%08x) = %04x, want %04x: %s", cases[i].f, h, cases[i].h, cases[i].why);
    }
  int bad = 0;
  for (uint32_t h = 0; h < 0x10000; h++)
    {
      float f = tsr_bf16_to_f32 ((uint16_t) h);
      int is_nan = (h & 0x7f80) == 0x7f80 && (h & 0x7f);
      if (bits (f) != h << 16 || (!is_nan && tsr_f32_to_bf16 (f) != h) || (is_nan && !isnan (f)))
        bad++;
    }
  CHECK (bad == 0, "%d bf16 values do not round-trip", bad);
}

static void
check_block (const char *label, TsrDType type, const float *x, const unsigned char *want, size_t n)
{
  unsigned char got[34];
  TsrError err;
  CHECK (tsr_quantize_row (type, x, got, 32, &err) == TSR_OK, "%s: %s", label, err.message);
  CHECK (memcmp (got, want, n) == 0, "%s: block bytes differ", label);
  if (memcmp (got, want, n) != 0)
    for (size_t i = 0; i < n; i++)
      if (got[i] != want[i])
        fprintf (stderr, "    byte %zu: got 0x%02x want 0x%02x\n", i, got[i], want[i]);
}

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static float
rnd (void)
{
  rng_state ^= rng_state >> 12;
  rng_state ^= rng_state << 25;
  rng_state ^= rng_state >> 27;
  return (float) ((double) ((rng_state * 0x2545F4914F6CDD1Dull) >> 11) / 9007199254740992.0 * 2.0 - 1.0);
}

static void
test_quant (void)
{
  TsrError err;
  float x[32];

  CHECK (tsr_dtype_block_values (TSR_DTYPE_Q8_0) == 32 && tsr_dtype_block_bytes (TSR_DTYPE_Q8_0) == 34 &&
         tsr_dtype_block_values (TSR_DTYPE_Q4_0) == 32 && tsr_dtype_block_bytes (TSR_DTYPE_Q4_0) == 18 &&
         tsr_dtype_block_bytes (TSR_DTYPE_F32) == 4 && tsr_dtype_block_bytes (TSR_DTYPE_F16) == 2 &&
         tsr_dtype_block_bytes (TSR_DTYPE_BF16) == 2 && tsr_dtype_block_bytes ((TsrDType) 12) == 0,
         "block facts");
  {
    static const char *const names[] = { "f32", "f16", "bf16", "q8_0", "q4_0" };
    static const TsrDType types[] = { TSR_DTYPE_F32, TSR_DTYPE_F16, TSR_DTYPE_BF16, TSR_DTYPE_Q8_0, TSR_DTYPE_Q4_0 };
    for (int i = 0; i < 5; i++)
      {
        TsrDType t;
        CHECK (strcmp (tsr_dtype_name (types[i]), names[i]) == 0 && tsr_dtype_from_name (names[i], &t) &&
               t == types[i] && tsr_dtype_is_valid ((int) types[i]), "%s", names[i]);
      }
    CHECK (!tsr_dtype_from_name ("q4_K", NULL) && tsr_dtype_name ((TsrDType) 3) == NULL &&
           !tsr_dtype_is_valid (-1), "unknown types");
  }
  {
    uint64_t nb;
    CHECK (tsr_dtype_row_bytes (TSR_DTYPE_Q4_0, 4096, &nb, &err) == TSR_OK && nb == 128 * 18, "q4_0 row");
    CHECK (tsr_dtype_row_bytes (TSR_DTYPE_Q8_0, 4096, &nb, &err) == TSR_OK && nb == 128 * 34, "q8_0 row");
    CHECK (tsr_dtype_row_bytes (TSR_DTYPE_BF16, 3, &nb, &err) == TSR_OK && nb == 6, "bf16 row");
    CHECK (tsr_dtype_row_bytes (TSR_DTYPE_Q8_0, 33, &nb, &err) == TSR_EINVAL, "33 values of q8_0");
    CHECK (tsr_dtype_row_bytes (TSR_DTYPE_F32, UINT64_MAX / 2, &nb, &err) == TSR_ETOOLARGE, "overflow");
    CHECK (tsr_dtype_row_bytes (TSR_DTYPE_Q8_0, UINT64_MAX - 31, &nb, &err) == TSR_ETOOLARGE, "overflow q8");
  }

  /* q8_0 by hand: amax = 127 makes d = 1 exactly (f16 0x3c00, bytes 00 3c)
   * and every quant is roundf(x): halves go away from zero. */
  {
    static const float head[8] = { -127.0f, 2.5f, -2.5f, 0.49f, 126.5f, 0.5f, -0.5f, 100.25f };
    unsigned char want[34] = { 0x00, 0x3c, 0x81, 0x03, 0xfd, 0x00, 0x7f, 0x01, 0xff, 0x64 };
    for (int j = 0; j < 32; j++)
      x[j] = j < 8 ? head[j] : (float) (j - 20);
    for (int j = 8; j < 32; j++)
      want[2 + j] = (unsigned char) (int8_t) (j - 20);
    check_block ("q8_0 by hand", TSR_DTYPE_Q8_0, x, want, 34);
  }
  /* All zeros: d = 0 and every quant 0. */
  {
    /* q4_0's d = max/−8 = 0/−8 is −0, stored as f16 0x8000 (bytes 00 80). */
    unsigned char want8[34] = { 0 }, want4[18] = { 0x00, 0x80 };
    for (int j = 0; j < 32; j++)
      x[j] = 0.0f;
    for (int j = 0; j < 16; j++)
      want4[2 + j] = 0x88;   /* q = trunc(0 + 8.5) = 8 in both nibbles */
    check_block ("q8_0 zeros", TSR_DTYPE_Q8_0, x, want8, 34);
    check_block ("q4_0 zeros", TSR_DTYPE_Q4_0, x, want4, 18);
  }
  /* q4_0 by hand: the value of largest magnitude is −8, so d = −8/−8 = 1
   * (00 3c) and q = min(15, trunc(x + 8.5)). Quants 0..15:
   *   0,15,15,8,8,9,5,12,4,5,6,7,8,9,10,11  and 16..31: 4,5,5,6,6,7,7,8,8,9,9,10,10,11,11,12
   * byte j = q[j] | q[j+16] << 4. */
  {
    static const float head[8] = { -8.0f, 7.0f, 7.6f, -0.5f, 0.49f, 0.5f, -3.2f, 3.7f };
    static const unsigned char want[18] = {
      0x00, 0x3c, 0x40, 0x5f, 0x5f, 0x68, 0x68, 0x79, 0x75, 0x8c,
      0x84, 0x95, 0x96, 0xa7, 0xa8, 0xb9, 0xba, 0xcb,
    };
    for (int j = 0; j < 32; j++)
      x[j] = j < 8 ? head[j] : j < 16 ? (float) (j - 12) : (float) (j - 16) * 0.5f - 4.0f;
    check_block ("q4_0 by hand", TSR_DTYPE_Q4_0, x, want, 18);
  }
  /* q4_0 with a positive extreme: d = 8/−8 = −1 (f16 0xbc00), so 8 → 0 and
   * −8 → trunc(16.5) = 16, capped at 15, i.e. it comes back as −7. */
  {
    unsigned char want[18] = { 0x00, 0xbc, 0x80, 0x8f };
    float y[32];
    for (int j = 0; j < 32; j++)
      x[j] = j == 0 ? 8.0f : j == 1 ? -8.0f : 0.0f;
    for (int j = 2; j < 16; j++)
      want[2 + j] = 0x88;
    check_block ("q4_0 positive max", TSR_DTYPE_Q4_0, x, want, 18);
    tsr_dequantize_row_q4_0 (want, y, 32);
    CHECK (y[0] == 8.0f && y[1] == -7.0f && y[5] == 0.0f, "q4_0 dequantised %g %g", (double) y[0], (double) y[1]);
  }
  /* A scale that is no power of two: bytes from ggml's published reference
   * formulas (quantize_row_q8_0_ref / quantize_row_q4_0_ref) evaluated in
   * IEEE binary32 by a separate Python script (each operation's result
   * rounded to f32, the scale to f16 by round-to-nearest-even), not by
   * tsr-dtype.c. Input: x[j] = (float) (((7j mod 23) − 11) · 0.173). */
  {
    static const unsigned char want8[34] = {
      0xac, 0x23, 0x81, 0xd2, 0x23, 0x73, 0xbb, 0x0c, 0x5c, 0xa4, 0xf4, 0x45, 0x8d, 0xdd,
      0x2e, 0x7f, 0xc6, 0x17, 0x68, 0xaf, 0x00, 0x51, 0x98, 0xe9, 0x3a, 0x81, 0xd2, 0x23,
      0x73, 0xbb, 0x0c, 0x5c, 0xa4, 0xf4,
    };
    static const unsigned char want4[18] = {
      0x9d, 0x33, 0xf0, 0x35, 0x8a, 0xdf, 0x14, 0x79, 0xce, 0x02, 0x57, 0xac, 0xf1, 0x46,
      0x9b, 0xef, 0x24, 0x79,
    };
    for (int j = 0; j < 32; j++)
      x[j] = (float) (((j * 7) % 23 - 11) * 0.173);
    check_block ("q8_0 ggml formula", TSR_DTYPE_Q8_0, x, want8, 34);
    check_block ("q4_0 ggml formula", TSR_DTYPE_Q4_0, x, want4, 18);
  }

  /* Error bounds on random rows, per block, from the formats:
   *   q8_0: |x − x'| ≤ d/2 from rounding, plus 127·|d − f16(d)|;
   *   q4_0: |x − x'| ≤ |d| (the capped end reaches only 7·d) plus 8·|d − f16(d)|;
   * where |d − f16(d)| ≤ max(|d|·2^-11, 2^-25): relative for normal halves,
   * absolute below 2^-14 where the scale becomes an f16 subnormal. */
  {
    enum { N = 32 * 512 };
    float *src = malloc (N * sizeof *src), *back = malloc (N * sizeof *back);
    unsigned char *q = malloc (N / 32 * 34);
    double worst8 = 0, worst4 = 0, mse8 = 0, mse4 = 0, ms = 0;
    for (int i = 0; i < N; i++)
      {
        /* Mixed block scales, as real weights have. */
        float scale = (float) ldexp (1.0, (i / 32) % 13 - 8);
        src[i] = rnd () * scale;
        ms += (double) src[i] * src[i];
      }
    CHECK (tsr_quantize_row (TSR_DTYPE_Q8_0, src, q, N, &err) == TSR_OK, "%s", err.message);
    CHECK (tsr_dequantize_row (TSR_DTYPE_Q8_0, q, back, N, &err) == TSR_OK, "%s", err.message);
    for (int b = 0; b < N / 32; b++)
      {
        float amax = 0;
        for (int j = 0; j < 32; j++)
          amax = fmaxf (amax, fabsf (src[b * 32 + j]));
        double d = amax / 127.0, bound = d / 2 + 127 * fmax (d * 0x1p-11, 0x1p-25) + 1e-12;
        for (int j = 0; j < 32; j++)
          {
            double e = fabs ((double) src[b * 32 + j] - back[b * 32 + j]);
            worst8 = fmax (worst8, e / bound);
            mse8 += e * e;
          }
      }
    CHECK (tsr_quantize_row (TSR_DTYPE_Q4_0, src, q, N, &err) == TSR_OK, "%s", err.message);
    CHECK (tsr_dequantize_row (TSR_DTYPE_Q4_0, q, back, N, &err) == TSR_OK, "%s", err.message);
    for (int b = 0; b < N / 32; b++)
      {
        float amax = 0;
        for (int j = 0; j < 32; j++)
          amax = fmaxf (amax, fabsf (src[b * 32 + j]));
        double d = amax / 8.0, bound = d + 8 * fmax (d * 0x1p-11, 0x1p-25) + 1e-12;
        for (int j = 0; j < 32; j++)
          {
            double e = fabs ((double) src[b * 32 + j] - back[b * 32 + j]);
            worst4 = fmax (worst4, e / bound);
            mse4 += e * e;
          }
      }
    CHECK (worst8 <= 1.0, "q8_0 error reaches %.3f of its bound", worst8);
    CHECK (worst4 <= 1.0, "q4_0 error reaches %.3f of its bound", worst4);
    /* Relative RMS error: ~0.5% for q8_0, ~8% for q4_0 on uniform data. */
    CHECK (sqrt (mse8 / ms) < 0.01, "q8_0 relative RMS error %.4f", sqrt (mse8 / ms));
    CHECK (sqrt (mse4 / ms) < 0.12, "q4_0 relative RMS error %.4f", sqrt (mse4 / ms));
    if (verbose)
      printf ("  q8_0: worst %.3f of bound, rel. RMS %.4f; q4_0: worst %.3f, rel. RMS %.4f\n",
              worst8, sqrt (mse8 / ms), worst4, sqrt (mse4 / ms));

    /* f16 and bf16 rows are the scalar conversions, value by value. */
    CHECK (tsr_quantize_row (TSR_DTYPE_F16, src, q, 64, &err) == TSR_OK, "%s", err.message);
    CHECK (tsr_dequantize_row (TSR_DTYPE_F16, q, back, 64, &err) == TSR_OK, "%s", err.message);
    int bad = 0;
    for (int i = 0; i < 64; i++)
      bad += back[i] != tsr_f16_to_f32 (tsr_f32_to_f16 (src[i]));
    CHECK (bad == 0, "f16 rows");
    CHECK (tsr_quantize_row (TSR_DTYPE_BF16, src, q, 64, &err) == TSR_OK, "%s", err.message);
    CHECK (tsr_dequantize_row (TSR_DTYPE_BF16, q, back, 64, &err) == TSR_OK, "%s", err.message);
    bad = 0;
    for (int i = 0; i < 64; i++)
      bad += back[i] != tsr_bf16_to_f32 (tsr_f32_to_bf16 (src[i]));
    CHECK (bad == 0, "bf16 rows");

    /* Refusals: counts, non-finite values, scales beyond f16. */
    CHECK (tsr_quantize_row (TSR_DTYPE_Q4_0, src, q, 31, &err) == TSR_EINVAL, "31 values of q4_0");
    src[5] = NAN;
    CHECK (tsr_quantize_row (TSR_DTYPE_Q8_0, src, q, 32, &err) == TSR_EINVAL &&
           strstr (err.message, "value 5") != NULL, "NaN refused: %s", err.message);
    src[5] = 1e6f;
    CHECK (tsr_quantize_row (TSR_DTYPE_F16, src, q, 32, &err) == TSR_EINVAL, "f16 overflow refused");
    CHECK (tsr_quantize_row (TSR_DTYPE_Q8_0, src, q, 32, &err) == TSR_OK, "1e6 fits q8_0 (d ≈ 7874)");
    src[5] = 1e7f;
    CHECK (tsr_quantize_row (TSR_DTYPE_Q8_0, src, q, 32, &err) == TSR_EINVAL, "q8_0 scale overflow refused");
    CHECK (tsr_dequantize_row ((TsrDType) 12, q, back, 32, &err) == TSR_EINVAL, "unknown type refused");
    /* NaN through the raw kernels is defined, if meaningless. */
    src[5] = NAN;
    tsr_quantize_row_q8_0 (src, q, 32);
    tsr_quantize_row_q4_0 (src, q, 32);
    free (src);
    free (back);
    free (q);
  }
}

/* ==== Writer → reader round trip ======================================= */

static char *
tmp_path (const char *name)
{
  static char buf[4][512];
  static int k;
  k = (k + 1) % 4;
  snprintf (buf[k], sizeof buf[k], "%s/%s", tmpdir, name);
  return buf[k];
}

static int
file_exists (const char *path)
{
  struct stat sb;
  return stat (path, &sb) == 0;
}

typedef struct {
  const char *name;
  TsrDType    type;
  uint32_t    n_dims;
  int64_t     ne[4];
} TensorSpec;

static void
test_round_trip (uint32_t alignment)
{
  TsrGgufWriter *w = NULL;
  TsrError err;
  TsrGguf *g = NULL;
  char *path = tmp_path (alignment == 32 ? "rt32.gguf" : "rt.gguf");
  const uint8_t u8 = 200;
  const int8_t i8 = -100;
  const uint16_t u16 = 60000;
  const int16_t i16 = -30000;
  const uint64_t u64 = 0xfedcba9876543210ull;
  const int64_t i64 = INT64_MIN + 7;
  const double f64 = -1.0 / 3.0;
  const uint8_t yes = 1;
  static const int32_t ia[] = { INT32_MIN, -1, 0, 1, INT32_MAX };
  static const float fa[] = { 0.5f, -0.0f, INFINITY, 3.25e-5f };
  static const double da[] = { 1e300, -2.5 };
  static const uint8_t ba[] = { 1, 0, 0, 1 };
  static const uint16_t u16a[] = { 1, 65535 };
  static const int64_t i64a[] = { INT64_MIN, INT64_MAX };
  /* The InternLM2 vocabulary has a piece that is a single NUL. */
  static const char *const sa[] = { "▁hello", "", "a\0b", "[UNUSED_TOKEN_146]" };
  static const size_t sal[] = { strlen ("▁hello"), 0, 3, 18 };
  const TensorSpec specs[] = {
    { "t.f32", TSR_DTYPE_F32, 2, { 3, 5 } },
    { "t.f16", TSR_DTYPE_F16, 1, { 7 } },
    { "t.empty", TSR_DTYPE_F32, 2, { 4, 0 } },
    { "t.bf16", TSR_DTYPE_BF16, 3, { 2, 3, 4 } },
    { "t.q8_0", TSR_DTYPE_Q8_0, 2, { 64, 3 } },
    { "t.q4_0", TSR_DTYPE_Q4_0, 4, { 32, 2, 1, 3 } },
    { "t.scalar", TSR_DTYPE_F32, 0, { 0 } },
  };
  enum { NT = sizeof specs / sizeof specs[0] };
  unsigned char *data[NT];
  uint64_t sizes[NT];
  TsrStatus st;

  CHECK (tsr_gguf_writer_new (&w, &err) == TSR_OK, "%s", err.message);
  if (alignment != 32)
    CHECK (tsr_gguf_writer_set_u32 (w, "general.alignment", alignment, &err) == TSR_OK, "%s", err.message);
  CHECK (tsr_gguf_writer_set_str (w, "general.architecture", "test", &err) == TSR_OK, "%s", err.message);
  tsr_gguf_writer_set (w, "v.u8", TSR_GGUF_U8, &u8, &err);
  tsr_gguf_writer_set (w, "v.i8", TSR_GGUF_I8, &i8, &err);
  tsr_gguf_writer_set (w, "v.u16", TSR_GGUF_U16, &u16, &err);
  tsr_gguf_writer_set (w, "v.i16", TSR_GGUF_I16, &i16, &err);
  tsr_gguf_writer_set_u32 (w, "v.u32", 4000000000u, &err);
  tsr_gguf_writer_set_i32 (w, "v.i32", -2000000000, &err);
  tsr_gguf_writer_set_f32 (w, "v.f32", 1.5f, &err);
  tsr_gguf_writer_set (w, "v.bool", TSR_GGUF_BOOL, &yes, &err);
  tsr_gguf_writer_set_bool (w, "v.false", 0, &err);
  tsr_gguf_writer_set_str (w, "v.str", "héllo", &err);
  tsr_gguf_writer_set_str (w, "v.empty", "", &err);
  tsr_gguf_writer_set (w, "v.u64", TSR_GGUF_U64, &u64, &err);
  tsr_gguf_writer_set (w, "v.i64", TSR_GGUF_I64, &i64, &err);
  tsr_gguf_writer_set (w, "v.f64", TSR_GGUF_F64, &f64, &err);
  tsr_gguf_writer_set_arr (w, "a.i32", TSR_GGUF_I32, ia, 5, &err);
  tsr_gguf_writer_set_arr (w, "a.f32", TSR_GGUF_F32, fa, 4, &err);
  tsr_gguf_writer_set_arr (w, "a.f64", TSR_GGUF_F64, da, 2, &err);
  tsr_gguf_writer_set_arr (w, "a.bool", TSR_GGUF_BOOL, ba, 4, &err);
  tsr_gguf_writer_set_arr (w, "a.u16", TSR_GGUF_U16, u16a, 2, &err);
  tsr_gguf_writer_set_arr (w, "a.i64", TSR_GGUF_I64, i64a, 2, &err);
  tsr_gguf_writer_set_arr (w, "a.u8.empty", TSR_GGUF_U8, NULL, 0, &err);
  CHECK (tsr_gguf_writer_set_arr_str (w, "a.str", sa, sal, 4, &err) == TSR_OK, "%s", err.message);
  tsr_gguf_writer_set_u32 (w, "v.replaced", 1, &err);
  tsr_gguf_writer_set_u32 (w, "v.replaced", 2, &err);
  /* Misuse is refused without harming the writer. */
  {
    uint8_t two = 2;
    CHECK (tsr_gguf_writer_set (w, "v.bad", TSR_GGUF_BOOL, &two, &err) == TSR_EINVAL, "bool 2");
    CHECK (tsr_gguf_writer_set (w, "v.bad", TSR_GGUF_STRING, "x", &err) == TSR_EINVAL, "string via _set");
    CHECK (tsr_gguf_writer_set_u32 (w, "general.alignment", 48, &err) == TSR_EINVAL, "alignment 48");
    CHECK (tsr_gguf_writer_set_u32 (w, "", 1, &err) == TSR_EINVAL, "empty key");
  }

  for (int i = 0; i < NT; i++)
    {
      uint64_t n = 1;
      CHECK (tsr_gguf_writer_add_tensor (w, specs[i].name, specs[i].type, specs[i].n_dims, specs[i].ne,
                                         &err) == TSR_OK, "%s", err.message);
      for (uint32_t d = 0; d < specs[i].n_dims; d++)
        n *= (uint64_t) specs[i].ne[d];
      tsr_dtype_row_bytes (specs[i].type, n, &sizes[i], &err);
      data[i] = malloc (sizes[i] + 1);
      for (uint64_t k = 0; k < sizes[i]; k++)
        data[i][k] = (unsigned char) (k * 31 + i * 7 + 1);
    }
  {
    const int64_t ne[] = { 33 };
    CHECK (tsr_gguf_writer_add_tensor (w, "t.bad", TSR_DTYPE_Q8_0, 1, ne, &err) == TSR_EINVAL,
           "33-value q8_0 rows");
    CHECK (tsr_gguf_writer_add_tensor (w, "t.f32", TSR_DTYPE_F32, 1, ne, &err) == TSR_EINVAL, "duplicate");
    CHECK (tsr_gguf_writer_add_tensor (w, "t.01234567890123456789012345678901234567890123456789012345678901",
                                       TSR_DTYPE_F32, 1, ne, &err) == TSR_EINVAL, "64-byte name");
  }
  CHECK (tsr_gguf_writer_append (w, "x", 1, &err) == TSR_EINVAL, "append before open");
  CHECK (tsr_gguf_writer_open (w, path, &err) == TSR_OK, "open: %s", err.message);
  CHECK (file_exists (tmp_path (alignment == 32 ? "rt32.gguf.part" : "rt.gguf.part")), "writes PATH.part");
  CHECK (tsr_gguf_writer_set_u32 (w, "v.late", 1, &err) == TSR_EINVAL, "metadata after open");
  CHECK (tsr_gguf_writer_write_tensor (w, "t.f16", data[1], sizes[1], &err) == TSR_EINVAL &&
         strstr (err.message, "t.f32") != NULL, "out of order: %s", err.message);
  CHECK (tsr_gguf_writer_write_tensor (w, "t.f32", data[0], sizes[0] - 1, &err) == TSR_EINVAL,
         "wrong size");
  /* t.f32 whole; t.f16 in three pieces; t.empty needs nothing; the rest whole. */
  CHECK (tsr_gguf_writer_write_tensor (w, "t.f32", data[0], sizes[0], &err) == TSR_OK, "%s", err.message);
  CHECK (tsr_gguf_writer_append (w, data[1], 5, &err) == TSR_OK, "%s", err.message);
  CHECK (tsr_gguf_writer_append (w, data[1] + 5, sizes[1], &err) == TSR_EINVAL, "append past the tensor");
  CHECK (tsr_gguf_writer_append (w, data[1] + 5, 4, &err) == TSR_OK, "%s", err.message);
  CHECK (tsr_gguf_writer_append (w, data[1] + 9, sizes[1] - 9, &err) == TSR_OK, "%s", err.message);
  for (int i = 3; i < NT; i++)
    CHECK (tsr_gguf_writer_write_tensor (w, specs[i].name, data[i], sizes[i], &err) == TSR_OK,
           "%s: %s", specs[i].name, err.message);
  CHECK (tsr_gguf_writer_append (w, "x", 1, &err) == TSR_EINVAL, "append after the last tensor");
  CHECK (tsr_gguf_writer_finish (w, &err) == TSR_OK, "finish: %s", err.message);
  tsr_gguf_writer_free (w);
  CHECK (!file_exists (tmp_path (alignment == 32 ? "rt32.gguf.part" : "rt.gguf.part")), "PATH.part renamed");

  if (alignment == 32)
    copy_fixture (path, "all-types.gguf");
  st = tsr_gguf_open (path, &g, &err);
  CHECK (st == TSR_OK, "reopen: %s", err.message);
  if (st != TSR_OK)
    return;
  {
    uint32_t u;
    int32_t i;
    uint64_t uu;
    int64_t ii;
    float f;
    int b;
    TsrGgufStr s;
    const TsrGgufKV *kv;

    CHECK (tsr_gguf_alignment (g) == alignment, "alignment %u", tsr_gguf_alignment (g));
    CHECK (tsr_gguf_get_u32 (g, "v.u8", &u, &err) == TSR_OK && u == 200, "u8");
    CHECK (tsr_gguf_get_i32 (g, "v.i8", &i, &err) == TSR_OK && i == -100, "i8");
    CHECK (tsr_gguf_get_u32 (g, "v.i8", &u, &err) == TSR_EFORMAT, "negative as u32");
    CHECK (tsr_gguf_get_u32 (g, "v.u16", &u, &err) == TSR_OK && u == 60000, "u16");
    CHECK (tsr_gguf_get_i32 (g, "v.i16", &i, &err) == TSR_OK && i == -30000, "i16");
    CHECK (tsr_gguf_get_u32 (g, "v.u32", &u, &err) == TSR_OK && u == 4000000000u, "u32");
    CHECK (tsr_gguf_get_i32 (g, "v.u32", &i, &err) == TSR_EFORMAT, "u32 beyond i32");
    CHECK (tsr_gguf_get_i32 (g, "v.i32", &i, &err) == TSR_OK && i == -2000000000, "i32");
    CHECK (tsr_gguf_get_f32 (g, "v.f32", &f, &err) == TSR_OK && f == 1.5f, "f32");
    CHECK (tsr_gguf_get_bool (g, "v.bool", &b, &err) == TSR_OK && b == 1, "bool");
    CHECK (tsr_gguf_get_bool (g, "v.false", &b, &err) == TSR_OK && b == 0, "false");
    CHECK (tsr_gguf_get_bool (g, "v.u8", &b, &err) == TSR_EFORMAT, "u8 as bool");
    CHECK (tsr_gguf_get_str (g, "v.str", &s, &err) == TSR_OK && tsr_gguf_str_eq (s, "héllo"), "str");
    CHECK (tsr_gguf_get_str (g, "v.empty", &s, &err) == TSR_OK && s.len == 0, "empty str");
    CHECK (tsr_gguf_get_u64 (g, "v.u64", &uu, &err) == TSR_OK && uu == u64, "u64");
    CHECK (tsr_gguf_get_u32 (g, "v.u64", &u, &err) == TSR_EFORMAT, "u64 beyond u32");
    CHECK (tsr_gguf_get_i64 (g, "v.i64", &ii, &err) == TSR_OK && ii == i64, "i64");
    CHECK (tsr_gguf_get_f32 (g, "v.f64", &f, &err) == TSR_OK && f == (float) f64, "f64");
    kv = tsr_gguf_find_kv (g, "v.f64");
    CHECK (kv && kv->type == TSR_GGUF_F64 && memcmp (kv->data, &f64, 8) == 0, "f64 bytes");
    CHECK (tsr_gguf_get_u32 (g, "v.replaced", &u, &err) == TSR_OK && u == 2, "replaced");
    kv = tsr_gguf_find_kv (g, "v.replaced");
    CHECK (kv && kv == tsr_gguf_kv (g, alignment != 32 ? 24 : 23), "replaced in place");
    {
      int32_t io[5];
      float fo[4];
      float do_[2];
      const TsrGgufStr *ss;
      uint64_t n;
      CHECK (tsr_gguf_get_arr_i32 (g, "a.i32", io, 5, &err) == TSR_OK && memcmp (io, ia, sizeof ia) == 0, "a.i32");
      CHECK (tsr_gguf_get_arr_f32 (g, "a.f32", fo, 4, &err) == TSR_OK && memcmp (fo, fa, sizeof fa) == 0, "a.f32");
      CHECK (tsr_gguf_get_arr_f32 (g, "a.f64", do_, 2, &err) == TSR_OK && do_[1] == -2.5f && isinf (do_[0]),
             "a.f64");
      CHECK (tsr_gguf_get_arr_f32 (g, "a.i32", fo, 5, &err) == TSR_EFORMAT, "ints as floats");
      CHECK (tsr_gguf_get_arr_i32 (g, "a.i64", io, 2, &err) == TSR_EFORMAT, "i64 beyond i32");
      kv = tsr_gguf_find_kv (g, "a.i64");
      CHECK (kv && kv->array_type == TSR_GGUF_I64 && kv->n == 2 && memcmp (kv->data, i64a, 16) == 0, "a.i64");
      kv = tsr_gguf_find_kv (g, "a.bool");
      CHECK (kv && kv->array_type == TSR_GGUF_BOOL && memcmp (kv->data, ba, 4) == 0, "a.bool");
      kv = tsr_gguf_find_kv (g, "a.u16");
      CHECK (kv && kv->array_type == TSR_GGUF_U16 && memcmp (kv->data, u16a, 4) == 0, "a.u16");
      kv = tsr_gguf_find_kv (g, "a.u8.empty");
      CHECK (kv && kv->array_type == TSR_GGUF_U8 && kv->n == 0, "empty array");
      CHECK (tsr_gguf_get_arr_str (g, "a.str", &ss, &n, &err) == TSR_OK && n == 4, "a.str");
      if (n == 4)
        for (int k = 0; k < 4; k++)
          CHECK (ss[k].len == sal[k] && memcmp (ss[k].ptr, sa[k], sal[k]) == 0, "string %d", k);
    }
  }
  CHECK (tsr_gguf_n_tensors (g) == NT, "tensor count");
  for (int i = 0; i < NT; i++)
    {
      const TsrGgufTensor *t = tsr_gguf_find_tensor (g, specs[i].name);
      CHECK (t != NULL && t == tsr_gguf_tensor (g, (size_t) i), "%s found in order", specs[i].name);
      if (t == NULL)
        continue;
      CHECK (t->type == specs[i].type && t->n_dims == specs[i].n_dims, "%s type/dims", t->name);
      for (uint32_t d = 0; d < 4; d++)
        CHECK (t->ne[d] == (d < specs[i].n_dims ? specs[i].ne[d] : 1), "%s ne[%u]", t->name, d);
      CHECK (t->size == sizes[i] && memcmp (t->data, data[i], (size_t) sizes[i]) == 0, "%s data", t->name);
      CHECK (t->offset % alignment == 0, "%s offset %llu", t->name, (unsigned long long) t->offset);
    }
  {
    /* No trailing padding: the last tensor ends the file. */
    const TsrGgufTensor *last = tsr_gguf_tensor (g, NT - 1);
    CHECK (last->offset + last->size == tsr_gguf_size (g), "file ends with the last tensor");
  }
  {
    TsrGgufModelInfo mi;
    CHECK (tsr_gguf_model_info (g, &mi, &err) == TSR_EFORMAT && strstr (err.message, "test") != NULL,
           "architecture 'test' is not runnable: %s", err.message);
  }
  tsr_gguf_close (g);
  for (int i = 0; i < NT; i++)
    free (data[i]);
}

/* Quantised tensors through the writer and back: the GGUF holds exactly the
 * bytes tsr_quantize_row made, and they dequantise within bounds. */
static void
test_quantised_file (void)
{
  static const TsrDType types[] = { TSR_DTYPE_F32, TSR_DTYPE_F16, TSR_DTYPE_BF16, TSR_DTYPE_Q8_0, TSR_DTYPE_Q4_0 };
  static const double tol[] = { 0, 1.0 / 1024, 1.0 / 128, 1.0 / 100, 1.0 / 6 };
  enum { ROWS = 3, COLS = 96 };
  float src[ROWS * COLS], back[ROWS * COLS];
  unsigned char q[5][ROWS * COLS * 4];
  uint64_t bytes[5];
  TsrGgufWriter *w = NULL;
  TsrGguf *g = NULL;
  TsrError err;
  char *path = tmp_path ("quant.gguf");
  const int64_t ne[] = { COLS, ROWS };

  for (int i = 0; i < ROWS * COLS; i++)
    src[i] = rnd ();
  tsr_gguf_writer_new (&w, &err);
  for (int k = 0; k < 5; k++)
    {
      char name[32];
      snprintf (name, sizeof name, "w.%s", tsr_dtype_name (types[k]));
      CHECK (tsr_gguf_writer_add_tensor (w, name, types[k], 2, ne, &err) == TSR_OK, "%s", err.message);
      tsr_dtype_row_bytes (types[k], ROWS * COLS, &bytes[k], &err);
      CHECK (tsr_quantize_row (types[k], src, q[k], ROWS * COLS, &err) == TSR_OK, "%s", err.message);
    }
  CHECK (tsr_gguf_writer_open (w, path, &err) == TSR_OK, "%s", err.message);
  for (int k = 0; k < 5; k++)
    {
      /* Row by row, as the converter streams. */
      uint64_t row = bytes[k] / ROWS;
      for (int r = 0; r < ROWS; r++)
        CHECK (tsr_gguf_writer_append (w, q[k] + r * row, (size_t) row, &err) == TSR_OK, "%s", err.message);
    }
  CHECK (tsr_gguf_writer_finish (w, &err) == TSR_OK, "%s", err.message);
  tsr_gguf_writer_free (w);
  copy_fixture (path, "all-dtypes.gguf");
  CHECK (tsr_gguf_open (path, &g, &err) == TSR_OK, "%s", err.message);
  if (g == NULL)
    return;
  for (int k = 0; k < 5; k++)
    {
      const TsrGgufTensor *t = tsr_gguf_tensor (g, (size_t) k);
      double worst = 0;
      CHECK (t->size == bytes[k] && memcmp (t->data, q[k], (size_t) bytes[k]) == 0, "%s bytes", t->name);
      CHECK (tsr_dequantize_row (t->type, t->data, back, (size_t) t->n_elements, &err) == TSR_OK, "%s", err.message);
      for (int i = 0; i < ROWS * COLS; i++)
        worst = fmax (worst, fabs ((double) back[i] - src[i]));
      CHECK (worst <= tol[k], "%s: max error %g > %g", t->name, worst, tol[k]);
    }
  tsr_gguf_close (g);
}

/* ==== Damaged files ===================================================== */

static void
test_malformed (void)
{
  Buf ok = small_valid_file ();
  TsrGguf *g = NULL;
  TsrError err;
  int bad = 0;

  save_fixture ("small.gguf", ok.p, ok.len);
  CHECK (tsr_gguf_open_memory (ok.p, ok.len, &g, &err) == TSR_OK, "the small file is valid: %s", err.message);
  if (g)
    {
      const TsrGgufStr *ss;
      uint64_t n;
      CHECK (tsr_gguf_get_arr_str (g, "test.names", &ss, &n, &err) == TSR_OK && n == 2 &&
             tsr_gguf_str_eq (ss[0], "alpha") && ss[1].len == 0, "small file strings");
      CHECK (tsr_gguf_find_tensor (g, "b") && ((const float *) tsr_gguf_find_tensor (g, "b")->data)[7] == -7.0f,
             "small file data");
      tsr_gguf_close (g);
    }

  /* Truncation at every offset, through memory; a few also through files. */
  for (size_t n = 0; n < ok.len; n++)
    {
      TsrStatus st = tsr_gguf_open_memory (ok.p, n, &g, &err);
      if (st != TSR_EFORMAT || err.message[0] == '\0' || g != NULL)
        {
          bad++;
          fprintf (stderr, "  prefix of %zu bytes: %s (%s)\n", n, tsr_status_name (st), err.message);
          tsr_gguf_close (g);
        }
    }
  CHECK (bad == 0, "%d truncated prefixes were not refused", bad);
  if (verbose)
    {
      tsr_gguf_open_memory (ok.p, 60, &g, &err);
      printf ("  %-28s %s\n", "truncated at 60", err.message);
      tsr_gguf_open_memory (ok.p, ok.len - 1, &g, &err);
      printf ("  %-28s %s\n", "one byte short", err.message);
    }
  {
    static const size_t cuts[] = { 0, 3, 7, 23, 100, 0 };
    for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++)
      {
        size_t n = i == 5 ? ok.len - 1 : cuts[i];
        char *path = tmp_path ("cut.gguf");
        FILE *f = fopen (path, "wb");
        TsrStatus st;
        if (f)
          {
            fwrite (ok.p, 1, n, f);
            fclose (f);
          }
        st = tsr_gguf_open (path, &g, &err);
        CHECK (st == TSR_EFORMAT && strstr (err.message, path) != NULL, "file cut at %zu: %s", n, err.message);
      }
  }

  /* Each case below is a small file with one thing wrong. */
  Buf b;
#define FRESH() (free (b.p), b = (Buf) { 0 })
  b = (Buf) { 0 };

  b_bytes (&b, "GGUG", 4); b_u32 (&b, 3); b_u64 (&b, 0); b_u64 (&b, 0);
  expect_bad ("bad magic", b.p, b.len, "magic");
  save_fixture ("bad-magic.gguf", b.p, b.len);

  FRESH (); b_header (&b, 1, 0, 0);
  expect_bad ("version 1", b.p, b.len, "version 1");
  FRESH (); b_header (&b, 99, 0, 0);
  expect_bad ("version 99", b.p, b.len, "99");
  FRESH (); b_header (&b, 0x03000000u, 0, 0);
  expect_bad ("big-endian", b.p, b.len, "big-endian");
  FRESH (); b_header (&b, 0, 0, 0);
  expect_bad ("version 0", b.p, b.len, NULL);

  FRESH (); b_header (&b, 3, 0, UINT64_MAX);
  expect_bad ("absurd KV count", b.p, b.len, "metadata entries");
  FRESH (); b_header (&b, 3, 1ull << 62, 0);
  expect_bad ("absurd tensor count", b.p, b.len, "tensors");
  /* Room for three tensor infos before the metadata, not after it. */
  FRESH (); b_header (&b, 3, 3, 1); b_str (&b, "k"); b_u32 (&b, 8);
  b_str (&b, "a long string value that uses up most of the bytes in this file.......");
  for (int i = 0; i < 30; i++) b_u8 (&b, 0);
  expect_bad ("tensor count after KVs", b.p, b.len, "after the metadata");

  FRESH (); b_header (&b, 3, 0, 1); b_u64 (&b, UINT64_MAX); b_bytes (&b, "key.and.more", 12);
  expect_bad ("key length 2^64-1", b.p, b.len, "claims 18446744073709551615 bytes");
  FRESH (); b_header (&b, 3, 0, 1); b_u64 (&b, 20); b_bytes (&b, "key.and.more", 12);
  expect_bad ("key past EOF", b.p, b.len, "claims 20 bytes but only 12 remain");
  FRESH (); b_header (&b, 3, 0, 1); b_str (&b, "k"); b_u32 (&b, 8); b_u64 (&b, 1000); b_bytes (&b, "short", 5);
  expect_bad ("string value past EOF", b.p, b.len, "claims 1000 bytes");
  FRESH (); b_header (&b, 3, 0, 1); b_u64 (&b, 0); b_u32 (&b, 4); b_u32 (&b, 0);
  expect_bad ("empty key", b.p, b.len, "empty");
  FRESH (); b_header (&b, 3, 0, 1); b_u64 (&b, 3); b_bytes (&b, "a\0b", 3); b_u32 (&b, 4); b_u32 (&b, 0);
  expect_bad ("NUL in key", b.p, b.len, "NUL");
  FRESH (); b_header (&b, 3, 0, 1); b_u64 (&b, 70000);
  for (int i = 0; i < 70010; i++) b_u8 (&b, 'k');
  expect_bad ("key of 70000 bytes", b.p, b.len, "at most 65535");
  FRESH (); b_header (&b, 3, 0, 2); b_kv_u32 (&b, "dup", 1); b_kv_u32 (&b, "dup", 2);
  expect_bad ("duplicate key", b.p, b.len, "twice");
  FRESH (); b_header (&b, 3, 0, 1); b_str (&b, "k"); b_u32 (&b, 13); b_u32 (&b, 0);
  expect_bad ("value type 13", b.p, b.len, "value type 13");
  FRESH (); b_header (&b, 3, 0, 1); b_str (&b, "k"); b_u32 (&b, 7); b_u8 (&b, 2);
  expect_bad ("bool 2", b.p, b.len, "not 0 or 1");
  FRESH (); b_header (&b, 3, 0, 1); b_str (&b, "k"); b_u32 (&b, 9); b_u32 (&b, 4); b_u64 (&b, 1ull << 61);
  b_u32 (&b, 0);
  expect_bad ("array count absurd", b.p, b.len, "claims");
  FRESH (); b_header (&b, 3, 0, 1); b_str (&b, "k"); b_u32 (&b, 9); b_u32 (&b, 4); b_u64 (&b, 0x4000000000000001ull);
  b_u32 (&b, 0);
  expect_bad ("array bytes overflow", b.p, b.len, "claims");
  FRESH (); b_header (&b, 3, 0, 1); b_str (&b, "k"); b_u32 (&b, 9); b_u32 (&b, 8); b_u64 (&b, 2);
  b_str (&b, "x"); b_u64 (&b, 99); b_bytes (&b, "yy", 2);
  expect_bad ("array string past EOF", b.p, b.len, "string 1");
  FRESH (); b_header (&b, 3, 0, 1); b_str (&b, "k"); b_u32 (&b, 9); b_u32 (&b, 9); b_u64 (&b, 1);
  b_u32 (&b, 4); b_u64 (&b, 1); b_u32 (&b, 5);
  expect_bad ("nested array", b.p, b.len, "array of arrays");
  save_fixture ("nested-array.gguf", b.p, b.len);
  FRESH (); b_header (&b, 3, 0, 1); b_str (&b, "k"); b_u32 (&b, 9); b_u32 (&b, 20); b_u64 (&b, 1); b_u32 (&b, 5);
  expect_bad ("array element type 20", b.p, b.len, "element type 20");
  FRESH (); b_header (&b, 3, 0, 1); b_str (&b, "k"); b_u32 (&b, 9); b_u32 (&b, 7); b_u64 (&b, 3);
  b_u8 (&b, 1); b_u8 (&b, 0); b_u8 (&b, 5);
  expect_bad ("bool array with 5", b.p, b.len, "element 2");

  /* Alignment. */
  FRESH (); b_header (&b, 3, 0, 1); b_kv_u32 (&b, "general.alignment", 0);
  expect_bad ("alignment 0", b.p, b.len, "power of");
  FRESH (); b_header (&b, 3, 0, 1); b_kv_u32 (&b, "general.alignment", 3);
  expect_bad ("alignment 3", b.p, b.len, "power of");
  FRESH (); b_header (&b, 3, 0, 1); b_str (&b, "general.alignment"); b_u32 (&b, 8); b_str (&b, "32");
  expect_bad ("alignment as string", b.p, b.len, "not an integer");

  /* Tensor infos. */
  const uint64_t ne4[] = { 4 }, ne32[] = { 32 };
  FRESH (); b_header (&b, 3, 1, 0); b_tensor (&b, "t", 5, (const uint64_t[]) { 1, 1, 1, 1, 1 }, 0, 0);
  expect_bad ("5 dimensions", b.p, b.len, "5 dimensions");
  FRESH (); b_header (&b, 3, 1, 0); b_tensor (&b, "t", 2, (const uint64_t[]) { 1ull << 32, 1ull << 32 }, 0, 0);
  expect_bad ("dims overflow 2^63", b.p, b.len, "multiply");
  save_fixture ("dims-overflow.gguf", b.p, b.len);
  FRESH (); b_header (&b, 3, 1, 0); b_tensor (&b, "t", 3, (const uint64_t[]) { 1ull << 40, 1ull << 20, 1ull << 10 }, 0, 0);
  expect_bad ("dims overflow 2^64", b.p, b.len, "multiply");
  FRESH (); b_header (&b, 3, 1, 0); b_tensor (&b, "t", 1, (const uint64_t[]) { 1ull << 63 }, 0, 0);
  expect_bad ("dim 2^63", b.p, b.len, "2^63");
  FRESH (); b_header (&b, 3, 1, 0); b_tensor (&b, "t", 1, (const uint64_t[]) { 1ull << 60 }, 0, 0);
  b_pad (&b, 32); b_u32 (&b, 0);
  expect_bad ("tensor larger than the file", b.p, b.len, "file ends");
  FRESH (); b_header (&b, 3, 1, 0); b_tensor (&b, "t", 1, ne4, 0, 1ull << 40); b_pad (&b, 32);
  for (int i = 0; i < 16; i++) b_u8 (&b, 0);
  expect_bad ("offset past the end", b.p, b.len, "file ends");
  FRESH (); b_header (&b, 3, 1, 0); b_tensor (&b, "t", 1, ne4, 0, UINT64_MAX - 31); b_pad (&b, 32);
  for (int i = 0; i < 16; i++) b_u8 (&b, 0);
  expect_bad ("offset + size overflows", b.p, b.len, "file ends");
  FRESH (); b_header (&b, 3, 1, 0); b_tensor (&b, "t", 1, ne4, 0, 4); b_pad (&b, 32);
  for (int i = 0; i < 64; i++) b_u8 (&b, 0);
  expect_bad ("misaligned offset", b.p, b.len, "multiple of");
  save_fixture ("misaligned.gguf", b.p, b.len);
  /* t holds 32 floats at 0…127, u starts at 96. */
  FRESH (); b_header (&b, 3, 2, 0); b_tensor (&b, "t", 1, ne32, 0, 0); b_tensor (&b, "u", 1, ne4, 0, 96);
  b_pad (&b, 32);
  for (int i = 0; i < 256; i++) b_u8 (&b, 0);
  expect_bad ("overlapping tensors", b.p, b.len, "overlap");
  save_fixture ("overlap.gguf", b.p, b.len);
  FRESH (); b_header (&b, 3, 3, 0);
  b_tensor (&b, "big", 1, (const uint64_t[]) { 64 }, 0, 0);
  b_tensor (&b, "empty", 1, (const uint64_t[]) { 0 }, 0, 32);
  b_tensor (&b, "inner", 1, ne4, 0, 128);
  b_pad (&b, 32);
  for (int i = 0; i < 256; i++) b_u8 (&b, 0);
  /* 'big' spans 0…255 and 'inner' sits at 128 inside it, with an empty
   * tensor between them in offset order: still an overlap. */
  expect_bad ("overlap behind an empty tensor", b.p, b.len, "overlap");
  FRESH (); b_header (&b, 3, 1, 0); b_tensor (&b, "t", 1, ne32, 12, 0); b_pad (&b, 32);
  for (int i = 0; i < 256; i++) b_u8 (&b, 0);
  expect_bad ("type q4_K", b.p, b.len, "q4_K");
  FRESH (); b_header (&b, 3, 1, 0); b_tensor (&b, "t", 1, ne32, 1000, 0); b_pad (&b, 32);
  for (int i = 0; i < 256; i++) b_u8 (&b, 0);
  expect_bad ("type 1000", b.p, b.len, "type 1000");
  save_fixture ("unknown-type.gguf", b.p, b.len);
  FRESH (); b_header (&b, 3, 1, 0); b_tensor (&b, "t", 1, (const uint64_t[]) { 33 }, 8, 0); b_pad (&b, 32);
  for (int i = 0; i < 256; i++) b_u8 (&b, 0);
  expect_bad ("q8_0 row of 33", b.p, b.len, "multiple");
  FRESH (); b_header (&b, 3, 2, 0); b_tensor (&b, "t", 1, ne4, 0, 0); b_tensor (&b, "t", 1, ne4, 0, 32);
  b_pad (&b, 32);
  for (int i = 0; i < 64; i++) b_u8 (&b, 0);
  expect_bad ("duplicate tensor", b.p, b.len, "twice");
  FRESH (); b_header (&b, 3, 1, 0);
  b_tensor (&b, "t.01234567890123456789012345678901234567890123456789012345678901", 1, ne4, 0, 0);
  b_pad (&b, 32);
  for (int i = 0; i < 64; i++) b_u8 (&b, 0);
  expect_bad ("64-byte tensor name", b.p, b.len, "at most 63");
  FRESH (); b_header (&b, 3, 1, 0); b_tensor (&b, "", 1, ne4, 0, 0);
  b_pad (&b, 32);
  for (int i = 0; i < 64; i++) b_u8 (&b, 0);
  expect_bad ("empty tensor name", b.p, b.len, "empty");

  /* Still fine: v2, zero tensors, an empty tensor, alignment 1 and 64. */
  FRESH (); b_header (&b, 2, 0, 1); b_kv_u32 (&b, "k", 1);
  CHECK (tsr_gguf_open_memory (b.p, b.len, &g, &err) == TSR_OK, "v2: %s", err.message);
  tsr_gguf_close (g);
  FRESH (); b_header (&b, 3, 2, 1); b_kv_u32 (&b, "general.alignment", 1);
  b_tensor (&b, "a", 1, (const uint64_t[]) { 1 }, 1, 0);
  b_tensor (&b, "b", 1, (const uint64_t[]) { 1 }, 0, 2);
  b_u8 (&b, 0x00); b_u8 (&b, 0x3c); b_u32 (&b, 0x3f800000u);
  CHECK (tsr_gguf_open_memory (b.p, b.len, &g, &err) == TSR_OK, "alignment 1: %s", err.message);
  if (g)
    {
      /* f16 data at an odd address would be misread by a careless reader. */
      float y;
      const TsrGgufTensor *t = tsr_gguf_find_tensor (g, "a");
      CHECK (tsr_gguf_data_offset (g) == tsr_gguf_size (g) - 6, "data offset with alignment 1");
      CHECK (tsr_dequantize_row (t->type, t->data, &y, 1, &err) == TSR_OK && y == 1.0f, "f16 at any address");
      tsr_gguf_close (g);
    }
  save_fixture ("align1.gguf", b.p, b.len);
  FRESH ();
  free (ok.p);
#undef FRESH

  /* Files that are not there or not files. */
  CHECK (tsr_gguf_open (tmp_path ("missing.gguf"), &g, &err) == TSR_EIO && strstr (err.message, "missing.gguf"),
         "missing file: %s", err.message);
  CHECK (tsr_gguf_open (tmpdir, &g, &err) == TSR_EIO, "a directory: %s", err.message);
  {
    char *path = tmp_path ("empty.gguf");
    FILE *f = fopen (path, "wb");
    if (f)
      fclose (f);
    CHECK (tsr_gguf_open (path, &g, &err) == TSR_EFORMAT && strstr (err.message, "empty"), "empty file: %s",
           err.message);
  }
}

/* ==== The writer on a full disk ========================================= */

/* Writes a model of `bytes` bytes of tensor data to path; returns the
 * status of the first failing call. */
static TsrStatus
write_model (const char *path, size_t bytes, TsrError *err)
{
  TsrGgufWriter *w = NULL;
  TsrStatus st;
  const int64_t ne[] = { (int64_t) (bytes / 4) };
  float *data = calloc (bytes / 4, 4);

  if ((st = tsr_gguf_writer_new (&w, err)) == TSR_OK &&
      (st = tsr_gguf_writer_set_str (w, "general.architecture", "test", err)) == TSR_OK &&
      (st = tsr_gguf_writer_add_tensor (w, "big", TSR_DTYPE_F32, 1, ne, err)) == TSR_OK &&
      (st = tsr_gguf_writer_open (w, path, err)) == TSR_OK)
    {
      /* In 64 KiB pieces, like a converter. */
      for (size_t off = 0; off < bytes && st == TSR_OK; off += 65536)
        st = tsr_gguf_writer_append (w, (char *) data + off, bytes - off < 65536 ? bytes - off : 65536, err);
      if (st == TSR_OK)
        st = tsr_gguf_writer_finish (w, err);
    }
  tsr_gguf_writer_free (w);
  free (data);
  return st;
}

static int
dir_is_empty (const char *dir)
{
  char cmd[600];
  snprintf (cmd, sizeof cmd, "test -z \"$(ls -A '%s')\"", dir);
  return system (cmd) == 0;
}

/* Runs fn in a child (which may change namespaces or limits freely) and
 * returns its exit code; 77 means "could not set up". */
static int
in_child (int (*fn) (void))
{
  pid_t pid;
  int status = 0;

  /* Flushed first, or the child would print the parent's buffer again. */
  fflush (stdout);
  fflush (stderr);
  pid = fork ();
  if (pid < 0)
    return 77;
  if (pid == 0)
    {
      int rc = fn ();
      fflush (stdout);
      _exit (rc);
    }
  if (waitpid (pid, &status, 0) < 0 || !WIFEXITED (status))
    return 99;
  return WEXITSTATUS (status);
}

static int
child_tmpfs (void)
{
  char dir[512];
  TsrError err;
  TsrStatus st;

  snprintf (dir, sizeof dir, "%s/tmpfs", tmpdir);
  mkdir (dir, 0700);
  /* A private mount namespace: the tmpfs vanishes with this process and is
   * never seen by the rest of the system. */
  if (unshare (CLONE_NEWNS) != 0 || mount (NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0 ||
      mount ("tmpfs", dir, "tmpfs", 0, "size=64k") != 0)
    {
      printf ("  tmpfs: not available (%s); the file size limit stands in for a full disk\n",
              strerror (errno));
      return 77;
    }
  {
    char path[600];
    snprintf (path, sizeof path, "%s/model.gguf", dir);
    st = write_model (path, 1 << 20, &err);
    printf ("  full tmpfs: %s: %s\n", tsr_status_name (st), err.message);
    if (st != TSR_EIO || strstr (err.message, "disk is full") == NULL)
      return 1;
    if (!dir_is_empty (dir))
      {
        printf ("  the partial file was left behind\n");
        return 2;
      }
    /* A model that fits still works there. */
    st = write_model (path, 4096, &err);
    if (st != TSR_OK)
      {
        printf ("  a small model on the tmpfs failed: %s\n", err.message);
        return 3;
      }
  }
  return 0;
}

static int
child_fsize (void)
{
  struct rlimit rl = { 32768, 32768 };
  char *path = tmp_path ("limited.gguf");
  TsrError err;
  TsrStatus st;

  /* Past the limit write() fails with EFBIG instead of killing us. */
  signal (SIGXFSZ, SIG_IGN);
  if (setrlimit (RLIMIT_FSIZE, &rl) != 0)
    return 77;
  st = write_model (path, 1 << 20, &err);
  printf ("  file size limit: %s: %s\n", tsr_status_name (st), err.message);
  if (st != TSR_EIO || file_exists (path) || file_exists (tmp_path ("limited.gguf.part")))
    return 1;
  return 0;
}

static void
test_writer_failures (void)
{
  TsrError err;
  int rc;

  rc = in_child (child_tmpfs);
  CHECK (rc == 0 || rc == 77, "writer on a full tmpfs (child exit %d)", rc);
  rc = in_child (child_fsize);
  CHECK (rc == 0, "writer past the file size limit (child exit %d)", rc);

  /* An unwritable place. */
  CHECK (write_model (tmp_path ("no/such/dir/x.gguf"), 64, &err) == TSR_EIO && strstr (err.message, "x.gguf.part"),
         "missing directory: %s", err.message);

  /* /dev/full refuses every write with ENOSPC; the writer's own output
   * path is PATH.part, so point a symlink there. */
  {
    char *link = tmp_path ("devfull.gguf.part");
    if (symlink ("/dev/full", link) == 0)
      {
        TsrStatus st = write_model (tmp_path ("devfull.gguf"), 1 << 20, &err);
        CHECK (st == TSR_EIO && strstr (err.message, "No space left") != NULL, "/dev/full: %s", err.message);
        unlink (link);
      }
  }

  /* finish with a tensor missing: refused, nothing left behind. */
  {
    TsrGgufWriter *w = NULL;
    const int64_t ne[] = { 8 };
    char *path = tmp_path ("incomplete.gguf");
    tsr_gguf_writer_new (&w, &err);
    tsr_gguf_writer_add_tensor (w, "a", TSR_DTYPE_F32, 1, ne, &err);
    tsr_gguf_writer_add_tensor (w, "b", TSR_DTYPE_F32, 1, ne, &err);
    tsr_gguf_writer_open (w, path, &err);
    tsr_gguf_writer_append (w, "0123456789abcdef", 16, &err);
    CHECK (tsr_gguf_writer_finish (w, &err) == TSR_EINVAL && strstr (err.message, "'a'"), "incomplete: %s",
           err.message);
    CHECK (!file_exists (path) && !file_exists (tmp_path ("incomplete.gguf.part")), "incomplete file removed");
    CHECK (tsr_gguf_writer_append (w, "x", 1, &err) == TSR_EIO, "writer stays failed");
    tsr_gguf_writer_free (w);
  }
  /* Freed before finishing: the partial file goes. */
  {
    TsrGgufWriter *w = NULL;
    const int64_t ne[] = { 8 };
    tsr_gguf_writer_new (&w, &err);
    tsr_gguf_writer_add_tensor (w, "a", TSR_DTYPE_F32, 1, ne, &err);
    tsr_gguf_writer_open (w, tmp_path ("abandoned.gguf"), &err);
    CHECK (file_exists (tmp_path ("abandoned.gguf.part")), "part file exists while writing");
    tsr_gguf_writer_free (w);
    CHECK (!file_exists (tmp_path ("abandoned.gguf.part")), "abandoned part file removed");
  }
  /* An existing file is replaced only when the new one is complete. */
  {
    char *path = tmp_path ("keep.gguf");
    TsrGguf *g = NULL;
    CHECK (write_model (path, 256, &err) == TSR_OK, "%s", err.message);
    {
      TsrGgufWriter *w = NULL;
      const int64_t ne[] = { 8 };
      tsr_gguf_writer_new (&w, &err);
      tsr_gguf_writer_add_tensor (w, "a", TSR_DTYPE_F32, 1, ne, &err);
      tsr_gguf_writer_open (w, path, &err);
      tsr_gguf_writer_free (w);
    }
    CHECK (tsr_gguf_open (path, &g, &err) == TSR_OK && tsr_gguf_find_tensor (g, "big") != NULL,
           "the old file survives an abandoned write");
    tsr_gguf_close (g);
  }
}

/* ==== A model file in Tessera's layout ================================== */

static void
test_model_layout (void)
{
  /* A tiny internlm2-4khd file with every required tensor: shapes follow
   * DESIGN.md, so tsr_gguf_model_info must accept it, and must refuse it
   * with one tensor of the wrong shape. */
  enum { E = 8, F = 12, H = 2, HKV = 1, L = 2, V = 16, VE = 4, VF = 8, VL = 1, P = 2, S = 4 };
  const int hd = E / H;
  TsrGgufWriter *w = NULL;
  TsrError err;
  TsrGguf *g = NULL;
  char name[96];
  char *path = tmp_path ("tiny-4khd.gguf");
  float zeros[4096] = { 0 };
  const char *toks[V];
  float scores[V];
  char tokbuf[V][8];

  tsr_gguf_writer_new (&w, &err);
  tsr_gguf_writer_set_str (w, "general.architecture", "internlm2-4khd", &err);
  tsr_gguf_writer_set_u32 (w, "internlm2-4khd.context_length", 64, &err);
  tsr_gguf_writer_set_u32 (w, "internlm2-4khd.embedding_length", E, &err);
  tsr_gguf_writer_set_u32 (w, "internlm2-4khd.block_count", L, &err);
  tsr_gguf_writer_set_u32 (w, "internlm2-4khd.feed_forward_length", F, &err);
  tsr_gguf_writer_set_u32 (w, "internlm2-4khd.attention.head_count", H, &err);
  tsr_gguf_writer_set_u32 (w, "internlm2-4khd.attention.head_count_kv", HKV, &err);
  tsr_gguf_writer_set_f32 (w, "internlm2-4khd.attention.layer_norm_rms_epsilon", 1e-5f, &err);
  tsr_gguf_writer_set_f32 (w, "internlm2-4khd.rope.freq_base", 1e6f, &err);
  static const uint32_t ranks[] = { 2, 3, 3, 3, 3 };
  for (int k = 0; k < TSR_PLORA_COUNT; k++)
    {
      snprintf (name, sizeof name, "internlm2-4khd.plora.%s.rank", tsr_plora_name (k));
      tsr_gguf_writer_set_u32 (w, name, ranks[k], &err);
      snprintf (name, sizeof name, "internlm2-4khd.plora.%s.scale", tsr_plora_name (k));
      tsr_gguf_writer_set_f32 (w, name, k == 0 ? 2.0f : 1.0f, &err);
    }
  tsr_gguf_writer_set_u32 (w, "internlm2-4khd.vision.image_size", S, &err);
  tsr_gguf_writer_set_u32 (w, "internlm2-4khd.vision.patch_size", P, &err);
  tsr_gguf_writer_set_u32 (w, "internlm2-4khd.vision.embedding_length", VE, &err);
  tsr_gguf_writer_set_u32 (w, "internlm2-4khd.vision.block_count", VL, &err);
  tsr_gguf_writer_set_u32 (w, "internlm2-4khd.vision.feed_forward_length", VF, &err);
  tsr_gguf_writer_set_u32 (w, "internlm2-4khd.vision.attention.head_count", 2, &err);
  tsr_gguf_writer_set_f32 (w, "internlm2-4khd.vision.attention.layer_norm_epsilon", 1e-5f, &err);
  for (int i = 0; i < V; i++)
    {
      snprintf (tokbuf[i], sizeof tokbuf[i], "t%d", i);
      toks[i] = tokbuf[i];
      scores[i] = (float) -i;
    }
  tsr_gguf_writer_set_str (w, "tokenizer.ggml.model", "llama", &err);
  tsr_gguf_writer_set_arr_str (w, "tokenizer.ggml.tokens", toks, NULL, V, &err);
  tsr_gguf_writer_set_arr (w, "tokenizer.ggml.scores", TSR_GGUF_F32, scores, V, &err);
  tsr_gguf_writer_set_u32 (w, "tokenizer.ggml.bos_token_id", 1, &err);
  tsr_gguf_writer_set_u32 (w, "tokenizer.ggml.eos_token_id", 2, &err);
  tsr_gguf_writer_set_u32 (w, "tessera.chat.im_start_id", 15, &err);
  tsr_gguf_writer_set_u32 (w, "tessera.chat.im_end_id", 14, &err);
  tsr_gguf_writer_set_bool (w, "tessera.synthetic", 1, &err);

#define T(nm, ...)                                                                   \
  do {                                                                               \
    const int64_t ne_[] = { __VA_ARGS__ };                                           \
    CHECK (tsr_gguf_writer_add_tensor (w, nm, TSR_DTYPE_F32, sizeof ne_ / sizeof ne_[0], ne_, &err) \
           == TSR_OK, "%s: %s", nm, err.message);                                    \
  } while (0)
  T ("token_embd.weight", E, V);
  T ("output_norm.weight", E);
  T ("output.weight", E, V);
  for (int i = 0; i < L; i++)
    {
#define B(suffix, ...) (snprintf (name, sizeof name, "blk.%d." suffix, i), name)
      T (B ("attn_norm.weight"), E);
      T (B ("attn_q.weight"), E, H * hd);
      T (B ("attn_k.weight"), E, HKV * hd);
      T (B ("attn_v.weight"), E, HKV * hd);
      T (B ("attn_output.weight"), H * hd, E);
      T (B ("ffn_norm.weight"), E);
      T (B ("ffn_gate.weight"), E, F);
      T (B ("ffn_up.weight"), E, F);
      T (B ("ffn_down.weight"), F, E);
      T (B ("attn_qkv.lora_a.weight"), E, 2);
      T (B ("attn_q.lora_b.weight"), 2, H * hd);
      T (B ("attn_k.lora_b.weight"), 2, HKV * hd);
      T (B ("attn_v.lora_b.weight"), 2, HKV * hd);
      T (B ("attn_output.lora_a.weight"), H * hd, 3);
      T (B ("attn_output.lora_b.weight"), 3, E);
      T (B ("ffn_gate.lora_a.weight"), E, 3);
      T (B ("ffn_gate.lora_b.weight"), 3, F);
      T (B ("ffn_up.lora_a.weight"), E, 3);
      T (B ("ffn_up.lora_b.weight"), 3, F);
      T (B ("ffn_down.lora_a.weight"), F, 3);
      T (B ("ffn_down.lora_b.weight"), 3, E);
#undef B
    }
  T ("v.patch_embd.weight", P, P, 3, VE);
  T ("v.class_embd.weight", VE);
  T ("v.pos_embd.weight", VE, (S / P) * (S / P) + 1);
  T ("v.pre_ln.weight", VE);
  T ("v.pre_ln.bias", VE);
  for (int i = 0; i < VL; i++)
    {
#define B(suffix) (snprintf (name, sizeof name, "v.blk.%d." suffix, i), name)
      T (B ("attn_q.weight"), VE, VE); T (B ("attn_q.bias"), VE);
      T (B ("attn_k.weight"), VE, VE); T (B ("attn_k.bias"), VE);
      T (B ("attn_v.weight"), VE, VE); T (B ("attn_v.bias"), VE);
      T (B ("attn_out.weight"), VE, VE); T (B ("attn_out.bias"), VE);
      T (B ("ln1.weight"), VE); T (B ("ln1.bias"), VE);
      T (B ("ln2.weight"), VE); T (B ("ln2.bias"), VE);
      T (B ("ffn_up.weight"), VE, VF); T (B ("ffn_up.bias"), VF);
      T (B ("ffn_down.weight"), VF, VE); T (B ("ffn_down.bias"), VE);
#undef B
    }
  T ("mm.0.weight", 4 * VE, E);
  T ("mm.0.bias", E);
  T ("mm.2.weight", E, E);
  T ("mm.2.bias", E);
  T ("mm.glb_gn.weight", 4 * VE);
  T ("mm.sub_gn.weight", 4 * VE);
#undef T
  CHECK (tsr_gguf_writer_open (w, path, &err) == TSR_OK, "%s", err.message);
  /* Every tensor is f32: feed zeros, one value at a time, until the
   * writer says the last tensor is complete. */
  while (tsr_gguf_writer_append (w, zeros, 4, &err) == TSR_OK)
    ;
  CHECK (tsr_gguf_writer_finish (w, &err) == TSR_OK, "%s", err.message);
  tsr_gguf_writer_free (w);

  CHECK (tsr_gguf_open (path, &g, &err) == TSR_OK, "%s", err.message);
  if (g == NULL)
    return;
  {
    TsrGgufModelInfo mi;
    TsrStatus st = tsr_gguf_model_info (g, &mi, &err);
    CHECK (st == TSR_OK, "tiny internlm2-4khd: %s", err.message);
    CHECK (mi.arch == TSR_ARCH_INTERNLM2_4KHD && mi.synthetic && mi.n_head_dim == (uint32_t) hd && mi.n_vocab == V &&
           mi.plora_rank[TSR_PLORA_ATTN_QKV] == 2 && mi.plora_scale[TSR_PLORA_ATTN_QKV] == 2.0f &&
           mi.v_n_embd == VE && mi.mm_n_in == 4 * VE && mi.im_start_id == 15 && mi.im_end_id == 14 &&
           mi.rope_freq_base == 1e6f, "tiny internlm2-4khd values");
  }
  copy_fixture (path, "tiny-4khd-synthetic.gguf");
  tsr_gguf_close (g);

  /* One tensor of the wrong shape, one missing: each refused by name. */
  {
    Buf b = { 0 };
    FILE *f = fopen (path, "rb");
    unsigned char chunk[4096];
    size_t k;
    while (f && (k = fread (chunk, 1, sizeof chunk, f)) > 0)
      b_bytes (&b, chunk, k);
    if (f)
      fclose (f);
    /* Rename "mm.sub_gn.weight" to "mm.sub_gx.weight" in place. */
    for (size_t i = 0; i + 16 <= b.len; i++)
      if (memcmp (b.p + i, "mm.sub_gn.weight", 16) == 0)
        b.p[i + 8] = 'x';
    CHECK (tsr_gguf_open_memory (b.p, b.len, &g, &err) == TSR_OK, "%s", err.message);
    if (g)
      {
        TsrGgufModelInfo mi;
        CHECK (tsr_gguf_model_info (g, &mi, &err) == TSR_EFORMAT && strstr (err.message, "mm.sub_gn.weight"),
               "missing tensor: %s", err.message);
        tsr_gguf_close (g);
      }
    for (size_t i = 0; i + 16 <= b.len; i++)
      if (memcmp (b.p + i, "mm.sub_gx.weight", 16) == 0)
        b.p[i + 8] = 'n';
    /* blk.1.ffn_up.weight transposed: ne {8, 12} becomes {12, 8}, the same
     * size, so the file stays valid and only the layout check objects. The
     * info is: name, n_dims (4 bytes), ne[0] (8), ne[1] (8). */
    for (size_t i = 0; i + 40 <= b.len; i++)
      if (memcmp (b.p + i, "blk.1.ffn_up.weight", 19) == 0)
        {
          b.p[i + 19 + 4] = F;
          b.p[i + 19 + 4 + 8] = E;
          break;
        }
    CHECK (tsr_gguf_open_memory (b.p, b.len, &g, &err) == TSR_OK, "%s", err.message);
    if (g)
      {
        TsrGgufModelInfo mi;
        CHECK (tsr_gguf_model_info (g, &mi, &err) == TSR_EFORMAT && strstr (err.message, "blk.1.ffn_up.weight"),
               "wrong shape: %s", err.message);
        tsr_gguf_close (g);
      }
    free (b.p);
  }
}

int
main (int argc, char **argv)
{
  const char *stories;

  if (argc < 2)
    {
      fprintf (stderr, "usage: test-gguf STORIES260K.gguf [FIXTURE_DIR]\n");
      return 2;
    }
  stories = argv[1];
  fixture_dir = argc > 2 ? argv[2] : NULL;
  verbose = getenv ("TSR_TEST_VERBOSE") != NULL || fixture_dir != NULL;
  snprintf (tmpdir, sizeof tmpdir, "%s/tsr-test-gguf-XXXXXX", getenv ("TMPDIR") ? getenv ("TMPDIR") : "/tmp");
  if (mkdtemp (tmpdir) == NULL)
    {
      perror ("mkdtemp");
      return 1;
    }

  printf ("stories260K.gguf\n");
  test_stories (stories);
  printf ("f16 and bf16\n");
  test_f16 ();
  test_bf16 ();
  printf ("q8_0 and q4_0\n");
  test_quant ();
  printf ("round trips\n");
  test_round_trip (32);
  test_round_trip (64);
  test_quantised_file ();
  printf ("damaged files\n");
  test_malformed ();
  printf ("writer failures\n");
  test_writer_failures ();
  printf ("model layout\n");
  test_model_layout ();

  {
    char cmd[400];
    snprintf (cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system (cmd) != 0)
      fprintf (stderr, "could not remove %s\n", tmpdir);
  }
  printf ("%d checks, %d failed\n", n_checks, n_failed);
  return n_failed ? 1 : 0;
}
