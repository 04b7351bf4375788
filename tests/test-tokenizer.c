/* SPDX-License-Identifier: GPL-3.0-or-later
 *
 * test-tokenizer.c — Tessera's SentencePiece BPE against sentencepiece
 * itself, with the real InternLM2 tokenizer.model:
 *   - the shared vectors (../shared/data/internlm2-tokenizer-vectors.json),
 *     including the exact first-turn chat prompt segments;
 *   - 420 generated strings (tests/fixtures/tokenizer-cases.json, made by
 *     tests/reference/tokenizer_reference.py with python3-sentencepiece):
 *     every id, and the decoded text;
 *   - streaming decode: id by id, never half a UTF-8 character;
 *   - files that are not tokenizers.
 *
 *   test-tokenizer TOKENIZER.model VECTORS.json CASES.json
 */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tessera-engine.h"

static int failures;

#define CHECK(cond, ...)                                              \
  do {                                                                \
    if (!(cond))                                                      \
      {                                                               \
        failures++;                                                   \
        fprintf (stderr, "FAIL %s:%d: ", __FILE__, __LINE__);         \
        fprintf (stderr, __VA_ARGS__);                                \
        fputc ('\n', stderr);                                         \
      }                                                               \
  } while (0)

static char *
read_file (const char *path, size_t *len)
{
  FILE *f = fopen (path, "rb");
  char *buf;
  long n;
  if (f == NULL)
    {
      fprintf (stderr, "cannot open %s\n", path);
      exit (1);
    }
  fseek (f, 0, SEEK_END);
  n = ftell (f);
  fseek (f, 0, SEEK_SET);
  buf = malloc ((size_t) n + 1);
  if (fread (buf, 1, (size_t) n, f) != (size_t) n)
    exit (1);
  buf[n] = '\0';
  fclose (f);
  if (len)
    *len = (size_t) n;
  return buf;
}

static size_t
from_hex (const char *hex, char *out)
{
  size_t n = 0;
  for (; hex[0] && hex[1]; hex += 2)
    {
      unsigned v;
      sscanf (hex, "%2x", &v);
      out[n++] = (char) v;
    }
  return n;
}

static int
ids_equal (const int32_t *a, size_t na, cJSON *arr)
{
  size_t i = 0;
  cJSON *e;
  if ((size_t) cJSON_GetArraySize (arr) != na)
    return 0;
  cJSON_ArrayForEach (e, arr)
    if (a[i++] != (int32_t) e->valuedouble)
      return 0;
  return 1;
}

static void
print_ids (const char *label, const int32_t *ids, size_t n)
{
  fprintf (stderr, "  %s:", label);
  for (size_t i = 0; i < n && i < 40; i++)
    fprintf (stderr, " %d", ids[i]);
  fputc ('\n', stderr);
}

/* Decodes ids one at a time; checks no chunk ends inside a character. */
static size_t
decode_streaming (const TsrTokenizer *tok, const int32_t *ids, size_t n, char *out, size_t cap)
{
  TsrDecoder d;
  size_t used = 0;
  tsr_decoder_init (&d, tok);
  for (size_t i = 0; i < n; i++)
    {
      size_t k = tsr_decoder_push (&d, ids[i], out + used, cap - used);
      if (k > 0)
        {
          /* The chunk must end on a character boundary: its last lead byte
           * has all its continuation bytes. */
          size_t j = used + k;
          size_t back = 0;
          while (back < k && back < 4 && ((unsigned char) out[j - 1 - back] & 0xc0) == 0x80)
            back++;
          if (back < k)
            {
              unsigned char lead = (unsigned char) out[j - 1 - back];
              size_t need = lead < 0x80 ? 1 : (lead & 0xe0) == 0xc0 ? 2 : (lead & 0xf0) == 0xe0 ? 3 : 4;
              CHECK (back + 1 == need || lead < 0x80, "a streamed chunk ends inside a character");
            }
        }
      used += k;
    }
  used += tsr_decoder_flush (&d, out + used, cap - used);
  return used;
}

static void
check_case (const TsrTokenizer *tok, const char *text, size_t len, cJSON *want_ids,
            const char *want_decoded, size_t want_decoded_len, const char *label)
{
  int32_t *ids = NULL;
  size_t n = 0;
  TsrError err;
  char *dec;

  CHECK (tsr_tokenizer_encode (tok, text, len, 0, &ids, &n, &err) == TSR_OK, "encode: %s", err.message);
  if (!ids_equal (ids, n, want_ids))
    {
      failures++;
      fprintf (stderr, "FAIL encode of %s “%.*s”\n", label, (int) (len < 80 ? len : 80), text);
      print_ids ("got ", ids, n);
      {
        int32_t w[64];
        size_t k = 0;
        cJSON *e;
        cJSON_ArrayForEach (e, want_ids)
          if (k < 64)
            w[k++] = (int32_t) e->valuedouble;
        print_ids ("want", w, k);
      }
    }
  if (want_decoded != NULL)
    {
      size_t cap = len * 4 + 64, got;
      dec = malloc (cap);
      got = decode_streaming (tok, ids, n, dec, cap);
      if (got != want_decoded_len || memcmp (dec, want_decoded, got) != 0)
        {
          failures++;
          fprintf (stderr, "FAIL decode of %s: got “%.*s”, want “%.*s”\n", label, (int) got, dec,
                   (int) want_decoded_len, want_decoded);
        }
      free (dec);
    }
  free (ids);
}

static void
test_vectors (const TsrTokenizer *tok, const char *path)
{
  char *json = read_file (path, NULL);
  cJSON *root = cJSON_Parse (json), *c, *special, *chat;
  int n = 0;

  CHECK (root != NULL, "cannot parse %s", path);
  cJSON_ArrayForEach (c, cJSON_GetObjectItem (root, "encode_cases"))
    {
      const char *text = cJSON_GetObjectItem (c, "text")->valuestring;
      cJSON *e;
      int has_nul = 0;
      /* cJSON ends strings at a NUL, so a text holding one (its ids show the
       * NUL piece 354 or byte <0x00>) cannot be read back from this file;
       * the generated cases cover NULs through hex. */
      cJSON_ArrayForEach (e, cJSON_GetObjectItem (c, "ids"))
        has_nul |= e->valueint == 354 || e->valueint == 3;
      if (has_nul)
        continue;
      check_case (tok, text, strlen (text), cJSON_GetObjectItem (c, "ids"), NULL, 0, "vector");
      n++;
    }
  cJSON_ArrayForEach (c, cJSON_GetObjectItem (root, "decode_cases"))
    {
      cJSON *ids = cJSON_GetObjectItem (c, "ids"), *e;
      const char *want = cJSON_GetObjectItem (c, "sp_decode")->valuestring;
      int32_t v[256];
      size_t k = 0;
      char out[1024];
      size_t got;
      cJSON_ArrayForEach (e, ids)
        v[k++] = (int32_t) e->valuedouble;
      got = decode_streaming (tok, v, k, out, sizeof out);
      CHECK (got == strlen (want) && memcmp (out, want, got) == 0, "decode: got “%.*s”, want “%s”",
             (int) got, out, want);
      n++;
    }
  special = cJSON_GetObjectItem (root, "special_ids");
  cJSON_ArrayForEach (c, special)
    {
      int32_t id = tsr_tokenizer_find (tok, c->string, strlen (c->string));
      CHECK (id == (int32_t) c->valuedouble, "special %s: id %d, want %d", c->string, id,
             (int) c->valuedouble);
    }
  CHECK (tsr_tokenizer_bos (tok) == 1 && tsr_tokenizer_eos (tok) == 2, "BOS/EOS");
  CHECK (tsr_tokenizer_n_vocab (tok) == 92544, "vocab size %zu", tsr_tokenizer_n_vocab (tok));

  /* The first-turn chat prompt: each text segment with BOS in front. */
  chat = cJSON_GetObjectItem (root, "chat_first_turn");
  if (chat != NULL)
    {
      cJSON *segs = cJSON_GetObjectItem (chat, "segments");
      cJSON_ArrayForEach (c, segs)
        {
          cJSON *text = cJSON_GetObjectItem (c, "text"), *ids = cJSON_GetObjectItem (c, "ids_with_bos");
          int32_t *got = NULL;
          size_t ng = 0;
          TsrError err;
          CHECK (cJSON_IsString (text) && cJSON_IsArray (ids), "chat segment fields missing");
          if (!cJSON_IsString (text) || !cJSON_IsArray (ids))
            continue;
          CHECK (tsr_tokenizer_encode (tok, text->valuestring, strlen (text->valuestring), 1, &got, &ng,
                                       &err) == TSR_OK, "encode chat: %s", err.message);
          CHECK (ids_equal (got, ng, ids), "chat segment “%.40s…” differs", text->valuestring);
          free (got);
          n++;
        }
    }
  printf ("test-tokenizer: %d shared vectors\n", n);
  cJSON_Delete (root);
  free (json);
}

static void
test_cases (const TsrTokenizer *tok, const char *path)
{
  char *json = read_file (path, NULL);
  cJSON *root = cJSON_Parse (json), *c;
  int n = 0;

  CHECK (root != NULL, "cannot parse %s", path);
  cJSON_ArrayForEach (c, cJSON_GetObjectItem (root, "cases"))
    {
      const char *hex = cJSON_GetObjectItem (c, "hex")->valuestring;
      const char *dhex = cJSON_GetObjectItem (c, "decoded_hex")->valuestring;
      char *text = malloc (strlen (hex) / 2 + 1), *dec = malloc (strlen (dhex) / 2 + 1);
      size_t len = from_hex (hex, text), dlen = from_hex (dhex, dec);
      char label[32];
      snprintf (label, sizeof label, "case %d", n);
      check_case (tok, text, len, cJSON_GetObjectItem (c, "ids"), dec, dlen, label);
      free (text);
      free (dec);
      n++;
    }
  printf ("test-tokenizer: %d generated cases\n", n);
  cJSON_Delete (root);
  free (json);
}

static void
test_bad_files (const char *dir)
{
  const char *names[] = { "empty.model", "text.model", "truncated.model" };
  const char *contents[] = { "", "this is not a protobuf, it is a sentence.", "\x0a\xff\xff\xff\x0f\x0a" };
  const size_t lens[] = { 0, 41, 6 };
  for (int i = 0; i < 3; i++)
    {
      char path[512];
      FILE *f;
      TsrTokenizer *tok = NULL;
      TsrError err;
      snprintf (path, sizeof path, "%s/%s", dir, names[i]);
      f = fopen (path, "wb");
      fwrite (contents[i], 1, lens[i], f);
      fclose (f);
      CHECK (tsr_tokenizer_load_spm (path, &tok, &err) == TSR_EFORMAT && tok == NULL &&
             err.message[0] != '\0', "%s accepted as a tokenizer", names[i]);
      remove (path);
    }
  {
    TsrTokenizer *tok = NULL;
    TsrError err;
    CHECK (tsr_tokenizer_load_spm ("/nonexistent/tokenizer.model", &tok, &err) == TSR_EIO,
           "a missing file is not TSR_EIO");
  }
}

/* A llama-style vocabulary built in memory: dummy prefix on, and the
 * prefix stripped again on decode. */
static void
test_dummy_prefix (void)
{
  const char *pieces[] = { "<unk>", "<s>", "</s>", "\xe2\x96\x81", "H", "i", "Hi", "\xe2\x96\x81Hi" };
  size_t lens[8];
  float scores[] = { 0, 0, 0, -1, -2, -3, -0.5f, -0.1f };
  int32_t types[] = { 2, 3, 3, 1, 1, 1, 1, 1 };
  TsrVocab v = { 8, pieces, lens, scores, types, 1, 2, 1 };
  TsrTokenizer *tok;
  TsrError err;
  int32_t *ids;
  size_t n;
  char out[64];
  size_t got;

  for (int i = 0; i < 8; i++)
    lens[i] = strlen (pieces[i]);
  CHECK (tsr_tokenizer_new (&v, &tok, &err) == TSR_OK, "%s", err.message);
  CHECK (tsr_tokenizer_encode (tok, "Hi", 2, 1, &ids, &n, &err) == TSR_OK, "%s", err.message);
  CHECK (n == 2 && ids[0] == 1 && ids[1] == 7, "dummy prefix: got %zu ids", n);
  got = decode_streaming (tok, ids, n, out, sizeof out);
  CHECK (got == 2 && memcmp (out, "Hi", 2) == 0, "dummy prefix not stripped: “%.*s”", (int) got, out);
  free (ids);
  tsr_tokenizer_free (tok);
}

int
main (int argc, char **argv)
{
  TsrTokenizer *tok = NULL;
  TsrError err;

  if (argc < 4)
    {
      fprintf (stderr, "usage: test-tokenizer TOKENIZER.model VECTORS.json CASES.json\n");
      return 2;
    }
  if (tsr_tokenizer_load_spm (argv[1], &tok, &err) != TSR_OK)
    {
      fprintf (stderr, "FAIL: %s\n", err.message);
      return 1;
    }
  test_vectors (tok, argv[2]);
  test_cases (tok, argv[3]);
  test_bad_files (getenv ("TMPDIR") ? getenv ("TMPDIR") : "/tmp");
  test_dummy_prefix ();
  tsr_tokenizer_free (tok);
  printf ("test-tokenizer: %d failures\n", failures);
  return failures ? 1 : 0;
}
