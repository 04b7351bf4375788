/* SPDX-License-Identifier: GPL-3.0-or-later
 *
 * test-history-helper.c — the other process in tests/test-history.c.
 *
 *   test-history-helper write DB
 *     Starts a conversation and writes messages in a loop until killed.
 *     After each call returns, one line on stdout says what is now
 *     committed:
 *       C ID          conversation ID exists
 *       U ID I        user message ID holds question_text (I)
 *       A ID I        assistant message ID exists (answer I)
 *       T ID I K      ... and holds at least part K of answer I
 *       F ID I        ... and is finished with answer_text (I)
 *   test-history-helper lock-exclusive DB
 *     Holds an exclusive lock on DB (no one may read or write) until stdin
 *     closes; says "locked" once it holds it.
 *   test-history-helper lock-write DB
 *     Holds the write lock (others may read) until stdin closes.
 *   test-history-helper try-write DB
 *     Opens DB and tries to write; exits 0 if that failed with a
 *     read-only error, 1 otherwise. Run as root, it first becomes
 *     nobody, for whom permission bits count.
 */
#include "config.h"

#include <grp.h>
#include <stdio.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

#include <sqlite3.h>

#include "tessera-history.h"
#include "test-history-texts.h"

static void
say (const char *format, ...) G_GNUC_PRINTF (1, 2);

/* Unbuffered: a line must leave the process as soon as it is true. */
static void
say (const char *format, ...)
{
  g_autofree char *line = NULL;
  va_list args;
  const char *p;
  size_t left;

  va_start (args, format);
  line = g_strdup_vprintf (format, args);
  va_end (args);
  for (p = line, left = strlen (line); left > 0;)
    {
      ssize_t n = write (STDOUT_FILENO, p, left);
      if (n <= 0)
        _exit (3);
      p += n;
      left -= n;
    }
}

static G_GNUC_NORETURN void
fail (const GError *error)
{
  g_printerr ("test-history-helper: %s\n", error->message);
  exit (2);
}

static GBytes *
make_image (void)
{
  g_autoptr(GdkPixbuf) pixbuf = gdk_pixbuf_new (GDK_COLORSPACE_RGB, FALSE, 8, 400, 300);
  g_autoptr(GError) error = NULL;
  char *data = NULL;
  gsize size = 0;

  gdk_pixbuf_fill (pixbuf, 0x3366ccff);
  if (!gdk_pixbuf_save_to_buffer (pixbuf, &data, &size, "png", &error, NULL))
    fail (error);
  return g_bytes_new_take (data, size);
}

static int
run_write (const char *path)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(TesseraHistory) history = tessera_history_new (path, TESSERA_HISTORY_FLAGS_NONE, &error);
  g_autoptr(TesseraHistoryConversation) conversation = NULL;
  g_autoptr(GBytes) image = make_image ();
  gint64 conversation_id;

  if (history == NULL)
    fail (error);
  conversation = tessera_history_add_conversation (history, image, "crash.png", NULL, 9,
                                                   "model.gguf", 1234, &error);
  if (conversation == NULL)
    fail (error);
  conversation_id = tessera_history_conversation_get_id (conversation);
  say ("C %" G_GINT64_FORMAT "\n", conversation_id);

  for (int i = 0;; i++)
    {
      g_autofree char *question = question_text (i);
      g_autofree char *answer = answer_text (i);
      TesseraHistoryTimings timings = { 10 + i, 100.5, 7.25 };
      gint64 id;

      id = tessera_history_append_message (history, conversation_id, TESSERA_HISTORY_ROLE_USER,
                                           question, 9, &error);
      if (id == 0)
        fail (error);
      say ("U %" G_GINT64_FORMAT " %d\n", id, i);

      id = tessera_history_append_message (history, conversation_id,
                                           TESSERA_HISTORY_ROLE_ASSISTANT, "", 9, &error);
      if (id == 0)
        fail (error);
      say ("A %" G_GINT64_FORMAT " %d\n", id, i);

      for (int k = 1; k <= 3; k++)
        {
          g_autofree char *part = answer_part_text (i, k);
          if (!tessera_history_update_message_text (history, id, part, &error))
            fail (error);
          say ("T %" G_GINT64_FORMAT " %d %d\n", id, i, k);
        }

      if (!tessera_history_finish_message (history, id, answer, &timings, i % 5 == 0, &error))
        fail (error);
      say ("F %" G_GINT64_FORMAT " %d\n", id, i);
    }
}

/* Raw SQLite on purpose: the lock must be held exactly as told. */
static int
run_lock (const char *path, gboolean exclusive)
{
  sqlite3 *db = NULL;
  char *message = NULL;
  char buf[64];
  const char *sql = exclusive
    ? "PRAGMA locking_mode = EXCLUSIVE; BEGIN EXCLUSIVE;"
    : "BEGIN IMMEDIATE;";

  if (sqlite3_open (path, &db) != SQLITE_OK ||
      sqlite3_exec (db, sql, NULL, NULL, &message) != SQLITE_OK)
    {
      g_printerr ("test-history-helper: %s\n", message != NULL ? message : sqlite3_errmsg (db));
      return 2;
    }
  say ("locked\n");
  while (read (STDIN_FILENO, buf, sizeof buf) > 0)
    ;
  sqlite3_exec (db, "ROLLBACK", NULL, NULL, NULL);
  sqlite3_close (db);
  return 0;
}

static int
run_try_write (const char *path)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(TesseraHistory) history = NULL;
  GListModel *list;
  g_autoptr(TesseraHistoryConversation) first = NULL;

  if (geteuid () == 0)
    {
      /* Permission bits do not bind root. */
      gid_t nogroup = 65534;
      if (setgroups (1, &nogroup) != 0 || setgid (65534) != 0 || setuid (65534) != 0)
        {
          perror ("test-history-helper: could not become nobody");
          return 2;
        }
    }

  history = tessera_history_new (path, TESSERA_HISTORY_FLAGS_NONE, &error);
  if (history == NULL)
    {
      g_print ("open: %s\n", error->message);
      return g_error_matches (error, TESSERA_HISTORY_ERROR, TESSERA_HISTORY_ERROR_READ_ONLY) ? 0 : 1;
    }
  if (!tessera_history_is_read_only (history))
    {
      g_print ("opened read-write\n");
      return 1;
    }
  list = tessera_history_get_conversations (history);
  if (g_list_model_get_n_items (list) == 0)
    {
      g_print ("read nothing\n");
      return 1;
    }
  first = g_list_model_get_item (list, 0);
  if (tessera_history_append_message (history, tessera_history_conversation_get_id (first),
                                      TESSERA_HISTORY_ROLE_USER, "lost?", 0, &error) != 0)
    {
      g_print ("wrote a message\n");
      return 1;
    }
  g_print ("append: %s\n", error->message);
  return g_error_matches (error, TESSERA_HISTORY_ERROR, TESSERA_HISTORY_ERROR_READ_ONLY) ? 0 : 1;
}

int
main (int argc, char **argv)
{
  if (argc != 3)
    {
      g_printerr ("usage: test-history-helper (write|lock-exclusive|lock-write|try-write) DB\n");
      return 2;
    }
  if (strcmp (argv[1], "write") == 0)
    return run_write (argv[2]);
  if (strcmp (argv[1], "lock-exclusive") == 0)
    return run_lock (argv[2], TRUE);
  if (strcmp (argv[1], "lock-write") == 0)
    return run_lock (argv[2], FALSE);
  if (strcmp (argv[1], "try-write") == 0)
    return run_try_write (argv[2]);
  g_printerr ("test-history-helper: unknown command %s\n", argv[1]);
  return 2;
}
