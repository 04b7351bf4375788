/* SPDX-License-Identifier: GPL-3.0-or-later
 *
 * tessera-history-images.c — the copies of images and their thumbnails
 * beside the database.
 *
 * A copy is named by the SHA-256 of its bytes, so the same image asked
 * about twice is stored once, and a name never has to change. Files are
 * written to a temporary name, flushed and renamed: a crash leaves either
 * the whole file or none. They are written before the row that refers to
 * them is committed, so a row never points at a missing file; the worst a
 * crash leaves is a file no row refers to.
 */
#define G_LOG_DOMAIN "tessera-history"

#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <glib/gi18n.h>
#include <glib/gstdio.h>

#include "tessera-history-private.h"
#include "tessera-image-load.h"

#define THUMBNAIL_SIZE 256

char *
_tessera_history_thumbnail_path (TesseraHistory *self, const char *sha256)
{
  g_autofree char *name = g_strconcat (sha256, ".png", NULL);
  return g_build_filename (self->data_dir, "thumbnails", name, NULL);
}

/* The extension the stored copy gets: from its content where GIO knows the
 * type, else from the original name, else a neutral one. */
static char *
extension_for (GBytes *bytes, const char *name)
{
  static const struct { const char *mime, *ext; } known[] = {
    { "image/png", "png" }, { "image/jpeg", "jpg" }, { "image/tiff", "tif" },
    { "image/bmp", "bmp" }, { "image/webp", "webp" }, { "image/gif", "gif" },
    { "image/x-portable-pixmap", "ppm" }, { "image/x-portable-graymap", "pgm" },
    { "image/svg+xml", "svg" }, { "image/x-tga", "tga" }, { "image/vnd.microsoft.icon", "ico" },
  };
  gsize size = 0;
  const guchar *data = g_bytes_get_data (bytes, &size);
  g_autofree char *type = g_content_type_guess (NULL, data, MIN (size, 4096), NULL);
  g_autofree char *mime = g_content_type_get_mime_type (type);
  const char *dot;

  for (guint i = 0; mime != NULL && i < G_N_ELEMENTS (known); i++)
    if (strcmp (mime, known[i].mime) == 0)
      return g_strdup (known[i].ext);

  dot = name != NULL ? strrchr (name, '.') : NULL;
  if (dot != NULL && dot[1] != '\0' && strlen (dot + 1) <= 8)
    {
      g_autofree char *ext = g_ascii_strdown (dot + 1, -1);
      gboolean plain = TRUE;
      for (const char *p = ext; *p != '\0'; p++)
        plain = plain && g_ascii_isalnum (*p);
      if (plain)
        return g_steal_pointer (&ext);
    }
  return g_strdup ("img");
}

typedef struct {
  int width, height;   /* as stored in the file, before orientation */
} SizeSeen;

static void
size_prepared_cb (GdkPixbufLoader *loader, int width, int height, gpointer user_data)
{
  SizeSeen *seen = user_data;
  double scale = MIN (1.0, (double) THUMBNAIL_SIZE / MAX (width, height));

  seen->width = width;
  seen->height = height;
  /* Decoding small: JPEG decodes at a fraction of its size natively. */
  if (scale < 1.0)
    gdk_pixbuf_loader_set_size (loader, MAX (1, (int) (width * scale + 0.5)),
                                MAX (1, (int) (height * scale + 0.5)));
}

/* The image's displayed size and a small copy for the thumbnail, without
 * holding the whole image decoded. */
static GdkPixbuf *
decode_small (GBytes *bytes, const char *name, int *width, int *height, GError **error)
{
  g_autoptr(GdkPixbufLoader) loader = gdk_pixbuf_loader_new ();
  g_autoptr(GError) local = NULL;
  SizeSeen seen = { 0, 0 };
  GdkPixbuf *pixbuf;
  gsize size = 0;
  const guchar *data = g_bytes_get_data (bytes, &size);
  gboolean ok;
  const char *o;

  g_signal_connect (loader, "size-prepared", G_CALLBACK (size_prepared_cb), &seen);
  ok = gdk_pixbuf_loader_write (loader, data, size, &local);
  /* Closed in any case, or the loader complains when it is freed. */
  if (!gdk_pixbuf_loader_close (loader, ok ? &local : NULL))
    ok = FALSE;
  pixbuf = ok ? gdk_pixbuf_loader_get_pixbuf (loader) : NULL;
  if (pixbuf == NULL || seen.width <= 0 || seen.height <= 0)
    {
      if (g_error_matches (local, GDK_PIXBUF_ERROR, GDK_PIXBUF_ERROR_UNKNOWN_TYPE))
        g_set_error (error, TESSERA_IMAGE_ERROR, TESSERA_IMAGE_ERROR_UNSUPPORTED,
                     _("“%s” is not an image Tessera can read. Open a PNG, JPEG, TIFF, BMP or WebP file."),
                     name);
      else
        g_set_error (error, TESSERA_IMAGE_ERROR, TESSERA_IMAGE_ERROR_CORRUPT,
                     _("“%s” could not be decoded (%s). The file may be damaged or incomplete."),
                     name, local != NULL ? local->message : _("unknown error"));
      return NULL;
    }

  o = gdk_pixbuf_get_option (pixbuf, "orientation");
  if (o != NULL && atoi (o) >= 5 && atoi (o) <= 8)
    {
      *width = seen.height;
      *height = seen.width;
    }
  else
    {
      *width = seen.width;
      *height = seen.height;
    }
  return gdk_pixbuf_apply_embedded_orientation (pixbuf);
}

static GdkPixbuf *
scale_down (GdkPixbuf *pixbuf)
{
  int w = gdk_pixbuf_get_width (pixbuf);
  int h = gdk_pixbuf_get_height (pixbuf);
  double scale = MIN (1.0, (double) THUMBNAIL_SIZE / MAX (w, h));

  if (scale >= 1.0)
    return g_object_ref (pixbuf);
  return gdk_pixbuf_scale_simple (pixbuf, MAX (1, (int) (w * scale + 0.5)),
                                  MAX (1, (int) (h * scale + 0.5)), GDK_INTERP_BILINEAR);
}

static gboolean
write_file (TesseraHistory *self, const char *path, const void *data, gsize size, GError **error)
{
  g_autoptr(GError) local = NULL;
  g_autofree char *folder = g_path_get_dirname (path);

  if (g_mkdir_with_parents (folder, 0700) != 0)
    {
      int saved_errno = errno;
      local = g_error_new_literal (G_FILE_ERROR, g_file_error_from_errno (saved_errno),
                                   g_strerror (saved_errno));
    }
  else
    g_file_set_contents_full (path, data, size,
                              G_FILE_SET_CONTENTS_CONSISTENT | G_FILE_SET_CONTENTS_DURABLE,
                              0600, &local);
  if (local != NULL)
    {
      _tessera_history_set_file_error (self, error, local, _("Could not save the conversation."));
      return FALSE;
    }
  return TRUE;
}

static gboolean
write_thumbnail (TesseraHistory *self, GdkPixbuf *small, const char *sha256, GError **error)
{
  g_autoptr(GdkPixbuf) thumb = scale_down (small);
  g_autofree char *path = _tessera_history_thumbnail_path (self, sha256);
  g_autofree char *png = NULL;
  g_autoptr(GError) local = NULL;
  gsize size = 0;

  if (!gdk_pixbuf_save_to_buffer (thumb, &png, &size, "png", &local, NULL))
    {
      _tessera_history_set_file_error (self, error, local, _("Could not save the conversation."));
      return FALSE;
    }
  return write_file (self, path, png, size, error);
}

gboolean
_tessera_history_store_image (TesseraHistory       *self,
                              GBytes               *bytes,
                              const char           *name,
                              GdkPixbuf            *pixbuf,
                              TesseraHistoryImage  *out,
                              GError              **error)
{
  const char *action = _("Could not save the conversation.");
  g_autofree char *sha = g_compute_checksum_for_bytes (G_CHECKSUM_SHA256, bytes);
  g_autofree char *image_path = NULL;
  g_autofree char *thumb_path = NULL;
  g_autoptr(GdkPixbuf) small = NULL;
  g_autofree char *display = g_strdup (name != NULL ? name : _("Pasted image"));
  gboolean known = FALSE;

  g_strlcpy (out->sha256, sha, sizeof out->sha256);
  out->bytes = (gint64) g_bytes_get_size (bytes);

  {
    g_autoptr(TesseraHistoryStmtUse) stmt =
      _tessera_history_stmt (self, STMT_FIND_IMAGE, action, error);
    int rc;

    if (stmt == NULL)
      return FALSE;
    sqlite3_bind_text (stmt, 1, sha, -1, SQLITE_STATIC);
    rc = sqlite3_step (stmt);
    if (rc == SQLITE_ROW)
      {
        known = TRUE;
        out->stored_path = g_strdup ((const char *) sqlite3_column_text (stmt, 0));
        out->width = sqlite3_column_int (stmt, 1);
        out->height = sqlite3_column_int (stmt, 2);
      }
    else if (rc != SQLITE_DONE)
      {
        _tessera_history_set_sqlite_error (self, error, rc, action);
        return FALSE;
      }
  }

  if (!known)
    {
      g_autofree char *ext = extension_for (bytes, name);
      out->stored_path = g_strdup_printf ("images/%s.%s", sha, ext);
    }
  image_path = g_build_filename (self->data_dir, out->stored_path, NULL);
  thumb_path = _tessera_history_thumbnail_path (self, sha);

  /* Known images need decoding only if their thumbnail went missing. */
  if (!known || !g_file_test (thumb_path, G_FILE_TEST_EXISTS))
    {
      if (pixbuf != NULL)
        {
          small = g_object_ref (pixbuf);
          out->width = gdk_pixbuf_get_width (pixbuf);
          out->height = gdk_pixbuf_get_height (pixbuf);
        }
      else
        {
          int w = 0, h = 0;
          small = decode_small (bytes, display, &w, &h, error);
          if (small == NULL)
            goto fail;
          if (!known)
            {
              out->width = w;
              out->height = h;
            }
        }
    }

  if (!g_file_test (image_path, G_FILE_TEST_EXISTS) &&
      !write_file (self, image_path, g_bytes_get_data (bytes, NULL), g_bytes_get_size (bytes), error))
    goto fail;
  if (small != NULL && !write_thumbnail (self, small, sha, error))
    goto fail;
  return TRUE;

fail:
  g_clear_pointer (&out->stored_path, g_free);
  return FALSE;
}

void
_tessera_history_restore_image_file (TesseraHistory             *self,
                                     GBytes                     *bytes,
                                     const TesseraHistoryImage  *image)
{
  g_autofree char *path = g_build_filename (self->data_dir, image->stored_path, NULL);
  g_autoptr(GError) error = NULL;

  if (g_file_test (path, G_FILE_TEST_EXISTS))
    return;
  if (!write_file (self, path, g_bytes_get_data (bytes, NULL), g_bytes_get_size (bytes), &error))
    g_warning ("%s", error->message);
}
