/* SPDX-License-Identifier: GPL-3.0-or-later
 *
 * tsr-kernels.h — matrix products against weights of any element type.
 *
 *   Y[m][n] = Σ_k X[m][k] · W[n][k]        (Y = X·Wᵀ, as a PyTorch Linear)
 *
 * W is the model's weight matrix as stored in the file: N rows of K values
 * of one type (ggml layout, K fastest). X and Y are f32, row-major.
 *
 * Two paths, chosen by the number of rows of X:
 *   - few rows (decoding, M < TSR_GEMM_MIN_ROWS): every weight row is read
 *     once from memory and dotted with each X row; for q8_0/q4_0 weights the
 *     X rows are first quantised to q8_0 blocks and the dots run in integers,
 *     as ggml does. This path is bound by memory bandwidth.
 *   - many rows (tiles, prompts): the threads dequantise a large chunk of
 *     weight rows to f32 together, then each hands its share of X's rows
 *     and the chunk to a single-threaded OpenBLAS sgemm (with a short X,
 *     each thread takes its own weight rows instead); the engine's pool
 *     supplies the parallelism.
 * Each path has a scalar implementation and SIMD ones, chosen at run time
 * (tsr_isa_best) or by the caller (tests and benchmarks compare them).
 */
#ifndef TSR_KERNELS_H
#define TSR_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#include "tessera-engine.h"
#include "tsr-threads.h"

#define TSR_GEMM_MIN_ROWS 32

typedef enum {
  TSR_ISA_SCALAR = 0,
  TSR_ISA_AVX2,      /* AVX2 + FMA + F16C */
  TSR_ISA_COUNT
} TsrIsa;

typedef struct {
  TsrDType    type;
  int64_t     rows;        /* N */
  int64_t     cols;        /* K; a multiple of 32 for q8_0 and q4_0 */
  size_t      row_bytes;   /* stride between rows */
  const void *data;
} TsrWeights;

const char *tsr_isa_name      (TsrIsa isa);
int         tsr_isa_from_name (const char *name, TsrIsa *isa);
int         tsr_isa_available (TsrIsa isa);
TsrIsa      tsr_isa_best      (void);

/* Y (M rows, stride ldy) = X (M rows, stride ldx) · Wᵀ, on the pool. */
TsrStatus   tsr_matmul (TsrPool *pool, TsrIsa isa, const TsrWeights *w,
                        const float *x, int64_t m, int64_t ldx,
                        float *y, int64_t ldy, TsrError *err);

/* The same with the path forced, for tests and benchmarks. */
TsrStatus   tsr_matmul_rows  (TsrPool *pool, TsrIsa isa, const TsrWeights *w,
                              const float *x, int64_t m, int64_t ldx,
                              float *y, int64_t ldy, TsrError *err);
TsrStatus   tsr_matmul_panel (TsrPool *pool, TsrIsa isa, const TsrWeights *w,
                              const float *x, int64_t m, int64_t ldx,
                              float *y, int64_t ldy, TsrError *err);

/* The many-rows path with the caller's scratch for the dequantised
 * weights: tsr_matmul_scratch_floats (pool size, K) floats, or NULL for
 * a buffer the calling thread keeps between calls (what tsr_matmul and
 * tsr_matmul_panel use). Any number of rows. */
#define TSR_MATMUL_CHUNK_FLOATS ((size_t) 2 << 20)   /* 8 MB a thread */
size_t      tsr_matmul_scratch_floats (int n_threads, int64_t k);
TsrStatus   tsr_matmul_gemm  (TsrPool *pool, TsrIsa isa, const TsrWeights *w,
                              const float *x, int64_t m, int64_t ldx,
                              float *y, int64_t ldy, float *scratch,
                              TsrError *err);

/* ---- Per-ISA building blocks (tsr-kernels-scalar.c, tsr-kernels-avx2.c) */

/* The activation type a weight type is dotted with: q8_0 for quantised
 * weights, f32 otherwise. */
TsrDType    tsr_kernel_act_type (TsrDType wtype);

typedef struct {
  /* Σ w[k]·a[k] over k < K; a is one activation row in act_type. */
  float (*dot[5]) (const void *w, const void *a, int64_t k);
  /* x (K f32) → one activation row of q8_0 blocks. */
  void  (*quantize_q8_0) (const float *x, void *dst, int64_t k);
  /* One weight row → K f32 values. */
  void  (*dequantize[5]) (const void *w, float *y, int64_t k);
  /* s[0..n) → softmax (s), in place (n ≥ 1). */
  void  (*softmax) (float *s, int64_t n);
  /* g[i] = silu (g[i])·u[i] = g/(1 + e^−g)·u: SwiGLU. */
  void  (*silu_mul) (float *g, const float *u, int64_t n);
} TsrKernelTable;

/* Index of a type in the tables above; -1 for an unsupported type. */
int         tsr_kernel_type_index (TsrDType type);

extern const TsrKernelTable tsr_kernels_scalar;
extern const TsrKernelTable tsr_kernels_avx2;

#endif
