/* SPDX-License-Identifier: GPL-3.0-or-later
 *
 * tsr-kernels-avx2.c — AVX2 + FMA + F16C kernels. This file alone is built
 * with -mavx2 -mfma -mf16c; nothing here runs unless tsr_cpu() says the
 * CPU has all three. Each function has its twin in tsr-kernels-scalar.c,
 * and test-kernels compares the two.
 */
#include <immintrin.h>
#include "tsr-exp8.h"
#include <math.h>
#include <string.h>

#include "tsr-dtype.h"
#include "tsr-kernels.h"

static inline float
hsum (__m256 v)
{
  __m128 lo = _mm256_castps256_ps128 (v), hi = _mm256_extractf128_ps (v, 1);
  lo = _mm_add_ps (lo, hi);
  lo = _mm_add_ps (lo, _mm_movehl_ps (lo, lo));
  lo = _mm_add_ss (lo, _mm_movehdup_ps (lo));
  return _mm_cvtss_f32 (lo);
}

static inline __m256
load_f16x8 (const unsigned char *p)
{
  return _mm256_cvtph_ps (_mm_loadu_si128 ((const __m128i *) p));
}

static inline __m256
load_bf16x8 (const unsigned char *p)
{
  __m256i w = _mm256_cvtepu16_epi32 (_mm_loadu_si128 ((const __m128i *) p));
  return _mm256_castsi256_ps (_mm256_slli_epi32 (w, 16));
}

static inline float
scale_of (const unsigned char *block)
{
  uint16_t h;
  memcpy (&h, block, 2);
  return _cvtsh_ss (h);
}

/* ---- Dot products ----------------------------------------------------- */

static float
dot_f32 (const void *w, const void *a, int64_t k)
{
  const float *x = w, *y = a;
  __m256 s0 = _mm256_setzero_ps (), s1 = s0, s2 = s0, s3 = s0;
  int64_t i = 0;
  float s;
  for (; i + 32 <= k; i += 32)
    {
      s0 = _mm256_fmadd_ps (_mm256_loadu_ps (x + i), _mm256_loadu_ps (y + i), s0);
      s1 = _mm256_fmadd_ps (_mm256_loadu_ps (x + i + 8), _mm256_loadu_ps (y + i + 8), s1);
      s2 = _mm256_fmadd_ps (_mm256_loadu_ps (x + i + 16), _mm256_loadu_ps (y + i + 16), s2);
      s3 = _mm256_fmadd_ps (_mm256_loadu_ps (x + i + 24), _mm256_loadu_ps (y + i + 24), s3);
    }
  for (; i + 8 <= k; i += 8)
    s0 = _mm256_fmadd_ps (_mm256_loadu_ps (x + i), _mm256_loadu_ps (y + i), s0);
  s = hsum (_mm256_add_ps (_mm256_add_ps (s0, s1), _mm256_add_ps (s2, s3)));
  for (; i < k; i++)
    s += x[i] * y[i];
  return s;
}

static float
dot_f16 (const void *w, const void *a, int64_t k)
{
  const unsigned char *x = w;
  const float *y = a;
  __m256 s0 = _mm256_setzero_ps (), s1 = s0, s2 = s0, s3 = s0;
  int64_t i = 0;
  float s;
  for (; i + 32 <= k; i += 32)
    {
      s0 = _mm256_fmadd_ps (load_f16x8 (x + 2 * i), _mm256_loadu_ps (y + i), s0);
      s1 = _mm256_fmadd_ps (load_f16x8 (x + 2 * (i + 8)), _mm256_loadu_ps (y + i + 8), s1);
      s2 = _mm256_fmadd_ps (load_f16x8 (x + 2 * (i + 16)), _mm256_loadu_ps (y + i + 16), s2);
      s3 = _mm256_fmadd_ps (load_f16x8 (x + 2 * (i + 24)), _mm256_loadu_ps (y + i + 24), s3);
    }
  for (; i + 8 <= k; i += 8)
    s0 = _mm256_fmadd_ps (load_f16x8 (x + 2 * i), _mm256_loadu_ps (y + i), s0);
  s = hsum (_mm256_add_ps (_mm256_add_ps (s0, s1), _mm256_add_ps (s2, s3)));
  for (; i < k; i++)
    {
      uint16_t h;
      memcpy (&h, x + 2 * i, 2);
      s += _cvtsh_ss (h) * y[i];
    }
  return s;
}

static float
dot_bf16 (const void *w, const void *a, int64_t k)
{
  const unsigned char *x = w;
  const float *y = a;
  __m256 s0 = _mm256_setzero_ps (), s1 = s0, s2 = s0, s3 = s0;
  int64_t i = 0;
  float s;
  for (; i + 32 <= k; i += 32)
    {
      s0 = _mm256_fmadd_ps (load_bf16x8 (x + 2 * i), _mm256_loadu_ps (y + i), s0);
      s1 = _mm256_fmadd_ps (load_bf16x8 (x + 2 * (i + 8)), _mm256_loadu_ps (y + i + 8), s1);
      s2 = _mm256_fmadd_ps (load_bf16x8 (x + 2 * (i + 16)), _mm256_loadu_ps (y + i + 16), s2);
      s3 = _mm256_fmadd_ps (load_bf16x8 (x + 2 * (i + 24)), _mm256_loadu_ps (y + i + 24), s3);
    }
  for (; i + 8 <= k; i += 8)
    s0 = _mm256_fmadd_ps (load_bf16x8 (x + 2 * i), _mm256_loadu_ps (y + i), s0);
  s = hsum (_mm256_add_ps (_mm256_add_ps (s0, s1), _mm256_add_ps (s2, s3)));
  for (; i < k; i++)
    {
      uint32_t u = (uint32_t) (x[2 * i] | (x[2 * i + 1] << 8)) << 16;
      float f;
      memcpy (&f, &u, 4);
      s += f * y[i];
    }
  return s;
}

/* Σ x·y over 32 signed bytes as 8 float lanes. maddubs needs one unsigned
 * operand: |x| and y with x's sign give the same products, and no pair sum
 * can saturate since |x| ≤ 127. */
static inline __m256
dot_i8x32 (__m256i x, __m256i y)
{
  __m256i ax = _mm256_sign_epi8 (x, x);
  __m256i sy = _mm256_sign_epi8 (y, x);
  __m256i p16 = _mm256_maddubs_epi16 (ax, sy);
  __m256i p32 = _mm256_madd_epi16 (p16, _mm256_set1_epi16 (1));
  return _mm256_cvtepi32_ps (p32);
}

static inline __m256i
unpack_q4 (const unsigned char *qs)
{
  __m128i b = _mm_loadu_si128 ((const __m128i *) qs);
  __m128i m = _mm_set1_epi8 (0x0f);
  __m128i lo = _mm_and_si128 (b, m);
  __m128i hi = _mm_and_si128 (_mm_srli_epi16 (b, 4), m);
  return _mm256_sub_epi8 (_mm256_set_m128i (hi, lo), _mm256_set1_epi8 (8));
}

static float
dot_q8_0 (const void *w, const void *a, int64_t k)
{
  const unsigned char *x = w, *y = a;
  __m256 acc0 = _mm256_setzero_ps (), acc1 = acc0;
  int64_t nb = k / TSR_QK, b = 0;
  for (; b + 2 <= nb; b += 2, x += 2 * sizeof (TsrBlockQ8_0), y += 2 * sizeof (TsrBlockQ8_0))
    {
      __m256i qx0 = _mm256_loadu_si256 ((const __m256i *) (x + 2));
      __m256i qy0 = _mm256_loadu_si256 ((const __m256i *) (y + 2));
      __m256i qx1 = _mm256_loadu_si256 ((const __m256i *) (x + 36));
      __m256i qy1 = _mm256_loadu_si256 ((const __m256i *) (y + 36));
      acc0 = _mm256_fmadd_ps (_mm256_set1_ps (scale_of (x) * scale_of (y)), dot_i8x32 (qx0, qy0), acc0);
      acc1 = _mm256_fmadd_ps (_mm256_set1_ps (scale_of (x + 34) * scale_of (y + 34)),
                              dot_i8x32 (qx1, qy1), acc1);
    }
  for (; b < nb; b++, x += sizeof (TsrBlockQ8_0), y += sizeof (TsrBlockQ8_0))
    {
      __m256i qx = _mm256_loadu_si256 ((const __m256i *) (x + 2));
      __m256i qy = _mm256_loadu_si256 ((const __m256i *) (y + 2));
      acc0 = _mm256_fmadd_ps (_mm256_set1_ps (scale_of (x) * scale_of (y)), dot_i8x32 (qx, qy), acc0);
    }
  return hsum (_mm256_add_ps (acc0, acc1));
}

static float
dot_q4_0 (const void *w, const void *a, int64_t k)
{
  const unsigned char *x = w, *y = a;
  __m256 acc0 = _mm256_setzero_ps (), acc1 = acc0;
  int64_t nb = k / TSR_QK, b = 0;
  for (; b + 2 <= nb; b += 2, x += 2 * sizeof (TsrBlockQ4_0), y += 2 * sizeof (TsrBlockQ8_0))
    {
      __m256i qx0 = unpack_q4 (x + 2);
      __m256i qy0 = _mm256_loadu_si256 ((const __m256i *) (y + 2));
      __m256i qx1 = unpack_q4 (x + 20);
      __m256i qy1 = _mm256_loadu_si256 ((const __m256i *) (y + 36));
      acc0 = _mm256_fmadd_ps (_mm256_set1_ps (scale_of (x) * scale_of (y)), dot_i8x32 (qx0, qy0), acc0);
      acc1 = _mm256_fmadd_ps (_mm256_set1_ps (scale_of (x + 18) * scale_of (y + 34)),
                              dot_i8x32 (qx1, qy1), acc1);
    }
  for (; b < nb; b++, x += sizeof (TsrBlockQ4_0), y += sizeof (TsrBlockQ8_0))
    {
      __m256i qx = unpack_q4 (x + 2);
      __m256i qy = _mm256_loadu_si256 ((const __m256i *) (y + 2));
      acc0 = _mm256_fmadd_ps (_mm256_set1_ps (scale_of (x) * scale_of (y)), dot_i8x32 (qx, qy), acc0);
    }
  return hsum (_mm256_add_ps (acc0, acc1));
}

/* Activations are quantised by the scalar routine on every path: it is a
 * sliver of the work (M·K against N·K), and one routine means the SIMD dots
 * see exactly the bytes the scalar twin sees. */
static void
quantize_q8_0 (const float *x, void *dst, int64_t k)
{
  tsr_quantize_row_q8_0 (x, dst, (size_t) k);
}

/* ---- Dequantisation into f32 panels ---------------------------------- */

static void
deq_f32 (const void *w, float *y, int64_t k)
{
  memcpy (y, w, (size_t) k * sizeof (float));
}

static void
deq_f16 (const void *w, float *y, int64_t k)
{
  const unsigned char *x = w;
  int64_t i = 0;
  for (; i + 8 <= k; i += 8)
    _mm256_storeu_ps (y + i, load_f16x8 (x + 2 * i));
  for (; i < k; i++)
    {
      uint16_t h;
      memcpy (&h, x + 2 * i, 2);
      y[i] = _cvtsh_ss (h);
    }
}

static void
deq_bf16 (const void *w, float *y, int64_t k)
{
  const unsigned char *x = w;
  int64_t i = 0;
  for (; i + 8 <= k; i += 8)
    _mm256_storeu_ps (y + i, load_bf16x8 (x + 2 * i));
  for (; i < k; i++)
    {
      uint32_t u = (uint32_t) (x[2 * i] | (x[2 * i + 1] << 8)) << 16;
      memcpy (y + i, &u, 4);
    }
}

static inline void
store_i8x32_scaled (__m256i q, float d, float *y)
{
  __m256 vd = _mm256_set1_ps (d);
  __m128i lo = _mm256_castsi256_si128 (q), hi = _mm256_extracti128_si256 (q, 1);
  _mm256_storeu_ps (y + 0, _mm256_mul_ps (vd, _mm256_cvtepi32_ps (_mm256_cvtepi8_epi32 (lo))));
  _mm256_storeu_ps (y + 8, _mm256_mul_ps (vd, _mm256_cvtepi32_ps (_mm256_cvtepi8_epi32 (_mm_srli_si128 (lo, 8)))));
  _mm256_storeu_ps (y + 16, _mm256_mul_ps (vd, _mm256_cvtepi32_ps (_mm256_cvtepi8_epi32 (hi))));
  _mm256_storeu_ps (y + 24, _mm256_mul_ps (vd, _mm256_cvtepi32_ps (_mm256_cvtepi8_epi32 (_mm_srli_si128 (hi, 8)))));
}

static void
deq_q8_0 (const void *w, float *y, int64_t k)
{
  const unsigned char *x = w;
  for (int64_t b = 0; b < k / TSR_QK; b++, x += sizeof (TsrBlockQ8_0), y += TSR_QK)
    store_i8x32_scaled (_mm256_loadu_si256 ((const __m256i *) (x + 2)), scale_of (x), y);
}

static void
deq_q4_0 (const void *w, float *y, int64_t k)
{
  const unsigned char *x = w;
  for (int64_t b = 0; b < k / TSR_QK; b++, x += sizeof (TsrBlockQ4_0), y += TSR_QK)
    store_i8x32_scaled (unpack_q4 (x + 2), scale_of (x), y);
}

/* ---- Softmax and SwiGLU ------------------------------------------------
 *
 * An exp per attention score (≈ 70 billion for a 4096-token prompt) and
 * per hidden value of the FFN: libm's expf one value at a time would cost
 * several percent of a prefill: tsr_exp8 (tsr-exp8.h), shared with the
 * ViT. */

static inline float
hmax (__m256 v)
{
  __m128 s = _mm_max_ps (_mm256_castps256_ps128 (v), _mm256_extractf128_ps (v, 1));
  s = _mm_max_ps (s, _mm_movehl_ps (s, s));
  s = _mm_max_ss (s, _mm_movehdup_ps (s));
  return _mm_cvtss_f32 (s);
}

/* Lanes below n set: tails of fewer than 8 values go through masked
 * loads and stores. */
static inline __m256i
tail_mask (int64_t n)
{
  return _mm256_cmpgt_epi32 (_mm256_set1_epi32 ((int) n), _mm256_setr_epi32 (0, 1, 2, 3, 4, 5, 6, 7));
}

static void
softmax (float *s, int64_t n)
{
  int64_t i, t = n & 7;
  __m256i m = tail_mask (t);
  __m256 vmax = _mm256_set1_ps (-INFINITY), vsum = _mm256_setzero_ps (), vm, inv;

  for (i = 0; i + 8 <= n; i += 8)
    vmax = _mm256_max_ps (vmax, _mm256_loadu_ps (s + i));
  if (t)
    vmax = _mm256_max_ps (vmax, _mm256_blendv_ps (_mm256_set1_ps (-INFINITY), _mm256_maskload_ps (s + i, m),
                                                  _mm256_castsi256_ps (m)));
  vm = _mm256_set1_ps (hmax (vmax));
  for (i = 0; i + 8 <= n; i += 8)
    {
      __m256 e = tsr_exp8 (_mm256_sub_ps (_mm256_loadu_ps (s + i), vm));
      _mm256_storeu_ps (s + i, e);
      vsum = _mm256_add_ps (vsum, e);
    }
  if (t)
    {
      __m256 e = _mm256_and_ps (tsr_exp8 (_mm256_sub_ps (_mm256_maskload_ps (s + i, m), vm)),
                                _mm256_castsi256_ps (m));
      _mm256_maskstore_ps (s + i, m, e);
      vsum = _mm256_add_ps (vsum, e);
    }
  inv = _mm256_set1_ps (1.0f / hsum (vsum));
  for (i = 0; i + 8 <= n; i += 8)
    _mm256_storeu_ps (s + i, _mm256_mul_ps (_mm256_loadu_ps (s + i), inv));
  if (t)
    _mm256_maskstore_ps (s + i, m, _mm256_mul_ps (_mm256_maskload_ps (s + i, m), inv));
}

static void
silu_mul (float *g, const float *u, int64_t n)
{
  const __m256 one = _mm256_set1_ps (1.0f), neg = _mm256_set1_ps (-0.0f);
  int64_t i;
  for (i = 0; i + 8 <= n; i += 8)
    {
      __m256 x = _mm256_loadu_ps (g + i);
      __m256 d = _mm256_add_ps (one, tsr_exp8 (_mm256_xor_ps (x, neg)));
      _mm256_storeu_ps (g + i, _mm256_mul_ps (_mm256_div_ps (x, d), _mm256_loadu_ps (u + i)));
    }
  if (i < n)
    {
      __m256i m = tail_mask (n - i);
      __m256 x = _mm256_maskload_ps (g + i, m);
      __m256 d = _mm256_add_ps (one, tsr_exp8 (_mm256_xor_ps (x, neg)));
      _mm256_maskstore_ps (g + i, m, _mm256_mul_ps (_mm256_div_ps (x, d), _mm256_maskload_ps (u + i, m)));
    }
}

const TsrKernelTable tsr_kernels_avx2 = {
  .dot = { dot_f32, dot_f16, dot_bf16, dot_q8_0, dot_q4_0 },
  .quantize_q8_0 = quantize_q8_0,
  .dequantize = { deq_f32, deq_f16, deq_bf16, deq_q8_0, deq_q4_0 },
  .softmax = softmax,
  .silu_mul = silu_mul,
};
