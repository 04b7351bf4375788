/* SPDX-License-Identifier: GPL-3.0-or-later
 *
 * tsr-llm.c — the decoder: InternLM2 with Partial LoRA, and plain llama
 * files through the same code (model.md §2–4).
 *
 * Rows go through the layers a chunk at a time, so prompts use the
 * many-rows products and decoding the one-row ones. Each row is a token or
 * an image embedding; image rows get the Partial LoRA, text rows never.
 * Keys and values are kept per layer for every position (f32).
 *
 * Shapes, row-major: h [n][E]; q [n][H·hd]; k, v [n][Hkv·hd]; the cache
 * [layer][position][Hkv·hd].
 */
#include "tsr-llm.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tsr-blas.h"
#include "tsr-error.h"
#include "tsr-kernels.h"

typedef struct {
  TsrWeights w;
  int        present;
} Mat;

typedef struct {
  Mat   a, b;      /* PLoRA: a [r][in], b [out][r] */
  float scale;
} Lora;

typedef struct {
  const float *attn_norm, *ffn_norm;
  Mat          q, k, v, o, gate, up, down;
  Lora         lq, lk, lv, lo, lgate, lup, ldown;   /* lq/lk/lv share a */
} Layer;

struct TsrLlm
{
  TsrGgufModelInfo info;
  TsrArch          arch;
  int              rotate_half;   /* InternLM2's RoPE pairing; llama: adjacent pairs */
  Mat              tok_embd, output;
  const float     *output_norm;
  Layer           *layers;
  float           *inv_freq;      /* [hd/2] */
  TsrIsa           isa;
};

struct TsrLlmState
{
  const TsrLlm *llm;
  int           n_ctx, pos;
  TsrDType      kv_type;             /* f32, or f16 to halve the cache */
  void         *k_cache, *v_cache;   /* [layer][n_ctx][Hkv·hd] */
  TsrLlmProfile prof;
};

/* ==== Loading =========================================================== */

static TsrStatus
get_mat (const TsrGguf *g, const char *name, int required, Mat *m, TsrError *err)
{
  const TsrGgufTensor *t = tsr_gguf_find_tensor (g, name);
  memset (m, 0, sizeof *m);
  if (t == NULL)
    return required ? tsr_error_set (err, TSR_EFORMAT, "The model has no tensor “%s”; convert it "
                                     "again with tessera-cli convert.", name) : TSR_OK;
  m->w.type = t->type;
  m->w.cols = t->ne[0];
  m->w.rows = (int64_t) (t->n_elements / (uint64_t) t->ne[0]);
  m->w.row_bytes = (size_t) (t->size / (uint64_t) m->w.rows);
  m->w.data = t->data;
  m->present = 1;
  return TSR_OK;
}

static TsrStatus
get_vec (const TsrGguf *g, const char *name, int64_t n, const float **out, TsrError *err)
{
  const TsrGgufTensor *t = tsr_gguf_find_tensor (g, name);
  if (t == NULL || t->type != TSR_DTYPE_F32 || (int64_t) t->n_elements != n)
    return tsr_error_set (err, TSR_EFORMAT, "The model's “%s” is missing or not %lld f32 values; "
                          "convert it again with tessera-cli convert.", name, (long long) n);
  if (((uintptr_t) t->data) % sizeof (float) != 0)
    return tsr_error_set (err, TSR_EFORMAT, "The model's “%s” is not aligned for reading.", name);
  *out = t->data;
  return TSR_OK;
}

static TsrStatus
get_lora (const TsrGguf *g, int layer, const char *a_name, const char *b_name, float scale,
          Lora *l, TsrError *err)
{
  char name[96];
  TsrStatus st;
  snprintf (name, sizeof name, "blk.%d.%s.lora_a.weight", layer, a_name);
  if ((st = get_mat (g, name, 1, &l->a, err)) != TSR_OK)
    return st;
  snprintf (name, sizeof name, "blk.%d.%s.lora_b.weight", layer, b_name);
  if ((st = get_mat (g, name, 1, &l->b, err)) != TSR_OK)
    return st;
  l->scale = scale;
  return TSR_OK;
}

TsrStatus
tsr_llm_load (const TsrGguf *g, TsrLlm **out, TsrError *err)
{
  TsrLlm *m;
  TsrStatus st;
  uint32_t hd;

  *out = NULL;
  m = calloc (1, sizeof *m);
  if (m == NULL)
    return tsr_error_set (err, TSR_ENOMEM, "Out of memory loading the model.");
  if ((st = tsr_gguf_model_info (g, &m->info, err)) != TSR_OK)
    goto fail;
  m->arch = m->info.arch;
  if (m->arch != TSR_ARCH_LLAMA && m->arch != TSR_ARCH_INTERNLM2_4KHD)
    {
      st = tsr_error_set (err, TSR_EFORMAT, "The model's architecture “%s” is not one Tessera runs.",
                          m->info.arch_name);
      goto fail;
    }
  m->rotate_half = m->arch == TSR_ARCH_INTERNLM2_4KHD;
  m->isa = tsr_isa_best ();
  /* The attention calls sgemm from every thread of our pool: OpenBLAS must
   * not start threads of its own (decoding alone never reaches the
   * products that would set this). */
  tsr_blas_init ();
  hd = m->info.n_head_dim;
  if (hd == 0 || hd % 2 != 0 || m->info.n_head_kv == 0 || m->info.n_head % m->info.n_head_kv != 0)
    {
      st = tsr_error_set (err, TSR_EFORMAT, "The model's attention shape (%u heads, %u key/value heads, "
                          "%u wide) is not one Tessera runs.", m->info.n_head, m->info.n_head_kv, hd);
      goto fail;
    }

  if ((st = get_mat (g, "token_embd.weight", 1, &m->tok_embd, err)) != TSR_OK ||
      (st = get_mat (g, "output.weight", 0, &m->output, err)) != TSR_OK ||
      (st = get_vec (g, "output_norm.weight", m->info.n_embd, &m->output_norm, err)) != TSR_OK)
    goto fail;
  if (!m->output.present)
    m->output = m->tok_embd;

  m->layers = calloc (m->info.n_layer, sizeof *m->layers);
  m->inv_freq = calloc (hd / 2, sizeof *m->inv_freq);
  if (m->layers == NULL || m->inv_freq == NULL)
    {
      st = tsr_error_set (err, TSR_ENOMEM, "Out of memory loading the model.");
      goto fail;
    }
  for (uint32_t i = 0; i < m->info.n_layer; i++)
    {
      Layer *L = &m->layers[i];
      char name[96];
#define MAT(field, suffix)                                                        \
      snprintf (name, sizeof name, "blk.%u." suffix ".weight", i);                \
      if ((st = get_mat (g, name, 1, &L->field, err)) != TSR_OK)                  \
        goto fail;
      MAT (q, "attn_q") MAT (k, "attn_k") MAT (v, "attn_v") MAT (o, "attn_output")
      MAT (gate, "ffn_gate") MAT (up, "ffn_up") MAT (down, "ffn_down")
#undef MAT
      snprintf (name, sizeof name, "blk.%u.attn_norm.weight", i);
      if ((st = get_vec (g, name, m->info.n_embd, &L->attn_norm, err)) != TSR_OK)
        goto fail;
      snprintf (name, sizeof name, "blk.%u.ffn_norm.weight", i);
      if ((st = get_vec (g, name, m->info.n_embd, &L->ffn_norm, err)) != TSR_OK)
        goto fail;
      if (m->arch == TSR_ARCH_INTERNLM2_4KHD)
        {
          const float *s = m->info.plora_scale;
          if ((st = get_lora (g, (int) i, "attn_qkv", "attn_q", s[TSR_PLORA_ATTN_QKV], &L->lq, err)) ||
              (st = get_lora (g, (int) i, "attn_qkv", "attn_k", s[TSR_PLORA_ATTN_QKV], &L->lk, err)) ||
              (st = get_lora (g, (int) i, "attn_qkv", "attn_v", s[TSR_PLORA_ATTN_QKV], &L->lv, err)) ||
              (st = get_lora (g, (int) i, "attn_output", "attn_output", s[TSR_PLORA_ATTN_OUTPUT], &L->lo, err)) ||
              (st = get_lora (g, (int) i, "ffn_gate", "ffn_gate", s[TSR_PLORA_FFN_GATE], &L->lgate, err)) ||
              (st = get_lora (g, (int) i, "ffn_up", "ffn_up", s[TSR_PLORA_FFN_UP], &L->lup, err)) ||
              (st = get_lora (g, (int) i, "ffn_down", "ffn_down", s[TSR_PLORA_FFN_DOWN], &L->ldown, err)))
            goto fail;
        }
    }

  /* RoPE frequencies as HF computes them, in f32: 1 / base^(2i/hd). */
  for (uint32_t i = 0; i < hd / 2; i++)
    m->inv_freq[i] = 1.0f / powf (m->info.rope_freq_base, (float) (2 * i) / (float) hd);

  *out = m;
  return TSR_OK;

fail:
  tsr_llm_free (m);
  return st;
}

void
tsr_llm_free (TsrLlm *m)
{
  if (m == NULL)
    return;
  free (m->layers);
  free (m->inv_freq);
  free (m);
}

const TsrGgufModelInfo *
tsr_llm_info (const TsrLlm *m)
{
  return &m->info;
}

/* ==== State ============================================================= */

TsrStatus
tsr_llm_state_new_kv (const TsrLlm *m, int n_ctx, TsrDType kv_type, TsrLlmState **out, TsrError *err)
{
  TsrLlmState *s;
  size_t kv = (size_t) m->info.n_head_kv * m->info.n_head_dim;
  size_t total, esize;

  *out = NULL;
  if (n_ctx <= 0 || n_ctx > TSR_LLM_MAX_CONTEXT)
    return tsr_error_set (err, TSR_EINVAL, "A context of %d tokens is out of range (1 to %d).", n_ctx,
                          TSR_LLM_MAX_CONTEXT);
  if (kv_type != TSR_DTYPE_F32 && kv_type != TSR_DTYPE_F16)
    return tsr_error_set (err, TSR_EINVAL, "Keys and values can be kept as f32 or f16 only.");
  esize = kv_type == TSR_DTYPE_F16 ? 2 : 4;
  total = (size_t) m->info.n_layer * (size_t) n_ctx * kv;
  s = calloc (1, sizeof *s);
  if (s == NULL)
    return tsr_error_set (err, TSR_ENOMEM, "Out of memory for the conversation state.");
  s->llm = m;
  s->n_ctx = n_ctx;
  s->kv_type = kv_type;
  s->k_cache = malloc (total * esize);
  s->v_cache = malloc (total * esize);
  if (s->k_cache == NULL || s->v_cache == NULL)
    {
      tsr_llm_state_free (s);
      return tsr_error_set (err, TSR_ENOMEM, "Out of memory for a %d-token context (%.1f GiB of keys "
                            "and values); use a shorter context.", n_ctx,
                            2.0 * (double) total * (double) esize / (1 << 30));
    }
  *out = s;
  return TSR_OK;
}

TsrStatus
tsr_llm_state_new (const TsrLlm *m, int n_ctx, TsrLlmState **out, TsrError *err)
{
  return tsr_llm_state_new_kv (m, n_ctx, TSR_DTYPE_F32, out, err);
}

size_t
tsr_llm_state_kv_bytes (const TsrLlmState *s)
{
  const TsrLlm *m = s->llm;
  return 2 * (size_t) m->info.n_layer * (size_t) s->n_ctx * m->info.n_head_kv * m->info.n_head_dim *
         (s->kv_type == TSR_DTYPE_F16 ? 2 : 4);
}

void
tsr_llm_state_free (TsrLlmState *s)
{
  if (s == NULL)
    return;
  free (s->k_cache);
  free (s->v_cache);
  free (s);
}

int
tsr_llm_state_pos (const TsrLlmState *s)
{
  return s->pos;
}

void
tsr_llm_state_rewind (TsrLlmState *s, int pos)
{
  if (pos >= 0 && pos < s->pos)
    s->pos = pos;
}

TsrStatus
tsr_llm_state_copy (TsrLlmState *dst, const TsrLlmState *src, int from, TsrError *err)
{
  const TsrLlm *m = src->llm;
  size_t kvd = (size_t) m->info.n_head_kv * m->info.n_head_dim;
  size_t esize = src->kv_type == TSR_DTYPE_F16 ? 2 : 4;

  if (dst->llm != src->llm || dst->kv_type != src->kv_type)
    return tsr_error_set (err, TSR_EINVAL, "Keys and values can be copied only between states of "
                          "one model and one type.");
  if (from < 0 || from > dst->pos || from > src->pos)
    return tsr_error_set (err, TSR_EINVAL, "Cannot copy from row %d: the states hold %d and %d rows.",
                          from, dst->pos, src->pos);
  if (src->pos > dst->n_ctx)
    return tsr_error_set (err, TSR_ETOOLARGE, "%d rows do not fit a state of %d.", src->pos, dst->n_ctx);
  for (uint32_t l = 0; l < m->info.n_layer; l++)
    {
      size_t so = ((size_t) l * src->n_ctx + (size_t) from) * kvd * esize;
      size_t d_o = ((size_t) l * dst->n_ctx + (size_t) from) * kvd * esize;
      size_t n = (size_t) (src->pos - from) * kvd * esize;
      memcpy ((unsigned char *) dst->k_cache + d_o, (const unsigned char *) src->k_cache + so, n);
      memcpy ((unsigned char *) dst->v_cache + d_o, (const unsigned char *) src->v_cache + so, n);
    }
  dst->pos = src->pos;
  return TSR_OK;
}

/* ==== Pieces of the forward pass ======================================== */

static double
now_ms (void)
{
  struct timespec ts;
  clock_gettime (CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec * 1e-6;
}

static const TsrKernelTable *
kernels (const TsrLlm *m)
{
  return m->isa == TSR_ISA_AVX2 ? &tsr_kernels_avx2 : &tsr_kernels_scalar;
}

static void
rmsnorm (float *y, const float *x, const float *w, int64_t n, float eps)
{
  double ss = 0;
  float r;
  for (int64_t i = 0; i < n; i++)
    ss += (double) x[i] * x[i];
  r = 1.0f / sqrtf ((float) (ss / (double) n) + eps);
  for (int64_t i = 0; i < n; i++)
    y[i] = (x[i] * r) * w[i];
}

static void
rope (const TsrLlm *m, float *v, int n_heads, int pos)
{
  int hd = (int) m->info.n_head_dim, half = hd / 2;
  for (int i = 0; i < half; i++)
    {
      float a = (float) pos * m->inv_freq[i];
      float c = cosf (a), s = sinf (a);
      for (int h = 0; h < n_heads; h++)
        {
          float *x = v + (size_t) h * hd;
          if (m->rotate_half)
            {
              float x0 = x[i], x1 = x[i + half];
              x[i] = x0 * c - x1 * s;
              x[i + half] = x1 * c + x0 * s;
            }
          else
            {
              float x0 = x[2 * i], x1 = x[2 * i + 1];
              x[2 * i] = x0 * c - x1 * s;
              x[2 * i + 1] = x1 * c + x0 * s;
            }
        }
    }
}

/* ---- Row-wise passes, on the pool ---------------------------------------
 *
 * Between the products everything is row by row. Run on one thread, these
 * passes left the other core idle for ≈5% of a prefill; each thread now
 * takes a contiguous share of the rows. */

typedef enum {
  ROWS_NORM,       /* x = rmsnorm (h)·w */
  ROWS_ADD_NORM,   /* h += d, then x = rmsnorm (h)·w when w is set */
  ROWS_ROPE,       /* RoPE on q and k; k and v into the cache at pos0 */
  ROWS_SWIGLU,     /* x = silu (x)·d, x and d n × width */
  ROWS_LORA_ADD,   /* x[rows[i]] += scale·d[i] (row i itself when rows is NULL) */
} RowsOp;

typedef struct {
  RowsOp        op;
  const TsrLlm *m;
  int           n;
  int64_t       width;
  float        *h, *x;
  const float  *d, *w;
  /* ROWS_ROPE */
  float        *q, *k;
  const float  *v;
  void         *kc, *vc;
  TsrDType      kv_type;
  int           pos0;
  /* ROWS_LORA_ADD */
  const int    *rows;
  float         scale;
} RowsJob;

static void
rows_job (void *ctx, int ith, int nth)
{
  RowsJob *j = ctx;
  const TsrLlm *m = j->m;
  int i0 = (int) ((int64_t) j->n * ith / nth), i1 = (int) ((int64_t) j->n * (ith + 1) / nth);
  int64_t W = j->width;

  for (int i = i0; i < i1; i++)
    switch (j->op)
      {
      case ROWS_NORM:
        rmsnorm (j->x + (size_t) i * W, j->h + (size_t) i * W, j->w, W, m->info.rms_eps);
        break;
      case ROWS_ADD_NORM:
        {
          float *hr = j->h + (size_t) i * W;
          const float *dr = j->d + (size_t) i * W;
          for (int64_t e = 0; e < W; e++)
            hr[e] += dr[e];
          if (j->w != NULL)
            rmsnorm (j->x + (size_t) i * W, hr, j->w, W, m->info.rms_eps);
        }
        break;
      case ROWS_ROPE:
        {
          int H = (int) m->info.n_head, Hkv = (int) m->info.n_head_kv;
          int64_t qd = (int64_t) H * m->info.n_head_dim, kvd = (int64_t) Hkv * m->info.n_head_dim;
          size_t at = (size_t) (j->pos0 + i) * (size_t) kvd;
          float *kr = j->k + (size_t) i * kvd;
          const float *vr = j->v + (size_t) i * kvd;
          rope (m, j->q + (size_t) i * qd, H, j->pos0 + i);
          rope (m, kr, Hkv, j->pos0 + i);
          if (j->kv_type == TSR_DTYPE_F16)
            for (int64_t e = 0; e < kvd; e++)
              {
                ((uint16_t *) j->kc)[at + e] = tsr_f32_to_f16 (kr[e]);
                ((uint16_t *) j->vc)[at + e] = tsr_f32_to_f16 (vr[e]);
              }
          else
            {
              memcpy ((float *) j->kc + at, kr, (size_t) kvd * sizeof (float));
              memcpy ((float *) j->vc + at, vr, (size_t) kvd * sizeof (float));
            }
        }
        break;
      case ROWS_SWIGLU:
        kernels (m)->silu_mul (j->x + (size_t) i * W, j->d + (size_t) i * W, W);
        break;
      case ROWS_LORA_ADD:
        {
          float *yr = j->x + (size_t) (j->rows != NULL ? j->rows[i] : i) * W;
          const float *dr = j->d + (size_t) i * W;
          for (int64_t e = 0; e < W; e++)
            yr[e] += j->scale * dr[e];
        }
        break;
      }
}

/* A few rows (decoding) are not worth waking the pool for: each run is a
 * hand-over between threads, and a busy machine makes those slow. */
static void
run_rows (TsrPool *pool, RowsJob *j)
{
  if (j->n < 16)
    rows_job (j, 0, 1);
  else
    tsr_pool_run (pool, rows_job, j);
}

typedef struct {
  TsrPool       *pool;
  TsrIsa         isa;
  const TsrLlm  *m;
  int            n;            /* rows in this chunk */
  int            n_img;
  int           *img_rows;     /* [n_img] */
  float         *lx, *la, *lb; /* LoRA scratch */
  TsrLlmProfile *prof;
} Ctx;

/* What the LoRA scratch already holds for this x: nothing, its image rows
 * (gate and up read one x), or also x·Aᵀ (q, k and v share A). */
typedef enum { LORA_FRESH, LORA_SAME_X, LORA_SAME_X_AND_A } LoraReuse;

/* y[n][out] = x[n][in]·Wᵀ, then + scale·(x·Aᵀ)·Bᵀ on image rows only: text
 * rows never pay for the Partial LoRA. */
static TsrStatus
linear (Ctx *c, const Mat *w, const Lora *l, LoraReuse reuse, const float *x, float *y, TsrError *err)
{
  double t0 = now_ms ();
  TsrStatus st = tsr_matmul (c->pool, c->isa, &w->w, x, c->n, w->w.cols, y, w->w.rows, err);
  int64_t in = w->w.cols, out = w->w.rows, r;
  const float *xs = x;
  RowsJob add;

  c->prof->products_ms += now_ms () - t0;
  if (st != TSR_OK || l == NULL || c->n_img == 0 || !l->a.present)
    return st;
  t0 = now_ms ();
  r = l->a.w.rows;
  if (c->n_img < c->n)
    {
      /* Gathered once per x: only when some rows are text. */
      if (reuse == LORA_FRESH)
        for (int i = 0; i < c->n_img; i++)
          memcpy (c->lx + (size_t) i * in, x + (size_t) c->img_rows[i] * in, (size_t) in * sizeof (float));
      xs = c->lx;
    }
  if ((reuse != LORA_SAME_X_AND_A &&
       (st = tsr_matmul (c->pool, c->isa, &l->a.w, xs, c->n_img, in, c->la, r, err)) != TSR_OK) ||
      (st = tsr_matmul (c->pool, c->isa, &l->b.w, c->la, c->n_img, r, c->lb, out, err)) != TSR_OK)
    return st;
  memset (&add, 0, sizeof add);
  add.op = ROWS_LORA_ADD;
  add.m = c->m;
  add.n = c->n_img;
  add.width = out;
  add.x = y;
  add.d = c->lb;
  add.rows = c->n_img < c->n ? c->img_rows : NULL;
  add.scale = l->scale;
  run_rows (c->pool, &add);
  c->prof->lora_ms += now_ms () - t0;
  return TSR_OK;
}

/* Query rows per block of the attention: each block's scores stop at its
 * last row's position, so the causal mask wastes at most a block's square
 * (a 512-row chunk from position 0 costs 62% of its full square, not
 * 100%), and the scratch is a block × context, whatever the chunk. */
#define ATTN_BLOCK 128

typedef struct {
  const TsrLlm *m;
  const float  *q;        /* [n][H·hd] */
  const void   *kc, *vc;  /* this layer's cache, [n_ctx][Hkv·hd] */
  TsrDType      kv_type;
  float        *out;      /* [n][H·hd] */
  float        *scratch;  /* per thread: [ATTN_BLOCK][pos0+n], then K_h and V_h as f32 when f16 */
  size_t        scratch_per_thread;
  int           n, pos0;
} AttnJob;

/* One head's keys or values, [L][hd] out of [L][Hkv·hd] f16, as f32. */
static void
widen_head (const TsrLlm *m, const uint16_t *src, int ld, int L, float *dst)
{
  int hd = (int) m->info.n_head_dim;
  const TsrKernelTable *kt = kernels (m);
  for (int t = 0; t < L; t++)
    kt->dequantize[1] (src + (size_t) t * ld, dst + (size_t) t * hd, hd);
}

/* One head at a time per thread, a block of query rows at a time: scores
 * = Q_h·K_hᵀ through BLAS, causal mask, softmax in f32 (as HF), then
 * P·V_h. */
static void
attn_job (void *ctx, int ith, int nth)
{
  AttnJob *j = ctx;
  int H = (int) j->m->info.n_head, Hkv = (int) j->m->info.n_head_kv, hd = (int) j->m->info.n_head_dim;
  int L = j->pos0 + j->n;
  int ldq = H * hd, ldk = Hkv * hd;
  float *P = j->scratch + (size_t) ith * j->scratch_per_thread;
  float scale = 1.0f / sqrtf ((float) hd);
  const TsrKernelTable *kt = kernels (j->m);

  if (j->n == 1 && j->kv_type != TSR_DTYPE_F16)
    {
      /* Decoding: one query row. The H/Hkv heads that share a key/value
       * head go through it together, so each thread reads its part of the
       * cache once a layer rather than once per query head. */
      int G = H / Hkv;
      for (int g = ith; g < Hkv; g += nth)
        {
          const float *kh = (const float *) j->kc + g * hd, *vh = (const float *) j->vc + g * hd;
          cblas_sgemm (CblasRowMajor, CblasNoTrans, CblasTrans, G, L, hd, scale, j->q + (size_t) g * G * hd, hd,
                       kh, ldk, 0.0f, P, L);
          for (int r = 0; r < G; r++)
            kt->softmax (P + (size_t) r * L, L);
          cblas_sgemm (CblasRowMajor, CblasNoTrans, CblasNoTrans, G, hd, L, 1.0f, P, L, vh, ldk, 0.0f,
                       j->out + (size_t) g * G * hd, hd);
        }
      return;
    }
  for (int h = ith; h < H; h += nth)
    {
      int kvh = h / (H / Hkv);
      const float *kh, *vh;
      int ldkv;
      if (j->kv_type == TSR_DTYPE_F16)
        {
          /* After the scores of the largest block this call has. */
          float *kf = P + (size_t) (j->n < ATTN_BLOCK ? j->n : ATTN_BLOCK) * L, *vf = kf + (size_t) L * hd;
          widen_head (j->m, (const uint16_t *) j->kc + kvh * hd, ldk, L, kf);
          widen_head (j->m, (const uint16_t *) j->vc + kvh * hd, ldk, L, vf);
          kh = kf;
          vh = vf;
          ldkv = hd;
        }
      else
        {
          kh = (const float *) j->kc + kvh * hd;
          vh = (const float *) j->vc + kvh * hd;
          ldkv = ldk;
        }
      for (int b0 = 0; b0 < j->n; b0 += ATTN_BLOCK)
        {
          int bn = j->n - b0 < ATTN_BLOCK ? j->n - b0 : ATTN_BLOCK;
          int Lb = j->pos0 + b0 + bn;   /* positions the block's last row sees */
          cblas_sgemm (CblasRowMajor, CblasNoTrans, CblasTrans, bn, Lb, hd, scale,
                       j->q + (size_t) b0 * ldq + h * hd, ldq, kh, ldkv, 0.0f, P, Lb);
          for (int i = 0; i < bn; i++)
            {
              float *p = P + (size_t) i * Lb;
              int last = j->pos0 + b0 + i;   /* row b0 + i sees positions 0..last */
              kt->softmax (p, last + 1);
              memset (p + last + 1, 0, (size_t) (Lb - last - 1) * sizeof (float));
            }
          cblas_sgemm (CblasRowMajor, CblasNoTrans, CblasNoTrans, bn, hd, Lb, 1.0f, P, Lb,
                       vh, ldkv, 0.0f, j->out + (size_t) b0 * ldq + h * hd, ldq);
        }
    }
}

/* ==== Forward =========================================================== */

void
tsr_llm_state_profile (TsrLlmState *s, TsrLlmProfile *profile, int reset)
{
  if (profile != NULL)
    *profile = s->prof;
  if (reset)
    memset (&s->prof, 0, sizeof s->prof);
}

TsrStatus
tsr_llm_forward (const TsrLlm *m, TsrLlmState *s, TsrPool *pool, const TsrLlmInput *in, int n,
                 float *logits, const TsrLlmAbort *abort_cb, TsrError *err)
{
  int64_t E = m->info.n_embd, F = m->info.n_ff;
  int H = (int) m->info.n_head, Hkv = (int) m->info.n_head_kv, hd = (int) m->info.n_head_dim;
  int64_t qd = (int64_t) H * hd, kvd = (int64_t) Hkv * hd;
  int nth = tsr_pool_size (pool);
  int start_pos = s->pos;
  const int CHUNK = TSR_LLM_PREFILL_CHUNK;
  TsrStatus st = TSR_OK;
  float *h = NULL, *x = NULL, *q = NULL, *k = NULL, *v = NULL, *g = NULL, *u = NULL, *tmp = NULL;
  float *scratch = NULL, *lx = NULL, *la = NULL, *lb = NULL;
  int *img_rows = NULL;
  size_t scratch_per_thread;
  int64_t lora_in = E > F ? E : F, lora_r = 0, lora_out = E > F ? E : F;
  double t_start = now_ms (), t0;
  Ctx c;

  if (n <= 0)
    return tsr_error_set (err, TSR_EINVAL, "Nothing to feed the model.");
  if (s->pos + n > s->n_ctx)
    return tsr_error_set (err, TSR_ETOOLARGE, "The conversation would reach %d tokens, past its limit "
                          "of %d. Start a new conversation or use a lower HD-N.", s->pos + n, s->n_ctx);
  if (m->arch == TSR_ARCH_INTERNLM2_4KHD)
    for (int i = 0; i < TSR_PLORA_COUNT; i++)
      lora_r = m->info.plora_rank[i] > lora_r ? m->info.plora_rank[i] : lora_r;
  if (qd + 2 * kvd > lora_out)
    lora_out = qd + 2 * kvd;
  if (qd > lora_in)
    lora_in = qd;

  {
    int chunk = n < CHUNK ? n : CHUNK;
    int block = chunk < ATTN_BLOCK ? chunk : ATTN_BLOCK;
    /* A decoded row's scores: one row per query head of a key/value head. */
    if (n == 1 && block < (int) (m->info.n_head / m->info.n_head_kv))
      block = (int) (m->info.n_head / m->info.n_head_kv);
    scratch_per_thread = (size_t) block * (size_t) (s->pos + n);
    if (s->kv_type == TSR_DTYPE_F16)
      scratch_per_thread += 2 * (size_t) (s->pos + n) * (size_t) hd;
    h = malloc ((size_t) chunk * E * sizeof (float));
    x = malloc ((size_t) chunk * E * sizeof (float));
    q = malloc ((size_t) chunk * qd * sizeof (float));
    k = malloc ((size_t) chunk * kvd * sizeof (float));
    v = malloc ((size_t) chunk * kvd * sizeof (float));
    /* g also holds the attention's output (H·hd wide) before the FFN. */
    g = malloc ((size_t) chunk * (F > qd ? F : qd) * sizeof (float));
    u = malloc ((size_t) chunk * F * sizeof (float));
    tmp = malloc ((size_t) chunk * E * sizeof (float));
    scratch = malloc (scratch_per_thread * (size_t) nth * sizeof (float));
    img_rows = malloc ((size_t) chunk * sizeof (int));
    if (lora_r > 0)
      {
        lx = malloc ((size_t) chunk * lora_in * sizeof (float));
        la = malloc ((size_t) chunk * lora_r * sizeof (float));
        lb = malloc ((size_t) chunk * lora_out * sizeof (float));
      }
    if (!h || !x || !q || !k || !v || !g || !u || !tmp || !scratch || !img_rows ||
        (lora_r > 0 && (!lx || !la || !lb)))
      {
        st = tsr_error_set (err, TSR_ENOMEM, "Out of memory running the model on %d rows.", n);
        goto done;
      }
  }
  c.pool = pool;
  c.isa = m->isa;
  c.m = m;
  c.lx = lx;
  c.la = la;
  c.lb = lb;
  c.img_rows = img_rows;
  c.prof = &s->prof;

  for (int r0 = 0; r0 < n; r0 += CHUNK)
    {
      int cn = n - r0 < CHUNK ? n - r0 : CHUNK;
      int pos0 = s->pos;
      RowsJob rj;
      c.n = cn;
      c.n_img = 0;

      /* Embeddings: a token's row of token_embd, or the caller's row. */
      for (int i = 0; i < cn; i++)
        {
          const TsrLlmInput *r = &in[r0 + i];
          float *hr = h + (size_t) i * E;
          if (r->embd != NULL)
            {
              memcpy (hr, r->embd, (size_t) E * sizeof (float));
              if (r->image && m->arch == TSR_ARCH_INTERNLM2_4KHD)
                img_rows[c.n_img++] = i;
            }
          else
            {
              if (r->token < 0 || r->token >= m->tok_embd.w.rows)
                {
                  st = tsr_error_set (err, TSR_EINVAL, "Token id %d is outside the vocabulary.", r->token);
                  goto rollback;
                }
              if ((st = tsr_dequantize_row (m->tok_embd.w.type,
                                            (const unsigned char *) m->tok_embd.w.data +
                                              (size_t) r->token * m->tok_embd.w.row_bytes,
                                            hr, (size_t) E, err)) != TSR_OK)
                goto rollback;
            }
        }

      memset (&rj, 0, sizeof rj);
      rj.m = m;
      rj.n = cn;
      rj.width = E;
      rj.h = h;
      rj.x = x;
      rj.op = ROWS_NORM;
      rj.w = m->layers[0].attn_norm;
      t0 = now_ms ();
      run_rows (pool, &rj);
      s->prof.other_ms += now_ms () - t0;

      for (uint32_t l = 0; l < m->info.n_layer; l++)
        {
          const Layer *L = &m->layers[l];
          size_t esize = s->kv_type == TSR_DTYPE_F16 ? 2 : 4;
          unsigned char *kc = (unsigned char *) s->k_cache + (size_t) l * s->n_ctx * kvd * esize;
          unsigned char *vc = (unsigned char *) s->v_cache + (size_t) l * s->n_ctx * kvd * esize;
          AttnJob aj;

          if (abort_cb != NULL && abort_cb->func != NULL && abort_cb->func (abort_cb->user_data))
            {
              st = tsr_error_set (err, TSR_ECANCELLED, "Stopped.");
              goto rollback;
            }
          /* x = attn_norm (h), made by the previous layer's last pass. */
          if ((st = linear (&c, &L->q, L->lq.a.present ? &L->lq : NULL, LORA_FRESH, x, q, err)) ||
              (st = linear (&c, &L->k, L->lk.a.present ? &L->lk : NULL, LORA_SAME_X_AND_A, x, k, err)) ||
              (st = linear (&c, &L->v, L->lv.a.present ? &L->lv : NULL, LORA_SAME_X_AND_A, x, v, err)))
            goto rollback;

          t0 = now_ms ();
          memset (&rj, 0, sizeof rj);
          rj.op = ROWS_ROPE;
          rj.m = m;
          rj.n = cn;
          rj.q = q;
          rj.k = k;
          rj.v = v;
          rj.kc = kc;
          rj.vc = vc;
          rj.kv_type = s->kv_type;
          rj.pos0 = pos0;
          run_rows (pool, &rj);
          s->prof.other_ms += now_ms () - t0;

          t0 = now_ms ();
          aj.m = m;
          aj.q = q;
          aj.kc = kc;
          aj.vc = vc;
          aj.kv_type = s->kv_type;
          aj.out = g;
          aj.scratch = scratch;
          aj.scratch_per_thread = scratch_per_thread;
          aj.n = cn;
          aj.pos0 = pos0;
          tsr_pool_run (pool, attn_job, &aj);
          s->prof.attention_ms += now_ms () - t0;

          if ((st = linear (&c, &L->o, L->lo.a.present ? &L->lo : NULL, LORA_FRESH, g, tmp, err)))
            goto rollback;

          t0 = now_ms ();
          memset (&rj, 0, sizeof rj);
          rj.op = ROWS_ADD_NORM;
          rj.m = m;
          rj.n = cn;
          rj.width = E;
          rj.h = h;
          rj.d = tmp;
          rj.x = x;
          rj.w = L->ffn_norm;
          run_rows (pool, &rj);
          s->prof.other_ms += now_ms () - t0;

          if ((st = linear (&c, &L->gate, L->lgate.a.present ? &L->lgate : NULL, LORA_FRESH, x, g, err)) ||
              (st = linear (&c, &L->up, L->lup.a.present ? &L->lup : NULL, LORA_SAME_X, x, u, err)))
            goto rollback;

          t0 = now_ms ();
          memset (&rj, 0, sizeof rj);
          rj.op = ROWS_SWIGLU;
          rj.m = m;
          rj.n = cn;
          rj.width = F;
          rj.x = g;
          rj.d = u;
          run_rows (pool, &rj);
          s->prof.other_ms += now_ms () - t0;

          if ((st = linear (&c, &L->down, L->ldown.a.present ? &L->ldown : NULL, LORA_FRESH, g, tmp, err)))
            goto rollback;

          /* h += FFN; then the next layer's attn_norm, fused into the pass. */
          t0 = now_ms ();
          memset (&rj, 0, sizeof rj);
          rj.op = ROWS_ADD_NORM;
          rj.m = m;
          rj.n = cn;
          rj.width = E;
          rj.h = h;
          rj.d = tmp;
          rj.x = x;
          rj.w = l + 1 < m->info.n_layer ? m->layers[l + 1].attn_norm : NULL;
          run_rows (pool, &rj);
          s->prof.other_ms += now_ms () - t0;
        }
      s->pos += cn;

      if (logits != NULL && r0 + cn == n)
        {
          Ctx lc = c;
          lc.n = 1;
          lc.n_img = 0;
          rmsnorm (x, h + (size_t) (cn - 1) * E, m->output_norm, E, m->info.rms_eps);
          if ((st = linear (&lc, &m->output, NULL, LORA_FRESH, x, logits, err)) != TSR_OK)
            goto rollback;
        }
    }
  goto done;

rollback:
  /* A failed or stopped call leaves the state as it was before it. */
  s->pos = start_pos;
done:
  free (h);
  free (x);
  free (q);
  free (k);
  free (v);
  free (g);
  free (u);
  free (tmp);
  free (scratch);
  free (img_rows);
  free (lx);
  free (la);
  free (lb);
  s->prof.total_ms += now_ms () - t_start;
  s->prof.rows += st == TSR_OK ? n : 0;
  return st;
}
