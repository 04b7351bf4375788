/* SPDX-License-Identifier: GPL-3.0-or-later
 *
 * tessera-chat-view.c — the chat pane. Each message is a read-only
 * GtkTextView, so its text can be selected and copied; answers are
 * rendered from Markdown (tessera-markdown.c) every time the window hands
 * over a newer text, which the worker coalesces to one per frame at most.
 */
#define G_LOG_DOMAIN "tessera-chat-view"

#include "config.h"

#include <glib/gi18n.h>

#include "tessera-chat-view.h"
#include "tessera-markdown.h"

struct _TesseraChatView
{
  GtkWidget       parent_instance;

  /* Template children. */
  GtkWidget      *box;
  GtkStack       *stack;
  AdwStatusPage  *failed_page;
  GtkSpinner     *loading_spinner;
  GtkStack       *chat_stack;
  GtkBox         *suggestions_box;
  GtkScrolledWindow *scroller;
  GtkBox         *messages_box;
  GtkRevealer    *progress_revealer;
  GtkLabel       *progress_label;
  GtkLabel       *progress_detail;
  GtkProgressBar *progress_bar;
  GtkWidget      *compose_box;
  GtkTextView    *entry;
  GtkWidget      *placeholder;
  GtkButton      *send_button;

  TesseraChatState state;
  gboolean        busy;
  gboolean        stick_to_bottom;
  guint           pulse_id;
  GPtrArray      *messages;       /* each message's text widget, in order */
  GtkTextView    *streaming;      /* the answer being written, or NULL */
  GtkLabel       *streaming_footer;
};

G_DEFINE_FINAL_TYPE (TesseraChatView, tessera_chat_view, GTK_TYPE_WIDGET)

enum { SIGNAL_SEND, SIGNAL_STOP, N_SIGNALS };
static guint signals[N_SIGNALS];

/* Questions that show what the model is good at; a click asks them. */
static const char *suggestions[] = {
  N_("Describe this image in detail."),
  N_("What is the title of this document?"),
  N_("Summarise the table in this image."),
  N_("What does the chart show? Give the main numbers."),
};

/* ==== Messages ========================================================== */

static void
scroll_to_end (TesseraChatView *self)
{
  GtkAdjustment *adj = gtk_scrolled_window_get_vadjustment (self->scroller);
  gtk_adjustment_set_value (adj, gtk_adjustment_get_upper (adj) - gtk_adjustment_get_page_size (adj));
}

/* The view follows a streaming answer unless the person scrolled up to
 * read something earlier. */
static void
adjustment_changed_cb (GtkAdjustment *adj, TesseraChatView *self)
{
  if (self->stick_to_bottom)
    scroll_to_end (self);
}

static void
adjustment_value_changed_cb (GtkAdjustment *adj, TesseraChatView *self)
{
  double bottom = gtk_adjustment_get_upper (adj) - gtk_adjustment_get_page_size (adj);
  self->stick_to_bottom = gtk_adjustment_get_value (adj) >= bottom - 24;
}

/* GtkTextView lays its lines out in the background (after the first
 * frame) and its new height does not reach the scrolled window above it,
 * so an answer rendered before it was shown kept the height it had at a
 * narrow width: ten times too tall, the footer out of sight. A resize
 * once the layout has settled fixes it. */
static gboolean
refit_cb (gpointer data)
{
  GtkWidget *view = data;
  if (gtk_widget_get_parent (view) != NULL)
    gtk_widget_queue_resize (view);
  return G_SOURCE_REMOVE;
}

static void
refit_later (GtkTextView *view)
{
  g_timeout_add_full (G_PRIORITY_LOW, 200, refit_cb, g_object_ref (view), g_object_unref);
}

static void
copy_clicked_cb (GtkButton *button, GtkWidget *view)
{
  const char *markdown = g_object_get_data (G_OBJECT (view), "markdown");
  gdk_clipboard_set_text (gtk_widget_get_clipboard (view), markdown != NULL ? markdown : "");
}

/* Renders an answer and keeps its Markdown for Copy. */
static void
render_answer (GtkTextView *view, const char *text)
{
  g_object_set_data_full (G_OBJECT (view), "markdown", g_strdup (text != NULL ? text : ""), g_free);
  tessera_markdown_render (gtk_text_view_get_buffer (view), text);
}

/* A row: who speaks, the text, a dim footer. Questions are plain text in
 * a selectable label; answers are a text view the Markdown renders into. */
static GtkWidget *
add_message (TesseraChatView *self, gboolean user, GtkLabel **footer_out)
{
  GtkWidget *row = gtk_box_new (GTK_ORIENTATION_VERTICAL, 4);
  GtkWidget *who = gtk_label_new (user ? _("You") : _("Tessera"));
  GtkWidget *body;
  GtkWidget *footer = gtk_label_new (NULL);

  gtk_widget_add_css_class (row, "tessera-message");
  gtk_widget_add_css_class (row, user ? "tessera-question" : "tessera-answer");
  gtk_label_set_xalign (GTK_LABEL (who), 0);
  gtk_widget_add_css_class (who, "heading");
  gtk_widget_add_css_class (who, "caption-heading");

  if (user)
    {
      body = gtk_label_new (NULL);
      gtk_label_set_xalign (GTK_LABEL (body), 0);
      gtk_label_set_wrap (GTK_LABEL (body), TRUE);
      gtk_label_set_wrap_mode (GTK_LABEL (body), PANGO_WRAP_WORD_CHAR);
      gtk_label_set_selectable (GTK_LABEL (body), TRUE);
    }
  else
    {
      body = gtk_text_view_new ();
      gtk_text_view_set_editable (GTK_TEXT_VIEW (body), FALSE);
      gtk_text_view_set_cursor_visible (GTK_TEXT_VIEW (body), FALSE);
      gtk_text_view_set_wrap_mode (GTK_TEXT_VIEW (body), GTK_WRAP_WORD_CHAR);
      gtk_text_view_set_top_margin (GTK_TEXT_VIEW (body), 2);
      gtk_text_view_set_bottom_margin (GTK_TEXT_VIEW (body), 2);
    }
  gtk_widget_add_css_class (body, "tessera-message-text");

  gtk_label_set_xalign (GTK_LABEL (footer), 0);
  gtk_label_set_wrap (GTK_LABEL (footer), TRUE);
  gtk_widget_add_css_class (footer, "dim-label");
  gtk_widget_add_css_class (footer, "caption");
  gtk_widget_set_visible (footer, FALSE);

  gtk_box_append (GTK_BOX (row), who);
  gtk_box_append (GTK_BOX (row), body);
  if (user)
    gtk_box_append (GTK_BOX (row), footer);
  else
    {
      /* The footer line carries a Copy button for the answer's Markdown. */
      GtkWidget *line = gtk_box_new (GTK_ORIENTATION_HORIZONTAL, 6);
      GtkWidget *copy = gtk_button_new_from_icon_name ("edit-copy-symbolic");
      gtk_widget_set_tooltip_text (copy, _("Copy the Answer as Markdown"));
      gtk_widget_add_css_class (copy, "flat");
      gtk_widget_add_css_class (copy, "tessera-copy");
      gtk_widget_set_valign (copy, GTK_ALIGN_CENTER);
      gtk_widget_set_hexpand (footer, TRUE);
      g_signal_connect (copy, "clicked", G_CALLBACK (copy_clicked_cb), body);
      /* Shown once the answer is whole. */
      gtk_widget_set_visible (copy, FALSE);
      g_object_set_data (G_OBJECT (body), "copy-button", copy);
      gtk_box_append (GTK_BOX (line), footer);
      gtk_box_append (GTK_BOX (line), copy);
      gtk_box_append (GTK_BOX (row), line);
    }
  gtk_box_append (self->messages_box, row);
  g_ptr_array_add (self->messages, body);
  gtk_stack_set_visible_child_name (self->chat_stack, "messages");
  if (footer_out != NULL)
    *footer_out = GTK_LABEL (footer);
  return body;
}

static void
set_footer (GtkLabel *label, const char *footer, gboolean stopped)
{
  g_autofree char *text = NULL;

  if (stopped)
    text = footer != NULL && footer[0] != '\0' ? g_strdup_printf (_("Stopped · %s"), footer)
                                               : g_strdup (_("Stopped"));
  else
    text = g_strdup (footer);
  gtk_label_set_text (label, text != NULL ? text : "");
  gtk_widget_set_visible (GTK_WIDGET (label), text != NULL && text[0] != '\0');
}

void
tessera_chat_view_clear (TesseraChatView *self)
{
  GtkWidget *child;
  g_return_if_fail (TESSERA_IS_CHAT_VIEW (self));

  while ((child = gtk_widget_get_first_child (GTK_WIDGET (self->messages_box))) != NULL)
    gtk_box_remove (self->messages_box, child);
  g_ptr_array_set_size (self->messages, 0);
  self->streaming = NULL;
  self->streaming_footer = NULL;
  self->stick_to_bottom = TRUE;
  gtk_stack_set_visible_child_name (self->chat_stack, "empty");
}

void
tessera_chat_view_add_question (TesseraChatView *self, const char *text)
{
  GtkWidget *label;
  g_return_if_fail (TESSERA_IS_CHAT_VIEW (self));

  label = add_message (self, TRUE, NULL);
  gtk_label_set_text (GTK_LABEL (label), text);
  self->stick_to_bottom = TRUE;
}

void
tessera_chat_view_add_answer (TesseraChatView *self, const char *text, const char *footer, gboolean stopped)
{
  GtkLabel *footer_label;
  GtkTextView *view;
  g_return_if_fail (TESSERA_IS_CHAT_VIEW (self));

  view = GTK_TEXT_VIEW (add_message (self, FALSE, &footer_label));
  render_answer (view, text);
  set_footer (footer_label, footer, stopped);
  gtk_widget_set_visible (g_object_get_data (G_OBJECT (view), "copy-button"), TRUE);
  refit_later (view);
}

void
tessera_chat_view_begin_answer (TesseraChatView *self)
{
  g_return_if_fail (TESSERA_IS_CHAT_VIEW (self));
  self->streaming = GTK_TEXT_VIEW (add_message (self, FALSE, &self->streaming_footer));
  self->stick_to_bottom = TRUE;
}

void
tessera_chat_view_update_answer (TesseraChatView *self, const char *text)
{
  g_return_if_fail (TESSERA_IS_CHAT_VIEW (self));
  if (self->streaming == NULL)
    tessera_chat_view_begin_answer (self);
  render_answer (self->streaming, text);
}

void
tessera_chat_view_end_answer (TesseraChatView *self, const char *text, const char *footer, gboolean stopped)
{
  g_return_if_fail (TESSERA_IS_CHAT_VIEW (self));
  if (self->streaming == NULL)
    tessera_chat_view_begin_answer (self);
  render_answer (self->streaming, text != NULL ? text : "");
  set_footer (self->streaming_footer, footer, stopped);
  gtk_widget_set_visible (g_object_get_data (G_OBJECT (self->streaming), "copy-button"),
                          text != NULL && text[0] != '\0');
  refit_later (self->streaming);
  self->streaming = NULL;
  self->streaming_footer = NULL;
}

guint
tessera_chat_view_get_n_messages (TesseraChatView *self)
{
  g_return_val_if_fail (TESSERA_IS_CHAT_VIEW (self), 0);
  return self->messages->len;
}

char *
tessera_chat_view_dup_message_text (TesseraChatView *self, guint i)
{
  GtkTextBuffer *buffer;
  GtkTextIter start, end;
  g_return_val_if_fail (TESSERA_IS_CHAT_VIEW (self), NULL);
  g_return_val_if_fail (i < self->messages->len, NULL);

  if (GTK_IS_LABEL (g_ptr_array_index (self->messages, i)))
    return g_strdup (gtk_label_get_text (g_ptr_array_index (self->messages, i)));
  buffer = gtk_text_view_get_buffer (g_ptr_array_index (self->messages, i));
  gtk_text_buffer_get_bounds (buffer, &start, &end);
  return gtk_text_buffer_get_text (buffer, &start, &end, FALSE);
}

/* ==== State, busy, progress ============================================= */

static void
update_send_button (TesseraChatView *self)
{
  GtkButton *b = self->send_button;
  gboolean ready = self->state == TESSERA_CHAT_READY;

  gtk_button_set_icon_name (b, self->busy ? "media-playback-stop-symbolic" : "go-up-symbolic");
  gtk_widget_set_tooltip_text (GTK_WIDGET (b), self->busy ? _("Stop the Answer (Escape)") : _("Ask (Enter)"));
  if (self->busy)
    {
      gtk_widget_remove_css_class (GTK_WIDGET (b), "suggested-action");
      gtk_widget_add_css_class (GTK_WIDGET (b), "destructive-action");
    }
  else
    {
      gtk_widget_remove_css_class (GTK_WIDGET (b), "destructive-action");
      gtk_widget_add_css_class (GTK_WIDGET (b), "suggested-action");
    }
  gtk_widget_set_sensitive (GTK_WIDGET (b), ready || self->busy);
}

void
tessera_chat_view_set_state (TesseraChatView *self, TesseraChatState state, const char *message)
{
  static const char *pages[] = { "no-model", "loading", "failed", "chat" };
  g_return_if_fail (TESSERA_IS_CHAT_VIEW (self));

  self->state = state;
  if (state == TESSERA_CHAT_MODEL_FAILED)
    adw_status_page_set_description (ADW_STATUS_PAGE (self->failed_page), message);
  if (state == TESSERA_CHAT_LOADING_MODEL)
    gtk_spinner_start (self->loading_spinner);
  else
    gtk_spinner_stop (self->loading_spinner);
  gtk_stack_set_visible_child_name (self->stack, pages[state]);
  gtk_widget_set_visible (GTK_WIDGET (self->compose_box), state == TESSERA_CHAT_READY);
  update_send_button (self);
}

TesseraChatState
tessera_chat_view_get_state (TesseraChatView *self)
{
  g_return_val_if_fail (TESSERA_IS_CHAT_VIEW (self), TESSERA_CHAT_NO_MODEL);
  return self->state;
}

void
tessera_chat_view_set_busy (TesseraChatView *self, gboolean busy)
{
  g_return_if_fail (TESSERA_IS_CHAT_VIEW (self));
  self->busy = busy;
  update_send_button (self);
}

gboolean
tessera_chat_view_get_busy (TesseraChatView *self)
{
  g_return_val_if_fail (TESSERA_IS_CHAT_VIEW (self), FALSE);
  return self->busy;
}

static gboolean
pulse_cb (gpointer data)
{
  TesseraChatView *self = data;
  gtk_progress_bar_pulse (self->progress_bar);
  return G_SOURCE_CONTINUE;
}

void
tessera_chat_view_set_progress (TesseraChatView *self, const char *text, const char *detail, double fraction)
{
  g_return_if_fail (TESSERA_IS_CHAT_VIEW (self));

  gtk_revealer_set_reveal_child (self->progress_revealer, text != NULL);
  if (text == NULL)
    {
      g_clear_handle_id (&self->pulse_id, g_source_remove);
      return;
    }
  gtk_label_set_text (self->progress_label, text);
  gtk_label_set_text (self->progress_detail, detail != NULL ? detail : "");
  if (fraction < 0)
    {
      if (self->pulse_id == 0)
        self->pulse_id = g_timeout_add (120, pulse_cb, self);
    }
  else
    {
      g_clear_handle_id (&self->pulse_id, g_source_remove);
      gtk_progress_bar_set_fraction (self->progress_bar, CLAMP (fraction, 0.0, 1.0));
    }
}

const char *
tessera_chat_view_get_progress_text (TesseraChatView *self)
{
  g_return_val_if_fail (TESSERA_IS_CHAT_VIEW (self), NULL);
  if (!gtk_revealer_get_reveal_child (self->progress_revealer))
    return NULL;
  return gtk_label_get_text (self->progress_label);
}

/* ==== The entry ========================================================= */

void
tessera_chat_view_set_entry_text (TesseraChatView *self, const char *text)
{
  g_return_if_fail (TESSERA_IS_CHAT_VIEW (self));
  gtk_text_buffer_set_text (gtk_text_view_get_buffer (self->entry), text ? text : "", -1);
}

char *
tessera_chat_view_dup_entry_text (TesseraChatView *self)
{
  GtkTextBuffer *buffer;
  GtkTextIter start, end;
  g_return_val_if_fail (TESSERA_IS_CHAT_VIEW (self), NULL);

  buffer = gtk_text_view_get_buffer (self->entry);
  gtk_text_buffer_get_bounds (buffer, &start, &end);
  return gtk_text_buffer_get_text (buffer, &start, &end, FALSE);
}

void
tessera_chat_view_focus_entry (TesseraChatView *self)
{
  g_return_if_fail (TESSERA_IS_CHAT_VIEW (self));
  gtk_widget_grab_focus (GTK_WIDGET (self->entry));
}

gboolean
tessera_chat_view_send (TesseraChatView *self)
{
  g_autofree char *text = NULL;
  g_return_val_if_fail (TESSERA_IS_CHAT_VIEW (self), FALSE);

  if (self->busy || self->state != TESSERA_CHAT_READY)
    return FALSE;
  text = tessera_chat_view_dup_entry_text (self);
  g_strstrip (text);
  if (text[0] == '\0')
    return FALSE;
  tessera_chat_view_set_entry_text (self, "");
  g_signal_emit (self, signals[SIGNAL_SEND], 0, text);
  return TRUE;
}

static void
send_clicked_cb (TesseraChatView *self)
{
  if (self->busy)
    g_signal_emit (self, signals[SIGNAL_STOP], 0);
  else
    tessera_chat_view_send (self);
}

/* Enter sends, Shift+Enter is a new line, as in chat programs. */
static gboolean
entry_key_pressed_cb (GtkEventControllerKey *controller, guint keyval, guint keycode, GdkModifierType state,
                      TesseraChatView *self)
{
  if ((keyval == GDK_KEY_Return || keyval == GDK_KEY_KP_Enter || keyval == GDK_KEY_ISO_Enter) &&
      (state & (GDK_SHIFT_MASK | GDK_CONTROL_MASK | GDK_ALT_MASK)) == 0)
    {
      tessera_chat_view_send (self);
      return TRUE;
    }
  return FALSE;
}

static gboolean
escape_pressed_cb (GtkEventControllerKey *controller, guint keyval, guint keycode, GdkModifierType state,
                   TesseraChatView *self)
{
  if (keyval == GDK_KEY_Escape && self->busy)
    {
      g_signal_emit (self, signals[SIGNAL_STOP], 0);
      return TRUE;
    }
  return FALSE;
}

static void
entry_changed_cb (GtkTextBuffer *buffer, TesseraChatView *self)
{
  gtk_widget_set_visible (self->placeholder, gtk_text_buffer_get_char_count (buffer) == 0);
}

static void
suggestion_clicked_cb (GtkButton *button, TesseraChatView *self)
{
  tessera_chat_view_set_entry_text (self, g_object_get_data (G_OBJECT (button), "question"));
  if (!tessera_chat_view_send (self))
    tessera_chat_view_focus_entry (self);
}

/* ==== GObject =========================================================== */

static void
tessera_chat_view_dispose (GObject *object)
{
  TesseraChatView *self = TESSERA_CHAT_VIEW (object);

  g_clear_handle_id (&self->pulse_id, g_source_remove);
  gtk_widget_dispose_template (GTK_WIDGET (self), TESSERA_TYPE_CHAT_VIEW);
  G_OBJECT_CLASS (tessera_chat_view_parent_class)->dispose (object);
}

static void
tessera_chat_view_finalize (GObject *object)
{
  TesseraChatView *self = TESSERA_CHAT_VIEW (object);
  g_ptr_array_unref (self->messages);
  G_OBJECT_CLASS (tessera_chat_view_parent_class)->finalize (object);
}

static void
tessera_chat_view_class_init (TesseraChatViewClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);
  GtkWidgetClass *widget_class = GTK_WIDGET_CLASS (klass);

  object_class->dispose = tessera_chat_view_dispose;
  object_class->finalize = tessera_chat_view_finalize;

  /* ::send (question): the person asked; the text is trimmed, never empty. */
  signals[SIGNAL_SEND] = g_signal_new ("send", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST, 0, NULL, NULL,
                                       NULL, G_TYPE_NONE, 1, G_TYPE_STRING);
  /* ::stop: the person wants the running answer stopped. */
  signals[SIGNAL_STOP] = g_signal_new ("stop", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST, 0, NULL, NULL,
                                       NULL, G_TYPE_NONE, 0);

  gtk_widget_class_set_template_from_resource (widget_class, APP_PATH "/ui/tessera-chat-view.ui");
  gtk_widget_class_bind_template_child (widget_class, TesseraChatView, box);
  gtk_widget_class_bind_template_child (widget_class, TesseraChatView, stack);
  gtk_widget_class_bind_template_child (widget_class, TesseraChatView, failed_page);
  gtk_widget_class_bind_template_child (widget_class, TesseraChatView, loading_spinner);
  gtk_widget_class_bind_template_child (widget_class, TesseraChatView, chat_stack);
  gtk_widget_class_bind_template_child (widget_class, TesseraChatView, suggestions_box);
  gtk_widget_class_bind_template_child (widget_class, TesseraChatView, scroller);
  gtk_widget_class_bind_template_child (widget_class, TesseraChatView, messages_box);
  gtk_widget_class_bind_template_child (widget_class, TesseraChatView, progress_revealer);
  gtk_widget_class_bind_template_child (widget_class, TesseraChatView, progress_label);
  gtk_widget_class_bind_template_child (widget_class, TesseraChatView, progress_detail);
  gtk_widget_class_bind_template_child (widget_class, TesseraChatView, progress_bar);
  gtk_widget_class_bind_template_child (widget_class, TesseraChatView, compose_box);
  gtk_widget_class_bind_template_child (widget_class, TesseraChatView, entry);
  gtk_widget_class_bind_template_child (widget_class, TesseraChatView, placeholder);
  gtk_widget_class_bind_template_child (widget_class, TesseraChatView, send_button);

  gtk_widget_class_set_layout_manager_type (widget_class, GTK_TYPE_BIN_LAYOUT);
  gtk_widget_class_set_css_name (widget_class, "tessera-chat-view");
}

static void
tessera_chat_view_init (TesseraChatView *self)
{
  GtkEventController *keys;
  GtkAdjustment *adj;

  gtk_widget_init_template (GTK_WIDGET (self));
  self->messages = g_ptr_array_new ();
  self->stick_to_bottom = TRUE;

  for (guint i = 0; i < G_N_ELEMENTS (suggestions); i++)
    {
      GtkWidget *b = gtk_button_new_with_label (_(suggestions[i]));
      g_object_set_data (G_OBJECT (b), "question", (gpointer) _(suggestions[i]));
      gtk_widget_add_css_class (b, "pill");
      g_signal_connect (b, "clicked", G_CALLBACK (suggestion_clicked_cb), self);
      gtk_box_append (self->suggestions_box, b);
    }

  g_signal_connect_swapped (self->send_button, "clicked", G_CALLBACK (send_clicked_cb), self);
  g_signal_connect (gtk_text_view_get_buffer (self->entry), "changed", G_CALLBACK (entry_changed_cb), self);

  keys = gtk_event_controller_key_new ();
  gtk_event_controller_set_propagation_phase (keys, GTK_PHASE_CAPTURE);
  g_signal_connect (keys, "key-pressed", G_CALLBACK (entry_key_pressed_cb), self);
  gtk_widget_add_controller (GTK_WIDGET (self->entry), keys);

  keys = gtk_event_controller_key_new ();
  g_signal_connect (keys, "key-pressed", G_CALLBACK (escape_pressed_cb), self);
  gtk_widget_add_controller (GTK_WIDGET (self), keys);

  adj = gtk_scrolled_window_get_vadjustment (self->scroller);
  g_signal_connect (adj, "changed", G_CALLBACK (adjustment_changed_cb), self);
  g_signal_connect (adj, "value-changed", G_CALLBACK (adjustment_value_changed_cb), self);

  tessera_chat_view_set_state (self, TESSERA_CHAT_NO_MODEL, NULL);
  tessera_chat_view_clear (self);
}

GtkWidget *
tessera_chat_view_new (void)
{
  return g_object_new (TESSERA_TYPE_CHAT_VIEW, NULL);
}
