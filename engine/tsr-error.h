/* SPDX-License-Identifier: GPL-3.0-or-later
 * Internal helpers for filling a TsrError. */
#ifndef TSR_ERROR_H
#define TSR_ERROR_H

#include "tessera-engine.h"

/* Fills err (if not NULL) and returns status, so callers can write
 * `return tsr_error_set (err, TSR_EINVAL, "…", …);`. */
TsrStatus tsr_error_set (TsrError *err, TsrStatus status, const char *fmt, ...)
  __attribute__ ((format (printf, 3, 4)));

#endif
