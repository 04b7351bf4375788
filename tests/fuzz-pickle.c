/* SPDX-License-Identifier: GPL-3.0-or-later
 *
 * fuzz-pickle — libFuzzer target for the PyTorch checkpoint reader.
 *
 * An input starting with "PK" goes through the whole torch.save zip reader
 * (central directory, ZIP64, local headers, then data.pkl and the storages);
 * anything else is fed to the pickle machine as a raw data.pkl. Every tensor
 * handed out is read end to end, so a pointer outside the input shows up
 * under AddressSanitizer.
 *
 * Built with clang by tests/meson.build; a short run is the 'fuzz' suite's
 * 'fuzz-pickle' test. A longer run from the source root, BUILD being
 * the build folder (corpus kept in /tmp/fuzz-pickle):
 *
 *   BUILD/tests/fuzz-pickle -max_total_time=3600 -max_len=16384 -create_missing_dirs=1 \
 *     -dict=tests/fuzz-pickle.dict /tmp/fuzz-pickle \
 *     tests/fixtures/checkpoints/seeds/pickle tests/fixtures/checkpoints/bad
 *
 * (-jobs=N -workers=N to use N cores; crashes are written as crash-* files.)
 */
#include <stddef.h>
#include <stdint.h>

#include "tsr-checkpoint.h"

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

static volatile uint64_t sink_total;

static TsrStatus
touch_pickle (void *user_data, const TsrPickleTensor *t, TsrError *err)
{
  uint64_t acc = 0;
  for (size_t i = 0; i < t->name_len; i++)
    acc += (uint8_t) t->name[i];
  for (size_t i = 0; i < t->storage_key_len; i++)
    acc += (uint8_t) t->storage_key[i];
  sink_total += acc + (uint64_t) t->storage_numel + (uint64_t) t->n_dims;
  (void) user_data;
  (void) err;
  return TSR_OK;
}

static TsrStatus
touch_tensor (void *user_data, const TsrCkptRecord *rec, TsrError *err)
{
  const uint8_t *p = rec->data;
  uint64_t acc = 0;
  for (size_t i = 0; i < rec->nbytes; i++)
    acc += p[i];
  for (size_t i = 0; i < rec->name_len; i++)
    acc += (uint8_t) rec->name[i];
  sink_total += acc;
  (void) user_data;
  (void) err;
  return TSR_OK;
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  TsrError err;
  if (size >= 2 && data[0] == 'P' && data[1] == 'K')
    tsr_torchzip_parse (data, size, "fuzz", touch_tensor, NULL, &err);
  else
    tsr_pickle_parse (data, size, "fuzz", touch_pickle, NULL, &err);
  return 0;
}
