/* SPDX-License-Identifier: GPL-3.0-or-later
 *
 * tsr-npy.c — NumPy .npy files of float32, the exchange format between
 * tessera-cli, the tests and the PyTorch reference (design.md). Written as
 * format 1.0, little-endian '<f4', C order, whatever the host's byte order.
 */
#include "tsr-npy.h"
#include "tsr-error.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const unsigned char npy_magic[6] = { 0x93, 'N', 'U', 'M', 'P', 'Y' };

/* numpy aligns the data to 64 bytes so it can be mapped and read in place. */
#define NPY_ALIGN 64
#define CHUNK_FLOATS 16384

static int
host_is_little_endian (void)
{
  const uint16_t one = 1;
  unsigned char b;
  memcpy (&b, &one, 1);
  return b == 1;
}

static void
to_little_endian (const float *src, size_t n, unsigned char *dst)
{
  for (size_t i = 0; i < n; i++)
    {
      uint32_t u;
      memcpy (&u, &src[i], 4);
      dst[4 * i + 0] = (unsigned char) u;
      dst[4 * i + 1] = (unsigned char) (u >> 8);
      dst[4 * i + 2] = (unsigned char) (u >> 16);
      dst[4 * i + 3] = (unsigned char) (u >> 24);
    }
}

TsrStatus
tsr_npy_write_f32 (const char *path, const float *data, int ndim, const size_t *shape, TsrError *err)
{
  char header[512];
  size_t len = 0, count = 1;
  unsigned char pre[10];
  FILE *f;
  int ok;

  if (path == NULL)
    return tsr_error_set (err, TSR_EINVAL, "No file name for the array was given (NULL).");
  if (ndim < 1 || ndim > TSR_NPY_MAX_DIMS || shape == NULL)
    return tsr_error_set (err, TSR_EINVAL,
                          "An array for “%s” needs 1 to %d dimensions, not %d.",
                          path, TSR_NPY_MAX_DIMS, ndim);
  for (int i = 0; i < ndim; i++)
    {
      if (shape[i] != 0 && count > SIZE_MAX / 4 / shape[i])
        return tsr_error_set (err, TSR_ETOOLARGE, "The array for “%s” is too large to write.", path);
      count *= shape[i];
    }
  if (data == NULL && count > 0)
    return tsr_error_set (err, TSR_EINVAL, "No data for “%s” was given (NULL).", path);

  len = (size_t) snprintf (header, sizeof header, "{'descr': '<f4', 'fortran_order': False, 'shape': (");
  for (int i = 0; i < ndim; i++)
    len += (size_t) snprintf (header + len, sizeof header - len, "%zu%s", shape[i],
                              ndim == 1 ? "," : i + 1 < ndim ? ", " : "");
  len += (size_t) snprintf (header + len, sizeof header - len, "), }");
  /* Spaces, then a newline, up to the alignment. */
  while ((sizeof pre + len + 1) % NPY_ALIGN != 0)
    header[len++] = ' ';
  header[len++] = '\n';

  memcpy (pre, npy_magic, sizeof npy_magic);
  pre[6] = 1;
  pre[7] = 0;
  pre[8] = (unsigned char) (len & 0xff);
  pre[9] = (unsigned char) (len >> 8);

  f = fopen (path, "wb");
  if (f == NULL)
    return tsr_error_set (err, TSR_EIO, "Could not create “%s”: %s.", path, strerror (errno));
  ok = fwrite (pre, 1, sizeof pre, f) == sizeof pre && fwrite (header, 1, len, f) == len;
  if (ok && host_is_little_endian ())
    ok = fwrite (data, sizeof (float), count, f) == count;
  else if (ok)
    {
      unsigned char buf[4 * CHUNK_FLOATS];
      for (size_t i = 0; ok && i < count; i += CHUNK_FLOATS)
        {
          size_t n = count - i < CHUNK_FLOATS ? count - i : CHUNK_FLOATS;
          to_little_endian (data + i, n, buf);
          ok = fwrite (buf, 4, n, f) == n;
        }
    }
  if (!ok)
    {
      int e = errno;
      fclose (f);
      remove (path);
      return tsr_error_set (err, TSR_EIO, "Could not write “%s”: %s.", path, strerror (e));
    }
  if (fclose (f) != 0)
    {
      int e = errno;
      remove (path);
      return tsr_error_set (err, TSR_EIO, "Could not write “%s”: %s.", path, strerror (e));
    }
  tsr_error_clear (err);
  return TSR_OK;
}

/* ---- Reading ------------------------------------------------------------- */

/* The value after 'key': in a header dict, or NULL. */
static const char *
header_value (const char *header, const char *key)
{
  char quoted[32];
  const char *p;
  snprintf (quoted, sizeof quoted, "'%s'", key);
  p = strstr (header, quoted);
  if (p == NULL)
    return NULL;
  p += strlen (quoted);
  while (*p == ' ')
    p++;
  if (*p != ':')
    return NULL;
  p++;
  while (*p == ' ')
    p++;
  return p;
}

static int
parse_shape (const char *p, TsrNpyF32 *arr)
{
  if (p == NULL || *p++ != '(')
    return 0;
  arr->ndim = 0;
  arr->count = 1;
  for (;;)
    {
      char *end;
      unsigned long long v;
      while (*p == ' ')
        p++;
      if (*p == ')')
        return 1;
      if (*p < '0' || *p > '9' || arr->ndim == TSR_NPY_MAX_DIMS)
        return 0;
      errno = 0;
      v = strtoull (p, &end, 10);
      if (errno != 0 || v > SIZE_MAX || (v != 0 && arr->count > SIZE_MAX / 4 / v))
        return 0;
      arr->shape[arr->ndim++] = (size_t) v;
      arr->count *= (size_t) v;
      p = end;
      while (*p == ' ')
        p++;
      if (*p == ',')
        p++;
      else if (*p != ')')
        return 0;
    }
}

TsrStatus
tsr_npy_read_f32 (const char *path, TsrNpyF32 *arr, TsrError *err)
{
  unsigned char pre[12];
  size_t hlen;
  char *header = NULL;
  const char *v;
  FILE *f;
  TsrStatus st = TSR_EFORMAT;

  if (arr == NULL)
    return tsr_error_set (err, TSR_EINVAL, "No place for the array was given (NULL).");
  memset (arr, 0, sizeof *arr);
  if (path == NULL)
    return tsr_error_set (err, TSR_EINVAL, "No file name was given (NULL).");
  f = fopen (path, "rb");
  if (f == NULL)
    return tsr_error_set (err, TSR_EIO, "Could not open “%s”: %s.", path, strerror (errno));

  if (fread (pre, 1, 10, f) != 10 || memcmp (pre, npy_magic, sizeof npy_magic) != 0 ||
      pre[6] < 1 || pre[6] > 3)
    {
      tsr_error_set (err, st, "“%s” is not a NumPy .npy file.", path);
      goto fail;
    }
  if (pre[6] == 1)
    {
      hlen = (size_t) pre[8] | (size_t) pre[9] << 8;
    }
  else
    {
      if (fread (pre + 10, 1, 2, f) != 2)
        {
          tsr_error_set (err, st, "“%s” ends inside its header.", path);
          goto fail;
        }
      hlen = (size_t) pre[8] | (size_t) pre[9] << 8 | (size_t) pre[10] << 16 | (size_t) pre[11] << 24;
    }
  if (hlen > 1 << 20 || (header = malloc (hlen + 1)) == NULL || fread (header, 1, hlen, f) != hlen)
    {
      tsr_error_set (err, st, "“%s” has a damaged header.", path);
      goto fail;
    }
  header[hlen] = '\0';

  v = header_value (header, "descr");
  if (v == NULL || (strncmp (v, "'<f4'", 5) != 0 && strncmp (v, "'float32'", 9) != 0))
    {
      tsr_error_set (err, st, "“%s” does not hold little-endian float32 ('<f4').", path);
      goto fail;
    }
  v = header_value (header, "fortran_order");
  if (v == NULL || strncmp (v, "False", 5) != 0)
    {
      tsr_error_set (err, st, "“%s” is not in C order.", path);
      goto fail;
    }
  if (!parse_shape (header_value (header, "shape"), arr))
    {
      tsr_error_set (err, st, "“%s” has no readable shape.", path);
      goto fail;
    }

  arr->data = malloc (arr->count > 0 ? arr->count * sizeof (float) : 1);
  if (arr->data == NULL)
    {
      st = TSR_ENOMEM;
      tsr_error_set (err, st, "No memory for the %zu floats of “%s”.", arr->count, path);
      goto fail;
    }
  if (fread (arr->data, sizeof (float), arr->count, f) != arr->count)
    {
      tsr_error_set (err, st, "“%s” ends before its %zu floats.", path, arr->count);
      goto fail;
    }
  if (!host_is_little_endian ())
    for (size_t i = 0; i < arr->count; i++)
      {
        unsigned char *b = (unsigned char *) &arr->data[i];
        uint32_t u = (uint32_t) b[0] | (uint32_t) b[1] << 8 | (uint32_t) b[2] << 16 | (uint32_t) b[3] << 24;
        memcpy (b, &u, 4);
      }
  free (header);
  fclose (f);
  tsr_error_clear (err);
  return TSR_OK;

fail:
  free (header);
  free (arr->data);
  memset (arr, 0, sizeof *arr);
  fclose (f);
  return st;
}
