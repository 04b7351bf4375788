/* SPDX-License-Identifier: GPL-3.0-or-later
 *
 * tessera-history-export.c — a conversation as Markdown (with its image
 * and the tile grid beside it) or as JSON.
 *
 * JSON is written here rather than through a library: the shape is small
 * and fixed, and the only subtle part, escaping strings, is done below to
 * RFC 8259 (quotes, backslashes and control characters escaped, text kept
 * as valid UTF-8).
 */
#define G_LOG_DOMAIN "tessera-history"

#include "config.h"

#include <math.h>
#include <string.h>

#include <cairo.h>
#include <glib/gi18n.h>

#include "tessera-engine.h"
#include "tessera-history-private.h"
#include "tessera-image-load.h"

/* The overlay's longer side, at most: big scans would make huge PNGs. */
#define OVERLAY_MAX_SIDE 2048

/* ==== Shared ============================================================ */

static TesseraHistoryConversation *
find_conversation (TesseraHistory *self, gint64 id, const char *action, GError **error)
{
  TesseraHistoryConversation *conversation = tessera_history_lookup_conversation (self, id);

  if (conversation == NULL)
    _tessera_history_set_error (error, TESSERA_HISTORY_ERROR, TESSERA_HISTORY_ERROR_NOT_FOUND, action,
                 _("The conversation is no longer in the history; it may have been deleted."));
  return conversation;
}

static void
prefix_error (GError **error, const char *action)
{
  if (error != NULL && *error != NULL)
    g_prefix_error (error, "%s ", action);
}

static gboolean
replace_contents (GFile *file, const char *data, gsize size, GError **error)
{
  return g_file_replace_contents (file, data, size, NULL, FALSE,
                                  G_FILE_CREATE_REPLACE_DESTINATION, NULL, NULL, error);
}

/* ==== The tile-grid overlay ============================================= */

/* Cairo wants premultiplied native-endian ARGB; GdkPixbuf has straight RGB(A). */
static cairo_surface_t *
surface_from_pixbuf (GdkPixbuf *pixbuf)
{
  int w = gdk_pixbuf_get_width (pixbuf);
  int h = gdk_pixbuf_get_height (pixbuf);
  int n = gdk_pixbuf_get_n_channels (pixbuf);
  int stride = gdk_pixbuf_get_rowstride (pixbuf);
  const guint8 *src = gdk_pixbuf_read_pixels (pixbuf);
  cairo_surface_t *surface = cairo_image_surface_create (CAIRO_FORMAT_ARGB32, w, h);
  guint8 *dst;
  int dst_stride;

  if (cairo_surface_status (surface) != CAIRO_STATUS_SUCCESS)
    return surface;
  cairo_surface_flush (surface);
  dst = cairo_image_surface_get_data (surface);
  dst_stride = cairo_image_surface_get_stride (surface);
  for (int y = 0; y < h; y++)
    {
      const guint8 *s = src + (gsize) y * stride;
      guint32 *d = (guint32 *) (dst + (gsize) y * dst_stride);
      for (int x = 0; x < w; x++, s += n)
        {
          guint a = n == 4 ? s[3] : 255;
          guint r = (s[0] * a + 127) / 255;
          guint g = (s[1] * a + 127) / 255;
          guint b = (s[2] * a + 127) / 255;
          d[x] = (a << 24) | (r << 16) | (g << 8) | b;
        }
    }
  cairo_surface_mark_dirty (surface);
  return surface;
}

static cairo_status_t
append_png_cb (void *closure, const unsigned char *data, unsigned int length)
{
  g_byte_array_append (closure, data, length);
  return CAIRO_STATUS_SUCCESS;
}

static void
draw_tile_number (cairo_t *cr, double cx, double cy, double size, int number)
{
  char label[16];
  cairo_text_extents_t ext;
  double pad = size * 0.3;

  g_snprintf (label, sizeof label, "%d", number);
  cairo_select_font_face (cr, "Sans", CAIRO_FONT_SLANT_NORMAL, CAIRO_FONT_WEIGHT_BOLD);
  cairo_set_font_size (cr, size);
  cairo_text_extents (cr, label, &ext);

  cairo_set_source_rgba (cr, 0, 0, 0, 0.6);
  cairo_rectangle (cr, cx - ext.width / 2 - pad, cy - ext.height / 2 - pad,
                   ext.width + 2 * pad, ext.height + 2 * pad);
  cairo_fill (cr);
  cairo_set_source_rgb (cr, 1, 1, 1);
  cairo_move_to (cr, cx - ext.width / 2 - ext.x_bearing, cy - ext.height / 2 - ext.y_bearing);
  cairo_show_text (cr, label);
}

/* The image as the model cuts it at hd_num: the padding the model adds
 * shaded grey, each tile outlined and numbered from 1 as the progress
 * messages count them. The rectangles come from the engine's planner,
 * the same arithmetic the model runs on. */
static GBytes *
render_overlay (const char *image_path, int hd_num, GError **error)
{
  g_autoptr(GdkPixbuf) pixbuf = NULL;
  g_autoptr(GdkPixbuf) scaled = NULL;
  g_autoptr(GByteArray) png = NULL;
  cairo_surface_t *image = NULL;
  cairo_surface_t *canvas = NULL;
  cairo_status_t status;
  cairo_t *cr = NULL;
  TsrHdPlan plan;
  TsrError terr;
  double x0, y0, x1, y1, s;
  int w, h, cw, ch;

  pixbuf = tessera_image_load (image_path, NULL, error);
  if (pixbuf == NULL)
    return NULL;
  w = gdk_pixbuf_get_width (pixbuf);
  h = gdk_pixbuf_get_height (pixbuf);
  if (tsr_hd_plan (w, h, hd_num > 0 ? hd_num : TSR_HD_NUM_DEFAULT, &plan, &terr) != TSR_OK)
    {
      g_set_error (error, TESSERA_HISTORY_ERROR, TESSERA_HISTORY_ERROR_FAILED,
                   _("The tile grid could not be planned: %s"), terr.message);
      return NULL;
    }

  /* Tiles reach past the image where the model pads it. */
  x0 = 0, y0 = 0, x1 = w, y1 = h;
  for (int i = 0; i < plan.tiles; i++)
    {
      TsrRectF r = tsr_hd_tile_image_rect (&plan, i);
      x0 = MIN (x0, r.x);
      y0 = MIN (y0, r.y);
      x1 = MAX (x1, r.x + r.w);
      y1 = MAX (y1, r.y + r.h);
    }
  s = MIN (1.0, OVERLAY_MAX_SIDE / MAX (x1 - x0, y1 - y0));
  cw = MAX (1, (int) ceil ((x1 - x0) * s));
  ch = MAX (1, (int) ceil ((y1 - y0) * s));

  scaled = gdk_pixbuf_scale_simple (pixbuf, MAX (1, (int) round (w * s)), MAX (1, (int) round (h * s)),
                                    GDK_INTERP_BILINEAR);
  g_clear_object (&pixbuf);
  if (scaled == NULL)
    goto no_memory;
  image = surface_from_pixbuf (scaled);
  canvas = cairo_image_surface_create (CAIRO_FORMAT_RGB24, cw, ch);
  if (cairo_surface_status (image) != CAIRO_STATUS_SUCCESS ||
      cairo_surface_status (canvas) != CAIRO_STATUS_SUCCESS)
    goto no_memory;

  cr = cairo_create (canvas);
  cairo_set_source_rgb (cr, 0.82, 0.82, 0.82);
  cairo_paint (cr);
  cairo_set_source_rgb (cr, 1, 1, 1);
  cairo_rectangle (cr, -x0 * s, -y0 * s, w * s, h * s);
  cairo_fill (cr);
  cairo_set_source_surface (cr, image, -x0 * s, -y0 * s);
  cairo_paint (cr);

  for (int i = 0; i < plan.tiles; i++)
    {
      TsrRectF r = tsr_hd_tile_image_rect (&plan, i);
      double rx = (r.x - x0) * s, ry = (r.y - y0) * s, rw = r.w * s, rh = r.h * s;

      /* Light under dark, so that the lines show on any picture. */
      cairo_rectangle (cr, rx + 1, ry + 1, rw - 2, rh - 2);
      cairo_set_line_width (cr, 4);
      cairo_set_source_rgba (cr, 1, 1, 1, 0.8);
      cairo_stroke_preserve (cr);
      cairo_set_line_width (cr, 2);
      cairo_set_source_rgb (cr, 0.21, 0.52, 0.89);
      cairo_stroke (cr);
      draw_tile_number (cr, rx + rw / 2, ry + rh / 2, CLAMP (MIN (rw, rh) * 0.15, 9, 48), i + 1);
    }

  status = cairo_status (cr);
  if (status == CAIRO_STATUS_SUCCESS)
    {
      png = g_byte_array_new ();
      status = cairo_surface_write_to_png_stream (canvas, append_png_cb, png);
    }
  cairo_destroy (cr);
  cairo_surface_destroy (canvas);
  cairo_surface_destroy (image);
  if (status != CAIRO_STATUS_SUCCESS)
    {
      g_set_error (error, TESSERA_HISTORY_ERROR, TESSERA_HISTORY_ERROR_FAILED,
                   _("The tile grid could not be drawn: %s"), cairo_status_to_string (status));
      return NULL;
    }
  return g_byte_array_free_to_bytes (g_steal_pointer (&png));

no_memory:
  g_clear_pointer (&canvas, cairo_surface_destroy);
  g_clear_pointer (&image, cairo_surface_destroy);
  g_set_error (error, TESSERA_HISTORY_ERROR, TESSERA_HISTORY_ERROR_FAILED,
               _("There is not enough memory to draw the tile grid. Close other programs, "
                 "then try again."));
  return NULL;
}

/* ==== Markdown ========================================================== */

/* Backslash-escapes what Markdown would read as markup in one line of
 * plain text (a title, an alt text). */
static void
append_md_inline (GString *out, const char *text)
{
  for (const char *p = text; *p != '\0'; p++)
    {
      if (strchr ("\\`*_[]<>#|!~", *p) != NULL)
        g_string_append_c (out, '\\');
      g_string_append_c (out, *p == '\n' || *p == '\r' ? ' ' : *p);
    }
}

static char *
format_local_time (gint64 usec)
{
  g_autoptr(GDateTime) dt = g_date_time_new_from_unix_local (usec / G_USEC_PER_SEC);
  return dt != NULL ? g_date_time_format (dt, "%Y-%m-%d %H:%M") : g_strdup ("?");
}

static void
append_timings (GString *md, TesseraHistoryMessage *message)
{
  g_autoptr(GPtrArray) parts = g_ptr_array_new_with_free_func (g_free);

  if (tessera_history_message_get_n_tokens (message) > 0)
    g_ptr_array_add (parts, g_strdup_printf (_("Tokens: %d"),
                                             tessera_history_message_get_n_tokens (message)));
  if (tessera_history_message_get_prefill_speed (message) > 0)
    g_ptr_array_add (parts, g_strdup_printf (_("Reading the prompt: %.1f tokens/s"),
                                             tessera_history_message_get_prefill_speed (message)));
  if (tessera_history_message_get_decode_speed (message) > 0)
    g_ptr_array_add (parts, g_strdup_printf (_("Writing the answer: %.1f tokens/s"),
                                             tessera_history_message_get_decode_speed (message)));
  if (tessera_history_message_get_stopped (message))
    g_ptr_array_add (parts, g_strdup (_("Stopped before the end")));
  else if (!tessera_history_message_get_finished (message))
    g_ptr_array_add (parts, g_strdup (_("Unfinished")));
  if (parts->len == 0)
    return;

  g_ptr_array_add (parts, NULL);
  {
    g_autofree char *line = g_strjoinv (" · ", (char **) parts->pdata);
    g_string_append (md, "*");
    append_md_inline (md, line);
    g_string_append (md, "*\n\n");
  }
}

gboolean
tessera_history_export_markdown (TesseraHistory  *self,
                                 gint64           conversation_id,
                                 GFile           *file,
                                 GError         **error)
{
  const char *action = _("Could not export the conversation.");
  TesseraHistoryConversation *conversation;
  g_autoptr(GPtrArray) messages = NULL;
  g_autoptr(GFile) folder = NULL;
  g_autoptr(GString) md = g_string_new (NULL);
  g_autofree char *basename = NULL;
  g_autofree char *stem = NULL;
  g_autofree char *created = NULL;
  const char *title;
  const char *image_path;

  g_return_val_if_fail (TESSERA_IS_HISTORY (self), FALSE);
  g_return_val_if_fail (G_IS_FILE (file), FALSE);
  HISTORY_CHECK_THREAD (self, FALSE);

  conversation = find_conversation (self, conversation_id, action, error);
  if (conversation == NULL)
    return FALSE;
  messages = tessera_history_list_messages (self, conversation_id, error);
  if (messages == NULL)
    return FALSE;

  folder = g_file_get_parent (file);
  basename = g_file_get_basename (file);
  if (folder == NULL || basename == NULL)
    {
      _tessera_history_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_FILENAME, action,
                   _("Choose a file name inside a folder."));
      return FALSE;
    }
  stem = g_str_has_suffix (basename, ".md") ? g_strndup (basename, strlen (basename) - 3)
                                            : g_strdup (basename);

  title = tessera_history_conversation_get_title (conversation);
  g_string_append (md, "# ");
  append_md_inline (md, *title != '\0' ? title : _("Untitled conversation"));
  g_string_append (md, "\n\n");

  image_path = tessera_history_conversation_get_image_path (conversation);
  if (image_path != NULL)
    {
      g_autoptr(GFile) stored = g_file_new_for_path (image_path);
      const char *dot = strrchr (image_path, '.');
      g_autofree char *image_name = g_strconcat (stem, "-image", dot != NULL ? dot : "", NULL);
      g_autofree char *tiles_name = g_strconcat (stem, "-tiles.png", NULL);
      g_autoptr(GFile) image_copy = g_file_get_child (folder, image_name);
      g_autoptr(GFile) tiles_file = g_file_get_child (folder, tiles_name);
      g_autofree char *image_uri = g_uri_escape_string (image_name, NULL, FALSE);
      g_autofree char *tiles_uri = g_uri_escape_string (tiles_name, NULL, FALSE);
      g_autofree char *image_alt = NULL;
      g_autofree char *tiles_alt = NULL;
      g_autoptr(GBytes) overlay = NULL;
      int hd_num = tessera_history_conversation_get_hd_num (conversation);
      TsrHdPlan plan;

      if (!g_file_test (image_path, G_FILE_TEST_EXISTS))
        {
          g_autofree char *name = g_filename_display_name (image_path);
          _tessera_history_set_error (error, G_IO_ERROR, G_IO_ERROR_NOT_FOUND, action,
                       _("The history’s copy of the image, “%s”, is missing. "
                         "Open the original image again and ask anew."), name);
          return FALSE;
        }
      /* Default permissions: the stored copy is private (0600), the
       * export is the person's file. */
      if (!g_file_copy (stored, image_copy,
                        G_FILE_COPY_OVERWRITE | G_FILE_COPY_TARGET_DEFAULT_PERMS,
                        NULL, NULL, NULL, error))
        {
          prefix_error (error, action);
          return FALSE;
        }
      overlay = render_overlay (image_path, hd_num, error);
      if (overlay == NULL ||
          !replace_contents (tiles_file, g_bytes_get_data (overlay, NULL),
                             g_bytes_get_size (overlay), error))
        {
          prefix_error (error, action);
          return FALSE;
        }

      image_alt = g_strdup_printf (_("Image: %s, %d × %d pixels"),
                                   tessera_history_conversation_get_image_name (conversation),
                                   tessera_history_conversation_get_image_width (conversation),
                                   tessera_history_conversation_get_image_height (conversation));
      if (hd_num <= 0)
        hd_num = TSR_HD_NUM_DEFAULT;
      if (tsr_hd_plan (tessera_history_conversation_get_image_width (conversation),
                       tessera_history_conversation_get_image_height (conversation),
                       hd_num, &plan, NULL) != TSR_OK)
        memset (&plan, 0, sizeof plan);
      /* Translators: HD-%d names the tile budget (HD-9, HD-16…); keep "HD-". */
      tiles_alt = g_strdup_printf (_("Tile grid at HD-%d: %d rows of %d tiles"),
                                   hd_num, plan.rows, plan.cols);
      g_string_append (md, "![");
      append_md_inline (md, image_alt);
      g_string_append_printf (md, "](%s)\n\n![", image_uri);
      append_md_inline (md, tiles_alt);
      g_string_append_printf (md, "](%s)\n\n", tiles_uri);
    }

  created = format_local_time (tessera_history_conversation_get_created (conversation));
  g_string_append (md, "*");
  {
    g_autofree char *line = g_strdup_printf (_("Started %s"), created);
    append_md_inline (md, line);
  }
  if (tessera_history_conversation_get_model_name (conversation) != NULL)
    {
      g_autofree char *size = g_format_size (tessera_history_conversation_get_model_size (conversation));
      g_autofree char *line = g_strdup_printf (_("Model: %s (%s)"),
                                               tessera_history_conversation_get_model_name (conversation),
                                               size);
      g_string_append (md, " · ");
      append_md_inline (md, line);
    }
  g_string_append (md, "*\n\n");

  for (guint i = 0; i < messages->len; i++)
    {
      TesseraHistoryMessage *message = messages->pdata[i];
      gboolean user = tessera_history_message_get_role (message) == TESSERA_HISTORY_ROLE_USER;
      const char *text = tessera_history_message_get_text (message);

      g_string_append_printf (md, "### %s\n\n", user ? _("Question") : _("Answer"));
      g_string_append (md, text);
      if (*text != '\0' && text[strlen (text) - 1] != '\n')
        g_string_append_c (md, '\n');
      g_string_append_c (md, '\n');
      if (!user)
        append_timings (md, message);
    }

  if (!replace_contents (file, md->str, md->len, error))
    {
      prefix_error (error, action);
      return FALSE;
    }
  return TRUE;
}

/* ==== JSON ============================================================== */

static void
json_string (GString *out, const char *text)
{
  g_autofree char *valid = NULL;

  if (text == NULL)
    {
      g_string_append (out, "null");
      return;
    }
  if (!g_utf8_validate (text, -1, NULL))
    text = valid = g_utf8_make_valid (text, -1);

  g_string_append_c (out, '"');
  for (const guchar *p = (const guchar *) text; *p != '\0'; p++)
    switch (*p)
      {
      case '"':  g_string_append (out, "\\\""); break;
      case '\\': g_string_append (out, "\\\\"); break;
      case '\n': g_string_append (out, "\\n"); break;
      case '\r': g_string_append (out, "\\r"); break;
      case '\t': g_string_append (out, "\\t"); break;
      case '\b': g_string_append (out, "\\b"); break;
      case '\f': g_string_append (out, "\\f"); break;
      default:
        if (*p < 0x20)
          g_string_append_printf (out, "\\u%04x", *p);
        else
          g_string_append_c (out, (char) *p);
      }
  g_string_append_c (out, '"');
}

/* JSON numbers are never localised and have no NaN: unknown is null. */
static void
json_number (GString *out, double value)
{
  char buf[G_ASCII_DTOSTR_BUF_SIZE];

  if (!isfinite (value) || value <= 0)
    g_string_append (out, "null");
  else
    g_string_append (out, g_ascii_formatd (buf, sizeof buf, "%.3f", value));
}

static void
json_time (GString *out, gint64 usec)
{
  g_autoptr(GDateTime) dt = g_date_time_new_from_unix_utc (usec / G_USEC_PER_SEC);
  g_autofree char *text = dt != NULL ? g_date_time_format (dt, "%Y-%m-%dT%H:%M:%SZ") : NULL;
  json_string (out, text);
}

gboolean
tessera_history_export_json (TesseraHistory  *self,
                             gint64           conversation_id,
                             GFile           *file,
                             GError         **error)
{
  const char *action = _("Could not export the conversation.");
  TesseraHistoryConversation *c;
  g_autoptr(GPtrArray) messages = NULL;
  g_autoptr(GString) out = g_string_new (NULL);

  g_return_val_if_fail (TESSERA_IS_HISTORY (self), FALSE);
  g_return_val_if_fail (G_IS_FILE (file), FALSE);
  HISTORY_CHECK_THREAD (self, FALSE);

  c = find_conversation (self, conversation_id, action, error);
  if (c == NULL)
    return FALSE;
  messages = tessera_history_list_messages (self, conversation_id, error);
  if (messages == NULL)
    return FALSE;

  g_string_append (out, "{\n  \"format\": \"tessera-conversation\",\n  \"version\": 1,\n");
  g_string_append_printf (out, "  \"id\": %" G_GINT64_FORMAT ",\n  \"title\": ",
                          tessera_history_conversation_get_id (c));
  json_string (out, tessera_history_conversation_get_title (c));
  g_string_append (out, ",\n  \"created\": ");
  json_time (out, tessera_history_conversation_get_created (c));
  g_string_append (out, ",\n  \"updated\": ");
  json_time (out, tessera_history_conversation_get_updated (c));
  g_string_append_printf (out, ",\n  \"hd_num\": %d,\n  \"model\": ",
                          tessera_history_conversation_get_hd_num (c));
  if (tessera_history_conversation_get_model_name (c) != NULL)
    {
      g_string_append (out, "{\"file\": ");
      json_string (out, tessera_history_conversation_get_model_name (c));
      g_string_append_printf (out, ", \"size\": %" G_GINT64_FORMAT "}",
                              tessera_history_conversation_get_model_size (c));
    }
  else
    g_string_append (out, "null");
  g_string_append (out, ",\n  \"image\": ");
  if (tessera_history_conversation_get_image_sha256 (c) != NULL)
    {
      g_string_append (out, "{\"sha256\": ");
      json_string (out, tessera_history_conversation_get_image_sha256 (c));
      g_string_append (out, ", \"name\": ");
      json_string (out, tessera_history_conversation_get_image_name (c));
      g_string_append_printf (out, ", \"width\": %d, \"height\": %d, \"bytes\": %" G_GINT64_FORMAT "}",
                              tessera_history_conversation_get_image_width (c),
                              tessera_history_conversation_get_image_height (c),
                              tessera_history_conversation_get_image_size (c));
    }
  else
    g_string_append (out, "null");
  g_string_append (out, ",\n  \"messages\": [");

  for (guint i = 0; i < messages->len; i++)
    {
      TesseraHistoryMessage *m = messages->pdata[i];

      g_string_append (out, i > 0 ? ",\n    {" : "\n    {");
      g_string_append_printf (out, "\"id\": %" G_GINT64_FORMAT ", \"role\": \"%s\", \"text\": ",
                              tessera_history_message_get_id (m),
                              tessera_history_message_get_role (m) == TESSERA_HISTORY_ROLE_USER
                                ? "user" : "assistant");
      json_string (out, tessera_history_message_get_text (m));
      g_string_append (out, ", \"created\": ");
      json_time (out, tessera_history_message_get_created (m));
      g_string_append_printf (out, ", \"hd_num\": %d, \"finished\": %s, \"stopped\": %s, \"tokens\": ",
                              tessera_history_message_get_hd_num (m),
                              tessera_history_message_get_finished (m) ? "true" : "false",
                              tessera_history_message_get_stopped (m) ? "true" : "false");
      if (tessera_history_message_get_n_tokens (m) > 0)
        g_string_append_printf (out, "%d", tessera_history_message_get_n_tokens (m));
      else
        g_string_append (out, "null");
      g_string_append (out, ", \"prefill_tokens_per_second\": ");
      json_number (out, tessera_history_message_get_prefill_speed (m));
      g_string_append (out, ", \"decode_tokens_per_second\": ");
      json_number (out, tessera_history_message_get_decode_speed (m));
      g_string_append (out, "}");
    }
  g_string_append (out, messages->len > 0 ? "\n  ]\n}\n" : "]\n}\n");

  if (!replace_contents (file, out->str, out->len, error))
    {
      prefix_error (error, action);
      return FALSE;
    }
  return TRUE;
}
