/* SPDX-License-Identifier: GPL-3.0-or-later
 *
 * tsr-projector.c — the token layout, the 2×2 merge and the projector MLP
 * (model.md §6.5). The order here is the model's contract with its
 * decoder; tests/test-vision.c pins it with traced features.
 */
#include "tsr-projector.h"

#include <math.h>
#include <string.h>

/* ==== Products ========================================================== */

/* The split and the scratch are tsr_matmul_gemm's (tsr-kernels.c), which
 * began here; the decoder's prefill uses the same code. */

size_t
tsr_vision_product_scratch (int n_threads)
{
  return tsr_matmul_scratch_floats (n_threads, 0);
}

TsrStatus
tsr_vision_product (TsrPool *pool, TsrIsa isa, const TsrWeights *w, const float *x, int64_t m,
                    int64_t ldx, float *y, int64_t ldy, float *scratch, TsrError *err)
{
  if (m < TSR_GEMM_MIN_ROWS)
    return tsr_matmul (pool, isa, w, x, m, ldx, y, ldy, err);
  return tsr_matmul_gemm (pool, isa, w, x, m, ldx, y, ldy, scratch, err);
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
