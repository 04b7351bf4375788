/* SPDX-License-Identifier: GPL-3.0-or-later
 *
 * tessera-window-chat.c — the window's conversations: a question goes to
 * the worker with the image and the turns before it, the answer streams
 * into the chat pane and into the history, and a conversation from the
 * history comes back with its image, HD-N and messages.
 *
 * The history is written as the answer grows (at most once a second, not
 * waiting for the disk), so a crash or a power cut loses at most the last
 * second of an answer, never a question.
 */
#define G_LOG_DOMAIN "tessera-window"

#include "config.h"

#include <glib/gi18n.h>

#include "tessera-history-sidebar.h"
#include "tessera-image-load.h"
#include "tessera-window-private.h"

/* The chat pane's width at first, in logical pixels. */
#define CHAT_WIDTH 440

/* How often a streaming answer is written to the history. */
#define SAVE_INTERVAL_US (1000 * 1000)

typedef struct Asking {
  TesseraWindow *window;          /* NULL once the window is gone */
  GCancellable  *cancellable;
  gint64         message_id;      /* the answer's row in the history; 0: not kept */
  char          *text;            /* the answer so far */
  gint64         last_saved;
  int            hd_num;
} Asking;

static void
asking_free (Asking *a)
{
  g_clear_object (&a->cancellable);
  g_free (a->text);
  g_free (a);
}

/* ==== Model state ======================================================= */

static void
worker_state_cb (TesseraWindow *self)
{
  TesseraChatState state = TESSERA_CHAT_NO_MODEL;
  const char *error = NULL;

  if (self->worker != NULL)
    switch (tessera_worker_get_state (self->worker))
      {
      case TESSERA_WORKER_LOADING:
        state = TESSERA_CHAT_LOADING_MODEL;
        break;
      case TESSERA_WORKER_READY:
        state = TESSERA_CHAT_READY;
        break;
      case TESSERA_WORKER_FAILED:
        state = TESSERA_CHAT_MODEL_FAILED;
        error = tessera_worker_get_error (self->worker);
        break;
      case TESSERA_WORKER_EMPTY:
      default:
        break;
      }
  tessera_chat_view_set_state (self->chat_view, state, error);
}

/* ==== Formatting ======================================================== */

static char *
format_seconds (double s)
{
  if (s < 0)
    return NULL;
  if (s < 90)
    /* Translators: time left; %d is whole seconds. */
    return g_strdup_printf (_("about %d s left"), MAX (1, (int) (s + 0.5)));
  if (s < 90 * 60)
    return g_strdup_printf (_("about %d min left"), (int) (s / 60 + 0.5));
  return g_strdup_printf (_("about %.1f h left"), s / 3600);
}

/* The dim line under an answer. */
static char *
answer_footer (int hd_num, int n_tokens, double prefill_speed, double decode_speed)
{
  GString *s = g_string_new (NULL);

  if (hd_num > 0)
    g_string_append_printf (s, "HD-%d", hd_num);
  if (n_tokens > 0)
    {
      if (s->len > 0)
        g_string_append (s, " · ");
      g_string_append_printf (s, ngettext ("%d token", "%d tokens", n_tokens), n_tokens);
    }
  if (decode_speed > 0)
    {
      if (s->len > 0)
        g_string_append (s, " · ");
      g_string_append_printf (s, _("%.1f tokens/s"), decode_speed);
    }
  if (prefill_speed > 0)
    {
      if (s->len > 0)
        g_string_append (s, " · ");
      g_string_append_printf (s, _("prompt read at %.1f tokens/s"), prefill_speed);
    }
  return g_string_free (s, FALSE);
}

/* ==== Conversations ===================================================== */

/* Marks the conversation shown in the list, without opening it again. */
static void
sidebar_select (TesseraWindow *self, gint64 id)
{
  if (self->sidebar != NULL)
    tessera_history_sidebar_select (TESSERA_HISTORY_SIDEBAR (self->sidebar), id);
}

static void
clear_turns (TesseraWindow *self)
{
  g_ptr_array_set_size (self->turns, 0);
}

static void
update_actions (TesseraWindow *self)
{
  gboolean busy = self->asking != NULL;
  gtk_widget_action_set_enabled (GTK_WIDGET (self), "win.stop-answer", busy);
  gtk_widget_action_set_enabled (GTK_WIDGET (self), "win.new-conversation", !busy);
}

static void
start_new_conversation (TesseraWindow *self)
{
  self->conversation_id = 0;
  clear_turns (self);
  tessera_chat_view_clear (self->chat_view);
  sidebar_select (self, (gint64) 0);
}

void
_tessera_window_image_changed (TesseraWindow *self)
{
  if (self->restoring_id != 0)
    {
      /* The image of the conversation being opened: it goes on, and the
       * embedding cache knows the image by its stored SHA-256. */
      TesseraHistoryConversation *c =
        self->history ? tessera_history_lookup_conversation (self->history, self->restoring_id) : NULL;
      const char *name = c ? tessera_history_conversation_get_image_name (c) : NULL;

      self->restoring_id = 0;
      g_free (self->image_key);
      self->image_key = g_steal_pointer (&self->restoring_key);
      /* The copy in the data folder is named by its hash; show the name
       * the person knew it by. */
      if (name != NULL && name[0] != '\0')
        {
          adw_window_title_set_subtitle (self->window_title, name);
          g_free (self->image_name);
          self->image_name = g_strdup (name);
        }
      return;
    }
  if (self->asking != NULL)
    {
      /* The answer belongs to the image it was asked about; stop it. */
      g_cancellable_cancel (self->asking->cancellable);
    }
  start_new_conversation (self);
}

static gboolean
conversation_has_image (TesseraWindow *self)
{
  TesseraHistoryConversation *c;

  if (self->conversation_id == 0 || self->history == NULL)
    return tessera_image_view_get_pixbuf (self->image_view) != NULL;
  c = tessera_history_lookup_conversation (self->history, self->conversation_id);
  return c != NULL && tessera_history_conversation_get_image_sha256 (c) != NULL;
}

/* Saves a new conversation when its first question is asked, so that
 * opening images one after another does not fill the history. */
static gboolean
ensure_conversation (TesseraWindow *self, int hd_num, GError **error)
{
  TesseraHistoryConversation *c;
  GdkPixbuf *pixbuf = tessera_image_view_get_pixbuf (self->image_view);
  const char *model = self->worker ? tessera_worker_get_model_name (self->worker) : NULL;
  gint64 model_size = self->worker ? tessera_worker_get_model_size (self->worker) : 0;

  if (self->conversation_id != 0 || self->history == NULL)
    return TRUE;
  if (pixbuf != NULL && self->image_file != NULL)
    c = tessera_history_add_conversation_for_file (self->history, self->image_file, pixbuf, hd_num, model,
                                                   model_size, NULL, error);
  else if (pixbuf != NULL && self->image_bytes != NULL)
    c = tessera_history_add_conversation (self->history, self->image_bytes, self->image_name, pixbuf, hd_num,
                                          model, model_size, error);
  else
    c = tessera_history_add_conversation (self->history, NULL, NULL, NULL, hd_num, model, model_size, error);
  if (c == NULL)
    return FALSE;
  self->conversation_id = tessera_history_conversation_get_id (c);
  if (tessera_history_conversation_get_image_sha256 (c) != NULL && self->image_key == NULL)
    self->image_key = g_strdup (tessera_history_conversation_get_image_sha256 (c));
  sidebar_select (self, self->conversation_id);
  g_object_unref (c);
  return TRUE;
}

static TsrGenParams
gen_params (GSettings *settings)
{
  TsrGenParams p = tsr_gen_default_params ();
  g_autofree char *decoding = g_settings_get_string (settings, "decoding");

  p.max_new_tokens = g_settings_get_int (settings, "max-new-tokens");
  if (g_str_equal (decoding, "sample"))
    {
      p.mode = TSR_GEN_SAMPLE;
      p.temperature = (float) g_settings_get_double (settings, "temperature");
      p.top_p = (float) g_settings_get_double (settings, "top-p");
      /* Sampling is asked for to get different answers. */
      p.seed = g_random_int ();
    }
  else if (g_str_equal (decoding, "beams"))
    {
      p.mode = TSR_GEN_BEAM;
      p.n_beams = g_settings_get_int (settings, "beams");
    }
  return p;
}

/* ==== Asking ============================================================ */

static void
save_answer_text (Asking *a, gboolean force)
{
  TesseraWindow *self = a->window;
  gint64 now = g_get_monotonic_time ();
  g_autoptr(GError) error = NULL;

  if (self == NULL || self->history == NULL || a->message_id == 0 || a->text == NULL)
    return;
  if (!force && now - a->last_saved < SAVE_INTERVAL_US)
    return;
  a->last_saved = now;
  if (!tessera_history_update_message_text (self->history, a->message_id, a->text, &error))
    {
      /* Say it once; the answer still shows. */
      _tessera_window_show_error (self, error->message);
      a->message_id = 0;
    }
}

static void
ask_progress_cb (const TesseraWorkProgress *p, gpointer user_data)
{
  Asking *a = user_data;
  TesseraWindow *self = a->window;
  g_autofree char *text = NULL;
  g_autofree char *left = NULL;
  g_autofree char *detail = NULL;
  double fraction = -1;

  if (self == NULL)
    return;
  left = format_seconds (p->seconds_left);
  switch (p->stage)
    {
    case TESSERA_WORK_WAITING:
      text = g_strdup (_("Waiting for the model…"));
      tessera_image_view_set_highlight (self->image_view, -1);
      break;
    case TESSERA_WORK_ENCODING:
      /* View 0 is the global view; views 1… are the tiles. A batch of
       * views runs at once: views done … done + batch − 1. */
      {
        int first = MAX (p->done, 1), last = MIN (p->done + MAX (p->batch, 1) - 1, p->total - 1);
        if (p->done == 0 && last < 1)
          text = g_strdup (_("Encoding the global view"));
        else if (last > first)
          text = g_strdup_printf (_("Encoding tiles %d–%d of %d"), first, last, p->total - 1);
        else
          text = g_strdup_printf (_("Encoding tile %d of %d"), first, p->total - 1);
        if (p->done < p->total)
          tessera_image_view_set_highlight_range (self->image_view, first - 1, last - first + 1);
        else
          tessera_image_view_set_highlight (self->image_view, -1);
      }
      fraction = p->total > 0 ? (double) p->done / p->total : -1;
      if (p->rate > 0)
        detail = left ? g_strdup_printf (_("%.1f s a tile · %s"), 1.0 / p->rate, left)
                      : g_strdup_printf (_("%.1f s a tile"), 1.0 / p->rate);
      else
        detail = g_strdup (left);
      break;
    case TESSERA_WORK_READING:
      tessera_image_view_set_highlight (self->image_view, -1);
      text = g_strdup_printf (_("Reading the prompt %d%%"), p->total > 0 ? (int) (100.0 * p->done / p->total) : 0);
      fraction = p->total > 0 ? (double) p->done / p->total : -1;
      if (p->rate > 0)
        detail = left ? g_strdup_printf (_("%.1f tokens/s · %s"), p->rate, left)
                      : g_strdup_printf (_("%.1f tokens/s"), p->rate);
      else
        detail = g_strdup (left);
      break;
    case TESSERA_WORK_ANSWERING:
    default:
      tessera_image_view_set_highlight (self->image_view, -1);
      text = g_strdup (_("Answering"));
      if (p->rate > 0)
        detail = g_strdup_printf (_("%d tokens · %.1f tokens/s"), p->done, p->rate);
      break;
    }
  tessera_chat_view_set_progress (self->chat_view, text, detail, fraction);
}

static void
ask_text_cb (const char *text, gpointer user_data)
{
  Asking *a = user_data;

  g_free (a->text);
  a->text = g_strdup (text);
  if (a->window == NULL)
    return;
  tessera_chat_view_update_answer (a->window->chat_view, text);
  save_answer_text (a, FALSE);
}

static void
ask_done_cb (GObject *source, GAsyncResult *result, gpointer user_data)
{
  Asking *a = user_data;
  TesseraWindow *self = a->window;
  g_autoptr(GError) error = NULL;
  g_autoptr(TesseraWorkerAnswer) answer = tessera_worker_ask_finish (TESSERA_WORKER (source), result, &error);
  g_autofree char *footer = NULL;
  const char *text;
  gboolean stopped;

  if (self == NULL)
    {
      asking_free (a);
      return;
    }
  self->asking = NULL;

  text = answer != NULL ? answer->text : a->text != NULL ? a->text : "";
  stopped = answer == NULL || answer->stopped;
  if (answer != NULL && !answer->stopped)
    footer = answer_footer (a->hd_num, answer->n_tokens, answer->timings.prefill_tokens_per_second,
                            answer->timings.decode_tokens_per_second);
  else if (error != NULL)
    footer = g_strdup (error->message);
  else
    footer = answer_footer (a->hd_num, 0, 0, 0);

  tessera_chat_view_end_answer (self->chat_view, text, footer, stopped);
  tessera_chat_view_set_busy (self->chat_view, FALSE);
  tessera_chat_view_set_progress (self->chat_view, NULL, NULL, 0);
  tessera_image_view_set_highlight (self->image_view, -1);
  g_ptr_array_add (self->turns, g_strdup (text));

  if (self->history != NULL && a->message_id != 0)
    {
      g_autoptr(GError) save_error = NULL;
      TesseraHistoryTimings t = { 0 };
      if (answer != NULL)
        {
          t.n_tokens = answer->n_tokens;
          t.prefill_speed = answer->timings.prefill_tokens_per_second;
          t.decode_speed = answer->timings.decode_tokens_per_second;
        }
      if (!tessera_history_finish_message (self->history, a->message_id, text, &t, stopped, &save_error))
        _tessera_window_show_error (self, save_error->message);
    }
  if (error != NULL)
    _tessera_window_show_error (self, error->message);
  update_actions (self);
  asking_free (a);
}

static void
send_cb (TesseraChatView *view, const char *question, TesseraWindow *self)
{
  g_autoptr(GError) error = NULL;
  g_autofree TesseraWorkerTurn *history = NULL;
  g_autofree char *meta = NULL;
  TesseraWorkerRequest req = { 0 };
  int hd_num = tessera_image_view_get_hd_num (self->image_view);
  gboolean with_image;
  Asking *a;

  if (self->asking != NULL)
    return;
  if (self->worker == NULL || tessera_worker_get_state (self->worker) != TESSERA_WORKER_READY)
    {
      _tessera_window_show_error (self, _("No model is ready. Choose the model file in Preferences."));
      return;
    }
  with_image = conversation_has_image (self);
  if (with_image && tessera_image_view_get_plan (self->image_view) == NULL)
    {
      _tessera_window_show_error (self, tessera_image_view_get_plan_error (self->image_view));
      return;
    }

  a = g_new0 (Asking, 1);
  a->window = self;
  a->cancellable = g_cancellable_new ();
  a->hd_num = with_image ? hd_num : 0;
  self->asking = a;

  /* Keeping the conversation must not stop the question: a read-only or
   * full disk is said once, the answer still comes. */
  if (!ensure_conversation (self, hd_num, &error))
    {
      _tessera_window_show_error (self, error->message);
      g_clear_error (&error);
    }
  else if (self->conversation_id != 0)
    {
      if (tessera_history_append_message (self->history, self->conversation_id, TESSERA_HISTORY_ROLE_USER,
                                          question, a->hd_num, &error) == 0 ||
          (a->message_id = tessera_history_append_message (self->history, self->conversation_id,
                                                           TESSERA_HISTORY_ROLE_ASSISTANT, "", 0, &error)) == 0)
        {
          _tessera_window_show_error (self, error->message);
          g_clear_error (&error);
        }
    }

  history = g_new0 (TesseraWorkerTurn, self->turns->len / 2 + 1);
  for (guint i = 0; i + 1 < self->turns->len; i += 2)
    {
      history[i / 2].question = g_ptr_array_index (self->turns, i);
      history[i / 2].answer = g_ptr_array_index (self->turns, i + 1);
    }
  req.conversation_id = self->conversation_id;
  if (with_image)
    {
      req.pixbuf = tessera_image_view_get_pixbuf (self->image_view);
      req.image_key = self->image_key;
    }
  req.hd_num = hd_num;
  req.history = history;
  req.n_history = (int) (self->turns->len / 2);
  req.question = question;
  meta = g_settings_get_string (self->settings, "system-prompt");
  req.system_prompt = meta;
  req.params = gen_params (self->settings);

  g_ptr_array_add (self->turns, g_strdup (question));
  tessera_chat_view_add_question (self->chat_view, question);
  tessera_chat_view_begin_answer (self->chat_view);
  tessera_chat_view_set_busy (self->chat_view, TRUE);
  update_actions (self);

  tessera_worker_ask (self->worker, &req, a->cancellable, ask_progress_cb, ask_text_cb, a, ask_done_cb, a);
}

static void
stop_cb (TesseraChatView *view, TesseraWindow *self)
{
  if (self->asking != NULL)
    {
      g_cancellable_cancel (self->asking->cancellable);
      tessera_chat_view_set_progress (self->chat_view, _("Stopping…"), NULL, -1);
    }
}

/* ==== Opening a conversation of the history ============================= */

void
tessera_window_open_conversation (TesseraWindow *self, gint64 id)
{
  TesseraHistoryConversation *c;
  g_autoptr(GPtrArray) messages = NULL;
  g_autoptr(GError) error = NULL;
  const char *image_path;
  int hd;

  g_return_if_fail (TESSERA_IS_WINDOW (self));
  if (self->history == NULL || id == self->conversation_id)
    return;
  if (self->asking != NULL)
    {
      _tessera_window_show_error (self, _("Stop the answer before opening another conversation."));
      sidebar_select (self, self->conversation_id);
      return;
    }
  c = tessera_history_lookup_conversation (self->history, id);
  messages = c ? tessera_history_list_messages (self->history, id, &error) : NULL;
  if (c == NULL || messages == NULL)
    {
      _tessera_window_show_error (self, error ? error->message : _("That conversation is gone."));
      return;
    }

  start_new_conversation (self);
  self->conversation_id = id;
  for (guint i = 0; i < messages->len; i++)
    {
      TesseraHistoryMessage *m = g_ptr_array_index (messages, i);
      const char *text = tessera_history_message_get_text (m);
      if (tessera_history_message_get_role (m) == TESSERA_HISTORY_ROLE_USER)
        {
          /* A question whose answer never got saved is left out of the
           * turns, as the engine never finished it. */
          if (self->turns->len % 2 == 1)
            g_ptr_array_remove_index (self->turns, self->turns->len - 1);
          g_ptr_array_add (self->turns, g_strdup (text));
          tessera_chat_view_add_question (self->chat_view, text);
        }
      else
        {
          g_autofree char *footer =
            answer_footer (0, tessera_history_message_get_n_tokens (m),
                           tessera_history_message_get_prefill_speed (m),
                           tessera_history_message_get_decode_speed (m));
          if (self->turns->len % 2 == 1)
            g_ptr_array_add (self->turns, g_strdup (text));
          tessera_chat_view_add_answer (self->chat_view, text, footer,
                                        tessera_history_message_get_stopped (m) ||
                                        !tessera_history_message_get_finished (m));
        }
    }
  if (self->turns->len % 2 == 1)
    g_ptr_array_remove_index (self->turns, self->turns->len - 1);

  hd = tessera_history_conversation_get_hd_num (c);
  if (hd > 0)
    g_settings_set_int (self->settings, "hd-num", hd);
  sidebar_select (self, id);

  image_path = tessera_history_conversation_get_image_path (c);
  if (image_path != NULL)
    {
      g_autoptr(GFile) file = g_file_new_for_path (image_path);
      self->restoring_id = id;
      g_free (self->restoring_key);
      self->restoring_key = g_strdup (tessera_history_conversation_get_image_sha256 (c));
      tessera_window_open_file (self, file);
    }
}

gint64
tessera_window_get_conversation (TesseraWindow *self)
{
  g_return_val_if_fail (TESSERA_IS_WINDOW (self), 0);
  return self->conversation_id;
}

gboolean
tessera_window_is_answering (TesseraWindow *self)
{
  g_return_val_if_fail (TESSERA_IS_WINDOW (self), FALSE);
  return self->asking != NULL;
}

TesseraChatView *
tessera_window_get_chat_view (TesseraWindow *self)
{
  g_return_val_if_fail (TESSERA_IS_WINDOW (self), NULL);
  return self->chat_view;
}

/* ==== The conversation list ============================================ */

static void
conversation_activated_cb (TesseraHistorySidebar *sidebar, gint64 id, TesseraWindow *self)
{
  tessera_window_open_conversation (self, id);
}

typedef struct {
  TesseraWindow *window;
  gint64         id;
} Undo;

static void
undo_delete_cb (AdwToast *toast, Undo *u)
{
  g_autoptr(GError) error = NULL;
  if (u->window->history != NULL &&
      !tessera_history_undelete_conversation (u->window->history, u->id, &error))
    _tessera_window_show_error (u->window, error->message);
}

static void
undo_free (gpointer data, GClosure *closure)
{
  g_free (data);
}

static void
conversation_deleted_cb (TesseraHistorySidebar *sidebar, gint64 id, const char *title, TesseraWindow *self)
{
  g_autofree char *text = NULL;
  AdwToast *toast;
  Undo *u;

  /* While an answer runs it goes on into the deleted conversation, so
   * that Undo brings it back whole. */
  if (id == self->conversation_id && self->asking == NULL)
    start_new_conversation (self);
  text = g_strdup_printf (_("“%s” deleted"), title != NULL && title[0] != '\0' ? title : _("Conversation"));
  toast = adw_toast_new (text);
  adw_toast_set_button_label (toast, _("_Undo"));
  adw_toast_set_priority (toast, ADW_TOAST_PRIORITY_HIGH);
  u = g_new0 (Undo, 1);
  u->window = self;
  u->id = id;
  g_signal_connect_data (toast, "button-clicked", G_CALLBACK (undo_delete_cb), u, undo_free, 0);
  _tessera_window_show_toast (self, toast);
}

static void
notify_user_cb (TesseraHistorySidebar *sidebar, const char *message, TesseraWindow *self)
{
  AdwToast *toast = adw_toast_new (message);
  adw_toast_set_timeout (toast, 5);
  _tessera_window_show_toast (self, toast);
}

/* ==== Actions =========================================================== */

static void
search_action (GtkWidget *widget, const char *action_name, GVariant *param)
{
  TesseraWindow *self = TESSERA_WINDOW (widget);
  if (self->sidebar == NULL)
    return;
  adw_flap_set_reveal_flap (self->flap, TRUE);
  tessera_history_sidebar_start_search (TESSERA_HISTORY_SIDEBAR (self->sidebar));
}

static void
new_conversation_action (GtkWidget *widget, const char *action_name, GVariant *param)
{
  TesseraWindow *self = TESSERA_WINDOW (widget);
  if (self->asking != NULL)
    return;
  start_new_conversation (self);
  tessera_chat_view_focus_entry (self->chat_view);
}

static void
stop_answer_action (GtkWidget *widget, const char *action_name, GVariant *param)
{
  stop_cb (NULL, TESSERA_WINDOW (widget));
}

static void
focus_question_action (GtkWidget *widget, const char *action_name, GVariant *param)
{
  tessera_chat_view_focus_entry (TESSERA_WINDOW (widget)->chat_view);
}

void
_tessera_window_chat_class_init (GtkWidgetClass *widget_class)
{
  gtk_widget_class_install_action (widget_class, "win.new-conversation", NULL, new_conversation_action);
  gtk_widget_class_install_action (widget_class, "win.stop-answer", NULL, stop_answer_action);
  gtk_widget_class_install_action (widget_class, "win.focus-question", NULL, focus_question_action);
  gtk_widget_class_install_action (widget_class, "win.search", NULL, search_action);
  gtk_widget_class_add_binding_action (widget_class, GDK_KEY_f, GDK_CONTROL_MASK, "win.search", NULL);
  gtk_widget_class_add_binding_action (widget_class, GDK_KEY_F9, 0, "win.sidebar-visible", NULL);
  gtk_widget_class_add_binding_action (widget_class, GDK_KEY_n, GDK_CONTROL_MASK, "win.new-conversation", NULL);
  gtk_widget_class_add_binding_action (widget_class, GDK_KEY_Escape, 0, "win.stop-answer", NULL);
  gtk_widget_class_add_binding_action (widget_class, GDK_KEY_l, GDK_CONTROL_MASK, "win.focus-question", NULL);
}

/* The chat pane starts at a reading width; the image takes the rest.
 * GtkPaned knows its size only once allocated. */
static void
paned_max_position_cb (GtkPaned *paned, GParamSpec *pspec, TesseraWindow *self)
{
  int max = 0, chat_min = 0;
  g_object_get (paned, "max-position", &max, NULL);
  if (max < 400)
    return;
  /* max-position leaves the chat pane its minimum width. */
  gtk_widget_measure (GTK_WIDGET (self->chat_view), GTK_ORIENTATION_HORIZONTAL, -1, &chat_min, NULL, NULL, NULL);
  gtk_paned_set_position (paned, max + chat_min - MAX (CHAT_WIDTH, chat_min));
  g_signal_handlers_disconnect_by_func (paned, paned_max_position_cb, self);
}

void
_tessera_window_chat_init (TesseraWindow *self)
{
  g_autoptr(GAction) sidebar_action = NULL;

  self->turns = g_ptr_array_new_with_free_func (g_free);
  g_signal_connect (self->paned, "notify::max-position", G_CALLBACK (paned_max_position_cb), self);
  g_signal_connect (self->chat_view, "send", G_CALLBACK (send_cb), self);
  g_signal_connect (self->chat_view, "stop", G_CALLBACK (stop_cb), self);
  if (self->worker != NULL)
    g_signal_connect_object (self->worker, "notify::state", G_CALLBACK (worker_state_cb), self,
                             G_CONNECT_SWAPPED);
  worker_state_cb (self);

  sidebar_action = g_settings_create_action (self->settings, "sidebar-visible");
  g_action_map_add_action (G_ACTION_MAP (self), sidebar_action);
  g_settings_bind (self->settings, "sidebar-visible", self->flap, "reveal-flap", G_SETTINGS_BIND_DEFAULT);

  self->sidebar = tessera_history_sidebar_new (self->history);
  gtk_widget_set_vexpand (self->sidebar, TRUE);
  gtk_box_append (self->sidebar_box, self->sidebar);
  g_signal_connect (self->sidebar, "conversation-activated", G_CALLBACK (conversation_activated_cb), self);
  g_signal_connect (self->sidebar, "conversation-deleted", G_CALLBACK (conversation_deleted_cb), self);
  g_signal_connect (self->sidebar, "notify-user", G_CALLBACK (notify_user_cb), self);

  update_actions (self);
}

void
tessera_window_set_history_error (TesseraWindow *self, const char *message)
{
  g_return_if_fail (TESSERA_IS_WINDOW (self));
  if (self->sidebar != NULL)
    tessera_history_sidebar_set_error (TESSERA_HISTORY_SIDEBAR (self->sidebar), message);
  _tessera_window_show_error (self, message);
}

void
_tessera_window_chat_dispose (TesseraWindow *self)
{
  if (self->asking != NULL)
    {
      g_cancellable_cancel (self->asking->cancellable);
      self->asking->window = NULL;
      self->asking = NULL;
    }
  g_clear_pointer (&self->turns, g_ptr_array_unref);
  if (self->sidebar != NULL)
    g_signal_handlers_disconnect_by_data (self->sidebar, self);
  self->sidebar = NULL;
  g_clear_pointer (&self->restoring_key, g_free);
  g_clear_object (&self->worker);
  g_clear_object (&self->history);
}
