/* SPDX-License-Identifier: GPL-3.0-or-later
 *
 * tessera-history-sidebar.c — the conversation list: one row per
 * conversation (thumbnail, title, when and HD-N), full-text search, and a
 * menu per row to rename, delete and export.
 */
#define G_LOG_DOMAIN "tessera-history-sidebar"

#include "config.h"

#include <glib/gi18n.h>

#include "tessera-history-sidebar.h"

/* Enough hits to scroll through; the best ones come first anyway. */
#define SEARCH_LIMIT 100
#define THUMBNAIL_PIXELS 48

struct _TesseraHistorySidebar
{
  GtkWidget           parent_instance;

  /* Template children. */
  GtkSearchBar       *search_bar;
  GtkSearchEntry     *search_entry;
  GtkStack           *stack;
  GtkListView        *list_view;
  GtkSingleSelection *selection;
  AdwStatusPage      *unavailable_page;

  TesseraHistory     *history;
  GListModel         *conversations;  /* the history's list, transfer none */
  GListStore         *hits;           /* conversations the search found, best first */
  GHashTable         *snippets;       /* conversation id → snippet markup of its hit */
  gboolean            searching;      /* the list shows hits, not every conversation */

  /* The conversation the window shows. The list's selection follows it,
   * and only a change the person makes is reported. */
  gint64              selected_id;
  guint               quiet;          /* > 0: selection changes are ours, not the person's */

  GHashTable         *thumbnails;     /* path → GdkTexture, or NULL if it did not load */
  GHashTable         *loading;        /* paths being loaded */
  GHashTable         *rows;           /* Row * of the bound rows */
  GCancellable       *cancellable;
};

G_DEFINE_FINAL_TYPE (TesseraHistorySidebar, tessera_history_sidebar, GTK_TYPE_WIDGET)

enum {
  PROP_0,
  PROP_HISTORY,
  PROP_SEARCH_MODE,
  N_PROPS
};

static GParamSpec *properties[N_PROPS];

enum {
  CONVERSATION_ACTIVATED,
  CONVERSATION_DELETED,
  NOTIFY_USER,
  N_SIGNALS
};

static guint signals[N_SIGNALS];

static void refresh_rows (TesseraHistorySidebar *self);
static void run_search   (TesseraHistorySidebar *self);

static void
notify_user (TesseraHistorySidebar *self, const char *message)
{
  g_signal_emit (self, signals[NOTIFY_USER], 0, message);
}

static const char *
display_title (TesseraHistoryConversation *conversation)
{
  const char *title = tessera_history_conversation_get_title (conversation);
  const char *image = tessera_history_conversation_get_image_name (conversation);

  if (title != NULL && *title != '\0')
    return title;
  if (image != NULL && *image != '\0')
    return image;
  return _("New conversation");
}

/* "Today 14:02", "Yesterday", "Monday", "3 March", "3 March 2023": the
 * further back, the less precise, as people remember it. */
static char *
format_when (gint64 usec)
{
  g_autoptr(GDateTime) now = g_date_time_new_now_local ();
  g_autoptr(GDateTime) then = g_date_time_new_from_unix_local (usec / G_USEC_PER_SEC);
  GDate now_date, then_date;
  int y, m, d, days;

  if (then == NULL)
    return g_strdup ("");
  g_date_time_get_ymd (now, &y, &m, &d);
  g_date_clear (&now_date, 1);
  g_date_set_dmy (&now_date, d, m, y);
  g_date_time_get_ymd (then, &y, &m, &d);
  g_date_clear (&then_date, 1);
  g_date_set_dmy (&then_date, d, m, y);
  days = g_date_days_between (&then_date, &now_date);

  if (days <= 0)
    {
      g_autofree char *time = g_date_time_format (then, "%H:%M");
      /* Translators: when a conversation was last active; %s is the time, "14:02". */
      return g_strdup_printf (_("Today %s"), time);
    }
  if (days == 1)
    return g_strdup (_("Yesterday"));
  if (days < 7)
    return g_date_time_format (then, "%A");
  if (g_date_time_get_year (then) == g_date_time_get_year (now))
    /* Translators: a date earlier this year, in g_date_time_format() syntax. */
    return g_date_time_format (then, _("%-d %B"));
  /* Translators: a date of an earlier year, in g_date_time_format() syntax. */
  return g_date_time_format (then, _("%-d %B %Y"));
}

static TesseraHistoryConversation *
selected_conversation (TesseraHistorySidebar *self)
{
  return gtk_single_selection_get_selected_item (self->selection);
}

/* ==== Selection ========================================================= */

/* Puts the selection on selected_id in whatever list is shown, quietly. */
static void
sync_selection (TesseraHistorySidebar *self)
{
  GListModel *model = gtk_single_selection_get_model (self->selection);
  guint n = model != NULL ? g_list_model_get_n_items (model) : 0;
  guint position = GTK_INVALID_LIST_POSITION;

  for (guint i = 0; i < n && self->selected_id != 0; i++)
    {
      g_autoptr(TesseraHistoryConversation) item = g_list_model_get_item (model, i);
      if (tessera_history_conversation_get_id (item) == self->selected_id)
        {
          position = i;
          break;
        }
    }
  if (gtk_single_selection_get_selected (self->selection) == position)
    return;
  self->quiet++;
  gtk_single_selection_set_selected (self->selection, position);
  self->quiet--;
}

/* The person picked a conversation. */
static void
pick (TesseraHistorySidebar *self, gint64 id)
{
  if (id == 0 || id == self->selected_id)
    return;
  self->selected_id = id;
  g_signal_emit (self, signals[CONVERSATION_ACTIVATED], 0, id);
}

static void
selection_changed_cb (TesseraHistorySidebar *self)
{
  TesseraHistoryConversation *item;

  if (self->quiet > 0)
    return;
  item = selected_conversation (self);
  if (item == NULL)
    {
      /* Ctrl+click on the selected row: the conversation stays open, so
       * its row stays selected. */
      sync_selection (self);
      return;
    }
  pick (self, tessera_history_conversation_get_id (item));
}

static void
activate_cb (TesseraHistorySidebar *self, guint position)
{
  GListModel *model = G_LIST_MODEL (self->selection);
  g_autoptr(TesseraHistoryConversation) item = g_list_model_get_item (model, position);

  if (item == NULL)
    return;
  pick (self, tessera_history_conversation_get_id (item));
  sync_selection (self);
}

/* ==== Pages ============================================================= */

static void
update_page (TesseraHistorySidebar *self)
{
  const char *page;

  if (self->history == NULL)
    page = "unavailable";
  else if (self->searching)
    page = g_list_model_get_n_items (G_LIST_MODEL (self->hits)) > 0 ? "list" : "no-results";
  else
    page = g_list_model_get_n_items (self->conversations) > 0 ? "list" : "empty";
  gtk_stack_set_visible_child_name (self->stack, page);
}

/* Shows the hits or every conversation, whichever applies now. */
static void
show_model (TesseraHistorySidebar *self)
{
  GListModel *model = self->searching ? G_LIST_MODEL (self->hits) : self->conversations;

  if (gtk_single_selection_get_model (self->selection) != model)
    {
      self->quiet++;
      gtk_single_selection_set_model (self->selection, model);
      self->quiet--;
    }
  sync_selection (self);
  /* The list reuses the widgets of items in both lists without binding
   * them again, and their second line differs. */
  refresh_rows (self);
  update_page (self);
}

/* The history's list is about to change: a conversation moves to the top
 * by being removed and inserted again, which would drop its selection. */
static void
conversations_changing_cb (TesseraHistorySidebar *self)
{
  self->quiet++;
}

static void
conversations_changed_cb (TesseraHistorySidebar *self)
{
  self->quiet--;
  if (self->searching)
    run_search (self);
  else
    {
      sync_selection (self);
      update_page (self);
    }
}

/* ==== Thumbnails ======================================================== */

typedef struct {
  TesseraHistorySidebar      *sidebar;     /* unowned: rows die with it */
  GtkWidget                  *thumbnail;   /* GtkImage */
  GtkWidget                  *title;
  GtkWidget                  *subtitle;
  GtkWidget                  *menu_button;
  TesseraHistoryConversation *item;
  gulong                      notify_id;
} Row;

static void
row_unbind (Row *row)
{
  if (row->item == NULL)
    return;
  g_clear_signal_handler (&row->notify_id, row->item);
  g_clear_object (&row->item);
}

static void
row_free (Row *row)
{
  row_unbind (row);
  g_free (row);
}

static void
row_show_thumbnail (Row *row, GdkTexture *texture)
{
  if (texture != NULL)
    {
      gtk_image_set_from_paintable (GTK_IMAGE (row->thumbnail), GDK_PAINTABLE (texture));
      gtk_image_set_pixel_size (GTK_IMAGE (row->thumbnail), THUMBNAIL_PIXELS);
      gtk_widget_remove_css_class (row->thumbnail, "placeholder");
    }
  else
    {
      /* A small icon on a tinted square the size of a thumbnail. */
      gtk_image_set_from_icon_name (GTK_IMAGE (row->thumbnail), "image-x-generic-symbolic");
      gtk_image_set_pixel_size (GTK_IMAGE (row->thumbnail), THUMBNAIL_PIXELS / 2);
      gtk_widget_add_css_class (row->thumbnail, "placeholder");
    }
}

static void
clear_texture (gpointer texture)
{
  if (texture != NULL)
    g_object_unref (texture);
}

/* The middle square of the stored thumbnail, at twice the row's size for
 * HiDPI screens: rows line up, and the rounded corners fall on the image. */
static void
load_thumbnail_thread (GTask *task, gpointer source, gpointer task_data, GCancellable *cancellable)
{
  GError *error = NULL;
  g_autoptr(GdkPixbuf) pixbuf = gdk_pixbuf_new_from_file (task_data, &error);
  g_autoptr(GdkPixbuf) square = NULL;
  g_autoptr(GdkPixbuf) scaled = NULL;
  int w, h, side;

  if (pixbuf == NULL)
    {
      g_task_return_error (task, error);
      return;
    }
  w = gdk_pixbuf_get_width (pixbuf);
  h = gdk_pixbuf_get_height (pixbuf);
  side = MIN (w, h);
  square = gdk_pixbuf_new_subpixbuf (pixbuf, (w - side) / 2, (h - side) / 2, side, side);
  scaled = gdk_pixbuf_scale_simple (square, 2 * THUMBNAIL_PIXELS, 2 * THUMBNAIL_PIXELS,
                                    GDK_INTERP_BILINEAR);
  /* GdkTexture is immutable and may be made on any thread. */
  g_task_return_pointer (task, gdk_texture_new_for_pixbuf (scaled), g_object_unref);
}

static void
load_thumbnail_cb (GObject *source, GAsyncResult *result, gpointer user_data)
{
  TesseraHistorySidebar *self = TESSERA_HISTORY_SIDEBAR (source);
  const char *path = g_task_get_task_data (G_TASK (result));
  g_autoptr(GError) error = NULL;
  GdkTexture *texture = g_task_propagate_pointer (G_TASK (result), &error);
  GHashTableIter iter;
  Row *row;

  if (g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
    return;
  if (texture == NULL)
    /* A missing thumbnail shows the generic icon; not worth a message. */
    g_debug ("No thumbnail %s: %s", path, error->message);

  g_hash_table_insert (self->thumbnails, g_strdup (path), texture);
  g_hash_table_remove (self->loading, path);

  g_hash_table_iter_init (&iter, self->rows);
  while (g_hash_table_iter_next (&iter, (gpointer *) &row, NULL))
    if (g_strcmp0 (tessera_history_conversation_get_thumbnail_path (row->item), path) == 0)
      row_show_thumbnail (row, texture);
}

/* Shows the cached thumbnail, or the generic icon while it loads. */
static void
row_update_thumbnail (Row *row)
{
  TesseraHistorySidebar *self = row->sidebar;
  const char *path = tessera_history_conversation_get_thumbnail_path (row->item);
  gpointer texture = NULL;
  GTask *task;

  if (path == NULL || *path == '\0')
    {
      row_show_thumbnail (row, NULL);
      return;
    }
  if (g_hash_table_lookup_extended (self->thumbnails, path, NULL, &texture))
    {
      row_show_thumbnail (row, texture);
      return;
    }
  row_show_thumbnail (row, NULL);
  if (g_hash_table_contains (self->loading, path))
    return;
  g_hash_table_add (self->loading, g_strdup (path));
  task = g_task_new (self, self->cancellable, load_thumbnail_cb, NULL);
  g_task_set_source_tag (task, row_update_thumbnail);
  g_task_set_task_data (task, g_strdup (path), g_free);
  g_task_run_in_thread (task, load_thumbnail_thread);
  g_object_unref (task);
}

/* ==== Rows ============================================================== */

static void
row_update (Row *row)
{
  TesseraHistorySidebar *self = row->sidebar;
  TesseraHistoryConversation *item = row->item;
  const char *snippet = NULL;

  if (item == NULL)
    return;

  gtk_label_set_text (GTK_LABEL (row->title), display_title (item));

  if (self->searching)
    {
      gint64 id = tessera_history_conversation_get_id (item);
      snippet = g_hash_table_lookup (self->snippets, &id);
    }
  if (snippet != NULL)
    {
      gtk_label_set_markup (GTK_LABEL (row->subtitle), snippet);
      gtk_label_set_lines (GTK_LABEL (row->subtitle), 2);
      gtk_label_set_wrap (GTK_LABEL (row->subtitle), TRUE);
    }
  else
    {
      g_autofree char *when = format_when (tessera_history_conversation_get_updated (item));
      int hd = tessera_history_conversation_get_hd_num (item);
      g_autofree char *text = hd > 0 ? g_strdup_printf ("%s · HD-%d", when, hd)
                                     : g_steal_pointer (&when);

      gtk_label_set_wrap (GTK_LABEL (row->subtitle), FALSE);
      gtk_label_set_lines (GTK_LABEL (row->subtitle), -1);
      gtk_label_set_text (GTK_LABEL (row->subtitle), text);
    }
  row_update_thumbnail (row);
}

static void
refresh_rows (TesseraHistorySidebar *self)
{
  GHashTableIter iter;
  Row *row;

  g_hash_table_iter_init (&iter, self->rows);
  while (g_hash_table_iter_next (&iter, (gpointer *) &row, NULL))
    row_update (row);
}

static GMenuModel *
row_menu (gint64 id)
{
  GMenu *menu = g_menu_new ();
  GMenu *section = g_menu_new ();
  struct { const char *label, *action; } entries[] = {
    { N_("_Rename…"), "sidebar.rename" },
    { N_("Export as _Markdown…"), "sidebar.export-markdown" },
    { N_("Export as _JSON…"), "sidebar.export-json" },
    { N_("_Delete"), "sidebar.delete" },
  };

  for (guint i = 0; i < G_N_ELEMENTS (entries); i++)
    {
      g_autoptr(GMenuItem) item = g_menu_item_new (_(entries[i].label), NULL);
      g_menu_item_set_action_and_target_value (item, entries[i].action, g_variant_new_int64 (id));
      /* Rename, then the exports, then Delete on its own. */
      if (i == 1)
        {
          g_menu_append_section (menu, NULL, G_MENU_MODEL (section));
          g_object_unref (section);
          section = g_menu_new ();
        }
      if (i == 3)
        {
          g_menu_append_section (menu, NULL, G_MENU_MODEL (section));
          g_object_unref (section);
          section = g_menu_new ();
        }
      g_menu_append_item (section, item);
    }
  g_menu_append_section (menu, NULL, G_MENU_MODEL (section));
  g_object_unref (section);
  return G_MENU_MODEL (menu);
}

static void
row_pressed_cb (GtkGestureClick *gesture, int n_press, double x, double y, Row *row)
{
  /* A right click opens the menu, not the conversation. */
  gtk_gesture_set_state (GTK_GESTURE (gesture), GTK_EVENT_SEQUENCE_CLAIMED);
  if (row->item != NULL)
    gtk_menu_button_popup (GTK_MENU_BUTTON (row->menu_button));
}

static void
setup_row_cb (GtkSignalListItemFactory *factory, GtkListItem *list_item, TesseraHistorySidebar *self)
{
  Row *row = g_new0 (Row, 1);
  GtkWidget *box = gtk_box_new (GTK_ORIENTATION_HORIZONTAL, 10);
  GtkWidget *text = gtk_box_new (GTK_ORIENTATION_VERTICAL, 2);
  GtkGesture *click = gtk_gesture_click_new ();

  row->sidebar = self;
  gtk_widget_add_css_class (box, "tessera-history-row");

  row->thumbnail = gtk_image_new ();
  gtk_image_set_pixel_size (GTK_IMAGE (row->thumbnail), THUMBNAIL_PIXELS);
  gtk_widget_set_size_request (row->thumbnail, THUMBNAIL_PIXELS, THUMBNAIL_PIXELS);
  gtk_widget_set_valign (row->thumbnail, GTK_ALIGN_CENTER);
  gtk_widget_set_overflow (row->thumbnail, GTK_OVERFLOW_HIDDEN);
  gtk_widget_add_css_class (row->thumbnail, "tessera-thumbnail");
  gtk_box_append (GTK_BOX (box), row->thumbnail);

  row->title = gtk_label_new (NULL);
  gtk_label_set_xalign (GTK_LABEL (row->title), 0);
  gtk_label_set_ellipsize (GTK_LABEL (row->title), PANGO_ELLIPSIZE_END);
  gtk_widget_add_css_class (row->title, "tessera-row-title");
  gtk_box_append (GTK_BOX (text), row->title);

  row->subtitle = gtk_label_new (NULL);
  gtk_label_set_xalign (GTK_LABEL (row->subtitle), 0);
  gtk_label_set_ellipsize (GTK_LABEL (row->subtitle), PANGO_ELLIPSIZE_END);
  gtk_label_set_wrap_mode (GTK_LABEL (row->subtitle), PANGO_WRAP_WORD_CHAR);
  gtk_widget_add_css_class (row->subtitle, "tessera-row-subtitle");
  gtk_widget_add_css_class (row->subtitle, "dim-label");
  gtk_widget_add_css_class (row->subtitle, "caption");
  gtk_box_append (GTK_BOX (text), row->subtitle);

  gtk_widget_set_hexpand (text, TRUE);
  gtk_widget_set_valign (text, GTK_ALIGN_CENTER);
  gtk_box_append (GTK_BOX (box), text);

  row->menu_button = gtk_menu_button_new ();
  gtk_menu_button_set_icon_name (GTK_MENU_BUTTON (row->menu_button), "view-more-symbolic");
  gtk_widget_set_tooltip_text (row->menu_button, _("Conversation Menu"));
  gtk_widget_set_valign (row->menu_button, GTK_ALIGN_CENTER);
  gtk_widget_add_css_class (row->menu_button, "flat");
  gtk_widget_add_css_class (row->menu_button, "tessera-row-menu");
  gtk_box_append (GTK_BOX (box), row->menu_button);

  gtk_gesture_single_set_button (GTK_GESTURE_SINGLE (click), GDK_BUTTON_SECONDARY);
  g_signal_connect (click, "pressed", G_CALLBACK (row_pressed_cb), row);
  gtk_widget_add_controller (box, GTK_EVENT_CONTROLLER (click));

  g_object_set_data_full (G_OBJECT (box), "tessera-row", row, (GDestroyNotify) row_free);
  gtk_list_item_set_child (list_item, box);
}

static void
bind_row_cb (GtkSignalListItemFactory *factory, GtkListItem *list_item, TesseraHistorySidebar *self)
{
  Row *row = g_object_get_data (G_OBJECT (gtk_list_item_get_child (list_item)), "tessera-row");
  TesseraHistoryConversation *item = gtk_list_item_get_item (list_item);
  g_autoptr(GMenuModel) menu = row_menu (tessera_history_conversation_get_id (item));

  row_unbind (row);
  row->item = g_object_ref (item);
  /* The history updates its items in place: a rename, a new question. */
  row->notify_id = g_signal_connect_swapped (item, "notify", G_CALLBACK (row_update), row);
  gtk_menu_button_set_menu_model (GTK_MENU_BUTTON (row->menu_button), menu);
  g_hash_table_add (self->rows, row);
  row_update (row);
}

static void
unbind_row_cb (GtkSignalListItemFactory *factory, GtkListItem *list_item, TesseraHistorySidebar *self)
{
  Row *row = g_object_get_data (G_OBJECT (gtk_list_item_get_child (list_item)), "tessera-row");

  g_hash_table_remove (self->rows, row);
  row_unbind (row);
}

static Row *
selected_row (TesseraHistorySidebar *self)
{
  TesseraHistoryConversation *item = selected_conversation (self);
  GHashTableIter iter;
  Row *row;

  g_hash_table_iter_init (&iter, self->rows);
  while (item != NULL && g_hash_table_iter_next (&iter, (gpointer *) &row, NULL))
    if (row->item == item)
      return row;
  return NULL;
}

/* ==== Search ============================================================ */

static void
run_search (TesseraHistorySidebar *self)
{
  const char *text = gtk_editable_get_text (GTK_EDITABLE (self->search_entry));
  g_autofree char *query = g_strstrip (g_strdup (text));
  g_autoptr(GPtrArray) found = g_ptr_array_new ();
  g_autoptr(GPtrArray) hits = NULL;
  g_autoptr(GError) error = NULL;

  g_hash_table_remove_all (self->snippets);
  self->searching = self->history != NULL && *query != '\0';
  if (self->searching)
    {
      hits = tessera_history_search (self->history, query, SEARCH_LIMIT, &error);
      if (hits == NULL)
        notify_user (self, error->message);
    }
  for (guint i = 0; hits != NULL && i < hits->len; i++)
    {
      TesseraHistoryHit *hit = g_ptr_array_index (hits, i);
      TesseraHistoryConversation *conversation =
        tessera_history_lookup_conversation (self->history, hit->conversation_id);
      gint64 *key;

      if (conversation == NULL)
        continue;
      key = g_new (gint64, 1);
      *key = hit->conversation_id;
      g_hash_table_replace (self->snippets, key, g_strdup (hit->snippet_markup));
      g_ptr_array_add (found, conversation);
    }

  self->quiet++;
  g_list_store_splice (self->hits, 0, g_list_model_get_n_items (G_LIST_MODEL (self->hits)),
                       found->pdata, found->len);
  self->quiet--;
  show_model (self);
}

static void
search_mode_cb (TesseraHistorySidebar *self)
{
  if (!gtk_search_bar_get_search_mode (self->search_bar))
    {
      GtkRoot *root = gtk_widget_get_root (GTK_WIDGET (self));
      GtkWidget *focus = root != NULL ? gtk_root_get_focus (root) : NULL;
      gboolean had_focus = focus != NULL &&
                           (focus == GTK_WIDGET (self->search_entry) ||
                            gtk_widget_is_ancestor (focus, GTK_WIDGET (self->search_entry)));

      gtk_editable_set_text (GTK_EDITABLE (self->search_entry), "");
      run_search (self);
      if (had_focus)
        gtk_widget_grab_focus (GTK_WIDGET (self->list_view));
    }
  g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_SEARCH_MODE]);
}

/* Enter in the search entry opens the best hit. */
static void
search_activate_cb (TesseraHistorySidebar *self)
{
  g_autoptr(TesseraHistoryConversation) first = NULL;

  if (!self->searching)
    return;
  first = g_list_model_get_item (G_LIST_MODEL (self->hits), 0);
  if (first != NULL)
    {
      pick (self, tessera_history_conversation_get_id (first));
      sync_selection (self);
    }
}

/* ==== Rename ============================================================ */

typedef struct {
  TesseraHistorySidebar *self;
  gint64                 id;
  GtkEditable           *entry;
} RenameData;

static void
rename_data_free (gpointer data, GClosure *closure)
{
  RenameData *d = data;
  g_object_unref (d->self);
  g_free (d);
}

static void present_rename_dialog (TesseraHistorySidebar *self,
                                   gint64                 id,
                                   const char            *text,
                                   const char            *error_message);

static void
rename_response_cb (AdwMessageDialog *dialog, const char *response, RenameData *d)
{
  g_autoptr(GError) error = NULL;
  const char *title = gtk_editable_get_text (d->entry);

  if (!g_str_equal (response, "rename") || d->self->history == NULL)
    return;
  if (tessera_history_rename_conversation (d->self->history, d->id, title, &error))
    return;
  /* An empty title: ask again, saying why, rather than lose the dialog. */
  if (g_error_matches (error, TESSERA_HISTORY_ERROR, TESSERA_HISTORY_ERROR_INVALID))
    present_rename_dialog (d->self, d->id, title, error->message);
  else
    notify_user (d->self, error->message);
}

static void
present_rename_dialog (TesseraHistorySidebar *self,
                       gint64                 id,
                       const char            *text,
                       const char            *error_message)
{
  GtkRoot *root = gtk_widget_get_root (GTK_WIDGET (self));
  GtkWidget *dialog;
  GtkWidget *entry = gtk_entry_new ();
  RenameData *d;

  dialog = adw_message_dialog_new (GTK_IS_WINDOW (root) ? GTK_WINDOW (root) : NULL,
                                   _("Rename Conversation"), NULL);
  if (error_message != NULL)
    adw_message_dialog_set_body (ADW_MESSAGE_DIALOG (dialog), error_message);

  gtk_editable_set_text (GTK_EDITABLE (entry), text);
  gtk_entry_set_activates_default (GTK_ENTRY (entry), TRUE);
  adw_message_dialog_set_extra_child (ADW_MESSAGE_DIALOG (dialog), entry);

  adw_message_dialog_add_responses (ADW_MESSAGE_DIALOG (dialog),
                                    "cancel", _("_Cancel"),
                                    "rename", _("_Rename"),
                                    NULL);
  adw_message_dialog_set_response_appearance (ADW_MESSAGE_DIALOG (dialog), "rename",
                                              ADW_RESPONSE_SUGGESTED);
  adw_message_dialog_set_default_response (ADW_MESSAGE_DIALOG (dialog), "rename");
  adw_message_dialog_set_close_response (ADW_MESSAGE_DIALOG (dialog), "cancel");

  d = g_new0 (RenameData, 1);
  d->self = g_object_ref (self);
  d->id = id;
  d->entry = GTK_EDITABLE (entry);
  g_signal_connect_data (dialog, "response", G_CALLBACK (rename_response_cb), d,
                         rename_data_free, 0);

  gtk_window_present (GTK_WINDOW (dialog));
  gtk_widget_grab_focus (entry);
  gtk_editable_select_region (GTK_EDITABLE (entry), 0, -1);
}

static void
rename_conversation (TesseraHistorySidebar *self, gint64 id)
{
  TesseraHistoryConversation *conversation;

  if (self->history == NULL)
    return;
  conversation = tessera_history_lookup_conversation (self->history, id);
  if (conversation == NULL)
    return;
  /* Start from the title the row shows, so a small fix is a small edit. */
  present_rename_dialog (self, id, display_title (conversation), NULL);
}

/* ==== Delete ============================================================ */

static void
delete_conversation (TesseraHistorySidebar *self, gint64 id)
{
  TesseraHistoryConversation *conversation;
  g_autoptr(GError) error = NULL;
  g_autofree char *title = NULL;

  if (self->history == NULL)
    return;
  conversation = tessera_history_lookup_conversation (self->history, id);
  if (conversation == NULL)
    return;
  title = g_strdup (display_title (conversation));
  if (!tessera_history_delete_conversation (self->history, id, &error))
    {
      notify_user (self, error->message);
      return;
    }
  g_signal_emit (self, signals[CONVERSATION_DELETED], 0, id, title);
}

/* ==== Export ============================================================ */

typedef struct {
  char                              *db_path;
  gint64                             id;
  GFile                             *file;
  TesseraHistorySidebarExportFormat  format;
} ExportData;

static void
export_data_free (ExportData *d)
{
  g_free (d->db_path);
  g_clear_object (&d->file);
  g_free (d);
}

static void
export_thread (GTask *task, gpointer source, gpointer task_data, GCancellable *cancellable)
{
  ExportData *d = task_data;
  g_autoptr(TesseraHistory) history = NULL;
  GError *error = NULL;
  gboolean ok;

  /* A TesseraHistory belongs to its thread: this one is ours. */
  history = tessera_history_new (d->db_path, TESSERA_HISTORY_FLAGS_READ_ONLY, &error);
  if (history == NULL)
    {
      g_task_return_error (task, error);
      return;
    }
  if (d->format == TESSERA_HISTORY_SIDEBAR_EXPORT_JSON)
    ok = tessera_history_export_json (history, d->id, d->file, &error);
  else
    ok = tessera_history_export_markdown (history, d->id, d->file, &error);
  if (ok)
    g_task_return_boolean (task, TRUE);
  else
    g_task_return_error (task, error);
}

static void
export_done_cb (GObject *source, GAsyncResult *result, gpointer user_data)
{
  TesseraHistorySidebar *self = TESSERA_HISTORY_SIDEBAR (source);
  ExportData *d = g_task_get_task_data (G_TASK (result));
  g_autoptr(GError) error = NULL;

  if (g_task_propagate_boolean (G_TASK (result), &error))
    {
      g_autofree char *name = g_file_get_basename (d->file);
      /* Translators: %s is a file name. */
      g_autofree char *message = g_strdup_printf (_("Exported to %s"), name);
      notify_user (self, message);
    }
  else
    notify_user (self, error->message);
}

/* A file name from the title: no path separators or control characters,
 * not too long, never empty. */
static char *
suggest_file_name (const char *title, const char *extension)
{
  g_autofree char *valid = g_utf8_make_valid (title, -1);
  GString *name = g_string_new (NULL);
  guint n_chars = 0;

  for (const char *p = valid; *p != '\0' && n_chars < 60; p = g_utf8_next_char (p), n_chars++)
    {
      gunichar c = g_utf8_get_char (p);
      if (c == '/' || c == '\\' || c == ':' || g_unichar_iscntrl (c))
        c = ' ';
      g_string_append_unichar (name, c);
    }
  g_strstrip (name->str);
  name->len = strlen (name->str);
  while (name->len > 0 && name->str[0] == '.')
    g_string_erase (name, 0, 1);
  if (name->len == 0)
    g_string_assign (name, _("conversation"));
  g_string_append (name, extension);
  return g_string_free (name, FALSE);
}

typedef struct {
  TesseraHistorySidebar             *self;
  gint64                             id;
  TesseraHistorySidebarExportFormat  format;
} ExportChoice;

static void
export_choice_free (gpointer data, GClosure *closure)
{
  ExportChoice *c = data;
  g_object_unref (c->self);
  g_free (c);
}

static void
export_response_cb (GtkNativeDialog *native, int response, ExportChoice *c)
{
  if (response == GTK_RESPONSE_ACCEPT)
    {
      g_autoptr(GFile) file = gtk_file_chooser_get_file (GTK_FILE_CHOOSER (native));
      if (file != NULL)
        tessera_history_sidebar_export (c->self, c->id, file, c->format);
    }
  gtk_native_dialog_destroy (native);
  g_object_unref (native);
}

static void
choose_export_file (TesseraHistorySidebar *self, gint64 id, TesseraHistorySidebarExportFormat format)
{
  gboolean json = format == TESSERA_HISTORY_SIDEBAR_EXPORT_JSON;
  GtkRoot *root = gtk_widget_get_root (GTK_WIDGET (self));
  TesseraHistoryConversation *conversation;
  GtkFileChooserNative *native;
  g_autoptr(GtkFileFilter) filter = gtk_file_filter_new ();
  g_autofree char *name = NULL;
  ExportChoice *c;

  if (self->history == NULL)
    return;
  conversation = tessera_history_lookup_conversation (self->history, id);
  if (conversation == NULL)
    return;

  native = gtk_file_chooser_native_new (json ? _("Export as JSON") : _("Export as Markdown"),
                                        GTK_IS_WINDOW (root) ? GTK_WINDOW (root) : NULL,
                                        GTK_FILE_CHOOSER_ACTION_SAVE,
                                        _("_Export"), _("_Cancel"));
  gtk_native_dialog_set_modal (GTK_NATIVE_DIALOG (native), TRUE);
  name = suggest_file_name (display_title (conversation), json ? ".json" : ".md");
  gtk_file_chooser_set_current_name (GTK_FILE_CHOOSER (native), name);

  gtk_file_filter_set_name (filter, json ? "JSON" : "Markdown");
  gtk_file_filter_add_pattern (filter, json ? "*.json" : "*.md");
  gtk_file_chooser_add_filter (GTK_FILE_CHOOSER (native), filter);

  c = g_new0 (ExportChoice, 1);
  c->self = g_object_ref (self);
  c->id = id;
  c->format = format;
  g_signal_connect_data (native, "response", G_CALLBACK (export_response_cb), c,
                         export_choice_free, 0);
  gtk_native_dialog_show (GTK_NATIVE_DIALOG (native));
}

/* ==== Actions and keys ================================================== */

static void
row_action (GtkWidget *widget, const char *action_name, GVariant *param)
{
  TesseraHistorySidebar *self = TESSERA_HISTORY_SIDEBAR (widget);
  gint64 id = g_variant_get_int64 (param);

  if (g_str_equal (action_name, "sidebar.rename"))
    rename_conversation (self, id);
  else if (g_str_equal (action_name, "sidebar.delete"))
    delete_conversation (self, id);
  else if (g_str_equal (action_name, "sidebar.export-json"))
    choose_export_file (self, id, TESSERA_HISTORY_SIDEBAR_EXPORT_JSON);
  else
    choose_export_file (self, id, TESSERA_HISTORY_SIDEBAR_EXPORT_MARKDOWN);
}

/* Delete, F2 and the Menu key act on the selected row. */
static gboolean
selected_key_cb (GtkWidget *widget, GVariant *args, gpointer user_data)
{
  TesseraHistorySidebar *self = user_data;
  TesseraHistoryConversation *item = selected_conversation (self);
  const char *what = g_variant_get_string (args, NULL);
  Row *row;

  if (item == NULL)
    return FALSE;
  if (g_str_equal (what, "delete"))
    delete_conversation (self, tessera_history_conversation_get_id (item));
  else if (g_str_equal (what, "rename"))
    rename_conversation (self, tessera_history_conversation_get_id (item));
  else if ((row = selected_row (self)) != NULL)
    gtk_menu_button_popup (GTK_MENU_BUTTON (row->menu_button));
  return TRUE;
}

/* Escape in the hits closes the search as it does in the entry; otherwise
 * it goes on to the window. */
static gboolean
escape_cb (GtkWidget *widget, GVariant *args, gpointer user_data)
{
  TesseraHistorySidebar *self = user_data;

  if (!gtk_search_bar_get_search_mode (self->search_bar))
    return FALSE;
  gtk_search_bar_set_search_mode (self->search_bar, FALSE);
  return TRUE;
}

static void
add_key (GtkShortcutController *controller, TesseraHistorySidebar *self,
         guint keyval, GdkModifierType modifiers, const char *what)
{
  GtkShortcutFunc callback = g_str_equal (what, "escape") ? escape_cb : selected_key_cb;
  GtkShortcut *shortcut = gtk_shortcut_new (gtk_keyval_trigger_new (keyval, modifiers),
                                            gtk_callback_action_new (callback, self, NULL));
  gtk_shortcut_set_arguments (shortcut, g_variant_new_string (what));
  gtk_shortcut_controller_add_shortcut (controller, shortcut);
}

/* ==== GObject =========================================================== */

static void
tessera_history_sidebar_get_property (GObject *object, guint prop_id, GValue *value, GParamSpec *pspec)
{
  TesseraHistorySidebar *self = TESSERA_HISTORY_SIDEBAR (object);

  switch (prop_id)
    {
    case PROP_HISTORY:
      g_value_set_object (value, self->history);
      break;
    case PROP_SEARCH_MODE:
      g_value_set_boolean (value, gtk_search_bar_get_search_mode (self->search_bar));
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
tessera_history_sidebar_set_property (GObject *object, guint prop_id, const GValue *value, GParamSpec *pspec)
{
  TesseraHistorySidebar *self = TESSERA_HISTORY_SIDEBAR (object);

  switch (prop_id)
    {
    case PROP_HISTORY:
      tessera_history_sidebar_set_history (self, g_value_get_object (value));
      break;
    case PROP_SEARCH_MODE:
      gtk_search_bar_set_search_mode (self->search_bar, g_value_get_boolean (value));
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
disconnect_history (TesseraHistorySidebar *self)
{
  if (self->conversations != NULL)
    g_signal_handlers_disconnect_by_data (self->conversations, self);
  self->conversations = NULL;
  g_clear_object (&self->history);
}

static void
tessera_history_sidebar_dispose (GObject *object)
{
  TesseraHistorySidebar *self = TESSERA_HISTORY_SIDEBAR (object);

  g_cancellable_cancel (self->cancellable);
  g_hash_table_remove_all (self->rows);
  gtk_widget_dispose_template (GTK_WIDGET (self), TESSERA_TYPE_HISTORY_SIDEBAR);
  disconnect_history (self);
  if (self->hits != NULL)
    g_list_store_remove_all (self->hits);

  G_OBJECT_CLASS (tessera_history_sidebar_parent_class)->dispose (object);
}

static void
tessera_history_sidebar_finalize (GObject *object)
{
  TesseraHistorySidebar *self = TESSERA_HISTORY_SIDEBAR (object);

  g_clear_object (&self->hits);
  g_clear_object (&self->cancellable);
  g_clear_pointer (&self->snippets, g_hash_table_unref);
  g_clear_pointer (&self->thumbnails, g_hash_table_unref);
  g_clear_pointer (&self->loading, g_hash_table_unref);
  g_clear_pointer (&self->rows, g_hash_table_unref);

  G_OBJECT_CLASS (tessera_history_sidebar_parent_class)->finalize (object);
}

static void
tessera_history_sidebar_class_init (TesseraHistorySidebarClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);
  GtkWidgetClass *widget_class = GTK_WIDGET_CLASS (klass);

  object_class->get_property = tessera_history_sidebar_get_property;
  object_class->set_property = tessera_history_sidebar_set_property;
  object_class->dispose = tessera_history_sidebar_dispose;
  object_class->finalize = tessera_history_sidebar_finalize;

  properties[PROP_HISTORY] =
    g_param_spec_object ("history", NULL, NULL, TESSERA_TYPE_HISTORY,
                         G_PARAM_READWRITE | G_PARAM_EXPLICIT_NOTIFY | G_PARAM_STATIC_STRINGS);
  properties[PROP_SEARCH_MODE] =
    g_param_spec_boolean ("search-mode", NULL, NULL, FALSE,
                          G_PARAM_READWRITE | G_PARAM_EXPLICIT_NOTIFY | G_PARAM_STATIC_STRINGS);
  g_object_class_install_properties (object_class, N_PROPS, properties);

  signals[CONVERSATION_ACTIVATED] =
    g_signal_new ("conversation-activated", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST,
                  0, NULL, NULL, NULL, G_TYPE_NONE, 1, G_TYPE_INT64);
  signals[CONVERSATION_DELETED] =
    g_signal_new ("conversation-deleted", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST,
                  0, NULL, NULL, NULL, G_TYPE_NONE, 2, G_TYPE_INT64, G_TYPE_STRING);
  signals[NOTIFY_USER] =
    g_signal_new ("notify-user", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST,
                  0, NULL, NULL, NULL, G_TYPE_NONE, 1, G_TYPE_STRING);

  gtk_widget_class_set_template_from_resource (widget_class, APP_PATH "/ui/tessera-history-sidebar.ui");
  gtk_widget_class_bind_template_child (widget_class, TesseraHistorySidebar, search_bar);
  gtk_widget_class_bind_template_child (widget_class, TesseraHistorySidebar, search_entry);
  gtk_widget_class_bind_template_child (widget_class, TesseraHistorySidebar, stack);
  gtk_widget_class_bind_template_child (widget_class, TesseraHistorySidebar, list_view);
  gtk_widget_class_bind_template_child (widget_class, TesseraHistorySidebar, selection);
  gtk_widget_class_bind_template_child (widget_class, TesseraHistorySidebar, unavailable_page);

  gtk_widget_class_install_action (widget_class, "sidebar.rename", "x", row_action);
  gtk_widget_class_install_action (widget_class, "sidebar.delete", "x", row_action);
  gtk_widget_class_install_action (widget_class, "sidebar.export-markdown", "x", row_action);
  gtk_widget_class_install_action (widget_class, "sidebar.export-json", "x", row_action);

  gtk_widget_class_set_css_name (widget_class, "tessera-history-sidebar");
}

static void
tessera_history_sidebar_init (TesseraHistorySidebar *self)
{
  GtkListItemFactory *factory = gtk_signal_list_item_factory_new ();
  GtkEventController *keys = gtk_shortcut_controller_new ();

  gtk_widget_init_template (GTK_WIDGET (self));

  self->hits = g_list_store_new (TESSERA_TYPE_HISTORY_CONVERSATION);
  self->snippets = g_hash_table_new_full (g_int64_hash, g_int64_equal, g_free, g_free);
  self->thumbnails = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, clear_texture);
  self->loading = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  self->rows = g_hash_table_new (NULL, NULL);
  self->cancellable = g_cancellable_new ();

  g_signal_connect (factory, "setup", G_CALLBACK (setup_row_cb), self);
  g_signal_connect (factory, "bind", G_CALLBACK (bind_row_cb), self);
  g_signal_connect (factory, "unbind", G_CALLBACK (unbind_row_cb), self);
  gtk_list_view_set_factory (self->list_view, factory);
  g_object_unref (factory);

  g_signal_connect_swapped (self->selection, "selection-changed",
                            G_CALLBACK (selection_changed_cb), self);
  g_signal_connect_swapped (self->list_view, "activate", G_CALLBACK (activate_cb), self);

  add_key (GTK_SHORTCUT_CONTROLLER (keys), self, GDK_KEY_Delete, 0, "delete");
  add_key (GTK_SHORTCUT_CONTROLLER (keys), self, GDK_KEY_KP_Delete, 0, "delete");
  add_key (GTK_SHORTCUT_CONTROLLER (keys), self, GDK_KEY_F2, 0, "rename");
  add_key (GTK_SHORTCUT_CONTROLLER (keys), self, GDK_KEY_Menu, 0, "menu");
  add_key (GTK_SHORTCUT_CONTROLLER (keys), self, GDK_KEY_F10, GDK_SHIFT_MASK, "menu");
  add_key (GTK_SHORTCUT_CONTROLLER (keys), self, GDK_KEY_Escape, 0, "escape");
  gtk_widget_add_controller (GTK_WIDGET (self->list_view), keys);

  gtk_search_bar_connect_entry (self->search_bar, GTK_EDITABLE (self->search_entry));
  gtk_search_bar_set_key_capture_widget (self->search_bar, GTK_WIDGET (self->list_view));
  g_signal_connect_swapped (self->search_entry, "search-changed", G_CALLBACK (run_search), self);
  g_signal_connect_swapped (self->search_entry, "activate", G_CALLBACK (search_activate_cb), self);
  g_signal_connect_swapped (self->search_bar, "notify::search-mode-enabled",
                            G_CALLBACK (search_mode_cb), self);

  update_page (self);
}

GtkWidget *
tessera_history_sidebar_new (TesseraHistory *history)
{
  return g_object_new (TESSERA_TYPE_HISTORY_SIDEBAR, "history", history, NULL);
}

TesseraHistory *
tessera_history_sidebar_get_history (TesseraHistorySidebar *self)
{
  g_return_val_if_fail (TESSERA_IS_HISTORY_SIDEBAR (self), NULL);
  return self->history;
}

void
tessera_history_sidebar_set_history (TesseraHistorySidebar *self, TesseraHistory *history)
{
  g_return_if_fail (TESSERA_IS_HISTORY_SIDEBAR (self));
  g_return_if_fail (history == NULL || TESSERA_IS_HISTORY (history));

  if (self->history == history)
    return;

  /* Off the old list first, so the selection never follows a dead model. */
  self->quiet++;
  gtk_single_selection_set_model (self->selection, NULL);
  self->quiet--;
  disconnect_history (self);
  g_hash_table_remove_all (self->thumbnails);
  self->selected_id = 0;

  if (history != NULL)
    {
      self->history = g_object_ref (history);
      self->conversations = tessera_history_get_conversations (history);
      /* Connected before the selection model connects its own handler. */
      g_signal_connect_swapped (self->conversations, "items-changed",
                                G_CALLBACK (conversations_changing_cb), self);
      g_signal_connect_data (self->conversations, "items-changed",
                             G_CALLBACK (conversations_changed_cb), self, NULL,
                             G_CONNECT_SWAPPED | G_CONNECT_AFTER);
    }
  run_search (self);
  g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_HISTORY]);
}

void
tessera_history_sidebar_set_error (TesseraHistorySidebar *self, const char *message)
{
  g_autofree char *markup = NULL;

  g_return_if_fail (TESSERA_IS_HISTORY_SIDEBAR (self));

  /* The status page reads its description as markup. */
  markup = message != NULL ? g_markup_escape_text (message, -1) : NULL;
  adw_status_page_set_description (self->unavailable_page, markup);
}

void
tessera_history_sidebar_start_search (TesseraHistorySidebar *self)
{
  g_return_if_fail (TESSERA_IS_HISTORY_SIDEBAR (self));

  gtk_search_bar_set_search_mode (self->search_bar, TRUE);
  gtk_widget_grab_focus (GTK_WIDGET (self->search_entry));
}

void
tessera_history_sidebar_select (TesseraHistorySidebar *self, gint64 id)
{
  g_return_if_fail (TESSERA_IS_HISTORY_SIDEBAR (self));

  self->selected_id = id;
  sync_selection (self);
}

gint64
tessera_history_sidebar_get_selected (TesseraHistorySidebar *self)
{
  g_return_val_if_fail (TESSERA_IS_HISTORY_SIDEBAR (self), 0);
  return self->selected_id;
}

void
tessera_history_sidebar_export (TesseraHistorySidebar             *self,
                                gint64                             id,
                                GFile                             *file,
                                TesseraHistorySidebarExportFormat  format)
{
  ExportData *d;
  GTask *task;

  g_return_if_fail (TESSERA_IS_HISTORY_SIDEBAR (self));
  g_return_if_fail (G_IS_FILE (file));

  if (self->history == NULL)
    return;

  d = g_new0 (ExportData, 1);
  d->db_path = g_strdup (tessera_history_get_path (self->history));
  d->id = id;
  d->file = g_object_ref (file);
  d->format = format;

  /* No cancellable: an export the person asked for finishes even if the
   * sidebar goes away first. */
  task = g_task_new (self, NULL, export_done_cb, NULL);
  g_task_set_source_tag (task, tessera_history_sidebar_export);
  g_task_set_task_data (task, d, (GDestroyNotify) export_data_free);
  g_task_run_in_thread (task, export_thread);
  g_object_unref (task);
}
