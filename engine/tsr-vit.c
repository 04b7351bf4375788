/* SPDX-License-Identifier: GPL-3.0-or-later
 *
 * tsr-vit.c — the CLIP ViT-L/14-336 of InternLM-XComposer2-4KHD (model.md
 * §5), and the vision handle behind tsr_vision_encode (§6).
 *
 * Per batch of views, with M = views·577 rows:
 *   patches (im2col, 588 values each) · patch_embdᵀ; class token; + positions;
 *   pre-LN; then per block
 *     h = LN1(x); q, k, v = h·Wᵀ + b; per (view, head) softmax(q·kᵀ/√d)·v;
 *     x += attn·Woᵀ + bo; h = LN2(x); x += quick_gelu(h·W1ᵀ + b1)·W2ᵀ + b2.
 * The features are the last block's x without post-layernorm.
 *
 * Memory per batch: x and h [M, E], and one buffer of [M, max(4E, F)] that
 * holds q, k, v and the attention output during attention and the MLP's
 * hidden layer after it; plus one 577×577 score matrix per thread.
 */
#include "tsr-vit.h"

#include <cblas.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#include "tsr-exp8.h"
#define TSR_VIT_X86 1
#endif

#include "tsr-blas.h"
#include "tsr-error.h"

static double
now_ms (void)
{
  struct timespec ts;
  clock_gettime (CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec * 1e-6;
}

/* ==== Row kernels ======================================================= *
 *
 * Softmax and quick_gelu need an exp per score and per hidden value — 180
 * million a view — and libm's expf would cost as much as a fifth of the
 * products. The AVX2 versions use a Cephes-style polynomial (≈1 ulp);
 * this file is built without -mavx2, so they carry a target attribute and
 * run only when the caller's isa says the CPU has AVX2.
 */

static void
softmax_row_scalar (float *s, int n)
{
  float mx = s[0], sum = 0.0f, inv;
  for (int i = 1; i < n; i++)
    mx = s[i] > mx ? s[i] : mx;
  for (int i = 0; i < n; i++)
    {
      s[i] = expf (s[i] - mx);
      sum += s[i];
    }
  inv = 1.0f / sum;
  for (int i = 0; i < n; i++)
    s[i] *= inv;
}

static void
quick_gelu_row_scalar (float *y, const float *b, int n)
{
  for (int i = 0; i < n; i++)
    {
      float x = y[i] + b[i];
      y[i] = x / (1.0f + expf (-1.702f * x));
    }
}

/* y = LN(x)·w + b, statistics over n values as PyTorch takes them
 * (biased variance). */
static void
layer_norm_row_scalar (const float *x, float *y, const float *w, const float *b, int n, float eps)
{
  float mean = 0.0f, var = 0.0f, rstd;
  for (int i = 0; i < n; i++)
    mean += x[i];
  mean /= (float) n;
  for (int i = 0; i < n; i++)
    var += (x[i] - mean) * (x[i] - mean);
  rstd = 1.0f / sqrtf (var / (float) n + eps);
  for (int i = 0; i < n; i++)
    y[i] = (x[i] - mean) * rstd * w[i] + b[i];
}

#ifdef TSR_VIT_X86
#define AVX2_FN __attribute__ ((target ("avx2,fma")))

AVX2_FN static inline float
hsum8 (__m256 v)
{
  __m128 s = _mm_add_ps (_mm256_castps256_ps128 (v), _mm256_extractf128_ps (v, 1));
  s = _mm_add_ps (s, _mm_movehl_ps (s, s));
  s = _mm_add_ss (s, _mm_movehdup_ps (s));
  return _mm_cvtss_f32 (s);
}

AVX2_FN static inline float
hmax8 (__m256 v)
{
  __m128 s = _mm_max_ps (_mm256_castps256_ps128 (v), _mm256_extractf128_ps (v, 1));
  s = _mm_max_ps (s, _mm_movehl_ps (s, s));
  s = _mm_max_ss (s, _mm_movehdup_ps (s));
  return _mm_cvtss_f32 (s);
}

/* Tails of fewer than 8 values go through a masked load/store. */
AVX2_FN static inline __m256i
tail_mask (int n)
{
  return _mm256_cmpgt_epi32 (_mm256_set1_epi32 (n), _mm256_setr_epi32 (0, 1, 2, 3, 4, 5, 6, 7));
}

AVX2_FN static void
softmax_row_avx2 (float *s, int n)
{
  int i, t = n & 7;
  __m256i m = tail_mask (t);
  __m256 vmax = _mm256_set1_ps (-INFINITY), vsum = _mm256_setzero_ps (), vm, inv;
  float mx;

  for (i = 0; i + 8 <= n; i += 8)
    vmax = _mm256_max_ps (vmax, _mm256_loadu_ps (s + i));
  if (t)
    vmax = _mm256_max_ps (vmax, _mm256_blendv_ps (_mm256_set1_ps (-INFINITY),
                                                  _mm256_maskload_ps (s + i, m),
                                                  _mm256_castsi256_ps (m)));
  mx = hmax8 (vmax);
  vm = _mm256_set1_ps (mx);
  for (i = 0; i + 8 <= n; i += 8)
    {
      __m256 e = tsr_exp8 (_mm256_sub_ps (_mm256_loadu_ps (s + i), vm));
      _mm256_storeu_ps (s + i, e);
      vsum = _mm256_add_ps (vsum, e);
    }
  if (t)
    {
      __m256 e = tsr_exp8 (_mm256_sub_ps (_mm256_maskload_ps (s + i, m), vm));
      e = _mm256_and_ps (e, _mm256_castsi256_ps (m));
      _mm256_maskstore_ps (s + i, m, e);
      vsum = _mm256_add_ps (vsum, e);
    }
  inv = _mm256_set1_ps (1.0f / hsum8 (vsum));
  for (i = 0; i + 8 <= n; i += 8)
    _mm256_storeu_ps (s + i, _mm256_mul_ps (_mm256_loadu_ps (s + i), inv));
  if (t)
    _mm256_maskstore_ps (s + i, m, _mm256_mul_ps (_mm256_maskload_ps (s + i, m), inv));
}

AVX2_FN static void
quick_gelu_row_avx2 (float *y, const float *b, int n)
{
  const __m256 k = _mm256_set1_ps (-1.702f), one = _mm256_set1_ps (1.0f);
  int i;
  for (i = 0; i + 8 <= n; i += 8)
    {
      __m256 x = _mm256_add_ps (_mm256_loadu_ps (y + i), _mm256_loadu_ps (b + i));
      _mm256_storeu_ps (y + i, _mm256_div_ps (x, _mm256_add_ps (one, tsr_exp8 (_mm256_mul_ps (k, x)))));
    }
  if (i < n)
    quick_gelu_row_scalar (y + i, b + i, n - i);
}

AVX2_FN static void
layer_norm_row_avx2 (const float *x, float *y, const float *w, const float *b, int n, float eps)
{
  __m256 s = _mm256_setzero_ps (), vmean, vr;
  float mean, var = 0.0f, rstd;
  int i;

  for (i = 0; i + 8 <= n; i += 8)
    s = _mm256_add_ps (s, _mm256_loadu_ps (x + i));
  mean = hsum8 (s);
  for (; i < n; i++)
    mean += x[i];
  mean /= (float) n;
  vmean = _mm256_set1_ps (mean);
  s = _mm256_setzero_ps ();
  for (i = 0; i + 8 <= n; i += 8)
    {
      __m256 d = _mm256_sub_ps (_mm256_loadu_ps (x + i), vmean);
      s = _mm256_fmadd_ps (d, d, s);
    }
  var = hsum8 (s);
  for (; i < n; i++)
    var += (x[i] - mean) * (x[i] - mean);
  rstd = 1.0f / sqrtf (var / (float) n + eps);
  vr = _mm256_set1_ps (rstd);
  for (i = 0; i + 8 <= n; i += 8)
    {
      __m256 d = _mm256_mul_ps (_mm256_sub_ps (_mm256_loadu_ps (x + i), vmean), vr);
      _mm256_storeu_ps (y + i, _mm256_fmadd_ps (d, _mm256_loadu_ps (w + i), _mm256_loadu_ps (b + i)));
    }
  for (; i < n; i++)
    y[i] = (x[i] - mean) * rstd * w[i] + b[i];
}
#endif

typedef struct {
  void (*softmax) (float *s, int n);
  void (*quick_gelu) (float *y, const float *b, int n);
  void (*layer_norm) (const float *x, float *y, const float *w, const float *b, int n, float eps);
} RowKernels;

static RowKernels
row_kernels (TsrIsa isa)
{
#ifdef TSR_VIT_X86
  if (isa == TSR_ISA_AVX2)
    return (RowKernels) { softmax_row_avx2, quick_gelu_row_avx2, layer_norm_row_avx2 };
#endif
  (void) isa;
  return (RowKernels) { softmax_row_scalar, quick_gelu_row_scalar, layer_norm_row_scalar };
}

/* ==== Working memory ==================================================== */

struct TsrVitWork
{
  int            batch, n_threads;
  int            n_pos, n_embd;
  size_t         view_floats;     /* 3·S·S */
  float         *views;           /* batch views */
  float         *x, *h;           /* [batch·n_pos, E] */
  float         *big;             /* q|k|v|attn, the MLP hidden layer, or the patches */
  float         *scores;          /* n_threads × n_pos² */
  float         *scratch;         /* dequantised weight rows, tsr_vision_product's */
  size_t         bytes;
  TsrVitProfile  profile;
};

typedef struct {
  size_t view, act, big, scores, scratch;   /* floats */
} WorkSizes;

static WorkSizes
work_sizes (const TsrVit *vit, int batch, int n_threads)
{
  size_t B = (size_t) batch, E = (size_t) vit->n_embd, P = (size_t) vit->patch;
  size_t np = (size_t) vit->n_pos, wide = 4 * E > (size_t) vit->n_ff ? 4 * E : (size_t) vit->n_ff;
  size_t patches = (size_t) vit->side * (size_t) vit->side * 3 * P * P;
  WorkSizes s;

  s.view = 3 * (size_t) vit->image_size * (size_t) vit->image_size;
  s.act = B * np * E;
  s.big = B * (np * wide > patches ? np * wide : patches);
  s.scores = (size_t) n_threads * np * np;
  s.scratch = tsr_vision_product_scratch (n_threads);
  return s;
}

size_t
tsr_vit_work_bytes (const TsrVit *vit, int batch, int n_threads)
{
  WorkSizes s = work_sizes (vit, batch, n_threads);
  return (s.view * (size_t) batch + 2 * s.act + s.big + s.scores + s.scratch) * sizeof (float);
}

static float *
alloc_floats (size_t n)
{
  void *p = NULL;
  /* Cache-line aligned: the products and row kernels stream these. */
  if (posix_memalign (&p, 64, (n ? n : 1) * sizeof (float)) != 0)
    return NULL;
  return p;
}

TsrStatus
tsr_vit_work_new (const TsrVit *vit, int batch, int n_threads, TsrVitWork **out, TsrError *err)
{
  TsrVitWork *w;
  WorkSizes s;

  *out = NULL;
  if (batch < 1 || n_threads < 1)
    return tsr_error_set (err, TSR_EINVAL, "A batch of %d views on %d threads cannot run.", batch,
                          n_threads);
  s = work_sizes (vit, batch, n_threads);
  w = calloc (1, sizeof *w);
  if (w == NULL)
    return tsr_error_set (err, TSR_ENOMEM, "Out of memory for the vision tower's working memory.");
  w->batch = batch;
  w->n_threads = n_threads;
  w->n_pos = vit->n_pos;
  w->n_embd = vit->n_embd;
  w->view_floats = s.view;
  w->views = alloc_floats (s.view * (size_t) batch);
  w->x = alloc_floats (s.act);
  w->h = alloc_floats (s.act);
  w->big = alloc_floats (s.big);
  w->scores = alloc_floats (s.scores);
  w->scratch = alloc_floats (s.scratch);
  w->bytes = tsr_vit_work_bytes (vit, batch, n_threads);
  if (w->views == NULL || w->x == NULL || w->h == NULL || w->big == NULL || w->scores == NULL ||
      w->scratch == NULL)
    {
      size_t bytes = w->bytes;
      tsr_vit_work_free (w);
      return tsr_error_set (err, TSR_ENOMEM, "Out of memory for the vision tower's working memory "
                            "(%.0f MB for %d views at a time); use a smaller batch.",
                            bytes / 1e6, batch);
    }
  *out = w;
  return TSR_OK;
}

void
tsr_vit_work_free (TsrVitWork *w)
{
  if (w == NULL)
    return;
  free (w->views);
  free (w->x);
  free (w->h);
  free (w->big);
  free (w->scores);
  free (w->scratch);
  free (w);
}

float *
tsr_vit_work_view (TsrVitWork *w, int i)
{
  return w->views + (size_t) i * w->view_floats;
}

const float *
tsr_vit_work_features (const TsrVitWork *w, int i)
{
  return w->x + ((size_t) i * (size_t) w->n_pos + 1) * (size_t) w->n_embd;
}

float *
tsr_vit_work_scratch (TsrVitWork *w)
{
  return w->scratch;
}

void
tsr_vit_work_profile (TsrVitWork *w, TsrVitProfile *profile, int reset)
{
  if (profile != NULL)
    *profile = w->profile;
  if (reset)
    memset (&w->profile, 0, sizeof w->profile);
}

/* ==== The forward pass ================================================== */

double
tsr_vit_flops_per_view (const TsrVit *vit)
{
  double np = vit->n_pos, E = vit->n_embd, F = vit->n_ff, S = (double) vit->side * vit->side;
  double patch = 2.0 * S * E * 3.0 * vit->patch * vit->patch;
  double linear = 2.0 * np * (4.0 * E * E + 2.0 * E * F);
  double attention = 2.0 * 2.0 * np * np * E;   /* q·kᵀ and p·v over all heads */
  return patch + vit->n_layer * (linear + attention);
}

typedef struct {
  const TsrVit *vit;
  TsrVitWork   *w;
  TsrPool      *pool;
  TsrIsa        isa;
  RowKernels    rk;
  int           n_views;
  int64_t       m;             /* n_views · n_pos */
  TsrVitProducts products;
  /* The pass being run. */
  const TsrVitLayer *layer, *next;
} Fwd;

/* Attention calls sgemm from every thread of the pool at once: OpenBLAS
 * must run each call on the calling thread alone. */
static pthread_once_t blas_once = PTHREAD_ONCE_INIT;

static void
blas_setup (void)
{
  tsr_blas_init ();
}

static TsrStatus
product (Fwd *f, const TsrWeights *wt, const float *x, int64_t m, int64_t ldx, float *y,
         int64_t ldy, TsrError *err)
{
  double t0 = now_ms ();
  TsrStatus st = TSR_OK;

  if (f->products == TSR_VIT_PRODUCTS_VISION)
    st = tsr_vision_product (f->pool, f->isa, wt, x, m, ldx, y, ldy, f->w->scratch, err);
  else if (f->products == TSR_VIT_PRODUCTS_MATMUL)
    st = tsr_matmul (f->pool, f->isa, wt, x, m, ldx, y, ldy, err);
  else if (wt->type != TSR_DTYPE_F32)
    st = tsr_error_set (err, TSR_EINVAL, "The OpenBLAS yardstick runs f32 weights only.");
  else
    {
      /* The yardstick an f32 engine would be: one sgemm on OpenBLAS's own
       * threads, with ours asleep so the two pools do not fight. */
      tsr_pool_rest (f->pool);
      openblas_set_num_threads (tsr_pool_size (f->pool));
      cblas_sgemm (CblasRowMajor, CblasNoTrans, CblasTrans, (int) m, (int) wt->rows, (int) wt->cols,
                   1.0f, x, (int) ldx, wt->data, (int) (wt->row_bytes / sizeof (float)), 0.0f, y,
                   (int) ldy);
      openblas_set_num_threads (1);
    }
  f->w->profile.products_ms += now_ms () - t0;
  return st;
}

static void
run_other (Fwd *f, TsrPoolFn fn)
{
  double t0 = now_ms ();
  tsr_pool_run (f->pool, fn, f);
  f->w->profile.other_ms += now_ms () - t0;
}

/* Patch p of view v becomes row v·side² + p: its 3·P·P pixels in the conv
 * weight's (channel, kh, kw) order. */
static void
im2col_job (void *ctx, int ith, int nth)
{
  Fwd *f = ctx;
  const TsrVit *vit = f->vit;
  int S = vit->image_size, P = vit->patch, side = vit->side;
  int64_t n = (int64_t) f->n_views * side * side, r0 = n * ith / nth, r1 = n * (ith + 1) / nth;
  size_t K = 3 * (size_t) P * (size_t) P;

  for (int64_t r = r0; r < r1; r++)
    {
      int v = (int) (r / (side * side)), p = (int) (r % (side * side));
      int py = p / side, px = p % side;
      const float *img = tsr_vit_work_view (f->w, v);
      float *dst = f->w->big + (size_t) r * K;
      for (int c = 0; c < 3; c++)
        for (int kh = 0; kh < P; kh++)
          memcpy (dst + ((size_t) c * P + kh) * P,
                  img + ((size_t) c * S + (size_t) py * P + kh) * S + (size_t) px * P,
                  (size_t) P * sizeof (float));
    }
}

/* x = pre_LN(patches + class token + positions); h = LN1 of block 0. */
static void
embed_job (void *ctx, int ith, int nth)
{
  Fwd *f = ctx;
  const TsrVit *vit = f->vit;
  int E = vit->n_embd;
  int64_t r0 = f->m * ith / nth, r1 = f->m * (ith + 1) / nth;

  for (int64_t r = r0; r < r1; r++)
    {
      int t = (int) (r % vit->n_pos);
      float *x = f->w->x + r * E, *h = f->w->h + r * E;
      const float *pos = vit->pos_embd + (size_t) t * E;
      if (t == 0)
        for (int i = 0; i < E; i++)
          x[i] = vit->class_embd[i] + pos[i];
      else
        for (int i = 0; i < E; i++)
          x[i] += pos[i];
      f->rk.layer_norm (x, x, vit->pre_ln_w, vit->pre_ln_b, E, vit->eps);
      if (f->next != NULL)
        f->rk.layer_norm (x, h, f->next->ln1_w, f->next->ln1_b, E, vit->eps);
    }
}

/* One (view, head) at a time: the head's q, k, v get their biases, then
 * softmax(q·kᵀ·scale)·v in the thread's own score matrix. */
static void
attention_job (void *ctx, int ith, int nth)
{
  Fwd *f = ctx;
  const TsrVit *vit = f->vit;
  const TsrVitLayer *L = f->layer;
  int E = vit->n_embd, D = vit->head_dim, np = vit->n_pos;
  int jobs = f->n_views * vit->n_head;
  size_t ME = (size_t) f->m * (size_t) E;
  float *q = f->w->big, *k = q + ME, *v = k + ME, *out = v + ME;
  float *s = f->w->scores + (size_t) ith * (size_t) np * (size_t) np;
  float scale = 1.0f / sqrtf ((float) D);

  for (int j = ith; j < jobs; j += nth)
    {
      int view = j / vit->n_head, head = j % vit->n_head;
      size_t off = (size_t) view * (size_t) np * (size_t) E + (size_t) head * (size_t) D;
      for (int t = 0; t < np; t++)
        {
          size_t o = off + (size_t) t * (size_t) E;
          for (int d = 0; d < D; d++)
            {
              q[o + d] += L->q_b[head * D + d];
              k[o + d] += L->k_b[head * D + d];
              v[o + d] += L->v_b[head * D + d];
            }
        }
      cblas_sgemm (CblasRowMajor, CblasNoTrans, CblasTrans, np, np, D, scale, q + off, E, k + off, E,
                   0.0f, s, np);
      for (int t = 0; t < np; t++)
        f->rk.softmax (s + (size_t) t * np, np);
      cblas_sgemm (CblasRowMajor, CblasNoTrans, CblasNoTrans, np, D, np, 1.0f, s, np, v + off, E,
                   0.0f, out + off, E);
    }
}

/* x += h + out_b; h = LN2(x). */
static void
attn_residual_job (void *ctx, int ith, int nth)
{
  Fwd *f = ctx;
  const TsrVitLayer *L = f->layer;
  int E = f->vit->n_embd;
  int64_t r0 = f->m * ith / nth, r1 = f->m * (ith + 1) / nth;

  for (int64_t r = r0; r < r1; r++)
    {
      float *x = f->w->x + r * E, *h = f->w->h + r * E;
      for (int i = 0; i < E; i++)
        x[i] += h[i] + L->out_b[i];
      f->rk.layer_norm (x, h, L->ln2_w, L->ln2_b, E, f->vit->eps);
    }
}

static void
gelu_job (void *ctx, int ith, int nth)
{
  Fwd *f = ctx;
  int F = f->vit->n_ff;
  int64_t r0 = f->m * ith / nth, r1 = f->m * (ith + 1) / nth;

  for (int64_t r = r0; r < r1; r++)
    f->rk.quick_gelu (f->w->big + r * F, f->layer->up_b, F);
}

/* x += h + down_b; h = LN1 of the next block, if any. */
static void
mlp_residual_job (void *ctx, int ith, int nth)
{
  Fwd *f = ctx;
  const TsrVitLayer *L = f->layer, *N = f->next;
  int E = f->vit->n_embd;
  int64_t r0 = f->m * ith / nth, r1 = f->m * (ith + 1) / nth;

  for (int64_t r = r0; r < r1; r++)
    {
      float *x = f->w->x + r * E, *h = f->w->h + r * E;
      for (int i = 0; i < E; i++)
        x[i] += h[i] + L->down_b[i];
      if (N != NULL)
        f->rk.layer_norm (x, h, N->ln1_w, N->ln1_b, E, f->vit->eps);
    }
}

static TsrStatus
cancelled (TsrError *err)
{
  return tsr_error_set (err, TSR_ECANCELLED, "Encoding the image was cancelled.");
}

TsrStatus
tsr_vit_forward (const TsrVit *vit, TsrPool *pool, TsrIsa isa, TsrVitWork *w, int n_views,
                 const TsrVitRun *run, TsrError *err)
{
  int E = vit->n_embd, side = vit->side;
  int64_t K = 3 * (int64_t) vit->patch * vit->patch;
  Fwd f;
  TsrStatus st;

  if (n_views < 1 || n_views > w->batch || tsr_pool_size (pool) > w->n_threads)
    return tsr_error_set (err, TSR_EINVAL, "%d views on %d threads do not fit working memory made "
                          "for %d views on %d threads.", n_views, tsr_pool_size (pool), w->batch,
                          w->n_threads);
  pthread_once (&blas_once, blas_setup);

  memset (&f, 0, sizeof f);
  f.vit = vit;
  f.w = w;
  f.pool = pool;
  f.isa = isa;
  f.rk = row_kernels (isa);
  f.n_views = n_views;
  f.m = (int64_t) n_views * vit->n_pos;
  f.products = run != NULL ? run->products : TSR_VIT_PRODUCTS_VISION;

  run_other (&f, im2col_job);
  /* One product per view, straight into rows 1…side² of its x block:
   * the class token's row stays free. */
  for (int v = 0; v < n_views; v++)
    {
      st = product (&f, &vit->patch_embd, w->big + (size_t) v * side * side * K, (int64_t) side * side,
                    K, w->x + ((size_t) v * vit->n_pos + 1) * E, E, err);
      if (st != TSR_OK)
        return st;
    }
  f.next = vit->n_layer > 0 ? &vit->layers[0] : NULL;
  run_other (&f, embed_job);

  for (int l = 0; l < vit->n_layer; l++)
    {
      const TsrVitLayer *L = &vit->layers[l];
      size_t ME = (size_t) f.m * (size_t) E;
      double t0;

      if (run != NULL && run->abort != NULL && run->abort (run->user_data))
        return cancelled (err);
      f.layer = L;
      f.next = l + 1 < vit->n_layer ? &vit->layers[l + 1] : NULL;

      if ((st = product (&f, &L->q, w->h, f.m, E, w->big, E, err)) != TSR_OK ||
          (st = product (&f, &L->k, w->h, f.m, E, w->big + ME, E, err)) != TSR_OK ||
          (st = product (&f, &L->v, w->h, f.m, E, w->big + 2 * ME, E, err)) != TSR_OK)
        return st;
      t0 = now_ms ();
      tsr_pool_run (pool, attention_job, &f);
      w->profile.attention_ms += now_ms () - t0;
      if ((st = product (&f, &L->out, w->big + 3 * ME, f.m, E, w->h, E, err)) != TSR_OK)
        return st;
      run_other (&f, attn_residual_job);
      if ((st = product (&f, &L->up, w->h, f.m, E, w->big, vit->n_ff, err)) != TSR_OK)
        return st;
      run_other (&f, gelu_job);
      if ((st = product (&f, &L->down, w->big, f.m, vit->n_ff, w->h, E, err)) != TSR_OK)
        return st;
      run_other (&f, mlp_residual_job);
    }
  return TSR_OK;
}

/* ==== The vision handle ================================================= */

static void
vision_free_owned (TsrVision *v)
{
  for (size_t i = 0; i < v->n_owned; i++)
    free (v->owned[i]);
  free (v->owned);
  v->owned = NULL;
  v->n_owned = 0;
}

void
tsr_vision_free (TsrVision *v)
{
  if (v == NULL)
    return;
  vision_free_owned (v);
  free (v);
}

/* A buffer freed with the handle. */
static void *
vision_own (TsrVision *v, size_t bytes)
{
  void *p = NULL, **list;

  list = realloc (v->owned, (v->n_owned + 1) * sizeof *list);
  if (list == NULL)
    return NULL;
  v->owned = list;
  if (posix_memalign (&p, 64, bytes ? bytes : 1) != 0)
    return NULL;
  v->owned[v->n_owned++] = p;
  return p;
}

const TsrVisionInfo *
tsr_vision_info (const TsrVision *v)
{
  return &v->info;
}

/* The derived parts of info and of the ViT's geometry, from info's
 * image_size … n_out. */
static void
vision_fill_geometry (TsrVision *v)
{
  TsrVisionInfo *in = &v->info;
  TsrVit *vit = &v->vit;

  in->head_dim = in->n_embd / in->n_head;
  in->n_merge = 4 * in->n_embd;
  vit->image_size = in->image_size;
  vit->patch = in->patch_size;
  vit->side = in->image_size / in->patch_size;
  vit->n_pos = vit->side * vit->side + 1;
  vit->n_embd = in->n_embd;
  vit->n_head = in->n_head;
  vit->head_dim = in->head_dim;
  vit->n_ff = in->n_ff;
  vit->n_layer = in->n_layer;
  vit->eps = in->eps;
  v->proj.n_in = in->n_merge;
  v->proj.n_out = in->n_out;
  in->flops_per_view = tsr_vit_flops_per_view (vit);
}

/* Patches along a view's side: the planner counts TSR_TOKENS_PER_VIEW =
 * 12×12 merged tokens a view. */
#define VIEW_SIDE 24

/* The tiles are 336 pixels and the planner counts 12×12 tokens a view:
 * a tower with another geometry could not be fed by this image path. */
static TsrStatus
check_geometry (const TsrVisionInfo *in, const char *what, TsrError *err)
{
  if (in->image_size != TSR_TILE_SIZE || in->patch_size <= 0 ||
      in->image_size % in->patch_size != 0 ||
      in->image_size / in->patch_size != VIEW_SIDE)
    return tsr_error_set (err, TSR_EFORMAT, "%s: its vision tower reads %d-pixel images in %d-pixel "
                          "patches; the 4KHD image path needs %d pixels in patches of %d.", what,
                          in->image_size, in->patch_size, TSR_TILE_SIZE, TSR_TILE_SIZE / VIEW_SIDE);
  if (in->n_embd <= 0 || in->n_head <= 0 || in->n_embd % in->n_head != 0 || in->n_ff <= 0 ||
      in->n_layer < 0 || in->n_out <= 0)
    return tsr_error_set (err, TSR_EFORMAT, "%s: vision width %d, %d heads, MLP %d, %d blocks and "
                          "projector width %d do not make a tower.", what, in->n_embd, in->n_head,
                          in->n_ff, in->n_layer, in->n_out);
  return TSR_OK;
}

/* ---- From a model file ------------------------------------------------- */

static TsrStatus
gguf_vector (const TsrGguf *g, const char *name, const float **out, TsrError *err)
{
  const TsrGgufTensor *t = tsr_gguf_find_tensor (g, name);
  /* Shapes were checked by tsr_gguf_model_info; only the type is left. */
  if (t == NULL)
    return tsr_error_set (err, TSR_EFORMAT, "'%s': tensor '%s' is missing.", tsr_gguf_path (g), name);
  if (t->type != TSR_DTYPE_F32)
    return tsr_error_set (err, TSR_EFORMAT, "'%s': tensor '%s' is %s, but norms, biases and "
                          "embeddings must be f32; convert the model again.", tsr_gguf_path (g), name,
                          tsr_dtype_name (t->type));
  *out = t->data;
  return TSR_OK;
}

static TsrStatus
gguf_matrix (const TsrGguf *g, const char *name, TsrWeights *w, TsrError *err)
{
  const TsrGgufTensor *t = tsr_gguf_find_tensor (g, name);
  int64_t rows;

  if (t == NULL)
    return tsr_error_set (err, TSR_EFORMAT, "'%s': tensor '%s' is missing.", tsr_gguf_path (g), name);
  if (tsr_kernel_type_index (t->type) < 0)
    return tsr_error_set (err, TSR_EFORMAT, "'%s': tensor '%s' has a type the kernels cannot "
                          "multiply; convert the model again.", tsr_gguf_path (g), name);
  /* The last dimension counts rows; the others make one row (the patch
   * embedding's {P, P, 3} is one row of 3·P·P). */
  rows = t->ne[t->n_dims > 0 ? t->n_dims - 1 : 0];
  w->type = t->type;
  w->rows = rows;
  w->cols = (int64_t) (t->n_elements / (uint64_t) rows);
  w->row_bytes = (size_t) (t->size / (uint64_t) rows);
  w->data = t->data;
  return TSR_OK;
}

TsrStatus
tsr_vision_new (const TsrGguf *g, TsrVision **out, TsrError *err)
{
  TsrGgufModelInfo mi;
  TsrVision *v;
  TsrStatus st;
  char name[96];

  *out = NULL;
  st = tsr_gguf_model_info (g, &mi, err);
  if (st != TSR_OK)
    return st;
  if (mi.arch != TSR_ARCH_INTERNLM2_4KHD)
    return tsr_error_set (err, TSR_EFORMAT, "'%s' has no vision tower: it is a '%s' model. Images "
                          "need an %s file made by 'tessera-cli convert'.", tsr_gguf_path (g),
                          mi.arch_name, TSR_ARCH_NAME_INTERNLM2_4KHD);

  v = calloc (1, sizeof *v);
  if (v == NULL)
    return tsr_error_set (err, TSR_ENOMEM, "Out of memory loading the vision tower.");
  v->info.image_size = (int) mi.v_image_size;
  v->info.patch_size = (int) mi.v_patch_size;
  v->info.n_embd = (int) mi.v_n_embd;
  v->info.n_layer = (int) mi.v_n_layer;
  v->info.n_head = (int) mi.v_n_head;
  v->info.n_ff = (int) mi.v_n_ff;
  v->info.eps = mi.v_eps;
  v->info.n_out = (int) mi.n_embd;
  if ((st = check_geometry (&v->info, tsr_gguf_path (g), err)) != TSR_OK)
    goto fail;
  vision_fill_geometry (v);
  v->vit.layers = vision_own (v, (size_t) (v->info.n_layer > 0 ? v->info.n_layer : 1) *
                                 sizeof (TsrVitLayer));
  if (v->vit.layers == NULL)
    {
      st = tsr_error_set (err, TSR_ENOMEM, "Out of memory loading the vision tower.");
      goto fail;
    }

#define VEC(n, p) do { if ((st = gguf_vector (g, (n), (p), err)) != TSR_OK) goto fail; } while (0)
#define MAT(n, p) do { if ((st = gguf_matrix (g, (n), (p), err)) != TSR_OK) goto fail; } while (0)
  MAT ("v.patch_embd.weight", &v->vit.patch_embd);
  VEC ("v.class_embd.weight", &v->vit.class_embd);
  VEC ("v.pos_embd.weight", &v->vit.pos_embd);
  VEC ("v.pre_ln.weight", &v->vit.pre_ln_w);
  VEC ("v.pre_ln.bias", &v->vit.pre_ln_b);
  for (int l = 0; l < v->info.n_layer; l++)
    {
      TsrVitLayer *L = &v->vit.layers[l];
      static const char *const mats[6] = { "attn_q", "attn_k", "attn_v", "attn_out", "ffn_up", "ffn_down" };
      TsrWeights *mw[6] = { &L->q, &L->k, &L->v, &L->out, &L->up, &L->down };
      const float **mb[6] = { &L->q_b, &L->k_b, &L->v_b, &L->out_b, &L->up_b, &L->down_b };
      static const char *const norms[4] = { "ln1.weight", "ln1.bias", "ln2.weight", "ln2.bias" };
      const float **nv[4] = { &L->ln1_w, &L->ln1_b, &L->ln2_w, &L->ln2_b };
      for (int i = 0; i < 6; i++)
        {
          snprintf (name, sizeof name, "v.blk.%d.%s.weight", l, mats[i]);
          MAT (name, mw[i]);
          snprintf (name, sizeof name, "v.blk.%d.%s.bias", l, mats[i]);
          VEC (name, mb[i]);
        }
      for (int i = 0; i < 4; i++)
        {
          snprintf (name, sizeof name, "v.blk.%d.%s", l, norms[i]);
          VEC (name, nv[i]);
        }
    }
  MAT ("mm.0.weight", &v->proj.w0);
  VEC ("mm.0.bias", &v->proj.b0);
  MAT ("mm.2.weight", &v->proj.w2);
  VEC ("mm.2.bias", &v->proj.b2);
  VEC ("mm.sub_gn.weight", &v->proj.sub_gn);
  VEC ("mm.glb_gn.weight", &v->proj.glb_gn);
#undef VEC
#undef MAT
  v->info.type = v->info.n_layer > 0 ? v->vit.layers[0].q.type : v->proj.w0.type;
  *out = v;
  return TSR_OK;

fail:
  tsr_vision_free (v);
  return st;
}

void
tsr_vision_params_init (TsrVisionParams *p)
{
  memset (p, 0, sizeof *p);
  p->hd_num = TSR_HD_NUM_DEFAULT;
}

/* ---- Encoding ---------------------------------------------------------- */

static int
never (void *user_data)
{
  (void) user_data;
  return 0;
}

TsrStatus
tsr_vision_encode (const TsrVision *v, TsrPool *pool, const unsigned char *rgb, int width,
                   int height, size_t stride, const TsrVisionParams *params, float *out,
                   size_t out_count, TsrVisionTimings *timings, TsrError *err)
{
  const TsrVit *vit = &v->vit;
  const TsrProjector *pj = &v->proj;
  TsrVisionParams defaults;
  TsrVisionTimings tm;
  TsrImage image = { width, height, stride, rgb }, canvas;
  TsrImageSizes sizes;
  TsrHdPlan plan;
  TsrPool *own_pool = NULL;
  TsrVitWork *work = NULL;
  TsrVitRun run;
  TsrIsa isa = tsr_isa_best ();
  unsigned char *canvas_px = NULL;
  float *merged = NULL, *hidden = NULL, *proj = NULL;
  int g = vit->side / 2, per = g * g, E = vit->n_embd, n_out = pj->n_out, views, batch, nth;
  int done_views = 0;
  size_t mrows, need;
  double t_start = now_ms (), t0;
  TsrStatus st;

  memset (&tm, 0, sizeof tm);
  if (params == NULL)
    {
      tsr_vision_params_init (&defaults);
      params = &defaults;
    }
  if ((st = tsr_hd_plan (width, height, params->hd_num, &plan, err)) != TSR_OK)
    goto done;
  views = plan.tiles + 1;
  if (tsr_layout_n_rows (plan.rows, plan.cols, g) != (size_t) plan.tokens)
    {
      st = tsr_error_set (err, TSR_EFORMAT, "The vision tower gives %d×%d tokens a view; the "
                          "planner counts %d.", g, g, TSR_TOKENS_PER_VIEW);
      goto done;
    }
  need = (size_t) plan.tokens * (size_t) n_out;
  if (out == NULL || out_count < need)
    {
      st = tsr_error_set (err, TSR_EINVAL, "The output holds %zu floats, but %d image tokens of %d "
                          "need %zu.", out ? out_count : 0, plan.tokens, n_out, need);
      goto done;
    }
  if (params->batch < 0 || params->n_threads < 0)
    {
      st = tsr_error_set (err, TSR_EINVAL, "A batch of %d views on %d threads makes no sense; use 0 "
                          "for the defaults.", params->batch, params->n_threads);
      goto done;
    }
  if (pool == NULL && (st = tsr_pool_new (params->n_threads, &own_pool, err)) != TSR_OK)
    goto done;
  if (pool == NULL)
    pool = own_pool;
  nth = tsr_pool_size (pool);
  batch = params->batch > 0 ? params->batch : TSR_VISION_BATCH_DEFAULT;
  if (batch > views)
    batch = views;
  tm.views = views;
  tm.tokens = plan.tokens;
  tm.batch = batch;
  tm.threads = nth;

  t0 = now_ms ();
  if ((st = tsr_image_sizes (&plan, nth, &sizes, err)) != TSR_OK)
    goto done;
  canvas_px = malloc (sizes.canvas_bytes);
  if (canvas_px == NULL)
    {
      st = tsr_error_set (err, TSR_ENOMEM, "Out of memory for the %d×%d canvas.", plan.padded_w,
                          plan.padded_h);
      goto done;
    }
  if ((st = tsr_image_hd_canvas (&image, &plan, nth, canvas_px, err)) != TSR_OK)
    goto done;
  canvas = (TsrImage) { plan.padded_w, plan.padded_h, (size_t) 3 * plan.padded_w, canvas_px };
  tm.preprocess_ms += now_ms () - t0;

  if ((st = tsr_vit_work_new (vit, batch, nth, &work, err)) != TSR_OK)
    goto done;
  /* Room for the two separators, which ride along with the first batch. */
  mrows = (size_t) batch * (size_t) per + 2;
  merged = alloc_floats (mrows * (size_t) pj->n_in);
  hidden = alloc_floats (mrows * (size_t) n_out);
  proj = alloc_floats (mrows * (size_t) n_out);
  if (merged == NULL || hidden == NULL || proj == NULL)
    {
      st = tsr_error_set (err, TSR_ENOMEM, "Out of memory for the projector's working memory.");
      goto done;
    }
  tm.work_bytes = sizes.canvas_bytes + sizes.scratch_bytes + tsr_vit_work_bytes (vit, batch, nth) +
                  mrows * ((size_t) pj->n_in + 2 * (size_t) n_out) * sizeof (float);

  run.abort = params->should_abort ? params->should_abort : never;
  run.user_data = params->user_data;
  run.products = TSR_VIT_PRODUCTS_VISION;
  if (params->progress)
    params->progress ("tiles", 0, views, params->user_data);

  for (int b0 = 0; b0 < views; b0 += batch)
    {
      int n = views - b0 < batch ? views - b0 : batch;
      int64_t rows = (int64_t) n * per;

      if (run.abort (run.user_data))
        {
          st = cancelled (err);
          goto done;
        }
      t0 = now_ms ();
      for (int i = 0; i < n && st == TSR_OK; i++)
        st = b0 + i == 0 ? tsr_image_global_view (&canvas, tsr_vit_work_view (work, i), err)
                         : tsr_image_tile (&canvas, b0 + i - 1, tsr_vit_work_view (work, i), err);
      tm.preprocess_ms += now_ms () - t0;
      if (st != TSR_OK)
        goto done;

      t0 = now_ms ();
      st = tsr_vit_forward (vit, pool, isa, work, n, &run, err);
      tm.vit_ms += now_ms () - t0;
      if (st != TSR_OK)
        goto done;

      t0 = now_ms ();
      for (int i = 0; i < n; i++)
        tsr_projector_merge (tsr_vit_work_features (work, i), vit->side, E, (size_t) E,
                             merged + (size_t) i * per * pj->n_in);
      if (b0 == 0)
        {
          memcpy (merged + (size_t) rows * pj->n_in, pj->sub_gn, (size_t) pj->n_in * sizeof (float));
          memcpy (merged + (size_t) (rows + 1) * pj->n_in, pj->glb_gn,
                  (size_t) pj->n_in * sizeof (float));
        }
      st = tsr_projector_mlp (pj, pool, isa, merged, rows + (b0 == 0 ? 2 : 0), hidden, proj,
                              tsr_vit_work_scratch (work), err);
      if (st != TSR_OK)
        goto done;
      /* Each merged row of g tokens lands as one run of g sequence rows. */
      for (int i = 0; i < n; i++)
        for (int r = 0; r < g; r++)
          memcpy (out + tsr_layout_token_row (plan.rows, plan.cols, g, b0 + i, r, 0) * n_out,
                  proj + ((size_t) i * per + (size_t) r * g) * n_out,
                  (size_t) g * n_out * sizeof (float));
      if (b0 == 0)
        {
          for (int k = 0; k < g * (plan.rows + 1); k++)
            memcpy (out + tsr_layout_sub_gn_row (plan.rows, plan.cols, g, k) * n_out,
                    proj + (size_t) rows * n_out, (size_t) n_out * sizeof (float));
          memcpy (out + tsr_layout_glb_gn_row (g) * n_out, proj + (size_t) (rows + 1) * n_out,
                  (size_t) n_out * sizeof (float));
        }
      tm.projector_ms += now_ms () - t0;
      done_views += n;
      tm.vit_gflop += n * v->info.flops_per_view / 1e9;
      tm.projector_gflop += (double) (rows + (b0 == 0 ? 2 : 0)) * tsr_projector_flops_per_row (pj) / 1e9;
      if (params->progress)
        params->progress ("tiles", b0 + n, views, params->user_data);
    }

done:
  free (merged);
  free (hidden);
  free (proj);
  tsr_vit_work_free (work);
  free (canvas_px);
  tsr_pool_free (own_pool);
  tm.total_ms = now_ms () - t_start;
  tm.ms_per_view = done_views > 0 ? tm.vit_ms / done_views : 0.0;
  if (timings != NULL)
    *timings = tm;
  return st;
}

/* ---- Weights made in memory -------------------------------------------- */

typedef struct {
  uint64_t s;
} Rng;

/* Uniform in [−1, 1). */
static float
rng_next (Rng *r)
{
  r->s ^= r->s << 13;
  r->s ^= r->s >> 7;
  r->s ^= r->s << 17;
  return (float) ((r->s >> 40) * (1.0 / 8388608.0)) - 1.0f;
}

/* Matrices cannot hold a type whose blocks do not divide their rows. */
static TsrDType
matrix_type (TsrDType want, int64_t cols)
{
  if ((want == TSR_DTYPE_Q8_0 || want == TSR_DTYPE_Q4_0) && cols % TSR_QK != 0)
    return TSR_DTYPE_F32;
  return want;
}

/* A rows×cols matrix of `type` whose f32 rows come from `row` (a random
 * row, or a row of another matrix). */
typedef void (*RowSource) (void *ctx, int64_t r, float *dst, int64_t cols);

static TsrStatus
make_matrix (TsrVision *v, TsrWeights *w, TsrDType type, int64_t rows, int64_t cols,
             RowSource src, void *ctx, TsrError *err)
{
  uint64_t rb;
  unsigned char *data;
  float *tmp;
  TsrStatus st;

  if ((st = tsr_dtype_row_bytes (type, (uint64_t) cols, &rb, err)) != TSR_OK)
    return st;
  data = vision_own (v, (size_t) rb * (size_t) rows);
  tmp = malloc ((size_t) cols * sizeof (float));
  if (data == NULL || tmp == NULL)
    {
      free (tmp);
      return tsr_error_set (err, TSR_ENOMEM, "Out of memory for a %lld×%lld weight matrix.",
                            (long long) rows, (long long) cols);
    }
  for (int64_t r = 0; r < rows && st == TSR_OK; r++)
    {
      src (ctx, r, tmp, cols);
      st = tsr_quantize_row (type, tmp, data + (size_t) r * rb, (size_t) cols, err);
    }
  free (tmp);
  *w = (TsrWeights) { type, rows, cols, (size_t) rb, data };
  return st;
}

typedef struct {
  Rng   rng;
  float scale;
} RandomRows;

static void
random_row (void *ctx, int64_t r, float *dst, int64_t cols)
{
  RandomRows *rr = ctx;
  (void) r;
  for (int64_t i = 0; i < cols; i++)
    dst[i] = rr->scale * rng_next (&rr->rng);
}

static const float *
random_vector (TsrVision *v, int n, float mean, float scale, Rng *rng)
{
  float *p = vision_own (v, (size_t) n * sizeof (float));
  if (p != NULL)
    for (int i = 0; i < n; i++)
      p[i] = mean + scale * rng_next (rng);
  return p;
}

TsrStatus
tsr_vision_new_random (const TsrVisionInfo *dims, TsrDType type, uint64_t seed, TsrVision **out,
                       TsrError *err)
{
  TsrVision *v;
  TsrVit *vit;
  RandomRows rr;
  Rng rng = { seed | 1 };
  TsrStatus st;
  int E, F;
  int ok = 1;

  *out = NULL;
  if (tsr_kernel_type_index (type) < 0)
    return tsr_error_set (err, TSR_EINVAL, "Weights of type %d cannot be made.", (int) type);
  v = calloc (1, sizeof *v);
  if (v == NULL)
    return tsr_error_set (err, TSR_ENOMEM, "Out of memory for a random vision tower.");
  v->info = *dims;
  if ((st = check_geometry (&v->info, "random weights", err)) != TSR_OK)
    goto fail;
  vision_fill_geometry (v);
  vit = &v->vit;
  E = vit->n_embd;
  F = vit->n_ff;
  vit->layers = vision_own (v, (size_t) (vit->n_layer > 0 ? vit->n_layer : 1) * sizeof (TsrVitLayer));
  if (vit->layers == NULL)
    goto oom;

  /* Uniform weights of variance 1/K keep every layer's outputs near unit
   * scale: no overflow, no denormals to slow the timings. */
#define RANDOM_MATRIX(w, t, rows, cols)                                              \
  do {                                                                               \
    rr.rng.s = rng.s = rng.s * 6364136223846793005ULL + 1442695040888963407ULL;       \
    rr.scale = sqrtf (3.0f / (float) (cols));                                        \
    if ((st = make_matrix (v, (w), matrix_type ((t), (cols)), (rows), (cols), random_row, \
                           &rr, err)) != TSR_OK)                                     \
      goto fail;                                                                     \
  } while (0)

  RANDOM_MATRIX (&vit->patch_embd, type, E, 3 * (int64_t) vit->patch * vit->patch);
  ok &= (vit->class_embd = random_vector (v, E, 0.0f, 0.5f, &rng)) != NULL;
  ok &= (vit->pos_embd = random_vector (v, vit->n_pos * E, 0.0f, 0.5f, &rng)) != NULL;
  ok &= (vit->pre_ln_w = random_vector (v, E, 1.0f, 0.1f, &rng)) != NULL;
  ok &= (vit->pre_ln_b = random_vector (v, E, 0.0f, 0.1f, &rng)) != NULL;
  for (int l = 0; l < vit->n_layer; l++)
    {
      TsrVitLayer *L = &vit->layers[l];
      RANDOM_MATRIX (&L->q, type, E, E);
      RANDOM_MATRIX (&L->k, type, E, E);
      RANDOM_MATRIX (&L->v, type, E, E);
      RANDOM_MATRIX (&L->out, type, E, E);
      RANDOM_MATRIX (&L->up, type, F, E);
      RANDOM_MATRIX (&L->down, type, E, F);
      ok &= (L->q_b = random_vector (v, E, 0.0f, 0.02f, &rng)) != NULL;
      ok &= (L->k_b = random_vector (v, E, 0.0f, 0.02f, &rng)) != NULL;
      ok &= (L->v_b = random_vector (v, E, 0.0f, 0.02f, &rng)) != NULL;
      ok &= (L->out_b = random_vector (v, E, 0.0f, 0.02f, &rng)) != NULL;
      ok &= (L->up_b = random_vector (v, F, 0.0f, 0.02f, &rng)) != NULL;
      ok &= (L->down_b = random_vector (v, E, 0.0f, 0.02f, &rng)) != NULL;
      ok &= (L->ln1_w = random_vector (v, E, 1.0f, 0.1f, &rng)) != NULL;
      ok &= (L->ln1_b = random_vector (v, E, 0.0f, 0.1f, &rng)) != NULL;
      ok &= (L->ln2_w = random_vector (v, E, 1.0f, 0.1f, &rng)) != NULL;
      ok &= (L->ln2_b = random_vector (v, E, 0.0f, 0.1f, &rng)) != NULL;
    }
  RANDOM_MATRIX (&v->proj.w0, type, v->info.n_out, v->info.n_merge);
  RANDOM_MATRIX (&v->proj.w2, type, v->info.n_out, v->info.n_out);
#undef RANDOM_MATRIX
  ok &= (v->proj.b0 = random_vector (v, v->info.n_out, 0.0f, 0.02f, &rng)) != NULL;
  ok &= (v->proj.b2 = random_vector (v, v->info.n_out, 0.0f, 0.02f, &rng)) != NULL;
  ok &= (v->proj.sub_gn = random_vector (v, v->info.n_merge, 0.0f, 0.5f, &rng)) != NULL;
  ok &= (v->proj.glb_gn = random_vector (v, v->info.n_merge, 0.0f, 0.5f, &rng)) != NULL;
  if (!ok)
    goto oom;
  v->info.type = type;
  *out = v;
  return TSR_OK;

oom:
  st = tsr_error_set (err, TSR_ENOMEM, "Out of memory for a random vision tower.");
fail:
  tsr_vision_free (v);
  return st;
}

/* ---- Converted weights -------------------------------------------------- */

static void
dequantized_row (void *ctx, int64_t r, float *dst, int64_t cols)
{
  const TsrWeights *w = ctx;
  tsr_dequantize_row (w->type, (const unsigned char *) w->data + (size_t) r * w->row_bytes, dst,
                      (size_t) cols, NULL);
}

static TsrStatus
convert_matrix (TsrVision *v, TsrWeights *w, TsrDType type, TsrError *err)
{
  TsrWeights src = *w;
  TsrDType t = matrix_type (type, src.cols);

  if (t == src.type)
    return TSR_OK;
  /* The patch embedding keeps its type when the blocks do not fit. */
  if (t != type)
    return TSR_OK;
  return make_matrix (v, w, t, src.rows, src.cols, dequantized_row, &src, err);
}

TsrStatus
tsr_vision_convert (const TsrVision *src, TsrDType type, TsrVision **out, TsrError *err)
{
  TsrVision *v;
  TsrStatus st = TSR_OK;

  *out = NULL;
  if (tsr_kernel_type_index (type) < 0)
    return tsr_error_set (err, TSR_EINVAL, "Weights cannot be converted to type %d.", (int) type);
  v = calloc (1, sizeof *v);
  if (v == NULL)
    return tsr_error_set (err, TSR_ENOMEM, "Out of memory converting the vision tower.");
  v->info = src->info;
  v->vit = src->vit;
  v->proj = src->proj;
  v->vit.layers = vision_own (v, (size_t) (src->vit.n_layer > 0 ? src->vit.n_layer : 1) *
                                 sizeof (TsrVitLayer));
  if (v->vit.layers == NULL)
    {
      tsr_vision_free (v);
      return tsr_error_set (err, TSR_ENOMEM, "Out of memory converting the vision tower.");
    }
  memcpy (v->vit.layers, src->vit.layers, (size_t) src->vit.n_layer * sizeof (TsrVitLayer));
  st = convert_matrix (v, &v->vit.patch_embd, type, err);
  for (int l = 0; l < v->vit.n_layer && st == TSR_OK; l++)
    {
      TsrVitLayer *L = &v->vit.layers[l];
      TsrWeights *mw[6] = { &L->q, &L->k, &L->v, &L->out, &L->up, &L->down };
      for (int i = 0; i < 6 && st == TSR_OK; i++)
        st = convert_matrix (v, mw[i], type, err);
    }
  if (st == TSR_OK)
    st = convert_matrix (v, &v->proj.w0, type, err);
  if (st == TSR_OK)
    st = convert_matrix (v, &v->proj.w2, type, err);
  if (st != TSR_OK)
    {
      tsr_vision_free (v);
      return st;
    }
  v->info.type = type;
  *out = v;
  return TSR_OK;
}
