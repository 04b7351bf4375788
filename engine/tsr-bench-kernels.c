/* SPDX-License-Identifier: GPL-3.0-or-later
 *
 * tsr-bench-kernels.c — timings of the matrix products on the shapes the
 * model runs, printed with the figures that judge them: GFLOP/s, GB/s of
 * weights read, the ratio to OpenBLAS sgemm on the same shape in the same
 * run, and a STREAM-style triad as the bandwidth bound of one-row products.
 * Never pass/fail: numbers for a person to read.
 */
#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tessera-engine.h"
#include "tsr-blas.h"
#include "tsr-cpu.h"
#include "tsr-dtype.h"
#include "tsr-error.h"
#include "tsr-kernels.h"
#include "tsr-threads.h"

typedef struct {
  int64_t m, n, k;
} Shape;

static const Shape shapes[] = {
  { 577, 1024, 1024 }, { 577, 4096, 1024 }, { 577, 1024, 4096 }, { 512, 4096, 4096 },
  { 4096, 4096, 4096 }, { 2048, 14336, 4096 }, { 1, 4096, 4096 }, { 1, 14336, 4096 },
};

static const TsrDType bench_types[] = {
  TSR_DTYPE_F32, TSR_DTYPE_F16, TSR_DTYPE_BF16, TSR_DTYPE_Q8_0, TSR_DTYPE_Q4_0,
};

static double
now_s (void)
{
  struct timespec ts;
  clock_gettime (CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int
cmp_double (const void *a, const void *b)
{
  double x = *(const double *) a, y = *(const double *) b;
  return x < y ? -1 : x > y;
}

/* Median of at least 3 runs, more while they take under half a second. */
typedef void (*RunFn) (void *ctx);

static double
median_time (RunFn fn, void *ctx)
{
  double t[15], total = 0;
  int n = 0;
  fn (ctx);   /* warm-up: page in weights, size buffers */
  while (n < 15 && (n < 3 || total < 0.5))
    {
      double t0 = now_s ();
      fn (ctx);
      t[n] = now_s () - t0;
      total += t[n++];
    }
  qsort (t, (size_t) n, sizeof t[0], cmp_double);
  return t[n / 2];
}

static float *
random_floats (size_t count, uint64_t seed)
{
  float *p = malloc (count * sizeof (float));
  if (p == NULL)
    return NULL;
  for (size_t i = 0; i < count; i++)
    {
      seed ^= seed << 13;
      seed ^= seed >> 7;
      seed ^= seed << 17;
      p[i] = (float) ((seed >> 40) * (1.0 / 16777216.0)) - 0.5f;
    }
  return p;
}

/* ---- Triad ------------------------------------------------------------ */

typedef struct {
  TsrPool *pool;
  float   *a, *b, *c;
  size_t   n;
} Triad;

static void
triad_job (void *ctx, int ith, int nth)
{
  Triad *t = ctx;
  size_t i0 = t->n * (size_t) ith / (size_t) nth, i1 = t->n * (size_t) (ith + 1) / (size_t) nth;
  for (size_t i = i0; i < i1; i++)
    t->a[i] = t->b[i] + 3.0f * t->c[i];
}

static void
triad_run (void *ctx)
{
  Triad *t = ctx;
  tsr_pool_run (t->pool, triad_job, t);
}

/* ---- Products --------------------------------------------------------- */

typedef struct {
  TsrPool          *pool;
  TsrIsa            isa;
  const TsrWeights *w;
  const float      *x;
  float            *y;
  int64_t           m;
  TsrStatus         status;
  TsrError          err;
} Product;

static void
product_run (void *ctx)
{
  Product *p = ctx;
  if (p->status == TSR_OK)
    p->status = tsr_matmul (p->pool, p->isa, p->w, p->x, p->m, p->w->cols, p->y, p->w->rows, &p->err);
}

typedef struct {
  const float *x, *w;
  float       *y;
  Shape        s;
} Sgemm;

static void
sgemm_run (void *ctx)
{
  Sgemm *g = ctx;
  if (g->s.m == 1)
    cblas_sgemv (CblasRowMajor, CblasNoTrans, (int) g->s.n, (int) g->s.k, 1.0f, g->w, (int) g->s.k,
                 g->x, 1, 0.0f, g->y, 1);
  else
    cblas_sgemm (CblasRowMajor, CblasNoTrans, CblasTrans, (int) g->s.m, (int) g->s.n, (int) g->s.k,
                 1.0f, g->x, (int) g->s.k, g->w, (int) g->s.k, 0.0f, g->y, (int) g->s.n);
}

static int
type_selected (const TsrBenchKernelsParams *p, TsrDType t)
{
  return p->type < 0 || p->type == (int) t;
}

TsrStatus
tsr_bench_kernels (const TsrBenchKernelsParams *params, FILE *out, TsrError *err)
{
  const TsrCpu *cpu = tsr_cpu ();
  TsrPool *pool = NULL;
  TsrStatus st;
  char blas[256];
  double triad_gbs = 0;

  st = tsr_pool_new (params->threads, &pool, err);
  if (st != TSR_OK)
    return st;
  if (params->isa >= 0 && !tsr_isa_available ((TsrIsa) params->isa))
    {
      tsr_pool_free (pool);
      return tsr_error_set (err, TSR_EINVAL, "This CPU cannot run the %s kernels; it has %s%s%s.",
                            tsr_isa_name ((TsrIsa) params->isa), cpu->avx2 ? "AVX2" : "SSE only",
                            cpu->avx512f ? ", AVX-512" : "", cpu->amx_tile ? ", AMX" : "");
    }
  tsr_blas_init ();
  tsr_blas_describe (blas, sizeof blas);
  fprintf (out, "cpu      %s, %d physical cores; AVX2 %s, FMA %s, F16C %s, AVX-512 %s, AMX %s\n",
           cpu->vendor, cpu->physical_cores, cpu->avx2 ? "yes" : "no", cpu->fma ? "yes" : "no",
           cpu->f16c ? "yes" : "no", cpu->avx512f ? "yes" : "no",
           cpu->amx_tile ? (cpu->amx_usable ? "yes" : "present, not granted") : "no");
  fprintf (out, "blas     %s\n", blas);
  {
    const char *better = tsr_blas_better_coretype ();
    if (better != NULL)
      fprintf (out, "warning  OpenBLAS runs generic kernels here; OPENBLAS_CORETYPE=%s would be "
               "faster (tessera-cli sets it itself unless TESSERA_NO_REEXEC is set)\n", better);
  }
  fprintf (out, "threads  %d (engine pool; OpenBLAS reference uses the same count)\n",
           tsr_pool_size (pool));

  /* Triad over arrays far larger than the last-level cache. */
  {
    Triad t = { pool, NULL, NULL, NULL, (size_t) 1 << 25 };
    t.a = random_floats (t.n, 1);
    t.b = random_floats (t.n, 2);
    t.c = random_floats (t.n, 3);
    if (t.a && t.b && t.c)
      {
        double s = median_time (triad_run, &t);
        triad_gbs = 3.0 * 4.0 * (double) t.n / s / 1e9;
        fprintf (out, "triad    %.1f GB/s (a = b + s·c over 3 × %zu MiB)\n", triad_gbs,
                 t.n * 4 / (1024 * 1024));
      }
    free (t.a);
    free (t.b);
    free (t.c);
  }

  fprintf (out, "\n%-16s %-5s %-7s %-5s %10s %9s %9s %9s %s\n", "M×N×K", "type", "isa", "path",
           "ms", "GFLOP/s", "GB/s(W)", "vs sgemm", "");
  for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++)
    {
      Shape s = shapes[si];
      double flops = 2.0 * (double) s.m * (double) s.n * (double) s.k;
      float *wf, *x, *y;
      double ref_s = 0;

      if (params->quick && flops > 1e11)
        continue;
      wf = random_floats ((size_t) (s.n * s.k), 7 + si);
      x = random_floats ((size_t) (s.m * s.k), 11 + si);
      y = malloc ((size_t) (s.m * s.n) * sizeof (float));
      if (wf == NULL || x == NULL || y == NULL)
        {
          free (wf);
          free (x);
          free (y);
          tsr_pool_free (pool);
          return tsr_error_set (err, TSR_ENOMEM, "Out of memory for the %lld×%lld×%lld benchmark.",
                                (long long) s.m, (long long) s.n, (long long) s.k);
        }

      /* OpenBLAS on its own threads, the way an f32 engine would call it. */
      {
        Sgemm g = { x, wf, y, s };
        tsr_pool_rest (pool);
        openblas_set_num_threads (tsr_pool_size (pool));
        ref_s = median_time (sgemm_run, &g);
        openblas_set_num_threads (1);
        fprintf (out, "%5lld×%5lld×%5lld f32   openblas %-5s %10.2f %9.1f %9.1f %9s\n",
                 (long long) s.m, (long long) s.n, (long long) s.k, s.m == 1 ? "gemv" : "gemm",
                 ref_s * 1e3, flops / ref_s / 1e9, (double) s.n * s.k * 4 / ref_s / 1e9, "1.00");
      }

      for (size_t ti = 0; ti < sizeof bench_types / sizeof bench_types[0]; ti++)
        {
          TsrDType t = bench_types[ti];
          uint64_t rb;
          void *wq;
          TsrWeights w;
          if (!type_selected (params, t))
            continue;
          if (tsr_dtype_row_bytes (t, (uint64_t) s.k, &rb, err) != TSR_OK)
            break;
          wq = malloc ((size_t) rb * (size_t) s.n);
          if (wq == NULL)
            continue;
          for (int64_t r = 0; r < s.n; r++)
            tsr_quantize_row (t, wf + r * s.k, (unsigned char *) wq + (size_t) r * rb, (size_t) s.k, NULL);
          w.type = t;
          w.rows = s.n;
          w.cols = s.k;
          w.row_bytes = (size_t) rb;
          w.data = wq;

          for (int isa = 0; isa < TSR_ISA_COUNT; isa++)
            {
              Product p = { pool, (TsrIsa) isa, &w, x, y, s.m, TSR_OK, { TSR_OK, "" } };
              double secs, gbs;
              if (!tsr_isa_available ((TsrIsa) isa) || (params->isa >= 0 && params->isa != isa))
                continue;
              secs = median_time (product_run, &p);
              if (p.status != TSR_OK)
                {
                  fprintf (out, "error    %s\n", p.err.message);
                  continue;
                }
              gbs = (double) rb * (double) s.n / secs / 1e9;
              fprintf (out, "%5lld×%5lld×%5lld %-5s %-8s %-5s %10.2f %9.1f %9.1f %9.2f",
                       (long long) s.m, (long long) s.n, (long long) s.k, tsr_dtype_name (t),
                       tsr_isa_name ((TsrIsa) isa), s.m < TSR_GEMM_MIN_ROWS ? "rows" : "panel",
                       secs * 1e3, flops / secs / 1e9, gbs, ref_s / secs);
              if (s.m < TSR_GEMM_MIN_ROWS && triad_gbs > 0)
                fprintf (out, "  %3.0f%% of triad", 100.0 * gbs / triad_gbs);
              fputc ('\n', out);
            }
          free (wq);
        }
      free (wf);
      free (x);
      free (y);
    }
  tsr_pool_free (pool);
  tsr_error_clear (err);
  return TSR_OK;
}
