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

#endif
