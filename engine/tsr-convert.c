/* SPDX-License-Identifier: GPL-3.0-or-later
 *
 * tsr-convert.c — a Hugging Face InternLM-XComposer2-4KHD folder → the GGUF
 * file Tessera runs (tessera-engine.h, "Conversion"; the names, shapes and
 * keys are DESIGN.md's tables, which this file follows to the letter).
 *
 * Plan, then stream. Everything about the output — every tensor's name,
 * type and shape, and all metadata — follows from config.json, the
 * tokenizer and the checkpoint's index, so it is all decided and checked
 * before the output file exists: a bad download fails in a second, not
 * after an hour, and leaves nothing behind. Then the tensors are written in
 * the planned order, each converted chunk by chunk from the mapped
 * checkpoint. The GGUF writer wants data in declaration order and the
 * split of the fused wqkv makes three outputs of one source, so the plan is
 * not the checkpoint's order: the outputs follow DESIGN.md's table, and a
 * source is simply read where the plan needs it. Only the pages of the one
 * source in use are resident, and those are handed back as soon as they
 * have been converted.
 */
#include "tsr-convert.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cjson/cJSON.h>

#include "tsr-checkpoint.h"
#include "tsr-error.h"
#include "tsr-threads.h"

#define CONFIG_JSON_MAX ((size_t) 1 << 20)
#define PATH_BUF 4096

/* ==== The plan =========================================================== */

/* How output rows are picked from the source's rows (model.md §2). */
typedef enum {
  MAP_PLAIN,   /* all of it, in order */
  MAP_Q,       /* rows of slots 0..q_per_kv−1 of every kv group */
  MAP_K,       /* slot q_per_kv */
  MAP_V,       /* slot q_per_kv + 1 */
} RowMap;

typedef enum {
  KIND_MATRIX, /* takes the chosen type */
  KIND_PATCH,  /* rows of P values: f16/bf16 when chosen, else f32 */
  KIND_F32,    /* always f32 */
} Kind;

typedef struct {
  char                 name[TSR_GGUF_NAME_MAX + 1];
  const TsrCkptTensor *src;
  TsrDType             type;
  uint32_t             n_dims;
  int64_t              ne[TSR_GGUF_MAX_DIMS];
  RowMap               map;
  int64_t              row_len;     /* values per source/output row */
  int64_t              q_per_kv, hd;
  uint64_t             n_values;    /* in the output */
  uint64_t             bytes;
  int                  last_use;    /* no later output reads src */
} Out;

typedef struct {
  int64_t E, L, H, Hkv, F, V, hd, n_ctx, max_input, pad_id;
  double  rms_eps, rope_theta;
  int     tied;
  int64_t VE, VL, VH, VF, P, S;
  double  v_eps;
  double  alpha[TSR_PLORA_COUNT];
  int64_t rank[TSR_PLORA_COUNT];
} Hparams;

/* A kind of skipped tensor, names with their numbers replaced by N. */
typedef struct {
  char   *pattern;
  size_t  count;
} Skipped;

typedef struct {
  const TsrConvertParams *p;
  TsrError               *err;
  const char             *dir;
  char                    config_path[PATH_BUF];
  Hparams                 hp;
  TsrCheckpoint          *ck;
  TsrTokenizer           *tok;
  int32_t                 im_start, im_end, unk_id;
  TsrDType                type;
  Out                    *outs;
  size_t                  n_outs, cap_outs;
  uint64_t                bytes_total;
  TsrConvertProgress      prog;
} Conv;

static void
note (Conv *c, const char *fmt, ...) __attribute__ ((format (printf, 2, 3)));

static void
note (Conv *c, const char *fmt, ...)
{
  char msg[TSR_ERROR_MESSAGE_MAX];
  va_list ap;
  if (c->p->note == NULL)
    return;
  va_start (ap, fmt);
  vsnprintf (msg, sizeof msg, fmt, ap);
  va_end (ap);
  c->p->note (msg, c->p->user_data);
}

static void
report (Conv *c, const char *stage, const char *tensor)
{
  c->prog.stage = stage;
  c->prog.tensor = tensor;
  if (c->p->progress)
    c->p->progress (&c->prog, c->p->user_data);
}

static TsrStatus
check_abort (Conv *c)
{
  if (c->p->should_abort && c->p->should_abort (c->p->user_data))
    return tsr_error_set (c->err, TSR_ECANCELLED, "the conversion was stopped; no model file was written");
  return TSR_OK;
}

/* ==== config.json ======================================================== */

/* A whole number in [min, max]. A missing key gives *out = dflt when not
 * required. */
static TsrStatus
cfg_int (Conv *c, const cJSON *obj, const char *where, const char *key, int required, int64_t dflt,
         int64_t min, int64_t max, int64_t *out)
{
  const cJSON *v = cJSON_GetObjectItemCaseSensitive (obj, key);
  if (v == NULL || cJSON_IsNull (v))
    {
      if (required)
        return tsr_error_set (c->err, TSR_EFORMAT, "%s lacks \"%s%s\"; an InternLM-XComposer2-4KHD "
                              "config.json has it", c->config_path, where, key);
      *out = dflt;
      return TSR_OK;
    }
  if (!cJSON_IsNumber (v) || !isfinite (v->valuedouble) || v->valuedouble != floor (v->valuedouble) ||
      v->valuedouble < (double) min || v->valuedouble > (double) max)
    return tsr_error_set (c->err, TSR_EFORMAT, "%s: \"%s%s\" must be a whole number from %lld to %lld",
                          c->config_path, where, key, (long long) min, (long long) max);
  *out = (int64_t) v->valuedouble;
  return TSR_OK;
}

/* A number in (0, max]. */
static TsrStatus
cfg_pos (Conv *c, const cJSON *obj, const char *where, const char *key, int required, double dflt,
         double max, double *out)
{
  const cJSON *v = cJSON_GetObjectItemCaseSensitive (obj, key);
  if (v == NULL || cJSON_IsNull (v))
    {
      if (required)
        return tsr_error_set (c->err, TSR_EFORMAT, "%s lacks \"%s%s\"; an InternLM-XComposer2-4KHD "
                              "config.json has it", c->config_path, where, key);
      *out = dflt;
      return TSR_OK;
    }
  if (!cJSON_IsNumber (v) || !isfinite (v->valuedouble) || v->valuedouble <= 0 || v->valuedouble > max)
    return tsr_error_set (c->err, TSR_EFORMAT, "%s: \"%s%s\" must be a number above 0 and at most %g",
                          c->config_path, where, key, max);
  *out = v->valuedouble;
  return TSR_OK;
}

static TsrStatus
read_config (Conv *c)
{
  Hparams *hp = &c->hp;
  cJSON *root = NULL;
  const cJSON *vc, *pa, *tie;
  int64_t max_pos;
  TsrStatus st;
  static const char *const alpha_keys[TSR_PLORA_COUNT] = { "wqkv", "wo", "w1", "w3", "w2" };
  /* Sizes far beyond any real model, low enough that no product of them
   * overflows before the checkpoint's own sizes are compared. */
  const int64_t DIM_MAX = 1 << 20, LAYER_MAX = 4096, VOCAB_MAX = 1 << 24;

  if ((st = tsr_json_load_file (c->config_path, CONFIG_JSON_MAX, &root, c->err)) != TSR_OK)
    return st;
  if (!cJSON_IsObject (root))
    {
      cJSON_Delete (root);
      return tsr_error_set (c->err, TSR_EFORMAT, "%s does not hold a JSON object", c->config_path);
    }

  if ((st = cfg_int (c, root, "", "hidden_size", 1, 0, 1, DIM_MAX, &hp->E)) != TSR_OK ||
      (st = cfg_int (c, root, "", "num_hidden_layers", 1, 0, 1, LAYER_MAX, &hp->L)) != TSR_OK ||
      (st = cfg_int (c, root, "", "num_attention_heads", 1, 0, 1, DIM_MAX, &hp->H)) != TSR_OK ||
      (st = cfg_int (c, root, "", "num_key_value_heads", 0, hp->H, 1, DIM_MAX, &hp->Hkv)) != TSR_OK ||
      (st = cfg_int (c, root, "", "intermediate_size", 1, 0, 1, DIM_MAX, &hp->F)) != TSR_OK ||
      (st = cfg_int (c, root, "", "vocab_size", 1, 0, 1, VOCAB_MAX, &hp->V)) != TSR_OK ||
      (st = cfg_pos (c, root, "", "rms_norm_eps", 1, 0, 1.0, &hp->rms_eps)) != TSR_OK ||
      /* InternLM2Config's own default when the file is silent. */
      (st = cfg_pos (c, root, "", "rope_theta", 0, 10000.0, 1e12, &hp->rope_theta)) != TSR_OK ||
      (st = cfg_int (c, root, "", "max_length", 0, 0, 1, UINT32_MAX, &hp->max_input)) != TSR_OK ||
      (st = cfg_int (c, root, "", "max_position_embeddings", 0, 0, 1, UINT32_MAX, &max_pos)) != TSR_OK ||
      (st = cfg_int (c, root, "", "pad_token_id", 0, -1, -1, VOCAB_MAX - 1, &hp->pad_id)) != TSR_OK)
    goto out;
  if (max_pos == 0 && hp->max_input == 0)
    {
      st = tsr_error_set (c->err, TSR_EFORMAT, "%s has neither \"max_position_embeddings\" nor "
                          "\"max_length\"; the context length must come from one of them", c->config_path);
      goto out;
    }
  hp->n_ctx = max_pos ? max_pos : hp->max_input;
  if (hp->E % hp->H != 0)
    {
      st = tsr_error_set (c->err, TSR_EFORMAT, "%s: \"hidden_size\" %lld is not a multiple of "
                          "\"num_attention_heads\" %lld", c->config_path, (long long) hp->E, (long long) hp->H);
      goto out;
    }
  if (hp->H % hp->Hkv != 0)
    {
      st = tsr_error_set (c->err, TSR_EFORMAT, "%s: %lld \"num_attention_heads\" cannot be shared "
                          "by %lld \"num_key_value_heads\"", c->config_path, (long long) hp->H,
                          (long long) hp->Hkv);
      goto out;
    }
  hp->hd = hp->E / hp->H;
  tie = cJSON_GetObjectItemCaseSensitive (root, "tie_word_embeddings");
  hp->tied = cJSON_IsTrue (tie);

  /* The vision tower: CLIP ViT-L/14-336 unless vision_config says. Its
   * four sizes are required there: HF's CLIPVisionConfig would fill gaps
   * with ViT-B/32 defaults, not with L/14's, so a partial vision_config is
   * ambiguous. */
  hp->VE = TSR_CONVERT_VIT_HIDDEN;
  hp->VL = TSR_CONVERT_VIT_LAYERS;
  hp->VH = TSR_CONVERT_VIT_HEADS;
  hp->VF = TSR_CONVERT_VIT_FFN;
  hp->P = TSR_CONVERT_VIT_PATCH;
  hp->S = TSR_CONVERT_VIT_IMAGE;
  hp->v_eps = TSR_CONVERT_VIT_EPS;
  vc = cJSON_GetObjectItemCaseSensitive (root, "vision_config");
  if (vc != NULL && !cJSON_IsNull (vc))
    {
      const char *w = "vision_config.";
      if (!cJSON_IsObject (vc))
        {
          st = tsr_error_set (c->err, TSR_EFORMAT, "%s: \"vision_config\" must be an object",
                              c->config_path);
          goto out;
        }
      if ((st = cfg_int (c, vc, w, "hidden_size", 1, 0, 1, DIM_MAX, &hp->VE)) != TSR_OK ||
          (st = cfg_int (c, vc, w, "num_hidden_layers", 1, 0, 1, LAYER_MAX, &hp->VL)) != TSR_OK ||
          (st = cfg_int (c, vc, w, "num_attention_heads", 1, 0, 1, DIM_MAX, &hp->VH)) != TSR_OK ||
          (st = cfg_int (c, vc, w, "intermediate_size", 1, 0, 1, DIM_MAX, &hp->VF)) != TSR_OK ||
          (st = cfg_pos (c, vc, w, "layer_norm_eps", 0, TSR_CONVERT_VIT_EPS, 1.0, &hp->v_eps)) != TSR_OK ||
          (st = cfg_int (c, vc, w, "patch_size", 0, TSR_CONVERT_VIT_PATCH, 1, 4096, &hp->P)) != TSR_OK ||
          (st = cfg_int (c, vc, w, "image_size", 0, TSR_CONVERT_VIT_IMAGE, 1, 65536, &hp->S)) != TSR_OK)
        goto out;
    }
  if (hp->VE % hp->VH != 0)
    {
      st = tsr_error_set (c->err, TSR_EFORMAT, "%s: the vision width %lld is not a multiple of its %lld "
                          "heads", c->config_path, (long long) hp->VE, (long long) hp->VH);
      goto out;
    }
  /* The 2×2 token merge needs an even patch grid (tsr_gguf_model_info
   * would refuse the file otherwise). */
  if (hp->S % hp->P != 0 || (hp->S / hp->P) % 2 != 0)
    {
      st = tsr_error_set (c->err, TSR_EFORMAT, "%s: a %lld-pixel image does not cut into an even grid "
                          "of %lld-pixel patches", c->config_path, (long long) hp->S, (long long) hp->P);
      goto out;
    }

  hp->alpha[TSR_PLORA_ATTN_QKV] = TSR_CONVERT_ALPHA_WQKV;
  for (int k = 1; k < TSR_PLORA_COUNT; k++)
    hp->alpha[k] = TSR_CONVERT_ALPHA_OTHER;
  pa = cJSON_GetObjectItemCaseSensitive (root, "plora_alpha");
  if (pa != NULL && !cJSON_IsNull (pa))
    {
      if (!cJSON_IsObject (pa))
        {
          st = tsr_error_set (c->err, TSR_EFORMAT, "%s: \"plora_alpha\" must be an object such as "
                              "{\"wqkv\": 16, \"wo\": 256, \"w1\": 256, \"w2\": 256, \"w3\": 256}",
                              c->config_path);
          goto out;
        }
      for (int k = 0; k < TSR_PLORA_COUNT; k++)
        if ((st = cfg_pos (c, pa, "plora_alpha.", alpha_keys[k], 0, hp->alpha[k], 1e9,
                           &hp->alpha[k])) != TSR_OK)
          goto out;
    }
  st = TSR_OK;
out:
  cJSON_Delete (root);
  return st;
}

/* ==== Planning =========================================================== */

static void
shape_text (char *buf, size_t size, int n, const int64_t *d)
{
  size_t len = 0;
  buf[0] = '\0';
  len += (size_t) snprintf (buf, size, "[");
  for (int i = 0; i < n && len < size; i++)
    len += (size_t) snprintf (buf + len, size - len, "%s%lld", i ? ", " : "", (long long) d[i]);
  if (len < size)
    snprintf (buf + len, size - len, "]");
}

static TsrStatus
missing (Conv *c, const char *hf, const char *gguf)
{
  return tsr_error_set (c->err, TSR_EFORMAT, "the checkpoint in %s has no tensor '%s' (Tessera's '%s'); "
                        "the download may be incomplete, or it is not InternLM-XComposer2-4KHD",
                        c->dir, hf, gguf);
}

/* Finds hf_name and checks it has exactly the PyTorch shape `want` (n
 * dims). With squeeze, any shape whose only dimension above 1 is the
 * single one in `want` passes (the GN tokens are [1,1,…,C]). */
static TsrStatus
find_src (Conv *c, const char *hf, const char *gguf, int n, const int64_t *want, int squeeze,
          const char *hint, const TsrCkptTensor **out)
{
  const TsrCkptTensor *t = tsr_checkpoint_find (c->ck, hf);
  int ok;
  char have_s[96], want_s[96];

  *out = NULL;
  if (t == NULL)
    return missing (c, hf, gguf);
  if (squeeze)
    ok = t->numel == want[0];
  else
    {
      ok = t->n_dims == n;
      for (int i = 0; ok && i < n; i++)
        ok = t->shape[i] == want[i];
    }
  if (!ok)
    {
      shape_text (have_s, sizeof have_s, t->n_dims, t->shape);
      shape_text (want_s, sizeof want_s, n, want);
      return tsr_error_set (c->err, TSR_EFORMAT, "tensor '%s' has shape %s where %s implies %s%s%s; "
                            "the checkpoint does not match its config.json", hf, have_s,
                            c->config_path, want_s, hint ? " " : "", hint ? hint : "");
    }
  *out = t;
  return TSR_OK;
}

static TsrStatus
push_out (Conv *c, const Out *o)
{
  if (c->n_outs == c->cap_outs)
    {
      size_t cap = c->cap_outs ? 2 * c->cap_outs : 256;
      Out *p = realloc (c->outs, cap * sizeof *p);
      if (p == NULL)
        return tsr_error_set (c->err, TSR_ENOMEM, "out of memory planning the conversion");
      c->outs = p;
      c->cap_outs = cap;
    }
  c->outs[c->n_outs++] = *o;
  return TSR_OK;
}

static TsrDType
type_for (Conv *c, Kind kind, const char *gguf, int64_t ne0)
{
  TsrDType t = c->type;
  if (kind == KIND_F32)
    return TSR_DTYPE_F32;
  if (kind == KIND_PATCH)
    return t == TSR_DTYPE_F16 || t == TSR_DTYPE_BF16 ? t : TSR_DTYPE_F32;
  if (tsr_dtype_block_values (t) > 1 && ne0 % (int64_t) tsr_dtype_block_values (t) != 0)
    {
      note (c, "%s has rows of %lld values, which are not whole %s blocks of %zu: it stays f32",
            gguf, (long long) ne0, tsr_dtype_name (t), tsr_dtype_block_values (t));
      return TSR_DTYPE_F32;
    }
  return t;
}

/* Plans one output: gguf from hf, whose PyTorch shape must be `want`
 * (n dims). The output shape is the source's reversed (ggml order), with
 * the rows MAP_Q/K/V select, or the squeezed vector. */
static TsrStatus
plan (Conv *c, const char *gguf, const char *hf, Kind kind, RowMap map, int squeeze, int n,
      const int64_t *want, const char *hint)
{
  Out o;
  TsrStatus st;
  uint64_t row_bytes;

  memset (&o, 0, sizeof o);
  if ((st = find_src (c, hf, gguf, n, want, squeeze, hint, &o.src)) != TSR_OK)
    return st;
  if (strlen (gguf) >= sizeof o.name)
    return tsr_error_set (c->err, TSR_ETOOLARGE, "the tensor name '%s' is longer than GGUF allows", gguf);
  memcpy (o.name, gguf, strlen (gguf) + 1);
  o.map = map;
  o.q_per_kv = c->hp.H / c->hp.Hkv;
  o.hd = c->hp.hd;
  if (squeeze || n == 1)
    {
      o.n_dims = 1;
      o.ne[0] = want[0];
    }
  else
    {
      o.n_dims = (uint32_t) n;
      for (int i = 0; i < n; i++)
        o.ne[i] = want[n - 1 - i];
      if (map == MAP_Q)
        o.ne[n - 1] = c->hp.H * c->hp.hd;
      else if (map == MAP_K || map == MAP_V)
        o.ne[n - 1] = c->hp.Hkv * c->hp.hd;
    }
  for (uint32_t i = o.n_dims; i < TSR_GGUF_MAX_DIMS; i++)
    o.ne[i] = 1;
  o.n_values = (uint64_t) (o.ne[0] * o.ne[1] * o.ne[2] * o.ne[3]);
  /* A plain tensor is one long row; a split one has rows of ne[0]. */
  o.row_len = map == MAP_PLAIN ? (int64_t) o.n_values : o.ne[0];
  o.type = type_for (c, kind, gguf, o.ne[0]);
  if ((st = tsr_dtype_row_bytes (o.type, (uint64_t) o.ne[0], &row_bytes, c->err)) != TSR_OK)
    return st;
  o.bytes = row_bytes * (o.n_values / (uint64_t) o.ne[0]);
  c->bytes_total += o.bytes;
  return push_out (c, &o);
}

#define PLAN(c, gguf, hf, kind, map, hint_, ...)                                 \
  do {                                                                           \
    const int64_t w_[] = { __VA_ARGS__ };                                        \
    TsrStatus st_ = plan ((c), (gguf), (hf), (kind), (map), 0,                   \
                          (int) (sizeof w_ / sizeof w_[0]), w_, (hint_));        \
    if (st_ != TSR_OK)                                                           \
      return st_;                                                                \
  } while (0)

/* The rank of one PLoRA from layer 0's Plora_A [r, in]; every layer must
 * agree, as the file has one rank per linear (checked by the shapes). */
static TsrStatus
plora_rank (Conv *c, int which, const char *hf_linear, int64_t in, const char *gguf)
{
  char hf[160];
  const TsrCkptTensor *t;
  snprintf (hf, sizeof hf, "model.layers.0.%s.Plora_A.weight", hf_linear);
  t = tsr_checkpoint_find (c->ck, hf);
  if (t == NULL)
    return missing (c, hf, gguf);
  if (t->n_dims != 2 || t->shape[1] != in || t->shape[0] < 1 || t->shape[0] > 65536)
    {
      char have_s[96];
      shape_text (have_s, sizeof have_s, t->n_dims, t->shape);
      return tsr_error_set (c->err, TSR_EFORMAT, "tensor '%s' has shape %s where [rank, %lld] with a "
                            "rank of 1 to 65536 is expected", hf, have_s, (long long) in);
    }
  c->hp.rank[which] = t->shape[0];
  return TSR_OK;
}

static TsrStatus
plan_all (Conv *c)
{
  const Hparams *hp;
  char g[96], h[200], hint[96];
  const char *v = "vit.vision_tower.vision_model.";
  int64_t QKV, Q, KV, E, F, rq, ro, rg, ru, rd, VE, VF, M;
  TsrStatus st;

  E = c->hp.E;
  F = c->hp.F;
  Q = c->hp.H * c->hp.hd;
  if ((st = plora_rank (c, TSR_PLORA_ATTN_QKV, "attention.wqkv", E, "blk.0.attn_qkv.lora_a.weight")) != TSR_OK ||
      (st = plora_rank (c, TSR_PLORA_ATTN_OUTPUT, "attention.wo", Q, "blk.0.attn_output.lora_a.weight")) != TSR_OK ||
      (st = plora_rank (c, TSR_PLORA_FFN_GATE, "feed_forward.w1", E, "blk.0.ffn_gate.lora_a.weight")) != TSR_OK ||
      (st = plora_rank (c, TSR_PLORA_FFN_UP, "feed_forward.w3", E, "blk.0.ffn_up.lora_a.weight")) != TSR_OK ||
      (st = plora_rank (c, TSR_PLORA_FFN_DOWN, "feed_forward.w2", F, "blk.0.ffn_down.lora_a.weight")) != TSR_OK)
    return st;

  hp = &c->hp;
  KV = hp->Hkv * hp->hd;
  QKV = Q + 2 * KV;
  rq = hp->rank[TSR_PLORA_ATTN_QKV];
  ro = hp->rank[TSR_PLORA_ATTN_OUTPUT];
  rg = hp->rank[TSR_PLORA_FFN_GATE];
  ru = hp->rank[TSR_PLORA_FFN_UP];
  rd = hp->rank[TSR_PLORA_FFN_DOWN];
  VE = hp->VE;
  VF = hp->VF;
  M = 4 * VE;

  PLAN (c, "token_embd.weight", "model.tok_embeddings.weight", KIND_MATRIX, MAP_PLAIN, NULL, hp->V, E);
  for (int64_t n = 0; n < hp->L; n++)
    {
#define GG(suffix) (snprintf (g, sizeof g, "blk.%lld.%s", (long long) n, suffix), g)
#define HF(suffix) (snprintf (h, sizeof h, "model.layers.%lld.%s", (long long) n, suffix), h)
#define RANK_HINT(r) (snprintf (hint, sizeof hint, "(rank %lld, from layer 0's Plora_A)", (long long) (r)), hint)
      PLAN (c, GG ("attn_norm.weight"), HF ("attention_norm.weight"), KIND_F32, MAP_PLAIN, NULL, E);
      PLAN (c, GG ("attn_q.weight"), HF ("attention.wqkv.weight"), KIND_MATRIX, MAP_Q, NULL, QKV, E);
      PLAN (c, GG ("attn_k.weight"), HF ("attention.wqkv.weight"), KIND_MATRIX, MAP_K, NULL, QKV, E);
      PLAN (c, GG ("attn_v.weight"), HF ("attention.wqkv.weight"), KIND_MATRIX, MAP_V, NULL, QKV, E);
      PLAN (c, GG ("attn_output.weight"), HF ("attention.wo.weight"), KIND_MATRIX, MAP_PLAIN, NULL, E, Q);
      PLAN (c, GG ("ffn_norm.weight"), HF ("ffn_norm.weight"), KIND_F32, MAP_PLAIN, NULL, E);
      PLAN (c, GG ("ffn_gate.weight"), HF ("feed_forward.w1.weight"), KIND_MATRIX, MAP_PLAIN, NULL, F, E);
      PLAN (c, GG ("ffn_up.weight"), HF ("feed_forward.w3.weight"), KIND_MATRIX, MAP_PLAIN, NULL, F, E);
      PLAN (c, GG ("ffn_down.weight"), HF ("feed_forward.w2.weight"), KIND_MATRIX, MAP_PLAIN, NULL, E, F);
      PLAN (c, GG ("attn_qkv.lora_a.weight"), HF ("attention.wqkv.Plora_A.weight"), KIND_F32, MAP_PLAIN,
            RANK_HINT (rq), rq, E);
      PLAN (c, GG ("attn_q.lora_b.weight"), HF ("attention.wqkv.Plora_B.weight"), KIND_F32, MAP_Q,
            RANK_HINT (rq), QKV, rq);
      PLAN (c, GG ("attn_k.lora_b.weight"), HF ("attention.wqkv.Plora_B.weight"), KIND_F32, MAP_K,
            RANK_HINT (rq), QKV, rq);
      PLAN (c, GG ("attn_v.lora_b.weight"), HF ("attention.wqkv.Plora_B.weight"), KIND_F32, MAP_V,
            RANK_HINT (rq), QKV, rq);
      PLAN (c, GG ("attn_output.lora_a.weight"), HF ("attention.wo.Plora_A.weight"), KIND_F32, MAP_PLAIN,
            RANK_HINT (ro), ro, Q);
      PLAN (c, GG ("attn_output.lora_b.weight"), HF ("attention.wo.Plora_B.weight"), KIND_F32, MAP_PLAIN,
            RANK_HINT (ro), E, ro);
      PLAN (c, GG ("ffn_gate.lora_a.weight"), HF ("feed_forward.w1.Plora_A.weight"), KIND_F32, MAP_PLAIN,
            RANK_HINT (rg), rg, E);
      PLAN (c, GG ("ffn_gate.lora_b.weight"), HF ("feed_forward.w1.Plora_B.weight"), KIND_F32, MAP_PLAIN,
            RANK_HINT (rg), F, rg);
      PLAN (c, GG ("ffn_up.lora_a.weight"), HF ("feed_forward.w3.Plora_A.weight"), KIND_F32, MAP_PLAIN,
            RANK_HINT (ru), ru, E);
      PLAN (c, GG ("ffn_up.lora_b.weight"), HF ("feed_forward.w3.Plora_B.weight"), KIND_F32, MAP_PLAIN,
            RANK_HINT (ru), F, ru);
      PLAN (c, GG ("ffn_down.lora_a.weight"), HF ("feed_forward.w2.Plora_A.weight"), KIND_F32, MAP_PLAIN,
            RANK_HINT (rd), rd, F);
      PLAN (c, GG ("ffn_down.lora_b.weight"), HF ("feed_forward.w2.Plora_B.weight"), KIND_F32, MAP_PLAIN,
            RANK_HINT (rd), E, rd);
#undef GG
#undef HF
#undef RANK_HINT
    }
  PLAN (c, "output_norm.weight", "model.norm.weight", KIND_F32, MAP_PLAIN, NULL, E);
  if (hp->tied && tsr_checkpoint_find (c->ck, "output.weight") == NULL)
    note (c, "no output.weight and \"tie_word_embeddings\" is true: the output head reuses the token "
          "embedding");
  else
    PLAN (c, "output.weight", "output.weight", KIND_MATRIX, MAP_PLAIN, NULL, hp->V, E);

#define VH(suffix) (snprintf (h, sizeof h, "%s%s", v, suffix), h)
  PLAN (c, "v.patch_embd.weight", VH ("embeddings.patch_embedding.weight"), KIND_PATCH, MAP_PLAIN, NULL,
        VE, 3, hp->P, hp->P);
  PLAN (c, "v.class_embd.weight", VH ("embeddings.class_embedding"), KIND_F32, MAP_PLAIN, NULL, VE);
  PLAN (c, "v.pos_embd.weight", VH ("embeddings.position_embedding.weight"), KIND_F32, MAP_PLAIN, NULL,
        (hp->S / hp->P) * (hp->S / hp->P) + 1, VE);
  PLAN (c, "v.pre_ln.weight", VH ("pre_layrnorm.weight"), KIND_F32, MAP_PLAIN, NULL, VE);
  PLAN (c, "v.pre_ln.bias", VH ("pre_layrnorm.bias"), KIND_F32, MAP_PLAIN, NULL, VE);
#undef VH
  for (int64_t m = 0; m < hp->VL; m++)
    {
      static const char *const proj[4][2] = {
        { "attn_q", "q_proj" }, { "attn_k", "k_proj" }, { "attn_v", "v_proj" }, { "attn_out", "out_proj" },
      };
#define GG(suffix) (snprintf (g, sizeof g, "v.blk.%lld.%s", (long long) m, suffix), g)
#define HF(suffix) (snprintf (h, sizeof h, "%sencoder.layers.%lld.%s", v, (long long) m, suffix), h)
      for (int k = 0; k < 4; k++)
        {
          char gs[48], hs[48];
          snprintf (gs, sizeof gs, "%s.weight", proj[k][0]);
          snprintf (hs, sizeof hs, "self_attn.%s.weight", proj[k][1]);
          PLAN (c, GG (gs), HF (hs), KIND_MATRIX, MAP_PLAIN, NULL, VE, VE);
          snprintf (gs, sizeof gs, "%s.bias", proj[k][0]);
          snprintf (hs, sizeof hs, "self_attn.%s.bias", proj[k][1]);
          PLAN (c, GG (gs), HF (hs), KIND_F32, MAP_PLAIN, NULL, VE);
        }
      PLAN (c, GG ("ln1.weight"), HF ("layer_norm1.weight"), KIND_F32, MAP_PLAIN, NULL, VE);
      PLAN (c, GG ("ln1.bias"), HF ("layer_norm1.bias"), KIND_F32, MAP_PLAIN, NULL, VE);
      PLAN (c, GG ("ln2.weight"), HF ("layer_norm2.weight"), KIND_F32, MAP_PLAIN, NULL, VE);
      PLAN (c, GG ("ln2.bias"), HF ("layer_norm2.bias"), KIND_F32, MAP_PLAIN, NULL, VE);
      PLAN (c, GG ("ffn_up.weight"), HF ("mlp.fc1.weight"), KIND_MATRIX, MAP_PLAIN, NULL, VF, VE);
      PLAN (c, GG ("ffn_up.bias"), HF ("mlp.fc1.bias"), KIND_F32, MAP_PLAIN, NULL, VF);
      PLAN (c, GG ("ffn_down.weight"), HF ("mlp.fc2.weight"), KIND_MATRIX, MAP_PLAIN, NULL, VE, VF);
      PLAN (c, GG ("ffn_down.bias"), HF ("mlp.fc2.bias"), KIND_F32, MAP_PLAIN, NULL, VE);
#undef GG
#undef HF
    }
  PLAN (c, "mm.0.weight", "vision_proj.0.weight", KIND_MATRIX, MAP_PLAIN, NULL, E, M);
  PLAN (c, "mm.0.bias", "vision_proj.0.bias", KIND_F32, MAP_PLAIN, NULL, E);
  PLAN (c, "mm.2.weight", "vision_proj.2.weight", KIND_MATRIX, MAP_PLAIN, NULL, E, E);
  PLAN (c, "mm.2.bias", "vision_proj.2.bias", KIND_F32, MAP_PLAIN, NULL, E);
  {
    const int64_t w[] = { M };
    if ((st = plan (c, "mm.glb_gn.weight", "plora_glb_GN", KIND_F32, MAP_PLAIN, 1, 1, w,
                    "(a [1, 1, C] token)")) != TSR_OK ||
        (st = plan (c, "mm.sub_gn.weight", "plora_sub_GN", KIND_F32, MAP_PLAIN, 1, 1, w,
                    "(a [1, 1, 1, C] token)")) != TSR_OK)
      return st;
  }

  /* A source may feed several outputs (wqkv feeds three); its pages go
   * back after the last of them. */
  for (size_t i = 0; i < c->n_outs; i++)
    {
      c->outs[i].last_use = 1;
      for (size_t j = i + 1; j < c->n_outs; j++)
        if (c->outs[j].src == c->outs[i].src)
          {
            c->outs[i].last_use = 0;
            break;
          }
    }
  return TSR_OK;
}

/* Tells the user, once per kind, which checkpoint tensors are left out. */
static TsrStatus
note_skipped (Conv *c)
{
  Skipped *kinds = NULL;
  size_t n_kinds = 0;
  size_t n = tsr_checkpoint_n_tensors (c->ck);
  TsrStatus st = TSR_OK;
  unsigned char *used = calloc (n ? n : 1, 1);

  if (used == NULL)
    return tsr_error_set (c->err, TSR_ENOMEM, "out of memory planning the conversion");
  /* Sources are looked up by name; mark them by position here. */
  for (size_t i = 0; i < n; i++)
    {
      const TsrCkptTensor *t = tsr_checkpoint_tensor (c->ck, i);
      for (size_t j = 0; j < c->n_outs && !used[i]; j++)
        used[i] = c->outs[j].src == t;
    }
  for (size_t i = 0; i < n && st == TSR_OK; i++)
    {
      const char *name = tsr_checkpoint_tensor (c->ck, i)->name;
      char *pat;
      size_t k, len = 0;
      if (used[i])
        continue;
      pat = malloc (strlen (name) + 1);
      if (pat == NULL)
        {
          st = tsr_error_set (c->err, TSR_ENOMEM, "out of memory planning the conversion");
          break;
        }
      for (const char *s = name; *s; s++)
        if (*s >= '0' && *s <= '9')
          {
            if (!(s > name && s[-1] >= '0' && s[-1] <= '9'))
              pat[len++] = 'N';
          }
        else
          pat[len++] = *s;
      pat[len] = '\0';
      for (k = 0; k < n_kinds && strcmp (kinds[k].pattern, pat) != 0; k++)
        ;
      if (k < n_kinds)
        {
          kinds[k].count++;
          free (pat);
          continue;
        }
      {
        Skipped *p = realloc (kinds, (n_kinds + 1) * sizeof *p);
        if (p == NULL)
          {
            free (pat);
            st = tsr_error_set (c->err, TSR_ENOMEM, "out of memory planning the conversion");
            break;
          }
        kinds = p;
        kinds[n_kinds].pattern = pat;
        kinds[n_kinds].count = 1;
        n_kinds++;
      }
    }
  for (size_t k = 0; k < n_kinds; k++)
    {
      const char *p = kinds[k].pattern;
      const char *why = strstr (p, "rotary_emb.inv_freq") ? "the decoder computes it"
                      : strstr (p, "position_ids") ? "the vision tower numbers its positions itself"
                      : strstr (p, "post_layernorm") ? "the model does not use it (model.md §5)"
                      : "Tessera does not know it";
      if (st == TSR_OK)
        {
          if (kinds[k].count == 1)
            note (c, "skipped %s: %s", p, why);
          else
            note (c, "skipped %s (%zu tensors): %s", p, kinds[k].count, why);
        }
      free (kinds[k].pattern);
    }
  free (kinds);
  free (used);
  return st;
}

/* ==== The tokenizer ====================================================== */

static TsrStatus
read_tokenizer (Conv *c)
{
  char path[PATH_BUF];
  size_t n;
  TsrStatus st;

  snprintf (path, sizeof path, "%s/tokenizer.model", c->dir);
  if ((st = tsr_tokenizer_load_spm (path, &c->tok, c->err)) != TSR_OK)
    return st;
  n = tsr_tokenizer_n_vocab (c->tok);
  if (n > (size_t) c->hp.V)
    return tsr_error_set (c->err, TSR_EFORMAT, "%s has %zu pieces but %s says \"vocab_size\" %lld; "
                         "the tokenizer belongs to another model", path, n, c->config_path,
                         (long long) c->hp.V);
  if (n < (size_t) c->hp.V)
    note (c, "the tokenizer has %zu pieces, the embedding %lld rows: the extra rows are never used",
          n, (long long) c->hp.V);
  /* The chat template's turn markers (model.md §7): the ids differ
   * between vocabularies, the pieces do not. */
  c->im_start = tsr_tokenizer_find (c->tok, "[UNUSED_TOKEN_146]", strlen ("[UNUSED_TOKEN_146]"));
  c->im_end = tsr_tokenizer_find (c->tok, "[UNUSED_TOKEN_145]", strlen ("[UNUSED_TOKEN_145]"));
  if (c->im_start < 0 || c->im_end < 0)
    return tsr_error_set (c->err, TSR_EFORMAT, "%s has no piece %s, which InternLM-XComposer2 uses to "
                          "%s a chat turn; is it the model's own tokenizer?", path,
                          c->im_start < 0 ? "[UNUSED_TOKEN_146]" : "[UNUSED_TOKEN_145]",
                          c->im_start < 0 ? "start" : "end");
  c->unk_id = -1;
  for (size_t i = 0; i < n && c->unk_id < 0; i++)
    if (tsr_tokenizer_type (c->tok, (int32_t) i) == TSR_PIECE_UNKNOWN)
      c->unk_id = (int32_t) i;
  return TSR_OK;
}

/* ==== Metadata =========================================================== */

/* llama.cpp's general.file_type numbering (LLAMA_FTYPE_*). */
static uint32_t
file_type (TsrDType t)
{
  switch (t)
    {
    case TSR_DTYPE_F32: return 0;
    case TSR_DTYPE_F16: return 1;
    case TSR_DTYPE_Q4_0: return 2;
    case TSR_DTYPE_Q8_0: return 7;
    case TSR_DTYPE_BF16: return 32;
    }
  return 0;
}

TsrStatus
tsr_model_meta_write (TsrGgufWriter *w, const TsrModelMeta *m, TsrError *err)
{
  const char *a = TSR_ARCH_NAME_INTERNLM2_4KHD;
  const TsrVocab *v = m->vocab;
  char key[128];
  TsrStatus st;
  static const float mean[3] = { 0.48145466f, 0.4578275f, 0.40821073f };
  static const float std[3] = { 0.26862954f, 0.26130258f, 0.27577711f };

#define K(suffix) (snprintf (key, sizeof key, "%s.%s", a, suffix), key)
#define TRY(expr) do { if ((st = (expr)) != TSR_OK) return st; } while (0)
  TRY (tsr_gguf_writer_set_str (w, "general.architecture", a, err));
  TRY (tsr_gguf_writer_set_str (w, "general.name", m->name, err));
  TRY (tsr_gguf_writer_set_u32 (w, "general.alignment", TSR_GGUF_DEFAULT_ALIGNMENT, err));
  TRY (tsr_gguf_writer_set_u32 (w, "general.file_type", file_type (m->type), err));
  if (m->quantised)
    TRY (tsr_gguf_writer_set_u32 (w, "general.quantization_version", 2, err));

  TRY (tsr_gguf_writer_set_u32 (w, K ("context_length"), m->n_ctx, err));
  TRY (tsr_gguf_writer_set_u32 (w, K ("embedding_length"), m->n_embd, err));
  TRY (tsr_gguf_writer_set_u32 (w, K ("block_count"), m->n_layer, err));
  TRY (tsr_gguf_writer_set_u32 (w, K ("feed_forward_length"), m->n_ff, err));
  TRY (tsr_gguf_writer_set_u32 (w, K ("attention.head_count"), m->n_head, err));
  TRY (tsr_gguf_writer_set_u32 (w, K ("attention.head_count_kv"), m->n_head_kv, err));
  TRY (tsr_gguf_writer_set_f32 (w, K ("attention.layer_norm_rms_epsilon"), m->rms_eps, err));
  TRY (tsr_gguf_writer_set_f32 (w, K ("rope.freq_base"), m->rope_freq_base, err));
  if (m->max_input)
    TRY (tsr_gguf_writer_set_u32 (w, K ("max_input_length"), m->max_input, err));
  for (int k = 0; k < TSR_PLORA_COUNT; k++)
    {
      char sub[64];
      snprintf (sub, sizeof sub, "plora.%s.rank", tsr_plora_name (k));
      TRY (tsr_gguf_writer_set_u32 (w, K (sub), m->plora_rank[k], err));
      snprintf (sub, sizeof sub, "plora.%s.scale", tsr_plora_name (k));
      TRY (tsr_gguf_writer_set_f32 (w, K (sub), m->plora_scale[k], err));
    }
  TRY (tsr_gguf_writer_set_u32 (w, K ("vision.image_size"), m->v_image_size, err));
  TRY (tsr_gguf_writer_set_u32 (w, K ("vision.patch_size"), m->v_patch_size, err));
  TRY (tsr_gguf_writer_set_u32 (w, K ("vision.embedding_length"), m->v_n_embd, err));
  TRY (tsr_gguf_writer_set_u32 (w, K ("vision.block_count"), m->v_n_layer, err));
  TRY (tsr_gguf_writer_set_u32 (w, K ("vision.feed_forward_length"), m->v_n_ff, err));
  TRY (tsr_gguf_writer_set_u32 (w, K ("vision.attention.head_count"), m->v_n_head, err));
  TRY (tsr_gguf_writer_set_f32 (w, K ("vision.attention.layer_norm_epsilon"), m->v_eps, err));
  TRY (tsr_gguf_writer_set_arr (w, K ("vision.image_mean"), TSR_GGUF_F32, mean, 3, err));
  TRY (tsr_gguf_writer_set_arr (w, K ("vision.image_std"), TSR_GGUF_F32, std, 3, err));

  TRY (tsr_gguf_writer_set_str (w, "tokenizer.ggml.model", "llama", err));
  TRY (tsr_gguf_writer_set_arr_str (w, "tokenizer.ggml.tokens", v->pieces, v->lens, v->n, err));
  TRY (tsr_gguf_writer_set_arr (w, "tokenizer.ggml.scores", TSR_GGUF_F32, v->scores, v->n, err));
  TRY (tsr_gguf_writer_set_arr (w, "tokenizer.ggml.token_type", TSR_GGUF_I32, v->types, v->n, err));
  TRY (tsr_gguf_writer_set_u32 (w, "tokenizer.ggml.bos_token_id",
                                v->bos_id < 0 ? UINT32_MAX : (uint32_t) v->bos_id, err));
  TRY (tsr_gguf_writer_set_u32 (w, "tokenizer.ggml.eos_token_id",
                                v->eos_id < 0 ? UINT32_MAX : (uint32_t) v->eos_id, err));
  if (m->unk_id >= 0)
    TRY (tsr_gguf_writer_set_u32 (w, "tokenizer.ggml.unknown_token_id", (uint32_t) m->unk_id, err));
  if (m->pad_id >= 0)
    TRY (tsr_gguf_writer_set_u32 (w, "tokenizer.ggml.padding_token_id", (uint32_t) m->pad_id, err));
  TRY (tsr_gguf_writer_set_bool (w, "tokenizer.ggml.add_bos_token", 1, err));
  TRY (tsr_gguf_writer_set_bool (w, "tokenizer.ggml.add_space_prefix", v->add_dummy_prefix, err));
  TRY (tsr_gguf_writer_set_u32 (w, "tessera.chat.im_start_id", (uint32_t) m->im_start_id, err));
  TRY (tsr_gguf_writer_set_u32 (w, "tessera.chat.im_end_id", (uint32_t) m->im_end_id, err));
  if (m->synthetic)
    TRY (tsr_gguf_writer_set_bool (w, "tessera.synthetic", 1, err));
#undef K
#undef TRY
  return TSR_OK;
}

static TsrStatus
write_metadata (Conv *c, TsrGgufWriter *w)
{
  const Hparams *hp = &c->hp;
  char name[256];
  size_t n = tsr_tokenizer_n_vocab (c->tok);
  const char **pieces = NULL;
  size_t *lens = NULL;
  float *scores = NULL;
  int32_t *types = NULL;
  TsrModelMeta m;
  TsrVocab vocab;
  TsrStatus st;

  memset (&m, 0, sizeof m);
  for (size_t i = 0; i < c->n_outs; i++)
    m.quantised |= tsr_dtype_block_values (c->outs[i].type) > 1;

  /* The folder's name is what the user downloaded ("internlm-xcomposer2-4khd-7b"). */
  {
    size_t len = strlen (c->dir);
    const char *base;
    while (len > 1 && c->dir[len - 1] == '/')
      len--;
    snprintf (name, sizeof name, "%.*s", (int) len, c->dir);
    base = strrchr (name, '/');
    base = base && base[1] ? base + 1 : name;
    if (strcmp (base, ".") == 0 || strcmp (base, "/") == 0 || base[0] == '\0')
      base = "InternLM-XComposer2-4KHD";
    memmove (name, base, strlen (base) + 1);
  }

  pieces = malloc ((n ? n : 1) * sizeof *pieces);
  lens = malloc ((n ? n : 1) * sizeof *lens);
  scores = malloc ((n ? n : 1) * sizeof *scores);
  types = malloc ((n ? n : 1) * sizeof *types);
  if (pieces == NULL || lens == NULL || scores == NULL || types == NULL)
    {
      st = tsr_error_set (c->err, TSR_ENOMEM, "out of memory copying the vocabulary");
      goto out;
    }
  for (size_t i = 0; i < n; i++)
    {
      pieces[i] = tsr_tokenizer_piece (c->tok, (int32_t) i, &lens[i]);
      scores[i] = tsr_tokenizer_score (c->tok, (int32_t) i);
      types[i] = tsr_tokenizer_type (c->tok, (int32_t) i);
    }
  memset (&vocab, 0, sizeof vocab);
  vocab.n = n;
  vocab.pieces = pieces;
  vocab.lens = lens;
  vocab.scores = scores;
  vocab.types = types;
  vocab.bos_id = tsr_tokenizer_bos (c->tok);
  vocab.eos_id = tsr_tokenizer_eos (c->tok);
  vocab.add_dummy_prefix = tsr_tokenizer_add_dummy_prefix (c->tok);

  m.name = name;
  m.type = c->type;
  m.n_ctx = (uint32_t) hp->n_ctx;
  m.n_embd = (uint32_t) hp->E;
  m.n_layer = (uint32_t) hp->L;
  m.n_ff = (uint32_t) hp->F;
  m.n_head = (uint32_t) hp->H;
  m.n_head_kv = (uint32_t) hp->Hkv;
  m.max_input = (uint32_t) hp->max_input;
  m.rms_eps = (float) hp->rms_eps;
  m.rope_freq_base = (float) hp->rope_theta;
  for (int k = 0; k < TSR_PLORA_COUNT; k++)
    {
      m.plora_rank[k] = (uint32_t) hp->rank[k];
      m.plora_scale[k] = (float) (hp->alpha[k] / (double) hp->rank[k]);
    }
  m.v_image_size = (uint32_t) hp->S;
  m.v_patch_size = (uint32_t) hp->P;
  m.v_n_embd = (uint32_t) hp->VE;
  m.v_n_layer = (uint32_t) hp->VL;
  m.v_n_ff = (uint32_t) hp->VF;
  m.v_n_head = (uint32_t) hp->VH;
  m.v_eps = (float) hp->v_eps;
  m.vocab = &vocab;
  m.unk_id = c->unk_id;
  m.pad_id = hp->pad_id >= 0 && (size_t) hp->pad_id < n ? (int32_t) hp->pad_id : -1;
  m.im_start_id = c->im_start;
  m.im_end_id = c->im_end;
  st = tsr_model_meta_write (w, &m, c->err);
out:
  free (pieces);
  free (lens);
  free (scores);
  free (types);
  return st;
}

/* ==== Streaming the data ================================================= */

typedef struct {
  const Out           *o;
  const unsigned char *src;
  size_t               esize;
  uint64_t             v0, n;      /* output values of this step */
  float               *f;          /* n floats */
  unsigned char       *q;          /* n values of o->type */
  TsrStatus           *st;         /* one per thread */
  TsrError            *errs;
  uint64_t            *err_at;
} Job;

/* Output row r → source row (model.md §2: f = g·(q_per_kv+2)·hd + s·hd + d). */
static uint64_t
src_row (const Out *o, uint64_t r)
{
  uint64_t hd = (uint64_t) o->hd, qk = (uint64_t) o->q_per_kv, group = (qk + 2) * hd;
  switch (o->map)
    {
    case MAP_PLAIN:
      return r;
    case MAP_Q:
      return r / (qk * hd) * group + r % (qk * hd);
    case MAP_K:
      return r / hd * group + qk * hd + r % hd;
    case MAP_V:
      return r / hd * group + (qk + 1) * hd + r % hd;
    }
  return r;
}

static void
to_f32 (TsrDType t, const unsigned char *p, float *f, size_t n)
{
  if (t == TSR_DTYPE_F32)
    memcpy (f, p, n * sizeof (float));
  else if (t == TSR_DTYPE_F16)
    for (size_t i = 0; i < n; i++)
      {
        uint16_t h;
        memcpy (&h, p + 2 * i, 2);
        f[i] = tsr_f16_to_f32 (h);
      }
  else
    for (size_t i = 0; i < n; i++)
      {
        /* bf16 is the top half of an f32: widening is exact. */
        uint32_t u = (uint32_t) p[2 * i] << 16 | (uint32_t) p[2 * i + 1] << 24;
        memcpy (&f[i], &u, sizeof u);
      }
}

/* Start of thread i's share of n values: block-aligned, so each share
 * quantises to whole blocks. */
static uint64_t
share (uint64_t n, int i, int nth)
{
  if (i >= nth)
    return n;
  return (n * (uint64_t) i / (uint64_t) nth) & ~(uint64_t) (TSR_QK - 1);
}

/* Index of the first NaN or infinity among n raw values, or n. */
static size_t
first_nonfinite (TsrDType t, const unsigned char *p, size_t n)
{
  size_t bad = n;
  if (t == TSR_DTYPE_F32)
    {
      for (size_t i = 0; i < n; i++)
        {
          uint32_t u;
          memcpy (&u, p + 4 * i, 4);
          if ((u & 0x7f800000u) == 0x7f800000u && bad == n)
            bad = i;
        }
    }
  else
    {
      uint16_t mask = t == TSR_DTYPE_F16 ? 0x7c00u : 0x7f80u;
      for (size_t i = 0; i < n; i++)
        {
          uint16_t h;
          memcpy (&h, p + 2 * i, 2);
          if ((h & mask) == mask && bad == n)
            bad = i;
        }
    }
  return bad;
}

static void
job_run (void *ctx, int ith, int nth)
{
  Job *j = ctx;
  const Out *o = j->o;
  uint64_t a = share (j->n, ith, nth), b = share (j->n, ith + 1, nth), v, row_len = (uint64_t) o->row_len;
  size_t bv = tsr_dtype_block_values (o->type), bb = tsr_dtype_block_bytes (o->type);
  /* Kept in its own type (the default for a bf16 checkpoint): the bytes
   * are the answer, and going through f32 would only cost time. */
  int same = o->type == o->src->dtype;

  j->st[ith] = TSR_OK;
  j->err_at[ith] = j->v0 + a;
  if (a >= b)
    return;
  for (v = a; v < b;)
    {
      uint64_t out_v = j->v0 + v, row = out_v / row_len, col = out_v % row_len;
      uint64_t len = row_len - col < b - v ? row_len - col : b - v;
      uint64_t s = src_row (o, row) * row_len + col;
      if (same)
        memcpy (j->q + v * j->esize, j->src + s * j->esize, (size_t) (len * j->esize));
      else
        to_f32 (o->src->dtype, j->src + s * j->esize, j->f + v, (size_t) len);
      v += len;
    }
  if (same)
    {
      /* The same refusal tsr_quantize_row gives, for the same reason: a
       * NaN in a weight is damage, not data. */
      size_t bad = first_nonfinite (o->type, j->q + a * j->esize, (size_t) (b - a));
      if (bad < b - a)
        {
          j->st[ith] = tsr_error_set (&j->errs[ith], TSR_EINVAL, "value %llu is not a finite number; "
                                      "the source tensor is damaged",
                                      (unsigned long long) (j->v0 + a + bad));
          j->err_at[ith] = 0;   /* the index above is already the tensor's */
        }
      return;
    }
  j->st[ith] = tsr_quantize_row (o->type, j->f + a, j->q + a / bv * bb, (size_t) (b - a), &j->errs[ith]);
}

typedef struct {
  TsrPool       *pool;
  int            nth;
  float         *f;
  unsigned char *q;
  TsrStatus     *st;
  TsrError      *errs;
  uint64_t      *err_at;
} Work;

static TsrStatus
convert_one (Conv *c, Work *wk, TsrGgufWriter *w, const Out *o)
{
  Job j;
  uint64_t step;
  size_t bv = tsr_dtype_block_values (o->type), bb = tsr_dtype_block_bytes (o->type);
  TsrStatus st;

  memset (&j, 0, sizeof j);
  j.o = o;
  j.src = o->src->data;
  j.esize = tsr_checkpoint_dtype_size (o->src->dtype);
  j.f = wk->f;
  j.q = wk->q;
  j.st = wk->st;
  j.errs = wk->errs;
  j.err_at = wk->err_at;
  /* Whole rows per step where rows are picked, so no step splits a row
   * more than it must. */
  step = TSR_CONVERT_CHUNK_VALUES;
  if (o->map != MAP_PLAIN && (uint64_t) o->row_len <= step)
    step = step / (uint64_t) o->row_len * (uint64_t) o->row_len;

  for (uint64_t v0 = 0; v0 < o->n_values; v0 += step)
    {
      int nth = 1;
      if ((st = check_abort (c)) != TSR_OK)
        return st;
      j.v0 = v0;
      j.n = o->n_values - v0 < step ? o->n_values - v0 : step;
      /* Small pieces are not worth waking the workers for. */
      if (wk->pool && j.n >= 65536)
        {
          nth = wk->nth;
          tsr_pool_run (wk->pool, job_run, &j);
        }
      else
        job_run (&j, 0, 1);
      /* tsr_quantize_row counts values from the start of its piece. */
      for (int i = 0; i < nth; i++)
        if (wk->st[i] != TSR_OK && wk->err_at[i] == 0)
          return tsr_error_set (c->err, wk->st[i], "cannot store '%s' (from '%s') as %s: %s", o->name,
                                o->src->name, tsr_dtype_name (o->type), wk->errs[i].message);
        else if (wk->st[i] != TSR_OK)
          return tsr_error_set (c->err, wk->st[i], "cannot store '%s' (from '%s') as %s, in its values "
                                "from %llu on: %s", o->name, o->src->name, tsr_dtype_name (o->type),
                                (unsigned long long) wk->err_at[i], wk->errs[i].message);
      if ((st = tsr_gguf_writer_append (w, j.q, (size_t) (j.n / bv * bb), c->err)) != TSR_OK)
        return st;
      c->prog.bytes_done += j.n / bv * bb;
      /* Converted pages of a tensor read front to back are not needed
       * again: give them back now rather than after the whole tensor, so
       * a 760 MB embedding never becomes resident at once. */
      if (o->map == MAP_PLAIN && o->last_use)
        {
          TsrCkptTensor done = *o->src;
          done.nbytes = (size_t) ((v0 + j.n) * j.esize);
          tsr_checkpoint_release (c->ck, &done);
        }
      /* The last step is reported by the caller, with the tensor counted. */
      if (v0 + j.n < o->n_values)
        report (c, "converting", o->name);
    }
  if (o->last_use)
    tsr_checkpoint_release (c->ck, o->src);
  return TSR_OK;
}

static TsrStatus
stream (Conv *c, TsrGgufWriter *w)
{
  Work wk;
  TsrStatus st = TSR_OK;
  size_t nth;

  memset (&wk, 0, sizeof wk);
  if (c->p->n_threads != 1)
    {
      if ((st = tsr_pool_new (c->p->n_threads, &wk.pool, c->err)) != TSR_OK)
        return st;
      if (tsr_pool_size (wk.pool) < 2)
        {
          tsr_pool_free (wk.pool);
          wk.pool = NULL;
        }
    }
  wk.nth = wk.pool ? tsr_pool_size (wk.pool) : 1;
  nth = (size_t) wk.nth;
  wk.f = malloc (TSR_CONVERT_CHUNK_VALUES * sizeof (float));
  wk.q = malloc (TSR_CONVERT_CHUNK_VALUES * sizeof (float));
  wk.st = calloc (nth, sizeof *wk.st);
  wk.errs = calloc (nth, sizeof *wk.errs);
  wk.err_at = calloc (nth, sizeof *wk.err_at);
  if (wk.f == NULL || wk.q == NULL || wk.st == NULL || wk.errs == NULL || wk.err_at == NULL)
    st = tsr_error_set (c->err, TSR_ENOMEM, "out of memory for the conversion buffers (%zu MB)",
                        2 * TSR_CONVERT_CHUNK_VALUES * sizeof (float) >> 20);

  for (size_t i = 0; i < c->n_outs && st == TSR_OK; i++)
    {
      report (c, "converting", c->outs[i].name);
      st = convert_one (c, &wk, w, &c->outs[i]);
      if (st == TSR_OK)
        {
          c->prog.tensors_done++;
          report (c, "converting", c->outs[i].name);
        }
    }

  tsr_pool_free (wk.pool);
  free (wk.f);
  free (wk.q);
  free (wk.st);
  free (wk.errs);
  free (wk.err_at);
  return st;
}

/* ==== The whole ========================================================== */

void
tsr_convert_params_init (TsrConvertParams *params)
{
  if (params == NULL)
    return;
  memset (params, 0, sizeof *params);
  params->type = TSR_CONVERT_TYPE_AUTO;
}

static TsrStatus
check_folder (Conv *c)
{
  struct stat sb;
  if (stat (c->dir, &sb) != 0)
    return tsr_error_set (c->err, TSR_EIO, "cannot open the model folder %s: %s", c->dir, strerror (errno));
  if (!S_ISDIR (sb.st_mode))
    return tsr_error_set (c->err, TSR_EINVAL, "%s is not a folder; give the Hugging Face model folder "
                          "(config.json, tokenizer.model and the weights)", c->dir);
  if ((size_t) snprintf (c->config_path, sizeof c->config_path, "%s/config.json", c->dir)
      >= sizeof c->config_path)
    return tsr_error_set (c->err, TSR_EINVAL, "the folder name is too long");
  if (stat (c->config_path, &sb) != 0 && errno == ENOENT)
    return tsr_error_set (c->err, TSR_EIO, "%s has no config.json; is it a Hugging Face model folder? "
                          "(it holds config.json, tokenizer.model and the weights)", c->dir);
  return TSR_OK;
}

TsrStatus
tsr_convert (const char *hf_dir, const char *out_gguf, const TsrConvertParams *params, TsrError *err)
{
  TsrConvertParams defaults;
  TsrGgufWriter *w = NULL;
  Conv c;
  TsrStatus st;

  tsr_convert_params_init (&defaults);
  memset (&c, 0, sizeof c);
  c.p = params ? params : &defaults;
  c.err = err;
  c.dir = hf_dir;
  if (hf_dir == NULL || hf_dir[0] == '\0' || out_gguf == NULL || out_gguf[0] == '\0')
    return tsr_error_set (err, TSR_EINVAL, "tsr_convert needs a model folder and an output path");
  if (c.p->type != TSR_CONVERT_TYPE_AUTO && !tsr_dtype_is_valid (c.p->type))
    return tsr_error_set (err, TSR_EINVAL, "type %d is not one Tessera writes; use f32, f16, bf16, q8_0 "
                          "or q4_0", c.p->type);
  if (c.p->n_threads < 0 || c.p->n_threads > 1024)
    return tsr_error_set (err, TSR_EINVAL, "%d threads is out of range; use 1 to 1024, or 0 for one per "
                          "core", c.p->n_threads);

  report (&c, "reading", NULL);
  if ((st = check_folder (&c)) != TSR_OK ||
      (st = read_config (&c)) != TSR_OK ||
      (st = tsr_checkpoint_open (hf_dir, &c.ck, err)) != TSR_OK ||
      (st = read_tokenizer (&c)) != TSR_OK)
    goto out;
  if (c.p->type == TSR_CONVERT_TYPE_AUTO)
    {
      const TsrCkptTensor *emb = tsr_checkpoint_find (c.ck, "model.tok_embeddings.weight");
      c.type = emb ? emb->dtype : TSR_DTYPE_F32;
    }
  else
    c.type = (TsrDType) c.p->type;
  if ((st = plan_all (&c)) != TSR_OK || (st = note_skipped (&c)) != TSR_OK)
    goto out;

  if ((st = tsr_gguf_writer_new (&w, err)) != TSR_OK || (st = write_metadata (&c, w)) != TSR_OK)
    goto out;
  for (size_t i = 0; i < c.n_outs; i++)
    if ((st = tsr_gguf_writer_add_tensor (w, c.outs[i].name, c.outs[i].type, c.outs[i].n_dims,
                                          c.outs[i].ne, err)) != TSR_OK)
      goto out;
  c.prog.tensors_total = c.n_outs;
  c.prog.bytes_total = c.bytes_total;
  if ((st = check_abort (&c)) != TSR_OK || (st = tsr_gguf_writer_open (w, out_gguf, err)) != TSR_OK)
    goto out;
  if ((st = stream (&c, w)) != TSR_OK)
    goto out;
  report (&c, "finishing", NULL);
  if ((st = tsr_gguf_writer_finish (w, err)) != TSR_OK)
    goto out;
  report (&c, "done", NULL);

out:
  /* An unfinished writer removes OUT.part. */
  tsr_gguf_writer_free (w);
  tsr_tokenizer_free (c.tok);
  tsr_checkpoint_close (c.ck);
  free (c.outs);
  return st;
}
