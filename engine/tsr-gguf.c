/* SPDX-License-Identifier: GPL-3.0-or-later
 *
 * tsr-gguf.c — the model file: a GGUF v2/v3 reader (mmap, zero copy) and a
 * streaming writer. See DESIGN.md for the names Tessera gives tensors and
 * metadata.
 *
 * The reader trusts nothing: every count, length, offset and size is
 * checked against the bytes that are really there, in 64-bit arithmetic
 * that cannot wrap, before anything is allocated or read. A damaged file
 * gives TSR_EFORMAT and a message naming the byte offset; it never
 * crashes the process that opened it.
 */
#include "tsr-gguf.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tsr-error.h"

/* Values are copied with memcpy, which is only right on a little-endian
 * host; GGUF's byte order is little-endian. */
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "tsr-gguf.c assumes a little-endian host"
#endif

#define GGUF_MAGIC       "GGUF"
#define KEY_MAX          65535u
/* Smallest possible encodings, used to refuse absurd counts before any
 * allocation: a KV is a key length, a type and at least one value byte;
 * a tensor info is a name length, n_dims, a type and an offset. */
#define KV_MIN_BYTES     (8u + 4u + 1u)
#define TENSOR_MIN_BYTES (8u + 4u + 4u + 8u)

#define DAMAGED "; the file is damaged or was written by a broken tool: download or convert it again"

/* ==== Small helpers ===================================================== */

static int
add_u64 (uint64_t a, uint64_t b, uint64_t *out)
{
  if (a > UINT64_MAX - b)
    return 0;
  *out = a + b;
  return 1;
}

static int
mul_u64 (uint64_t a, uint64_t b, uint64_t *out)
{
  if (a != 0 && b > UINT64_MAX / a)
    return 0;
  *out = a * b;
  return 1;
}

/* Rounds up to a power-of-two alignment; 0 on overflow. */
static int
align_u64 (uint64_t v, uint64_t alignment, uint64_t *out)
{
  uint64_t t;
  if (!add_u64 (v, alignment - 1, &t))
    return 0;
  *out = t & ~(alignment - 1);
  return 1;
}

static int
is_pow2 (uint64_t v)
{
  return v != 0 && (v & (v - 1)) == 0;
}

static uint16_t
rd16 (const unsigned char *p)
{
  return (uint16_t) (p[0] | (p[1] << 8));
}

static uint32_t
rd32 (const unsigned char *p)
{
  return (uint32_t) p[0] | ((uint32_t) p[1] << 8) | ((uint32_t) p[2] << 16) | ((uint32_t) p[3] << 24);
}

static uint64_t
rd64 (const unsigned char *p)
{
  return (uint64_t) rd32 (p) | ((uint64_t) rd32 (p + 4) << 32);
}

/* FNV-1a: names are short and few (≈1000 tensors), a simple hash does. */
static uint64_t
hash_bytes (const char *s, size_t n)
{
  uint64_t h = 0xcbf29ce484222325ull;
  for (size_t i = 0; i < n; i++)
    {
      h ^= (unsigned char) s[i];
      h *= 0x100000001b3ull;
    }
  return h;
}

/* An open-addressing index from name to position; slots hold index + 1. */
typedef struct {
  uint32_t *slots;
  size_t    mask;
} NameIndex;

static int
index_init (NameIndex *ix, size_t n)
{
  size_t cap = 8;
  while (cap < 2 * n)
    cap *= 2;
  ix->slots = calloc (cap, sizeof *ix->slots);
  ix->mask = cap - 1;
  return ix->slots != NULL;
}

/* Inserts names[i]; returns the index of an equal name already present,
 * or -1 after inserting. */
static long
index_insert (NameIndex *ix, const char *const *names, size_t i)
{
  size_t h = (size_t) hash_bytes (names[i], strlen (names[i])) & ix->mask;
  while (ix->slots[h] != 0)
    {
      size_t j = ix->slots[h] - 1;
      if (strcmp (names[j], names[i]) == 0)
        return (long) j;
      h = (h + 1) & ix->mask;
    }
  ix->slots[h] = (uint32_t) (i + 1);
  return -1;
}

/* ==== ggml type names (for messages) =================================== */

static const char *const ggml_type_names[] = {
  [0] = "f32", [1] = "f16", [2] = "q4_0", [3] = "q4_1", [6] = "q5_0", [7] = "q5_1",
  [8] = "q8_0", [9] = "q8_1", [10] = "q2_K", [11] = "q3_K", [12] = "q4_K", [13] = "q5_K",
  [14] = "q6_K", [15] = "q8_K", [16] = "iq2_xxs", [17] = "iq2_xs", [18] = "iq3_xxs",
  [19] = "iq1_s", [20] = "iq4_nl", [21] = "iq3_s", [22] = "iq2_s", [23] = "iq4_xs",
  [24] = "i8", [25] = "i16", [26] = "i32", [27] = "i64", [28] = "f64", [29] = "iq1_m",
  [30] = "bf16", [34] = "tq1_0", [35] = "tq2_0",
};

const char *
tsr_gguf_ggml_type_name (uint32_t t)
{
  if (t < sizeof ggml_type_names / sizeof ggml_type_names[0])
    return ggml_type_names[t];
  return NULL;
}

static const char *const value_type_names[] = {
  "u8", "i8", "u16", "i16", "u32", "i32", "f32", "bool", "string", "array", "u64", "i64", "f64",
};

const char *
tsr_gguf_type_name (TsrGgufType t)
{
  if ((unsigned) t < sizeof value_type_names / sizeof value_type_names[0])
    return value_type_names[t];
  return "unknown";
}

/* Bytes of one value of a fixed-size type; 0 for string, array, unknown. */
static uint64_t
value_size (uint32_t t)
{
  switch (t)
    {
    case TSR_GGUF_U8: case TSR_GGUF_I8: case TSR_GGUF_BOOL: return 1;
    case TSR_GGUF_U16: case TSR_GGUF_I16: return 2;
    case TSR_GGUF_U32: case TSR_GGUF_I32: case TSR_GGUF_F32: return 4;
    case TSR_GGUF_U64: case TSR_GGUF_I64: case TSR_GGUF_F64: return 8;
    default: return 0;
    }
}

static int
is_integer_type (uint32_t t)
{
  return t == TSR_GGUF_U8 || t == TSR_GGUF_I8 || t == TSR_GGUF_U16 || t == TSR_GGUF_I16 ||
         t == TSR_GGUF_U32 || t == TSR_GGUF_I32 || t == TSR_GGUF_U64 || t == TSR_GGUF_I64;
}

/* ==== The reader ======================================================== */

struct TsrGguf {
  const unsigned char *base;
  uint64_t             size;
  void                *map;        /* NULL when reading caller memory */
  size_t               map_size;
  char                *path;       /* for messages */
  uint32_t             version;
  uint32_t             alignment;
  uint64_t             data_offset;

  size_t               n_kv;
  TsrGgufKV           *kv;
  char               **kv_keys;    /* the same pointers as kv[i].key, for the index */
  NameIndex            kv_index;

  size_t               n_tensors;
  TsrGgufTensor       *tensors;
  char               **tensor_names;
  NameIndex            tensor_index;
};

typedef struct {
  TsrGguf  *g;
  uint64_t  pos;
  TsrError *err;
} Reader;

static TsrStatus
fail (Reader *r, uint64_t at, const char *fmt, ...) __attribute__ ((format (printf, 3, 4)));

static TsrStatus
fail (Reader *r, uint64_t at, const char *fmt, ...)
{
  char msg[TSR_ERROR_MESSAGE_MAX];
  va_list ap;
  va_start (ap, fmt);
  vsnprintf (msg, sizeof msg, fmt, ap);
  va_end (ap);
  return tsr_error_set (r->err, TSR_EFORMAT, "%s: byte %llu: %s", r->g->path,
                        (unsigned long long) at, msg);
}

/* Makes sure n bytes follow the cursor; `what` names the field that would
 * be cut, so a truncated file says where it ends and what it was in. */
static TsrStatus
need (Reader *r, uint64_t n, const char *what)
{
  if (n > r->g->size - r->pos)
    return fail (r, r->pos, "the file ends (at byte %llu) inside %s, which needs %llu more bytes; "
                 "it is truncated: download or convert it again",
                 (unsigned long long) r->g->size, what, (unsigned long long) n);
  return TSR_OK;
}

static TsrStatus
read_u32 (Reader *r, uint32_t *v, const char *what)
{
  TsrStatus st = need (r, 4, what);
  if (st != TSR_OK)
    return st;
  *v = rd32 (r->g->base + r->pos);
  r->pos += 4;
  return TSR_OK;
}

static TsrStatus
read_u64 (Reader *r, uint64_t *v, const char *what)
{
  TsrStatus st = need (r, 8, what);
  if (st != TSR_OK)
    return st;
  *v = rd64 (r->g->base + r->pos);
  r->pos += 8;
  return TSR_OK;
}

/* A GGUF string: u64 length, then that many bytes (no terminator). */
static TsrStatus
read_str (Reader *r, TsrGgufStr *s, const char *what)
{
  uint64_t at = r->pos, len;
  TsrStatus st = read_u64 (r, &len, what);
  if (st != TSR_OK)
    return st;
  if (len > r->g->size - r->pos)
    return fail (r, at, "%s claims %llu bytes but only %llu remain in the file" DAMAGED,
                 what, (unsigned long long) len, (unsigned long long) (r->g->size - r->pos));
  s->ptr = (const char *) r->g->base + r->pos;
  s->len = len;
  r->pos += len;
  return TSR_OK;
}

/* Copies a name into a C string, refusing what a C string cannot hold. */
static TsrStatus
dup_name (Reader *r, uint64_t at, TsrGgufStr s, uint64_t max, const char *what, char **out)
{
  *out = NULL;
  if (s.len == 0)
    return fail (r, at, "%s is empty" DAMAGED, what);
  if (s.len > max)
    return fail (r, at, "%s is %llu bytes long; GGUF allows at most %llu" DAMAGED,
                 what, (unsigned long long) s.len, (unsigned long long) max);
  if (memchr (s.ptr, '\0', s.len) != NULL)
    return fail (r, at, "%s contains a NUL byte" DAMAGED, what);
  *out = malloc (s.len + 1);
  if (*out == NULL)
    return tsr_error_set (r->err, TSR_ENOMEM, "out of memory reading %s", r->g->path);
  memcpy (*out, s.ptr, s.len);
  (*out)[s.len] = '\0';
  return TSR_OK;
}

/* Reads one value of type t (not an array) at the cursor; for strings,
 * fills *s. Bools must be 0 or 1: the spec calls anything else invalid. */
static TsrStatus
read_scalar (Reader *r, uint32_t t, const char *key, TsrGgufStr *s)
{
  char what[128];
  if (t == TSR_GGUF_STRING)
    {
      snprintf (what, sizeof what, "the string value of '%.80s'", key);
      return read_str (r, s, what);
    }
  uint64_t n = value_size (t);
  snprintf (what, sizeof what, "the %s value of '%.80s'", tsr_gguf_type_name ((TsrGgufType) t), key);
  TsrStatus st = need (r, n, what);
  if (st != TSR_OK)
    return st;
  if (t == TSR_GGUF_BOOL && r->g->base[r->pos] > 1)
    return fail (r, r->pos, "the bool value of '%s' is %u, not 0 or 1" DAMAGED,
                 key, r->g->base[r->pos]);
  r->pos += n;
  return TSR_OK;
}

static TsrStatus
read_kv (Reader *r, size_t i)
{
  TsrGguf *g = r->g;
  TsrGgufKV *kv = &g->kv[i];
  uint64_t key_at = r->pos, type_at;
  TsrGgufStr key;
  uint32_t type;
  char what[160];
  TsrStatus st;

  snprintf (what, sizeof what, "the key of metadata entry %zu", i);
  if ((st = read_str (r, &key, what)) != TSR_OK ||
      (st = dup_name (r, key_at, key, KEY_MAX, what, &g->kv_keys[i])) != TSR_OK)
    return st;
  kv->key = g->kv_keys[i];
  kv->offset = key_at;

  type_at = r->pos;
  snprintf (what, sizeof what, "the value type of '%.60s'", kv->key);
  if ((st = read_u32 (r, &type, what)) != TSR_OK)
    return st;
  if (type > TSR_GGUF_F64)
    return fail (r, type_at, "metadata '%s' has value type %u, which GGUF does not define" DAMAGED,
                 kv->key, type);
  kv->type = (TsrGgufType) type;

  if (type != TSR_GGUF_ARRAY)
    {
      TsrGgufStr s = { NULL, 0 };
      kv->n = 1;
      kv->data = g->base + r->pos;
      if ((st = read_scalar (r, type, kv->key, &s)) != TSR_OK)
        return st;
      if (type == TSR_GGUF_STRING)
        {
          TsrGgufStr *one = malloc (sizeof *one);
          if (one == NULL)
            return tsr_error_set (r->err, TSR_ENOMEM, "out of memory reading %s", g->path);
          *one = s;
          kv->strs = one;
          kv->data = s.ptr;
        }
      return TSR_OK;
    }

  /* Arrays: element type, count, elements. */
  uint64_t et_at = r->pos, n, at;
  uint32_t et;
  snprintf (what, sizeof what, "the element type of array '%.60s'", kv->key);
  if ((st = read_u32 (r, &et, what)) != TSR_OK)
    return st;
  if (et == TSR_GGUF_ARRAY)
    return fail (r, et_at, "metadata '%s' is an array of arrays, which Tessera does not read "
                 "(no model needs one); the file was not made for Tessera or llama.cpp", kv->key);
  if (et > TSR_GGUF_F64)
    return fail (r, et_at, "array '%s' has element type %u, which GGUF does not define" DAMAGED,
                 kv->key, et);
  at = r->pos;
  snprintf (what, sizeof what, "the length of array '%.60s'", kv->key);
  if ((st = read_u64 (r, &n, what)) != TSR_OK)
    return st;
  kv->array_type = (TsrGgufType) et;
  kv->n = n;
  kv->data = g->base + r->pos;

  uint64_t remain = g->size - r->pos;
  uint64_t min_each = et == TSR_GGUF_STRING ? 8 : value_size (et);
  uint64_t min_total;
  if (!mul_u64 (n, min_each, &min_total) || min_total > remain)
    return fail (r, at, "array '%s' claims %llu elements of %s, more than the %llu bytes left "
                 "in the file can hold" DAMAGED, kv->key, (unsigned long long) n,
                 tsr_gguf_type_name ((TsrGgufType) et), (unsigned long long) remain);

  if (et == TSR_GGUF_STRING)
    {
      /* n ≤ remain/8 here, so the table is never larger than the file. */
      TsrGgufStr *strs = malloc ((size_t) (n ? n : 1) * sizeof *strs);
      if (strs == NULL)
        return tsr_error_set (r->err, TSR_ENOMEM, "out of memory reading %s", g->path);
      kv->strs = strs;
      for (uint64_t k = 0; k < n; k++)
        {
          snprintf (what, sizeof what, "string %llu of array '%.60s'", (unsigned long long) k, kv->key);
          if ((st = read_str (r, &strs[k], what)) != TSR_OK)
            return st;
        }
      return TSR_OK;
    }
  if (et == TSR_GGUF_BOOL)
    for (uint64_t k = 0; k < n; k++)
      if (g->base[r->pos + k] > 1)
        return fail (r, r->pos + k, "element %llu of bool array '%s' is %u, not 0 or 1" DAMAGED,
                     (unsigned long long) k, kv->key, g->base[r->pos + k]);
  r->pos += min_total;
  return TSR_OK;
}

/* The integer value of element k of a kv, as sign and magnitude so that
 * u64 and i64 both fit; 0 if the kv is not of an integer type. */
static int
kv_integer (const TsrGgufKV *kv, uint64_t k, int *neg, uint64_t *mag)
{
  uint32_t t = kv->type == TSR_GGUF_ARRAY ? kv->array_type : kv->type;
  const unsigned char *p;
  int64_t s;

  if (!is_integer_type (t) || k >= kv->n)
    return 0;
  p = (const unsigned char *) kv->data + k * value_size (t);
  *neg = 0;
  switch (t)
    {
    case TSR_GGUF_U8:  *mag = p[0]; return 1;
    case TSR_GGUF_U16: *mag = rd16 (p); return 1;
    case TSR_GGUF_U32: *mag = rd32 (p); return 1;
    case TSR_GGUF_U64: *mag = rd64 (p); return 1;
    case TSR_GGUF_I8:  s = (int8_t) p[0]; break;
    case TSR_GGUF_I16: s = (int16_t) rd16 (p); break;
    case TSR_GGUF_I32: s = (int32_t) rd32 (p); break;
    default:           s = (int64_t) rd64 (p); break;
    }
  *neg = s < 0;
  /* −(INT64_MIN) overflows; go through unsigned arithmetic. */
  *mag = s < 0 ? (uint64_t) 0 - (uint64_t) s : (uint64_t) s;
  return 1;
}

static int
kv_float (const TsrGgufKV *kv, uint64_t k, double *v)
{
  uint32_t t = kv->type == TSR_GGUF_ARRAY ? kv->array_type : kv->type;
  const unsigned char *p;
  if (k >= kv->n)
    return 0;
  p = (const unsigned char *) kv->data + k * value_size (t);
  if (t == TSR_GGUF_F32)
    {
      uint32_t u = rd32 (p);
      float f;
      memcpy (&f, &u, sizeof f);
      *v = f;
      return 1;
    }
  if (t == TSR_GGUF_F64)
    {
      uint64_t u = rd64 (p);
      memcpy (v, &u, sizeof *v);
      return 1;
    }
  return 0;
}

static TsrStatus
read_tensor_info (Reader *r, size_t i)
{
  TsrGguf *g = r->g;
  TsrGgufTensor *t = &g->tensors[i];
  uint64_t at = r->pos, dims_at, type_at, off_at, off, n = 1;
  uint32_t n_dims, type;
  TsrGgufStr name;
  char what[128];
  TsrStatus st;

  snprintf (what, sizeof what, "the name of tensor %zu", i);
  if ((st = read_str (r, &name, what)) != TSR_OK ||
      (st = dup_name (r, at, name, TSR_GGUF_NAME_MAX, what, &g->tensor_names[i])) != TSR_OK)
    return st;
  t->name = g->tensor_names[i];

  dims_at = r->pos;
  snprintf (what, sizeof what, "the dimension count of tensor '%s'", t->name);
  if ((st = read_u32 (r, &n_dims, what)) != TSR_OK)
    return st;
  if (n_dims > TSR_GGUF_MAX_DIMS)
    return fail (r, dims_at, "tensor '%s' has %u dimensions; GGUF tensors have at most %d" DAMAGED,
                 t->name, n_dims, TSR_GGUF_MAX_DIMS);
  t->n_dims = n_dims;
  for (int d = 0; d < TSR_GGUF_MAX_DIMS; d++)
    t->ne[d] = 1;
  for (uint32_t d = 0; d < n_dims; d++)
    {
      uint64_t ne, at_d = r->pos;
      snprintf (what, sizeof what, "dimension %u of tensor '%s'", d, t->name);
      if ((st = read_u64 (r, &ne, what)) != TSR_OK)
        return st;
      if (ne > (uint64_t) INT64_MAX)
        return fail (r, at_d, "dimension %u of tensor '%s' is %llu, beyond 2^63" DAMAGED,
                     d, t->name, (unsigned long long) ne);
      t->ne[d] = (int64_t) ne;
      if (!mul_u64 (n, ne, &n) || n > (uint64_t) INT64_MAX)
        return fail (r, at_d, "the dimensions of tensor '%s' multiply to more than 2^63 elements" DAMAGED,
                     t->name);
    }
  t->n_elements = n;

  type_at = r->pos;
  snprintf (what, sizeof what, "the type of tensor '%s'", t->name);
  if ((st = read_u32 (r, &type, what)) != TSR_OK)
    return st;
  if (!tsr_dtype_is_valid ((int) type))
    {
      const char *known = tsr_gguf_ggml_type_name (type);
      if (known)
        return fail (r, type_at, "tensor '%s' is of type %s (ggml type %u), which Tessera cannot read; "
                     "it reads f32, f16, bf16, q8_0 and q4_0: convert the model with "
                     "'tessera-cli convert --type q8_0' (or another of those)", t->name, known, type);
      return fail (r, type_at, "tensor '%s' has type %u, which is no ggml type" DAMAGED, t->name, type);
    }
  t->type = (TsrDType) type;
  if ((uint64_t) t->ne[0] % tsr_dtype_block_values (t->type) != 0)
    return fail (r, dims_at, "tensor '%s' is %s but its rows hold %lld values, not a multiple of "
                 "the %zu-value block" DAMAGED, t->name, tsr_dtype_name (t->type),
                 (long long) t->ne[0], tsr_dtype_block_values (t->type));
  if (tsr_dtype_row_bytes (t->type, n, &t->size, NULL) != TSR_OK)
    return fail (r, dims_at, "tensor '%s' would take more than 2^64 bytes" DAMAGED, t->name);

  off_at = r->pos;
  snprintf (what, sizeof what, "the data offset of tensor '%s'", t->name);
  if ((st = read_u64 (r, &off, what)) != TSR_OK)
    return st;
  if (off % g->alignment != 0)
    return fail (r, off_at, "tensor '%s' has data offset %llu, not a multiple of the file's "
                 "alignment %u" DAMAGED, t->name, (unsigned long long) off, g->alignment);
  /* Stored relative to the data section; made absolute once that is known. */
  t->offset = off;
  return TSR_OK;
}

typedef struct {
  uint64_t offset, size;
  size_t   index;
} Extent;

static int
extent_cmp (const void *a, const void *b)
{
  const Extent *x = a, *y = b;
  if (x->offset != y->offset)
    return x->offset < y->offset ? -1 : 1;
  if (x->size != y->size)
    return x->size < y->size ? -1 : 1;
  return 0;
}

static TsrStatus
parse (TsrGguf *g, TsrError *err)
{
  Reader r = { g, 0, err };
  Reader *rp = &r;
  uint64_t n_tensors, n_kv, at;
  TsrStatus st;

  if (g->size < 4 || memcmp (g->base, GGUF_MAGIC, 4) != 0)
    {
      if (g->size < 4)
        return fail (rp, 0, "the file is %llu bytes long, too short to be a GGUF model file",
                     (unsigned long long) g->size);
      return fail (rp, 0, "the file starts with bytes %02x %02x %02x %02x, not the GGUF magic "
                   "'GGUF': it is not a GGUF model file", g->base[0], g->base[1], g->base[2], g->base[3]);
    }
  r.pos = 4;
  if ((st = read_u32 (rp, &g->version, "the format version")) != TSR_OK)
    return st;
  if (g->version == 0x01000000u || g->version == 0x02000000u || g->version == 0x03000000u)
    return fail (rp, 4, "this is a big-endian GGUF file; Tessera reads little-endian ones: "
                 "convert the model again on a little-endian machine");
  if (g->version == 1)
    return fail (rp, 4, "this is a GGUF version 1 file (the 2023 draft format), which Tessera does "
                 "not read: convert the model again with a current tool");
  if (g->version != 2 && g->version != 3)
    return fail (rp, 4, "GGUF version %u is not one Tessera reads (it reads versions 2 and 3)%s",
                 g->version, g->version > 3 ? ": a newer Tessera may read it" : DAMAGED);

  if ((st = read_u64 (rp, &n_tensors, "the tensor count")) != TSR_OK ||
      (st = read_u64 (rp, &n_kv, "the metadata count")) != TSR_OK)
    return st;
  if (n_kv > (g->size - r.pos) / KV_MIN_BYTES)
    return fail (rp, 16, "the header claims %llu metadata entries, more than the %llu bytes "
                 "after it can hold" DAMAGED, (unsigned long long) n_kv,
                 (unsigned long long) (g->size - r.pos));
  if (n_tensors > (g->size - r.pos) / TENSOR_MIN_BYTES || n_tensors > UINT32_MAX - 1)
    return fail (rp, 8, "the header claims %llu tensors, more than the %llu bytes after it can hold"
                 DAMAGED, (unsigned long long) n_tensors, (unsigned long long) (g->size - r.pos));

  g->n_kv = (size_t) n_kv;
  g->kv = calloc (g->n_kv ? g->n_kv : 1, sizeof *g->kv);
  g->kv_keys = calloc (g->n_kv ? g->n_kv : 1, sizeof *g->kv_keys);
  if (g->kv == NULL || g->kv_keys == NULL || !index_init (&g->kv_index, g->n_kv))
    return tsr_error_set (err, TSR_ENOMEM, "out of memory reading %s", g->path);

  g->alignment = TSR_GGUF_DEFAULT_ALIGNMENT;
  for (size_t i = 0; i < g->n_kv; i++)
    {
      if ((st = read_kv (rp, i)) != TSR_OK)
        return st;
      long dup = index_insert (&g->kv_index, (const char *const *) g->kv_keys, i);
      if (dup >= 0)
        return fail (rp, g->kv[i].offset, "metadata key '%s' appears twice (first at byte %llu)" DAMAGED,
                     g->kv[i].key, (unsigned long long) g->kv[dup].offset);
      if (strcmp (g->kv[i].key, "general.alignment") == 0)
        {
          int neg;
          uint64_t a;
          if (g->kv[i].type == TSR_GGUF_ARRAY || !kv_integer (&g->kv[i], 0, &neg, &a))
            return fail (rp, g->kv[i].offset, "general.alignment is a %s, not an integer" DAMAGED,
                         tsr_gguf_type_name (g->kv[i].type));
          if (neg || a > UINT32_MAX || !is_pow2 (a))
            return fail (rp, g->kv[i].offset, "general.alignment is %s%llu; it must be a power of "
                         "two (32 unless stated)" DAMAGED, neg ? "-" : "", (unsigned long long) a);
          g->alignment = (uint32_t) a;
        }
    }

  /* Re-check the tensor count against what the metadata left. */
  if (n_tensors > (g->size - r.pos) / TENSOR_MIN_BYTES)
    return fail (rp, 8, "the header claims %llu tensors, more than the %llu bytes after the "
                 "metadata can hold" DAMAGED, (unsigned long long) n_tensors,
                 (unsigned long long) (g->size - r.pos));
  g->n_tensors = (size_t) n_tensors;
  g->tensors = calloc (g->n_tensors ? g->n_tensors : 1, sizeof *g->tensors);
  g->tensor_names = calloc (g->n_tensors ? g->n_tensors : 1, sizeof *g->tensor_names);
  if (g->tensors == NULL || g->tensor_names == NULL || !index_init (&g->tensor_index, g->n_tensors))
    return tsr_error_set (err, TSR_ENOMEM, "out of memory reading %s", g->path);

  uint64_t *info_at = calloc (g->n_tensors ? g->n_tensors : 1, sizeof *info_at);
  Extent *ext = calloc (g->n_tensors ? g->n_tensors : 1, sizeof *ext);
  if (info_at == NULL || ext == NULL)
    {
      free (info_at);
      free (ext);
      return tsr_error_set (err, TSR_ENOMEM, "out of memory reading %s", g->path);
    }

  st = TSR_OK;
  for (size_t i = 0; i < g->n_tensors && st == TSR_OK; i++)
    {
      info_at[i] = r.pos;
      st = read_tensor_info (rp, i);
      if (st == TSR_OK)
        {
          long dup = index_insert (&g->tensor_index, (const char *const *) g->tensor_names, i);
          if (dup >= 0)
            st = fail (rp, info_at[i], "tensor name '%s' appears twice (first at byte %llu)" DAMAGED,
                       g->tensor_names[i], (unsigned long long) info_at[dup]);
        }
    }

  if (st == TSR_OK && !align_u64 (r.pos, g->alignment, &g->data_offset))
    st = fail (rp, r.pos, "the data section cannot start after byte %llu" DAMAGED,
               (unsigned long long) r.pos);

  for (size_t i = 0; i < g->n_tensors && st == TSR_OK; i++)
    {
      TsrGgufTensor *t = &g->tensors[i];
      uint64_t abs, end;
      if (!add_u64 (g->data_offset, t->offset, &abs) || !add_u64 (abs, t->size, &end) || end > g->size)
        {
          st = fail (rp, info_at[i], "tensor '%s' (%s, %llu bytes) has its data at byte %llu of the "
                     "data section, which starts at byte %llu, but the file ends at byte %llu; it is "
                     "truncated or damaged: download or convert it again", t->name,
                     tsr_dtype_name (t->type), (unsigned long long) t->size,
                     (unsigned long long) t->offset, (unsigned long long) g->data_offset,
                     (unsigned long long) g->size);
          break;
        }
      t->offset = abs;
      t->data = g->base + abs;
      ext[i] = (Extent) { abs, t->size, i };
    }

  if (st == TSR_OK && g->n_tensors > 1)
    {
      /* Sorted by offset, a tensor overlaps an earlier one exactly when it
       * starts before the furthest end seen so far. Empty tensors occupy
       * nothing and may sit anywhere. */
      uint64_t max_end = 0;
      size_t max_k = 0;
      qsort (ext, g->n_tensors, sizeof *ext, extent_cmp);
      for (size_t k = 0; k < g->n_tensors; k++)
        {
          if (ext[k].size == 0)
            continue;
          if (max_end > ext[k].offset)
            {
              const TsrGgufTensor *a = &g->tensors[ext[max_k].index], *b = &g->tensors[ext[k].index];
              at = info_at[ext[k].index];
              st = fail (rp, at, "the data of tensors '%s' (bytes %llu…%llu) and '%s' (from byte %llu) "
                         "overlap" DAMAGED, a->name, (unsigned long long) a->offset,
                         (unsigned long long) (a->offset + a->size - 1), b->name,
                         (unsigned long long) b->offset);
              break;
            }
          if (ext[k].offset + ext[k].size > max_end)
            {
              max_end = ext[k].offset + ext[k].size;
              max_k = k;
            }
        }
    }

  free (info_at);
  free (ext);
  return st;
}

static void
free_contents (TsrGguf *g)
{
  for (size_t i = 0; g->kv_keys && i < g->n_kv; i++)
    free (g->kv_keys[i]);
  for (size_t i = 0; g->kv && i < g->n_kv; i++)
    free ((void *) g->kv[i].strs);
  for (size_t i = 0; g->tensor_names && i < g->n_tensors; i++)
    free (g->tensor_names[i]);
  free (g->kv);
  free (g->kv_keys);
  free (g->kv_index.slots);
  free (g->tensors);
  free (g->tensor_names);
  free (g->tensor_index.slots);
  free (g->path);
}

void
tsr_gguf_close (TsrGguf *g)
{
  if (g == NULL)
    return;
  if (g->map)
    munmap (g->map, g->map_size);
  free_contents (g);
  free (g);
}

static TsrStatus
open_common (TsrGguf *g, TsrGguf **out, TsrError *err)
{
  TsrStatus st = parse (g, err);
  if (st != TSR_OK)
    {
      tsr_gguf_close (g);
      return st;
    }
  *out = g;
  return TSR_OK;
}

TsrStatus
tsr_gguf_open_memory (const void *data, size_t size, TsrGguf **out, TsrError *err)
{
  TsrGguf *g;
  if (out == NULL)
    return tsr_error_set (err, TSR_EINVAL, "tsr_gguf_open_memory: out is NULL");
  *out = NULL;
  if (data == NULL && size != 0)
    return tsr_error_set (err, TSR_EINVAL, "tsr_gguf_open_memory: data is NULL");
  g = calloc (1, sizeof *g);
  if (g == NULL || (g->path = strdup ("(memory)")) == NULL)
    {
      free (g);
      return tsr_error_set (err, TSR_ENOMEM, "out of memory opening a GGUF buffer");
    }
  g->base = data ? data : (const unsigned char *) "";
  g->size = size;
  return open_common (g, out, err);
}

TsrStatus
tsr_gguf_open (const char *path, TsrGguf **out, TsrError *err)
{
  struct stat sb;
  TsrGguf *g;
  void *map;
  int fd;

  if (out == NULL || path == NULL)
    return tsr_error_set (err, TSR_EINVAL, "tsr_gguf_open: path or out is NULL");
  *out = NULL;

  fd = open (path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return tsr_error_set (err, TSR_EIO, "cannot open %s: %s", path, strerror (errno));
  if (fstat (fd, &sb) != 0)
    {
      int e = errno;
      close (fd);
      return tsr_error_set (err, TSR_EIO, "cannot read %s: %s", path, strerror (e));
    }
  if (!S_ISREG (sb.st_mode))
    {
      close (fd);
      return tsr_error_set (err, TSR_EIO, "%s is not a regular file: give the path of a .gguf model file", path);
    }
  if (sb.st_size == 0)
    {
      close (fd);
      return tsr_error_set (err, TSR_EFORMAT, "%s is empty (0 bytes), not a GGUF model file; "
                            "download or convert it again", path);
    }
  if ((uint64_t) sb.st_size > SIZE_MAX)
    {
      close (fd);
      return tsr_error_set (err, TSR_ETOOLARGE, "%s is too large to map on this machine", path);
    }
  /* Read-only and private: the weights are shared with the page cache and
   * nothing in the process can write through them. */
  map = mmap (NULL, (size_t) sb.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
  if (map == MAP_FAILED)
    {
      int e = errno;
      close (fd);
      return tsr_error_set (err, e == ENOMEM ? TSR_ENOMEM : TSR_EIO, "cannot map %s into memory: %s",
                            path, strerror (e));
    }
  close (fd);

  g = calloc (1, sizeof *g);
  if (g == NULL || (g->path = strdup (path)) == NULL)
    {
      free (g);
      munmap (map, (size_t) sb.st_size);
      return tsr_error_set (err, TSR_ENOMEM, "out of memory opening %s", path);
    }
  g->map = map;
  g->map_size = (size_t) sb.st_size;
  g->base = map;
  g->size = (uint64_t) sb.st_size;
  return open_common (g, out, err);
}

/* ---- Accessors --------------------------------------------------------- */

uint32_t tsr_gguf_version (const TsrGguf *g)     { return g->version; }
uint32_t tsr_gguf_alignment (const TsrGguf *g)   { return g->alignment; }
uint64_t tsr_gguf_size (const TsrGguf *g)        { return g->size; }
uint64_t tsr_gguf_data_offset (const TsrGguf *g) { return g->data_offset; }
size_t   tsr_gguf_n_kv (const TsrGguf *g)        { return g->n_kv; }
size_t   tsr_gguf_n_tensors (const TsrGguf *g)   { return g->n_tensors; }
const char *tsr_gguf_path (const TsrGguf *g)     { return g->path; }

const TsrGgufKV *
tsr_gguf_kv (const TsrGguf *g, size_t i)
{
  return i < g->n_kv ? &g->kv[i] : NULL;
}

const TsrGgufTensor *
tsr_gguf_tensor (const TsrGguf *g, size_t i)
{
  return i < g->n_tensors ? &g->tensors[i] : NULL;
}

static long
index_find (const NameIndex *ix, char *const *names, const char *name)
{
  size_t h;
  if (ix->slots == NULL || name == NULL)
    return -1;
  h = (size_t) hash_bytes (name, strlen (name)) & ix->mask;
  while (ix->slots[h] != 0)
    {
      size_t j = ix->slots[h] - 1;
      if (strcmp (names[j], name) == 0)
        return (long) j;
      h = (h + 1) & ix->mask;
    }
  return -1;
}

const TsrGgufKV *
tsr_gguf_find_kv (const TsrGguf *g, const char *key)
{
  long i = index_find (&g->kv_index, g->kv_keys, key);
  return i < 0 ? NULL : &g->kv[i];
}

const TsrGgufTensor *
tsr_gguf_find_tensor (const TsrGguf *g, const char *name)
{
  long i = index_find (&g->tensor_index, g->tensor_names, name);
  return i < 0 ? NULL : &g->tensors[i];
}

int
tsr_gguf_str_eq (TsrGgufStr s, const char *text)
{
  size_t n = strlen (text);
  return s.len == n && memcmp (s.ptr, text, n) == 0;
}

/* ---- Typed getters ----------------------------------------------------- */

static const TsrGgufKV *
getter_kv (const TsrGguf *g, const char *key, int want_array, TsrError *err)
{
  const TsrGgufKV *kv = tsr_gguf_find_kv (g, key);
  if (kv == NULL)
    {
      tsr_error_set (err, TSR_EFORMAT, "%s has no metadata key '%s'; it was not made for Tessera "
                     "or its converter is too old: convert the model again", g->path, key);
      return NULL;
    }
  if (want_array != (kv->type == TSR_GGUF_ARRAY))
    {
      tsr_error_set (err, TSR_EFORMAT, "%s: byte %llu: metadata '%s' is %s%s where Tessera expects %s",
                     g->path, (unsigned long long) kv->offset, key,
                     kv->type == TSR_GGUF_ARRAY ? "an array of " : "a ",
                     tsr_gguf_type_name (kv->type == TSR_GGUF_ARRAY ? kv->array_type : kv->type),
                     want_array ? "an array" : "a single value");
      return NULL;
    }
  return kv;
}

static TsrStatus
wrong_type (const TsrGguf *g, const TsrGgufKV *kv, const char *wanted, TsrError *err)
{
  TsrGgufType t = kv->type == TSR_GGUF_ARRAY ? kv->array_type : kv->type;
  return tsr_error_set (err, TSR_EFORMAT, "%s: byte %llu: metadata '%s' holds %s where Tessera "
                        "expects %s", g->path, (unsigned long long) kv->offset, kv->key,
                        tsr_gguf_type_name (t), wanted);
}

static TsrStatus
get_int (const TsrGguf *g, const char *key, int64_t min, uint64_t max, int *neg, uint64_t *mag,
         const char *wanted, TsrError *err)
{
  const TsrGgufKV *kv = getter_kv (g, key, 0, err);
  if (kv == NULL)
    return TSR_EFORMAT;
  if (!kv_integer (kv, 0, neg, mag))
    return wrong_type (g, kv, wanted, err);
  if ((*neg && (min >= 0 || *mag > (uint64_t) 0 - (uint64_t) min)) || (!*neg && *mag > max))
    return tsr_error_set (err, TSR_EFORMAT, "%s: byte %llu: metadata '%s' is %s%llu, out of range "
                          "for %s", g->path, (unsigned long long) kv->offset, key, *neg ? "-" : "",
                          (unsigned long long) *mag, wanted);
  return TSR_OK;
}

TsrStatus
tsr_gguf_get_u32 (const TsrGguf *g, const char *key, uint32_t *out, TsrError *err)
{
  int neg;
  uint64_t mag;
  TsrStatus st = get_int (g, key, 0, UINT32_MAX, &neg, &mag, "an unsigned 32-bit integer", err);
  if (st == TSR_OK)
    *out = (uint32_t) mag;
  return st;
}

TsrStatus
tsr_gguf_get_i32 (const TsrGguf *g, const char *key, int32_t *out, TsrError *err)
{
  int neg;
  uint64_t mag;
  TsrStatus st = get_int (g, key, INT32_MIN, INT32_MAX, &neg, &mag, "a 32-bit integer", err);
  if (st == TSR_OK)
    *out = neg ? (int32_t) (-(int64_t) mag) : (int32_t) mag;
  return st;
}

TsrStatus
tsr_gguf_get_u64 (const TsrGguf *g, const char *key, uint64_t *out, TsrError *err)
{
  int neg;
  uint64_t mag;
  TsrStatus st = get_int (g, key, 0, UINT64_MAX, &neg, &mag, "an unsigned integer", err);
  if (st == TSR_OK)
    *out = mag;
  return st;
}

TsrStatus
tsr_gguf_get_i64 (const TsrGguf *g, const char *key, int64_t *out, TsrError *err)
{
  int neg;
  uint64_t mag;
  TsrStatus st = get_int (g, key, INT64_MIN, INT64_MAX, &neg, &mag, "a 64-bit integer", err);
  if (st == TSR_OK)
    *out = neg ? (int64_t) ((uint64_t) 0 - mag) : (int64_t) mag;
  return st;
}

TsrStatus
tsr_gguf_get_f32 (const TsrGguf *g, const char *key, float *out, TsrError *err)
{
  const TsrGgufKV *kv = getter_kv (g, key, 0, err);
  double v;
  if (kv == NULL)
    return TSR_EFORMAT;
  if (!kv_float (kv, 0, &v))
    return wrong_type (g, kv, "a floating-point number", err);
  *out = (float) v;
  return TSR_OK;
}

TsrStatus
tsr_gguf_get_bool (const TsrGguf *g, const char *key, int *out, TsrError *err)
{
  const TsrGgufKV *kv = getter_kv (g, key, 0, err);
  if (kv == NULL)
    return TSR_EFORMAT;
  if (kv->type != TSR_GGUF_BOOL)
    return wrong_type (g, kv, "a bool", err);
  *out = *(const unsigned char *) kv->data != 0;
  return TSR_OK;
}

TsrStatus
tsr_gguf_get_str (const TsrGguf *g, const char *key, TsrGgufStr *out, TsrError *err)
{
  const TsrGgufKV *kv = getter_kv (g, key, 0, err);
  if (kv == NULL)
    return TSR_EFORMAT;
  if (kv->type != TSR_GGUF_STRING)
    return wrong_type (g, kv, "a string", err);
  *out = kv->strs[0];
  return TSR_OK;
}

TsrStatus
tsr_gguf_get_arr_str (const TsrGguf *g, const char *key, const TsrGgufStr **strs, uint64_t *n,
                      TsrError *err)
{
  const TsrGgufKV *kv = getter_kv (g, key, 1, err);
  if (kv == NULL)
    return TSR_EFORMAT;
  if (kv->array_type != TSR_GGUF_STRING)
    return wrong_type (g, kv, "strings", err);
  *strs = kv->strs;
  *n = kv->n;
  return TSR_OK;
}

static TsrStatus
check_len (const TsrGguf *g, const TsrGgufKV *kv, uint64_t n, TsrError *err)
{
  if (kv->n != n)
    return tsr_error_set (err, TSR_EFORMAT, "%s: byte %llu: array '%s' has %llu values where "
                          "%llu are expected", g->path, (unsigned long long) kv->offset, kv->key,
                          (unsigned long long) kv->n, (unsigned long long) n);
  return TSR_OK;
}

TsrStatus
tsr_gguf_get_arr_f32 (const TsrGguf *g, const char *key, float *out, uint64_t n, TsrError *err)
{
  const TsrGgufKV *kv = getter_kv (g, key, 1, err);
  TsrStatus st;
  if (kv == NULL)
    return TSR_EFORMAT;
  if (kv->array_type != TSR_GGUF_F32 && kv->array_type != TSR_GGUF_F64)
    return wrong_type (g, kv, "floating-point numbers", err);
  if ((st = check_len (g, kv, n, err)) != TSR_OK)
    return st;
  for (uint64_t k = 0; k < n; k++)
    {
      double v = 0;
      kv_float (kv, k, &v);
      out[k] = (float) v;
    }
  return TSR_OK;
}

TsrStatus
tsr_gguf_get_arr_i32 (const TsrGguf *g, const char *key, int32_t *out, uint64_t n, TsrError *err)
{
  const TsrGgufKV *kv = getter_kv (g, key, 1, err);
  TsrStatus st;
  if (kv == NULL)
    return TSR_EFORMAT;
  if (!is_integer_type (kv->array_type))
    return wrong_type (g, kv, "integers", err);
  if ((st = check_len (g, kv, n, err)) != TSR_OK)
    return st;
  for (uint64_t k = 0; k < n; k++)
    {
      int neg;
      uint64_t mag;
      kv_integer (kv, k, &neg, &mag);
      if ((neg && mag > (uint64_t) INT32_MAX + 1) || (!neg && mag > INT32_MAX))
        return tsr_error_set (err, TSR_EFORMAT, "%s: byte %llu: element %llu of array '%s' is "
                              "%s%llu, out of range for a 32-bit integer", g->path,
                              (unsigned long long) kv->offset, (unsigned long long) k, kv->key,
                              neg ? "-" : "", (unsigned long long) mag);
      out[k] = neg ? (int32_t) (-(int64_t) mag) : (int32_t) mag;
    }
  return TSR_OK;
}

/* ==== The writer ======================================================== */

#define WRITE_BUFFER (1u << 20)

typedef struct {
  char          *key;
  unsigned char *blob;      /* the value type and value, as in the file */
  size_t         blob_len;
} WKV;

typedef struct {
  char     *name;
  TsrDType  type;
  uint32_t  n_dims;
  int64_t   ne[TSR_GGUF_MAX_DIMS];
  uint64_t  size;
  uint64_t  offset;         /* relative to the data section, set by open */
} WTensor;

enum { W_COLLECTING, W_WRITING, W_FINISHED, W_FAILED };

struct TsrGgufWriter {
  WKV           *kv;
  size_t         n_kv, cap_kv;
  WTensor       *t;
  size_t         n_t, cap_t;
  uint32_t       alignment;
  int            state;

  int            fd;
  char          *path;
  char          *part_path;
  unsigned char *buf;
  size_t         buf_len;
  uint64_t       pos;        /* bytes handed to the file, buffered or not */
  uint64_t       data_start;
  size_t         cur;        /* the tensor being written */
  uint64_t       cur_done;
};

TsrStatus
tsr_gguf_writer_new (TsrGgufWriter **out, TsrError *err)
{
  TsrGgufWriter *w;
  if (out == NULL)
    return tsr_error_set (err, TSR_EINVAL, "tsr_gguf_writer_new: out is NULL");
  w = calloc (1, sizeof *w);
  *out = w;
  if (w == NULL)
    return tsr_error_set (err, TSR_ENOMEM, "out of memory creating a GGUF writer");
  w->alignment = TSR_GGUF_DEFAULT_ALIGNMENT;
  w->fd = -1;
  return TSR_OK;
}

static void
writer_discard_file (TsrGgufWriter *w)
{
  if (w->fd >= 0)
    {
      close (w->fd);
      w->fd = -1;
    }
  if (w->part_path)
    {
      unlink (w->part_path);
      free (w->part_path);
      w->part_path = NULL;
    }
}

void
tsr_gguf_writer_free (TsrGgufWriter *w)
{
  if (w == NULL)
    return;
  if (w->state != W_FINISHED)
    writer_discard_file (w);
  for (size_t i = 0; i < w->n_kv; i++)
    {
      free (w->kv[i].key);
      free (w->kv[i].blob);
    }
  for (size_t i = 0; i < w->n_t; i++)
    free (w->t[i].name);
  free (w->kv);
  free (w->t);
  free (w->buf);
  free (w->path);
  free (w->part_path);
  free (w);
}

static TsrStatus
writer_collecting (TsrGgufWriter *w, const char *what, TsrError *err)
{
  if (w == NULL)
    return tsr_error_set (err, TSR_EINVAL, "%s: the writer is NULL", what);
  if (w->state != W_COLLECTING)
    return tsr_error_set (err, TSR_EINVAL, "%s: metadata and tensors must all be added before "
                          "tsr_gguf_writer_open", what);
  return TSR_OK;
}

static TsrStatus
check_key (const char *key, TsrError *err)
{
  size_t n = key ? strlen (key) : 0;
  if (n == 0 || n > KEY_MAX)
    return tsr_error_set (err, TSR_EINVAL, "a GGUF metadata key must be 1 to %u bytes long", KEY_MAX);
  return TSR_OK;
}

/* Stores (or replaces) key with an already serialised type+value blob;
 * takes ownership of blob. */
static TsrStatus
put_kv (TsrGgufWriter *w, const char *key, unsigned char *blob, size_t blob_len, TsrError *err)
{
  for (size_t i = 0; i < w->n_kv; i++)
    if (strcmp (w->kv[i].key, key) == 0)
      {
        free (w->kv[i].blob);
        w->kv[i].blob = blob;
        w->kv[i].blob_len = blob_len;
        return TSR_OK;
      }
  if (w->n_kv == w->cap_kv)
    {
      size_t cap = w->cap_kv ? 2 * w->cap_kv : 32;
      WKV *kv = realloc (w->kv, cap * sizeof *kv);
      if (kv == NULL)
        {
          free (blob);
          return tsr_error_set (err, TSR_ENOMEM, "out of memory adding metadata '%s'", key);
        }
      w->kv = kv;
      w->cap_kv = cap;
    }
  char *k = strdup (key);
  if (k == NULL)
    {
      free (blob);
      return tsr_error_set (err, TSR_ENOMEM, "out of memory adding metadata '%s'", key);
    }
  w->kv[w->n_kv++] = (WKV) { k, blob, blob_len };
  return TSR_OK;
}

static void
put32 (unsigned char *p, uint32_t v)
{
  memcpy (p, &v, 4);
}

static void
put64 (unsigned char *p, uint64_t v)
{
  memcpy (p, &v, 8);
}

TsrStatus
tsr_gguf_writer_set (TsrGgufWriter *w, const char *key, TsrGgufType type, const void *value,
                     TsrError *err)
{
  TsrStatus st;
  uint64_t n = value_size (type);
  unsigned char *blob;

  if ((st = writer_collecting (w, "tsr_gguf_writer_set", err)) != TSR_OK ||
      (st = check_key (key, err)) != TSR_OK)
    return st;
  if (n == 0 || value == NULL)
    return tsr_error_set (err, TSR_EINVAL, "tsr_gguf_writer_set '%s': type %s is not a single "
                          "number or bool (use _set_str or _set_arr)", key, tsr_gguf_type_name (type));
  if (type == TSR_GGUF_BOOL && *(const uint8_t *) value > 1)
    return tsr_error_set (err, TSR_EINVAL, "tsr_gguf_writer_set '%s': a bool is 0 or 1", key);
  if (strcmp (key, "general.alignment") == 0)
    {
      uint32_t a;
      if (type != TSR_GGUF_U32)
        return tsr_error_set (err, TSR_EINVAL, "general.alignment is a u32");
      memcpy (&a, value, 4);
      if (!is_pow2 (a))
        return tsr_error_set (err, TSR_EINVAL, "general.alignment must be a power of two, not %u", a);
      w->alignment = a;
    }
  blob = malloc (4 + n);
  if (blob == NULL)
    return tsr_error_set (err, TSR_ENOMEM, "out of memory adding metadata '%s'", key);
  put32 (blob, (uint32_t) type);
  memcpy (blob + 4, value, n);
  return put_kv (w, key, blob, 4 + n, err);
}

TsrStatus
tsr_gguf_writer_set_u32 (TsrGgufWriter *w, const char *key, uint32_t v, TsrError *err)
{
  return tsr_gguf_writer_set (w, key, TSR_GGUF_U32, &v, err);
}

TsrStatus
tsr_gguf_writer_set_i32 (TsrGgufWriter *w, const char *key, int32_t v, TsrError *err)
{
  return tsr_gguf_writer_set (w, key, TSR_GGUF_I32, &v, err);
}

TsrStatus
tsr_gguf_writer_set_f32 (TsrGgufWriter *w, const char *key, float v, TsrError *err)
{
  return tsr_gguf_writer_set (w, key, TSR_GGUF_F32, &v, err);
}

TsrStatus
tsr_gguf_writer_set_bool (TsrGgufWriter *w, const char *key, int v, TsrError *err)
{
  uint8_t b = v ? 1 : 0;
  return tsr_gguf_writer_set (w, key, TSR_GGUF_BOOL, &b, err);
}

TsrStatus
tsr_gguf_writer_set_str (TsrGgufWriter *w, const char *key, const char *value, TsrError *err)
{
  TsrStatus st;
  size_t n;
  unsigned char *blob;

  if ((st = writer_collecting (w, "tsr_gguf_writer_set_str", err)) != TSR_OK ||
      (st = check_key (key, err)) != TSR_OK)
    return st;
  if (value == NULL)
    return tsr_error_set (err, TSR_EINVAL, "tsr_gguf_writer_set_str '%s': value is NULL", key);
  n = strlen (value);
  blob = malloc (4 + 8 + n);
  if (blob == NULL)
    return tsr_error_set (err, TSR_ENOMEM, "out of memory adding metadata '%s'", key);
  put32 (blob, TSR_GGUF_STRING);
  put64 (blob + 4, n);
  memcpy (blob + 12, value, n);
  return put_kv (w, key, blob, 12 + n, err);
}

TsrStatus
tsr_gguf_writer_set_arr (TsrGgufWriter *w, const char *key, TsrGgufType elem, const void *values,
                         uint64_t n, TsrError *err)
{
  TsrStatus st;
  uint64_t esz = value_size (elem), bytes;
  unsigned char *blob;

  if ((st = writer_collecting (w, "tsr_gguf_writer_set_arr", err)) != TSR_OK ||
      (st = check_key (key, err)) != TSR_OK)
    return st;
  if (esz == 0)
    return tsr_error_set (err, TSR_EINVAL, "tsr_gguf_writer_set_arr '%s': elements of type %s are "
                          "not numbers or bools (use _set_arr_str for strings)", key,
                          tsr_gguf_type_name (elem));
  if (!mul_u64 (n, esz, &bytes) || bytes > SIZE_MAX - 16 || (n > 0 && values == NULL))
    return tsr_error_set (err, TSR_EINVAL, "tsr_gguf_writer_set_arr '%s': bad array of %llu values",
                          key, (unsigned long long) n);
  if (elem == TSR_GGUF_BOOL)
    for (uint64_t k = 0; k < n; k++)
      if (((const uint8_t *) values)[k] > 1)
        return tsr_error_set (err, TSR_EINVAL, "tsr_gguf_writer_set_arr '%s': a bool is 0 or 1", key);
  blob = malloc (16 + (size_t) bytes);
  if (blob == NULL)
    return tsr_error_set (err, TSR_ENOMEM, "out of memory adding metadata '%s'", key);
  put32 (blob, TSR_GGUF_ARRAY);
  put32 (blob + 4, (uint32_t) elem);
  put64 (blob + 8, n);
  if (bytes)
    memcpy (blob + 16, values, (size_t) bytes);
  return put_kv (w, key, blob, 16 + (size_t) bytes, err);
}

TsrStatus
tsr_gguf_writer_set_arr_str (TsrGgufWriter *w, const char *key, const char *const *strs,
                             const size_t *lens, uint64_t n, TsrError *err)
{
  TsrStatus st;
  uint64_t bytes = 16;
  unsigned char *blob, *p;

  if ((st = writer_collecting (w, "tsr_gguf_writer_set_arr_str", err)) != TSR_OK ||
      (st = check_key (key, err)) != TSR_OK)
    return st;
  if (n > 0 && strs == NULL)
    return tsr_error_set (err, TSR_EINVAL, "tsr_gguf_writer_set_arr_str '%s': strs is NULL", key);
  for (uint64_t k = 0; k < n; k++)
    {
      size_t len;
      if (strs[k] == NULL)
        return tsr_error_set (err, TSR_EINVAL, "tsr_gguf_writer_set_arr_str '%s': string %llu is NULL",
                              key, (unsigned long long) k);
      len = lens ? lens[k] : strlen (strs[k]);
      if (!add_u64 (bytes, 8, &bytes) || !add_u64 (bytes, len, &bytes) || bytes > SIZE_MAX)
        return tsr_error_set (err, TSR_ETOOLARGE, "array '%s' is too large", key);
    }
  blob = malloc ((size_t) bytes);
  if (blob == NULL)
    return tsr_error_set (err, TSR_ENOMEM, "out of memory adding metadata '%s'", key);
  put32 (blob, TSR_GGUF_ARRAY);
  put32 (blob + 4, TSR_GGUF_STRING);
  put64 (blob + 8, n);
  p = blob + 16;
  for (uint64_t k = 0; k < n; k++)
    {
      size_t len = lens ? lens[k] : strlen (strs[k]);
      put64 (p, len);
      memcpy (p + 8, strs[k], len);
      p += 8 + len;
    }
  return put_kv (w, key, blob, (size_t) bytes, err);
}

TsrStatus
tsr_gguf_writer_add_tensor (TsrGgufWriter *w, const char *name, TsrDType type, uint32_t n_dims,
                            const int64_t *ne, TsrError *err)
{
  TsrStatus st;
  uint64_t n = 1, size;
  WTensor t;

  if ((st = writer_collecting (w, "tsr_gguf_writer_add_tensor", err)) != TSR_OK)
    return st;
  if (name == NULL || name[0] == '\0' || strlen (name) > TSR_GGUF_NAME_MAX)
    return tsr_error_set (err, TSR_EINVAL, "tensor name '%s' must be 1 to %d bytes long",
                          name ? name : "(null)", TSR_GGUF_NAME_MAX);
  if (!tsr_dtype_is_valid ((int) type))
    return tsr_error_set (err, TSR_EINVAL, "tensor '%s': element type %d is not one Tessera writes",
                          name, (int) type);
  if (n_dims > TSR_GGUF_MAX_DIMS || (n_dims > 0 && ne == NULL))
    return tsr_error_set (err, TSR_EINVAL, "tensor '%s': %u dimensions (at most %d)", name, n_dims,
                          TSR_GGUF_MAX_DIMS);
  for (size_t i = 0; i < w->n_t; i++)
    if (strcmp (w->t[i].name, name) == 0)
      return tsr_error_set (err, TSR_EINVAL, "tensor '%s' was added twice", name);

  memset (&t, 0, sizeof t);
  for (int d = 0; d < TSR_GGUF_MAX_DIMS; d++)
    t.ne[d] = 1;
  for (uint32_t d = 0; d < n_dims; d++)
    {
      if (ne[d] < 0 || !mul_u64 (n, (uint64_t) ne[d], &n) || n > (uint64_t) INT64_MAX)
        return tsr_error_set (err, TSR_EINVAL, "tensor '%s': dimension %u (%lld) is negative or "
                              "the element count overflows", name, d, (long long) ne[d]);
      t.ne[d] = ne[d];
    }
  if ((uint64_t) t.ne[0] % tsr_dtype_block_values (type) != 0)
    return tsr_error_set (err, TSR_EINVAL, "tensor '%s': rows of %lld values cannot be %s, whose "
                          "blocks hold %zu", name, (long long) t.ne[0], tsr_dtype_name (type),
                          tsr_dtype_block_values (type));
  if ((st = tsr_dtype_row_bytes (type, n, &size, err)) != TSR_OK)
    return st;

  if (w->n_t == w->cap_t)
    {
      size_t cap = w->cap_t ? 2 * w->cap_t : 64;
      WTensor *nt = realloc (w->t, cap * sizeof *nt);
      if (nt == NULL)
        return tsr_error_set (err, TSR_ENOMEM, "out of memory adding tensor '%s'", name);
      w->t = nt;
      w->cap_t = cap;
    }
  t.name = strdup (name);
  if (t.name == NULL)
    return tsr_error_set (err, TSR_ENOMEM, "out of memory adding tensor '%s'", name);
  t.type = type;
  t.n_dims = n_dims;
  t.size = size;
  w->t[w->n_t++] = t;
  return TSR_OK;
}

static TsrStatus
writer_io_error (TsrGgufWriter *w, int e, const char *doing, TsrError *err)
{
  const char *hint = e == ENOSPC ? ": the disk is full; free some space and convert again"
                   : e == EFBIG  ? ": the file is too large for this file system or for the process's "
                                   "file size limit"
                   : e == EDQUOT ? ": the disk quota is used up" : "";
  w->state = W_FAILED;
  writer_discard_file (w);
  return tsr_error_set (err, TSR_EIO, "cannot %s %s: %s%s (the partial file was removed)",
                        doing, w->path ? w->path : "the model file", strerror (e), hint);
}

static TsrStatus
write_all (TsrGgufWriter *w, const unsigned char *p, size_t n, TsrError *err)
{
  while (n > 0)
    {
      ssize_t k = write (w->fd, p, n);
      if (k < 0)
        {
          if (errno == EINTR)
            continue;
          return writer_io_error (w, errno, "write", err);
        }
      if (k == 0)
        return writer_io_error (w, EIO, "write", err);
      p += k;
      n -= (size_t) k;
    }
  return TSR_OK;
}

static TsrStatus
flush (TsrGgufWriter *w, TsrError *err)
{
  TsrStatus st = write_all (w, w->buf, w->buf_len, err);
  w->buf_len = 0;
  return st;
}

static TsrStatus
emit (TsrGgufWriter *w, const void *data, size_t n, TsrError *err)
{
  const unsigned char *p = data;
  TsrStatus st;

  w->pos += n;
  if (w->buf_len + n <= WRITE_BUFFER)
    {
      memcpy (w->buf + w->buf_len, p, n);
      w->buf_len += n;
      return TSR_OK;
    }
  if ((st = flush (w, err)) != TSR_OK)
    return st;
  if (n >= WRITE_BUFFER)
    return write_all (w, p, n, err);
  memcpy (w->buf, p, n);
  w->buf_len = n;
  return TSR_OK;
}

static TsrStatus
emit_zeros (TsrGgufWriter *w, uint64_t n, TsrError *err)
{
  static const unsigned char zeros[256];
  while (n > 0)
    {
      size_t k = n < sizeof zeros ? (size_t) n : sizeof zeros;
      TsrStatus st = emit (w, zeros, k, err);
      if (st != TSR_OK)
        return st;
      n -= k;
    }
  return TSR_OK;
}

static TsrStatus
emit_u32 (TsrGgufWriter *w, uint32_t v, TsrError *err)
{
  unsigned char b[4];
  put32 (b, v);
  return emit (w, b, 4, err);
}

static TsrStatus
emit_u64 (TsrGgufWriter *w, uint64_t v, TsrError *err)
{
  unsigned char b[8];
  put64 (b, v);
  return emit (w, b, 8, err);
}

static TsrStatus
emit_str (TsrGgufWriter *w, const char *s, TsrError *err)
{
  size_t n = strlen (s);
  TsrStatus st = emit_u64 (w, n, err);
  return st != TSR_OK ? st : emit (w, s, n, err);
}

/* Skips finished (and empty) tensors so w->cur names the next one due. */
static void
settle (TsrGgufWriter *w)
{
  while (w->cur < w->n_t && w->cur_done == w->t[w->cur].size)
    {
      w->cur++;
      w->cur_done = 0;
    }
}

TsrStatus
tsr_gguf_writer_open (TsrGgufWriter *w, const char *path, TsrError *err)
{
  TsrStatus st;
  uint64_t data_size = 0;

  if ((st = writer_collecting (w, "tsr_gguf_writer_open", err)) != TSR_OK)
    return st;
  if (path == NULL || path[0] == '\0')
    return tsr_error_set (err, TSR_EINVAL, "tsr_gguf_writer_open: no path");

  /* Offsets are laid out now, with the final alignment. */
  for (size_t i = 0; i < w->n_t; i++)
    {
      uint64_t off;
      if (!align_u64 (data_size, w->alignment, &off) || !add_u64 (off, w->t[i].size, &data_size))
        return tsr_error_set (err, TSR_ETOOLARGE, "the tensors add up to more than 2^64 bytes");
      w->t[i].offset = off;
    }

  w->path = strdup (path);
  w->part_path = malloc (strlen (path) + sizeof ".part");
  w->buf = malloc (WRITE_BUFFER);
  if (w->path == NULL || w->part_path == NULL || w->buf == NULL)
    {
      w->state = W_FAILED;
      free (w->part_path);
      w->part_path = NULL;
      return tsr_error_set (err, TSR_ENOMEM, "out of memory opening %s", path);
    }
  /* Written beside the target and renamed at the end, so a failed or
   * interrupted conversion never leaves a truncated file under the real
   * name, nor destroys a good file already there. */
  strcpy (w->part_path, path);
  strcat (w->part_path, ".part");
  w->fd = open (w->part_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (w->fd < 0)
    {
      int e = errno;
      st = tsr_error_set (err, TSR_EIO, "cannot create %s: %s", w->part_path, strerror (e));
      w->state = W_FAILED;
      free (w->part_path);
      w->part_path = NULL;
      return st;
    }
  w->state = W_WRITING;

  if ((st = emit (w, GGUF_MAGIC, 4, err)) != TSR_OK ||
      (st = emit_u32 (w, 3, err)) != TSR_OK ||
      (st = emit_u64 (w, w->n_t, err)) != TSR_OK ||
      (st = emit_u64 (w, w->n_kv, err)) != TSR_OK)
    return st;
  for (size_t i = 0; i < w->n_kv; i++)
    if ((st = emit_str (w, w->kv[i].key, err)) != TSR_OK ||
        (st = emit (w, w->kv[i].blob, w->kv[i].blob_len, err)) != TSR_OK)
      return st;
  for (size_t i = 0; i < w->n_t; i++)
    {
      const WTensor *t = &w->t[i];
      if ((st = emit_str (w, t->name, err)) != TSR_OK ||
          (st = emit_u32 (w, t->n_dims, err)) != TSR_OK)
        return st;
      for (uint32_t d = 0; d < t->n_dims; d++)
        if ((st = emit_u64 (w, (uint64_t) t->ne[d], err)) != TSR_OK)
          return st;
      if ((st = emit_u32 (w, (uint32_t) t->type, err)) != TSR_OK ||
          (st = emit_u64 (w, t->offset, err)) != TSR_OK)
        return st;
    }
  if (!align_u64 (w->pos, w->alignment, &w->data_start))
    return tsr_error_set (err, TSR_ETOOLARGE, "the GGUF header is too large");
  if ((st = emit_zeros (w, w->data_start - w->pos, err)) != TSR_OK)
    return st;
  w->cur = 0;
  w->cur_done = 0;
  settle (w);
  return TSR_OK;
}

static TsrStatus
writer_writing (TsrGgufWriter *w, const char *what, TsrError *err)
{
  if (w == NULL)
    return tsr_error_set (err, TSR_EINVAL, "%s: the writer is NULL", what);
  if (w->state == W_FAILED)
    return tsr_error_set (err, TSR_EIO, "%s: writing %s already failed", what,
                          w->path ? w->path : "the file");
  if (w->state != W_WRITING)
    return tsr_error_set (err, TSR_EINVAL, "%s: the writer is not open for tensor data", what);
  return TSR_OK;
}

TsrStatus
tsr_gguf_writer_append (TsrGgufWriter *w, const void *data, size_t n, TsrError *err)
{
  TsrStatus st;
  const WTensor *t;

  if ((st = writer_writing (w, "tsr_gguf_writer_append", err)) != TSR_OK)
    return st;
  if (n == 0)
    return TSR_OK;
  if (w->cur >= w->n_t)
    return tsr_error_set (err, TSR_EINVAL, "%zu bytes appended after the last tensor's data", n);
  t = &w->t[w->cur];
  if ((uint64_t) n > t->size - w->cur_done)
    return tsr_error_set (err, TSR_EINVAL, "%zu bytes appended to tensor '%s', which has only %llu "
                          "of its %llu bytes left", n, t->name,
                          (unsigned long long) (t->size - w->cur_done), (unsigned long long) t->size);
  if (data == NULL)
    return tsr_error_set (err, TSR_EINVAL, "tsr_gguf_writer_append: data is NULL");
  if (w->cur_done == 0 && (st = emit_zeros (w, w->data_start + t->offset - w->pos, err)) != TSR_OK)
    return st;
  if ((st = emit (w, data, n, err)) != TSR_OK)
    return st;
  w->cur_done += n;
  settle (w);
  return TSR_OK;
}

TsrStatus
tsr_gguf_writer_write_tensor (TsrGgufWriter *w, const char *name, const void *data, uint64_t size,
                              TsrError *err)
{
  TsrStatus st;
  const WTensor *t;

  if ((st = writer_writing (w, "tsr_gguf_writer_write_tensor", err)) != TSR_OK)
    return st;
  if (w->cur >= w->n_t)
    return tsr_error_set (err, TSR_EINVAL, "tensor '%s' written after all tensors were complete",
                          name ? name : "(null)");
  t = &w->t[w->cur];
  if (name == NULL || strcmp (name, t->name) != 0 || w->cur_done != 0)
    return tsr_error_set (err, TSR_EINVAL, "tensor '%s' written out of order: '%s' is due next "
                          "(tensors are written in the order they were added)",
                          name ? name : "(null)", t->name);
  if (size != t->size)
    return tsr_error_set (err, TSR_EINVAL, "tensor '%s' (%s, %lld×%lld×%lld×%lld) is %llu bytes, "
                          "not %llu", t->name, tsr_dtype_name (t->type), (long long) t->ne[0],
                          (long long) t->ne[1], (long long) t->ne[2], (long long) t->ne[3],
                          (unsigned long long) t->size, (unsigned long long) size);
  if (size > SIZE_MAX)
    return tsr_error_set (err, TSR_ETOOLARGE, "tensor '%s' is too large for this machine", t->name);
  if (size == 0)
    return TSR_OK;
  return tsr_gguf_writer_append (w, data, (size_t) size, err);
}

/* Makes the rename durable: without a sync of the directory, a crash can
 * lose the new name even though the data reached the disk. */
static int
sync_parent_dir (const char *path)
{
  char *dir = strdup (path);
  char *slash;
  int fd, rc = 0;

  if (dir == NULL)
    return -1;
  slash = strrchr (dir, '/');
  if (slash == NULL)
    strcpy (dir, ".");
  else if (slash == dir)
    dir[1] = '\0';
  else
    *slash = '\0';
  fd = open (dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  free (dir);
  if (fd < 0)
    return 0;   /* not fatal: the file itself is complete and synced */
  if (fsync (fd) != 0 && errno != EINVAL)
    rc = -1;
  close (fd);
  return rc;
}

TsrStatus
tsr_gguf_writer_finish (TsrGgufWriter *w, TsrError *err)
{
  TsrStatus st;
  int fd;

  if ((st = writer_writing (w, "tsr_gguf_writer_finish", err)) != TSR_OK)
    return st;
  settle (w);
  if (w->cur < w->n_t)
    {
      const WTensor *t = &w->t[w->cur];
      st = tsr_error_set (err, TSR_EINVAL, "tensor '%s' is incomplete (%llu of %llu bytes written) "
                          "and %zu tensors follow it; %s was not written", t->name,
                          (unsigned long long) w->cur_done, (unsigned long long) t->size,
                          w->n_t - w->cur - 1, w->path);
      w->state = W_FAILED;
      writer_discard_file (w);
      return st;
    }
  if ((st = flush (w, err)) != TSR_OK)
    return st;
  if (fsync (w->fd) != 0)
    return writer_io_error (w, errno, "sync", err);
  fd = w->fd;
  w->fd = -1;
  if (close (fd) != 0)
    return writer_io_error (w, errno, "close", err);
  if (rename (w->part_path, w->path) != 0)
    return writer_io_error (w, errno, "rename the finished file to", err);
  w->state = W_FINISHED;
  if (sync_parent_dir (w->path) != 0)
    return tsr_error_set (err, TSR_EIO, "%s was written but its folder could not be synced: %s",
                          w->path, strerror (errno));
  return TSR_OK;
}

/* ==== Tessera's model layout ============================================ *
 *
 * What a file must hold for Tessera to run it; the names and keys are the
 * ones DESIGN.md lists. The check reads metadata and compares every
 * required tensor's shape, so a loader that comes after it may index
 * tensors without checking again.
 */

typedef struct {
  const TsrGguf    *g;
  TsrGgufModelInfo *info;
  TsrError         *err;
  char              prefix[72];     /* "<arch>." */
} Check;

static TsrStatus
not_runnable (Check *c, const char *fmt, ...) __attribute__ ((format (printf, 2, 3)));

static TsrStatus
not_runnable (Check *c, const char *fmt, ...)
{
  char msg[TSR_ERROR_MESSAGE_MAX];
  va_list ap;
  va_start (ap, fmt);
  vsnprintf (msg, sizeof msg, fmt, ap);
  va_end (ap);
  return tsr_error_set (c->err, TSR_EFORMAT, "%s: %s", c->g->path, msg);
}

static const char *
arch_key (Check *c, const char *suffix, char *buf, size_t size)
{
  snprintf (buf, size, "%s%s", c->prefix, suffix);
  return buf;
}

static TsrStatus
req_u32 (Check *c, const char *suffix, uint32_t *out)
{
  char key[160];
  TsrStatus st = tsr_gguf_get_u32 (c->g, arch_key (c, suffix, key, sizeof key), out, c->err);
  if (st == TSR_OK && *out == 0)
    return not_runnable (c, "metadata '%s' is 0", key);
  return st;
}

static TsrStatus
opt_u32 (Check *c, const char *suffix, uint32_t *out, uint32_t fallback)
{
  char key[160];
  arch_key (c, suffix, key, sizeof key);
  if (tsr_gguf_find_kv (c->g, key) == NULL)
    {
      *out = fallback;
      return TSR_OK;
    }
  return tsr_gguf_get_u32 (c->g, key, out, c->err);
}

static TsrStatus
opt_f32 (Check *c, const char *key, float *out, float fallback)
{
  if (tsr_gguf_find_kv (c->g, key) == NULL)
    {
      *out = fallback;
      return TSR_OK;
    }
  return tsr_gguf_get_f32 (c->g, key, out, c->err);
}

static TsrStatus
opt_id (Check *c, const char *key, int64_t *out)
{
  uint32_t v;
  TsrStatus st;
  *out = -1;
  if (tsr_gguf_find_kv (c->g, key) == NULL)
    return TSR_OK;
  st = tsr_gguf_get_u32 (c->g, key, &v, c->err);
  /* llama.cpp writes 0xffffffff for "no such token". */
  if (st == TSR_OK && v != UINT32_MAX)
    *out = v;
  return st;
}

/* Requires tensor `name` with exactly the shape ne[0..n_dims-1] (ggml order,
 * fastest first). Trailing 1s are tolerated either way, as PyTorch keeps
 * [1,1,4096] where a converter may write [4096]. */
static TsrStatus
req_tensor (Check *c, const char *name, uint32_t n_dims, const int64_t *ne)
{
  const TsrGgufTensor *t = tsr_gguf_find_tensor (c->g, name);
  char want[96], have[96];
  int ok = t != NULL;

  if (t == NULL)
    return not_runnable (c, "tensor '%s' is missing; the file is incomplete or was converted for "
                         "another program", name);
  for (int d = 0; d < TSR_GGUF_MAX_DIMS; d++)
    if (t->ne[d] != ((uint32_t) d < n_dims ? ne[d] : 1))
      ok = 0;
  if (ok)
    return TSR_OK;
  want[0] = have[0] = '\0';
  for (uint32_t d = 0; d < n_dims; d++)
    snprintf (want + strlen (want), sizeof want - strlen (want), "%s%lld", d ? ", " : "", (long long) ne[d]);
  for (uint32_t d = 0; d < t->n_dims; d++)
    snprintf (have + strlen (have), sizeof have - strlen (have), "%s%lld", d ? ", " : "",
              (long long) t->ne[d]);
  return not_runnable (c, "tensor '%s' has shape [%s] where the metadata implies [%s] "
                       "(ggml order, fastest dimension first); the file is inconsistent",
                       name, have, want);
}

#define REQ(c, name, ...)                                                    \
  do {                                                                       \
    const int64_t ne_[] = { __VA_ARGS__ };                                   \
    TsrStatus st_ = req_tensor ((c), (name), sizeof ne_ / sizeof ne_[0], ne_); \
    if (st_ != TSR_OK)                                                       \
      return st_;                                                            \
  } while (0)

/* "blk.7.attn_q.weight" from ("blk", 7, "attn_q.weight"). */
static const char *
bname (char *buf, size_t size, const char *prefix, uint32_t i, const char *suffix)
{
  snprintf (buf, size, "%s.%u.%s", prefix, i, suffix);
  return buf;
}

static TsrStatus
check_decoder (Check *c)
{
  TsrGgufModelInfo *m = c->info;
  const TsrGgufTensor *emb;
  char key[160], name[96];
  TsrStatus st;

  if ((st = req_u32 (c, "embedding_length", &m->n_embd)) != TSR_OK ||
      (st = req_u32 (c, "block_count", &m->n_layer)) != TSR_OK ||
      (st = req_u32 (c, "feed_forward_length", &m->n_ff)) != TSR_OK ||
      (st = req_u32 (c, "attention.head_count", &m->n_head)) != TSR_OK ||
      (st = opt_u32 (c, "attention.head_count_kv", &m->n_head_kv, m->n_head)) != TSR_OK ||
      (st = opt_u32 (c, "context_length", &m->n_ctx, 0)) != TSR_OK ||
      (st = opt_f32 (c, arch_key (c, "attention.layer_norm_rms_epsilon", key, sizeof key),
                     &m->rms_eps, 1e-5f)) != TSR_OK ||
      (st = opt_f32 (c, arch_key (c, "rope.freq_base", key, sizeof key),
                     &m->rope_freq_base, 10000.0f)) != TSR_OK)
    return st;
  if (m->n_embd % m->n_head != 0)
    return not_runnable (c, "embedding length %u is not a multiple of the %u attention heads",
                         m->n_embd, m->n_head);
  if (m->n_head_kv == 0 || m->n_head % m->n_head_kv != 0)
    return not_runnable (c, "%u attention heads cannot be shared by %u key/value heads",
                         m->n_head, m->n_head_kv);
  m->n_head_dim = m->n_embd / m->n_head;

  emb = tsr_gguf_find_tensor (c->g, "token_embd.weight");
  if (emb == NULL)
    return not_runnable (c, "tensor 'token_embd.weight' is missing; the file is incomplete or was "
                         "converted for another program");
  if (emb->ne[1] <= 0 || emb->ne[1] > (int64_t) UINT32_MAX)
    return not_runnable (c, "the token embedding has %lld rows", (long long) emb->ne[1]);
  m->n_vocab = (uint32_t) emb->ne[1];

  int64_t E = m->n_embd, F = m->n_ff, V = m->n_vocab;
  int64_t Q = (int64_t) m->n_head * m->n_head_dim, KV = (int64_t) m->n_head_kv * m->n_head_dim;
  REQ (c, "token_embd.weight", E, V);
  REQ (c, "output_norm.weight", E);
  m->tied_output = tsr_gguf_find_tensor (c->g, "output.weight") == NULL;
  if (!m->tied_output)
    REQ (c, "output.weight", E, V);
  for (uint32_t i = 0; i < m->n_layer; i++)
    {
      REQ (c, bname (name, sizeof name, "blk", i, "attn_norm.weight"), E);
      REQ (c, bname (name, sizeof name, "blk", i, "attn_q.weight"), E, Q);
      REQ (c, bname (name, sizeof name, "blk", i, "attn_k.weight"), E, KV);
      REQ (c, bname (name, sizeof name, "blk", i, "attn_v.weight"), E, KV);
      REQ (c, bname (name, sizeof name, "blk", i, "attn_output.weight"), Q, E);
      REQ (c, bname (name, sizeof name, "blk", i, "ffn_norm.weight"), E);
      REQ (c, bname (name, sizeof name, "blk", i, "ffn_gate.weight"), E, F);
      REQ (c, bname (name, sizeof name, "blk", i, "ffn_up.weight"), E, F);
      REQ (c, bname (name, sizeof name, "blk", i, "ffn_down.weight"), F, E);
    }
  return TSR_OK;
}

static const char *const plora_names[TSR_PLORA_COUNT] = {
  "attn_qkv", "attn_output", "ffn_gate", "ffn_up", "ffn_down",
};

const char *
tsr_plora_name (int which)
{
  return which >= 0 && which < TSR_PLORA_COUNT ? plora_names[which] : NULL;
}

static TsrStatus
check_plora (Check *c)
{
  TsrGgufModelInfo *m = c->info;
  char key[160], name[96];
  TsrStatus st;

  for (int k = 0; k < TSR_PLORA_COUNT; k++)
    {
      snprintf (name, sizeof name, "plora.%s.rank", plora_names[k]);
      if ((st = req_u32 (c, name, &m->plora_rank[k])) != TSR_OK)
        return st;
      snprintf (name, sizeof name, "plora.%s.scale", plora_names[k]);
      if ((st = tsr_gguf_get_f32 (c->g, arch_key (c, name, key, sizeof key), &m->plora_scale[k],
                                  c->err)) != TSR_OK)
        return st;
    }

  int64_t E = m->n_embd, F = m->n_ff;
  int64_t Q = (int64_t) m->n_head * m->n_head_dim, KV = (int64_t) m->n_head_kv * m->n_head_dim;
  int64_t rq = m->plora_rank[TSR_PLORA_ATTN_QKV], ro = m->plora_rank[TSR_PLORA_ATTN_OUTPUT];
  int64_t rg = m->plora_rank[TSR_PLORA_FFN_GATE], ru = m->plora_rank[TSR_PLORA_FFN_UP];
  int64_t rd = m->plora_rank[TSR_PLORA_FFN_DOWN];
  for (uint32_t i = 0; i < m->n_layer; i++)
    {
      REQ (c, bname (name, sizeof name, "blk", i, "attn_qkv.lora_a.weight"), E, rq);
      REQ (c, bname (name, sizeof name, "blk", i, "attn_q.lora_b.weight"), rq, Q);
      REQ (c, bname (name, sizeof name, "blk", i, "attn_k.lora_b.weight"), rq, KV);
      REQ (c, bname (name, sizeof name, "blk", i, "attn_v.lora_b.weight"), rq, KV);
      REQ (c, bname (name, sizeof name, "blk", i, "attn_output.lora_a.weight"), Q, ro);
      REQ (c, bname (name, sizeof name, "blk", i, "attn_output.lora_b.weight"), ro, E);
      REQ (c, bname (name, sizeof name, "blk", i, "ffn_gate.lora_a.weight"), E, rg);
      REQ (c, bname (name, sizeof name, "blk", i, "ffn_gate.lora_b.weight"), rg, F);
      REQ (c, bname (name, sizeof name, "blk", i, "ffn_up.lora_a.weight"), E, ru);
      REQ (c, bname (name, sizeof name, "blk", i, "ffn_up.lora_b.weight"), ru, F);
      REQ (c, bname (name, sizeof name, "blk", i, "ffn_down.lora_a.weight"), F, rd);
      REQ (c, bname (name, sizeof name, "blk", i, "ffn_down.lora_b.weight"), rd, E);
    }
  return TSR_OK;
}

static TsrStatus
check_vision (Check *c)
{
  TsrGgufModelInfo *m = c->info;
  char key[160], name[96];
  TsrStatus st;

  if ((st = req_u32 (c, "vision.image_size", &m->v_image_size)) != TSR_OK ||
      (st = req_u32 (c, "vision.patch_size", &m->v_patch_size)) != TSR_OK ||
      (st = req_u32 (c, "vision.embedding_length", &m->v_n_embd)) != TSR_OK ||
      (st = req_u32 (c, "vision.block_count", &m->v_n_layer)) != TSR_OK ||
      (st = req_u32 (c, "vision.feed_forward_length", &m->v_n_ff)) != TSR_OK ||
      (st = req_u32 (c, "vision.attention.head_count", &m->v_n_head)) != TSR_OK ||
      (st = opt_f32 (c, arch_key (c, "vision.attention.layer_norm_epsilon", key, sizeof key),
                     &m->v_eps, 1e-5f)) != TSR_OK)
    return st;
  if (m->v_image_size % m->v_patch_size != 0 || (m->v_image_size / m->v_patch_size) % 2 != 0)
    return not_runnable (c, "a %u-pixel image does not cut into an even grid of %u-pixel patches",
                         m->v_image_size, m->v_patch_size);
  if (m->v_n_embd % m->v_n_head != 0)
    return not_runnable (c, "vision width %u is not a multiple of its %u heads", m->v_n_embd, m->v_n_head);

  int64_t VE = m->v_n_embd, VF = m->v_n_ff, P = m->v_patch_size, E = m->n_embd;
  int64_t side = m->v_image_size / m->v_patch_size;
  /* The 2×2 merge concatenates four vision tokens before the projector. */
  m->mm_n_in = 4 * m->v_n_embd;
  int64_t M = m->mm_n_in;

  REQ (c, "v.patch_embd.weight", P, P, 3, VE);
  REQ (c, "v.class_embd.weight", VE);
  REQ (c, "v.pos_embd.weight", VE, side * side + 1);
  REQ (c, "v.pre_ln.weight", VE);
  REQ (c, "v.pre_ln.bias", VE);
  for (uint32_t i = 0; i < m->v_n_layer; i++)
    {
      static const char *const sq[] = { "attn_q", "attn_k", "attn_v", "attn_out" };
      for (int k = 0; k < 4; k++)
        {
          snprintf (name, sizeof name, "v.blk.%u.%s.weight", i, sq[k]);
          REQ (c, name, VE, VE);
          snprintf (name, sizeof name, "v.blk.%u.%s.bias", i, sq[k]);
          REQ (c, name, VE);
        }
      REQ (c, bname (name, sizeof name, "v.blk", i, "ln1.weight"), VE);
      REQ (c, bname (name, sizeof name, "v.blk", i, "ln1.bias"), VE);
      REQ (c, bname (name, sizeof name, "v.blk", i, "ln2.weight"), VE);
      REQ (c, bname (name, sizeof name, "v.blk", i, "ln2.bias"), VE);
      REQ (c, bname (name, sizeof name, "v.blk", i, "ffn_up.weight"), VE, VF);
      REQ (c, bname (name, sizeof name, "v.blk", i, "ffn_up.bias"), VF);
      REQ (c, bname (name, sizeof name, "v.blk", i, "ffn_down.weight"), VF, VE);
      REQ (c, bname (name, sizeof name, "v.blk", i, "ffn_down.bias"), VE);
    }
  REQ (c, "mm.0.weight", M, E);
  REQ (c, "mm.0.bias", E);
  REQ (c, "mm.2.weight", E, E);
  REQ (c, "mm.2.bias", E);
  REQ (c, "mm.glb_gn.weight", M);
  REQ (c, "mm.sub_gn.weight", M);
  return TSR_OK;
}

static TsrStatus
check_tokenizer (Check *c, int chat)
{
  TsrGgufModelInfo *m = c->info;
  const TsrGgufStr *tokens;
  TsrGgufStr model;
  const TsrGgufKV *scores;
  TsrStatus st;

  model.ptr = NULL;
  model.len = 0;
  if ((st = tsr_gguf_get_str (c->g, "tokenizer.ggml.model", &model, c->err)) != TSR_OK)
    return st;
  snprintf (m->tok_model, sizeof m->tok_model, "%.*s",
            (int) (model.len < sizeof m->tok_model ? model.len : sizeof m->tok_model - 1), model.ptr);
  if ((st = tsr_gguf_get_arr_str (c->g, "tokenizer.ggml.tokens", &tokens, &m->tok_n, c->err)) != TSR_OK)
    return st;
  if ((st = opt_id (c, "tokenizer.ggml.bos_token_id", &m->bos_id)) != TSR_OK ||
      (st = opt_id (c, "tokenizer.ggml.eos_token_id", &m->eos_id)) != TSR_OK)
    return st;
  if (!tsr_gguf_str_eq (model, "llama"))
    return not_runnable (c, "its tokenizer is '%s'; Tessera's tokenizer reads SentencePiece "
                         "vocabularies ('llama') only", m->tok_model);
  scores = tsr_gguf_find_kv (c->g, "tokenizer.ggml.scores");
  if (scores == NULL || scores->type != TSR_GGUF_ARRAY || scores->n != m->tok_n ||
      (scores->array_type != TSR_GGUF_F32 && scores->array_type != TSR_GGUF_F64))
    return not_runnable (c, "tokenizer.ggml.scores is missing or does not hold one number per token; "
                         "SentencePiece merges need the scores");
  if (m->tok_n == 0 || m->tok_n > m->n_vocab)
    return not_runnable (c, "the tokenizer has %llu tokens but the embedding has %u rows",
                         (unsigned long long) m->tok_n, m->n_vocab);
  if (m->bos_id >= (int64_t) m->tok_n || m->eos_id >= (int64_t) m->tok_n)
    return not_runnable (c, "the BOS or EOS token id lies outside the %llu-token vocabulary",
                         (unsigned long long) m->tok_n);
  if (chat)
    {
      if ((st = opt_id (c, "tessera.chat.im_start_id", &m->im_start_id)) != TSR_OK ||
          (st = opt_id (c, "tessera.chat.im_end_id", &m->im_end_id)) != TSR_OK)
        return st;
      if (m->im_start_id < 0 || m->im_end_id < 0 ||
          m->im_start_id >= (int64_t) m->tok_n || m->im_end_id >= (int64_t) m->tok_n)
        return not_runnable (c, "tessera.chat.im_start_id / im_end_id are missing or outside the "
                             "vocabulary; the chat template needs them");
    }
  return TSR_OK;
}

TsrStatus
tsr_gguf_model_info (const TsrGguf *g, TsrGgufModelInfo *info, TsrError *err)
{
  Check c = { g, info, err, "" };
  TsrGgufStr arch = { NULL, 0 }, name = { NULL, 0 };
  TsrStatus st;

  memset (info, 0, sizeof *info);
  info->bos_id = info->eos_id = info->im_start_id = info->im_end_id = -1;

  if ((st = tsr_gguf_get_str (g, "general.architecture", &arch, err)) != TSR_OK)
    return st;
  snprintf (info->arch_name, sizeof info->arch_name, "%.*s",
            (int) (arch.len < sizeof info->arch_name ? arch.len : sizeof info->arch_name - 1), arch.ptr);
  if (tsr_gguf_find_kv (g, "general.name") && tsr_gguf_get_str (g, "general.name", &name, NULL) == TSR_OK)
    snprintf (info->name, sizeof info->name, "%.*s",
              (int) (name.len < sizeof info->name ? name.len : sizeof info->name - 1), name.ptr);
  if (tsr_gguf_find_kv (g, "tessera.synthetic") &&
      (st = tsr_gguf_get_bool (g, "tessera.synthetic", &info->synthetic, err)) != TSR_OK)
    return st;

  if (tsr_gguf_str_eq (arch, "llama"))
    info->arch = TSR_ARCH_LLAMA;
  else if (tsr_gguf_str_eq (arch, TSR_ARCH_NAME_INTERNLM2_4KHD))
    info->arch = TSR_ARCH_INTERNLM2_4KHD;
  else
    return not_runnable (&c, "its architecture is '%s'; Tessera runs '%s' files (made by "
                         "'tessera-cli convert') and plain 'llama' language models",
                         info->arch_name, TSR_ARCH_NAME_INTERNLM2_4KHD);
  snprintf (c.prefix, sizeof c.prefix, "%s.", info->arch_name);

  if ((st = check_decoder (&c)) != TSR_OK)
    return st;
  if (info->arch == TSR_ARCH_INTERNLM2_4KHD &&
      ((st = check_plora (&c)) != TSR_OK || (st = check_vision (&c)) != TSR_OK))
    return st;
  return check_tokenizer (&c, info->arch == TSR_ARCH_INTERNLM2_4KHD);
}
