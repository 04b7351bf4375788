/* SPDX-License-Identifier: GPL-3.0-or-later
 *
 * test-kernels.c — every matrix-product path against a double-precision
 * reference, every SIMD kernel against its scalar twin, on awkward sizes:
 * M = 1, 31, 33, 400; N = 1 and odd; K = 32 and 4128 (and 33 for f32). Error
 * bounds are normalised mean squared errors, as ggml's tests use.
 */
#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tsr-dtype.h"
#include "tsr-kernels.h"
#include "tsr-threads.h"

static int failures;

#define CHECK(cond, ...)                                              \
  do {                                                                \
    if (!(cond))                                                      \
      {                                                               \
        failures++;                                                   \
        fprintf (stderr, "FAIL %s:%d: ", __FILE__, __LINE__);         \
        fprintf (stderr, __VA_ARGS__);                                \
        fputc ('\n', stderr);                                         \
      }                                                               \
  } while (0)

static uint64_t rng_state = 0x2545F4914F6CDD1DULL;

static float
frand (void)
{
  rng_state ^= rng_state << 13;
  rng_state ^= rng_state >> 7;
  rng_state ^= rng_state << 17;
  return (float) ((rng_state >> 11) * (1.0 / 9007199254740992.0)) * 2.0f - 1.0f;
}

static const TsrDType types[] = {
  TSR_DTYPE_F32, TSR_DTYPE_F16, TSR_DTYPE_BF16, TSR_DTYPE_Q8_0, TSR_DTYPE_Q4_0,
};

/* NMSE bounds against the f64 product of the dequantised weights. Only the
 * few-rows path of q8_0/q4_0 quantises the activations too (to q8_0, 8-bit
 * with a per-block scale: relative error ≈ 1/254 per value); over many
 * outputs that gives an NMSE near 1e-5, but a single output (M = N = 1)
 * can land several times higher, hence the margin. A wrong block layout
 * or scale gives an NMSE near 1. */
static double
bound (TsrDType t, int rows_path)
{
  if (rows_path && (t == TSR_DTYPE_Q8_0 || t == TSR_DTYPE_Q4_0))
    return 2e-3;
  return 1e-9;
}

typedef struct {
  TsrWeights w;
  void      *data;
  float     *deq;   /* the weights as f32, dequantised by the scalar code */
} Matrix;

static void
make_matrix (Matrix *m, TsrDType t, int64_t n, int64_t k)
{
  size_t row_bytes = 0;
  float *src = malloc ((size_t) (n * k) * sizeof (float));
  TsrError err;
  uint64_t rb;

  for (int64_t i = 0; i < n * k; i++)
    src[i] = frand ();
  if (tsr_dtype_row_bytes (t, (uint64_t) k, &rb, &err) != TSR_OK)
    {
      fprintf (stderr, "row_bytes: %s\n", err.message);
      exit (2);
    }
  row_bytes = (size_t) rb;
  m->data = malloc (row_bytes * (size_t) n);
  m->deq = malloc ((size_t) (n * k) * sizeof (float));
  for (int64_t r = 0; r < n; r++)
    {
      if (tsr_quantize_row (t, src + r * k, (unsigned char *) m->data + (size_t) r * row_bytes,
                            (size_t) k, &err) != TSR_OK ||
          tsr_dequantize_row (t, (unsigned char *) m->data + (size_t) r * row_bytes, m->deq + r * k,
                              (size_t) k, &err) != TSR_OK)
        {
          fprintf (stderr, "quantize: %s\n", err.message);
          exit (2);
        }
    }
  m->w.type = t;
  m->w.rows = n;
  m->w.cols = k;
  m->w.row_bytes = row_bytes;
  m->w.data = m->data;
  free (src);
}

static void
free_matrix (Matrix *m)
{
  free (m->data);
  free (m->deq);
}

static double
nmse (const float *y, const double *ref, int64_t count)
{
  double num = 0, den = 0;
  for (int64_t i = 0; i < count; i++)
    {
      double d = y[i] - ref[i];
      num += d * d;
      den += ref[i] * ref[i];
    }
  return den > 0 ? num / den : num;
}

/* Largest |a − b| over the largest |b|: rounding differences only. */
static double
max_rel_diff (const float *a, const float *b, int64_t count)
{
  double d = 0, mx = 0;
  for (int64_t i = 0; i < count; i++)
    {
      double e = fabs ((double) a[i] - b[i]);
      d = e > d ? e : d;
      mx = fabs ((double) b[i]) > mx ? fabs ((double) b[i]) : mx;
    }
  return mx > 0 ? d / mx : d;
}

static void
test_products (TsrPool **pools, int n_pools)
{
  /* 400 rows: X's rows split across 2 and 3 threads in the many-rows path. */
  const int64_t ms[] = { 1, 31, 33, 400 };
  const int64_t ns[] = { 1, 17, 129 };
  const int64_t ks[] = { 32, 4128, 33 };

  for (size_t ti = 0; ti < sizeof types / sizeof types[0]; ti++)
    for (size_t ki = 0; ki < 3; ki++)
      for (size_t ni = 0; ni < 3; ni++)
        {
          TsrDType t = types[ti];
          int64_t k = ks[ki], n = ns[ni];
          Matrix mat;
          if (k % TSR_QK != 0 && (t == TSR_DTYPE_Q8_0 || t == TSR_DTYPE_Q4_0))
            continue;
          make_matrix (&mat, t, n, k);
          for (size_t mi = 0; mi < sizeof ms / sizeof ms[0]; mi++)
            {
              int64_t m = ms[mi];
              int64_t ldx = k + 3, ldy = n + 5;   /* strides wider than the rows */
              float *x = malloc ((size_t) (m * ldx) * sizeof (float));
              double *ref = malloc ((size_t) (m * n) * sizeof (double));
              float *y = malloc ((size_t) (m * ldy) * sizeof (float));
              float *first = malloc ((size_t) (m * n) * sizeof (float));
              float *yc = malloc ((size_t) (m * n) * sizeof (float));

              for (int64_t i = 0; i < m * ldx; i++)
                x[i] = frand ();
              for (int64_t i = 0; i < m; i++)
                for (int64_t j = 0; j < n; j++)
                  {
                    double s = 0;
                    for (int64_t q = 0; q < k; q++)
                      s += (double) x[i * ldx + q] * mat.deq[j * k + q];
                    ref[i * n + j] = s;
                  }

              for (int path = 0; path < 2; path++)
                for (int isa = 0; isa < TSR_ISA_COUNT; isa++)
                  {
                    if (!tsr_isa_available ((TsrIsa) isa) || (path == 0 && m > 64))
                      continue;   /* long X never takes the rows path */
                    for (int p = 0; p < n_pools; p++)
                      {
                        TsrError err;
                        TsrStatus st;
                        double e;
                        for (int64_t i = 0; i < m * ldy; i++)
                          y[i] = NAN;
                        st = path == 0
                          ? tsr_matmul_rows (pools[p], (TsrIsa) isa, &mat.w, x, m, ldx, y, ldy, &err)
                          : tsr_matmul_panel (pools[p], (TsrIsa) isa, &mat.w, x, m, ldx, y, ldy, &err);
                        CHECK (st == TSR_OK, "matmul failed: %s", err.message);
                        for (int64_t i = 0; i < m; i++)
                          memcpy (yc + i * n, y + i * ldy, (size_t) n * sizeof (float));
                        e = nmse (yc, ref, m * n);
                        CHECK (e <= bound (t, path == 0),
                               "%s %s path, %s, %d threads, M=%lld N=%lld K=%lld: NMSE %.3g > %.3g",
                               tsr_dtype_name (t), path == 0 ? "rows" : "panel", tsr_isa_name ((TsrIsa) isa),
                               tsr_pool_size (pools[p]), (long long) m, (long long) n, (long long) k,
                               e, bound (t, path == 0));
                        /* The thread count never changes a result of the
                         * rows path. The many-rows path splits X's rows
                         * by the thread count once X is long, and
                         * OpenBLAS sums an edge tile in another order
                         * than a full one: there, only rounding may
                         * differ. */
                        if (p == 0)
                          memcpy (first, yc, (size_t) (m * n) * sizeof (float));
                        else if (path == 1)
                          CHECK (max_rel_diff (first, yc, m * n) <= 1e-5,
                                 "%s panel path, %s, M=%lld N=%lld K=%lld: %d threads differ from 1 "
                                 "by %.3g", tsr_dtype_name (t), tsr_isa_name ((TsrIsa) isa),
                                 (long long) m, (long long) n, (long long) k,
                                 tsr_pool_size (pools[p]), max_rel_diff (first, yc, m * n));
                        else
                          CHECK (memcmp (first, yc, (size_t) (m * n) * sizeof (float)) == 0,
                                 "%s %s path, %s, M=%lld N=%lld K=%lld: %d threads differ from 1",
                                 tsr_dtype_name (t), path == 0 ? "rows" : "panel",
                                 tsr_isa_name ((TsrIsa) isa), (long long) m, (long long) n,
                                 (long long) k, tsr_pool_size (pools[p]));
                        /* Columns of Y beyond N stay untouched. */
                        for (int64_t i = 0; i < m; i++)
                          for (int64_t j = n; j < ldy; j++)
                            CHECK (isnan (y[i * ldy + j]), "wrote past N");
                      }
                  }
              free (x);
              free (ref);
              free (y);
              free (first);
              free (yc);
            }
          free_matrix (&mat);
        }
}

/* Each SIMD kernel against its scalar twin on identical inputs: dequant
 * bit for bit, dots within float reordering error. */
static void
test_twins (void)
{
  const int64_t ks[] = { 32, 64, 96, 4128, 8, 15 };
  if (!tsr_isa_available (TSR_ISA_AVX2))
    {
      printf ("test-kernels: no AVX2 here; SIMD twins not compared\n");
      return;
    }
  for (size_t ti = 0; ti < sizeof types / sizeof types[0]; ti++)
    for (size_t ki = 0; ki < sizeof ks / sizeof ks[0]; ki++)
      {
        TsrDType t = types[ti];
        int idx = tsr_kernel_type_index (t);
        int64_t k = ks[ki];
        Matrix mat;
        float *x, *d1, *d2;
        void *act = NULL;
        const void *a;
        float s1, s2;

        if (k % TSR_QK != 0 && (t == TSR_DTYPE_Q8_0 || t == TSR_DTYPE_Q4_0))
          continue;
        make_matrix (&mat, t, 1, k);
        x = malloc ((size_t) k * sizeof (float));
        d1 = malloc ((size_t) k * sizeof (float));
        d2 = malloc ((size_t) k * sizeof (float));
        for (int64_t i = 0; i < k; i++)
          x[i] = frand () * 3.0f;
        a = x;
        if (tsr_kernel_act_type (t) == TSR_DTYPE_Q8_0)
          {
            act = malloc ((size_t) (k / TSR_QK) * sizeof (TsrBlockQ8_0));
            tsr_kernels_scalar.quantize_q8_0 (x, act, k);
            a = act;
          }
        s1 = tsr_kernels_scalar.dot[idx] (mat.data, a, k);
        s2 = tsr_kernels_avx2.dot[idx] (mat.data, a, k);
        CHECK (fabsf (s1 - s2) <= 1e-5f * (1.0f + fabsf (s1)) * sqrtf ((float) k),
               "%s dot K=%lld: scalar %.9g avx2 %.9g", tsr_dtype_name (t), (long long) k, s1, s2);
        tsr_kernels_scalar.dequantize[idx] (mat.data, d1, k);
        tsr_kernels_avx2.dequantize[idx] (mat.data, d2, k);
        CHECK (memcmp (d1, d2, (size_t) k * sizeof (float)) == 0, "%s dequantize K=%lld differs",
               tsr_dtype_name (t), (long long) k);
        free (act);
        free (x);
        free (d1);
        free (d2);
        free_matrix (&mat);
      }
}

static atomic_int counter;
static int slots[64];

static void
count_job (void *ctx, int ith, int nth)
{
  (void) ctx;
  atomic_fetch_add (&counter, 1);
  slots[ith]++;
  (void) nth;
}

static void
barrier_job (void *ctx, int ith, int nth)
{
  TsrPool *pool = ctx;
  /* Every thread writes its slot, waits, then checks everyone else's. */
  for (int round = 1; round <= 50; round++)
    {
      slots[ith] = round;
      tsr_pool_barrier (pool);
      for (int i = 0; i < nth; i++)
        if (slots[i] != round)
          atomic_fetch_add (&counter, 1000000);
      tsr_pool_barrier (pool);
    }
}

static void
test_pool (void)
{
  for (int n = 1; n <= 4; n++)
    {
      TsrPool *pool;
      TsrError err;
      int jobs = 0;
      CHECK (tsr_pool_new (n, &pool, &err) == TSR_OK, "pool: %s", err.message);
      atomic_store (&counter, 0);
      memset (slots, 0, sizeof slots);
      /* Back-to-back jobs find the workers spinning; jobs after a pause
       * find them asleep. Both must run every thread exactly once. */
      for (int i = 0; i < 300; i++, jobs++)
        {
          if (i % 100 == 99)
            {
              struct timespec ts = { 0, 20 * 1000 * 1000 };
              nanosleep (&ts, NULL);
            }
          if (i == 150)
            tsr_pool_rest (pool);
          tsr_pool_run (pool, count_job, NULL);
        }
      CHECK (atomic_load (&counter) == jobs * n, "pool of %d ran %d of %d thread-jobs", n,
             atomic_load (&counter), jobs * n);
      for (int i = 0; i < n; i++)
        CHECK (slots[i] == jobs, "thread %d ran %d jobs", i, slots[i]);
      atomic_store (&counter, 0);
      memset (slots, 0, sizeof slots);
      tsr_pool_run (pool, barrier_job, pool);
      CHECK (atomic_load (&counter) == 0, "barrier let threads through early (pool of %d)", n);
      tsr_pool_free (pool);
    }
}

static void
test_errors (TsrPool *pool)
{
  Matrix mat;
  float x[64] = { 0 }, y[4];
  TsrError err;
  TsrWeights bad;

  make_matrix (&mat, TSR_DTYPE_Q8_0, 2, 32);
  bad = mat.w;
  bad.cols = 40;   /* not a whole number of blocks */
  CHECK (tsr_matmul (pool, TSR_ISA_SCALAR, &bad, x, 1, 40, y, 2, &err) == TSR_EFORMAT &&
         err.message[0] != '\0', "q8_0 with K=40 accepted");
  bad = mat.w;
  bad.type = (TsrDType) 77;
  CHECK (tsr_matmul (pool, TSR_ISA_SCALAR, &bad, x, 1, 32, y, 2, &err) == TSR_EFORMAT,
         "unknown type accepted");
  CHECK (tsr_matmul (pool, TSR_ISA_SCALAR, &mat.w, x, 1, 16, y, 2, &err) == TSR_EINVAL,
         "ldx < K accepted");
  CHECK (tsr_matmul (pool, TSR_ISA_COUNT, &mat.w, x, 1, 32, y, 2, &err) == TSR_EINVAL,
         "unknown ISA accepted");
  free_matrix (&mat);
}

/* Softmax and SwiGLU: the AVX2 polynomial exp against libm's, on rows
 * of every tail length, with scores spread as attention's are (and a
 * row whose maximum dominates, where the others underflow to 0). */
static void
test_row_twins (void)
{
  const int64_t ns[] = { 1, 3, 7, 8, 9, 16, 100, 4099 };
  if (!tsr_isa_available (TSR_ISA_AVX2))
    return;
  for (size_t ni = 0; ni < sizeof ns / sizeof ns[0]; ni++)
    for (int spread = 0; spread < 3; spread++)
      {
        int64_t n = ns[ni];
        float *a = malloc ((size_t) n * sizeof (float)), *b = malloc ((size_t) n * sizeof (float));
        float *u = malloc ((size_t) n * sizeof (float)), *g1 = malloc ((size_t) n * sizeof (float));
        float *g2 = malloc ((size_t) n * sizeof (float));
        float range = spread == 0 ? 1.0f : spread == 1 ? 30.0f : 200.0f;
        double worst = 0, sum = 0;
        for (int64_t i = 0; i < n; i++)
          {
            a[i] = b[i] = frand () * range;
            g1[i] = g2[i] = frand () * range;
            u[i] = frand () * 4.0f;
          }
        tsr_kernels_scalar.softmax (a, n);
        tsr_kernels_avx2.softmax (b, n);
        for (int64_t i = 0; i < n; i++)
          {
            double d = fabs ((double) a[i] - b[i]) / (a[i] > 1e-30f ? a[i] : 1e-30f);
            worst = a[i] > 1e-30f && d > worst ? d : worst;
            sum += b[i];
          }
        CHECK (worst <= 1e-5 && fabs (sum - 1.0) <= 1e-5,
               "softmax avx2 vs scalar, n=%lld, range %g: relative difference %.3g, sum %.9g",
               (long long) n, range, worst, sum);
        tsr_kernels_scalar.silu_mul (g1, u, n);
        tsr_kernels_avx2.silu_mul (g2, u, n);
        worst = 0;
        for (int64_t i = 0; i < n; i++)
          {
            double d = fabs ((double) g1[i] - g2[i]) / (fabs (g1[i]) > 1e-30 ? fabs (g1[i]) : 1e-30);
            worst = fabs (g1[i]) > 1e-30 && d > worst ? d : worst;
          }
        CHECK (worst <= 1e-5, "silu_mul avx2 vs scalar, n=%lld, range %g: relative difference %.3g",
               (long long) n, range, worst);
        free (a);
        free (b);
        free (u);
        free (g1);
        free (g2);
      }
}

int
main (void)
{
  TsrPool *pools[3];
  TsrError err;
  const int sizes[3] = { 1, 2, 3 };

  for (int i = 0; i < 3; i++)
    if (tsr_pool_new (sizes[i], &pools[i], &err) != TSR_OK)
      {
        fprintf (stderr, "pool: %s\n", err.message);
        return 1;
      }
  printf ("test-kernels: best ISA here: %s\n", tsr_isa_name (tsr_isa_best ()));
  test_pool ();
  test_twins ();
  test_row_twins ();
  test_products (pools, 3);
  test_errors (pools[1]);
  for (int i = 0; i < 3; i++)
    tsr_pool_free (pools[i]);
  printf ("test-kernels: %d failures\n", failures);
  return failures ? 1 : 0;
}
