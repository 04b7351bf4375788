/* SPDX-License-Identifier: GPL-3.0-or-later
 *
 * tessera-cli bench kernels [--threads N] [--isa scalar|avx2] [--type T] [--quick]
 */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include "tessera-cli.h"
#include "tessera-engine.h"

int
cli_bench_kernels (int argc, char **argv)
{
  TsrBenchKernelsParams p = { 0, -1, -1, 0 };
  TsrError err;
  static const char *isas[] = { "scalar", "avx2" };

  for (int i = 1; i < argc; i++)
    {
      const char *a = argv[i];
      if (strcmp (a, "--quick") == 0)
        p.quick = 1;
      else if ((strcmp (a, "--threads") == 0 || strcmp (a, "--isa") == 0 || strcmp (a, "--type") == 0))
        {
          const char *v;
          if (i + 1 >= argc)
            return cli_fail (CLI_EXIT_USAGE, "%s needs a value", a);
          v = argv[++i];
          if (a[2] == 't' && a[3] == 'h')
            {
              if (!cli_parse_int (v, 1, 1024, &p.threads))
                return cli_fail (CLI_EXIT_USAGE, "--threads takes a whole number from 1 to 1024, not '%s'", v);
            }
          else if (a[2] == 'i')
            {
              p.isa = -2;
              for (int k = 0; k < (int) G_N_ELEMENTS (isas); k++)
                if (strcmp (v, isas[k]) == 0)
                  p.isa = k;
              if (p.isa == -2)
                return cli_fail (CLI_EXIT_USAGE, "--isa takes scalar or avx2, not '%s' (AVX-512 and "
                                 "AMX kernels are not written yet)", v);
            }
          else
            {
              TsrDType t;
              if (!tsr_dtype_from_name (v, &t))
                return cli_fail (CLI_EXIT_USAGE, "--type takes f32, f16, bf16, q8_0 or q4_0, not '%s'", v);
              p.type = (int) t;
            }
        }
      else
        return cli_fail (CLI_EXIT_USAGE, "bench kernels: unknown option '%s'", a);
    }

  if (tsr_bench_kernels (&p, stdout, &err) != TSR_OK)
    return cli_fail (CLI_EXIT_RUNTIME, "%s", err.message);
  return CLI_EXIT_OK;
}
