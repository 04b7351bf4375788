/* SPDX-License-Identifier: GPL-3.0-or-later
 *
 * test-synth — tsr_synth (engine/tsr-synth.c) against the converter.
 *
 *     test-synth CHECKPOINT_DIR TMP_DIR
 *
 * A synthetic file must be a converted file with other values: the tiny
 * checkpoint is converted to q4_0, a synthetic model of its dimensions is
 * written, and the two must have the same tensors (names, order, types,
 * shapes) and the same metadata keys in the same order with the same
 * hyper-parameters, plus tessera.synthetic. Then: the file passes
 * tsr_gguf_model_info as synthetic, its tokenizer loads and encodes any
 * text, a chat session refuses it, the bytes do not depend on the thread
 * count, and bad dimensions are refused before any file exists.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tessera-engine.h"

static int failures;

#define CHECK(cond, ...)                                                     \
  do {                                                                       \
    if (!(cond))                                                             \
      {                                                                      \
        failures++;                                                          \
        fprintf (stderr, "FAIL %s:%d: ", __FILE__, __LINE__);                \
        fprintf (stderr, __VA_ARGS__);                                       \
        fputc ('\n', stderr);                                                \
      }                                                                      \
  } while (0)

/* Keys whose values may differ: the name, the vocabulary, and the PLoRA
 * scales (the fixture's config sets its own alphas). */
static int
value_may_differ (const char *key)
{
  return strcmp (key, "general.name") == 0 || strncmp (key, "tokenizer.ggml.", 15) == 0 ||
         strncmp (key, "tessera.chat.", 13) == 0 || (strstr (key, ".plora.") && strstr (key, ".scale"));
}

static int
files_equal (const char *a, const char *b)
{
  FILE *fa = fopen (a, "rb"), *fb = fopen (b, "rb");
  int ca, cb, same = fa && fb;
  while (same)
    {
      ca = fgetc (fa);
      cb = fgetc (fb);
      same = ca == cb;
      if (ca == EOF || cb == EOF)
        break;
    }
  if (fa)
    fclose (fa);
  if (fb)
    fclose (fb);
  return same;
}

static void
compare_with_conversion (const char *conv_path, const char *synth_path)
{
  TsrGguf *c = NULL, *s = NULL;
  TsrError err;
  size_t nc, ns;

  CHECK (tsr_gguf_open (conv_path, &c, &err) == TSR_OK, "%s", err.message);
  CHECK (tsr_gguf_open (synth_path, &s, &err) == TSR_OK, "%s", err.message);
  if (c == NULL || s == NULL)
    goto out;

  nc = tsr_gguf_n_tensors (c);
  ns = tsr_gguf_n_tensors (s);
  CHECK (nc == ns, "%zu tensors converted, %zu synthetic", nc, ns);
  for (size_t i = 0; i < nc && i < ns; i++)
    {
      const TsrGgufTensor *tc = tsr_gguf_tensor (c, i), *ts = tsr_gguf_tensor (s, i);
      CHECK (strcmp (tc->name, ts->name) == 0, "tensor %zu: %s converted, %s synthetic", i, tc->name, ts->name);
      CHECK (tc->type == ts->type, "%s: type %s converted, %s synthetic", tc->name, tsr_dtype_name (tc->type),
             tsr_dtype_name (ts->type));
      CHECK (tc->n_dims == ts->n_dims && memcmp (tc->ne, ts->ne, sizeof tc->ne) == 0,
             "%s: shapes differ", tc->name);
    }

  nc = tsr_gguf_n_kv (c);
  ns = tsr_gguf_n_kv (s);
  CHECK (ns == nc + 1, "%zu metadata keys converted, %zu synthetic (expected one more)", nc, ns);
  for (size_t i = 0; i < nc && i < ns; i++)
    {
      const TsrGgufKV *kc = tsr_gguf_kv (c, i), *ks = tsr_gguf_kv (s, i);
      CHECK (strcmp (kc->key, ks->key) == 0, "key %zu: %s converted, %s synthetic", i, kc->key, ks->key);
      CHECK (kc->type == ks->type && kc->array_type == ks->array_type, "%s: types differ", kc->key);
      if (strcmp (kc->key, ks->key) != 0 || value_may_differ (kc->key) || kc->type != ks->type)
        continue;
      if (kc->type == TSR_GGUF_STRING)
        CHECK (kc->strs[0].len == ks->strs[0].len &&
               memcmp (kc->strs[0].ptr, ks->strs[0].ptr, kc->strs[0].len) == 0, "%s differs", kc->key);
      else if (kc->type == TSR_GGUF_ARRAY)
        CHECK (kc->n == ks->n && memcmp (kc->data, ks->data, kc->n * 4) == 0, "%s differs", kc->key);
      else
        {
          size_t size = kc->type == TSR_GGUF_BOOL ? 1 : 4;
          CHECK (memcmp (kc->data, ks->data, size) == 0, "%s differs", kc->key);
        }
    }
  if (ns > 0)
    {
      const TsrGgufKV *last = tsr_gguf_kv (s, ns - 1);
      CHECK (strcmp (last->key, "tessera.synthetic") == 0 && last->type == TSR_GGUF_BOOL &&
             *(const unsigned char *) last->data == 1, "the last key is not tessera.synthetic = true");
    }
out:
  tsr_gguf_close (c);
  tsr_gguf_close (s);
}

static void
check_synthetic_file (const char *path)
{
  TsrGguf *g = NULL;
  TsrGgufModelInfo info;
  TsrTokenizer *tok = NULL;
  TsrLlm *llm = NULL;
  TsrPool *pool = NULL;
  TsrChat *chat = NULL;
  TsrError err;
  int32_t *ids = NULL;
  size_t n_ids = 0;
  const char *text = "Grüße, [UNUSED_TOKEN_146] 𝄞";

  CHECK (tsr_gguf_open (path, &g, &err) == TSR_OK, "%s", err.message);
  if (g == NULL)
    return;
  CHECK (tsr_gguf_model_info (g, &info, &err) == TSR_OK, "model info: %s", err.message);
  CHECK (info.synthetic == 1, "not marked synthetic");
  CHECK (info.im_end_id == (int64_t) info.n_vocab - 2 && info.im_start_id == (int64_t) info.n_vocab - 1,
         "chat ids %lld/%lld", (long long) info.im_start_id, (long long) info.im_end_id);
  CHECK (tsr_tokenizer_from_gguf (g, &tok, &err) == TSR_OK, "tokenizer: %s", err.message);
  if (tok != NULL)
    {
      CHECK (tsr_tokenizer_encode (tok, text, strlen (text), 1, &ids, &n_ids, &err) == TSR_OK, "encode: %s",
             err.message);
      /* BOS, the chat marker whole, the rest byte by byte. */
      CHECK (n_ids > 2 && ids[0] == 1, "encoding starts with %d", n_ids ? ids[0] : -1);
      for (size_t i = 0; i < n_ids; i++)
        CHECK (ids[i] >= 0 && (uint32_t) ids[i] < info.n_vocab, "id %d out of range", ids[i]);
      free (ids);
    }
  CHECK (tsr_llm_load (g, &llm, &err) == TSR_OK, "load: %s", err.message);
  CHECK (tsr_pool_new (1, &pool, &err) == TSR_OK, "pool: %s", err.message);
  if (llm != NULL && tok != NULL && pool != NULL)
    {
      TsrStatus st = tsr_chat_new (llm, tok, pool, NULL, &chat, &err);
      CHECK (st == TSR_EINVAL && chat == NULL, "a chat session accepted a synthetic model (%d)", (int) st);
      tsr_chat_free (chat);
    }
  tsr_pool_free (pool);
  tsr_llm_free (llm);
  tsr_tokenizer_free (tok);
  tsr_gguf_close (g);
}

int
main (int argc, char **argv)
{
  char conv[4096], synth[4096], synth1[4096], bad[4096];
  TsrConvertParams cp;
  TsrSynthParams sp;
  TsrGguf *g = NULL;
  TsrGgufModelInfo info;
  TsrError err;

  if (argc != 3)
    {
      fprintf (stderr, "usage: test-synth CHECKPOINT_DIR TMP_DIR\n");
      return 2;
    }
  snprintf (conv, sizeof conv, "%s/converted.gguf", argv[2]);
  snprintf (synth, sizeof synth, "%s/synth.gguf", argv[2]);
  snprintf (synth1, sizeof synth1, "%s/synth-1thread.gguf", argv[2]);
  snprintf (bad, sizeof bad, "%s/bad.gguf", argv[2]);

  tsr_convert_params_init (&cp);
  cp.type = TSR_DTYPE_Q4_0;
  if (tsr_convert (argv[1], conv, &cp, &err) != TSR_OK || tsr_gguf_open (conv, &g, &err) != TSR_OK ||
      tsr_gguf_model_info (g, &info, &err) != TSR_OK)
    {
      fprintf (stderr, "FAIL converting the fixture: %s\n", err.message);
      return 1;
    }
  tsr_gguf_close (g);

  /* The full-size defaults are the real model's. */
  tsr_synth_params_init (&sp);
  CHECK (sp.n_layer == 32 && sp.n_embd == 4096 && sp.n_head == 32 && sp.n_head_kv == 8 && sp.n_ff == 14336 &&
         sp.n_vocab == 92544 && sp.plora_rank[TSR_PLORA_ATTN_QKV] == 8 &&
         sp.plora_rank[TSR_PLORA_FFN_DOWN] == 256 && sp.v_n_layer == 24 && sp.v_n_embd == 1024 &&
         sp.v_n_ff == 4096 && sp.v_n_head == 16 && sp.type == TSR_DTYPE_Q8_0, "full-size defaults");

  sp.type = TSR_DTYPE_Q4_0;
  sp.n_embd = info.n_embd;
  sp.n_layer = info.n_layer;
  sp.n_ff = info.n_ff;
  sp.n_head = info.n_head;
  sp.n_head_kv = info.n_head_kv;
  sp.n_vocab = info.n_vocab;
  for (int k = 0; k < TSR_PLORA_COUNT; k++)
    sp.plora_rank[k] = info.plora_rank[k];
  sp.v_n_embd = info.v_n_embd;
  sp.v_n_layer = info.v_n_layer;
  sp.v_n_ff = info.v_n_ff;
  sp.v_n_head = info.v_n_head;
  sp.n_threads = 2;
  CHECK (tsr_synth (synth, &sp, &err) == TSR_OK, "synth: %s", err.message);
  compare_with_conversion (conv, synth);
  check_synthetic_file (synth);

  sp.n_threads = 1;
  CHECK (tsr_synth (synth1, &sp, &err) == TSR_OK, "synth, 1 thread: %s", err.message);
  CHECK (files_equal (synth, synth1), "the bytes depend on the thread count");

  /* Refusals come before the file exists. */
  sp.n_head = 3;
  CHECK (tsr_synth (bad, &sp, &err) == TSR_EINVAL && strstr (err.message, "heads"), "3 heads accepted: %s",
         err.message);
  sp.n_head = info.n_head;
  sp.n_vocab = 100;
  CHECK (tsr_synth (bad, &sp, &err) == TSR_EINVAL && strstr (err.message, "vocabulary"),
         "a 100-piece vocabulary accepted: %s", err.message);
  CHECK (access (bad, F_OK) != 0, "a refused synth left %s", bad);
  {
    char part[4200];
    snprintf (part, sizeof part, "%s.part", bad);
    CHECK (access (part, F_OK) != 0, "a refused synth left %s", part);
  }

  unlink (conv);
  unlink (synth);
  unlink (synth1);
  if (failures)
    fprintf (stderr, "%d failures\n", failures);
  else
    printf ("synth: the file matches a conversion's layout and is refused for chat\n");
  return failures ? 1 : 0;
}
