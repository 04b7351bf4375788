/* SPDX-License-Identifier: GPL-3.0-or-later
 *
 * tessera-history.c — opening the history, writes, the conversation list,
 * search. The schema is in tessera-history-schema.c, the search tokenizer
 * in tessera-history-tokenizer.c, image copies in
 * tessera-history-images.c and exports in tessera-history-export.c.
 */
#define G_LOG_DOMAIN "tessera-history"

#include "config.h"

#include <errno.h>
#include <math.h>
#include <string.h>

#include <glib/gi18n.h>
#include <glib/gstdio.h>

#include "tessera-history-private.h"

/* ==== Statements ======================================================== */

#define CONVERSATION_COLUMNS \
  "SELECT c.id, c.title, c.created_at, c.updated_at, c.hd_num, c.model_name, c.model_size," \
  " c.image_sha256, i.original_name, i.width, i.height, i.bytes, i.stored_path" \
  " FROM conversations c LEFT JOIN images i ON i.sha256 = c.image_sha256"

static const char *const stmt_sql[N_STMTS] = {
  [STMT_BEGIN] = "BEGIN IMMEDIATE",
  [STMT_COMMIT] = "COMMIT",
  [STMT_ROLLBACK] = "ROLLBACK",
  [STMT_LIST_CONVERSATIONS] =
    CONVERSATION_COLUMNS " WHERE c.deleted_at IS NULL ORDER BY c.updated_at DESC, c.id DESC",
  [STMT_GET_CONVERSATION] =
    CONVERSATION_COLUMNS " WHERE c.id = ?1 AND c.deleted_at IS NULL",
  [STMT_FIND_IMAGE] =
    "SELECT stored_path, width, height, bytes FROM images WHERE sha256 = ?1",
  [STMT_INSERT_IMAGE] =
    "INSERT OR IGNORE INTO images (sha256, original_name, width, height, bytes, stored_path)"
    " VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
  [STMT_INSERT_CONVERSATION] =
    "INSERT INTO conversations (title, created_at, updated_at, image_sha256, hd_num,"
    " model_name, model_size) VALUES ('', ?1, ?1, ?2, ?3, ?4, ?5)",
  [STMT_CONVERSATION_ALIVE] =
    "SELECT 1 FROM conversations WHERE id = ?1 AND deleted_at IS NULL",
  [STMT_INSERT_MESSAGE] =
    "INSERT INTO messages (conversation_id, role, text, created_at, hd_num, finished)"
    " VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
  /* ?3: a new HD-N or 0; ?4: a title for an untitled conversation or NULL. */
  [STMT_TOUCH_CONVERSATION] =
    "UPDATE conversations SET updated_at = max(updated_at, ?2),"
    " hd_num = CASE WHEN ?3 > 0 THEN ?3 ELSE hd_num END,"
    " title = CASE WHEN title = '' AND ?4 IS NOT NULL THEN ?4 ELSE title END"
    " WHERE id = ?1",
  [STMT_UPDATE_MESSAGE_TEXT] =
    "UPDATE messages SET text = ?2 WHERE id = ?1",
  [STMT_FINISH_MESSAGE] =
    "UPDATE messages SET text = ?2, n_tokens = ?3, prefill_speed = ?4, decode_speed = ?5,"
    " stopped = ?6, finished = 1 WHERE id = ?1",
  [STMT_MESSAGE_CONVERSATION] =
    "SELECT conversation_id FROM messages WHERE id = ?1",
  [STMT_LIST_MESSAGES] =
    "SELECT id, conversation_id, role, text, created_at, hd_num, n_tokens, prefill_speed,"
    " decode_speed, stopped, finished FROM messages WHERE conversation_id = ?1 ORDER BY id",
  [STMT_RENAME_CONVERSATION] =
    "UPDATE conversations SET title = ?2 WHERE id = ?1 AND deleted_at IS NULL",
  [STMT_DELETE_CONVERSATION] =
    "UPDATE conversations SET deleted_at = ?2 WHERE id = ?1 AND deleted_at IS NULL",
  [STMT_UNDELETE_CONVERSATION] =
    "UPDATE conversations SET deleted_at = NULL WHERE id = ?1 AND deleted_at IS NOT NULL",
  [STMT_PURGE_CONVERSATIONS] =
    "DELETE FROM conversations WHERE deleted_at IS NOT NULL AND deleted_at <= ?1",
  [STMT_PURGE_IMAGES] =
    "DELETE FROM images WHERE NOT EXISTS"
    " (SELECT 1 FROM conversations c WHERE c.image_sha256 = images.sha256)"
    " RETURNING sha256, stored_path",
  /* char(2) and char(3) mark the matches; they cannot come from a keyboard. */
  [STMT_SEARCH] =
    "SELECT m.conversation_id, m.id, snippet(messages_fts, 0, char(2), char(3), '…', 24)"
    " FROM messages_fts JOIN messages m ON m.id = messages_fts.rowid"
    " JOIN conversations c ON c.id = m.conversation_id"
    " WHERE messages_fts MATCH ?1 AND c.deleted_at IS NULL"
    " ORDER BY bm25(messages_fts), c.updated_at DESC",
  [STMT_DATA_VERSION] = "PRAGMA data_version",
};

/* ==== Type ============================================================== */

static void tessera_history_initable_iface_init (GInitableIface *iface);

G_DEFINE_FINAL_TYPE_WITH_CODE (TesseraHistory, tessera_history, G_TYPE_OBJECT,
                               G_IMPLEMENT_INTERFACE (G_TYPE_INITABLE,
                                                      tessera_history_initable_iface_init))

G_DEFINE_QUARK (tessera-history-error-quark, tessera_history_error)

G_DEFINE_BOXED_TYPE (TesseraHistoryHit, tessera_history_hit,
                     tessera_history_hit_copy, tessera_history_hit_free)

enum {
  PROP_0,
  PROP_PATH,
  PROP_FLAGS,
  PROP_BUSY_TIMEOUT,
  N_PROPS
};

static GParamSpec *properties[N_PROPS];

TesseraHistoryHit *
tessera_history_hit_copy (const TesseraHistoryHit *hit)
{
  TesseraHistoryHit *copy = g_new (TesseraHistoryHit, 1);

  *copy = *hit;
  copy->snippet = g_strdup (hit->snippet);
  copy->snippet_markup = g_strdup (hit->snippet_markup);
  return copy;
}

void
tessera_history_hit_free (TesseraHistoryHit *hit)
{
  if (hit == NULL)
    return;
  g_free (hit->snippet);
  g_free (hit->snippet_markup);
  g_free (hit);
}

static void
tessera_history_dispose (GObject *object)
{
  TesseraHistory *self = TESSERA_HISTORY (object);

  if (self->conversations != NULL)
    g_list_store_remove_all (self->conversations);
  g_clear_pointer (&self->by_id, g_hash_table_unref);

  for (guint i = 0; i < N_STMTS; i++)
    g_clear_pointer (&self->stmts[i], sqlite3_finalize);
  /* The last connection to close checkpoints the WAL into the database
   * and removes the -wal and -shm files. */
  g_clear_pointer (&self->db, sqlite3_close_v2);

  G_OBJECT_CLASS (tessera_history_parent_class)->dispose (object);
}

static void
tessera_history_finalize (GObject *object)
{
  TesseraHistory *self = TESSERA_HISTORY (object);

  g_clear_object (&self->conversations);
  g_free (self->path);
  g_free (self->data_dir);

  G_OBJECT_CLASS (tessera_history_parent_class)->finalize (object);
}

static void
tessera_history_get_property (GObject    *object,
                              guint       prop_id,
                              GValue     *value,
                              GParamSpec *pspec)
{
  TesseraHistory *self = TESSERA_HISTORY (object);

  switch (prop_id)
    {
    case PROP_PATH:
      g_value_set_string (value, self->path);
      break;
    case PROP_FLAGS:
      g_value_set_uint (value, self->flags);
      break;
    case PROP_BUSY_TIMEOUT:
      g_value_set_uint (value, self->busy_timeout);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
tessera_history_set_property (GObject      *object,
                              guint         prop_id,
                              const GValue *value,
                              GParamSpec   *pspec)
{
  TesseraHistory *self = TESSERA_HISTORY (object);

  switch (prop_id)
    {
    case PROP_PATH:
      g_free (self->path);
      self->path = g_value_dup_string (value);
      break;
    case PROP_FLAGS:
      self->flags = g_value_get_uint (value);
      break;
    case PROP_BUSY_TIMEOUT:
      self->busy_timeout = g_value_get_uint (value);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
tessera_history_class_init (TesseraHistoryClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);

  object_class->dispose = tessera_history_dispose;
  object_class->finalize = tessera_history_finalize;
  object_class->get_property = tessera_history_get_property;
  object_class->set_property = tessera_history_set_property;

  /* NULL: tessera_history_dup_default_path(). */
  properties[PROP_PATH] =
    g_param_spec_string ("path", NULL, NULL, NULL,
                         G_PARAM_READWRITE | G_PARAM_CONSTRUCT_ONLY | G_PARAM_STATIC_STRINGS);
  /* TesseraHistoryFlags. */
  properties[PROP_FLAGS] =
    g_param_spec_uint ("flags", NULL, NULL, 0, G_MAXUINT, TESSERA_HISTORY_FLAGS_NONE,
                       G_PARAM_READWRITE | G_PARAM_CONSTRUCT_ONLY | G_PARAM_STATIC_STRINGS);
  properties[PROP_BUSY_TIMEOUT] =
    g_param_spec_uint ("busy-timeout", NULL, NULL, 0, G_MAXINT, TESSERA_HISTORY_BUSY_TIMEOUT_MS,
                       G_PARAM_READWRITE | G_PARAM_CONSTRUCT_ONLY | G_PARAM_STATIC_STRINGS);
  g_object_class_install_properties (object_class, N_PROPS, properties);
}

static void
tessera_history_init (TesseraHistory *self)
{
  self->busy_timeout = TESSERA_HISTORY_BUSY_TIMEOUT_MS;
  self->conversations = g_list_store_new (TESSERA_TYPE_HISTORY_CONVERSATION);
  self->by_id = g_hash_table_new_full (g_int64_hash, g_int64_equal, g_free, g_object_unref);
}

/* ==== Errors ============================================================ */

void
_tessera_history_set_sqlite_error (TesseraHistory  *self,
                                   GError         **error,
                                   int              rc,
                                   const char      *action)
{
  g_autofree char *name = g_filename_display_name (self->path);
  int sys_errno = self->db != NULL ? sqlite3_system_errno (self->db) : 0;
  const char *detail = self->db != NULL ? sqlite3_errmsg (self->db) : sqlite3_errstr (rc);
  g_autofree char *reason = NULL;
  TesseraHistoryError code;

  switch (rc & 0xff)
    {
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
      code = TESSERA_HISTORY_ERROR_LOCKED;
      reason = g_strdup_printf (_("Another program is using the history file “%s”. "
                                  "Close other copies of Tessera, then try again. "
                                  "Conversations saved before are kept."), name);
      break;

    case SQLITE_CANTOPEN:
      if (sys_errno != EACCES && sys_errno != EPERM && sys_errno != EROFS)
        {
          code = TESSERA_HISTORY_ERROR_IO;
          reason = g_strdup_printf (_("The history file “%s” could not be opened (%s). "
                                      "Check that its folder exists and that you can write there."),
                                    name, sys_errno != 0 ? g_strerror (sys_errno) : detail);
          break;
        }
      G_GNUC_FALLTHROUGH;
    case SQLITE_READONLY:
    case SQLITE_PERM:
      code = TESSERA_HISTORY_ERROR_READ_ONLY;
      reason = g_strdup_printf (_("The history file “%s” or its folder is read-only. "
                                  "Make both writable, then try again. "
                                  "Conversations saved before are kept."), name);
      break;

    case SQLITE_NOTADB:
    case SQLITE_CORRUPT:
      code = TESSERA_HISTORY_ERROR_CORRUPT;
      reason = g_strdup_printf (_("“%s” is not a Tessera history, or it is damaged. "
                                  "Tessera left it as it is: move it aside to start a new history."),
                                name);
      break;

    case SQLITE_FULL:
      code = TESSERA_HISTORY_ERROR_DISK_FULL;
      reason = g_strdup_printf (_("The disk holding “%s” is full. Free some space, then try again. "
                                  "Conversations saved before are kept."), name);
      break;

    case SQLITE_IOERR:
      if (sys_errno == ENOSPC || sys_errno == EDQUOT)
        {
          code = TESSERA_HISTORY_ERROR_DISK_FULL;
          reason = g_strdup_printf (_("The disk holding “%s” is full. Free some space, then try again. "
                                      "Conversations saved before are kept."), name);
        }
      else
        {
          code = TESSERA_HISTORY_ERROR_IO;
          reason = g_strdup_printf (_("Reading or writing “%s” failed (%s). "
                                      "The disk may be failing or may have been removed."),
                                    name, sys_errno != 0 ? g_strerror (sys_errno) : detail);
        }
      break;

    case SQLITE_NOMEM:
      code = TESSERA_HISTORY_ERROR_FAILED;
      reason = g_strdup (_("There is not enough memory to work with the history. "
                           "Close other programs, then try again."));
      break;

    default:
      code = TESSERA_HISTORY_ERROR_FAILED;
      reason = g_strdup_printf (_("The history database “%s” reported an error: %s."), name, detail);
      break;
    }

  g_set_error (error, TESSERA_HISTORY_ERROR, code, "%s %s", action, reason);
}

void
_tessera_history_set_error (GError     **error,
                            GQuark       domain,
                            int          code,
                            const char  *action,
                            const char  *reason_format,
                            ...)
{
  g_autofree char *reason = NULL;
  va_list args;

  va_start (args, reason_format);
  reason = g_strdup_vprintf (reason_format, args);
  va_end (args);
  g_set_error (error, domain, code, "%s %s", action, reason);
}

void
_tessera_history_set_file_error (TesseraHistory  *self,
                                 GError         **error,
                                 const GError    *cause,
                                 const char      *action)
{
  g_autofree char *folder = g_filename_display_name (self->data_dir);

  if (g_error_matches (cause, G_FILE_ERROR, G_FILE_ERROR_NOSPC) ||
      g_error_matches (cause, G_IO_ERROR, G_IO_ERROR_NO_SPACE))
    _tessera_history_set_error (error, TESSERA_HISTORY_ERROR, TESSERA_HISTORY_ERROR_DISK_FULL, action,
                 _("The disk holding “%s” is full. Free some space, then try again. "
                   "Conversations saved before are kept."), folder);
  else if (g_error_matches (cause, G_FILE_ERROR, G_FILE_ERROR_ACCES) ||
           g_error_matches (cause, G_FILE_ERROR, G_FILE_ERROR_PERM) ||
           g_error_matches (cause, G_FILE_ERROR, G_FILE_ERROR_ROFS) ||
           g_error_matches (cause, G_IO_ERROR, G_IO_ERROR_PERMISSION_DENIED) ||
           g_error_matches (cause, G_IO_ERROR, G_IO_ERROR_READ_ONLY))
    {
      g_autofree char *reason =
        g_strdup_printf (_("The folder “%s” is read-only. Make it writable, then try again."), folder);
      g_set_error (error, TESSERA_HISTORY_ERROR, TESSERA_HISTORY_ERROR_READ_ONLY, "%s %s", action, reason);
    }
  else
    {
      g_autofree char *reason =
        g_strdup_printf (_("Writing in “%s” failed: %s"), folder, cause->message);
      g_set_error (error, TESSERA_HISTORY_ERROR, TESSERA_HISTORY_ERROR_IO, "%s %s", action, reason);
    }
}

static void
set_not_found (GError **error, const char *action)
{
  _tessera_history_set_error (error, TESSERA_HISTORY_ERROR, TESSERA_HISTORY_ERROR_NOT_FOUND, action,
               _("The conversation is no longer in the history; it may have been deleted."));
}

/* Refuses a write before anything is touched, image files included. */
static gboolean
check_writable (TesseraHistory *self, const char *action, GError **error)
{
  g_autofree char *name = NULL;

  if (!self->read_only)
    return TRUE;
  name = g_filename_display_name (self->path);
  if (self->flags & TESSERA_HISTORY_FLAGS_READ_ONLY)
    _tessera_history_set_error (error, TESSERA_HISTORY_ERROR, TESSERA_HISTORY_ERROR_READ_ONLY, action,
                 _("The history “%s” was opened for reading only."), name);
  else
    _tessera_history_set_sqlite_error (self, error, SQLITE_READONLY, action);
  return FALSE;
}

/* ==== Statements and transactions ======================================= */

sqlite3_stmt *
_tessera_history_stmt (TesseraHistory      *self,
                       TesseraHistoryStmt   which,
                       const char          *action,
                       GError             **error)
{
  sqlite3_stmt *stmt = self->stmts[which];

  g_assert (which < N_STMTS);
  if (stmt == NULL)
    {
      int rc = sqlite3_prepare_v3 (self->db, stmt_sql[which], -1, SQLITE_PREPARE_PERSISTENT,
                                   &stmt, NULL);
      if (rc != SQLITE_OK)
        {
          _tessera_history_set_sqlite_error (self, error, rc, action);
          return NULL;
        }
      self->stmts[which] = stmt;
    }
  sqlite3_reset (stmt);
  sqlite3_clear_bindings (stmt);
  return stmt;
}

static gboolean
run_simple (TesseraHistory *self, TesseraHistoryStmt which, const char *action, GError **error)
{
  g_autoptr(TesseraHistoryStmtUse) stmt = _tessera_history_stmt (self, which, action, error);
  int rc;

  if (stmt == NULL)
    return FALSE;
  rc = sqlite3_step (stmt);
  if (rc != SQLITE_DONE)
    {
      _tessera_history_set_sqlite_error (self, error, rc, action);
      return FALSE;
    }
  return TRUE;
}

gboolean
_tessera_history_begin (TesseraHistory *self, const char *action, GError **error)
{
  return run_simple (self, STMT_BEGIN, action, error);
}

gboolean
_tessera_history_commit (TesseraHistory *self, const char *action, GError **error)
{
  if (run_simple (self, STMT_COMMIT, action, error))
    return TRUE;
  /* A failed COMMIT (a full disk) may leave the transaction open. */
  _tessera_history_rollback (self);
  return FALSE;
}

void
_tessera_history_rollback (TesseraHistory *self)
{
  if (sqlite3_get_autocommit (self->db))
    return;
  if (!run_simple (self, STMT_ROLLBACK, "", NULL))
    g_debug ("ROLLBACK failed: %s", sqlite3_errmsg (self->db));
}

/* Runs a statement that changes rows; returns the number changed or -1. */
static int
step_changes (TesseraHistory *self, sqlite3_stmt *stmt, const char *action, GError **error)
{
  int rc = sqlite3_step (stmt);

  if (rc != SQLITE_DONE)
    {
      _tessera_history_set_sqlite_error (self, error, rc, action);
      return -1;
    }
  return sqlite3_changes (self->db);
}

/* ==== The conversation list ============================================= */

/* Newest activity first; ids break ties so the order is total. */
static int
compare_conversations (gconstpointer a, gconstpointer b, gpointer user_data)
{
  TesseraHistoryConversation *ca = (TesseraHistoryConversation *) a;
  TesseraHistoryConversation *cb = (TesseraHistoryConversation *) b;
  gint64 ua = tessera_history_conversation_get_updated (ca);
  gint64 ub = tessera_history_conversation_get_updated (cb);
  gint64 ia = tessera_history_conversation_get_id (ca);
  gint64 ib = tessera_history_conversation_get_id (cb);

  if (ua != ub)
    return ua > ub ? -1 : 1;
  if (ia != ib)
    return ia > ib ? -1 : 1;
  return 0;
}

/* Moves an item whose time changed to where the order wants it, touching
 * the list only if it has to move. */
static void
place_item (TesseraHistory *self, TesseraHistoryConversation *item)
{
  GListModel *model = G_LIST_MODEL (self->conversations);
  guint n = g_list_model_get_n_items (model);
  guint pos;

  if (!g_list_store_find (self->conversations, item, &pos))
    {
      g_list_store_insert_sorted (self->conversations, item, compare_conversations, NULL);
      return;
    }
  if (pos > 0)
    {
      g_autoptr(TesseraHistoryConversation) prev = g_list_model_get_item (model, pos - 1);
      if (compare_conversations (prev, item, NULL) > 0)
        goto move;
    }
  if (pos + 1 < n)
    {
      g_autoptr(TesseraHistoryConversation) next = g_list_model_get_item (model, pos + 1);
      if (compare_conversations (item, next, NULL) > 0)
        goto move;
    }
  return;

move:
  g_object_ref (item);
  g_list_store_remove (self->conversations, pos);
  g_list_store_insert_sorted (self->conversations, item, compare_conversations, NULL);
  g_object_unref (item);
}

static void
forget_item (TesseraHistory *self, gint64 id)
{
  TesseraHistoryConversation *item = g_hash_table_lookup (self->by_id, &id);
  guint pos;

  if (item == NULL)
    return;
  if (g_list_store_find (self->conversations, item, &pos))
    g_list_store_remove (self->conversations, pos);
  g_hash_table_remove (self->by_id, &id);
}

/* Brings one list item in line with its row after a write; returns it
 * (transfer none) or NULL if the conversation is gone or deleted. The
 * write has committed by now, so a failure to read back is only logged. */
static TesseraHistoryConversation *
sync_item (TesseraHistory *self, gint64 id)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(TesseraHistoryStmtUse) stmt =
    _tessera_history_stmt (self, STMT_GET_CONVERSATION, _("Could not read the history."), &error);
  TesseraHistoryConversation *item;
  int rc;

  if (stmt == NULL)
    {
      g_warning ("%s", error->message);
      return g_hash_table_lookup (self->by_id, &id);
    }
  sqlite3_bind_int64 (stmt, 1, id);
  rc = sqlite3_step (stmt);
  if (rc == SQLITE_DONE)
    {
      forget_item (self, id);
      return NULL;
    }
  if (rc != SQLITE_ROW)
    {
      g_warning ("Could not read back conversation %" G_GINT64_FORMAT ": %s", id,
                 sqlite3_errmsg (self->db));
      return g_hash_table_lookup (self->by_id, &id);
    }

  item = g_hash_table_lookup (self->by_id, &id);
  if (item != NULL)
    _tessera_history_conversation_update_from_row (item, stmt, self->data_dir);
  else
    {
      item = _tessera_history_conversation_new_from_row (stmt, self->data_dir);
      g_hash_table_insert (self->by_id, g_memdup2 (&id, sizeof id), item);
    }
  place_item (self, item);
  return item;
}

/* Reads the whole list again, keeping the items of conversations that are
 * still there so that bindings to them survive. */
static gboolean
reload_conversations (TesseraHistory *self, GError **error)
{
  const char *action = _("Could not read the history.");
  g_autoptr(TesseraHistoryStmtUse) stmt =
    _tessera_history_stmt (self, STMT_LIST_CONVERSATIONS, action, error);
  g_autoptr(GPtrArray) items = g_ptr_array_new_with_free_func (g_object_unref);
  g_autoptr(GHashTable) by_id = NULL;
  int rc;

  if (stmt == NULL)
    return FALSE;
  by_id = g_hash_table_new_full (g_int64_hash, g_int64_equal, g_free, g_object_unref);
  while ((rc = sqlite3_step (stmt)) == SQLITE_ROW)
    {
      gint64 id = sqlite3_column_int64 (stmt, CONV_COL_ID);
      TesseraHistoryConversation *item = g_hash_table_lookup (self->by_id, &id);

      if (item != NULL)
        {
          g_object_ref (item);
          _tessera_history_conversation_update_from_row (item, stmt, self->data_dir);
        }
      else
        item = _tessera_history_conversation_new_from_row (stmt, self->data_dir);
      g_ptr_array_add (items, item);
      g_hash_table_insert (by_id, g_memdup2 (&id, sizeof id), g_object_ref (item));
    }
  if (rc != SQLITE_DONE)
    {
      _tessera_history_set_sqlite_error (self, error, rc, action);
      return FALSE;
    }

  g_hash_table_unref (self->by_id);
  self->by_id = g_steal_pointer (&by_id);
  g_list_store_splice (self->conversations, 0,
                       g_list_model_get_n_items (G_LIST_MODEL (self->conversations)),
                       items->pdata, items->len);
  return TRUE;
}

static gboolean
read_data_version (TesseraHistory *self, gint64 *version, GError **error)
{
  const char *action = _("Could not read the history.");
  g_autoptr(TesseraHistoryStmtUse) stmt =
    _tessera_history_stmt (self, STMT_DATA_VERSION, action, error);
  int rc;

  if (stmt == NULL)
    return FALSE;
  rc = sqlite3_step (stmt);
  if (rc != SQLITE_ROW)
    {
      _tessera_history_set_sqlite_error (self, error, rc, action);
      return FALSE;
    }
  *version = sqlite3_column_int64 (stmt, 0);
  return TRUE;
}

/* ==== Opening =========================================================== */

char *
tessera_history_dup_default_path (void)
{
  return g_build_filename (g_get_user_data_dir (), "tessera", "history.db", NULL);
}

/* Runs a statement of constant text (pragmas, which take no bound
 * parameters) and keeps the first column of its first row. */
static int
run_constant (sqlite3 *db, const char *sql, char **result)
{
  sqlite3_stmt *stmt = NULL;
  int rc = sqlite3_prepare_v2 (db, sql, -1, &stmt, NULL);

  if (rc == SQLITE_OK)
    {
      while ((rc = sqlite3_step (stmt)) == SQLITE_ROW)
        if (result != NULL && *result == NULL)
          *result = g_strdup ((const char *) sqlite3_column_text (stmt, 0));
      if (rc == SQLITE_DONE)
        rc = SQLITE_OK;
    }
  sqlite3_finalize (stmt);
  return rc;
}

static gboolean
tessera_history_initable_init (GInitable     *initable,
                               GCancellable  *cancellable,
                               GError       **error)
{
  TesseraHistory *self = TESSERA_HISTORY (initable);
  const char *action = _("Could not open the history.");
  gboolean read_only_flag = (self->flags & TESSERA_HISTORY_FLAGS_READ_ONLY) != 0;
  g_autofree char *journal_mode = NULL;
  int open_flags;
  int rc;

  g_return_val_if_fail (self->db == NULL, FALSE);

  self->owner = g_thread_self ();
  if (self->path == NULL)
    self->path = tessera_history_dup_default_path ();
  self->data_dir = g_path_get_dirname (self->path);

  if (!read_only_flag && g_mkdir_with_parents (self->data_dir, 0700) != 0)
    {
      int saved_errno = errno;
      g_autoptr(GError) cause = g_error_new_literal (G_FILE_ERROR,
                                                     g_file_error_from_errno (saved_errno),
                                                     g_strerror (saved_errno));
      _tessera_history_set_file_error (self, error, cause, action);
      return FALSE;
    }

  /* NOMUTEX: an instance is used from one thread (see the header). */
  open_flags = (read_only_flag ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE) |
               SQLITE_OPEN_NOMUTEX;
  rc = sqlite3_open_v2 (self->path, &self->db, open_flags, NULL);
  if (rc != SQLITE_OK)
    {
      _tessera_history_set_sqlite_error (self, error, rc, action);
      return FALSE;
    }
  sqlite3_extended_result_codes (self->db, 1);
  sqlite3_busy_timeout (self->db, (int) self->busy_timeout);
  /* SQLite opens a file it may not write read-only without saying so. */
  self->read_only = read_only_flag || sqlite3_db_readonly (self->db, "main") == 1;

  rc = _tessera_history_register_tokenizer (self->db);
  if (rc == SQLITE_OK)
    rc = run_constant (self->db, "PRAGMA foreign_keys = ON", NULL);
  if (rc != SQLITE_OK)
    {
      _tessera_history_set_sqlite_error (self, error, rc, action);
      return FALSE;
    }
  /* Reads first, so that a file that is not a database, another program's
   * database or a newer history is left byte for byte as it was. A file
   * locked by another program fails here too. */
  if (!_tessera_history_check_schema (self, error))
    return FALSE;
  if (!self->read_only)
    rc = run_constant (self->db, "PRAGMA journal_mode = WAL", &journal_mode);
  if (rc == SQLITE_OK && !self->read_only)
    rc = run_constant (self->db, "PRAGMA synchronous = FULL", NULL);
  if (rc != SQLITE_OK)
    {
      _tessera_history_set_sqlite_error (self, error, rc, action);
      return FALSE;
    }
  /* Some file systems (network shares) cannot hold a WAL; the rollback
   * journal is as safe, only slower. */
  if (journal_mode != NULL && g_ascii_strcasecmp (journal_mode, "wal") != 0)
    g_debug ("%s: journal mode is %s, not WAL", self->path, journal_mode);

  if (!_tessera_history_migrate (self, error))
    return FALSE;
  if (!read_data_version (self, &self->data_version, error))
    return FALSE;
  return reload_conversations (self, error);
}

static void
tessera_history_initable_iface_init (GInitableIface *iface)
{
  iface->init = tessera_history_initable_init;
}

TesseraHistory *
tessera_history_new (const char *path, TesseraHistoryFlags flags, GError **error)
{
  return g_initable_new (TESSERA_TYPE_HISTORY, NULL, error,
                         "path", path,
                         "flags", (guint) flags,
                         NULL);
}

const char *
tessera_history_get_path (TesseraHistory *self)
{
  g_return_val_if_fail (TESSERA_IS_HISTORY (self), NULL);
  return self->path;
}

gboolean
tessera_history_is_read_only (TesseraHistory *self)
{
  g_return_val_if_fail (TESSERA_IS_HISTORY (self), TRUE);
  return self->read_only;
}

GListModel *
tessera_history_get_conversations (TesseraHistory *self)
{
  g_return_val_if_fail (TESSERA_IS_HISTORY (self), NULL);
  return G_LIST_MODEL (self->conversations);
}

TesseraHistoryConversation *
tessera_history_lookup_conversation (TesseraHistory *self, gint64 id)
{
  g_return_val_if_fail (TESSERA_IS_HISTORY (self), NULL);
  return self->by_id != NULL ? g_hash_table_lookup (self->by_id, &id) : NULL;
}

gboolean
tessera_history_refresh (TesseraHistory *self, GError **error)
{
  gint64 version;

  g_return_val_if_fail (TESSERA_IS_HISTORY (self), FALSE);
  HISTORY_CHECK_THREAD (self, FALSE);

  if (!read_data_version (self, &version, error))
    return FALSE;
  if (version == self->data_version)
    return TRUE;
  if (!reload_conversations (self, error))
    return FALSE;
  self->data_version = version;
  return TRUE;
}

/* ==== Conversations ===================================================== */

TesseraHistoryConversation *
tessera_history_add_conversation (TesseraHistory  *self,
                                  GBytes          *image_bytes,
                                  const char      *image_name,
                                  GdkPixbuf       *pixbuf,
                                  int              hd_num,
                                  const char      *model_name,
                                  gint64           model_size,
                                  GError         **error)
{
  const char *action = _("Could not save the conversation.");
  TesseraHistoryImage image = { { 0 }, NULL, 0, 0, 0 };
  TesseraHistoryConversation *item;
  gint64 id;

  g_return_val_if_fail (TESSERA_IS_HISTORY (self), NULL);
  g_return_val_if_fail (pixbuf == NULL || GDK_IS_PIXBUF (pixbuf), NULL);
  g_return_val_if_fail (hd_num >= 0, NULL);
  HISTORY_CHECK_THREAD (self, NULL);

  if (!check_writable (self, action, error))
    return NULL;
  if (image_bytes != NULL &&
      !_tessera_history_store_image (self, image_bytes, image_name, pixbuf, &image, error))
    return NULL;

  if (!_tessera_history_begin (self, action, error))
    goto fail;
  if (image_bytes != NULL)
    {
      g_autoptr(TesseraHistoryStmtUse) stmt =
        _tessera_history_stmt (self, STMT_INSERT_IMAGE, action, error);
      g_autofree char *name = g_utf8_make_valid (image_name != NULL ? image_name : "", -1);

      if (stmt == NULL)
        goto fail;
      sqlite3_bind_text (stmt, 1, image.sha256, -1, SQLITE_STATIC);
      sqlite3_bind_text (stmt, 2, name, -1, SQLITE_STATIC);
      sqlite3_bind_int (stmt, 3, image.width);
      sqlite3_bind_int (stmt, 4, image.height);
      sqlite3_bind_int64 (stmt, 5, image.bytes);
      sqlite3_bind_text (stmt, 6, image.stored_path, -1, SQLITE_STATIC);
      if (step_changes (self, stmt, action, error) < 0)
        goto fail;
    }
  {
    g_autoptr(TesseraHistoryStmtUse) stmt =
      _tessera_history_stmt (self, STMT_INSERT_CONVERSATION, action, error);
    g_autofree char *model = model_name != NULL ? g_utf8_make_valid (model_name, -1) : NULL;

    if (stmt == NULL)
      goto fail;
    sqlite3_bind_int64 (stmt, 1, g_get_real_time ());
    if (image_bytes != NULL)
      sqlite3_bind_text (stmt, 2, image.sha256, -1, SQLITE_STATIC);
    sqlite3_bind_int (stmt, 3, hd_num);
    if (model != NULL)
      sqlite3_bind_text (stmt, 4, model, -1, SQLITE_STATIC);
    if (model_size > 0)
      sqlite3_bind_int64 (stmt, 5, model_size);
    if (step_changes (self, stmt, action, error) < 0)
      goto fail;
    id = sqlite3_last_insert_rowid (self->db);
  }
  if (!_tessera_history_commit (self, action, error))
    goto fail;

  if (image_bytes != NULL)
    _tessera_history_restore_image_file (self, image_bytes, &image);
  g_free (image.stored_path);

  item = sync_item (self, id);
  if (item == NULL)
    {
      /* Deleted by another instance in the instant since the commit. */
      set_not_found (error, action);
      return NULL;
    }
  return g_object_ref (item);

fail:
  _tessera_history_rollback (self);
  g_free (image.stored_path);
  return NULL;
}

TesseraHistoryConversation *
tessera_history_add_conversation_for_file (TesseraHistory  *self,
                                           GFile           *image,
                                           GdkPixbuf       *pixbuf,
                                           int              hd_num,
                                           const char      *model_name,
                                           gint64           model_size,
                                           GCancellable    *cancellable,
                                           GError         **error)
{
  g_autoptr(GError) local = NULL;
  g_autoptr(GBytes) bytes = NULL;
  g_autofree char *basename = NULL;
  g_autofree char *name = NULL;

  g_return_val_if_fail (TESSERA_IS_HISTORY (self), NULL);
  g_return_val_if_fail (G_IS_FILE (image), NULL);

  basename = g_file_get_basename (image);
  name = g_filename_display_name (basename != NULL ? basename : "");
  bytes = g_file_load_bytes (image, cancellable, NULL, &local);
  if (bytes == NULL)
    {
      g_set_error (error, G_IO_ERROR, local->domain == G_IO_ERROR ? local->code : G_IO_ERROR_FAILED,
                   _("Could not open “%s”: %s"), name, local->message);
      return NULL;
    }
  return tessera_history_add_conversation (self, bytes, name, pixbuf, hd_num, model_name,
                                           model_size, error);
}

gboolean
tessera_history_rename_conversation (TesseraHistory  *self,
                                     gint64           conversation_id,
                                     const char      *title,
                                     GError         **error)
{
  const char *action = _("Could not rename the conversation.");
  g_autofree char *clean = NULL;
  int changed = -1;

  g_return_val_if_fail (TESSERA_IS_HISTORY (self), FALSE);
  g_return_val_if_fail (title != NULL, FALSE);
  HISTORY_CHECK_THREAD (self, FALSE);

  clean = g_strstrip (g_utf8_make_valid (title, -1));
  if (*clean == '\0')
    {
      _tessera_history_set_error (error, TESSERA_HISTORY_ERROR, TESSERA_HISTORY_ERROR_INVALID, action,
                   _("A title cannot be empty. Type a title, then try again."));
      return FALSE;
    }
  if (!check_writable (self, action, error) || !_tessera_history_begin (self, action, error))
    return FALSE;
  {
    g_autoptr(TesseraHistoryStmtUse) stmt =
      _tessera_history_stmt (self, STMT_RENAME_CONVERSATION, action, error);
    if (stmt == NULL)
      goto fail;
    sqlite3_bind_int64 (stmt, 1, conversation_id);
    sqlite3_bind_text (stmt, 2, clean, -1, SQLITE_STATIC);
    changed = step_changes (self, stmt, action, error);
  }
  if (changed < 0)
    goto fail;
  if (changed == 0)
    {
      set_not_found (error, action);
      goto fail;
    }
  if (!_tessera_history_commit (self, action, error))
    goto fail;
  sync_item (self, conversation_id);
  return TRUE;

fail:
  _tessera_history_rollback (self);
  return FALSE;
}

static gboolean
set_deleted (TesseraHistory *self, gint64 conversation_id, gboolean deleted, GError **error)
{
  const char *action = deleted ? _("Could not delete the conversation.")
                               : _("Could not restore the conversation.");
  int changed = -1;

  if (!check_writable (self, action, error) || !_tessera_history_begin (self, action, error))
    return FALSE;
  {
    g_autoptr(TesseraHistoryStmtUse) stmt =
      _tessera_history_stmt (self, deleted ? STMT_DELETE_CONVERSATION : STMT_UNDELETE_CONVERSATION,
                             action, error);
    if (stmt == NULL)
      goto fail;
    sqlite3_bind_int64 (stmt, 1, conversation_id);
    if (deleted)
      sqlite3_bind_int64 (stmt, 2, g_get_real_time ());
    changed = step_changes (self, stmt, action, error);
  }
  if (changed < 0)
    goto fail;
  if (changed == 0)
    {
      set_not_found (error, action);
      goto fail;
    }
  if (!_tessera_history_commit (self, action, error))
    goto fail;
  if (deleted)
    forget_item (self, conversation_id);
  else
    sync_item (self, conversation_id);
  return TRUE;

fail:
  _tessera_history_rollback (self);
  return FALSE;
}

gboolean
tessera_history_delete_conversation (TesseraHistory  *self,
                                     gint64           conversation_id,
                                     GError         **error)
{
  g_return_val_if_fail (TESSERA_IS_HISTORY (self), FALSE);
  HISTORY_CHECK_THREAD (self, FALSE);
  return set_deleted (self, conversation_id, TRUE, error);
}

gboolean
tessera_history_undelete_conversation (TesseraHistory  *self,
                                       gint64           conversation_id,
                                       GError         **error)
{
  g_return_val_if_fail (TESSERA_IS_HISTORY (self), FALSE);
  HISTORY_CHECK_THREAD (self, FALSE);
  return set_deleted (self, conversation_id, FALSE, error);
}

static void
remove_file (const char *path)
{
  if (g_unlink (path) != 0 && errno != ENOENT)
    g_warning ("Could not remove %s: %s", path, g_strerror (errno));
}

gboolean
tessera_history_purge (TesseraHistory *self, GTimeSpan min_age, GError **error)
{
  const char *action = _("Could not clean up deleted conversations.");
  g_autoptr(GPtrArray) files = g_ptr_array_new_with_free_func (g_free);
  int rc;

  g_return_val_if_fail (TESSERA_IS_HISTORY (self), FALSE);
  g_return_val_if_fail (min_age >= 0, FALSE);
  HISTORY_CHECK_THREAD (self, FALSE);

  if (!check_writable (self, action, error) || !_tessera_history_begin (self, action, error))
    return FALSE;
  {
    g_autoptr(TesseraHistoryStmtUse) stmt =
      _tessera_history_stmt (self, STMT_PURGE_CONVERSATIONS, action, error);
    if (stmt == NULL)
      goto fail;
    sqlite3_bind_int64 (stmt, 1, g_get_real_time () - min_age);
    if (step_changes (self, stmt, action, error) < 0)
      goto fail;
  }
  {
    g_autoptr(TesseraHistoryStmtUse) stmt =
      _tessera_history_stmt (self, STMT_PURGE_IMAGES, action, error);
    if (stmt == NULL)
      goto fail;
    while ((rc = sqlite3_step (stmt)) == SQLITE_ROW)
      {
        const char *sha = (const char *) sqlite3_column_text (stmt, 0);
        const char *stored = (const char *) sqlite3_column_text (stmt, 1);
        if (stored != NULL)
          g_ptr_array_add (files, g_build_filename (self->data_dir, stored, NULL));
        if (sha != NULL)
          g_ptr_array_add (files, _tessera_history_thumbnail_path (self, sha));
      }
    if (rc != SQLITE_DONE)
      {
        _tessera_history_set_sqlite_error (self, error, rc, action);
        goto fail;
      }
  }
  if (!_tessera_history_commit (self, action, error))
    goto fail;

  /* Only once the rows are gone for good: a crash before this point leaves
   * files nobody refers to, never a row without its file. */
  for (guint i = 0; i < files->len; i++)
    remove_file (files->pdata[i]);
  return TRUE;

fail:
  _tessera_history_rollback (self);
  return FALSE;
}

/* ==== Messages ========================================================== */

char *
_tessera_history_title_from_question (const char *question)
{
  const glong max_chars = 60;
  g_autoptr(GString) title = g_string_new (NULL);
  gboolean space = FALSE;
  glong n_chars = 0;
  const char *p;

  /* The first line that has something on it, its spaces collapsed. */
  for (p = question; *p != '\0'; p = g_utf8_next_char (p))
    {
      gunichar c = g_utf8_get_char (p);
      if (c == '\n' || c == '\r')
        {
          if (title->len > 0)
            break;
          continue;
        }
      if (g_unichar_isspace (c))
        {
          space = title->len > 0;
          continue;
        }
      if (space)
        {
          g_string_append_c (title, ' ');
          n_chars++;
          space = FALSE;
        }
      g_string_append_unichar (title, c);
      n_chars++;
    }

  if (n_chars > max_chars)
    {
      const char *cut = g_utf8_offset_to_pointer (title->str, max_chars - 1);
      const char *space_at = g_utf8_strrchr (title->str, cut - title->str, ' ');

      /* Break at a word unless that throws away most of the line (as it
       * would in Chinese or Japanese, which have no spaces). */
      if (space_at != NULL && g_utf8_pointer_to_offset (title->str, space_at) > max_chars / 2)
        cut = space_at;
      g_string_truncate (title, cut - title->str);
      g_string_append (title, "…");
    }
  return g_string_free (g_steal_pointer (&title), FALSE);
}

gint64
tessera_history_append_message (TesseraHistory      *self,
                                gint64               conversation_id,
                                TesseraHistoryRole   role,
                                const char          *text,
                                int                  hd_num,
                                GError             **error)
{
  const char *action = _("Could not save the message.");
  g_autofree char *valid = NULL;
  g_autofree char *title = NULL;
  gint64 now = g_get_real_time ();
  gint64 id;
  int rc;

  g_return_val_if_fail (TESSERA_IS_HISTORY (self), 0);
  g_return_val_if_fail (role == TESSERA_HISTORY_ROLE_USER || role == TESSERA_HISTORY_ROLE_ASSISTANT, 0);
  g_return_val_if_fail (text != NULL, 0);
  g_return_val_if_fail (hd_num >= 0, 0);
  HISTORY_CHECK_THREAD (self, 0);

  /* Streamed text can end inside a character; the database holds UTF-8. */
  valid = g_utf8_make_valid (text, -1);
  if (role == TESSERA_HISTORY_ROLE_USER)
    title = _tessera_history_title_from_question (valid);

  if (!check_writable (self, action, error) || !_tessera_history_begin (self, action, error))
    return 0;
  {
    g_autoptr(TesseraHistoryStmtUse) stmt =
      _tessera_history_stmt (self, STMT_CONVERSATION_ALIVE, action, error);
    if (stmt == NULL)
      goto fail;
    sqlite3_bind_int64 (stmt, 1, conversation_id);
    rc = sqlite3_step (stmt);
    if (rc == SQLITE_DONE)
      {
        set_not_found (error, action);
        goto fail;
      }
    if (rc != SQLITE_ROW)
      {
        _tessera_history_set_sqlite_error (self, error, rc, action);
        goto fail;
      }
  }
  {
    g_autoptr(TesseraHistoryStmtUse) stmt =
      _tessera_history_stmt (self, STMT_INSERT_MESSAGE, action, error);
    if (stmt == NULL)
      goto fail;
    sqlite3_bind_int64 (stmt, 1, conversation_id);
    sqlite3_bind_text (stmt, 2, role == TESSERA_HISTORY_ROLE_USER ? "user" : "assistant", -1,
                       SQLITE_STATIC);
    sqlite3_bind_text (stmt, 3, valid, -1, SQLITE_STATIC);
    sqlite3_bind_int64 (stmt, 4, now);
    sqlite3_bind_int (stmt, 5, hd_num);
    sqlite3_bind_int (stmt, 6, role == TESSERA_HISTORY_ROLE_USER);
    if (step_changes (self, stmt, action, error) < 0)
      goto fail;
    id = sqlite3_last_insert_rowid (self->db);
  }
  {
    g_autoptr(TesseraHistoryStmtUse) stmt =
      _tessera_history_stmt (self, STMT_TOUCH_CONVERSATION, action, error);
    if (stmt == NULL)
      goto fail;
    sqlite3_bind_int64 (stmt, 1, conversation_id);
    sqlite3_bind_int64 (stmt, 2, now);
    sqlite3_bind_int (stmt, 3, hd_num);
    if (title != NULL && *title != '\0')
      sqlite3_bind_text (stmt, 4, title, -1, SQLITE_STATIC);
    if (step_changes (self, stmt, action, error) < 0)
      goto fail;
  }
  if (!_tessera_history_commit (self, action, error))
    goto fail;
  sync_item (self, conversation_id);
  return id;

fail:
  _tessera_history_rollback (self);
  return 0;
}

gboolean
tessera_history_update_message_text (TesseraHistory  *self,
                                     gint64           message_id,
                                     const char      *text,
                                     GError         **error)
{
  const char *action = _("Could not save the message.");
  g_autofree char *valid = NULL;
  gboolean ok = FALSE;
  int changed = -1;

  g_return_val_if_fail (TESSERA_IS_HISTORY (self), FALSE);
  g_return_val_if_fail (text != NULL, FALSE);
  HISTORY_CHECK_THREAD (self, FALSE);

  valid = g_utf8_make_valid (text, -1);
  if (!check_writable (self, action, error))
    return FALSE;

  /* A partial answer is replaced a second later: this commit need not wait
   * for the disk, and the final one (synchronous again) flushes it too.
   * Killing the process loses nothing either way; a power cut may lose
   * the last second of a streaming answer. */
  if (run_constant (self->db, "PRAGMA synchronous = NORMAL", NULL) != SQLITE_OK)
    g_debug ("PRAGMA synchronous = NORMAL: %s", sqlite3_errmsg (self->db));

  if (!_tessera_history_begin (self, action, error))
    goto out;
  {
    g_autoptr(TesseraHistoryStmtUse) stmt =
      _tessera_history_stmt (self, STMT_UPDATE_MESSAGE_TEXT, action, error);
    if (stmt == NULL)
      goto out;
    sqlite3_bind_int64 (stmt, 1, message_id);
    sqlite3_bind_text (stmt, 2, valid, -1, SQLITE_STATIC);
    changed = step_changes (self, stmt, action, error);
  }
  if (changed < 0)
    goto out;
  if (changed == 0)
    {
      set_not_found (error, action);
      goto out;
    }
  ok = _tessera_history_commit (self, action, error);

out:
  if (!ok)
    _tessera_history_rollback (self);
  if (run_constant (self->db, "PRAGMA synchronous = FULL", NULL) != SQLITE_OK)
    g_debug ("PRAGMA synchronous = FULL: %s", sqlite3_errmsg (self->db));
  return ok;
}

static void
bind_speed (sqlite3_stmt *stmt, int index, double speed)
{
  /* NaN or infinity from a zero-length measurement is "not measured". */
  if (isfinite (speed) && speed > 0)
    sqlite3_bind_double (stmt, index, speed);
  else
    sqlite3_bind_null (stmt, index);
}

gboolean
tessera_history_finish_message (TesseraHistory               *self,
                                gint64                        message_id,
                                const char                   *text,
                                const TesseraHistoryTimings  *timings,
                                gboolean                      stopped,
                                GError                      **error)
{
  const char *action = _("Could not save the message.");
  g_autofree char *valid = NULL;
  gint64 conversation_id = 0;
  int changed = -1;
  int rc;

  g_return_val_if_fail (TESSERA_IS_HISTORY (self), FALSE);
  g_return_val_if_fail (text != NULL, FALSE);
  HISTORY_CHECK_THREAD (self, FALSE);

  valid = g_utf8_make_valid (text, -1);
  if (!check_writable (self, action, error) || !_tessera_history_begin (self, action, error))
    return FALSE;
  {
    g_autoptr(TesseraHistoryStmtUse) stmt =
      _tessera_history_stmt (self, STMT_FINISH_MESSAGE, action, error);
    if (stmt == NULL)
      goto fail;
    sqlite3_bind_int64 (stmt, 1, message_id);
    sqlite3_bind_text (stmt, 2, valid, -1, SQLITE_STATIC);
    if (timings != NULL && timings->n_tokens > 0)
      sqlite3_bind_int (stmt, 3, timings->n_tokens);
    if (timings != NULL)
      {
        bind_speed (stmt, 4, timings->prefill_speed);
        bind_speed (stmt, 5, timings->decode_speed);
      }
    sqlite3_bind_int (stmt, 6, stopped ? 1 : 0);
    changed = step_changes (self, stmt, action, error);
  }
  if (changed < 0)
    goto fail;
  if (changed == 0)
    {
      set_not_found (error, action);
      goto fail;
    }
  {
    g_autoptr(TesseraHistoryStmtUse) stmt =
      _tessera_history_stmt (self, STMT_MESSAGE_CONVERSATION, action, error);
    if (stmt == NULL)
      goto fail;
    sqlite3_bind_int64 (stmt, 1, message_id);
    rc = sqlite3_step (stmt);
    if (rc != SQLITE_ROW)
      {
        _tessera_history_set_sqlite_error (self, error, rc, action);
        goto fail;
      }
    conversation_id = sqlite3_column_int64 (stmt, 0);
  }
  {
    g_autoptr(TesseraHistoryStmtUse) stmt =
      _tessera_history_stmt (self, STMT_TOUCH_CONVERSATION, action, error);
    if (stmt == NULL)
      goto fail;
    sqlite3_bind_int64 (stmt, 1, conversation_id);
    sqlite3_bind_int64 (stmt, 2, g_get_real_time ());
    sqlite3_bind_int (stmt, 3, 0);
    if (step_changes (self, stmt, action, error) < 0)
      goto fail;
  }
  if (!_tessera_history_commit (self, action, error))
    goto fail;
  sync_item (self, conversation_id);
  return TRUE;

fail:
  _tessera_history_rollback (self);
  return FALSE;
}

GPtrArray *
tessera_history_list_messages (TesseraHistory  *self,
                               gint64           conversation_id,
                               GError         **error)
{
  const char *action = _("Could not read the history.");
  g_autoptr(GPtrArray) messages = NULL;
  g_autoptr(TesseraHistoryStmtUse) stmt = NULL;
  int rc;

  g_return_val_if_fail (TESSERA_IS_HISTORY (self), NULL);
  HISTORY_CHECK_THREAD (self, NULL);

  stmt = _tessera_history_stmt (self, STMT_LIST_MESSAGES, action, error);
  if (stmt == NULL)
    return NULL;
  messages = g_ptr_array_new_with_free_func (g_object_unref);
  sqlite3_bind_int64 (stmt, 1, conversation_id);
  while ((rc = sqlite3_step (stmt)) == SQLITE_ROW)
    g_ptr_array_add (messages, _tessera_history_message_new_from_row (stmt));
  if (rc != SQLITE_DONE)
    {
      _tessera_history_set_sqlite_error (self, error, rc, action);
      return NULL;
    }
  return g_steal_pointer (&messages);
}

/* ==== Search ============================================================ */

/* The person's words as an FTS5 query in which nothing is syntax: each
 * word becomes a quoted string (inner quotes doubled) matched as a
 * prefix, and the words are ANDed. Words without a letter or digit would
 * make empty phrases and are dropped. NULL if no word is left. */
static char *
build_match (const char *query)
{
  g_autoptr(GString) match = g_string_new (NULL);
  g_auto(GStrv) words = NULL;
  g_autofree char *valid = g_utf8_make_valid (query, -1);
  char *p;

  /* Every kind of space separates words, not only ASCII ones. */
  for (p = valid; *p != '\0'; p = g_utf8_next_char (p))
    if (g_unichar_isspace (g_utf8_get_char (p)))
      {
        /* Spaces above U+007F are wider than one byte; blank them all. */
        char *next = g_utf8_next_char (p);
        memset (p, ' ', next - p);
        p = next - 1;
      }
  words = g_strsplit (valid, " ", -1);

  for (guint i = 0; words[i] != NULL; i++)
    {
      gboolean has_word_char = FALSE;

      for (const char *q = words[i]; *q != '\0' && !has_word_char; q = g_utf8_next_char (q))
        has_word_char = g_unichar_isalnum (g_utf8_get_char (q));
      if (!has_word_char)
        continue;

      if (match->len > 0)
        g_string_append_c (match, ' ');
      g_string_append_c (match, '"');
      for (const char *q = words[i]; *q != '\0'; q++)
        {
          if (*q == '"')
            g_string_append_c (match, '"');
          g_string_append_c (match, *q);
        }
      g_string_append (match, "\"*");
    }
  return match->len > 0 ? g_string_free (g_steal_pointer (&match), FALSE) : NULL;
}

static void
fill_snippet (TesseraHistoryHit *hit, const char *raw)
{
  g_autoptr(GString) plain = g_string_new (NULL);
  g_autoptr(GString) markup = g_string_new (NULL);
  const char *p = raw != NULL ? raw : "";

  while (*p != '\0')
    {
      size_t run = strcspn (p, "\002\003\n\r\t");
      if (run > 0)
        {
          g_autofree char *escaped = g_markup_escape_text (p, run);
          g_string_append_len (plain, p, run);
          g_string_append (markup, escaped);
          p += run;
          continue;
        }
      switch (*p)
        {
        case '\002':
          g_string_append (markup, "<b>");
          break;
        case '\003':
          g_string_append (markup, "</b>");
          break;
        default:
          /* A result line is one line. */
          if (plain->len > 0 && plain->str[plain->len - 1] != ' ')
            {
              g_string_append_c (plain, ' ');
              g_string_append_c (markup, ' ');
            }
          break;
        }
      p++;
    }
  hit->snippet = g_string_free (g_steal_pointer (&plain), FALSE);
  hit->snippet_markup = g_string_free (g_steal_pointer (&markup), FALSE);
}

GPtrArray *
tessera_history_search (TesseraHistory  *self,
                        const char      *query,
                        guint            limit,
                        GError         **error)
{
  const char *action = _("Could not search the history.");
  g_autoptr(GPtrArray) hits = NULL;
  g_autoptr(GHashTable) seen = NULL;
  g_autoptr(TesseraHistoryStmtUse) stmt = NULL;
  g_autofree char *match = NULL;
  int rc;

  g_return_val_if_fail (TESSERA_IS_HISTORY (self), NULL);
  g_return_val_if_fail (query != NULL, NULL);
  HISTORY_CHECK_THREAD (self, NULL);

  hits = g_ptr_array_new_with_free_func ((GDestroyNotify) tessera_history_hit_free);
  match = build_match (query);
  if (match == NULL || limit == 0)
    return g_steal_pointer (&hits);

  stmt = _tessera_history_stmt (self, STMT_SEARCH, action, error);
  if (stmt == NULL)
    return NULL;
  sqlite3_bind_text (stmt, 1, match, -1, SQLITE_STATIC);
  seen = g_hash_table_new_full (g_int64_hash, g_int64_equal, g_free, NULL);
  while ((rc = sqlite3_step (stmt)) == SQLITE_ROW)
    {
      gint64 conversation_id = sqlite3_column_int64 (stmt, 0);
      TesseraHistoryHit *hit;

      /* Rows come best first: the first of each conversation is its best. */
      if (g_hash_table_contains (seen, &conversation_id))
        continue;
      g_hash_table_add (seen, g_memdup2 (&conversation_id, sizeof conversation_id));

      hit = g_new0 (TesseraHistoryHit, 1);
      hit->conversation_id = conversation_id;
      hit->message_id = sqlite3_column_int64 (stmt, 1);
      fill_snippet (hit, (const char *) sqlite3_column_text (stmt, 2));
      g_ptr_array_add (hits, hit);
      if (hits->len >= limit)
        {
          rc = SQLITE_DONE;
          break;
        }
    }
  if (rc != SQLITE_DONE)
    {
      _tessera_history_set_sqlite_error (self, error, rc, action);
      return NULL;
    }
  return g_steal_pointer (&hits);
}

/* ==== Checking ========================================================== */

gboolean
tessera_history_verify (TesseraHistory *self, GError **error)
{
  const char *action = _("The history failed its check.");
  g_autofree char *result = NULL;
  int rc;

  g_return_val_if_fail (TESSERA_IS_HISTORY (self), FALSE);
  HISTORY_CHECK_THREAD (self, FALSE);

  rc = run_constant (self->db, "PRAGMA integrity_check", &result);
  if (rc != SQLITE_OK)
    {
      _tessera_history_set_sqlite_error (self, error, rc, action);
      return FALSE;
    }
  if (g_strcmp0 (result, "ok") != 0)
    {
      g_autofree char *name = g_filename_display_name (self->path);
      g_set_error (error, TESSERA_HISTORY_ERROR, TESSERA_HISTORY_ERROR_CORRUPT,
                   _("The history “%s” is damaged (%s). Keep a copy of the file before you "
                     "change anything."), name, result != NULL ? result : "?");
      return FALSE;
    }
  /* The index check is written as an INSERT, which a read-only connection
   * refuses even though nothing is written. */
  if (!self->read_only)
    {
      rc = run_constant (self->db,
                        "INSERT INTO messages_fts (messages_fts) VALUES ('integrity-check')",
                        NULL);
      if (rc != SQLITE_OK)
        {
          _tessera_history_set_sqlite_error (self, error, rc, action);
          return FALSE;
        }
    }
  return TRUE;
}
