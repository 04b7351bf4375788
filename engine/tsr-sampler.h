/* SPDX-License-Identifier: GPL-3.0-or-later
 *
 * tsr-sampler.h — transformers' logits processors and warpers on one row
 * of scores, for the sampler and beam search (API: tessera-engine.h,
 * "Generation and chat"). Each follows the transformers 4.33 code it is
 * named after, ties included, so tests can check them by hand.
 */
#ifndef TSR_SAMPLER_H
#define TSR_SAMPLER_H

#include <stddef.h>
#include <stdint.h>

#include "tessera-engine.h"

/* A set of ids that remembers its members in order of arrival, so the
 * repetition penalty touches each id once however often it was seen. */
typedef struct {
  uint8_t *mark;      /* [n_vocab] */
  int32_t *ids;       /* distinct members */
  size_t   n, n_vocab;
} TsrIdSet;

TsrStatus tsr_id_set_init  (TsrIdSet *set, size_t n_vocab, TsrError *err);
void      tsr_id_set_fini  (TsrIdSet *set);
void      tsr_id_set_clear (TsrIdSet *set);
void      tsr_id_set_add   (TsrIdSet *set, int32_t id);

/* RepetitionPenaltyLogitsProcessor: for each id of the set, s → s/p if
 * s ≥ 0 … precisely torch.where(s < 0, s·p, s/p). */
void    tsr_logits_repetition_penalty (float *scores, const int32_t *ids, size_t n_ids, float penalty);
/* TemperatureLogitsWarper: s / t. */
void    tsr_logits_temperature (float *scores, size_t n, float t);
/* TopKLogitsWarper: −inf for every score below the k-th largest (ties
 * with it stay); k is raised to min_keep and capped at n. scratch holds
 * n floats. */
void    tsr_logits_top_k (float *scores, size_t n, int k, int min_keep, float *scratch);
/* TopPLogitsWarper: sort ascending, softmax, cumulative sum; −inf for
 * the scores whose cumulative probability is ≤ 1 − p, the last min_keep
 * always kept. scratch holds n entries. */
typedef struct {
  float    s;
  uint32_t i;
} TsrScoreIdx;

void    tsr_logits_top_p (float *scores, size_t n, float p, int min_keep, TsrScoreIdx *scratch);
/* log_softmax, in place. */
void    tsr_logits_log_softmax (float *scores, size_t n);
/* The first index of the largest score (torch.argmax). */
int32_t tsr_logits_argmax (const float *scores, size_t n);
/* softmax(scores), then the id whose cumulative probability first
 * exceeds a uniform draw u in [0, 1). */
int32_t tsr_logits_draw (const float *scores, size_t n, double u);

/* splitmix64: a uniform double in [0, 1) from *state. */
double  tsr_rng_uniform (uint64_t *state);

#endif
