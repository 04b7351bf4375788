/* SPDX-License-Identifier: GPL-3.0-or-later
 *
 * tsr-kernels-scalar.c — the plain-C kernels: the reference every SIMD
 * path is tested against, and the path for CPUs without one.
 */
#include <pthread.h>
#include <math.h>
#include <string.h>

#include "tsr-dtype.h"
#include "tsr-kernels.h"

/* Every f16 value as f32, built once: the conversion function per element
 * would make the scalar f16 dot ten times slower than the memory it reads. */
static float f16_table[1 << 16];
static pthread_once_t f16_once = PTHREAD_ONCE_INIT;

static void
f16_table_init (void)
{
  for (uint32_t h = 0; h < (1u << 16); h++)
    f16_table[h] = tsr_f16_to_f32 ((uint16_t) h);
}

static inline float
bf16_value (const unsigned char *p)
{
  uint32_t u = (uint32_t) (p[0] | (p[1] << 8)) << 16;
  float f;
  memcpy (&f, &u, 4);
  return f;
}

static float
dot_f32 (const void *w, const void *a, int64_t k)
{
  const float *x = w, *y = a;
  float s = 0.0f;
  for (int64_t i = 0; i < k; i++)
    s += x[i] * y[i];
  return s;
}

static float
dot_f16 (const void *w, const void *a, int64_t k)
{
  const unsigned char *x = w;
  const float *y = a;
  float s = 0.0f;
  pthread_once (&f16_once, f16_table_init);
  for (int64_t i = 0; i < k; i++)
    s += f16_table[x[2 * i] | (x[2 * i + 1] << 8)] * y[i];
  return s;
}

static float
dot_bf16 (const void *w, const void *a, int64_t k)
{
  const unsigned char *x = w;
  const float *y = a;
  float s = 0.0f;
  for (int64_t i = 0; i < k; i++)
    s += bf16_value (x + 2 * i) * y[i];
  return s;
}

static float
scale_of (const unsigned char *block)
{
  uint16_t h;
  memcpy (&h, block, 2);
  return tsr_f16_to_f32 (h);
}

/* Integer sums per block, one float multiply-add per block: what ggml does,
 * so our q8_0 results track its results. */
static float
dot_q8_0 (const void *w, const void *a, int64_t k)
{
  const unsigned char *x = w, *y = a;
  float s = 0.0f;
  for (int64_t b = 0; b < k / TSR_QK; b++, x += sizeof (TsrBlockQ8_0), y += sizeof (TsrBlockQ8_0))
    {
      const int8_t *qx = (const int8_t *) (x + 2), *qy = (const int8_t *) (y + 2);
      int32_t sum = 0;
      for (int j = 0; j < TSR_QK; j++)
        sum += (int32_t) qx[j] * qy[j];
      s += (float) sum * (scale_of (x) * scale_of (y));
    }
  return s;
}

static float
dot_q4_0 (const void *w, const void *a, int64_t k)
{
  const unsigned char *x = w, *y = a;
  float s = 0.0f;
  for (int64_t b = 0; b < k / TSR_QK; b++, x += sizeof (TsrBlockQ4_0), y += sizeof (TsrBlockQ8_0))
    {
      const uint8_t *qx = x + 2;
      const int8_t *qy = (const int8_t *) (y + 2);
      int32_t sum = 0;
      for (int j = 0; j < TSR_QK / 2; j++)
        {
          sum += ((int32_t) (qx[j] & 0x0f) - 8) * qy[j];
          sum += ((int32_t) (qx[j] >> 4) - 8) * qy[j + TSR_QK / 2];
        }
      s += (float) sum * (scale_of (x) * scale_of (y));
    }
  return s;
}

static void
quantize_q8_0 (const float *x, void *dst, int64_t k)
{
  tsr_quantize_row_q8_0 (x, dst, (size_t) k);
}

static void
deq_f32 (const void *w, float *y, int64_t k)
{
  memcpy (y, w, (size_t) k * sizeof (float));
}

static void
deq_f16 (const void *w, float *y, int64_t k)
{
  const unsigned char *x = w;
  pthread_once (&f16_once, f16_table_init);
  for (int64_t i = 0; i < k; i++)
    y[i] = f16_table[x[2 * i] | (x[2 * i + 1] << 8)];
}

static void
deq_bf16 (const void *w, float *y, int64_t k)
{
  const unsigned char *x = w;
  for (int64_t i = 0; i < k; i++)
    y[i] = bf16_value (x + 2 * i);
}

static void
deq_q8_0 (const void *w, float *y, int64_t k)
{
  tsr_dequantize_row_q8_0 (w, y, (size_t) k);
}

static void
deq_q4_0 (const void *w, float *y, int64_t k)
{
  tsr_dequantize_row_q4_0 (w, y, (size_t) k);
}

/* As HF computes it in f32: subtract the maximum, exponentiate, divide
 * by the sum. */
static void
softmax (float *s, int64_t n)
{
  float mx = s[0], sum = 0.0f;
  for (int64_t i = 1; i < n; i++)
    mx = s[i] > mx ? s[i] : mx;
  for (int64_t i = 0; i < n; i++)
    {
      s[i] = expf (s[i] - mx);
      sum += s[i];
    }
  for (int64_t i = 0; i < n; i++)
    s[i] /= sum;
}

static void
silu_mul (float *g, const float *u, int64_t n)
{
  for (int64_t i = 0; i < n; i++)
    g[i] = g[i] / (1.0f + expf (-g[i])) * u[i];
}

const TsrKernelTable tsr_kernels_scalar = {
  .dot = { dot_f32, dot_f16, dot_bf16, dot_q8_0, dot_q4_0 },
  .quantize_q8_0 = quantize_q8_0,
  .dequantize = { deq_f32, deq_f16, deq_bf16, deq_q8_0, deq_q4_0 },
  .softmax = softmax,
  .silu_mul = silu_mul,
};
