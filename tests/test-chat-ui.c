/* SPDX-License-Identifier: GPL-3.0-or-later
 *
 * test-chat-ui.c — asking in the window, under Xvfb, with a tiny model of
 * the real architecture (converted at test time from the random
 * checkpoint in tests/fixtures/checkpoints, so no model file is committed):
 * no model, a corrupt model, a question about the sample document that
 * streams in and lands in the history, a follow-up, Stop, and a restart
 * that lists the conversation and continues it.
 *
 * The answers the window shows are compared with what the engine answers
 * when asked directly (tsr_chat with the same image, HD-N and turns): the
 * window must send the prompt the model expects, not just any prompt.
 *
 *   test-chat-ui SAMPLE.png CHECKPOINT_DIR
 */
#include "config.h"

#include <glib/gstdio.h>
#include <adwaita.h>

#include "tessera-engine.h"
#include "tessera-history.h"
#include "tessera-image-load.h"
#include "tessera-window.h"
#include "tessera-worker.h"

static const char *sample_path;
static const char *checkpoint_dir;
static char *tmp_dir;
static char *model_path;
static char *db_path;
static GSettings *settings;

#define HD 4

static void
spin_until (gboolean (*done) (gpointer), gpointer data, int timeout_ms)
{
  gint64 end = g_get_monotonic_time () + (gint64) timeout_ms * 1000;
  while (!done (data))
    {
      g_main_context_iteration (NULL, FALSE);
      g_usleep (500);
      if (g_get_monotonic_time () > end)
        g_error ("timed out after %d ms", timeout_ms);
    }
}

static void
settle (void)
{
  for (int i = 0; i < 30; i++)
    {
      while (g_main_context_iteration (NULL, FALSE))
        ;
      g_usleep (2000);
    }
}

static gboolean
worker_settled (gpointer data)
{
  TesseraWorkerState s = tessera_worker_get_state (TESSERA_WORKER (data));
  return s != TESSERA_WORKER_LOADING;
}

static gboolean
image_loaded (gpointer data)
{
  return !tessera_window_is_loading (TESSERA_WINDOW (data));
}

static gboolean
not_answering (gpointer data)
{
  return !tessera_window_is_answering (TESSERA_WINDOW (data));
}

/* ---- The engine asked directly ------------------------------------------ */

typedef struct {
  TsrGguf      *g;
  TsrLlm       *llm;
  TsrTokenizer *tok;
  TsrVision    *vision;
  TsrPool      *pool;
  TsrChat      *chat;
  guint8       *rgb;
  int           w, h;
} Direct;

static void
direct_open (Direct *d)
{
  TsrError err;
  TsrChatConfig config;
  g_autoptr(GError) error = NULL;
  g_autoptr(GdkPixbuf) pixbuf = tessera_image_load (sample_path, NULL, &error);

  g_assert_no_error (error);
  g_assert_cmpint (tsr_gguf_open (model_path, &d->g, &err), ==, TSR_OK);
  g_assert_cmpint (tsr_llm_load (d->g, &d->llm, &err), ==, TSR_OK);
  g_assert_cmpint (tsr_tokenizer_from_gguf (d->g, &d->tok, &err), ==, TSR_OK);
  g_assert_cmpint (tsr_vision_new (d->g, &d->vision, &err), ==, TSR_OK);
  g_assert_cmpint (tsr_pool_new (0, &d->pool, &err), ==, TSR_OK);
  tsr_chat_config_init (&config);
  config.vision = d->vision;
  g_assert_cmpint (tsr_chat_new (d->llm, d->tok, d->pool, &config, &d->chat, &err), ==, TSR_OK);
  d->rgb = tessera_image_to_rgb8 (pixbuf, NULL, &error);
  g_assert_no_error (error);
  d->w = gdk_pixbuf_get_width (pixbuf);
  d->h = gdk_pixbuf_get_height (pixbuf);
}

static char *
direct_ask (Direct *d, const char *question, gboolean with_image, int max_new)
{
  TsrChatImage image = { 0 };
  TsrChatAnswer answer = { 0 };
  TsrGenParams params = tsr_gen_default_params ();
  TsrError err;
  g_autofree char *q = with_image ? g_strconcat (TSR_CHAT_IMAGE_TAG, question, NULL) : g_strdup (question);
  char *text;

  image.rgb = d->rgb;
  image.width = d->w;
  image.height = d->h;
  image.stride = (size_t) d->w * 3;
  image.hd_num = HD;
  params.max_new_tokens = max_new;
  g_assert_cmpint (tsr_chat_ask (d->chat, q, with_image ? &image : NULL, with_image ? 1 : 0, &params, NULL,
                                 &answer, &err), ==, TSR_OK);
  text = g_strdup (answer.text);
  tsr_chat_answer_clear (&answer);
  return text;
}

static void
direct_close (Direct *d)
{
  tsr_chat_free (d->chat);
  tsr_pool_free (d->pool);
  tsr_vision_free (d->vision);
  tsr_tokenizer_free (d->tok);
  tsr_llm_free (d->llm);
  tsr_gguf_close (d->g);
  g_free (d->rgb);
}

/* ---- Helpers ------------------------------------------------------------ */

static TesseraWindow *
window_with (TesseraWorker *worker, TesseraHistory *history)
{
  TesseraWindow *win = tessera_window_new_full (NULL, worker, history);
  gtk_window_set_default_size (GTK_WINDOW (win), 1400, 900);
  gtk_window_present (GTK_WINDOW (win));
  settle ();
  return win;
}

static void
open_sample (TesseraWindow *win)
{
  g_autoptr(GFile) file = g_file_new_for_path (sample_path);
  tessera_window_open_file (win, file);
  spin_until (image_loaded, win, 30000);
  settle ();
}

static TesseraWorker *
ready_worker (void)
{
  TesseraWorker *worker = tessera_worker_new ();
  tessera_worker_load_model (worker, model_path, 0);
  spin_until (worker_settled, worker, 60000);
  g_assert_cmpint (tessera_worker_get_state (worker), ==, TESSERA_WORKER_READY);
  return worker;
}

typedef struct {
  TesseraWindow *win;
  gboolean       saw_encoding, saw_reading, saw_highlight;
  int            text_updates;
  char          *last_text;
  gint64         last_iteration, longest_stall;
} Watch;

/* Runs the main loop until the answer ends, noting what the person saw. */
static void
watch_answer (Watch *w, int timeout_ms)
{
  TesseraChatView *chat = tessera_window_get_chat_view (w->win);
  gint64 end = g_get_monotonic_time () + (gint64) timeout_ms * 1000;

  w->last_iteration = g_get_monotonic_time ();
  while (tessera_window_is_answering (w->win))
    {
      g_autofree char *p = NULL;
      guint n;
      gint64 now;

      g_main_context_iteration (NULL, FALSE);
      p = g_strdup (tessera_chat_view_get_progress_text (chat));
      n = tessera_chat_view_get_n_messages (chat);
      now = g_get_monotonic_time ();
      if (now - w->last_iteration > 100000)
        g_test_message ("stall of %.0f ms at progress '%s', %u messages", (now - w->last_iteration) / 1000.0,
                        p ? p : "", n);
      w->longest_stall = MAX (w->longest_stall, now - w->last_iteration);
      w->last_iteration = now;
      if (p != NULL && g_str_has_prefix (p, "Encoding tile"))
        w->saw_encoding = TRUE;
      if (p != NULL && g_str_has_prefix (p, "Reading the prompt"))
        w->saw_reading = TRUE;
      if (n > 0)
        {
          g_autofree char *t = tessera_chat_view_dup_message_text (chat, n - 1);
          if (g_strcmp0 (t, w->last_text) != 0)
            {
              w->text_updates++;
              g_free (w->last_text);
              w->last_text = g_steal_pointer (&t);
            }
        }
      g_usleep (300);
      if (now > end)
        g_error ("the answer did not end in %d ms", timeout_ms);
    }
  settle ();
}

static GPtrArray *
messages_of (TesseraHistory *history, gint64 id)
{
  g_autoptr(GError) error = NULL;
  GPtrArray *m = tessera_history_list_messages (history, id, &error);
  g_assert_no_error (error);
  return m;
}

static const char *
text_of (GPtrArray *m, guint i)
{
  return tessera_history_message_get_text (g_ptr_array_index (m, i));
}

/* ---- Tests -------------------------------------------------------------- */

static void
test_no_model (void)
{
  g_autoptr(TesseraWorker) worker = tessera_worker_new ();
  TesseraWindow *win = window_with (worker, NULL);

  g_assert_cmpint (tessera_chat_view_get_state (tessera_window_get_chat_view (win)), ==, TESSERA_CHAT_NO_MODEL);
  /* Sending does nothing without a model. */
  tessera_chat_view_set_entry_text (tessera_window_get_chat_view (win), "Hello?");
  g_assert_false (tessera_chat_view_send (tessera_window_get_chat_view (win)));
  gtk_window_destroy (GTK_WINDOW (win));
}

static void
test_bad_models (void)
{
  g_autofree char *junk = g_build_filename (tmp_dir, "junk.gguf", NULL);
  g_autofree char *truncated = g_build_filename (tmp_dir, "truncated.gguf", NULL);
  g_autofree char *contents = NULL;
  gsize len;
  g_autoptr(TesseraWorker) worker = tessera_worker_new ();
  TesseraWindow *win = window_with (worker, NULL);
  TesseraChatView *chat = tessera_window_get_chat_view (win);
  const char *files[] = { junk, truncated, "/nonexistent/model.gguf" };

  g_assert_true (g_file_set_contents (junk, "this is not a model, only text\n", -1, NULL));
  g_assert_true (g_file_get_contents (model_path, &contents, &len, NULL));
  g_assert_true (g_file_set_contents (truncated, contents, (gssize) (len / 2), NULL));

  for (guint i = 0; i < G_N_ELEMENTS (files); i++)
    {
      tessera_worker_load_model (worker, files[i], 0);
      spin_until (worker_settled, worker, 30000);
      settle ();
      g_assert_cmpint (tessera_worker_get_state (worker), ==, TESSERA_WORKER_FAILED);
      g_assert_cmpint (tessera_chat_view_get_state (chat), ==, TESSERA_CHAT_MODEL_FAILED);
      g_test_message ("%s: %s", files[i], tessera_worker_get_error (worker));
      g_assert_nonnull (strstr (tessera_worker_get_error (worker), "model"));
    }

  /* A good file after bad ones works. */
  tessera_worker_load_model (worker, model_path, 0);
  spin_until (worker_settled, worker, 60000);
  settle ();
  g_assert_cmpint (tessera_chat_view_get_state (chat), ==, TESSERA_CHAT_READY);
  gtk_window_destroy (GTK_WINDOW (win));
}

static void
test_ask_stop_restart (void)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(TesseraWorker) worker = ready_worker ();
  g_autoptr(TesseraHistory) history = tessera_history_new (db_path, TESSERA_HISTORY_FLAGS_NONE, &error);
  g_autoptr(GPtrArray) m = NULL;
  g_autofree char *expect1 = NULL, *expect2 = NULL, *expect3 = NULL;
  TesseraWindow *win;
  TesseraChatView *chat;
  Watch w = { 0 };
  gint64 id;
  Direct d = { 0 };

  g_assert_no_error (error);
  g_settings_set_int (settings, "hd-num", HD);
  g_settings_set_int (settings, "max-new-tokens", 24);
  g_settings_set_string (settings, "decoding", "greedy");

  win = window_with (worker, history);
  chat = tessera_window_get_chat_view (win);
  open_sample (win);
  g_assert_cmpint (tessera_window_get_conversation (win), ==, 0);

  /* 1. A question about the image streams in and is kept. */
  tessera_chat_view_set_entry_text (chat, "What is the title of this report?");
  g_assert_true (tessera_chat_view_send (chat));
  g_assert_true (tessera_window_is_answering (win));
  w.win = win;
  watch_answer (&w, 120000);
  g_test_message ("first answer: %d text updates, longest main-loop stall %.1f ms, encoding seen %d, "
                  "reading seen %d", w.text_updates, w.longest_stall / 1000.0, w.saw_encoding, w.saw_reading);
  /* The tiny model is fast and progress is coalesced to what a frame
   * shows, so no stage is sure to be seen here; test-worker checks the
   * reports themselves. The answer is. */
  g_assert_cmpint (w.text_updates, >=, 1);
  g_assert_cmpint (w.longest_stall, <, 2 * G_USEC_PER_SEC);
  g_assert_cmpuint (tessera_chat_view_get_n_messages (chat), ==, 2);

  id = tessera_window_get_conversation (win);
  g_assert_cmpint (id, >, 0);
  m = messages_of (history, id);
  g_assert_cmpuint (m->len, ==, 2);
  g_assert_cmpstr (text_of (m, 0), ==, "What is the title of this report?");
  g_assert_true (tessera_history_message_get_finished (g_ptr_array_index (m, 1)));
  g_assert_false (tessera_history_message_get_stopped (g_ptr_array_index (m, 1)));
  g_assert_cmpint (tessera_history_message_get_n_tokens (g_ptr_array_index (m, 1)), >, 0);
  g_assert_cmpint (tessera_history_message_get_hd_num (g_ptr_array_index (m, 0)), ==, HD);

  direct_open (&d);
  expect1 = direct_ask (&d, "What is the title of this report?", TRUE, 24);
  g_assert_cmpstr (text_of (m, 1), ==, expect1);
  g_clear_pointer (&m, g_ptr_array_unref);

  /* 2. A follow-up continues the same session. */
  tessera_chat_view_set_entry_text (chat, "And the year?");
  g_assert_true (tessera_chat_view_send (chat));
  watch_answer (&w, 120000);
  m = messages_of (history, id);
  g_assert_cmpuint (m->len, ==, 4);
  expect2 = direct_ask (&d, "And the year?", FALSE, 24);
  g_assert_cmpstr (text_of (m, 3), ==, expect2);
  g_clear_pointer (&m, g_ptr_array_unref);

  /* 3. Stop keeps what was written and marks it. */
  g_settings_set_int (settings, "max-new-tokens", 4000);
  tessera_chat_view_set_entry_text (chat, "Describe every part of the image in detail.");
  g_assert_true (tessera_chat_view_send (chat));
  {
    gint64 end = g_get_monotonic_time () + 60 * G_USEC_PER_SEC;
    for (;;)
      {
        guint n = tessera_chat_view_get_n_messages (chat);
        g_autofree char *t = tessera_chat_view_dup_message_text (chat, n - 1);
        g_main_context_iteration (NULL, FALSE);
        if (strlen (t) > 8 || !tessera_window_is_answering (win))
          break;
        g_assert_cmpint (g_get_monotonic_time (), <, end);
        g_usleep (500);
      }
  }
  g_assert_true (tessera_window_is_answering (win));
  g_assert_true (gtk_widget_activate_action (GTK_WIDGET (win), "win.stop-answer", NULL));
  spin_until (not_answering, win, 30000);
  settle ();
  m = messages_of (history, id);
  g_assert_cmpuint (m->len, ==, 6);
  g_assert_true (tessera_history_message_get_stopped (g_ptr_array_index (m, 5)));
  g_assert_cmpuint (strlen (text_of (m, 5)), >, 0);
  g_clear_pointer (&m, g_ptr_array_unref);

  /* 4. After a restart the conversation is listed, opens, and goes on. */
  gtk_window_destroy (GTK_WINDOW (win));
  g_clear_object (&history);
  settle ();
  history = tessera_history_new (db_path, TESSERA_HISTORY_FLAGS_NONE, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (g_list_model_get_n_items (tessera_history_get_conversations (history)), >=, 1);
  {
    g_autoptr(TesseraHistoryConversation) c = g_list_model_get_item (tessera_history_get_conversations (history), 0);
    g_assert_cmpint (tessera_history_conversation_get_id (c), ==, id);
    g_assert_cmpstr (tessera_history_conversation_get_title (c), ==, "What is the title of this report?");
  }
  g_settings_set_int (settings, "hd-num", 25);
  g_settings_set_int (settings, "max-new-tokens", 24);
  win = window_with (worker, history);
  chat = tessera_window_get_chat_view (win);
  tessera_window_open_conversation (win, id);
  spin_until (image_loaded, win, 30000);
  settle ();
  g_assert_cmpint (tessera_window_get_conversation (win), ==, id);
  g_assert_cmpuint (tessera_chat_view_get_n_messages (chat), ==, 6);
  g_assert_cmpint (g_settings_get_int (settings, "hd-num"), ==, HD);
  g_assert_nonnull (tessera_image_view_get_pixbuf (tessera_window_get_image_view (win)));

  w.win = win;
  tessera_chat_view_set_entry_text (chat, "Thank you.");
  g_assert_true (tessera_chat_view_send (chat));
  watch_answer (&w, 120000);
  m = messages_of (history, id);
  g_assert_cmpuint (m->len, ==, 8);
  /* The engine, given the stopped answer as the history holds it. */
  {
    TsrError err;
    g_assert_cmpint (tsr_chat_add_turn (d.chat, "Describe every part of the image in detail.", NULL, 0,
                                        text_of (m, 5), &err), ==, TSR_OK);
  }
  expect3 = direct_ask (&d, "Thank you.", FALSE, 24);
  g_assert_cmpstr (text_of (m, 7), ==, expect3);

  direct_close (&d);
  gtk_window_destroy (GTK_WINDOW (win));
  g_free (w.last_text);
  settle ();
}

int
main (int argc, char **argv)
{
  TsrConvertParams params;
  TsrError err;
  int rc;

  g_setenv ("GSETTINGS_BACKEND", "memory", TRUE);
  g_setenv ("LANGUAGE", "C", TRUE);
  gtk_test_init (&argc, &argv, NULL);
  adw_init ();
  if (argc < 3)
    g_error ("usage: test-chat-ui SAMPLE.png CHECKPOINT_DIR");
  sample_path = argv[1];
  checkpoint_dir = argv[2];

  tmp_dir = g_dir_make_tmp ("tessera-chat-ui-XXXXXX", NULL);
  g_assert_nonnull (tmp_dir);
  model_path = g_build_filename (tmp_dir, "tiny.gguf", NULL);
  db_path = g_build_filename (tmp_dir, "history", "history.db", NULL);
  tsr_convert_params_init (&params);
  params.type = TSR_DTYPE_F32;
  if (tsr_convert (checkpoint_dir, model_path, &params, &err) != TSR_OK)
    g_error ("converting %s: %s", checkpoint_dir, err.message);
  settings = g_settings_new (APP_ID);

  g_test_add_func ("/chat-ui/no-model", test_no_model);
  g_test_add_func ("/chat-ui/bad-models", test_bad_models);
  g_test_add_func ("/chat-ui/ask-stop-restart", test_ask_stop_restart);
  rc = g_test_run ();

  g_object_unref (settings);
  {
    g_autofree char *cmd = g_strdup_printf ("rm -rf '%s'", tmp_dir);
    if (system (cmd) != 0)
      g_printerr ("could not remove %s\n", tmp_dir);
  }
  return rc;
}
