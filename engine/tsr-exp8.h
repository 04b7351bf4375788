/* SPDX-License-Identifier: GPL-3.0-or-later
 *
 * tsr-exp8.h — e^x for eight floats with AVX2 and FMA: Cephes' polynomial
 * (≈ 1 ulp), for the softmaxes and GELU/SiLU activations of the ViT and
 * the decoder, where libm's expf one value at a time would cost several
 * percent of the work. Include it only where <immintrin.h> is available;
 * the caller decides at run time whether the CPU has AVX2.
 */
#pragma once

#include <immintrin.h>

__attribute__ ((target ("avx2,fma"))) static inline __m256
tsr_exp8 (__m256 x)
{
  /* Below −88.38 the result is 0 (2^−127 built as a zero exponent). */
  x = _mm256_min_ps (_mm256_max_ps (x, _mm256_set1_ps (-88.3762626647949f)), _mm256_set1_ps (88.0f));
  __m256 fx = _mm256_floor_ps (_mm256_fmadd_ps (x, _mm256_set1_ps (1.44269504088896341f),
                                                _mm256_set1_ps (0.5f)));
  x = _mm256_fnmadd_ps (fx, _mm256_set1_ps (0.693359375f), x);
  x = _mm256_fnmadd_ps (fx, _mm256_set1_ps (-2.12194440e-4f), x);
  __m256 z = _mm256_mul_ps (x, x);
  __m256 y = _mm256_set1_ps (1.9875691500e-4f);
  y = _mm256_fmadd_ps (y, x, _mm256_set1_ps (1.3981999507e-3f));
  y = _mm256_fmadd_ps (y, x, _mm256_set1_ps (8.3334519073e-3f));
  y = _mm256_fmadd_ps (y, x, _mm256_set1_ps (4.1665795894e-2f));
  y = _mm256_fmadd_ps (y, x, _mm256_set1_ps (1.6666665459e-1f));
  y = _mm256_fmadd_ps (y, x, _mm256_set1_ps (5.0000001201e-1f));
  y = _mm256_fmadd_ps (y, z, _mm256_add_ps (x, _mm256_set1_ps (1.0f)));
  __m256i n = _mm256_add_epi32 (_mm256_cvttps_epi32 (fx), _mm256_set1_epi32 (127));
  return _mm256_mul_ps (y, _mm256_castsi256_ps (_mm256_slli_epi32 (n, 23)));
}
