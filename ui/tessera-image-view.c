/* SPDX-License-Identifier: GPL-3.0-or-later
 *
 * tessera-image-view.c — the image canvas and its tile-grid overlay.
 *
 * Everything the overlay draws comes from the engine's planner (tsr_hd_plan),
 * the same arithmetic the engine will use to cut the image, so the overlay
 * cannot disagree with what the model sees. Drawing happens in widget
 * coordinates: image point (ix, iy) sits at (off_x + ix·zoom, off_y + iy·zoom).
 */
#define G_LOG_DOMAIN "tessera-image-view"

#include "config.h"

#include <math.h>

#include <glib/gi18n.h>

#include "tessera-image-view.h"
#include "tessera-picture.h"

#define ZOOM_MIN  0.02
#define ZOOM_MAX  32.0
#define ZOOM_STEP 1.25
/* From this zoom on, pixels are drawn as sharp squares, not interpolated. */
#define ZOOM_NEAREST 2.0
#define FIT_MARGIN 16.0
#define INSET_SIZE 168.0
#define INSET_MARGIN 12.0

struct _TesseraImageView
{
  GtkWidget   parent_instance;

  TesseraPicture *picture;
  GdkPixbuf  *pixbuf;    /* the picture's full-resolution pixels */
  int         hd_num;
  gboolean    show_overlay;
  int         highlight;
  int         highlight_count;  /* tiles from `highlight` on */
  int         hover;

  TsrHdPlan   plan;
  gboolean    plan_ok;
  char       *plan_error;

  double      zoom;
  double      off_x, off_y;
  gboolean    fit;

  /* Pan and pinch bookkeeping. */
  double      drag_off_x, drag_off_y;
  double      pinch_zoom;
  double      pointer_x, pointer_y;
  gboolean    pointer_inside;
};

G_DEFINE_FINAL_TYPE (TesseraImageView, tessera_image_view, GTK_TYPE_WIDGET)

enum {
  PROP_0,
  PROP_HD_NUM,
  PROP_SHOW_OVERLAY,
  PROP_ZOOM,
  PROP_FIT,
  N_PROPS
};

enum {
  PLAN_CHANGED,
  N_SIGNALS
};

static GParamSpec *properties[N_PROPS];
static guint signals[N_SIGNALS];

/* ==== Geometry ========================================================== */

/* The rectangle, in image coordinates, that the view frames when fitting:
 * the padded canvas when the overlay shows it, otherwise the image. */
static graphene_rect_t
content_rect (TesseraImageView *self)
{
  int w = gdk_pixbuf_get_width (self->pixbuf);
  int h = gdk_pixbuf_get_height (self->pixbuf);
  graphene_rect_t r = GRAPHENE_RECT_INIT (0, 0, w, h);

  if (self->show_overlay && self->plan_ok)
    {
      double x0, y0, x1, y1;
      tsr_hd_canvas_to_image (&self->plan, 0, 0, &x0, &y0);
      tsr_hd_canvas_to_image (&self->plan, self->plan.padded_w, self->plan.padded_h, &x1, &y1);
      graphene_rect_init (&r, x0, y0, x1 - x0, y1 - y0);
    }
  return r;
}

static double
inset_size (TesseraImageView *self)
{
  double vw = gtk_widget_get_width (GTK_WIDGET (self));
  double vh = gtk_widget_get_height (GTK_WIDGET (self));
  return MIN (INSET_SIZE, MIN (vw, vh) * 0.3);
}

/* The part of the view the content is centred in. While the global-view
 * inset shows, a strip along the right or the top edge is kept for it,
 * whichever costs the content less room, so the inset never hides tiles
 * when the image is fitted. */
static graphene_rect_t
view_area (TesseraImageView *self)
{
  double vw = gtk_widget_get_width (GTK_WIDGET (self));
  double vh = gtk_widget_get_height (GTK_WIDGET (self));
  graphene_rect_t c;
  double strip, zoom_right, zoom_top;

  if (!self->show_overlay || !self->plan_ok || self->pixbuf == NULL || inset_size (self) < 48)
    return GRAPHENE_RECT_INIT (0, 0, vw, vh);

  c = content_rect (self);
  strip = inset_size (self) + INSET_MARGIN;
  zoom_right = MIN ((vw - strip - 2 * FIT_MARGIN) / c.size.width, (vh - 2 * FIT_MARGIN) / c.size.height);
  zoom_top = MIN ((vw - 2 * FIT_MARGIN) / c.size.width, (vh - strip - 2 * FIT_MARGIN) / c.size.height);
  if (zoom_right >= zoom_top)
    return GRAPHENE_RECT_INIT (0, 0, MAX (1, vw - strip), vh);
  return GRAPHENE_RECT_INIT (0, strip, vw, MAX (1, vh - strip));
}

static double
fit_zoom (TesseraImageView *self)
{
  graphene_rect_t c = content_rect (self);
  graphene_rect_t a = view_area (self);
  double vw = a.size.width - 2 * FIT_MARGIN;
  double vh = a.size.height - 2 * FIT_MARGIN;
  if (vw < 1 || vh < 1)
    return 1.0;
  return MIN (vw / c.size.width, vh / c.size.height);
}

/* Keeps the content on screen: centred along an axis where it is smaller
 * than the view, otherwise never leaving an empty margin beyond its edge. */
static void
clamp_offsets (TesseraImageView *self)
{
  graphene_rect_t c = content_rect (self);
  graphene_rect_t a = view_area (self);
  double vw = gtk_widget_get_width (GTK_WIDGET (self));
  double vh = gtk_widget_get_height (GTK_WIDGET (self));
  double cw = c.size.width * self->zoom, ch = c.size.height * self->zoom;
  double cx = c.origin.x * self->zoom, cy = c.origin.y * self->zoom;

  if (cw + 2 * FIT_MARGIN <= a.size.width)
    self->off_x = a.origin.x + (a.size.width - cw) / 2 - cx;
  else
    self->off_x = CLAMP (self->off_x, vw - FIT_MARGIN - cw - cx, FIT_MARGIN - cx);

  if (ch + 2 * FIT_MARGIN <= a.size.height)
    self->off_y = a.origin.y + (a.size.height - ch) / 2 - cy;
  else
    self->off_y = CLAMP (self->off_y, vh - FIT_MARGIN - ch - cy, FIT_MARGIN - cy);
}

static void
apply_fit (TesseraImageView *self)
{
  if (self->pixbuf == NULL)
    return;
  self->zoom = fit_zoom (self);
  clamp_offsets (self);
}

static void
set_zoom_at (TesseraImageView *self, double zoom, double wx, double wy)
{
  double old = self->zoom;
  if (self->pixbuf == NULL)
    return;
  zoom = CLAMP (zoom, MIN (ZOOM_MIN, fit_zoom (self)), ZOOM_MAX);
  self->off_x = wx - (wx - self->off_x) * (zoom / old);
  self->off_y = wy - (wy - self->off_y) * (zoom / old);
  self->zoom = zoom;
  clamp_offsets (self);
  if (self->fit)
    {
      self->fit = FALSE;
      g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_FIT]);
    }
  g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_ZOOM]);
  gtk_widget_queue_draw (GTK_WIDGET (self));
}

void
tessera_image_view_image_to_widget (TesseraImageView *self, double ix, double iy,
                                    double *wx, double *wy)
{
  *wx = self->off_x + ix * self->zoom;
  *wy = self->off_y + iy * self->zoom;
}

static void
widget_to_image (TesseraImageView *self, double wx, double wy, double *ix, double *iy)
{
  *ix = (wx - self->off_x) / self->zoom;
  *iy = (wy - self->off_y) / self->zoom;
}

/* The tile under a widget point, or -1. */
static int
tile_at (TesseraImageView *self, double wx, double wy)
{
  double ix, iy, cx, cy;
  int col, row;
  if (!self->plan_ok || !self->show_overlay || self->pixbuf == NULL)
    return -1;
  widget_to_image (self, wx, wy, &ix, &iy);
  cx = ix * self->plan.scale_x + self->plan.pad_x;
  cy = iy * self->plan.scale_y + self->plan.pad_y;
  if (cx < 0 || cy < 0 || cx >= self->plan.padded_w || cy >= self->plan.padded_h)
    return -1;
  col = (int) (cx / TSR_TILE_SIZE);
  row = (int) (cy / TSR_TILE_SIZE);
  return row * self->plan.cols + col;
}

/* Tile `index` in widget coordinates. */
static graphene_rect_t
tile_widget_rect (TesseraImageView *self, int index)
{
  TsrRectF f = tsr_hd_tile_image_rect (&self->plan, index);
  double x0, y0, x1, y1;
  tessera_image_view_image_to_widget (self, f.x, f.y, &x0, &y0);
  tessera_image_view_image_to_widget (self, f.x + f.w, f.y + f.h, &x1, &y1);
  return GRAPHENE_RECT_INIT (x0, y0, x1 - x0, y1 - y0);
}

/* ==== Plan ============================================================== */

static void
update_plan (TesseraImageView *self)
{
  TsrError err;

  g_clear_pointer (&self->plan_error, g_free);
  self->plan_ok = FALSE;
  self->hover = -1;

  if (self->pixbuf != NULL)
    {
      if (tsr_hd_plan (gdk_pixbuf_get_width (self->pixbuf), gdk_pixbuf_get_height (self->pixbuf),
                       self->hd_num, &self->plan, &err) == TSR_OK)
        self->plan_ok = TRUE;
      else if (err.status == TSR_EFORMAT)
        self->plan_error = g_strdup_printf (_("A %d×%d image is too elongated for HD-%d: the model would "
                                              "shrink its short side to nothing. Crop it into pieces "
                                              "closer to square."),
                                            gdk_pixbuf_get_width (self->pixbuf),
                                            gdk_pixbuf_get_height (self->pixbuf), self->hd_num);
      else
        self->plan_error = g_strdup (err.message);  /* the engine's own words */
    }
  if (self->highlight >= (self->plan_ok ? self->plan.tiles : 0))
    self->highlight = -1;

  if (self->fit)
    apply_fit (self);
  else if (self->pixbuf != NULL)
    clamp_offsets (self);

  g_signal_emit (self, signals[PLAN_CHANGED], 0);
  gtk_widget_queue_draw (GTK_WIDGET (self));
}

/* ==== Drawing =========================================================== */

static const GdkRGBA accent = { 0.208, 0.518, 0.894, 1.0 };   /* GNOME blue 3 */
static const GdkRGBA white = { 1, 1, 1, 1 };

/* Sharp pixels for the visible part of the image only: at high zoom that
 * part is small, so converting it each frame is cheap, and the GPU path of
 * GTK 4.8 can only interpolate linearly. */
static void
draw_nearest (TesseraImageView *self, GtkSnapshot *snapshot, double vw, double vh)
{
  int w = gdk_pixbuf_get_width (self->pixbuf), h = gdk_pixbuf_get_height (self->pixbuf);
  double ix0, iy0, ix1, iy1;
  int x0, y0, x1, y1;
  g_autoptr(GdkPixbuf) sub = NULL;
  cairo_t *cr;

  widget_to_image (self, 0, 0, &ix0, &iy0);
  widget_to_image (self, vw, vh, &ix1, &iy1);
  x0 = CLAMP ((int) floor (ix0), 0, w);
  y0 = CLAMP ((int) floor (iy0), 0, h);
  x1 = CLAMP ((int) ceil (ix1), 0, w);
  y1 = CLAMP ((int) ceil (iy1), 0, h);
  if (x1 <= x0 || y1 <= y0)
    return;

  sub = gdk_pixbuf_new_subpixbuf (self->pixbuf, x0, y0, x1 - x0, y1 - y0);
  cr = gtk_snapshot_append_cairo (snapshot, &GRAPHENE_RECT_INIT (0, 0, vw, vh));
  cairo_translate (cr, self->off_x + x0 * self->zoom, self->off_y + y0 * self->zoom);
  cairo_scale (cr, self->zoom, self->zoom);
  gdk_cairo_set_source_pixbuf (cr, sub, 0, 0);
  cairo_pattern_set_filter (cairo_get_source (cr), CAIRO_FILTER_NEAREST);
  cairo_rectangle (cr, 0, 0, x1 - x0, y1 - y0);
  cairo_fill (cr);
  cairo_destroy (cr);
}

static void
hatch_rect (cairo_t *cr, double x, double y, double w, double h)
{
  const double step = 10;
  if (w <= 0 || h <= 0)
    return;
  cairo_save (cr);
  cairo_rectangle (cr, x, y, w, h);
  cairo_clip (cr);
  cairo_set_source_rgba (cr, 0.45, 0.45, 0.5, 0.18);
  cairo_rectangle (cr, x, y, w, h);
  cairo_fill (cr);
  cairo_set_source_rgba (cr, 0.3, 0.3, 0.35, 0.35);
  cairo_set_line_width (cr, 1.0);
  for (double d = -h; d < w; d += step)
    {
      cairo_move_to (cr, x + d, y + h);
      cairo_line_to (cr, x + d + h, y);
    }
  cairo_stroke (cr);
  cairo_restore (cr);
}

static void
draw_label (cairo_t *cr, PangoLayout *layout, const char *text, double x, double y,
            double font_px, const GdkRGBA *bg)
{
  PangoFontDescription *font = pango_font_description_from_string ("Sans Bold");
  PangoRectangle ink, logical;
  double pad = MAX (2.0, font_px * 0.3);

  pango_font_description_set_absolute_size (font, font_px * PANGO_SCALE);
  pango_layout_set_font_description (layout, font);
  pango_font_description_free (font);
  pango_layout_set_text (layout, text, -1);
  pango_layout_get_pixel_extents (layout, &ink, &logical);

  cairo_new_path (cr);
  cairo_rectangle (cr, x, y, logical.width + 2 * pad, logical.height + pad);
  gdk_cairo_set_source_rgba (cr, bg);
  cairo_fill (cr);
  cairo_move_to (cr, x + pad, y + pad / 2);
  cairo_set_source_rgb (cr, 1, 1, 1);
  pango_cairo_show_layout (cr, layout);
}

static void
draw_overlay (TesseraImageView *self, GtkSnapshot *snapshot, double vw, double vh)
{
  const TsrHdPlan *p = &self->plan;
  int w = gdk_pixbuf_get_width (self->pixbuf), h = gdk_pixbuf_get_height (self->pixbuf);
  double ix0, iy0, ix1, iy1, cx0, cy0, cx1, cy1;
  PangoLayout *layout;
  cairo_t *cr;

  cr = gtk_snapshot_append_cairo (snapshot, &GRAPHENE_RECT_INIT (0, 0, vw, vh));
  layout = pango_cairo_create_layout (cr);

  /* Padding: the canvas outside the image, white for the model, hatched here. */
  tessera_image_view_image_to_widget (self, 0, 0, &ix0, &iy0);
  tessera_image_view_image_to_widget (self, w, h, &ix1, &iy1);
  {
    double a, b;
    tsr_hd_canvas_to_image (p, 0, 0, &a, &b);
    tessera_image_view_image_to_widget (self, a, b, &cx0, &cy0);
    tsr_hd_canvas_to_image (p, p->padded_w, p->padded_h, &a, &b);
    tessera_image_view_image_to_widget (self, a, b, &cx1, &cy1);
  }
  hatch_rect (cr, cx0, cy0, cx1 - cx0, iy0 - cy0);   /* above */
  hatch_rect (cr, cx0, iy1, cx1 - cx0, cy1 - iy1);   /* below */
  hatch_rect (cr, cx0, iy0, ix0 - cx0, iy1 - iy0);   /* left */
  hatch_rect (cr, ix1, iy0, cx1 - ix1, iy1 - iy0);   /* right */

  /* Emphasised tiles under the grid lines. */
  for (int k = 0; k < 2; k++)
    {
      int first = k == 0 ? self->highlight : self->hover;
      int count = k == 0 ? MAX (self->highlight_count, 1) : 1;
      for (int t = first; first >= 0 && t < first + count && t < p->tiles; t++)
        {
          graphene_rect_t r = tile_widget_rect (self, t);
          cairo_rectangle (cr, r.origin.x, r.origin.y, r.size.width, r.size.height);
          cairo_set_source_rgba (cr, accent.red, accent.green, accent.blue, k == 0 ? 0.30 : 0.15);
          cairo_fill (cr);
        }
    }

  /* Grid lines: a light halo under the accent line keeps them visible on
   * dark and light documents alike. */
  for (int pass = 0; pass < 2; pass++)
    {
      for (int i = 0; i < p->tiles; i++)
        {
          graphene_rect_t r = tile_widget_rect (self, i);
          cairo_rectangle (cr, r.origin.x, r.origin.y, r.size.width, r.size.height);
        }
      if (pass == 0)
        {
          cairo_set_source_rgba (cr, 1, 1, 1, 0.8);
          cairo_set_line_width (cr, 3.5);
        }
      else
        {
          gdk_cairo_set_source_rgba (cr, &accent);
          cairo_set_line_width (cr, 1.5);
        }
      cairo_stroke (cr);
    }

  /* Tile numbers in reading order; the global view is read before tile 1. */
  {
    graphene_rect_t r0 = tile_widget_rect (self, 0);
    double side = MIN (r0.size.width, r0.size.height);
    double font_px = CLAMP (side * 0.11, 9.0, 30.0);
    if (side >= 18)
      for (int i = 0; i < p->tiles; i++)
        {
          graphene_rect_t r = tile_widget_rect (self, i);
          char text[16];
          g_snprintf (text, sizeof text, "%d", i + 1);
          draw_label (cr, layout, text, r.origin.x + 1.5, r.origin.y + 1.5, font_px, &accent);
        }
  }

  g_object_unref (layout);
  cairo_destroy (cr);
}

/* The global view: the whole padded canvas squeezed to 336×336, as the
 * model reads it first. Drawn with the image's texture stretched into the
 * square, so non-square canvases look as distorted as the model sees them. */
static void
draw_inset (TesseraImageView *self, GtkSnapshot *snapshot, double vw, double vh)
{
  const TsrHdPlan *p = &self->plan;
  double s = inset_size (self);
  double x = vw - s - INSET_MARGIN, y = INSET_MARGIN;
  graphene_rect_t img;
  PangoLayout *layout;
  cairo_t *cr;
  char text[64];

  if (s < 48)
    return;

  gtk_snapshot_append_color (snapshot, &(GdkRGBA) { 0, 0, 0, 0.35 },
                             &GRAPHENE_RECT_INIT (x - 3, y - 3, s + 6, s + 6));
  gtk_snapshot_append_color (snapshot, &white, &GRAPHENE_RECT_INIT (x, y, s, s));
  img = GRAPHENE_RECT_INIT (x + s * p->pad_x / p->padded_w, y + s * p->pad_y / p->padded_h,
                            s * p->resized_w / p->padded_w, s * p->resized_h / p->padded_h);
  gtk_snapshot_append_texture (snapshot,
                               tessera_picture_get_texture (self->picture, img.size.width / p->width),
                               &img);

  cr = gtk_snapshot_append_cairo (snapshot, &GRAPHENE_RECT_INIT (x, y, s, s));
  layout = pango_cairo_create_layout (cr);
  /* Translators: the label on the thumbnail of the model's global view. */
  g_snprintf (text, sizeof text, "%s", _("Global view"));
  draw_label (cr, layout, text, x, y + s - 18, 11, &(GdkRGBA) { 0.1, 0.1, 0.12, 0.75 });
  cairo_rectangle (cr, x + 0.5, y + 0.5, s - 1, s - 1);
  gdk_cairo_set_source_rgba (cr, &accent);
  cairo_set_line_width (cr, 1);
  cairo_stroke (cr);
  g_object_unref (layout);
  cairo_destroy (cr);
}

static void
tessera_image_view_snapshot (GtkWidget *widget, GtkSnapshot *snapshot)
{
  TesseraImageView *self = TESSERA_IMAGE_VIEW (widget);
  double vw = gtk_widget_get_width (widget), vh = gtk_widget_get_height (widget);
  gboolean overlay = self->show_overlay && self->plan_ok;
  int w, h;

  if (self->picture == NULL)
    return;
  w = gdk_pixbuf_get_width (self->pixbuf);
  h = gdk_pixbuf_get_height (self->pixbuf);

  gtk_snapshot_push_clip (snapshot, &GRAPHENE_RECT_INIT (0, 0, vw, vh));

  if (overlay)
    {
      /* The padding is white on the model's canvas: show the canvas white. */
      graphene_rect_t c = content_rect (self);
      double x0, y0;
      tessera_image_view_image_to_widget (self, c.origin.x, c.origin.y, &x0, &y0);
      gtk_snapshot_append_color (snapshot, &white,
                                 &GRAPHENE_RECT_INIT (x0, y0, c.size.width * self->zoom,
                                                      c.size.height * self->zoom));
    }

  if (self->zoom >= ZOOM_NEAREST)
    draw_nearest (self, snapshot, vw, vh);
  else
    gtk_snapshot_append_texture (snapshot, tessera_picture_get_texture (self->picture, self->zoom),
                                 &GRAPHENE_RECT_INIT (self->off_x, self->off_y,
                                                      w * self->zoom, h * self->zoom));

  if (overlay)
    {
      draw_overlay (self, snapshot, vw, vh);
      draw_inset (self, snapshot, vw, vh);
    }

  gtk_snapshot_pop (snapshot);
}

static void
tessera_image_view_size_allocate (GtkWidget *widget, int width, int height, int baseline)
{
  TesseraImageView *self = TESSERA_IMAGE_VIEW (widget);
  if (self->pixbuf == NULL)
    return;
  if (self->fit)
    apply_fit (self);
  else
    clamp_offsets (self);
  g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_ZOOM]);
}

/* ==== Input ============================================================= */

static gboolean
scroll_cb (GtkEventControllerScroll *controller, double dx, double dy, TesseraImageView *self)
{
  GdkModifierType mods = gtk_event_controller_get_current_event_state (GTK_EVENT_CONTROLLER (controller));
  gboolean wheel = gtk_event_controller_scroll_get_unit (controller) == GDK_SCROLL_UNIT_WHEEL;

  if (self->pixbuf == NULL)
    return FALSE;

  if (mods & GDK_CONTROL_MASK)
    {
      double wx = self->pointer_inside ? self->pointer_x : gtk_widget_get_width (GTK_WIDGET (self)) / 2.0;
      double wy = self->pointer_inside ? self->pointer_y : gtk_widget_get_height (GTK_WIDGET (self)) / 2.0;
      double factor = wheel ? pow (ZOOM_STEP, -dy) : exp (-dy * 0.01);
      set_zoom_at (self, self->zoom * factor, wx, wy);
      return TRUE;
    }

  if (mods & GDK_SHIFT_MASK && dx == 0)
    {
      dx = dy;
      dy = 0;
    }
  if (wheel)
    {
      dx *= 60;
      dy *= 60;
    }
  self->off_x -= dx;
  self->off_y -= dy;
  clamp_offsets (self);
  gtk_widget_queue_draw (GTK_WIDGET (self));
  return TRUE;
}

static void
drag_begin_cb (GtkGestureDrag *gesture, double x, double y, TesseraImageView *self)
{
  self->drag_off_x = self->off_x;
  self->drag_off_y = self->off_y;
  gtk_widget_set_cursor_from_name (GTK_WIDGET (self), "grabbing");
}

static void
drag_update_cb (GtkGestureDrag *gesture, double dx, double dy, TesseraImageView *self)
{
  if (self->pixbuf == NULL)
    return;
  self->off_x = self->drag_off_x + dx;
  self->off_y = self->drag_off_y + dy;
  clamp_offsets (self);
  gtk_widget_queue_draw (GTK_WIDGET (self));
}

static void
drag_end_cb (GtkGestureDrag *gesture, double dx, double dy, TesseraImageView *self)
{
  gtk_widget_set_cursor_from_name (GTK_WIDGET (self), NULL);
}

static void
pinch_begin_cb (GtkGesture *gesture, GdkEventSequence *sequence, TesseraImageView *self)
{
  self->pinch_zoom = self->zoom;
}

static void
pinch_scale_cb (GtkGestureZoom *gesture, double scale, TesseraImageView *self)
{
  double cx, cy;
  if (!gtk_gesture_get_bounding_box_center (GTK_GESTURE (gesture), &cx, &cy))
    return;
  set_zoom_at (self, self->pinch_zoom * scale, cx, cy);
}

static void
update_hover (TesseraImageView *self)
{
  int t = self->pointer_inside ? tile_at (self, self->pointer_x, self->pointer_y) : -1;
  if (t != self->hover)
    {
      self->hover = t;
      gtk_widget_queue_draw (GTK_WIDGET (self));
    }
}

static void
motion_cb (GtkEventControllerMotion *controller, double x, double y, TesseraImageView *self)
{
  self->pointer_x = x;
  self->pointer_y = y;
  self->pointer_inside = TRUE;
  update_hover (self);
}

static void
leave_cb (GtkEventControllerMotion *controller, TesseraImageView *self)
{
  self->pointer_inside = FALSE;
  update_hover (self);
}

static gboolean
query_tooltip_cb (GtkWidget *widget, int x, int y, gboolean keyboard, GtkTooltip *tooltip,
                  TesseraImageView *self)
{
  int t = tile_at (self, x, y);
  TsrRect crop;
  g_autofree char *text = NULL;

  if (t < 0)
    return FALSE;
  crop = tsr_hd_tile_crop (&self->plan, t);
  text = g_strdup_printf (_("Tile %d of %d — row %d, column %d\n"
                            "Image pixels %d–%d across, %d–%d down"),
                          t + 1, self->plan.tiles, t / self->plan.cols + 1, t % self->plan.cols + 1,
                          crop.x, crop.x + crop.w, crop.y, crop.y + crop.h);
  gtk_tooltip_set_text (tooltip, text);
  return TRUE;
}

/* ==== Public API ======================================================== */

GtkWidget *
tessera_image_view_new (void)
{
  return g_object_new (TESSERA_TYPE_IMAGE_VIEW, NULL);
}

void
tessera_image_view_set_picture (TesseraImageView *self, TesseraPicture *picture)
{
  g_return_if_fail (TESSERA_IS_IMAGE_VIEW (self));

  if (picture == self->picture)
    return;
  if (picture != NULL)
    tessera_picture_ref (picture);
  g_clear_pointer (&self->picture, tessera_picture_unref);
  self->picture = picture;
  self->pixbuf = picture != NULL ? tessera_picture_get_pixbuf (picture) : NULL;
  self->highlight = -1;
  self->zoom = 1.0;
  self->off_x = self->off_y = 0;
  self->fit = TRUE;
  g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_FIT]);
  update_plan (self);
  g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_ZOOM]);
}

void
tessera_image_view_set_pixbuf (TesseraImageView *self, GdkPixbuf *pixbuf)
{
  g_autoptr(TesseraPicture) picture = NULL;
  g_return_if_fail (TESSERA_IS_IMAGE_VIEW (self));
  if (pixbuf != NULL)
    picture = tessera_picture_new (pixbuf);
  tessera_image_view_set_picture (self, picture);
}

GdkPixbuf *
tessera_image_view_get_pixbuf (TesseraImageView *self)
{
  g_return_val_if_fail (TESSERA_IS_IMAGE_VIEW (self), NULL);
  return self->pixbuf;
}

void
tessera_image_view_set_hd_num (TesseraImageView *self, int hd_num)
{
  g_return_if_fail (TESSERA_IS_IMAGE_VIEW (self));
  hd_num = CLAMP (hd_num, TSR_HD_NUM_MIN, TSR_HD_NUM_MAX);
  if (hd_num == self->hd_num)
    return;
  self->hd_num = hd_num;
  update_plan (self);
  g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_HD_NUM]);
}

int
tessera_image_view_get_hd_num (TesseraImageView *self)
{
  g_return_val_if_fail (TESSERA_IS_IMAGE_VIEW (self), TSR_HD_NUM_DEFAULT);
  return self->hd_num;
}

void
tessera_image_view_set_show_overlay (TesseraImageView *self, gboolean show)
{
  g_return_if_fail (TESSERA_IS_IMAGE_VIEW (self));
  show = !!show;
  if (show == self->show_overlay)
    return;
  self->show_overlay = show;
  self->hover = -1;
  /* The fitted frame includes the padding only while it is shown. */
  if (self->fit)
    apply_fit (self);
  else if (self->pixbuf != NULL)
    clamp_offsets (self);
  gtk_widget_queue_draw (GTK_WIDGET (self));
  g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_SHOW_OVERLAY]);
}

gboolean
tessera_image_view_get_show_overlay (TesseraImageView *self)
{
  g_return_val_if_fail (TESSERA_IS_IMAGE_VIEW (self), FALSE);
  return self->show_overlay;
}

void
tessera_image_view_set_highlight (TesseraImageView *self, int tile)
{
  tessera_image_view_set_highlight_range (self, tile, 1);
}

void
tessera_image_view_set_highlight_range (TesseraImageView *self, int first, int count)
{
  g_return_if_fail (TESSERA_IS_IMAGE_VIEW (self));
  if (first == self->highlight && count == self->highlight_count)
    return;
  self->highlight = first;
  self->highlight_count = count;
  gtk_widget_queue_draw (GTK_WIDGET (self));
}

const TsrHdPlan *
tessera_image_view_get_plan (TesseraImageView *self)
{
  g_return_val_if_fail (TESSERA_IS_IMAGE_VIEW (self), NULL);
  return self->plan_ok ? &self->plan : NULL;
}

const char *
tessera_image_view_get_plan_error (TesseraImageView *self)
{
  g_return_val_if_fail (TESSERA_IS_IMAGE_VIEW (self), NULL);
  return self->plan_error;
}

double
tessera_image_view_get_zoom (TesseraImageView *self)
{
  g_return_val_if_fail (TESSERA_IS_IMAGE_VIEW (self), 1.0);
  return self->zoom;
}

gboolean
tessera_image_view_get_fit (TesseraImageView *self)
{
  g_return_val_if_fail (TESSERA_IS_IMAGE_VIEW (self), TRUE);
  return self->fit;
}

static void
zoom_about_centre (TesseraImageView *self, double zoom)
{
  set_zoom_at (self, zoom, gtk_widget_get_width (GTK_WIDGET (self)) / 2.0,
               gtk_widget_get_height (GTK_WIDGET (self)) / 2.0);
}

void
tessera_image_view_zoom_in (TesseraImageView *self)
{
  g_return_if_fail (TESSERA_IS_IMAGE_VIEW (self));
  zoom_about_centre (self, self->zoom * ZOOM_STEP);
}

void
tessera_image_view_zoom_out (TesseraImageView *self)
{
  g_return_if_fail (TESSERA_IS_IMAGE_VIEW (self));
  zoom_about_centre (self, self->zoom / ZOOM_STEP);
}

void
tessera_image_view_zoom_actual (TesseraImageView *self)
{
  g_return_if_fail (TESSERA_IS_IMAGE_VIEW (self));
  zoom_about_centre (self, 1.0);
}

void
tessera_image_view_zoom_to_fit (TesseraImageView *self)
{
  g_return_if_fail (TESSERA_IS_IMAGE_VIEW (self));
  self->fit = TRUE;
  apply_fit (self);
  g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_FIT]);
  g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_ZOOM]);
  gtk_widget_queue_draw (GTK_WIDGET (self));
}

/* ==== GObject =========================================================== */

static void
tessera_image_view_get_property (GObject *object, guint prop_id, GValue *value, GParamSpec *pspec)
{
  TesseraImageView *self = TESSERA_IMAGE_VIEW (object);
  switch (prop_id)
    {
    case PROP_HD_NUM:       g_value_set_int (value, self->hd_num); break;
    case PROP_SHOW_OVERLAY: g_value_set_boolean (value, self->show_overlay); break;
    case PROP_ZOOM:         g_value_set_double (value, self->zoom); break;
    case PROP_FIT:          g_value_set_boolean (value, self->fit); break;
    default:                G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
tessera_image_view_set_property (GObject *object, guint prop_id, const GValue *value, GParamSpec *pspec)
{
  TesseraImageView *self = TESSERA_IMAGE_VIEW (object);
  switch (prop_id)
    {
    case PROP_HD_NUM:       tessera_image_view_set_hd_num (self, g_value_get_int (value)); break;
    case PROP_SHOW_OVERLAY: tessera_image_view_set_show_overlay (self, g_value_get_boolean (value)); break;
    default:                G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
tessera_image_view_finalize (GObject *object)
{
  TesseraImageView *self = TESSERA_IMAGE_VIEW (object);
  g_clear_pointer (&self->picture, tessera_picture_unref);
  self->pixbuf = NULL;
  g_clear_pointer (&self->plan_error, g_free);
  G_OBJECT_CLASS (tessera_image_view_parent_class)->finalize (object);
}

static void
tessera_image_view_class_init (TesseraImageViewClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);
  GtkWidgetClass *widget_class = GTK_WIDGET_CLASS (klass);

  object_class->get_property = tessera_image_view_get_property;
  object_class->set_property = tessera_image_view_set_property;
  object_class->finalize = tessera_image_view_finalize;
  widget_class->snapshot = tessera_image_view_snapshot;
  widget_class->size_allocate = tessera_image_view_size_allocate;

  properties[PROP_HD_NUM] =
    g_param_spec_int ("hd-num", NULL, NULL, TSR_HD_NUM_MIN, TSR_HD_NUM_MAX, TSR_HD_NUM_DEFAULT,
                      G_PARAM_READWRITE | G_PARAM_EXPLICIT_NOTIFY | G_PARAM_STATIC_STRINGS);
  properties[PROP_SHOW_OVERLAY] =
    g_param_spec_boolean ("show-overlay", NULL, NULL, TRUE,
                          G_PARAM_READWRITE | G_PARAM_EXPLICIT_NOTIFY | G_PARAM_STATIC_STRINGS);
  properties[PROP_ZOOM] =
    g_param_spec_double ("zoom", NULL, NULL, 0, G_MAXDOUBLE, 1.0,
                         G_PARAM_READABLE | G_PARAM_STATIC_STRINGS);
  properties[PROP_FIT] =
    g_param_spec_boolean ("fit", NULL, NULL, TRUE,
                          G_PARAM_READABLE | G_PARAM_STATIC_STRINGS);
  g_object_class_install_properties (object_class, N_PROPS, properties);

  /* Emitted when the image or HD-N changed and the plan was recomputed. */
  signals[PLAN_CHANGED] = g_signal_new ("plan-changed", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST,
                                        0, NULL, NULL, NULL, G_TYPE_NONE, 0);

  gtk_widget_class_set_css_name (widget_class, "tessera-image-view");
}

static void
tessera_image_view_init (TesseraImageView *self)
{
  GtkEventController *scroll, *motion;
  GtkGesture *drag, *pinch;

  self->hd_num = TSR_HD_NUM_DEFAULT;
  self->show_overlay = TRUE;
  self->highlight = -1;
  self->hover = -1;
  self->zoom = 1.0;
  self->fit = TRUE;

  gtk_widget_set_focusable (GTK_WIDGET (self), TRUE);
  gtk_widget_set_hexpand (GTK_WIDGET (self), TRUE);
  gtk_widget_set_vexpand (GTK_WIDGET (self), TRUE);
  gtk_widget_set_overflow (GTK_WIDGET (self), GTK_OVERFLOW_HIDDEN);
  gtk_widget_set_has_tooltip (GTK_WIDGET (self), TRUE);
  g_signal_connect (self, "query-tooltip", G_CALLBACK (query_tooltip_cb), self);

  scroll = gtk_event_controller_scroll_new (GTK_EVENT_CONTROLLER_SCROLL_BOTH_AXES);
  g_signal_connect (scroll, "scroll", G_CALLBACK (scroll_cb), self);
  gtk_widget_add_controller (GTK_WIDGET (self), scroll);

  motion = gtk_event_controller_motion_new ();
  g_signal_connect (motion, "motion", G_CALLBACK (motion_cb), self);
  g_signal_connect (motion, "enter", G_CALLBACK (motion_cb), self);
  g_signal_connect (motion, "leave", G_CALLBACK (leave_cb), self);
  gtk_widget_add_controller (GTK_WIDGET (self), motion);

  drag = gtk_gesture_drag_new ();
  gtk_gesture_single_set_button (GTK_GESTURE_SINGLE (drag), 0);
  g_signal_connect (drag, "drag-begin", G_CALLBACK (drag_begin_cb), self);
  g_signal_connect (drag, "drag-update", G_CALLBACK (drag_update_cb), self);
  g_signal_connect (drag, "drag-end", G_CALLBACK (drag_end_cb), self);
  gtk_widget_add_controller (GTK_WIDGET (self), GTK_EVENT_CONTROLLER (drag));

  pinch = gtk_gesture_zoom_new ();
  g_signal_connect (pinch, "begin", G_CALLBACK (pinch_begin_cb), self);
  g_signal_connect (pinch, "scale-changed", G_CALLBACK (pinch_scale_cb), self);
  gtk_widget_add_controller (GTK_WIDGET (self), GTK_EVENT_CONTROLLER (pinch));
}
