/* SPDX-License-Identifier: GPL-3.0-or-later
 * The decoder; its API lives in tessera-engine.h ("Language model"). */
#ifndef TSR_LLM_H
#define TSR_LLM_H

#include "tessera-engine.h"
#include "tsr-threads.h"

/* Makes dst hold src's rows: copies rows from..src_pos−1 of every layer
 * and sets dst's position to src's. The rows below `from` must already be
 * the same in both (beams sharing a prompt copy only what they add). */
TsrStatus tsr_llm_state_copy (TsrLlmState *dst, const TsrLlmState *src, int from, TsrError *err);

/* Rows a forward call runs through the layers at once (a longer call runs
 * in chunks of this many; the session prefills in calls of this many so
 * progress and the abort poll come between them). Each many-rows product
 * dequantises every weight once per chunk and OpenBLAS packs each weight
 * chunk once per thread's share of it, so longer chunks amortise both;
 * the activations cost ≈ 0.3 MB a row at full size (engine/DESIGN.md,
 * tsr-llm). */
#define TSR_LLM_PREFILL_CHUNK 512

/* Where a state's forward calls spent their time, summed since the last
 * reset (milliseconds of wall time). */
typedef struct {
  double products_ms;    /* the linear layers' many- and one-row products */
  double lora_ms;        /* the Partial LoRA on image rows */
  double attention_ms;   /* scores, softmax, weighted sums */
  double other_ms;       /* norms, RoPE, cache stores, SwiGLU, residuals */
  double total_ms;       /* whole calls, embeddings and output head included */
  long   rows;           /* rows fed */
} TsrLlmProfile;

void tsr_llm_state_profile (TsrLlmState *state, TsrLlmProfile *profile, int reset);

#endif
