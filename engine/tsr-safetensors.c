/* SPDX-License-Identifier: GPL-3.0-or-later
 *
 * tsr-safetensors.c — one .safetensors file, checked against itself.
 *
 * Layout: an 8-byte little-endian header length N, N bytes of JSON mapping
 * each tensor name to {dtype, shape, data_offsets: [begin, end]} (offsets
 * relative to the byte after the header), then the data. "__metadata__" is
 * free-form text and ignored.
 */
#include "tsr-checkpoint.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "tsr-error.h"

/* The format's own limit: headers above 100 MB are invalid. */
#define HEADER_MAX (100u << 20)

typedef struct {
  const char *name;
  TsrDType    dtype;
  int         n_dims;
  int64_t     shape[TSR_CKPT_MAX_DIMS];
  uint64_t    begin, end;
} Entry;

/* JSON numbers are doubles: an offset or a dimension must be a whole number
 * that a double holds exactly. */
static int
json_uint (const cJSON *item, uint64_t *out)
{
  double v;
  if (!cJSON_IsNumber (item))
    return 0;
  v = item->valuedouble;
  if (!(v >= 0.0) || v > 9007199254740992.0 || floor (v) != v)
    return 0;
  *out = (uint64_t) v;
  return 1;
}

static int
cmp_begin (const void *a, const void *b)
{
  const Entry *x = a, *y = b;
  if (x->begin != y->begin)
    return x->begin < y->begin ? -1 : 1;
  if (x->end != y->end)
    return x->end < y->end ? -1 : 1;
  return 0;
}

static int
cmp_name (const void *a, const void *b)
{
  return strcmp (((const Entry *) a)->name, ((const Entry *) b)->name);
}

static TsrStatus
parse_entry (const cJSON *item, Entry *e, uint64_t data_len, const char *what, TsrError *err)
{
  const cJSON *dtype, *shape, *offsets, *dim;
  char q[160];
  const char *qn = tsr_quote_name (item->string, strlen (item->string), q, sizeof q);
  int64_t numel;
  size_t esize;
  uint64_t v;
  int n = 0;

  e->name = item->string;
  if (!cJSON_IsObject (item))
    return tsr_error_set (err, TSR_EFORMAT, "%s: the entry for '%s' is not an object", what, qn);
  dtype = cJSON_GetObjectItemCaseSensitive (item, "dtype");
  shape = cJSON_GetObjectItemCaseSensitive (item, "shape");
  offsets = cJSON_GetObjectItemCaseSensitive (item, "data_offsets");
  if (!cJSON_IsString (dtype) || !cJSON_IsArray (shape) || !cJSON_IsArray (offsets))
    return tsr_error_set (err, TSR_EFORMAT, "%s: tensor '%s' lacks dtype, shape or data_offsets", what, qn);

  if (strcmp (dtype->valuestring, "F32") == 0)
    e->dtype = TSR_DTYPE_F32;
  else if (strcmp (dtype->valuestring, "F16") == 0)
    e->dtype = TSR_DTYPE_F16;
  else if (strcmp (dtype->valuestring, "BF16") == 0)
    e->dtype = TSR_DTYPE_BF16;
  else
    {
      char qd[40];
      return tsr_error_set (err, TSR_EFORMAT,
                            "%s: tensor '%s' has dtype %s; only F32, F16 and BF16 are supported",
                            what, qn, tsr_quote_name (dtype->valuestring, strlen (dtype->valuestring),
                                                      qd, sizeof qd));
    }
  esize = tsr_checkpoint_dtype_size (e->dtype);

  cJSON_ArrayForEach (dim, shape)
    {
      if (n >= TSR_CKPT_MAX_DIMS)
        return tsr_error_set (err, TSR_EFORMAT, "%s: tensor '%s' has %d dimensions; at most %d are supported",
                              what, qn, cJSON_GetArraySize (shape), TSR_CKPT_MAX_DIMS);
      if (!json_uint (dim, &v) || v > (uint64_t) INT64_MAX)
        return tsr_error_set (err, TSR_EFORMAT, "%s: tensor '%s' has a dimension that is not a whole number",
                              what, qn);
      e->shape[n++] = (int64_t) v;
    }
  e->n_dims = n;
  numel = tsr_shape_numel (e->shape, n);
  if (numel < 0 || (uint64_t) numel > UINT64_MAX / esize)
    return tsr_error_set (err, TSR_EFORMAT, "%s: tensor '%s' has an impossible shape", what, qn);

  if (cJSON_GetArraySize (offsets) != 2
      || !json_uint (cJSON_GetArrayItem (offsets, 0), &e->begin)
      || !json_uint (cJSON_GetArrayItem (offsets, 1), &e->end))
    return tsr_error_set (err, TSR_EFORMAT, "%s: tensor '%s' needs data_offsets [begin, end]", what, qn);
  if (e->begin > e->end)
    return tsr_error_set (err, TSR_EFORMAT, "%s: tensor '%s' ends (%llu) before it begins (%llu)", what, qn,
                          (unsigned long long) e->end, (unsigned long long) e->begin);
  if (e->end > data_len)
    return tsr_error_set (err, TSR_EFORMAT,
                          "%s: tensor '%s' reaches byte %llu of the data, which has only %llu bytes "
                          "(is the file truncated?)", what, qn,
                          (unsigned long long) e->end, (unsigned long long) data_len);
  if (e->end - e->begin != (uint64_t) numel * esize)
    return tsr_error_set (err, TSR_EFORMAT,
                          "%s: tensor '%s' has %llu bytes, but its shape and dtype need %llu",
                          what, qn, (unsigned long long) (e->end - e->begin),
                          (unsigned long long) ((uint64_t) numel * esize));
  return TSR_OK;
}

TsrStatus
tsr_safetensors_parse (const uint8_t *base, size_t size, const char *what,
                       TsrCkptSink sink, void *user_data, TsrError *err)
{
  uint64_t hlen = 0, data_len;
  const uint8_t *data;
  char *text = NULL;
  cJSON *root = NULL, *item;
  Entry *entries = NULL;
  size_t n = 0, cap = 0;
  TsrStatus st = TSR_OK;
  char q[160];

  if (size < 8)
    return tsr_error_set (err, TSR_EFORMAT, "%s is too short (%zu bytes) to be a safetensors file", what, size);
  for (int i = 7; i >= 0; i--)
    hlen = (hlen << 8) | base[i];
  if (hlen > HEADER_MAX)
    return tsr_error_set (err, TSR_EFORMAT,
                          "%s: the safetensors header claims %llu bytes, above the format's 100 MB limit "
                          "(the file is damaged or not safetensors)", what, (unsigned long long) hlen);
  if (hlen > size - 8)
    return tsr_error_set (err, TSR_EFORMAT,
                          "%s: the safetensors header claims %llu bytes, but only %zu follow (truncated?)",
                          what, (unsigned long long) hlen, size - 8);
  if (hlen < 2 || base[8] != '{')
    return tsr_error_set (err, TSR_EFORMAT, "%s: the safetensors header is not a JSON object", what);
  data = base + 8 + hlen;
  data_len = size - 8 - hlen;

  /* cJSON wants a terminated string; a private copy also keeps the parser
   * from ever reading near the end of the mapping. */
  text = malloc ((size_t) hlen + 1);
  if (text == NULL)
    return tsr_error_set (err, TSR_ENOMEM, "out of memory reading the header of %s", what);
  memcpy (text, base + 8, (size_t) hlen);
  text[hlen] = '\0';
  {
    const char *end = NULL;
    root = cJSON_ParseWithLengthOpts (text, (size_t) hlen, &end, 0);
    if (root == NULL || !cJSON_IsObject (root))
      {
        size_t at = (end != NULL && end >= text && end <= text + hlen) ? (size_t) (end - text) : 0;
        st = tsr_error_set (err, TSR_EFORMAT, "%s: the safetensors header is not valid JSON (near byte %zu)",
                            what, at + 8);
        goto out;
      }
    /* The writer pads the header with spaces to align the data. */
    for (const char *p = end; p != NULL && p < text + hlen; p++)
      if (*p != ' ' && *p != '\n' && *p != '\r' && *p != '\t' && *p != '\0')
        {
          st = tsr_error_set (err, TSR_EFORMAT, "%s: unexpected bytes after the safetensors header's JSON", what);
          goto out;
        }
  }

  cJSON_ArrayForEach (item, root)
    {
      if (item->string == NULL)
        continue;
      if (strcmp (item->string, "__metadata__") == 0)
        continue;
      if (n == cap)
        {
          size_t c = cap ? cap * 2 : 64;
          Entry *e = realloc (entries, c * sizeof *e);
          if (e == NULL)
            {
              st = tsr_error_set (err, TSR_ENOMEM, "out of memory reading the header of %s", what);
              goto out;
            }
          entries = e;
          cap = c;
        }
      st = parse_entry (item, &entries[n], data_len, what, err);
      if (st != TSR_OK)
        goto out;
      n++;
    }

  if (n > 1)
    {
      qsort (entries, n, sizeof *entries, cmp_name);
      for (size_t i = 1; i < n; i++)
        if (strcmp (entries[i - 1].name, entries[i].name) == 0)
          {
            st = tsr_error_set (err, TSR_EFORMAT, "%s: tensor '%s' is listed twice", what,
                                tsr_quote_name (entries[i].name, strlen (entries[i].name), q, sizeof q));
            goto out;
          }
      /* Sorted by start, each tensor must begin at or after the end of
       * everything before it; empty tensors occupy nothing. */
      qsort (entries, n, sizeof *entries, cmp_begin);
      {
        uint64_t reach = 0;
        const char *reach_name = NULL;
        for (size_t i = 0; i < n; i++)
          {
            if (entries[i].begin == entries[i].end)
              continue;
            if (entries[i].begin < reach)
              {
                char q2[160];
                st = tsr_error_set (err, TSR_EFORMAT, "%s: the bytes of '%s' overlap those of '%s'", what,
                                    tsr_quote_name (entries[i].name, strlen (entries[i].name), q, sizeof q),
                                    tsr_quote_name (reach_name, strlen (reach_name), q2, sizeof q2));
                goto out;
              }
            reach = entries[i].end;
            reach_name = entries[i].name;
          }
      }
    }

  for (size_t i = 0; i < n; i++)
    {
      TsrCkptRecord rec;
      memset (&rec, 0, sizeof rec);
      rec.name = entries[i].name;
      rec.name_len = strlen (entries[i].name);
      rec.dtype = entries[i].dtype;
      rec.n_dims = entries[i].n_dims;
      memcpy (rec.shape, entries[i].shape, sizeof rec.shape);
      rec.data = data + entries[i].begin;
      rec.nbytes = (size_t) (entries[i].end - entries[i].begin);
      st = sink (user_data, &rec, err);
      if (st != TSR_OK)
        goto out;
    }

out:
  free (entries);
  cJSON_Delete (root);
  free (text);
  return st;
}
