/* SPDX-License-Identifier: GPL-3.0-or-later
 *
 * tsr-projector.h — from ViT features to the rows the decoder reads
 * (model.md §6.5): the 2×2 merge, the token layout with its separator
 * tokens, and the projector MLP.
 *
 * Layout of one image whose tiles form a rows×cols grid, with g×g merged
 * tokens per view (g = 12 for the real model):
 *
 *   global view:  g rows of  [g tokens, sub_GN]          g·(g+1) rows
 *   separator:    glb_GN                                  1 row
 *   tile grid:    g·rows rows of [g·cols tokens, sub_GN]  g·rows·(g·cols+1) rows
 *
 * Grid row R = g·i + r walks the tiles (i, 0…cols−1) left to right, so a
 * grid row is stitched across tiles, never tile by tile. With g = 12 the
 * count is the planner's (tiles+1)·144 + 1 + (rows+1)·12.
 *
 * Views are numbered as the ViT sees them: 0 is the global view, 1 + k is
 * tile k (row-major, k = i·cols + j).
 */
#ifndef TSR_PROJECTOR_H
#define TSR_PROJECTOR_H

#include <stddef.h>
#include <stdint.h>

#include "tessera-engine.h"
#include "tsr-kernels.h"
#include "tsr-threads.h"

/* ---- Products --------------------------------------------------------- *
 *
 * Y = X·Wᵀ for the vision path's products, which all have hundreds to
 * thousands of rows. Each thread makes one single-threaded sgemm of one
 * contiguous share of X's rows against all of W (of W's rows when X is
 * short). f32 weights are used in place; others are dequantised a chunk
 * at a time into `scratch`, one chunk the threads share (or a thread's
 * own part). This is tsr_matmul_gemm with the caller's scratch (the
 * code moved to tsr-kernels.c so the decoder's prefill shares it); on the
 * ViT's shapes it is as fast as OpenBLAS running the product on its own
 * threads. Fewer than TSR_GEMM_MIN_ROWS rows go to tsr_matmul.
 */

/* Floats of scratch for n_threads (0 is fine for f32 weights only). */
size_t    tsr_vision_product_scratch (int n_threads);

TsrStatus tsr_vision_product (TsrPool *pool, TsrIsa isa, const TsrWeights *w, const float *x,
                              int64_t m, int64_t ldx, float *y, int64_t ldy, float *scratch,
                              TsrError *err);

/* ---- Layout ---------------------------------------------------------- */

typedef enum {
  TSR_LAYOUT_TOKEN,    /* a merged token of a view */
  TSR_LAYOUT_SUB_GN,   /* the newline after a row of tokens */
  TSR_LAYOUT_GLB_GN,   /* the one separator between global view and tiles */
} TsrLayoutKind;

typedef struct {
  TsrLayoutKind kind;
  int           view;   /* TOKEN: 0 = global, 1 + k = tile k; else −1 */
  int           r, c;   /* TOKEN: merged-token row and column in its view */
} TsrLayoutEntry;

/* Rows of the sequence for a rows×cols tile grid and g×g tokens a view. */
size_t tsr_layout_n_rows (int rows, int cols, int g);

/* The sequence row of merged token (r, c) of `view`. */
size_t tsr_layout_token_row (int rows, int cols, int g, int view, int r, int c);

/* The n-th sub_GN row (0 ≤ n < g·(rows + 1): the global view's g first,
 * then one per grid row), and the glb_GN row. */
size_t tsr_layout_sub_gn_row (int rows, int cols, int g, int n);
size_t tsr_layout_glb_gn_row (int g);

/* What each of the tsr_layout_n_rows rows holds: the layout spelled out,
 * for tests and for anyone reading an embedding dump. */
void   tsr_layout_describe (int rows, int cols, int g, TsrLayoutEntry *entries);

/* ---- Merge ----------------------------------------------------------- *
 *
 * Features of one view: side×side tokens (raster order) of c channels,
 * `ld` floats apart. Merged token (r, c) of the (side/2)×(side/2) result is
 * the concatenation of the features at (2r, 2c), (2r, 2c+1), (2r+1, 2c),
 * (2r+1, 2c+1): top-left, top-right, bottom-left, bottom-right.
 */
void   tsr_projector_merge (const float *features, int side, int c, size_t ld, float *merged);

/* The whole sequence before the MLP: every view's merged tokens at their
 * rows and the separators in between. features[v] points to view v's
 * side×side feature rows (stride ld); seq gets tsr_layout_n_rows rows of
 * 4·c floats. The encoder streams views through the MLP instead of
 * building this; tests use it to pin the order. */
void   tsr_projector_assemble (int rows, int cols, int side, int c, const float *const *features,
                               size_t ld, const float *sub_gn, const float *glb_gn, float *seq);

/* ---- The MLP --------------------------------------------------------- */

typedef struct {
  int          n_in;        /* 4 · ViT width */
  int          n_out;       /* the decoder's embedding width */
  TsrWeights   w0, w2;      /* mm.0 [n_out, n_in], mm.2 [n_out, n_out] */
  const float *b0, *b2;     /* [n_out] */
  const float *sub_gn;      /* [n_in] */
  const float *glb_gn;      /* [n_in] */
} TsrProjector;

/* y = W2·gelu(W0·x + b0) + b2 for m rows of x (stride n_in); tmp holds
 * m·n_out floats; y has stride n_out; scratch as for tsr_vision_product.
 * gelu is the exact erf form. */
TsrStatus tsr_projector_mlp (const TsrProjector *p, TsrPool *pool, TsrIsa isa, const float *x,
                             int64_t m, float *tmp, float *y, float *scratch, TsrError *err);

/* Multiply-adds ×2 of the MLP for one row. */
double    tsr_projector_flops_per_row (const TsrProjector *p);

#endif
