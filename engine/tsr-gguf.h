/* SPDX-License-Identifier: GPL-3.0-or-later
 *
 * tsr-gguf.h — engine-internal helpers around the GGUF reader and writer.
 * The API itself (TsrGguf, TsrGgufWriter, tsr_gguf_model_info) is public
 * and lives in tessera-engine.h; DESIGN.md has the tensor names and
 * metadata keys of Tessera's model files.
 */
#ifndef TSR_GGUF_H
#define TSR_GGUF_H

#include <stdint.h>

#include "tessera-engine.h"

/* ggml's short name for a ggml type id ("q4_K", "iq2_xs", …), also for the
 * ones Tessera cannot read, so messages can say what a file holds; NULL
 * for ids ggml never defined. */
const char *tsr_gguf_ggml_type_name (uint32_t ggml_type);

#endif
