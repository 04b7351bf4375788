/* SPDX-License-Identifier: GPL-3.0-or-later */
#define G_LOG_DOMAIN "tessera-application"

#include "config.h"

#include <glib/gi18n.h>

#include "tessera-application.h"
#include "tessera-history.h"
#include "tessera-preferences.h"
#include "tessera-window.h"
#include "tessera-worker.h"

/* Old deleted conversations are purged at startup; a week keeps "Undo"
 * meaningful across a restart. */
#define PURGE_AGE (7 * G_TIME_SPAN_DAY)

struct _TesseraApplication
{
  AdwApplication  parent_instance;

  GSettings      *settings;
  TesseraWorker  *worker;
  TesseraHistory *history;
  char           *history_error;
  guint           reload_id;
};

G_DEFINE_FINAL_TYPE (TesseraApplication, tessera_application, ADW_TYPE_APPLICATION)

static TesseraWindow *
new_window (TesseraApplication *self)
{
  TesseraWindow *window = tessera_window_new_full (GTK_APPLICATION (self), self->worker, self->history);
  if (self->history_error != NULL)
    tessera_window_set_history_error (window, self->history_error);
  return window;
}

static void
tessera_application_activate (GApplication *app)
{
  GtkWindow *window = gtk_application_get_active_window (GTK_APPLICATION (app));
  if (window == NULL)
    window = GTK_WINDOW (new_window (TESSERA_APPLICATION (app)));
  gtk_window_present (window);
}

/* One window per file, as image viewers do: each image keeps its own zoom. */
static void
tessera_application_open (GApplication *app, GFile **files, int n_files, const char *hint)
{
  for (int i = 0; i < n_files; i++)
    {
      TesseraWindow *window = new_window (TESSERA_APPLICATION (app));
      tessera_window_open_file (window, files[i]);
      gtk_window_present (GTK_WINDOW (window));
    }
}

static void
about_action (GSimpleAction *action, GVariant *param, gpointer user_data)
{
  GtkApplication *app = GTK_APPLICATION (user_data);
  static const char *developers[] = { "The Tessera developers", NULL };

  adw_show_about_window (gtk_application_get_active_window (app),
                         "application-name", _("Tessera"),
                         "application-icon", APP_ID,
                         "version", PACKAGE_VERSION,
                         "developer-name", _("The Tessera developers"),
                         "developers", developers,
                         "comments", _("Ask questions about high-resolution images, offline. "
                                       "Tessera runs InternLM-XComposer2-4KHD on your own computer "
                                       "and shows how the model tiles every image."),
                         "license-type", GTK_LICENSE_GPL_3_0,
                         /* Translators: your name and email, one per line. */
                         "translator-credits", _("translator-credits"),
                         NULL);
}

static void
preferences_action (GSimpleAction *action, GVariant *param, gpointer user_data)
{
  TesseraApplication *self = TESSERA_APPLICATION (user_data);
  GtkWindow *parent = gtk_application_get_active_window (GTK_APPLICATION (self));
  GtkWindow *prefs = GTK_WINDOW (tessera_preferences_new (parent, self->settings));
  gtk_window_present (prefs);
}

static void
choose_model_response_cb (GtkNativeDialog *dialog, int response, TesseraApplication *self)
{
  if (response == GTK_RESPONSE_ACCEPT)
    {
      g_autoptr(GFile) file = gtk_file_chooser_get_file (GTK_FILE_CHOOSER (dialog));
      g_autofree char *path = file ? g_file_get_path (file) : NULL;
      if (path != NULL)
        g_settings_set_string (self->settings, "model-path", path);
    }
  gtk_native_dialog_destroy (dialog);
  g_object_unref (dialog);
}

static void
choose_model_action (GSimpleAction *action, GVariant *param, gpointer user_data)
{
  TesseraApplication *self = TESSERA_APPLICATION (user_data);
  GtkWindow *parent = gtk_application_get_active_window (GTK_APPLICATION (self));
  GtkFileChooserNative *dialog;
  GtkFileFilter *models, *all;

  dialog = gtk_file_chooser_native_new (_("Choose the Model File"), parent, GTK_FILE_CHOOSER_ACTION_OPEN,
                                        _("_Choose"), _("_Cancel"));
  gtk_native_dialog_set_modal (GTK_NATIVE_DIALOG (dialog), TRUE);
  models = gtk_file_filter_new ();
  gtk_file_filter_set_name (models, _("Models (GGUF)"));
  gtk_file_filter_add_pattern (models, "*.gguf");
  gtk_file_filter_add_pattern (models, "*.GGUF");
  gtk_file_chooser_add_filter (GTK_FILE_CHOOSER (dialog), models);
  all = gtk_file_filter_new ();
  gtk_file_filter_set_name (all, _("All Files"));
  gtk_file_filter_add_pattern (all, "*");
  gtk_file_chooser_add_filter (GTK_FILE_CHOOSER (dialog), all);
  g_object_unref (models);
  g_object_unref (all);
  g_signal_connect (dialog, "response", G_CALLBACK (choose_model_response_cb), self);
  gtk_native_dialog_show (GTK_NATIVE_DIALOG (dialog));
}

/* The model follows the preferences: a new file or thread count loads it
 * again (on the worker thread; windows show the state). */
static void
load_model (TesseraApplication *self)
{
  g_autofree char *path = g_settings_get_string (self->settings, "model-path");
  g_clear_handle_id (&self->reload_id, g_source_remove);
  tessera_worker_load_model (self->worker, path, g_settings_get_int (self->settings, "threads"));
}

static gboolean
reload_timeout_cb (gpointer data)
{
  TesseraApplication *self = data;
  self->reload_id = 0;
  load_model (self);
  return G_SOURCE_REMOVE;
}

/* A spin button writes every step: reload once the number has settled. */
static void
threads_changed_cb (TesseraApplication *self)
{
  g_clear_handle_id (&self->reload_id, g_source_remove);
  self->reload_id = g_timeout_add (1500, reload_timeout_cb, self);
}

static void
quit_action (GSimpleAction *action, GVariant *param, gpointer user_data)
{
  g_application_quit (G_APPLICATION (user_data));
}

static void
tessera_application_startup (GApplication *app)
{
  static const GActionEntry entries[] = {
    { "about", about_action, NULL, NULL, NULL, { 0 } },
    { "preferences", preferences_action, NULL, NULL, NULL, { 0 } },
    { "choose-model", choose_model_action, NULL, NULL, NULL, { 0 } },
    { "quit", quit_action, NULL, NULL, NULL, { 0 } },
  };
  static const char *quit_accels[] = { "<Control>q", NULL };
  static const char *close_accels[] = { "<Control>w", NULL };
  static const char *prefs_accels[] = { "<Control>comma", NULL };
  TesseraApplication *self = TESSERA_APPLICATION (app);
  g_autoptr(GError) error = NULL;

  G_APPLICATION_CLASS (tessera_application_parent_class)->startup (app);

  self->settings = g_settings_new (APP_ID);
  self->worker = tessera_worker_new ();
  g_signal_connect_swapped (self->settings, "changed::model-path", G_CALLBACK (load_model), self);
  g_signal_connect_swapped (self->settings, "changed::threads", G_CALLBACK (threads_changed_cb), self);
  load_model (self);

  /* Without a history the app still answers; every window says why
   * nothing is kept. */
  self->history = tessera_history_new (NULL, TESSERA_HISTORY_FLAGS_NONE, &error);
  if (self->history == NULL)
    self->history_error = g_strdup (error->message);
  else if (!tessera_history_purge (self->history, PURGE_AGE, &error))
    g_warning ("%s", error->message);

  g_action_map_add_action_entries (G_ACTION_MAP (app), entries, G_N_ELEMENTS (entries), app);
  gtk_application_set_accels_for_action (GTK_APPLICATION (app), "app.quit", quit_accels);
  gtk_application_set_accels_for_action (GTK_APPLICATION (app), "window.close", close_accels);
  gtk_application_set_accels_for_action (GTK_APPLICATION (app), "app.preferences", prefs_accels);
}

static void
tessera_application_shutdown (GApplication *app)
{
  TesseraApplication *self = TESSERA_APPLICATION (app);

  G_APPLICATION_CLASS (tessera_application_parent_class)->shutdown (app);
  g_clear_handle_id (&self->reload_id, g_source_remove);
  if (self->settings != NULL)
    g_signal_handlers_disconnect_by_data (self->settings, self);
  g_clear_object (&self->history);
  g_clear_object (&self->worker);
  g_clear_object (&self->settings);
  g_clear_pointer (&self->history_error, g_free);
}

static void
tessera_application_class_init (TesseraApplicationClass *klass)
{
  GApplicationClass *app_class = G_APPLICATION_CLASS (klass);
  app_class->activate = tessera_application_activate;
  app_class->open = tessera_application_open;
  app_class->startup = tessera_application_startup;
  app_class->shutdown = tessera_application_shutdown;
}

static void
tessera_application_init (TesseraApplication *self)
{
}

TesseraApplication *
tessera_application_new (void)
{
  return g_object_new (TESSERA_TYPE_APPLICATION,
                       "application-id", APP_ID,
                       "flags", G_APPLICATION_HANDLES_OPEN,
                       "resource-base-path", APP_PATH,
                       NULL);
}
