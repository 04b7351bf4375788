/* SPDX-License-Identifier: GPL-3.0-or-later
 *
 * fuzz-gguf.c — libFuzzer target for the GGUF reader (engine/tsr-gguf.c).
 *
 * Every input goes through tsr_gguf_open_memory; when it opens, everything
 * the reader hands out is used the way a loader would: each metadata entry
 * through the typed getters, each string array walked, each tensor's first
 * and last byte read and its first row dequantised, the model-layout check
 * run. Under AddressSanitizer and UBSan any read outside the input, any
 * overflow or a failure without a message is a finding.
 *
 * Built with clang only (meson does it when clang and libFuzzer are
 * present); `meson test --suite fuzz` runs it briefly. A longer run:
 *
 *   mkdir -p /tmp/gguf-corpus
 *   build/tests/fuzz-gguf /tmp/gguf-corpus tests/fixtures/gguf ../shared/data \
 *       -max_total_time=3600 -max_len=65536 -jobs=2 -workers=2
 *
 * (The first folder receives new inputs; the others are read-only seeds.)
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tessera-engine.h"

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

static volatile unsigned sink;

static void
require_message (TsrStatus st, const TsrError *err)
{
  /* A refusal without a message is a bug: the user would see nothing. */
  if (st != TSR_OK && (err->status != st || err->message[0] == '\0'))
    abort ();
}

static void
use_kv (const TsrGguf *g, const TsrGgufKV *kv)
{
  TsrError err;
  TsrStatus st;
  union { uint32_t u32; int32_t i32; uint64_t u64; int64_t i64; float f; int b; TsrGgufStr s; } v;

  if (tsr_gguf_find_kv (g, kv->key) != kv)
    abort ();
  st = tsr_gguf_get_u32 (g, kv->key, &v.u32, &err);  require_message (st, &err);
  st = tsr_gguf_get_i32 (g, kv->key, &v.i32, &err);  require_message (st, &err);
  st = tsr_gguf_get_u64 (g, kv->key, &v.u64, &err);  require_message (st, &err);
  st = tsr_gguf_get_i64 (g, kv->key, &v.i64, &err);  require_message (st, &err);
  st = tsr_gguf_get_f32 (g, kv->key, &v.f, &err);    require_message (st, &err);
  st = tsr_gguf_get_bool (g, kv->key, &v.b, &err);   require_message (st, &err);
  st = tsr_gguf_get_str (g, kv->key, &v.s, &err);    require_message (st, &err);
  if (st == TSR_OK && v.s.len)
    sink += (unsigned char) v.s.ptr[v.s.len - 1];

  if (kv->type == TSR_GGUF_ARRAY)
    {
      const TsrGgufStr *strs;
      uint64_t n;
      st = tsr_gguf_get_arr_str (g, kv->key, &strs, &n, &err);
      require_message (st, &err);
      if (st == TSR_OK)
        for (uint64_t k = 0; k < n; k++)
          if (strs[k].len)
            sink += (unsigned char) strs[k].ptr[0] + (unsigned char) strs[k].ptr[strs[k].len - 1];
      if (kv->n <= 4096)
        {
          float *f = malloc ((size_t) (kv->n ? kv->n : 1) * sizeof *f);
          int32_t *i = malloc ((size_t) (kv->n ? kv->n : 1) * sizeof *i);
          if (f && i)
            {
              st = tsr_gguf_get_arr_f32 (g, kv->key, f, kv->n, &err);
              require_message (st, &err);
              st = tsr_gguf_get_arr_i32 (g, kv->key, i, kv->n, &err);
              require_message (st, &err);
            }
          free (f);
          free (i);
        }
    }
}

static void
use_tensor (const TsrGguf *g, const TsrGgufTensor *t)
{
  const unsigned char *p = t->data;
  float row[256];
  TsrError err;

  if (tsr_gguf_find_tensor (g, t->name) != t)
    abort ();
  if (t->offset + t->size > tsr_gguf_size (g) || t->offset < tsr_gguf_data_offset (g))
    abort ();
  if (t->size)
    sink += p[0] + p[t->size - 1];
  /* The first row, or its first 256 values. */
  if (t->ne[0] > 0 && t->n_elements > 0)
    {
      size_t n = t->ne[0] < 256 ? (size_t) t->ne[0] : 256;
      n -= n % tsr_dtype_block_values (t->type);
      if (n && tsr_dequantize_row (t->type, t->data, row, n, &err) != TSR_OK)
        abort ();
    }
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  TsrGguf *g = NULL;
  TsrError err;
  TsrStatus st;

  tsr_error_clear (&err);
  st = tsr_gguf_open_memory (data, size, &g, &err);
  require_message (st, &err);
  if (st != TSR_OK)
    {
      if (g != NULL)
        abort ();
      return 0;
    }
  for (size_t i = 0; i < tsr_gguf_n_kv (g); i++)
    use_kv (g, tsr_gguf_kv (g, i));
  for (size_t i = 0; i < tsr_gguf_n_tensors (g); i++)
    use_tensor (g, tsr_gguf_tensor (g, i));
  {
    TsrGgufModelInfo mi;
    st = tsr_gguf_model_info (g, &mi, &err);
    require_message (st, &err);
  }
  tsr_gguf_close (g);
  return 0;
}
