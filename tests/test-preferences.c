/* SPDX-License-Identifier: GPL-3.0-or-later
 *
 * test-preferences.c — the preferences window under Xvfb, with the memory
 * GSettings backend: every control writes its key, follows the key when it
 * changes elsewhere, and the rows that only matter for one decoding show
 * only then.
 *
 *   test-preferences [--pause SECONDS [greedy|sample|beams]]
 *
 * --pause shows a filled-in window for that long instead of testing, in the
 * language of the environment, to look at it (or take a screenshot).
 */
#include "config.h"

#include <locale.h>

#include <glib/gi18n.h>
#include <glib/gstdio.h>
#include <adwaita.h>

#include "tessera-preferences.h"

static GSettings *settings;

static const char * const keys[] = {
  "model-path", "threads", "hd-num", "max-new-tokens", "decoding", "temperature",
  "top-p", "beams", "system-prompt",
};

/* Lets pending signals, layout and drawing happen. */
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

static gpointer
child (TesseraPreferences *prefs, const char *name)
{
  GObject *object = gtk_widget_get_template_child (GTK_WIDGET (prefs), TESSERA_TYPE_PREFERENCES, name);
  g_assert_nonnull (object);
  return object;
}

static TesseraPreferences *
open_preferences (void)
{
  TesseraPreferences *prefs;

  for (guint i = 0; i < G_N_ELEMENTS (keys); i++)
    g_settings_reset (settings, keys[i]);
  prefs = tessera_preferences_new (NULL, settings);
  g_assert_true (tessera_preferences_get_settings (prefs) == settings);
  gtk_window_present (GTK_WINDOW (prefs));
  settle ();
  return prefs;
}

static const char *
row_title (TesseraPreferences *prefs, const char *name)
{
  return adw_preferences_row_get_title (ADW_PREFERENCES_ROW (child (prefs, name)));
}

static const char *
row_subtitle (TesseraPreferences *prefs, const char *name)
{
  return adw_action_row_get_subtitle (ADW_ACTION_ROW (child (prefs, name)));
}

/* The key's value, valid until the next call. */
static const char *
key_string (const char *key)
{
  static char *value;

  g_free (value);
  value = g_settings_get_string (settings, key);
  return value;
}

static gboolean
shown (TesseraPreferences *prefs, const char *name)
{
  return gtk_widget_get_visible (GTK_WIDGET (child (prefs, name)));
}

/* ==== Model file ======================================================== */

static void
test_model_row (void)
{
  TesseraPreferences *prefs = open_preferences ();
  g_autoptr(GError) error = NULL;
  g_autofree char *dir = g_dir_make_tmp ("tessera-prefs-XXXXXX", &error);
  g_autofree char *path = NULL;
  g_autofree char *missing = NULL;

  g_assert_no_error (error);
  path = g_build_filename (dir, "xcomposer2-4khd-q8_0.gguf", NULL);
  g_assert_true (g_file_set_contents (path, "GGUF\3\0\0\0", 8, &error));

  g_assert_cmpstr (row_title (prefs, "model_row"), ==, "No model chosen");
  g_assert_false (shown (prefs, "clear_button"));

  g_settings_set_string (settings, "model-path", path);
  settle ();
  g_assert_cmpstr (row_title (prefs, "model_row"), ==, "xcomposer2-4khd-q8_0.gguf");
  g_assert_cmpstr (row_subtitle (prefs, "model_row"), ==, dir);
  g_assert_true (shown (prefs, "clear_button"));

  /* A file that moved away is named, and said to be missing. */
  missing = g_build_filename (dir, "gone.gguf", NULL);
  g_settings_set_string (settings, "model-path", missing);
  settle ();
  g_assert_cmpstr (row_title (prefs, "model_row"), ==, "gone.gguf");
  g_assert_true (g_str_has_prefix (row_subtitle (prefs, "model_row"), "Not found in "));
  g_assert_true (g_str_has_suffix (row_subtitle (prefs, "model_row"), dir));

  g_signal_emit_by_name (child (prefs, "clear_button"), "clicked");
  settle ();
  g_assert_cmpstr (key_string ("model-path"), ==, "");
  g_assert_cmpstr (row_title (prefs, "model_row"), ==, "No model chosen");
  g_assert_false (shown (prefs, "clear_button"));

  gtk_window_destroy (GTK_WINDOW (prefs));
  g_unlink (path);
  g_rmdir (dir);
}

/* ==== Spin buttons ====================================================== */

static void
test_threads (void)
{
  TesseraPreferences *prefs = open_preferences ();
  GtkSpinButton *spin = child (prefs, "threads_spin");

  g_assert_cmpint (gtk_spin_button_get_value_as_int (spin), ==, 0);
  g_assert_cmpstr (row_subtitle (prefs, "threads_row"), ==, "Automatic (one per core)");

  /* Key → widget. */
  g_settings_set_int (settings, "threads", 8);
  settle ();
  g_assert_cmpint (gtk_spin_button_get_value_as_int (spin), ==, 8);
  g_assert_cmpstr (row_subtitle (prefs, "threads_row"), !=, "Automatic (one per core)");

  /* Widget → key: arrows, then text typed and confirmed. */
  gtk_spin_button_spin (spin, GTK_SPIN_STEP_FORWARD, 1);
  settle ();
  g_assert_cmpint (g_settings_get_int (settings, "threads"), ==, 9);
  gtk_editable_set_text (GTK_EDITABLE (spin), "4");
  gtk_spin_button_update (spin);
  settle ();
  g_assert_cmpint (g_settings_get_int (settings, "threads"), ==, 4);
  gtk_spin_button_set_value (spin, 0);
  settle ();
  g_assert_cmpint (g_settings_get_int (settings, "threads"), ==, 0);
  g_assert_cmpstr (row_subtitle (prefs, "threads_row"), ==, "Automatic (one per core)");

  gtk_window_destroy (GTK_WINDOW (prefs));
}

static void
test_other_spins (void)
{
  TesseraPreferences *prefs = open_preferences ();

  /* The defaults of the schema reach the widgets. */
  g_assert_cmpint (gtk_spin_button_get_value_as_int (child (prefs, "hd_spin")), ==, 25);
  g_assert_cmpint (gtk_spin_button_get_value_as_int (child (prefs, "max_tokens_spin")), ==, 1024);
  g_assert_cmpfloat_with_epsilon (gtk_spin_button_get_value (child (prefs, "temperature_spin")), 1.0, 1e-9);
  g_assert_cmpfloat_with_epsilon (gtk_spin_button_get_value (child (prefs, "top_p_spin")), 0.8, 1e-9);
  g_assert_cmpint (gtk_spin_button_get_value_as_int (child (prefs, "beams_spin")), ==, 3);

  gtk_spin_button_set_value (child (prefs, "hd_spin"), 55);
  gtk_spin_button_set_value (child (prefs, "max_tokens_spin"), 300);
  gtk_spin_button_set_value (child (prefs, "temperature_spin"), 0.7);
  gtk_spin_button_set_value (child (prefs, "top_p_spin"), 0.95);
  gtk_spin_button_set_value (child (prefs, "beams_spin"), 5);
  settle ();
  g_assert_cmpint (g_settings_get_int (settings, "hd-num"), ==, 55);
  g_assert_cmpint (g_settings_get_int (settings, "max-new-tokens"), ==, 300);
  g_assert_cmpfloat_with_epsilon (g_settings_get_double (settings, "temperature"), 0.7, 1e-9);
  g_assert_cmpfloat_with_epsilon (g_settings_get_double (settings, "top-p"), 0.95, 1e-9);
  g_assert_cmpint (g_settings_get_int (settings, "beams"), ==, 5);

  /* The main window's HD-N popover writes the same key. */
  g_settings_set_int (settings, "hd-num", 9);
  settle ();
  g_assert_cmpint (gtk_spin_button_get_value_as_int (child (prefs, "hd_spin")), ==, 9);

  gtk_window_destroy (GTK_WINDOW (prefs));
}

/* ==== Decoding ========================================================== */

static void
test_decoding (void)
{
  TesseraPreferences *prefs = open_preferences ();
  AdwComboRow *row = child (prefs, "decoding_row");

  g_assert_cmpuint (adw_combo_row_get_selected (row), ==, 0);
  g_assert_false (shown (prefs, "temperature_row"));
  g_assert_false (shown (prefs, "top_p_row"));
  g_assert_false (shown (prefs, "beams_row"));

  adw_combo_row_set_selected (row, 1);
  settle ();
  g_assert_cmpstr (key_string ("decoding"), ==, "sample");
  g_assert_true (shown (prefs, "temperature_row"));
  g_assert_true (shown (prefs, "top_p_row"));
  g_assert_false (shown (prefs, "beams_row"));

  adw_combo_row_set_selected (row, 2);
  settle ();
  g_assert_cmpstr (key_string ("decoding"), ==, "beams");
  g_assert_false (shown (prefs, "temperature_row"));
  g_assert_false (shown (prefs, "top_p_row"));
  g_assert_true (shown (prefs, "beams_row"));

  g_settings_set_string (settings, "decoding", "sample");
  settle ();
  g_assert_cmpuint (adw_combo_row_get_selected (row), ==, 1);
  g_assert_true (shown (prefs, "temperature_row"));
  g_assert_false (shown (prefs, "beams_row"));

  g_settings_set_string (settings, "decoding", "greedy");
  settle ();
  g_assert_cmpuint (adw_combo_row_get_selected (row), ==, 0);
  g_assert_false (shown (prefs, "temperature_row"));
  g_assert_false (shown (prefs, "beams_row"));

  gtk_window_destroy (GTK_WINDOW (prefs));
}

/* ==== System prompt ===================================================== */

static char *
view_text (TesseraPreferences *prefs)
{
  GtkTextBuffer *buffer = gtk_text_view_get_buffer (child (prefs, "prompt_view"));
  GtkTextIter start, end;

  gtk_text_buffer_get_bounds (buffer, &start, &end);
  return gtk_text_buffer_get_text (buffer, &start, &end, FALSE);
}

static void
test_prompt (void)
{
  TesseraPreferences *prefs = open_preferences ();
  GtkWidget *view = child (prefs, "prompt_view");
  GtkTextBuffer *buffer = gtk_text_view_get_buffer (GTK_TEXT_VIEW (view));
  GtkWidget *reset = child (prefs, "reset_prompt_button");
  g_autofree char *text = NULL;

  /* Empty: the hint says the model's own instruction is used. */
  g_assert_true (shown (prefs, "prompt_hint"));
  g_assert_false (gtk_widget_get_sensitive (reset));

  /* Typing shows at once but is written only when focus leaves. */
  gtk_widget_grab_focus (view);
  settle ();
  gtk_text_buffer_set_text (buffer, "Answer in one sentence.", -1);
  settle ();
  g_assert_false (shown (prefs, "prompt_hint"));
  g_assert_true (gtk_widget_get_sensitive (reset));
  g_assert_cmpstr (key_string ("system-prompt"), ==, "");
  gtk_widget_grab_focus (child (prefs, "threads_spin"));
  settle ();
  g_assert_cmpstr (key_string ("system-prompt"), ==, "Answer in one sentence.");

  /* A change made elsewhere shows up in the view. */
  g_settings_set_string (settings, "system-prompt", "Be brief.");
  settle ();
  text = view_text (prefs);
  g_assert_cmpstr (text, ==, "Be brief.");

  /* Reset: the key becomes empty, and so does the view. */
  g_signal_emit_by_name (reset, "clicked");
  settle ();
  g_assert_cmpstr (key_string ("system-prompt"), ==, "");
  g_clear_pointer (&text, g_free);
  text = view_text (prefs);
  g_assert_cmpstr (text, ==, "");
  g_assert_true (shown (prefs, "prompt_hint"));
  g_assert_false (gtk_widget_get_sensitive (reset));

  /* Reset also drops text typed but not yet written. */
  gtk_text_buffer_set_text (buffer, "Unsaved.", -1);
  g_signal_emit_by_name (reset, "clicked");
  settle ();
  g_assert_cmpstr (key_string ("system-prompt"), ==, "");
  g_clear_pointer (&text, g_free);
  text = view_text (prefs);
  g_assert_cmpstr (text, ==, "");

  /* Closing the window writes what was typed. */
  gtk_text_buffer_set_text (buffer, "Reply in Korean.\nCite the tile numbers.", -1);
  gtk_window_close (GTK_WINDOW (prefs));
  settle ();
  g_assert_cmpstr (key_string ("system-prompt"), ==,
                   "Reply in Korean.\nCite the tile numbers.");

  /* A window destroyed with its parent gets no close request, and still
   * writes. */
  prefs = open_preferences ();
  buffer = gtk_text_view_get_buffer (child (prefs, "prompt_view"));
  gtk_text_buffer_set_text (buffer, "Destroyed.", -1);
  gtk_window_destroy (GTK_WINDOW (prefs));
  settle ();
  g_assert_cmpstr (key_string ("system-prompt"), ==, "Destroyed.");
}

/* Shows the window filled in, for a person to look at. */
static void
pause_for (double seconds, const char *decoding)
{
  TesseraPreferences *prefs;
  gint64 end;

  g_settings_set_string (settings, "model-path",
                         "/home/user/models/internlm-xcomposer2-4khd-7b-q8_0.gguf");
  g_settings_set_string (settings, "decoding", decoding);
  prefs = tessera_preferences_new (NULL, settings);
  /* Tall enough to see every group at once. */
  gtk_window_set_default_size (GTK_WINDOW (prefs), 640, 1200);
  gtk_window_present (GTK_WINDOW (prefs));
  end = g_get_monotonic_time () + (gint64) (seconds * G_USEC_PER_SEC);
  while (g_get_monotonic_time () < end)
    {
      g_main_context_iteration (NULL, FALSE);
      g_usleep (10000);
    }
  gtk_window_destroy (GTK_WINDOW (prefs));
}

int
main (int argc, char **argv)
{
  int status;

  g_setenv ("GSETTINGS_BACKEND", "memory", TRUE);

  if (argc >= 3 && g_str_equal (argv[1], "--pause"))
    {
      /* In the language of the environment, with the build's catalogues
       * (or those of TESSERA_LOCALEDIR). */
      const char *locale_dir = g_getenv ("TESSERA_LOCALEDIR");
      setlocale (LC_ALL, "");
      bindtextdomain (GETTEXT_PACKAGE, locale_dir != NULL ? locale_dir : BUILD_ROOT "/po");
      bind_textdomain_codeset (GETTEXT_PACKAGE, "UTF-8");
      textdomain (GETTEXT_PACKAGE);
      gtk_init ();
      adw_init ();
      settings = g_settings_new (APP_ID);
      pause_for (g_ascii_strtod (argv[2], NULL), argc >= 4 ? argv[3] : "sample");
      g_object_unref (settings);
      return 0;
    }

  /* The strings are checked in English. */
  g_setenv ("LANGUAGE", "C", TRUE);
  gtk_test_init (&argc, &argv, NULL);
  adw_init ();
  settings = g_settings_new (APP_ID);

  g_test_add_func ("/preferences/model-row", test_model_row);
  g_test_add_func ("/preferences/threads", test_threads);
  g_test_add_func ("/preferences/other-spins", test_other_spins);
  g_test_add_func ("/preferences/decoding", test_decoding);
  g_test_add_func ("/preferences/prompt", test_prompt);
  status = g_test_run ();

  g_object_unref (settings);
  return status;
}
