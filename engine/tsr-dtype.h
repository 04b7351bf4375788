/* SPDX-License-Identifier: GPL-3.0-or-later
 *
 * tsr-dtype.h — engine-internal view of the element types: the block
 * structs of q8_0 and q4_0, for kernels that walk blocks. The public
 * functions (sizes, conversions, quantise/dequantise) are declared in
 * tessera-engine.h.
 */
#ifndef TSR_DTYPE_H
#define TSR_DTYPE_H

#include <stdint.h>

#include "tessera-engine.h"

/* ggml's layouts, byte for byte: the scale first, as IEEE half, then the
 * quants. Both structs have no padding (2-byte alignment), so an array of
 * them is exactly the bytes of a GGUF tensor. */
typedef struct {
  uint16_t d;              /* f16 scale */
  int8_t   qs[TSR_QK];     /* x = d·q */
} TsrBlockQ8_0;

typedef struct {
  uint16_t d;              /* f16 scale */
  uint8_t  qs[TSR_QK / 2]; /* byte j: value j (low nibble), value j+16 (high) */
} TsrBlockQ4_0;

#endif
