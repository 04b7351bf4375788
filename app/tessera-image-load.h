/* SPDX-License-Identifier: GPL-3.0-or-later
 *
 * tessera-image-load.h — decoding image files for the app and tessera-cli.
 *
 * The engine takes RGB8 pixels and never decodes files; this is where files
 * become pixels, through GdkPixbuf, with the EXIF orientation applied so
 * that what the model reads is what the user sees.
 */
#pragma once

#include <gdk-pixbuf/gdk-pixbuf.h>

G_BEGIN_DECLS

#define TESSERA_IMAGE_ERROR (tessera_image_error_quark ())

typedef enum {
  TESSERA_IMAGE_ERROR_UNSUPPORTED,  /* not an image format we can read */
  TESSERA_IMAGE_ERROR_TOO_LARGE,    /* a side above TSR_IMAGE_SIDE_MAX */
  TESSERA_IMAGE_ERROR_CORRUPT,      /* a known format, but damaged or truncated */
} TesseraImageError;

GQuark     tessera_image_error_quark (void);

/* Width and height as displayed (after EXIF orientation), without decoding
 * the whole image where the format allows it. */
gboolean   tessera_image_probe (const char    *path,
                                int           *width,
                                int           *height,
                                GError       **error);

/* Decodes the whole file, applies its EXIF orientation. Blocking: call it
 * from a worker thread in the app. */
GdkPixbuf *tessera_image_load  (const char    *path,
                                GCancellable  *cancellable,
                                GError       **error);

/* Decodes an image held in memory (a pasted clipboard image, say). */
GdkPixbuf *tessera_image_load_bytes (GBytes        *bytes,
                                     GCancellable  *cancellable,
                                     GError       **error);

/* The pixbuf's pixels as tightly packed 8-bit RGB (stride 3·width), the way
 * the reference's Image.convert('RGB') reads the file: alpha is dropped,
 * not composited over any background. Free with g_free(). Fails with
 * TESSERA_IMAGE_ERROR_TOO_LARGE if the copy cannot be allocated. */
guint8    *tessera_image_to_rgb8 (GdkPixbuf     *pixbuf,
                                  gsize         *size,
                                  GError       **error);

G_END_DECLS
