/* SPDX-License-Identifier: GPL-3.0-or-later
 *
 * tessera-cli ask --model M [--image IMG] [--hd N] [--max-new-tokens K]
 *                 [--beams B] [--temperature T] [--top-k K] [--top-p P]
 *                 [--repetition-penalty R] [--seed S] [--kv-f16] [--threads N] QUESTION
 * tessera-cli logits --model M [--image IMG] [--hd N] [--threads N] --question Q --out F.npy
 *
 * One question to an InternLM-XComposer2-4KHD model file through a chat
 * session (engine/tsr-chat.c): the answer streams to stdout, the timings
 * go to stderr. `logits` writes the raw logits of the answer's first
 * token instead, for comparison with the reference.
 *
 * Decoding: greedy unless --temperature T > 0 (sampling, with HF chat()'s
 * top-p 0.8 and transformers' top-k 50) or --beams B > 1 (beam search).
 * HF's chat() samples by default; a command line is more useful when the
 * same question gives the same answer, hence greedy here.
 */
#include "config.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tessera-cli.h"
#include "tessera-engine.h"
#include "tessera-image-load.h"

static const char usage_ask[] =
  "usage: tessera-cli ask --model M [--image IMG] [--hd N] [--max-new-tokens K] [--beams B] "
  "[--temperature T] [--top-k K] [--top-p P] [--repetition-penalty R] [--seed S] [--kv-f16] "
  "[--threads N] QUESTION";
static const char usage_logits[] =
  "usage: tessera-cli logits --model M [--image IMG] [--hd N] [--threads N] --question Q --out F.npy";

typedef struct {
  const char  *model, *image, *question, *out;
  int          hd, threads, max_new, beams, top_k, kv_f16;
  double       temperature, top_p, repetition_penalty;
  int          have_temperature;
  unsigned long long seed;
} Args;

static int
parse_double (const char *v, double lo, double hi, double *out)
{
  char *end;
  double d;
  if (v == NULL || *v == '\0')
    return 0;
  d = strtod (v, &end);
  if (*end != '\0' || !(d >= lo && d <= hi))
    return 0;
  *out = d;
  return 1;
}

static const char help_ask[] =
  "Answers QUESTION with an InternLM-XComposer2-4KHD model file (tessera-cli convert makes one).\n"
  "\n"
  "  --model M               the model file\n"
  "  --image IMG             an image to ask about; the question's <ImageHere> marks its place, and a\n"
  "                          question without one gets it in front (\"<ImageHere>QUESTION\")\n"
  "  --hd N                  the image's tile budget, HD-N (default 25)\n"
  "  --max-new-tokens K      at most K answer tokens (default 1024)\n"
  "  --temperature T         0 (the default): greedy; above 0: sampling with --top-k (50) and --top-p (0.8)\n"
  "  --beams B               beam search with B beams (HF's num_beams; 1 is greedy)\n"
  "  --repetition-penalty R  HF's repetition penalty (default 1.005)\n"
  "  --seed S                the sampler's seed (default 0)\n"
  "  --kv-f16                keep keys and values as f16: half the memory\n"
  "  --threads N             worker threads (default: one per core)\n"
  "\n"
  "Greedy is the default, so a question gets the same answer each time; the official chat()\n"
  "samples (--temperature 1 does as it does). The README's demo uses --beams 3.\n"
  "The answer goes to stdout as it is written; timings go to stderr. Ctrl-C stops the answer.\n";

/* Returns −1 when the arguments are good, else the exit code. */
static int
parse_args (int argc, char **argv, Args *a, int ask)
{
  const char *usage = ask ? usage_ask : usage_logits;
  TsrGenParams d = tsr_gen_default_params ();

  memset (a, 0, sizeof *a);
  a->hd = TSR_HD_NUM_DEFAULT;
  a->max_new = d.max_new_tokens;
  a->beams = 1;
  a->top_k = d.top_k;
  a->top_p = d.top_p;
  a->repetition_penalty = d.repetition_penalty;
  for (int i = 1; i < argc; i++)
    {
      const char *o = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
      int takes = strcmp (o, "--model") == 0 || strcmp (o, "--image") == 0 || strcmp (o, "--hd") == 0 ||
                  strcmp (o, "--threads") == 0 ||
                  (!ask && (strcmp (o, "--question") == 0 || strcmp (o, "--out") == 0)) ||
                  (ask && (strcmp (o, "--max-new-tokens") == 0 || strcmp (o, "--beams") == 0 ||
                           strcmp (o, "--temperature") == 0 || strcmp (o, "--top-k") == 0 ||
                           strcmp (o, "--top-p") == 0 || strcmp (o, "--repetition-penalty") == 0 ||
                           strcmp (o, "--seed") == 0));
      if (strcmp (o, "--help") == 0 || strcmp (o, "-h") == 0)
        {
          printf ("%s\n\n%s", usage, ask ? help_ask : "Writes the logits of the first answer token to F.npy "
                  "([vocab] float32), for the standard chat prompt; --image, --hd and the question as for "
                  "ask.\n");
          return CLI_EXIT_OK;
        }
      if (ask && strcmp (o, "--kv-f16") == 0)
        {
          a->kv_f16 = 1;
          continue;
        }
      if (!takes)
        {
          if (o[0] == '-' && o[1] == '-')
            return cli_fail (CLI_EXIT_USAGE, "unknown option '%s'; %s", o, usage);
          if (!ask || a->question != NULL)
            return cli_fail (CLI_EXIT_USAGE, "unexpected '%s' (quote the question); %s", o, usage);
          a->question = o;
          continue;
        }
      if (v == NULL)
        return cli_fail (CLI_EXIT_USAGE, "%s needs a value", o);
      i++;
      if (strcmp (o, "--model") == 0)
        a->model = v;
      else if (strcmp (o, "--image") == 0)
        a->image = v;
      else if (strcmp (o, "--question") == 0)
        a->question = v;
      else if (strcmp (o, "--out") == 0)
        a->out = v;
      else if (strcmp (o, "--hd") == 0)
        {
          if (!cli_parse_int (v, TSR_HD_NUM_MIN, TSR_HD_NUM_MAX, &a->hd))
            return cli_fail (CLI_EXIT_USAGE, "--hd takes a whole number from %d to %d, not '%s'",
                             TSR_HD_NUM_MIN, TSR_HD_NUM_MAX, v);
        }
      else if (strcmp (o, "--threads") == 0)
        {
          if (!cli_parse_int (v, 1, 1024, &a->threads))
            return cli_fail (CLI_EXIT_USAGE, "--threads takes a whole number from 1 to 1024, not '%s'", v);
        }
      else if (strcmp (o, "--max-new-tokens") == 0)
        {
          if (!cli_parse_int (v, 0, TSR_LLM_MAX_CONTEXT, &a->max_new))
            return cli_fail (CLI_EXIT_USAGE, "--max-new-tokens takes 0 to %d, not '%s'", TSR_LLM_MAX_CONTEXT, v);
        }
      else if (strcmp (o, "--beams") == 0)
        {
          if (!cli_parse_int (v, 1, TSR_GEN_MAX_BEAMS, &a->beams))
            return cli_fail (CLI_EXIT_USAGE, "--beams takes 1 to %d, not '%s'", TSR_GEN_MAX_BEAMS, v);
        }
      else if (strcmp (o, "--temperature") == 0)
        {
          if (!parse_double (v, 0, 100, &a->temperature))
            return cli_fail (CLI_EXIT_USAGE, "--temperature takes a number from 0 to 100, not '%s'", v);
          a->have_temperature = 1;
        }
      else if (strcmp (o, "--top-k") == 0)
        {
          if (!cli_parse_int (v, 0, 1 << 30, &a->top_k))
            return cli_fail (CLI_EXIT_USAGE, "--top-k takes a whole number, 0 for off, not '%s'", v);
        }
      else if (strcmp (o, "--top-p") == 0)
        {
          if (!parse_double (v, 1e-6, 1, &a->top_p))
            return cli_fail (CLI_EXIT_USAGE, "--top-p takes a number in (0, 1], not '%s'", v);
        }
      else if (strcmp (o, "--repetition-penalty") == 0)
        {
          if (!parse_double (v, 1e-3, 100, &a->repetition_penalty))
            return cli_fail (CLI_EXIT_USAGE, "--repetition-penalty takes a number above 0, not '%s'", v);
        }
      else if (strcmp (o, "--seed") == 0)
        {
          char *end;
          a->seed = strtoull (v, &end, 10);
          if (*v == '\0' || *end != '\0')
            return cli_fail (CLI_EXIT_USAGE, "--seed takes a whole number, not '%s'", v);
        }
    }
  if (a->model == NULL || a->question == NULL || (!ask && a->out == NULL))
    return cli_fail (CLI_EXIT_USAGE, "%s", usage);
  if (a->beams > 1 && a->temperature > 0)
    return cli_fail (CLI_EXIT_USAGE, "--beams and --temperature above 0 do not go together: beam search "
                     "does not sample");
  if (a->image == NULL && strstr (a->question, TSR_CHAT_IMAGE_TAG) != NULL)
    return cli_fail (CLI_EXIT_USAGE, "the question holds %s but no --image was given", TSR_CHAT_IMAGE_TAG);
  return -1;
}

static volatile sig_atomic_t interrupted;

static void
on_sigint (int sig)
{
  (void) sig;
  interrupted = 1;
}

static int
should_abort (void *user_data)
{
  (void) user_data;
  return interrupted;
}

/* On a terminal, where a long image or prompt has got to; the line is
 * wiped before the answer starts. */
static void
on_progress (const char *stage, int done, int total, void *user_data)
{
  int *shown = user_data;
  if (strcmp (stage, "generate") == 0)
    {
      if (*shown)
        fputs ("\r\033[K", stderr);
      *shown = 0;
      return;
    }
  fprintf (stderr, "\r\033[K%s %d/%d", strcmp (stage, "tiles") == 0 ? "image views" : stage, done, total);
  *shown = 1;
}

static void
on_token (int32_t id, const char *text, size_t len, void *user_data)
{
  int *shown = user_data;
  (void) id;
  if (shown != NULL && *shown)
    {
      fputs ("\r\033[K", stderr);
      *shown = 0;
    }
  if (len > 0)
    {
      fwrite (text, 1, len, stdout);
      fflush (stdout);
    }
}

static int
run (int argc, char **argv, int ask)
{
  Args a;
  int rc = parse_args (argc, argv, &a, ask);
  TsrGguf *g = NULL;
  TsrLlm *llm = NULL;
  TsrVision *vision = NULL;
  TsrTokenizer *tok = NULL;
  TsrPool *pool = NULL;
  TsrChat *chat = NULL;
  TsrChatConfig config;
  TsrChatImage image;
  TsrChatCallbacks cb;
  TsrChatAnswer answer;
  TsrGenParams params;
  TsrError err;
  GError *error = NULL;
  GdkPixbuf *pixbuf = NULL;
  guint8 *rgb = NULL;
  char *question = NULL;
  float *logits = NULL;
  struct sigaction sa;
  int shown = 0;

  if (rc >= 0)
    return rc;
  memset (&answer, 0, sizeof answer);
  if (tsr_gguf_open (a.model, &g, &err) != TSR_OK || tsr_llm_load (g, &llm, &err) != TSR_OK ||
      tsr_tokenizer_from_gguf (g, &tok, &err) != TSR_OK)
    {
      rc = cli_fail (CLI_EXIT_RUNTIME, "%s", err.message);
      goto done;
    }
  if (tsr_llm_info (llm)->synthetic)
    {
      rc = cli_fail (CLI_EXIT_RUNTIME, "%s holds random weights for benchmarks; it cannot answer questions",
                     a.model);
      goto done;
    }
  if (tsr_llm_info (llm)->arch != TSR_ARCH_INTERNLM2_4KHD)
    {
      rc = cli_fail (CLI_EXIT_RUNTIME, "%s is a plain language model without a chat template; use "
                     "'tessera-cli complete'", a.model);
      goto done;
    }

  memset (&image, 0, sizeof image);
  if (a.image != NULL)
    {
      pixbuf = tessera_image_load (a.image, NULL, &error);
      if (pixbuf == NULL || (rgb = tessera_image_to_rgb8 (pixbuf, NULL, &error)) == NULL)
        {
          rc = cli_fail (CLI_EXIT_RUNTIME, "%s: %s", a.image, error->message);
          goto done;
        }
      image.rgb = rgb;
      image.width = gdk_pixbuf_get_width (pixbuf);
      image.height = gdk_pixbuf_get_height (pixbuf);
      image.stride = (size_t) 3 * (size_t) image.width;
      image.hd_num = a.hd;
      if (tsr_vision_new (g, &vision, &err) != TSR_OK)
        {
          rc = cli_fail (CLI_EXIT_RUNTIME, "%s", err.message);
          goto done;
        }
    }
  /* A question about an image that does not say where the image goes gets
   * it in front, as the README's examples put it. */
  if (a.image != NULL && strstr (a.question, TSR_CHAT_IMAGE_TAG) == NULL)
    question = g_strconcat (TSR_CHAT_IMAGE_TAG, a.question, NULL);
  else
    question = g_strdup (a.question);
  if (a.image != NULL && strstr (strstr (question, TSR_CHAT_IMAGE_TAG) + strlen (TSR_CHAT_IMAGE_TAG),
                                 TSR_CHAT_IMAGE_TAG) != NULL)
    {
      rc = cli_fail (CLI_EXIT_USAGE, "the question holds more than one %s but one --image was given",
                     TSR_CHAT_IMAGE_TAG);
      goto done;
    }

  tsr_chat_config_init (&config);
  config.vision = vision;
  config.kv_type = a.kv_f16 ? TSR_DTYPE_F16 : TSR_DTYPE_F32;
  if (tsr_pool_new (a.threads, &pool, &err) != TSR_OK ||
      tsr_chat_new (llm, tok, pool, &config, &chat, &err) != TSR_OK)
    {
      rc = cli_fail (CLI_EXIT_RUNTIME, "%s", err.message);
      goto done;
    }

  memset (&sa, 0, sizeof sa);
  sa.sa_handler = on_sigint;
  sigemptyset (&sa.sa_mask);
  sigaction (SIGINT, &sa, NULL);
  memset (&cb, 0, sizeof cb);
  cb.should_abort = should_abort;
  if (isatty (STDERR_FILENO))
    {
      cb.progress = on_progress;
      cb.user_data = &shown;
    }

  if (!ask)
    {
      size_t shape[1];
      int ok;
      shape[0] = tsr_llm_info (llm)->n_vocab;
      logits = malloc (shape[0] * sizeof *logits);
      if (logits == NULL)
        {
          rc = cli_fail (CLI_EXIT_RUNTIME, "out of memory");
          goto done;
        }
      ok = tsr_chat_logits (chat, question, a.image ? &image : NULL, a.image ? 1 : 0, &cb, logits, &err) == TSR_OK &&
           tsr_npy_write_f32 (a.out, logits, 1, shape, &err) == TSR_OK;
      if (shown)
        fputs ("\r\033[K", stderr);
      if (!ok)
        {
          rc = cli_fail (CLI_EXIT_RUNTIME, "%s", err.message);
          goto done;
        }
      rc = CLI_EXIT_OK;
      goto done;
    }

  params = tsr_gen_default_params ();
  params.max_new_tokens = a.max_new;
  params.repetition_penalty = (float) a.repetition_penalty;
  params.top_k = a.top_k;
  params.top_p = (float) a.top_p;
  params.seed = a.seed;
  if (a.beams > 1)
    {
      params.mode = TSR_GEN_BEAM;
      params.n_beams = a.beams;
    }
  else if (a.temperature > 0)
    {
      params.mode = TSR_GEN_SAMPLE;
      params.temperature = (float) a.temperature;
    }
  cb.token = on_token;
  if (tsr_chat_ask (chat, question, a.image ? &image : NULL, a.image ? 1 : 0, &params, &cb, &answer, &err) !=
      TSR_OK)
    {
      if (shown)
        fputs ("\r\033[K", stderr);
      if (err.status == TSR_ECANCELLED)
        putchar ('\n');
      rc = cli_fail (CLI_EXIT_RUNTIME, "%s", err.status == TSR_ECANCELLED ? "stopped" : err.message);
      goto done;
    }
  putchar ('\n');
  fflush (stdout);
  fprintf (stderr, "prompt %d tokens (%d from the cache) in %.3f s (%.1f tokens/s); generated %d tokens in "
           "%.3f s (%.2f tokens/s)%s; images %.3f s\n",
           answer.timings.prefill_tokens + answer.timings.reused_tokens, answer.timings.reused_tokens,
           answer.timings.prefill_seconds, answer.timings.prefill_tokens_per_second, answer.timings.decode_tokens,
           answer.timings.decode_seconds, answer.timings.decode_tokens_per_second,
           answer.stop == TSR_CHAT_STOP_LENGTH ? ", stopped at --max-new-tokens"
           : answer.stop == TSR_CHAT_STOP_CONTEXT ? ", stopped at the context limit" : "",
           answer.timings.encode_seconds);
  rc = CLI_EXIT_OK;

done:
  tsr_chat_answer_clear (&answer);
  tsr_chat_free (chat);
  tsr_pool_free (pool);
  tsr_vision_free (vision);
  tsr_tokenizer_free (tok);
  tsr_llm_free (llm);
  tsr_gguf_close (g);
  free (logits);
  g_free (question);
  g_free (rgb);
  g_clear_object (&pixbuf);
  g_clear_error (&error);
  return rc;
}

int
cli_ask (int argc, char **argv)
{
  return run (argc, argv, 1);
}

int
cli_logits (int argc, char **argv)
{
  return run (argc, argv, 0);
}
