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

/* ==== Many rows: dequantised chunks through sgemm ====================== *
 *
 * OpenBLAS packs both operands of every sgemm call. Handing it one panel
 * of W at a time (as this path first did, 128 rows a call) repacks all of
 * X for every panel: eight times a 1024-row product, ≈10% of a prefill.
 * So when X has rows enough for every thread, each thread takes one
 * contiguous share of X's rows and multiplies it by a large chunk of W
 * that all threads dequantised together into shared scratch (f32 weights
 * are used in place, all of W in one call): X is packed once per chunk,
 * W's rows once per thread. On the 2-core machine this ran the ViT's
 * products as fast as OpenBLAS on its own threads, and 10–25% faster than
 * the panels. With a short X each thread instead takes its own rows of W,
 * a thread-sized chunk at a time, and every thread packs all of X. */

/* X rows a thread needs before it gets a share of X rather than of W:
 * splitting W was up to 20% slower at 577 rows (tsr-projector's
 * measurements), and an sgemm of fewer rows wastes its packing of W. */
#define MIN_ROWS_PER_THREAD 128

/* Every split of X's or W's rows falls on a multiple of this: OpenBLAS
 * computes an edge tile with other kernels than a full one (summing in
 * another order), so shares on unaligned rows would make a result depend
 * on the thread count. 64 is a multiple of every unroll it uses. */
#define SPLIT_ALIGN 64

/* Start of share i of n rows split nth ways, on an aligned row. */
static int64_t
share_start (int64_t n, int i, int nth)
{
  if (i >= nth)
    return n;
  return n * i / nth / SPLIT_ALIGN * SPLIT_ALIGN;
}

/* Rows of a chunk of `floats` values of rows of k, aligned when it can be. */
static int64_t
chunk_rows (size_t floats, int64_t k)
{
  int64_t rows = (int64_t) (floats / (size_t) k);
  return rows >= SPLIT_ALIGN ? rows / SPLIT_ALIGN * SPLIT_ALIGN : rows > 0 ? rows : 1;
}

static pthread_once_t blas_once = PTHREAD_ONCE_INIT;
static pthread_key_t scratch_key;

static void
scratch_free (void *p)
{
  free (p);
}

static void
blas_setup (void)
{
  /* Our pool is the parallelism; OpenBLAS must not start threads of its own. */
  tsr_blas_init ();
  pthread_key_create (&scratch_key, scratch_free);
}

typedef struct {
  size_t cap;
  float  data[];
} Scratch;

/* The calling thread keeps its scratch between calls: reallocating
 * megabytes per product would cost page faults on every call. The pool's
 * workers only write into it during a call, so one buffer per caller. */
static float *
thread_scratch (size_t floats)
{
  Scratch *p = pthread_getspecific (scratch_key);
  if (p == NULL || p->cap < floats)
    {
      free (p);
      p = malloc (sizeof (Scratch) + floats * sizeof (float));
      if (p == NULL)
        {
          pthread_setspecific (scratch_key, NULL);
          return NULL;
        }
      p->cap = floats;
      pthread_setspecific (scratch_key, p);
    }
  return p->data;
}

size_t
tsr_matmul_scratch_floats (int n_threads, int64_t k)
{
  size_t per = (size_t) k > TSR_MATMUL_CHUNK_FLOATS ? (size_t) k : TSR_MATMUL_CHUNK_FLOATS;
  return (size_t) (n_threads > 0 ? n_threads : 1) * per;
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
  size_t                per_thread;   /* floats of scratch a thread owns */
  int                   ti;
  int                   in_place;     /* f32 rows multiplied where they are */
} GemmJob;

/* Each thread: rows m0…m1 of X against all of W. The threads dequantise
 * a shared chunk of W together, then each multiplies its rows by it. */
static void
gemm_rows_of_x (GemmJob *j, int ith, int nth)
{
  const TsrWeights *w = j->w;
  int64_t m0 = share_start (j->m, ith, nth), m1 = share_start (j->m, ith + 1, nth), k = w->cols;
  int64_t chunk = chunk_rows ((size_t) nth * j->per_thread, k);

  if (j->in_place)
    {
      if (m1 > m0)
        cblas_sgemm (CblasRowMajor, CblasNoTrans, CblasTrans, (int) (m1 - m0), (int) w->rows, (int) k,
                     1.0f, j->x + m0 * j->ldx, (int) j->ldx, w->data,
                     (int) (w->row_bytes / sizeof (float)), 0.0f, j->y + m0 * j->ldy, (int) j->ldy);
      return;
    }
  for (int64_t r0 = 0; r0 < w->rows; r0 += chunk)
    {
      int64_t rows = w->rows - r0 < chunk ? w->rows - r0 : chunk;
      const unsigned char *src = (const unsigned char *) w->data + (size_t) r0 * w->row_bytes;
      for (int64_t r = rows * ith / nth; r < rows * (ith + 1) / nth; r++)
        j->kt->dequantize[j->ti] (src + (size_t) r * w->row_bytes, j->scratch + r * k, k);
      tsr_pool_barrier (j->pool);
      if (m1 > m0)
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
gemm_rows_of_w (GemmJob *j, int ith, int nth)
{
  const TsrWeights *w = j->w;
  int64_t n0 = share_start (w->rows, ith, nth), n1 = share_start (w->rows, ith + 1, nth), k = w->cols;
  int64_t chunk = j->in_place ? n1 - n0 : chunk_rows (j->per_thread, k);
  float *buf = j->scratch + (size_t) ith * j->per_thread;

  for (int64_t r0 = n0; r0 < n1; r0 += chunk)
    {
      int64_t rows = n1 - r0 < chunk ? n1 - r0 : chunk;
      const unsigned char *src = (const unsigned char *) w->data + (size_t) r0 * w->row_bytes;
      const float *b = (const float *) src;
      int64_t ldb = (int64_t) (w->row_bytes / sizeof (float));

      if (!j->in_place)
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

static void
gemm_job (void *ctx, int ith, int nth)
{
  GemmJob *j = ctx;
  if (nth > 1 && j->m >= (int64_t) nth * MIN_ROWS_PER_THREAD)
    gemm_rows_of_x (j, ith, nth);
  else
    gemm_rows_of_w (j, ith, nth);
}

TsrStatus
tsr_matmul_gemm (TsrPool *pool, TsrIsa isa, const TsrWeights *w, const float *x, int64_t m,
                 int64_t ldx, float *y, int64_t ldy, float *scratch, TsrError *err)
{
  TsrStatus st = check_args (isa, w, x, m, ldx, y, ldy, err);
  int nth = tsr_pool_size (pool);
  GemmJob job;

  if (st != TSR_OK || m == 0)
    return st;
  if (m > INT32_MAX || w->rows > INT32_MAX || w->cols > INT32_MAX || ldx > INT32_MAX ||
      ldy > INT32_MAX)
    return tsr_error_set (err, TSR_ETOOLARGE, "A %lld×%lld product is too large for BLAS.",
                          (long long) m, (long long) w->cols);
  pthread_once (&blas_once, blas_setup);

  job.pool = pool;
  job.kt = table_for (isa);
  job.w = w;
  job.x = x;
  job.m = m;
  job.ldx = ldx;
  job.y = y;
  job.ldy = ldy;
  job.ti = tsr_kernel_type_index (w->type);
  /* f32 rows are used in place when they can be. */
  job.in_place = job.ti == 0 && w->row_bytes % sizeof (float) == 0;
  job.per_thread = tsr_matmul_scratch_floats (1, w->cols);
  job.scratch = NULL;
  if (!job.in_place)
    {
      /* A caller's scratch sized for the usual chunk cannot take one row
       * of a wider matrix; the thread's own then. */
      job.scratch = (size_t) w->cols <= TSR_MATMUL_CHUNK_FLOATS ? scratch : NULL;
      if (job.scratch == NULL)
        job.scratch = thread_scratch (tsr_matmul_scratch_floats (nth, w->cols));
      if (job.scratch == NULL)
        return tsr_error_set (err, TSR_ENOMEM, "Out of memory for %.0f MB of dequantised weights.",
                              tsr_matmul_scratch_floats (nth, w->cols) * sizeof (float) / 1e6);
    }
  tsr_pool_run (pool, gemm_job, &job);
  return TSR_OK;
}

TsrStatus
tsr_matmul_panel (TsrPool *pool, TsrIsa isa, const TsrWeights *w, const float *x, int64_t m,
                  int64_t ldx, float *y, int64_t ldy, TsrError *err)
{
  return tsr_matmul_gemm (pool, isa, w, x, m, ldx, y, ldy, NULL, err);
}

TsrStatus
tsr_matmul (TsrPool *pool, TsrIsa isa, const TsrWeights *w, const float *x, int64_t m,
            int64_t ldx, float *y, int64_t ldy, TsrError *err)
{
  if (m < TSR_GEMM_MIN_ROWS)
    return tsr_matmul_rows (pool, isa, w, x, m, ldx, y, ldy, err);
  return tsr_matmul_panel (pool, isa, w, x, m, ldx, y, ldy, err);
}
