/* SPDX-License-Identifier: GPL-3.0-or-later
 *
 * test-checkpoint — the checkpoint readers (engine/tsr-checkpoint.h).
 *
 *  1. Every fixture written by tests/reference/make_checkpoints.py opens,
 *     and every tensor equals what PyTorch wrote: dtype, shape, an FNV-1a
 *     hash of its raw bytes, sampled values and a left-to-right float64 sum.
 *     The f32 PyTorch and safetensors fixtures share a seed, so both readers
 *     must also return byte-identical tensors.
 *  2. Each damaged or hostile file in bad/ fails with the status and message
 *     listed in bad/expected.json.
 *  3. Files truncated at many offsets fail cleanly; random byte mutations
 *     never crash, and whatever does open points only at its own bytes.
 *  4. ZIP64 archives built here: a well-formed one opens, lying ones fail.
 *
 * Usage: test-checkpoint FIXTURES_DIR   (tests/fixtures/checkpoints)
 */
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "tessera-engine.h"
#include "tsr-checkpoint.h"

#define MAX_REPORTED_FAILURES 60

static int n_checks;
static int n_failures;
static char current_case[256] = "(no case)";
static const char *fixtures;

static void fail (const char *fmt, ...) __attribute__ ((format (printf, 1, 2)));

static void
fail (const char *fmt, ...)
{
  va_list ap;
  n_failures++;
  if (n_failures > MAX_REPORTED_FAILURES)
    {
      if (n_failures == MAX_REPORTED_FAILURES + 1)
        fprintf (stderr, "FAIL … (further failures not shown)\n");
      return;
    }
  fprintf (stderr, "FAIL %s: ", current_case);
  va_start (ap, fmt);
  vfprintf (stderr, fmt, ap);
  va_end (ap);
  fputc ('\n', stderr);
}

#define CHECK(cond, ...) \
  do { n_checks++; if (!(cond)) fail (__VA_ARGS__); } while (0)

static void set_case (const char *fmt, ...) __attribute__ ((format (printf, 1, 2)));

static void
set_case (const char *fmt, ...)
{
  va_list ap;
  va_start (ap, fmt);
  vsnprintf (current_case, sizeof current_case, fmt, ap);
  va_end (ap);
}

static char *
path_join (const char *a, const char *b)
{
  size_t n = strlen (a) + strlen (b) + 2;
  char *p = malloc (n);
  if (p == NULL)
    abort ();
  snprintf (p, n, "%s/%s", a, b);
  return p;
}

static uint8_t *
read_file (const char *path, size_t *len)
{
  FILE *f = fopen (path, "rb");
  uint8_t *buf;
  long n;
  if (f == NULL)
    return NULL;
  fseek (f, 0, SEEK_END);
  n = ftell (f);
  fseek (f, 0, SEEK_SET);
  buf = malloc (n > 0 ? (size_t) n : 1);
  if (buf == NULL || fread (buf, 1, (size_t) n, f) != (size_t) n)
    {
      free (buf);
      fclose (f);
      return NULL;
    }
  fclose (f);
  *len = (size_t) n;
  return buf;
}

static int
write_file (const char *path, const uint8_t *buf, size_t len)
{
  FILE *f = fopen (path, "wb");
  if (f == NULL)
    return 0;
  if (len > 0 && fwrite (buf, 1, len, f) != len)
    {
      fclose (f);
      return 0;
    }
  return fclose (f) == 0;
}

/* ==== Values ============================================================ */

static double
half_to_double (uint16_t h)
{
  int e = (h >> 10) & 0x1f, m = h & 0x3ff;
  double v;
  if (e == 0)
    v = ldexp (m, -24);
  else if (e == 31)
    v = m ? NAN : INFINITY;
  else
    v = ldexp (m + 1024, e - 25);
  return (h & 0x8000) ? -v : v;
}

static double
element (const TsrCkptTensor *t, int64_t i)
{
  const uint8_t *p = t->data;
  switch (t->dtype)
    {
    case TSR_DTYPE_F32:
      {
        float f;
        memcpy (&f, p + 4 * i, 4);
        return f;
      }
    case TSR_DTYPE_F16:
      {
        uint16_t h;
        memcpy (&h, p + 2 * i, 2);
        return half_to_double (h);
      }
    case TSR_DTYPE_BF16:
      {
        uint16_t h;
        uint32_t u;
        float f;
        memcpy (&h, p + 2 * i, 2);
        u = (uint32_t) h << 16;
        memcpy (&f, &u, 4);
        return f;
      }
    default:
      return NAN;
    }
}

static uint64_t
fnv1a64 (const void *data, size_t n)
{
  const uint8_t *p = data;
  uint64_t h = 0xcbf29ce484222325ull;
  for (size_t i = 0; i < n; i++)
    h = (h ^ p[i]) * 0x100000001b3ull;
  return h;
}

static const char *
dtype_name (TsrDType d)
{
  return d == TSR_DTYPE_F32 ? "F32" : d == TSR_DTYPE_F16 ? "F16" : d == TSR_DTYPE_BF16 ? "BF16" : "?";
}

/* ==== 1. Fixtures ======================================================= */

static void
check_tensor (const TsrCheckpoint *ck, const cJSON *want)
{
  const char *name = want->string;
  const TsrCkptTensor *t = tsr_checkpoint_find (ck, name);
  const cJSON *shape = cJSON_GetObjectItem (want, "shape");
  const cJSON *samples = cJSON_GetObjectItem (want, "samples"), *s;
  const char *fnv = cJSON_GetStringValue (cJSON_GetObjectItem (want, "fnv1a64"));
  double sum = 0.0, want_sum = cJSON_GetNumberValue (cJSON_GetObjectItem (want, "sum"));
  char hex[17];
  int k = 0;

  CHECK (t != NULL, "tensor %s is missing", name);
  if (t == NULL)
    return;
  CHECK (strcmp (dtype_name (t->dtype), cJSON_GetStringValue (cJSON_GetObjectItem (want, "dtype"))) == 0,
         "%s: dtype %s", name, dtype_name (t->dtype));
  CHECK (t->n_dims == cJSON_GetArraySize (shape), "%s: %d dims, want %d", name, t->n_dims,
         cJSON_GetArraySize (shape));
  for (const cJSON *d = shape ? shape->child : NULL; d != NULL && k < TSR_CKPT_MAX_DIMS; d = d->next, k++)
    CHECK (t->shape[k] == (int64_t) d->valuedouble, "%s: dim %d is %lld", name, k, (long long) t->shape[k]);
  for (; k < TSR_CKPT_MAX_DIMS; k++)
    CHECK (t->shape[k] == 1, "%s: unused dim %d is %lld, want 1", name, k, (long long) t->shape[k]);
  CHECK (t->nbytes == (size_t) t->numel * tsr_checkpoint_dtype_size (t->dtype), "%s: nbytes %zu", name, t->nbytes);
  snprintf (hex, sizeof hex, "%016llx", (unsigned long long) fnv1a64 (t->data, t->nbytes));
  CHECK (fnv != NULL && strcmp (hex, fnv) == 0, "%s: bytes hash to %s, want %s", name, hex, fnv ? fnv : "?");
  for (int64_t i = 0; i < t->numel; i++)
    sum += element (t, i);
  CHECK (sum == want_sum, "%s: sum %.17g, want %.17g", name, sum, want_sum);
  cJSON_ArrayForEach (s, samples)
    {
      int64_t i = (int64_t) cJSON_GetArrayItem (s, 0)->valuedouble;
      double v = cJSON_GetArrayItem (s, 1)->valuedouble;
      CHECK (i >= 0 && i < t->numel && element (t, i) == v, "%s[%lld] = %.9g, want %.9g", name,
             (long long) i, i >= 0 && i < t->numel ? element (t, i) : NAN, v);
    }
}

static void
check_fixture (const char *name)
{
  char *dir = path_join (fixtures, name), *exp_name, *exp_path;
  TsrCheckpoint *ck = NULL;
  TsrError err;
  cJSON *want = NULL, *tensors, *t;
  TsrStatus st;
  size_t n_exp = 0;

  set_case ("%s", name);
  exp_name = malloc (strlen (name) + 16);
  sprintf (exp_name, "%s.expected.json", name);
  exp_path = path_join (fixtures, exp_name);
  st = tsr_json_load_file (exp_path, 8u << 20, &want, &err);
  CHECK (st == TSR_OK, "cannot read %s: %s", exp_path, err.message);
  st = tsr_checkpoint_open (dir, &ck, &err);
  CHECK (st == TSR_OK, "open: %s", err.message);
  if (ck != NULL && want != NULL)
    {
      const char *fmt = cJSON_GetStringValue (cJSON_GetObjectItem (want, "format"));
      CHECK ((tsr_checkpoint_format (ck) == TSR_CKPT_PYTORCH) == (strcmp (fmt, "pytorch") == 0), "format");
      CHECK (tsr_checkpoint_n_shards (ck) == (strstr (name, "sharded") ? 2u : 1u), "%zu shards",
             tsr_checkpoint_n_shards (ck));
      tensors = cJSON_GetObjectItem (want, "tensors");
      cJSON_ArrayForEach (t, tensors)
        {
          check_tensor (ck, t);
          n_exp++;
        }
      CHECK (tsr_checkpoint_n_tensors (ck) == n_exp, "%zu tensors, want %zu", tsr_checkpoint_n_tensors (ck), n_exp);
      CHECK (n_exp == 80, "the fixture lists %zu tensors, the real layout at 2+2 layers has 80", n_exp);

      /* Streaming order: shard by shard, each front to back. */
      for (size_t i = 1; i < tsr_checkpoint_n_tensors (ck); i++)
        {
          const TsrCkptTensor *a = tsr_checkpoint_tensor (ck, i - 1), *b = tsr_checkpoint_tensor (ck, i);
          CHECK (a->shard < b->shard || (a->shard == b->shard && (const uint8_t *) a->data <= (const uint8_t *) b->data),
                 "tensor %zu (%s) comes before %s out of file order", i - 1, a->name, b->name);
        }
      /* Releasing pages only drops them from memory: they read back the same. */
      for (size_t i = 0; i < tsr_checkpoint_n_tensors (ck); i++)
        {
          const TsrCkptTensor *a = tsr_checkpoint_tensor (ck, i);
          uint64_t h = fnv1a64 (a->data, a->nbytes);
          tsr_checkpoint_release (ck, a);
          CHECK (fnv1a64 (a->data, a->nbytes) == h, "%s changed after release", a->name);
        }
      CHECK (tsr_checkpoint_find (ck, "no.such.tensor") == NULL, "found a tensor that does not exist");
      CHECK (tsr_checkpoint_tensor (ck, n_exp) == NULL, "index past the end");
    }
  tsr_checkpoint_close (ck);
  cJSON_Delete (want);
  free (exp_name);
  free (exp_path);
  free (dir);
}

/* The same seed in f32 through both readers gives the same bytes. */
static void
check_formats_agree (void)
{
  char *a_dir = path_join (fixtures, "bin-f32"), *b_dir = path_join (fixtures, "st-f32-sharded");
  TsrCheckpoint *a = NULL, *b = NULL;
  TsrError err;

  set_case ("bin-f32 vs st-f32-sharded");
  if (tsr_checkpoint_open (a_dir, &a, &err) == TSR_OK && tsr_checkpoint_open (b_dir, &b, &err) == TSR_OK)
    {
      CHECK (tsr_checkpoint_n_tensors (a) == tsr_checkpoint_n_tensors (b), "tensor counts differ");
      for (size_t i = 0; i < tsr_checkpoint_n_tensors (a); i++)
        {
          const TsrCkptTensor *x = tsr_checkpoint_tensor (a, i), *y = tsr_checkpoint_find (b, x->name);
          CHECK (y != NULL && x->nbytes == y->nbytes && memcmp (x->data, y->data, x->nbytes) == 0,
                 "%s differs between the formats", x->name);
        }
    }
  else
    fail ("open: %s", err.message);
  tsr_checkpoint_close (a);
  tsr_checkpoint_close (b);
  free (a_dir);
  free (b_dir);
}

/* One shard file opened on its own, and an index opened by its path. */
static void
check_direct_paths (void)
{
  static const struct { const char *path; size_t n; } cases[] = {
    { "bin-f16/pytorch_model.bin", 80 },
    { "st-bf16/model.safetensors", 80 },
    { "bin-bf16-sharded/pytorch_model-00002-of-00002.bin", 45 },
    { "st-f16-sharded/model.safetensors.index.json", 80 },
    { "seeds/pickle/views.bin", 2 },
    { "seeds/pickle/protocol4.bin", 4 },
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
    {
      char *p = path_join (fixtures, cases[i].path);
      TsrCheckpoint *ck = NULL;
      TsrError err;
      set_case ("open %s", cases[i].path);
      if (tsr_checkpoint_open (p, &ck, &err) != TSR_OK)
        fail ("%s", err.message);
      else
        CHECK (tsr_checkpoint_n_tensors (ck) == cases[i].n, "%zu tensors, want %zu",
               tsr_checkpoint_n_tensors (ck), cases[i].n);
      if (ck != NULL && strstr (cases[i].path, "views"))
        {
          /* a = arange(6)[0:3], b = arange(6)[3:6].view(1, 3): one storage. */
          const TsrCkptTensor *ta = tsr_checkpoint_find (ck, "a"), *tb = tsr_checkpoint_find (ck, "b");
          CHECK (ta && tb && (const float *) tb->data == (const float *) ta->data + 3, "views do not share");
          CHECK (ta && tb && element (ta, 2) == 2.0 && element (tb, 0) == 3.0 && tb->n_dims == 2
                 && tb->shape[0] == 1 && tb->shape[1] == 3, "view values or shape");
        }
      tsr_checkpoint_close (ck);
      free (p);
    }
}

static void
check_json_helper (void)
{
  char *p = path_join (fixtures, "st-bf16/config.json");
  cJSON *root = NULL;
  TsrError err;
  set_case ("tsr_json_load_file");
  CHECK (tsr_json_load_file (p, 1 << 20, &root, &err) == TSR_OK, "%s", err.message);
  CHECK (cJSON_GetNumberValue (cJSON_GetObjectItem (root, "hidden_size")) == 64, "hidden_size");
  cJSON_Delete (root);
  CHECK (tsr_json_load_file (p, 100, &root, &err) == TSR_ETOOLARGE && root == NULL, "size limit");
  free (p);
  p = path_join (fixtures, "bin-f32/tokenizer.model");
  CHECK (tsr_json_load_file (p, 1 << 20, &root, &err) == TSR_EFORMAT && root == NULL, "not JSON");
  free (p);
}

/* ==== 2. The bad files ================================================== */

static void
check_bad_files (void)
{
  char *dir = path_join (fixtures, "bad"), *mpath = path_join (dir, "expected.json");
  cJSON *manifest = NULL, *item;
  TsrError err;

  set_case ("bad/expected.json");
  if (tsr_json_load_file (mpath, 1 << 20, &manifest, &err) != TSR_OK)
    {
      fail ("%s", err.message);
      free (dir);
      free (mpath);
      return;
    }
  cJSON_ArrayForEach (item, manifest)
    {
      char *p = path_join (dir, item->string);
      const char *status = cJSON_GetStringValue (cJSON_GetObjectItem (item, "status"));
      const char *contains = cJSON_GetStringValue (cJSON_GetObjectItem (item, "contains"));
      TsrCheckpoint *ck = NULL;
      TsrStatus st;

      set_case ("bad/%s", item->string);
      memset (&err, 0, sizeof err);
      st = tsr_checkpoint_open (p, &ck, &err);
      CHECK (strcmp (tsr_status_name (st), status) == 0, "status '%s', want '%s' (%s)",
             tsr_status_name (st), status, err.message);
      if (st != TSR_OK)
        {
          CHECK (ck == NULL, "a failed open returned a checkpoint");
          CHECK (contains != NULL && strstr (err.message, contains) != NULL, "message \"%s\" lacks \"%s\"",
                 err.message, contains ? contains : "?");
          if (getenv ("TSR_TEST_VERBOSE"))
            fprintf (stderr, "  %-32s %s\n", item->string, err.message);
        }
      else
        {
          const TsrCkptTensor *a = tsr_checkpoint_find (ck, "a"), *b = tsr_checkpoint_find (ck, "b");
          CHECK ((double) tsr_checkpoint_n_tensors (ck)
                 == cJSON_GetNumberValue (cJSON_GetObjectItem (item, "tensors")), "tensor count");
          CHECK (a && a->dtype == TSR_DTYPE_F32 && a->numel == 12 && element (a, 11) == 11.0, "tensor a");
          CHECK (b && b->dtype == TSR_DTYPE_F16 && b->numel == 4 && element (b, 3) == 3.0, "tensor b");
        }
      tsr_checkpoint_close (ck);
      free (p);
    }
  cJSON_Delete (manifest);
  free (dir);
  free (mpath);
}

/* ==== 3. Truncation and mutation ======================================= */

static TsrStatus
touch_sink (void *user_data, const TsrCkptRecord *rec, TsrError *err)
{
  uint64_t *acc = user_data;
  /* Reading every byte lets AddressSanitizer see any pointer outside the
   * buffer the parser was given. */
  *acc += fnv1a64 (rec->data, rec->nbytes) + rec->name_len;
  (void) err;
  return TSR_OK;
}

static TsrStatus
parse_any (const uint8_t *buf, size_t len, TsrError *err)
{
  uint64_t acc = 0;
  if (len >= 4 && buf[0] == 'P' && buf[1] == 'K')
    return tsr_torchzip_parse (buf, len, "mutant", touch_sink, &acc, err);
  return tsr_safetensors_parse (buf, len, "mutant", touch_sink, &acc, err);
}

static void
check_truncation (const char *rel, size_t step)
{
  char *p = path_join (fixtures, rel);
  char tmp[] = "/tmp/tsr-test-ckpt-XXXXXX";
  size_t len = 0, failures_before = (size_t) n_failures;
  uint8_t *buf = read_file (p, &len);
  int fd = mkstemp (tmp);

  set_case ("truncated %s", rel);
  CHECK (buf != NULL && fd >= 0, "cannot read %s or make a temporary file", p);
  if (buf != NULL && fd >= 0)
    {
      close (fd);
      for (size_t cut = 0; cut < len; cut += (cut < 128 || len - cut < 4096) ? 1 : step)
        {
          TsrCheckpoint *ck = NULL;
          TsrError err;
          TsrStatus st;
          uint8_t *copy = malloc (cut ? cut : 1);

          /* In memory, at the exact size, so an overread is caught ... */
          memcpy (copy, buf, cut);
          st = parse_any (copy, cut, &err);
          free (copy);
          CHECK (st != TSR_OK, "cut at %zu of %zu opened in memory", cut, len);
          /* ... and as a file, through the folder-level API. */
          if (cut % 7 == 0 || len - cut < 64)
            {
              if (!write_file (tmp, buf, cut))
                {
                  fail ("cannot write %s", tmp);
                  break;
                }
              st = tsr_checkpoint_open (tmp, &ck, &err);
              CHECK (st != TSR_OK && ck == NULL, "cut at %zu of %zu opened", cut, len);
              CHECK (err.message[0] != '\0', "cut at %zu: empty message", cut);
              tsr_checkpoint_close (ck);
            }
          if ((size_t) n_failures > failures_before + 5)
            break;
        }
      unlink (tmp);
    }
  free (buf);
  free (p);
}

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint32_t
rng (void)
{
  rng_state = rng_state * 6364136223846793005ull + 1442695040888963407ull;
  return (uint32_t) (rng_state >> 33);
}

static void
check_mutations (const char *rel, int rounds)
{
  char *p = path_join (fixtures, rel);
  size_t len = 0;
  uint8_t *buf = read_file (p, &len);
  int opened = 0;

  set_case ("mutated %s", rel);
  CHECK (buf != NULL && len > 0, "cannot read %s", p);
  for (int r = 0; buf != NULL && r < rounds; r++)
    {
      uint8_t *m = malloc (len);
      TsrError err;
      int flips = 1 + (int) (rng () % 4);
      memcpy (m, buf, len);
      for (int k = 0; k < flips; k++)
        {
          size_t at = rng () % len;
          switch (rng () % 4)
            {
            case 0: m[at] ^= (uint8_t) (1u << (rng () % 8)); break;
            case 1: m[at] = (uint8_t) rng (); break;
            case 2: m[at] = 0xff; break;
            default: m[at] = 0; break;
            }
        }
      if (parse_any (m, len, &err) == TSR_OK)
        opened++;
      else
        CHECK (err.message[0] != '\0', "round %d: failure without a message", r);
      free (m);
    }
  if (getenv ("TSR_TEST_VERBOSE"))
    fprintf (stderr, "  %s: %d of %d mutants still open\n", rel, opened, rounds);
  free (buf);
  free (p);
}

/* ==== 4. ZIP64 ========================================================== */

typedef enum {
  LIE_NONE,
  LIE_ZIP64_SIZE,         /* the ZIP64 extra gives a storage 1 TiB */
  LIE_ZIP64_OFFSET,       /* the ZIP64 extra points a local header past the end */
  LIE_ZIP64_EXTRA_MISSING,/* 0xffffffff in the record, no ZIP64 extra */
  LIE_EOCD64_PAST_END,    /* the locator points past the file */
  LIE_EOCD64_DISAGREES,   /* 32-bit count 3, 64-bit count 2 */
  LIE_CD_OFFSET,          /* the directory offset points into the data */
  LIE_LOCAL_NAME,         /* local header names another file */
  LIE_CD_SIGNATURE,
  LIE_ENTRY_COUNT,        /* 2^40 entries */
  LIE_OVERLAP,            /* a storage's size reaches into the next entry */
  N_LIES
} Lie;

typedef struct {
  uint8_t *b;
  size_t   n, cap;
} Buf;

static void
put (Buf *b, const void *p, size_t n)
{
  if (b->n + n > b->cap)
    {
      b->cap = (b->n + n) * 2 + 64;
      b->b = realloc (b->b, b->cap);
      if (b->b == NULL)
        abort ();
    }
  memcpy (b->b + b->n, p, n);
  b->n += n;
}

static void
put16 (Buf *b, uint32_t v)
{
  uint8_t x[2] = { (uint8_t) v, (uint8_t) (v >> 8) };
  put (b, x, 2);
}

static void
put32 (Buf *b, uint32_t v)
{
  put16 (b, v & 0xffff);
  put16 (b, v >> 16);
}

static void
put64 (Buf *b, uint64_t v)
{
  put32 (b, (uint32_t) v);
  put32 (b, (uint32_t) (v >> 32));
}

/* A torch.save-like archive: data aligned to 64 with "FB" padding, zero
 * sizes in local headers plus data descriptors, every size and offset of
 * the central directory moved into ZIP64 extras, a ZIP64 end record. */
static Buf
build_zip64 (const uint8_t *pkl, size_t pkl_len, Lie lie)
{
  static const float storage[12] = { 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11 };
  static const uint16_t halves[4] = { 0x0000, 0x3c00, 0x4000, 0x4200 };
  const char *names[3] = { "zz/data.pkl", "zz/data/0", "zz/data/1" };
  const void *data[3] = { pkl, storage, halves };
  size_t sizes[3] = { pkl_len, sizeof storage, sizeof halves };
  uint64_t offsets[3], cd_start, cd_len, eocd64;
  Buf b = { 0 };

  for (int i = 0; i < 3; i++)
    {
      size_t nl = strlen (names[i]), pad;
      offsets[i] = b.n;
      put32 (&b, 0x04034b50);
      put16 (&b, 45);
      put16 (&b, 0x0808);
      put16 (&b, 0);
      put32 (&b, 0);
      put32 (&b, 0);
      put32 (&b, 0);
      put32 (&b, 0);
      pad = (64 - (b.n + 4 + nl + 4) % 64) % 64;
      put16 (&b, (uint32_t) nl);
      put16 (&b, (uint32_t) (4 + pad));
      if (lie == LIE_LOCAL_NAME && i == 1)
        put (&b, "zz/data/9", nl);
      else
        put (&b, names[i], nl);
      put16 (&b, 0x4246);
      put16 (&b, (uint32_t) pad);
      for (size_t k = 0; k < pad; k++)
        put (&b, "Z", 1);
      put (&b, data[i], sizes[i]);
      put32 (&b, 0x08074b50);
      put32 (&b, 0);
      put32 (&b, (uint32_t) sizes[i]);
      put32 (&b, (uint32_t) sizes[i]);
    }
  cd_start = b.n;
  for (int i = 0; i < 3; i++)
    {
      size_t nl = strlen (names[i]);
      uint64_t usize = sizes[i], off = offsets[i];
      int with_extra = lie != LIE_ZIP64_EXTRA_MISSING;
      if (lie == LIE_ZIP64_SIZE && i == 1)
        usize = 1ull << 40;
      if (lie == LIE_ZIP64_OFFSET && i == 1)
        off = 1ull << 36;
      if (lie == LIE_OVERLAP && i == 1)
        usize += 100;
      put32 (&b, lie == LIE_CD_SIGNATURE && i == 1 ? 0x02014b51 : 0x02014b50);
      put16 (&b, 45);
      put16 (&b, 45);
      put16 (&b, 0x0808);
      put16 (&b, 0);
      put32 (&b, 0);
      put32 (&b, 0);
      put32 (&b, 0xffffffff);
      put32 (&b, 0xffffffff);
      put16 (&b, (uint32_t) nl);
      put16 (&b, with_extra ? 28 : 0);
      put16 (&b, 0);
      put16 (&b, 0);
      put16 (&b, 0);
      put32 (&b, 0);
      put32 (&b, 0xffffffff);
      put (&b, names[i], nl);
      if (with_extra)
        {
          put16 (&b, 0x0001);
          put16 (&b, 24);
          put64 (&b, usize);
          put64 (&b, usize);
          put64 (&b, off);
        }
    }
  cd_len = b.n - cd_start;
  eocd64 = b.n;
  put32 (&b, 0x06064b50);
  put64 (&b, 44);
  put16 (&b, 45);
  put16 (&b, 45);
  put32 (&b, 0);
  put32 (&b, 0);
  put64 (&b, lie == LIE_ENTRY_COUNT ? 1ull << 40 : lie == LIE_EOCD64_DISAGREES ? 2 : 3);
  put64 (&b, lie == LIE_ENTRY_COUNT ? 1ull << 40 : lie == LIE_EOCD64_DISAGREES ? 2 : 3);
  put64 (&b, cd_len);
  put64 (&b, lie == LIE_CD_OFFSET ? 64 : cd_start);
  put32 (&b, 0x07064b50);
  put32 (&b, 0);
  put64 (&b, lie == LIE_EOCD64_PAST_END ? b.n + 4096 : eocd64);
  put32 (&b, 1);
  put32 (&b, 0x06054b50);
  put16 (&b, 0);
  put16 (&b, 0);
  put16 (&b, lie == LIE_EOCD64_DISAGREES ? 3 : 0xffff);
  put16 (&b, lie == LIE_EOCD64_DISAGREES ? 3 : 0xffff);
  put32 (&b, 0xffffffff);
  put32 (&b, 0xffffffff);
  put16 (&b, 0);
  return b;
}

static void
check_zip64 (void)
{
  char *p = path_join (fixtures, "seeds/pickle/handmade.pkl");
  size_t pkl_len = 0;
  uint8_t *pkl = read_file (p, &pkl_len);
  static const char *const expect[N_LIES] = {
    [LIE_ZIP64_SIZE] = "runs past the end",
    [LIE_ZIP64_OFFSET] = "local header",
    [LIE_ZIP64_EXTRA_MISSING] = "ZIP64 field",
    [LIE_EOCD64_PAST_END] = "ZIP64 locator",
    [LIE_EOCD64_DISAGREES] = "disagree",
    [LIE_CD_OFFSET] = "central directory record",
    [LIE_LOCAL_NAME] = "disagrees with the directory",
    [LIE_CD_SIGNATURE] = "central directory record 1",
    [LIE_ENTRY_COUNT] = "entries",
    [LIE_OVERLAP] = "overlap",
  };

  CHECK (pkl != NULL, "cannot read %s", p);
  for (int lie = 0; pkl != NULL && lie < N_LIES; lie++)
    {
      Buf b = build_zip64 (pkl, pkl_len, (Lie) lie);
      uint8_t *exact = malloc (b.n);
      TsrError err;
      TsrStatus st;
      uint64_t acc = 0;

      set_case ("zip64 lie %d", lie);
      memcpy (exact, b.b, b.n);
      memset (&err, 0, sizeof err);
      st = tsr_torchzip_parse (exact, b.n, "zip64", touch_sink, &acc, &err);
      if (lie == LIE_NONE)
        {
          char tmp[] = "/tmp/tsr-test-zip64-XXXXXX";
          int fd = mkstemp (tmp);
          TsrCheckpoint *ck = NULL;
          CHECK (st == TSR_OK, "a valid ZIP64 archive fails: %s", err.message);
          if (fd >= 0)
            {
              close (fd);
              write_file (tmp, b.b, b.n);
              if (tsr_checkpoint_open (tmp, &ck, &err) == TSR_OK)
                {
                  const TsrCkptTensor *a = tsr_checkpoint_find (ck, "a");
                  CHECK (a && a->n_dims == 2 && a->shape[0] == 3 && a->shape[1] == 4 && element (a, 7) == 7.0
                         && (uintptr_t) a->data % 64 == 0,
                         "tensor a from the ZIP64 archive");
                }
              else
                fail ("open: %s", err.message);
              tsr_checkpoint_close (ck);
              unlink (tmp);
            }
        }
      else
        {
          CHECK (st != TSR_OK, "the lie was believed");
          CHECK (expect[lie] != NULL && strstr (err.message, expect[lie]) != NULL, "message \"%s\" lacks \"%s\"",
                 err.message, expect[lie] ? expect[lie] : "?");
          if (getenv ("TSR_TEST_VERBOSE"))
            fprintf (stderr, "  zip64 lie %d: %s\n", lie, err.message);
        }
      free (exact);
      free (b.b);
    }
  free (pkl);
  free (p);
}

/* The pickle parser alone, on the raw data.pkl of a real torch.save file. */
static TsrStatus
count_sink (void *user_data, const TsrPickleTensor *t, TsrError *err)
{
  int *n = user_data;
  (void) t;
  (void) err;
  (*n)++;
  return TSR_OK;
}

static void
check_raw_pickle (void)
{
  char *p = path_join (fixtures, "seeds/pickle/data.pkl");
  size_t len = 0;
  uint8_t *buf = read_file (p, &len);
  TsrError err;
  int n = 0;

  set_case ("raw data.pkl");
  CHECK (buf != NULL && tsr_pickle_parse (buf, len, "data.pkl", count_sink, &n, &err) == TSR_OK && n == 4,
         "parse: %d tensors, %s", n, buf ? err.message : "unreadable");
  /* Every prefix is a truncated pickle. */
  for (size_t cut = 0; buf != NULL && cut < len; cut++)
    {
      uint8_t *copy = malloc (cut ? cut : 1);
      memcpy (copy, buf, cut);
      n = 0;
      CHECK (tsr_pickle_parse (copy, cut, "data.pkl", count_sink, &n, &err) != TSR_OK, "cut at %zu parsed", cut);
      free (copy);
    }
  free (buf);
  free (p);
}

/* Hostile pickles that try to make the parser spend memory or time. */
static void
check_limits (void)
{
  static const struct { const char *name; size_t n_fill; uint8_t fill; const char *tail; size_t tail_len;
                        TsrStatus status; const char *contains; } cases[] = {
    { "deep MARKs", 100, '(', "", 0, TSR_ETOOLARGE, "MARKs nest deeper" },
    { "endless stack", (1u << 20) + 8, 'N', ".", 1, TSR_ETOOLARGE, "stack grows past its limit" },
    { "huge BINUNICODE8", 0, 0, "\x8d\xff\xff\xff\xff\xff\xff\xff\x7f", 9, TSR_EFORMAT, "runs past the end" },
    { "wide LONG1", 0, 0, "\x8a\x09\x01\x02\x03\x04\x05\x06\x07\x08\x09", 11, TSR_EFORMAT, "wider than 64" },
    { "GLOBAL without newline", 0, 0, "ctorch FloatStorage", 19, TSR_EFORMAT, "unterminated" },
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
    {
      size_t len = 2 + cases[i].n_fill + cases[i].tail_len;
      uint8_t *buf = malloc (len);
      TsrError err;
      TsrStatus st;
      int n = 0;

      set_case ("limit: %s", cases[i].name);
      buf[0] = 0x80;
      buf[1] = 2;
      memset (buf + 2, cases[i].fill, cases[i].n_fill);
      memcpy (buf + 2 + cases[i].n_fill, cases[i].tail, cases[i].tail_len);
      st = tsr_pickle_parse (buf, len, "limits", count_sink, &n, &err);
      CHECK (st == cases[i].status && strstr (err.message, cases[i].contains) != NULL,
             "status %s, message \"%s\", want \"%s\"", tsr_status_name (st), err.message, cases[i].contains);
      free (buf);
    }
}

int
main (int argc, char **argv)
{
  static const char *const names[] = {
    "bin-f32", "bin-f16", "bin-bf16-sharded", "st-f32-sharded", "st-f16-sharded", "st-bf16",
  };
  if (argc != 2)
    {
      fprintf (stderr, "usage: %s FIXTURES_DIR\n", argv[0]);
      return 2;
    }
  fixtures = argv[1];

  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
    check_fixture (names[i]);
  check_formats_agree ();
  check_direct_paths ();
  check_json_helper ();
  check_bad_files ();
  check_raw_pickle ();
  check_limits ();
  check_zip64 ();
  check_truncation ("seeds/pickle/state-dict.bin", 1);
  check_truncation ("seeds/safetensors/mixed.safetensors", 1);
  check_truncation ("bin-f16/pytorch_model.bin", 997);
  check_truncation ("st-bf16/model.safetensors", 997);
  check_mutations ("seeds/pickle/state-dict.bin", 4000);
  check_mutations ("seeds/pickle/views.bin", 2000);
  check_mutations ("seeds/safetensors/mixed.safetensors", 4000);

  printf ("%d checks, %d failures\n", n_checks, n_failures);
  return n_failures == 0 ? 0 : 1;
}
