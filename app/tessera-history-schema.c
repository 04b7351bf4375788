/* SPDX-License-Identifier: GPL-3.0-or-later
 *
 * tessera-history-schema.c — the history's schema, as the ordered list of
 * migrations that built it.
 *
 * PRAGMA user_version is the number of migrations applied. Each migration
 * runs in its own transaction and sets user_version itself, so a crash
 * leaves the database at the previous version, never between two. Never
 * edit a migration that has shipped: append a new one and raise
 * TESSERA_HISTORY_SCHEMA_VERSION.
 *
 * Times are microseconds since 1970 (g_get_real_time()). Image paths are
 * relative to the database's folder so that the folder can move.
 */
#define G_LOG_DOMAIN "tessera-history"

#include "config.h"

#include <glib/gi18n.h>

#include "tessera-history-private.h"

/* "TSRA": marks the file as Tessera's for tools such as file(1), and lets
 * Tessera refuse another program's database. */
#define TESSERA_APPLICATION_ID 0x54535241

static const char *const migrations[] = {
  /* 1: images, conversations, messages. */
  "PRAGMA application_id = 1414746689;\n"
  "CREATE TABLE images (\n"
  "  sha256        TEXT PRIMARY KEY NOT NULL CHECK (length (sha256) = 64),\n"
  "  original_name TEXT NOT NULL,\n"
  "  width         INTEGER NOT NULL,\n"
  "  height        INTEGER NOT NULL,\n"
  "  bytes         INTEGER NOT NULL,\n"
  "  stored_path   TEXT NOT NULL\n"
  ");\n"
  /* AUTOINCREMENT: an id is never reused, so an id held by the interface
   * (an undo toast, a search result) cannot come to mean another row. */
  "CREATE TABLE conversations (\n"
  "  id            INTEGER PRIMARY KEY AUTOINCREMENT,\n"
  "  title         TEXT NOT NULL DEFAULT '',\n"
  "  created_at    INTEGER NOT NULL,\n"
  "  updated_at    INTEGER NOT NULL,\n"
  "  image_sha256  TEXT REFERENCES images (sha256),\n"
  "  hd_num        INTEGER NOT NULL DEFAULT 0,\n"
  "  model_name    TEXT,\n"
  "  model_size    INTEGER\n"
  ");\n"
  "CREATE INDEX conversations_by_image ON conversations (image_sha256);\n"
  "CREATE TABLE messages (\n"
  "  id              INTEGER PRIMARY KEY AUTOINCREMENT,\n"
  "  conversation_id INTEGER NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,\n"
  "  role            TEXT NOT NULL CHECK (role IN ('user', 'assistant')),\n"
  "  text            TEXT NOT NULL DEFAULT '',\n"
  "  created_at      INTEGER NOT NULL,\n"
  "  hd_num          INTEGER NOT NULL DEFAULT 0,\n"
  "  n_tokens        INTEGER,\n"
  "  prefill_speed   REAL,\n"
  "  decode_speed    REAL,\n"
  "  stopped         INTEGER NOT NULL DEFAULT 0,\n"
  "  finished        INTEGER NOT NULL DEFAULT 1\n"
  ");\n"
  "CREATE INDEX messages_by_conversation ON messages (conversation_id, id);\n"
  "PRAGMA user_version = 1;\n",

  /* 2: full-text search over messages. The index keeps no copy of the
   * text (content='messages'); triggers keep it in step with every
   * insert, edit and delete, cascades from a conversation included. */
  "CREATE VIRTUAL TABLE messages_fts USING fts5 (\n"
  "  text, content = 'messages', content_rowid = 'id', tokenize = 'tessera'\n"
  ");\n"
  "CREATE TRIGGER messages_fts_insert AFTER INSERT ON messages BEGIN\n"
  "  INSERT INTO messages_fts (rowid, text) VALUES (new.id, new.text);\n"
  "END;\n"
  "CREATE TRIGGER messages_fts_delete AFTER DELETE ON messages BEGIN\n"
  "  INSERT INTO messages_fts (messages_fts, rowid, text) VALUES ('delete', old.id, old.text);\n"
  "END;\n"
  "CREATE TRIGGER messages_fts_update AFTER UPDATE OF text ON messages BEGIN\n"
  "  INSERT INTO messages_fts (messages_fts, rowid, text) VALUES ('delete', old.id, old.text);\n"
  "  INSERT INTO messages_fts (rowid, text) VALUES (new.id, new.text);\n"
  "END;\n"
  "INSERT INTO messages_fts (messages_fts) VALUES ('rebuild');\n"
  "PRAGMA user_version = 2;\n",

  /* 3: deleting in two steps, so that a deletion can be undone. */
  "ALTER TABLE conversations ADD COLUMN deleted_at INTEGER;\n"
  "CREATE INDEX conversations_by_activity ON conversations (deleted_at, updated_at);\n"
  "PRAGMA user_version = 3;\n",
};

G_STATIC_ASSERT (G_N_ELEMENTS (migrations) == TESSERA_HISTORY_SCHEMA_VERSION);

/* The first column of the first row of a constant query, as an integer. */
static int
query_int (sqlite3 *db, const char *sql, gint64 *value)
{
  sqlite3_stmt *stmt = NULL;
  int rc = sqlite3_prepare_v2 (db, sql, -1, &stmt, NULL);

  if (rc == SQLITE_OK)
    {
      rc = sqlite3_step (stmt);
      if (rc == SQLITE_ROW)
        {
          *value = sqlite3_column_int64 (stmt, 0);
          rc = SQLITE_OK;
        }
    }
  sqlite3_finalize (stmt);
  return rc;
}

static gboolean
read_version (TesseraHistory *self, gint64 *version, const char *action, GError **error)
{
  int rc = query_int (self->db, "PRAGMA user_version", version);

  if (rc != SQLITE_OK)
    {
      _tessera_history_set_sqlite_error (self, error, rc, action);
      return FALSE;
    }
  return TRUE;
}

/* Whether the file is Tessera's (or still empty) before anything is
 * written to it. */
static gboolean
check_owner (TesseraHistory *self, gint64 version, const char *action, GError **error)
{
  g_autofree char *name = g_filename_display_name (self->path);
  gint64 app_id = 0;
  gint64 n_objects = 0;
  int rc;

  rc = query_int (self->db, "PRAGMA application_id", &app_id);
  if (rc == SQLITE_OK && version == 0)
    rc = query_int (self->db, "SELECT count(*) FROM sqlite_schema", &n_objects);
  if (rc != SQLITE_OK)
    {
      _tessera_history_set_sqlite_error (self, error, rc, action);
      return FALSE;
    }
  if ((app_id != 0 && app_id != TESSERA_APPLICATION_ID) || (version == 0 && n_objects > 0))
    {
      _tessera_history_set_error (error, TESSERA_HISTORY_ERROR, TESSERA_HISTORY_ERROR_CORRUPT, action,
                   _("“%s” is a database of another program, not a Tessera history. "
                     "Tessera left it as it is; choose another file."), name);
      return FALSE;
    }
  if (version > TESSERA_HISTORY_SCHEMA_VERSION)
    {
      _tessera_history_set_error (error, TESSERA_HISTORY_ERROR, TESSERA_HISTORY_ERROR_TOO_NEW, action,
                   _("The history “%s” was written by a newer version of Tessera "
                     "(schema %d; this version knows up to %d). Update Tessera to open it."),
                   name, (int) version, TESSERA_HISTORY_SCHEMA_VERSION);
      return FALSE;
    }
  return TRUE;
}

gboolean
_tessera_history_check_schema (TesseraHistory *self, GError **error)
{
  const char *action = _("Could not open the history.");
  gint64 version = 0;

  return read_version (self, &version, action, error) &&
         check_owner (self, version, action, error);
}

gboolean
_tessera_history_migrate (TesseraHistory *self, GError **error)
{
  const char *action = _("Could not open the history.");
  gint64 version = 0;

  if (!read_version (self, &version, action, error))
    return FALSE;
  if (version == TESSERA_HISTORY_SCHEMA_VERSION)
    return TRUE;

  if (self->read_only)
    {
      g_autofree char *name = g_filename_display_name (self->path);
      _tessera_history_set_error (error, TESSERA_HISTORY_ERROR, TESSERA_HISTORY_ERROR_READ_ONLY, action,
                   _("The history “%s” was made by an older version of Tessera and must be "
                     "updated, but it is read-only. Make it and its folder writable, then "
                     "open Tessera again."), name);
      return FALSE;
    }

  while (version < TESSERA_HISTORY_SCHEMA_VERSION)
    {
      char *message = NULL;
      int rc;

      if (!_tessera_history_begin (self, action, error))
        return FALSE;
      /* Another process may have migrated while this one waited for the
       * write lock. */
      if (!read_version (self, &version, action, error))
        goto fail;
      if (version >= TESSERA_HISTORY_SCHEMA_VERSION)
        {
          _tessera_history_rollback (self);
          break;
        }
      g_debug ("%s: migrating the schema from version %d", self->path, (int) version);
      rc = sqlite3_exec (self->db, migrations[version], NULL, NULL, &message);
      if (rc != SQLITE_OK)
        {
          g_debug ("migration %d: %s", (int) version + 1, message);
          sqlite3_free (message);
          _tessera_history_set_sqlite_error (self, error, rc, action);
          goto fail;
        }
      if (!_tessera_history_commit (self, action, error))
        return FALSE;
      version++;
    }
  return TRUE;

fail:
  _tessera_history_rollback (self);
  return FALSE;
}
