/* SPDX-License-Identifier: GPL-3.0-or-later
 *
 * tessera-history-private.h — what the files of TesseraHistory share:
 * the connection, the statement cache, error reporting, and the
 * constructors of the list items.
 */
#pragma once

#include <sqlite3.h>

#include "tessera-history.h"

G_BEGIN_DECLS

/* Every statement the store runs, prepared once per connection. */
typedef enum {
  STMT_BEGIN,
  STMT_COMMIT,
  STMT_ROLLBACK,
  STMT_LIST_CONVERSATIONS,
  STMT_GET_CONVERSATION,
  STMT_FIND_IMAGE,
  STMT_INSERT_IMAGE,
  STMT_INSERT_CONVERSATION,
  STMT_CONVERSATION_ALIVE,
  STMT_INSERT_MESSAGE,
  STMT_TOUCH_CONVERSATION,
  STMT_UPDATE_MESSAGE_TEXT,
  STMT_FINISH_MESSAGE,
  STMT_MESSAGE_CONVERSATION,
  STMT_LIST_MESSAGES,
  STMT_RENAME_CONVERSATION,
  STMT_DELETE_CONVERSATION,
  STMT_UNDELETE_CONVERSATION,
  STMT_PURGE_CONVERSATIONS,
  STMT_PURGE_IMAGES,
  STMT_SEARCH,
  STMT_DATA_VERSION,
  N_STMTS
} TesseraHistoryStmt;

/* Columns of STMT_LIST_CONVERSATIONS and STMT_GET_CONVERSATION. */
enum {
  CONV_COL_ID,
  CONV_COL_TITLE,
  CONV_COL_CREATED,
  CONV_COL_UPDATED,
  CONV_COL_HD_NUM,
  CONV_COL_MODEL_NAME,
  CONV_COL_MODEL_SIZE,
  CONV_COL_IMAGE_SHA256,
  CONV_COL_IMAGE_NAME,
  CONV_COL_IMAGE_WIDTH,
  CONV_COL_IMAGE_HEIGHT,
  CONV_COL_IMAGE_BYTES,
  CONV_COL_IMAGE_PATH,
};

/* Columns of STMT_LIST_MESSAGES. */
enum {
  MSG_COL_ID,
  MSG_COL_CONVERSATION_ID,
  MSG_COL_ROLE,
  MSG_COL_TEXT,
  MSG_COL_CREATED,
  MSG_COL_HD_NUM,
  MSG_COL_N_TOKENS,
  MSG_COL_PREFILL_SPEED,
  MSG_COL_DECODE_SPEED,
  MSG_COL_STOPPED,
  MSG_COL_FINISHED,
};

struct _TesseraHistory
{
  GObject              parent_instance;

  char                *path;          /* history.db */
  char                *data_dir;      /* its folder: images/, thumbnails/ */
  TesseraHistoryFlags  flags;
  guint                busy_timeout;  /* ms */

  sqlite3             *db;
  sqlite3_stmt        *stmts[N_STMTS];
  GThread             *owner;
  gint64               data_version;

  GListStore          *conversations;
  GHashTable          *by_id;         /* gint64* → TesseraHistoryConversation (in the list) */

  guint                read_only : 1;
};

/* A statement in use: reset when it goes out of scope, so that no
 * half-read SELECT keeps a read transaction (and the WAL) open. */
typedef sqlite3_stmt TesseraHistoryStmtUse;
static inline void
tessera_history_stmt_release (TesseraHistoryStmtUse *stmt)
{
  sqlite3_reset (stmt);
  sqlite3_clear_bindings (stmt);
}
G_DEFINE_AUTOPTR_CLEANUP_FUNC (TesseraHistoryStmtUse, tessera_history_stmt_release)

/* A public function called from a thread that does not own the instance
 * is a programming error, caught in debug builds. */
#define HISTORY_CHECK_THREAD(self, val) \
  g_return_val_if_fail ((self)->owner == g_thread_self (), (val))

/* Sets error from a failed SQLite call: the kind of failure picks the code
 * and the advice; action is a translated sentence saying what could not
 * be done ("Could not save the message."). */
void          _tessera_history_set_sqlite_error (TesseraHistory  *self,
                                                 GError         **error,
                                                 int              rc,
                                                 const char      *action);
/* "ACTION REASON": the sentence saying what could not be done, then the
 * one saying why and what to do (a format). */
void          _tessera_history_set_error        (GError         **error,
                                                 GQuark           domain,
                                                 int              code,
                                                 const char      *action,
                                                 const char      *reason_format,
                                                 ...) G_GNUC_PRINTF (5, 6);
/* The same for a failed file operation in the data folder. */
void          _tessera_history_set_file_error   (TesseraHistory  *self,
                                                 GError         **error,
                                                 const GError    *cause,
                                                 const char      *action);

/* A prepared statement, reset with its bindings cleared; NULL and error
 * set if it cannot be prepared. */
sqlite3_stmt *_tessera_history_stmt             (TesseraHistory      *self,
                                                 TesseraHistoryStmt   which,
                                                 const char          *action,
                                                 GError             **error);

/* BEGIN IMMEDIATE (a write transaction from the start, so a busy database
 * is waited for rather than failing halfway), COMMIT, ROLLBACK. */
gboolean      _tessera_history_begin            (TesseraHistory  *self,
                                                 const char      *action,
                                                 GError         **error);
gboolean      _tessera_history_commit           (TesseraHistory  *self,
                                                 const char      *action,
                                                 GError         **error);
void          _tessera_history_rollback         (TesseraHistory  *self);

/* Schema: tessera-history-schema.c. The check only reads: whether the
 * file is an empty database or Tessera's, of a version this build knows.
 * Migrating brings it to TESSERA_HISTORY_SCHEMA_VERSION, one transaction
 * per migration. */
gboolean      _tessera_history_check_schema     (TesseraHistory  *self,
                                                 GError         **error);
gboolean      _tessera_history_migrate          (TesseraHistory  *self,
                                                 GError         **error);

/* The FTS5 tokenizer "tessera": tessera-history-tokenizer.c. */
int           _tessera_history_register_tokenizer (sqlite3 *db);

/* Images: tessera-history-images.c. Writes images/<sha>.<ext> and
 * thumbnails/<sha>.png unless present, and fills in what the images table
 * records. */
typedef struct {
  char   sha256[65];
  char  *stored_path;    /* relative to data_dir */
  int    width, height;
  gint64 bytes;
} TesseraHistoryImage;

gboolean      _tessera_history_store_image      (TesseraHistory       *self,
                                                 GBytes               *bytes,
                                                 const char           *name,
                                                 GdkPixbuf            *pixbuf,
                                                 TesseraHistoryImage  *out,
                                                 GError              **error);
/* Rewrites a stored image whose file went missing after its row was
 * written (a purge by another instance racing with this add). */
void          _tessera_history_restore_image_file (TesseraHistory     *self,
                                                 GBytes               *bytes,
                                                 const TesseraHistoryImage *image);
char         *_tessera_history_thumbnail_path   (TesseraHistory  *self,
                                                 const char      *sha256);

/* List items. */
TesseraHistoryConversation *
              _tessera_history_conversation_new_from_row (sqlite3_stmt *row,
                                                          const char   *data_dir);
/* Updates an item from a fresh row, notifying what changed. */
void          _tessera_history_conversation_update_from_row (TesseraHistoryConversation *self,
                                                             sqlite3_stmt               *row,
                                                             const char                 *data_dir);
TesseraHistoryMessage *
              _tessera_history_message_new_from_row (sqlite3_stmt *row);

/* A title from a question: its first line, spaces collapsed, cut at a word
 * near 60 characters with "…". */
char         *_tessera_history_title_from_question (const char *question);

G_END_DECLS
