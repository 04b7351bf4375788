/* SPDX-License-Identifier: GPL-3.0-or-later
 *
 * test-history.c — the history store (app/tessera-history*.c): schema and
 * migrations, conversations and messages, search, export, and the ways a
 * database can fail: read-only, locked, damaged, full, and killed while
 * writing.
 *
 *   test-history [-p /store/crash]     (test-history-helper beside it)
 */
#include "config.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cairo.h>
#include <fontconfig/fontconfig.h>
#include <glib/gstdio.h>
#include <sqlite3.h>

#include "tessera-engine.h"
#include "tessera-history.h"
#include "tessera-image-load.h"
#include "test-history-texts.h"

static char *helper_path;

/* ==== Fixtures and helpers ============================================== */

typedef struct {
  char *dir;    /* a fresh temporary folder */
  char *path;   /* DIR/data/history.db (the folder does not exist yet) */
} Fixture;

static void
remove_tree (const char *path)
{
  GDir *dir = g_dir_open (path, 0, NULL);
  const char *name;

  if (dir != NULL)
    {
      while ((name = g_dir_read_name (dir)) != NULL)
        {
          g_autofree char *child = g_build_filename (path, name, NULL);
          if (g_file_test (child, G_FILE_TEST_IS_DIR) && !g_file_test (child, G_FILE_TEST_IS_SYMLINK))
            remove_tree (child);
          else
            g_unlink (child);
        }
      g_dir_close (dir);
    }
  g_rmdir (path);
}

static void
fixture_set_up (Fixture *f, gconstpointer data)
{
  g_autoptr(GError) error = NULL;

  f->dir = g_dir_make_tmp ("tessera-history-XXXXXX", &error);
  g_assert_no_error (error);
  f->path = g_build_filename (f->dir, "data", "history.db", NULL);
}

static void
fixture_tear_down (Fixture *f, gconstpointer data)
{
  /* A test that failed half-way may have left permissions narrowed. */
  g_chmod (f->dir, 0700);
  {
    g_autofree char *data_dir = g_path_get_dirname (f->path);
    g_chmod (data_dir, 0700);
    g_chmod (f->path, 0600);
  }
  remove_tree (f->dir);
  g_free (f->dir);
  g_free (f->path);
}

static TesseraHistory *
open_history (const char *path, guint busy_timeout, GError **error)
{
  return g_initable_new (TESSERA_TYPE_HISTORY, NULL, error,
                         "path", path, "busy-timeout", busy_timeout, NULL);
}

static TesseraHistory *
open_ok (const char *path)
{
  g_autoptr(GError) error = NULL;
  TesseraHistory *history = tessera_history_new (path, TESSERA_HISTORY_FLAGS_NONE, &error);

  g_assert_no_error (error);
  g_assert_nonnull (history);
  return history;
}

static GBytes *
make_png (int width, int height, guint32 rgba)
{
  g_autoptr(GdkPixbuf) pixbuf = gdk_pixbuf_new (GDK_COLORSPACE_RGB, FALSE, 8, width, height);
  g_autoptr(GError) error = NULL;
  char *data = NULL;
  gsize size = 0;

  gdk_pixbuf_fill (pixbuf, rgba);
  /* A diagonal, so that images of one size and colour still differ. */
  for (int i = 0; i < MIN (width, height); i++)
    {
      guchar *p = gdk_pixbuf_get_pixels (pixbuf) + i * gdk_pixbuf_get_rowstride (pixbuf) + i * 3;
      p[0] = p[1] = p[2] = 255;
    }
  gdk_pixbuf_save_to_buffer (pixbuf, &data, &size, "png", &error, NULL);
  g_assert_no_error (error);
  return g_bytes_new_take (data, size);
}

static sqlite3 *
raw_open (const char *path)
{
  sqlite3 *db = NULL;
  g_assert_cmpint (sqlite3_open (path, &db), ==, SQLITE_OK);
  return db;
}

static void
raw_exec (sqlite3 *db, const char *sql)
{
  char *message = NULL;
  if (sqlite3_exec (db, sql, NULL, NULL, &message) != SQLITE_OK)
    g_error ("%s: %s", sql, message);
}

static gint64
raw_int (sqlite3 *db, const char *sql)
{
  sqlite3_stmt *stmt = NULL;
  gint64 value;

  g_assert_cmpint (sqlite3_prepare_v2 (db, sql, -1, &stmt, NULL), ==, SQLITE_OK);
  g_assert_cmpint (sqlite3_step (stmt), ==, SQLITE_ROW);
  value = sqlite3_column_int64 (stmt, 0);
  sqlite3_finalize (stmt);
  return value;
}

static char *
raw_text (sqlite3 *db, const char *sql)
{
  sqlite3_stmt *stmt = NULL;
  char *value;

  g_assert_cmpint (sqlite3_prepare_v2 (db, sql, -1, &stmt, NULL), ==, SQLITE_OK);
  g_assert_cmpint (sqlite3_step (stmt), ==, SQLITE_ROW);
  value = g_strdup ((const char *) sqlite3_column_text (stmt, 0));
  sqlite3_finalize (stmt);
  return value;
}

/* A count through a connection opened for the purpose: reads what is
 * committed, whatever the history object holds in memory. */
static gint64
count_rows (const char *path, const char *sql)
{
  sqlite3 *db = raw_open (path);
  gint64 n = raw_int (db, sql);
  sqlite3_close (db);
  return n;
}

static char *
file_checksum (const char *path)
{
  g_autofree char *data = NULL;
  gsize size = 0;
  g_autoptr(GError) error = NULL;

  g_file_get_contents (path, &data, &size, &error);
  g_assert_no_error (error);
  return g_compute_checksum_for_data (G_CHECKSUM_SHA256, (guchar *) data, size);
}

static TesseraHistoryConversation *
add_conversation (TesseraHistory *history, GBytes *image, int hd_num)
{
  g_autoptr(GError) error = NULL;
  TesseraHistoryConversation *c =
    tessera_history_add_conversation (history, image, "chart.png", NULL, hd_num, "model.gguf",
                                      8000000000, &error);
  g_assert_no_error (error);
  g_assert_nonnull (c);
  return c;
}

static gint64
append (TesseraHistory *history, gint64 conversation, TesseraHistoryRole role, const char *text)
{
  g_autoptr(GError) error = NULL;
  gint64 id = tessera_history_append_message (history, conversation, role, text, 0, &error);

  g_assert_no_error (error);
  g_assert_cmpint (id, >, 0);
  return id;
}

static GPtrArray *
search (TesseraHistory *history, const char *query)
{
  g_autoptr(GError) error = NULL;
  GPtrArray *hits = tessera_history_search (history, query, 50, &error);

  g_assert_no_error (error);
  g_assert_nonnull (hits);
  return hits;
}

static gboolean
hits_contain (GPtrArray *hits, gint64 message_id)
{
  for (guint i = 0; i < hits->len; i++)
    if (((TesseraHistoryHit *) hits->pdata[i])->message_id == message_id)
      return TRUE;
  return FALSE;
}

/* ==== Schema and migrations ============================================= */

static void
test_create_empty (Fixture *f, gconstpointer data)
{
  g_autoptr(TesseraHistory) history = open_ok (f->path);
  g_autofree char *images = NULL;
  sqlite3 *db;
  g_autofree char *mode = NULL;

  g_assert_true (g_file_test (f->path, G_FILE_TEST_IS_REGULAR));
  g_assert_false (tessera_history_is_read_only (history));
  g_assert_cmpstr (tessera_history_get_path (history), ==, f->path);
  g_assert_cmpuint (g_list_model_get_n_items (tessera_history_get_conversations (history)), ==, 0);

  db = raw_open (f->path);
  g_assert_cmpint (raw_int (db, "PRAGMA user_version"), ==, TESSERA_HISTORY_SCHEMA_VERSION);
  g_assert_cmpint (raw_int (db, "PRAGMA application_id"), ==, 0x54535241);
  mode = raw_text (db, "PRAGMA journal_mode");
  g_assert_cmpstr (mode, ==, "wal");
  g_assert_cmpint (raw_int (db, "SELECT count(*) FROM sqlite_schema WHERE name IN"
                                " ('images', 'conversations', 'messages', 'messages_fts')"), ==, 4);
  sqlite3_close (db);
  g_clear_object (&history);

  /* A second open finds the schema current and changes nothing. */
  history = open_ok (f->path);
  g_assert_cmpint (count_rows (f->path, "PRAGMA user_version"), ==, TESSERA_HISTORY_SCHEMA_VERSION);

  /* The default location follows XDG. */
  {
    g_autofree char *def = tessera_history_dup_default_path ();
    g_autofree char *want = g_build_filename (g_get_user_data_dir (), "tessera", "history.db", NULL);
    g_assert_cmpstr (def, ==, want);
  }
}

/* Version 1 of the schema, written out by hand as the first release made
 * it: images, conversations and messages, no search index, no deletion
 * mark. */
static const char v1_schema[] =
  "PRAGMA application_id = 1414746689;"
  "CREATE TABLE images (sha256 TEXT PRIMARY KEY NOT NULL CHECK (length (sha256) = 64),"
  " original_name TEXT NOT NULL, width INTEGER NOT NULL, height INTEGER NOT NULL,"
  " bytes INTEGER NOT NULL, stored_path TEXT NOT NULL);"
  "CREATE TABLE conversations (id INTEGER PRIMARY KEY AUTOINCREMENT,"
  " title TEXT NOT NULL DEFAULT '', created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL,"
  " image_sha256 TEXT REFERENCES images (sha256), hd_num INTEGER NOT NULL DEFAULT 0,"
  " model_name TEXT, model_size INTEGER);"
  "CREATE INDEX conversations_by_image ON conversations (image_sha256);"
  "CREATE TABLE messages (id INTEGER PRIMARY KEY AUTOINCREMENT,"
  " conversation_id INTEGER NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,"
  " role TEXT NOT NULL CHECK (role IN ('user', 'assistant')), text TEXT NOT NULL DEFAULT '',"
  " created_at INTEGER NOT NULL, hd_num INTEGER NOT NULL DEFAULT 0, n_tokens INTEGER,"
  " prefill_speed REAL, decode_speed REAL, stopped INTEGER NOT NULL DEFAULT 0,"
  " finished INTEGER NOT NULL DEFAULT 1);"
  "CREATE INDEX messages_by_conversation ON messages (conversation_id, id);"
  "PRAGMA user_version = 1;";

static void
test_migrate_from_v1 (Fixture *f, gconstpointer data)
{
  g_autofree char *data_dir = g_path_get_dirname (f->path);
  const char sha[] = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
  g_autoptr(TesseraHistory) history = NULL;
  g_autoptr(GPtrArray) messages = NULL;
  g_autoptr(GPtrArray) hits = NULL;
  g_autoptr(GError) error = NULL;
  TesseraHistoryConversation *c;
  sqlite3 *db;

  g_assert_cmpint (g_mkdir_with_parents (data_dir, 0700), ==, 0);
  db = raw_open (f->path);
  raw_exec (db, v1_schema);
  raw_exec (db,
            "INSERT INTO images VALUES ('0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef',"
            " 'old.png', 640, 480, 1000,"
            " 'images/0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef.png');"
            "INSERT INTO conversations (id, title, created_at, updated_at, image_sha256, hd_num)"
            " VALUES (7, 'Crème brûlée', 1000000, 2000000,"
            " '0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef', 16);"
            "INSERT INTO messages (conversation_id, role, text, created_at, hd_num)"
            " VALUES (7, 'user', 'Is this a crème brûlée recipe?', 1000000, 16);"
            "INSERT INTO messages (conversation_id, role, text, created_at, n_tokens, decode_speed)"
            " VALUES (7, 'assistant', '東京タワーの写真です。', 1500000, 12, 6.5);");
  sqlite3_close (db);

  history = open_ok (f->path);
  g_assert_cmpint (count_rows (f->path, "PRAGMA user_version"), ==, TESSERA_HISTORY_SCHEMA_VERSION);

  /* The old rows are all there and readable through the new code. */
  g_assert_cmpuint (g_list_model_get_n_items (tessera_history_get_conversations (history)), ==, 1);
  c = tessera_history_lookup_conversation (history, 7);
  g_assert_nonnull (c);
  g_assert_cmpstr (tessera_history_conversation_get_title (c), ==, "Crème brûlée");
  g_assert_cmpint (tessera_history_conversation_get_hd_num (c), ==, 16);
  g_assert_cmpstr (tessera_history_conversation_get_image_sha256 (c), ==, sha);
  g_assert_cmpint (tessera_history_conversation_get_image_width (c), ==, 640);
  g_assert_true (g_str_has_suffix (tessera_history_conversation_get_image_path (c), ".png"));
  messages = tessera_history_list_messages (history, 7, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (messages->len, ==, 2);
  g_assert_cmpint (tessera_history_message_get_n_tokens (messages->pdata[1]), ==, 12);

  /* Migration 2 indexed the messages that were already there. */
  hits = search (history, "creme");
  g_assert_cmpuint (hits->len, ==, 1);
  g_clear_pointer (&hits, g_ptr_array_unref);
  hits = search (history, "タワー");
  g_assert_cmpuint (hits->len, ==, 1);
  g_assert_cmpint (((TesseraHistoryHit *) hits->pdata[0])->message_id, ==,
                   tessera_history_message_get_id (messages->pdata[1]));

  /* Migration 3's deletion mark works on old rows. */
  g_assert_true (tessera_history_delete_conversation (history, 7, &error));
  g_assert_no_error (error);
  g_assert_cmpuint (g_list_model_get_n_items (tessera_history_get_conversations (history)), ==, 0);
  g_assert_true (tessera_history_undelete_conversation (history, 7, &error));
  g_assert_no_error (error);

  /* New writes go on from the old ids. */
  g_assert_cmpint (append (history, 7, TESSERA_HISTORY_ROLE_USER, "And now?"), >, 2);
  g_assert_true (tessera_history_verify (history, &error));
  g_assert_no_error (error);
}

static void
test_too_new (Fixture *f, gconstpointer data)
{
  g_autofree char *data_dir = g_path_get_dirname (f->path);
  g_autoptr(TesseraHistory) history = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *before = NULL;
  g_autofree char *after = NULL;
  sqlite3 *db;

  g_assert_cmpint (g_mkdir_with_parents (data_dir, 0700), ==, 0);
  db = raw_open (f->path);
  raw_exec (db, v1_schema);
  raw_exec (db, "PRAGMA user_version = 99;");
  sqlite3_close (db);
  before = file_checksum (f->path);

  history = tessera_history_new (f->path, TESSERA_HISTORY_FLAGS_NONE, &error);
  g_assert_null (history);
  g_assert_error (error, TESSERA_HISTORY_ERROR, TESSERA_HISTORY_ERROR_TOO_NEW);
  g_assert_nonnull (strstr (error->message, "newer version"));
  g_test_message ("%s", error->message);
  after = file_checksum (f->path);
  g_assert_cmpstr (before, ==, after);
}

static void
test_not_a_database (Fixture *f, gconstpointer data)
{
  g_autofree char *data_dir = g_path_get_dirname (f->path);
  g_autofree char *before = NULL;
  g_autofree char *after = NULL;
  g_autoptr(GError) error = NULL;
  g_autoptr(GRand) rand = g_rand_new_with_seed (8);
  guint8 junk[16384];
  TesseraHistory *history;

  g_assert_cmpint (g_mkdir_with_parents (data_dir, 0700), ==, 0);
  for (gsize i = 0; i < sizeof junk; i++)
    junk[i] = g_rand_int_range (rand, 0, 256);
  g_file_set_contents (f->path, (char *) junk, sizeof junk, &error);
  g_assert_no_error (error);
  before = file_checksum (f->path);

  history = tessera_history_new (f->path, TESSERA_HISTORY_FLAGS_NONE, &error);
  g_assert_null (history);
  g_assert_error (error, TESSERA_HISTORY_ERROR, TESSERA_HISTORY_ERROR_CORRUPT);
  g_assert_nonnull (strstr (error->message, "move it aside"));
  g_test_message ("%s", error->message);
  after = file_checksum (f->path);
  g_assert_cmpstr (before, ==, after);
  g_clear_error (&error);

  /* A real database of another program is refused as well. */
  g_unlink (f->path);
  {
    sqlite3 *db = raw_open (f->path);
    raw_exec (db, "CREATE TABLE bookmarks (url TEXT); INSERT INTO bookmarks VALUES ('x');");
    sqlite3_close (db);
  }
  history = tessera_history_new (f->path, TESSERA_HISTORY_FLAGS_NONE, &error);
  g_assert_null (history);
  g_assert_error (error, TESSERA_HISTORY_ERROR, TESSERA_HISTORY_ERROR_CORRUPT);
  g_assert_nonnull (strstr (error->message, "another program"));
  g_assert_cmpint (count_rows (f->path, "SELECT count(*) FROM bookmarks"), ==, 1);
  g_assert_cmpint (count_rows (f->path, "PRAGMA user_version"), ==, 0);
  g_clear_error (&error);

  /* A history with a damaged page: opening or the check says so. */
  g_unlink (f->path);
  history = open_ok (f->path);
  {
    g_autoptr(TesseraHistoryConversation) c =
      tessera_history_add_conversation (history, NULL, NULL, NULL, 0, NULL, 0, &error);
    g_assert_no_error (error);
    for (int i = 0; i < 200; i++)
      append (history, tessera_history_conversation_get_id (c), TESSERA_HISTORY_ROLE_USER,
              "A question long enough to fill a few pages of the database file.");
  }
  g_clear_object (&history);
  {
    g_autofree char *bytes = NULL;
    gsize size = 0;
    g_file_get_contents (f->path, &bytes, &size, &error);
    g_assert_no_error (error);
    g_assert_cmpuint (size, >, 4 * 4096);
    memset (bytes + 3 * 4096 + 8, 0x5a, 2000);
    g_file_set_contents (f->path, bytes, size, &error);
    g_assert_no_error (error);
  }
  history = tessera_history_new (f->path, TESSERA_HISTORY_FLAGS_NONE, &error);
  if (history != NULL)
    {
      g_assert_false (tessera_history_verify (history, &error));
      g_clear_object (&history);
    }
  g_assert_error (error, TESSERA_HISTORY_ERROR, TESSERA_HISTORY_ERROR_CORRUPT);
  g_test_message ("%s", error->message);
}

/* ==== Conversations and messages ======================================== */

static int items_changed_count;

static void
items_changed_cb (GListModel *model, guint position, guint removed, guint added, gpointer data)
{
  items_changed_count++;
}

static void
test_conversations (Fixture *f, gconstpointer data)
{
  g_autoptr(TesseraHistory) history = open_ok (f->path);
  g_autoptr(GBytes) image = make_png (640, 480, 0x3366ccff);
  g_autoptr(TesseraHistoryConversation) a = NULL;
  g_autoptr(TesseraHistoryConversation) b = NULL;
  g_autoptr(TesseraHistoryConversation) bare = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *image_copy = NULL;
  gsize image_copy_size = 0;
  GListModel *list = tessera_history_get_conversations (history);
  g_autofree char *sha = g_compute_checksum_for_bytes (G_CHECKSUM_SHA256, image);
  g_autofree char *data_dir = g_path_get_dirname (f->path);
  g_autofree char *want_image = g_strdup_printf ("%s/images/%s.png", data_dir, sha);
  g_autofree char *want_thumb = g_strdup_printf ("%s/thumbnails/%s.png", data_dir, sha);
  gint64 a_id, b_id;
  int tw = 0, th = 0;

  g_signal_connect (list, "items-changed", G_CALLBACK (items_changed_cb), NULL);

  a = add_conversation (history, image, 16);
  a_id = tessera_history_conversation_get_id (a);
  g_assert_cmpstr (tessera_history_conversation_get_title (a), ==, "");
  g_assert_cmpstr (tessera_history_conversation_get_image_sha256 (a), ==, sha);
  g_assert_cmpstr (tessera_history_conversation_get_image_path (a), ==, want_image);
  g_assert_cmpstr (tessera_history_conversation_get_thumbnail_path (a), ==, want_thumb);
  g_assert_cmpstr (tessera_history_conversation_get_image_name (a), ==, "chart.png");
  g_assert_cmpstr (tessera_history_conversation_get_model_name (a), ==, "model.gguf");
  g_assert_cmpint (tessera_history_conversation_get_model_size (a), ==, 8000000000);
  g_assert_cmpint (tessera_history_conversation_get_image_width (a), ==, 640);
  g_assert_cmpint (tessera_history_conversation_get_image_height (a), ==, 480);
  g_assert_cmpint (tessera_history_conversation_get_image_size (a), ==, g_bytes_get_size (image));
  g_assert_cmpint (tessera_history_conversation_get_hd_num (a), ==, 16);

  /* The copy holds the original's bytes; the thumbnail is small. */
  g_file_get_contents (want_image, &image_copy, &image_copy_size, &error);
  g_assert_no_error (error);
  g_assert_cmpmem (image_copy, image_copy_size, g_bytes_get_data (image, NULL), g_bytes_get_size (image));
  g_assert_nonnull (gdk_pixbuf_get_file_info (want_thumb, &tw, &th));
  g_assert_cmpint (tw, ==, 256);
  g_assert_cmpint (th, ==, 192);

  /* The same image again: one copy, one row. */
  g_usleep (2000);
  b = add_conversation (history, image, 4);
  b_id = tessera_history_conversation_get_id (b);
  g_assert_cmpint (b_id, >, a_id);
  g_assert_cmpint (count_rows (f->path, "SELECT count(*) FROM images"), ==, 1);
  g_assert_cmpuint (g_list_model_get_n_items (list), ==, 2);
  {
    g_autoptr(TesseraHistoryConversation) first = g_list_model_get_item (list, 0);
    g_assert_true (first == b);
  }

  /* A question names an untitled conversation and brings it to the top. */
  g_usleep (2000);
  append (history, a_id, TESSERA_HISTORY_ROLE_USER,
          "\n  What does   the chart\tshow about sales in the second quarter of the fiscal year 2023?\n"
          "And the third?");
  g_assert_cmpstr (tessera_history_conversation_get_title (a), ==,
                   "What does the chart show about sales in the second quarter…");
  {
    g_autoptr(TesseraHistoryConversation) first = g_list_model_get_item (list, 0);
    g_assert_true (first == a);
  }
  /* The second question leaves the title alone. */
  append (history, a_id, TESSERA_HISTORY_ROLE_USER, "Something else");
  g_assert_cmpstr (tessera_history_conversation_get_title (a), ==,
                   "What does the chart show about sales in the second quarter…");

  /* Renaming. */
  g_assert_true (tessera_history_rename_conversation (history, a_id, "  Sales Q2  ", &error));
  g_assert_no_error (error);
  g_assert_cmpstr (tessera_history_conversation_get_title (a), ==, "Sales Q2");
  g_assert_false (tessera_history_rename_conversation (history, a_id, " \t ", &error));
  g_assert_error (error, TESSERA_HISTORY_ERROR, TESSERA_HISTORY_ERROR_INVALID);
  g_clear_error (&error);

  /* Delete, undo, delete, purge. */
  append (history, b_id, TESSERA_HISTORY_ROLE_USER, "Quarterly zebra count?");
  g_assert_true (tessera_history_delete_conversation (history, b_id, &error));
  g_assert_no_error (error);
  g_assert_cmpuint (g_list_model_get_n_items (list), ==, 1);
  g_assert_null (tessera_history_lookup_conversation (history, b_id));
  {
    g_autoptr(GPtrArray) hits = search (history, "zebra");
    g_assert_cmpuint (hits->len, ==, 0);
  }
  g_assert_cmpint (tessera_history_append_message (history, b_id, TESSERA_HISTORY_ROLE_USER, "x", 0,
                                                   &error), ==, 0);
  g_assert_error (error, TESSERA_HISTORY_ERROR, TESSERA_HISTORY_ERROR_NOT_FOUND);
  g_clear_error (&error);

  g_assert_true (tessera_history_undelete_conversation (history, b_id, &error));
  g_assert_no_error (error);
  g_assert_cmpuint (g_list_model_get_n_items (list), ==, 2);
  {
    g_autoptr(GPtrArray) hits = search (history, "zebra");
    g_assert_cmpuint (hits->len, ==, 1);
  }
  /* A purge leaves what is not deleted, and what was deleted a moment ago
   * when asked to spare recent deletions. */
  g_assert_true (tessera_history_delete_conversation (history, b_id, &error));
  g_assert_true (tessera_history_purge (history, G_TIME_SPAN_HOUR, &error));
  g_assert_no_error (error);
  g_assert_cmpint (count_rows (f->path, "SELECT count(*) FROM conversations"), ==, 2);
  g_assert_true (tessera_history_purge (history, 0, &error));
  g_assert_no_error (error);
  g_assert_cmpint (count_rows (f->path, "SELECT count(*) FROM conversations"), ==, 1);
  /* The messages went with it (foreign keys are on), the index too. */
  g_assert_cmpint (count_rows (f->path, "SELECT count(*) FROM messages"), ==, 2);
  g_assert_false (tessera_history_undelete_conversation (history, b_id, &error));
  g_assert_error (error, TESSERA_HISTORY_ERROR, TESSERA_HISTORY_ERROR_NOT_FOUND);
  g_clear_error (&error);
  /* The image stays: the other conversation uses it. */
  g_assert_true (g_file_test (want_image, G_FILE_TEST_EXISTS));
  g_assert_true (tessera_history_verify (history, &error));
  g_assert_no_error (error);

  g_assert_true (tessera_history_delete_conversation (history, a_id, &error));
  g_assert_true (tessera_history_purge (history, 0, &error));
  g_assert_no_error (error);
  g_assert_cmpint (count_rows (f->path, "SELECT count(*) FROM images"), ==, 0);
  g_assert_false (g_file_test (want_image, G_FILE_TEST_EXISTS));
  g_assert_false (g_file_test (want_thumb, G_FILE_TEST_EXISTS));
  g_assert_cmpuint (g_list_model_get_n_items (list), ==, 0);
  g_assert_cmpint (items_changed_count, >=, 5);

  /* Without an image. */
  bare = tessera_history_add_conversation (history, NULL, NULL, NULL, 0, NULL, 0, &error);
  g_assert_no_error (error);
  g_assert_null (tessera_history_conversation_get_image_path (bare));
  g_assert_null (tessera_history_conversation_get_model_name (bare));

  /* Bad images and files. */
  {
    g_autoptr(GBytes) junk = g_bytes_new_static ("not an image at all", 19);
    g_autoptr(GFile) missing = g_file_new_build_filename (f->dir, "missing.png", NULL);
    g_assert_null (tessera_history_add_conversation (history, junk, "junk.png", NULL, 9, NULL, 0, &error));
    g_assert_true (error != NULL && error->domain == TESSERA_IMAGE_ERROR);
    g_test_message ("%s", error->message);
    g_clear_error (&error);
    g_assert_null (tessera_history_add_conversation_for_file (history, missing, NULL, 9, NULL, 0,
                                                              NULL, &error));
    g_assert_error (error, G_IO_ERROR, G_IO_ERROR_NOT_FOUND);
    g_clear_error (&error);
  }

  /* From a file, with a pixbuf already decoded. */
  {
    g_autoptr(GBytes) tall_image = make_png (300, 900, 0x22aa44ff);
    g_autofree char *file_path = g_build_filename (f->dir, "tall image.png", NULL);
    g_autoptr(GFile) file = g_file_new_for_path (file_path);
    g_autoptr(TesseraHistoryConversation) c = NULL;
    g_autoptr(GdkPixbuf) pixbuf = NULL;

    g_file_set_contents (file_path, g_bytes_get_data (tall_image, NULL),
                         g_bytes_get_size (tall_image), &error);
    g_assert_no_error (error);
    pixbuf = tessera_image_load (file_path, NULL, &error);
    g_assert_no_error (error);
    c = tessera_history_add_conversation_for_file (history, file, pixbuf, 25, NULL, 0, NULL, &error);
    g_assert_no_error (error);
    g_assert_cmpstr (tessera_history_conversation_get_image_name (c), ==, "tall image.png");
    g_assert_cmpint (tessera_history_conversation_get_image_height (c), ==, 900);
    g_assert_nonnull (gdk_pixbuf_get_file_info (tessera_history_conversation_get_thumbnail_path (c),
                                                &tw, &th));
    g_assert_cmpint (th, ==, 256);
    /* The original can go; the history keeps its copy. */
    g_unlink (file_path);
    g_assert_true (g_file_test (tessera_history_conversation_get_image_path (c), G_FILE_TEST_EXISTS));
  }

  /* Another instance's writes show after a refresh. */
  {
    g_autoptr(TesseraHistory) other = open_ok (f->path);
    g_autoptr(TesseraHistoryConversation) c =
      tessera_history_add_conversation (other, NULL, NULL, NULL, 0, NULL, 0, &error);
    guint n = g_list_model_get_n_items (list);

    g_assert_no_error (error);
    g_assert_true (tessera_history_refresh (history, &error));
    g_assert_no_error (error);
    g_assert_cmpuint (g_list_model_get_n_items (list), ==, n + 1);
    g_assert_nonnull (tessera_history_lookup_conversation (history,
                                                           tessera_history_conversation_get_id (c)));
  }
  g_signal_handlers_disconnect_by_func (list, items_changed_cb, NULL);
}

static void
test_titles (void)
{
  g_autoptr(GString) s = g_string_new (NULL);
  g_autoptr(GError) error = NULL;
  g_autofree char *dir = g_dir_make_tmp ("tessera-history-XXXXXX", &error);
  g_autofree char *path = g_build_filename (dir, "history.db", NULL);
  g_autoptr(TesseraHistory) history = open_ok (path);
  g_autoptr(TesseraHistoryConversation) c =
    tessera_history_add_conversation (history, NULL, NULL, NULL, 0, NULL, 0, &error);

  g_assert_no_error (error);
  for (int i = 0; i < 100; i++)
    g_string_append (s, "图");
  append (history, tessera_history_conversation_get_id (c), TESSERA_HISTORY_ROLE_USER, s->str);
  /* No spaces to break at: 59 characters and the ellipsis. */
  g_assert_cmpint (g_utf8_strlen (tessera_history_conversation_get_title (c), -1), ==, 60);
  g_assert_true (g_str_has_suffix (tessera_history_conversation_get_title (c), "图…"));
  g_clear_object (&history);
  remove_tree (dir);
}

static void
test_messages (Fixture *f, gconstpointer data)
{
  g_autoptr(TesseraHistory) history = open_ok (f->path);
  g_autoptr(GBytes) image = make_png (64, 64, 0xff0000ff);
  g_autoptr(TesseraHistoryConversation) c = add_conversation (history, image, 9);
  gint64 cid = tessera_history_conversation_get_id (c);
  g_autoptr(GPtrArray) messages = NULL;
  g_autoptr(GError) error = NULL;
  TesseraHistoryTimings timings = { 12, 85.5, 7.25 };
  TesseraHistoryMessage *m;
  gint64 q, a;

  q = tessera_history_append_message (history, cid, TESSERA_HISTORY_ROLE_USER, "Hi?", 16, &error);
  g_assert_no_error (error);
  g_assert_cmpint (tessera_history_conversation_get_hd_num (c), ==, 16);
  a = tessera_history_append_message (history, cid, TESSERA_HISTORY_ROLE_ASSISTANT, "", 0, &error);
  g_assert_no_error (error);
  g_assert_true (tessera_history_update_message_text (history, a, "Hel", &error));
  g_assert_true (tessera_history_update_message_text (history, a, "Hello", &error));
  g_assert_no_error (error);

  messages = tessera_history_list_messages (history, cid, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (messages->len, ==, 2);
  m = messages->pdata[1];
  g_assert_cmpstr (tessera_history_message_get_text (m), ==, "Hello");
  g_assert_false (tessera_history_message_get_finished (m));
  g_clear_pointer (&messages, g_ptr_array_unref);

  /* A byte sequence cut inside a character is stored as valid UTF-8. */
  g_assert_true (tessera_history_finish_message (history, a, "Hello world \xe4\xb8", &timings, TRUE,
                                                 &error));
  g_assert_no_error (error);

  messages = tessera_history_list_messages (history, cid, &error);
  g_assert_no_error (error);
  m = messages->pdata[0];
  g_assert_cmpint (tessera_history_message_get_id (m), ==, q);
  g_assert_cmpint (tessera_history_message_get_conversation_id (m), ==, cid);
  g_assert_cmpint (tessera_history_message_get_role (m), ==, TESSERA_HISTORY_ROLE_USER);
  g_assert_cmpint (tessera_history_message_get_hd_num (m), ==, 16);
  g_assert_true (tessera_history_message_get_finished (m));
  g_assert_cmpint (tessera_history_message_get_created (m), >, 0);
  m = messages->pdata[1];
  g_assert_cmpint (tessera_history_message_get_role (m), ==, TESSERA_HISTORY_ROLE_ASSISTANT);
  g_assert_true (g_str_has_prefix (tessera_history_message_get_text (m), "Hello world "));
  g_assert_true (g_utf8_validate (tessera_history_message_get_text (m), -1, NULL));
  g_assert_true (tessera_history_message_get_finished (m));
  g_assert_true (tessera_history_message_get_stopped (m));
  g_assert_cmpint (tessera_history_message_get_n_tokens (m), ==, 12);
  g_assert_cmpfloat (tessera_history_message_get_prefill_speed (m), ==, 85.5);
  g_assert_cmpfloat (tessera_history_message_get_decode_speed (m), ==, 7.25);

  g_assert_false (tessera_history_update_message_text (history, 999999, "x", &error));
  g_assert_error (error, TESSERA_HISTORY_ERROR, TESSERA_HISTORY_ERROR_NOT_FOUND);
  g_clear_error (&error);
  g_assert_false (tessera_history_finish_message (history, 999999, "x", NULL, FALSE, &error));
  g_assert_error (error, TESSERA_HISTORY_ERROR, TESSERA_HISTORY_ERROR_NOT_FOUND);
  g_clear_error (&error);

  /* What was streamed is searchable as it stands now, not as it was. */
  g_assert_true (tessera_history_update_message_text (history, a, "completely different", &error));
  {
    g_autoptr(GPtrArray) old_hits = search (history, "hello");
    g_autoptr(GPtrArray) new_hits = search (history, "different");
    g_assert_false (hits_contain (old_hits, a));
    g_assert_true (hits_contain (new_hits, a));
  }
  g_assert_true (tessera_history_verify (history, &error));
  g_assert_no_error (error);
}

/* ==== Search ============================================================ */

static void
test_search (Fixture *f, gconstpointer data)
{
  g_autoptr(TesseraHistory) history = open_ok (f->path);
  g_autoptr(GError) error = NULL;
  g_autoptr(TesseraHistoryConversation) c1 = NULL;
  g_autoptr(TesseraHistoryConversation) c2 = NULL;
  gint64 french, chinese, japanese, korean, english, tricky;
  static const char *const hostile[] = {
    "\"", "\"\"", "\"hello", "hello\"", "AND", "OR NOT", "NEAR(", "NEAR(a b, 2)", "(", ")",
    "a AND", "*", "door*", "-", "-x", "^start", "text:foo", "{text}: foo", "a + b", "'",
    "\"unterminated AND (", "\\", "col:", "💥", "   ", "", "a\"b\"c", "\x01\x02",
  };

  c1 = tessera_history_add_conversation (history, NULL, NULL, NULL, 0, NULL, 0, &error);
  c2 = tessera_history_add_conversation (history, NULL, NULL, NULL, 0, NULL, 0, &error);
  g_assert_no_error (error);
  french = append (history, tessera_history_conversation_get_id (c1), TESSERA_HISTORY_ROLE_USER,
                   "Le café est crème et très Naïve.");
  chinese = append (history, tessera_history_conversation_get_id (c1),
                    TESSERA_HISTORY_ROLE_ASSISTANT, "这张图片显示东京塔和富士山。");
  japanese = append (history, tessera_history_conversation_get_id (c1),
                     TESSERA_HISTORY_ROLE_ASSISTANT, "東京タワーの写真です。");
  korean = append (history, tessera_history_conversation_get_id (c2), TESSERA_HISTORY_ROLE_USER,
                   "이 사진에서 표를 읽어 주세요.");
  english = append (history, tessera_history_conversation_get_id (c2),
                    TESSERA_HISTORY_ROLE_ASSISTANT, "The table shows revenue by region.");
  tricky = append (history, tessera_history_conversation_get_id (c2), TESSERA_HISTORY_ROLE_USER,
                   "He said \"hello\" AND left (quickly) NEAR the door* -- ok?");

  /* Case and accents fold both ways. */
  {
    static const char *const queries[] = { "cafe", "CAFÉ", "creme", "Crème", "tres", "naive" };
    for (guint i = 0; i < G_N_ELEMENTS (queries); i++)
      {
        g_autoptr(GPtrArray) hits = search (history, queries[i]);
        g_assert_true (hits_contain (hits, french));
      }
  }
  /* Chinese, Japanese and Korean match inside words. */
  {
    struct { const char *query; gint64 *id; } cases[] = {
      { "东京", &chinese }, { "富士山", &chinese }, { "图片", &chinese },
      { "タワー", &japanese }, { "写真", &japanese }, { "東京", &japanese },
      { "사진", &korean }, { "표를", &korean }, { "읽어", &korean }, { "사진에서", &korean },
    };
    for (guint i = 0; i < G_N_ELEMENTS (cases); i++)
      {
        g_autoptr(GPtrArray) hits = search (history, cases[i].query);
        if (!hits_contain (hits, *cases[i].id))
          g_error ("“%s” did not find its message", cases[i].query);
      }
    /* Simplified 东 is not traditional 東. */
    {
      g_autoptr(GPtrArray) hits = search (history, "东京");
      g_assert_false (hits_contain (hits, japanese));
    }
  }
  /* Words are prefixes; all words must match. */
  {
    g_autoptr(GPtrArray) hits = search (history, "tab rev");
    g_autoptr(GPtrArray) none = search (history, "table zebra");
    g_assert_true (hits_contain (hits, english));
    g_assert_cmpuint (none->len, ==, 0);
  }
  /* FTS5 syntax in the query is text, never an error. */
  for (guint i = 0; i < G_N_ELEMENTS (hostile); i++)
    {
      g_autoptr(GPtrArray) hits = tessera_history_search (history, hostile[i], 10, &error);
      if (error != NULL)
        g_error ("query “%s”: %s", hostile[i], error->message);
      g_assert_nonnull (hits);
    }
  {
    g_autoptr(GPtrArray) hits = search (history, "\"hello\" AND (quickly) NEAR door*");
    TesseraHistoryHit *hit;

    g_assert_cmpuint (hits->len, ==, 1);
    hit = hits->pdata[0];
    g_assert_cmpint (hit->message_id, ==, tricky);
    g_assert_cmpint (hit->conversation_id, ==, tessera_history_conversation_get_id (c2));
    /* The snippet shows the text; the markup escapes it and bolds the match. */
    g_assert_nonnull (strstr (hit->snippet, "He said \"hello\" AND left"));
    g_assert_nonnull (strstr (hit->snippet_markup, "<b>hello</b>&quot;"));
    g_assert_null (strchr (hit->snippet, '\002'));
  }
  /* One result per conversation, the limit respected. */
  {
    g_autoptr(GPtrArray) hits = search (history, "東京");
    g_autoptr(GPtrArray) one = tessera_history_search (history, "the", 1, &error);
    g_assert_no_error (error);
    g_assert_cmpuint (hits->len, ==, 1);
    g_assert_cmpuint (one->len, ==, 1);
  }
}

/* ==== Export ============================================================ */

static char *
read_text (const char *path)
{
  g_autoptr(GError) error = NULL;
  char *text = NULL;

  g_file_get_contents (path, &text, NULL, &error);
  g_assert_no_error (error);
  return text;
}

static void
test_export (Fixture *f, gconstpointer data)
{
  g_autoptr(TesseraHistory) history = open_ok (f->path);
  g_autoptr(GBytes) image = make_png (800, 600, 0x808080ff);
  g_autoptr(TesseraHistoryConversation) c = add_conversation (history, image, 9);
  gint64 cid = tessera_history_conversation_get_id (c);
  const char *question = "What is *this*? \"Quoted\", back\\slash,\ttab\nnew line, control \x01 char, 東京";
  const char *answer = "It is a **grey** square.\n\n- one\n- two\n\n| a | b |\n|---|---|\n| 1 | 2 |";
  TesseraHistoryTimings timings = { 42, 120.25, 6.5 };
  g_autofree char *out_dir = g_build_filename (f->dir, "export dir", NULL);
  g_autofree char *md_path = g_build_filename (out_dir, "chat.md", NULL);
  g_autofree char *json_path = g_build_filename (out_dir, "chat.json", NULL);
  g_autofree char *image_path = g_build_filename (out_dir, "chat-image.png", NULL);
  g_autofree char *tiles_path = g_build_filename (out_dir, "chat-tiles.png", NULL);
  g_autoptr(GFile) md_file = g_file_new_for_path (md_path);
  g_autoptr(GFile) json_file = g_file_new_for_path (json_path);
  g_autoptr(GError) error = NULL;
  g_autofree char *md = NULL;
  g_autofree char *copy = NULL;
  gsize copy_size = 0;
  gint64 a;

  g_assert_cmpint (g_mkdir_with_parents (out_dir, 0700), ==, 0);
  append (history, cid, TESSERA_HISTORY_ROLE_USER, question);
  a = append (history, cid, TESSERA_HISTORY_ROLE_ASSISTANT, "");
  g_assert_true (tessera_history_finish_message (history, a, answer, &timings, TRUE, &error));
  g_assert_no_error (error);
  g_assert_true (tessera_history_rename_conversation (history, cid, "Grey # [square]", &error));

  /* Markdown, the image copy and the tile overlay. */
  g_assert_true (tessera_history_export_markdown (history, cid, md_file, &error));
  g_assert_no_error (error);
  md = read_text (md_path);
  g_test_message ("%s", md);
  g_assert_true (g_str_has_prefix (md, "# Grey \\# \\[square\\]\n"));
  g_assert_nonnull (strstr (md, "](chat-image.png)"));
  g_assert_nonnull (strstr (md, "](chat-tiles.png)"));
  g_assert_nonnull (strstr (md, "800 × 600"));
  g_assert_nonnull (strstr (md, "HD-9"));
  g_assert_nonnull (strstr (md, "### Question\n\nWhat is *this*?"));
  g_assert_nonnull (strstr (md, answer));
  g_assert_nonnull (strstr (md, "Tokens: 42"));
  g_assert_nonnull (strstr (md, "Stopped"));
  g_assert_nonnull (strstr (md, "model.gguf"));

  g_file_get_contents (image_path, &copy, &copy_size, &error);
  g_assert_no_error (error);
  g_assert_cmpmem (copy, copy_size, g_bytes_get_data (image, NULL), g_bytes_get_size (image));

  {
    g_autoptr(GdkPixbuf) tiles = gdk_pixbuf_new_from_file (tiles_path, &error);
    TsrHdPlan plan;
    TsrRectF r;
    double x0 = 0, y0 = 0;
    const guchar *px;
    int x, y;

    g_assert_no_error (error);
    g_assert_cmpint (tsr_hd_plan (800, 600, 9, &plan, NULL), ==, TSR_OK);
    for (int i = 0; i < plan.tiles; i++)
      {
        r = tsr_hd_tile_image_rect (&plan, i);
        x0 = MIN (x0, r.x);
        y0 = MIN (y0, r.y);
      }
    /* Below 2048 pixels the overlay is at the image's scale. */
    g_assert_cmpint (gdk_pixbuf_get_width (tiles), >=, 800);
    g_assert_cmpint (gdk_pixbuf_get_height (tiles), >=, 600);
    /* The left edge of the first tile is drawn blue at mid-height. */
    r = tsr_hd_tile_image_rect (&plan, 0);
    x = (int) (r.x - x0) + 1;
    y = (int) (r.y - y0 + r.h / 2 + r.h / 4);
    px = gdk_pixbuf_read_pixels (tiles) + y * gdk_pixbuf_get_rowstride (tiles) +
         x * gdk_pixbuf_get_n_channels (tiles);
    g_test_message ("pixel at %d,%d: %d %d %d (%d tiles)", x, y, px[0], px[1], px[2], plan.tiles);
    g_assert_cmpint (px[2], >, px[0] + 80);
  }

  /* JSON that a JSON parser reads back to the same texts. */
  g_assert_true (tessera_history_export_json (history, cid, json_file, &error));
  g_assert_no_error (error);
  {
    g_autofree char *python = g_find_program_in_path ("python3");
    const char *script =
      "import json, sys\n"
      "with open(sys.argv[1], encoding='utf-8') as f:\n"
      "    d = json.load(f)\n"
      "assert d['format'] == 'tessera-conversation', d\n"
      "assert d['title'] == 'Grey # [square]', d['title']\n"
      "assert d['hd_num'] == 9\n"
      "assert d['image']['width'] == 800 and d['image']['height'] == 600\n"
      "assert len(d['image']['sha256']) == 64\n"
      "assert d['model'] == {'file': 'model.gguf', 'size': 8000000000}\n"
      "m = d['messages']\n"
      "assert [x['role'] for x in m] == ['user', 'assistant'], m\n"
      "assert m[0]['text'] == sys.argv[2], repr(m[0]['text'])\n"
      "assert m[1]['text'] == sys.argv[3], repr(m[1]['text'])\n"
      "assert m[1]['tokens'] == 42 and m[1]['stopped'] is True and m[1]['finished'] is True\n"
      "assert abs(m[1]['prefill_tokens_per_second'] - 120.25) < 1e-9\n"
      "assert m[0]['tokens'] is None and m[0]['decode_tokens_per_second'] is None\n"
      "assert m[0]['created'].endswith('Z')\n";
    const char *argv[] = { python, "-c", script, json_path, question, answer, NULL };
    g_autofree char *out = NULL;
    g_autofree char *err = NULL;
    int status = 0;

    if (python == NULL)
      {
        g_test_message ("python3 is not installed: the JSON export was not parsed");
        return;
      }
    g_spawn_sync (NULL, (char **) argv, NULL, G_SPAWN_DEFAULT, NULL, NULL, &out, &err, &status, &error);
    g_assert_no_error (error);
    if (!g_spawn_check_wait_status (status, NULL))
      g_error ("the JSON export does not parse as expected:\n%s", err);
  }

  /* A deleted conversation cannot be exported. */
  g_assert_true (tessera_history_delete_conversation (history, cid, &error));
  g_assert_false (tessera_history_export_json (history, cid, json_file, &error));
  g_assert_error (error, TESSERA_HISTORY_ERROR, TESSERA_HISTORY_ERROR_NOT_FOUND);
}

/* ==== Failures ========================================================== */

static void
test_read_only_flag (Fixture *f, gconstpointer data)
{
  g_autoptr(TesseraHistory) history = open_ok (f->path);
  g_autoptr(GBytes) image = make_png (64, 48, 0x00ff00ff);
  g_autoptr(GBytes) other_image = make_png (64, 48, 0x0000ffff);
  g_autoptr(TesseraHistoryConversation) c = add_conversation (history, image, 9);
  gint64 cid = tessera_history_conversation_get_id (c);
  g_autoptr(GError) error = NULL;
  g_autofree char *before = NULL;
  g_autofree char *after = NULL;
  g_autofree char *data_dir = g_path_get_dirname (f->path);
  g_autofree char *other_sha = g_compute_checksum_for_bytes (G_CHECKSUM_SHA256, other_image);
  g_autofree char *other_copy = NULL;

  append (history, cid, TESSERA_HISTORY_ROLE_USER, "Kept safely");
  g_clear_object (&history);
  before = file_checksum (f->path);

  history = tessera_history_new (f->path, TESSERA_HISTORY_FLAGS_READ_ONLY, &error);
  g_assert_no_error (error);
  g_assert_true (tessera_history_is_read_only (history));
  g_assert_cmpuint (g_list_model_get_n_items (tessera_history_get_conversations (history)), ==, 1);
  {
    g_autoptr(GPtrArray) hits = search (history, "safely");
    g_assert_cmpuint (hits->len, ==, 1);
  }
  g_assert_cmpint (tessera_history_append_message (history, cid, TESSERA_HISTORY_ROLE_USER, "x", 0,
                                                   &error), ==, 0);
  g_assert_error (error, TESSERA_HISTORY_ERROR, TESSERA_HISTORY_ERROR_READ_ONLY);
  g_test_message ("%s", error->message);
  g_clear_error (&error);
  g_assert_null (tessera_history_add_conversation (history, other_image, "o.png", NULL, 9, NULL, 0,
                                                   &error));
  g_assert_error (error, TESSERA_HISTORY_ERROR, TESSERA_HISTORY_ERROR_READ_ONLY);
  g_clear_error (&error);
  g_assert_false (tessera_history_rename_conversation (history, cid, "New", &error));
  g_assert_error (error, TESSERA_HISTORY_ERROR, TESSERA_HISTORY_ERROR_READ_ONLY);
  g_clear_error (&error);
  g_assert_false (tessera_history_delete_conversation (history, cid, &error));
  g_assert_error (error, TESSERA_HISTORY_ERROR, TESSERA_HISTORY_ERROR_READ_ONLY);
  g_clear_error (&error);
  g_assert_true (tessera_history_verify (history, &error));
  g_assert_no_error (error);
  g_clear_object (&history);

  /* Nothing was written: not the database, not an image copy. */
  after = file_checksum (f->path);
  g_assert_cmpstr (before, ==, after);
  other_copy = g_strdup_printf ("%s/images/%s.png", data_dir, other_sha);
  g_assert_false (g_file_test (other_copy, G_FILE_TEST_EXISTS));
}

static gboolean
run_helper (const char *command, const char *db, char **output)
{
  const char *argv[] = { helper_path, command, db, NULL };
  g_autoptr(GError) error = NULL;
  int status = 0;

  g_spawn_sync (NULL, (char **) argv, NULL, G_SPAWN_DEFAULT, NULL, NULL, output, NULL, &status, &error);
  g_assert_no_error (error);
  return g_spawn_check_wait_status (status, NULL);
}

static void
test_read_only_permissions (Fixture *f, gconstpointer data)
{
  g_autoptr(TesseraHistory) history = open_ok (f->path);
  g_autoptr(GBytes) image = make_png (64, 48, 0x00ff00ff);
  g_autoptr(TesseraHistoryConversation) c = add_conversation (history, image, 9);
  g_autofree char *data_dir = g_path_get_dirname (f->path);
  g_autofree char *before = NULL;
  g_autofree char *after = NULL;
  g_autofree char *output = NULL;
  g_autoptr(GError) error = NULL;
  gboolean ok;

  append (history, tessera_history_conversation_get_id (c), TESSERA_HISTORY_ROLE_USER, "Kept");
  g_clear_object (&history);
  before = file_checksum (f->path);

  /* The helper runs as nobody when the tests run as root: the folders on
   * the way must let it in. First the file and its folder are read-only
   * (SQLite cannot even make its shared-memory file, so opening fails);
   * then only the file (opening works, writing does not). */
  g_assert_cmpint (g_chmod (f->dir, 0755), ==, 0);
  for (int variant = 0; variant < 2; variant++)
    {
      g_clear_pointer (&output, g_free);
      g_assert_cmpint (g_chmod (data_dir, variant == 0 ? 0555 : 0777), ==, 0);
      g_assert_cmpint (g_chmod (f->path, 0444), ==, 0);
      ok = run_helper ("try-write", f->path, &output);
      g_test_message ("read-only by permissions (%s): %s",
                      variant == 0 ? "file and folder" : "file", output);
      g_chmod (data_dir, 0700);
      g_chmod (f->path, 0600);
      if (!ok)
        g_error ("a read-only history did not fail with a read-only error: %s", output);
    }

  after = file_checksum (f->path);
  g_assert_cmpstr (before, ==, after);
  history = open_ok (f->path);
  g_assert_cmpuint (g_list_model_get_n_items (tessera_history_get_conversations (history)), ==, 1);
  g_assert_true (tessera_history_verify (history, &error));
  g_assert_no_error (error);
}

typedef struct {
  GSubprocess  *process;
  GInputStream *out;
} Locker;

static void
locker_start (Locker *locker, const char *command, const char *db)
{
  g_autoptr(GError) error = NULL;
  char line[16] = { 0 };
  gsize n = 0;

  locker->process = g_subprocess_new (G_SUBPROCESS_FLAGS_STDIN_PIPE | G_SUBPROCESS_FLAGS_STDOUT_PIPE,
                                      &error, helper_path, command, db, NULL);
  g_assert_no_error (error);
  locker->out = g_subprocess_get_stdout_pipe (locker->process);
  g_input_stream_read_all (locker->out, line, 7, &n, NULL, &error);
  g_assert_no_error (error);
  g_assert_cmpstr (line, ==, "locked\n");
}

static void
locker_stop (Locker *locker)
{
  g_autoptr(GError) error = NULL;

  g_output_stream_close (g_subprocess_get_stdin_pipe (locker->process), NULL, NULL);
  g_subprocess_wait_check (locker->process, NULL, &error);
  g_assert_no_error (error);
  g_clear_object (&locker->process);
}

static void
test_locked (Fixture *f, gconstpointer data)
{
  g_autoptr(TesseraHistory) history = open_ok (f->path);
  g_autoptr(TesseraHistoryConversation) c =
    tessera_history_add_conversation (history, NULL, NULL, NULL, 0, NULL, 0, NULL);
  gint64 cid = tessera_history_conversation_get_id (c);
  g_autoptr(GError) error = NULL;
  Locker locker = { NULL, NULL };
  gint64 start, elapsed;
  TesseraHistory *blocked;

  append (history, cid, TESSERA_HISTORY_ROLE_USER, "Before the lock");
  g_clear_object (&history);

  /* Another process holds an exclusive lock: opening waits for the busy
   * timeout, then says who is in the way. */
  locker_start (&locker, "lock-exclusive", f->path);
  start = g_get_monotonic_time ();
  blocked = open_history (f->path, 300, &error);
  elapsed = g_get_monotonic_time () - start;
  g_assert_null (blocked);
  g_assert_error (error, TESSERA_HISTORY_ERROR, TESSERA_HISTORY_ERROR_LOCKED);
  g_assert_nonnull (strstr (error->message, "Another program"));
  g_test_message ("%s (after %" G_GINT64_FORMAT " ms)", error->message, elapsed / 1000);
  g_assert_cmpint (elapsed, >=, 250 * 1000);
  g_assert_cmpint (elapsed, <, 5 * G_USEC_PER_SEC);
  g_clear_error (&error);
  locker_stop (&locker);

  /* Another process holds the write lock: reading goes on (WAL), writing
   * fails after the timeout and works again once the lock is gone. */
  history = open_history (f->path, 300, &error);
  g_assert_no_error (error);
  locker_start (&locker, "lock-write", f->path);
  {
    g_autoptr(GPtrArray) messages = tessera_history_list_messages (history, cid, &error);
    g_assert_no_error (error);
    g_assert_cmpuint (messages->len, ==, 1);
  }
  g_assert_cmpint (tessera_history_append_message (history, cid, TESSERA_HISTORY_ROLE_USER, "x", 0,
                                                   &error), ==, 0);
  g_assert_error (error, TESSERA_HISTORY_ERROR, TESSERA_HISTORY_ERROR_LOCKED);
  g_clear_error (&error);
  g_assert_false (tessera_history_rename_conversation (history, cid, "x", &error));
  g_assert_error (error, TESSERA_HISTORY_ERROR, TESSERA_HISTORY_ERROR_LOCKED);
  g_clear_error (&error);
  locker_stop (&locker);

  append (history, cid, TESSERA_HISTORY_ROLE_USER, "After the lock");
  {
    g_autoptr(GPtrArray) messages = tessera_history_list_messages (history, cid, &error);
    g_assert_no_error (error);
    g_assert_cmpuint (messages->len, ==, 2);
  }
  g_assert_true (tessera_history_verify (history, &error));
  g_assert_no_error (error);
}

/* A VFS over the default one whose disk fills up: once `full_budget`
 * bytes have been written, writes fail as on a full disk. -1: no limit. */
static gint64 full_budget = -1;

typedef struct {
  sqlite3_file  base;
  sqlite3_file *real;
} FullFile;

static sqlite3_vfs *real_vfs;
static sqlite3_vfs full_vfs;
static sqlite3_io_methods full_methods;

#define REAL(file) (((FullFile *) (file))->real)

static int full_close (sqlite3_file *file)
{
  int rc = REAL (file)->pMethods != NULL ? REAL (file)->pMethods->xClose (REAL (file)) : SQLITE_OK;
  return rc;
}
static int full_read (sqlite3_file *file, void *buf, int amount, sqlite3_int64 offset)
{ return REAL (file)->pMethods->xRead (REAL (file), buf, amount, offset); }
static int full_write (sqlite3_file *file, const void *buf, int amount, sqlite3_int64 offset)
{
  if (full_budget >= 0)
    {
      if (full_budget < amount)
        {
          full_budget = 0;
          return SQLITE_FULL;
        }
      full_budget -= amount;
    }
  return REAL (file)->pMethods->xWrite (REAL (file), buf, amount, offset);
}
static int full_truncate (sqlite3_file *file, sqlite3_int64 size)
{ return REAL (file)->pMethods->xTruncate (REAL (file), size); }
static int full_sync (sqlite3_file *file, int flags)
{ return REAL (file)->pMethods->xSync (REAL (file), flags); }
static int full_file_size (sqlite3_file *file, sqlite3_int64 *size)
{ return REAL (file)->pMethods->xFileSize (REAL (file), size); }
static int full_lock (sqlite3_file *file, int lock)
{ return REAL (file)->pMethods->xLock (REAL (file), lock); }
static int full_unlock (sqlite3_file *file, int lock)
{ return REAL (file)->pMethods->xUnlock (REAL (file), lock); }
static int full_check_reserved (sqlite3_file *file, int *out)
{ return REAL (file)->pMethods->xCheckReservedLock (REAL (file), out); }
static int full_file_control (sqlite3_file *file, int op, void *arg)
{ return REAL (file)->pMethods->xFileControl (REAL (file), op, arg); }
static int full_sector_size (sqlite3_file *file)
{ return REAL (file)->pMethods->xSectorSize (REAL (file)); }
static int full_device_characteristics (sqlite3_file *file)
{ return REAL (file)->pMethods->xDeviceCharacteristics (REAL (file)); }
static int full_shm_map (sqlite3_file *file, int page, int size, int extend, void volatile **out)
{ return REAL (file)->pMethods->xShmMap (REAL (file), page, size, extend, out); }
static int full_shm_lock (sqlite3_file *file, int offset, int n, int flags)
{ return REAL (file)->pMethods->xShmLock (REAL (file), offset, n, flags); }
static void full_shm_barrier (sqlite3_file *file)
{ REAL (file)->pMethods->xShmBarrier (REAL (file)); }
static int full_shm_unmap (sqlite3_file *file, int delete_flag)
{ return REAL (file)->pMethods->xShmUnmap (REAL (file), delete_flag); }
static int full_fetch (sqlite3_file *file, sqlite3_int64 offset, int amount, void **out)
{ return REAL (file)->pMethods->xFetch (REAL (file), offset, amount, out); }
static int full_unfetch (sqlite3_file *file, sqlite3_int64 offset, void *p)
{ return REAL (file)->pMethods->xUnfetch (REAL (file), offset, p); }

static int
full_open (sqlite3_vfs *vfs, const char *name, sqlite3_file *file, int flags, int *out_flags)
{
  FullFile *ff = (FullFile *) file;
  int rc;

  ff->real = (sqlite3_file *) (ff + 1);
  rc = real_vfs->xOpen (real_vfs, name, ff->real, flags, out_flags);
  /* SQLite calls xClose only if pMethods is set. */
  file->pMethods = ff->real->pMethods != NULL ? &full_methods : NULL;
  return rc;
}

static void
full_vfs_install (void)
{
  real_vfs = sqlite3_vfs_find (NULL);
  full_methods = (sqlite3_io_methods) {
    3, full_close, full_read, full_write, full_truncate, full_sync, full_file_size, full_lock,
    full_unlock, full_check_reserved, full_file_control, full_sector_size,
    full_device_characteristics, full_shm_map, full_shm_lock, full_shm_barrier, full_shm_unmap,
    full_fetch, full_unfetch,
  };
  full_vfs = *real_vfs;
  full_vfs.zName = "tessera-test-full";
  full_vfs.szOsFile = sizeof (FullFile) + real_vfs->szOsFile;
  full_vfs.xOpen = full_open;
  g_assert_cmpint (sqlite3_vfs_register (&full_vfs, 1), ==, SQLITE_OK);
}

static void
full_vfs_remove (void)
{
  sqlite3_vfs_unregister (&full_vfs);
  sqlite3_vfs_register (real_vfs, 1);
}

static void
test_disk_full (Fixture *f, gconstpointer data)
{
  static const gint64 budgets[] = { 0, 100, 1024, 4096, 5000, 9000, 20000 };
  g_autoptr(TesseraHistory) history = NULL;
  g_autoptr(TesseraHistoryConversation) c = NULL;
  g_autoptr(GError) error = NULL;
  g_autoptr(GString) big = g_string_new (NULL);
  gint64 cid, a;
  guint committed = 0, refused = 0;

  full_vfs_install ();
  history = open_ok (f->path);
  c = tessera_history_add_conversation (history, NULL, NULL, NULL, 0, NULL, 0, &error);
  g_assert_no_error (error);
  cid = tessera_history_conversation_get_id (c);
  a = append (history, cid, TESSERA_HISTORY_ROLE_ASSISTANT, "streaming");
  committed = 1;

  for (int i = 0; i < 300; i++)
    g_string_append (big, "lorem ipsum dolor sit amet ");

  for (guint i = 0; i < G_N_ELEMENTS (budgets); i++)
    {
      gint64 id;

      full_budget = budgets[i];
      id = tessera_history_append_message (history, cid, TESSERA_HISTORY_ROLE_USER, big->str, 0, &error);
      if (id == 0)
        {
          g_assert_error (error, TESSERA_HISTORY_ERROR, TESSERA_HISTORY_ERROR_DISK_FULL);
          if (refused == 0)
            g_test_message ("%s", error->message);
          g_clear_error (&error);
          refused++;
        }
      else
        committed++;
      /* A streaming update with no room at all fails the same way. */
      full_budget = 0;
      g_assert_false (tessera_history_update_message_text (history, a, big->str, &error));
      g_assert_error (error, TESSERA_HISTORY_ERROR, TESSERA_HISTORY_ERROR_DISK_FULL);
      g_clear_error (&error);
      full_budget = -1;

      /* Room again: nothing committed was lost, and writing works. */
      {
        g_autoptr(GPtrArray) messages = tessera_history_list_messages (history, cid, &error);
        g_assert_no_error (error);
        g_assert_cmpuint (messages->len, ==, committed);
        g_assert_cmpstr (tessera_history_message_get_text (messages->pdata[0]), ==, "streaming");
      }
      g_assert_true (tessera_history_verify (history, &error));
      g_assert_no_error (error);
    }
  g_assert_cmpuint (refused, >=, 3);
  g_clear_object (&history);
  full_vfs_remove ();

  /* And from a fresh process's point of view. */
  g_assert_cmpint (count_rows (f->path, "SELECT count(*) FROM messages"), ==, committed);
  history = open_ok (f->path);
  g_assert_true (tessera_history_verify (history, &error));
  g_assert_no_error (error);
}

/* ==== Crash ============================================================= */

typedef struct {
  gint64 id;
  int    i;        /* question or answer number */
  int    part;     /* committed answer part, 0 if none; 4: finished */
  gboolean user;
} Expected;

static void
check_after_kill (const char *db_path, GHashTable *expected, guint *n_checked)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(TesseraHistory) history = tessera_history_new (db_path, TESSERA_HISTORY_FLAGS_NONE, &error);
  GHashTableIter iter;
  gpointer value;
  sqlite3 *db;
  g_autofree char *integrity = NULL;
  GListModel *list;
  g_autoptr(GPtrArray) all = g_ptr_array_new_with_free_func (g_object_unref);
  g_autoptr(GHashTable) by_id = g_hash_table_new_full (g_int64_hash, g_int64_equal, g_free, NULL);

  /* The plain pragma through a plain connection… */
  db = raw_open (db_path);
  integrity = raw_text (db, "PRAGMA integrity_check");
  g_assert_cmpstr (integrity, ==, "ok");
  sqlite3_close (db);

  /* …and the store's own check, which covers the search index too. */
  g_assert_no_error (error);
  g_assert_true (tessera_history_verify (history, &error));
  g_assert_no_error (error);
  list = tessera_history_get_conversations (history);

  /* Every message of every conversation, by id. */
  for (guint k = 0; k < g_list_model_get_n_items (list); k++)
    {
      g_autoptr(TesseraHistoryConversation) c = g_list_model_get_item (list, k);
      GPtrArray *messages = tessera_history_list_messages (history,
                                                           tessera_history_conversation_get_id (c),
                                                           &error);
      g_assert_no_error (error);
      g_ptr_array_extend_and_steal (all, messages);
    }
  for (guint k = 0; k < all->len; k++)
    {
      gint64 id = tessera_history_message_get_id (all->pdata[k]);
      g_hash_table_insert (by_id, g_memdup2 (&id, sizeof id), all->pdata[k]);
    }

  g_hash_table_iter_init (&iter, expected);
  while (g_hash_table_iter_next (&iter, NULL, &value))
    {
      Expected *e = value;
      TesseraHistoryMessage *found = g_hash_table_lookup (by_id, &e->id);
      const char *text;

      if (found == NULL)
        g_error ("message %" G_GINT64_FORMAT " was committed but is gone", e->id);
      text = tessera_history_message_get_text (found);

      if (e->user)
        {
          g_autofree char *want = question_text (e->i);
          g_assert_cmpstr (text, ==, want);
        }
      else if (e->part == 4)
        {
          g_autofree char *want = answer_text (e->i);
          g_assert_cmpstr (text, ==, want);
          g_assert_true (tessera_history_message_get_finished (found));
          g_assert_cmpint (tessera_history_message_get_stopped (found), ==, e->i % 5 == 0);
        }
      else if (e->part > 0)
        {
          /* That part, a later one, or the final text: never older. */
          g_autofree char *final = answer_text (e->i);
          gboolean ok = g_strcmp0 (text, final) == 0;
          for (int k = e->part; k <= 3 && !ok; k++)
            {
              g_autofree char *part = answer_part_text (e->i, k);
              ok = g_strcmp0 (text, part) == 0;
            }
          if (!ok)
            g_error ("answer %d lost part %d: “%s”", e->i, e->part, text);
        }
      (*n_checked)++;
    }
}

static void
parse_reports (const char *line, GHashTable *expected)
{
  gint64 id = 0;
  int i = 0, k = 0;
  Expected *e;

  switch (line[0])
    {
    case 'U':
    case 'A':
    case 'F':
      if (sscanf (line + 2, "%" G_GINT64_FORMAT " %d", &id, &i) != 2)
        return;
      break;
    case 'T':
      if (sscanf (line + 2, "%" G_GINT64_FORMAT " %d %d", &id, &i, &k) != 3)
        return;
      break;
    default:
      return;
    }
  e = g_hash_table_lookup (expected, &id);
  if (e == NULL)
    {
      e = g_new0 (Expected, 1);
      e->id = id;
      e->i = i;
      e->user = line[0] == 'U';
      g_hash_table_insert (expected, &e->id, e);
    }
  if (line[0] == 'T')
    e->part = MAX (e->part, k);
  else if (line[0] == 'F')
    e->part = 4;
}

static void
test_crash (Fixture *f, gconstpointer data)
{
  const int rounds = 20;
  g_autoptr(GHashTable) expected = g_hash_table_new_full (g_int64_hash, g_int64_equal, NULL, g_free);
  g_autoptr(GRand) rand = g_rand_new_with_seed (20240519);
  guint n_checked = 0, n_lines = 0, n_conversations = 0;
  g_autofree char *data_dir = g_path_get_dirname (f->path);

  for (int round = 0; round < rounds; round++)
    {
      g_autoptr(GError) error = NULL;
      g_autoptr(GSubprocess) child = NULL;
      g_autoptr(GString) out = g_string_new (NULL);
      g_auto(GStrv) lines = NULL;
      GPollableInputStream *pipe;
      /* From the middle of opening the database to hundreds of writes. */
      gint64 delay = g_rand_int_range (rand, 5000, 150000);
      gint64 until;
      char buf[4096];
      gssize n;

      child = g_subprocess_new (G_SUBPROCESS_FLAGS_STDOUT_PIPE, &error,
                                helper_path, "write", f->path, NULL);
      g_assert_no_error (error);
      pipe = G_POLLABLE_INPUT_STREAM (g_subprocess_get_stdout_pipe (child));
      until = g_get_monotonic_time () + delay;
      /* Keep the pipe drained so that the writer never waits on it. */
      while (g_get_monotonic_time () < until)
        {
          n = g_pollable_input_stream_read_nonblocking (pipe, buf, sizeof buf, NULL, NULL);
          if (n > 0)
            g_string_append_len (out, buf, n);
          else if (n == 0)
            break;
          else
            g_usleep (500);
        }
      g_subprocess_send_signal (child, SIGKILL);
      g_subprocess_wait (child, NULL, &error);
      g_assert_no_error (error);
      g_assert_true (g_subprocess_get_if_signaled (child));
      g_assert_cmpint (g_subprocess_get_term_sig (child), ==, SIGKILL);
      while ((n = g_input_stream_read (G_INPUT_STREAM (pipe), buf, sizeof buf, NULL, &error)) > 0)
        g_string_append_len (out, buf, n);
      g_assert_no_error (error);

      lines = g_strsplit (out->str, "\n", -1);
      for (guint k = 0; lines[k] != NULL; k++)
        {
          /* A line cut by the kill is not a report. */
          if (lines[k + 1] == NULL)
            break;
          if (lines[k][0] == 'C')
            n_conversations++;
          parse_reports (lines[k], expected);
          n_lines++;
        }

      if (!g_file_test (f->path, G_FILE_TEST_EXISTS))
        continue;  /* killed before the database existed */
      check_after_kill (f->path, expected, &n_checked);
    }

  /* Every conversation's image copy is whole. */
  {
    g_autoptr(GError) error = NULL;
    g_autoptr(TesseraHistory) history = open_ok (f->path);
    GListModel *list = tessera_history_get_conversations (history);

    for (guint k = 0; k < g_list_model_get_n_items (list); k++)
      {
        g_autoptr(TesseraHistoryConversation) c = g_list_model_get_item (list, k);
        const char *path = tessera_history_conversation_get_image_path (c);
        g_autoptr(GdkPixbuf) pixbuf = gdk_pixbuf_new_from_file (path, &error);
        g_assert_no_error (error);
        g_assert_cmpint (gdk_pixbuf_get_width (pixbuf), ==, 400);
      }
  }

  g_test_message ("crash test: %d kills, %u reports, %u conversations, %u messages known "
                  "committed, %u message checks passed",
                  rounds, n_lines, n_conversations, g_hash_table_size (expected), n_checked);
  g_assert_cmpuint (g_hash_table_size (expected), >, 0);
}

int
main (int argc, char **argv)
{
  const char *env = g_getenv ("TESSERA_TEST_HISTORY_HELPER");
  g_autofree char *self_dir = g_path_get_dirname (argv[0]);
  int rc;

  g_test_init (&argc, &argv, NULL);
  /* Messages are checked in English. */
  g_setenv ("LANGUAGE", "C", TRUE);
  helper_path = env != NULL ? g_strdup (env) : g_build_filename (self_dir, "test-history-helper", NULL);

  g_test_add ("/store/create-empty", Fixture, NULL, fixture_set_up, test_create_empty, fixture_tear_down);
  g_test_add ("/store/migrate-from-v1", Fixture, NULL, fixture_set_up, test_migrate_from_v1, fixture_tear_down);
  g_test_add ("/store/too-new", Fixture, NULL, fixture_set_up, test_too_new, fixture_tear_down);
  g_test_add ("/store/not-a-database", Fixture, NULL, fixture_set_up, test_not_a_database, fixture_tear_down);
  g_test_add ("/store/conversations", Fixture, NULL, fixture_set_up, test_conversations, fixture_tear_down);
  g_test_add_func ("/store/titles", test_titles);
  g_test_add ("/store/messages", Fixture, NULL, fixture_set_up, test_messages, fixture_tear_down);
  g_test_add ("/store/search", Fixture, NULL, fixture_set_up, test_search, fixture_tear_down);
  g_test_add ("/store/export", Fixture, NULL, fixture_set_up, test_export, fixture_tear_down);
  g_test_add ("/store/read-only-flag", Fixture, NULL, fixture_set_up, test_read_only_flag, fixture_tear_down);
  g_test_add ("/store/read-only-permissions", Fixture, NULL, fixture_set_up, test_read_only_permissions,
              fixture_tear_down);
  g_test_add ("/store/locked", Fixture, NULL, fixture_set_up, test_locked, fixture_tear_down);
  g_test_add ("/store/disk-full", Fixture, NULL, fixture_set_up, test_disk_full, fixture_tear_down);
  g_test_add ("/store/crash", Fixture, NULL, fixture_set_up, test_crash, fixture_tear_down);

  rc = g_test_run ();
  g_free (helper_path);
  /* The overlay's digits load fonts; let leak checkers see them freed. */
  cairo_debug_reset_static_data ();
  FcFini ();
  return rc;
}
