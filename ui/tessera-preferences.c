/* SPDX-License-Identifier: GPL-3.0-or-later
 *
 * tessera-preferences.c — the preferences window. Every control writes a key
 * of io.github.tessera.Tessera and follows it when something else changes
 * it; nothing here talks to the model, which reads the keys when the next
 * question starts.
 */
#define G_LOG_DOMAIN "tessera-preferences"

#include "config.h"

#include <string.h>

#include <glib/gi18n.h>
#include <glib/gstdio.h>

#include "tessera-preferences.h"

struct _TesseraPreferences
{
  AdwPreferencesWindow parent_instance;

  /* Template children. */
  AdwActionRow         *model_row;
  GtkButton            *clear_button;
  GtkButton            *choose_button;
  AdwActionRow         *threads_row;
  GtkSpinButton        *threads_spin;
  GtkSpinButton        *hd_spin;
  GtkSpinButton        *max_tokens_spin;
  AdwComboRow          *decoding_row;
  AdwActionRow         *temperature_row;
  GtkSpinButton        *temperature_spin;
  AdwActionRow         *top_p_row;
  GtkSpinButton        *top_p_spin;
  AdwActionRow         *beams_row;
  GtkSpinButton        *beams_spin;
  GtkTextView          *prompt_view;
  GtkLabel             *prompt_hint;
  GtkButton            *reset_prompt_button;

  GSettings            *settings;
  GtkFileChooserNative *chooser;
  /* The toast on screen, if any (a weak pointer). */
  AdwToast             *toast;
  /* The text view holds edits not yet written to system-prompt. Writing on
   * every keystroke would make whoever watches the key see half-typed
   * instructions. */
  gboolean              prompt_dirty;
  /* Set while we, not the user, fill the text view. */
  gboolean              loading_prompt;
};

G_DEFINE_FINAL_TYPE (TesseraPreferences, tessera_preferences, ADW_TYPE_PREFERENCES_WINDOW)

enum {
  PROP_0,
  PROP_SETTINGS,
  N_PROPS
};

static GParamSpec *properties[N_PROPS];

/* The values of the decoding key, in the order of the combo row's items in
 * tessera-preferences.ui. */
static const char * const decoding_names[] = { "greedy", "sample", "beams" };

static void
dismiss_toast (TesseraPreferences *self)
{
  if (self->toast != NULL)
    adw_toast_dismiss (self->toast);
  g_clear_weak_pointer (&self->toast);
}

static void
show_toast (TesseraPreferences *self, const char *message)
{
  AdwToast *toast = adw_toast_new (message);

  dismiss_toast (self);
  adw_toast_set_timeout (toast, 8);
  g_set_weak_pointer (&self->toast, toast);
  adw_preferences_window_add_toast (ADW_PREFERENCES_WINDOW (self), toast);
  g_message ("%s", message);
}

/* ==== Model file ======================================================== */

/* The folder as the user thinks of it: ~ for the home folder. */
static char *
display_folder (const char *dir)
{
  const char *home = g_get_home_dir ();
  size_t n = strlen (home);
  g_autofree char *shown = NULL;

  if (n > 1 && strncmp (dir, home, n) == 0 && (dir[n] == '\0' || dir[n] == G_DIR_SEPARATOR))
    shown = g_strconcat ("~", dir + n, NULL);
  return g_filename_display_name (shown != NULL ? shown : dir);
}

static void
update_model_row (TesseraPreferences *self)
{
  AdwPreferencesRow *row = ADW_PREFERENCES_ROW (self->model_row);
  g_autofree char *path = g_settings_get_string (self->settings, "model-path");
  g_autofree char *name = NULL;
  g_autofree char *dir = NULL;
  g_autofree char *folder = NULL;

  gtk_widget_set_visible (GTK_WIDGET (self->clear_button), path[0] != '\0');
  if (path[0] == '\0')
    {
      adw_preferences_row_set_title (row, _("No model chosen"));
      adw_action_row_set_subtitle (self->model_row,
                                   _("Choose the .gguf file that tessera-cli convert wrote"));
      return;
    }

  name = g_filename_display_basename (path);
  dir = g_path_get_dirname (path);
  folder = display_folder (dir);
  adw_preferences_row_set_title (row, name);
  /* The file may have moved since it was chosen: say so here rather than
   * only when a question fails. */
  if (g_file_test (path, G_FILE_TEST_IS_REGULAR))
    adw_action_row_set_subtitle (self->model_row, folder);
  else
    {
      /* Translators: %s is a folder, such as ~/models. */
      g_autofree char *missing = g_strdup_printf (_("Not found in %s"), folder);
      adw_action_row_set_subtitle (self->model_row, missing);
    }
}

/* Catches the common mistake of choosing a checkpoint shard or the
 * download folder's config instead of the converted file. */
static gboolean
is_gguf_file (const char *path)
{
  char magic[4];
  FILE *f = g_fopen (path, "rb");
  gboolean ok;

  if (f == NULL)
    return FALSE;
  ok = fread (magic, 1, sizeof magic, f) == sizeof magic && memcmp (magic, "GGUF", 4) == 0;
  fclose (f);
  return ok;
}

static void
chooser_response_cb (TesseraPreferences   *self,
                     int                   response,
                     GtkFileChooserNative *chooser)
{
  if (response == GTK_RESPONSE_ACCEPT)
    {
      g_autoptr(GFile) file = gtk_file_chooser_get_file (GTK_FILE_CHOOSER (chooser));
      g_autofree char *path = file != NULL ? g_file_get_path (file) : NULL;

      if (file == NULL)
        ;
      else if (path == NULL)
        {
          g_autofree char *uri = g_file_get_uri (file);
          g_autofree char *message =
            g_strdup_printf (_("“%s” is not a local file. Save it to disk first."), uri);
          show_toast (self, message);
        }
      else if (!is_gguf_file (path))
        {
          g_autofree char *name = g_filename_display_basename (path);
          g_autofree char *message =
            g_strdup_printf (_("“%s” is not a GGUF model file"), name);
          show_toast (self, message);
        }
      else
        {
          /* An earlier complaint about another file no longer applies. */
          dismiss_toast (self);
          g_settings_set_string (self->settings, "model-path", path);
        }
    }

  g_signal_handlers_disconnect_by_data (chooser, self);
  gtk_native_dialog_destroy (GTK_NATIVE_DIALOG (chooser));
  g_clear_object (&self->chooser);
}

static void
choose_clicked_cb (TesseraPreferences *self)
{
  g_autofree char *path = g_settings_get_string (self->settings, "model-path");
  GtkFileFilter *gguf_filter;
  GtkFileFilter *all_filter;

  if (self->chooser != NULL)
    {
      gtk_native_dialog_show (GTK_NATIVE_DIALOG (self->chooser));
      return;
    }

  self->chooser = gtk_file_chooser_native_new (_("Choose a Model File"), GTK_WINDOW (self),
                                               GTK_FILE_CHOOSER_ACTION_OPEN,
                                               _("_Choose"), _("_Cancel"));
  gtk_native_dialog_set_modal (GTK_NATIVE_DIALOG (self->chooser), TRUE);

  gguf_filter = gtk_file_filter_new ();
  gtk_file_filter_set_name (gguf_filter, _("GGUF models"));
  gtk_file_filter_add_pattern (gguf_filter, "*.gguf");
  gtk_file_filter_add_pattern (gguf_filter, "*.GGUF");
  gtk_file_chooser_add_filter (GTK_FILE_CHOOSER (self->chooser), gguf_filter);
  all_filter = gtk_file_filter_new ();
  gtk_file_filter_set_name (all_filter, _("All files"));
  gtk_file_filter_add_pattern (all_filter, "*");
  gtk_file_chooser_add_filter (GTK_FILE_CHOOSER (self->chooser), all_filter);
  gtk_file_chooser_set_filter (GTK_FILE_CHOOSER (self->chooser), gguf_filter);
  g_object_unref (gguf_filter);
  g_object_unref (all_filter);

  /* Start where the current model is, to pick a sibling quantisation. */
  if (path[0] != '\0')
    {
      g_autofree char *dir = g_path_get_dirname (path);
      g_autoptr(GFile) folder = g_file_new_for_path (dir);
      if (g_file_test (dir, G_FILE_TEST_IS_DIR))
        gtk_file_chooser_set_current_folder (GTK_FILE_CHOOSER (self->chooser), folder, NULL);
    }

  g_signal_connect_swapped (self->chooser, "response", G_CALLBACK (chooser_response_cb), self);
  gtk_native_dialog_show (GTK_NATIVE_DIALOG (self->chooser));
}

static void
clear_clicked_cb (TesseraPreferences *self)
{
  g_settings_set_string (self->settings, "model-path", "");
}

/* ==== Performance and answers ========================================== */

static void
update_threads_row (TesseraPreferences *self)
{
  int threads = g_settings_get_int (self->settings, "threads");

  adw_action_row_set_subtitle (self->threads_row,
                               threads == 0 ? _("Automatic (one per core)")
                                            : _("0 uses one per core"));
}

static void
update_decoding_rows (TesseraPreferences *self)
{
  g_autofree char *decoding = g_settings_get_string (self->settings, "decoding");
  gboolean sample = g_str_equal (decoding, "sample");
  gboolean beams = g_str_equal (decoding, "beams");

  gtk_widget_set_visible (GTK_WIDGET (self->temperature_row), sample);
  gtk_widget_set_visible (GTK_WIDGET (self->top_p_row), sample);
  gtk_widget_set_visible (GTK_WIDGET (self->beams_row), beams);
}

static gboolean
decoding_get_mapping (GValue   *value,
                      GVariant *variant,
                      gpointer  user_data)
{
  const char *name = g_variant_get_string (variant, NULL);

  for (guint i = 0; i < G_N_ELEMENTS (decoding_names); i++)
    if (g_str_equal (name, decoding_names[i]))
      {
        g_value_set_uint (value, i);
        return TRUE;
      }
  return FALSE;
}

static GVariant *
decoding_set_mapping (const GValue       *value,
                      const GVariantType *expected_type,
                      gpointer            user_data)
{
  guint i = g_value_get_uint (value);

  /* GTK_INVALID_LIST_POSITION while the combo row has no model. */
  if (i >= G_N_ELEMENTS (decoding_names))
    return NULL;
  return g_variant_new_string (decoding_names[i]);
}

/* ==== System prompt ===================================================== */

static char *
get_prompt_text (TesseraPreferences *self)
{
  GtkTextBuffer *buffer = gtk_text_view_get_buffer (self->prompt_view);
  GtkTextIter start, end;

  gtk_text_buffer_get_bounds (buffer, &start, &end);
  return gtk_text_buffer_get_text (buffer, &start, &end, FALSE);
}

static void
update_prompt_hint (TesseraPreferences *self)
{
  GtkTextBuffer *buffer = gtk_text_view_get_buffer (self->prompt_view);
  g_autofree char *stored = g_settings_get_string (self->settings, "system-prompt");
  gboolean empty = gtk_text_buffer_get_char_count (buffer) == 0;

  gtk_widget_set_visible (GTK_WIDGET (self->prompt_hint), empty);
  gtk_widget_set_sensitive (GTK_WIDGET (self->reset_prompt_button), !empty || stored[0] != '\0');
}

static void
load_prompt (TesseraPreferences *self)
{
  g_autofree char *prompt = g_settings_get_string (self->settings, "system-prompt");

  self->loading_prompt = TRUE;
  gtk_text_buffer_set_text (gtk_text_view_get_buffer (self->prompt_view), prompt, -1);
  self->loading_prompt = FALSE;
  self->prompt_dirty = FALSE;
  update_prompt_hint (self);
}

static void
apply_prompt (TesseraPreferences *self)
{
  g_autofree char *text = NULL;
  g_autofree char *stored = NULL;

  if (!self->prompt_dirty || self->settings == NULL)
    return;
  self->prompt_dirty = FALSE;
  text = get_prompt_text (self);
  stored = g_settings_get_string (self->settings, "system-prompt");
  if (!g_str_equal (text, stored))
    g_settings_set_string (self->settings, "system-prompt", text);
}

static void
prompt_buffer_changed_cb (TesseraPreferences *self)
{
  if (!self->loading_prompt)
    self->prompt_dirty = TRUE;
  update_prompt_hint (self);
}

static void
prompt_focus_leave_cb (TesseraPreferences *self)
{
  apply_prompt (self);
}

static void
reset_prompt_clicked_cb (TesseraPreferences *self)
{
  self->prompt_dirty = FALSE;
  g_settings_set_string (self->settings, "system-prompt", "");
  /* The key may already have been empty, with no change signal to refill
   * the view. */
  load_prompt (self);
}

static gboolean
close_request_cb (TesseraPreferences *self)
{
  apply_prompt (self);
  return GDK_EVENT_PROPAGATE;
}

/* ==== Following the settings =========================================== */

static void
settings_changed_cb (GSettings          *settings,
                     const char         *key,
                     TesseraPreferences *self)
{
  if (g_str_equal (key, "model-path"))
    update_model_row (self);
  else if (g_str_equal (key, "threads"))
    update_threads_row (self);
  else if (g_str_equal (key, "decoding"))
    update_decoding_rows (self);
  else if (g_str_equal (key, "system-prompt"))
    {
      /* Changed elsewhere: show it, unless the user is typing here; their
       * text is written when they leave the view and then wins. */
      if (!self->prompt_dirty)
        load_prompt (self);
      else
        update_prompt_hint (self);
    }
}

static void
bind_spin (TesseraPreferences *self, const char *key, GtkSpinButton *spin)
{
  g_settings_bind (self->settings, key, gtk_spin_button_get_adjustment (spin), "value",
                   G_SETTINGS_BIND_DEFAULT);
}

/* ==== GObject =========================================================== */

static void
tessera_preferences_constructed (GObject *object)
{
  TesseraPreferences *self = TESSERA_PREFERENCES (object);

  G_OBJECT_CLASS (tessera_preferences_parent_class)->constructed (object);

  /* The settings are construct-only and required; without them the window
   * would have nothing to show. */
  if (self->settings == NULL)
    self->settings = g_settings_new (APP_ID);

  bind_spin (self, "threads", self->threads_spin);
  bind_spin (self, "hd-num", self->hd_spin);
  bind_spin (self, "max-new-tokens", self->max_tokens_spin);
  bind_spin (self, "temperature", self->temperature_spin);
  bind_spin (self, "top-p", self->top_p_spin);
  bind_spin (self, "beams", self->beams_spin);
  g_settings_bind_with_mapping (self->settings, "decoding", self->decoding_row, "selected",
                                G_SETTINGS_BIND_DEFAULT, decoding_get_mapping, decoding_set_mapping,
                                NULL, NULL);

  g_signal_connect_object (self->settings, "changed", G_CALLBACK (settings_changed_cb), self, 0);

  update_model_row (self);
  update_threads_row (self);
  update_decoding_rows (self);
  load_prompt (self);
}

static void
tessera_preferences_get_property (GObject    *object,
                                  guint       prop_id,
                                  GValue     *value,
                                  GParamSpec *pspec)
{
  TesseraPreferences *self = TESSERA_PREFERENCES (object);

  switch (prop_id)
    {
    case PROP_SETTINGS:
      g_value_set_object (value, self->settings);
      break;

    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
tessera_preferences_set_property (GObject      *object,
                                  guint         prop_id,
                                  const GValue *value,
                                  GParamSpec   *pspec)
{
  TesseraPreferences *self = TESSERA_PREFERENCES (object);

  switch (prop_id)
    {
    case PROP_SETTINGS:
      self->settings = g_value_dup_object (value);
      break;

    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
tessera_preferences_dispose (GObject *object)
{
  TesseraPreferences *self = TESSERA_PREFERENCES (object);

  /* A window destroyed with its parent gets no close-request. */
  if (self->prompt_view != NULL)
    apply_prompt (self);

  if (self->chooser != NULL)
    {
      g_signal_handlers_disconnect_by_data (self->chooser, self);
      gtk_native_dialog_destroy (GTK_NATIVE_DIALOG (self->chooser));
      g_clear_object (&self->chooser);
    }

  g_clear_weak_pointer (&self->toast);
  gtk_widget_dispose_template (GTK_WIDGET (self), TESSERA_TYPE_PREFERENCES);
  g_clear_object (&self->settings);

  G_OBJECT_CLASS (tessera_preferences_parent_class)->dispose (object);
}

static void
tessera_preferences_class_init (TesseraPreferencesClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);
  GtkWidgetClass *widget_class = GTK_WIDGET_CLASS (klass);

  object_class->constructed = tessera_preferences_constructed;
  object_class->get_property = tessera_preferences_get_property;
  object_class->set_property = tessera_preferences_set_property;
  object_class->dispose = tessera_preferences_dispose;

  properties[PROP_SETTINGS] =
    g_param_spec_object ("settings", NULL, NULL,
                         G_TYPE_SETTINGS,
                         G_PARAM_READWRITE | G_PARAM_CONSTRUCT_ONLY | G_PARAM_STATIC_STRINGS);
  g_object_class_install_properties (object_class, N_PROPS, properties);

  gtk_widget_class_set_template_from_resource (widget_class, APP_PATH "/ui/tessera-preferences.ui");
  gtk_widget_class_bind_template_child (widget_class, TesseraPreferences, model_row);
  gtk_widget_class_bind_template_child (widget_class, TesseraPreferences, clear_button);
  gtk_widget_class_bind_template_child (widget_class, TesseraPreferences, choose_button);
  gtk_widget_class_bind_template_child (widget_class, TesseraPreferences, threads_row);
  gtk_widget_class_bind_template_child (widget_class, TesseraPreferences, threads_spin);
  gtk_widget_class_bind_template_child (widget_class, TesseraPreferences, hd_spin);
  gtk_widget_class_bind_template_child (widget_class, TesseraPreferences, max_tokens_spin);
  gtk_widget_class_bind_template_child (widget_class, TesseraPreferences, decoding_row);
  gtk_widget_class_bind_template_child (widget_class, TesseraPreferences, temperature_row);
  gtk_widget_class_bind_template_child (widget_class, TesseraPreferences, temperature_spin);
  gtk_widget_class_bind_template_child (widget_class, TesseraPreferences, top_p_row);
  gtk_widget_class_bind_template_child (widget_class, TesseraPreferences, top_p_spin);
  gtk_widget_class_bind_template_child (widget_class, TesseraPreferences, beams_row);
  gtk_widget_class_bind_template_child (widget_class, TesseraPreferences, beams_spin);
  gtk_widget_class_bind_template_child (widget_class, TesseraPreferences, prompt_view);
  gtk_widget_class_bind_template_child (widget_class, TesseraPreferences, prompt_hint);
  gtk_widget_class_bind_template_child (widget_class, TesseraPreferences, reset_prompt_button);
  gtk_widget_class_bind_template_callback (widget_class, choose_clicked_cb);
  gtk_widget_class_bind_template_callback (widget_class, clear_clicked_cb);
  gtk_widget_class_bind_template_callback (widget_class, reset_prompt_clicked_cb);
}

static void
tessera_preferences_init (TesseraPreferences *self)
{
  GtkEventController *focus;

  gtk_widget_init_template (GTK_WIDGET (self));

  g_signal_connect_swapped (gtk_text_view_get_buffer (self->prompt_view), "changed",
                            G_CALLBACK (prompt_buffer_changed_cb), self);
  focus = gtk_event_controller_focus_new ();
  g_signal_connect_swapped (focus, "leave", G_CALLBACK (prompt_focus_leave_cb), self);
  gtk_widget_add_controller (GTK_WIDGET (self->prompt_view), focus);
  g_signal_connect (self, "close-request", G_CALLBACK (close_request_cb), NULL);
}

/* ==== Public API ======================================================== */

TesseraPreferences *
tessera_preferences_new (GtkWindow *parent,
                         GSettings *settings)
{
  g_return_val_if_fail (parent == NULL || GTK_IS_WINDOW (parent), NULL);
  g_return_val_if_fail (G_IS_SETTINGS (settings), NULL);

  return g_object_new (TESSERA_TYPE_PREFERENCES,
                       "transient-for", parent,
                       "settings", settings,
                       NULL);
}

GSettings *
tessera_preferences_get_settings (TesseraPreferences *self)
{
  g_return_val_if_fail (TESSERA_IS_PREFERENCES (self), NULL);

  return self->settings;
}
