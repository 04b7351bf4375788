/* SPDX-License-Identifier: GPL-3.0-or-later
 *
 * tsr-image.h — internals of the image preprocessing (tsr-image.c) that the
 * tests look at directly. The public functions are in tessera-engine.h.
 */
#ifndef TSR_IMAGE_H
#define TSR_IMAGE_H

#include "tessera-engine.h"

/* CLIP's per-channel normalisation as the reference computes it, for every
 * byte value: lut[c][v] = (v/255 − mean[c]) / std[c] in float32, in that
 * order, with the constants rounded to float the way torch rounds Python
 * floats. Every float the preprocessing emits is one of these 768 values or
 * a bicubic mix of them. */
void tsr_image_norm_lut (float lut[3][256]);

/* How many worker threads a call asking for n_threads uses (≤ 0: one per
 * online processor), capped at TSR_IMAGE_THREADS_MAX. */
#define TSR_IMAGE_THREADS_MAX 64
int  tsr_image_thread_count (int n_threads);

#endif
