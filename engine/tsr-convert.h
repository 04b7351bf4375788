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

/* Everything the metadata of an internlm2-4khd file says (DESIGN.md's key
 * table), whatever made the file: the converter fills it from config.json
 * and the tokenizer, tsr_synth from its parameters. One writer for both,
 * so a synthetic file cannot drift from a converted one. */
typedef struct {
  const char     *name;                       /* general.name */
  TsrDType        type;                       /* general.file_type: the chosen type */
  int             quantised;                  /* some tensor is q8_0/q4_0 */
  uint32_t        n_ctx, n_embd, n_layer, n_ff, n_head, n_head_kv;
  uint32_t        max_input;                  /* 0: not written */
  float           rms_eps, rope_freq_base;
  uint32_t        plora_rank[TSR_PLORA_COUNT];
  float           plora_scale[TSR_PLORA_COUNT];
  uint32_t        v_image_size, v_patch_size, v_n_embd, v_n_layer, v_n_ff, v_n_head;
  float           v_eps;
  const TsrVocab *vocab;                      /* pieces, scores, types, BOS/EOS, prefix */
  int32_t         unk_id, pad_id;             /* −1: not written */
  int32_t         im_start_id, im_end_id;
  int             synthetic;                  /* writes tessera.synthetic = true */
} TsrModelMeta;

TsrStatus tsr_model_meta_write (TsrGgufWriter *w, const TsrModelMeta *m, TsrError *err);

#endif /* TSR_CONVERT_H */
