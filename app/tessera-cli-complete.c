/* SPDX-License-Identifier: GPL-3.0-or-later
 *
 * tessera-cli complete --model M [--max-new-tokens K] [--temperature T]
 *                      [--seed S] [--threads N] [--kv-f16] TEXT
 * tessera-cli tokenize (--model M | --tokenizer tokenizer.model) [--bos] TEXT
 *
 * Plain completion for language models without a chat template: BOS, the
 * text, and the continuation streamed to stdout as it is generated.
 */
#include "config.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tessera-cli.h"
#include "tessera-engine.h"

static double
now_s (void)
{
  struct timespec ts;
  clock_gettime (CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int32_t
argmax (const float *x, size_t n)
{
  size_t best = 0;
  for (size_t i = 1; i < n; i++)
    if (x[i] > x[best])
      best = i;
  return (int32_t) best;
}

/* Softmax at temperature t, then one draw. */
static int32_t
sample (float *x, size_t n, float t, uint64_t *rng)
{
  float mx = x[argmax (x, n)];
  double sum = 0, r, acc = 0;
  for (size_t i = 0; i < n; i++)
    {
      x[i] = expf ((x[i] - mx) / t);
      sum += x[i];
    }
  *rng ^= *rng << 13;
  *rng ^= *rng >> 7;
  *rng ^= *rng << 17;
  r = (double) (*rng >> 11) / 9007199254740992.0 * sum;
  for (size_t i = 0; i < n; i++)
    {
      acc += x[i];
      if (acc > r)
        return (int32_t) i;
    }
  return (int32_t) (n - 1);
}

typedef struct {
  const char *model, *tokenizer, *text;
  int max_new, threads, bos, kv_f16;
  double temperature;
  unsigned long long seed;
} Args;

static int
parse_args (int argc, char **argv, Args *a, int complete)
{
  memset (a, 0, sizeof *a);
  a->max_new = 256;
  a->seed = 42;
  for (int i = 1; i < argc; i++)
    {
      const char *o = argv[i];
      const char *v = i + 1 < argc ? argv[i + 1] : NULL;
      if (strcmp (o, "--bos") == 0 && !complete)
        a->bos = 1;
      else if (strcmp (o, "--kv-f16") == 0 && complete)
        a->kv_f16 = 1;
      else if (strcmp (o, "--model") == 0 || strcmp (o, "--tokenizer") == 0 ||
               strcmp (o, "--max-new-tokens") == 0 || strcmp (o, "--temperature") == 0 ||
               strcmp (o, "--threads") == 0 || strcmp (o, "--seed") == 0)
        {
          if (v == NULL)
            return cli_fail (CLI_EXIT_USAGE, "%s needs a value", o);
          i++;
          if (strcmp (o, "--model") == 0)
            a->model = v;
          else if (strcmp (o, "--tokenizer") == 0 && !complete)
            a->tokenizer = v;
          else if (strcmp (o, "--max-new-tokens") == 0 && complete)
            {
              if (!cli_parse_int (v, 0, TSR_LLM_MAX_CONTEXT, &a->max_new))
                return cli_fail (CLI_EXIT_USAGE, "--max-new-tokens takes 0 to %d, not '%s'",
                                 TSR_LLM_MAX_CONTEXT, v);
            }
          else if (strcmp (o, "--temperature") == 0 && complete)
            {
              char *end;
              a->temperature = strtod (v, &end);
              if (*end != '\0' || !(a->temperature >= 0) || a->temperature > 100)
                return cli_fail (CLI_EXIT_USAGE, "--temperature takes a number from 0 to 100, not '%s'", v);
            }
          else if (strcmp (o, "--threads") == 0)
            {
              if (!cli_parse_int (v, 1, 1024, &a->threads))
                return cli_fail (CLI_EXIT_USAGE, "--threads takes a whole number from 1 to 1024, not '%s'", v);
            }
          else if (strcmp (o, "--seed") == 0 && complete)
            a->seed = strtoull (v, NULL, 10);
          else
            return cli_fail (CLI_EXIT_USAGE, "unknown option '%s'", o);
        }
      else if (o[0] == '-' && o[1] == '-')
        return cli_fail (CLI_EXIT_USAGE, "unknown option '%s'", o);
      else if (a->text == NULL)
        a->text = o;
      else
        return cli_fail (CLI_EXIT_USAGE, "one TEXT argument only; quote it");
    }
  if (a->text == NULL)
    return cli_fail (CLI_EXIT_USAGE, complete
                     ? "usage: tessera-cli complete --model M [--max-new-tokens K] [--temperature T] TEXT"
                     : "usage: tessera-cli tokenize (--model M | --tokenizer tokenizer.model) [--bos] TEXT");
  if (complete && a->model == NULL)
    return cli_fail (CLI_EXIT_USAGE, "complete needs --model M");
  if (!complete && (a->model == NULL) == (a->tokenizer == NULL))
    return cli_fail (CLI_EXIT_USAGE, "tokenize needs exactly one of --model or --tokenizer");
  return -1;
}

int
cli_tokenize (int argc, char **argv)
{
  Args a;
  int rc = parse_args (argc, argv, &a, 0);
  TsrTokenizer *tok = NULL;
  TsrGguf *g = NULL;
  TsrError err;
  int32_t *ids = NULL;
  size_t n = 0;

  if (rc >= 0)
    return rc;
  if (a.tokenizer != NULL)
    {
      if (tsr_tokenizer_load_spm (a.tokenizer, &tok, &err) != TSR_OK)
        return cli_fail (CLI_EXIT_RUNTIME, "%s", err.message);
    }
  else if (tsr_gguf_open (a.model, &g, &err) != TSR_OK || tsr_tokenizer_from_gguf (g, &tok, &err) != TSR_OK)
    {
      tsr_gguf_close (g);
      return cli_fail (CLI_EXIT_RUNTIME, "%s", err.message);
    }
  if (tsr_tokenizer_encode (tok, a.text, strlen (a.text), a.bos, &ids, &n, &err) != TSR_OK)
    rc = cli_fail (CLI_EXIT_RUNTIME, "%s", err.message);
  else
    {
      for (size_t i = 0; i < n; i++)
        printf ("%s%d", i ? " " : "", ids[i]);
      putchar ('\n');
      rc = CLI_EXIT_OK;
    }
  free (ids);
  tsr_tokenizer_free (tok);
  tsr_gguf_close (g);
  return rc;
}

int
cli_complete (int argc, char **argv)
{
  Args a;
  int rc = parse_args (argc, argv, &a, 1);
  TsrGguf *g = NULL;
  TsrLlm *llm = NULL;
  TsrLlmState *state = NULL;
  TsrTokenizer *tok = NULL;
  TsrPool *pool = NULL;
  TsrError err;
  int32_t *ids = NULL;
  size_t n = 0;
  TsrLlmInput *rows = NULL;
  float *logits = NULL;
  size_t n_vocab;
  TsrDecoder dec;
  char buf[8192];
  uint64_t rng;
  int n_ctx, generated = 0;
  double t0, t_prompt, t_end;

  if (rc >= 0)
    return rc;
  rng = a.seed ? a.seed : 1;
  if (tsr_gguf_open (a.model, &g, &err) != TSR_OK || tsr_llm_load (g, &llm, &err) != TSR_OK ||
      tsr_tokenizer_from_gguf (g, &tok, &err) != TSR_OK)
    {
      rc = cli_fail (CLI_EXIT_RUNTIME, "%s", err.message);
      goto done;
    }
  if (tsr_llm_info (llm)->synthetic)
    {
      rc = cli_fail (CLI_EXIT_RUNTIME, "%s holds random weights for benchmarks; it cannot write text", a.model);
      goto done;
    }
  if (tsr_tokenizer_encode (tok, a.text, strlen (a.text), 1, &ids, &n, &err) != TSR_OK)
    {
      rc = cli_fail (CLI_EXIT_RUNTIME, "%s", err.message);
      goto done;
    }
  n_ctx = (int) n + a.max_new;
  if (tsr_llm_info (llm)->n_ctx > 0 && (uint32_t) n_ctx > tsr_llm_info (llm)->n_ctx)
    n_ctx = (int) tsr_llm_info (llm)->n_ctx;
  if (n_ctx > TSR_LLM_MAX_CONTEXT)
    n_ctx = TSR_LLM_MAX_CONTEXT;
  if ((int) n > n_ctx)
    {
      rc = cli_fail (CLI_EXIT_RUNTIME, "the text is %zu tokens, longer than the model's context of %d", n, n_ctx);
      goto done;
    }
  n_vocab = tsr_llm_info (llm)->n_vocab;
  rows = calloc (n, sizeof *rows);
  logits = malloc (n_vocab * sizeof *logits);
  if (rows == NULL || logits == NULL)
    {
      rc = cli_fail (CLI_EXIT_RUNTIME, "out of memory");
      goto done;
    }
  if (tsr_pool_new (a.threads, &pool, &err) != TSR_OK ||
      tsr_llm_state_new_kv (llm, n_ctx, a.kv_f16 ? TSR_DTYPE_F16 : TSR_DTYPE_F32, &state, &err) != TSR_OK)
    {
      rc = cli_fail (CLI_EXIT_RUNTIME, "%s", err.message);
      goto done;
    }
  for (size_t i = 0; i < n; i++)
    rows[i].token = ids[i];

  /* The decoder sees the prompt too, so the continuation's spacing is
   * decided in context (the first piece's dummy space comes off only once). */
  tsr_decoder_init (&dec, tok);
  for (size_t i = 0; i < n; i++)
    tsr_decoder_push (&dec, ids[i], buf, sizeof buf);

  t0 = now_s ();
  if (tsr_llm_forward (llm, state, pool, rows, (int) n, logits, NULL, &err) != TSR_OK)
    {
      rc = cli_fail (CLI_EXIT_RUNTIME, "%s", err.message);
      goto done;
    }
  t_prompt = now_s ();
  while (generated < a.max_new && tsr_llm_state_pos (state) < n_ctx)
    {
      int32_t next = a.temperature > 0 ? sample (logits, n_vocab, (float) a.temperature, &rng)
                                       : argmax (logits, n_vocab);
      TsrLlmInput row = { next, NULL, 0 };
      size_t k;
      if (next == tsr_tokenizer_eos (tok) || next == tsr_tokenizer_bos (tok))
        break;
      k = tsr_decoder_push (&dec, next, buf, sizeof buf);
      fwrite (buf, 1, k, stdout);
      fflush (stdout);
      generated++;
      if (generated == a.max_new || tsr_llm_state_pos (state) >= n_ctx)
        break;
      if (tsr_llm_forward (llm, state, pool, &row, 1, logits, NULL, &err) != TSR_OK)
        {
          rc = cli_fail (CLI_EXIT_RUNTIME, "%s", err.message);
          goto done;
        }
    }
  fwrite (buf, 1, tsr_decoder_flush (&dec, buf, sizeof buf), stdout);
  putchar ('\n');
  t_end = now_s ();
  fprintf (stderr, "prompt %zu tokens in %.3f s (%.1f tokens/s); generated %d tokens in %.3f s (%.1f tokens/s)\n",
           n, t_prompt - t0, n / (t_prompt - t0 + 1e-9), generated, t_end - t_prompt,
           generated / (t_end - t_prompt + 1e-9));
  rc = CLI_EXIT_OK;

done:
  tsr_llm_state_free (state);
  tsr_pool_free (pool);
  free (rows);
  free (logits);
  free (ids);
  tsr_tokenizer_free (tok);
  tsr_llm_free (llm);
  tsr_gguf_close (g);
  return rc;
}
