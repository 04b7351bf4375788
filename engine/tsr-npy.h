/* SPDX-License-Identifier: GPL-3.0-or-later
 *
 * tsr-npy.h — reading NumPy .npy arrays back, for the tests that compare
 * the engine with fixtures made by the PyTorch reference. Writing is public
 * (tsr_npy_write_f32 in tessera-engine.h).
 */
#ifndef TSR_NPY_H
#define TSR_NPY_H

#include <stddef.h>

#include "tessera-engine.h"

#define TSR_NPY_MAX_DIMS 8

typedef struct {
  int    ndim;
  size_t shape[TSR_NPY_MAX_DIMS];
  size_t count;     /* product of the shape */
  float *data;      /* count floats, C order; free() it */
} TsrNpyF32;

/* Reads a little-endian float32, C-order .npy file (format 1.0, 2.0 or 3.0).
 * Fails with TSR_EIO if the file cannot be read and TSR_EFORMAT if it is not
 * such an array; on failure arr is zeroed. */
TsrStatus tsr_npy_read_f32 (const char *path, TsrNpyF32 *arr, TsrError *err);

#endif
