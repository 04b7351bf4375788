/* SPDX-License-Identifier: GPL-3.0-or-later
 *
 * tsr-checkpoint.c — a Hugging Face checkpoint folder as one table of tensors.
 *
 * The format readers (tsr-safetensors.c, tsr-torchzip.c) check their files
 * and hand records to the sink here; this file finds the files, follows the
 * shard index, owns the mappings and answers lookups.
 */
#include "tsr-checkpoint.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tsr-error.h"

/* Index files of real checkpoints are ~100 KB; config.json a few KB. */
#define INDEX_JSON_MAX   (64u << 20)
#define SHARDS_MAX       4096
#define TENSORS_MAX      (1u << 20)
#define NAME_MAX_BYTES   4096

typedef struct {
  char  *path;
  TsrMap map;
} Shard;

struct TsrCheckpoint {
  TsrCkptFormat   format;
  Shard          *shards;
  size_t          n_shards;
  TsrCkptTensor  *tensors;
  size_t          n_tensors, cap_tensors;
  const TsrCkptTensor **by_name; /* into tensors, sorted by name */
  int             current_shard;
};

/* ==== Small helpers ===================================================== */

const char *
tsr_quote_name (const char *s, size_t len, char *buf, size_t buf_size)
{
  size_t o = 0;
  if (buf_size == 0)
    return buf;
  for (size_t i = 0; i < len; i++)
    {
      unsigned char c = (unsigned char) s[i];
      /* Leave room for an escape and the ellipsis. */
      if (o + 8 >= buf_size)
        {
          memcpy (buf + o, "...", 3);
          o += 3;
          break;
        }
      if (c >= 0x20 && c < 0x7f && c != '\'' && c != '\\')
        buf[o++] = (char) c;
      else
        o += (size_t) snprintf (buf + o, buf_size - o, "\\x%02x", c);
    }
  buf[o] = '\0';
  return buf;
}

int64_t
tsr_shape_numel (const int64_t *shape, int n_dims)
{
  int64_t n = 1;
  for (int i = 0; i < n_dims; i++)
    {
      if (shape[i] < 0)
        return -1;
      if (shape[i] != 0 && n > INT64_MAX / shape[i])
        return -1;
      n *= shape[i];
    }
  return n;
}

size_t
tsr_checkpoint_dtype_size (TsrDType dtype)
{
  switch (dtype)
    {
    case TSR_DTYPE_F32:  return 4;
    case TSR_DTYPE_F16:  return 2;
    case TSR_DTYPE_BF16: return 2;
    case TSR_DTYPE_Q4_0:
    case TSR_DTYPE_Q8_0:
      break;
    }
  return 0;
}

TsrStatus
tsr_map_file (const char *path, TsrMap *map, TsrError *err)
{
  struct stat st;
  int fd;

  map->base = NULL;
  map->size = 0;
  fd = open (path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return tsr_error_set (err, TSR_EIO, "cannot open %s: %s", path, strerror (errno));
  if (fstat (fd, &st) != 0)
    {
      int e = errno;
      close (fd);
      return tsr_error_set (err, TSR_EIO, "cannot read %s: %s", path, strerror (e));
    }
  if (!S_ISREG (st.st_mode))
    {
      close (fd);
      return tsr_error_set (err, TSR_EIO, "%s is not a regular file", path);
    }
  if ((uint64_t) st.st_size > SIZE_MAX)
    {
      close (fd);
      return tsr_error_set (err, TSR_ETOOLARGE, "%s is too large to map", path);
    }
  /* mmap refuses length 0; an empty file is left to the parsers to reject. */
  if (st.st_size > 0)
    {
      void *p = mmap (NULL, (size_t) st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
      if (p == MAP_FAILED)
        {
          int e = errno;
          close (fd);
          return tsr_error_set (err, e == ENOMEM ? TSR_ENOMEM : TSR_EIO,
                                "cannot map %s: %s", path, strerror (e));
        }
      map->base = p;
      map->size = (size_t) st.st_size;
    }
  close (fd);
  return TSR_OK;
}

void
tsr_unmap_file (TsrMap *map)
{
  if (map->base != NULL)
    munmap ((void *) map->base, map->size);
  map->base = NULL;
  map->size = 0;
}

TsrStatus
tsr_json_load_file (const char *path, size_t max_bytes, cJSON **out, TsrError *err)
{
  struct stat st;
  char *buf;
  size_t got = 0;
  int fd;

  *out = NULL;
  fd = open (path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return tsr_error_set (err, TSR_EIO, "cannot open %s: %s", path, strerror (errno));
  if (fstat (fd, &st) != 0 || !S_ISREG (st.st_mode))
    {
      close (fd);
      return tsr_error_set (err, TSR_EIO, "%s is not a readable file", path);
    }
  if ((uint64_t) st.st_size > max_bytes)
    {
      close (fd);
      return tsr_error_set (err, TSR_ETOOLARGE, "%s is %lld bytes; JSON files above %zu bytes are refused",
                            path, (long long) st.st_size, max_bytes);
    }
  buf = malloc ((size_t) st.st_size + 1);
  if (buf == NULL)
    {
      close (fd);
      return tsr_error_set (err, TSR_ENOMEM, "out of memory reading %s", path);
    }
  while (got < (size_t) st.st_size)
    {
      ssize_t n = read (fd, buf + got, (size_t) st.st_size - got);
      if (n < 0 && errno == EINTR)
        continue;
      if (n <= 0)
        {
          int e = n < 0 ? errno : EIO;
          free (buf);
          close (fd);
          return tsr_error_set (err, TSR_EIO, "cannot read %s: %s", path, strerror (e));
        }
      got += (size_t) n;
    }
  close (fd);
  buf[got] = '\0';

  {
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts (buf, got, &end, 0);
    if (root == NULL)
      {
        size_t at = (end != NULL && end >= buf && end <= buf + got) ? (size_t) (end - buf) : 0;
        free (buf);
        return tsr_error_set (err, TSR_EFORMAT, "%s is not valid JSON (near byte %zu)", path, at);
      }
    free (buf);
    *out = root;
  }
  return TSR_OK;
}

/* ==== The tensor table ================================================== */

static TsrStatus
add_record (void *user_data, const TsrCkptRecord *rec, TsrError *err)
{
  TsrCheckpoint *ck = user_data;
  TsrCkptTensor *t;
  char q[160];
  char *name;

  if (rec->name_len == 0 || rec->name_len > NAME_MAX_BYTES || memchr (rec->name, '\0', rec->name_len) != NULL)
    return tsr_error_set (err, TSR_EFORMAT, "%s: tensor name '%s' is empty, too long or holds a NUL byte",
                          ck->shards[ck->current_shard].path,
                          tsr_quote_name (rec->name, rec->name_len, q, sizeof q));
  if (ck->n_tensors >= TENSORS_MAX)
    return tsr_error_set (err, TSR_ETOOLARGE, "checkpoint holds more than %u tensors", TENSORS_MAX);
  if (ck->n_tensors == ck->cap_tensors)
    {
      size_t cap = ck->cap_tensors ? ck->cap_tensors * 2 : 256;
      TsrCkptTensor *n = realloc (ck->tensors, cap * sizeof *n);
      if (n == NULL)
        return tsr_error_set (err, TSR_ENOMEM, "out of memory listing tensors");
      ck->tensors = n;
      ck->cap_tensors = cap;
    }
  name = malloc (rec->name_len + 1);
  if (name == NULL)
    return tsr_error_set (err, TSR_ENOMEM, "out of memory listing tensors");
  memcpy (name, rec->name, rec->name_len);
  name[rec->name_len] = '\0';

  t = &ck->tensors[ck->n_tensors++];
  t->name = name;
  t->dtype = rec->dtype;
  t->n_dims = rec->n_dims;
  for (int i = 0; i < TSR_CKPT_MAX_DIMS; i++)
    t->shape[i] = i < rec->n_dims ? rec->shape[i] : 1;
  t->numel = tsr_shape_numel (rec->shape, rec->n_dims);
  t->data = rec->data;
  t->nbytes = rec->nbytes;
  t->shard = ck->current_shard;
  return TSR_OK;
}

static int
cmp_stream_order (const void *a, const void *b)
{
  const TsrCkptTensor *x = a, *y = b;
  uintptr_t px = (uintptr_t) x->data, py = (uintptr_t) y->data;
  if (x->shard != y->shard)
    return x->shard < y->shard ? -1 : 1;
  if (px != py)
    return px < py ? -1 : 1;
  return strcmp (x->name, y->name);
}

static int
cmp_by_name (const void *a, const void *b)
{
  const TsrCkptTensor *x = *(const TsrCkptTensor *const *) a;
  const TsrCkptTensor *y = *(const TsrCkptTensor *const *) b;
  return strcmp (x->name, y->name);
}

static TsrStatus
build_name_index (TsrCheckpoint *ck, TsrError *err)
{
  qsort (ck->tensors, ck->n_tensors, sizeof *ck->tensors, cmp_stream_order);
  ck->by_name = malloc ((ck->n_tensors ? ck->n_tensors : 1) * sizeof *ck->by_name);
  if (ck->by_name == NULL)
    return tsr_error_set (err, TSR_ENOMEM, "out of memory indexing tensors");
  for (size_t i = 0; i < ck->n_tensors; i++)
    ck->by_name[i] = &ck->tensors[i];
  qsort (ck->by_name, ck->n_tensors, sizeof *ck->by_name, cmp_by_name);
  for (size_t i = 1; i < ck->n_tensors; i++)
    {
      const TsrCkptTensor *a = ck->by_name[i - 1];
      const TsrCkptTensor *b = ck->by_name[i];
      if (strcmp (a->name, b->name) == 0)
        {
          char q[160];
          return tsr_error_set (err, TSR_EFORMAT, "tensor '%s' appears twice (in %s and %s)",
                                tsr_quote_name (a->name, strlen (a->name), q, sizeof q),
                                ck->shards[a->shard].path, ck->shards[b->shard].path);
        }
    }
  return TSR_OK;
}

/* ==== Opening =========================================================== */

static int
has_suffix (const char *s, const char *suffix)
{
  size_t a = strlen (s), b = strlen (suffix);
  return a >= b && strcmp (s + a - b, suffix) == 0;
}

static char *
join_path (const char *dir, const char *name)
{
  size_t a = strlen (dir), b = strlen (name);
  char *p = malloc (a + b + 2);
  if (p == NULL)
    return NULL;
  memcpy (p, dir, a);
  p[a] = '/';
  memcpy (p + a + 1, name, b + 1);
  return p;
}

static int
file_exists (const char *path)
{
  struct stat st;
  return stat (path, &st) == 0 && S_ISREG (st.st_mode);
}

static TsrStatus
add_shard (TsrCheckpoint *ck, char *path_owned, TsrError *err)
{
  Shard *n;
  TsrStatus st;

  if (path_owned == NULL)
    return tsr_error_set (err, TSR_ENOMEM, "out of memory opening checkpoint");
  n = realloc (ck->shards, (ck->n_shards + 1) * sizeof *n);
  if (n == NULL)
    {
      free (path_owned);
      return tsr_error_set (err, TSR_ENOMEM, "out of memory opening checkpoint");
    }
  ck->shards = n;
  n[ck->n_shards].path = path_owned;
  n[ck->n_shards].map.base = NULL;
  n[ck->n_shards].map.size = 0;
  ck->n_shards++;

  st = tsr_map_file (path_owned, &n[ck->n_shards - 1].map, err);
  if (st != TSR_OK)
    return st;

  ck->current_shard = (int) ck->n_shards - 1;
  if (ck->format == TSR_CKPT_SAFETENSORS)
    return tsr_safetensors_parse (n[ck->n_shards - 1].map.base, n[ck->n_shards - 1].map.size,
                                  path_owned, add_record, ck, err);
  return tsr_torchzip_parse (n[ck->n_shards - 1].map.base, n[ck->n_shards - 1].map.size,
                             path_owned, add_record, ck, err);
}

static int
cmp_str (const void *a, const void *b)
{
  return strcmp (*(const char *const *) a, *(const char *const *) b);
}

/* A shard name from an index must stay inside the checkpoint folder. */
static int
shard_name_ok (const char *s)
{
  return s[0] != '\0' && strchr (s, '/') == NULL && strcmp (s, ".") != 0 && strcmp (s, "..") != 0;
}

static TsrStatus
open_index (TsrCheckpoint *ck, const char *dir, const char *index_path, TsrError *err)
{
  cJSON *root = NULL, *map, *item;
  const char **names = NULL;
  size_t n_names = 0, n_unique = 0;
  TsrStatus st;
  char q[160];

  st = tsr_json_load_file (index_path, INDEX_JSON_MAX, &root, err);
  if (st != TSR_OK)
    return st;
  map = cJSON_GetObjectItemCaseSensitive (root, "weight_map");
  if (!cJSON_IsObject (map))
    {
      cJSON_Delete (root);
      return tsr_error_set (err, TSR_EFORMAT, "%s has no \"weight_map\" object", index_path);
    }
  cJSON_ArrayForEach (item, map)
    n_names++;
  if (n_names == 0)
    {
      cJSON_Delete (root);
      return tsr_error_set (err, TSR_EFORMAT, "%s lists no tensors", index_path);
    }
  if (n_names > TENSORS_MAX)
    {
      cJSON_Delete (root);
      return tsr_error_set (err, TSR_ETOOLARGE, "%s lists more than %u tensors", index_path, TENSORS_MAX);
    }
  names = malloc (n_names * sizeof *names);
  if (names == NULL)
    {
      cJSON_Delete (root);
      return tsr_error_set (err, TSR_ENOMEM, "out of memory reading %s", index_path);
    }
  n_names = 0;
  cJSON_ArrayForEach (item, map)
    {
      if (!cJSON_IsString (item) || !shard_name_ok (item->valuestring))
        {
          const char *k = item->string ? item->string : "";
          st = tsr_error_set (err, TSR_EFORMAT, "%s: the shard of '%s' is not a plain file name",
                              index_path, tsr_quote_name (k, strlen (k), q, sizeof q));
          goto out;
        }
      names[n_names++] = item->valuestring;
    }
  /* Shards in name order: HF's 00001-of-0000N names sort as they were written. */
  qsort (names, n_names, sizeof *names, cmp_str);
  for (size_t i = 0; i < n_names; i++)
    if (i == 0 || strcmp (names[i], names[n_unique - 1]) != 0)
      names[n_unique++] = names[i];
  if (n_unique > SHARDS_MAX)
    {
      st = tsr_error_set (err, TSR_ETOOLARGE, "%s names more than %d shards", index_path, SHARDS_MAX);
      goto out;
    }
  for (size_t i = 0; i < n_unique; i++)
    {
      char *p = join_path (dir, names[i]);
      if (p != NULL && !file_exists (p))
        {
          st = tsr_error_set (err, TSR_EIO, "%s names the shard %s, but %s is missing",
                              index_path, tsr_quote_name (names[i], strlen (names[i]), q, sizeof q), p);
          free (p);
          goto out;
        }
      st = add_shard (ck, p, err);
      if (st != TSR_OK)
        goto out;
    }
  st = build_name_index (ck, err);
  if (st != TSR_OK)
    goto out;
  /* Each tensor the index promises must be in the shard it names. */
  cJSON_ArrayForEach (item, map)
    {
      const TsrCkptTensor *t = tsr_checkpoint_find (ck, item->string);
      const char *shard_path = t ? ck->shards[t->shard].path : NULL;
      const char *base = shard_path ? strrchr (shard_path, '/') : NULL;
      base = base ? base + 1 : shard_path;
      if (t == NULL || strcmp (base, item->valuestring) != 0)
        {
          st = tsr_error_set (err, TSR_EFORMAT, "%s says '%s' is in %s, but that shard does not hold it",
                              index_path, tsr_quote_name (item->string, strlen (item->string), q, sizeof q),
                              item->valuestring);
          goto out;
        }
    }
  st = TSR_OK;
out:
  free (names);
  cJSON_Delete (root);
  return st;
}

static int
looks_like_zip (const char *path)
{
  unsigned char m[4] = { 0 };
  FILE *f = fopen (path, "rb");
  size_t n;
  if (f == NULL)
    return 0;
  n = fread (m, 1, 4, f);
  fclose (f);
  return n == 4 && m[0] == 'P' && m[1] == 'K' && m[2] == 3 && m[3] == 4;
}

TsrStatus
tsr_checkpoint_open (const char *path, TsrCheckpoint **out, TsrError *err)
{
  TsrCheckpoint *ck;
  struct stat st;
  TsrStatus s;

  *out = NULL;
  if (path == NULL || stat (path, &st) != 0)
    return tsr_error_set (err, TSR_EIO, "cannot open checkpoint %s: %s",
                          path ? path : "(null)", path ? strerror (errno) : "no path");
  ck = calloc (1, sizeof *ck);
  if (ck == NULL)
    return tsr_error_set (err, TSR_ENOMEM, "out of memory opening checkpoint");

  if (S_ISDIR (st.st_mode))
    {
      static const struct { const char *file; TsrCkptFormat format; int index; } kinds[] = {
        { "model.safetensors.index.json", TSR_CKPT_SAFETENSORS, 1 },
        { "model.safetensors",            TSR_CKPT_SAFETENSORS, 0 },
        { "pytorch_model.bin.index.json", TSR_CKPT_PYTORCH,     1 },
        { "pytorch_model.bin",            TSR_CKPT_PYTORCH,     0 },
      };
      size_t k;
      char *p = NULL;
      for (k = 0; k < sizeof kinds / sizeof kinds[0]; k++)
        {
          p = join_path (path, kinds[k].file);
          if (p == NULL || file_exists (p))
            break;
          free (p);
          p = NULL;
        }
      if (p == NULL)
        {
          tsr_checkpoint_close (ck);
          if (k < sizeof kinds / sizeof kinds[0])
            return tsr_error_set (err, TSR_ENOMEM, "out of memory opening checkpoint");
          return tsr_error_set (err, TSR_EIO,
                                "%s holds no model.safetensors, pytorch_model.bin or their .index.json: "
                                "is it a Hugging Face checkpoint folder?", path);
        }
      ck->format = kinds[k].format;
      if (kinds[k].index)
        {
          s = open_index (ck, path, p, err);
          free (p);
        }
      else
        {
          s = add_shard (ck, p, err);
          if (s == TSR_OK)
            s = build_name_index (ck, err);
        }
    }
  else if (has_suffix (path, ".index.json"))
    {
      char *dir = strdup (path);
      char *slash = dir ? strrchr (dir, '/') : NULL;
      if (dir == NULL)
        {
          tsr_checkpoint_close (ck);
          return tsr_error_set (err, TSR_ENOMEM, "out of memory opening checkpoint");
        }
      if (slash != NULL)
        *slash = '\0';
      ck->format = strstr (path, "safetensors") != NULL ? TSR_CKPT_SAFETENSORS : TSR_CKPT_PYTORCH;
      s = open_index (ck, slash ? dir : ".", path, err);
      free (dir);
    }
  else
    {
      char *p = strdup (path);
      /* A .bin that is not a zip still goes to the zip reader, whose
       * message then explains what it is not. */
      ck->format = looks_like_zip (path) || has_suffix (path, ".bin") || has_suffix (path, ".pt")
                   || has_suffix (path, ".pth") ? TSR_CKPT_PYTORCH : TSR_CKPT_SAFETENSORS;
      s = add_shard (ck, p, err);
      if (s == TSR_OK)
        s = build_name_index (ck, err);
    }

  if (s != TSR_OK)
    {
      tsr_checkpoint_close (ck);
      return s;
    }
  *out = ck;
  return TSR_OK;
}

void
tsr_checkpoint_close (TsrCheckpoint *ck)
{
  if (ck == NULL)
    return;
  for (size_t i = 0; i < ck->n_tensors; i++)
    free ((char *) ck->tensors[i].name);
  for (size_t i = 0; i < ck->n_shards; i++)
    {
      tsr_unmap_file (&ck->shards[i].map);
      free (ck->shards[i].path);
    }
  free (ck->tensors);
  free (ck->by_name);
  free (ck->shards);
  free (ck);
}

/* ==== Queries =========================================================== */

TsrCkptFormat
tsr_checkpoint_format (const TsrCheckpoint *ck)
{
  return ck->format;
}

size_t
tsr_checkpoint_n_tensors (const TsrCheckpoint *ck)
{
  return ck->n_tensors;
}

const TsrCkptTensor *
tsr_checkpoint_tensor (const TsrCheckpoint *ck, size_t index)
{
  return index < ck->n_tensors ? &ck->tensors[index] : NULL;
}

const TsrCkptTensor *
tsr_checkpoint_find (const TsrCheckpoint *ck, const char *name)
{
  size_t lo = 0, hi = ck->n_tensors;
  if (name == NULL || ck->by_name == NULL)
    return NULL;
  while (lo < hi)
    {
      size_t mid = lo + (hi - lo) / 2;
      const TsrCkptTensor *t = ck->by_name[mid];
      int c = strcmp (name, t->name);
      if (c == 0)
        return t;
      if (c < 0)
        hi = mid;
      else
        lo = mid + 1;
    }
  return NULL;
}

size_t
tsr_checkpoint_n_shards (const TsrCheckpoint *ck)
{
  return ck->n_shards;
}

const char *
tsr_checkpoint_shard_path (const TsrCheckpoint *ck, int shard)
{
  return shard >= 0 && (size_t) shard < ck->n_shards ? ck->shards[shard].path : NULL;
}

void
tsr_checkpoint_release (const TsrCheckpoint *ck, const TsrCkptTensor *t)
{
  long page = sysconf (_SC_PAGESIZE);
  uintptr_t start, end;
  (void) ck;
  if (t == NULL || t->nbytes == 0 || page <= 0)
    return;
  /* Only whole pages inside the tensor, so a neighbour still in use keeps
   * its pages; the shared edges are at most two pages. */
  start = ((uintptr_t) t->data + (uintptr_t) page - 1) & ~((uintptr_t) page - 1);
  end = ((uintptr_t) t->data + t->nbytes) & ~((uintptr_t) page - 1);
  if (end > start)
    madvise ((void *) start, end - start, MADV_DONTNEED);
}
