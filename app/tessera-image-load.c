/* SPDX-License-Identifier: GPL-3.0-or-later */
#define G_LOG_DOMAIN "tessera-image"

#include "config.h"

#include <stdlib.h>

#include <glib/gi18n.h>
#include <gio/gio.h>

#include "tessera-engine.h"
#include "tessera-image-load.h"

G_DEFINE_QUARK (tessera-image-error-quark, tessera_image_error)

/* EXIF orientations 5–8 rotate by a quarter turn, which swaps the sides. */
static gboolean
orientation_swaps_sides (GdkPixbuf *pixbuf)
{
  const char *o = gdk_pixbuf_get_option (pixbuf, "orientation");
  int v = o != NULL ? atoi (o) : 1;
  return v >= 5 && v <= 8;
}

static gboolean
check_side_limit (const char *display_name, int width, int height, GError **error)
{
  if (width > TSR_IMAGE_SIDE_MAX || height > TSR_IMAGE_SIDE_MAX)
    {
      g_set_error (error, TESSERA_IMAGE_ERROR, TESSERA_IMAGE_ERROR_TOO_LARGE,
                   _("“%s” is %d × %d pixels; Tessera reads images up to %d pixels on a side. "
                     "Scale it down or crop it first."),
                   display_name, width, height, TSR_IMAGE_SIDE_MAX);
      return FALSE;
    }
  if (width <= 0 || height <= 0)
    {
      g_set_error (error, TESSERA_IMAGE_ERROR, TESSERA_IMAGE_ERROR_CORRUPT,
                   _("“%s” has no pixels. Open an image with content."), display_name);
      return FALSE;
    }
  return TRUE;
}

/* Whether the first bytes say "image" even though no loader could read the
 * file: then it is damaged rather than of a foreign kind, and the user
 * should hear that. */
static gboolean
looks_like_image (const char *path)
{
  g_autoptr(GFile) file = g_file_new_for_path (path);
  g_autoptr(GFileInputStream) in = g_file_read (file, NULL, NULL);
  guchar head[512];
  gsize n = 0;
  g_autofree char *type = NULL;

  if (in == NULL ||
      !g_input_stream_read_all (G_INPUT_STREAM (in), head, sizeof head, &n, NULL, NULL) || n == 0)
    return FALSE;
  type = g_content_type_guess (NULL, head, n, NULL);
  return g_str_has_prefix (type, "image/");
}

gboolean
tessera_image_probe (const char *path, int *width, int *height, GError **error)
{
  g_autofree char *name = g_filename_display_basename (path);
  GdkPixbufFormat *format;
  int w = 0, h = 0;

  if (!g_file_test (path, G_FILE_TEST_EXISTS))
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_NOT_FOUND,
                   _("“%s” does not exist. Check the path."), path);
      return FALSE;
    }

  format = gdk_pixbuf_get_file_info (path, &w, &h);
  if (format == NULL)
    {
      if (looks_like_image (path))
        g_set_error (error, TESSERA_IMAGE_ERROR, TESSERA_IMAGE_ERROR_CORRUPT,
                     _("“%s” could not be decoded (%s). The file may be damaged or incomplete."),
                     name, _("its header is unreadable"));
      else
        g_set_error (error, TESSERA_IMAGE_ERROR, TESSERA_IMAGE_ERROR_UNSUPPORTED,
                     _("“%s” is not an image Tessera can read. Open a PNG, JPEG, TIFF, BMP or WebP file."),
                     name);
      return FALSE;
    }
  if (!check_side_limit (name, w, h, error))
    return FALSE;

  /* Only JPEG, TIFF and WebP carry an orientation that GdkPixbuf reports, and
   * only on a decoded pixbuf. A tiny scaled decode reads it cheaply (JPEG
   * decodes at 1/8 scale natively). */
  {
    g_autofree char *fname = gdk_pixbuf_format_get_name (format);
    if (g_strcmp0 (fname, "jpeg") == 0 || g_strcmp0 (fname, "tiff") == 0 ||
        g_strcmp0 (fname, "webp") == 0)
      {
        g_autoptr(GdkPixbuf) small = gdk_pixbuf_new_from_file_at_scale (path, 64, 64, TRUE, NULL);
        if (small != NULL && orientation_swaps_sides (small))
          {
            int t = w;
            w = h;
            h = t;
          }
      }
  }

  *width = w;
  *height = h;
  return TRUE;
}

typedef struct {
  char    *name;
  GError **error;
  gboolean refused;
  int      rows_done;   /* lowest row edge a loader reported decoded */
} SizeCheck;

/* Loaders report decoded rows as they go; a file that ends early leaves the
 * bottom unreported, while GdkPixbuf may still hand back the pixbuf with
 * the rest blank. */
static void
area_updated_cb (GdkPixbufLoader *loader, int x, int y, int width, int height, gpointer user_data)
{
  SizeCheck *check = user_data;
  check->rows_done = MAX (check->rows_done, y + height);
}

static void
size_prepared_cb (GdkPixbufLoader *loader, int width, int height, gpointer user_data)
{
  SizeCheck *check = user_data;
  if (!check->refused && !check_side_limit (check->name, width, height, check->error))
    {
      /* Decode to a single pixel rather than allocate gigabytes we will not use. */
      check->refused = TRUE;
      gdk_pixbuf_loader_set_size (loader, 1, 1);
    }
}

static GdkPixbuf *
load_stream (GInputStream *stream, const char *name, GCancellable *cancellable, GError **error)
{
  g_autoptr(GdkPixbufLoader) loader = gdk_pixbuf_loader_new ();
  g_autoptr(GError) local = NULL;
  SizeCheck check = { (char *) name, error, FALSE, 0 };
  g_autofree guint8 *buf = g_malloc (256 * 1024);
  GdkPixbuf *pixbuf;
  gboolean ok = TRUE;

  g_signal_connect (loader, "size-prepared", G_CALLBACK (size_prepared_cb), &check);
  g_signal_connect (loader, "area-updated", G_CALLBACK (area_updated_cb), &check);

  for (;;)
    {
      gssize n = g_input_stream_read (stream, buf, 256 * 1024, cancellable, &local);
      if (n < 0)
        {
          ok = FALSE;
          break;
        }
      if (n == 0)
        break;
      if (!gdk_pixbuf_loader_write (loader, buf, n, &local))
        {
          ok = FALSE;
          break;
        }
      if (check.refused)
        break;
    }
  /* The loader must be closed even after a failure, or it warns on finalise. */
  if (!gdk_pixbuf_loader_close (loader, ok && !check.refused ? &local : NULL) && ok)
    ok = FALSE;

  if (check.refused)
    return NULL;
  if (!ok)
    {
      if (g_error_matches (local, G_IO_ERROR, G_IO_ERROR_CANCELLED))
        g_propagate_error (error, g_steal_pointer (&local));
      else if (g_error_matches (local, GDK_PIXBUF_ERROR, GDK_PIXBUF_ERROR_UNKNOWN_TYPE))
        g_set_error (error, TESSERA_IMAGE_ERROR, TESSERA_IMAGE_ERROR_UNSUPPORTED,
                     _("“%s” is not an image Tessera can read. Open a PNG, JPEG, TIFF, BMP or WebP file."),
                     name);
      else
        g_set_error (error, TESSERA_IMAGE_ERROR, TESSERA_IMAGE_ERROR_CORRUPT,
                     _("“%s” could not be decoded (%s). The file may be damaged or incomplete."),
                     name, local != NULL ? local->message : _("unknown error"));
      return NULL;
    }

  pixbuf = gdk_pixbuf_loader_get_pixbuf (loader);
  if (pixbuf == NULL)
    {
      g_set_error (error, TESSERA_IMAGE_ERROR, TESSERA_IMAGE_ERROR_CORRUPT,
                   _("“%s” holds no picture. The file may be damaged or incomplete."), name);
      return NULL;
    }
  if (check.rows_done > 0 && check.rows_done < gdk_pixbuf_get_height (pixbuf))
    {
      g_set_error (error, TESSERA_IMAGE_ERROR, TESSERA_IMAGE_ERROR_CORRUPT,
                   _("“%s” ends early: only %d of its %d rows could be read. "
                     "The file may be damaged or incomplete."),
                   name, check.rows_done, gdk_pixbuf_get_height (pixbuf));
      return NULL;
    }
  return gdk_pixbuf_apply_embedded_orientation (pixbuf);
}

GdkPixbuf *
tessera_image_load (const char *path, GCancellable *cancellable, GError **error)
{
  g_autoptr(GFile) file = g_file_new_for_path (path);
  g_autofree char *name = g_filename_display_basename (path);
  g_autoptr(GError) local = NULL;
  g_autoptr(GFileInputStream) stream = g_file_read (file, cancellable, &local);

  if (stream == NULL)
    {
      g_set_error (error, G_IO_ERROR, local->code, _("Could not open “%s”: %s"), name, local->message);
      return NULL;
    }
  return load_stream (G_INPUT_STREAM (stream), name, cancellable, error);
}

GdkPixbuf *
tessera_image_load_bytes (GBytes *bytes, GCancellable *cancellable, GError **error)
{
  g_autoptr(GInputStream) stream = g_memory_input_stream_new_from_bytes (bytes);
  return load_stream (stream, _("Pasted image"), cancellable, error);
}
