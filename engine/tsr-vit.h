/* SPDX-License-Identifier: GPL-3.0-or-later
 *
 * tsr-vit.h — the CLIP vision tower (model.md §5) and the vision handle
 * that strings it together with the preprocessing and the projector.
 *
 * The ViT runs a batch of views at a time: every product then has
 * batch·577 rows, which keeps the panel path of tsr_matmul busy, while the
 * activations stay a fixed size whatever the image (about 14 MB a view at
 * full size). The public API (tessera-engine.h, "Vision") is built on the
 * functions here.
 */
#ifndef TSR_VIT_H
#define TSR_VIT_H

#include <stddef.h>
#include <stdint.h>

#include "tessera-engine.h"
#include "tsr-kernels.h"
#include "tsr-projector.h"
#include "tsr-threads.h"

/* ---- Weights ---------------------------------------------------------- */

typedef struct {
  TsrWeights   q, k, v, out;        /* [E, E] each (E = ViT width) */
  TsrWeights   up, down;            /* [F, E], [E, F] */
  const float *q_b, *k_b, *v_b, *out_b, *up_b, *down_b;
  const float *ln1_w, *ln1_b, *ln2_w, *ln2_b;
} TsrVitLayer;

typedef struct {
  int          image_size, patch;   /* 336, 14 */
  int          side;                /* patches along a side: 24 */
  int          n_pos;               /* side² + 1 (the class token) = 577 */
  int          n_embd, n_head, head_dim, n_ff, n_layer;
  float        eps;
  TsrWeights   patch_embd;          /* [E, 3·P·P], columns in (channel, kh, kw) order */
  const float *class_embd;          /* [E] */
  const float *pos_embd;            /* [n_pos, E] */
  const float *pre_ln_w, *pre_ln_b;
  TsrVitLayer *layers;              /* n_layer */
} TsrVit;

/* Multiply-adds ×2 of one view: products and attention. */
double tsr_vit_flops_per_view (const TsrVit *vit);

/* ---- Running a batch -------------------------------------------------- */

typedef struct TsrVitWork TsrVitWork;

/* Working memory for up to `batch` views on a pool of n_threads. */
size_t      tsr_vit_work_bytes (const TsrVit *vit, int batch, int n_threads);
TsrStatus   tsr_vit_work_new   (const TsrVit *vit, int batch, int n_threads, TsrVitWork **out,
                                TsrError *err);
void        tsr_vit_work_free  (TsrVitWork *work);

/* Input slot i: one normalised view, float32 [3, image_size, image_size]. */
float      *tsr_vit_work_view  (TsrVitWork *work, int i);
/* After tsr_vit_forward: view i's features, side² rows (CLS dropped) of
 * n_embd floats, n_embd apart. Valid until the next forward. */
const float *tsr_vit_work_features (const TsrVitWork *work, int i);

/* Scratch for tsr_vision_product (and so tsr_projector_mlp) on this
 * work's threads; shared, so not during a forward. */
float      *tsr_vit_work_scratch (TsrVitWork *work);

/* Time spent in the last forwards, summed until reset. */
typedef struct {
  double products_ms;     /* the linear layers and the patch embedding */
  double attention_ms;    /* scores, softmax, weighted sums */
  double other_ms;        /* layer norms, biases, activations, residuals */
} TsrVitProfile;

void        tsr_vit_work_profile (TsrVitWork *work, TsrVitProfile *profile, int reset);

/* How the linear layers are multiplied. Benchmarks compare the three. */
typedef enum {
  TSR_VIT_PRODUCTS_VISION = 0,   /* tsr_vision_product: what the encoder uses */
  TSR_VIT_PRODUCTS_MATMUL,       /* tsr_matmul, the engine's general products */
  TSR_VIT_PRODUCTS_OPENBLAS,     /* f32 only: one sgemm on OpenBLAS's own threads, the yardstick */
} TsrVitProducts;

typedef struct {
  int   (*abort) (void *user_data);   /* polled before every layer; NULL: never */
  void   *user_data;
  TsrVitProducts products;
} TsrVitRun;

/* The first n_views input slots through the tower. TSR_ECANCELLED when
 * abort said so (the work stays usable). */
TsrStatus   tsr_vit_forward (const TsrVit *vit, TsrPool *pool, TsrIsa isa, TsrVitWork *work,
                             int n_views, const TsrVitRun *run, TsrError *err);

/* ---- The vision handle ------------------------------------------------ */

struct TsrVision
{
  TsrVisionInfo info;
  TsrVit        vit;
  TsrProjector  proj;
  void        **owned;      /* buffers this handle allocated (random or converted weights) */
  size_t        n_owned;
};

/* A model of the given dimensions (info's image_size … n_out) with random
 * weights of `type` in memory, for benchmarks. Matrices that cannot be
 * `type` (the 588-wide patch embedding in q8_0/q4_0) stay f32. */
TsrStatus   tsr_vision_new_random (const TsrVisionInfo *dims, TsrDType type, uint64_t seed,
                                   TsrVision **out, TsrError *err);

/* A copy of src whose matrices are converted to `type` (as a converter
 * would store them); vectors are shared, so src must outlive the copy. */
TsrStatus   tsr_vision_convert (const TsrVision *src, TsrDType type, TsrVision **out,
                                TsrError *err);

#endif
