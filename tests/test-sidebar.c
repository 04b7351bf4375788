/* SPDX-License-Identifier: GPL-3.0-or-later
 *
 * test-sidebar.c — the conversation list under Xvfb, on a temporary
 * history: what the rows say and in which order, search, rename, delete
 * and undo, export, and that only the person's choices open anything.
 *
 * Rows are checked through the labels on screen, sorted top to bottom,
 * not through the model, so the test sees what a person would.
 */
#include "config.h"

#include <glib/gstdio.h>
#include <adwaita.h>

#include "tessera-history-sidebar.h"

typedef struct {
  char                  *dir;
  TesseraHistory        *history;
  GtkWindow             *window;
  TesseraHistorySidebar *sidebar;

  guint                  n_activated;
  gint64                 activated_id;
  guint                  n_deleted;
  gint64                 deleted_id;
  char                  *deleted_title;
  guint                  n_notified;
  char                  *notified;
} Fixture;

static void
settle (void)
{
  for (int i = 0; i < 40; i++)
    {
      while (g_main_context_iteration (NULL, FALSE))
        ;
      g_usleep (2000);
    }
}

static void
spin_until (gboolean (*done) (gpointer), gpointer data, int timeout_ms)
{
  gint64 end = g_get_monotonic_time () + (gint64) timeout_ms * 1000;
  while (!done (data))
    {
      g_main_context_iteration (NULL, FALSE);
      g_usleep (1000);
      if (g_get_monotonic_time () > end)
        g_error ("timed out after %d ms", timeout_ms);
    }
}

static void
rm_rf (const char *path)
{
  GDir *dir = g_dir_open (path, 0, NULL);
  const char *name;

  if (dir != NULL)
    {
      while ((name = g_dir_read_name (dir)) != NULL)
        {
          g_autofree char *child = g_build_filename (path, name, NULL);
          rm_rf (child);
        }
      g_dir_close (dir);
    }
  g_remove (path);
}

/* ==== Looking at the widget ============================================= */

static GtkWidget *
find_widget (GtkWidget *root, GType type)
{
  if (G_TYPE_CHECK_INSTANCE_TYPE (root, type))
    return root;
  for (GtkWidget *c = gtk_widget_get_first_child (root); c != NULL; c = gtk_widget_get_next_sibling (c))
    {
      GtkWidget *found = find_widget (c, type);
      if (found != NULL)
        return found;
    }
  return NULL;
}

typedef struct {
  double     y;
  GtkWidget *widget;
} Placed;

static void
collect_class (GtkWidget *root, GtkWidget *widget, const char *css_class, GArray *out)
{
  if (gtk_widget_has_css_class (widget, css_class) && gtk_widget_get_mapped (widget))
    {
      graphene_point_t p;
      if (gtk_widget_compute_point (widget, root, &GRAPHENE_POINT_INIT (0, 0), &p))
        g_array_append_val (out, ((Placed) { p.y, widget }));
    }
  for (GtkWidget *c = gtk_widget_get_first_child (widget); c != NULL; c = gtk_widget_get_next_sibling (c))
    collect_class (root, c, css_class, out);
}

static int
by_y (gconstpointer a, gconstpointer b)
{
  double ya = ((const Placed *) a)->y, yb = ((const Placed *) b)->y;
  return ya < yb ? -1 : ya > yb;
}

/* The widgets of one kind in the rows, top to bottom. */
static GArray *
row_widgets (Fixture *f, const char *css_class)
{
  GtkWidget *list = find_widget (GTK_WIDGET (f->sidebar), GTK_TYPE_LIST_VIEW);
  GArray *out = g_array_new (FALSE, FALSE, sizeof (Placed));
  settle ();
  collect_class (list, list, css_class, out);
  g_array_sort (out, by_y);
  return out;
}

/* "title|title|…" as the rows show them, or "" if the list is hidden. */
static char *
row_titles (Fixture *f)
{
  g_autoptr(GArray) labels = row_widgets (f, "tessera-row-title");
  GString *s = g_string_new (NULL);
  for (guint i = 0; i < labels->len; i++)
    {
      if (i > 0)
        g_string_append_c (s, '|');
      g_string_append (s, gtk_label_get_text (GTK_LABEL (g_array_index (labels, Placed, i).widget)));
    }
  return g_string_free (s, FALSE);
}

static const char *
second_line (Fixture *f, guint row)
{
  g_autoptr(GArray) labels = row_widgets (f, "tessera-row-subtitle");
  g_assert_cmpuint (row, <, labels->len);
  return gtk_label_get_label (GTK_LABEL (g_array_index (labels, Placed, row).widget));
}

static const char *
page (Fixture *f)
{
  settle ();
  return gtk_stack_get_visible_child_name (GTK_STACK (find_widget (GTK_WIDGET (f->sidebar), GTK_TYPE_STACK)));
}

static GtkSingleSelection *
selection (Fixture *f)
{
  GtkWidget *list = find_widget (GTK_WIDGET (f->sidebar), GTK_TYPE_LIST_VIEW);
  return GTK_SINGLE_SELECTION (gtk_list_view_get_model (GTK_LIST_VIEW (list)));
}

static gint64
selected_id (Fixture *f)
{
  TesseraHistoryConversation *c = gtk_single_selection_get_selected_item (selection (f));
  return c != NULL ? tessera_history_conversation_get_id (c) : 0;
}

static guint
position_of (Fixture *f, gint64 id)
{
  GListModel *model = G_LIST_MODEL (selection (f));
  for (guint i = 0; i < g_list_model_get_n_items (model); i++)
    {
      g_autoptr(TesseraHistoryConversation) c = g_list_model_get_item (model, i);
      if (tessera_history_conversation_get_id (c) == id)
        return i;
    }
  g_error ("conversation %" G_GINT64_FORMAT " is not in the list", id);
  return 0;
}

/* Runs what the list does for a key, named as GTK writes it ("Delete",
 * "F2"); FALSE if nothing handled it. */
static gboolean
press (Fixture *f, const char *key)
{
  GtkWidget *list = find_widget (GTK_WIDGET (f->sidebar), GTK_TYPE_LIST_VIEW);
  g_autoptr(GListModel) controllers = gtk_widget_observe_controllers (list);

  for (guint i = 0; i < g_list_model_get_n_items (controllers); i++)
    {
      g_autoptr(GObject) controller = g_list_model_get_item (controllers, i);
      if (!GTK_IS_SHORTCUT_CONTROLLER (controller))
        continue;
      for (guint j = 0; j < g_list_model_get_n_items (G_LIST_MODEL (controller)); j++)
        {
          g_autoptr(GtkShortcut) shortcut = g_list_model_get_item (G_LIST_MODEL (controller), j);
          g_autofree char *trigger = gtk_shortcut_trigger_to_string (gtk_shortcut_get_trigger (shortcut));
          if (g_str_equal (trigger, key))
            return gtk_shortcut_action_activate (gtk_shortcut_get_action (shortcut), 0, list,
                                                 gtk_shortcut_get_arguments (shortcut));
        }
    }
  return FALSE;
}

/* ==== Fixture =========================================================== */

static void
activated_cb (TesseraHistorySidebar *sidebar, gint64 id, Fixture *f)
{
  f->n_activated++;
  f->activated_id = id;
}

static void
deleted_cb (TesseraHistorySidebar *sidebar, gint64 id, const char *title, Fixture *f)
{
  f->n_deleted++;
  f->deleted_id = id;
  g_free (f->deleted_title);
  f->deleted_title = g_strdup (title);
}

static void
notified_cb (TesseraHistorySidebar *sidebar, const char *message, Fixture *f)
{
  f->n_notified++;
  g_free (f->notified);
  f->notified = g_strdup (message);
}

static void
fixture_open (Fixture *f, gboolean with_history)
{
  g_autoptr(GError) error = NULL;

  memset (f, 0, sizeof *f);
  f->dir = g_dir_make_tmp ("tessera-sidebar-XXXXXX", &error);
  g_assert_no_error (error);
  if (with_history)
    {
      g_autofree char *path = g_build_filename (f->dir, "history.db", NULL);
      f->history = tessera_history_new (path, TESSERA_HISTORY_FLAGS_NONE, &error);
      g_assert_no_error (error);
    }
  f->sidebar = TESSERA_HISTORY_SIDEBAR (tessera_history_sidebar_new (f->history));
  g_signal_connect (f->sidebar, "conversation-activated", G_CALLBACK (activated_cb), f);
  g_signal_connect (f->sidebar, "conversation-deleted", G_CALLBACK (deleted_cb), f);
  g_signal_connect (f->sidebar, "notify-user", G_CALLBACK (notified_cb), f);

  f->window = GTK_WINDOW (gtk_window_new ());
  gtk_window_set_default_size (f->window, 360, 640);
  gtk_window_set_child (f->window, GTK_WIDGET (f->sidebar));
  gtk_window_present (f->window);
  settle ();
}

static void
fixture_close (Fixture *f)
{
  gtk_window_destroy (f->window);
  settle ();
  g_clear_object (&f->history);
  rm_rf (f->dir);
  g_free (f->dir);
  g_free (f->deleted_title);
  g_free (f->notified);
}

static GBytes *
make_png (guint32 rgba)
{
  g_autoptr(GdkPixbuf) pixbuf = gdk_pixbuf_new (GDK_COLORSPACE_RGB, TRUE, 8, 96, 64);
  g_autoptr(GError) error = NULL;
  gchar *data = NULL;
  gsize size = 0;

  gdk_pixbuf_fill (pixbuf, rgba);
  gdk_pixbuf_save_to_buffer (pixbuf, &data, &size, "png", &error, NULL);
  g_assert_no_error (error);
  return g_bytes_new_take (data, size);
}

/* A conversation about an image, with one question and its answer if
 * question is not NULL. */
static gint64
add (Fixture *f, const char *image_name, guint32 rgba, const char *question, const char *answer)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GBytes) image = image_name != NULL ? make_png (rgba) : NULL;
  g_autoptr(TesseraHistoryConversation) c =
    tessera_history_add_conversation (f->history, image, image_name, NULL, 25, NULL, 0, &error);
  gint64 id;

  g_assert_no_error (error);
  id = tessera_history_conversation_get_id (c);
  if (question != NULL)
    {
      gint64 m;
      g_assert_cmpint (tessera_history_append_message (f->history, id, TESSERA_HISTORY_ROLE_USER,
                                                       question, 25, &error), >, 0);
      g_assert_no_error (error);
      m = tessera_history_append_message (f->history, id, TESSERA_HISTORY_ROLE_ASSISTANT, "", 0, &error);
      g_assert_no_error (error);
      g_assert_true (tessera_history_finish_message (f->history, m, answer, NULL, FALSE, &error));
      g_assert_no_error (error);
    }
  return id;
}

static const char *
title_of (Fixture *f, gint64 id)
{
  return tessera_history_conversation_get_title (tessera_history_lookup_conversation (f->history, id));
}

static gboolean
notified_twice (gpointer data)
{
  return ((Fixture *) data)->n_notified >= 2;
}

static gboolean
notified_once (gpointer data)
{
  return ((Fixture *) data)->n_notified >= 1;
}

/* ==== Tests ============================================================= */

static void
test_unavailable_and_empty (void)
{
  Fixture f;

  fixture_open (&f, FALSE);
  tessera_history_sidebar_set_error (f.sidebar, "Disk <full> & gone");
  g_assert_cmpstr (page (&f), ==, "unavailable");
  {
    AdwStatusPage *status = ADW_STATUS_PAGE (gtk_stack_get_visible_child (
      GTK_STACK (find_widget (GTK_WIDGET (f.sidebar), GTK_TYPE_STACK))));
    /* Shown as markup: the message's own < and & must survive. */
    g_assert_cmpstr (adw_status_page_get_description (status), ==, "Disk &lt;full&gt; &amp; gone");
  }
  fixture_close (&f);

  fixture_open (&f, TRUE);
  g_assert_cmpstr (page (&f), ==, "empty");
  add (&f, "first.png", 0xff0000ff, NULL, NULL);
  g_assert_cmpstr (page (&f), ==, "list");
  fixture_close (&f);
}

static void
test_list (void)
{
  Fixture f;
  g_autofree char *titles = NULL;
  g_autofree char *want = NULL;
  g_autoptr(GError) error = NULL;
  gint64 a, b, c, d;

  fixture_open (&f, TRUE);
  a = add (&f, "alpha.png", 0x3366ccff, "What does the alpha chart show?", "It shows zebracorn sales by month.");
  b = add (&f, "beta.png", 0xcc6633ff, "Read the beta table", "Numbers, mostly.");
  c = add (&f, "gamma.png", 0x33cc66ff, NULL, NULL);
  d = add (&f, NULL, 0, NULL, NULL);

  /* Newest first; an untitled conversation shows its image's name, one
   * without an image a placeholder. */
  titles = row_titles (&f);
  want = g_strdup_printf ("New conversation|gamma.png|%s|%s", title_of (&f, b), title_of (&f, a));
  g_assert_cmpstr (titles, ==, want);
  g_assert_true (g_str_has_prefix (second_line (&f, 2), "Today "));
  g_assert_true (g_str_has_suffix (second_line (&f, 2), " · HD-25"));

  /* Thumbnails load in the background; the one without an image keeps
   * the generic icon. */
  {
    g_autoptr(GArray) images = NULL;
    gint64 end = g_get_monotonic_time () + 5 * G_USEC_PER_SEC;
    for (;;)
      {
        g_clear_pointer (&images, g_array_unref);
        images = row_widgets (&f, "tessera-thumbnail");
        g_assert_cmpuint (images->len, ==, 4);
        if (gtk_image_get_storage_type (GTK_IMAGE (g_array_index (images, Placed, 1).widget)) == GTK_IMAGE_PAINTABLE)
          break;
        g_assert_cmpint (g_get_monotonic_time (), <, end);
      }
    g_assert_cmpint (gtk_image_get_storage_type (GTK_IMAGE (g_array_index (images, Placed, 0).widget)), ==, GTK_IMAGE_ICON_NAME);
    for (guint i = 1; i < 4; i++)
      g_assert_cmpint (gtk_image_get_storage_type (GTK_IMAGE (g_array_index (images, Placed, i).widget)), ==, GTK_IMAGE_PAINTABLE);
  }

  /* A new question moves its conversation to the top. */
  g_assert_cmpint (tessera_history_append_message (f.history, a, TESSERA_HISTORY_ROLE_USER,
                                                   "And in March?", 25, &error), >, 0);
  g_assert_no_error (error);
  g_free (titles);
  g_free (want);
  titles = row_titles (&f);
  want = g_strdup_printf ("%s|New conversation|gamma.png|%s", title_of (&f, a), title_of (&f, b));
  g_assert_cmpstr (titles, ==, want);

  /* Selecting from the program is quiet, and the selection follows its
   * row when the row moves. */
  tessera_history_sidebar_select (f.sidebar, b);
  g_assert_cmpint (selected_id (&f), ==, b);
  g_assert_cmpint (tessera_history_sidebar_get_selected (f.sidebar), ==, b);
  g_assert_true (tessera_history_append_message (f.history, b, TESSERA_HISTORY_ROLE_USER,
                                                 "Which row is largest?", 25, &error) > 0);
  g_assert_no_error (error);
  settle ();
  g_assert_cmpuint (position_of (&f, b), ==, 0);
  g_assert_cmpint (selected_id (&f), ==, b);
  tessera_history_sidebar_select (f.sidebar, 0);
  g_assert_cmpint (selected_id (&f), ==, 0);
  tessera_history_sidebar_select (f.sidebar, c);
  g_assert_cmpint (selected_id (&f), ==, c);
  g_assert_cmpuint (f.n_activated, ==, 0);

  /* The person's choice is reported, once. */
  gtk_selection_model_select_item (GTK_SELECTION_MODEL (selection (&f)), position_of (&f, d), TRUE);
  g_assert_cmpuint (f.n_activated, ==, 1);
  g_assert_cmpint (f.activated_id, ==, d);
  gtk_selection_model_select_item (GTK_SELECTION_MODEL (selection (&f)), position_of (&f, d), TRUE);
  g_assert_cmpuint (f.n_activated, ==, 1);
  g_signal_emit_by_name (find_widget (GTK_WIDGET (f.sidebar), GTK_TYPE_LIST_VIEW), "activate", position_of (&f, a));
  g_assert_cmpuint (f.n_activated, ==, 2);
  g_assert_cmpint (f.activated_id, ==, a);
  g_assert_cmpint (selected_id (&f), ==, a);

  fixture_close (&f);
}

static void
test_search (void)
{
  Fixture f;
  GtkEditable *entry;
  g_autofree char *titles = NULL;
  gint64 a, b;

  fixture_open (&f, TRUE);
  a = add (&f, "alpha.png", 0x3366ccff, "What does the alpha chart show?", "It shows zebracorn sales by month.");
  b = add (&f, "beta.png", 0xcc6633ff, "Read the beta table", "Numbers, mostly.");
  tessera_history_sidebar_select (f.sidebar, b);

  tessera_history_sidebar_start_search (f.sidebar);
  g_assert_true (gtk_search_bar_get_search_mode (GTK_SEARCH_BAR (find_widget (GTK_WIDGET (f.sidebar), GTK_TYPE_SEARCH_BAR))));
  entry = GTK_EDITABLE (find_widget (GTK_WIDGET (f.sidebar), GTK_TYPE_SEARCH_ENTRY));
  g_assert_true (gtk_widget_has_focus (GTK_WIDGET (entry)) ||
                 gtk_widget_is_ancestor (gtk_root_get_focus (GTK_ROOT (f.window)), GTK_WIDGET (entry)));

  /* A word of an answer finds its conversation, the match in bold. */
  gtk_editable_set_text (entry, "zebracorn");
  g_signal_emit_by_name (entry, "search-changed");
  titles = row_titles (&f);
  g_assert_cmpstr (titles, ==, title_of (&f, a));
  g_assert_nonnull (strstr (second_line (&f, 0), "<b>zebracorn</b>"));
  g_assert_cmpuint (f.n_activated, ==, 0);

  gtk_editable_set_text (entry, "nowhereword");
  g_signal_emit_by_name (entry, "search-changed");
  g_assert_cmpstr (page (&f), ==, "no-results");

  /* An empty query shows every conversation again, as they were. */
  gtk_editable_set_text (entry, "");
  g_signal_emit_by_name (entry, "search-changed");
  g_assert_cmpstr (page (&f), ==, "list");
  g_free (titles);
  titles = row_titles (&f);
  g_assert_nonnull (strstr (titles, "|"));
  g_assert_true (g_str_has_prefix (second_line (&f, 0), "Today "));
  g_assert_cmpint (selected_id (&f), ==, b);

  /* Closing the search bar (Escape, here in the hits) drops the query. */
  gtk_editable_set_text (entry, "zebracorn");
  g_signal_emit_by_name (entry, "search-changed");
  g_assert_cmpuint (position_of (&f, a), ==, 0);
  g_assert_true (press (&f, "Escape"));
  g_assert_false (gtk_search_bar_get_search_mode (GTK_SEARCH_BAR (find_widget (GTK_WIDGET (f.sidebar), GTK_TYPE_SEARCH_BAR))));
  g_assert_false (press (&f, "Escape"));
  g_assert_cmpstr (gtk_editable_get_text (entry), ==, "");
  g_free (titles);
  titles = row_titles (&f);
  g_assert_nonnull (strstr (titles, "|"));
  g_assert_cmpuint (f.n_activated, ==, 0);

  fixture_close (&f);
}

static void
test_rename_delete (void)
{
  Fixture f;
  g_autoptr(GError) error = NULL;
  g_autofree char *titles = NULL;
  gint64 a, b;

  fixture_open (&f, TRUE);
  a = add (&f, "alpha.png", 0x3366ccff, "What does the alpha chart show?", "It shows zebracorn sales by month.");
  b = add (&f, "gamma.png", 0x33cc66ff, NULL, NULL);

  /* What the Rename dialog calls: the row follows. */
  g_assert_true (tessera_history_rename_conversation (f.history, a, "Quarterly numbers", &error));
  g_assert_no_error (error);
  titles = row_titles (&f);
  g_assert_cmpstr (titles, ==, "gamma.png|Quarterly numbers");
  /* An empty title is refused, with the message the dialog shows. */
  g_assert_false (tessera_history_rename_conversation (f.history, a, "  ", &error));
  g_assert_error (error, TESSERA_HISTORY_ERROR, TESSERA_HISTORY_ERROR_INVALID);
  g_assert_nonnull (error->message);
  g_clear_error (&error);

  /* Delete (the menu item and the Delete key share this action). */
  gtk_widget_activate_action (GTK_WIDGET (f.sidebar), "sidebar.delete", "x", b);
  g_assert_cmpuint (f.n_deleted, ==, 1);
  g_assert_cmpint (f.deleted_id, ==, b);
  g_assert_cmpstr (f.deleted_title, ==, "gamma.png");
  g_free (titles);
  titles = row_titles (&f);
  g_assert_cmpstr (titles, ==, "Quarterly numbers");

  /* The window's Undo. */
  g_assert_true (tessera_history_undelete_conversation (f.history, b, &error));
  g_assert_no_error (error);
  g_free (titles);
  titles = row_titles (&f);
  g_assert_cmpstr (titles, ==, "gamma.png|Quarterly numbers");

  /* The Delete key deletes the selected row, and does nothing without
   * one; deleting the last one shows the empty page. */
  tessera_history_sidebar_select (f.sidebar, 0);
  g_assert_false (press (&f, "Delete"));
  tessera_history_sidebar_select (f.sidebar, b);
  g_assert_true (press (&f, "Delete"));
  g_assert_cmpuint (f.n_deleted, ==, 2);
  g_assert_cmpint (f.deleted_id, ==, b);
  gtk_widget_activate_action (GTK_WIDGET (f.sidebar), "sidebar.delete", "x", a);
  g_assert_cmpuint (f.n_deleted, ==, 3);
  g_assert_cmpstr (page (&f), ==, "empty");
  g_assert_cmpuint (f.n_notified, ==, 0);
  g_assert_cmpuint (f.n_activated, ==, 0);

  fixture_close (&f);
}

static void
test_export (void)
{
  Fixture f;
  g_autofree char *md_path = NULL, *json_path = NULL, *text = NULL;
  g_autoptr(GFile) md = NULL, json = NULL, bad = NULL;
  g_autoptr(GError) error = NULL;
  gint64 a;

  fixture_open (&f, TRUE);
  a = add (&f, "alpha.png", 0x3366ccff, "What does the alpha chart show?", "It shows zebracorn sales by month.");
  md_path = g_build_filename (f.dir, "alpha chart.md", NULL);
  json_path = g_build_filename (f.dir, "alpha chart.json", NULL);
  md = g_file_new_for_path (md_path);
  json = g_file_new_for_path (json_path);

  tessera_history_sidebar_export (f.sidebar, a, md, TESSERA_HISTORY_SIDEBAR_EXPORT_MARKDOWN);
  spin_until (notified_once, &f, 20000);
  g_assert_cmpstr (f.notified, ==, "Exported to alpha chart.md");
  tessera_history_sidebar_export (f.sidebar, a, json, TESSERA_HISTORY_SIDEBAR_EXPORT_JSON);
  spin_until (notified_twice, &f, 20000);
  g_assert_cmpstr (f.notified, ==, "Exported to alpha chart.json");

  g_assert_true (g_file_get_contents (md_path, &text, NULL, &error));
  g_assert_no_error (error);
  g_assert_nonnull (strstr (text, "zebracorn"));
  g_clear_pointer (&text, g_free);
  g_assert_true (g_file_get_contents (json_path, &text, NULL, &error));
  g_assert_no_error (error);
  g_assert_nonnull (strstr (text, "zebracorn"));

  /* A failure comes back as the store's message, not "Exported". */
  f.n_notified = 0;
  bad = g_file_new_for_path ("/nonexistent-dir/x.json");
  tessera_history_sidebar_export (f.sidebar, a, bad, TESSERA_HISTORY_SIDEBAR_EXPORT_JSON);
  spin_until (notified_once, &f, 20000);
  g_assert_false (g_str_has_prefix (f.notified, "Exported"));
  g_test_message ("export error: %s", f.notified);

  fixture_close (&f);
}

/* With TESSERA_SIDEBAR_PAUSE=SECONDS, stays on screen for a screenshot:
 * a few rows, and with TESSERA_SIDEBAR_SEARCH=WORDS the search open, or
 * with TESSERA_SIDEBAR_STATE one of empty, unavailable, menu, rename. */
static void
pause_for_screenshot (const char *seconds)
{
  const char *state = g_getenv ("TESSERA_SIDEBAR_STATE");
  g_autoptr(GtkCssProvider) css = gtk_css_provider_new ();
  Fixture f;
  gint64 end, a, b;
  g_autoptr(GError) error = NULL;

  /* What AdwApplication would load for the app. */
  gtk_css_provider_load_from_resource (css, APP_PATH "/style.css");
  gtk_style_context_add_provider_for_display (gdk_display_get_default (), GTK_STYLE_PROVIDER (css),
                                              GTK_STYLE_PROVIDER_PRIORITY_APPLICATION);

  if (g_strcmp0 (state, "empty") == 0 || g_strcmp0 (state, "unavailable") == 0)
    {
      fixture_open (&f, g_str_equal (state, "empty"));
      gtk_window_set_default_size (f.window, 340, 560);
      tessera_history_sidebar_set_error (f.sidebar, "Could not open the history “/home/me/.local/share/tessera/history.db”: the disk is full.");
      goto wait;
    }

  fixture_open (&f, TRUE);
  gtk_window_set_default_size (f.window, 340, 560);
  a = add (&f, "sales-chart.png", 0x3366ccff, "What does the chart show for the third quarter?",
           "It shows zebracorn sales by month, peaking in August.");
  add (&f, "receipt-scan.jpg", 0xddbb88ff, "What is the total on this receipt?", "The total is 42.17 EUR.");
  b = add (&f, "screenshot.png", 0x222222ff, NULL, NULL);
  add (&f, NULL, 0, NULL, NULL);
  g_assert_true (tessera_history_rename_conversation (f.history, a, "Q3 sales chart", &error));
  tessera_history_sidebar_select (f.sidebar, b);
  if (g_getenv ("TESSERA_SIDEBAR_SEARCH") != NULL)
    {
      tessera_history_sidebar_start_search (f.sidebar);
      gtk_editable_set_text (GTK_EDITABLE (find_widget (GTK_WIDGET (f.sidebar), GTK_TYPE_SEARCH_ENTRY)),
                             g_getenv ("TESSERA_SIDEBAR_SEARCH"));
    }
  settle ();
  if (g_strcmp0 (state, "menu") == 0)
    {
      g_autoptr(GArray) buttons = row_widgets (&f, "tessera-row-menu");
      gtk_menu_button_popup (GTK_MENU_BUTTON (g_array_index (buttons, Placed, 1).widget));
    }
  else if (g_strcmp0 (state, "rename") == 0)
    gtk_widget_activate_action (GTK_WIDGET (f.sidebar), "sidebar.rename", "x", a);

wait:
  end = g_get_monotonic_time () + (gint64) (g_ascii_strtod (seconds, NULL) * G_USEC_PER_SEC);
  while (g_get_monotonic_time () < end)
    {
      g_main_context_iteration (NULL, FALSE);
      g_usleep (5000);
    }
  fixture_close (&f);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  gtk_init ();
  adw_init ();

  if (g_getenv ("TESSERA_SIDEBAR_PAUSE") != NULL)
    {
      pause_for_screenshot (g_getenv ("TESSERA_SIDEBAR_PAUSE"));
      return 0;
    }

  g_test_add_func ("/sidebar/unavailable-and-empty", test_unavailable_and_empty);
  g_test_add_func ("/sidebar/list", test_list);
  g_test_add_func ("/sidebar/search", test_search);
  g_test_add_func ("/sidebar/rename-delete", test_rename_delete);
  g_test_add_func ("/sidebar/export", test_export);
  return g_test_run ();
}
