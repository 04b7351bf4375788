/* SPDX-License-Identifier: GPL-3.0-or-later
 *
 * test-ui.c — the window as a user drives it, under Xvfb: open the sample
 * document, switch HD-N, and check what the overlay says and draws.
 *
 * Expected tile and token counts come from tests/fixtures/hd-plans.json,
 * which the Python reference (tests/reference/hd_reference.py) computed
 * from the official HD_transform arithmetic, not from our planner.
 *
 *   test-ui SAMPLE.png hd-plans.json
 */
#include "config.h"

#include <glib/gstdio.h>
#include <cjson/cJSON.h>
#include <adwaita.h>

#include "tessera-window.h"

static const char *sample_path;
static cJSON *fixture;

typedef struct {
  int rows, cols, tiles, tokens;
} Expected;

static Expected
expected_for (int width, int height, int hd)
{
  Expected e = { 0, 0, 0, 0 };
  cJSON *cases = cJSON_IsArray (fixture) ? fixture : cJSON_GetObjectItem (fixture, "cases");
  cJSON *c;
  cJSON_ArrayForEach (c, cases)
    {
      if (cJSON_GetObjectItem (c, "width")->valueint == width &&
          cJSON_GetObjectItem (c, "height")->valueint == height &&
          cJSON_GetObjectItem (c, "hd_num")->valueint == hd &&
          cJSON_GetObjectItem (c, "tiles") != NULL)
        {
          e.rows = cJSON_GetObjectItem (c, "rows")->valueint;
          e.cols = cJSON_GetObjectItem (c, "cols")->valueint;
          e.tiles = cJSON_GetObjectItem (c, "tiles")->valueint;
          e.tokens = cJSON_GetObjectItem (c, "tokens")->valueint;
          return e;
        }
    }
  g_error ("the fixture has no case %d×%d at HD-%d", width, height, hd);
  return e;
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

static gboolean
loaded (gpointer data)
{
  return !tessera_window_is_loading (TESSERA_WINDOW (data));
}

static gboolean
drawn (gpointer data)
{
  return gtk_widget_get_width (GTK_WIDGET (data)) > 100 && gtk_widget_get_mapped (GTK_WIDGET (data));
}

/* Lets pending layout and drawing happen. */
static void
settle (void)
{
  for (int i = 0; i < 50; i++)
    {
      g_main_context_iteration (NULL, FALSE);
      g_usleep (2000);
    }
}

static void
check_status (TesseraWindow *win, Expected e, int hd)
{
  const char *status = tessera_window_get_status_text (win);
  g_autofree char *grid = g_strdup_printf ("Grid %d × %d", e.rows, e.cols);
  g_autofree char *tiles = g_strdup_printf ("%d of %d tiles", e.tiles, hd);
  g_autofree char *tokens = g_strdup_printf ("%d image tokens", e.tokens);
  g_assert_nonnull (strstr (status, grid));
  g_assert_nonnull (strstr (status, tiles));
  g_assert_nonnull (strstr (status, tokens));
}

static void
check_plan (TesseraImageView *view, Expected e)
{
  const TsrHdPlan *p = tessera_image_view_get_plan (view);
  g_assert_nonnull (p);
  g_assert_cmpint (p->rows, ==, e.rows);
  g_assert_cmpint (p->cols, ==, e.cols);
  g_assert_cmpint (p->tiles, ==, e.tiles);
  g_assert_cmpint (p->tokens, ==, e.tokens);
}

/* Renders the image view as the screen would show it and returns the
 * pixels (Cairo ARGB32, premultiplied, native endian). */
static guchar *
render_view (TesseraWindow *win, int *w, int *h, gsize *stride)
{
  TesseraImageView *view = tessera_window_get_image_view (win);
  GskRenderer *renderer = gtk_native_get_renderer (GTK_NATIVE (win));
  g_autoptr(GdkPaintable) paintable = gtk_widget_paintable_new (GTK_WIDGET (view));
  GtkSnapshot *snapshot = gtk_snapshot_new ();
  g_autoptr(GskRenderNode) node = NULL;
  g_autoptr(GdkTexture) texture = NULL;
  guchar *pixels;

  *w = gtk_widget_get_width (GTK_WIDGET (view));
  *h = gtk_widget_get_height (GTK_WIDGET (view));
  gdk_paintable_snapshot (paintable, snapshot, *w, *h);
  node = gtk_snapshot_free_to_node (snapshot);
  g_assert_nonnull (node);
  texture = gsk_renderer_render_texture (renderer, node, &GRAPHENE_RECT_INIT (0, 0, *w, *h));
  *w = gdk_texture_get_width (texture);
  *h = gdk_texture_get_height (texture);
  *stride = (gsize) *w * 4;
  pixels = g_malloc (*stride * *h);
  gdk_texture_download (texture, pixels, *stride);
  return pixels;
}

static void
pixel_rgb (const guchar *px, gsize stride, int x, int y, int *r, int *g, int *b)
{
  guint32 v = *(const guint32 *) (px + (gsize) y * stride + (gsize) x * 4);
  *r = (v >> 16) & 0xff;
  *g = (v >> 8) & 0xff;
  *b = v & 0xff;
}

/* The accent blue of the grid lines: blue clearly above red. */
static gboolean
is_grid_blue (int r, int g, int b)
{
  return b > 150 && b - r > 80;
}

/* Counts grid-blue pixels on a short horizontal run across the border
 * between tile `left` and the tile to its right, at mid-height. */
static int
blue_across_border (TesseraWindow *win, int left)
{
  TesseraImageView *view = tessera_window_get_image_view (win);
  const TsrHdPlan *p = tessera_image_view_get_plan (view);
  TsrRectF r = tsr_hd_tile_image_rect (p, left);
  double wx, wy;
  int w, h, count = 0;
  gsize stride;
  g_autofree guchar *px = render_view (win, &w, &h, &stride);

  tessera_image_view_image_to_widget (view, r.x + r.w, r.y + r.h / 2, &wx, &wy);
  for (int x = (int) wx - 3; x <= (int) wx + 3; x++)
    {
      int rr, gg, bb;
      if (x < 0 || x >= w || wy < 0 || wy >= h)
        continue;
      pixel_rgb (px, stride, x, (int) wy, &rr, &gg, &bb);
      count += is_grid_blue (rr, gg, bb);
    }
  return count;
}

static TesseraWindow *
open_sample_window (void)
{
  TesseraWindow *win = tessera_window_new (NULL);
  g_autoptr(GFile) file = g_file_new_for_path (sample_path);

  gtk_window_set_default_size (GTK_WINDOW (win), 1200, 800);
  gtk_window_present (GTK_WINDOW (win));
  tessera_window_open_file (win, file);
  spin_until (loaded, win, 60000);
  spin_until (drawn, tessera_window_get_image_view (win), 10000);
  settle ();
  return win;
}

static void
test_open_and_switch (void)
{
  TesseraWindow *win = open_sample_window ();
  TesseraImageView *view = tessera_window_get_image_view (win);
  GdkPixbuf *pixbuf = tessera_image_view_get_pixbuf (view);
  int w, h;
  const int budgets[] = { 25, 9, 16, 55, 25 };

  g_assert_null (tessera_window_get_last_error (win));
  g_assert_nonnull (pixbuf);
  w = gdk_pixbuf_get_width (pixbuf);
  h = gdk_pixbuf_get_height (pixbuf);
  g_assert_cmpint (w, >=, 3000);

  for (gsize i = 0; i < G_N_ELEMENTS (budgets); i++)
    {
      int hd = budgets[i];
      Expected e = expected_for (w, h, hd);
      gtk_widget_activate_action (GTK_WIDGET (win), "win.hd-num", "i", hd);
      settle ();
      g_assert_cmpint (tessera_image_view_get_hd_num (view), ==, hd);
      check_plan (view, e);
      check_status (win, e, hd);
    }

  /* The spin button in the budget popover reaches every value 1–100. */
  {
    GtkSpinButton *spin = GTK_SPIN_BUTTON (gtk_widget_get_template_child (GTK_WIDGET (win),
                                                                          TESSERA_TYPE_WINDOW, "hd_spin"));
    Expected e = expected_for (w, h, 40);
    g_assert_nonnull (spin);
    gtk_spin_button_set_value (spin, 40);
    settle ();
    g_assert_cmpint (tessera_image_view_get_hd_num (view), ==, 40);
    check_plan (view, e);
    check_status (win, e, 40);
  }

  gtk_window_destroy (GTK_WINDOW (win));
}

static void
test_zoom (void)
{
  TesseraWindow *win = open_sample_window ();
  TesseraImageView *view = tessera_window_get_image_view (win);
  double fit;

  g_assert_true (tessera_image_view_get_fit (view));
  fit = tessera_image_view_get_zoom (view);
  /* A 3508-pixel page fitted into a 1200-pixel window is shown reduced. */
  g_assert_cmpfloat (fit, <, 0.5);

  gtk_widget_activate_action (GTK_WIDGET (win), "win.zoom-actual", NULL);
  g_assert_cmpfloat_with_epsilon (tessera_image_view_get_zoom (view), 1.0, 1e-9);
  g_assert_false (tessera_image_view_get_fit (view));
  gtk_widget_activate_action (GTK_WIDGET (win), "win.zoom-in", NULL);
  g_assert_cmpfloat_with_epsilon (tessera_image_view_get_zoom (view), 1.25, 1e-9);
  gtk_widget_activate_action (GTK_WIDGET (win), "win.zoom-out", NULL);
  gtk_widget_activate_action (GTK_WIDGET (win), "win.zoom-out", NULL);
  g_assert_cmpfloat_with_epsilon (tessera_image_view_get_zoom (view), 0.8, 1e-9);
  for (int i = 0; i < 40; i++)
    gtk_widget_activate_action (GTK_WIDGET (win), "win.zoom-in", NULL);
  g_assert_cmpfloat (tessera_image_view_get_zoom (view), <=, 32.0);
  settle ();  /* draws the sharp-pixel path */

  gtk_widget_activate_action (GTK_WIDGET (win), "win.zoom-fit", NULL);
  g_assert_true (tessera_image_view_get_fit (view));
  g_assert_cmpfloat_with_epsilon (tessera_image_view_get_zoom (view), fit, 1e-9);
  gtk_window_destroy (GTK_WINDOW (win));
}

static void
test_overlay_drawn_and_hidden (void)
{
  TesseraWindow *win = open_sample_window ();
  TesseraImageView *view = tessera_window_get_image_view (win);

  gtk_widget_activate_action (GTK_WIDGET (win), "win.hd-num", "i", 25);
  tessera_image_view_zoom_to_fit (view);
  settle ();
  g_assert_true (tessera_image_view_get_show_overlay (view));
  /* A border between the first two tiles shows the grid's blue line. */
  g_assert_cmpint (blue_across_border (win, 0), >, 0);

  gtk_widget_activate_action (GTK_WIDGET (win), "win.show-overlay", NULL);
  settle ();
  g_assert_false (tessera_image_view_get_show_overlay (view));
  g_assert_cmpint (blue_across_border (win, 0), ==, 0);

  gtk_widget_activate_action (GTK_WIDGET (win), "win.show-overlay", NULL);
  settle ();
  g_assert_true (tessera_image_view_get_show_overlay (view));
  gtk_window_destroy (GTK_WINDOW (win));
}

static void
test_bad_files_keep_the_image (void)
{
  TesseraWindow *win = open_sample_window ();
  TesseraImageView *view = tessera_window_get_image_view (win);
  GdkPixbuf *before = tessera_image_view_get_pixbuf (view);
  g_autofree char *dir = g_dir_make_tmp ("tessera-ui-XXXXXX", NULL);
  g_autofree char *garbage = g_build_filename (dir, "garbage.png", NULL);
  g_autofree char *strip = g_build_filename (dir, "strip.png", NULL);
  g_autoptr(GFile) gfile = g_file_new_for_path (garbage);
  g_autoptr(GFile) sfile = g_file_new_for_path (strip);
  g_autoptr(GdkPixbuf) thin = gdk_pixbuf_new (GDK_COLORSPACE_RGB, FALSE, 8, 1, 60000);

  g_assert_true (g_file_set_contents (garbage, "\x89PNG\r\n\x1a\n not really a png", -1, NULL));
  tessera_window_open_file (win, gfile);
  spin_until (loaded, win, 30000);
  g_assert_nonnull (tessera_window_get_last_error (win));
  g_assert_true (tessera_image_view_get_pixbuf (view) == before);

  /* A 1×60000 strip opens, but the planner refuses it: the status line
   * says why and nothing is drawn over it. */
  gdk_pixbuf_fill (thin, 0x808080ff);
  g_assert_true (gdk_pixbuf_save (thin, strip, "png", NULL, NULL));
  tessera_window_open_file (win, sfile);
  spin_until (loaded, win, 30000);
  settle ();
  g_assert_null (tessera_image_view_get_plan (view));
  g_assert_nonnull (strstr (tessera_window_get_status_text (win), "1×60000"));

  g_unlink (garbage);
  g_unlink (strip);
  g_rmdir (dir);
  gtk_window_destroy (GTK_WINDOW (win));
}

typedef struct {
  TesseraImageView *view;
  int width;
} WantWidth;

static gboolean
shows_width (gpointer data)
{
  WantWidth *w = data;
  GdkPixbuf *p = tessera_image_view_get_pixbuf (w->view);
  return p != NULL && gdk_pixbuf_get_width (p) == w->width;
}

static gboolean
has_error (gpointer data)
{
  return tessera_window_get_last_error (TESSERA_WINDOW (data)) != NULL;
}

/* Ctrl+V with a screenshot on the clipboard: the commonest way in. */
static void
test_paste (void)
{
  TesseraWindow *win = open_sample_window ();
  GdkClipboard *clipboard = gtk_widget_get_clipboard (GTK_WIDGET (win));
  g_autoptr(GdkPixbuf) shot = gdk_pixbuf_new (GDK_COLORSPACE_RGB, FALSE, 8, 1366, 768);
  g_autoptr(GdkTexture) texture = NULL;
  WantWidth want = { tessera_window_get_image_view (win), 1366 };
  Expected e = expected_for (1366, 768, 25);

  gdk_pixbuf_fill (shot, 0x3366ccff);
  texture = gdk_texture_new_for_pixbuf (shot);
  gdk_clipboard_set_texture (clipboard, texture);
  gtk_widget_activate_action (GTK_WIDGET (win), "win.hd-num", "i", 25);
  gtk_widget_activate_action (GTK_WIDGET (win), "win.paste", NULL);
  spin_until (shows_width, &want, 30000);
  spin_until (loaded, win, 30000);
  g_assert_cmpint (gdk_pixbuf_get_height (tessera_image_view_get_pixbuf (want.view)), ==, 768);
  check_plan (want.view, e);

  /* Text is not an image: the user hears so, and the image stays. */
  gdk_clipboard_set_text (clipboard, "not an image");
  gtk_widget_activate_action (GTK_WIDGET (win), "win.paste", NULL);
  spin_until (has_error, win, 10000);
  g_assert_nonnull (strstr (tessera_window_get_last_error (win), "clipboard"));
  g_assert_true (shows_width (&want));
  gtk_window_destroy (GTK_WINDOW (win));
}

typedef struct {
  gint64 last;
  gint64 worst;
} Ticks;

static gboolean
tick_cb (gpointer data)
{
  Ticks *t = data;
  gint64 now = g_get_monotonic_time ();
  t->worst = MAX (t->worst, now - t->last);
  t->last = now;
  return G_SOURCE_CONTINUE;
}

/* A 12000×9000 scan decodes on a worker thread: the main loop keeps
 * turning while it does. */
static void
test_big_scan_stays_responsive (void)
{
  TesseraWindow *win = open_sample_window ();
  g_autofree char *dir = g_dir_make_tmp ("tessera-ui-XXXXXX", NULL);
  g_autofree char *path = g_build_filename (dir, "scan.jpg", NULL);
  g_autoptr(GFile) file = g_file_new_for_path (path);
  g_autoptr(GdkPixbuf) scan = gdk_pixbuf_new (GDK_COLORSPACE_RGB, FALSE, 8, 12000, 9000);
  WantWidth want = { tessera_window_get_image_view (win), 12000 };
  Ticks ticks = { 0, 0 };
  gint64 start;
  guint source;

  gdk_pixbuf_fill (scan, 0xf4f1e8ff);
  g_assert_true (gdk_pixbuf_save (scan, path, "jpeg", NULL, "quality", "80", NULL));
  g_clear_object (&scan);

  ticks.last = start = g_get_monotonic_time ();
  source = g_timeout_add (10, tick_cb, &ticks);
  tessera_window_open_file (win, file);
  spin_until (loaded, win, 120000);
  g_source_remove (source);
  g_test_message ("12000×9000 JPEG decoded in %.0f ms; longest main-loop stall %.0f ms",
                  (g_get_monotonic_time () - start) / 1000.0, ticks.worst / 1000.0);
  g_assert_true (shows_width (&want));
  g_assert_cmpint (ticks.worst, <, 500 * 1000);

  g_unlink (path);
  g_rmdir (dir);
  gtk_window_destroy (GTK_WINDOW (win));
}

/* Zoomed out, the view draws from a halved copy with at least one pixel
 * per screen pixel, never from a smaller one. */
static void
test_picture_levels (void)
{
  g_autoptr(GdkPixbuf) p = gdk_pixbuf_new (GDK_COLORSPACE_RGB, FALSE, 8, 4000, 1000);
  g_autoptr(TesseraPicture) pic = NULL;
  const struct { double zoom; int width; } cases[] = {
    { 4.0, 4000 }, { 1.0, 4000 }, { 0.6, 4000 }, { 0.5, 2000 }, { 0.3, 2000 },
    { 0.25, 1000 }, { 0.2, 1000 }, { 0.1, 500 }, { 0.01, 500 },
  };

  gdk_pixbuf_fill (p, 0xffffffff);
  pic = tessera_picture_new (p);
  g_assert_true (tessera_picture_get_pixbuf (pic) == p);
  for (gsize i = 0; i < G_N_ELEMENTS (cases); i++)
    g_assert_cmpint (gdk_texture_get_width (tessera_picture_get_texture (pic, cases[i].zoom)), ==,
                     cases[i].width);
}

int
main (int argc, char **argv)
{
  g_autofree char *json = NULL;

  g_setenv ("GSETTINGS_BACKEND", "memory", TRUE);
  g_setenv ("LANGUAGE", "C", TRUE);
  gtk_test_init (&argc, &argv, NULL);
  adw_init ();

  if (argc < 3)
    g_error ("usage: test-ui SAMPLE.png hd-plans.json");
  sample_path = argv[1];
  if (!g_file_get_contents (argv[2], &json, NULL, NULL))
    g_error ("cannot read %s", argv[2]);
  fixture = cJSON_Parse (json);
  g_assert_nonnull (fixture);

  g_test_add_func ("/ui/open-and-switch-hd", test_open_and_switch);
  g_test_add_func ("/ui/zoom", test_zoom);
  g_test_add_func ("/ui/picture-levels", test_picture_levels);
  g_test_add_func ("/ui/overlay-drawn-and-hidden", test_overlay_drawn_and_hidden);
  g_test_add_func ("/ui/bad-files-keep-the-image", test_bad_files_keep_the_image);
  g_test_add_func ("/ui/paste", test_paste);
  g_test_add_func ("/ui/big-scan-stays-responsive", test_big_scan_stays_responsive);
  return g_test_run ();
}
