/* SPDX-License-Identifier: GPL-3.0-or-later
 * The decoder; its API lives in tessera-engine.h ("Language model"). */
#ifndef TSR_LLM_H
#define TSR_LLM_H

#include "tessera-engine.h"
#include "tsr-threads.h"

#endif
