/* SPDX-License-Identifier: GPL-3.0-or-later
 *
 * tsr-dtype.c — element types: sizes, f16/bf16 conversions, and the q8_0 /
 * q4_0 block formats. Scalar reference code: any SIMD kernel added later
 * must produce the same bytes when quantising and the same floats when
 * dequantising.
 */
#include "tsr-dtype.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

#include "tsr-error.h"

_Static_assert (sizeof (TsrBlockQ8_0) == 34, "q8_0 block must be 34 bytes, as in ggml");
_Static_assert (sizeof (TsrBlockQ4_0) == 18, "q4_0 block must be 18 bytes, as in ggml");
_Static_assert (sizeof (float) == 4, "float must be IEEE binary32");

/* ==== Type facts ======================================================== */

typedef struct {
  TsrDType    type;
  const char *name;
  size_t      block_values;
  size_t      block_bytes;
} DTypeFacts;

static const DTypeFacts dtype_facts[] = {
  { TSR_DTYPE_F32,  "f32",  1,      4 },
  { TSR_DTYPE_F16,  "f16",  1,      2 },
  { TSR_DTYPE_BF16, "bf16", 1,      2 },
  { TSR_DTYPE_Q8_0, "q8_0", TSR_QK, sizeof (TsrBlockQ8_0) },
  { TSR_DTYPE_Q4_0, "q4_0", TSR_QK, sizeof (TsrBlockQ4_0) },
};

static const DTypeFacts *
facts (int type)
{
  for (size_t i = 0; i < sizeof dtype_facts / sizeof dtype_facts[0]; i++)
    if ((int) dtype_facts[i].type == type)
      return &dtype_facts[i];
  return NULL;
}

int
tsr_dtype_is_valid (int type)
{
  return facts (type) != NULL;
}

const char *
tsr_dtype_name (TsrDType type)
{
  const DTypeFacts *f = facts ((int) type);
  return f ? f->name : NULL;
}

int
tsr_dtype_from_name (const char *name, TsrDType *type)
{
  if (name == NULL)
    return 0;
  for (size_t i = 0; i < sizeof dtype_facts / sizeof dtype_facts[0]; i++)
    if (strcmp (dtype_facts[i].name, name) == 0)
      {
        if (type)
          *type = dtype_facts[i].type;
        return 1;
      }
  return 0;
}

size_t
tsr_dtype_block_values (TsrDType type)
{
  const DTypeFacts *f = facts ((int) type);
  return f ? f->block_values : 0;
}

size_t
tsr_dtype_block_bytes (TsrDType type)
{
  const DTypeFacts *f = facts ((int) type);
  return f ? f->block_bytes : 0;
}

TsrStatus
tsr_dtype_row_bytes (TsrDType type, uint64_t n, uint64_t *bytes, TsrError *err)
{
  const DTypeFacts *f = facts ((int) type);
  uint64_t blocks;

  if (bytes)
    *bytes = 0;
  if (f == NULL)
    return tsr_error_set (err, TSR_EINVAL, "element type %d is not one Tessera knows "
                          "(f32, f16, bf16, q8_0, q4_0)", (int) type);
  if (n % f->block_values != 0)
    return tsr_error_set (err, TSR_EINVAL, "%llu values cannot be stored as %s: "
                          "the count must be a multiple of its block of %zu",
                          (unsigned long long) n, f->name, f->block_values);
  blocks = n / f->block_values;
  if (blocks > UINT64_MAX / f->block_bytes)
    return tsr_error_set (err, TSR_ETOOLARGE, "%llu values of %s take more than 2^64 bytes",
                          (unsigned long long) n, f->name);
  if (bytes)
    *bytes = blocks * f->block_bytes;
  return TSR_OK;
}

/* ==== f16 and bf16 ====================================================== */

static uint32_t
f32_bits (float x)
{
  uint32_t u;
  memcpy (&u, &x, sizeof u);
  return u;
}

static float
bits_f32 (uint32_t u)
{
  float x;
  memcpy (&x, &u, sizeof x);
  return x;
}

uint16_t
tsr_f32_to_f16 (float x)
{
  uint32_t u = f32_bits (x);
  uint32_t sign = (u >> 16) & 0x8000u;
  uint32_t a = u & 0x7fffffffu;

  if (a > 0x7f800000u)
    /* NaN: keep the top payload bits and force the quiet bit, so a
     * signalling NaN whose payload sits in the low bits stays a NaN. */
    return (uint16_t) (sign | 0x7e00u | ((a >> 13) & 0x3ffu));

  if (a >= 0x38800000u)
    {
      /* Normal in f16 (|x| ≥ 2^-14), or too large. Re-bias the exponent
       * (127 → 15) in place, then round the 13 dropped mantissa bits to
       * nearest, ties to even. A carry out of the mantissa correctly bumps
       * the exponent, and anything that lands at or beyond the all-ones
       * exponent is infinity (this includes +inf itself). */
      uint32_t m = a - (112u << 23);
      m += 0x0fffu + ((m >> 13) & 1u);
      m >>= 13;
      if (m >= 0x7c00u)
        m = 0x7c00u;
      return (uint16_t) (sign | m);
    }

  if (a <= 0x33000000u)
    /* |x| ≤ 2^-25, half the smallest subnormal: rounds to zero (the
     * exact half is a tie and zero is the even neighbour). */
    return (uint16_t) sign;

  {
    /* Subnormal f16: the result counts units of 2^-24. The f32 value is
     * mant·2^(e-150) with the implicit bit restored, so the unit count is
     * mant >> (126 - e), rounded to nearest even on the dropped bits. */
    uint32_t e = a >> 23;
    uint32_t mant = (a & 0x7fffffu) | 0x800000u;
    uint32_t shift = 126u - e;                    /* 14 … 24 */
    uint32_t q = mant >> shift;
    uint32_t rem = mant & ((1u << shift) - 1u);
    uint32_t half = 1u << (shift - 1u);
    if (rem > half || (rem == half && (q & 1u)))
      q++;
    return (uint16_t) (sign | q);
  }
}

float
tsr_f16_to_f32 (uint16_t h)
{
  uint32_t sign = ((uint32_t) h & 0x8000u) << 16;
  uint32_t e = ((uint32_t) h >> 10) & 0x1fu;
  uint32_t m = (uint32_t) h & 0x3ffu;

  if (e == 0)
    {
      /* Zero or subnormal: m·2^-24 is exact in f32. */
      float v = (float) m * 0x1p-24f;
      return sign ? -v : v;
    }
  if (e == 31)
    return bits_f32 (sign | 0x7f800000u | (m << 13));
  return bits_f32 (sign | ((e + 112u) << 23) | (m << 13));
}

uint16_t
tsr_f32_to_bf16 (float x)
{
  uint32_t u = f32_bits (x);
  /* As PyTorch's c10::BFloat16 does: every NaN becomes the one positive
   * quiet NaN 0x7fc0, everything else rounds to nearest, ties to even,
   * which carries into the exponent and up to infinity on its own. */
  if ((u & 0x7fffffffu) > 0x7f800000u)
    return 0x7fc0u;
  u += 0x7fffu + ((u >> 16) & 1u);
  return (uint16_t) (u >> 16);
}

float
tsr_bf16_to_f32 (uint16_t h)
{
  return bits_f32 ((uint32_t) h << 16);
}

/* ==== q8_0 and q4_0 ===================================================== */

void
tsr_quantize_row_q8_0 (const float *x, void *dst, size_t n)
{
  unsigned char *y = dst;
  size_t nb = n / TSR_QK;

  for (size_t i = 0; i < nb; i++, x += TSR_QK, y += sizeof (TsrBlockQ8_0))
    {
      float amax = 0.0f;
      for (int j = 0; j < TSR_QK; j++)
        {
          float a = fabsf (x[j]);
          if (a > amax)
            amax = a;
        }
      /* ggml's rule: the f32 scale (not its f16 rounding) quantises, and
       * the division happens once; the quants are x·(1/d). */
      float d = amax / 127.0f;
      float id = d != 0.0f ? 1.0f / d : 0.0f;
      uint16_t dh = tsr_f32_to_f16 (d);
      memcpy (y, &dh, sizeof dh);
      for (int j = 0; j < TSR_QK; j++)
        {
          float v = roundf (x[j] * id);
          /* For finite input |v| ≤ 127 already; the clamp only keeps
           * NaN/inf input from being undefined behaviour in the cast. */
          if (!(v >= -127.0f))
            v = v != v ? 0.0f : -127.0f;
          else if (v > 127.0f)
            v = 127.0f;
          y[2 + j] = (unsigned char) (int8_t) v;
        }
    }
}

/* Blocks are read through bytes: a GGUF with general.alignment 1 may place
 * them at odd addresses, where a uint16_t field read is undefined. */
static float
block_scale (const unsigned char *block)
{
  uint16_t h;
  memcpy (&h, block, sizeof h);
  return tsr_f16_to_f32 (h);
}

void
tsr_dequantize_row_q8_0 (const void *src, float *y, size_t n)
{
  const unsigned char *b = src;
  size_t nb = n / TSR_QK;

  for (size_t i = 0; i < nb; i++, y += TSR_QK, b += sizeof (TsrBlockQ8_0))
    {
      float d = block_scale (b);
      const int8_t *qs = (const int8_t *) (b + 2);
      for (int j = 0; j < TSR_QK; j++)
        y[j] = (float) qs[j] * d;
    }
}

void
tsr_quantize_row_q4_0 (const float *x, void *dst, size_t n)
{
  unsigned char *y = dst;
  size_t nb = n / TSR_QK;

  for (size_t i = 0; i < nb; i++, x += TSR_QK, y += sizeof (TsrBlockQ4_0))
    {
      float amax = 0.0f, max = 0.0f;
      uint8_t q[TSR_QK];

      /* The signed value of largest magnitude (the first one on ties)
       * maps to quant 0, i.e. −8·d, exactly; the other end of the range
       * then reaches only +7·d. */
      for (int j = 0; j < TSR_QK; j++)
        if (fabsf (x[j]) > amax)
          {
            amax = fabsf (x[j]);
            max = x[j];
          }
      float d = max / -8.0f;
      float id = d != 0.0f ? 1.0f / d : 0.0f;
      uint16_t dh = tsr_f32_to_f16 (d);
      memcpy (y, &dh, sizeof dh);
      for (int j = 0; j < TSR_QK; j++)
        {
          /* ggml truncates x/d + 8.5 toward zero and caps at 15. For finite
           * input the sum is ≥ 0 (up to rounding), where truncation is the
           * floor; the guards give NaN/inf input a defined result. */
          float v = x[j] * id + 8.5f;
          if (!(v > 0.0f))
            q[j] = 0;
          else if (v >= 15.0f)
            q[j] = 15;
          else
            q[j] = (uint8_t) v;
        }
      for (int j = 0; j < TSR_QK / 2; j++)
        y[2 + j] = (uint8_t) (q[j] | (q[j + TSR_QK / 2] << 4));
    }
}

void
tsr_dequantize_row_q4_0 (const void *src, float *y, size_t n)
{
  const unsigned char *b = src;
  size_t nb = n / TSR_QK;

  for (size_t i = 0; i < nb; i++, y += TSR_QK, b += sizeof (TsrBlockQ4_0))
    {
      float d = block_scale (b);
      const uint8_t *qs = b + 2;
      for (int j = 0; j < TSR_QK / 2; j++)
        {
          y[j]              = (float) ((int) (qs[j] & 0x0f) - 8) * d;
          y[j + TSR_QK / 2] = (float) ((int) (qs[j] >> 4) - 8) * d;
        }
    }
}

/* ==== Whole rows, any type ============================================= */

static TsrStatus
check_count (TsrDType type, size_t n, TsrError *err)
{
  return tsr_dtype_row_bytes (type, (uint64_t) n, NULL, err);
}

static int
f16_is_finite (uint16_t h)
{
  return (h & 0x7c00u) != 0x7c00u;
}

TsrStatus
tsr_quantize_row (TsrDType type, const float *x, void *dst, size_t n, TsrError *err)
{
  TsrStatus st = check_count (type, n, err);
  if (st != TSR_OK)
    return st;

  /* A NaN or infinity in a weight would spread through every block that
   * touches it; refusing here names the first bad value instead. */
  for (size_t i = 0; i < n; i++)
    if (!isfinite (x[i]))
      return tsr_error_set (err, TSR_EINVAL, "value %zu is %g, not a finite number; "
                            "the source tensor is damaged", i, (double) x[i]);

  switch (type)
    {
    case TSR_DTYPE_F32:
      memcpy (dst, x, n * sizeof (float));
      return TSR_OK;
    case TSR_DTYPE_F16:
      {
        unsigned char *y = dst;
        for (size_t i = 0; i < n; i++)
          {
            uint16_t h = tsr_f32_to_f16 (x[i]);
            memcpy (y + 2 * i, &h, 2);
            if (!f16_is_finite (h))
              return tsr_error_set (err, TSR_EINVAL, "value %zu (%g) is beyond the f16 range "
                                    "(±65504); convert to bf16 or f32 instead", i, (double) x[i]);
          }
        return TSR_OK;
      }
    case TSR_DTYPE_BF16:
      {
        unsigned char *y = dst;
        for (size_t i = 0; i < n; i++)
          {
            uint16_t h = tsr_f32_to_bf16 (x[i]);
            memcpy (y + 2 * i, &h, 2);
            if ((h & 0x7f80u) == 0x7f80u)
              return tsr_error_set (err, TSR_EINVAL, "value %zu (%g) rounds beyond the bf16 range; "
                                    "convert to f32 instead", i, (double) x[i]);
          }
        return TSR_OK;
      }
    case TSR_DTYPE_Q8_0:
    case TSR_DTYPE_Q4_0:
      {
        int q8 = type == TSR_DTYPE_Q8_0;
        if (q8)
          tsr_quantize_row_q8_0 (x, dst, n);
        else
          tsr_quantize_row_q4_0 (x, dst, n);
        for (size_t b = 0; b < n / TSR_QK; b++)
          {
            size_t bytes = q8 ? sizeof (TsrBlockQ8_0) : sizeof (TsrBlockQ4_0);
            uint16_t d;
            memcpy (&d, (unsigned char *) dst + b * bytes, sizeof d);
            if (!f16_is_finite (d))
              return tsr_error_set (err, TSR_EINVAL, "block %zu (values %zu…%zu) has a scale beyond "
                                    "the f16 range of %s; convert to bf16 or f32 instead",
                                    b, b * TSR_QK, b * TSR_QK + TSR_QK - 1, q8 ? "q8_0" : "q4_0");
          }
        return TSR_OK;
      }
    }
  return tsr_error_set (err, TSR_EINVAL, "element type %d is not one Tessera knows", (int) type);
}

TsrStatus
tsr_dequantize_row (TsrDType type, const void *src, float *y, size_t n, TsrError *err)
{
  TsrStatus st = check_count (type, n, err);
  if (st != TSR_OK)
    return st;

  switch (type)
    {
    case TSR_DTYPE_F32:
      memcpy (y, src, n * sizeof (float));
      return TSR_OK;
    case TSR_DTYPE_F16:
      {
        /* GGUF data is only 2-byte aligned for these types in the worst
         * case; memcpy keeps the read well-defined either way. */
        const unsigned char *p = src;
        for (size_t i = 0; i < n; i++)
          {
            uint16_t h;
            memcpy (&h, p + 2 * i, 2);
            y[i] = tsr_f16_to_f32 (h);
          }
        return TSR_OK;
      }
    case TSR_DTYPE_BF16:
      {
        const unsigned char *p = src;
        for (size_t i = 0; i < n; i++)
          {
            uint16_t h;
            memcpy (&h, p + 2 * i, 2);
            y[i] = tsr_bf16_to_f32 (h);
          }
        return TSR_OK;
      }
    case TSR_DTYPE_Q8_0:
      tsr_dequantize_row_q8_0 (src, y, n);
      return TSR_OK;
    case TSR_DTYPE_Q4_0:
      tsr_dequantize_row_q4_0 (src, y, n);
      return TSR_OK;
    }
  return tsr_error_set (err, TSR_EINVAL, "element type %d is not one Tessera knows", (int) type);
}
