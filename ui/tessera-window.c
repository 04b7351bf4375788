/* SPDX-License-Identifier: GPL-3.0-or-later
 *
 * tessera-window.c — the main window: open an image (dialog, drop, paste,
 * command line), decode it off the main thread, and show the tile grid for
 * the chosen HD-N with a status line that states the plan in numbers.
 */
#define G_LOG_DOMAIN "tessera-window"

#include "config.h"

#include <glib/gi18n.h>

#include "tessera-image-load.h"
#include "tessera-window-private.h"

G_DEFINE_FINAL_TYPE (TesseraWindow, tessera_window, ADW_TYPE_APPLICATION_WINDOW)

void
_tessera_window_show_error (TesseraWindow *self, const char *message)
{
  AdwToast *toast = adw_toast_new (message);
  adw_toast_set_timeout (toast, 8);
  adw_toast_overlay_add_toast (self->toast_overlay, toast);
  g_free (self->last_error);
  self->last_error = g_strdup (message);
  g_message ("%s", message);
}

void
tessera_window_show_error (TesseraWindow *self, const char *message)
{
  g_return_if_fail (TESSERA_IS_WINDOW (self));
  _tessera_window_show_error (self, message);
}

void
_tessera_window_show_toast (TesseraWindow *self, AdwToast *toast)
{
  adw_toast_overlay_add_toast (self->toast_overlay, toast);
}

/* ==== Status line ======================================================= */

static void
update_status (TesseraWindow *self)
{
  const TsrHdPlan *p = tessera_image_view_get_plan (self->image_view);
  GdkPixbuf *pixbuf = tessera_image_view_get_pixbuf (self->image_view);
  int hd = tessera_image_view_get_hd_num (self->image_view);
  g_autofree char *hd_label = g_strdup_printf ("HD-%d", hd);

  gtk_menu_button_set_label (self->hd_button, hd_label);

  if (pixbuf == NULL)
    gtk_label_set_text (self->status_label, "");
  else if (p == NULL)
    gtk_label_set_text (self->status_label, tessera_image_view_get_plan_error (self->image_view));
  else
    {
      /* Translators: the status line; "336 × 336" tiles are the model's. */
      g_autofree char *text =
        g_strdup_printf (_("Grid %d × %d · %d of %d tiles · %d image tokens · "
                           "resized to %d × %d, padded to %d × %d"),
                         p->rows, p->cols, p->tiles, p->hd_num, p->tokens,
                         p->resized_w, p->resized_h, p->padded_w, p->padded_h);
      gtk_label_set_text (self->status_label, text);
    }
  gtk_widget_set_visible (self->status_bar, pixbuf != NULL);
}

static void
update_zoom_label (TesseraWindow *self)
{
  double zoom = tessera_image_view_get_zoom (self->image_view);
  g_autofree char *text = g_strdup_printf ("%.0f %%", zoom * 100.0);
  gtk_button_set_label (self->zoom_label_button, text);
}

static void
plan_changed_cb (TesseraWindow *self)
{
  update_status (self);
}

/* ==== Loading =========================================================== */

typedef struct {
  GFile  *file;
  GBytes *bytes;
} LoadData;

static void
load_data_free (LoadData *d)
{
  g_clear_object (&d->file);
  g_clear_pointer (&d->bytes, g_bytes_unref);
  g_free (d);
}

static void
load_thread (GTask *task, gpointer source, gpointer task_data, GCancellable *cancellable)
{
  LoadData *d = task_data;
  GError *error = NULL;
  GdkPixbuf *pixbuf;

  if (d->file != NULL)
    {
      g_autofree char *path = g_file_get_path (d->file);
      if (path == NULL)
        {
          g_autofree char *uri = g_file_get_uri (d->file);
          g_task_return_new_error (task, G_IO_ERROR, G_IO_ERROR_NOT_SUPPORTED,
                                   _("“%s” is not a local file. Save it to disk first."), uri);
          return;
        }
      pixbuf = tessera_image_load (path, cancellable, &error);
    }
  else
    pixbuf = tessera_image_load_bytes (d->bytes, cancellable, &error);

  if (pixbuf == NULL)
    g_task_return_error (task, error);
  else
    {
      /* The zoom levels of a big scan take a while: build them here too. */
      TesseraPicture *picture = tessera_picture_new (pixbuf);
      g_object_unref (pixbuf);
      g_task_return_pointer (task, picture, (GDestroyNotify) tessera_picture_unref);
    }
}

static void
set_page_loading (TesseraWindow *self, const char *name)
{
  g_autofree char *text = g_strdup_printf (_("Opening “%s”…"), name);
  const char *current = gtk_stack_get_visible_child_name (self->stack);

  if (g_strcmp0 (current, "loading") != 0)
    {
      g_free (self->page_before_load);
      self->page_before_load = g_strdup (current);
    }
  gtk_label_set_text (self->loading_label, text);
  gtk_spinner_start (self->spinner);
  gtk_stack_set_visible_child_name (self->stack, "loading");
  gtk_widget_action_set_enabled (GTK_WIDGET (self), "win.cancel-load", TRUE);
}

static void
load_done_cb (GObject *source, GAsyncResult *result, gpointer user_data)
{
  TesseraWindow *self = TESSERA_WINDOW (source);
  g_autofree char *name = user_data;
  g_autoptr(GError) error = NULL;
  g_autoptr(TesseraPicture) picture = g_task_propagate_pointer (G_TASK (result), &error);
  GdkPixbuf *pixbuf = picture ? tessera_picture_get_pixbuf (picture) : NULL;

  /* A newer load replaced this one: its result is not wanted. */
  if (g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED) &&
      g_task_get_cancellable (G_TASK (result)) != self->load_cancellable)
    return;

  g_clear_object (&self->load_cancellable);
  gtk_spinner_stop (self->spinner);
  gtk_widget_action_set_enabled (GTK_WIDGET (self), "win.cancel-load", FALSE);

  if (pixbuf == NULL)
    {
      const char *back = self->page_before_load ? self->page_before_load : "welcome";
      gtk_stack_set_visible_child_name (self->stack, back);
      if (!g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
        _tessera_window_show_error (self, error->message);
      return;
    }

  tessera_image_view_set_picture (self->image_view, picture);
  adw_window_title_set_subtitle (self->window_title, name);
  {
    LoadData *d = g_task_get_task_data (G_TASK (result));
    g_clear_object (&self->image_file);
    g_clear_pointer (&self->image_bytes, g_bytes_unref);
    g_clear_pointer (&self->image_key, g_free);
    self->image_file = d->file ? g_object_ref (d->file) : NULL;
    self->image_bytes = d->bytes ? g_bytes_ref (d->bytes) : NULL;
    g_free (self->image_name);
    self->image_name = g_strdup (name);
  }
  {
    g_autofree char *sub = g_strdup_printf ("%d × %d", gdk_pixbuf_get_width (pixbuf),
                                            gdk_pixbuf_get_height (pixbuf));
    gtk_widget_set_tooltip_text (GTK_WIDGET (self->window_title), sub);
  }
  gtk_stack_set_visible_child_name (self->stack, "image");
  g_clear_pointer (&self->last_error, g_free);
  _tessera_window_image_changed (self);
}

static void
start_load (TesseraWindow *self, GFile *file, GBytes *bytes, const char *name)
{
  LoadData *d = g_new0 (LoadData, 1);
  g_autoptr(GTask) task = NULL;

  if (self->load_cancellable != NULL)
    g_cancellable_cancel (self->load_cancellable);
  g_clear_object (&self->load_cancellable);
  self->load_cancellable = g_cancellable_new ();

  d->file = file ? g_object_ref (file) : NULL;
  d->bytes = bytes ? g_bytes_ref (bytes) : NULL;

  set_page_loading (self, name);
  task = g_task_new (self, self->load_cancellable, load_done_cb, g_strdup (name));
  g_task_set_source_tag (task, start_load);
  g_task_set_task_data (task, d, (GDestroyNotify) load_data_free);
  g_task_run_in_thread (task, load_thread);
}

void
tessera_window_open_file (TesseraWindow *self, GFile *file)
{
  g_autofree char *name = NULL;
  g_return_if_fail (TESSERA_IS_WINDOW (self));
  g_return_if_fail (G_IS_FILE (file));

  name = g_file_get_basename (file);
  start_load (self, file, NULL, name);
}

gboolean
tessera_window_is_loading (TesseraWindow *self)
{
  g_return_val_if_fail (TESSERA_IS_WINDOW (self), FALSE);
  return self->load_cancellable != NULL;
}

/* ==== Actions =========================================================== */

static void
open_response_cb (GtkNativeDialog *dialog, int response, TesseraWindow *self)
{
  if (response == GTK_RESPONSE_ACCEPT)
    {
      g_autoptr(GFile) file = gtk_file_chooser_get_file (GTK_FILE_CHOOSER (dialog));
      if (file != NULL)
        tessera_window_open_file (self, file);
    }
  gtk_native_dialog_destroy (dialog);
  g_object_unref (dialog);
}

static void
open_action (GtkWidget *widget, const char *action_name, GVariant *param)
{
  TesseraWindow *self = TESSERA_WINDOW (widget);
  GtkFileChooserNative *dialog;
  GtkFileFilter *images, *all;

  dialog = gtk_file_chooser_native_new (_("Open an Image"), GTK_WINDOW (self),
                                        GTK_FILE_CHOOSER_ACTION_OPEN, _("_Open"), _("_Cancel"));
  gtk_native_dialog_set_modal (GTK_NATIVE_DIALOG (dialog), TRUE);

  images = gtk_file_filter_new ();
  gtk_file_filter_set_name (images, _("Images"));
  gtk_file_filter_add_pixbuf_formats (images);
  gtk_file_chooser_add_filter (GTK_FILE_CHOOSER (dialog), images);
  all = gtk_file_filter_new ();
  gtk_file_filter_set_name (all, _("All Files"));
  gtk_file_filter_add_pattern (all, "*");
  gtk_file_chooser_add_filter (GTK_FILE_CHOOSER (dialog), all);
  g_object_unref (images);
  g_object_unref (all);

  g_signal_connect (dialog, "response", G_CALLBACK (open_response_cb), self);
  gtk_native_dialog_show (GTK_NATIVE_DIALOG (dialog));
}

static void
cancel_load_action (GtkWidget *widget, const char *action_name, GVariant *param)
{
  TesseraWindow *self = TESSERA_WINDOW (widget);
  if (self->load_cancellable != NULL)
    g_cancellable_cancel (self->load_cancellable);
}

/* Clipboard images arrive as encoded bytes; we read them whole on the main
 * loop (the clipboard is fed by it) and decode them on the worker thread. */
static void
paste_splice_cb (GObject *source, GAsyncResult *result, gpointer user_data)
{
  g_autoptr(TesseraWindow) self = user_data;
  g_autoptr(GError) error = NULL;
  GOutputStream *out = G_OUTPUT_STREAM (source);

  if (g_output_stream_splice_finish (out, result, &error) < 0)
    {
      g_autofree char *msg = g_strdup_printf (_("Could not read the clipboard: %s"), error->message);
      _tessera_window_show_error (self, msg);
      return;
    }
  {
    g_autoptr(GBytes) bytes = g_memory_output_stream_steal_as_bytes (G_MEMORY_OUTPUT_STREAM (out));
    start_load (self, NULL, bytes, _("Pasted image"));
  }
}

static void
paste_read_cb (GObject *source, GAsyncResult *result, gpointer user_data)
{
  g_autoptr(TesseraWindow) self = user_data;
  g_autoptr(GError) error = NULL;
  g_autoptr(GInputStream) in = gdk_clipboard_read_finish (GDK_CLIPBOARD (source), result, NULL, &error);
  g_autoptr(GOutputStream) out = NULL;

  if (in == NULL)
    {
      g_autofree char *msg = g_strdup_printf (_("Could not read the clipboard: %s"), error->message);
      _tessera_window_show_error (self, msg);
      return;
    }
  out = g_memory_output_stream_new_resizable ();
  g_output_stream_splice_async (out, in,
                                G_OUTPUT_STREAM_SPLICE_CLOSE_SOURCE | G_OUTPUT_STREAM_SPLICE_CLOSE_TARGET,
                                G_PRIORITY_DEFAULT, NULL, paste_splice_cb, g_object_ref (self));
}

static void
paste_files_cb (GObject *source, GAsyncResult *result, gpointer user_data)
{
  g_autoptr(TesseraWindow) self = user_data;
  g_autoptr(GError) error = NULL;
  const GValue *value = gdk_clipboard_read_value_finish (GDK_CLIPBOARD (source), result, &error);
  GSList *files;

  if (value == NULL)
    {
      g_autofree char *msg = g_strdup_printf (_("Could not read the clipboard: %s"), error->message);
      _tessera_window_show_error (self, msg);
      return;
    }
  files = gdk_file_list_get_files (g_value_get_boxed (value));
  if (files != NULL)
    tessera_window_open_file (self, files->data);
  g_slist_free (files);
}

static void
paste_action (GtkWidget *widget, const char *action_name, GVariant *param)
{
  TesseraWindow *self = TESSERA_WINDOW (widget);
  GdkClipboard *clipboard = gtk_widget_get_clipboard (widget);
  GdkContentFormats *formats = gdk_clipboard_get_formats (clipboard);
  static const char *mime_types[] = {
    "image/png", "image/jpeg", "image/tiff", "image/bmp", "image/webp", NULL
  };

  for (const char **m = mime_types; *m != NULL; m++)
    if (gdk_content_formats_contain_mime_type (formats, *m))
      {
        gdk_clipboard_read_async (clipboard, mime_types, G_PRIORITY_DEFAULT, NULL,
                                  paste_read_cb, g_object_ref (self));
        return;
      }
  if (gdk_content_formats_contain_gtype (formats, GDK_TYPE_FILE_LIST))
    {
      gdk_clipboard_read_value_async (clipboard, GDK_TYPE_FILE_LIST, G_PRIORITY_DEFAULT, NULL,
                                      paste_files_cb, g_object_ref (self));
      return;
    }
  if (gdk_content_formats_contain_gtype (formats, GDK_TYPE_TEXTURE))
    {
      /* An in-process texture: GTK serialises it to PNG for us. */
      gdk_clipboard_read_async (clipboard, mime_types, G_PRIORITY_DEFAULT, NULL,
                                paste_read_cb, g_object_ref (self));
      return;
    }
  _tessera_window_show_error (self, _("The clipboard holds no image. Copy an image or take a screenshot first."));
}

static void
zoom_action (GtkWidget *widget, const char *action_name, GVariant *param)
{
  TesseraWindow *self = TESSERA_WINDOW (widget);
  if (g_str_equal (action_name, "win.zoom-in"))
    tessera_image_view_zoom_in (self->image_view);
  else if (g_str_equal (action_name, "win.zoom-out"))
    tessera_image_view_zoom_out (self->image_view);
  else if (g_str_equal (action_name, "win.zoom-fit"))
    tessera_image_view_zoom_to_fit (self->image_view);
  else
    tessera_image_view_zoom_actual (self->image_view);
}

/* ==== Drag and drop ===================================================== */

static gboolean
drop_cb (GtkDropTarget *target, const GValue *value, double x, double y, TesseraWindow *self)
{
  if (G_VALUE_HOLDS (value, GDK_TYPE_FILE_LIST))
    {
      GSList *files = gdk_file_list_get_files (g_value_get_boxed (value));
      gboolean ok = files != NULL;
      if (ok)
        tessera_window_open_file (self, files->data);
      g_slist_free (files);
      return ok;
    }
  if (G_VALUE_HOLDS (value, G_TYPE_FILE))
    {
      tessera_window_open_file (self, g_value_get_object (value));
      return TRUE;
    }
  return FALSE;
}

/* ==== Window state ====================================================== */

static gboolean
tessera_window_close_request (GtkWindow *window)
{
  TesseraWindow *self = TESSERA_WINDOW (window);
  int w, h;

  gtk_window_get_default_size (window, &w, &h);
  g_settings_delay (self->settings);
  g_settings_set_int (self->settings, "window-width", w);
  g_settings_set_int (self->settings, "window-height", h);
  g_settings_set_boolean (self->settings, "window-maximized", gtk_window_is_maximized (window));
  g_settings_apply (self->settings);

  if (self->load_cancellable != NULL)
    g_cancellable_cancel (self->load_cancellable);

  return GTK_WINDOW_CLASS (tessera_window_parent_class)->close_request (window);
}

/* ==== GObject =========================================================== */

static void
tessera_window_dispose (GObject *object)
{
  TesseraWindow *self = TESSERA_WINDOW (object);

  if (self->load_cancellable != NULL)
    g_cancellable_cancel (self->load_cancellable);
  g_clear_object (&self->load_cancellable);
  _tessera_window_chat_dispose (self);
  /* The GSettings actions outlive a closed window while the settings live
   * on; left in place they would report state changes to a dead window. */
  g_action_map_remove_action (G_ACTION_MAP (self), "hd-num");
  g_action_map_remove_action (G_ACTION_MAP (self), "show-overlay");
  g_action_map_remove_action (G_ACTION_MAP (self), "sidebar-visible");
  gtk_widget_dispose_template (GTK_WIDGET (self), TESSERA_TYPE_WINDOW);
  g_clear_object (&self->settings);

  G_OBJECT_CLASS (tessera_window_parent_class)->dispose (object);
}

static void
tessera_window_finalize (GObject *object)
{
  TesseraWindow *self = TESSERA_WINDOW (object);
  g_free (self->last_error);
  g_free (self->page_before_load);
  g_clear_object (&self->image_file);
  g_clear_pointer (&self->image_bytes, g_bytes_unref);
  g_free (self->image_key);
  g_free (self->image_name);
  G_OBJECT_CLASS (tessera_window_parent_class)->finalize (object);
}

static void
tessera_window_class_init (TesseraWindowClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);
  GtkWidgetClass *widget_class = GTK_WIDGET_CLASS (klass);
  GtkWindowClass *window_class = GTK_WINDOW_CLASS (klass);

  object_class->dispose = tessera_window_dispose;
  object_class->finalize = tessera_window_finalize;
  window_class->close_request = tessera_window_close_request;

  g_type_ensure (TESSERA_TYPE_IMAGE_VIEW);
  g_type_ensure (TESSERA_TYPE_CHAT_VIEW);
  gtk_widget_class_set_template_from_resource (widget_class, APP_PATH "/ui/tessera-window.ui");
  gtk_widget_class_bind_template_child (widget_class, TesseraWindow, toast_overlay);
  gtk_widget_class_bind_template_child (widget_class, TesseraWindow, window_title);
  gtk_widget_class_bind_template_child (widget_class, TesseraWindow, hd_button);
  gtk_widget_class_bind_template_child (widget_class, TesseraWindow, hd_spin);
  gtk_widget_class_bind_template_child (widget_class, TesseraWindow, stack);
  gtk_widget_class_bind_template_child (widget_class, TesseraWindow, spinner);
  gtk_widget_class_bind_template_child (widget_class, TesseraWindow, loading_label);
  gtk_widget_class_bind_template_child (widget_class, TesseraWindow, image_view);
  gtk_widget_class_bind_template_child (widget_class, TesseraWindow, status_label);
  gtk_widget_class_bind_template_child (widget_class, TesseraWindow, status_bar);
  gtk_widget_class_bind_template_child (widget_class, TesseraWindow, zoom_label_button);
  gtk_widget_class_bind_template_child (widget_class, TesseraWindow, flap);
  gtk_widget_class_bind_template_child (widget_class, TesseraWindow, sidebar_box);
  gtk_widget_class_bind_template_child (widget_class, TesseraWindow, paned);
  gtk_widget_class_bind_template_child (widget_class, TesseraWindow, chat_view);

  gtk_widget_class_install_action (widget_class, "win.open", NULL, open_action);
  gtk_widget_class_install_action (widget_class, "win.paste", NULL, paste_action);
  gtk_widget_class_install_action (widget_class, "win.cancel-load", NULL, cancel_load_action);
  gtk_widget_class_install_action (widget_class, "win.zoom-in", NULL, zoom_action);
  gtk_widget_class_install_action (widget_class, "win.zoom-out", NULL, zoom_action);
  gtk_widget_class_install_action (widget_class, "win.zoom-fit", NULL, zoom_action);
  gtk_widget_class_install_action (widget_class, "win.zoom-actual", NULL, zoom_action);

  gtk_widget_class_add_binding_action (widget_class, GDK_KEY_o, GDK_CONTROL_MASK, "win.open", NULL);
  gtk_widget_class_add_binding_action (widget_class, GDK_KEY_v, GDK_CONTROL_MASK, "win.paste", NULL);
  gtk_widget_class_add_binding_action (widget_class, GDK_KEY_Escape, 0, "win.cancel-load", NULL);
  gtk_widget_class_add_binding_action (widget_class, GDK_KEY_plus, GDK_CONTROL_MASK, "win.zoom-in", NULL);
  gtk_widget_class_add_binding_action (widget_class, GDK_KEY_equal, GDK_CONTROL_MASK, "win.zoom-in", NULL);
  gtk_widget_class_add_binding_action (widget_class, GDK_KEY_KP_Add, GDK_CONTROL_MASK, "win.zoom-in", NULL);
  gtk_widget_class_add_binding_action (widget_class, GDK_KEY_minus, GDK_CONTROL_MASK, "win.zoom-out", NULL);
  gtk_widget_class_add_binding_action (widget_class, GDK_KEY_KP_Subtract, GDK_CONTROL_MASK, "win.zoom-out", NULL);
  gtk_widget_class_add_binding_action (widget_class, GDK_KEY_0, GDK_CONTROL_MASK, "win.zoom-fit", NULL);
  gtk_widget_class_add_binding_action (widget_class, GDK_KEY_KP_0, GDK_CONTROL_MASK, "win.zoom-fit", NULL);
  gtk_widget_class_add_binding_action (widget_class, GDK_KEY_1, GDK_CONTROL_MASK, "win.zoom-actual", NULL);
  gtk_widget_class_add_binding_action (widget_class, GDK_KEY_KP_1, GDK_CONTROL_MASK, "win.zoom-actual", NULL);
  gtk_widget_class_add_binding_action (widget_class, GDK_KEY_g, GDK_CONTROL_MASK, "win.show-overlay", NULL);

  _tessera_window_chat_class_init (widget_class);
}

static void
tessera_window_init (TesseraWindow *self)
{
  g_autoptr(GAction) hd_action = NULL;
  g_autoptr(GAction) overlay_action = NULL;
  GtkDropTarget *drop;
  GType drop_types[] = { GDK_TYPE_FILE_LIST, G_TYPE_FILE };

  gtk_widget_init_template (GTK_WIDGET (self));

  self->settings = g_settings_new (APP_ID);

  gtk_window_set_default_size (GTK_WINDOW (self),
                               g_settings_get_int (self->settings, "window-width"),
                               g_settings_get_int (self->settings, "window-height"));
  if (g_settings_get_boolean (self->settings, "window-maximized"))
    gtk_window_maximize (GTK_WINDOW (self));

  /* HD-N and the overlay live in GSettings: every window and the next
   * start see the same budget. */
  hd_action = g_settings_create_action (self->settings, "hd-num");
  overlay_action = g_settings_create_action (self->settings, "show-overlay");
  g_action_map_add_action (G_ACTION_MAP (self), hd_action);
  g_action_map_add_action (G_ACTION_MAP (self), overlay_action);
  g_settings_bind (self->settings, "hd-num", self->image_view, "hd-num", G_SETTINGS_BIND_GET);
  g_settings_bind (self->settings, "show-overlay", self->image_view, "show-overlay", G_SETTINGS_BIND_GET);
  g_settings_bind (self->settings, "hd-num", gtk_spin_button_get_adjustment (self->hd_spin), "value",
                   G_SETTINGS_BIND_DEFAULT);

  g_signal_connect_swapped (self->image_view, "plan-changed", G_CALLBACK (plan_changed_cb), self);
  g_signal_connect_swapped (self->image_view, "notify::zoom", G_CALLBACK (update_zoom_label), self);

  drop = gtk_drop_target_new (G_TYPE_INVALID, GDK_ACTION_COPY);
  gtk_drop_target_set_gtypes (drop, drop_types, G_N_ELEMENTS (drop_types));
  g_signal_connect (drop, "drop", G_CALLBACK (drop_cb), self);
  gtk_widget_add_controller (GTK_WIDGET (self), GTK_EVENT_CONTROLLER (drop));

  gtk_widget_action_set_enabled (GTK_WIDGET (self), "win.cancel-load", FALSE);
  update_status (self);
  update_zoom_label (self);
}

TesseraWindow *
tessera_window_new (GtkApplication *application)
{
  return tessera_window_new_full (application, NULL, NULL);
}

TesseraWindow *
tessera_window_new_full (GtkApplication *application, TesseraWorker *worker, TesseraHistory *history)
{
  TesseraWindow *self = g_object_new (TESSERA_TYPE_WINDOW, "application", application, NULL);
  self->worker = worker ? g_object_ref (worker) : NULL;
  self->history = history ? g_object_ref (history) : NULL;
  _tessera_window_chat_init (self);
  return self;
}

TesseraImageView *
tessera_window_get_image_view (TesseraWindow *self)
{
  g_return_val_if_fail (TESSERA_IS_WINDOW (self), NULL);
  return self->image_view;
}

const char *
tessera_window_get_status_text (TesseraWindow *self)
{
  g_return_val_if_fail (TESSERA_IS_WINDOW (self), NULL);
  return gtk_label_get_text (self->status_label);
}

const char *
tessera_window_get_last_error (TesseraWindow *self)
{
  g_return_val_if_fail (TESSERA_IS_WINDOW (self), NULL);
  return self->last_error;
}
