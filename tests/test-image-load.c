/* SPDX-License-Identifier: GPL-3.0-or-later
 *
 * test-image-load.c — files become pixels: formats, EXIF orientation, and
 * every kind of bad file getting a clear error instead of a crash or a
 * multi-gigabyte allocation.
 */
#include "config.h"

#include <string.h>

#include <glib/gstdio.h>

#include "tessera-engine.h"
#include "tessera-image-load.h"

static char *tmpdir;

static char *
tmp_path (const char *name)
{
  return g_build_filename (tmpdir, name, NULL);
}

static guint32
crc32_update (guint32 crc, const guchar *p, gsize n)
{
  crc = ~crc;
  for (gsize i = 0; i < n; i++)
    {
      crc ^= p[i];
      for (int k = 0; k < 8; k++)
        crc = (crc >> 1) ^ (0xEDB88320u & (0u - (crc & 1u)));
    }
  return ~crc;
}

static void
put_be32 (GByteArray *a, guint32 v)
{
  guchar b[4] = { v >> 24, v >> 16, v >> 8, v };
  g_byte_array_append (a, b, 4);
}

static void
put_chunk (GByteArray *a, const char *type, const guchar *data, guint32 len)
{
  g_autoptr(GByteArray) c = g_byte_array_new ();
  g_byte_array_append (c, (const guchar *) type, 4);
  if (len > 0)
    g_byte_array_append (c, data, len);
  put_be32 (a, len);
  g_byte_array_append (a, c->data, c->len);
  put_be32 (a, crc32_update (0, c->data, c->len));
}

/* A PNG signature and an IHDR chunk claiming width×height; with pixel_data,
 * also the start of an image-data chunk, which is where libpng reports
 * the size. The pixels themselves never come. */
static GByteArray *
png_header_only (guint32 width, guint32 height, gboolean pixel_data)
{
  static const guchar zlib_start[2] = { 0x78, 0x9c };
  static const guchar sig[8] = { 0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n' };
  GByteArray *a = g_byte_array_new ();
  guchar chunk[17] = { 'I', 'H', 'D', 'R' };
  chunk[4] = width >> 24; chunk[5] = width >> 16; chunk[6] = width >> 8; chunk[7] = width;
  chunk[8] = height >> 24; chunk[9] = height >> 16; chunk[10] = height >> 8; chunk[11] = height;
  chunk[12] = 8;  /* bit depth */
  chunk[13] = 2;  /* RGB */
  g_byte_array_append (a, sig, sizeof sig);
  put_chunk (a, "IHDR", chunk + 4, 13);
  if (pixel_data)
    put_chunk (a, "IDAT", zlib_start, sizeof zlib_start);
  return a;
}

static GdkPixbuf *
two_colour_pixbuf (int w, int h)
{
  GdkPixbuf *p = gdk_pixbuf_new (GDK_COLORSPACE_RGB, FALSE, 8, w, h);
  int stride = gdk_pixbuf_get_rowstride (p);
  guchar *px = gdk_pixbuf_get_pixels (p);
  /* Left half red, right half blue. */
  for (int y = 0; y < h; y++)
    for (int x = 0; x < w; x++)
      {
        guchar *q = px + y * stride + x * 3;
        q[0] = x < w / 2 ? 230 : 20;
        q[1] = 20;
        q[2] = x < w / 2 ? 20 : 230;
      }
  return p;
}

/* A JPEG with an EXIF block saying "rotate 90° clockwise to display"
 * (orientation 6), the usual tag of a phone photo taken upright. */
static char *
write_rotated_jpeg (void)
{
  g_autoptr(GdkPixbuf) p = two_colour_pixbuf (40, 20);
  g_autofree gchar *jpeg = NULL;
  gsize len = 0;
  static const guchar exif[] = {
    0xFF, 0xE1, 0x00, 0x22,                   /* APP1, length 34 */
    'E', 'x', 'i', 'f', 0, 0,
    'M', 'M', 0x00, 0x2A, 0x00, 0x00, 0x00, 0x08,   /* big-endian TIFF, IFD at 8 */
    0x00, 0x01,                               /* one entry */
    0x01, 0x12, 0x00, 0x03, 0x00, 0x00, 0x00, 0x01, 0x00, 0x06, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00,                   /* no next IFD */
  };
  g_autoptr(GByteArray) out = g_byte_array_new ();
  char *path = tmp_path ("rotated.jpg");

  g_assert_true (gdk_pixbuf_save_to_buffer (p, &jpeg, &len, "jpeg", NULL, "quality", "95", NULL));
  g_assert_cmpint ((guchar) jpeg[0], ==, 0xFF);
  g_assert_cmpint ((guchar) jpeg[1], ==, 0xD8);
  g_byte_array_append (out, (guchar *) jpeg, 2);
  g_byte_array_append (out, exif, sizeof exif);
  g_byte_array_append (out, (guchar *) jpeg + 2, len - 2);
  g_assert_true (g_file_set_contents (path, (char *) out->data, out->len, NULL));
  return path;
}

static void
test_exif_orientation (void)
{
  g_autofree char *path = write_rotated_jpeg ();
  g_autoptr(GError) error = NULL;
  g_autoptr(GdkPixbuf) p = NULL;
  int w = 0, h = 0;
  guchar *px;
  int stride;

  g_assert_true (tessera_image_probe (path, &w, &h, &error));
  g_assert_no_error (error);
  g_assert_cmpint (w, ==, 20);
  g_assert_cmpint (h, ==, 40);

  p = tessera_image_load (path, NULL, &error);
  g_assert_no_error (error);
  g_assert_cmpint (gdk_pixbuf_get_width (p), ==, 20);
  g_assert_cmpint (gdk_pixbuf_get_height (p), ==, 40);
  /* Turned clockwise, the red left half is now on top. */
  px = gdk_pixbuf_get_pixels (p);
  stride = gdk_pixbuf_get_rowstride (p);
  g_assert_cmpint (px[5 * stride + 10 * gdk_pixbuf_get_n_channels (p) + 0], >, 150);
  g_assert_cmpint (px[35 * stride + 10 * gdk_pixbuf_get_n_channels (p) + 2], >, 150);
}

static void
test_formats (void)
{
  static const char *formats[] = { "png", "jpeg", "bmp", "tiff", "webp" };
  g_autoptr(GdkPixbuf) p = two_colour_pixbuf (57, 31);

  for (gsize i = 0; i < G_N_ELEMENTS (formats); i++)
    {
      g_autofree char *name = g_strdup_printf ("image.%s", formats[i]);
      g_autofree char *path = tmp_path (name);
      g_autoptr(GError) error = NULL;
      g_autoptr(GdkPixbuf) back = NULL;
      int w = 0, h = 0;

      if (!gdk_pixbuf_save (p, path, formats[i], &error, NULL))
        {
          /* WebP needs webp-pixbuf-loader; the others ship with GdkPixbuf. */
          g_assert_cmpstr (formats[i], ==, "webp");
          g_test_message ("no %s writer here: %s", formats[i], error->message);
          continue;
        }
      g_assert_true (tessera_image_probe (path, &w, &h, &error));
      g_assert_cmpint (w, ==, 57);
      g_assert_cmpint (h, ==, 31);
      back = tessera_image_load (path, NULL, &error);
      g_assert_no_error (error);
      g_assert_cmpint (gdk_pixbuf_get_width (back), ==, 57);
      g_assert_cmpint (gdk_pixbuf_get_height (back), ==, 31);
    }
}

static void
assert_fails (const char *path, GQuark domain, int code, gboolean also_probe)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GdkPixbuf) p = tessera_image_load (path, NULL, &error);
  g_autofree char *base = g_path_get_basename (path);

  g_assert_null (p);
  g_assert_error (error, domain, code);
  /* The message names the file so the user knows which one failed. */
  g_assert_nonnull (strstr (error->message, base));
  if (also_probe)
    {
      g_autoptr(GError) perr = NULL;
      int w, h;
      g_assert_false (tessera_image_probe (path, &w, &h, &perr));
      g_assert_error (perr, domain, code);
    }
}

static void
test_bad_files (void)
{
  g_autoptr(GdkPixbuf) p = two_colour_pixbuf (200, 100);
  g_autofree gchar *png = NULL;
  gsize len = 0;
  g_autofree char *truncated = tmp_path ("truncated.png");
  g_autofree char *header = tmp_path ("header-only.png");
  g_autofree char *huge = tmp_path ("huge.png");
  g_autofree char *text = tmp_path ("notes.png");
  g_autofree char *empty = tmp_path ("empty.png");
  g_autofree char *missing = tmp_path ("missing.png");
  g_autoptr(GByteArray) hdr = png_header_only (640, 480, FALSE);
  g_autoptr(GByteArray) big = png_header_only (70000, 10, TRUE);

  g_assert_true (gdk_pixbuf_save_to_buffer (p, &png, &len, "png", NULL, NULL));
  g_assert_true (g_file_set_contents (truncated, png, len / 2, NULL));
  g_assert_true (g_file_set_contents (header, (char *) hdr->data, hdr->len, NULL));
  g_assert_true (g_file_set_contents (huge, (char *) big->data, big->len, NULL));
  g_assert_true (g_file_set_contents (text, "These are notes, not a picture.\n", -1, NULL));
  g_assert_true (g_file_set_contents (empty, "", 0, NULL));

  assert_fails (truncated, TESSERA_IMAGE_ERROR, TESSERA_IMAGE_ERROR_CORRUPT, FALSE);
  assert_fails (header, TESSERA_IMAGE_ERROR, TESSERA_IMAGE_ERROR_CORRUPT, TRUE);
  assert_fails (huge, TESSERA_IMAGE_ERROR, TESSERA_IMAGE_ERROR_TOO_LARGE, TRUE);
  assert_fails (text, TESSERA_IMAGE_ERROR, TESSERA_IMAGE_ERROR_UNSUPPORTED, TRUE);
  assert_fails (empty, TESSERA_IMAGE_ERROR, TESSERA_IMAGE_ERROR_UNSUPPORTED, FALSE);
  assert_fails (missing, G_IO_ERROR, G_IO_ERROR_NOT_FOUND, TRUE);
}

static void
test_cancelled (void)
{
  g_autoptr(GdkPixbuf) p = two_colour_pixbuf (64, 64);
  g_autofree char *path = tmp_path ("cancel.png");
  g_autoptr(GCancellable) cancellable = g_cancellable_new ();
  g_autoptr(GError) error = NULL;
  g_autoptr(GdkPixbuf) back = NULL;

  g_assert_true (gdk_pixbuf_save (p, path, "png", NULL, NULL));
  g_cancellable_cancel (cancellable);
  back = tessera_image_load (path, cancellable, &error);
  g_assert_null (back);
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_CANCELLED);
}

static void
test_bytes (void)
{
  g_autoptr(GdkPixbuf) p = two_colour_pixbuf (33, 44);
  g_autofree gchar *png = NULL;
  gsize len = 0;
  g_autoptr(GBytes) bytes = NULL;
  g_autoptr(GBytes) junk = g_bytes_new_static ("junk", 4);
  g_autoptr(GError) error = NULL;
  g_autoptr(GdkPixbuf) back = NULL;
  g_autoptr(GdkPixbuf) none = NULL;

  g_assert_true (gdk_pixbuf_save_to_buffer (p, &png, &len, "png", NULL, NULL));
  bytes = g_bytes_new (png, len);
  back = tessera_image_load_bytes (bytes, NULL, &error);
  g_assert_no_error (error);
  g_assert_cmpint (gdk_pixbuf_get_width (back), ==, 33);

  none = tessera_image_load_bytes (junk, NULL, &error);
  g_assert_null (none);
  g_assert_error (error, TESSERA_IMAGE_ERROR, TESSERA_IMAGE_ERROR_UNSUPPORTED);
}

int
main (int argc, char **argv)
{
  int rc;

  g_test_init (&argc, &argv, NULL);
  tmpdir = g_dir_make_tmp ("tessera-image-XXXXXX", NULL);
  g_assert_nonnull (tmpdir);

  g_test_add_func ("/image/exif-orientation", test_exif_orientation);
  g_test_add_func ("/image/formats", test_formats);
  g_test_add_func ("/image/bad-files", test_bad_files);
  g_test_add_func ("/image/cancelled", test_cancelled);
  g_test_add_func ("/image/bytes", test_bytes);
  rc = g_test_run ();

  {
    g_autoptr(GDir) dir = g_dir_open (tmpdir, 0, NULL);
    const char *name;
    while (dir != NULL && (name = g_dir_read_name (dir)) != NULL)
      {
        g_autofree char *p = tmp_path (name);
        g_unlink (p);
      }
    g_rmdir (tmpdir);
  }
  g_free (tmpdir);
  return rc;
}
