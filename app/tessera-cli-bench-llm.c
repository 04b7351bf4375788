/* SPDX-License-Identifier: GPL-3.0-or-later
 *
 * tessera-cli bench llm --model M.gguf [--threads N] [--prompt 512,4096,8192]
 *                       [--decode K] [--kv f32|f16] [--image yes|no] [--yardstick yes|no]
 *
 * The decoder's speed on a model file — meant for `tessera-cli synth`
 * output, the real shapes with random weights. For each prompt length it
 * prefills that many random token ids from position 0 (one timing each:
 * the long ones take minutes), then, after the shortest prompt, decodes K
 * tokens one at a time (median per token). It prints the weight bytes a
 * decoded token reads, the cache's bytes, the peak RSS, a STREAM-style
 * triad measured in the same run, and the decode rate as a fraction of
 * the bound that bandwidth sets (weight bytes ÷ triad). Each prefill says
 * where its time went (products, Partial LoRA, attention, the rest) and
 * how many cores it had (CPU time ÷ wall time: others compile on the same
 * two cores). --image yes feeds image rows (random embeddings), which get
 * the Partial LoRA, as a picture's ≈3200 rows do. The yardstick, measured
 * in the same run, is one layer's seven products at the prefill's chunk
 * of rows through the engine (tsr_matmul on the file's weights) and as
 * f32 sgemm on OpenBLAS's own threads: their ratio, unlike absolute
 * figures, survives a busy machine. Figures only, never pass/fail;
 * llama.cpp's figures from issue 7 close the output, labelled as quoted.
 */
#include "config.h"

#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "tessera-cli.h"
#include "tessera-engine.h"
#include "tsr-blas.h"
#include "tsr-kernels.h"
#include "tsr-llm.h"
#include "tsr-threads.h"

#define MAX_PROMPTS 8

static double
now_s (void)
{
  struct timespec ts;
  clock_gettime (CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static double
cpu_s (void)
{
  struct rusage ru;
  getrusage (RUSAGE_SELF, &ru);
  return ru.ru_utime.tv_sec + ru.ru_utime.tv_usec * 1e-6 + ru.ru_stime.tv_sec + ru.ru_stime.tv_usec * 1e-6;
}

static int
compare_double (const void *a, const void *b)
{
  double x = *(const double *) a, y = *(const double *) b;
  return x < y ? -1 : x > y;
}

static int
compare_int (const void *a, const void *b)
{
  int x = *(const int *) a, y = *(const int *) b;
  return x < y ? -1 : x > y;
}

/* Others compile on the same two cores: the figures mean little without it. */
static void
print_load (const char *when)
{
  FILE *f = fopen ("/proc/loadavg", "r");
  double l1, l5, l15;
  if (f != NULL && fscanf (f, "%lf %lf %lf", &l1, &l5, &l15) == 3)
    printf ("load       %.2f %.2f %.2f (1, 5, 15 min; %s)\n", l1, l5, l15, when);
  if (f != NULL)
    fclose (f);
}

/* ---- Triad: the bandwidth bound, as tsr_bench_kernels measures it ------------ */

typedef struct {
  float  *a, *b, *c;
  size_t  n;
} Triad;

static void
triad_job (void *ctx, int ith, int nth)
{
  Triad *t = ctx;
  size_t i0 = t->n * (size_t) ith / (size_t) nth, i1 = t->n * (size_t) (ith + 1) / (size_t) nth;
  for (size_t i = i0; i < i1; i++)
    t->a[i] = t->b[i] + 3.0f * t->c[i];
}

/* GB/s of a = b + 3·c over arrays far beyond the last-level cache; the
 * median of 7 after a warm-up that also faults the pages in. 0 on failure. */
static double
triad_gbs (TsrPool *pool)
{
  Triad t = { NULL, NULL, NULL, (size_t) 1 << 25 };
  double times[7], gbs = 0;
  t.a = g_try_new (float, t.n);
  t.b = g_try_new (float, t.n);
  t.c = g_try_new (float, t.n);
  if (t.a && t.b && t.c)
    {
      for (size_t i = 0; i < t.n; i++)
        {
          t.b[i] = (float) (i & 1023);
          t.c[i] = 1.0f;
        }
      tsr_pool_run (pool, triad_job, &t);
      for (int r = 0; r < 7; r++)
        {
          double t0 = now_s ();
          tsr_pool_run (pool, triad_job, &t);
          times[r] = now_s () - t0;
        }
      qsort (times, 7, sizeof times[0], compare_double);
      gbs = 3.0 * 4.0 * (double) t.n / times[3] / 1e9;
    }
  g_free (t.a);
  g_free (t.b);
  g_free (t.c);
  return gbs;
}

/* ---- What a decoded token reads ---------------------------------------- */

/* Every decoder matrix and norm, and the output head (token_embd when
 * tied); not the token embedding's other rows, the PLoRA (image rows only)
 * nor the vision tower. */
static uint64_t
decode_weight_bytes (const TsrGguf *g, int tied)
{
  uint64_t sum = 0;
  for (size_t i = 0; i < tsr_gguf_n_tensors (g); i++)
    {
      const TsrGgufTensor *t = tsr_gguf_tensor (g, i);
      if ((g_str_has_prefix (t->name, "blk.") && strstr (t->name, ".lora_") == NULL) ||
          strcmp (t->name, "output.weight") == 0 || strcmp (t->name, "output_norm.weight") == 0 ||
          (tied && strcmp (t->name, "token_embd.weight") == 0))
        sum += t->size;
    }
  return sum;
}

/* ---- The yardstick: one layer's products, engine against OpenBLAS ---------- */

static const char *const layer_mats[] = {
  "attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down",
};

typedef struct {
  double engine_s, blas_s, flops;
  double engine_cores;   /* CPU time ÷ wall time in the engine's calls */
} Yardstick;

/* Best of 3, interleaved, for layer 0's products on m rows: the engine's
 * tsr_matmul on the weights as stored, and an f32 copy (one matrix at a
 * time, ≤ 235 MB at full size) through cblas_sgemm on OpenBLAS's own
 * threads, ours resting meanwhile. FALSE when memory is short. */
static gboolean
yardstick (const TsrGguf *g, TsrPool *pool, int m, Yardstick *y)
{
  int nth = tsr_pool_size (pool);
  float *x = NULL, *out = NULL, *wf = NULL;
  TsrError err;
  gboolean ok = TRUE;
  uint64_t rng = 0x9E3779B97F4A7C15u;
  double cpu = 0, wall = 0;

  memset (y, 0, sizeof *y);
  y->engine_s = y->blas_s = 1e300;
  for (int rep = 0; rep < 3 && ok; rep++)
    {
      double engine = 0, blas = 0;
      for (size_t i = 0; i < G_N_ELEMENTS (layer_mats) && ok; i++)
        {
          char name[64];
          const TsrGgufTensor *t;
          TsrWeights w;
          int64_t rows, cols;
          double t0;

          g_snprintf (name, sizeof name, "blk.0.%s.weight", layer_mats[i]);
          t = tsr_gguf_find_tensor (g, name);
          if (t == NULL)
            {
              ok = FALSE;
              break;
            }
          cols = (int64_t) t->ne[0];
          rows = (int64_t) (t->n_elements / t->ne[0]);
          w = (TsrWeights) { t->type, rows, cols, (size_t) (t->size / (uint64_t) rows), t->data };
          g_free (x);
          g_free (out);
          g_free (wf);
          x = g_try_new (float, (size_t) m * cols);
          out = g_try_new (float, (size_t) m * rows);
          wf = g_try_new (float, (size_t) rows * cols);
          if (x == NULL || out == NULL || wf == NULL)
            {
              ok = FALSE;
              break;
            }
          for (size_t e = 0; e < (size_t) m * cols; e++)
            {
              rng ^= rng << 13;
              rng ^= rng >> 7;
              rng ^= rng << 17;
              x[e] = (float) (rng >> 40) / 16777216.0f - 0.5f;
            }
          for (int64_t r = 0; r < rows; r++)
            if (tsr_dequantize_row (w.type, (const unsigned char *) w.data + (size_t) r * w.row_bytes,
                                    wf + r * cols, (size_t) cols, &err) != TSR_OK)
              ok = FALSE;
          if (rep == 0)
            y->flops += 2.0 * m * rows * cols;

          t0 = now_s ();
          {
            double c0 = cpu_s ();
            if (tsr_matmul (pool, tsr_isa_best (), &w, x, m, cols, out, rows, &err) != TSR_OK)
              ok = FALSE;
            cpu += cpu_s () - c0;
          }
          engine += now_s () - t0;
          wall += now_s () - t0;

          tsr_pool_rest (pool);
          openblas_set_num_threads (nth);
          t0 = now_s ();
          cblas_sgemm (CblasRowMajor, CblasNoTrans, CblasTrans, m, (int) rows, (int) cols, 1.0f, x,
                       (int) cols, wf, (int) cols, 0.0f, out, (int) rows);
          blas += now_s () - t0;
          openblas_set_num_threads (1);
          /* OpenBLAS's workers spin a while after their last call and
           * would take the cores from ours. */
          g_usleep (300 * 1000);
        }
      y->engine_s = MIN (y->engine_s, engine);
      y->blas_s = MIN (y->blas_s, blas);
    }
  y->engine_cores = wall > 0 ? cpu / wall : 0;
  g_free (x);
  g_free (out);
  g_free (wf);
  return ok;
}

/* ---- The benchmark ---------------------------------------------------------- */

static gboolean
parse_prompts (const char *text, int *lens, int *n)
{
  g_auto(GStrv) parts = g_strsplit (text, ",", -1);
  *n = 0;
  for (int i = 0; parts[i] != NULL; i++)
    {
      if (*n == MAX_PROMPTS || !cli_parse_int (parts[i], 1, TSR_LLM_MAX_CONTEXT, &lens[*n]))
        return FALSE;
      (*n)++;
    }
  return *n > 0;
}

int
cli_bench_llm (int argc, char **argv)
{
  const char *model = NULL;
  int prompts[MAX_PROMPTS] = { 512 }, n_prompts = 1, n_decode = 16, threads = 0, max_prompt, n_ctx;
  gboolean image = FALSE, with_yardstick = TRUE;
  float *embd = NULL;
  TsrDType kv = TSR_DTYPE_F32;
  TsrGguf *g = NULL;
  TsrLlm *llm = NULL;
  TsrLlmState *state = NULL;
  TsrPool *pool = NULL;
  TsrLlmInput *rows = NULL;
  float *logits = NULL;
  double *decode_s = NULL;
  double prefill_s[MAX_PROMPTS] = { 0 };
  const TsrGgufModelInfo *info;
  TsrError err;
  struct rusage ru;
  uint64_t w_bytes, rng = 0x2545F4914F6CDD1Du;
  double triad, lin_flops, t_load;
  int rc = CLI_EXIT_OK;

  for (int i = 1; i < argc; i++)
    {
      const char *a = argv[i], *v;
      if (i + 1 >= argc)
        return cli_fail (CLI_EXIT_USAGE, "bench llm: %s needs a value", a);
      v = argv[++i];
      if (strcmp (a, "--model") == 0)
        model = v;
      else if (strcmp (a, "--threads") == 0)
        {
          if (!cli_parse_int (v, 1, 1024, &threads))
            return cli_fail (CLI_EXIT_USAGE, "--threads takes a whole number from 1 to 1024, not '%s'", v);
        }
      else if (strcmp (a, "--prompt") == 0)
        {
          if (!parse_prompts (v, prompts, &n_prompts))
            return cli_fail (CLI_EXIT_USAGE, "--prompt takes up to %d lengths from 1 to %d separated by "
                             "commas (e.g. 512,4096,8192), not '%s'", MAX_PROMPTS, TSR_LLM_MAX_CONTEXT, v);
        }
      else if (strcmp (a, "--decode") == 0)
        {
          if (!cli_parse_int (v, 0, 4096, &n_decode))
            return cli_fail (CLI_EXIT_USAGE, "--decode takes a whole number from 0 to 4096, not '%s'", v);
        }
      else if (strcmp (a, "--kv") == 0)
        {
          if (strcmp (v, "f32") == 0)
            kv = TSR_DTYPE_F32;
          else if (strcmp (v, "f16") == 0)
            kv = TSR_DTYPE_F16;
          else
            return cli_fail (CLI_EXIT_USAGE, "--kv takes f32 or f16, not '%s'", v);
        }
      else if (strcmp (a, "--image") == 0 || strcmp (a, "--yardstick") == 0)
        {
          gboolean *flag = strcmp (a, "--image") == 0 ? &image : &with_yardstick;
          if (strcmp (v, "yes") == 0 || strcmp (v, "no") == 0)
            *flag = strcmp (v, "yes") == 0;
          else
            return cli_fail (CLI_EXIT_USAGE, "%s takes yes or no, not '%s'", a, v);
        }
      else
        return cli_fail (CLI_EXIT_USAGE, "bench llm: unknown option '%s'", a);
    }
  if (model == NULL)
    return cli_fail (CLI_EXIT_USAGE, "usage: tessera-cli bench llm --model M.gguf [--threads N] "
                     "[--prompt 512,4096,8192] [--decode K] [--kv f32|f16] [--image yes|no] "
                     "[--yardstick yes|no]");
  qsort (prompts, (size_t) n_prompts, sizeof prompts[0], compare_int);
  max_prompt = prompts[n_prompts - 1];
  n_ctx = max_prompt > prompts[0] + n_decode ? max_prompt : prompts[0] + n_decode;
  if (n_ctx > TSR_LLM_MAX_CONTEXT)
    return cli_fail (CLI_EXIT_USAGE, "the shortest prompt and the decoded tokens need %d positions; "
                     "the most is %d", n_ctx, TSR_LLM_MAX_CONTEXT);

  print_load ("at the start");
  t_load = now_s ();
  if (tsr_gguf_open (model, &g, &err) != TSR_OK || tsr_llm_load (g, &llm, &err) != TSR_OK ||
      tsr_pool_new (threads, &pool, &err) != TSR_OK ||
      tsr_llm_state_new_kv (llm, n_ctx, kv, &state, &err) != TSR_OK)
    {
      rc = cli_fail (CLI_EXIT_RUNTIME, "%s", err.message);
      goto done;
    }
  t_load = now_s () - t_load;
  info = tsr_llm_info (llm);
  if (info->n_ctx > 0 && (uint32_t) n_ctx > info->n_ctx)
    {
      rc = cli_fail (CLI_EXIT_RUNTIME, "%s has a context of %u tokens; the run needs %d", model,
                     info->n_ctx, n_ctx);
      goto done;
    }
  rows = g_try_new0 (TsrLlmInput, max_prompt);
  logits = g_try_new (float, info->n_vocab);
  decode_s = g_new0 (double, n_decode + 1);
  if (rows == NULL || logits == NULL)
    {
      rc = cli_fail (CLI_EXIT_RUNTIME, "out of memory for %d rows", max_prompt);
      goto done;
    }
  /* Random ids: a real prompt's ids change nothing in the arithmetic. */
  for (int i = 0; i < max_prompt; i++)
    {
      rng ^= rng << 13;
      rng ^= rng >> 7;
      rng ^= rng << 17;
      rows[i].token = (int32_t) (rng % info->n_vocab);
    }
  if (image)
    {
      /* Image rows: 64 distinct embeddings (token_embd rows, so of a
       * realistic scale) over and over; their values change no timing. */
      const TsrGgufTensor *te = tsr_gguf_find_tensor (g, "token_embd.weight");
      size_t E = info->n_embd;
      embd = g_try_new (float, 64 * E);
      if (info->arch != TSR_ARCH_INTERNLM2_4KHD || te == NULL || embd == NULL)
        {
          rc = cli_fail (CLI_EXIT_RUNTIME, "--image yes needs an InternLM-XComposer2-4KHD model file");
          goto done;
        }
      for (int i = 0; i < 64; i++)
        if (tsr_dequantize_row (te->type, (const unsigned char *) te->data +
                                  (size_t) rows[i].token * (te->size / info->n_vocab),
                                embd + i * E, E, &err) != TSR_OK)
          {
            rc = cli_fail (CLI_EXIT_RUNTIME, "%s", err.message);
            goto done;
          }
      for (int i = 0; i < max_prompt; i++)
        {
          rows[i].embd = embd + (i % 64) * E;
          rows[i].image = 1;
        }
    }
  w_bytes = decode_weight_bytes (g, info->tied_output);
  /* Multiply-adds of the decoder's linear layers per prompt token
   * (performance.md's 13.96 GFLOP at full size): the output head runs for
   * the last row only. */
  lin_flops = 2.0 * (double) info->n_layer *
              ((double) info->n_embd * (info->n_head + 2 * info->n_head_kv) * info->n_head_dim +
               (double) info->n_head * info->n_head_dim * info->n_embd + 3.0 * info->n_embd * info->n_ff);

  printf ("model      %s: %s%s, %u layers × %u, %u/%u heads, FFN %u, vocabulary %u\n", model,
          info->name[0] ? info->name : info->arch_name, info->synthetic ? " [synthetic]" : "",
          info->n_layer, info->n_embd, info->n_head, info->n_head_kv, info->n_ff, info->n_vocab);
  {
    const TsrGgufTensor *q = tsr_gguf_find_tensor (g, "blk.0.attn_q.weight");
    printf ("weights    %s; %.3f GB read per decoded token (decoder matrices, norms, output head); "
            "file %.3f GB, mapped in %.2f s\n", q ? tsr_dtype_name (q->type) : "?", w_bytes / 1e9,
            tsr_gguf_size (g) / 1e9, t_load);
  }
  printf ("threads    %d\n", tsr_pool_size (pool));
  printf ("kv cache   %s, %zu bytes for %d positions (%.1f kB a token)\n", tsr_dtype_name (kv),
          tsr_llm_state_kv_bytes (state), n_ctx, tsr_llm_state_kv_bytes (state) / (double) n_ctx / 1e3);
  fflush (stdout);

  /* One token through every layer faults the mapped weights in, so the
   * first timing is not of the page cache. */
  {
    double t0 = now_s ();
    if (tsr_llm_forward (llm, state, pool, rows, 1, logits, NULL, &err) != TSR_OK)
      {
        rc = cli_fail (CLI_EXIT_RUNTIME, "%s", err.message);
        goto done;
      }
    printf ("warm-up    one token in %.2f s (pages the weights in)\n", now_s () - t0);
    tsr_llm_state_rewind (state, 0);
  }

  printf ("\n%-10s %8s %10s %10s %10s %6s   %s\n", "prefill", "tokens", "seconds", "tokens/s", "GFLOP/s",
          "cores", "seconds in products / PLoRA / attention / other (GFLOP/s of the products)");
  for (int p = 0; p < n_prompts; p++)
    {
      int L = prompts[p];
      /* Causal attention: QKᵀ and AV over L²/2 pairs, every head, every layer. */
      double attn = 2.0 * 2.0 * (double) info->n_head * info->n_head_dim * ((double) L * L / 2) * info->n_layer;
      double t0 = now_s (), c0 = cpu_s ();
      TsrLlmProfile prof;
      tsr_llm_state_rewind (state, 0);
      tsr_llm_state_profile (state, NULL, 1);
      if (tsr_llm_forward (llm, state, pool, rows, L, logits, NULL, &err) != TSR_OK)
        {
          rc = cli_fail (CLI_EXIT_RUNTIME, "%s", err.message);
          goto done;
        }
      prefill_s[p] = now_s () - t0;
      tsr_llm_state_profile (state, &prof, 1);
      printf ("%-10s %8d %10.2f %10.2f %10.1f %6.2f   %.1f / %.1f / %.1f / %.1f (%.1f)\n", "", L,
              prefill_s[p], L / prefill_s[p], (L * lin_flops + attn) / prefill_s[p] / 1e9,
              (cpu_s () - c0) / prefill_s[p], prof.products_ms / 1e3, prof.lora_ms / 1e3,
              prof.attention_ms / 1e3, (prof.total_ms - prof.products_ms - prof.lora_ms -
                                        prof.attention_ms) / 1e3,
              L * lin_flops / (prof.products_ms / 1e3) / 1e9);
      fflush (stdout);
    }

  if (n_decode > 0)
    {
      int start = prompts[0];
      double med;
      /* The cache after the longest prompt holds the shortest one too:
       * its first rows are the same ids. */
      tsr_llm_state_rewind (state, start);
      for (int k = 0; k < n_decode; k++)
        {
          TsrLlmInput in = { 0 };
          double t0;
          int32_t best = 0;
          for (uint32_t v = 1; v < info->n_vocab; v++)
            if (logits[v] > logits[best])
              best = (int32_t) v;
          in.token = best;
          t0 = now_s ();
          if (tsr_llm_forward (llm, state, pool, &in, 1, logits, NULL, &err) != TSR_OK)
            {
              rc = cli_fail (CLI_EXIT_RUNTIME, "%s", err.message);
              goto done;
            }
          decode_s[k] = now_s () - t0;
        }
      qsort (decode_s, (size_t) n_decode, sizeof *decode_s, compare_double);
      med = decode_s[n_decode / 2];
      printf ("\ndecode     %d tokens after %d: median %.1f ms a token = %.2f tokens/s (best %.1f, "
              "worst %.1f ms); %.1f GB/s of weights\n", n_decode, start, med * 1e3, 1.0 / med,
              decode_s[0] * 1e3, decode_s[n_decode - 1] * 1e3, w_bytes / med / 1e9);
    }

  getrusage (RUSAGE_SELF, &ru);
  printf ("peak RSS   %.2f GB (getrusage, before the triad; the mapped weights count once paged in; "
          "keys and values %.2f GB allocated, touched as used)\n",
          ru.ru_maxrss * 1024.0 / 1e9, tsr_llm_state_kv_bytes (state) / 1e9);

  if (with_yardstick)
    {
      Yardstick y;
      int m = TSR_LLM_PREFILL_CHUNK < max_prompt ? TSR_LLM_PREFILL_CHUNK : max_prompt;
      if (yardstick (g, pool, m, &y))
        {
          double sgemm = y.flops / y.blas_s / 1e9;
          printf ("yardstick  layer 0's 7 products on %d rows (%.1f GFLOP), best of 3: engine %.1f GFLOP/s "
                  "(%s, %.2f cores), OpenBLAS f32 sgemm on its own %d threads %.1f GFLOP/s: ratio %.2f\n",
                  m, y.flops / 1e9, y.flops / y.engine_s / 1e9,
                  tsr_dtype_name (tsr_gguf_find_tensor (g, "blk.0.attn_q.weight")->type), y.engine_cores,
                  tsr_pool_size (pool), sgemm, y.blas_s / y.engine_s);
          for (int p = 0; p < n_prompts; p++)
            printf ("yardstick  prefill of %d: %.2f of the sgemm rate (linear layers' FLOPs ÷ its wall time "
                    "÷ sgemm's GFLOP/s)\n", prompts[p],
                    prompts[p] * lin_flops / prefill_s[p] / 1e9 / sgemm);
        }
      else
        printf ("yardstick  not measured (memory)\n");
    }

  triad = triad_gbs (pool);
  if (triad > 0)
    {
      double bound = triad * 1e9 / (double) w_bytes;
      printf ("triad      %.1f GB/s (a = b + 3·c, 3 × 128 MiB, median of 7, same run)\n", triad);
      printf ("bound      decode ≤ %.2f tokens/s (%.3f GB of weights ÷ triad; the cache's reads come on top)\n",
              bound, w_bytes / 1e9);
      if (n_decode > 0)
        printf ("decode     %.0f%% of the bandwidth bound\n",
                100.0 / decode_s[n_decode / 2] / bound);
    }
  print_load ("at the end");

  printf ("\nquoted, not measured here (issue 7: llama.cpp, random-weight InternLM2-7B, 2 threads):\n"
          "  prefill at 512 tokens   27.0 tokens/s (q8_0), 23.3 (q4_0)\n"
          "  decode                  2.71 tokens/s (q8_0), 4.40 (q4_0); 98%% / 81%% of the bound "
          "(performance.md)\n"
          "  targets                 prefill ≥ 40 tokens/s at 4096 with q8_0 on AMX; decode ≥ 90%% of "
          "the bound; peak RSS ≤ weights + 2 GB at 8192\n");

done:
  g_free (embd);
  g_free (rows);
  g_free (logits);
  g_free (decode_s);
  tsr_llm_state_free (state);
  tsr_pool_free (pool);
  tsr_llm_free (llm);
  tsr_gguf_close (g);
  return rc;
}
