/* SPDX-License-Identifier: GPL-3.0-or-later
 * The tokenizer; its API lives in tessera-engine.h ("Tokenizer"). */
#ifndef TSR_TOKENIZER_H
#define TSR_TOKENIZER_H

#include "tessera-engine.h"

#endif
