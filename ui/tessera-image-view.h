/* SPDX-License-Identifier: GPL-3.0-or-later
 *
 * tessera-image-view.h — the image canvas: zoom, pan, and the tile-grid
 * overlay that shows exactly how the model will read the image.
 */
#pragma once

#include <gtk/gtk.h>

#include "tessera-engine.h"
#include "tessera-picture.h"

G_BEGIN_DECLS

#define TESSERA_TYPE_IMAGE_VIEW (tessera_image_view_get_type ())
G_DECLARE_FINAL_TYPE (TesseraImageView, tessera_image_view, TESSERA, IMAGE_VIEW, GtkWidget)

GtkWidget       *tessera_image_view_new              (void);

/* What to show; NULL shows nothing. */
void             tessera_image_view_set_picture      (TesseraImageView *self,
                                                      TesseraPicture   *picture);
/* The same from bare pixels; builds the zoom levels on the calling thread. */
void             tessera_image_view_set_pixbuf       (TesseraImageView *self,
                                                      GdkPixbuf        *pixbuf);
GdkPixbuf       *tessera_image_view_get_pixbuf       (TesseraImageView *self);

void             tessera_image_view_set_hd_num       (TesseraImageView *self,
                                                      int               hd_num);
int              tessera_image_view_get_hd_num       (TesseraImageView *self);

void             tessera_image_view_set_show_overlay (TesseraImageView *self,
                                                      gboolean          show);
gboolean         tessera_image_view_get_show_overlay (TesseraImageView *self);

/* The tile to emphasise (0-based, row-major), as the engine encodes it;
 * -1 for none. */
void             tessera_image_view_set_highlight    (TesseraImageView *self,
                                                      int               tile);
/* `count` tiles from `first` on: the engine encodes a few views at once. */
void             tessera_image_view_set_highlight_range (TesseraImageView *self,
                                                      int               first,
                                                      int               count);

/* The current plan, or NULL when there is no image or the planner refused
 * it; then tessera_image_view_get_plan_error() says why. */
const TsrHdPlan *tessera_image_view_get_plan         (TesseraImageView *self);
const char      *tessera_image_view_get_plan_error   (TesseraImageView *self);

/* Zoom: display pixels per image pixel. */
double           tessera_image_view_get_zoom         (TesseraImageView *self);
gboolean         tessera_image_view_get_fit          (TesseraImageView *self);
void             tessera_image_view_zoom_in          (TesseraImageView *self);
void             tessera_image_view_zoom_out         (TesseraImageView *self);
void             tessera_image_view_zoom_to_fit      (TesseraImageView *self);
void             tessera_image_view_zoom_actual      (TesseraImageView *self);

/* Widget coordinates of an image point, for tests and tooltips. */
void             tessera_image_view_image_to_widget  (TesseraImageView *self,
                                                      double ix, double iy,
                                                      double *wx, double *wy);

G_END_DECLS
