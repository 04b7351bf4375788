/* SPDX-License-Identifier: GPL-3.0-or-later
 *
 * test-chat.c — chat sessions and the sampler (engine/tsr-chat.c,
 * tsr-sampler.c) against the fixtures of tests/reference/model_reference.py
 * (a float64 PyTorch reference written from model.md), on the tiny
 * checkpoint converted to MODEL.gguf by test-chat.py.
 *
 *     test-chat MODEL.gguf FIXTURE_DIR [SYNTHETIC.gguf]
 *
 * Checks:
 *   - the sampler's processors by hand (HF's repetition penalty, top-k with
 *     ties, top-p, temperature, the draw), seeded sampling;
 *   - the clean-up by hand, and the streamed pieces against the whole text
 *     on random strings;
 *   - every case's prompt row by row (BOS per segment, image rows in place,
 *     the text path's [1, 1, …], history);
 *   - logits of the first answer token within 1e-4 (max |Δ| / max |ref|),
 *     20 greedy ids and 3-beam ids identical, answers identical, with and
 *     without an image;
 *   - a conversation asked turn by turn (the cache reused) against a
 *     session that prefills the whole two-turn prompt at once;
 *   - abort while prefilling, while generating and during beam search,
 *     then the same question again: the fresh session's answer;
 *   - seeded sampling repeats; top-k 1 is greedy; one beam is greedy;
 *   - errors: image count, context limits, models without a template.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "tessera-engine.h"
#include "tsr-chat.h"
#include "tsr-npy.h"
#include "tsr-sampler.h"

#define TOLERANCE 1e-4
#define REUSE_TOLERANCE 1e-5

static int failures, checks;
static double worst_rel_err;

#define CHECK(cond, ...)                                                    \
  do {                                                                      \
    checks++;                                                               \
    if (!(cond))                                                            \
      {                                                                     \
        failures++;                                                         \
        fprintf (stderr, "FAIL %s:%d: ", __FILE__, __LINE__);               \
        fprintf (stderr, __VA_ARGS__);                                      \
        fputc ('\n', stderr);                                               \
      }                                                                     \
  } while (0)

static TsrGguf *gguf;
static TsrLlm *llm;
static TsrTokenizer *tok;
static TsrPool *pool1, *pool2;
static size_t n_vocab;
static float *image_embd;
static int image_rows;
static const char *fixture_dir;
static cJSON *manifest;

/* ==== Helpers =========================================================== */

static char *
read_text (const char *path)
{
  FILE *f = fopen (path, "rb");
  long n;
  char *s;
  if (f == NULL)
    return NULL;
  fseek (f, 0, SEEK_END);
  n = ftell (f);
  fseek (f, 0, SEEK_SET);
  s = malloc ((size_t) n + 1);
  if (s != NULL && fread (s, 1, (size_t) n, f) != (size_t) n)
    {
      free (s);
      s = NULL;
    }
  if (s != NULL)
    s[n] = '\0';
  fclose (f);
  return s;
}

static float *
read_npy (const char *name, size_t *count)
{
  char path[4096];
  TsrNpyF32 arr;
  TsrError err;
  snprintf (path, sizeof path, "%s/%s", fixture_dir, name);
  if (tsr_npy_read_f32 (path, &arr, &err) != TSR_OK)
    {
      fprintf (stderr, "%s\n", err.message);
      exit (1);
    }
  *count = arr.count;
  return arr.data;
}

static double
rel_err (const float *got, const float *ref, size_t n)
{
  double d = 0, m = 0;
  for (size_t i = 0; i < n; i++)
    {
      double e = fabs ((double) got[i] - (double) ref[i]);
      d = e > d ? e : d;
      m = fabs ((double) ref[i]) > m ? fabs ((double) ref[i]) : m;
    }
  return m > 0 ? d / m : d;
}

static int
ids_equal (const int32_t *a, size_t na, const cJSON *b)
{
  if ((int) na != cJSON_GetArraySize (b))
    return 0;
  for (size_t i = 0; i < na; i++)
    if (a[i] != cJSON_GetArrayItem (b, (int) i)->valueint)
      return 0;
  return 1;
}

static void
print_ids (const char *what, const int32_t *a, size_t n)
{
  fprintf (stderr, "  %s:", what);
  for (size_t i = 0; i < n; i++)
    fprintf (stderr, " %d", a[i]);
  fputc ('\n', stderr);
}

static const char *
jstr (const cJSON *o, const char *key)
{
  const cJSON *v = cJSON_GetObjectItemCaseSensitive (o, key);
  return cJSON_IsString (v) ? v->valuestring : "";
}

static const cJSON *
jget (const cJSON *o, const char *key)
{
  return cJSON_GetObjectItemCaseSensitive (o, key);
}

static TsrChatImage
the_image (void)
{
  TsrChatImage im;
  memset (&im, 0, sizeof im);
  im.embd = image_embd;
  im.n_rows = image_rows;
  return im;
}

static TsrChat *
new_chat (TsrPool *pool, const TsrChatConfig *cfg)
{
  TsrChat *c = NULL;
  TsrError err;
  if (tsr_chat_new (llm, tok, pool, cfg, &c, &err) != TSR_OK)
    {
      fprintf (stderr, "tsr_chat_new: %s\n", err.message);
      exit (1);
    }
  return c;
}

static TsrGenParams
greedy_params (int max_new)
{
  TsrGenParams p = tsr_gen_default_params ();
  p.max_new_tokens = max_new;
  return p;
}

/* Callbacks: stream collection, progress, and an abort after N polls or
 * N tokens. */
typedef struct {
  char   text[65536];
  size_t n;
  int    tokens;
  int    polls;
  int    abort_at_poll;     /* 0: never */
  int    abort_at_token;    /* 0: never */
  int    saw_prefill_end, saw_generate;
  int    prefill_total;     /* rows the last prefill ran */
} Probe;

static void
probe_token (int32_t id, const char *text, size_t len, void *user_data)
{
  Probe *p = user_data;
  if (id >= 0)
    p->tokens++;
  if (p->n + len < sizeof p->text)
    {
      memcpy (p->text + p->n, text, len);
      p->n += len;
    }
}

static void
probe_progress (const char *stage, int done, int total, void *user_data)
{
  Probe *p = user_data;
  if (strcmp (stage, "prefill") == 0 && done == total)
    p->saw_prefill_end = 1;
  if (strcmp (stage, "prefill") == 0)
    p->prefill_total = total;
  if (strcmp (stage, "generate") == 0)
    p->saw_generate = 1;
}

static int
probe_abort (void *user_data)
{
  Probe *p = user_data;
  p->polls++;
  return (p->abort_at_poll > 0 && p->polls >= p->abort_at_poll) ||
         (p->abort_at_token > 0 && p->tokens >= p->abort_at_token);
}

static TsrChatCallbacks
probe_callbacks (Probe *p)
{
  TsrChatCallbacks cb;
  memset (p, 0, sizeof *p);
  cb.token = probe_token;
  cb.progress = probe_progress;
  cb.should_abort = probe_abort;
  cb.user_data = p;
  return cb;
}

/* Asks one turn; checks the streamed pieces add up to the answer. */
static TsrStatus
ask (TsrChat *c, const char *q, int with_image, const TsrGenParams *params, Probe *probe, TsrChatAnswer *a,
     TsrError *err)
{
  TsrChatImage im = the_image ();
  Probe local;
  TsrChatCallbacks cb;
  TsrStatus st;
  int a_poll = probe ? probe->abort_at_poll : 0, a_tok = probe ? probe->abort_at_token : 0;
  if (probe == NULL)
    probe = &local;
  cb = probe_callbacks (probe);
  probe->abort_at_poll = a_poll;
  probe->abort_at_token = a_tok;
  st = tsr_chat_ask (c, q, with_image ? &im : NULL, with_image ? 1 : 0, params, &cb, a, err);
  if (st == TSR_OK)
    {
      CHECK (probe->n == strlen (a->text) && memcmp (probe->text, a->text, probe->n) == 0,
             "the streamed pieces (%zu bytes) do not add up to the answer (%zu bytes)", probe->n,
             strlen (a->text));
      CHECK (probe->saw_prefill_end, "no final prefill progress");
    }
  return st;
}

/* ==== The sampler by hand =============================================== */

static void
test_sampler (void)
{
  TsrGenParams p = tsr_gen_default_params ();
  TsrSampler *s;
  TsrError err;
  TsrIdSet set;
  TsrScoreIdx sidx[8];
  float scratch[8];

  /* Repetition penalty, HF: each id once, s/p above 0 (and at 0), s·p below. */
  {
    float x[5] = { 2.0f, -1.0f, 0.5f, 3.0f, 0.0f };
    int32_t ids[4] = { 0, 1, 1, 4 };
    p.repetition_penalty = 2.0f;
    CHECK (tsr_sampler_new (&p, 5, &s, &err) == TSR_OK, "sampler: %s", err.message);
    tsr_sampler_accept (s, ids, 4);
    CHECK (tsr_sampler_next (s, x) == 3, "greedy after the penalty");
    CHECK (x[0] == 1.0f && x[1] == -2.0f && x[2] == 0.5f && x[3] == 3.0f && x[4] == 0.0f,
           "penalty 2: %g %g %g %g %g", x[0], x[1], x[2], x[3], x[4]);
    /* The penalty can change the winner: 3.0 seen → 1.5 < 2.0. */
    {
      float y[5] = { 2.0f, -1.0f, 0.5f, 3.0f, 0.0f };
      int32_t three = 3;
      tsr_sampler_accept (s, &three, 1);
      CHECK (tsr_sampler_next (s, y) == 2 || y[3] == 1.5f, "penalised 3");
      CHECK (y[3] == 1.5f && y[0] == 1.0f, "penalised 3: %g %g", y[3], y[0]);
    }
    tsr_sampler_reset (s);
    {
      float z[5] = { 2.0f, -1.0f, 0.5f, 3.0f, 0.0f };
      tsr_sampler_next (s, z);
      CHECK (z[0] == 2.0f && z[3] == 3.0f, "reset forgets the penalised ids");
    }
    tsr_sampler_free (s);
  }
  {
    float x[3] = { 2.0f, -1.0f, 4.0f };
    int32_t ids[2] = { 0, 1 };
    tsr_logits_repetition_penalty (x, ids, 2, 1.005f);
    CHECK (x[0] == 2.0f / 1.005f && x[1] == -1.0f * 1.005f && x[2] == 4.0f, "penalty 1.005");
  }
  /* Id sets keep each id once, in order of arrival. */
  CHECK (tsr_id_set_init (&set, 10, &err) == TSR_OK, "id set");
  tsr_id_set_add (&set, 7);
  tsr_id_set_add (&set, 2);
  tsr_id_set_add (&set, 7);
  tsr_id_set_add (&set, 12);
  tsr_id_set_add (&set, -1);
  CHECK (set.n == 2 && set.ids[0] == 7 && set.ids[1] == 2, "id set members");
  tsr_id_set_clear (&set);
  tsr_id_set_add (&set, 7);
  CHECK (set.n == 1, "id set after clear");
  tsr_id_set_fini (&set);

  /* Temperature. */
  {
    float x[2] = { 2.0f, -4.0f };
    tsr_logits_temperature (x, 2, 2.0f);
    CHECK (x[0] == 1.0f && x[1] == -2.0f, "temperature");
  }
  /* Top-k keeps every score equal to the k-th largest (HF's `<` test). */
  {
    float x[5] = { 1, 3, 3, 2, 0 };
    tsr_logits_top_k (x, 5, 1, 1, scratch);
    CHECK (x[1] == 3 && x[2] == 3 && isinf (x[0]) && isinf (x[3]) && isinf (x[4]), "top-k 1 with a tie");
  }
  {
    float x[5] = { 1, 3, 3, 2, 0 };
    tsr_logits_top_k (x, 5, 3, 1, scratch);
    CHECK (x[3] == 2 && x[1] == 3 && isinf (x[0]) && isinf (x[4]), "top-k 3");
  }
  {
    float x[5] = { 1, 3, 3, 2, 0 };
    tsr_logits_top_k (x, 5, 9, 1, scratch);
    CHECK (x[0] == 1 && x[4] == 0, "top-k past n keeps all");
  }
  {
    float x[7] = { 5, -1, 4, 4, 9, 0, 4 };
    tsr_logits_top_k (x, 7, 3, 1, scratch);
    CHECK (x[4] == 9 && x[0] == 5 && x[2] == 4 && x[3] == 4 && x[6] == 4 && isinf (x[1]) && isinf (x[5]),
           "top-k 3: the third largest is 4, all three 4s stay");
  }
  /* Top-p: probabilities .1 .2 .3 .4; ascending cumulative .1 .3 .6 1. */
  {
    float x[4] = { logf (0.2f), logf (0.4f), logf (0.1f), logf (0.3f) };
    tsr_logits_top_p (x, 4, 0.5f, 1, sidx);
    CHECK (isinf (x[0]) && isinf (x[2]) && !isinf (x[1]) && !isinf (x[3]), "top-p 0.5 keeps .4 and .3");
  }
  {
    float x[4] = { logf (0.2f), logf (0.4f), logf (0.1f), logf (0.3f) };
    tsr_logits_top_p (x, 4, 0.8f, 1, sidx);
    CHECK (isinf (x[2]) && !isinf (x[0]) && !isinf (x[1]) && !isinf (x[3]), "top-p 0.8 drops only .1");
  }
  {
    float x[4] = { logf (0.2f), logf (0.4f), logf (0.1f), logf (0.3f) };
    tsr_logits_top_p (x, 4, 0.01f, 1, sidx);
    CHECK (!isinf (x[1]) && isinf (x[0]) && isinf (x[2]) && isinf (x[3]), "top-p 0.01 keeps the best");
  }
  {
    float x[4] = { logf (0.2f), logf (0.4f), logf (0.1f), logf (0.3f) };
    tsr_logits_top_p (x, 4, 0.01f, 2, sidx);
    CHECK (!isinf (x[1]) && !isinf (x[3]) && isinf (x[0]) && isinf (x[2]), "top-p min_keep 2");
  }
  {
    float x[4] = { -INFINITY, logf (0.5f), -INFINITY, logf (0.5f) };
    tsr_logits_top_p (x, 4, 0.8f, 1, sidx);
    CHECK (!isinf (x[1]) && !isinf (x[3]), "top-p after top-k: the finite scores");
  }
  /* log_softmax, argmax (the first of ties), the draw. */
  {
    float x[2] = { 0.0f, logf (3.0f) };
    tsr_logits_log_softmax (x, 2);
    CHECK (fabsf (x[0] - logf (0.25f)) < 1e-6f && fabsf (x[1] - logf (0.75f)) < 1e-6f, "log_softmax");
  }
  {
    float x[4] = { 1, 5, 5, 2 };
    CHECK (tsr_logits_argmax (x, 4) == 1, "argmax takes the first of ties");
  }
  {
    float x[3] = { 0.0f, -INFINITY, 0.0f };
    CHECK (tsr_logits_draw (x, 3, 0.25) == 0 && tsr_logits_draw (x, 3, 0.75) == 2 &&
           tsr_logits_draw (x, 3, 0.999999) == 2 && tsr_logits_draw (x, 3, 0.0) == 0, "draw");
  }
  /* Seeded sampling repeats; another seed does not follow it. */
  {
    TsrSampler *a, *b, *c;
    int same_ab = 1, same_ac = 1;
    uint64_t rng = 99;
    p = tsr_gen_default_params ();
    p.mode = TSR_GEN_SAMPLE;
    p.top_k = 0;
    p.top_p = 1.0f;
    p.repetition_penalty = 1.0f;
    p.seed = 11;
    tsr_sampler_new (&p, 64, &a, &err);
    tsr_sampler_new (&p, 64, &b, &err);
    p.seed = 12;
    tsr_sampler_new (&p, 64, &c, &err);
    for (int i = 0; i < 200; i++)
      {
        float x[64], y[64], z[64];
        for (int k = 0; k < 64; k++)
          x[k] = y[k] = z[k] = (float) (tsr_rng_uniform (&rng) * 2.0);
        int32_t ia = tsr_sampler_next (a, x), ib = tsr_sampler_next (b, y), ic = tsr_sampler_next (c, z);
        same_ab &= ia == ib;
        same_ac &= ia == ic;
      }
    CHECK (same_ab && !same_ac, "seeded sampling: same seed %d, other seed %d", same_ab, same_ac);
    tsr_sampler_free (a);
    tsr_sampler_free (b);
    tsr_sampler_free (c);
  }
  /* Parameter checks. */
  p = tsr_gen_default_params ();
  CHECK (p.mode == TSR_GEN_GREEDY && p.repetition_penalty == 1.005f && p.top_p == 0.8f && p.top_k == 50 &&
         p.temperature == 1.0f && p.max_new_tokens == 1024 && p.n_beams == 3, "defaults");
  p.mode = TSR_GEN_SAMPLE;
  p.temperature = 0;
  CHECK (tsr_gen_check_params (&p, &err) == TSR_EINVAL, "temperature 0 sampling refused");
  p = tsr_gen_default_params ();
  p.mode = TSR_GEN_BEAM;
  p.n_beams = TSR_GEN_MAX_BEAMS + 1;
  CHECK (tsr_gen_check_params (&p, &err) == TSR_EINVAL, "too many beams refused");
}

/* ==== The clean-up ====================================================== */

static void
clean_case (const char *in, const char *want)
{
  char buf[256];
  size_t n;
  snprintf (buf, sizeof buf, "%s", in);
  n = tsr_chat_clean_up (buf, strlen (buf));
  CHECK (n == strlen (want) && strcmp (buf, want) == 0, "clean-up of \"%s\": \"%s\", want \"%s\"", in, buf,
         want);
}

static void
test_cleanup (void)
{
  static const char *const alphabet[] = { " ", " ", "'", ".", ",", "?", "!", "n", "t", "s", "m", "v", "e", "r",
                                          "a", "x", "[UNUSED_", "TOKEN_145]", "[UNUSED_TOKEN_145]", "é", "  " };
  const char *marker = "[UNUSED_TOKEN_145]";
  uint64_t rng = 7;
  int bad = 0;

  clean_case ("Hello , world .", "Hello, world.");
  clean_case ("Why ? Now !", "Why? Now!");
  clean_case ("I do n't know", "I don't know");
  clean_case ("it 's I 'm we 've they 're", "it's I'm we've they're");
  clean_case ("a ' b", "a'b");
  clean_case ("x ' .", "x '.");       /* " ." goes first, then " ' " no longer matches */
  clean_case ("a  .", "a .");         /* one pass: the new " ." is not seen again */
  clean_case (" .", ".");
  clean_case ("", "");

  /* Streamed in random pieces, the cleaned output adds up to the clean-up
   * of the whole text cut at the marker. */
  for (int t = 0; t < 20000; t++)
    {
      char whole[512], want[512], got[1024];
      size_t n_whole = 0, n_got = 0;
      int n_parts = 1 + (int) (tsr_rng_uniform (&rng) * 12);
      TsrTextStream s;
      TsrError err;
      const char *out;
      size_t n_out;
      char *cut;

      tsr_text_stream_init (&s, marker, strlen (marker));
      for (int k = 0; k < n_parts; k++)
        {
          char part[128];
          size_t n_part = 0;
          int n_sym = (int) (tsr_rng_uniform (&rng) * 4);
          for (int j = 0; j < n_sym; j++)
            {
              const char *a = alphabet[(int) (tsr_rng_uniform (&rng) * (sizeof alphabet / sizeof *alphabet))];
              memcpy (part + n_part, a, strlen (a));
              n_part += strlen (a);
            }
          memcpy (whole + n_whole, part, n_part);
          n_whole += n_part;
          tsr_text_stream_push (&s, part, n_part, 0, &out, &n_out, &err);
          memcpy (got + n_got, out, n_out);
          n_got += n_out;
        }
      tsr_text_stream_push (&s, "", 0, 1, &out, &n_out, &err);
      memcpy (got + n_got, out, n_out);
      n_got += n_out;
      whole[n_whole] = '\0';
      cut = strstr (whole, marker);
      if (cut != NULL)
        *cut = '\0';
      snprintf (want, sizeof want, "%s", whole);
      tsr_chat_clean_up (want, strlen (want));
      if (n_got != strlen (want) || memcmp (got, want, n_got) != 0)
        {
          if (bad++ < 5)
            fprintf (stderr, "  stream of \"%s\": \"%.*s\", want \"%s\"\n", whole, (int) n_got, got, want);
        }
      tsr_text_stream_fini (&s);
    }
  CHECK (bad == 0, "%d streamed texts differ from their whole clean-up", bad);
}

/* ==== Prompts =========================================================== */

/* The fixture's prompt, image blocks spelled out as −1 − k per row. */
static int32_t *
expand_prompt (const cJSON *prompt, size_t *n)
{
  size_t cap = 0, k = 0;
  int32_t *v;
  const cJSON *it;
  cJSON_ArrayForEach (it, prompt)
    cap += cJSON_IsNumber (it) ? 1 : (size_t) jget (it, "rows")->valueint;
  v = malloc (cap * sizeof *v);
  cJSON_ArrayForEach (it, prompt)
    {
      if (cJSON_IsNumber (it))
        v[k++] = it->valueint;
      else
        for (int r = 0; r < jget (it, "rows")->valueint; r++)
          v[k++] = -1 - jget (it, "image")->valueint;
    }
  *n = k;
  return v;
}

/* A session for a case: its meta instruction (null: the default). */
static TsrChat *
case_chat (TsrPool *pool, const cJSON *cs)
{
  TsrChatConfig cfg;
  const cJSON *meta = jget (cs, "meta");
  tsr_chat_config_init (&cfg);
  if (cJSON_IsString (meta))
    cfg.meta = meta->valuestring;
  return new_chat (pool, &cfg);
}

/* A session holding every turn of the case but the last, without running
 * the model. */
static TsrChat *
session_with_history (TsrPool *pool, const cJSON *cs)
{
  const cJSON *turns = jget (cs, "turns");
  TsrChat *c = case_chat (pool, cs);
  int n = cJSON_GetArraySize (turns);
  TsrError err;
  for (int i = 0; i < n - 1; i++)
    {
      const cJSON *t = cJSON_GetArrayItem (turns, i);
      TsrChatImage im = the_image ();
      int ni = jget (t, "images")->valueint;
      CHECK (tsr_chat_add_turn (c, jstr (t, "question"), ni ? &im : NULL, ni, jstr (t, "answer"), &err) == TSR_OK,
             "add_turn: %s", err.message);
    }
  return c;
}

static void
test_prompts (void)
{
  const cJSON *cs;
  TsrError err;

  cJSON_ArrayForEach (cs, jget (manifest, "cases"))
    {
      const cJSON *turns = jget (cs, "turns");
      const cJSON *last = cJSON_GetArrayItem (turns, cJSON_GetArraySize (turns) - 1);
      TsrChat *c = session_with_history (pool1, cs);
      int ni = jget (last, "images")->valueint;
      int32_t *got = NULL, *want;
      size_t n_got = 0, n_want;
      CHECK (tsr_chat_prompt (c, jstr (last, "question"), &image_rows, ni, &got, &n_got, &err) == TSR_OK,
             "prompt: %s", err.message);
      want = expand_prompt (jget (last, "prompt"), &n_want);
      CHECK (n_got == n_want && memcmp (got, want, n_want * sizeof *want) == 0,
             "%s: the prompt differs (%zu rows, want %zu)", jstr (cs, "name"), n_got, n_want);
      free (got);
      free (want);
      tsr_chat_free (c);
    }

  /* No meta instruction: no system block on either path. */
  {
    TsrChatConfig cfg;
    TsrChat *c;
    int32_t *ids = NULL;
    size_t n = 0;
    int32_t im_start = (int32_t) tsr_llm_info (llm)->im_start_id;
    tsr_chat_config_init (&cfg);
    cfg.meta = "";
    c = new_chat (pool1, &cfg);
    tsr_chat_prompt (c, "Hi", NULL, 0, &ids, &n, &err);
    CHECK (n > 4 && ids[0] == 1 && ids[1] == 1 && ids[2] == im_start, "text path without meta: [1, 1, start]");
    free (ids);
    tsr_chat_prompt (c, "<ImageHere>Hi", &image_rows, 1, &ids, &n, &err);
    CHECK (n > 4 && ids[0] == 1 && ids[1] == im_start, "image path without meta: [1, start, …]");
    /* BOS again right after the image: a second text segment. */
    {
      size_t i = 0;
      while (i < n && ids[i] >= 0)
        i++;
      while (i < n && ids[i] < 0)
        i++;
      CHECK (i < n && ids[i] == 1, "BOS after the image");
    }
    free (ids);
    /* Two images in one question; the wrong number is refused. */
    {
      int rows2[2] = { 3, 5 };
      size_t imgs = 0, k0 = 0, k1 = 0;
      tsr_chat_prompt (c, "a<ImageHere>b<ImageHere>c", rows2, 2, &ids, &n, &err);
      for (size_t i = 0; i < n; i++)
        {
          imgs += ids[i] < 0;
          k0 += ids[i] == -1;
          k1 += ids[i] == -2;
        }
      CHECK (imgs == 8 && k0 == 3 && k1 == 5, "two images spliced: %zu %zu %zu", imgs, k0, k1);
      free (ids);
      CHECK (tsr_chat_prompt (c, "a<ImageHere>b", rows2, 2, &ids, &n, &err) == TSR_EINVAL, "image count");
    }
    tsr_chat_free (c);
  }
}

/* ==== Logits, greedy, beams ============================================= */

static void
test_cases (void)
{
  const cJSON *cs;
  TsrError err;

  cJSON_ArrayForEach (cs, jget (manifest, "cases"))
    {
      const char *name = jstr (cs, "name");
      const cJSON *turns = jget (cs, "turns");
      int n_turns = cJSON_GetArraySize (turns);
      const cJSON *last = cJSON_GetArrayItem (turns, n_turns - 1);
      int ni = jget (last, "images")->valueint;
      TsrChatImage im = the_image ();
      size_t n_ref;
      float *ref = read_npy (jstr (last, "logits"), &n_ref);
      float *got = malloc (n_vocab * sizeof *got), *full = malloc (n_vocab * sizeof *full);
      TsrChat *b = session_with_history (pool1, cs), *a = case_chat (pool1, cs);
      TsrChatAnswer ans;
      TsrGenParams gp = greedy_params (jget (manifest, "max_new_tokens")->valueint);
      int prev_prompt = 0;
      double e;

      /* Logits of the first answer token, from a whole-prompt prefill. */
      CHECK (n_ref == n_vocab, "%s: %zu reference logits", name, n_ref);
      CHECK (tsr_chat_logits (b, jstr (last, "question"), ni ? &im : NULL, ni, NULL, full, &err) == TSR_OK,
             "%s logits: %s", name, err.message);
      e = rel_err (full, ref, n_vocab);
      worst_rel_err = e > worst_rel_err ? e : worst_rel_err;
      printf ("%-12s logits: max relative error %.3g\n", name, e);
      CHECK (e <= TOLERANCE, "%s: logits relative error %.3g", name, e);

      /* The conversation turn by turn: each answer greedy, the cache reused. */
      for (int t = 0; t < n_turns; t++)
        {
          const cJSON *turn = cJSON_GetArrayItem (turns, t);
          int ti = jget (turn, "images")->valueint;
          int cached = tsr_chat_n_cached (a);
          if (t == n_turns - 1)
            {
              /* The reuse path's logits: against the reference and the full prefill. */
              Probe probe;
              TsrChatCallbacks cb = probe_callbacks (&probe);
              size_t n_full;
              int32_t *full_rows = NULL;
              tsr_chat_prompt (a, jstr (turn, "question"), &image_rows, ti, &full_rows, &n_full, &err);
              free (full_rows);
              CHECK (tsr_chat_logits (a, jstr (turn, "question"), ti ? &im : NULL, ti, &cb, got, &err) == TSR_OK,
                     "%s reuse logits: %s", name, err.message);
              if (t > 0)
                {
                  /* The previous prompt stayed in the cache, and the answer
                   * up to where its text re-tokenises differently from the
                   * ids generated (as HF re-tokenises history answers). */
                  int kept = (int) n_full - probe.prefill_total;
                  printf ("%-12s turn %d: %d of %d cached rows kept, %d prefilled, prompt %zu rows\n", name, t + 1,
                          kept, cached, probe.prefill_total, n_full);
                  CHECK (kept <= cached && kept >= prev_prompt, "%s turn %d: %d rows kept of %d cached (previous "
                         "prompt %d)", name, t + 1, kept, cached, prev_prompt);
                }
              e = rel_err (got, ref, n_vocab);
              worst_rel_err = e > worst_rel_err ? e : worst_rel_err;
              CHECK (e <= TOLERANCE, "%s: reuse logits relative error %.3g", name, e);
              e = rel_err (got, full, n_vocab);
              if (t > 0)
                printf ("%-12s cache reuse against full recomputation: max relative difference %.3g\n", name, e);
              CHECK (e <= REUSE_TOLERANCE, "%s: cache reuse vs full prefill %.3g", name, e);
            }
          CHECK (ask (a, jstr (turn, "question"), ti, &gp, NULL, &ans, &err) == TSR_OK, "%s ask %d: %s", name, t,
                 err.message);
          CHECK (ids_equal (ans.ids, ans.n_ids, jget (turn, "greedy")), "%s turn %d: greedy ids differ", name,
                 t + 1);
          if (!ids_equal (ans.ids, ans.n_ids, jget (turn, "greedy")))
            print_ids ("got", ans.ids, ans.n_ids);
          CHECK (strcmp (ans.text, jstr (turn, "answer")) == 0, "%s turn %d: answer text differs", name, t + 1);
          CHECK ((ans.stop == TSR_CHAT_STOP_END) == (strcmp (jstr (turn, "greedy_stop"), "end") == 0),
                 "%s turn %d: stop %d, want %s", name, t + 1, ans.stop, jstr (turn, "greedy_stop"));
          /* Greedy to the length limit: every answer token but the last is
           * in the cache. */
          prev_prompt = ans.timings.reused_tokens + ans.timings.prefill_tokens;
          if (ans.stop == TSR_CHAT_STOP_LENGTH)
            CHECK (prev_prompt + (int) ans.n_ids - 1 == tsr_chat_n_cached (a), "%s turn %d: %d cached rows", name,
                   t + 1, tsr_chat_n_cached (a));
          tsr_chat_answer_clear (&ans);
        }
      CHECK (tsr_chat_n_turns (a) == n_turns, "%s: %d turns", name, tsr_chat_n_turns (a));

      /* The same greedy answer from the whole-prompt session. */
      CHECK (ask (b, jstr (last, "question"), ni, &gp, NULL, &ans, &err) == TSR_OK, "%s: %s", name, err.message);
      CHECK (ids_equal (ans.ids, ans.n_ids, jget (last, "greedy")), "%s: full-prefill greedy ids differ", name);
      tsr_chat_answer_clear (&ans);
      tsr_chat_free (b);

      /* 3 beams, as HF's generate(num_beams=3). */
      b = session_with_history (pool1, cs);
      gp.mode = TSR_GEN_BEAM;
      gp.n_beams = 3;
      CHECK (ask (b, jstr (last, "question"), ni, &gp, NULL, &ans, &err) == TSR_OK, "%s beams: %s", name,
             err.message);
      CHECK (ids_equal (ans.ids, ans.n_ids, jget (last, "beam3")), "%s: 3-beam ids differ", name);
      if (!ids_equal (ans.ids, ans.n_ids, jget (last, "beam3")))
        print_ids ("got", ans.ids, ans.n_ids);
      CHECK (strcmp (ans.text, jstr (last, "beam3_answer")) == 0, "%s: 3-beam answer differs", name);
      CHECK ((ans.stop == TSR_CHAT_STOP_END) == (strcmp (jstr (last, "beam3_stop"), "end") == 0),
             "%s: 3 beams stop %d, want %s", name, ans.stop, jstr (last, "beam3_stop"));
      tsr_chat_answer_clear (&ans);
      /* After beams the session goes on: the follow-up reuses the prompt. */
      gp = greedy_params (4);
      CHECK (ask (b, "Which column is the first?", 0, &gp, NULL, &ans, &err) == TSR_OK, "after beams: %s",
             err.message);
      CHECK (ans.timings.reused_tokens > 0, "after beams: nothing reused");
      tsr_chat_answer_clear (&ans);
      tsr_chat_free (b);

      /* One beam is greedy. */
      b = session_with_history (pool1, cs);
      gp = greedy_params (jget (manifest, "max_new_tokens")->valueint);
      gp.mode = TSR_GEN_BEAM;
      gp.n_beams = 1;
      CHECK (ask (b, jstr (last, "question"), ni, &gp, NULL, &ans, &err) == TSR_OK, "%s 1 beam: %s", name,
             err.message);
      CHECK (ids_equal (ans.ids, ans.n_ids, jget (last, "greedy")), "%s: 1 beam is not greedy", name);
      tsr_chat_answer_clear (&ans);
      tsr_chat_free (b);

      tsr_chat_free (a);
      free (ref);
      free (got);
      free (full);
    }
}

/* ==== Abort, then ask again ============================================= */

static const cJSON *
find_case (const char *name)
{
  const cJSON *cs;
  cJSON_ArrayForEach (cs, jget (manifest, "cases"))
    if (strcmp (jstr (cs, "name"), name) == 0)
      return cs;
  fprintf (stderr, "no case %s\n", name);
  exit (1);
}

static void
abort_then_again (const char *case_name, TsrGenMode mode, int at_poll, int at_token)
{
  const cJSON *turns = jget (find_case (case_name), "turns");
  int n_turns = cJSON_GetArraySize (turns);
  const cJSON *last = cJSON_GetArrayItem (turns, n_turns - 1);
  int ni = jget (last, "images")->valueint;
  TsrChat *c = case_chat (pool1, find_case (case_name));
  TsrGenParams gp = greedy_params (jget (manifest, "max_new_tokens")->valueint);
  TsrChatAnswer ans;
  TsrError err;
  Probe probe;
  const char *key = mode == TSR_GEN_BEAM ? "beam3" : "greedy";
  int turns_before;

  if (mode == TSR_GEN_BEAM)
    {
      gp.mode = TSR_GEN_BEAM;
      gp.n_beams = 3;
    }
  /* Earlier turns asked for real, so the abort hits a session with a cache. */
  for (int t = 0; t < n_turns - 1; t++)
    {
      const cJSON *turn = cJSON_GetArrayItem (turns, t);
      TsrGenParams g1 = greedy_params (jget (manifest, "max_new_tokens")->valueint);
      CHECK (ask (c, jstr (turn, "question"), jget (turn, "images")->valueint, &g1, NULL, &ans, &err) == TSR_OK,
             "abort setup: %s", err.message);
      tsr_chat_answer_clear (&ans);
    }
  turns_before = tsr_chat_n_turns (c);
  memset (&probe, 0, sizeof probe);
  probe.abort_at_poll = at_poll;
  probe.abort_at_token = at_token;
  CHECK (ask (c, jstr (last, "question"), ni, &gp, &probe, &ans, &err) == TSR_ECANCELLED,
         "%s: abort at poll %d / token %d did not stop (%s)", case_name, at_poll, at_token, err.message);
  CHECK (ans.text == NULL && ans.ids == NULL, "an aborted answer is empty");
  CHECK (tsr_chat_n_turns (c) == turns_before, "%s: the aborted turn stayed", case_name);
  if (at_token > 0 && mode != TSR_GEN_BEAM)
    CHECK (probe.tokens >= at_token, "%s: stopped after %d tokens", case_name, probe.tokens);
  CHECK (ask (c, jstr (last, "question"), ni, &gp, NULL, &ans, &err) == TSR_OK, "%s again: %s", case_name,
         err.message);
  CHECK (ids_equal (ans.ids, ans.n_ids, jget (last, key)), "%s: after an abort (poll %d, token %d) the %s ids "
         "differ", case_name, at_poll, at_token, key);
  tsr_chat_answer_clear (&ans);
  tsr_chat_free (c);
}

static void
test_abort (void)
{
  /* While prefilling: the first poll, and one in a later chunk. */
  abort_then_again ("text", TSR_GEN_GREEDY, 1, 0);
  abort_then_again ("image", TSR_GEN_GREEDY, 5, 0);
  abort_then_again ("image-2turn", TSR_GEN_GREEDY, 2, 0);
  abort_then_again ("text-2turn", TSR_GEN_GREEDY, 1, 0);
  /* While generating. */
  abort_then_again ("text", TSR_GEN_GREEDY, 0, 5);
  abort_then_again ("image-2turn", TSR_GEN_GREEDY, 0, 7);
  /* During beam search (polled between steps). */
  abort_then_again ("image", TSR_GEN_BEAM, 14, 0);
  abort_then_again ("short", TSR_GEN_BEAM, 4, 0);
}

/* ==== Sampling, threads, limits ========================================= */

static TsrStatus
encode_copy (void *user_data, const TsrChatImage *image, const TsrLlmAbort *abort_cb, float **rows, int *n_rows,
             TsrError *err)
{
  int *calls = user_data;
  (*calls)++;
  (void) image;
  if (abort_cb != NULL && abort_cb->func != NULL && abort_cb->func (abort_cb->user_data))
    {
      err->status = TSR_ECANCELLED;
      snprintf (err->message, sizeof err->message, "Stopped.");
      return TSR_ECANCELLED;
    }
  *rows = malloc ((size_t) image_rows * tsr_llm_info (llm)->n_embd * sizeof **rows);
  memcpy (*rows, image_embd, (size_t) image_rows * tsr_llm_info (llm)->n_embd * sizeof **rows);
  *n_rows = image_rows;
  return TSR_OK;
}

static void
test_misc (const char *synthetic)
{
  const cJSON *text = cJSON_GetArrayItem (jget (find_case ("text"), "turns"), 0);
  const cJSON *image = cJSON_GetArrayItem (jget (find_case ("image"), "turns"), 0);
  int max_new = jget (manifest, "max_new_tokens")->valueint;
  TsrGenParams gp;
  TsrChatAnswer a1, a2;
  TsrChat *c;
  TsrError err;

  /* Sampling with a seed repeats; top-k 1 is greedy. */
  gp = greedy_params (max_new);
  gp.mode = TSR_GEN_SAMPLE;
  gp.seed = 1234;
  gp.temperature = 0.9f;
  c = new_chat (pool1, NULL);
  ask (c, jstr (text, "question"), 0, &gp, NULL, &a1, &err);
  tsr_chat_free (c);
  c = new_chat (pool1, NULL);
  ask (c, jstr (text, "question"), 0, &gp, NULL, &a2, &err);
  CHECK (a1.n_ids > 0 && a1.n_ids == a2.n_ids && memcmp (a1.ids, a2.ids, a1.n_ids * sizeof *a1.ids) == 0,
         "seeded sampling does not repeat");
  tsr_chat_answer_clear (&a1);
  tsr_chat_answer_clear (&a2);
  tsr_chat_free (c);
  gp.top_k = 1;
  c = new_chat (pool1, NULL);
  ask (c, jstr (image, "question"), 1, &gp, NULL, &a1, &err);
  CHECK (ids_equal (a1.ids, a1.n_ids, jget (image, "greedy")), "top-k 1 sampling is not greedy");
  tsr_chat_answer_clear (&a1);
  tsr_chat_free (c);

  /* Two threads give the same answer. */
  c = new_chat (pool2, NULL);
  gp = greedy_params (max_new);
  ask (c, jstr (image, "question"), 1, &gp, NULL, &a1, &err);
  CHECK (ids_equal (a1.ids, a1.n_ids, jget (image, "greedy")), "2 threads: greedy ids differ");
  tsr_chat_answer_clear (&a1);
  tsr_chat_free (c);

  /* Images through an encoder; an encoder stopped by abort leaves the
   * session as it was. */
  {
    TsrChatConfig cfg;
    TsrChatImage px;
    unsigned char rgb[3 * 4 * 2] = { 0 };
    int calls = 0;
    Probe probe;
    tsr_chat_config_init (&cfg);
    cfg.encode = encode_copy;
    cfg.encode_data = &calls;
    c = new_chat (pool1, &cfg);
    memset (&px, 0, sizeof px);
    px.rgb = rgb;
    px.width = 4;
    px.height = 2;
    px.stride = 12;
    px.hd_num = 2;
    memset (&probe, 0, sizeof probe);
    probe.abort_at_poll = 1;
    {
      TsrChatCallbacks cb = probe_callbacks (&probe);
      probe.abort_at_poll = 1;
      CHECK (tsr_chat_ask (c, jstr (image, "question"), &px, 1, &gp, &cb, &a1, &err) == TSR_ECANCELLED,
             "encoder abort");
      CHECK (tsr_chat_n_turns (c) == 0 && tsr_chat_n_cached (c) == 0, "after an encoder abort");
      CHECK (tsr_chat_ask (c, jstr (image, "question"), &px, 1, &gp, NULL, &a1, &err) == TSR_OK, "encoder: %s",
             err.message);
    }
    CHECK (calls == 2 && ids_equal (a1.ids, a1.n_ids, jget (image, "greedy")), "encoder path: %d calls", calls);
    tsr_chat_answer_clear (&a1);
    /* Without an encoder, pixels are refused. */
    tsr_chat_free (c);
    c = new_chat (pool1, NULL);
    CHECK (tsr_chat_ask (c, jstr (image, "question"), &px, 1, &gp, NULL, &a1, &err) == TSR_EINVAL,
           "pixels without an encoder");
    tsr_chat_free (c);
  }

  /* The image count must match the question's tags. */
  c = new_chat (pool1, NULL);
  CHECK (tsr_chat_ask (c, "Describe it.", NULL, 0, &gp, NULL, &a1, &err) == TSR_OK, "plain ask: %s", err.message);
  tsr_chat_answer_clear (&a1);
  {
    TsrChatImage im = the_image ();
    CHECK (tsr_chat_ask (c, "No tag here", &im, 1, &gp, NULL, &a1, &err) == TSR_EINVAL, "image without a tag");
    CHECK (tsr_chat_ask (c, "<ImageHere>", NULL, 0, &gp, NULL, &a1, &err) == TSR_EINVAL, "tag without an image");
    CHECK (tsr_chat_n_turns (c) == 1, "refused questions changed the history");
  }
  /* max_new_tokens 0: an empty answer, still a turn. */
  gp.max_new_tokens = 0;
  CHECK (tsr_chat_ask (c, "Again?", NULL, 0, &gp, NULL, &a1, &err) == TSR_OK && a1.n_ids == 0 &&
         a1.text[0] == '\0' && a1.stop == TSR_CHAT_STOP_LENGTH, "max_new_tokens 0");
  tsr_chat_answer_clear (&a1);
  tsr_chat_reset (c);
  CHECK (tsr_chat_n_turns (c) == 0 && tsr_chat_n_cached (c) == 0, "reset");
  tsr_chat_free (c);

  /* Context limits: a prompt too long is refused; a full cache stops. */
  {
    TsrChatConfig cfg;
    int32_t *ids = NULL;
    size_t n = 0;
    tsr_chat_config_init (&cfg);
    cfg.n_ctx = 100;
    c = new_chat (pool1, &cfg);
    CHECK (tsr_chat_ask (c, jstr (text, "question"), NULL, 0, &gp, NULL, &a1, &err) == TSR_ETOOLARGE,
           "a prompt past the context");
    tsr_chat_free (c);
    c = new_chat (pool1, NULL);
    tsr_chat_prompt (c, jstr (text, "question"), NULL, 0, &ids, &n, &err);
    tsr_chat_free (c);
    free (ids);
    cfg.n_ctx = (int) n + 5;
    c = new_chat (pool1, &cfg);
    gp = greedy_params (max_new);
    CHECK (tsr_chat_ask (c, jstr (text, "question"), NULL, 0, &gp, NULL, &a1, &err) == TSR_OK, "short context: %s",
           err.message);
    /* 5 rows of room: 5 answer tokens fed, a 6th generated and not fed. */
    CHECK (a1.stop == TSR_CHAT_STOP_CONTEXT && a1.n_ids == 6, "full cache: stop %d after %zu ids", a1.stop,
           a1.n_ids);
    for (size_t i = 0; i < a1.n_ids && i < 6; i++)
      CHECK (a1.ids[i] == cJSON_GetArrayItem (jget (text, "greedy"), (int) i)->valueint, "full cache: id %zu", i);
    tsr_chat_answer_clear (&a1);
    tsr_chat_free (c);
  }

  /* f16 keys and values: a working session (the ids may differ). */
  {
    TsrChatConfig cfg;
    tsr_chat_config_init (&cfg);
    cfg.kv_type = TSR_DTYPE_F16;
    c = new_chat (pool1, &cfg);
    gp = greedy_params (max_new);
    gp.mode = TSR_GEN_BEAM;
    gp.n_beams = 2;
    CHECK (tsr_chat_ask (c, jstr (text, "question"), NULL, 0, &gp, NULL, &a1, &err) == TSR_OK, "f16 cache: %s",
           err.message);
    tsr_chat_answer_clear (&a1);
    tsr_chat_free (c);
  }

  /* Models that cannot chat. */
  if (synthetic != NULL)
    {
      TsrGguf *g = NULL;
      TsrLlm *l = NULL;
      TsrTokenizer *t = NULL;
      TsrChat *x = NULL;
      if (tsr_gguf_open (synthetic, &g, &err) == TSR_OK && tsr_llm_load (g, &l, &err) == TSR_OK &&
          tsr_tokenizer_from_gguf (g, &t, &err) == TSR_OK)
        CHECK (tsr_chat_new (l, t, pool1, NULL, &x, &err) == TSR_EINVAL && x == NULL, "a synthetic model chats");
      tsr_chat_free (x);
      tsr_tokenizer_free (t);
      tsr_llm_free (l);
      tsr_gguf_close (g);
    }
}

int
main (int argc, char **argv)
{
  char path[4096];
  char *json;
  TsrError err;
  size_t n;

  if (argc < 3)
    {
      fprintf (stderr, "usage: test-chat MODEL.gguf FIXTURE_DIR [SYNTHETIC.gguf]\n");
      return 2;
    }
  fixture_dir = argv[2];
  snprintf (path, sizeof path, "%s/cases.json", fixture_dir);
  json = read_text (path);
  manifest = json ? cJSON_Parse (json) : NULL;
  free (json);
  if (manifest == NULL)
    {
      fprintf (stderr, "cannot read %s\n", path);
      return 1;
    }
  if (tsr_gguf_open (argv[1], &gguf, &err) != TSR_OK || tsr_llm_load (gguf, &llm, &err) != TSR_OK ||
      tsr_tokenizer_from_gguf (gguf, &tok, &err) != TSR_OK || tsr_pool_new (1, &pool1, &err) != TSR_OK ||
      tsr_pool_new (2, &pool2, &err) != TSR_OK)
    {
      fprintf (stderr, "%s\n", err.message);
      return 1;
    }
  n_vocab = tsr_llm_info (llm)->n_vocab;
  image_embd = read_npy (jstr (jget (manifest, "image"), "embd"), &n);
  image_rows = (int) (n / tsr_llm_info (llm)->n_embd);
  if (image_rows != jget (jget (manifest, "image"), "rows")->valueint)
    {
      fprintf (stderr, "image-embd.npy has %d rows\n", image_rows);
      return 1;
    }

  test_sampler ();
  test_cleanup ();
  test_prompts ();
  test_cases ();
  test_abort ();
  test_misc (argc > 3 ? argv[3] : NULL);

  printf ("test-chat: %d checks, %d failures; max relative logit error %.3g (tolerance %g)\n", checks, failures,
          worst_rel_err, TOLERANCE);
  free (image_embd);
  cJSON_Delete (manifest);
  tsr_pool_free (pool1);
  tsr_pool_free (pool2);
  tsr_tokenizer_free (tok);
  tsr_llm_free (llm);
  tsr_gguf_close (gguf);
  return failures ? 1 : 0;
}
