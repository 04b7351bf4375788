/* SPDX-License-Identifier: GPL-3.0-or-later
 *
 * fuzz-safetensors — libFuzzer target for the safetensors reader: the
 * header length, the JSON header (through cJSON) and every dtype, shape and
 * offset check. Every tensor handed out is read end to end, so a pointer
 * outside the input shows up under AddressSanitizer.
 *
 * Built with clang by tests/meson.build; a short run is the 'fuzz' suite's
 * 'fuzz-safetensors' test. A longer run from the source root, BUILD being
 * the build folder (corpus kept in /tmp/fuzz-safetensors):
 *
 *   BUILD/tests/fuzz-safetensors -max_total_time=3600 -max_len=16384 -create_missing_dirs=1 \
 *     -dict=tests/fuzz-safetensors.dict /tmp/fuzz-safetensors \
 *     tests/fixtures/checkpoints/seeds/safetensors
 *
 * (-jobs=N -workers=N to use N cores; crashes are written as crash-* files.)
 */
#include <stddef.h>
#include <stdint.h>

#include "tsr-checkpoint.h"

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

static volatile uint64_t sink_total;

static TsrStatus
touch_tensor (void *user_data, const TsrCkptRecord *rec, TsrError *err)
{
  const uint8_t *p = rec->data;
  uint64_t acc = 0;
  for (size_t i = 0; i < rec->nbytes; i++)
    acc += p[i];
  for (size_t i = 0; i < rec->name_len; i++)
    acc += (uint8_t) rec->name[i];
  sink_total += acc + (uint64_t) rec->n_dims;
  (void) user_data;
  (void) err;
  return TSR_OK;
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  TsrError err;
  tsr_safetensors_parse (data, size, "fuzz", touch_tensor, NULL, &err);
  return 0;
}
