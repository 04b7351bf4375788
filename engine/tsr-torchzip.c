/* SPDX-License-Identifier: GPL-3.0-or-later
 *
 * tsr-torchzip.c — the zip archive torch.save writes, read in place.
 *
 * torch.save (PyTorch ≥ 1.6) writes an uncompressed zip with one top-level
 * folder, named after the file's stem by recent versions and "archive" by
 * older ones: <prefix>/data.pkl (the pickle), <prefix>/data/<key> (one raw
 * little-endian storage each, aligned to 64 bytes by padding in the local
 * header's extra field), <prefix>/version and sometimes <prefix>/byteorder.
 * Local headers carry zero sizes and a data descriptor follows each entry,
 * so sizes are taken from the central directory. Shards above 4 GiB use
 * ZIP64 records; torch writes the ZIP64 end record even for small files.
 *
 * Only stored (method 0) entries are read: torch never compresses, and
 * reading in place is the point. A deflated data.pkl or storage is refused
 * with a message saying so. CRCs are not checked: that would mean reading
 * every byte of a 17 GB checkpoint before converting it.
 */
#include "tsr-checkpoint.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tsr-error.h"

#define SIG_LOCAL   0x04034b50u
#define SIG_CENTRAL 0x02014b50u
#define SIG_EOCD    0x06054b50u
#define SIG_EOCD64  0x06064b50u
#define SIG_LOC64   0x07064b50u

#define ENTRIES_MAX (1u << 20)

typedef struct {
  const char *name;
  size_t      name_len;
  uint16_t    method;
  uint16_t    flags;
  uint64_t    csize, usize;
  uint64_t    header;     /* local header offset */
  uint64_t    data;       /* first byte of the entry's data */
} Entry;

typedef struct {
  const uint8_t *base;
  size_t         size;
  const char    *what;
  Entry         *entries;
  size_t         n_entries;
  const Entry  **sorted;      /* by name, for lookups */
  const char    *prefix;
  size_t         prefix_len;
  TsrCkptSink    sink;
  void          *user_data;
} Zip;

static uint16_t
le16 (const uint8_t *p)
{
  return (uint16_t) (p[0] | (p[1] << 8));
}

static uint32_t
le32 (const uint8_t *p)
{
  return (uint32_t) p[0] | ((uint32_t) p[1] << 8) | ((uint32_t) p[2] << 16) | ((uint32_t) p[3] << 24);
}

static uint64_t
le64 (const uint8_t *p)
{
  return (uint64_t) le32 (p) | ((uint64_t) le32 (p + 4) << 32);
}

/* ==== Central directory ================================================= */

typedef struct {
  uint64_t cd_offset, cd_size, n_entries;
  uint64_t end;     /* where the central directory must end */
} Directory;

static TsrStatus
find_directory (const Zip *z, Directory *dir, TsrError *err)
{
  const uint8_t *b = z->base;
  size_t pos, lowest;
  int found = 0;
  uint16_t n_disk_entries, n_total;
  uint32_t cd_size32, cd_off32;

  if (z->size < 22)
    return tsr_error_set (err, TSR_EFORMAT, "%s is too short to be a PyTorch zip archive", z->what);
  /* The end record is 22 bytes plus a comment of at most 65535. */
  lowest = z->size > 22 + 65535 ? z->size - 22 - 65535 : 0;
  for (pos = z->size - 22 + 1; pos-- > lowest;)
    if (le32 (b + pos) == SIG_EOCD && pos + 22 + le16 (b + pos + 20) <= z->size)
      {
        found = 1;
        break;
      }
  if (!found)
    return tsr_error_set (err, TSR_EFORMAT,
                          "%s: no zip end-of-directory record: the file is truncated, or not a torch.save zip "
                          "(files saved by PyTorch before 1.6 are not supported)",
                          z->what);
  if (le16 (b + pos + 4) != 0 || le16 (b + pos + 6) != 0)
    {
      if (le16 (b + pos + 4) != 0xffff || le16 (b + pos + 6) != 0xffff)
        return tsr_error_set (err, TSR_EFORMAT, "%s: multi-part zip archives are not supported", z->what);
    }
  n_disk_entries = le16 (b + pos + 8);
  n_total = le16 (b + pos + 10);
  cd_size32 = le32 (b + pos + 12);
  cd_off32 = le32 (b + pos + 16);
  if (n_disk_entries != n_total)
    return tsr_error_set (err, TSR_EFORMAT, "%s: multi-part zip archives are not supported", z->what);
  dir->n_entries = n_total;
  dir->cd_size = cd_size32;
  dir->cd_offset = cd_off32;
  dir->end = pos;

  if (pos >= 20 && le32 (b + pos - 20) == SIG_LOC64)
    {
      uint64_t off64 = le64 (b + pos - 20 + 8);
      const uint8_t *r;
      uint64_t n64, size64, offset64;
      if (le32 (b + pos - 20 + 4) != 0 || le32 (b + pos - 20 + 16) > 1)
        return tsr_error_set (err, TSR_EFORMAT, "%s: multi-part zip archives are not supported", z->what);
      if (!tsr_range_ok (off64, 56, pos - 20))
        return tsr_error_set (err, TSR_EFORMAT, "%s: the ZIP64 locator points outside the file", z->what);
      r = b + off64;
      if (le32 (r) != SIG_EOCD64)
        return tsr_error_set (err, TSR_EFORMAT, "%s: the ZIP64 end record is missing or damaged", z->what);
      if (le32 (r + 16) != 0 || le32 (r + 20) != 0 || le64 (r + 24) != le64 (r + 32))
        return tsr_error_set (err, TSR_EFORMAT, "%s: multi-part zip archives are not supported", z->what);
      n64 = le64 (r + 32);
      size64 = le64 (r + 40);
      offset64 = le64 (r + 48);
      /* A 32-bit field is either saturated (the 64-bit one holds the value)
       * or must agree with its 64-bit twin. */
      if ((n_total != 0xffff && n64 != n_total) || (cd_size32 != 0xffffffffu && size64 != cd_size32)
          || (cd_off32 != 0xffffffffu && offset64 != cd_off32))
        return tsr_error_set (err, TSR_EFORMAT, "%s: the zip and ZIP64 end records disagree", z->what);
      dir->n_entries = n64;
      dir->cd_size = size64;
      dir->cd_offset = offset64;
      dir->end = off64;
    }
  else if (n_total == 0xffff || cd_size32 == 0xffffffffu || cd_off32 == 0xffffffffu)
    return tsr_error_set (err, TSR_EFORMAT, "%s: the zip needs a ZIP64 end record but has none", z->what);

  if (!tsr_range_ok (dir->cd_offset, dir->cd_size, dir->end))
    return tsr_error_set (err, TSR_EFORMAT,
                          "%s: the zip central directory lies outside the file (truncated?)", z->what);
  if (dir->n_entries > ENTRIES_MAX || dir->n_entries > dir->cd_size / 46)
    return tsr_error_set (err, TSR_EFORMAT, "%s: the zip claims %llu entries, more than its directory holds",
                          z->what, (unsigned long long) dir->n_entries);
  return TSR_OK;
}

/* Fills the fields a central record left at 0xffffffff from its ZIP64 extra
 * field, which lists them in a fixed order and only those. */
static int
read_zip64_extra (const uint8_t *extra, size_t len, uint64_t *usize, uint64_t *csize, uint64_t *offset,
                  int need_u, int need_c, int need_o)
{
  size_t p = 0;
  while (p + 4 <= len)
    {
      uint16_t id = le16 (extra + p), sz = le16 (extra + p + 2);
      if (sz > len - p - 4)
        return 0;
      if (id == 0x0001)
        {
          const uint8_t *f = extra + p + 4;
          size_t need = 8u * (size_t) (need_u + need_c + need_o), k = 0;
          if (sz < need)
            return 0;
          if (need_u)
            *usize = le64 (f + 8 * k++);
          if (need_c)
            *csize = le64 (f + 8 * k++);
          if (need_o)
            *offset = le64 (f + 8 * k++);
          return 1;
        }
      p += 4 + sz;
    }
  return !(need_u || need_c || need_o);
}

static int
cmp_entry_name (const void *a, const void *b)
{
  const Entry *x = *(const Entry *const *) a, *y = *(const Entry *const *) b;
  size_t n = x->name_len < y->name_len ? x->name_len : y->name_len;
  int c = memcmp (x->name, y->name, n);
  if (c != 0)
    return c;
  return x->name_len < y->name_len ? -1 : x->name_len > y->name_len;
}

static int
cmp_entry_header (const void *a, const void *b)
{
  const Entry *x = a, *y = b;
  return x->header < y->header ? -1 : x->header > y->header;
}

static TsrStatus
read_entries (Zip *z, const Directory *dir, TsrError *err)
{
  const uint8_t *b = z->base;
  uint64_t p = dir->cd_offset, cd_end = dir->cd_offset + dir->cd_size;
  char q[160];

  z->entries = calloc (dir->n_entries ? dir->n_entries : 1, sizeof *z->entries);
  z->sorted = calloc (dir->n_entries ? dir->n_entries : 1, sizeof *z->sorted);
  if (z->entries == NULL || z->sorted == NULL)
    return tsr_error_set (err, TSR_ENOMEM, "out of memory reading %s", z->what);

  for (uint64_t i = 0; i < dir->n_entries; i++)
    {
      Entry *e = &z->entries[i];
      uint16_t nl, el, cl;
      uint32_t c32, u32, o32;
      const uint8_t *lh;

      if (!tsr_range_ok (p, 46, cd_end) || le32 (b + p) != SIG_CENTRAL)
        return tsr_error_set (err, TSR_EFORMAT, "%s: zip central directory record %llu is damaged",
                              z->what, (unsigned long long) i);
      e->flags = le16 (b + p + 8);
      e->method = le16 (b + p + 10);
      c32 = le32 (b + p + 20);
      u32 = le32 (b + p + 24);
      nl = le16 (b + p + 28);
      el = le16 (b + p + 30);
      cl = le16 (b + p + 32);
      o32 = le32 (b + p + 42);
      if (!tsr_range_ok (p + 46, (uint64_t) nl + el + cl, cd_end))
        return tsr_error_set (err, TSR_EFORMAT, "%s: zip central directory record %llu runs past the directory",
                              z->what, (unsigned long long) i);
      e->name = (const char *) b + p + 46;
      e->name_len = nl;
      e->csize = c32;
      e->usize = u32;
      e->header = o32;
      if (!read_zip64_extra (b + p + 46 + nl, el, &e->usize, &e->csize, &e->header,
                             u32 == 0xffffffffu, c32 == 0xffffffffu, o32 == 0xffffffffu))
        return tsr_error_set (err, TSR_EFORMAT, "%s: the ZIP64 field of entry '%s' is missing or damaged",
                              z->what, tsr_quote_name (e->name, nl, q, sizeof q));
      p += 46 + (uint64_t) nl + el + cl;

      /* The local header repeats the name; its extra field (torch's
       * alignment padding) decides where the data starts. */
      if (!tsr_range_ok (e->header, 30, dir->cd_offset) || le32 (b + e->header) != SIG_LOCAL)
        return tsr_error_set (err, TSR_EFORMAT, "%s: the local header of entry '%s' is missing or damaged",
                              z->what, tsr_quote_name (e->name, nl, q, sizeof q));
      lh = b + e->header;
      if (le16 (lh + 26) != nl || !tsr_range_ok (e->header + 30, (uint64_t) nl + le16 (lh + 28), dir->cd_offset)
          || memcmp (lh + 30, e->name, nl) != 0)
        return tsr_error_set (err, TSR_EFORMAT, "%s: the local header of entry '%s' disagrees with the directory",
                              z->what, tsr_quote_name (e->name, nl, q, sizeof q));
      e->data = e->header + 30 + nl + le16 (lh + 28);
      if (!tsr_range_ok (e->data, e->csize, dir->cd_offset))
        return tsr_error_set (err, TSR_EFORMAT,
                              "%s: the data of entry '%s' runs past the end of the archive (truncated?)",
                              z->what, tsr_quote_name (e->name, nl, q, sizeof q));
    }
  z->n_entries = (size_t) dir->n_entries;

  /* Entries may not share bytes: a lying directory could otherwise make
   * two storages alias each other or a header. */
  qsort (z->entries, z->n_entries, sizeof *z->entries, cmp_entry_header);
  for (size_t i = 1; i < z->n_entries; i++)
    if (z->entries[i].header < z->entries[i - 1].data + z->entries[i - 1].csize)
      return tsr_error_set (err, TSR_EFORMAT, "%s: zip entries '%s' and the one before it overlap", z->what,
                            tsr_quote_name (z->entries[i].name, z->entries[i].name_len, q, sizeof q));
  for (size_t i = 0; i < z->n_entries; i++)
    z->sorted[i] = &z->entries[i];
  qsort (z->sorted, z->n_entries, sizeof *z->sorted, cmp_entry_name);
  for (size_t i = 1; i < z->n_entries; i++)
    if (cmp_entry_name (&z->sorted[i - 1], &z->sorted[i]) == 0)
      return tsr_error_set (err, TSR_EFORMAT, "%s: the zip holds '%s' twice", z->what,
                            tsr_quote_name (z->sorted[i]->name, z->sorted[i]->name_len, q, sizeof q));
  return TSR_OK;
}

static const Entry *
lookup (const Zip *z, const char *a, size_t alen, const char *c, size_t clen)
{
  size_t lo = 0, hi = z->n_entries;
  char stack_name[512];
  Entry key;
  const Entry *kp = &key;

  if (alen + clen > sizeof stack_name)
    return NULL;
  memcpy (stack_name, a, alen);
  memcpy (stack_name + alen, c, clen);
  key.name = stack_name;
  key.name_len = alen + clen;
  while (lo < hi)
    {
      size_t mid = lo + (hi - lo) / 2;
      int r = cmp_entry_name (&kp, &z->sorted[mid]);
      if (r == 0)
        return z->sorted[mid];
      if (r < 0)
        hi = mid;
      else
        lo = mid + 1;
    }
  return NULL;
}

/* Returns a stored entry's bytes, or fails naming why it cannot be read. */
static TsrStatus
stored_bytes (const Zip *z, const Entry *e, const uint8_t **out, TsrError *err)
{
  char q[160];
  const char *qn = tsr_quote_name (e->name, e->name_len, q, sizeof q);
  if (e->flags & 1)
    return tsr_error_set (err, TSR_EFORMAT, "%s: entry '%s' is encrypted", z->what, qn);
  if (e->method != 0)
    return tsr_error_set (err, TSR_EFORMAT,
                          "%s: entry '%s' is compressed (zip method %u); Tessera reads only the uncompressed "
                          "archives torch.save writes, so re-save the checkpoint with torch.save",
                          z->what, qn, e->method);
  if (e->csize != e->usize)
    return tsr_error_set (err, TSR_EFORMAT, "%s: stored entry '%s' has two different sizes", z->what, qn);
  *out = z->base + e->data;
  return TSR_OK;
}

/* ==== From pickle records to tensors ==================================== */

static TsrStatus
resolve (void *user_data, const TsrPickleTensor *t, TsrError *err)
{
  const Zip *z = user_data;
  const Entry *e;
  const uint8_t *bytes;
  size_t esize = tsr_checkpoint_dtype_size (t->dtype);
  TsrCkptRecord rec;
  TsrStatus st;
  char q[160], qk[64];
  uint64_t want;

  e = lookup (z, z->prefix, z->prefix_len, t->storage_key, t->storage_key_len);
  if (e == NULL)
    return tsr_error_set (err, TSR_EFORMAT, "%s: tensor '%s' uses storage '%s', which the archive lacks",
                          z->what, tsr_quote_name (t->name, t->name_len, q, sizeof q),
                          tsr_quote_name (t->storage_key, t->storage_key_len, qk, sizeof qk));
  if ((st = stored_bytes (z, e, &bytes, err)) != TSR_OK)
    return st;
  if ((uint64_t) t->storage_numel > UINT64_MAX / esize || (want = (uint64_t) t->storage_numel * esize) != e->usize)
    return tsr_error_set (err, TSR_EFORMAT,
                          "%s: storage '%s' of tensor '%s' has %llu bytes, but the pickle says %lld elements",
                          z->what, tsr_quote_name (t->storage_key, t->storage_key_len, qk, sizeof qk),
                          tsr_quote_name (t->name, t->name_len, q, sizeof q), (unsigned long long) e->usize,
                          (long long) t->storage_numel);

  memset (&rec, 0, sizeof rec);
  rec.name = t->name;
  rec.name_len = t->name_len;
  rec.dtype = t->dtype;
  rec.n_dims = t->n_dims;
  memcpy (rec.shape, t->shape, sizeof rec.shape);
  /* The pickle checked offset + numel ≤ storage numel. */
  rec.data = bytes + (size_t) t->storage_offset * esize;
  rec.nbytes = (size_t) tsr_shape_numel (t->shape, t->n_dims) * esize;
  return z->sink (z->user_data, &rec, err);
}

TsrStatus
tsr_torchzip_parse (const uint8_t *base, size_t size, const char *what,
                    TsrCkptSink sink, void *user_data, TsrError *err)
{
  static const char pkl[] = "/data.pkl", data_dir[] = "data/";
  Zip z;
  Directory dir;
  const Entry *pickle = NULL, *e;
  const uint8_t *bytes;
  TsrStatus st;
  char prefix[256];

  memset (&z, 0, sizeof z);
  memset (&dir, 0, sizeof dir);
  z.base = base;
  z.size = size;
  z.what = what;
  z.sink = sink;
  z.user_data = user_data;

  if ((st = find_directory (&z, &dir, err)) != TSR_OK)
    goto out;
  if ((st = read_entries (&z, &dir, err)) != TSR_OK)
    goto out;

  /* The prefix is whatever single folder holds data.pkl. */
  for (size_t i = 0; i < z.n_entries; i++)
    {
      const Entry *c = &z.entries[i];
      size_t pl = sizeof pkl - 1;
      if (c->name_len > pl && memcmp (c->name + c->name_len - pl, pkl, pl) == 0
          && memchr (c->name, '/', c->name_len - pl) == NULL)
        {
          if (pickle != NULL)
            {
              st = tsr_error_set (err, TSR_EFORMAT, "%s: the archive holds more than one data.pkl", what);
              goto out;
            }
          pickle = c;
        }
    }
  if (pickle == NULL)
    {
      st = tsr_error_set (err, TSR_EFORMAT, "%s: the archive has no <folder>/data.pkl: not a torch.save file",
                          what);
      goto out;
    }
  z.prefix_len = pickle->name_len - (sizeof pkl - 1) + 1;
  if (z.prefix_len + sizeof data_dir > sizeof prefix)
    {
      st = tsr_error_set (err, TSR_EFORMAT, "%s: the archive's folder name is too long", what);
      goto out;
    }
  memcpy (prefix, pickle->name, z.prefix_len);
  memcpy (prefix + z.prefix_len, data_dir, sizeof data_dir - 1);
  z.prefix_len += sizeof data_dir - 1;
  z.prefix = prefix;

  /* Storages are raw machine bytes; every supported machine is little-endian,
   * so a big-endian archive cannot be read in place. */
  e = lookup (&z, prefix, z.prefix_len - (sizeof data_dir - 1), "byteorder", 9);
  if (e != NULL)
    {
      if ((st = stored_bytes (&z, e, &bytes, err)) != TSR_OK)
        goto out;
      if (!(e->usize == 6 && memcmp (bytes, "little", 6) == 0))
        {
          st = tsr_error_set (err, TSR_EFORMAT, "%s: the archive was written on a big-endian machine", what);
          goto out;
        }
    }

  if ((st = stored_bytes (&z, pickle, &bytes, err)) != TSR_OK)
    goto out;
  {
    char label[1024];
    snprintf (label, sizeof label, "%s: %.*s", what, (int) (pickle->name_len < 200 ? pickle->name_len : 200),
              pickle->name);
    for (char *c = label; *c; c++)
      if ((unsigned char) *c < 0x20 || (unsigned char) *c >= 0x7f)
        *c = '?';
    st = tsr_pickle_parse (bytes, (size_t) pickle->usize, label, resolve, &z, err);
  }

out:
  free (z.entries);
  free ((void *) z.sorted);
  return st;
}
