/* SPDX-License-Identifier: GPL-3.0-or-later
 *
 * tessera-cli synth [--type T] [--layers N] [--seed S] [--threads N]
 *                   [--embd E --ff F --heads H --kv-heads K --vocab V
 *                    --v-layers N --v-embd E --v-ff F --v-heads H
 *                    --ranks RQKV,R] OUT.gguf
 *
 * A model of the real dimensions with random weights, for benchmarks only
 * (design.md); its metadata says so (tessera.synthetic = true) and the
 * app refuses to chat with it. The smaller-shape options are for tests.
 * Progress goes to stderr; stdout stays empty.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tessera-cli.h"
#include "tessera-engine.h"

static void
on_progress (const TsrConvertProgress *p, void *user_data)
{
  gboolean tty = GPOINTER_TO_INT (user_data);
  if (strcmp (p->stage, "writing") == 0)
    fprintf (stderr, "%swriting %.2f / %.2f GB, tensor %llu of %llu%s", tty ? "\r\033[K" : "",
             p->bytes_done / 1e9, p->bytes_total / 1e9, (unsigned long long) p->tensors_done + 1,
             (unsigned long long) p->tensors_total, tty ? "" : "\n");
  else
    fprintf (stderr, "%s%s\n", tty ? "\r\033[K" : "", p->stage);
}

typedef struct {
  const char *flag;
  size_t      offset;   /* of a uint32_t in TsrSynthParams */
  int         min, max;
} SizeOption;

static const SizeOption size_options[] = {
  { "--layers", G_STRUCT_OFFSET (TsrSynthParams, n_layer), 1, 256 },
  { "--embd", G_STRUCT_OFFSET (TsrSynthParams, n_embd), 2, 65536 },
  { "--ff", G_STRUCT_OFFSET (TsrSynthParams, n_ff), 1, 262144 },
  { "--heads", G_STRUCT_OFFSET (TsrSynthParams, n_head), 1, 1024 },
  { "--kv-heads", G_STRUCT_OFFSET (TsrSynthParams, n_head_kv), 1, 1024 },
  { "--vocab", G_STRUCT_OFFSET (TsrSynthParams, n_vocab), 261, 1048576 },
  { "--v-layers", G_STRUCT_OFFSET (TsrSynthParams, v_n_layer), 0, 256 },
  { "--v-embd", G_STRUCT_OFFSET (TsrSynthParams, v_n_embd), 1, 16384 },
  { "--v-ff", G_STRUCT_OFFSET (TsrSynthParams, v_n_ff), 1, 65536 },
  { "--v-heads", G_STRUCT_OFFSET (TsrSynthParams, v_n_head), 1, 1024 },
};

int
cli_synth (int argc, char **argv)
{
  TsrSynthParams p;
  TsrError err;
  const char *out = NULL;

  tsr_synth_params_init (&p);
  for (int i = 1; i < argc; i++)
    {
      const char *a = argv[i];
      const char *v;
      gboolean known = FALSE;
      if (a[0] != '-' || a[1] == '\0')
        {
          if (out != NULL)
            return cli_fail (CLI_EXIT_USAGE, "synth takes one OUT.gguf, got also '%s'", a);
          out = a;
          continue;
        }
      if (i + 1 >= argc)
        return cli_fail (CLI_EXIT_USAGE, "%s needs a value", a);
      v = argv[++i];
      for (size_t k = 0; k < G_N_ELEMENTS (size_options); k++)
        if (strcmp (a, size_options[k].flag) == 0)
          {
            int n;
            if (!cli_parse_int (v, size_options[k].min, size_options[k].max, &n))
              return cli_fail (CLI_EXIT_USAGE, "%s takes a whole number from %d to %d, not '%s'", a,
                               size_options[k].min, size_options[k].max, v);
            *(uint32_t *) ((char *) &p + size_options[k].offset) = (uint32_t) n;
            known = TRUE;
          }
      if (known)
        continue;
      if (strcmp (a, "--type") == 0)
        {
          if (!tsr_dtype_from_name (v, &p.type))
            return cli_fail (CLI_EXIT_USAGE, "--type takes f32, f16, bf16, q8_0 or q4_0, not '%s'", v);
        }
      else if (strcmp (a, "--threads") == 0)
        {
          if (!cli_parse_int (v, 1, 1024, &p.n_threads))
            return cli_fail (CLI_EXIT_USAGE, "--threads takes a whole number from 1 to 1024, not '%s'", v);
        }
      else if (strcmp (a, "--seed") == 0)
        {
          char *end = NULL;
          p.seed = g_ascii_strtoull (v, &end, 10);
          if (*v == '\0' || *v == '-' || *end != '\0')
            return cli_fail (CLI_EXIT_USAGE, "--seed takes a whole number ≥ 0, not '%s'", v);
        }
      else if (strcmp (a, "--ranks") == 0)
        {
          g_auto(GStrv) parts = g_strsplit (v, ",", 3);
          int rq, r;
          if (g_strv_length (parts) != 2 || !cli_parse_int (parts[0], 1, 4096, &rq) ||
              !cli_parse_int (parts[1], 1, 4096, &r))
            return cli_fail (CLI_EXIT_USAGE, "--ranks takes RQKV,R (the PLoRA rank of wqkv, then of "
                             "wo/w1/w2/w3), e.g. 8,256, not '%s'", v);
          p.plora_rank[TSR_PLORA_ATTN_QKV] = (uint32_t) rq;
          for (int k = TSR_PLORA_ATTN_OUTPUT; k < TSR_PLORA_COUNT; k++)
            p.plora_rank[k] = (uint32_t) r;
        }
      else
        return cli_fail (CLI_EXIT_USAGE, "synth: unknown option '%s'", a);
    }
  if (out == NULL)
    return cli_fail (CLI_EXIT_USAGE, "usage: tessera-cli synth [--type T] [--layers N] OUT.gguf");

  p.progress = on_progress;
  p.user_data = GINT_TO_POINTER (isatty (fileno (stderr)));
  if (tsr_synth (out, &p, &err) != TSR_OK)
    return cli_fail (CLI_EXIT_RUNTIME, "%s", err.message);
  fprintf (stderr, "wrote %s: synthetic %s model, %u layers × %u, random weights (seed %llu); "
           "for 'tessera-cli bench llm' only\n", out, tsr_dtype_name (p.type), p.n_layer, p.n_embd,
           (unsigned long long) p.seed);
  return CLI_EXIT_OK;
}
