/* SPDX-License-Identifier: GPL-3.0-or-later
 *
 * tessera-history-tokenizer.c — the FTS5 tokenizer "tessera".
 *
 * FTS5's unicode61 tokenizer splits at spaces and punctuation, folds case
 * and (with remove_diacritics 2) accents, so "cafe" finds "Café". But
 * Chinese and Japanese are written without spaces, and Korean glues
 * particles to words ("사진에서"), so a whole sentence or word-with-ending
 * would be one token that only a search for its beginning could find.
 *
 * This tokenizer hands everything to unicode61 except Han, Hiragana,
 * Katakana, Bopomofo and Hangul letters, each of which becomes a token of
 * its own. A quoted query is a phrase, whose tokens must be adjacent, so
 * "東京" finds 東京 inside any sentence and "사진" finds 사진에서: a
 * substring search for those scripts. Both indexing and queries go through
 * here, so they always agree.
 *
 * The tokenizer must be registered on every connection that touches
 * messages_fts (writes to messages fire its triggers); other SQLite tools
 * can read the database but not write messages.
 */
#define G_LOG_DOMAIN "tessera-history"

#include "config.h"

#include <string.h>

#include "tessera-history-private.h"

typedef struct {
  fts5_tokenizer  inner_methods;
  Fts5Tokenizer  *inner;
} Tokenizer;

typedef int (*TokenCallback) (void *ctx, int flags, const char *token, int n_token,
                              int start, int end);

/* Passes unicode61's tokens on with offsets in the whole text rather than
 * in the run it was given. */
typedef struct {
  void          *ctx;
  TokenCallback  callback;
  int            offset;
} RunContext;

static int
run_token_cb (void *user_data, int flags, const char *token, int n_token, int start, int end)
{
  RunContext *run = user_data;
  return run->callback (run->ctx, flags, token, n_token, start + run->offset, end + run->offset);
}

static gboolean
is_single_char_token (gunichar c)
{
  switch (g_unichar_get_script (c))
    {
    case G_UNICODE_SCRIPT_HAN:
    case G_UNICODE_SCRIPT_HIRAGANA:
    case G_UNICODE_SCRIPT_KATAKANA:
    case G_UNICODE_SCRIPT_BOPOMOFO:
    case G_UNICODE_SCRIPT_HANGUL:
      /* Letters only: the scripts' punctuation stays a separator. */
      return g_unichar_isalnum (c);
    default:
      return FALSE;
    }
}

static int
tokenizer_create (void *user_data, const char **args, int n_args, Fts5Tokenizer **out)
{
  fts5_api *api = user_data;
  static const char *inner_args[] = { "remove_diacritics", "2" };
  void *inner_data = NULL;
  Tokenizer *tokenizer;
  int rc;

  tokenizer = sqlite3_malloc (sizeof *tokenizer);
  if (tokenizer == NULL)
    return SQLITE_NOMEM;
  memset (tokenizer, 0, sizeof *tokenizer);
  rc = api->xFindTokenizer (api, "unicode61", &inner_data, &tokenizer->inner_methods);
  if (rc == SQLITE_OK)
    rc = tokenizer->inner_methods.xCreate (inner_data, inner_args, G_N_ELEMENTS (inner_args),
                                           &tokenizer->inner);
  if (rc != SQLITE_OK)
    {
      sqlite3_free (tokenizer);
      return rc;
    }
  *out = (Fts5Tokenizer *) tokenizer;
  return SQLITE_OK;
}

static void
tokenizer_delete (Fts5Tokenizer *fts_tokenizer)
{
  Tokenizer *tokenizer = (Tokenizer *) fts_tokenizer;

  if (tokenizer == NULL)
    return;
  tokenizer->inner_methods.xDelete (tokenizer->inner);
  sqlite3_free (tokenizer);
}

static int
tokenize_run (Tokenizer *tokenizer, void *ctx, int flags, const char *text, int start, int end,
              TokenCallback callback)
{
  RunContext run = { ctx, callback, start };

  if (end <= start)
    return SQLITE_OK;
  return tokenizer->inner_methods.xTokenize (tokenizer->inner, &run, flags, text + start,
                                             end - start, run_token_cb);
}

static int
tokenizer_tokenize (Fts5Tokenizer *fts_tokenizer,
                    void          *ctx,
                    int            flags,
                    const char    *text,
                    int            n_text,
                    TokenCallback  callback)
{
  Tokenizer *tokenizer = (Tokenizer *) fts_tokenizer;
  int run_start = 0;
  int i = 0;
  int rc;

  while (i < n_text)
    {
      gunichar c = g_utf8_get_char_validated (text + i, n_text - i);
      int len;

      /* Bytes that are not UTF-8 stay in the run for unicode61 to judge. */
      if (c == (gunichar) -1 || c == (gunichar) -2)
        {
          i++;
          continue;
        }
      len = g_utf8_skip[(guchar) text[i]];
      if (is_single_char_token (c))
        {
          rc = tokenize_run (tokenizer, ctx, flags, text, run_start, i, callback);
          if (rc != SQLITE_OK)
            return rc;
          rc = callback (ctx, 0, text + i, len, i, i + len);
          if (rc != SQLITE_OK)
            return rc;
          run_start = i + len;
        }
      i += len;
    }
  return tokenize_run (tokenizer, ctx, flags, text, run_start, n_text, callback);
}

static fts5_api *
get_fts5_api (sqlite3 *db)
{
  fts5_api *api = NULL;
  sqlite3_stmt *stmt = NULL;

  if (sqlite3_prepare_v2 (db, "SELECT fts5(?1)", -1, &stmt, NULL) != SQLITE_OK)
    return NULL;
  sqlite3_bind_pointer (stmt, 1, &api, "fts5_api_ptr", NULL);
  sqlite3_step (stmt);
  sqlite3_finalize (stmt);
  return api;
}

int
_tessera_history_register_tokenizer (sqlite3 *db)
{
  fts5_api *api = get_fts5_api (db);
  fts5_tokenizer methods = { tokenizer_create, tokenizer_delete, tokenizer_tokenize };

  if (api == NULL)
    return SQLITE_ERROR;
  return api->xCreateTokenizer (api, "tessera", api, &methods, NULL);
}
