/* SPDX-License-Identifier: GPL-3.0-or-later
 *
 * tsr-convert.h — the converter's fixed facts (internal to the engine).
 * Its API is tsr_convert in tessera-engine.h ("Conversion").
 *
 * These are the values the converter falls back on when config.json is
 * silent; DESIGN.md ("The converter") says where each comes from.
 */
#ifndef TSR_CONVERT_H
#define TSR_CONVERT_H

#include "tessera-engine.h"

/* The vision tower when config.json has no "vision_config": CLIP
 * ViT-L/14 at 336 pixels (model.md §5). */
#define TSR_CONVERT_VIT_HIDDEN      1024
#define TSR_CONVERT_VIT_LAYERS      24
#define TSR_CONVERT_VIT_HEADS       16
#define TSR_CONVERT_VIT_FFN         4096
#define TSR_CONVERT_VIT_PATCH       14
#define TSR_CONVERT_VIT_IMAGE       336
#define TSR_CONVERT_VIT_EPS         1e-5

/* PLoRA alphas when config.json has no "plora_alpha" (model.md §3): the
 * PLoRA class default of 16 for wqkv (scale 2.0 at rank 8), and 256 for
 * wo, w1, w2, w3 (scale 1.0 at rank 256), the scales LMDeploy uses. */
#define TSR_CONVERT_ALPHA_WQKV      16.0
#define TSR_CONVERT_ALPHA_OTHER     256.0

/* Values converted per step: bounds the working buffers (one f32 copy and
 * one output copy of this many values) and the time between progress
 * reports and abort checks. A multiple of every block size. */
#define TSR_CONVERT_CHUNK_VALUES    ((size_t) 1 << 21)

#endif /* TSR_CONVERT_H */
