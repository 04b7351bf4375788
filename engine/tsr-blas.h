/* SPDX-License-Identifier: GPL-3.0-or-later
 *
 * tsr-blas.h — OpenBLAS as the engine uses it: the right kernels for this
 * CPU, and one thread per call (the engine's own pool does the threading).
 */
#ifndef TSR_BLAS_H
#define TSR_BLAS_H

#include <stddef.h>

/* The core type OpenBLAS should use on this CPU when it picked a generic
 * one ("Prescott" on CPUs it does not know), or NULL when its own choice
 * is right or the user set OPENBLAS_CORETYPE. */
const char *tsr_blas_better_coretype (void);

/* One line for logs and benchmarks: library, core, threads. */
void        tsr_blas_describe (char *buf, size_t size);

/* Makes every BLAS call single-threaded; call once before the first. */
void        tsr_blas_init (void);

#endif
