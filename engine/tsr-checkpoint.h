/* SPDX-License-Identifier: GPL-3.0-or-later
 *
 * tsr-checkpoint.h — reading Hugging Face checkpoints (internal to the engine).
 *
 * A checkpoint is a folder as Hugging Face lays it out, holding one of
 *   model.safetensors.index.json + shards   (preferred when both kinds exist,
 *   model.safetensors                         as transformers does)
 *   pytorch_model.bin.index.json + shards
 *   pytorch_model.bin
 * or a path to one .safetensors / .bin file. Every shard is mmapped read-only
 * and stays mapped until tsr_checkpoint_close(): a tensor's `data` points into
 * the mapping, so nothing is copied and nothing is read until it is touched.
 *
 * Nothing in a file is trusted: every length, offset, count and shape is
 * checked against the file before use. A PyTorch pickle is interpreted by a
 * small machine that knows only the opcodes and globals a state dict needs;
 * nothing in it is ever executed.
 *
 * Streaming: tensors are listed shard by shard, in the order their bytes lie
 * in the shard, so walking them by index reads every file front to back.
 * Call tsr_checkpoint_release() after using a tensor to drop its pages from
 * the process (they are file-backed and clean, so this costs nothing but a
 * later re-read), which keeps resident memory near one tensor at a time.
 *
 * Data is little-endian as stored. It is not guaranteed to be aligned to
 * the element size (safetensors does not promise it): read with memcpy.
 */
#ifndef TSR_CHECKPOINT_H
#define TSR_CHECKPOINT_H

#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "tessera-engine.h"

#define TSR_CKPT_MAX_DIMS 4

typedef enum {
  TSR_CKPT_SAFETENSORS,
  TSR_CKPT_PYTORCH,
} TsrCkptFormat;

typedef struct {
  const char *name;                  /* NUL-terminated, owned by the checkpoint */
  TsrDType    dtype;                 /* F32, F16 or BF16 */
  int         n_dims;                /* 0..TSR_CKPT_MAX_DIMS (0 = a scalar) */
  int64_t     shape[TSR_CKPT_MAX_DIMS]; /* outermost first, as PyTorch prints it;
                                     * unused entries are 1 */
  int64_t     numel;
  const void *data;                  /* raw little-endian bytes inside the mmap */
  size_t      nbytes;                /* numel × element size */
  int         shard;                 /* index into the shard list */
} TsrCkptTensor;

typedef struct TsrCheckpoint TsrCheckpoint;

/* Opens a checkpoint folder or a single .safetensors / .bin file.
 * TSR_EIO when a file cannot be opened or mapped, TSR_EFORMAT when a file is
 * damaged or holds something outside the supported subset (the message names
 * the file, the tensor or the opcode and byte offset), TSR_ETOOLARGE when a
 * documented limit is exceeded, TSR_ENOMEM. */
TsrStatus  tsr_checkpoint_open (const char *path, TsrCheckpoint **out, TsrError *err);
void       tsr_checkpoint_close (TsrCheckpoint *ckpt);

TsrCkptFormat tsr_checkpoint_format (const TsrCheckpoint *ckpt);
size_t     tsr_checkpoint_n_tensors (const TsrCheckpoint *ckpt);
/* Tensors in streaming order (shard, then position in the shard). */
const TsrCkptTensor *tsr_checkpoint_tensor (const TsrCheckpoint *ckpt, size_t index);
/* Looks a tensor up by its full name; NULL when absent. O(log n). */
const TsrCkptTensor *tsr_checkpoint_find (const TsrCheckpoint *ckpt, const char *name);
size_t     tsr_checkpoint_n_shards (const TsrCheckpoint *ckpt);
const char *tsr_checkpoint_shard_path (const TsrCheckpoint *ckpt, int shard);
/* Tells the kernel the tensor's pages are no longer needed (see above). */
void       tsr_checkpoint_release (const TsrCheckpoint *ckpt, const TsrCkptTensor *t);

/* Element size of a checkpoint dtype, 0 for one a checkpoint cannot hold. */
size_t     tsr_checkpoint_dtype_size (TsrDType dtype);

/* Reads and parses a JSON file (config.json, an index) of at most max_bytes.
 * On success *out is the root, to be freed with cJSON_Delete. */
TsrStatus  tsr_json_load_file (const char *path, size_t max_bytes, cJSON **out, TsrError *err);

/* ==== Below: shared by the format readers, not for the converter ======== */

/* A read-only mapping of one whole file. */
typedef struct {
  const uint8_t *base;
  size_t         size;
} TsrMap;

TsrStatus  tsr_map_file (const char *path, TsrMap *map, TsrError *err);
void       tsr_unmap_file (TsrMap *map);

/* How a format reader hands a tensor to the table. The reader has checked
 * everything in the record against its file; name is copied. */
typedef struct {
  const char *name;
  size_t      name_len;
  TsrDType    dtype;
  int         n_dims;
  int64_t     shape[TSR_CKPT_MAX_DIMS];
  const void *data;
  size_t      nbytes;
} TsrCkptRecord;

typedef TsrStatus (*TsrCkptSink) (void *user_data, const TsrCkptRecord *rec, TsrError *err);

/* True when [off, off+len) lies inside a buffer of `total` bytes, written so
 * that nothing overflows whatever a file claims. */
static inline int
tsr_range_ok (uint64_t off, uint64_t len, uint64_t total)
{
  return off <= total && len <= total - off;
}

/* Writes a file-supplied name into buf for an error message: printable ASCII
 * kept, everything else as \xNN, cut with "…" when long. Returns buf. */
const char *tsr_quote_name (const char *s, size_t len, char *buf, size_t buf_size);

/* shape product with overflow and sign checks; -1 when invalid. */
int64_t    tsr_shape_numel (const int64_t *shape, int n_dims);

/* safetensors: parses one file already in memory. `what` names it in errors. */
TsrStatus  tsr_safetensors_parse (const uint8_t *base, size_t size, const char *what,
                                  TsrCkptSink sink, void *user_data, TsrError *err);

/* The pickle subset. Tensors found in data.pkl are handed over with their
 * storage key; the zip reader resolves the key to bytes. */
typedef struct {
  const char *name;      /* points into the pickle bytes, not NUL-terminated */
  size_t      name_len;
  TsrDType    dtype;
  const char *storage_key;
  size_t      storage_key_len;
  int64_t     storage_numel;    /* elements, as the pickle says */
  int64_t     storage_offset;   /* elements */
  int         n_dims;
  int64_t     shape[TSR_CKPT_MAX_DIMS];
} TsrPickleTensor;

typedef TsrStatus (*TsrPickleSink) (void *user_data, const TsrPickleTensor *t, TsrError *err);

/* Runs data.pkl. Fails with TSR_EFORMAT naming the opcode and byte offset
 * for anything outside the subset. */
TsrStatus  tsr_pickle_parse (const uint8_t *buf, size_t len, const char *what,
                             TsrPickleSink sink, void *user_data, TsrError *err);

/* torch.save's zip: finds <prefix>/data.pkl, runs it and resolves every
 * storage to <prefix>/data/<key>, read in place. */
TsrStatus  tsr_torchzip_parse (const uint8_t *base, size_t size, const char *what,
                               TsrCkptSink sink, void *user_data, TsrError *err);

#endif /* TSR_CHECKPOINT_H */
