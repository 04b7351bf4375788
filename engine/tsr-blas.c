/* SPDX-License-Identifier: GPL-3.0-or-later
 *
 * tsr-blas.c — Debian's OpenBLAS 0.3.21 does not know recent Intel server
 * cores and falls back to its SSE3 "Prescott" kernels, five times slower
 * than its AVX-512 ones (performance.md, trap 3). It reads its core type
 * from OPENBLAS_CORETYPE once, when the library loads, so the programs fix
 * it by re-executing themselves with the variable set (see
 * tessera_blas_reexec_if_needed in app/).
 */
#include "tsr-blas.h"
#include "tsr-cpu.h"

#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Cores that mean "OpenBLAS did not recognise this CPU": its generic
 * x86-64 fallbacks. */
static const char *generic_cores[] = {
  "Prescott", "Core2", "Penryn", "Dunnington", "Nehalem", "Atom", "Katmai",
  "Coppermine", "Northwood", "Banias", "Unknown",
};

const char *
tsr_blas_better_coretype (void)
{
  const TsrCpu *cpu = tsr_cpu ();
  const char *core = openblas_get_corename ();
  int generic = 0;

  if (getenv ("OPENBLAS_CORETYPE") != NULL || core == NULL)
    return NULL;
  for (size_t i = 0; i < sizeof generic_cores / sizeof generic_cores[0]; i++)
    if (strcasecmp (core, generic_cores[i]) == 0)
      generic = 1;
  if (!generic)
    return NULL;
  if (cpu->avx512f && cpu->avx512bw && cpu->avx512vl)
    return cpu->avx512_bf16 ? "Cooperlake" : "SkylakeX";
  if (cpu->avx2 && cpu->fma)
    return strcmp (cpu->vendor, "AuthenticAMD") == 0 ? "Zen" : "Haswell";
  return NULL;
}

void
tsr_blas_describe (char *buf, size_t size)
{
  snprintf (buf, size, "%s, core %s, %d thread%s per call",
            openblas_get_config (), openblas_get_corename (), openblas_get_num_threads (),
            openblas_get_num_threads () == 1 ? "" : "s");
}

void
tsr_blas_init (void)
{
  openblas_set_num_threads (1);
}
