/* SPDX-License-Identifier: GPL-3.0-or-later
 *
 * tsr-synth.c — a model file of the real dimensions with random weights,
 * for benchmarks only (tessera-engine.h, "Synthetic models").
 *
 * The tensor list follows DESIGN.md's naming table in the converter's
 * order, and the metadata goes through the converter's own writer
 * (tsr_model_meta_write), so a synthetic file differs from a converted
 * one only in its values, its vocabulary and tessera.synthetic. Values are
 * a hash of (seed, tensor, index): any thread can make any part of a
 * tensor, so the work splits freely and the bytes do not depend on it.
 */
#include "tsr-convert.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tsr-error.h"
#include "tsr-threads.h"

#define SYNTH_VOCAB_MIN (3 + 256 + 2)

typedef enum {
  FILL_MATRIX,   /* ±√(3/ne[0]) */
  FILL_ONES,     /* norm weights */
  FILL_SMALL,    /* biases, embeddings added to activations, GN tokens: ±0.02 */
} Fill;

typedef enum {
  TYPE_CHOSEN,   /* the chosen type (f32 when rows are not whole blocks) */
  TYPE_PATCH,    /* f16/bf16 when chosen, else f32 (rows of 14 are no blocks) */
  TYPE_F32,
} TypeRule;

typedef struct {
  char     name[TSR_GGUF_NAME_MAX + 1];
  TsrDType type;
  uint32_t n_dims;
  int64_t  ne[TSR_GGUF_MAX_DIMS];
  Fill     fill;
  uint64_t n_values, bytes;
} Spec;

typedef struct {
  const TsrSynthParams *p;
  TsrError             *err;
  Spec                 *specs;
  size_t                n_specs, cap_specs;
  TsrStatus             st;
} Plan;

static uint64_t
splitmix64 (uint64_t x)
{
  x += 0x9E3779B97F4A7C15u;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9u;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBu;
  return x ^ (x >> 31);
}

/* Adds one tensor; the first failure sticks in plan->st, so the long list
 * below needs no checks of its own. */
static void
add (Plan *pl, Fill fill, TypeRule rule, uint32_t n_dims, const int64_t *ne, const char *fmt, ...)
  __attribute__ ((format (printf, 6, 7)));

static void
add (Plan *pl, Fill fill, TypeRule rule, uint32_t n_dims, const int64_t *ne, const char *fmt, ...)
{
  Spec *s;
  va_list ap;
  uint64_t row_bytes;
  TsrDType t = pl->p->type;

  if (pl->st != TSR_OK)
    return;
  if (pl->n_specs == pl->cap_specs)
    {
      size_t cap = pl->cap_specs ? 2 * pl->cap_specs : 256;
      Spec *p = realloc (pl->specs, cap * sizeof *p);
      if (p == NULL)
        {
          pl->st = tsr_error_set (pl->err, TSR_ENOMEM, "out of memory planning the synthetic model");
          return;
        }
      pl->specs = p;
      pl->cap_specs = cap;
    }
  s = &pl->specs[pl->n_specs];
  memset (s, 0, sizeof *s);
  va_start (ap, fmt);
  vsnprintf (s->name, sizeof s->name, fmt, ap);
  va_end (ap);
  if (rule == TYPE_F32)
    t = TSR_DTYPE_F32;
  else if (rule == TYPE_PATCH && t != TSR_DTYPE_F16 && t != TSR_DTYPE_BF16)
    t = TSR_DTYPE_F32;
  /* The converter's fallback for rows that are not whole blocks. */
  if ((uint64_t) ne[0] % tsr_dtype_block_values (t) != 0)
    t = TSR_DTYPE_F32;
  s->type = t;
  s->fill = fill;
  s->n_dims = n_dims;
  s->n_values = 1;
  for (uint32_t d = 0; d < TSR_GGUF_MAX_DIMS; d++)
    {
      s->ne[d] = d < n_dims ? ne[d] : 1;
      s->n_values *= (uint64_t) s->ne[d];
    }
  if ((pl->st = tsr_dtype_row_bytes (t, (uint64_t) ne[0], &row_bytes, pl->err)) != TSR_OK)
    return;
  s->bytes = row_bytes * (s->n_values / (uint64_t) ne[0]);
  pl->n_specs++;
}

/* A list of sizes as (count, array), so each line below reads like the table. */
#define NE(...) (uint32_t) (sizeof ((int64_t[]) { __VA_ARGS__ }) / sizeof (int64_t)), \
                (const int64_t[]) { __VA_ARGS__ }
#define ADD(fill, rule, ...) add (pl, fill, rule, __VA_ARGS__)

/* DESIGN.md's naming table, in the converter's order. */
static void
plan_all (Plan *pl)
{
  const TsrSynthParams *p = pl->p;
  int64_t E = p->n_embd, F = p->n_ff, V = p->n_vocab, hd = p->n_embd / p->n_head;
  int64_t Q = p->n_head * hd, KV = p->n_head_kv * hd;
  int64_t rq = p->plora_rank[TSR_PLORA_ATTN_QKV], ro = p->plora_rank[TSR_PLORA_ATTN_OUTPUT];
  int64_t rg = p->plora_rank[TSR_PLORA_FFN_GATE], ru = p->plora_rank[TSR_PLORA_FFN_UP];
  int64_t rd = p->plora_rank[TSR_PLORA_FFN_DOWN];
  int64_t VE = p->v_n_embd, VF = p->v_n_ff, M = 4 * VE;
  int64_t P = TSR_CONVERT_VIT_PATCH, S = TSR_CONVERT_VIT_IMAGE;

  ADD (FILL_MATRIX, TYPE_CHOSEN, NE (E, V), "token_embd.weight");
  for (uint32_t n = 0; n < p->n_layer; n++)
    {
      ADD (FILL_ONES, TYPE_F32, NE (E), "blk.%u.attn_norm.weight", n);
      ADD (FILL_MATRIX, TYPE_CHOSEN, NE (E, Q), "blk.%u.attn_q.weight", n);
      ADD (FILL_MATRIX, TYPE_CHOSEN, NE (E, KV), "blk.%u.attn_k.weight", n);
      ADD (FILL_MATRIX, TYPE_CHOSEN, NE (E, KV), "blk.%u.attn_v.weight", n);
      ADD (FILL_MATRIX, TYPE_CHOSEN, NE (Q, E), "blk.%u.attn_output.weight", n);
      ADD (FILL_ONES, TYPE_F32, NE (E), "blk.%u.ffn_norm.weight", n);
      ADD (FILL_MATRIX, TYPE_CHOSEN, NE (E, F), "blk.%u.ffn_gate.weight", n);
      ADD (FILL_MATRIX, TYPE_CHOSEN, NE (E, F), "blk.%u.ffn_up.weight", n);
      ADD (FILL_MATRIX, TYPE_CHOSEN, NE (F, E), "blk.%u.ffn_down.weight", n);
      ADD (FILL_MATRIX, TYPE_F32, NE (E, rq), "blk.%u.attn_qkv.lora_a.weight", n);
      ADD (FILL_MATRIX, TYPE_F32, NE (rq, Q), "blk.%u.attn_q.lora_b.weight", n);
      ADD (FILL_MATRIX, TYPE_F32, NE (rq, KV), "blk.%u.attn_k.lora_b.weight", n);
      ADD (FILL_MATRIX, TYPE_F32, NE (rq, KV), "blk.%u.attn_v.lora_b.weight", n);
      ADD (FILL_MATRIX, TYPE_F32, NE (Q, ro), "blk.%u.attn_output.lora_a.weight", n);
      ADD (FILL_MATRIX, TYPE_F32, NE (ro, E), "blk.%u.attn_output.lora_b.weight", n);
      ADD (FILL_MATRIX, TYPE_F32, NE (E, rg), "blk.%u.ffn_gate.lora_a.weight", n);
      ADD (FILL_MATRIX, TYPE_F32, NE (rg, F), "blk.%u.ffn_gate.lora_b.weight", n);
      ADD (FILL_MATRIX, TYPE_F32, NE (E, ru), "blk.%u.ffn_up.lora_a.weight", n);
      ADD (FILL_MATRIX, TYPE_F32, NE (ru, F), "blk.%u.ffn_up.lora_b.weight", n);
      ADD (FILL_MATRIX, TYPE_F32, NE (F, rd), "blk.%u.ffn_down.lora_a.weight", n);
      ADD (FILL_MATRIX, TYPE_F32, NE (rd, E), "blk.%u.ffn_down.lora_b.weight", n);
    }
  ADD (FILL_ONES, TYPE_F32, NE (E), "output_norm.weight");
  ADD (FILL_MATRIX, TYPE_CHOSEN, NE (E, V), "output.weight");

  ADD (FILL_MATRIX, TYPE_PATCH, NE (P, P, 3, VE), "v.patch_embd.weight");
  ADD (FILL_SMALL, TYPE_F32, NE (VE), "v.class_embd.weight");
  ADD (FILL_SMALL, TYPE_F32, NE (VE, (S / P) * (S / P) + 1), "v.pos_embd.weight");
  ADD (FILL_ONES, TYPE_F32, NE (VE), "v.pre_ln.weight");
  ADD (FILL_SMALL, TYPE_F32, NE (VE), "v.pre_ln.bias");
  for (uint32_t m = 0; m < p->v_n_layer; m++)
    {
      static const char *const proj[4] = { "attn_q", "attn_k", "attn_v", "attn_out" };
      for (int k = 0; k < 4; k++)
        {
          ADD (FILL_MATRIX, TYPE_CHOSEN, NE (VE, VE), "v.blk.%u.%s.weight", m, proj[k]);
          ADD (FILL_SMALL, TYPE_F32, NE (VE), "v.blk.%u.%s.bias", m, proj[k]);
        }
      ADD (FILL_ONES, TYPE_F32, NE (VE), "v.blk.%u.ln1.weight", m);
      ADD (FILL_SMALL, TYPE_F32, NE (VE), "v.blk.%u.ln1.bias", m);
      ADD (FILL_ONES, TYPE_F32, NE (VE), "v.blk.%u.ln2.weight", m);
      ADD (FILL_SMALL, TYPE_F32, NE (VE), "v.blk.%u.ln2.bias", m);
      ADD (FILL_MATRIX, TYPE_CHOSEN, NE (VE, VF), "v.blk.%u.ffn_up.weight", m);
      ADD (FILL_SMALL, TYPE_F32, NE (VF), "v.blk.%u.ffn_up.bias", m);
      ADD (FILL_MATRIX, TYPE_CHOSEN, NE (VF, VE), "v.blk.%u.ffn_down.weight", m);
      ADD (FILL_SMALL, TYPE_F32, NE (VE), "v.blk.%u.ffn_down.bias", m);
    }
  ADD (FILL_MATRIX, TYPE_CHOSEN, NE (M, E), "mm.0.weight");
  ADD (FILL_SMALL, TYPE_F32, NE (E), "mm.0.bias");
  ADD (FILL_MATRIX, TYPE_CHOSEN, NE (E, E), "mm.2.weight");
  ADD (FILL_SMALL, TYPE_F32, NE (E), "mm.2.bias");
  ADD (FILL_SMALL, TYPE_F32, NE (M), "mm.glb_gn.weight");
  ADD (FILL_SMALL, TYPE_F32, NE (M), "mm.sub_gn.weight");
}

#undef ADD
#undef NE

/* ==== The vocabulary ======================================================= */

typedef struct {
  const char **pieces;
  size_t      *lens;
  float       *scores;
  int32_t     *types;
  char        *text;
} Vocab;

static void
vocab_free (Vocab *v)
{
  free (v->pieces);
  free (v->lens);
  free (v->scores);
  free (v->types);
  free (v->text);
}

/* Byte pieces make every text encodable, so the file's tokenizer loads and
 * works like the real one; filler pieces are unique, so no two ids fight
 * over a string. */
static TsrStatus
vocab_make (Vocab *v, size_t n, TsrError *err)
{
  static const char *const fixed[3] = { "<unk>", "<s>", "</s>" };
  static const int32_t fixed_types[3] = { TSR_PIECE_UNKNOWN, TSR_PIECE_CONTROL, TSR_PIECE_CONTROL };
  static const char *const chat[2] = { "[UNUSED_TOKEN_145]", "[UNUSED_TOKEN_146]" };
  size_t at = 0, cap = n * 16;
  char *t;

  memset (v, 0, sizeof *v);
  v->pieces = malloc (n * sizeof *v->pieces);
  v->lens = malloc (n * sizeof *v->lens);
  v->scores = malloc (n * sizeof *v->scores);
  v->types = malloc (n * sizeof *v->types);
  v->text = t = malloc (cap);
  if (v->pieces == NULL || v->lens == NULL || v->scores == NULL || v->types == NULL || t == NULL)
    {
      vocab_free (v);
      return tsr_error_set (err, TSR_ENOMEM, "out of memory making the synthetic vocabulary");
    }
  for (size_t i = 0; i < n; i++)
    {
      char *s = t + at;
      int len;
      if (i < 3)
        {
          len = snprintf (s, cap - at, "%s", fixed[i]);
          v->types[i] = fixed_types[i];
          v->scores[i] = 0;
        }
      else if (i < 3 + 256)
        {
          len = snprintf (s, cap - at, "<0x%02X>", (unsigned) (i - 3));
          v->types[i] = TSR_PIECE_BYTE;
          v->scores[i] = 0;
        }
      else if (i >= n - 2)
        {
          len = snprintf (s, cap - at, "%s", chat[i - (n - 2)]);
          v->types[i] = TSR_PIECE_USER_DEFINED;
          v->scores[i] = 0;
        }
      else
        {
          /* "▁" (U+2581) and a number: a word piece as SentencePiece spells it. */
          len = snprintf (s, cap - at, "\xe2\x96\x81t%zu", i);
          v->types[i] = TSR_PIECE_NORMAL;
          v->scores[i] = -(float) i;
        }
      v->lens[i] = (size_t) len;
      at += (size_t) len + 1;
    }
  /* Pointers last: the arena no longer moves. */
  at = 0;
  for (size_t i = 0; i < n; i++)
    {
      v->pieces[i] = t + at;
      at += v->lens[i] + 1;
    }
  return TSR_OK;
}

/* ==== Streaming the data =================================================== */

typedef struct {
  const Spec *s;
  uint64_t    key;
  float       scale;
  uint64_t    first, count;   /* values of this chunk */
  float      *f32;
  unsigned char *out;
  TsrStatus  *st;             /* one per thread */
  TsrError   *errs;
} Job;

static void
fill_job (void *ctx, int ith, int nth)
{
  Job *j = ctx;
  uint64_t blk = tsr_dtype_block_values (j->s->type);
  uint64_t blocks = j->count / blk;
  uint64_t b0 = blocks * (uint64_t) ith / (uint64_t) nth, b1 = blocks * (uint64_t) (ith + 1) / (uint64_t) nth;
  uint64_t i0 = b0 * blk, i1 = b1 * blk;
  size_t bb = tsr_dtype_block_bytes (j->s->type);

  for (uint64_t i = i0; i < i1; i++)
    {
      float x;
      if (j->s->fill == FILL_ONES)
        x = 1.0f;
      else
        {
          uint64_t h = splitmix64 (j->key + j->first + i);
          /* Top 24 bits: a uniform float in [−1, 1) with every value exact. */
          x = ((float) (h >> 40) * (1.0f / 8388608.0f) - 1.0f) * j->scale;
        }
      j->f32[i] = x;
    }
  if (i1 > i0)
    j->st[ith] = tsr_quantize_row (j->s->type, j->f32 + i0, j->out + b0 * bb, (size_t) (i1 - i0),
                                   &j->errs[ith]);
}

static TsrStatus
stream (Plan *pl, TsrGgufWriter *w, TsrPool *pool, TsrConvertProgress *prog)
{
  const TsrSynthParams *p = pl->p;
  const uint64_t chunk = TSR_CONVERT_CHUNK_VALUES;
  float *f32 = malloc (chunk * sizeof (float));
  unsigned char *out = malloc (chunk * sizeof (float));
  Job *j = calloc (1, sizeof *j);
  int nth = tsr_pool_size (pool);
  TsrStatus *sts = calloc ((size_t) nth, sizeof *sts);
  TsrError *errs = calloc ((size_t) nth, sizeof *errs);
  TsrStatus st = TSR_OK;
  uint64_t reported = 0;

  if (f32 == NULL || out == NULL || j == NULL || sts == NULL || errs == NULL)
    {
      st = tsr_error_set (pl->err, TSR_ENOMEM, "out of memory for the synthetic model's buffers");
      goto out;
    }
  for (size_t t = 0; t < pl->n_specs && st == TSR_OK; t++)
    {
      const Spec *s = &pl->specs[t];
      prog->tensor = s->name;
      j->s = s;
      j->key = splitmix64 (p->seed ^ splitmix64 ((uint64_t) t + 1));
      j->scale = s->fill == FILL_SMALL ? 0.02f : (float) sqrt (3.0 / (double) s->ne[0]);
      j->f32 = f32;
      j->out = out;
      j->st = sts;
      j->errs = errs;
      for (uint64_t first = 0; first < s->n_values; first += chunk)
        {
          uint64_t rb;
          j->first = first;
          j->count = s->n_values - first < chunk ? s->n_values - first : chunk;
          memset (sts, 0, (size_t) nth * sizeof *sts);
          if (p->should_abort && p->should_abort (p->user_data))
            {
              st = tsr_error_set (pl->err, TSR_ECANCELLED, "stopped; no model file was written");
              break;
            }
          tsr_pool_run (pool, fill_job, j);
          for (int k = 0; k < nth && st == TSR_OK; k++)
            if (sts[k] != TSR_OK)
              st = tsr_error_set (pl->err, sts[k], "%s: %s", s->name, errs[k].message);
          if (st != TSR_OK)
            break;
          if ((st = tsr_dtype_row_bytes (s->type, j->count, &rb, pl->err)) != TSR_OK ||
              (st = tsr_gguf_writer_append (w, out, (size_t) rb, pl->err)) != TSR_OK)
            break;
          prog->bytes_done += rb;
          if (p->progress && prog->bytes_done - reported >= ((uint64_t) 64 << 20))
            {
              reported = prog->bytes_done;
              p->progress (prog, p->user_data);
            }
        }
      prog->tensors_done++;
    }
out:
  free (f32);
  free (out);
  free (j);
  free (sts);
  free (errs);
  return st;
}

/* ==== The entry points ===================================================== */

void
tsr_synth_params_init (TsrSynthParams *params)
{
  memset (params, 0, sizeof *params);
  params->type = TSR_DTYPE_Q8_0;
  params->n_embd = 4096;
  params->n_layer = 32;
  params->n_ff = 14336;
  params->n_head = 32;
  params->n_head_kv = 8;
  params->n_vocab = 92544;
  params->plora_rank[TSR_PLORA_ATTN_QKV] = 8;
  for (int k = TSR_PLORA_ATTN_OUTPUT; k < TSR_PLORA_COUNT; k++)
    params->plora_rank[k] = 256;
  params->v_n_embd = TSR_CONVERT_VIT_HIDDEN;
  params->v_n_layer = TSR_CONVERT_VIT_LAYERS;
  params->v_n_ff = TSR_CONVERT_VIT_FFN;
  params->v_n_head = TSR_CONVERT_VIT_HEADS;
  params->seed = 1234;
}

static TsrStatus
check_params (const TsrSynthParams *p, TsrError *err)
{
  if (!tsr_dtype_is_valid ((int) p->type))
    return tsr_error_set (err, TSR_EINVAL, "type %d is not one Tessera writes; use f32, f16, bf16, q8_0 "
                          "or q4_0", (int) p->type);
  if (p->n_embd == 0 || p->n_layer == 0 || p->n_ff == 0 || p->n_head == 0 || p->n_head_kv == 0 ||
      p->v_n_embd == 0 || p->v_n_ff == 0 || p->v_n_head == 0)
    return tsr_error_set (err, TSR_EINVAL, "every width, layer and head count must be at least 1 "
                          "(only the vision tower may have 0 layers)");
  if (p->n_embd > 65536 || p->n_ff > 262144 || p->n_layer > 256 || p->v_n_layer > 256 ||
      p->n_vocab > 1048576 || p->v_n_embd > 16384 || p->v_n_ff > 65536)
    return tsr_error_set (err, TSR_EINVAL, "the dimensions are beyond any model Tessera runs");
  if (p->n_embd % p->n_head != 0 || (p->n_embd / p->n_head) % 2 != 0)
    return tsr_error_set (err, TSR_EINVAL, "%u heads do not split a width of %u into even head sizes",
                          p->n_head, p->n_embd);
  if (p->n_head % p->n_head_kv != 0)
    return tsr_error_set (err, TSR_EINVAL, "%u key/value heads do not divide %u query heads",
                          p->n_head_kv, p->n_head);
  if (p->v_n_embd % p->v_n_head != 0)
    return tsr_error_set (err, TSR_EINVAL, "%u vision heads do not divide a vision width of %u",
                          p->v_n_head, p->v_n_embd);
  if (p->n_vocab < SYNTH_VOCAB_MIN)
    return tsr_error_set (err, TSR_EINVAL, "a vocabulary of %u pieces cannot hold the 3 special, 256 "
                          "byte and 2 chat pieces; use at least %d", p->n_vocab, SYNTH_VOCAB_MIN);
  for (int k = 0; k < TSR_PLORA_COUNT; k++)
    if (p->plora_rank[k] == 0 || p->plora_rank[k] > 4096)
      return tsr_error_set (err, TSR_EINVAL, "the PLoRA rank of %s must be 1 to 4096", tsr_plora_name (k));
  if (p->n_threads < 0 || p->n_threads > 1024)
    return tsr_error_set (err, TSR_EINVAL, "%d threads is out of range; use 1 to 1024, or 0 for one per "
                          "core", p->n_threads);
  return TSR_OK;
}

TsrStatus
tsr_synth (const char *out_gguf, const TsrSynthParams *params, TsrError *err)
{
  TsrSynthParams defaults;
  const TsrSynthParams *p;
  Plan pl;
  Vocab vocab;
  TsrVocab tv;
  TsrModelMeta m;
  TsrGgufWriter *w = NULL;
  TsrPool *pool = NULL;
  TsrConvertProgress prog;
  TsrStatus st;
  char name[128];

  tsr_synth_params_init (&defaults);
  p = params ? params : &defaults;
  if (out_gguf == NULL || out_gguf[0] == '\0')
    return tsr_error_set (err, TSR_EINVAL, "tsr_synth needs an output path");
  if ((st = check_params (p, err)) != TSR_OK)
    return st;

  memset (&pl, 0, sizeof pl);
  memset (&prog, 0, sizeof prog);
  memset (&vocab, 0, sizeof vocab);
  pl.p = p;
  pl.err = err;
  plan_all (&pl);
  if ((st = pl.st) != TSR_OK || (st = vocab_make (&vocab, p->n_vocab, err)) != TSR_OK)
    goto out;

  memset (&tv, 0, sizeof tv);
  tv.n = p->n_vocab;
  tv.pieces = vocab.pieces;
  tv.lens = vocab.lens;
  tv.scores = vocab.scores;
  tv.types = vocab.types;
  tv.bos_id = 1;
  tv.eos_id = 2;
  tv.add_dummy_prefix = 0;   /* InternLM2's tokenizer.model says so */

  memset (&m, 0, sizeof m);
  snprintf (name, sizeof name, "InternLM-XComposer2-4KHD-7B-shaped (synthetic: random weights, seed %llu)",
            (unsigned long long) p->seed);
  m.name = name;
  m.type = p->type;
  for (size_t i = 0; i < pl.n_specs; i++)
    m.quantised |= tsr_dtype_block_values (pl.specs[i].type) > 1;
  /* The real config's max_position_embeddings and max_length (model.md §1.2). */
  m.n_ctx = 32768;
  m.max_input = 16384;
  m.n_embd = p->n_embd;
  m.n_layer = p->n_layer;
  m.n_ff = p->n_ff;
  m.n_head = p->n_head;
  m.n_head_kv = p->n_head_kv;
  m.rms_eps = 1e-5f;
  m.rope_freq_base = 1e6f;
  for (int k = 0; k < TSR_PLORA_COUNT; k++)
    {
      double alpha = k == TSR_PLORA_ATTN_QKV ? TSR_CONVERT_ALPHA_WQKV : TSR_CONVERT_ALPHA_OTHER;
      m.plora_rank[k] = p->plora_rank[k];
      m.plora_scale[k] = (float) (alpha / (double) p->plora_rank[k]);
    }
  m.v_image_size = TSR_CONVERT_VIT_IMAGE;
  m.v_patch_size = TSR_CONVERT_VIT_PATCH;
  m.v_n_embd = p->v_n_embd;
  m.v_n_layer = p->v_n_layer;
  m.v_n_ff = p->v_n_ff;
  m.v_n_head = p->v_n_head;
  m.v_eps = (float) TSR_CONVERT_VIT_EPS;
  m.vocab = &tv;
  m.unk_id = 0;
  m.pad_id = 2;
  m.im_end_id = (int32_t) p->n_vocab - 2;
  m.im_start_id = (int32_t) p->n_vocab - 1;
  m.synthetic = 1;

  if ((st = tsr_gguf_writer_new (&w, err)) != TSR_OK || (st = tsr_model_meta_write (w, &m, err)) != TSR_OK)
    goto out;
  for (size_t i = 0; i < pl.n_specs; i++)
    {
      const Spec *s = &pl.specs[i];
      if ((st = tsr_gguf_writer_add_tensor (w, s->name, s->type, s->n_dims, s->ne, err)) != TSR_OK)
        goto out;
      prog.bytes_total += s->bytes;
    }
  prog.tensors_total = pl.n_specs;
  if ((st = tsr_pool_new (p->n_threads, &pool, err)) != TSR_OK ||
      (st = tsr_gguf_writer_open (w, out_gguf, err)) != TSR_OK)
    goto out;
  prog.stage = "writing";
  if (p->progress)
    p->progress (&prog, p->user_data);
  if ((st = stream (&pl, w, pool, &prog)) != TSR_OK)
    goto out;
  prog.stage = "finishing";
  prog.tensor = NULL;
  if (p->progress)
    p->progress (&prog, p->user_data);
  if ((st = tsr_gguf_writer_finish (w, err)) != TSR_OK)
    goto out;
  prog.stage = "done";
  if (p->progress)
    p->progress (&prog, p->user_data);

out:
  /* An unfinished writer removes OUT.part. */
  tsr_gguf_writer_free (w);
  tsr_pool_free (pool);
  vocab_free (&vocab);
  free (pl.specs);
  return st;
}
