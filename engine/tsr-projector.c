/* SPDX-License-Identifier: GPL-3.0-or-later
 *
 * tsr-projector.c — the token layout, the 2×2 merge and the projector MLP
 * (model.md §6.5). The order here is the model's contract with its
 * decoder; tests/test-vision.c pins it with traced features.
 */
#include "tsr-projector.h"

#include <cblas.h>
#include <math.h>
#include <pthread.h>
#include <string.h>

#include "tsr-blas.h"

/* ==== Products ========================================================== */

/* Dequantised weight rows a thread holds at once: 8 MB, so X is packed
 * once per 2048 rows of K = 1024 or 512 rows of K = 4096. */
#define CHUNK_FLOATS ((size_t) 2 << 20)

static pthread_once_t blas_once = PTHREAD_ONCE_INIT;

static void
blas_setup (void)
{
  /* Our pool is the parallelism; OpenBLAS must not start threads of its own. */
  tsr_blas_init ();
}

size_t
tsr_vision_product_scratch (int n_threads)
{
  return (size_t) n_threads * CHUNK_FLOATS;
}

typedef struct {
  TsrPool              *pool;
  const TsrKernelTable *kt;
  const TsrWeights     *w;
  const float          *x;
  int64_t               m, ldx;
  float                *y;
  int64_t               ldy;
  float                *scratch;
  int                   ti;
} ProductJob;

/* Each thread: rows m0…m1 of X against all of W. The threads dequantise
 * a shared chunk of W together, then each multiplies its rows by it. */
static void
product_rows_of_x (ProductJob *j, int ith, int nth)
{
  const TsrWeights *w = j->w;
  int64_t m0 = j->m * ith / nth, m1 = j->m * (ith + 1) / nth, k = w->cols;
  int64_t chunk = (int64_t) ((size_t) nth * CHUNK_FLOATS / (size_t) k);

  if (j->ti == 0)
    {
      cblas_sgemm (CblasRowMajor, CblasNoTrans, CblasTrans, (int) (m1 - m0), (int) w->rows, (int) k,
                   1.0f, j->x + m0 * j->ldx, (int) j->ldx, w->data,
                   (int) (w->row_bytes / sizeof (float)), 0.0f, j->y + m0 * j->ldy, (int) j->ldy);
      return;
    }
  if (chunk < 1)
    chunk = 1;
  for (int64_t r0 = 0; r0 < w->rows; r0 += chunk)
    {
      int64_t rows = w->rows - r0 < chunk ? w->rows - r0 : chunk;
      const unsigned char *src = (const unsigned char *) w->data + (size_t) r0 * w->row_bytes;
      for (int64_t r = rows * ith / nth; r < rows * (ith + 1) / nth; r++)
        j->kt->dequantize[j->ti] (src + (size_t) r * w->row_bytes, j->scratch + r * k, k);
      tsr_pool_barrier (j->pool);
      cblas_sgemm (CblasRowMajor, CblasNoTrans, CblasTrans, (int) (m1 - m0), (int) rows, (int) k,
                   1.0f, j->x + m0 * j->ldx, (int) j->ldx, j->scratch, (int) k, 0.0f,
                   j->y + m0 * j->ldy + r0, (int) j->ldy);
      /* Nobody overwrites the chunk while another thread still reads it. */
      tsr_pool_barrier (j->pool);
    }
}

/* Each thread: all of X against rows n0…n1 of W, dequantised a chunk at
 * a time into its own part of the scratch. */
static void
product_rows_of_w (ProductJob *j, int ith, int nth)
{
  const TsrWeights *w = j->w;
  int64_t n0 = w->rows * ith / nth, n1 = w->rows * (ith + 1) / nth, k = w->cols;
  int64_t chunk = j->ti == 0 ? n1 - n0 : (int64_t) (CHUNK_FLOATS / (size_t) k);
  float *buf = j->scratch + (size_t) ith * CHUNK_FLOATS;

  if (chunk < 1)
    chunk = 1;
  for (int64_t r0 = n0; r0 < n1; r0 += chunk)
    {
      int64_t rows = n1 - r0 < chunk ? n1 - r0 : chunk;
      const unsigned char *src = (const unsigned char *) w->data + (size_t) r0 * w->row_bytes;
      const float *b = (const float *) src;
      int64_t ldb = (int64_t) (w->row_bytes / sizeof (float));

      if (j->ti != 0)
        {
          for (int64_t r = 0; r < rows; r++)
            j->kt->dequantize[j->ti] (src + (size_t) r * w->row_bytes, buf + r * k, k);
          b = buf;
          ldb = k;
        }
      cblas_sgemm (CblasRowMajor, CblasNoTrans, CblasTrans, (int) j->m, (int) rows, (int) k, 1.0f,
                   j->x, (int) j->ldx, b, (int) ldb, 0.0f, j->y + r0, (int) j->ldy);
    }
}

/* Splitting X's rows measured as fast as OpenBLAS's own threads on every
 * shape of the ViT and projector, at 577 rows and at 2308; splitting W's
 * rows was up to 20% slower at 577 (X packed whole by every thread). W's
 * rows are split only when X is too short to give each thread a
 * worthwhile sgemm. */
#define MIN_ROWS_PER_THREAD 128

static void
product_job (void *ctx, int ith, int nth)
{
  ProductJob *j = ctx;
  if (nth > 1 && j->m >= (int64_t) nth * MIN_ROWS_PER_THREAD)
    product_rows_of_x (j, ith, nth);
  else
    product_rows_of_w (j, ith, nth);
}

TsrStatus
tsr_vision_product (TsrPool *pool, TsrIsa isa, const TsrWeights *w, const float *x, int64_t m,
                    int64_t ldx, float *y, int64_t ldy, float *scratch, TsrError *err)
{
  ProductJob job;

  if (m < TSR_GEMM_MIN_ROWS || (w->type != TSR_DTYPE_F32 && scratch == NULL) ||
      x == NULL || y == NULL || w->data == NULL || w->rows <= 0 || w->cols <= 0 ||
      ldx < w->cols || ldy < w->rows ||
      (w->type == TSR_DTYPE_F32 && w->row_bytes % sizeof (float) != 0) ||
      tsr_kernel_type_index (w->type) < 0 || !tsr_isa_available (isa) ||
      m > INT32_MAX || w->cols > INT32_MAX || ldx > INT32_MAX || ldy > INT32_MAX)
    /* Few rows, or anything unusual: the general code checks and copes. */
    return tsr_matmul (pool, isa, w, x, m, ldx, y, ldy, err);
  pthread_once (&blas_once, blas_setup);
  job.pool = pool;
  job.kt = isa == TSR_ISA_AVX2 ? &tsr_kernels_avx2 : &tsr_kernels_scalar;
  job.w = w;
  job.x = x;
  job.m = m;
  job.ldx = ldx;
  job.y = y;
  job.ldy = ldy;
  job.scratch = scratch;
  job.ti = tsr_kernel_type_index (w->type);
  tsr_pool_run (pool, product_job, &job);
  return TSR_OK;
}

/* ==== Layout =========================================================== */

size_t
tsr_layout_n_rows (int rows, int cols, int g)
{
  size_t G = (size_t) g;
  return G * (G + 1) + 1 + (size_t) rows * G * ((size_t) cols * G + 1);
}

/* First row of the tile grid: after the global block and glb_GN. */
static size_t
grid_start (int g)
{
  return (size_t) g * (size_t) (g + 1) + 1;
}

size_t
tsr_layout_token_row (int rows, int cols, int g, int view, int r, int c)
{
  size_t G = (size_t) g, row_len = (size_t) cols * G + 1;
  int i, j;

  (void) rows;
  if (view == 0)
    return (size_t) r * (G + 1) + (size_t) c;
  i = (view - 1) / cols;
  j = (view - 1) % cols;
  return grid_start (g) + ((size_t) i * G + (size_t) r) * row_len + (size_t) j * G + (size_t) c;
}

size_t
tsr_layout_sub_gn_row (int rows, int cols, int g, int n)
{
  size_t G = (size_t) g, row_len = (size_t) cols * G + 1;

  (void) rows;
  if (n < g)
    return (size_t) n * (G + 1) + G;
  return grid_start (g) + (size_t) (n - g) * row_len + row_len - 1;
}

size_t
tsr_layout_glb_gn_row (int g)
{
  return (size_t) g * (size_t) (g + 1);
}

void
tsr_layout_describe (int rows, int cols, int g, TsrLayoutEntry *entries)
{
  size_t n = tsr_layout_n_rows (rows, cols, g);

  /* Every row no token claims is a separator: sub_GN but for one. */
  for (size_t i = 0; i < n; i++)
    entries[i] = (TsrLayoutEntry) { TSR_LAYOUT_SUB_GN, -1, -1, -1 };
  entries[tsr_layout_glb_gn_row (g)].kind = TSR_LAYOUT_GLB_GN;
  for (int v = 0; v <= rows * cols; v++)
    for (int r = 0; r < g; r++)
      for (int c = 0; c < g; c++)
        entries[tsr_layout_token_row (rows, cols, g, v, r, c)] =
          (TsrLayoutEntry) { TSR_LAYOUT_TOKEN, v, r, c };
}

/* ==== Merge ============================================================ */

void
tsr_projector_merge (const float *features, int side, int c, size_t ld, float *merged)
{
  int g = side / 2;
  size_t C = (size_t) c;

  for (int r = 0; r < g; r++)
    for (int col = 0; col < g; col++)
      {
        float *dst = merged + ((size_t) r * (size_t) g + (size_t) col) * 4 * C;
        /* Quadrant q: row 2r + q/2, column 2col + q%2 — TL, TR, BL, BR. */
        for (int q = 0; q < 4; q++)
          {
            size_t p = (size_t) (2 * r + q / 2) * (size_t) side + (size_t) (2 * col + q % 2);
            memcpy (dst + (size_t) q * C, features + p * ld, C * sizeof (float));
          }
      }
}

void
tsr_projector_assemble (int rows, int cols, int side, int c, const float *const *features,
                        size_t ld, const float *sub_gn, const float *glb_gn, float *seq)
{
  int g = side / 2;
  size_t width = 4 * (size_t) c;

  for (int n = 0; n < g * (rows + 1); n++)
    memcpy (seq + tsr_layout_sub_gn_row (rows, cols, g, n) * width, sub_gn, width * sizeof (float));
  memcpy (seq + tsr_layout_glb_gn_row (g) * width, glb_gn, width * sizeof (float));

  for (int v = 0; v <= rows * cols; v++)
    for (int r = 0; r < g; r++)
      for (int col = 0; col < g; col++)
        for (int q = 0; q < 4; q++)
          {
            size_t p = (size_t) (2 * r + q / 2) * (size_t) side + (size_t) (2 * col + q % 2);
            size_t row = tsr_layout_token_row (rows, cols, g, v, r, col);
            memcpy (seq + row * width + (size_t) q * (size_t) c, features[v] + p * ld,
                    (size_t) c * sizeof (float));
          }
}

/* ==== MLP ============================================================== */

typedef struct {
  float       *y;
  const float *bias;
  int64_t      m;
  int          n;
  int          gelu;
} BiasJob;

static void
bias_job (void *ctx, int ith, int nth)
{
  BiasJob *j = ctx;
  int64_t r0 = j->m * ith / nth, r1 = j->m * (ith + 1) / nth;

  for (int64_t r = r0; r < r1; r++)
    {
      float *y = j->y + r * j->n;
      if (j->gelu)
        /* nn.GELU()'s default: the erf form, not the tanh approximation. */
        for (int i = 0; i < j->n; i++)
          {
            float x = y[i] + j->bias[i];
            y[i] = 0.5f * x * (1.0f + erff (x * (float) M_SQRT1_2));
          }
      else
        for (int i = 0; i < j->n; i++)
          y[i] += j->bias[i];
    }
}

TsrStatus
tsr_projector_mlp (const TsrProjector *p, TsrPool *pool, TsrIsa isa, const float *x, int64_t m,
                   float *tmp, float *y, float *scratch, TsrError *err)
{
  BiasJob job;
  TsrStatus st;

  if (m == 0)
    return TSR_OK;
  st = tsr_vision_product (pool, isa, &p->w0, x, m, p->n_in, tmp, p->n_out, scratch, err);
  if (st != TSR_OK)
    return st;
  job = (BiasJob) { tmp, p->b0, m, p->n_out, 1 };
  tsr_pool_run (pool, bias_job, &job);
  st = tsr_vision_product (pool, isa, &p->w2, tmp, m, p->n_out, y, p->n_out, scratch, err);
  if (st != TSR_OK)
    return st;
  job = (BiasJob) { y, p->b2, m, p->n_out, 0 };
  tsr_pool_run (pool, bias_job, &job);
  return TSR_OK;
}

double
tsr_projector_flops_per_row (const TsrProjector *p)
{
  return 2.0 * p->n_out * ((double) p->n_in + p->n_out);
}
