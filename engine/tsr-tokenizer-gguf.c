/* SPDX-License-Identifier: GPL-3.0-or-later
 *
 * tsr-tokenizer-gguf.c — the tokenizer stored in a model file, under
 * llama.cpp's keys (tokenizer.ggml.*).
 */
#include <stdlib.h>
#include <string.h>

#include "tsr-error.h"
#include "tsr-tokenizer.h"

TsrStatus
tsr_tokenizer_from_gguf (const TsrGguf *g, TsrTokenizer **out, TsrError *err)
{
  const TsrGgufKV *kv_tokens = tsr_gguf_find_kv (g, "tokenizer.ggml.tokens");
  const TsrGgufKV *kv_scores = tsr_gguf_find_kv (g, "tokenizer.ggml.scores");
  const TsrGgufKV *kv_types = tsr_gguf_find_kv (g, "tokenizer.ggml.token_type");
  const TsrGgufStr *strs = NULL;
  uint64_t n = 0;
  const char **pieces = NULL;
  size_t *lens = NULL;
  float *scores = NULL;
  int32_t *types = NULL;
  TsrVocab v;
  TsrGgufStr model;
  int32_t id;
  int prefix = 1;
  TsrStatus st;

  *out = NULL;
  if (kv_tokens == NULL)
    return tsr_error_set (err, TSR_EFORMAT, "The model file has no tokenizer (tokenizer.ggml.tokens); "
                          "convert it again with tessera-cli convert.");
  if (tsr_gguf_get_str (g, "tokenizer.ggml.model", &model, NULL) == TSR_OK &&
      !tsr_gguf_str_eq (model, "llama"))
    return tsr_error_set (err, TSR_EFORMAT, "The model's tokenizer is of type “%.*s”; Tessera reads "
                          "SentencePiece (“llama”) tokenizers only.", (int) model.len, model.ptr);
  if ((st = tsr_gguf_get_arr_str (g, "tokenizer.ggml.tokens", &strs, &n, err)) != TSR_OK)
    return st;

  pieces = malloc (n * sizeof *pieces);
  lens = malloc (n * sizeof *lens);
  scores = calloc (n, sizeof *scores);
  types = malloc (n * sizeof *types);
  if (!pieces || !lens || !scores || !types)
    {
      st = tsr_error_set (err, TSR_ENOMEM, "Out of memory reading the tokenizer.");
      goto done;
    }
  for (uint64_t i = 0; i < n; i++)
    {
      pieces[i] = strs[i].ptr;
      lens[i] = (size_t) strs[i].len;
      types[i] = TSR_PIECE_NORMAL;
    }
  if (kv_scores != NULL &&
      (st = tsr_gguf_get_arr_f32 (g, "tokenizer.ggml.scores", scores, n, err)) != TSR_OK)
    goto done;
  if (kv_types != NULL &&
      (st = tsr_gguf_get_arr_i32 (g, "tokenizer.ggml.token_type", types, n, err)) != TSR_OK)
    goto done;

  memset (&v, 0, sizeof v);
  v.n = (size_t) n;
  v.pieces = pieces;
  v.lens = lens;
  v.scores = scores;
  v.types = types;
  v.bos_id = tsr_gguf_get_i32 (g, "tokenizer.ggml.bos_token_id", &id, NULL) == TSR_OK ? id : -1;
  v.eos_id = tsr_gguf_get_i32 (g, "tokenizer.ggml.eos_token_id", &id, NULL) == TSR_OK ? id : -1;
  /* llama files put a space in front unless they say otherwise. */
  if (tsr_gguf_get_bool (g, "tokenizer.ggml.add_space_prefix", &prefix, NULL) != TSR_OK)
    prefix = 1;
  v.add_dummy_prefix = prefix;
  st = tsr_tokenizer_new (&v, out, err);

done:
  free (pieces);
  free (lens);
  free (scores);
  free (types);
  return st;
}
