/* SPDX-License-Identifier: GPL-3.0-or-later
 *
 * tsr-cpu.h — what this processor can run, asked once: the kernels choose
 * their instruction set from it at run time, never at build time, so one
 * binary serves a laptop with AVX2 and a server with AMX.
 */
#ifndef TSR_CPU_H
#define TSR_CPU_H

typedef struct {
  int sse3, avx, avx2, fma, f16c;
  int avx512f, avx512bw, avx512vl, avx512_vnni, avx512_bf16;
  int amx_tile, amx_bf16, amx_int8;
  int amx_usable;       /* the kernel granted this process AMX tile data */
  int physical_cores;
  int logical_cpus;
  char vendor[13];
} TsrCpu;

/* Detected on the first call; later calls return the same answer. Asking
 * Linux for AMX permission happens here, once, if the CPU has AMX. */
const TsrCpu *tsr_cpu (void);

#endif
