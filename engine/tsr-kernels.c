/* SPDX-License-Identifier: GPL-3.0-or-later
 *
 * tsr-kernels.c — splitting a product across the pool and choosing the
 * kernels. The kernels themselves live in tsr-kernels-<isa>.c.
 */
#include "tsr-kernels.h"

#include <cblas.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "tsr-blas.h"
#include "tsr-cpu.h"
#include "tsr-dtype.h"
#include "tsr-error.h"

/* Weight rows per panel of the many-rows path: big enough that OpenBLAS's
 * repacking of X is amortised, small enough that a panel of the widest
 * matrix (K = 14336) stays a few megabytes. */
#define PANEL_ROWS 128
/* Weight rows per work item of the few-rows path. */
#define ROW_CHUNK 16

static const char *isa_names[TSR_ISA_COUNT] = { "scalar", "avx2" };

const char *
tsr_isa_name (TsrIsa isa)
{
  return isa >= 0 && isa < TSR_ISA_COUNT ? isa_names[isa] : "unknown";
}

int
tsr_isa_from_name (const char *name, TsrIsa *isa)
{
  for (int i = 0; i < TSR_ISA_COUNT; i++)
    if (strcmp (name, isa_names[i]) == 0)
      {
        *isa = (TsrIsa) i;
        return 1;
      }
  return 0;
}

int
tsr_isa_available (TsrIsa isa)
{
  const TsrCpu *cpu = tsr_cpu ();
  switch (isa)
    {
    case TSR_ISA_SCALAR: return 1;
    case TSR_ISA_AVX2:   return cpu->avx2 && cpu->fma && cpu->f16c;
    case TSR_ISA_COUNT:  break;
    }
  return 0;
}

TsrIsa
tsr_isa_best (void)
{
  return tsr_isa_available (TSR_ISA_AVX2) ? TSR_ISA_AVX2 : TSR_ISA_SCALAR;
}

static const TsrKernelTable *
table_for (TsrIsa isa)
{
  return isa == TSR_ISA_AVX2 ? &tsr_kernels_avx2 : &tsr_kernels_scalar;
}

int
tsr_kernel_type_index (TsrDType type)
{
  switch (type)
    {
    case TSR_DTYPE_F32:  return 0;
    case TSR_DTYPE_F16:  return 1;
    case TSR_DTYPE_BF16: return 2;
    case TSR_DTYPE_Q8_0: return 3;
    case TSR_DTYPE_Q4_0: return 4;
    }
  return -1;
}

TsrDType
tsr_kernel_act_type (TsrDType wtype)
{
  return wtype == TSR_DTYPE_Q8_0 || wtype == TSR_DTYPE_Q4_0 ? TSR_DTYPE_Q8_0 : TSR_DTYPE_F32;
}

static TsrStatus
check_args (TsrIsa isa, const TsrWeights *w, const float *x, int64_t m, int64_t ldx,
            float *y, int64_t ldy, TsrError *err)
{
  int ti = tsr_kernel_type_index (w->type);
  if (ti < 0)
    return tsr_error_set (err, TSR_EFORMAT, "Weights of type %d cannot be multiplied; convert the "
                          "model again with a supported type.", (int) w->type);
  if (isa < 0 || isa >= TSR_ISA_COUNT || !tsr_isa_available (isa))
    return tsr_error_set (err, TSR_EINVAL, "This CPU cannot run the %s kernels.", tsr_isa_name (isa));
  if (w->rows <= 0 || w->cols <= 0 || m < 0 || ldx < w->cols || ldy < w->rows || w->data == NULL ||
      (m > 0 && (x == NULL || y == NULL)))
    return tsr_error_set (err, TSR_EINVAL, "Bad matrix product arguments (%lld×%lld weights, "
                          "%lld rows).", (long long) w->rows, (long long) w->cols, (long long) m);
  if ((w->type == TSR_DTYPE_Q8_0 || w->type == TSR_DTYPE_Q4_0) && w->cols % TSR_QK != 0)
    return tsr_error_set (err, TSR_EFORMAT, "A %s matrix needs rows of a multiple of %d values, "
                          "not %lld.", tsr_dtype_name (w->type), TSR_QK, (long long) w->cols);
  return TSR_OK;
}

/* ==== Few rows: dot products =========================================== */

typedef struct {
  const TsrKernelTable *kt;
  const TsrWeights     *w;
  const unsigned char  *act;        /* m prepared activation rows */
  size_t                act_stride;
  int64_t               m;
  float                *y;
  int64_t               ldy;
  int                   ti;
} RowsJob;

static void
rows_job (void *ctx, int ith, int nth)
{
  RowsJob *j = ctx;
  int64_t n = j->w->rows;
  int64_t chunks = (n + ROW_CHUNK - 1) / ROW_CHUNK;
  /* Contiguous ranges per thread: each streams its own part of the matrix,
   * which is what the hardware prefetchers follow best. */
  int64_t c0 = chunks * ith / nth, c1 = chunks * (ith + 1) / nth;
  float (*dot) (const void *, const void *, int64_t) = j->kt->dot[j->ti];

  for (int64_t r = c0 * ROW_CHUNK; r < c1 * ROW_CHUNK && r < n; r++)
    {
      const void *wr = (const unsigned char *) j->w->data + (size_t) r * j->w->row_bytes;
      for (int64_t i = 0; i < j->m; i++)
        j->y[i * j->ldy + r] = dot (wr, j->act + (size_t) i * j->act_stride, j->w->cols);
    }
}

TsrStatus
tsr_matmul_rows (TsrPool *pool, TsrIsa isa, const TsrWeights *w, const float *x, int64_t m,
                 int64_t ldx, float *y, int64_t ldy, TsrError *err)
{
  TsrStatus st = check_args (isa, w, x, m, ldx, y, ldy, err);
  RowsJob job;
  unsigned char *act = NULL;

  if (st != TSR_OK || m == 0)
    return st;

  job.kt = table_for (isa);
  job.w = w;
  job.m = m;
  job.y = y;
  job.ldy = ldy;
  job.ti = tsr_kernel_type_index (w->type);

  if (tsr_kernel_act_type (w->type) == TSR_DTYPE_Q8_0)
    {
      job.act_stride = (size_t) (w->cols / TSR_QK) * sizeof (TsrBlockQ8_0);
      act = malloc (job.act_stride * (size_t) m);
      if (act == NULL)
        return tsr_error_set (err, TSR_ENOMEM, "Out of memory quantising %lld activation rows.",
                              (long long) m);
      for (int64_t i = 0; i < m; i++)
        job.kt->quantize_q8_0 (x + i * ldx, act + (size_t) i * job.act_stride, w->cols);
      job.act = act;
    }
  else
    {
      job.act = (const unsigned char *) x;
      job.act_stride = (size_t) ldx * sizeof (float);
    }

  tsr_pool_run (pool, rows_job, &job);
  free (act);
  return TSR_OK;
}

/* ==== Many rows: dequantised panels through sgemm ====================== */

static pthread_once_t blas_once = PTHREAD_ONCE_INIT;
static pthread_key_t panel_key;

static void
panel_free (void *p)
{
  free (p);
}

static void
blas_setup (void)
{
  tsr_blas_init ();
  pthread_key_create (&panel_key, panel_free);
}

typedef struct {
  size_t cap;
  float  data[];
} Panel;

/* Each thread keeps its panel buffer between calls: reallocating megabytes
 * per product would cost page faults on every call. */
static float *
thread_panel (size_t floats)
{
  Panel *p = pthread_getspecific (panel_key);
  if (p == NULL || p->cap < floats)
    {
      free (p);
      p = malloc (sizeof (Panel) + floats * sizeof (float));
      if (p == NULL)
        {
          pthread_setspecific (panel_key, NULL);
          return NULL;
        }
      p->cap = floats;
      pthread_setspecific (panel_key, p);
    }
  return p->data;
}

typedef struct {
  const TsrKernelTable *kt;
  const TsrWeights     *w;
  const float          *x;
  int64_t               m, ldx;
  float                *y;
  int64_t               ldy;
  int                   ti;
  int                   failed;
} PanelJob;

static void
panel_job (void *ctx, int ith, int nth)
{
  PanelJob *j = ctx;
  int64_t n = j->w->rows, k = j->w->cols;
  int64_t panels = (n + PANEL_ROWS - 1) / PANEL_ROWS;
  float *buf = NULL;

  if (j->ti != 0)
    {
      buf = thread_panel ((size_t) PANEL_ROWS * (size_t) k);
      if (buf == NULL)
        {
          j->failed = 1;
          return;
        }
    }
  for (int64_t p = ith; p < panels; p += nth)
    {
      int64_t r0 = p * PANEL_ROWS, rows = n - r0 < PANEL_ROWS ? n - r0 : PANEL_ROWS;
      const unsigned char *src = (const unsigned char *) j->w->data + (size_t) r0 * j->w->row_bytes;
      const float *b;
      int ldb;

      if (j->ti == 0 && j->w->row_bytes % sizeof (float) == 0)
        {
          b = (const float *) src;
          ldb = (int) (j->w->row_bytes / sizeof (float));
        }
      else
        {
          for (int64_t r = 0; r < rows; r++)
            j->kt->dequantize[j->ti] (src + (size_t) r * j->w->row_bytes, buf + r * k, k);
          b = buf;
          ldb = (int) k;
        }
      cblas_sgemm (CblasRowMajor, CblasNoTrans, CblasTrans, (int) j->m, (int) rows, (int) k,
                   1.0f, j->x, (int) j->ldx, b, ldb, 0.0f, j->y + r0, (int) j->ldy);
    }
}

TsrStatus
tsr_matmul_panel (TsrPool *pool, TsrIsa isa, const TsrWeights *w, const float *x, int64_t m,
                  int64_t ldx, float *y, int64_t ldy, TsrError *err)
{
  TsrStatus st = check_args (isa, w, x, m, ldx, y, ldy, err);
  PanelJob job;

  if (st != TSR_OK || m == 0)
    return st;
  if (m > INT32_MAX || w->cols > INT32_MAX || ldx > INT32_MAX || ldy > INT32_MAX)
    return tsr_error_set (err, TSR_ETOOLARGE, "A %lld×%lld product is too large for BLAS.",
                          (long long) m, (long long) w->cols);
  pthread_once (&blas_once, blas_setup);

  job.kt = table_for (isa);
  job.w = w;
  job.x = x;
  job.m = m;
  job.ldx = ldx;
  job.y = y;
  job.ldy = ldy;
  job.ti = tsr_kernel_type_index (w->type);
  job.failed = 0;
  tsr_pool_run (pool, panel_job, &job);
  if (job.failed)
    return tsr_error_set (err, TSR_ENOMEM, "Out of memory for a %lld-value weight panel.",
                          (long long) PANEL_ROWS * w->cols);
  return TSR_OK;
}

TsrStatus
tsr_matmul (TsrPool *pool, TsrIsa isa, const TsrWeights *w, const float *x, int64_t m,
            int64_t ldx, float *y, int64_t ldy, TsrError *err)
{
  if (m < TSR_GEMM_MIN_ROWS)
    return tsr_matmul_rows (pool, isa, w, x, m, ldx, y, ldy, err);
  return tsr_matmul_panel (pool, isa, w, x, m, ldx, y, ldy, err);
}
